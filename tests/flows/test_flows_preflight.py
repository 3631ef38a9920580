"""Failures that must be clear and early: a config typo, a bad FAISS factory or embedder path are one error line
before any flow starts (no Prefect traceback, no extraction); ConfigErrors and a full disk are not retried; commands
started together each start Prefect's temporary server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from catalog.artifacts import ArtifactStore, StageResult
from catalog.errors import ConfigError, StorageError
from catalog.stage_runner import StageSpec, execute_stage

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def _cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **(env or {})}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _variant(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "v.yaml"
    path.write_text(
        f"name: v\nsources:\n  - {{name: c4, type: jsonl, path: {SAMPLE / 'jsonl' / 'c4_sample.jsonl'}}}\n{extra}"
    )
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("chunking: {sise: 10}\n", r"v.yaml: invalid variant.*sise"),
        pytest.param(
            "index: {factory: 'IVF4096,PQ7'}\n",
            r"v.yaml: index.factory 'IVF4096,PQ7': faiss cannot build it for 384",
            marks=pytest.mark.slow,  # each case is a CLI process: one stays in the quick loop
        ),
        pytest.param("index: {factory: Flatt}\n", r"index.factory 'Flatt'", marks=pytest.mark.slow),
        pytest.param(
            "embedder: {model: ./no-such-model}\n",
            r"v.yaml: embedder model .*no-such-model.*not an existing local",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_bad_config_is_one_clear_line_before_any_work(tmp_path, extra, message):
    import re

    data_dir = tmp_path / "data"
    proc = _cli("build", str(_variant(tmp_path, extra)), "--data-dir", str(data_dir))
    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr, re.S), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not data_dir.exists()  # no flow started, nothing extracted


@pytest.mark.slow
def test_eval_with_an_unknown_task_fails_before_any_flow(tmp_path):
    proc = _cli("eval", str(SAMPLE / "variants" / "sample.yaml"), "--data-dir", str(tmp_path), "--task", "nope")
    assert proc.returncode == 2, proc.stderr
    assert "unknown task 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_config_errors_and_a_full_disk_are_not_retried(prefect_harness, tmp_path):
    from prefect import flow, task

    from flows.runtime import retry_condition

    attempts: list[str] = []

    @task(retries=3, retry_delay_seconds=0, retry_condition_fn=retry_condition)
    def failing(kind: str) -> None:
        attempts.append(kind)
        if kind == "config":
            raise ConfigError("v.yaml: bad field")
        if kind == "disk":
            raise StorageError("data: no space left")
        if len(attempts) < 3:
            raise RuntimeError("transient")

    @flow
    def run(kind: str) -> None:
        failing(kind)

    for kind, error, tries in (("config", ConfigError, 1), ("disk", StorageError, 1), ("transient", None, 3)):
        attempts.clear()
        if error is None:
            run(kind)
        else:
            with pytest.raises(error):
                run(kind)
        assert len(attempts) == tries, kind


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_in_a_stage_is_a_storage_error_naming_the_folder(tmp_path):
    def stage(out: Path) -> StageResult:
        with open("/dev/full", "wb") as f:  # what every write on a full filesystem gets: ENOSPC
            f.write(b"x" * 65536)
            f.flush()
        return StageResult(files=[], rows=0, content_hash="")

    store = ArtifactStore(tmp_path)
    spec = StageSpec("chunk", "1", "c", "i")
    with pytest.raises(StorageError, match=r"chunk/.*\.partial: no space left .*chunk stage"):
        execute_stage(store, spec, stage)
    assert store.find("chunk", spec.key) is None


@pytest.mark.slow
def test_commands_started_together_each_start_the_temporary_server(tmp_path):
    """Prefect's temporary server, started by two processes at the same moment on a fresh Prefect home (each
    would migrate the same database): both come up."""
    code = textwrap.dedent(
        """
        from prefect.server.api.server import SubprocessASGIServer
        from flows.runtime import start_temporary_server
        start_temporary_server()
        print("UP", SubprocessASGIServer().api_url, flush=True)
        """
    )
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and out.startswith("UP http://127.0.0.1:"), err[-2000:]
    assert len({out for out, _ in outputs}) == 2  # two servers, two ports


@pytest.mark.slow
def test_build_waits_for_the_catalog_lock_and_gives_up_after_lock_timeout(tmp_path):
    """`reread ingest --lock-timeout 2` while another process writes the catalog: it says that it waits, then stops
    with a clear error (no traceback) once the timeout has passed; the other writer is undisturbed."""
    from catalog.db import Catalog

    data_dir = tmp_path / "data"
    Catalog.in_data_dir(data_dir).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import time; from catalog.db import Catalog; c = Catalog.in_data_dir({str(data_dir)!r}); "
            "print('READY', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "READY"
        proc = _cli("ingest", str(_variant(tmp_path, "")), "--data-dir", str(data_dir), "--lock-timeout", "2")
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert f"waiting for the catalog lock: {data_dir / 'catalog.duckdb'} is being written by process" in proc.stderr
        assert "gave up after waiting 2 s (--lock-timeout)" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
