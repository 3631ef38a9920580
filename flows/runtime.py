"""Task runners by name, and the environment a flow run needs (offline hub, bounded threads)."""

from __future__ import annotations

import os
from collections.abc import Callable

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from catalog.errors import ConfigError


def offline_defaults() -> None:
    """Nothing may reach a model hub at run time; FAISS/torch OpenMP pools must not oversubscribe small machines."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _dask(workers: int) -> TaskRunner:
    try:
        import dask
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # the `scale` extra
        raise ConfigError("--runner dask needs the scale extra: pip install 'reread[scale]'") from exc
    # Extraction runs each document in a child process with a timeout; Dask's worker processes are daemonic by
    # default, and daemonic processes may not have children.
    dask.config.set({"distributed.worker.daemon": False})
    # processes=True: stages are CPU-bound Python; one thread per worker keeps torch/faiss from oversubscribing.
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})


def _ray(workers: int) -> TaskRunner:
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise ConfigError("--runner ray needs the scale extra: pip install 'reread[scale]'") from exc
    return RayTaskRunner(init_kwargs={"num_cpus": workers})


TASK_RUNNERS: dict[str, Callable[[int], TaskRunner]] = {
    "threads": lambda workers: ThreadPoolTaskRunner(max_workers=workers),  # bounded: Prefect's default is not
    "processes": lambda workers: ProcessPoolTaskRunner(max_workers=workers),
    "dask": _dask,
    "ray": _ray,
}


def make_task_runner(name: str, workers: int | None = None) -> TaskRunner:
    if name not in TASK_RUNNERS:
        raise ConfigError(f"unknown task runner {name!r}; choose one of: {', '.join(TASK_RUNNERS)}")
    return TASK_RUNNERS[name](workers or min(4, os.cpu_count() or 1))


def artifact_key_name(text: str) -> str:
    """A Prefect artifact key from free text: lowercase letters, digits and dashes only (Prefect's rule)."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:100]


def run_flow_with_runner(flow, variant_path, data_dir, runner: str = "threads", workers: int | None = None):
    """Run a ``(variant_path, data_dir)`` flow in-process (or against ``PREFECT_API_URL`` when set) with the
    chosen task runner, paths made absolute so task workers in other processes find them."""
    from pathlib import Path

    flow_with_runner = flow.with_options(task_runner=make_task_runner(runner, workers))
    return flow_with_runner(str(Path(variant_path).resolve()), str(Path(data_dir).resolve()))
