"""Chunk embeddings of a built datastore grouped by corpus source, for the mixture advisor.

A second moment needs a few thousand rows, not millions: each source is sampled down to ``max_per_source`` rows by a
hash of the chunk id (deterministic, independent of shard order), streaming one memory-mapped shard at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from catalog.errors import ArtifactError
from catalog.hashing import content_hash
from indexing.embedding_store import EmbeddingSet

HASH_SPACE = float(16**8)  # the first 8 hex digits of a content hash, read as a uniform number


@dataclass(frozen=True)
class SourceEmbeddings:
    embeddings: dict[str, np.ndarray]  # source -> sampled [rows, dim] float32
    sizes: dict[str, int]  # source -> all its chunks (for size-proportional weights)
    missing_ids: int  # embedded chunk ids that no chunk file names (counted, skipped)
    model: str  # the embeddings' model id (name@fingerprint)


def chunk_sources(chunk_files: Sequence[Path]) -> dict[str, str]:
    """chunk_id -> source from the datastore's chunk Parquet files."""
    mapping: dict[str, str] = {}
    for path in chunk_files:
        try:
            table = pq.read_table(path, columns=["chunk_id", "source"])
        except (OSError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}: cannot read chunk_id and source columns ({exc})") from None
        mapping.update(zip(table.column("chunk_id").to_pylist(), table.column("source").to_pylist(), strict=True))
    return mapping


def _keep(chunk_id: str, probability: float) -> bool:
    return probability >= 1.0 or int(content_hash(chunk_id)[:8], 16) / HASH_SPACE < probability


def load_source_embeddings(
    chunk_files: Sequence[Path], embeddings_dirs: Path | Sequence[Path], max_per_source: int = 5000
) -> SourceEmbeddings:
    """Embeddings grouped by source, each source sampled to about ``max_per_source`` rows; ``embeddings_dirs``: one
    embedding folder or several of one model (a datastore has one per chunk part)."""
    sources = chunk_sources(chunk_files)
    sizes = Counter(sources.values())
    keep_probability = {source: max_per_source / count for source, count in sizes.items()}
    embedding_set = EmbeddingSet.open(embeddings_dirs)
    grouped: dict[str, list[np.ndarray]] = {source: [] for source in sizes}
    missing = 0
    for shard in tqdm(embedding_set.shards, desc="mixture: read embeddings", unit="shard", leave=False, disable=None):
        ids, vectors = shard.chunk_ids().to_pylist(), shard.vectors()
        rows_by_source: dict[str, list[int]] = {}
        for row, chunk_id in enumerate(ids):
            source = sources.get(chunk_id)
            if source is None:
                missing += 1
            elif _keep(chunk_id, keep_probability[source]):
                rows_by_source.setdefault(source, []).append(row)
        for source, rows in rows_by_source.items():
            grouped[source].append(np.asarray(vectors[rows], dtype=np.float32))
    embeddings = {
        source: np.concatenate(parts) if parts else np.empty((0, embedding_set.dim), np.float32)
        for source, parts in grouped.items()
    }
    return SourceEmbeddings(embeddings=embeddings, sizes=dict(sizes), missing_ids=missing, model=embedding_set.model)
