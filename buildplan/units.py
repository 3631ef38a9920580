"""A unit of work: one stage output (a source's files, one document shard, one chunk part, ...), described by its
cache identity (``StageSpec``), the stage function that makes it and that function's inputs.

Units are plain picklable values: the variant (a frozen pydantic model), artifact manifests, names and a module-level
stage function (pickled by reference). They never hold a catalog connection, a Prefect object or an open file, so any
executor can ship them to a worker process or another machine that sees the same data dir.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalog.artifacts import ArtifactManifest, ArtifactStore, StageResult
from catalog.stage_runner import StageSpec, execute_stage
from catalog.variant import Variant

UnitResult = tuple[ArtifactManifest, bool]  # the artifact, and whether it was already there (cached)


@dataclass(frozen=True)
class Unit:
    spec: StageSpec
    variant: Variant
    work: Callable[..., StageResult]  # called as work(variant=..., out_dir=..., **inputs)
    inputs: dict[str, Any] = field(default_factory=dict)
    progress_arg: str | None = None  # the parameter of ``work`` that takes a progress callback, if it reports any

    @property
    def stage(self) -> str:
        return self.spec.stage

    @property
    def shard(self) -> str:
        return self.spec.shard

    @property
    def label(self) -> str:
        return f"{self.stage}-{self.shard}" if self.shard else self.stage


def run_unit(unit: Unit, data_dir: str, progress: Callable | None = None) -> UnitResult:
    """Make (or find) the unit's artifact under ``data_dir``; ``progress`` goes to the stage function when it takes
    one. Runs wherever the executor put it; writes only the unit's own artifact folder, never the catalog."""
    inputs = dict(unit.inputs)
    if progress is not None and unit.progress_arg:
        inputs[unit.progress_arg] = progress
    return execute_stage(
        ArtifactStore(data_dir), unit.spec, lambda out: unit.work(variant=unit.variant, out_dir=out, **inputs)
    )
