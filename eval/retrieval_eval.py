"""Retrieval quality without a reader: per-query metrics from ranked hits.

- IR collections with qrels: nDCG@k and recall@k at the document level (chunk hits collapse to their document, best
  rank first), mapping the collection's native document ids to Reread doc ids through the variant's source.
- QA benchmarks: answer-in-context recall@k (the normalized gold answer appears in the top-k passages, SimpleQA
  style), gold-URL hits (a passage comes from a page listed in the item's metadata), and each item's contamination
  status in the datastore.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import polars as pl

from catalog.errors import RereadError
from eval.graders.normalized import normalize_answer
from indexing.ir_metrics import ndcg_at_k, recall_at_k


class HitLike(Protocol):
    doc_id: str
    source: str
    source_doc_id: str | None
    url: str
    text: str


_QUERY_BLOCK = re.compile(r"<top>(.*?)</top>", re.IGNORECASE | re.DOTALL)
_NUM = re.compile(r"<num>\s*(?:Number:)?\s*(\S+?)\s*(?:</num>|\n|<)", re.IGNORECASE)
_TITLE = re.compile(r"<title>\s*(.*?)\s*(?:</title>|<desc>|<narr>|$)", re.IGNORECASE | re.DOTALL)


def load_trec_queries(path: Path) -> dict[str, str]:
    """TREC topics (``<top><num>..</num><title>..</title></top>``) as query id -> text."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    queries = {}
    for block in _QUERY_BLOCK.findall(text):
        num, title = _NUM.search(block), _TITLE.search(block)
        if num and title and title.group(1).strip():
            queries[num.group(1)] = " ".join(title.group(1).split())
    if not queries:
        raise RereadError(f"{path}: no TREC topics found (expected <top><num>..</num><title>..</title></top>)")
    return queries


def source_key(source: str, source_doc_id: str) -> str:
    """What a judged document and a hit are matched by: the source's name and the document's id in that source (the
    DOCNO of a TREC collection, a MediaWiki page id), so qrels need no knowledge of how Reread hashes ids."""
    return f"{source}\x00{source_doc_id}"


def qrels_by_source_id(source: str, qrels: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Qrels keyed by ``source_key`` of the variant source whose native ids the collection uses."""
    return {qid: {source_key(source, docno): rel for docno, rel in rels.items()} for qid, rels in qrels.items()}


def ranked_doc_ids(hits: Iterable[HitLike]) -> list[str]:
    """Chunk hits collapsed to documents (by ``source_key``; Reread's doc_id for chunks written before source ids),
    keeping each document's best rank."""
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(source_key(hit.source, hit.source_doc_id) if hit.source_doc_id else hit.doc_id, None)
    return list(seen)


def qrels_metrics(
    queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], hits: Mapping[str, Sequence[HitLike]], ks
) -> pl.DataFrame:
    """One row per judged query: ndcg@k and recall@k for every k."""
    rows = []
    for qid in queries:
        relevant = qrels.get(qid)
        if not relevant:
            continue  # unjudged queries say nothing about quality
        ranked = ranked_doc_ids(hits[qid])
        row = {"item_id": qid}
        for k in ks:
            row[f"ndcg@{k}"] = ndcg_at_k(ranked, relevant, k)
            row[f"recall@{k}"] = recall_at_k(ranked, relevant, k)
        rows.append(row)
    return pl.DataFrame(rows)


def answer_in_context(answer: str, passages: Sequence[str]) -> bool:
    """The normalized answer occurs, on word boundaries, in the normalized concatenated passages."""
    needle = normalize_answer(answer)
    if not needle:
        return False
    haystack = f" {normalize_answer(' '.join(passages))} "
    return f" {needle} " in haystack


_URL = re.compile(r"https?://[^\s'\",\]]+")  # urls in a metadata string: newline-separated or a list literal


def url_match_key(url: str) -> str:
    """What a gold URL and a hit's URL are compared by: scheme, ``www.``, case and a trailing slash ignored (not the
    crawler's ``extract.crawler.urls.normalize_url``, which keeps a fetchable URL)."""
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}".lower()


def gold_url_hit(gold_urls: Iterable[str], hits: Sequence[HitLike]) -> bool:
    gold = {url_match_key(u) for u in gold_urls if u}
    return any(url_match_key(h.url) in gold for h in hits if h.url)


def qa_metrics(items, hits: Mapping[str, Sequence[HitLike]], ks, contaminated: set[str]) -> pl.DataFrame:
    """One row per QA item: answer-in-context recall@k, gold-URL hit@k (when the item lists URLs), contamination."""
    rows = []
    for item in items:
        item_hits = hits[item.item_id]
        answers = (item.choices[item.answer_index],) if item.is_multiple_choice else item.accepted_answers
        urls = _URL.findall(str(item.metadata.get("urls", "")))
        row = {"item_id": item.item_id, "contaminated": item.item_id in contaminated}
        for k in ks:
            texts = [h.text for h in item_hits[:k]]
            row[f"answer_recall@{k}"] = float(any(answer_in_context(answer, texts) for answer in answers))
            if urls:
                row[f"gold_url@{k}"] = float(gold_url_hit(urls, item_hits[:k]))
        rows.append(row)
    return pl.DataFrame(rows)
