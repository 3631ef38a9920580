"""BM25 (via ``bm25s``) over chunk texts, and hybrid dense + BM25 retrieval by reciprocal rank fusion.

A BM25 index numbers its documents by position; built over a retriever's chunk lookup those positions are the
dense index's rows, so the two rankings fuse directly and hits are hydrated by the same lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import bm25s
import numpy as np
from bm25s.tokenization import Tokenizer

from catalog.errors import ArtifactError
from indexing.hits import Hit
from indexing.retrieve import Retriever

RRF_K = 60  # the constant of Cormack et al. (2009): damps the weight of the very first ranks


class BM25Index:
    """Okapi BM25 over a list of texts; ``search`` returns positions into that list."""

    def __init__(self, model: bm25s.BM25, tokenizer: Tokenizer, n_docs: int):
        self.model = model
        self.tokenizer = tokenizer
        self.n_docs = n_docs

    @classmethod
    def build(cls, texts: Sequence[str], stemmer: Callable[[str], str] | None = None) -> BM25Index:
        """Tokenize (lower-case, English stopwords, optional per-word stemmer e.g. ``Stemmer.Stemmer("english").stemWord``)
        and index ``texts``."""
        tokenizer = Tokenizer(stopwords="english", stemmer=stemmer)
        tokens = tokenizer.tokenize(list(texts), return_as="tuple", show_progress=False)
        model = bm25s.BM25()
        model.index(tokens, show_progress=False)
        return cls(model, tokenizer, len(texts))

    @classmethod
    def for_retriever(cls, retriever: Retriever, **kwargs) -> BM25Index:
        """BM25 over a dense retriever's chunks, numbered by its index rows."""
        return cls.build(retriever.lookup.table.column("text").to_pylist(), **kwargs)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, scores)``, each ``[n_queries, min(k, n_docs)]``, best first (score 0: no term matched)."""
        k = min(k, self.n_docs)
        tokens = self.tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False)
        vocab = {i: t for t, i in self.tokenizer.get_vocab_dict().items()}
        query_terms = [[vocab[i] for i in ids if i in vocab] for ids in tokens]
        positions, scores = self.model.retrieve(query_terms, k=k, show_progress=False, n_threads=1)
        return np.asarray(positions, dtype=np.int64), np.asarray(scores, dtype=np.float32)

    def save(self, folder: str | Path) -> None:
        """Arrays as .npy (no pickle) and vocabularies as JSON."""
        folder = Path(folder)
        self.model.save(str(folder), allow_pickle=False, show_progress=False)
        self.tokenizer.save_vocab(str(folder))
        self.tokenizer.save_stopwords(str(folder))

    @classmethod
    def load(cls, folder: str | Path, stemmer: Callable[[str], str] | None = None) -> BM25Index:
        folder = Path(folder)
        try:
            model = bm25s.BM25.load(str(folder), allow_pickle=False, show_progress=False)
            tokenizer = Tokenizer(stopwords=[], stemmer=stemmer)
            tokenizer.load_vocab(str(folder))
            tokenizer.load_stopwords(str(folder))
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{folder}: not a readable BM25 index ({exc})") from None
        return cls(model, tokenizer, int(model.scores["num_docs"]))


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse rankings of ids: score(id) = sum over rankings of 1 / (k + rank), best first (ties: smaller id)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, 1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


class HybridRetriever:
    """Dense + BM25 candidates (``pool`` of each) fused by reciprocal rank; hits carry the fused score."""

    def __init__(self, dense: Retriever, bm25: BM25Index, *, pool: int = 100, rrf_k: int = RRF_K):
        if bm25.n_docs != dense.index.ntotal:
            raise ArtifactError(f"BM25 index has {bm25.n_docs} documents, the dense index {dense.index.ntotal} rows")
        self.dense, self.bm25, self.pool, self.rrf_k = dense, bm25, pool, rrf_k

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        dense_hits = self.dense.search(queries, max(k, self.pool))
        sparse_rows, sparse_scores = self.bm25.search(queries, max(k, self.pool))
        rows, scores = [], []
        for hits, bm25_rows, bm25_scores in zip(dense_hits, sparse_rows, sparse_scores, strict=True):
            matched = bm25_rows[bm25_scores > 0]  # documents sharing no term with the query are not BM25 candidates
            fused = reciprocal_rank_fusion([[h.row for h in hits], matched.tolist()], self.rrf_k)[:k]
            rows.append(np.array([doc for doc, _ in fused], dtype=np.int64))
            scores.append(np.array([score for _, score in fused], dtype=np.float32))
        return self.dense.hits_for_rows(rows, scores)
