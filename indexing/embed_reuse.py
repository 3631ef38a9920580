"""Reuse vectors of earlier embedding artifacts for chunks whose text is unchanged.

An embedding is a pure function of (model, text), so a refresh only has to embed new or changed chunks: the
previous datastore's vectors are looked up by the content hash of each chunk's text. Used when a variant is rebuilt
after its sources changed; vectors are only reused from artifacts of the same model (same ``model_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from catalog.hashing import content_hash
from catalog.records import StageStats
from indexing.embed import PARQUET_READ_ROWS, Embedder
from indexing.embedding_store import load_embeddings


class ReusingEmbedder:
    """An ``Embedder`` that answers from earlier vectors where it can and embeds only the rest.

    ``wanted``: the texts it will be asked for (one embed unit's chunks). Only earlier vectors of those texts are
    located, so memory is bounded by the unit, not by the previous datastore (whose chunk texts are streamed)."""

    def __init__(
        self,
        embedder: Embedder,
        previous_chunks: Sequence[Path],
        previous_embeddings: Sequence[Path],
        wanted: Iterable[str],
    ):
        self.embedder = embedder
        self.stats = StageStats("embed")
        self._vectors: list[np.ndarray] = []
        self._where: dict[str, tuple[int, int]] = {}
        wanted_hashes = {content_hash(t) for t in wanted}
        hash_of = _wanted_text_hashes(previous_chunks, wanted_hashes) if wanted_hashes else {}
        for folder in previous_embeddings if hash_of else ():
            manifest, shards = load_embeddings(folder)
            if manifest.model_id != embedder.model_id or manifest.normalized != embedder.cfg.normalize:
                continue  # another model or normalization: nothing of it is reusable
            for ids, vectors in shards:
                position, used = len(self._vectors), False
                for row, chunk_id in enumerate(ids):
                    h = hash_of.get(chunk_id)
                    if h is not None and h not in self._where:
                        self._where[h], used = (position, row), True
                if used:  # keep the map of a shard only when it has a vector to give
                    self._vectors.append(vectors)

    def __getattr__(self, name: str):  # model_id, dim, cfg, ...: those of the wrapped embedder
        return getattr(self.embedder, name)

    def encode_documents(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        found = [self._where.get(content_hash(t)) for t in texts]
        missing = [i for i, f in enumerate(found) if f is None]
        out = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        if missing:
            out[missing] = self.embedder.encode_documents([texts[i] for i in missing], on_batch)
        if on_batch is not None and len(missing) < len(texts):
            on_batch(len(texts) - len(missing))
        for i, f in enumerate(found):
            if f is not None:
                out[i] = self._vectors[f[0]][f[1]]
        self.stats.add("chunks_computed", len(missing))
        self.stats.add("chunks_reused_by_text", len(texts) - len(missing))
        return out


def _wanted_text_hashes(chunk_files: Sequence[Path], wanted: set[str]) -> dict[str, str]:
    """chunk_id -> text hash of the earlier chunks whose text hash is in ``wanted`` (files read in batches)."""
    hash_of: dict[str, str] = {}
    for path in chunk_files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_READ_ROWS, columns=["chunk_id", "text"]):
            for chunk_id, text in zip(
                batch.column("chunk_id").to_pylist(), batch.column("text").to_pylist(), strict=True
            ):
                if chunk_id is not None and text is not None and (h := content_hash(text)) in wanted:
                    hash_of[chunk_id] = h
    return hash_of
