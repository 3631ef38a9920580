"""Test-time strategies evaluated on stored samples.

A strategy is a ``StrategySpec``: where its candidates come from (``search``: independent ``parallel`` samples,
``revisions`` chains, or the stored outputs of a search such as ``beam_search``), how many revisions per chain
(``sequential``), how the final answer is chosen (``selection``: ``majority``, ``weighted`` = verifier scores summed
per answer equivalence class, ``best_score``), and the retrieval setting its samples were generated under
(``retrieval``), so retrieval is allocated by the same policy as samples.

At a budget of N samples the expected accuracy of a question is estimated from all its stored samples: N of the
stored M are drawn without replacement ``draws`` times and the selection's credit is averaged (a tie between
answer classes gives the fractional credit of a random tie-break). Nothing is regenerated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from catalog.registry import Registry
from eval.sample_metrics import answer_class_expr
from eval.tts.samples import NO_RETRIEVAL, PARALLEL, REVISION, SampleTable

SelectionFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Selection:
    fn: SelectionFn
    needs_scores: bool


SELECTIONS: Registry[Selection] = Registry("selection")


def register_selection(name: str, needs_scores: bool) -> Callable[[SelectionFn], SelectionFn]:
    def decorate(fn: SelectionFn) -> SelectionFn:
        SELECTIONS.add(name, Selection(fn, needs_scores))
        return fn

    return decorate


@dataclass(frozen=True)
class RetrievalSpec:
    """The retrieval part of a strategy: passages in context (0: none), reranking, and bagging (each sample sees
    its own bag of passages). Its ``key`` names the setting in the samples table's ``retrieval`` column."""

    k: int = 0
    rerank: bool = False
    bags: int = 1

    @property
    def key(self) -> str:
        if self.k == 0:
            return NO_RETRIEVAL
        return ",".join(
            [f"k={self.k}", *(["rerank"] if self.rerank else []), *([f"bags={self.bags}"] if self.bags > 1 else [])]
        )

    @classmethod
    def parse(cls, key: str) -> RetrievalSpec:
        """Inverse of ``key``: ``none``, ``k=5``, ``k=20,rerank``, ``k=5,bags=4``."""
        if key == NO_RETRIEVAL:
            return cls()
        fields: dict[str, int | bool] = {}
        for part in key.split(","):
            name, _, value = part.partition("=")
            if name == "rerank" and not value:
                fields["rerank"] = True
            elif name in ("k", "bags") and value.isdigit():
                fields[name] = int(value)
            else:
                raise ValueError(f"retrieval setting {key!r}: cannot read {part!r} (use k=N, rerank, bags=N)")
        return cls(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True, order=True)
class StrategySpec:
    search: str  # "parallel", "revisions", or a stored search's source name ("beam_search", "lookahead", ...)
    selection: str  # a SELECTIONS name
    retrieval: str = NO_RETRIEVAL
    sequential: int = 1  # revisions per chain (search "revisions"); 0: the whole budget in one chain

    @property
    def name(self) -> str:
        shape = ""
        if self.search == "revisions":
            shape = "(1 chain)" if self.sequential == 0 else f"(x{self.sequential})"
        return f"{self.search}{shape}:{self.selection}@{self.retrieval}"


# ---------------------------------------------------------------- selections
def _vote(classes: np.ndarray, weights: np.ndarray, class_correct: np.ndarray) -> np.ndarray:
    """Credit [Q, R] of the answer class with the largest summed weight; ties share the credit (random tie-break)."""
    n_q, n_draws, _ = classes.shape
    n_classes = class_correct.shape[1]
    voting = classes >= 0  # abstentions (no extracted answer) and padding do not vote
    cell = (np.arange(n_q)[:, None, None] * n_draws + np.arange(n_draws)[None, :, None]) * n_classes
    flat = (cell + np.where(voting, classes, 0))[voting]
    size = n_q * n_draws * n_classes
    votes = np.bincount(flat, weights=weights[voting], minlength=size).reshape(n_q, n_draws, n_classes)
    present = np.bincount(flat, minlength=size).reshape(n_q, n_draws, n_classes) > 0
    votes = np.where(present, votes, -np.inf)
    top = present & (votes >= votes.max(axis=-1, keepdims=True) - 1e-12)
    return (top * class_correct[:, None, :]).sum(axis=-1) / np.maximum(top.sum(axis=-1), 1)


@register_selection("majority", needs_scores=False)
def majority_vote(classes, scores, correct, class_correct):
    """Self-consistency: the most frequent answer class (lm-eval's exact-string vote over answer classes instead)."""
    return _vote(classes, np.ones(classes.shape), class_correct)


@register_selection("weighted", needs_scores=True)
def weighted_best_of_n(classes, scores, correct, class_correct):
    """Best-of-N weighted: verifier scores summed per answer equivalence class, the heaviest class wins."""
    return _vote(classes, np.nan_to_num(scores, nan=0.0, neginf=0.0), class_correct)


@register_selection("best_score", needs_scores=True)
def best_score(classes, scores, correct, class_correct):
    """Naive best-of-N: the single candidate the verifier scores highest (ties share the credit)."""
    real = np.isfinite(scores)
    masked = np.where(real, scores, -np.inf)
    top = real & (masked >= masked.max(axis=-1, keepdims=True) - 1e-12)
    return (top * correct).sum(axis=-1) / np.maximum(top.sum(axis=-1), 1)


# ---------------------------------------------------------------- candidate pools
@dataclass
class CandidatePool:
    """Candidates of one strategy family for every question, as index arrays into flat per-row arrays.

    ``units[q, u]`` lists the rows of unit ``u`` (one sample, or one revision chain truncated to its length);
    ``-1`` pads. A draw picks whole units. The last flat row is a padding sentinel.
    """

    units: np.ndarray  # [Q, U, S] row indices, -1 padding
    n_units: np.ndarray  # [Q]
    classes: np.ndarray  # [rows + 1] answer class within its question, -1 abstains
    correct: np.ndarray  # [rows + 1] float
    scores: np.ndarray  # [rows + 1] verifier score, NaN when missing, -inf on the sentinel
    tokens: np.ndarray  # [rows + 1] prompt + completion tokens
    class_correct: np.ndarray  # [Q, K]
    has_scores: bool


def _flat_arrays(part: pl.DataFrame, qindex: dict[str, int], n_q: int) -> tuple[np.ndarray, ...]:
    """Per-row arrays with a sentinel row appended, and the correctness of every (question, answer class)."""
    keyed = part.with_columns(answer_class_expr(pl.col("answer_key")).alias("_class"))
    classes = keyed["_class"].to_numpy()
    correct = keyed["correct"].cast(pl.Float64).to_numpy()
    qrow = np.array([qindex[q] for q in keyed["question_id"].to_list()], dtype=np.int64)
    n_classes = max(1, int(classes.max()) + 1) if len(classes) else 1
    sums = np.zeros((n_q, n_classes))
    counts = np.zeros((n_q, n_classes))
    voting = classes >= 0
    np.add.at(sums, (qrow[voting], classes[voting]), correct[voting])
    np.add.at(counts, (qrow[voting], classes[voting]), 1.0)
    class_correct = sums / np.maximum(counts, 1.0)  # samples of one class should agree; if not, their mean
    scores = keyed["verifier_score"].to_numpy().astype(float)
    tokens = (keyed["tokens"] + keyed["prompt_tokens"]).cast(pl.Float64).to_numpy()
    return (
        np.append(classes, -1),
        np.append(correct, 0.0),
        np.append(scores, -np.inf),
        np.append(tokens, 0.0),
        class_correct,
        bool(np.isfinite(scores).all()) if len(scores) else False,
    )


def _pool(part: pl.DataFrame, question_ids: list[str], unit_of: str, position_of: str) -> CandidatePool:
    qindex = {q: i for i, q in enumerate(question_ids)}
    part = part.filter(pl.col("question_id").is_in(question_ids)).sort("question_id", unit_of, position_of)
    classes, correct, scores, tokens, class_correct, has_scores = _flat_arrays(part, qindex, len(question_ids))
    sentinel = len(part)
    unit_ids = part.select(
        pl.col("question_id").replace_strict(qindex, return_dtype=pl.Int64).alias("q"),
        pl.col(unit_of).rank("dense").over("question_id").cast(pl.Int64).alias("u") - 1,
        pl.col(position_of).rank("ordinal").over("question_id", unit_of).cast(pl.Int64).alias("s") - 1,
    )
    q, u, s = (unit_ids[c].to_numpy() for c in ("q", "u", "s"))
    n_u = int(u.max()) + 1 if len(u) else 1
    n_s = int(s.max()) + 1 if len(s) else 1
    units = np.full((len(question_ids), n_u, n_s), -1, dtype=np.int64)
    units[q, u, s] = np.arange(len(part))
    n_units = np.zeros(len(question_ids), dtype=np.int64)
    np.maximum.at(n_units, q, u + 1)
    return CandidatePool(
        np.where(units < 0, sentinel, units), n_units, classes, correct, scores, tokens, class_correct, has_scores
    )


@dataclass(frozen=True)
class PoolRequest:
    """Which rows and which unit shape a strategy needs at a budget; ``units`` to draw per question."""

    rows: pl.Expr
    unit_of: str
    position_of: str
    units: int
    max_position: int | None = None  # keep chain positions below this (a revision chain truncated)


PoolBuilder = Callable[[StrategySpec, int], PoolRequest | None]
SEARCHES: Registry[PoolBuilder] = Registry("search")


def register_search(name: str) -> Callable[[PoolBuilder], PoolBuilder]:
    return SEARCHES.register(name)


@register_search("parallel")
def _parallel_request(spec: StrategySpec, budget: int) -> PoolRequest:
    return PoolRequest(pl.col("source") == PARALLEL, "sample_idx", "sample_idx", budget)


@register_search("revisions")
def _revisions_request(spec: StrategySpec, budget: int) -> PoolRequest | None:
    length = budget if spec.sequential == 0 else spec.sequential
    if budget % length:
        return None  # the budget cannot be split into whole chains of this length
    return PoolRequest(pl.col("source") == REVISION, "chain", "sample_idx", budget // length, max_position=length)


def _search_output_request(spec: StrategySpec, budget: int) -> PoolRequest:
    """A stored search at this budget: its final candidates form one unit, taken whole."""
    return PoolRequest((pl.col("source") == spec.search) & (pl.col("budget") == budget), "budget", "sample_idx", 1)


# ---------------------------------------------------------------- evaluation
@dataclass
class StrategyOutcome:
    spec: StrategySpec
    budget: int
    accuracy: np.ndarray  # [Q] expected accuracy per question; NaN where the question lacks enough samples
    tokens: np.ndarray  # [Q] expected prompt + completion tokens spent per question

    @property
    def available(self) -> bool:
        return bool(np.isfinite(self.accuracy).all())


def evaluate_strategy(
    table: SampleTable,
    spec: StrategySpec,
    budget: int,
    question_ids: list[str],
    draws: int = 64,
    rng: np.random.Generator | None = None,
) -> StrategyOutcome:
    """Expected accuracy and token cost of ``spec`` at ``budget`` samples for each question (from stored samples)."""
    rng = rng or np.random.default_rng(0)
    selection = SELECTIONS[spec.selection]
    request = SEARCHES.get(spec.search, _search_output_request)(spec, budget)
    missing = StrategyOutcome(spec, budget, np.full(len(question_ids), np.nan), np.full(len(question_ids), np.nan))
    if request is None:
        return missing
    rows = table.frame.filter(request.rows & (pl.col("retrieval") == spec.retrieval))
    if request.max_position is not None:
        rows = rows.filter(pl.col(request.position_of) < request.max_position)
        complete = rows.group_by("question_id", request.unit_of).len().filter(pl.col("len") == request.max_position)
        rows = rows.join(complete.select("question_id", request.unit_of), on=["question_id", request.unit_of])
    if rows.is_empty():
        return missing
    pool = _pool(rows, question_ids, request.unit_of, request.position_of)
    if selection.needs_scores and not pool.has_scores:
        return missing

    n_q, n_u, _ = pool.units.shape
    enough = pool.n_units >= request.units
    if request.units > n_u:
        return missing
    # Every question holding exactly the units it needs has one possible draw: no Monte Carlo needed.
    n_draws = 1 if np.all(pool.n_units[enough] == request.units) else draws
    keys = rng.random((n_q, n_draws, n_u))
    keys = np.where(np.arange(n_u)[None, None, :] >= pool.n_units[:, None, None], np.inf, keys)
    chosen_units = np.argsort(keys, axis=-1)[:, :, : request.units]  # [Q, R, units]
    rows_idx = np.take_along_axis(pool.units[:, None, :, :], chosen_units[..., None], axis=2)
    rows_idx = rows_idx.reshape(n_q, n_draws, -1)  # [Q, R, units * S]
    credit = selection.fn(pool.classes[rows_idx], pool.scores[rows_idx], pool.correct[rows_idx], pool.class_correct)
    accuracy = np.where(enough, credit.mean(axis=1), np.nan)
    tokens = np.where(enough, pool.tokens[rows_idx].sum(axis=-1).mean(axis=1), np.nan)
    return StrategyOutcome(spec, budget, accuracy, tokens)


def enumerate_strategies(table: SampleTable) -> list[StrategySpec]:
    """Every strategy the stored samples support: per retrieval setting, each source and each usable selection."""
    frame = table.frame
    specs = set()
    scored = frame.group_by("retrieval", "source").agg(pl.col("verifier_score").is_not_null().all().alias("scored"))
    for retrieval, source, has_scores in scored.iter_rows():
        selections = [name for name, s in SELECTIONS.items() if has_scores or not s.needs_scores]
        if source == PARALLEL:
            specs.update(StrategySpec("parallel", sel, retrieval) for sel in selections)
        elif source == REVISION:
            longest = int(
                frame.filter((pl.col("source") == REVISION) & (pl.col("retrieval") == retrieval))
                .group_by("question_id", "chain")
                .len()["len"]
                .max()
            )
            lengths = [2**i for i in range(1, longest.bit_length()) if 2**i <= longest] + [0]
            vote = "weighted" if has_scores else "majority"
            specs.update(StrategySpec("revisions", vote, retrieval, sequential=n) for n in lengths)
        else:
            specs.update(StrategySpec(source, sel, retrieval) for sel in selections)
    return sorted(specs)
