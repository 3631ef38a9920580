"""Schedules fire on a real Prefect server: `prefect server start` on 127.0.0.1 (its own home and database),
`reread serve` with a refresh on a short cron, and the scheduled run is created by the server's scheduler and
executed to Completed by the served runner; the index it built triggers the variant's evaluation in the served data
dir. With SQLAlchemy 2.1 the scheduler fails every loop and no run is ever created (see the pin in pyproject.toml):
this test is what notices."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from catalog.db import Catalog

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, and whatever it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children left in the group, if any
    except ProcessLookupError:
        pass
    proc.wait()


def _flow_runs(api: str, deployment: str) -> list[dict]:
    body = {"deployments": {"name": {"any_": [deployment]}}, "limit": 200}
    return httpx.post(f"{api}/flow_runs/filter", json=body, timeout=30).raise_for_status().json()


@pytest.mark.slow
def test_a_served_cron_refresh_is_scheduled_and_completes_on_a_real_server(tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PYTHONPATH": str(REPO),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # default 60: keep the test short
    }
    (tmp_path / "tiny.yaml").write_text(
        f"name: tiny\nsources:\n  - {{name: c4, type: jsonl, path: {SAMPLE / 'jsonl' / 'c4_sample.jsonl'}, "
        "limit: 6, extractor: plain}\ndedup: {exact: true, near: false}\n"
    )
    (tmp_path / "schedules.yaml").write_text(
        # a six-field cron (seconds last): every 15 s; nothing else served
        "data_dir: data\nrefresh: {cron: '* * * * * */15', variants: [tiny.yaml]}\n"
        "evaluation: {tasks: [], on_index_built: {tiny: [vaswani]}}\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    serve, serve_log = None, open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            try:
                if httpx.get(f"{api}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the Prefect server did not answer within 240 s")
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "serve", "--config", str(tmp_path / "schedules.yaml")],
            cwd=tmp_path / "prefect", env={**env, "PREFECT_API_URL": api}, stdout=subprocess.DEVNULL,
            stderr=serve_log, start_new_session=True,
        )  # fmt: skip
        states: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "COMPLETED" not in states:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                states = [run["state"]["type"] for run in _flow_runs(api, "refresh-tiny") if run["state"]]
            except httpx.HTTPError:
                pass
            time.sleep(2)
        assert states, "the scheduler created no run of the cron deployment"
        log = (tmp_path / "serve.log").read_text()[-3000:]
        assert "COMPLETED" in states, f"no scheduled run completed; states: {sorted(set(states))}; log: {log}"
        # The refresh built tiny's index into the served data dir: its event triggers tiny's evaluation there.
        triggered: list[dict] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not triggered:
            triggered = _flow_runs(api, "evaluate-tiny-on-index-built")
            time.sleep(2)
        assert triggered, "the index-built event triggered no evaluation"
        assert triggered[0]["parameters"]["data_dir"] == str((tmp_path / "data").resolve())
        assert triggered[0]["parameters"]["tasks"] == ["vaswani"]
        assert triggered[0]["parameters"]["variant_path"] == str(tmp_path / "tiny.yaml")
    finally:
        for proc in (serve, server):
            if proc is not None:
                _stop(proc)
        serve_log.close()
    assert _completed_builds(tmp_path / "data"), "the scheduled refresh built nothing"


def _completed_builds(data_dir: Path) -> list[tuple]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        return catalog.query("SELECT run_id FROM runs WHERE command = 'build' AND status = 'completed'").rows()
