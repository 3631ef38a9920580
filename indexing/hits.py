"""What retrieval returns, and the reordering every reordering step (rerank, near-duplicate removal, MMR) shares.

Its own module below ``retrieve`` and ``rerank`` so neither has to import the other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk: where it comes from, its text, its score and its 1-based rank for its query.

    ``doc_id`` is Reread's id of the document (``catalog.ids.make_doc_id``); ``source_doc_id`` is the document's id
    in its source (the JSONL/Parquet ``id_field``, the WARC record's target URI, the MediaWiki page id, the TREC
    DOCNO, the crawled URL, the file name): the id that joins results back to the user's own corpus."""

    chunk_id: str
    doc_id: str
    source_doc_id: str | None
    source: str
    url: str | None
    title: str | None
    score: float
    text: str
    char_start: int
    char_end: int
    rank: int
    row: int  # the chunk's index row: how its vector is found again (MMR, near-duplicate checks)

    def as_dict(self) -> dict:
        return asdict(self)


class HitReranker(Protocol):
    """What retrieval needs of a reranker (``indexing.rerank.Reranker`` is one)."""

    def rerank(self, queries: Sequence[str], hits: Sequence[Sequence[Hit]], top_n: int) -> list[list[Hit]]: ...


def rerank_order(hits: Sequence[Hit], order: Sequence[int], scores: Sequence[float] | None = None) -> list[Hit]:
    """``hits`` picked in ``order`` with ranks renumbered from 1 (and new scores when given)."""
    return [
        replace(hits[i], rank=r, score=float(scores[i]) if scores is not None else hits[i].score)
        for r, i in enumerate(order, 1)
    ]
