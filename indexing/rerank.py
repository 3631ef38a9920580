"""Cross-encoder reranking of retrieved hits.

Any ``sentence_transformers.CrossEncoder`` loads by local path: BERT-style sequence classifiers
(e.g. ms-marco-MiniLM-L6-v2) and causal-LM rerankers such as Qwen3-Reranker, which sentence-transformers loads as a
CrossEncoder scoring the log-odds of "yes" over "no" at the last token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexing.embed import MODEL_LOAD_LOCK
from indexing.hits import Hit, rerank_order


class Reranker:
    """A cross-encoder that scores (query, chunk text) pairs; higher is more relevant."""

    def __init__(self, model_path: str | Path, *, batch_size: int = 32, max_length: int | None = 512, device=None):
        from sentence_transformers import CrossEncoder

        self.model_path = str(model_path)
        self.batch_size = batch_size
        with MODEL_LOAD_LOCK:
            self.model = CrossEncoder(self.model_path, device=device, max_length=max_length, local_files_only=True)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.empty(0, dtype=np.float32)
        scores = self.model.predict(list(pairs), batch_size=self.batch_size, show_progress_bar=None)
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs), -1)[:, 0]

    def rerank(self, queries: Sequence[str], hits: Sequence[Sequence[Hit]], top_n: int) -> list[list[Hit]]:
        """Each query's hits reordered by cross-encoder score (all pairs scored in one batched call), the best
        ``top_n`` kept, ``score`` replaced by the cross-encoder's and ranks renumbered."""
        pairs = [(q, h.text) for q, query_hits in zip(queries, hits, strict=True) for h in query_hits]
        scores = self.score(pairs)
        out, at = [], 0
        for query_hits in hits:
            query_scores = scores[at : at + len(query_hits)]
            at += len(query_hits)
            order = np.argsort(-query_scores, kind="stable")[:top_n]
            out.append(rerank_order(query_hits, order.tolist(), query_scores.tolist()))
        return out
