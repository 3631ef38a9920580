"""IR metrics against qrels, checked by hand-computed values and on the real Vaswani qrels file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from catalog.errors import ArtifactError
from indexing.ir_metrics import load_trec_qrels, mean_metric, ndcg_at_k, recall_at_k


def test_ndcg_by_hand():
    relevance = {"a": 1, "b": 1, "c": 0}
    # relevant docs at ranks 2 and 3 of 3; ideal has them at ranks 1 and 2
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(["x", "a", "b"], relevance, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b", "x"], relevance, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y", "a"], relevance, 2) == 0.0
    assert ndcg_at_k(["a"], {"a": 2, "b": 1}, 1) == pytest.approx(1.0)  # graded: the better doc first is ideal
    assert ndcg_at_k(["b"], {"a": 2, "b": 1}, 1) == pytest.approx(0.5)
    assert ndcg_at_k(["a"], {}, 10) == 0.0


def test_recall_by_hand():
    relevance = {"a": 1, "b": 1, "c": 1, "d": 0}
    assert recall_at_k(["a", "x", "c", "b"], relevance, 3) == pytest.approx(2 / 3)
    assert recall_at_k(["d", "x"], relevance, 100) == 0.0
    assert recall_at_k(["a", "a"], relevance, 2) == pytest.approx(1 / 3)


def test_mean_skips_unjudged_queries():
    qrels = {"1": {"a": 1}, "2": {"b": 1}, "3": {"c": 0}}
    runs = {"1": ["a"], "2": ["x"], "3": ["c"], "4": ["a"]}
    assert mean_metric(recall_at_k, runs, qrels, 10) == pytest.approx(0.5)


def test_load_vaswani_qrels(shared_data):
    qrels = load_trec_qrels(shared_data / "retrieval" / "vaswani_npl" / "qrels")
    assert len(qrels) == 93
    assert sum(len(v) for v in qrels.values()) == 2083
    assert qrels["1"]["1239"] == 1


def test_malformed_qrels_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "qrels"
    path.write_text("1 0 10 1\n1 0 broken\n")
    with pytest.raises(ArtifactError, match=r"qrels:2: not a qrels line"):
        load_trec_qrels(path)
