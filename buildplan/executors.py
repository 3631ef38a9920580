"""Executors: run a batch of independent units and return their results in order.

A build hands an executor one stage's units at a time (the units of a stage never depend on each other; a stage
waits for the one before it). ``LocalExecutor`` runs them in this process, one after another (tests, notebooks);
``DaskExecutor`` and ``RayExecutor`` ship them to a cluster, a running one at ``address`` or a local one started for
the build. Whatever runs them, a unit writes only its artifact folder and the build registers the results in the
catalog from its own process, so the artifacts and their keys are the same.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from buildplan.units import Unit, UnitResult, run_unit
from catalog.errors import ConfigError


class Executor(Protocol):
    def map(self, units: Sequence[Unit], data_dir: str) -> list[UnitResult]: ...


class LocalExecutor:
    """Every unit in this process, in order."""

    def map(self, units: Sequence[Unit], data_dir: str) -> list[UnitResult]:
        return [run_unit(unit, data_dir) for unit in units]


# A unit is the unit of parallelism: it uses one core, and an executor runs as many units at once as it has worker
# threads. Libraries that spread one call over every core (the Rust tokenizer's thread pool, OpenMP/BLAS in torch)
# make single-threaded workers fight over all cores: chunking ran 2-4x slower per unit on two local Dask workers than
# on one (benchmarks/scale.py --compare-workers). Workers of a cluster started elsewhere should set the same.
ONE_CORE_PER_WORKER = {
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


def prepare_local_dask(workers: int | None) -> dict:
    """Configure the local Dask cluster Reread starts; its ``LocalCluster`` arguments. Workers are not daemonic
    (extraction runs documents in child processes with a timeout, and daemonic processes may not have children),
    are single-threaded processes (stages are CPU-bound Python) and get ``ONE_CORE_PER_WORKER``."""
    import dask

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **ONE_CORE_PER_WORKER}
    dask.config.set({"distributed.worker.daemon": False, "distributed.nanny.pre-spawn-environ": environ})
    return {"n_workers": workers or min(4, os.cpu_count() or 1), "threads_per_worker": 1, "processes": True}


def local_ray_init_kwargs(workers: int | None) -> dict:
    """``ray.init`` arguments of the Ray instance Reread starts itself: bound to 127.0.0.1 (by default Ray binds to
    the machine's network interface and serves its GCS and object store there), no dashboard, workers given
    ``ONE_CORE_PER_WORKER``."""
    return {
        "num_cpus": workers or min(4, os.cpu_count() or 1),
        "_node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "runtime_env": {"env_vars": ONE_CORE_PER_WORKER},
    }


def _import_scale_extra(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{module} is not installed: the scale extra provides it (pip install 'reread[scale]')"
        ) from exc


class DaskExecutor:
    """Units as Dask tasks: on the scheduler at ``address`` (``tcp://host:8786``; workers must see the data dir and
    import this package), or on a local cluster of ``workers`` single-threaded processes started here."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        distributed = _import_scale_extra("distributed")
        if address:
            self.client = distributed.Client(address)
        else:
            self.client = distributed.Client(**prepare_local_dask(workers))

    def map(self, units: Sequence[Unit], data_dir: str) -> list[UnitResult]:
        futures = [self.client.submit(run_unit, unit, data_dir, key=f"{unit.label}-{unit.spec.key}") for unit in units]
        return self.client.gather(futures)

    def close(self) -> None:
        self.client.close()


class RayExecutor:
    """Units as Ray tasks: on the cluster at ``address`` (``ray://host:10001``), or on a local Ray bound to
    127.0.0.1 with ``workers`` CPUs."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.ray = _import_scale_extra("ray")
        if address:
            self.ray.init(address=address)
        else:
            self.ray.init(**local_ray_init_kwargs(workers))
        self.remote = self.ray.remote(run_unit)

    def map(self, units: Sequence[Unit], data_dir: str) -> list[UnitResult]:
        return self.ray.get([self.remote.remote(unit, data_dir) for unit in units])

    def close(self) -> None:
        self.ray.shutdown()
