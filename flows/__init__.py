"""Prefect flows, deployments and the ``reread`` CLI: orchestration only; the work is in the library packages."""

from flows.runtime import offline_defaults

# Before any flow starts Prefect's in-process server: no hub downloads, no telemetry, bounded OpenMP pools.
offline_defaults()
