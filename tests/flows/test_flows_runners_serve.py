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
  - {{name: c4, type: jsonl, path: {SAMPLE / "jsonl" / "c4_sample.jsonl"}, limit: 40, extractor: plain}}
  - {{name: wiki, type: wikitext, path: {SAMPLE / "wikitext"}, pattern: "B*.txt", extractor: wikipedia}}
dedup: {{exact: true, near: true}}
"""
    )
    threads = run_build(variant, tmp_path / "threads", runner="threads")
    dask = run_build(variant, tmp_path / "dask", runner="dask", workers=2)
    assert dask["index_key"] == threads["index_key"]
    assert _outputs(tmp_path / "dask") == _outputs(tmp_path / "threads")


def test_unknown_runner_is_a_clear_error():
    from flows.runtime import make_task_runner

    with pytest.raises(ConfigError, match="unknown task runner 'spark'"):
        make_task_runner("spark")


def test_deployments_from_schedule_config(tmp_path):
    from prefect.events import DeploymentEventTrigger

    from flows.serve import load_serve_config, make_deployments

    config_file = tmp_path / "schedules.yaml"
    config_file.write_text(
        "data_dir: data\nrefresh: {cron: '30 2 * * *', variants: [a.yaml, b.yaml]}\n"
        "evaluation: {cron: '0 5 * * 1', tasks: [vaswani, simpleqa]}\n"
    )
    deployments = {d.name: d for d in make_deployments(load_serve_config(config_file))}
    assert set(deployments) == {
        "refresh-a", "refresh-b", "nightly-vaswani", "nightly-simpleqa", "evaluate-on-index-built",
    }  # fmt: skip
    assert deployments["refresh-a"].schedules[0].schedule.cron == "30 2 * * *"
    assert deployments["nightly-simpleqa"].parameters["task_ref"] == "simpleqa"
    (trigger,) = deployments["evaluate-on-index-built"].triggers
    assert isinstance(trigger, DeploymentEventTrigger) and trigger.expect == {"reread.index.built"}
    defaults = {d.name for d in make_deployments(load_serve_config(None))}
    assert defaults == {"refresh-sample", "nightly-vaswani", "evaluate-on-index-built"}


def test_serve_config_errors_and_serve_needs_a_server(tmp_path, monkeypatch):
    from flows.serve import ServeConfig, load_serve_config, serve

    bad = tmp_path / "bad.yaml"
    bad.write_text("refresh: {crn: '* * * * *'}\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_serve_config(bad)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(RereadError, match="prefect server start"):
        serve(ServeConfig())
