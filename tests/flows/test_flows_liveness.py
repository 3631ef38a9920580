"""Nothing outlives a killed build, and nothing dead stays "running": a SIGKILLed `reread build` leaves no
temporary Prefect server and no extraction worker behind, its run shows as interrupted, and a Prefect flow run
whose process died is set to Crashed by the next writer."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog.db import Catalog

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> dict[int, str]:
    """Every living process below ``pid``, with its command line."""
    tree, found, todo = _children(), {}, [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                state = Path(f"/proc/{child}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if state != b"Z":
                found[child] = cmdline
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _is_spawn_worker(cmdline: str) -> bool:
    """A ``multiprocessing`` spawn child (an extraction worker), not its resource tracker."""
    return "--multiprocessing-fork" in cmdline


def _write_pages(directory: Path, count: int) -> Path:
    """``count`` distinct HTML pages of ~18 KB: trafilatura takes ~15 ms on each, so the extraction workers stay up for
    tens of seconds even on an idle machine (the sample data is extracted in about a second: its workers can be
    missed between two looks at /proc)."""
    rng = random.Random(0)
    text = " ".join(f"w{rng.randrange(5000)}" for _ in range(200_000))
    directory.mkdir()
    for i in range(count):
        start = i * 97 % (len(text) - 16_000)
        paragraphs = "".join(
            f"<div><p>{text[start + j * 400 : start + (j + 1) * 400]}</p><a href='/x{j}'>link {j}</a></div>"
            for j in range(40)
        )
        (directory / f"page{i:05d}.html").write_text(
            f"<html><head><title>Page {i}</title></head><body><nav><a href='/'>home</a></nav>"
            f"<article><h1>Page {i}</h1>{paragraphs}</article></body></html>"
        )
    return directory


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_build_leaves_no_process_behind_and_its_run_shows_interrupted(tmp_path):
    pages = _write_pages(tmp_path / "pages", 3000)
    variant = tmp_path / "v.yaml"
    variant.write_text(
        f"name: killed\nsources:\n  - {{name: pages, type: html, path: {pages}}}\nextraction: {{workers: 2}}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    env.pop("PREFECT_API_URL", None)
    build = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "build", str(variant), "--data-dir", str(tmp_path / "data")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    seen: dict[int, str] = {}
    try:
        # Kill as soon as the temporary Prefect server and a living extraction worker are both up.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and build.poll() is None:
            living = _descendants(build.pid)
            seen.update(living)
            if any("uvicorn" in c for c in seen.values()) and any(_is_spawn_worker(c) for c in living.values()):
                break
            time.sleep(0.05)
        assert build.poll() is None, f"the build ended before its workers were seen: {build.stderr.read()[-2000:]}"
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        # The server dies at once; a worker killed mid-start (before its first line ran) exits when it gets there.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(_alive(p) for p in seen):
            time.sleep(0.2)
        left = {p: c for p, c in seen.items() if _alive(p)}
        assert left == {}, f"processes outlived the killed build: {left}"
        assert any("uvicorn" in c for c in seen.values()), f"no Prefect server was seen: {seen}"
        assert any(_is_spawn_worker(c) for c in seen.values()), f"no extraction worker was seen: {seen}"
    finally:
        if build.poll() is None:
            os.kill(build.pid, signal.SIGKILL)
            build.wait()
        for pid in seen:  # never leave one behind, even when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    from flows.reports import recent_runs

    (run,) = recent_runs(tmp_path / "data")
    assert (run["command"], run["status"]) == ("build", "interrupted")


def test_a_flow_run_whose_process_died_is_set_to_crashed(tmp_path, prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    from flows.runtime import record_interrupted_runs

    @flow(name="liveness-probe")
    def probe() -> None:
        pass

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    with get_client(sync_client=True) as client:
        dying = client.create_flow_run(probe, state=Running())
        done = client.create_flow_run(probe, state=Running())
        client.set_flow_run_state(done.id, Completed(), force=True)
    with Catalog.in_data_dir(tmp_path) as cat:
        ids = []
        for flow_run in (dying, done):
            run_id = cat.start_run("v", "build", flow_run_id=str(flow_run.id))
            ids.append(run_id)
        for run_id in ids:  # as a process that died mid-run leaves them
            cat._stop_heartbeat(run_id)
            cat.execute("UPDATE runs SET pid = ? WHERE run_id = ?", [dead_pid, run_id])
        dead = record_interrupted_runs(cat)
        assert sorted(r["run_id"] for r in dead) == sorted(ids)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(dying.id).state.type.value == "CRASHED"
        assert client.read_flow_run(done.id).state.type.value == "COMPLETED"  # a finished run is left alone
