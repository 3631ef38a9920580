"""Exact and near-duplicate removal at corpus scale, memory bounded by the shard.

- Per shard (``hash_shard``, one unit of work each, in parallel): every document's exact key (blake2b-128 of its
  *normalized* text, ``indexing.normalize``: NFKC, lowercase, punctuation and whitespace collapsed), its MinHash
  signature over word-shingle hashes (``DedupConfig.shingle`` words, ``num_perm`` seeded multiply-shift
  permutations) and its LSH band keys, with the (bands, rows) that minimize false positives + negatives at
  ``threshold``. Written as Parquet (hashes, band keys) and ``.npy`` (signatures); never the texts.
- Across shards (``find_duplicates``, DuckDB over those Parquet files, out of core): exact duplicates are groups
  of equal keys, the first in input order kept. Among what is left, documents sharing a band bucket are candidate
  pairs (each member with the bucket's first document); every candidate is *verified* (the fraction of equal
  signature slots estimates Jaccard, >= ``threshold``) before it links two documents, and the clusters are the
  connected components of the verified pairs only (union-find over the pair graph, never over the corpus); the
  first document of each is kept.
- ``Deduplicator.run`` does both over one in-memory table (tests, notebooks, benchmarks): the same code path.

The verification step matters: a bare LSH/Bloom pass over-merges (DCLM's Bloom dedup once removed >90% of its
data), so tests count removals on data whose true duplicate count is known.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from catalog.records import ProgressCallback, StageStats
from catalog.variant import DedupConfig
from indexing.normalize import (
    TokenizedBatch,
    batch_from_token_lists,
    require_columns,
    tokenize_series,
    window_hashes,
    window_hashes_at,
)

STAGE = "dedup"
MINHASH_SEED = 0x5EED  # fixed: the same input and config always give the same clusters
EMPTY_SLOT = np.iinfo(np.uint32).max
SIGNATURE_BLOCK = 2048  # shingles per block: [num_perm, block] uint64 values fit in cache

HASHES_FILE, BANDS_FILE, SIGNATURES_FILE = "dedup-hashes.parquet", "dedup-bands.parquet", "dedup-signatures.npy"
HASH_BATCH = 5_000  # documents tokenized and hashed at once: what bounds a shard unit's memory
VERIFY_BATCH = 200_000  # candidate pairs verified at once
DUCKDB_MEMORY_LIMIT = "1GB"  # the cross-shard joins spill to disk past this
ROW_BITS = 32  # a document's global order: shard index << ROW_BITS | row in shard

CLUSTER_SCHEMA = {"doc_id": pl.String, "cluster_id": pl.Int64, "kind": pl.String, "kept_doc_id": pl.String}
REMOVAL_SCHEMA = pa.schema(
    [("shard", pa.int64()), ("row", pa.int64()), ("doc_id", pa.string()), ("kind", pa.string()),
     ("kept_doc_id", pa.string()), ("cluster_id", pa.int64())]
)  # fmt: skip
_HASH_SCHEMA = pa.schema(
    [("row", pa.int64()), ("doc_id", pa.string()), ("key_hi", pa.uint64()), ("key_lo", pa.uint64())]
)
_BAND_SCHEMA = pa.schema([("row", pa.int64()), ("band", pa.int16()), ("bucket", pa.uint64())])


def lsh_bands(threshold: float, num_perm: int, grid: int = 1001) -> tuple[int, int]:
    """(bands, rows per band), bands * rows <= num_perm, minimizing the area of false positives (similarity
    below ``threshold`` yet a candidate) plus false negatives (above it yet not a candidate)."""
    s = np.linspace(0.0, 1.0, grid)
    below, above = s <= threshold, s >= threshold
    best, best_error = (1, num_perm), np.inf
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands
            error = np.trapezoid(p[below], s[below]) + np.trapezoid(1.0 - p[above], s[above])
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


class MinHasher:
    """MinHash signatures of word-shingle sets: ``num_perm`` uint32 values per text, seeded and deterministic."""

    def __init__(self, num_perm: int = 128, shingle: int = 5, seed: int = MINHASH_SEED):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.shingle = shingle
        # multiply-shift hashing: h(x) = (a*x + b mod 2**64) >> 32 with odd a is universal for 64-bit keys.
        self.a = rng.integers(0, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)

    def shingle_groups(self, batch: TokenizedBatch) -> list[tuple[np.ndarray, np.ndarray]]:
        """(shingle hashes, owning text) parts, each grouped by text in order: the word shingles of every text,
        then one whole-text shingle for each text shorter than a shingle."""
        starts = batch.window_starts(self.shingle)
        parts = [(window_hashes(batch.hashes, [self.shingle])[self.shingle][starts], batch.owner[starts])]
        lengths = batch.lengths
        for length in np.unique(lengths[(lengths > 0) & (lengths < self.shingle)]).tolist():
            texts = np.flatnonzero(lengths == length)
            parts.append((window_hashes_at(batch.hashes, batch.offsets[texts], length), texts))
        return [(hashes, owners) for hashes, owners in parts if len(hashes)]

    def signatures(self, batch: TokenizedBatch) -> np.ndarray:
        """uint32 [n_texts, num_perm]; texts without tokens get EMPTY_SLOT everywhere.

        Shingles are processed in small blocks with all permutations at once (the block's [num_perm, block]
        values stay in cache); a text spanning blocks takes the minimum of its partial signatures.
        """
        sig = np.full((batch.n_texts, self.num_perm), EMPTY_SLOT, dtype=np.uint32)
        a, b, shift = self.a[:, None], self.b[:, None], np.uint64(32)
        for hashes, owners in self.shingle_groups(batch):
            for lo in range(0, len(hashes), SIGNATURE_BLOCK):
                block, block_owners = hashes[lo : lo + SIGNATURE_BLOCK], owners[lo : lo + SIGNATURE_BLOCK]
                first = np.flatnonzero(np.concatenate([[True], block_owners[1:] != block_owners[:-1]]))
                texts = block_owners[first]
                with np.errstate(over="ignore"):
                    values = a * block[None, :]
                    values += b
                    values >>= shift
                partial = np.minimum.reduceat(values, first, axis=1).T
                sig[texts] = np.minimum(sig[texts], partial)
        return sig


def exact_keys(token_lists: pl.Series) -> np.ndarray:
    """uint64 [n, 2]: blake2b-128 of each normalized text (its tokens joined by single spaces)."""
    digests = b"".join(
        hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest() for text in token_lists.list.join(" ").to_list()
    )
    return np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)


def band_buckets(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 [n, bands]: each band's ``rows`` signature values combined into one bucket key (FNV-style)."""
    buckets = np.zeros((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            values = signatures[:, band * rows : (band + 1) * rows].astype(np.uint64)
            for col in range(rows):
                buckets[:, band] = buckets[:, band] * np.uint64(0x100000001B3) + values[:, col]
    return buckets


class ShardHasher:
    """The per-shard dedup step: exact keys, MinHash signatures and LSH band buckets of a stream of document
    batches (``doc_id, text``), written to a folder; memory bounded by one batch (signatures go to a memory-mapped
    ``.npy`` of the shard's known row count)."""

    def __init__(self, cfg: DedupConfig, seed: int = MINHASH_SEED):
        self.cfg = cfg
        self.minhasher = MinHasher(cfg.num_perm, cfg.shingle, seed)
        self.bands, self.rows = lsh_bands(cfg.threshold, cfg.num_perm)

    def run(
        self, batches: Iterable[pl.DataFrame], n_rows: int, out_dir: Path, on_progress: ProgressCallback | None = None
    ) -> StageStats:
        """Hash every batch; ``on_progress(documents done, n_rows)`` after each."""
        stats = StageStats("dedup_signatures")
        shape = (n_rows, self.cfg.num_perm if self.cfg.near else 0)
        signatures = np.lib.format.open_memmap(out_dir / SIGNATURES_FILE, mode="w+", dtype=np.uint32, shape=shape)
        row = 0
        with (
            pq.ParquetWriter(out_dir / HASHES_FILE, _HASH_SCHEMA) as hashes,
            pq.ParquetWriter(out_dir / BANDS_FILE, _BAND_SCHEMA) as bands,
            tqdm(total=n_rows, desc="dedup hash", unit="doc", leave=False, disable=None) as bar,
        ):
            for batch in batches:
                require_columns(batch, ("doc_id", "text"), STAGE)
                rows = np.arange(row, row + batch.height, dtype=np.int64)
                tokens = tokenize_series(batch["text"])
                keys = exact_keys(tokens)
                hashes.write_table(
                    pa.table(
                        [rows, batch["doc_id"].cast(pl.String).to_arrow(), keys[:, 0], keys[:, 1]], schema=_HASH_SCHEMA
                    )
                )
                if self.cfg.near:
                    sig = self.minhasher.signatures(batch_from_token_lists(tokens))
                    signatures[rows] = sig
                    usable = np.flatnonzero(~(sig == EMPTY_SLOT).all(axis=1))  # empty texts are never linked
                    buckets = band_buckets(sig[usable], self.bands, self.rows)
                    band_ids = np.tile(np.arange(self.bands, dtype=np.int16), len(usable))
                    bands.write_table(
                        pa.table([np.repeat(rows[usable], self.bands), band_ids, buckets.ravel()], schema=_BAND_SCHEMA)
                    )
                    stats.add("documents_without_shingles", batch.height - len(usable))
                stats.add("documents_in", batch.height)
                row += batch.height
                bar.update(batch.height)
                if on_progress is not None:
                    on_progress(row, n_rows)
        if row != n_rows:
            raise ValueError(f"{out_dir}: expected {n_rows} documents, got {row}")
        signatures.flush()
        del signatures
        return stats


@dataclass(frozen=True, slots=True)
class DuplicateReport:
    """What ``find_duplicates`` found: counters and cluster sizes per kind (the removals are in its Parquet)."""

    stats: StageStats
    cluster_sizes: dict[str, dict[int, int]]


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Signatures:
    """Rows of the shards' memory-mapped signature files, gathered by global order."""

    def __init__(self, shard_dirs: Sequence[Path]):
        self.paths = [Path(d) / SIGNATURES_FILE for d in shard_dirs]
        self.open: dict[int, np.ndarray] = {}

    def gather(self, order: np.ndarray) -> np.ndarray:
        shard, row = order >> ROW_BITS, order & ((1 << ROW_BITS) - 1)
        out = None
        for s in np.unique(shard).tolist():
            if s not in self.open:
                self.open[s] = np.load(self.paths[s], mmap_mode="r")
            sig = self.open[s]
            out = np.empty((len(order), sig.shape[1]), dtype=np.uint32) if out is None else out
            mask = shard == s
            out[mask] = sig[row[mask]]
        return out if out is not None else np.zeros((0, 0), dtype=np.uint32)


def find_duplicates(
    shard_dirs: Sequence[Path], cfg: DedupConfig, removals_file: Path, memory_limit: str = DUCKDB_MEMORY_LIMIT
) -> DuplicateReport:
    """Duplicates across the shards written by ``ShardHasher`` (in input order: shard by shard, row by row),
    resolved in DuckDB over their Parquet files with ``memory_limit`` (spilling next to ``removals_file``).

    Writes ``removals_file``: one row per removed document (``shard, row, doc_id, kind, kept_doc_id,
    cluster_id``: which duplicate of which, kind ``exact`` or ``near``), in input order."""
    spill = removals_file.parent / "duckdb-spill"
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "temp_directory": str(spill),
            "threads": 2,
            "preserve_insertion_order": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    try:
        return _find_duplicates(con, [Path(d) for d in shard_dirs], cfg, removals_file)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _find_duplicates(
    con: duckdb.DuckDBPyConnection, shard_dirs: list[Path], cfg: DedupConfig, removals_file: Path
) -> DuplicateReport:
    def files(name: str) -> str:
        return "[" + ", ".join(_sql_text(str(d / name)) for d in shard_dirs) + "]"

    shard_files = pa.table({"shard": range(len(shard_dirs)), "path": [str(d / HASHES_FILE) for d in shard_dirs]})
    bands_files = pa.table({"shard": range(len(shard_dirs)), "path": [str(d / BANDS_FILE) for d in shard_dirs]})
    con.register("hash_files", shard_files)
    con.register("band_files", bands_files)
    con.execute(
        f"""CREATE VIEW hashes AS SELECT (f.shard << {ROW_BITS}) | h.row AS ord, h.doc_id, h.key_hi, h.key_lo
        FROM read_parquet({files(HASHES_FILE)}, filename = true) h JOIN hash_files f ON h.filename = f.path"""
    )
    con.execute("CREATE TEMP TABLE removed (ord BIGINT, kind VARCHAR, rep BIGINT)")
    if cfg.exact:
        con.execute(
            """INSERT INTO removed SELECT h.ord, 'exact', g.rep FROM hashes h JOIN
            (SELECT key_hi, key_lo, min(ord) AS rep FROM hashes GROUP BY key_hi, key_lo HAVING count(*) > 1) g
            USING (key_hi, key_lo) WHERE h.ord <> g.rep"""
        )
    if cfg.near and shard_dirs:
        _near_duplicates(con, shard_dirs, cfg, files(BANDS_FILE))
    mask = (1 << ROW_BITS) - 1
    con.execute(
        f"""COPY (SELECT r.ord >> {ROW_BITS} AS shard, r.ord & {mask} AS row, h.doc_id, r.kind,
            k.doc_id AS kept_doc_id, r.rep AS cluster_id
        FROM removed r JOIN hashes h ON h.ord = r.ord JOIN hashes k ON k.ord = r.rep ORDER BY r.ord)
        TO {_sql_text(str(removals_file))} (FORMAT parquet)"""
    )
    stats = StageStats(STAGE)
    n_docs = con.execute("SELECT count(*) FROM hashes").fetchone()[0]
    n_removed = con.execute("SELECT count(*) FROM removed").fetchone()[0]
    stats.add("documents_in", n_docs)
    sizes: dict[str, dict[int, int]] = {}
    for kind in ("exact", "near"):
        rows = con.execute(
            "SELECT size, count(*) FROM (SELECT count(*) + 1 AS size FROM removed WHERE kind = ? GROUP BY rep)"
            " GROUP BY size ORDER BY size",
            [kind],
        ).fetchall()
        sizes[kind] = {int(size): int(n) for size, n in rows}
        stats.add(f"{kind}_clusters", sum(sizes[kind].values()))
        stats.add(f"{kind}_removed", sum((size - 1) * n for size, n in sizes[kind].items()))
    stats.add("documents_out", n_docs - n_removed)
    return DuplicateReport(stats, sizes)


def _near_duplicates(con: duckdb.DuckDBPyConnection, shard_dirs: list[Path], cfg: DedupConfig, band_paths: str) -> None:
    """Candidate pairs from shared band buckets among documents not removed as exact copies (each member with its
    bucket's first document), verified on their signatures; clusters are the connected components of the verified
    pairs, each represented by its first document."""
    con.execute(
        f"""CREATE VIEW survivor_bands AS SELECT (f.shard << {ROW_BITS}) | b.row AS ord, b.band, b.bucket
        FROM read_parquet({band_paths}, filename = true) b JOIN band_files f ON b.filename = f.path
        ANTI JOIN removed r ON r.ord = (f.shard << {ROW_BITS}) | b.row"""
    )
    candidates = con.sql(
        """SELECT DISTINCT b.ord, g.rep FROM survivor_bands b JOIN
        (SELECT band, bucket, min(ord) AS rep FROM survivor_bands GROUP BY band, bucket HAVING count(*) > 1) g
        USING (band, bucket) WHERE b.ord <> g.rep"""
    ).to_arrow_reader(VERIFY_BATCH)
    signatures = _Signatures(shard_dirs)
    linked_a, linked_b = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for batch in candidates:
        a = batch.column("ord").to_numpy().astype(np.int64)
        b = batch.column("rep").to_numpy().astype(np.int64)
        similar = (signatures.gather(a) == signatures.gather(b)).mean(axis=1) >= cfg.threshold
        linked_a.append(a[similar])
        linked_b.append(b[similar])
    removed = _components(np.concatenate(linked_a), np.concatenate(linked_b))
    con.register("near_removed", removed)
    con.execute("INSERT INTO removed SELECT ord, 'near', rep FROM near_removed")
    con.unregister("near_removed")


def _components(a: np.ndarray, b: np.ndarray) -> pa.Table:
    """(ord, rep) for every node of the pair graph that is not its component's first (smallest) node."""
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    n = len(nodes)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (inverse[: len(a)], inverse[len(a) :])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1 if n else 0, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, component, nodes)
    rep = first[component]
    moved = rep != nodes
    return pa.table({"ord": nodes[moved], "rep": rep[moved]})


def removed_rows(removals_file: Path, shard: int) -> pl.Series:
    """The rows of input shard ``shard`` that ``find_duplicates`` removed."""
    return pl.scan_parquet(removals_file).filter(pl.col("shard") == shard).select("row").collect()["row"]


def document_batches(paths: Iterable[Path], batch_size: int = HASH_BATCH) -> Iterator[pl.DataFrame]:
    """``doc_id, text`` of Parquet document files, ``batch_size`` rows at a time."""
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size, columns=["doc_id", "text"]):
            yield pl.from_arrow(batch)


@dataclass(frozen=True, slots=True)
class DedupResult:
    """The kept rows, the membership of every duplicate cluster, and counters."""

    kept: pl.DataFrame
    clusters: pl.DataFrame  # doc_id, cluster_id, kind (exact|near), kept_doc_id: one row per member of a cluster
    stats: StageStats
    cluster_sizes: dict[str, dict[int, int]] = field(default_factory=dict)  # kind -> {cluster size: count}


class Deduplicator:
    """Dedup of one in-memory table of documents, through the same shard and cross-shard steps a build runs."""

    def __init__(self, cfg: DedupConfig, seed: int = MINHASH_SEED):
        self.cfg = cfg
        self.seed = seed

    def run(self, table: pl.DataFrame) -> DedupResult:
        require_columns(table, ("doc_id", "text"), STAGE)
        with tempfile.TemporaryDirectory(prefix="reread-dedup-") as tmp:
            folder = Path(tmp)
            batches = (table.slice(lo, HASH_BATCH) for lo in range(0, table.height, HASH_BATCH))
            ShardHasher(self.cfg, self.seed).run(batches, table.height, folder)
            report = find_duplicates([folder], self.cfg, folder / "removals.parquet")
            removals = pl.read_parquet(folder / "removals.parquet")
        keep = np.ones(table.height, dtype=bool)
        keep[removals["row"].to_numpy()] = False
        members = removals.select("doc_id", "cluster_id", "kind", "kept_doc_id")
        firsts = members.unique(["kind", "cluster_id"], maintain_order=True).with_columns(
            pl.col("kept_doc_id").alias("doc_id")
        )
        clusters = pl.concat([firsts, members]).sort("cluster_id", "kind").cast(CLUSTER_SCHEMA)
        return DedupResult(
            kept=table.filter(pl.Series(keep)),
            clusters=clusters,
            stats=report.stats,
            cluster_sizes=report.cluster_sizes,
        )
