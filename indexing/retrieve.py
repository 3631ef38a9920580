"""The retrieval API: queries in, ranked chunks with text and provenance out.

``Retriever.search`` embeds the queries, searches the index, and fetches text and provenance for the hit rows only,
from a memory-mapped Arrow copy of the chunk columns in index-row order (built once per index and chunk files, then
reused: a lookup is a ``take`` of a few rows, so the search path adds little over ``faiss``). Each query's top-K is
cached as JSON keyed by the hash of (index manifest hash, query text, K), so ablations over the same candidates search
once; the cache never holds query text.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import duckdb
import numpy as np
import pyarrow as pa

from catalog.errors import ArtifactError
from catalog.hashing import stable_hash
from catalog.records import StageStats
from catalog.variant import RetrievalConfig
from indexing.diversify import mmr, near_duplicate_free, unit_scale
from indexing.hits import Hit, HitReranker, rerank_order
from indexing.vector_index import IDS_FILE, VectorIndex

LOOKUP_COLUMNS = ("chunk_id", "doc_id", "source_doc_id", "source", "url", "title", "text", "char_start", "char_end")
LOOKUP_BATCH_ROWS = 65_536


class QueryEncoder(Protocol):
    """What the retriever needs of an embedder (``indexing.embed.Embedder`` is one)."""

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


# ---------------------------------------------------------------- text and provenance by index row
class ChunkLookup:
    """Chunk columns aligned with index rows, memory-mapped from an Arrow IPC file: row -> text and provenance."""

    def __init__(self, table: pa.Table):
        self.table = table
        self._batches = table.to_batches()
        self._batch_starts = np.cumsum([0] + [b.num_rows for b in self._batches])[:-1]

    @classmethod
    def open(cls, index: VectorIndex, chunk_paths: Sequence[str | Path], store_dir: str | Path) -> ChunkLookup:
        """Open (building on first use) the lookup file for ``index`` over ``chunk_paths`` under ``store_dir``."""
        paths = [Path(p).resolve() for p in chunk_paths]
        for path in paths:
            if not path.is_file():
                raise ArtifactError(f"{path}: chunk file is missing")
        key = stable_hash(
            {"index": index.manifest.manifest_hash, "chunks": [(str(p), p.stat().st_size) for p in paths]}
        )
        path = Path(store_dir) / f"chunks-{key}.arrow"
        table = _read_lookup(path, index.ntotal)
        if table is None:  # first use, or a damaged file (a crash mid-write leaves only a temporary name)
            _write_lookup(index, paths, path)
            table = _read_lookup(path, index.ntotal)
        if table is None:
            raise ArtifactError(f"{path}: lookup file just written does not hold the index's {index.ntotal} rows")
        return cls(table)

    def rows(self, rows: np.ndarray) -> dict[str, list]:
        """Columns of the given rows, in the given order, reading only those rows from each record batch."""
        rows = np.asarray(rows, dtype=np.int64)
        batch_of = np.searchsorted(self._batch_starts, rows, side="right") - 1
        columns: dict[str, list] = {c: [None] * len(rows) for c in LOOKUP_COLUMNS}
        for b in np.unique(batch_of):
            positions = np.flatnonzero(batch_of == b)
            taken = self._batches[b].take(pa.array(rows[positions] - self._batch_starts[b])).to_pydict()
            for name in LOOKUP_COLUMNS:
                target = columns[name]
                for pos, value in zip(positions.tolist(), taken[name], strict=True):
                    target[pos] = value
        return columns


def _read_lookup(path: Path, rows: int) -> pa.Table | None:
    try:
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except (OSError, pa.ArrowException):
        return None
    return table if table.num_rows == rows else None


def _write_lookup(index: VectorIndex, chunk_paths: list[Path], path: Path) -> None:
    """Join the index's row -> chunk_id map with the chunk files, in row order, into an Arrow IPC file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids_path = index.index_dir / IDS_FILE
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute(f"SET threads={max(1, (os.cpu_count() or 1))}")
    con.read_parquet([str(p) for p in chunk_paths]).create_view("chunks")
    con.read_parquet(str(ids_path)).create_view("ids")
    missing = con.execute(
        "SELECT count(*), min(i.chunk_id) FROM ids i ANTI JOIN chunks c ON i.chunk_id = c.chunk_id"
    ).fetchall()[0]
    if missing[0]:
        raise ArtifactError(
            f"{ids_path}: {missing[0]} indexed chunk ids are in none of the {len(chunk_paths)} chunk files "
            f"(first: {missing[1]}); pass the chunk files the index was built from"
        )
    repeated = con.execute("SELECT count(*) - count(DISTINCT chunk_id) FROM chunks").fetchall()[0][0]
    if repeated:
        raise ArtifactError(f"chunk files {[str(p) for p in chunk_paths]} repeat {repeated} chunk ids (a file twice?)")
    present = {row[0] for row in con.execute("DESCRIBE chunks").fetchall()}
    # chunk files written before source ids (chunk stage 1) have no source_doc_id: their hits carry None
    select = ", ".join(f"c.{c}" if c in present else f"NULL::VARCHAR AS {c}" for c in LOOKUP_COLUMNS)
    reader = con.sql(
        f"SELECT {select} FROM ids i JOIN chunks c ON i.chunk_id = c.chunk_id ORDER BY i.row"
    ).to_arrow_reader(LOOKUP_BATCH_ROWS)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        con.close()


# ---------------------------------------------------------------- top-K cache
class TopKCache:
    """Each query's top-K rows and scores as a JSON file keyed by the hash of (index manifest hash, query text, K).

    The query text itself is never written: benchmark questions kept encrypted on disk (GPQA) must not reach it in
    plain text through a cache, so an entry holds only hashes, rows and scores."""

    def __init__(self, cache_dir: str | Path, index_hash: str):
        self.cache_dir = Path(cache_dir) / "topk"
        self.index_hash = index_hash

    def _path(self, query: str, k: int) -> Path:
        key = stable_hash({"index": self.index_hash, "query": query, "k": k})
        return self.cache_dir / key[:2] / f"{key}.json"

    def get(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        path = self._path(query, k)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a missing or damaged entry is a miss: the search runs again and rewrites it
        return np.asarray(entry["scores"], dtype=np.float32), np.asarray(entry["rows"], dtype=np.int64)

    def put(self, query: str, k: int, scores: np.ndarray, rows: np.ndarray) -> None:
        path = self._path(query, k)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"index": self.index_hash, "k": k, "rows": rows.tolist(), "scores": scores.tolist()}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(entry), encoding="utf-8")
        tmp.replace(path)


# ---------------------------------------------------------------- the retriever
class Retriever:
    """Dense retrieval over one index folder and the chunk Parquet files it was built from.

    ``embedder`` encodes query texts (None: only ``search_vectors`` works). ``cache_dir`` holds the row lookup file
    and the top-K cache; without it both live in a temporary folder that goes away with the retriever (and nothing is
    reused across processes).
    """

    def __init__(
        self,
        index_dir: str | Path,
        chunks: Sequence[str | Path],
        embedder: QueryEncoder | None,
        *,
        cache_dir: str | Path | None = None,
        use_gpu: bool = False,
        mmap: bool = False,
        threads: int | None = None,
    ):
        self.index = VectorIndex.load(index_dir, use_gpu=use_gpu, mmap=mmap, threads=threads)
        self.embedder = embedder
        self._tmp = None if cache_dir is not None else tempfile.TemporaryDirectory(prefix="reread-retrieve-")
        root = Path(cache_dir) if cache_dir is not None else Path(self._tmp.name)
        self.lookup = ChunkLookup.open(self.index, chunks, root / "lookup")
        self.cache = TopKCache(root, self.index.manifest.manifest_hash) if cache_dir is not None else None
        self.stats = StageStats("retrieve")

    def encode(self, queries: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            raise ValueError(f"retriever over {self.index.index_dir} has no embedder: search with search_vectors()")
        return np.ascontiguousarray(self.embedder.encode_queries(list(queries)), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Top-``k`` hits per query (cached per query when the retriever has a cache_dir)."""
        found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(queries)
        if self.cache is not None:
            found = [self.cache.get(q, k) for q in queries]
        misses = [i for i, entry in enumerate(found) if entry is None]
        self.stats.add("cache_hits", len(queries) - len(misses))
        if misses:
            self.stats.add("cache_misses", len(misses))
            result = self.index.search(self.encode([queries[i] for i in misses]), k)
            for j, i in enumerate(misses):
                keep = result.rows[j] >= 0
                found[i] = (result.scores[j][keep], result.rows[j][keep])
                if self.cache is not None:
                    self.cache.put(queries[i], k, *found[i])
        return self.hits_for_rows([f[1] for f in found], [f[0] for f in found])

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Top-``k`` hits for query vectors already embedded (no cache: its key is the query text)."""
        result = self.index.search(vectors, k)
        keep = result.rows >= 0
        return self.hits_for_rows(
            [r[m] for r, m in zip(result.rows, keep, strict=True)],
            [s[m] for s, m in zip(result.scores, keep, strict=True)],
        )

    def hits_for_rows(self, rows: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> list[list[Hit]]:
        """Hits for per-query index rows and scores (ranked in the given order), fetching only those rows."""
        flat_rows = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else np.empty(0, np.int64)
        columns = self.lookup.rows(flat_rows)
        out, at = [], 0
        for query_rows, query_scores in zip(rows, scores, strict=True):
            hits = []
            for rank, (row, score) in enumerate(zip(query_rows.tolist(), query_scores.tolist(), strict=True), 1):
                hits.append(
                    Hit(
                        chunk_id=columns["chunk_id"][at],
                        doc_id=columns["doc_id"][at],
                        source_doc_id=columns["source_doc_id"][at],
                        source=columns["source"][at],
                        url=columns["url"][at],
                        title=columns["title"][at],
                        score=float(score),
                        text=columns["text"][at],
                        char_start=columns["char_start"][at],
                        char_end=columns["char_end"][at],
                        rank=rank,
                        row=row,
                    )
                )
                at += 1
            out.append(hits)
        return out

    def vectors(self, hits: Sequence[Hit]) -> np.ndarray:
        """The indexed vectors of hits (for MMR and near-duplicate removal)."""
        return self.index.reconstruct([h.row for h in hits])


def select_for_reading(
    retriever: Retriever,
    queries: Sequence[str],
    cfg: RetrievalConfig,
    n_docs: int,
    reranker: HitReranker | None = None,
) -> list[list[Hit]]:
    """The documents a reader sees: the top ``cfg.top_k`` candidates, near-duplicates dropped
    (``cfg.near_dup_threshold``), reranked (``reranker``), then ``n_docs`` picked by MMR (``cfg.mmr_lambda``; its
    relevance is the reranker's score scaled to [0, 1] when reranked, else the query cosine) or by rank."""
    pools = retriever.search(queries, cfg.top_k)
    if cfg.near_dup_threshold is not None:
        pools = [
            rerank_order(pool, near_duplicate_free(retriever.vectors(pool), cfg.near_dup_threshold)) if pool else pool
            for pool in pools
        ]
    if reranker is not None:  # every query's pool in one batched cross-encoder call
        pools = reranker.rerank(queries, pools, top_n=cfg.top_k)
    if cfg.mmr_lambda is None:
        return [pool[:n_docs] for pool in pools]
    query_vecs = retriever.encode(queries)
    out = []
    for query_vec, pool in zip(query_vecs, pools, strict=True):
        if pool:
            relevance = unit_scale(np.array([h.score for h in pool])) if reranker is not None else None
            order = mmr(query_vec, retriever.vectors(pool), cfg.mmr_lambda, n_docs, relevance=relevance)
            pool = rerank_order(pool, order)
        out.append(pool[:n_docs])
    return out
