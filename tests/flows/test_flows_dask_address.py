"""A build submitted to a running Dask cluster (``--runner dask --address tcp://...``): a real ``dask scheduler``
and two ``dask worker`` processes on 127.0.0.1, started and stopped (by PID) by the test. The cluster's build equals
an in-process build of the same variant (artifact keys, index ids), and its units ran on both workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
DASK = Path(sys.executable).parent / "dask"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _variant(folder: Path) -> Path:
    """Four JSONL files of short pages (one extract, decontaminate, signature and chunk unit each), and one exact copy
    across files: small, so embedding stays cheap."""
    corpus = folder / "c4"
    corpus.mkdir(parents=True)
    pages = [json.loads(line) for line in (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()[:16]]
    lines = [json.dumps({"id": page["id"], "text": page["text"][:800]}) for page in pages]
    lines.append(lines[3])  # the copy, in the last file: dedup crosses shards
    for i in range(4):
        (corpus / f"part-{i}.jsonl").write_text("\n".join(lines[i * 4 : (i + 1) * 4 + (i == 3)]) + "\n")
    path = folder / "variant.yaml"
    path.write_text(
        f"""name: cluster
sources:
  - {{name: c4, type: jsonl, path: {corpus}, id_field: id, extractor: plain}}
dedup: {{exact: true, near: true}}
"""
    )
    return path


def _index_ids(data_dir: Path, index_key: str) -> list[str]:
    return pl.read_parquet(data_dir / "artifacts" / "index" / index_key / "index" / "ids.parquet")["chunk_id"].to_list()


@pytest.fixture
def dask_cluster(tmp_path):
    """(address, {worker pid}) of a scheduler and two single-threaded workers in their own processes."""
    pytest.importorskip("prefect_dask")
    if not DASK.exists():
        pytest.skip(f"{DASK}: the dask command is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    logs = [open(tmp_path / f"dask-{name}.log", "w") for name in ("scheduler", "w0", "w1")]
    common = {"env": env, "stderr": subprocess.STDOUT, "cwd": tmp_path}
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], stdout=logs[0], **common
        )
    ]
    try:
        for i in (1, 2):
            procs.append(
                subprocess.Popen(
                    [
                        DASK,
                        "worker",
                        address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--name",
                        f"w{i}",
                    ],
                    stdout=logs[i],
                    **common,
                )  # fmt: skip
            )
        from distributed import Client

        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=180)
        yield address, {p.pid for p in procs[1:]}
    finally:
        for proc in reversed(procs):  # by PID, the workers gone before the scheduler (they would wait to reconnect)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        for log in logs:
            log.close()


def test_build_on_a_running_dask_cluster_equals_a_local_build(tmp_path, dask_cluster, prefect_harness):
    from buildplan.build import build
    from flows.build import run_build

    address, worker_pids = dask_cluster
    variant = _variant(tmp_path / "variant")
    local = build(variant, tmp_path / "local")
    remote = run_build(variant, tmp_path / "cluster", runner="dask", address=address)

    assert remote["index_key"] == local.index_key
    assert sorted((s["stage"], s["shard"], s["key"]) for s in remote["stages"]) == sorted(
        (s.stage, s.shard, s.key) for s in local.stages
    )
    assert _index_ids(tmp_path / "cluster", remote["index_key"]) == _index_ids(tmp_path / "local", local.index_key)
    extract_shards = sorted(s["shard"] for s in remote["stages"] if s["stage"] == "extract")
    assert extract_shards == [f"c4/part-{i}.jsonl" for i in range(4)]
    dedup = next(s for s in remote["stages"] if s["stage"] == "dedup")
    assert dedup["stats"]["exact_removed"] == 1  # the copy in another file

    ran_on = {int(s["stats"]["timing"]["worker"].rsplit(":", 1)[1]) for s in remote["stages"] if not s["cached"]}
    assert ran_on == worker_pids, json.dumps([s["stats"]["timing"] for s in remote["stages"]])
    assert os.getpid() not in ran_on  # the flow process only registered the results
