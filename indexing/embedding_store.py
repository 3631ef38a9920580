"""The embedding store: the one module that writes, reads and verifies embedding folders.

Layout of an embedding folder (see docs/ARCHITECTURE.md)::

    shard-00000.npy            float32 [rows, dim], opened with np.load(mmap_mode="r")
    shard-00000.ids.parquet    column chunk_id: the chunk of each row, in row order
    manifest.json              EmbeddingManifest: model, model_id, model_hash, dim, normalized, dtype, shards [...]
    shard-00001.part-0003-<ids_hash>.npy    while shard-00001 is being embedded: its finished pieces (checkpoints)

Every file is written to a temporary name and renamed when complete, and the manifest is rewritten after each shard,
so a crash leaves finished shards (and finished pieces of the shard in progress) that a re-run recognises and skips.
Readers open a folder once with :func:`open_embeddings` (every shard's shape, dtype, length and id count checked, file
hashes too on request) and then read shards without checking them again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field
from tqdm import tqdm

from catalog.errors import ArtifactError, ConfigError
from catalog.hashing import combine_hashes, content_hash, file_hash, stable_hash
from catalog.records import StageStats

STAGE = "embed"
MANIFEST_NAME = "manifest.json"
DTYPE = "float32"


# ---------------------------------------------------------------- manifest
class ShardInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # file stem: shard-00000 (files shard-00000.npy and shard-00000.ids.parquet)
    rows: int
    sha256: str  # catalog.hashing.file_hash of the .npy file
    ids_sha256: str  # file_hash of the .ids.parquet file
    ids_hash: str  # content hash of the chunk ids it holds: a shard is reused only for the same chunks

    @property
    def npy_name(self) -> str:
        return f"{self.name}.npy"

    @property
    def ids_name(self) -> str:
        return f"{self.name}.ids.parquet"


class EmbeddingManifest(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str
    model_id: str
    model_hash: str
    dim: int
    normalized: bool
    query_prompt_name: str | None
    shard_size: int
    dtype: str = DTYPE
    complete: bool = False
    shards: list[ShardInfo] = Field(default_factory=list)
    # Counters of the run that returned this manifest (shards_embedded, shards_skipped, chunks_in...); not stored.
    stats: StageStats = Field(default_factory=lambda: StageStats(STAGE), exclude=True)

    @computed_field
    @property
    def rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def content_hash(self) -> str:
        """Hash of what the embeddings are (model, shapes, file hashes): keys the artifacts built on them."""
        return stable_hash(self.as_json())


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def ids_hash(chunk_ids: Sequence[str]) -> str:
    """The identity of a shard's rows: a recorded shard or piece is reused only for exactly these chunk ids."""
    return content_hash("\n".join(chunk_ids))


def read_manifest(out_dir: Path) -> EmbeddingManifest:
    """The manifest of an embedding folder; ArtifactError naming the file when missing or unreadable."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: embedding manifest not found") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read embedding manifest ({exc})") from None
    try:
        return EmbeddingManifest.model_validate_json(text)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ArtifactError(f"{path}: cannot read embedding manifest ({exc.errors()[0]['msg']})") from None
        raise ArtifactError(f"{path}: not a valid embedding manifest ({exc.error_count()} errors: {exc})") from None


def write_manifest(out_dir: Path, manifest: EmbeddingManifest) -> None:
    text = json.dumps(manifest.as_json(), indent=2, sort_keys=True).encode("utf-8")
    _atomic_write(Path(out_dir) / MANIFEST_NAME, lambda f: f.write(text))


# ---------------------------------------------------------------- writing
def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file, fsync, then rename: readers and re-runs never see a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(out_dir: Path, name: str, ids: list[str], vectors: np.ndarray) -> ShardInfo:
    """Write one shard's vectors and chunk ids (each atomically) and return its record for the manifest."""
    npy_path, ids_path = out_dir / f"{name}.npy", out_dir / f"{name}.ids.parquet"
    _atomic_write(npy_path, lambda f: np.save(f, vectors, allow_pickle=False))
    _atomic_write(ids_path, lambda f: pq.write_table(pa.table({"chunk_id": pa.array(ids, pa.string())}), f))
    return ShardInfo(
        name=name, rows=len(ids), sha256=file_hash(npy_path), ids_sha256=file_hash(ids_path), ids_hash=ids_hash(ids)
    )


def write_embedding_shards(
    out_dir: Path,
    shards: Iterable[tuple[list[str], np.ndarray]],
    model_id: str,
    *,
    normalized: bool = True,
    query_prompt_name: str | None = None,
) -> EmbeddingManifest:
    """Write vectors computed elsewhere (``model_id`` as ``name@hash``) as a complete embedding folder in the
    format ``embed_chunks`` writes, for indexes built over external or synthetic embeddings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    infos, dims = [], set()
    for index, (ids, vectors) in enumerate(shards):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dims.add(vectors.shape[1])
        infos.append(write_shard(out_dir, shard_name(index), list(ids), vectors))
    if len(dims) != 1:
        raise ConfigError(f"{out_dir}: shards must share one dimension, got {sorted(dims)}")
    model, _, model_hash = model_id.partition("@")
    manifest = EmbeddingManifest(
        model=model, model_id=model_id, model_hash=model_hash, dim=dims.pop(), normalized=normalized,
        query_prompt_name=query_prompt_name, shard_size=max(i.rows for i in infos), complete=True, shards=infos,
    )  # fmt: skip
    write_manifest(out_dir, manifest)
    return manifest


def shard_is_intact(out_dir: Path, shard: ShardInfo | None, expected_ids_hash: str, rows: int) -> bool:
    """A recorded shard holds exactly these chunks and its files are the ones recorded (not partial, not stale)."""
    if shard is None or shard.ids_hash != expected_ids_hash or shard.rows != rows:
        return False
    npy_path, ids_path = out_dir / shard.npy_name, out_dir / shard.ids_name
    return (
        npy_path.is_file()
        and ids_path.is_file()
        and file_hash(npy_path) == shard.sha256
        and file_hash(ids_path) == shard.ids_sha256
    )


def recorded_shards(out_dir: Path, manifest: EmbeddingManifest) -> dict[str, ShardInfo]:
    """Shards recorded by an earlier (possibly crashed) run into ``out_dir``, if it used the same embeddings."""
    if not (out_dir / MANIFEST_NAME).exists():
        strays = sorted(p.name for p in out_dir.glob("shard-*.npy"))
        if strays:
            raise ArtifactError(
                f"{out_dir}: holds embedding shards ({strays[0]}...) but no {MANIFEST_NAME}; their model is unknown, "
                "refusing to mix them with new ones (use an empty folder)"
            )
        return {}
    previous = read_manifest(out_dir)
    theirs = (previous.model_id, previous.dim, previous.normalized, previous.dtype)
    ours = (manifest.model_id, manifest.dim, manifest.normalized, manifest.dtype)
    if theirs != ours:
        raise ArtifactError(
            f"{out_dir}: holds embeddings of model {previous.model_id} (dim {previous.dim}, normalized "
            f"{previous.normalized}), not {manifest.model_id} (dim {manifest.dim}, normalized {manifest.normalized}); "
            "an index never mixes two embedding models (use a new folder)"
        )
    return {shard.name: shard for shard in previous.shards}


def remove_stale_files(out_dir: Path, keep: set[str]) -> None:
    """Drop what a finished run does not list: shards beyond the end of this run's input (an earlier run had more
    chunks), pieces of shards that were never finished, and temporary files of writes a crash interrupted."""
    for path in out_dir.glob("shard-*"):
        if path.suffix == ".tmp" or ".part-" in path.name or path.name.split(".", 1)[0] not in keep:
            path.unlink()


# ---------------------------------------------------------------- pieces: checkpoints inside a shard
def _piece_path(out_dir: Path, name: str, shard_ids_hash: str, piece: int) -> Path:
    # The shard's ids hash is in the name: a piece is only ever reused for the very chunks it was computed from.
    return out_dir / f"{name}.part-{piece:04d}-{shard_ids_hash}.npy"


def write_piece(out_dir: Path, name: str, shard_ids_hash: str, piece: int, vectors: np.ndarray) -> None:
    _atomic_write(_piece_path(out_dir, name, shard_ids_hash, piece), lambda f: np.save(f, vectors, allow_pickle=False))


def read_piece(out_dir: Path, name: str, shard_ids_hash: str, piece: int, rows: int, dim: int) -> np.ndarray | None:
    """A finished piece of the shard in progress, or None when absent or not what it should hold (then it is
    recomputed; a rename only ever exposes complete files, so a bad one means a foreign or damaged file)."""
    path = _piece_path(out_dir, name, shard_ids_hash, piece)
    if not path.is_file():
        return None
    try:
        shape, dtype, expected_bytes = _npy_header(path)
        if shape != (rows, dim) or dtype != np.dtype(DTYPE) or path.stat().st_size != expected_bytes:
            return None
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


def remove_pieces(out_dir: Path, name: str) -> None:
    for path in out_dir.glob(f"{name}.part-*"):
        path.unlink()


# ---------------------------------------------------------------- reading and verifying
def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data length in bytes that an ``.npy`` file's header declares (nothing is mapped)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        return shape, dtype, f.tell() + int(np.prod(shape)) * dtype.itemsize


def check_shard(out_dir: Path, shard: ShardInfo, manifest: EmbeddingManifest, verify_sha256: bool) -> None:
    """A shard's files exist and match the manifest: shape, dtype, complete length, id count (and hashes)."""
    npy_path, ids_path = out_dir / shard.npy_name, out_dir / shard.ids_name
    try:
        shape, dtype, expected_bytes = _npy_header(npy_path)
        actual_bytes = npy_path.stat().st_size
    except FileNotFoundError:
        raise ArtifactError(f"{npy_path}: embedding shard listed in the manifest is missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise ArtifactError(f"{npy_path}: corrupted embedding shard header ({exc})") from None
    expected_shape = (shard.rows, manifest.dim)
    if dtype != np.dtype(manifest.dtype) or shape != expected_shape:
        raise ArtifactError(f"{npy_path}: holds {dtype} {shape}, the manifest says {manifest.dtype} {expected_shape}")
    if actual_bytes != expected_bytes:
        raise ArtifactError(
            f"{npy_path}: truncated or padded embedding shard ({actual_bytes} bytes, expected {expected_bytes})"
        )
    try:
        id_rows = pq.read_metadata(ids_path).num_rows
    except FileNotFoundError:
        raise ArtifactError(f"{ids_path}: chunk ids of an embedding shard are missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise ArtifactError(f"{ids_path}: corrupted chunk ids ({exc})") from None
    if id_rows != shard.rows:
        raise ArtifactError(f"{ids_path}: holds {id_rows} chunk ids, the manifest says {shard.rows}")
    if verify_sha256:
        for path, recorded in ((npy_path, shard.sha256), (ids_path, shard.ids_sha256)):
            if (actual := file_hash(path)) != recorded:
                raise ArtifactError(f"{path}: content hash {actual} differs from the manifest's {recorded}")


@dataclass(frozen=True)
class EmbeddingShard:
    """One checked shard of a finished embedding folder: its vectors memory-mapped, its chunk ids read on demand."""

    name: str
    folder: Path
    rows: int

    @property
    def vectors_path(self) -> Path:
        return self.folder / f"{self.name}.npy"

    @property
    def ids_path(self) -> Path:
        return self.folder / f"{self.name}.ids.parquet"

    def vectors(self) -> np.ndarray:
        """``[rows, dim]`` float32, memory-mapped: pages are read as they are touched, never the whole shard."""
        return np.load(self.vectors_path, mmap_mode="r", allow_pickle=False)

    def chunk_ids(self) -> pa.Array:
        try:
            return pq.read_table(self.ids_path, columns=["chunk_id"]).column("chunk_id").combine_chunks()
        except (OSError, KeyError, pa.ArrowException) as exc:
            raise ArtifactError(f"{self.ids_path}: embedding ids are not readable ({exc})") from None


def open_embeddings(out_dir: Path, verify_sha256: bool = False) -> tuple[EmbeddingManifest, list[EmbeddingShard]]:
    """The manifest of a finished embedding folder and its shards, every one checked once here: shape, dtype, length
    and id count (and file hashes with ``verify_sha256``); any mismatch raises ArtifactError naming the file."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if not manifest.complete:
        raise ArtifactError(f"{out_dir / MANIFEST_NAME}: embedding run did not finish (re-run embedding to resume)")
    if manifest.dtype != DTYPE:
        raise ArtifactError(f"{out_dir / MANIFEST_NAME}: dtype {manifest.dtype!r}, expected {DTYPE!r}")
    for shard in tqdm(manifest.shards, desc="check shards", unit="shard", disable=None if verify_sha256 else True):
        check_shard(out_dir, shard, manifest, verify_sha256)
    return manifest, [EmbeddingShard(s.name, out_dir, s.rows) for s in manifest.shards]


def load_embeddings(
    out_dir: Path, verify_sha256: bool = False
) -> tuple[EmbeddingManifest, Iterator[tuple[list[str], np.ndarray]]]:
    """The manifest of a finished embedding folder (checked as :func:`open_embeddings` does) and an iterator of
    ``(chunk ids, memmapped [rows, dim] array)`` per shard. Shards are mapped one at a time, as the iterator reaches
    them, so thousands of shards never hold thousands of open maps."""
    manifest, shards = open_embeddings(out_dir, verify_sha256)

    def rows() -> Iterator[tuple[list[str], np.ndarray]]:
        for shard in shards:
            yield shard.chunk_ids().to_pylist(), shard.vectors()

    return manifest, rows()


@dataclass(frozen=True)
class EmbeddingSet:
    """The shards of one or more finished embedding folders of one model, in row order (what an index is built on)."""

    shards: tuple[EmbeddingShard, ...]
    model: str
    model_hash: str | None
    dim: int
    manifest_hash: str

    @property
    def ntotal(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def shard_labels(self) -> list[str]:
        """Each shard's name, prefixed by its folder's parent (the embed artifact's key) when the set spans
        several folders, whose shards share names: what an index manifest records as the source of its vectors."""
        if len({s.folder for s in self.shards}) <= 1:
            return [s.name for s in self.shards]
        return [f"{s.folder.parent.name}/{s.name}" for s in self.shards]

    @classmethod
    def open(cls, embeddings_dirs: str | Path | Sequence[str | Path]) -> EmbeddingSet:
        """Open finished embedding folders (each checked once by :func:`open_embeddings`); all must be of one model."""
        dirs = (
            [Path(embeddings_dirs)] if isinstance(embeddings_dirs, (str, Path)) else [Path(d) for d in embeddings_dirs]
        )
        if not dirs:
            raise ArtifactError("no embeddings folder given to index")
        opened = [(d, *open_embeddings(d)) for d in dirs]
        model_ids = {m.model_id for _, m, _ in opened}
        if len(model_ids) > 1:
            listing = "; ".join(f"{d}: {m.model_id}" for d, m, _ in opened)
            raise ArtifactError(f"refusing to index embeddings of different models together: {listing}")
        first = opened[0][1]
        return cls(
            shards=tuple(s for _, _, shards in opened for s in shards if s.rows > 0),
            model=first.model_id,
            model_hash=first.model_hash,
            dim=first.dim,
            manifest_hash=combine_hashes(m.content_hash for _, m, _ in opened),
        )

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` distinct rows drawn uniformly from all shards: (global rows sorted, float32 vectors)."""
        total = self.ntotal
        rows = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        offset = 0
        for shard in self.shards:
            mask = (rows >= offset) & (rows < offset + shard.rows)
            if mask.any():
                out[mask] = shard.vectors()[rows[mask] - offset]
            offset += shard.rows
        return rows, out
