"""Exact and near dedup on real documents with a known number of planted duplicates."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from datasketch.lsh import _optimal_param

from catalog.variant import DedupConfig
from indexing.dedup import Deduplicator, MinHasher, lsh_bands
from indexing.normalize import InputTableError, tokenize_batch, word_tokens


@pytest.fixture(scope="module")
def real_docs(shared_data: Path) -> list[str]:
    """100 C4 pages and 20 arXiv papers: no duplicates among them (checked by the first test)."""
    samples = shared_data / "pretraining_samples"
    texts = [json.loads(line)["text"] for line in open(samples / "c4_sample.jsonl", encoding="utf-8")]
    texts += [json.loads(line)["text"] for line in open(samples / "arxiv_redpajama_sample.jsonl", encoding="utf-8")]
    return texts


def _table(texts: list[str], prefix: str = "doc") -> pl.DataFrame:
    return pl.DataFrame({"doc_id": [f"{prefix}-{i}" for i in range(len(texts))], "text": texts})


def _shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    tokens = word_tokens(text)
    return {tuple(tokens[i : i + k]) for i in range(len(tokens) - k + 1)} or {tuple(tokens)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def _reformat(text: str, rng: random.Random) -> str:
    """Same normalized text: case, spacing, line breaks and punctuation changed."""
    words = text.split()
    separators = [rng.choice(["  ", "\n", " \t", " -- ", "... "]) for _ in words]
    return "".join(sep + (w.upper() if rng.random() < 0.3 else w) for sep, w in zip(separators, words, strict=True))


def _lightly_edit(text: str, rng: random.Random) -> str:
    """One word in ~300 replaced by a new word: a near duplicate."""
    words = text.split()
    for _ in range(max(1, len(words) // 300)):
        words[rng.randrange(len(words))] = f"zqx{rng.randrange(10**6)}"
    return " ".join(words)


def test_the_real_documents_have_no_duplicates(real_docs):
    result = Deduplicator(DedupConfig()).run(_table(real_docs))
    assert result.kept.height == len(real_docs) == 120
    assert result.clusters.height == 0
    assert result.stats.as_dict() == {
        "documents_in": 120,
        "documents_out": 120,
        "exact_clusters": 0,
        "exact_removed": 0,
        "near_clusters": 0,
        "near_removed": 0,
    }


def test_planted_exact_copies_with_formatting_changes_are_removed(real_docs):
    rng = random.Random(7)
    sources = [i for i, t in enumerate(real_docs[:100]) if t.isascii() and len(t.split()) >= 40][:20]
    copies = [_reformat(real_docs[i], rng) for i in sources] + [_reformat(real_docs[i], rng) for i in sources[:5]]
    texts = real_docs + copies
    result = Deduplicator(DedupConfig(near=False)).run(_table(texts))

    assert result.stats.as_dict()["exact_removed"] == 25
    assert result.stats.as_dict()["exact_clusters"] == 20
    assert result.cluster_sizes["exact"] == {2: 15, 3: 5}
    assert result.kept["doc_id"].to_list() == [f"doc-{i}" for i in range(120)]  # the first of each is kept
    kept_for = dict(result.clusters.select("doc_id", "kept_doc_id").rows())
    assert kept_for["doc-120"] == f"doc-{sources[0]}" and kept_for["doc-140"] == f"doc-{sources[0]}"


def test_planted_near_copies_are_removed_and_nothing_else(real_docs):
    rng = random.Random(11)
    sources = [i for i, t in enumerate(real_docs) if len(t.split()) >= 200][:30]
    copies = [_lightly_edit(real_docs[i], rng) for i in sources]
    assert min(_jaccard(real_docs[i], c) for i, c in zip(sources, copies, strict=True)) >= 0.9
    texts = real_docs + copies
    result = Deduplicator(DedupConfig()).run(_table(texts))

    stats = result.stats.as_dict()
    assert (stats["exact_removed"], stats["near_removed"], stats["near_clusters"]) == (0, 30, 30)
    assert result.kept["doc_id"].to_list() == [f"doc-{i}" for i in range(120)]
    pairs = set(
        result.clusters.filter(pl.col("doc_id") != pl.col("kept_doc_id")).select("doc_id", "kept_doc_id").rows()
    )
    assert pairs == {(f"doc-{120 + k}", f"doc-{i}") for k, i in enumerate(sources)}


def test_partial_overlap_below_the_threshold_is_not_merged(real_docs):
    long_docs = [t for t in real_docs if len(t.split()) >= 400][:6]
    spliced = []
    for a, b in zip(long_docs[::2], long_docs[1::2], strict=True):
        wa, wb = a.split(), b.split()
        spliced.append(" ".join(wa[: len(wa) // 2] + wb[len(wb) // 2 :]))  # half of each: Jaccard ~0.3-0.5
    assert max(_jaccard(s, d) for s in spliced for d in long_docs) < 0.6
    result = Deduplicator(DedupConfig()).run(_table(long_docs + spliced))
    assert result.kept.height == len(long_docs) + len(spliced)


def test_real_exact_duplicates_in_vaswani_match_an_independent_count(shared_data: Path):
    trec = (shared_data / "retrieval" / "vaswani_npl" / "doc-text.trec").read_text(encoding="utf-8")
    docs = re.findall(r"<DOC>\s*<DOCNO>.*?</DOCNO>(.*?)</DOC>", trec, re.S)
    assert len(docs) == 11429
    # Vaswani abstracts are lower case without punctuation: whitespace-joined words are the normalized text.
    expected = sum(n - 1 for n in Counter(" ".join(d.split()) for d in docs).values())
    result = Deduplicator(DedupConfig(near=False)).run(_table(docs))
    assert result.stats.as_dict()["exact_removed"] == expected == 16


def test_signatures_are_deterministic_and_seeded(real_docs):
    batch = tokenize_batch(real_docs[:30])
    first = MinHasher(128, 5).signatures(batch)
    assert np.array_equal(first, MinHasher(128, 5).signatures(tokenize_batch(real_docs[:30])))
    assert not np.array_equal(first, MinHasher(128, 5, seed=1).signatures(batch))
    assert first.shape == (30, 128) and first.dtype == np.uint32


def test_minhash_estimates_jaccard(real_docs):
    rng = random.Random(3)
    base = [t for t in real_docs if len(t.split()) >= 300][:10]
    variants = []
    for k, text in enumerate(base):  # replace 0%, 1.5%, ... 13.5% of words: true similarities from 1 to ~0.35
        words = text.split()
        for i in rng.sample(range(len(words)), int(len(words) * 0.015 * k)):
            words[i] = f"w{rng.randrange(10**6)}"
        variants.append(" ".join(words))
    sig = MinHasher(256, 5).signatures(tokenize_batch(base + variants))
    estimates = (sig[: len(base)] == sig[len(base) :]).mean(axis=1)
    truth = np.array([_jaccard(a, b) for a, b in zip(base, variants, strict=True)])
    assert np.abs(estimates - truth).max() < 0.1
    assert truth.min() < 0.5 < truth.max()


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 128), (0.5, 128), (0.9, 64), (0.7, 256)])
def test_lsh_bands_agree_with_datasketch(threshold: float, num_perm: int):
    assert lsh_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_exact_copies_are_still_caught_by_near_dedup_alone(real_docs):
    rng = random.Random(5)
    sources = [i for i, t in enumerate(real_docs) if t.isascii() and len(t.split()) >= 40][:10]
    texts = real_docs + [_reformat(real_docs[i], rng) for i in sources]
    result = Deduplicator(DedupConfig(exact=False)).run(_table(texts))
    assert result.stats.as_dict()["near_removed"] == 10
    assert result.stats.as_dict()["exact_clusters"] == 0


def test_a_table_without_text_is_a_clear_error():
    with pytest.raises(InputTableError, match="text"):
        Deduplicator(DedupConfig()).run(pl.DataFrame({"doc_id": ["a"]}))


def test_shard_hashing_reports_progress_per_batch(tmp_path: Path):
    """The dedup-signatures unit's dashboard progress moves per batch hashed, up to the shard's row count."""
    from indexing.dedup import ShardHasher

    texts = [f"document number {i} with a few words" for i in range(25)]
    batches = [_table(texts[i : i + 10]) for i in range(0, 25, 10)]
    reports: list[tuple[int, int | None]] = []
    ShardHasher(DedupConfig()).run(batches, 25, tmp_path, on_progress=lambda done, total: reports.append((done, total)))
    assert reports == [(10, 25), (20, 25), (25, 25)]
