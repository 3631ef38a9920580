"""Exact and near-duplicate removal over a table of documents (``doc_id, text, ...``).

- Exact: documents whose *normalized* text (``indexing.normalize``: NFKC, lowercase, punctuation and whitespace
  collapsed) is identical; the first in input order is kept.
- Near: MinHash over word-shingle hashes (``DedupConfig.shingle`` words) with ``num_perm`` seeded
  multiply-shift permutations, banded LSH with the (bands, rows) that minimize false positives + negatives at
  ``threshold``, then every LSH candidate pair is *verified* (estimated Jaccard >= threshold) before it links two
  documents. Linked documents form clusters (connected components); the first of each is kept.

The verification step matters: a bare LSH/Bloom pass over-merges (DCLM's Bloom dedup once removed >90% of its
data), so tests count removals on data whose true duplicate count is known.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from catalog.hashing import content_hash
from catalog.records import StageStats
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

CLUSTER_SCHEMA = {"doc_id": pl.String, "cluster_id": pl.Int64, "kind": pl.String, "kept_doc_id": pl.String}


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


def _first_of_group(labels: np.ndarray) -> np.ndarray:
    """Per row, the index of the first row with the same label."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    return first[inverse]


def near_duplicate_components(signatures: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster label per row: rows linked by a verified LSH candidate pair share a label (label = row index of
    the cluster's first row). Rows whose signature is all EMPTY_SLOT are never linked."""
    n, num_perm = signatures.shape
    bands, rows = lsh_bands(threshold, num_perm)
    usable = np.flatnonzero(~(signatures == EMPTY_SLOT).all(axis=1))
    sig = signatures[usable]
    pairs = [np.zeros(0, dtype=np.int64)]
    with np.errstate(over="ignore"):
        for band in range(bands):
            band_values = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
            key = np.zeros(len(usable), dtype=np.uint64)
            for col in range(rows):
                key = key * np.uint64(0x100000001B3) + band_values[:, col]
            rep = _first_of_group(key)
            member = np.flatnonzero(rep != np.arange(len(usable)))
            pairs.append(member * len(usable) + rep[member])
    candidates = np.unique(np.concatenate(pairs))
    src, dst = candidates // max(len(usable), 1), candidates % max(len(usable), 1)
    # Verify each candidate: the fraction of equal signature slots estimates Jaccard similarity.
    similar = (sig[src] == sig[dst]).mean(axis=1) >= threshold
    src, dst = usable[src[similar]], usable[dst[similar]]
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    return _first_of_group(component)


@dataclass(frozen=True, slots=True)
class DedupResult:
    """The kept rows, the membership of every duplicate cluster, and counters."""

    kept: pl.DataFrame
    clusters: pl.DataFrame  # doc_id, cluster_id, kind (exact|near), kept_doc_id: one row per member of a cluster
    stats: StageStats
    cluster_sizes: dict[str, dict[int, int]] = field(default_factory=dict)  # kind -> {cluster size: count}


class Deduplicator:
    """The dedup step: exact duplicates first, then near duplicates among what is left."""

    def __init__(self, cfg: DedupConfig, seed: int = MINHASH_SEED):
        self.cfg = cfg
        self.minhasher = MinHasher(cfg.num_perm, cfg.shingle, seed)

    def run(self, table: pl.DataFrame) -> DedupResult:
        require_columns(table, ("doc_id", "text"), STAGE)
        stats = StageStats(STAGE)
        stats.add("documents_in", table.height)
        token_lists = tokenize_series(table["text"])
        doc_ids = table["doc_id"].cast(pl.String).to_numpy()
        keep = np.ones(table.height, dtype=bool)
        frames, sizes = [], {}
        if self.cfg.exact:
            label = _exact_labels(token_lists)
            frames.append(_cluster_frame(doc_ids, label, "exact"))
            keep &= label == np.arange(table.height)
        if self.cfg.near:
            survivors = np.flatnonzero(keep)
            batch = batch_from_token_lists(token_lists.gather(survivors))
            local = near_duplicate_components(self.minhasher.signatures(batch), self.cfg.threshold)
            label = np.arange(table.height)
            label[survivors] = survivors[local]
            frames.append(_cluster_frame(doc_ids, label, "near"))
            keep &= label == np.arange(table.height)
        clusters = pl.concat(frames) if frames else pl.DataFrame(schema=CLUSTER_SCHEMA)
        for kind in ("exact", "near"):
            of_kind = clusters.filter(pl.col("kind") == kind)
            counts = Counter(of_kind.group_by("cluster_id").len()["len"].to_list())
            sizes[kind] = dict(sorted(counts.items()))
            stats.add(f"{kind}_clusters", sum(counts.values()))
            stats.add(f"{kind}_removed", of_kind.height - sum(counts.values()))
        kept = table.filter(pl.Series(keep))
        stats.add("documents_out", kept.height)
        return DedupResult(kept=kept, clusters=clusters, stats=stats, cluster_sizes=sizes)


def _exact_labels(token_lists: pl.Series) -> np.ndarray:
    """Per row, the index of the first row with the same normalized text."""
    keys = [content_hash(text) for text in token_lists.list.join(" ").to_list()]
    first: dict[str, int] = {}
    return np.array([first.setdefault(key, i) for i, key in enumerate(keys)], dtype=np.int64)


def _cluster_frame(doc_ids: np.ndarray, label: np.ndarray, kind: str) -> pl.DataFrame:
    """One row per member of every cluster with more than one member; cluster_id = the kept row's index."""
    counts = np.bincount(label, minlength=len(label))
    members = np.flatnonzero(counts[label] > 1)
    return pl.DataFrame(
        {
            "doc_id": doc_ids[members].astype(str),
            "cluster_id": label[members].astype(np.int64),
            "kind": [kind] * len(members),
            "kept_doc_id": doc_ids[label[members]].astype(str),
        },
        schema=CLUSTER_SCHEMA,
    )
