"""Task runners by name, and the environment a flow run needs (offline hub, bounded threads)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.errors import ConfigError, RereadError, StorageError

# Prefect's temporary API server gets this long to start (Prefect's default, 20 s, is not enough on a busy machine).
SERVER_STARTUP_TIMEOUT_S = 300
# Failures that come back identical on a retry: a task fails at once instead of retrying them.
NOT_RETRIED: tuple[type[BaseException], ...] = (ConfigError, StorageError)

if TYPE_CHECKING:  # Prefect is imported when a runner is made, not when the CLI starts
    from prefect.task_runners import TaskRunner


def offline_defaults() -> None:
    """The process environment of a ``reread`` command, set by the CLI before any command imports its libraries
    (importing ``flows`` changes nothing): nothing may reach a model hub at run time, no telemetry, and idle
    FAISS/torch OpenMP threads sleep instead of spinning (faiss #2731; read once, when the OpenMP runtime starts).
    Values already in the environment win."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's client telemetry and its notice
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _dask(workers: int) -> TaskRunner:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # the `scale` extra
        raise ConfigError("--runner dask needs the scale extra: pip install 'reread[scale]'") from exc
    from buildplan.executors import prepare_local_dask

    return DaskTaskRunner(cluster_kwargs=prepare_local_dask(workers))


def _ray(workers: int) -> TaskRunner:
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise ConfigError("--runner ray needs the scale extra: pip install 'reread[scale]'") from exc
    from buildplan.executors import local_ray_init_kwargs

    return RayTaskRunner(init_kwargs=local_ray_init_kwargs(workers))


def _threads(workers: int) -> TaskRunner:
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=workers)  # bounded: Prefect's default is not


def _processes(workers: int) -> TaskRunner:
    from prefect.task_runners import ProcessPoolTaskRunner

    return ProcessPoolTaskRunner(max_workers=workers)


TASK_RUNNERS: dict[str, Callable[[int], TaskRunner]] = {
    "threads": _threads,
    "processes": _processes,
    "dask": _dask,
    "ray": _ray,
}


def _on_cluster(name: str, address: str) -> TaskRunner:
    """A task runner that submits to the running cluster at ``address``, whose workers see the data dir and import
    Reread (docs/scale.md)."""
    if name not in ("dask", "ray"):
        raise ConfigError(
            f"--address names a running Dask or Ray cluster: use it with --runner dask or ray, not {name}"
        )
    try:
        if name == "dask":
            from prefect_dask import DaskTaskRunner

            return DaskTaskRunner(address=address)  # tcp://HOST:8786
        from prefect_ray import RayTaskRunner

        return RayTaskRunner(address=address)  # ray://HOST:10001
    except ImportError as exc:
        raise ConfigError(f"--runner {name} needs the scale extra: pip install 'reread[scale]'") from exc


def make_task_runner(name: str, workers: int | None = None, address: str | None = None) -> TaskRunner:
    """The task runner called ``name``; with ``address``, one submitting to that running Dask scheduler
    (``tcp://HOST:8786``) or Ray cluster (``ray://HOST:10001``) instead of a local one."""
    if name not in TASK_RUNNERS:
        raise ConfigError(f"unknown task runner {name!r}; choose one of: {', '.join(TASK_RUNNERS)}")
    if address:
        return _on_cluster(name, address)
    return TASK_RUNNERS[name](workers or min(4, os.cpu_count() or 1))


def tie_temporary_server_to_this_process() -> None:
    """Make Prefect's temporary API server (started on first use when no ``PREFECT_API_URL`` is set) a child that
    dies with this process: a build killed with SIGKILL otherwise leaves its uvicorn server running forever.

    Prefect keeps one server object per port and reuses the one registered first, so registering ours before any
    flow runs makes Prefect start ours. Call from the main thread (see ``catalog.processes``)."""
    import subprocess
    import sys

    from prefect.settings import get_current_settings

    if get_current_settings().api.url:  # a real server: Prefect starts no temporary one
        return

    import prefect
    from prefect.server.api.server import SubprocessASGIServer

    from catalog.processes import preexec_dying_with_parent

    class TemporaryServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            # Prefect 3.8's command and environment, plus the parent-death signal.
            args = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent)]
            args += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
            args += ["--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
            return subprocess.Popen(
                args=args,
                env={
                    **os.environ,
                    "PREFECT_UI_ENABLED": "0",
                    "PREFECT__SERVER_EPHEMERAL": "1",
                    "PREFECT__SERVER_FINAL": "1",
                    **get_current_settings().to_environment_variables(exclude_unset=True),
                },
                preexec_fn=preexec_dying_with_parent(),
            )

    TemporaryServer()  # a no-op when a server object exists already


def current_flow_run_id() -> str | None:
    """The Prefect flow run this code runs in (recorded with a catalog run, to mark it crashed if it dies)."""
    from prefect.runtime import flow_run

    return flow_run.get_id()


def record_interrupted_runs(catalog) -> list[dict]:
    """Record the catalog's runs whose process died mid-run as ``interrupted`` and set their Prefect flow runs, where
    this API knows them and they still look alive, to Crashed. Call from a writer before starting a run."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    dead = catalog.interrupt_dead_runs()
    flow_run_ids = [run["flow_run_id"] for run in dead if run.get("flow_run_id")]
    if flow_run_ids:
        with get_client(sync_client=True) as client:
            for flow_run_id in flow_run_ids:
                try:
                    state = client.read_flow_run(flow_run_id).state
                except ObjectNotFound:  # recorded by another Prefect server
                    continue
                if state is None or not state.is_final():
                    message = "its process died (recorded by Reread: no heartbeat, process gone)"
                    client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
    return dead


def artifact_key_name(text: str) -> str:
    """A Prefect artifact key from free text: lowercase letters, digits and dashes only (Prefect's rule)."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:100]


def retry_condition(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn`` for every Reread task: retry unless the failure is one of ``NOT_RETRIED``."""
    return not isinstance(state.data, NOT_RETRIED)


class _ReportedErrorFilter(logging.Filter):
    """Prefect logs a failing flow or task run with its traceback; a RereadError's message already names the input
    and the reason (the CLI prints it), so its traceback is dropped from Prefect's log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], RereadError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_reported_errors() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ReportedErrorFilter) for f in logger.filters):
            logger.addFilter(_ReportedErrorFilter())


def start_temporary_server() -> None:
    """Without ``PREFECT_API_URL``, start Prefect's temporary API server now, with a start-up timeout a busy machine
    meets, and one process at a time: commands started at the same moment would otherwise migrate Prefect's
    database together and time out ("Timed out while attempting to connect to ephemeral Prefect API server")."""
    import fcntl

    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME

    if PREFECT_API_URL.value():
        return
    server = SubprocessASGIServer()
    if server.running:
        return
    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "reread-server-start.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
        server.start(timeout=SERVER_STARTUP_TIMEOUT_S)


def prepare_flow_process() -> None:
    """Before running flows in this process: Prefect's temporary server tied to it and started, and RereadErrors
    logged without their tracebacks."""
    quiet_reported_errors()
    tie_temporary_server_to_this_process()
    start_temporary_server()


def run_flow_with_runner(
    flow, variant_path, data_dir, runner: str = "threads", workers: int | None = None, address: str | None = None
):
    """Run a ``(variant_path, data_dir)`` flow in-process (or against ``PREFECT_API_URL`` when set) with the
    chosen task runner, paths made absolute so task workers in other processes find them."""
    prepare_flow_process()
    flow_with_runner = flow.with_options(task_runner=make_task_runner(runner, workers, address))
    return flow_with_runner(str(Path(variant_path).resolve()), str(Path(data_dir).resolve()))
