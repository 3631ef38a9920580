"""Run a stage function into a content-addressed artifact folder, skipping it when the artifact exists, and register
finished artifacts in the catalog. Orchestrators (Prefect tasks, plain loops, Dask workers) call these; the catalog
registration always happens in the one process that owns the catalog."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.artifacts import ArtifactManifest, ArtifactStore, StageResult, artifact_key
from catalog.db import Catalog, StageOutput
from catalog.errors import StorageError, is_disk_full
from catalog.records import Rejection

REJECTIONS_FILE = "rejections.parquet"
_REJECTION_SCHEMA = pa.schema([(n, pa.string()) for n in ("stage", "source", "input_ref", "reason", "detail")])


@dataclass(frozen=True)
class StageSpec:
    """Identifies one stage output before it is computed: its cache key follows from these four."""

    stage: str
    version: str
    config_hash: str
    input_hash: str
    shard: str = ""

    @property
    def key(self) -> str:
        return artifact_key(self.stage, self.version, self.config_hash, self.input_hash + self.shard)


def execute_stage(
    store: ArtifactStore, spec: StageSpec, fn: Callable[[Path], StageResult]
) -> tuple[ArtifactManifest, bool]:
    """Return the artifact for ``spec``: the stored one (``cached=True``) or a fresh one made by ``fn(partial_dir)``.

    ``fn`` writes into a ``.partial`` folder that survives a crash, so a stage that resumes by shard can continue.
    """
    found = store.find(spec.stage, spec.key)
    if found is not None:
        return found, True
    partial = store.partial_folder(spec.stage, spec.key)
    try:
        return _execute(store, spec, fn, partial), False
    except Exception as exc:
        if is_disk_full(exc):
            raise StorageError(
                f"{partial}: no space left on the data dir's filesystem while the {spec.stage} stage wrote its "
                f"output ({exc}); free space and run again: finished stages are kept"
            ) from None
        raise


def _execute(
    store: ArtifactStore, spec: StageSpec, fn: Callable[[Path], StageResult], partial: Path
) -> ArtifactManifest:
    started = time.time()
    result = fn(partial)
    # wall-clock interval of the stage's own work (the pipeline benchmark separates it from orchestration overhead)
    # and the process that did it (which worker of a cluster ran the unit)
    result.stats["timing"] = {
        "started_at": started,
        "seconds": round(time.time() - started, 4),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    table = pa.Table.from_pylist([r.as_row() for r in result.rejections], schema=_REJECTION_SCHEMA)
    pq.write_table(table, partial / REJECTIONS_FILE)
    manifest = ArtifactManifest(
        stage=spec.stage,
        key=spec.key,
        stage_version=spec.version,
        config_hash=spec.config_hash,
        input_hash=spec.input_hash,
        path=str(partial),
        rows=result.rows,
        content_hash=result.content_hash,
        files=result.files,
        stats=result.stats,
        shard=spec.shard,
        detail_files=result.detail_files,
    )
    return store.commit(manifest)


def read_rejections(manifest: ArtifactManifest) -> list[Rejection]:
    path = manifest.folder / REJECTIONS_FILE
    if not path.exists():
        return []
    return [Rejection(**row) for row in pq.read_table(path).to_pylist()]


def rejection_counts(manifest: ArtifactManifest) -> dict[str, int]:
    """Rejections of an artifact counted by reason."""
    return dict(sorted(Counter(r.reason for r in read_rejections(manifest)).items()))


def register_artifact(catalog: Catalog, manifest: ArtifactManifest, variant: str, run_id: str | None) -> bool:
    """Record a finished artifact, its rejections and detail rows in the catalog (idempotent: False if known), and
    that ``run_id`` used it (whichever run registered it first)."""
    if catalog.find_output(manifest.key) is not None:
        if run_id is not None:
            catalog.link_run_artifact(run_id, manifest.key)
        return False
    details = {
        table: pl.concat([pl.read_parquet(manifest.folder / f) for f in files], how="diagonal_relaxed")
        for table, files in manifest.detail_files.items()
        if files
    }
    output = StageOutput(
        artifact_key=manifest.key,
        stage=manifest.stage,
        stage_version=manifest.stage_version,
        config_hash=manifest.config_hash,
        input_hash=manifest.input_hash,
        variant=variant,
        shard=manifest.shard,
        path=manifest.relative_path,
        row_count=manifest.rows,
        content_hash=manifest.content_hash,
        stats=manifest.stats,
        run_id=run_id,
    )
    return catalog.register_output(output, rejections=read_rejections(manifest), detail_tables=details)
