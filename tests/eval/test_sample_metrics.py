"""pass@k, maj@k over answer-equivalence classes, bootstrap CIs, sample tables."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from eval.graders import MathGrader
from eval.graders.math_equivalence import normalize_math_answer
from eval.sample_metrics import (
    NO_ANSWER,
    SampleMatrix,
    answer_class_expr,
    answer_classes,
    bootstrap_ci,
    maj_at_k_curve,
    pass_at_k,
    pass_at_k_curve,
    score_samples,
)


def exact_pass_at_k(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def exact_maj_at_k(classes: list[int], correct: list[bool], k: int) -> float:
    """Brute force over every size-k subset: majority of answered samples, ties split uniformly."""
    value = {}
    for cls in set(classes) - {NO_ANSWER}:
        members = [ok for c, ok in zip(classes, correct, strict=True) if c == cls]
        value[cls] = sum(members) / len(members)
    total = 0.0
    subsets = list(itertools.combinations(range(len(classes)), k))
    for subset in subsets:
        votes: dict[int, int] = {}
        for i in subset:
            if classes[i] != NO_ANSWER:
                votes[classes[i]] = votes.get(classes[i], 0) + 1
        if not votes:
            continue
        top = max(votes.values())
        tied = [c for c, v in votes.items() if v == top]
        total += sum(value[c] for c in tied) / len(tied)
    return total / len(subsets)


def test_pass_at_k_matches_the_binomial_formula():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 8, 3) == 1.0  # n - c < k: certain
    rng = np.random.default_rng(0)
    correct = rng.random((40, 64)) < rng.random((40, 1))
    curve = pass_at_k_curve(correct)
    for q in range(0, 40, 7):
        c = int(correct[q].sum())
        for k in (1, 2, 5, 17, 32, 63, 64):
            assert curve[q, k - 1] == pytest.approx(float(exact_pass_at_k(64, c, k)), abs=1e-12)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


CASES = [
    # classes, correct flags: ties, abstentions, a correct minority, a mixed class
    ([0, 0, 1, 1, 2, NO_ANSWER], [True, True, False, False, False, False]),
    ([1, 1, 0, 0, 0, 0, 2, 2], [False, False, True, True, True, True, False, False]),
    ([0, 1, 2, 3, 4, 5], [True, False, False, False, False, False]),
    ([0, 0, 0, 1, 1, NO_ANSWER, NO_ANSWER], [True, False, True, False, False, False, False]),
]


@pytest.mark.parametrize(("classes", "correct"), CASES)
def test_maj_at_k_matches_exhaustive_enumeration(classes, correct):
    estimate = maj_at_k_curve(np.array([classes]), np.array([correct]), n_draws=40_000, seed=3)[0]
    for k in range(1, len(classes) + 1):
        # Monte Carlo standard error <= 0.5 / sqrt(40000) = 0.0025
        assert estimate[k - 1] == pytest.approx(exact_maj_at_k(classes, correct, k), abs=0.012), k


def test_maj_at_k_uses_all_samples_not_the_first_k():
    # lm-eval's maj@k votes over the first k samples: here that is 0 for k <= 2. The majority of all 8 is right.
    classes = np.array([[1, 1, 0, 0, 0, 0, 0, 0]])
    correct = classes == 0
    curve = maj_at_k_curve(classes, correct, n_draws=20_000, seed=0)[0]
    assert curve[0] == pytest.approx(0.75, abs=0.02)
    assert curve[1] == pytest.approx(exact_maj_at_k([1, 1, 0, 0, 0, 0, 0, 0], list(correct[0]), 2), abs=0.02)
    assert curve[7] == 1.0


def test_maj_at_k_is_seeded_and_batches_agree():
    rng = np.random.default_rng(1)
    classes = rng.integers(-1, 4, (30, 16))
    correct = classes == 0
    a = maj_at_k_curve(classes, correct, n_draws=200, seed=9)
    assert np.array_equal(a, maj_at_k_curve(classes, correct, n_draws=200, seed=9))
    small_batches = maj_at_k_curve(classes, correct, n_draws=200, seed=9, batch_elements=10_000)
    np.testing.assert_allclose(a, small_batches, atol=0.1)  # different question batches draw different ties
    assert not np.array_equal(a, maj_at_k_curve(classes, correct, n_draws=200, seed=10))


def test_bootstrap_ci_brackets_the_mean_with_the_expected_width():
    rng = np.random.default_rng(2)
    per_question = (rng.random((400, 1)) < 0.3).astype(float)
    low, high = bootstrap_ci(per_question, n_boot=2000, seed=0)
    mean = per_question.mean()
    assert low[0] < mean < high[0]
    expected_width = 2 * 1.96 * math.sqrt(mean * (1 - mean) / 400)
    assert high[0] - low[0] == pytest.approx(expected_width, rel=0.15)
    assert np.array_equal(low, bootstrap_ci(per_question, n_boot=2000, seed=0)[0])


def _table(rows_per_question: dict[str, list[tuple[str | None, bool]]]) -> pl.DataFrame:
    rows = []
    for qid, samples in rows_per_question.items():
        for i, (answer, ok) in enumerate(samples):
            rows.append({"question_id": qid, "sample_index": i, "answer": answer, "correct": ok})
    return pl.DataFrame(rows)


def test_sample_matrix_from_table_cuts_ragged_and_derives_classes():
    table = _table(
        {
            "q2": [("5", True), ("5", True), ("4", False)],
            "q1": [("a", False), (None, False), ("a ", False), ("b", True)],
        }
    )
    matrix = SampleMatrix.from_table(table)
    assert matrix.question_ids == ["q1", "q2"]
    assert matrix.n == 3 and matrix.dropped_samples == 1
    assert matrix.answer_class.tolist() == [[0, NO_ANSWER, 0], [1, 1, 0]]
    assert matrix.correct.tolist() == [[False, False, False], [True, True, False]]
    with pytest.raises(ValueError, match="missing columns"):
        SampleMatrix.from_table(pl.DataFrame({"question_id": ["q"]}))


def test_answer_class_expr_numbers_only_answers():
    frame = pl.DataFrame({"question_id": ["a", "a", "a", "b", "b"], "answer": ["", "y", "x", None, "z"]})
    classes = frame.select(answer_class_expr(pl.col("answer")).alias("c"))["c"].to_list()
    # empty and missing answers abstain and leave no gap in the class ids
    assert classes == [NO_ANSWER, 1, 0, NO_ANSWER, 0]


def test_score_samples_table():
    table = _table({"q1": [("1", True), ("2", False)] * 2, "q2": [("3", False)] * 4})
    scores = score_samples(table, n_draws=2000, n_boot=200)
    assert set(scores["metric"]) == {"pass@k", "maj@k"}
    assert scores.height == 8
    row = scores.filter((pl.col("metric") == "pass@k") & (pl.col("k") == 2)).row(0, named=True)
    assert row["value"] == pytest.approx((1 - 1 / 6) / 2)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert row["n_questions"] == 2
    maj1 = scores.filter((pl.col("metric") == "maj@k") & (pl.col("k") == 1))["value"][0]
    assert maj1 == pytest.approx(0.25, abs=0.03)
    with pytest.raises(ValueError, match="between 1 and n=4"):
        score_samples(table, ks=[5])


def test_answer_classes_by_normalized_string_then_equivalence():
    answers = ["1/2", r"\frac12", "0.5", None, "x = 3", "3", r"\sqrt{4}", "2", ""]
    plain = answer_classes(answers)
    assert plain[3] == plain[8] == NO_ANSWER
    assert len({c for c in plain if c != NO_ANSWER}) == 7  # only identical strings share a class

    normalized = answer_classes(answers, normalize=normalize_math_answer)
    assert normalized[4] == normalized[5]  # "x = 3" normalizes to "3"
    assert len({normalized[0], normalized[1], normalized[2]}) == 3  # different strings for the same number
    with MathGrader(timeout_s=5.0) as grader:
        grouped = answer_classes(answers, normalize=normalize_math_answer, equivalent=grader.equivalent)
    assert grouped[0] == grouped[1] == grouped[2]
    assert grouped[4] == grouped[5]
    assert grouped[6] == grouped[7]
    assert len({grouped[0], grouped[4], grouped[6]}) == 3
