"""FAISS indexes over embedding shards: build, save, load and search.

An index artifact is a folder with one ``faiss.write_index`` file per index shard, ``ids.parquet`` (global faiss row
-> chunk_id) and ``manifest.json`` (:class:`IndexManifest`). Index shards are built over consecutive groups of embedding
shards and searched one by one; their per-shard top-k lists are merged exactly, so a sharded Flat index returns the
same neighbours as an unsharded one. ``factory="auto"`` picks the index type by corpus size and memory budget the
autofaiss way, tunes ``nprobe``/``efSearch`` and records its recall@10 against exact search in the manifest.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from catalog.errors import ArtifactError, ConfigError
from catalog.hashing import stable_hash
from catalog.records import StageStats
from catalog.variant import INDEX_RUNTIME_FIELDS, IndexConfig
from indexing.embedding_store import EmbeddingSet

log = logging.getLogger(__name__)

INDEX_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
IDS_FILE = "ids.parquet"

METRICS: dict[str, int] = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}

# Auto choice (autofaiss-style). Below FLAT_MAX_VECTORS exact search is fast enough that approximation buys nothing.
FLAT_MAX_VECTORS = 100_000
HNSW_M = 32
PQ_SUBQUANTIZERS = (64, 48, 32, 24, 16, 12, 8, 4)
PQ_MIN_DIMS_PER_CODE = 4  # narrower sub-vectors make OPQ training slow for little recall
IVF_HNSW_QUANTIZER_MIN_NLIST = 1 << 14  # past this many lists a flat coarse quantizer dominates query time
TARGET_RECALL = 0.95
RECALL_K = 10
RECALL_SAMPLE_QUERIES = 500
TRAIN_SAMPLE_MAX = 300_000
ADD_BATCH_ROWS = 65_536
GPU_MAX_K = 2048  # faiss-gpu's limit for k and nprobe
NPROBE_CANDIDATES = tuple(1 << i for i in range(15))
EF_SEARCH_CANDIDATES = (16, 32, 64, 128, 256, 512, 1024)
SEARCH_PARAMS = ("nprobe", "efSearch")


# ---------------------------------------------------------------- manifest
class IndexShard(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    rows: int
    row_offset: int  # global row of this shard's local row 0
    bytes: int  # size of the written file: a truncated or swapped file is caught before faiss reads it
    embedding_shards: list[str]


class IndexManifest(BaseModel):
    """What an index folder holds; its hash keys caches of search results over it."""

    model_config = ConfigDict(frozen=True)

    format_version: int = INDEX_FORMAT_VERSION
    factory: str  # the faiss index_factory string actually built (resolved from "auto")
    requested_factory: str
    metric: str
    dim: int
    model: str
    model_hash: str | None = None
    embeddings_manifest_hash: str
    config_hash: str
    ntotal: int
    shards: list[IndexShard]
    search_params: dict[str, int] = {}
    recall_at_10: float | None = None  # against exact search, on queries sampled from the corpus
    recall_queries: int = 0
    updated_from: str | None = None  # manifest hash of the index a refresh updated into this one (None: built whole)

    @property
    def manifest_hash(self) -> str:
        return stable_hash(self)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: {what} is missing") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: {what} is not readable JSON ({exc})") from None


def read_index_manifest(index_dir: str | Path) -> IndexManifest:
    path = Path(index_dir) / MANIFEST_FILE
    raw = _read_json(path, "index manifest")
    try:
        manifest = IndexManifest.model_validate(raw)
    except ValueError as exc:
        raise ArtifactError(f"{path}: invalid index manifest ({exc})") from None
    if manifest.format_version != INDEX_FORMAT_VERSION:
        raise ArtifactError(f"{path}: index format {manifest.format_version}, this Reread reads {INDEX_FORMAT_VERSION}")
    return manifest


# ---------------------------------------------------------------- choices
def ivf_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: about 4*sqrt(n), a power of two, and at least 39 training points per list."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 1 << max(0, round(math.log2(target)))
    while nlist > 1 and n < 39 * nlist:
        nlist //= 2
    return nlist


def choose_factory(n: int, dim: int, memory_budget_mb: int, flat_max_vectors: int = FLAT_MAX_VECTORS) -> str:
    """The autofaiss way: Flat when small; HNSW if it fits (about 4d + 8M bytes per vector); else IVF,Flat; else
    OPQ+IVF+PQ with the largest code that fits."""
    budget = memory_budget_mb * 2**20
    if n <= flat_max_vectors and n * 4 * dim <= budget:
        return "Flat"
    if n * (4 * dim + 8 * HNSW_M) <= budget:
        return f"HNSW{HNSW_M}"
    nlist = ivf_nlist(n)
    quantizer_bytes = nlist * 4 * dim
    if n * (4 * dim + 8) + quantizer_bytes <= budget:
        return f"IVF{nlist},Flat"
    coarse = f"IVF{nlist}_HNSW{HNSW_M}" if nlist >= IVF_HNSW_QUANTIZER_MIN_NLIST else f"IVF{nlist}"
    for m in (m for m in PQ_SUBQUANTIZERS if dim % m == 0 and dim // m >= PQ_MIN_DIMS_PER_CODE):
        if n * (m + 8) + quantizer_bytes + 4 * dim * dim <= budget:
            return f"OPQ{m},{coarse},PQ{m}x8"
    raise ConfigError(
        f"index: memory_budget_mb={memory_budget_mb} is too small for {n} vectors of dim {dim} even with PQ codes"
    )


def plan_shard_groups(
    rows: Sequence[int], shards: int | None = None, rows_per_shard: int | None = None
) -> list[list[int]]:
    """Group consecutive embedding shards (by position) into index shards: ``shards`` balanced groups, or groups of at
    most ``rows_per_shard`` rows (an embedding shard larger than that is a group alone). Default: one group."""
    if shards is not None and rows_per_shard is not None:
        raise ConfigError("index sharding: give either a shard count or rows per shard, not both")
    if not rows:
        return []
    if rows_per_shard is not None:
        if rows_per_shard < 1:
            raise ConfigError(f"index sharding: rows per shard must be >= 1, got {rows_per_shard}")
        groups: list[list[int]] = [[]]
        filled = 0
        for i, r in enumerate(rows):
            if groups[-1] and filled + r > rows_per_shard:
                groups.append([])
                filled = 0
            groups[-1].append(i)
            filled += r
        return groups
    count = 1 if shards is None else shards
    if count < 1:
        raise ConfigError(f"index sharding: shard count must be >= 1, got {count}")
    total = sum(rows)
    groups = [[] for _ in range(min(count, len(rows)))]
    cumulative = 0
    for i, r in enumerate(rows):
        # Assign by the midpoint of the shard's row range, so groups stay balanced in rows.
        g = min(len(groups) - 1, int((cumulative + r / 2) * len(groups) / total))
        groups[g].append(i)
        cumulative += r
    return [g for g in groups if g]


# ---------------------------------------------------------------- search helpers
def configure_threads(threads: int | None = None) -> int:
    """One OpenMP pool sized to the machine (or OMP_NUM_THREADS): faiss oversubscribes otherwise (faiss #2731)."""
    n = threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    faiss.omp_set_num_threads(n)
    return n


def merge_topk(
    scores: Sequence[np.ndarray], rows: Sequence[np.ndarray], k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact merge of per-shard top-k lists (global rows, -1 for empty slots) into one top-k per query.

    Ties keep shard order, which is global row order, as a single exact index would."""
    all_scores = np.concatenate(scores, axis=1)
    all_rows = np.concatenate(rows, axis=1)
    sort_key = -all_scores if metric == "ip" else all_scores.copy()
    sort_key[all_rows < 0] = np.inf
    order = np.argsort(sort_key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_scores, order, axis=1), np.take_along_axis(all_rows, order, axis=1)


def neighbor_recall(approx_rows: np.ndarray, exact_rows: np.ndarray, k: int = RECALL_K) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k (recall@k against exact search)."""
    hits = [len(set(a[:k].tolist()) & set(e[:k].tolist()) - {-1}) for a, e in zip(approx_rows, exact_rows, strict=True)]
    return float(np.mean(hits) / k) if hits else 0.0


def exact_search(embeddings: EmbeddingSet, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k over every embedding shard, streamed shard by shard: the ground truth for recall."""
    scores, rows = [], []
    offset = 0
    for shard in embeddings.shards:
        flat = faiss.IndexFlat(embeddings.dim, METRICS[metric])
        flat.add(np.ascontiguousarray(shard.vectors(), dtype=np.float32))
        d, i = flat.search(queries, min(k, shard.rows))
        rows.append(np.where(i >= 0, i + offset, -1))
        scores.append(d)
        offset += shard.rows
    return merge_topk(scores, rows, k, metric)


def inner_index(index: faiss.Index) -> faiss.Index:
    """The index under a pre-transform (OPQ, PCA), or the index itself."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index


def tunable_param(index: faiss.Index) -> str | None:
    """The search-time knob of an index: nprobe for IVF, efSearch for HNSW, None for exact indexes."""
    try:
        faiss.extract_index_ivf(index)
        return "nprobe"
    except RuntimeError:
        pass
    return "efSearch" if isinstance(inner_index(index), faiss.IndexHNSW) else None


def gpu_unavailable_reason() -> str | None:
    """Why faiss cannot use a GPU in this process, or None when it can."""
    if not hasattr(faiss, "StandardGpuResources"):
        return f"this faiss {faiss.__version__} is built without GPU support (faiss-cpu; install faiss-gpu for GPUs)"
    if faiss.get_num_gpus() == 0:
        return "faiss sees no GPU"
    return None


def _to_gpus(index: faiss.Index, doing: str) -> faiss.Index | None:
    """``index`` on every GPU faiss sees, or None after a warning that says why ``doing`` stays on CPU."""
    reason = gpu_unavailable_reason()
    if reason is None:
        try:
            return faiss.index_cpu_to_all_gpus(index)
        except RuntimeError as exc:  # e.g. HNSW has no GPU implementation
            reason = f"{type(inner_index(index)).__name__} cannot move to GPU ({str(exc).strip().splitlines()[0]})"
    log.warning("use_gpu: %s; %s on CPU", reason, doing)
    return None


# ---------------------------------------------------------------- the loaded index
@dataclass
class SearchResult:
    scores: np.ndarray  # [n_queries, k] float32; -inf / inf where fewer than k results exist
    rows: np.ndarray  # [n_queries, k] int64 global rows; -1 where fewer than k results exist


class VectorIndex:
    """A loaded index folder: search over its shards with an exact merge, and map rows to chunk ids."""

    def __init__(
        self, index_dir: Path, manifest: IndexManifest, shard_indexes: list[faiss.Index], ids: pa.Array, on_gpu: bool
    ):
        self.index_dir = index_dir
        self.manifest = manifest
        self.shard_indexes = shard_indexes
        self.ids = ids
        self.on_gpu = on_gpu
        self.stats = StageStats("vector_search")
        self._direct_maps_ready = False
        self.set_search_params(**manifest.search_params)

    @classmethod
    def load(
        cls, index_dir: str | Path, *, use_gpu: bool = False, mmap: bool = False, threads: int | None = None
    ) -> VectorIndex:
        """Load and validate an index folder; any missing, truncated or inconsistent file raises ArtifactError.

        ``mmap``: map the index files instead of reading them (faiss ``IO_FLAG_MMAP``): IVF lists stay on disk and
        only the lists a query probes are paged in, so a search process needs far less than the index's size in RAM.
        ``use_gpu``: copy the shards to every GPU faiss sees; without one (or for an index type faiss cannot move) it
        searches on CPU and logs a warning that says why."""
        index_dir = Path(index_dir)
        manifest = read_index_manifest(index_dir)
        configure_threads(threads)
        shard_indexes = [_read_shard(index_dir, shard, manifest, mmap) for shard in manifest.shards]
        ids = read_ids(index_dir / IDS_FILE, manifest.ntotal)
        on_gpu = False
        if use_gpu and (reason := gpu_unavailable_reason()) is not None:
            log.warning("use_gpu: %s; searching on CPU", reason)
        elif use_gpu:
            on_gpus = [_to_gpus(index, "searching") for index in shard_indexes]
            if all(index is not None for index in on_gpus):
                shard_indexes, on_gpu = on_gpus, True
        return cls(index_dir, manifest, shard_indexes, ids, on_gpu)

    @property
    def ntotal(self) -> int:
        return self.manifest.ntotal

    @property
    def dim(self) -> int:
        return self.manifest.dim

    def set_search_params(self, **params: int) -> None:
        """Set ``nprobe`` / ``efSearch`` on every shard (shards without that knob, e.g. Flat, ignore it)."""
        space = faiss.GpuParameterSpace() if self.on_gpu else faiss.ParameterSpace()
        for name, value in params.items():
            if name not in SEARCH_PARAMS:
                raise ValueError(f"unknown search parameter {name!r}; known: {', '.join(SEARCH_PARAMS)}")
            if self.on_gpu and value > GPU_MAX_K:
                log.warning("%s=%d capped at %d on GPU", name, value, GPU_MAX_K)
                value = GPU_MAX_K
            for index in self.shard_indexes:
                try:
                    space.set_index_parameter(index, name, int(value))
                except RuntimeError:
                    continue  # this shard's index type has no such knob

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries have shape {queries.shape}, index {self.index_dir} has dim {self.dim}")
        if self.on_gpu and k > GPU_MAX_K:
            log.warning("k=%d capped at %d on GPU", k, GPU_MAX_K)
            k = GPU_MAX_K
        self.stats.add("faiss_searches")
        self.stats.add("queries", len(queries))
        scores, rows = [], []
        for shard, index in zip(self.manifest.shards, self.shard_indexes, strict=True):
            d, i = index.search(queries, min(k, shard.rows))
            rows.append(np.where(i >= 0, i + shard.row_offset, -1))
            scores.append(d)
        if len(scores) == 1 and scores[0].shape[1] == k:
            return SearchResult(scores[0], rows[0])
        if sum(s.shape[1] for s in scores) < k:  # fewer rows than k in all shards: pad so results have k columns
            worst = -np.inf if self.manifest.metric == "ip" else np.inf
            scores.append(np.full((len(queries), k), worst, dtype=np.float32))
            rows.append(np.full((len(queries), k), -1, dtype=np.int64))
        merged_scores, merged_rows = merge_topk(scores, rows, k, self.manifest.metric)
        return SearchResult(merged_scores, merged_rows)

    def chunk_ids(self, rows: np.ndarray) -> list[str]:
        return self.ids.take(pa.array(np.asarray(rows, dtype=np.int64))).to_pylist()

    def reconstruct(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored vectors of global rows (approximate for PQ codes), e.g. for MMR and near-duplicate checks."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        if not self._direct_maps_ready:
            for index in self.shard_indexes:
                if tunable_param(index) == "nprobe":
                    faiss.extract_index_ivf(index).make_direct_map()
            self._direct_maps_ready = True
        for shard, index in zip(self.manifest.shards, self.shard_indexes, strict=True):
            mask = (rows >= shard.row_offset) & (rows < shard.row_offset + shard.rows)
            if mask.any():
                out[mask] = index.reconstruct_batch(rows[mask] - shard.row_offset)
        return out


def _read_shard(index_dir: Path, shard: IndexShard, manifest: IndexManifest, mmap: bool) -> faiss.Index:
    path = index_dir / shard.file
    if not path.is_file():
        raise ArtifactError(f"{path}: index file is missing")
    size = path.stat().st_size
    if size != shard.bytes:
        raise ArtifactError(f"{path}: index file has {size} bytes, manifest says {shard.bytes} (truncated or replaced)")
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ArtifactError(f"{path}: corrupted index file ({first_line})") from None
    if index.ntotal != shard.rows:
        raise ArtifactError(f"{path}: index holds {index.ntotal} vectors, manifest says {shard.rows}")
    if index.d != manifest.dim:
        raise ArtifactError(f"{path}: index dim {index.d}, manifest says {manifest.dim}")
    return index


def read_ids(path: Path, ntotal: int) -> pa.Array:
    try:
        table = pq.read_table(path, columns=["row", "chunk_id"])
    except FileNotFoundError:
        raise ArtifactError(f"{path}: index ids file is missing") from None
    except (OSError, pa.ArrowException) as exc:
        raise ArtifactError(f"{path}: index ids file is not readable Parquet ({exc})") from None
    if table.num_rows != ntotal:
        raise ArtifactError(f"{path}: {table.num_rows} ids, manifest says ntotal={ntotal}")
    return table.column("chunk_id").combine_chunks()


# ---------------------------------------------------------------- build
def _train(template: faiss.Index, embeddings: EmbeddingSet, seed: int, use_gpu: bool) -> faiss.Index:
    """The index trained on at most TRAIN_SAMPLE_MAX vectors sampled from every shard (memory bounded by the sample,
    not the corpus); on the GPUs with ``use_gpu`` when faiss can."""
    if template.is_trained:
        return template
    _, sample = embeddings.sample(TRAIN_SAMPLE_MAX, seed)
    log.info("training index on %d sampled vectors", len(sample))
    gpu_index = _to_gpus(template, "training") if use_gpu else None
    if gpu_index is None:
        template.train(sample)
        return template
    gpu_index.train(sample)
    return faiss.index_gpu_to_cpu(gpu_index)


def add_in_batches(index: faiss.Index, vectors: np.ndarray, bar: tqdm | None = None) -> None:
    """``index.add`` in batches of ADD_BATCH_ROWS float32 rows, so a memory-mapped shard is never copied whole."""
    for start in range(0, len(vectors), ADD_BATCH_ROWS):
        batch = np.ascontiguousarray(vectors[start : start + ADD_BATCH_ROWS], dtype=np.float32)
        index.add(batch)
        if bar is not None:
            bar.update(len(batch))


def _build_shard(
    template: faiss.Index, embeddings: EmbeddingSet, shard_positions: list[int], use_gpu: bool
) -> faiss.Index:
    """One index shard: the trained template filled from memory-mapped embedding shards, one batch at a time."""
    index = faiss.clone_index(template)
    gpu_index = _to_gpus(index, "adding vectors") if use_gpu else None
    rows = sum(embeddings.shards[p].rows for p in shard_positions)
    with tqdm(total=rows, desc="index add", unit="vec", disable=None) as bar:
        for p in shard_positions:
            add_in_batches(gpu_index if gpu_index is not None else index, embeddings.shards[p].vectors(), bar)
    return index if gpu_index is None else faiss.index_gpu_to_cpu(gpu_index)


def _tune(
    index: VectorIndex, param: str, nlist: int | None, queries: np.ndarray, exact_rows: np.ndarray
) -> tuple[int, float]:
    """Smallest nprobe / efSearch reaching TARGET_RECALL on the sample (the largest tried if none does)."""
    candidates = [c for c in NPROBE_CANDIDATES if c <= (nlist or 1)] if param == "nprobe" else EF_SEARCH_CANDIDATES
    best = (candidates[-1], 0.0)
    for value in candidates:
        index.set_search_params(**{param: value})
        recall = neighbor_recall(index.search(queries, RECALL_K).rows, exact_rows)
        best = (value, recall)
        if recall >= TARGET_RECALL:
            break
    return best


def new_index(factory: str, dim: int, metric: str) -> faiss.Index:
    """An empty index of a faiss ``index_factory`` string; ConfigError when faiss cannot make it for ``dim``."""
    try:
        return faiss.index_factory(dim, factory, METRICS[metric])
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise ConfigError(
            f"index.factory {factory!r}: faiss cannot build it for {dim}-dimensional vectors ({reason})"
        ) from None


def build_index(
    embeddings_dir: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    cfg: IndexConfig,
    *,
    shards: int | None = None,
    rows_per_shard: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    flat_max_vectors: int = FLAT_MAX_VECTORS,
) -> IndexManifest:
    """Build the index of ``cfg`` over one or more embedding folders (one model) into ``out_dir``.

    ``shards`` / ``rows_per_shard`` (by default ``cfg``'s) split the index over groups of embedding shards;
    ``flat_max_vectors`` is the
    corpus size up to which ``"auto"`` keeps exact search. The folder is written under a
    temporary name and renamed when complete, so a crash never leaves a half-built index under ``out_dir``.
    """
    out_dir = Path(out_dir)
    check_empty_out_dir(out_dir)
    embeddings = EmbeddingSet.open(embeddings_dir)
    if embeddings.ntotal == 0:
        raise ArtifactError(f"{embeddings_dir}: no embeddings to index")
    configure_threads(threads)
    factory = (
        choose_factory(embeddings.ntotal, embeddings.dim, cfg.memory_budget_mb, flat_max_vectors)
        if cfg.factory == "auto"
        else cfg.factory
    )
    template = new_index(factory, embeddings.dim, cfg.metric)
    use_gpu = cfg.use_gpu
    if use_gpu and (reason := gpu_unavailable_reason()) is not None:
        log.warning("use_gpu: %s; building on CPU", reason)
        use_gpu = False
    template = _train(template, embeddings, seed, use_gpu)

    if shards is None and rows_per_shard is None:
        shards, rows_per_shard = cfg.shards, cfg.rows_per_shard
    groups = plan_shard_groups([s.rows for s in embeddings.shards], shards, rows_per_shard)
    with staged_index_folder(out_dir) as tmp_dir:
        manifest = _write_shards(template, embeddings, groups, tmp_dir, cfg, factory, use_gpu)
        return finish_index_folder(tmp_dir, manifest, embeddings, cfg, template, seed)


def check_empty_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ArtifactError(f"{out_dir}: index folder already exists and is not empty (artifacts are immutable)")


@contextmanager
def staged_index_folder(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir``, renamed to it when the block ends without error and removed when
    it fails: a crash never leaves a half-written index under ``out_dir``."""
    tmp_dir = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    try:
        yield tmp_dir
        if out_dir.exists():
            out_dir.rmdir()
        tmp_dir.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def finish_index_folder(
    tmp_dir: Path,
    manifest: IndexManifest,
    embeddings: EmbeddingSet,
    cfg: IndexConfig,
    template: faiss.Index,
    seed: int,
    index_row_of: np.ndarray | None = None,
) -> IndexManifest:
    """Write the manifest of the shards and ids written into ``tmp_dir``. For an approximate index (or ``auto``),
    first set the configured (or, for auto, tuned) search knob and record recall@10 against exact search; measuring
    loads the folder, so the manifest is written once before. ``index_row_of`` maps embedding rows to index rows
    when they are not in the same order (an updated index)."""
    manifest_path = tmp_dir / MANIFEST_FILE
    manifest_path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    param = tunable_param(template)
    auto = cfg.factory == "auto"
    if param is None and not auto:
        return manifest  # an exact index: recall is 1 by construction
    index = VectorIndex.load(tmp_dir)
    _, queries = embeddings.sample(RECALL_SAMPLE_QUERIES, seed + 1)
    _, exact_rows = exact_search(embeddings, queries, RECALL_K, cfg.metric)
    if index_row_of is not None:
        exact_rows = np.where(exact_rows >= 0, index_row_of[np.maximum(exact_rows, 0)], -1)
    params: dict[str, int] = {}
    if param is not None:
        configured = cfg.nprobe if param == "nprobe" else cfg.ef_search
        if configured is None and auto:
            nlist = faiss.extract_index_ivf(template).nlist if param == "nprobe" else None
            params[param], _ = _tune(index, param, nlist, queries, exact_rows)
        else:
            params[param] = configured if configured is not None else _current_param(template, param)
        index.set_search_params(**params)
    recall = neighbor_recall(index.search(queries, RECALL_K).rows, exact_rows)
    manifest = manifest.model_copy(
        update={"search_params": params, "recall_at_10": round(recall, 4), "recall_queries": len(queries)}
    )
    manifest_path.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest


def index_config_hash(cfg: IndexConfig) -> str:
    """What makes two indexes of one embedding set the same index: not where it runs nor the refresh policy."""
    return stable_hash(cfg.model_dump(mode="json", exclude=INDEX_RUNTIME_FIELDS))


def _write_shards(
    template: faiss.Index,
    embeddings: EmbeddingSet,
    groups: list[list[int]],
    tmp_dir: Path,
    cfg: IndexConfig,
    factory: str,
    use_gpu: bool,
) -> IndexManifest:
    entries, id_arrays = [], []
    offset = 0
    labels = embeddings.shard_labels
    for g, positions in enumerate(groups):
        index = _build_shard(template, embeddings, positions, use_gpu)
        name = "index.faiss" if len(groups) == 1 else f"index-{g:05d}.faiss"
        faiss.write_index(index, str(tmp_dir / name))
        entries.append(
            IndexShard(
                file=name,
                rows=index.ntotal,
                row_offset=offset,
                bytes=(tmp_dir / name).stat().st_size,
                embedding_shards=[labels[p] for p in positions],
            )
        )
        offset += index.ntotal
        del index
        id_arrays += [embeddings.shards[p].chunk_ids() for p in positions]
    write_ids(tmp_dir, pa.concat_arrays([a.cast(pa.string()) for a in id_arrays]))
    return IndexManifest(
        factory=factory,
        requested_factory=cfg.factory,
        metric=cfg.metric,
        dim=embeddings.dim,
        model=embeddings.model,
        model_hash=embeddings.model_hash,
        embeddings_manifest_hash=embeddings.manifest_hash,
        config_hash=index_config_hash(cfg),
        ntotal=offset,
        shards=entries,
    )


def write_ids(folder: Path, chunk_ids: pa.Array) -> None:
    """``ids.parquet``: global faiss row -> chunk id, rows numbered in shard order."""
    rows = pa.array(np.arange(len(chunk_ids), dtype=np.int64))
    pq.write_table(pa.table({"row": rows, "chunk_id": chunk_ids}), folder / IDS_FILE)


def _current_param(index: faiss.Index, param: str) -> int:
    if param == "nprobe":
        return int(faiss.extract_index_ivf(index).nprobe)
    return int(inner_index(index).hnsw.efSearch)
