"""Run liveness: a run records its process and a heartbeat; a run whose process died shows as interrupted, is
recorded so by the next writer, and a run an exception ended is recorded failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import catalog.db as catalog_db
from catalog.db import Catalog, run_is_dead


def _status(cat: Catalog, run_id: str) -> str:
    return cat.query_one("SELECT status FROM runs WHERE run_id = ?", [run_id])[0]


def test_a_run_records_its_process_and_beats_until_finished(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(catalog_db, "HEARTBEAT_S", 0.05)
    with Catalog.in_data_dir(tmp_path) as cat:
        run_id = cat.start_run("v", "build", flow_run_id="f-1")
        host, pid, started, first_beat = cat.query_one(
            "SELECT host, pid, started_at, heartbeat_at FROM runs WHERE run_id = ?", [run_id]
        )
        assert pid == os.getpid() and host and first_beat == started
        time.sleep(0.5)
        beat = cat.query_one("SELECT heartbeat_at FROM runs WHERE run_id = ?", [run_id])[0]
        assert beat > started  # the heartbeat moved on while the run was in flight
        with cat.transaction():  # finishing inside a transaction while a beat waits for the lock: no deadlock
            time.sleep(0.2)
            cat.finish_run(run_id, "completed")
        deadline = time.monotonic() + 5
        while any(t.name == f"heartbeat-{run_id}" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.name == f"heartbeat-{run_id}" for t in threading.enumerate())
        final = cat.query_one("SELECT heartbeat_at FROM runs WHERE run_id = ?", [run_id])[0]
        time.sleep(0.2)
        assert cat.query_one("SELECT heartbeat_at FROM runs WHERE run_id = ?", [run_id])[0] == final
        row = cat.recent_runs().row(0, named=True)
        assert (row["status"], row["flow_run_id"]) == ("completed", "f-1")


def test_an_exception_records_the_run_failed_with_its_error(tmp_path: Path):
    with pytest.raises(ValueError, match="bad page"):
        with Catalog.in_data_dir(tmp_path) as cat:
            run_id = cat.start_run("v", "ingest")
            raise ValueError("bad page")
    with Catalog.in_data_dir(tmp_path, read_only=True) as cat:
        status, stats = cat.query_one("SELECT status, stats FROM runs WHERE run_id = ?", [run_id])
    assert status == "failed" and "ValueError: bad page" in stats


def test_a_run_whose_process_was_killed_shows_interrupted_and_the_next_writer_records_it(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import sys, time
        from catalog.db import Catalog
        cat = Catalog.in_data_dir({str(tmp_path)!r})
        run_id = cat.start_run("v", "build")
        cat.close()  # hand the file over; the process stays, as a build would, until killed
        print(run_id, flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        run_id = proc.stdout.readline().strip()
        with Catalog.in_data_dir(tmp_path, read_only=True) as cat:
            assert cat.recent_runs()["status"].to_list() == ["running"]  # alive: still running
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with Catalog.in_data_dir(tmp_path, read_only=True) as cat:
        assert cat.recent_runs()["status"].to_list() == ["interrupted"]  # shown so, even read-only
        assert _status(cat, run_id) == "running"  # a reader records nothing
    with Catalog.in_data_dir(tmp_path) as cat:
        (dead,) = cat.interrupt_dead_runs()
        assert dead["run_id"] == run_id and dead["pid"] == proc.pid
        status, finished, beat = cat.query_one(
            "SELECT status, finished_at, heartbeat_at FROM runs WHERE run_id = ?", [run_id]
        )
        assert status == "interrupted" and finished == beat
        assert cat.interrupt_dead_runs() == []


def test_liveness_rules():
    now = catalog_db._now()
    alive = {"status": "running", "host": __import__("socket").gethostname(), "pid": os.getpid()}
    assert not run_is_dead({**alive, "started_at": now, "heartbeat_at": now}, now)
    # alive but silent for longer than the stale limit: a reused pid, or a hung process
    stale = now - timedelta(seconds=catalog_db.STALE_AFTER_S + 1)
    assert run_is_dead({**alive, "started_at": stale, "heartbeat_at": stale}, now)
    # another machine: only the heartbeat can tell
    elsewhere = {"status": "running", "host": "other-host", "pid": 1, "started_at": now}
    assert not run_is_dead({**elsewhere, "heartbeat_at": now}, now)
    assert run_is_dead({**elsewhere, "heartbeat_at": stale}, now)
    # a run recorded before heartbeats existed (no pid, no beat): judged by its start
    assert run_is_dead({"status": "running", "started_at": stale}, now)
    assert not run_is_dead({"status": "completed", "started_at": stale}, now)


def test_reread_runs_shows_a_run_recorded_before_heartbeats_as_interrupted(tmp_path: Path):
    from flows.reports import recent_runs

    started = catalog_db._now() - timedelta(hours=2)
    with Catalog.in_data_dir(tmp_path) as cat:  # as an older Reread left it: no host, pid or heartbeat
        cat.execute(
            "INSERT INTO runs (run_id, variant, command, status, started_at) VALUES ('old', 'v', 'build', 'running', ?)",
            [started],
        )
    (run,) = recent_runs(tmp_path)
    assert (run["status"], run["seconds"]) == ("interrupted", 0.0)
