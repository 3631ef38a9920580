"""Properties of normalization, n-gram hashing and matching on generated text (hypothesis)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from buildplan.questions import load_questions, questions_of
from catalog.variant import BenchmarkRef, DecontaminationConfig
from eval.benchmarks import BenchmarkItem
from indexing.decontaminate import DecontaminationFilter, Decontaminator
from indexing.normalize import normalize_text, tokenize_batch, window_hashes, window_hashes_at, word_tokens

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéß0123456789", min_size=1, max_size=8)
separators = st.sampled_from([" ", "  ", "\n", "\t", ", ", ". ", " -- ", "!\n", " (", ") ", "’", "_"])


@settings(max_examples=60, deadline=None)
@given(st.lists(words, min_size=1, max_size=40), st.data())
def test_reformatting_never_changes_the_tokens(tokens, data):
    text = "".join(t + data.draw(separators) for t in tokens)
    assert word_tokens(text) == [t.lower() for t in tokens]
    assert normalize_text(text) == " ".join(tokens).lower()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(words, max_size=30), min_size=1, max_size=6), st.integers(1, 12))
def test_window_hashes_at_equals_the_all_windows_pass(texts, n):
    batch = tokenize_batch([" ".join(t) for t in texts])
    starts = batch.window_starts(n)
    assert np.array_equal(window_hashes(batch.hashes, [n])[n][starts], window_hashes_at(batch.hashes, starts, n))
    # every window start lies in one text and every text with >= n tokens has len - n + 1 of them
    assert len(starts) == sum(max(len(t) - n + 1, 0) for t in texts)


QUESTION = "Which of the following best describes the structure that collects urine in the body before it leaves"
DECON = Decontaminator.from_questions(
    questions_of({"mmlu": [BenchmarkItem("mmlu", "anatomy/x", QUESTION, "A", ("a",) * 4)]})
)


@settings(max_examples=50, deadline=None)
@given(st.lists(words, max_size=30), st.lists(words, max_size=30), st.data())
def test_a_planted_question_is_found_in_any_surrounding_text(before, after, data):
    tokens = word_tokens(QUESTION)
    planted = "".join(t.upper() + data.draw(separators) for t in tokens)
    text = " ".join(before) + " " + planted + " " + " ".join(after)
    offsets = [m.offset for m in DECON.find(text)]
    assert offsets[: len(tokens) - 16 + 1] == [len(before) + i for i in range(len(tokens) - 16 + 1)]
    assert DECON.find(" ".join([*before, *tokens[:15], "zzz", *after])) == []  # n-1 tokens are never enough


def test_equal_questions_reuse_a_built_decontaminator(shared_data):
    cfg = DecontaminationConfig(benchmarks=(BenchmarkRef(name="math500", path=shared_data / "math500"),))
    # loaded twice (as two units on one worker receive them): equal content, one built index
    assert Decontaminator.from_questions(load_questions(cfg)) is Decontaminator.from_questions(load_questions(cfg))
    first, second = (
        DecontaminationFilter.from_questions(load_questions(cfg)),
        DecontaminationFilter.from_questions(load_questions(cfg)),
    )
    first.run(pl.DataFrame({"doc_id": ["a"], "text": ["x"]}))
    assert second.stats.as_dict() == {}  # filters keep their own counters
