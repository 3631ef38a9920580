"""Reuse vectors of an earlier embedding artifact for chunks whose text is unchanged.

An embedding is a pure function of (model, text), so a refresh only has to embed new or changed chunks: the
previous datastore's vectors are looked up by the content hash of each chunk's text. Used when a variant is rebuilt
after its sources changed; vectors are only reused from an artifact of the same model (same ``model_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from catalog.hashing import content_hash
from catalog.records import StageStats
from indexing.embed import Embedder
from indexing.embedding_store import load_embeddings


class ReusingEmbedder:
    """An ``Embedder`` that answers from earlier vectors where it can and embeds only the rest."""

    def __init__(self, embedder: Embedder, previous_chunks: Sequence[Path], previous_embeddings: Path):
        self.embedder = embedder
        self.stats = StageStats("embed")
        manifest, shards = load_embeddings(previous_embeddings)
        self._vectors: list[np.ndarray] = []
        self._where: dict[str, tuple[int, int]] = {}
        if manifest.model_id != embedder.model_id or manifest.normalized != embedder.cfg.normalize:
            return  # another model or normalization: nothing is reusable
        texts = pl.concat([pl.read_parquet(p, columns=["chunk_id", "text"]) for p in previous_chunks])
        text_of = dict(zip(texts["chunk_id"].to_list(), texts["text"].to_list(), strict=True))
        for shard_index, (ids, vectors) in enumerate(shards):
            self._vectors.append(vectors)
            for row, chunk_id in enumerate(ids):
                text = text_of.get(chunk_id)
                if text is not None:
                    self._where.setdefault(content_hash(text), (shard_index, row))

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
