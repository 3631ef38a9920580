"""Content-addressed artifact folders under ``<data-dir>/artifacts/<stage>/<key>/``.

A stage writes into ``<key>.partial/`` (kept across crashes, so stages that resume by shard can pick up where they
stopped) and the folder is renamed to ``<key>/`` with an ``artifact.json`` only when complete. A folder with a manifest
is immutable: a changed config or input gives a new key, never an overwrite.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from catalog.errors import ArtifactError
from catalog.hashing import combine_hashes, stable_hash

MANIFEST = "artifact.json"  # the folder's own manifest; stages may write their own manifest.json inside


def artifact_key(stage: str, stage_version: str, config_hash: str, input_hash: str) -> str:
    """The cache key of a stage output: stage name, stage version, effective config hash, input-manifest hash."""
    return stable_hash({"stage": stage, "version": stage_version, "config": config_hash, "input": input_hash})


class ArtifactManifest(BaseModel):
    """What a finished artifact folder holds; small enough to pass between tasks. Validated when read back."""

    stage: str
    key: str
    stage_version: str
    config_hash: str
    input_hash: str
    path: str
    rows: int
    content_hash: str
    files: list[str] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    shard: str = ""
    detail_files: dict[str, list[str]] = Field(default_factory=dict)  # catalog table -> Parquet files in the folder

    def to_json(self) -> str:
        # stats are free-form stage counters: anything JSON cannot hold is written as its str()
        return json.dumps(self.model_dump(), indent=2, sort_keys=True, default=str)

    @classmethod
    def read(cls, folder: Path) -> ArtifactManifest:
        path = folder / MANIFEST
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing artifact manifest (the stage did not finish)") from None
        except ValidationError as exc:
            raise ArtifactError(f"{path}: corrupted artifact manifest ({exc})") from None

    @property
    def folder(self) -> Path:
        return Path(self.path)

    def file_paths(self) -> list[Path]:
        return [self.folder / f for f in self.files]


def inputs_hash(manifests: list[ArtifactManifest]) -> str:
    """Hash of a stage's input manifests (their keys and content hashes), order-sensitive."""
    return combine_hashes(f"{m.key}:{m.content_hash}" for m in manifests)


class ArtifactStore:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / "artifacts"

    def folder(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def partial_folder(self, stage: str, key: str) -> Path:
        folder = self.root / stage / f"{key}.partial"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def find(self, stage: str, key: str) -> ArtifactManifest | None:
        folder = self.folder(stage, key)
        if not (folder / MANIFEST).exists():
            return None
        return ArtifactManifest.read(folder)

    def commit(self, manifest: ArtifactManifest) -> ArtifactManifest:
        """Write the manifest into the partial folder and atomically rename it to its final name."""
        partial = self.root / manifest.stage / f"{manifest.key}.partial"
        final = self.folder(manifest.stage, manifest.key)
        manifest.path = str(final)
        tmp = partial / (MANIFEST + ".tmp")
        tmp.write_text(manifest.to_json())
        os.replace(tmp, partial / MANIFEST)
        if final.exists():  # a concurrent or earlier identical run finished first: same key means same content
            shutil.rmtree(partial)
        else:
            os.replace(partial, final)
        return manifest


@dataclass
class StageResult:
    """What a stage function returns to the orchestrator: files it wrote into its folder, counts, rejections, and
    detail rows for catalog tables (table name -> Parquet files in the folder)."""

    files: list[str]
    rows: int
    content_hash: str
    stats: dict[str, Any] = field(default_factory=dict)
    rejections: list = field(default_factory=list)  # catalog.records.Rejection
    detail_files: dict[str, list[str]] = field(default_factory=dict)
