"""``build_datastore``: the build plan of ``buildplan.build`` run as Prefect tasks.

Every unit of the plan (one per source, per document shard, per chunk part, ...) is submitted as one Prefect task to
the flow's task runner (threads, processes, a Dask or Ray cluster); the task makes or finds the unit's
content-addressed artifact and publishes its counters as a table artifact. Only the flow itself writes the catalog
(the single writer), whatever task runner executes the tasks, so re-runs skip finished units and a killed run resumes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.events import emit_event

from buildplan.build import Build, build
from buildplan.units import Unit, UnitResult, run_unit
from catalog.artifacts import ArtifactManifest
from catalog.db import Catalog
from catalog.stage_runner import rejection_counts
from catalog.variant import load_variant
from flows.reports import stage_table_rows
from flows.runtime import (
    artifact_key_name,
    current_flow_run_id,
    record_interrupted_runs,
    retry_condition,
    run_flow_with_runner,
)
from indexing import stages

INDEX_BUILT_EVENT = "reread.index.built"
RETRIES = {"extract": 2}  # attempts after a failure; other stages 1
RETRY_DELAYS = {"extract": [2, 10]}


def _publish_stage_table(manifest: ArtifactManifest, variant: str, cached: bool) -> None:
    create_table_artifact(
        key=artifact_key_name(f"{variant}-{manifest.stage}-{manifest.shard or 'all'}"),
        table=stage_table_rows(manifest, cached),
        description=f"{manifest.stage} {manifest.shard} of {variant} (artifact {manifest.key})",
    )


def _embed_progress(unit: Unit):
    """A dashboard progress bar per chunk part, fed by the embed stage's per-batch callback."""
    total = unit.inputs["chunks_in"].rows
    progress_id = create_progress_artifact(
        progress=0.0,
        key=artifact_key_name(f"{unit.variant.name}-embed-{unit.shard}-progress"),
        description=f"embedding the {total} chunks of {unit.shard} of {unit.variant.name}",
    )
    done = shown = 0

    def on_rows(n: int) -> None:  # per batch; the artifact moves in steps of at least 1% (one API call each)
        nonlocal done, shown
        done += n
        if done - shown >= total / 100 or done >= total:
            shown = done
            update_progress_artifact(progress_id, progress=100.0 * done / max(total, 1))

    return on_rows


class UnitProgress:
    """A dashboard progress bar of one unit (extraction, dedup, chunking), fed by its stage's ``on_progress(done,
    total)``: the share done, or with no total ahead (an extraction) the count so far in its description and 100%
    when the unit ends. Made at the first report, so a unit whose artifact exists adds none; updated at most once
    per ``UPDATE_S`` (each update is an API call) and at the end."""

    UPDATE_S = 1.0
    COUNTED = {"dedup": "shards written"}  # the rest count documents

    def __init__(self, unit: Unit):
        self.what = f"{unit.label} of {unit.variant.name}"
        self.counted = self.COUNTED.get(unit.stage, "documents")
        self.key = artifact_key_name(f"{unit.variant.name}-{unit.label}-progress")
        self.artifact_id = None
        self.updated_at = 0.0
        self.done = 0
        self.shown = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        self.done = done
        finished = total is not None and done >= total
        if time.monotonic() - self.updated_at < self.UPDATE_S and not finished:
            return
        self.updated_at = time.monotonic()
        if total is None:
            self._show(0.0, f"{self.what}: {done:,} {self.counted} so far")
        else:
            self._show(100.0 * done / max(total, 1), f"{self.what}: {done:,} of {total:,} {self.counted}")

    def finish(self) -> None:
        if self.artifact_id is not None and self.shown < 100.0:
            self._show(100.0, f"{self.what}: {self.done:,} {self.counted}, done")

    def _show(self, progress: float, description: str) -> None:
        self.shown = progress
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(progress=progress, key=self.key, description=description)
        else:
            update_progress_artifact(self.artifact_id, progress=progress, description=description)


# module-level: picklable for Dask/processes
@task(name="unit", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_condition)
def unit_task(unit: Unit, data_dir: str) -> UnitResult:
    if unit.stage == "embed":
        manifest, cached = run_unit(unit, data_dir, _embed_progress(unit))
    else:
        progress = UnitProgress(unit)
        manifest, cached = run_unit(unit, data_dir, progress)
        progress.finish()
    get_run_logger().info("%s %s: %s (%d rows)", unit.stage, unit.shard, "cached" if cached else "done", manifest.rows)
    _publish_stage_table(manifest, unit.variant.name, cached)
    return manifest, cached


class PrefectExecutor:
    """Each unit as a Prefect task named after its stage and shard, on the flow's task runner."""

    def map(self, units: Sequence[Unit], data_dir: str) -> list[UnitResult]:
        futures = [
            unit_task.with_options(
                name=unit.stage,
                task_run_name=unit.label.replace("{", "(").replace("}", ")"),  # a template: no braces
                retries=RETRIES.get(unit.stage, 1),
                retry_delay_seconds=RETRY_DELAYS.get(unit.stage, 5),
                retry_condition_fn=retry_condition,
            ).submit(unit, data_dir)
            for unit in units
        ]
        return [f.result() for f in futures]


def _reused(manifest: ArtifactManifest, variant: str) -> None:
    get_run_logger().info("%s: the datastore's %s is already of these inputs", manifest.stage, manifest.key)
    _publish_stage_table(manifest, variant, True)


@flow(name="build-datastore", log_prints=True)
def build_datastore(variant_path: str, data_dir: str) -> dict:
    """Build (or bring up to date) the datastore of one corpus variant."""
    variant = load_variant(variant_path)
    stages.check_build_config(variant)  # before any extraction: a bad factory or embedder fails in seconds
    summary = build(
        variant, data_dir, PrefectExecutor(), on_reuse=_reused, before_run=record_interrupted_runs,
        flow_run_id=current_flow_run_id(),
    )  # fmt: skip
    if summary.executed:
        emit_event(
            event=INDEX_BUILT_EVENT,
            resource={
                "prefect.resource.id": f"reread.variant.{variant.name}",
                "reread.variant-path": str(Path(variant_path).resolve()),
                "reread.data-dir": str(Path(data_dir).resolve()),  # served triggers match their own data dir
            },
            payload={"index_key": summary.index_key, "data_dir": data_dir},
        )
    return summary.as_dict()


def run_build(
    variant_path: str | Path,
    data_dir: str | Path,
    runner: str = "threads",
    workers: int | None = None,
    address: str | None = None,
):
    """Build with a task runner by name; ``address``: a running Dask (``tcp://HOST:8786``) or Ray
    (``ray://HOST:10001``) cluster whose workers see ``data_dir``."""
    return run_flow_with_runner(build_datastore, variant_path, data_dir, runner, workers, address)


@flow(name="ingest", log_prints=True)
def ingest(variant_path: str, data_dir: str) -> dict:
    """Read every source of a variant and extract its documents into the catalog (the first stage of a build)."""
    variant = load_variant(variant_path)
    with Catalog.in_data_dir(data_dir) as catalog:
        record_interrupted_runs(catalog)
        run_id = catalog.start_run(variant.name, "ingest", flow_run_id=current_flow_run_id())
        extraction = Build(variant, data_dir, catalog, run_id, PrefectExecutor())
        manifests = extraction.extract()
        sources = []
        for manifest, entry in zip(manifests, extraction.runs, strict=True):
            reasons = rejection_counts(manifest)
            sources.append(
                {
                    "source": manifest.shard,
                    "cached": entry.cached,
                    "read": manifest.stats.get("documents_read", 0),
                    "extracted": manifest.rows,
                    "rejected": sum(reasons.values()),
                    "rejections": reasons,
                    "artifact": manifest.key,
                }
            )
        catalog.finish_run(run_id, "completed", {"sources": sources})
    return {"variant": variant.name, "run_id": run_id, "sources": sources}


def run_ingest(
    variant_path: str | Path,
    data_dir: str | Path,
    runner: str = "threads",
    workers: int | None = None,
    address: str | None = None,
):
    return run_flow_with_runner(ingest, variant_path, data_dir, runner, workers, address)
