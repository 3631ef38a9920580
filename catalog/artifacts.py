"""Content-addressed artifact folders under ``<data-dir>/artifacts/<stage>/<key>/``.

A stage writes into ``<key>.partial/`` (kept across crashes, so stages that resume by shard can pick up where they
stopped) and the folder is renamed to ``<key>/`` with an ``artifact.json`` only when complete. A folder with a manifest
is immutable: a changed config or input gives a new key, never an overwrite.

The manifest records every file's size and sha256, and a folder is checked against them before anything reads or
reuses it (sizes on every open, hashes once per process while the files' sizes and mtimes stay the same): a damaged
artifact is never an answer. Readers get an ``ArtifactError`` naming the file; a build puts the folder back to
``.partial`` and runs the stage again. The manifest stores its folder relative to the data dir, so a data dir can be
moved, copied or mounted elsewhere, and a copy never reads the original's files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from catalog.errors import ArtifactError
from catalog.hashing import combine_hashes, file_hash, stable_hash

MANIFEST = "artifact.json"  # the folder's own manifest; stages may write their own manifest.json inside
ARTIFACTS_DIR = "artifacts"

log = logging.getLogger(__name__)


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
    path: str  # in memory: the folder it was read from; in artifact.json: relative to the data dir
    rows: int
    content_hash: str
    files: list[str] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    shard: str = ""
    detail_files: dict[str, list[str]] = Field(default_factory=dict)  # catalog table -> Parquet files in the folder
    # every file under the folder but artifact.json (POSIX path relative to it) -> {"bytes": size, "sha256": hash};
    # empty in manifests written before Reread recorded them (then only the listed files' presence is checked)
    checksums: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def to_json(self) -> str:
        # stats are free-form stage counters: anything JSON cannot hold is written as its str()
        data = self.model_dump() | {"path": self.relative_path}
        return json.dumps(data, indent=2, sort_keys=True, default=str)

    @classmethod
    def read(cls, folder: Path) -> ArtifactManifest:
        path = folder / MANIFEST
        try:
            manifest = cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing artifact manifest (the stage did not finish)") from None
        except ValidationError as exc:
            raise ArtifactError(f"{path}: corrupted artifact manifest ({exc})") from None
        manifest.path = str(folder)  # where it is now, whatever data dir it was written in
        return manifest

    @property
    def folder(self) -> Path:
        return Path(self.path)

    @property
    def relative_path(self) -> str:
        """The folder relative to the data dir (what artifact.json and the catalog store)."""
        return f"{ARTIFACTS_DIR}/{self.stage}/{self.key}"

    def file_paths(self) -> list[Path]:
        return [self.folder / f for f in self.files]


def inputs_hash(manifests: list[ArtifactManifest]) -> str:
    """Hash of a stage's input manifests (their keys and content hashes), order-sensitive."""
    return combine_hashes(f"{m.key}:{m.content_hash}" for m in manifests)


# ---------------------------------------------------------------- verification
# (folder, key, ((file, size, mtime_ns), ...)) of folders whose hashes matched in this process: a file rewritten since
# has another mtime and is hashed again.
_verified: set[tuple] = set()
_verified_lock = threading.Lock()


def forget_verified() -> None:
    """Hash every artifact again on its next open (what a new process does)."""
    with _verified_lock:
        _verified.clear()


def _checksums(folder: Path) -> dict[str, dict[str, Any]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(MANIFEST))
    return {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": file_hash(p)} for p in files}


def _stat_signature(manifest: ArtifactManifest) -> tuple:
    """The listed files' sizes and mtimes; a missing file or a size other than the recorded one raises."""
    folder = manifest.folder
    where = f"artifact {manifest.stage}/{manifest.key}"
    expected = {name: c["bytes"] for name, c in manifest.checksums.items()} or dict.fromkeys(manifest.files)
    signature = []
    for name, size in sorted(expected.items()):
        path = folder / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ArtifactError(f"{path}: missing ({where} lists it in {MANIFEST})") from None
        if size is not None and stat.st_size != size:
            raise ArtifactError(
                f"{path}: {stat.st_size} bytes, {MANIFEST} records {size} (truncated or damaged; {where})"
            )
        signature.append((name, stat.st_size, stat.st_mtime_ns))
    return (str(folder), manifest.key, tuple(signature))


def verify(manifest: ArtifactManifest) -> None:
    """Check an artifact folder against its manifest: every file present with its recorded size, and (once per
    process for unchanged files) its recorded sha256. Raises ArtifactError naming the first damaged file."""
    signature = _stat_signature(manifest)
    if signature in _verified:
        return
    for name, check in sorted(manifest.checksums.items()):
        path = manifest.folder / name
        if (actual := file_hash(path)) != check["sha256"]:
            raise ArtifactError(
                f"{path}: sha256 {actual} differs from {check['sha256']} recorded in {MANIFEST} "
                f"(damaged; artifact {manifest.stage}/{manifest.key})"
            )
    with _verified_lock:
        _verified.add(signature)


class ArtifactStore:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / ARTIFACTS_DIR

    def folder(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def _partial(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.partial"

    def partial_folder(self, stage: str, key: str) -> Path:
        folder = self._partial(stage, key)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def open(self, stage: str, key: str) -> ArtifactManifest:
        """A finished artifact, checked against its manifest; ArtifactError naming the file when it is missing or
        damaged. For readers: what they read is what the stage wrote."""
        manifest = ArtifactManifest.read(self.folder(stage, key))
        verify(manifest)
        return manifest

    def find(self, stage: str, key: str) -> ArtifactManifest | None:
        """The finished, checked artifact to reuse, or None when there is none. A damaged one (or a folder whose
        artifact.json is gone) is logged and put back to ``.partial`` without its manifest, so running the stage
        again repairs it (resuming whatever it can verify, as after a crash)."""
        if not self.folder(stage, key).exists():
            return None
        try:
            return self.open(stage, key)
        except ArtifactError as exc:
            log.warning("%s; running stage %s again to rebuild it", exc, stage)
            self._reopen(stage, key)
            return None

    def _reopen(self, stage: str, key: str) -> None:
        folder, partial = self.folder(stage, key), self._partial(stage, key)
        (folder / MANIFEST).unlink(missing_ok=True)
        if partial.exists():  # an interrupted re-run already holds newer work
            shutil.rmtree(folder)
        else:
            os.replace(folder, partial)

    def commit(self, manifest: ArtifactManifest) -> ArtifactManifest:
        """Record the partial folder's file sizes and hashes in its manifest and atomically rename it to its final
        name."""
        partial = self._partial(manifest.stage, manifest.key)
        final = self.folder(manifest.stage, manifest.key)
        manifest.checksums = _checksums(partial)
        tmp = partial / (MANIFEST + ".tmp")
        tmp.write_text(manifest.to_json())
        os.replace(tmp, partial / MANIFEST)
        if final.exists():
            try:  # a concurrent or earlier identical run finished first: same key means same content
                existing = self.open(manifest.stage, manifest.key)
            except ArtifactError:  # a damaged or manifest-less leftover: the complete new folder replaces it
                shutil.rmtree(final)
            else:
                shutil.rmtree(partial)
                return existing
        os.replace(partial, final)
        manifest.path = str(final)
        with _verified_lock:  # just hashed: no need to hash again in this process
            _verified.add(_stat_signature(manifest))
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
