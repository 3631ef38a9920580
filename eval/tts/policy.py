"""Compute-optimal test-time scaling: pick the best strategy per difficulty bin and budget, and score that choice.

Difficulty comes from the stored samples of the base setting (parallel samples without retrieval): *oracle* bins
use the base model's pass@1 (needs ground truth), *predicted* bins the verifier's mean score (needs none). Five
quantile bins. The choice per (bin, budget) is made on a validation split and applied to the test split (or
cross-fitted over folds); regret is measured against the choice an oracle would make on the test questions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from catalog.hashing import content_hash
from catalog.registry import Registry
from eval.tts.samples import NO_RETRIEVAL, PARALLEL, SampleTable

DifficultyFn = Callable[[], pl.Expr]
DIFFICULTY: Registry[DifficultyFn] = Registry("difficulty")
N_BINS = 5
SelectionMode = Literal["split", "crossfit"]


def register_difficulty(name: str) -> Callable[[DifficultyFn], DifficultyFn]:
    return DIFFICULTY.register(name)


@register_difficulty("oracle")
def _oracle_pass_at_1() -> pl.Expr:
    """The base model's pass@1: the share of its stored samples that are correct (uses ground truth)."""
    return pl.col("correct").cast(pl.Float64).mean()


@register_difficulty("predicted")
def _mean_verifier_score() -> pl.Expr:
    """The verifier's mean score over the base samples (no ground truth: usable on new questions)."""
    return pl.col("verifier_score").mean()


def base_samples(table: SampleTable) -> pl.DataFrame:
    """Parallel samples of the base setting: no retrieval when stored, else the first retrieval setting."""
    parallel = table.frame.filter(pl.col("source") == PARALLEL)
    settings = sorted(parallel["retrieval"].unique().to_list())
    chosen = NO_RETRIEVAL if NO_RETRIEVAL in settings else (settings[0] if settings else None)
    return parallel.filter(pl.col("retrieval") == chosen)


def difficulty_bins(table: SampleTable, kind: str, question_ids: list[str], n_bins: int = N_BINS) -> np.ndarray:
    """Bin (0 = hardest) of each question by quantiles of its difficulty score; -1 when it has no base samples."""
    frame = base_samples(table)
    scores = frame.group_by("question_id").agg(DIFFICULTY[kind]().alias("score"))
    lookup = dict(scores.iter_rows())
    values = np.array([lookup.get(q) if lookup.get(q) is not None else np.nan for q in question_ids], dtype=float)
    known = np.isfinite(values)
    # Ties (many questions at pass@1 = 0 or 1) are broken by a hash of the id, so equal-size bins stay stable.
    tiebreak = np.array([int(content_hash(q), 16) for q in question_ids], dtype=float)
    order = np.lexsort((tiebreak[known], values[known]))
    ranks = np.empty(int(known.sum()), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    bins = np.full(len(question_ids), -1, dtype=np.int64)
    bins[known] = ranks * n_bins // max(len(order), 1)
    return bins


def validation_mask(table: SampleTable, question_ids: list[str]) -> np.ndarray:
    """True for validation questions: the table's ``split`` column when set, else half of the ids by hash."""
    given = dict(table.frame.filter(pl.col("split").is_not_null()).select("question_id", "split").unique().iter_rows())
    return np.array([given[q] == "val" if q in given else int(content_hash(q), 16) % 2 == 0 for q in question_ids])


def fold_ids(question_ids: list[str], n_folds: int) -> np.ndarray:
    return np.array([int(content_hash(f"fold:{q}"), 16) % n_folds for q in question_ids])


@dataclass
class PolicyOutcome:
    """The policy at one budget: its choices and accuracies, and the oracle choice it is measured against."""

    budget: int
    choices: list[int]  # strategy index per bin (selected on validation / training folds)
    accuracy: float  # on the test questions (cross-fitted: on every question)
    validation_accuracy: float  # in-sample on the questions the choice was made on
    oracle_choices: list[int]
    oracle_accuracy: float
    tokens: float  # mean tokens per test question

    @property
    def regret(self) -> float:
        return self.oracle_accuracy - self.accuracy


def _choose(acc: np.ndarray, tokens: np.ndarray, bins: np.ndarray, mask: np.ndarray, n_bins: int) -> np.ndarray:
    """Per bin, the strategy with the highest mean accuracy on ``mask`` (ties: the cheaper one).

    A bin with no questions in ``mask`` gets the best strategy over all of ``mask``.
    """
    overall = _argbest(acc[:, mask], tokens[:, mask])
    return np.array(
        [
            _argbest(acc[:, mask & (bins == b)], tokens[:, mask & (bins == b)])
            if (mask & (bins == b)).any()
            else overall
            for b in range(n_bins)
        ]
    )


def _argbest(acc: np.ndarray, tokens: np.ndarray) -> int:
    mean_acc, mean_tokens = acc.mean(axis=1), tokens.mean(axis=1)
    best = np.flatnonzero(mean_acc >= mean_acc.max() - 1e-12)
    return int(best[np.argmin(mean_tokens[best])])


def _apply(acc: np.ndarray, choices: np.ndarray, bins: np.ndarray, mask: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(mask)
    return acc[choices[bins[idx]], idx]


def choose_policy(
    acc: np.ndarray,
    tokens: np.ndarray,
    bins: np.ndarray,
    is_validation: np.ndarray,
    budget: int,
    mode: SelectionMode = "split",
    n_folds: int = 5,
    folds: np.ndarray | None = None,
    n_bins: int = N_BINS,
) -> PolicyOutcome:
    """Select a strategy per bin from ``acc``/``tokens`` ``[S, Q]`` (only strategies available at this budget).

    ``split``: choose on the validation questions, report on the test questions. ``crossfit``: each fold is
    scored with the choice made on the other folds, so every question is a test question once.
    """
    binned = bins >= 0
    if mode == "split":
        val, test = is_validation & binned, ~is_validation & binned
        choices = _choose(acc, tokens, bins, val, n_bins)
        policy_acc = _apply(acc, choices, bins, test)
        policy_tokens = _apply(tokens, choices, bins, test)
        validation_acc = float(_apply(acc, choices, bins, val).mean())
    else:
        folds = folds if folds is not None else np.arange(acc.shape[1]) % n_folds
        test = binned
        per_q_acc, per_q_tokens = np.full(acc.shape[1], np.nan), np.full(acc.shape[1], np.nan)
        for k in np.unique(folds[binned]):
            fold = binned & (folds == k)
            fold_choices = _choose(acc, tokens, bins, binned & ~fold, n_bins) if (binned & ~fold).any() else None
            if fold_choices is None:
                fold_choices = _choose(acc, tokens, bins, binned, n_bins)
            per_q_acc[fold] = _apply(acc, fold_choices, bins, fold)
            per_q_tokens[fold] = _apply(tokens, fold_choices, bins, fold)
        choices = _choose(acc, tokens, bins, binned, n_bins)
        policy_acc, policy_tokens = per_q_acc[test], per_q_tokens[test]
        validation_acc = float(_apply(acc, choices, bins, binned).mean())
    oracle = _choose(acc, tokens, bins, test, n_bins)
    return PolicyOutcome(
        budget=budget,
        choices=choices.tolist(),
        accuracy=float(policy_acc.mean()),
        validation_accuracy=validation_acc,
        oracle_choices=oracle.tolist(),
        oracle_accuracy=float(_apply(acc, oracle, bins, test).mean()),
        tokens=float(policy_tokens.mean()),
    )


def budget_to_match(target: float, budgets: list[float], accuracies: list[float]) -> float | None:
    """Smallest budget at which a curve reaches ``target`` accuracy (log-linear interpolation); None if never."""
    for i, acc in enumerate(accuracies):
        if acc >= target - 1e-12:
            if i == 0:
                return float(budgets[0])
            prev_b, prev_acc = budgets[i - 1], accuracies[i - 1]
            frac = (target - prev_acc) / (acc - prev_acc)
            return float(np.exp(np.log(prev_b) + frac * (np.log(budgets[i]) - np.log(prev_b))))
    return None
