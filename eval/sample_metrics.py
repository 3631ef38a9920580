"""Sample once, score many: pass@k, maj@k and bootstrap confidence intervals from stored samples, for every k.

The input is a table of stored samples, one row per (question, sample): ``question_id``, ``sample_index``,
``answer`` (extracted, null when none), ``correct`` (bool), ``answer_class`` (an id grouping equivalent answers of
the same question; -1 for no answer) and token counts. Every estimate uses all ``n`` samples of a question:

* pass@k is the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``, computed as a running product
  of ratios below 1 (no huge binomials).
* maj@k is the expected accuracy of a majority vote over a uniformly random size-k subset of the n samples, votes
  counted per answer-equivalence class, ties broken uniformly at random, samples without an answer abstaining. It is
  estimated by Monte Carlo over random orderings with a fixed seed: the first k samples of a random permutation are a
  uniform size-k subset, so one pass over a permutation scores every k at once. (lm-eval's maj@k votes on exact
  strings over the *first* k samples: one ordering, no equivalence.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

NO_ANSWER = -1


@dataclass(frozen=True)
class SampleMatrix:
    """Dense per-question sample arrays: row q holds the n samples of ``question_ids[q]`` in sample order."""

    question_ids: list[str]
    correct: np.ndarray  # [Q, n] bool
    answer_class: np.ndarray  # [Q, n] int, NO_ANSWER where nothing was extracted
    dropped_samples: int = 0  # samples beyond the smallest per-question count (ragged tables are cut to equal n)

    @property
    def n(self) -> int:
        return self.correct.shape[1]

    @classmethod
    def from_table(cls, table: pl.DataFrame | Sequence[dict]) -> SampleMatrix:
        frame = table if isinstance(table, pl.DataFrame) else pl.DataFrame(list(table))
        missing = [c for c in ("question_id", "sample_index", "correct") if c not in frame.columns]
        if missing:
            raise ValueError(f"sample table: missing columns {', '.join(missing)}")
        if "answer_class" not in frame.columns:
            frame = frame.with_columns(_exact_string_classes(frame))
        frame = frame.sort("question_id", "sample_index")
        counts = frame.group_by("question_id", maintain_order=True).len()
        n = int(counts["len"].min())
        if n == 0:
            raise ValueError("sample table: no samples")
        kept = frame.with_columns(pl.int_range(pl.len()).over("question_id").alias("_rank")).filter(pl.col("_rank") < n)
        q = counts.height
        return cls(
            question_ids=[str(x) for x in counts["question_id"].to_list()],
            correct=kept["correct"].fill_null(False).to_numpy().astype(bool).reshape(q, n),
            answer_class=kept["answer_class"].fill_null(NO_ANSWER).to_numpy().astype(np.int64).reshape(q, n),
            dropped_samples=frame.height - kept.height,
        )


def answer_class_expr(key: pl.Expr, over: str = "question_id") -> pl.Expr:
    """Class ids 0, 1, ... per ``over`` group from an answer key expression: equal keys share a class; a null or
    empty key gets NO_ANSWER (and takes no class id)."""
    voting = pl.when(key.is_null() | (key == "")).then(None).otherwise(key)
    return (voting.rank("dense").over(over).cast(pl.Int64) - 1).fill_null(NO_ANSWER)


def _exact_string_classes(frame: pl.DataFrame) -> pl.Expr:
    """Class ids from stripped answer strings, per question, when the table has none (no equivalence grouping)."""
    if "answer" not in frame.columns:
        raise ValueError("sample table: needs 'answer_class' or 'answer'")
    return answer_class_expr(pl.col("answer").str.strip_chars()).alias("answer_class")


# ---------------------------------------------------------------- answer-equivalence classes
def answer_classes(
    answers: Sequence[str | None],
    normalize: Callable[[str], str] = str.strip,
    equivalent: Callable[[str, str], bool] | None = None,
) -> list[int]:
    """Group one question's extracted answers into classes: equal normalized strings first, then ``equivalent``
    (e.g. ``MathGrader.equivalent``, through the grading worker) against each class's first member.
    Answers that are None or empty get NO_ANSWER."""
    by_key: dict[str, int] = {}
    representatives: list[str] = []
    classes = []
    for answer in answers:
        if answer is None or not answer.strip():
            classes.append(NO_ANSWER)
            continue
        key = normalize(answer)
        if key not in by_key:
            match = None
            if equivalent is not None:
                match = next((i for i, rep in enumerate(representatives) if equivalent(answer, rep)), None)
            if match is None:
                match = len(representatives)
                representatives.append(answer)
            by_key[key] = match
        classes.append(by_key[key])
    return classes


# ---------------------------------------------------------------- estimators
def pass_at_k_curve(correct: np.ndarray) -> np.ndarray:
    """Unbiased pass@k for k = 1..n: ``[Q, n]`` (column k-1 is pass@k) from a ``[Q, n]`` correctness array."""
    q, n = correct.shape
    c = correct.sum(axis=1)
    i = np.arange(n)
    # C(n-c, k) / C(n, k) = prod_{i<k} (n-c-i)/(n-i): every factor is in [0, 1], so the product is stable.
    factors = np.clip(n - c[:, None] - i[None, :], 0, None) / (n - i)[None, :]
    return 1.0 - np.cumprod(factors, axis=1)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question with n samples of which c are correct."""
    if not 1 <= k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n and 0 <= c <= n, got n={n}, c={c}, k={k}")
    return float(pass_at_k_curve((np.arange(n) < c)[None, :])[0, k - 1])


def _class_values(answer_class: np.ndarray, correct: np.ndarray, n_classes: int) -> np.ndarray:
    """Per question and class, the fraction of the class's samples that are correct ([Q, n_classes + 1]); the last
    column is the "no answer" class, worth 0."""
    q = answer_class.shape[0]
    idx = np.where(answer_class == NO_ANSWER, n_classes, answer_class)
    rows = np.repeat(np.arange(q), answer_class.shape[1])
    hits = np.zeros((q, n_classes + 1))
    sizes = np.zeros((q, n_classes + 1))
    np.add.at(hits, (rows, idx.ravel()), correct.ravel().astype(float))
    np.add.at(sizes, (rows, idx.ravel()), 1.0)
    values = np.divide(hits, sizes, out=np.zeros_like(hits), where=sizes > 0)
    values[:, n_classes] = 0.0
    return values


def maj_at_k_curve(
    answer_class: np.ndarray,
    correct: np.ndarray,
    n_draws: int = 1000,
    seed: int = 0,
    batch_elements: int = 1_000_000,
) -> np.ndarray:
    """Expected majority-vote accuracy for k = 1..n: ``[Q, n]``, Monte Carlo over ``n_draws`` random orderings.

    Per draw the samples are visited in a random order keeping vote counts; the running winner is the class with
    the most votes, ties going to the class with the higher random priority (drawn per draw, so ties are broken
    uniformly). Adding one vote to class c can only make c the new winner, so each step is O(1) per draw.
    The Monte Carlo standard error of a question's estimate is at most 0.5 / sqrt(n_draws).
    """
    q, n = answer_class.shape
    n_classes = int(answer_class.max()) + 1 if answer_class.size else 0
    sentinel = n_classes  # "no winner yet" and "no answer": never counted, worth 0
    values = _class_values(answer_class, correct, n_classes)
    classes = np.where(answer_class == NO_ANSWER, sentinel, answer_class)
    rng = np.random.default_rng(seed)
    out = np.zeros((q, n))
    width = n_classes + 1
    batch = max(1, batch_elements // (n_draws * max(n, width)))
    # The same random orderings serve every question (each question's estimate stays unbiased; only their Monte
    # Carlo errors correlate), which turns shuffling into one gather.
    orderings = np.argsort(rng.random((n_draws, n)), axis=1)
    for start in range(0, q, batch):
        stop = min(q, start + batch)
        draws = (stop - start) * n_draws
        # row d of the batch: one question's samples in one draw's order; visited column by column
        visits = classes[start:stop][:, orderings].reshape(draws, n).T.copy()
        offset = np.arange(draws) * width  # row offsets into the flattened [draws, width] tables
        counts = np.zeros(draws * width, dtype=np.int32)
        priority = rng.random((draws, width))
        priority[:, sentinel] = -1.0
        priority = priority.ravel()
        class_value = np.repeat(values[start:stop], n_draws, axis=0).ravel()
        best_count = np.zeros(draws, dtype=np.int32)
        best_priority = np.full(draws, -1.0)
        best_value = np.zeros(draws)
        for step in range(n):
            c = visits[step]
            flat = offset + c
            votes = c != sentinel
            counts[flat] += votes
            new = counts[flat]
            new_priority = priority[flat]
            take = votes & ((new > best_count) | ((new == best_count) & (new_priority > best_priority)))
            best_count = np.where(take, new, best_count)
            best_priority = np.where(take, new_priority, best_priority)
            best_value = np.where(take, class_value[flat], best_value)
            out[start:stop, step] = best_value.reshape(stop - start, n_draws).mean(axis=1)
    return out


def bootstrap_ci(
    per_question: np.ndarray, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap over questions of the mean of each column of ``per_question`` ([Q, K]) -> (low, high)."""
    q = per_question.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(q, np.full(q, 1.0 / q), size=n_boot)  # how often each question is drawn
    means = weights @ per_question / q  # [n_boot, K]
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return low, high


def score_samples(
    table: pl.DataFrame | Sequence[dict] | SampleMatrix,
    ks: Sequence[int] | None = None,
    n_draws: int = 1000,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """pass@k and maj@k for each k (default: every k from 1 to n) with bootstrap CIs: one row per (metric, k)."""
    samples = table if isinstance(table, SampleMatrix) else SampleMatrix.from_table(table)
    ks = list(range(1, samples.n + 1)) if ks is None else sorted(set(ks))
    bad = [k for k in ks if not 1 <= k <= samples.n]
    if bad:
        raise ValueError(f"k must be between 1 and n={samples.n}, got {bad}")
    columns = np.array(ks) - 1
    curves = {
        "pass@k": pass_at_k_curve(samples.correct)[:, columns],
        "maj@k": maj_at_k_curve(samples.answer_class, samples.correct, n_draws=n_draws, seed=seed)[:, columns],
    }
    rows = []
    for metric, per_question in curves.items():
        low, high = bootstrap_ci(per_question, n_boot=n_boot, confidence=confidence, seed=seed)
        mean = per_question.mean(axis=0)
        for j, k in enumerate(ks):
            rows.append(
                {
                    "metric": metric,
                    "k": k,
                    "value": float(mean[j]),
                    "ci_low": float(low[j]),
                    "ci_high": float(high[j]),
                    "n_questions": len(samples.question_ids),
                }
            )
    return pl.DataFrame(rows)
