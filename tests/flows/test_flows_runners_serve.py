"""Task runners by config (a local two-worker Dask cluster builds the same datastore as the default thread pool)
and the served deployments (cron schedules, the index-built event trigger) built from the schedule config."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.db import Catalog
from catalog.errors import ConfigError, RereadError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def _outputs(data_dir: Path) -> list[tuple]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        return catalog.query(
            "SELECT stage, shard, row_count, content_hash, artifact_key FROM stage_outputs ORDER BY stage, shard"
        ).rows()


def test_dask_cluster_builds_the_same_datastore_as_threads(tmp_path, prefect_harness):
    pytest.importorskip("prefect_dask")
    from flows.build import run_build

    variant = tmp_path / "v.yaml"
    variant.write_text(
        f"""name: runners
sources:
  - {{name: c4, type: jsonl, path: {SAMPLE / "jsonl" / "c4_sample.jsonl"}, limit: 12, extractor: plain}}
  - {{name: wiki, type: wikitext, path: {SAMPLE / "wikitext"}, pattern: "BBDO.txt", extractor: wikipedia}}
dedup: {{exact: true, near: true}}
"""
    )
    threads = run_build(variant, tmp_path / "threads", runner="threads")
    dask = run_build(variant, tmp_path / "dask", runner="dask", workers=2)
    assert dask["index_key"] == threads["index_key"]
    assert _outputs(tmp_path / "dask") == _outputs(tmp_path / "threads")


def test_ray_started_by_reread_binds_to_loopback():
    from buildplan.executors import local_ray_init_kwargs

    kwargs = local_ray_init_kwargs(3)
    assert kwargs["_node_ip_address"] == "127.0.0.1" and kwargs["num_cpus"] == 3
    assert kwargs["include_dashboard"] is False


def test_unknown_runner_is_a_clear_error():
    from flows.runtime import make_task_runner

    with pytest.raises(ConfigError, match="unknown task runner 'spark'"):
        make_task_runner("spark")


def test_deployments_from_schedule_config(tmp_path, monkeypatch):
    from prefect.deployments.runner import EntrypointType
    from prefect.events import DeploymentEventTrigger

    from flows.serve import load_serve_config, make_deployments

    config_file = tmp_path / "conf" / "schedules.yaml"
    config_file.parent.mkdir()
    for variant in (tmp_path / "conf" / "a.yaml", tmp_path / "b.yaml"):
        variant.write_text(f"name: {variant.stem}\nsources: []\n")
    config_file.write_text(
        "data_dir: data\nrunner: processes\nworkers: 2\n"
        "refresh: {cron: '30 2 * * *', variants: [a.yaml, ../b.yaml]}\n"
        "evaluation: {cron: '0 5 * * 1', variants: [a.yaml, vaswani], tasks: [vaswani, simpleqa],\n"
        "             on_index_built: {a: [simpleqa, mmlu]}}\n"
    )
    monkeypatch.chdir(tmp_path)  # paths resolve against the config file, not the working directory
    deployments = {d.name: d for d in make_deployments(load_serve_config(Path("conf/schedules.yaml")))}
    assert set(deployments) == {
        "refresh-a", "refresh-b", "nightly-vaswani", "nightly-simpleqa", "evaluate-a-on-index-built",
    }  # fmt: skip
    refresh = deployments["refresh-a"]
    assert refresh.schedules[0].schedule.cron == "30 2 * * *"
    data_dir = str(tmp_path / "conf" / "data")
    assert refresh.parameters == {
        "variant_path": str(tmp_path / "conf" / "a.yaml"), "data_dir": data_dir, "runner": "processes", "workers": 2,
        "address": None,
    }  # fmt: skip
    assert deployments["refresh-b"].parameters["variant_path"] == str(tmp_path / "b.yaml")
    # installed-package entrypoints: importable from any working directory
    assert refresh.entrypoint == "flows.refresh.refresh"
    assert all(d.entrypoint_type == EntrypointType.MODULE_PATH for d in deployments.values())
    assert deployments["nightly-simpleqa"].parameters["task_ref"] == "simpleqa"
    from sample_data import bundled_variant

    # a bundled variant by name, as on the command line
    assert deployments["nightly-simpleqa"].parameters["variant_paths"] == [
        str(tmp_path / "conf" / "a.yaml"), str(bundled_variant("vaswani")),
    ]  # fmt: skip
    # the trigger: this variant's index, built into this data dir, evaluated on this variant's tasks
    (trigger,) = deployments["evaluate-a-on-index-built"].triggers
    assert isinstance(trigger, DeploymentEventTrigger) and trigger.expect == {"reread.index.built"}
    assert dict(trigger.match.items()) == {
        "prefect.resource.id": ["reread.variant.a"], "reread.data-dir": [data_dir],
    }  # fmt: skip
    assert trigger.parameters["tasks"] == ["simpleqa", "mmlu"] and trigger.parameters["data_dir"] == data_dir
    config_file.write_text("runner: dask\naddress: tcp://127.0.0.1:8786\nrefresh: {variants: [a.yaml]}\n")
    (on_cluster,) = [d for d in make_deployments(load_serve_config(config_file)) if d.name == "refresh-a"]
    assert (on_cluster.parameters["runner"], on_cluster.parameters["address"]) == ("dask", "tcp://127.0.0.1:8786")
    defaults = {d.name for d in make_deployments(load_serve_config(None))}
    assert defaults == {
        "refresh-sample", "nightly-vaswani", "evaluate-vaswani-on-index-built", "evaluate-vaswani-hnsw-on-index-built",
    }  # fmt: skip


def test_serve_config_errors_and_serve_needs_a_server(tmp_path, monkeypatch):
    from flows.serve import ServeConfig, load_serve_config, serve

    bad = tmp_path / "bad.yaml"
    bad.write_text("refresh: {crn: '* * * * *'}\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_serve_config(bad)
    bad.write_text("runner: spark\n")
    with pytest.raises(ConfigError, match="unknown task runner 'spark'"):
        load_serve_config(bad)
    assert load_serve_config(bad, runner="processes", workers=3).runner == "processes"  # the command line wins
    on_cluster = load_serve_config(None, runner="dask", address="tcp://127.0.0.1:8786")
    assert (on_cluster.runner, on_cluster.address) == ("dask", "tcp://127.0.0.1:8786")
    with pytest.raises(ConfigError, match="unknown task runner 'spark'"):
        load_serve_config(None, runner="spark")
    bad.write_text("refresh: {variants: [nowhere.yaml]}\n")  # found out when served, not when the cron fires
    with pytest.raises(ConfigError, match="variant 'nowhere.yaml': no file"):
        load_serve_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="a mapping"):
        load_serve_config(bad)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(RereadError, match="prefect server start"):
        serve(ServeConfig())


def test_local_dask_workers_use_one_core_each(monkeypatch):
    """Each single-threaded worker of the local cluster keeps the tokenizer's and torch's thread pools to one core,
    so two workers do not fight over both cores (chunking ran 2-4x slower per unit before); a variable the user set
    explicitly wins (Dask's rule)."""
    import os

    pytest.importorskip("distributed")
    from buildplan.executors import ONE_CORE_PER_WORKER, DaskExecutor

    for name in ONE_CORE_PER_WORKER:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    executor = DaskExecutor(workers=1)
    try:
        environ = next(iter(executor.client.run(lambda: {k: os.environ.get(k) for k in ONE_CORE_PER_WORKER}).values()))
    finally:
        executor.close()
    assert environ == {"TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                       "OPENBLAS_NUM_THREADS": "3"}  # fmt: skip
