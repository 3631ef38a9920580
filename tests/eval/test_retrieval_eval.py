"""Retrieval-only metrics: TREC topics, qrels matched by the documents' ids in their source, answer-in-context, gold
URLs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog.errors import RereadError
from eval.benchmarks.types import BenchmarkItem
from eval.retrieval_eval import (
    answer_in_context,
    gold_url_hit,
    load_trec_queries,
    qa_metrics,
    qrels_by_source_id,
    qrels_metrics,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@dataclass
class FakeHit:  # the attributes the metrics read; a plain record, not a stand-in for a component
    doc_id: str
    url: str
    text: str
    source: str = "npl"
    source_doc_id: str | None = None


def test_vaswani_topics_and_qrels_mapping():
    queries = load_trec_queries(SAMPLE / "vaswani" / "query-text.trec")
    assert len(queries) == 93 and queries["1"].startswith("MEASUREMENT OF DIELECTRIC CONSTANT")
    assert qrels_by_source_id("npl", {"1": {"1239": 1}}) == {"1": {"npl\x001239": 1}}


def test_qrels_metrics_collapse_chunks_to_documents_matched_by_source_ids():
    a, b, c = (FakeHit(f"hash-{n}", "", "", source_doc_id=n) for n in ("11", "12", "13"))
    elsewhere = FakeHit("hash-x", "", "", source="c4", source_doc_id="12")  # same native id, another source
    hits = {"q": [a, a, elsewhere, b, c]}
    qrels = qrels_by_source_id("npl", {"q": {"12": 1, "99": 1}})
    frame = qrels_metrics({"q": "text", "unjudged": "x"}, qrels, hits, [1, 2, 3])
    assert frame["item_id"].to_list() == ["q"]  # unjudged queries are skipped
    row = frame.row(0, named=True)
    # b is the 3rd document (c4's "12" is another document), not the 4th hit
    assert row["recall@2"] == 0.0 and row["recall@3"] == 0.5
    assert row["ndcg@3"] == pytest.approx((1 / 2) / (1 + 1 / 1.5849625))


def test_answer_in_context_matches_whole_words_after_normalization():
    assert answer_in_context("The Beatles", ["formed in Liverpool, the beatles were"])
    assert answer_in_context("1984", ["published in 1984."])
    assert not answer_in_context("1", ["published in 1984."])
    assert not answer_in_context("", ["anything"])


def test_gold_urls_ignore_scheme_www_and_trailing_slash():
    hits = [FakeHit("d", "https://en.wikipedia.org/wiki/Bodmin/", "")]
    assert gold_url_hit(["http://www.en.wikipedia.org/wiki/Bodmin"], hits)
    assert not gold_url_hit(["https://en.wikipedia.org/wiki/Truro"], hits)


def test_qa_metrics_per_item_with_contamination_and_choices():
    items = [
        BenchmarkItem("simpleqa", "s1", "Who?", "Ada Lovelace", metadata={"urls": "['https://x.org/ada']"}),
        BenchmarkItem("mmlu", "m1", "Which?", "B", choices=("cat", "analytical engine", "dog", "eel")),
    ]
    hits = {
        "s1": [FakeHit("1", "https://x.org/ada", "nothing here"), FakeHit("2", "", "Ada Lovelace wrote notes")],
        "m1": [FakeHit("3", "", "the Analytical Engine of Babbage")],
    }
    frame = qa_metrics(items, hits, [1, 2], contaminated={"m1"})
    s1, m1 = frame.row(0, named=True), frame.row(1, named=True)
    assert (s1["answer_recall@1"], s1["answer_recall@2"], s1["gold_url@1"]) == (0.0, 1.0, 1.0)
    assert m1["answer_recall@1"] == 1.0 and m1["contaminated"] and not s1["contaminated"]


def test_no_topics_is_a_clear_error(tmp_path):
    (tmp_path / "q.trec").write_text("nothing")
    with pytest.raises(RereadError, match="no TREC topics"):
        load_trec_queries(tmp_path / "q.trec")
