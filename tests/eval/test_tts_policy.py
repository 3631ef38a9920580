"""Strategies and the compute-optimal policy on stored samples from a generator double with known success rates."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest
from scipy.stats import binom
from typer.testing import CliRunner

from eval.multiplier import MultiplierSettings, compute_multipliers
from eval.multiplier_curves import Sigmoid
from eval.sample_metrics import SampleMatrix, maj_at_k_curve, pass_at_k_curve
from eval.tts.generation import Generation, TtsQuestion, sample_parallel, sample_revisions
from eval.tts.policy import choose_policy, difficulty_bins
from eval.tts.report import TtsSettings, build_tts_report, ladder_rows, report_key
from eval.tts.samples import SamplesError, validate_samples, write_samples
from eval.tts.strategies import RetrievalSpec, StrategySpec, enumerate_strategies, evaluate_strategy
from flows.cli import app


class BernoulliGeneratorDouble:
    """Test double for an LLM: each sample of question q is correct with probability ``p[q]``.

    ``wrong_answers`` = 1 gives a binary-answer double (every wrong sample says the same wrong thing).
    """

    def __init__(self, p: dict[str, float], wrong_answers: int = 1, tokens: int = 100, seed: int = 0) -> None:
        self.p, self.wrong_answers, self.tokens, self.seed = p, wrong_answers, tokens, seed

    def _rng(self, question: TtsQuestion, seed: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, seed, int(question.question_id.removeprefix("q"))])

    def _one(self, question: TtsQuestion, rng: np.random.Generator) -> Generation:
        if rng.random() < self.p[question.question_id]:
            answer = question.reference
        else:
            answer = f"wrong{rng.integers(self.wrong_answers)}"
        return Generation(f"The answer is {answer}", answer, self.tokens, 20)

    def solutions(self, question: TtsQuestion, n: int, seed: int) -> list[Generation]:
        rng = self._rng(question, seed)
        return [self._one(question, rng) for _ in range(n)]

    def next_steps(self, question, prefix, n, seed):
        raise NotImplementedError("the Bernoulli double has no steps")

    def revise(self, question: TtsQuestion, attempts: Sequence[Generation], seed: int) -> Generation:
        return self._one(question, self._rng(question, seed + 7919))


class PerfectVerifierDouble:
    """Test double for a verifier that always knows: 1.0 for a correct solution, 0.0 otherwise."""

    def __init__(self, references: dict[str, str]) -> None:
        self.references = references

    def score(self, question: str, solutions: Sequence[str]) -> list[float]:
        gold = self.references[question]
        return [1.0 if s == f"The answer is {gold}" else 0.0 for s in solutions]


N_QUESTIONS, N_SAMPLES = 400, 32


def _questions(n: int) -> list[TtsQuestion]:
    return [TtsQuestion(f"q{i}", f"question {i}", f"gold{i}") for i in range(n)]


@pytest.fixture(scope="module")
def success_rates() -> dict[str, float]:
    rng = np.random.default_rng(11)
    return {f"q{i}": float(p) for i, p in enumerate(rng.beta(0.7, 0.7, N_QUESTIONS))}


@pytest.fixture(scope="module")
def binary_table(success_rates):
    questions = _questions(N_QUESTIONS)
    verifier = PerfectVerifierDouble({q.prompt: q.reference for q in questions})
    frame = sample_parallel(BernoulliGeneratorDouble(success_rates, 1), questions, N_SAMPLES, verifier=verifier)
    return validate_samples(frame)


def _true_p(table, success_rates) -> np.ndarray:
    return np.array([success_rates[q] for q in table.question_ids])


@pytest.mark.parametrize("budget", [1, 4, 8])
def test_best_of_n_with_perfect_verifier_is_pass_at_n(binary_table, success_rates, budget):
    qids = binary_table.question_ids
    outcome = evaluate_strategy(binary_table, StrategySpec("parallel", "weighted"), budget, qids, draws=200)
    analytic = np.mean(1 - (1 - _true_p(binary_table, success_rates)) ** budget)
    assert outcome.accuracy.mean() == pytest.approx(analytic, abs=0.025)
    # Against the unbiased pass@N of the very samples stored, the only error left is the Monte Carlo over subsets.
    matrix = SampleMatrix.from_table(binary_table.frame.rename({"sample_idx": "sample_index"}))
    assert outcome.accuracy.mean() == pytest.approx(pass_at_k_curve(matrix.correct)[:, budget - 1].mean(), abs=0.006)
    assert outcome.tokens.mean() == pytest.approx(budget * 120)


@pytest.mark.parametrize("budget", [1, 3, 4, 9])
def test_majority_vote_on_binary_answers_matches_binomial_formula(binary_table, success_rates, budget):
    qids = binary_table.question_ids
    outcome = evaluate_strategy(binary_table, StrategySpec("parallel", "majority"), budget, qids, draws=200)
    p = _true_p(binary_table, success_rates)
    wins = 1 - binom.cdf(budget // 2, budget, p)
    ties = 0.5 * binom.pmf(budget // 2, budget, p) if budget % 2 == 0 else 0.0
    assert outcome.accuracy.mean() == pytest.approx(np.mean(wins + ties), abs=0.025)
    matrix = SampleMatrix.from_table(binary_table.frame.rename({"sample_idx": "sample_index"}))
    reference = maj_at_k_curve(matrix.answer_class, matrix.correct, n_draws=400)[:, budget - 1].mean()
    assert outcome.accuracy.mean() == pytest.approx(reference, abs=0.008)


def test_weighted_vote_sums_scores_per_answer_class():
    # Three samples say "a" with low scores, one says "b" with a high score: weighted picks a (0.9 > 0.8).
    frame = pl.DataFrame(
        {
            "question_id": ["q"] * 4,
            "sample_idx": [0, 1, 2, 3],
            "answer": ["a", "A ", "a.", "b"],
            "correct": [True, True, True, False],
            "verifier_score": [0.3, 0.3, 0.3, 0.8],
        }
    )
    table = validate_samples(frame)
    weighted = evaluate_strategy(table, StrategySpec("parallel", "weighted"), 4, ["q"])
    best = evaluate_strategy(table, StrategySpec("parallel", "best_score"), 4, ["q"])
    assert weighted.accuracy.tolist() == [1.0]
    assert best.accuracy.tolist() == [0.0]


def test_samples_without_answers_abstain_and_ties_share_credit():
    frame = pl.DataFrame(
        {
            "question_id": ["q"] * 3,
            "sample_idx": [0, 1, 2],
            "answer": ["a", "b", None],
            "correct": [True, False, False],
        }
    )
    outcome = evaluate_strategy(validate_samples(frame), StrategySpec("parallel", "majority"), 3, ["q"])
    assert outcome.accuracy.tolist() == [0.5]


def test_difficulty_bins_are_quantiles_of_pass_at_1(binary_table, success_rates):
    qids = binary_table.question_ids
    bins = difficulty_bins(binary_table, "oracle", qids)
    assert np.bincount(bins).tolist() == [N_QUESTIONS // 5] * 5
    p = _true_p(binary_table, success_rates)
    means = [p[bins == b].mean() for b in range(5)]
    assert means == sorted(means) and means[0] < 0.15 and means[-1] > 0.85
    predicted = difficulty_bins(binary_table, "predicted", qids)
    assert np.array_equal(predicted, bins)  # the perfect verifier's mean score is the pass@1


# ---------------------------------------------------------------- the policy
@pytest.fixture(scope="module")
def retrieval_table(success_rates):
    """Retrieval (k=5) lifts hard questions by 0.4 and distracts on easy ones (-0.3): the policy should split."""
    questions = _questions(N_QUESTIONS)
    verifier = PerfectVerifierDouble({q.prompt: q.reference for q in questions})
    with_retrieval = {q: float(np.clip(p + 0.4 if p < 0.5 else p - 0.3, 0, 1)) for q, p in success_rates.items()}
    plain = sample_parallel(BernoulliGeneratorDouble(success_rates, 3), questions, 16, verifier=verifier)
    retrieved = sample_parallel(
        BernoulliGeneratorDouble(with_retrieval, 3, seed=1),
        [TtsQuestion(q.question_id, q.prompt, q.reference, retrieval="k=5") for q in questions],
        16,
        verifier=verifier,
    )
    chains = sample_revisions(BernoulliGeneratorDouble(success_rates, 3, seed=2), questions, 2, 8, verifier=verifier)
    return validate_samples(pl.concat([plain, retrieved, chains], how="diagonal_relaxed"))


def test_strategies_enumerate_retrieval_and_revision_mixes(retrieval_table):
    names = {s.name for s in enumerate_strategies(retrieval_table)}
    assert {"parallel:weighted@none", "parallel:majority@k=5", "revisions(x4):weighted@none"} <= names
    assert "revisions(1 chain):weighted@none" in names


def test_revision_mix_draws_whole_chains():
    # Two chains of 2: chain 0 = [wrong, right], chain 1 = [wrong, wrong]; verifier scores all equal.
    frame = pl.DataFrame(
        {
            "question_id": ["q"] * 4,
            "sample_idx": [0, 1, 0, 1],
            "chain": [0, 0, 1, 1],
            "source": ["revision"] * 4,
            "answer": ["x", "r", "y", "y"],
            "correct": [False, True, False, False],
            "verifier_score": [0.5] * 4,
        }
    )
    table = validate_samples(frame)
    # Budget 2 as one chain of 2: chain 0 votes {x, r} (tie: 1/2), chain 1 votes y: expected (0.5 + 0) / 2.
    one_chain = evaluate_strategy(table, StrategySpec("revisions", "weighted", sequential=2), 2, ["q"], draws=400)
    assert one_chain.accuracy[0] == pytest.approx(0.25, abs=0.05)
    # Budget 4 = both chains of 2: votes x, r, y, y -> y wins: 0.
    both = evaluate_strategy(table, StrategySpec("revisions", "weighted", sequential=2), 4, ["q"])
    assert both.accuracy.tolist() == [0.0]
    # A budget that is not a whole number of chains is unavailable, not guessed.
    assert not evaluate_strategy(table, StrategySpec("revisions", "weighted", sequential=2), 3, ["q"]).available


def test_policy_never_worse_than_best_single_strategy_on_validation(retrieval_table):
    report = build_tts_report(retrieval_table, TtsSettings(budgets=(1, 2, 4, 8), draws=32))
    for kind, points in report.policies.items():
        for point in points:
            assert point.validation_accuracy >= point.best_single_validation_accuracy - 1e-12, (kind, point.budget)
            assert point.regret >= -1e-12


def test_policy_allocates_retrieval_to_hard_questions(retrieval_table):
    report = build_tts_report(retrieval_table, TtsSettings(budgets=(1, 4), draws=32))
    oracle_at_4 = next(p for p in report.policies["oracle"] if p.budget == 4)
    assert oracle_at_4.choices["bin1 (hardest)"].endswith("@k=5")
    assert oracle_at_4.choices["bin5"].endswith("@none")
    single = {p.strategy: p.accuracy for p in report.strategies if p.budget == 4}
    assert oracle_at_4.accuracy > max(single.values()) + 0.02
    # Needs fewer samples than best-of-N weighted without retrieval at every budget it can match.
    savings = {s.budget: s for s in report.savings["oracle"]}
    assert savings[4].samples_ratio is not None and savings[4].samples_ratio > 1.5


def test_crossfit_scores_every_question(retrieval_table):
    report = build_tts_report(retrieval_table, TtsSettings(budgets=(2,), selection="crossfit", draws=16))
    assert report.n_test == N_QUESTIONS
    point = report.policies["oracle"][0]
    assert point.validation_accuracy >= point.best_single_validation_accuracy - 1e-12


def test_choose_policy_prefers_cheaper_strategy_on_ties():
    acc = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    tokens = np.array([[10.0] * 4, [5.0] * 4])
    bins = np.array([0, 0, 0, 0])
    outcome = choose_policy(acc, tokens, bins, np.array([True, True, False, False]), 1, n_bins=1)
    assert outcome.choices == [1]
    assert outcome.tokens == 5.0


def test_rejected_rows_are_counted():
    frame = pl.DataFrame(
        {
            "question_id": ["q", None, "q", "q"],
            "sample_idx": [0, 1, 2, 2],
            "answer": ["a", "b", "c", "c"],
            "correct": [True, False, None, False],
        }
    )
    table = validate_samples(frame)
    assert sorted(r.reason for r in table.rejections) == ["missing_grade", "missing_question_id"]
    assert len(table.frame) == 2
    with pytest.raises(SamplesError, match="lacks columns"):
        validate_samples(pl.DataFrame({"question_id": ["q"]}))


@pytest.mark.slow
def test_tts_report_cli_json_and_plot(retrieval_table, tmp_path):
    path = write_samples(retrieval_table.frame.drop("answer_key"), tmp_path / "samples.parquet")
    result = CliRunner().invoke(
        app, ["tts-report", str(path), "--budgets", "1,2,4", "--json", "--generator-params", "1000000000"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["policies"]) == {"oracle", "predicted"}
    for point in report["policies"]["oracle"]:
        assert {"budget", "accuracy", "oracle_accuracy", "regret", "tokens", "flops", "choices"} <= set(point)
        assert point["flops"] == pytest.approx(point["tokens"] * 2e9)
    assert {p["budget"] for p in report["strategies"]} == {1, 2, 4}
    assert (tmp_path / "samples.tts.png").read_bytes()[:4] == b"\x89PNG"


def test_retrieval_spec_round_trips():
    for spec in (RetrievalSpec(), RetrievalSpec(k=5), RetrievalSpec(k=20, rerank=True), RetrievalSpec(k=5, bags=4)):
        assert RetrievalSpec.parse(spec.key) == spec
    assert RetrievalSpec(k=20, rerank=True).key == "k=20,rerank"
    with pytest.raises(ValueError, match="cannot read"):
        RetrievalSpec.parse("k=five")


def test_every_strategy_gets_a_test_time_multiplier(retrieval_table):
    report = build_tts_report(retrieval_table, TtsSettings(budgets=(1, 4), draws=16))
    curve = Sigmoid(chance=0.0)
    truth = np.array([0.95, 1.2, 23.0])
    x = np.arange(21.0, 25.01, 0.5)
    ladder = pl.DataFrame(
        {"model": [f"m{v}" for v in x], "flops": 10.0**x, "base_acc": curve.predict(truth, x)[0], "benchmark": "all"}
    )
    base = next(p.accuracy for p in report.strategies if p.strategy == "parallel:majority@none" and p.budget == 1)
    rows = ladder_rows(report, "reader-8b", 10**22.5, base)
    result = compute_multipliers(pl.concat([ladder, rows], how="diagonal_relaxed"), MultiplierSettings(n_boot=50))
    assert len(result.rows) == len(report.strategies) + sum(len(v) for v in report.policies.values())
    ordered = sorted(result.rows, key=lambda r: r.method_acc)
    multipliers = [r.multiplier for r in ordered]
    assert multipliers == sorted(multipliers)  # more accuracy, more matched compute
    policy = next(r for r in result.rows if r.method == "policy(oracle)@N=4")
    assert policy.multiplier > next(r.multiplier for r in result.rows if r.method == "parallel:weighted@none@N=4")


def test_compute_matched_policy_stays_within_best_of_n_tokens(retrieval_table):
    report = build_tts_report(retrieval_table, TtsSettings(budgets=(1, 2, 4, 8), draws=16))
    reference = {p.budget: p for p in report.strategies if p.strategy == "parallel:weighted@none"}
    tokens = {f"{p.strategy} N={p.budget}": p.tokens for p in report.strategies}
    for kind, points in report.compute_matched.items():
        assert [p.budget for p in points] == [1, 2, 4, 8]
        for point in points:
            ref = reference[point.budget]
            # The reference itself is feasible, so on validation the policy can only do better.
            assert point.validation_accuracy >= ref.validation_accuracy - 1e-12, (kind, point.budget)
            # The limit holds on all questions' mean tokens; these are test-question means, hence the slack.
            for choice in point.choices.values():
                assert tokens[choice] <= ref.tokens * 1.05


def test_report_key_follows_samples_and_settings(binary_table):
    key = report_key(binary_table, TtsSettings())
    assert key == report_key(binary_table, TtsSettings())
    assert key != report_key(binary_table, TtsSettings(budgets=(1, 2)))
    flipped = validate_samples(binary_table.frame.drop("answer_key").with_columns(~pl.col("correct")))
    assert key != report_key(flipped, TtsSettings())
