"""The corpus-mixture advisor on synthetic embeddings with a known answer and on real MiniLM embeddings."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from eval.theory.advisor import CAVEATS, AdvisorConfig, mixture_advice, second_moment, shrink

DIM = 12


# Tests using these fixtures are marked slow (tests/conftest.py): MiniLM embeds real MMLU, C4 and arXiv text.
SLOW_FIXTURES = ("minilm_embeddings",)


def _gaussian(rng: np.random.Generator, scales: np.ndarray, rows: int) -> np.ndarray:
    return rng.standard_normal((rows, len(scales))) * scales


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    target_scales = np.r_[np.linspace(2.0, 1.0, 4), np.full(DIM - 4, 0.05)]
    off_scales = np.r_[np.full(4, 0.05), np.ones(DIM - 4)]
    sources = {
        "matched": _gaussian(rng, target_scales, 400),
        "off_target": _gaussian(rng, off_scales, 400),
        "broad": _gaussian(rng, np.full(DIM, 0.6), 4000),
        "tiny": _gaussian(rng, target_scales, 30),
        "wrong_dim": rng.standard_normal((50, DIM + 1)),
        "single": rng.standard_normal((1, DIM)),
    }
    return sources, _gaussian(rng, target_scales, 200)


def test_matched_source_gets_the_weight_and_bad_sources_are_rejected(synthetic):
    sources, target = synthetic
    report = mixture_advice(sources, target, AdvisorConfig(center="none", rank=4))
    assert report.rank == 4 and report.dim == DIM and report.questions == 200
    assert {r.source: r.reason for r in report.rejections} == {
        "wrong_dim": "dimension_mismatch",
        "single": "too_few_chunks",
    }
    weights = report.recommended
    assert set(weights) == {"matched", "off_target", "broad", "tiny"}
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["matched"] > 0.5 and weights["matched"] == max(weights.values())
    profiles = {p.name: p for p in report.sources}
    assert profiles["matched"].covered_fraction == 1.0 and profiles["off_target"].covered_fraction == 0.0
    assert max(profiles["off_target"].coverage) < 0.1
    assert profiles["tiny"].few_chunks and not profiles["matched"].few_chunks
    assert profiles["broad"].hardness < profiles["matched"].hardness
    qp, uniform, sized = report.weightings
    assert (qp.name, uniform.name, sized.name) == ("qp", "uniform", "size_proportional")
    assert qp.objective <= uniform.objective and qp.objective <= sized.objective
    assert sized.weights["broad"] == pytest.approx(4000 / 4830)
    assert not qp.overthinking and qp.max_mu < 2 - 0.25 + 1e-6
    assert report.coverage_margin_held == 0.25 and report.uncoverable_directions == []
    assert report.caveats == CAVEATS and len(report.caveats) >= 7
    text = json.dumps(report.as_dict(), allow_nan=False)
    assert "caveats" in text and "recommended" in text


def test_a_skill_no_source_has_is_reported_uncoverable():
    rng = np.random.default_rng(1)
    target = _gaussian(rng, np.r_[2.0, 1.4, 1.0, np.full(DIM - 3, 0.01)], 300)
    missing_second = np.r_[2.0, 0.01, 1.0, np.full(DIM - 3, 0.01)]  # the target's second direction is absent
    sources = {"a": _gaussian(rng, missing_second, 300), "b": _gaussian(rng, missing_second * 0.8, 300)}
    report = mixture_advice(sources, target, AdvisorConfig(center="none", rank=3))
    assert report.uncoverable_directions == [1] and report.coverage_margin_held is None
    for profile in report.sources:
        assert profile.coverage[1] < 0.1 and min(profile.coverage[0], profile.coverage[2]) > 0.5


def test_second_moment_centring_and_shrinkage():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 3)) + np.array([5.0, 0.0, 0.0])
    centred = second_moment(x, x.mean(axis=0))
    assert np.allclose(centred, np.cov(x.T, bias=True))
    assert second_moment(x)[0, 0] > 25
    shrunk = shrink(np.diag([3.0, 2.0, 1.0]), 0.1)
    assert np.trace(shrunk) == pytest.approx(6.0) and shrunk[2, 2] == pytest.approx(0.9 * 1 + 0.1 * 2)


def test_unusable_target_is_a_clear_error():
    with pytest.raises(ValueError, match="target embeddings"):
        mixture_advice({"a": np.ones((5, 3))}, np.ones((1, 3)))
    with pytest.raises(ValueError, match="no usable source embeddings"):
        mixture_advice({"a": np.ones((5, 4))}, np.random.default_rng(0).standard_normal((10, 3)))


# ---------------------------------------------------------------- real MiniLM embeddings
def _mmlu_questions(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return [row[0] for row in csv.reader(f)]


def _jsonl_texts(path: Path, limit: int, chars: int) -> list[str]:
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        texts.append(json.loads(line)["text"][:chars])
    return texts


def _arxiv_paragraphs(path: Path, limit: int) -> list[str]:
    paragraphs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        paragraphs += [p.strip() for p in json.loads(line)["text"].split("\n\n") if len(p.strip()) > 200]
    return paragraphs[:: max(1, len(paragraphs) // limit)][:limit]


@pytest.fixture(scope="module")
def minilm_embeddings(shared_data):
    from catalog.variant import EmbedderConfig
    from indexing.embed import Embedder

    embedder = Embedder(EmbedderConfig(device="cpu"))  # the default (bundled) MiniLM, as a datastore embeds
    embedder.model.max_seq_length = 96  # questions and short chunk heads: enough for a second moment, fast on 2 cores
    embed = embedder.encode_documents

    biology = _mmlu_questions(shared_data / "mmlu" / "test" / "high_school_biology_test.csv")
    samples = shared_data / "pretraining_samples"
    sources = {
        "biology_questions": embed(biology[60:160]),
        "c4_web": embed(_jsonl_texts(samples / "c4_sample.jsonl", 60, 400)),
        "arxiv_latex": embed(_arxiv_paragraphs(samples / "arxiv_redpajama_sample.jsonl", 60)),
    }
    return sources, embed(biology[:60])


def test_minilm_advice_favours_the_in_domain_source(minilm_embeddings):
    sources, target = minilm_embeddings
    report = mixture_advice(sources, target)
    assert report.dim == 384 and report.rank == 12 and report.center == "union"
    weights = report.recommended
    assert max(weights, key=weights.get) == "biology_questions"
    profiles = {p.name: p for p in report.sources}
    in_domain = profiles["biology_questions"]
    assert in_domain.relevance > profiles["c4_web"].relevance
    assert in_domain.relevance > profiles["arxiv_latex"].relevance
    assert in_domain.covered_fraction >= max(
        profiles["c4_web"].covered_fraction, profiles["arxiv_latex"].covered_fraction
    )
    assert all(np.isfinite(p.hardness) and 1 <= p.effective_rank <= report.rank for p in report.sources)
    qp, uniform, _ = report.weightings
    assert qp.objective <= uniform.objective
