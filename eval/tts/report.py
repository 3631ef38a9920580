"""Accuracy against test-time budget for every stored strategy and for the compute-optimal policy.

``build_tts_report`` runs entirely on a samples table: strategies are scored per question at each budget
(``eval.tts.strategies``), questions are binned by difficulty and a strategy is chosen per bin and budget
(``eval.tts.policy``). The report gives accuracy against budget in samples and in tokens/FLOPs, the policy's regret
against the oracle choice, and how many times less compute the policy needs to match best-of-N weighted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from catalog.hashing import content_hash, stable_hash
from eval.flops import forward_flops
from eval.tts.policy import (
    DIFFICULTY,
    PolicyOutcome,
    SelectionMode,
    base_samples,
    budget_to_match,
    choose_policy,
    difficulty_bins,
    fold_ids,
    validation_mask,
)
from eval.tts.samples import SamplesError, SampleTable
from eval.tts.strategies import SELECTIONS, StrategyOutcome, StrategySpec, enumerate_strategies, evaluate_strategy

STAGE = "tts_report"
STAGE_VERSION = 1  # bump when a change alters results for the same samples and settings


@dataclass(frozen=True)
class TtsSettings:
    budgets: tuple[int, ...] = (1, 2, 4, 8, 16)
    selection: SelectionMode = "split"
    n_folds: int = 5
    draws: int = 64  # Monte Carlo draws of N of the stored samples per question
    generator_params: int | None = None  # for FLOPs (eval.flops: 2 x params per token); None: tokens only
    verifier_params: int | None = None  # the verifier reads every candidate's tokens when a selection uses it
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.budgets or min(self.budgets) < 1:
            raise SamplesError(f"budgets {self.budgets}: need positive sample budgets")
        if self.selection not in ("split", "crossfit"):
            raise SamplesError(f"selection {self.selection!r}: use split or crossfit")


@dataclass
class StrategyPoint:
    strategy: str
    budget: int
    accuracy: float  # on the test questions (cross-fitted mode: all questions)
    validation_accuracy: float
    tokens: float
    flops: float | None


@dataclass
class PolicyPoint:
    budget: int
    accuracy: float
    validation_accuracy: float
    best_single_validation_accuracy: float  # the best one strategy for every question, on the same questions
    oracle_accuracy: float
    regret: float
    tokens: float
    flops: float | None
    choices: dict[str, str]  # bin label -> strategy
    oracle_choices: dict[str, str]


@dataclass
class SavingsPoint:
    reference: str
    budget: int
    reference_accuracy: float
    reference_tokens: float
    policy_budget: float | None  # samples the policy needs to reach the reference accuracy (None: never)
    samples_ratio: float | None
    policy_tokens: float | None
    tokens_ratio: float | None
    # True when the policy already beats the reference at its smallest budget: it may need even less, so the
    # ratios are lower bounds.
    lower_bound: bool = False


@dataclass
class TtsReport:
    settings: TtsSettings
    n_validation: int
    n_test: int
    strategies: list[StrategyPoint]
    policies: dict[str, list[PolicyPoint]]
    savings: dict[str, list[SavingsPoint]]
    # The policy choosing among every (strategy, budget) that costs no more tokens than best-of-N weighted at N:
    # compute-optimal at matched compute, keyed by difficulty kind, one point per reference budget N.
    compute_matched: dict[str, list[PolicyPoint]] = field(default_factory=dict)
    rejections: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return _finite(
            {
                "settings": asdict(self.settings),
                "n_validation": self.n_validation,
                "n_test": self.n_test,
                "strategies": [asdict(p) for p in self.strategies],
                "policies": {k: [asdict(p) for p in v] for k, v in self.policies.items()},
                "savings": {k: [asdict(p) for p in v] for k, v in self.savings.items()},
                "compute_matched": {k: [asdict(p) for p in v] for k, v in self.compute_matched.items()},
                "rejections": [r.as_row() for r in self.rejections],
            }
        )


def ladder_rows(
    report: TtsReport,
    model: str,
    flops: float,
    base_acc: float,
    benchmark: str = "all",
    category: str = "all",
    n_questions: int | None = None,
) -> pl.DataFrame:
    """Rows for ``eval.multiplier.compute_multipliers``: every strategy and policy at every budget as a method of
    ``model``, so each gets its test-time compute multiplier against the base model (``base_acc``)."""
    methods = [(f"{p.strategy}@N={p.budget}", p.accuracy) for p in report.strategies]
    methods += [
        (f"policy({kind})@N={p.budget}", p.accuracy) for kind, points in report.policies.items() for p in points
    ]
    return pl.DataFrame(
        {
            "model": [model] * len(methods),
            "flops": [float(flops)] * len(methods),
            "base_acc": [float(base_acc)] * len(methods),
            "method": [m for m, _ in methods],
            "method_acc": [a for _, a in methods],
            "benchmark": [benchmark] * len(methods),
            "category": [category] * len(methods),
            "n_questions": [n_questions or report.n_test] * len(methods),
        }
    )


def _finite(obj):
    """NaN/inf become None so the report is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def bin_label(b: int) -> str:
    return f"bin{b + 1}" + (" (hardest)" if b == 0 else "")


def _flops(tokens: float, uses_verifier: bool, settings: TtsSettings) -> float | None:
    """Dense-transformer FLOPs of the tokens: every prompt token is charged per sample (no shared prefill)."""
    if not settings.generator_params:
        return None
    flops = forward_flops(settings.generator_params, tokens)
    if uses_verifier and settings.verifier_params:
        flops += forward_flops(settings.verifier_params, tokens)
    return flops


def report_key(table: SampleTable, settings: TtsSettings) -> str:
    """Content key of a report: stage, version, settings and the exact samples."""
    samples = content_hash(table.frame.drop("answer_key").write_ndjson())
    return stable_hash({"stage": STAGE, "version": STAGE_VERSION, "settings": asdict(settings), "samples": samples})


def build_tts_report(table: SampleTable, settings: TtsSettings | None = None) -> TtsReport:
    settings = settings or TtsSettings()
    rng = np.random.default_rng(settings.seed)
    base = base_samples(table)
    question_ids = sorted(base["question_id"].unique().to_list())
    if not question_ids:
        raise SamplesError("samples table has no parallel samples to measure difficulty on")
    is_val = validation_mask(table, question_ids)
    test_mask = np.ones(len(question_ids), bool) if settings.selection == "crossfit" else ~is_val
    if settings.selection == "split" and (is_val.sum() == 0 or test_mask.sum() == 0):
        raise SamplesError(f"need questions in both splits, got {is_val.sum()} validation and {test_mask.sum()} test")

    outcomes: dict[int, list[StrategyOutcome]] = {}
    points = []
    specs = enumerate_strategies(table)
    progress = tqdm(total=len(specs) * len(settings.budgets), desc="strategies x budgets", disable=None)
    for budget in settings.budgets:
        available = []
        for spec in specs:
            progress.update()
            outcome = evaluate_strategy(table, spec, budget, question_ids, settings.draws, rng)
            if not outcome.available:
                continue
            available.append(outcome)
            mean_tokens = float(outcome.tokens[test_mask].mean())
            points.append(
                StrategyPoint(
                    spec.name,
                    budget,
                    float(outcome.accuracy[test_mask].mean()),
                    float(outcome.accuracy[is_val].mean()) if is_val.any() else math.nan,
                    mean_tokens,
                    _flops(mean_tokens, SELECTIONS[spec.selection].needs_scores, settings),
                )
            )
        outcomes[budget] = available
    progress.close()

    kinds = [k for k in DIFFICULTY if k != "predicted" or base["verifier_score"].is_not_null().all()]
    folds = fold_ids(question_ids, settings.n_folds)
    reference = _reference(base)
    policies, savings, compute_matched = {}, {}, {}
    for kind in kinds:
        bins = difficulty_bins(table, kind, question_ids)
        policies[kind] = [
            _policy_point(outcomes[b], bins, is_val, b, folds, settings) for b in settings.budgets if outcomes[b]
        ]
        savings[kind] = _savings(points, policies[kind], reference)
        compute_matched[kind] = [
            _policy_point(feasible, bins, is_val, budget, folds, settings, label=_with_budget)
            for budget, feasible in _within_reference_compute(outcomes, reference)
        ]
    return TtsReport(
        settings,
        int(is_val.sum()),
        int(test_mask.sum()),
        points,
        policies,
        savings,
        compute_matched,
        list(table.rejections),
    )


def _with_budget(outcome: StrategyOutcome) -> str:
    return f"{outcome.spec.name} N={outcome.budget}"


def _within_reference_compute(
    outcomes: dict[int, list[StrategyOutcome]], reference: str
) -> list[tuple[int, list[StrategyOutcome]]]:
    """For each budget N of the reference, every (strategy, budget) whose mean tokens per question (over all
    questions, so the test split does not leak into the choice) do not exceed the reference's at N."""
    everything = [o for budget_outcomes in outcomes.values() for o in budget_outcomes]
    out = []
    for budget, budget_outcomes in outcomes.items():
        ref = next((o for o in budget_outcomes if o.spec.name == reference), None)
        if ref is None:
            continue
        limit = float(ref.tokens.mean()) * (1 + 1e-9)
        out.append((budget, [o for o in everything if float(o.tokens.mean()) <= limit]))
    return out


def _policy_point(
    available: list[StrategyOutcome],
    bins: np.ndarray,
    is_val: np.ndarray,
    budget: int,
    folds: np.ndarray,
    settings: TtsSettings,
    label: Callable[[StrategyOutcome], str] = lambda o: o.spec.name,
) -> PolicyPoint:
    acc = np.stack([o.accuracy for o in available])
    tokens = np.stack([o.tokens for o in available])
    outcome: PolicyOutcome = choose_policy(
        acc, tokens, bins, is_val, budget, settings.selection, settings.n_folds, folds
    )
    chosen_on = (is_val if settings.selection == "split" else np.ones_like(is_val)) & (bins >= 0)
    names = [label(o) for o in available]
    uses_verifier = {i: SELECTIONS[o.spec.selection].needs_scores for i, o in enumerate(available)}
    any_verifier = any(uses_verifier[c] for c in outcome.choices)
    return PolicyPoint(
        budget=budget,
        accuracy=outcome.accuracy,
        validation_accuracy=outcome.validation_accuracy,
        best_single_validation_accuracy=float(acc[:, chosen_on].mean(axis=1).max()),
        oracle_accuracy=outcome.oracle_accuracy,
        regret=outcome.regret,
        tokens=outcome.tokens,
        flops=_flops(outcome.tokens, any_verifier, settings),
        choices={bin_label(b): names[c] for b, c in enumerate(outcome.choices)},
        oracle_choices={bin_label(b): names[c] for b, c in enumerate(outcome.oracle_choices)},
    )


def _reference(base: pl.DataFrame) -> str:
    """Best-of-N weighted on the base samples (majority vote when no verifier scores are stored)."""
    retrieval = base["retrieval"][0]
    selection = "weighted" if base["verifier_score"].is_not_null().all() else "majority"
    return StrategySpec("parallel", selection, retrieval).name


def _savings(points: list[StrategyPoint], policy: list[PolicyPoint], reference: str) -> list[SavingsPoint]:
    """For each budget of the reference, the policy budget (samples, tokens) that reaches its accuracy."""
    budgets = [p.budget for p in policy]
    accuracies = [p.accuracy for p in policy]
    tokens = [p.tokens for p in policy]
    out = []
    for ref in (p for p in points if p.strategy == reference):
        needed = budget_to_match(ref.accuracy, budgets, accuracies)
        needed_tokens = budget_to_match(ref.accuracy, tokens, accuracies) if all(t > 0 for t in tokens) else None
        out.append(
            SavingsPoint(
                reference,
                ref.budget,
                ref.accuracy,
                ref.tokens,
                needed,
                ref.budget / needed if needed else None,
                needed_tokens,
                ref.tokens / needed_tokens if needed_tokens else None,
                lower_bound=needed is not None and needed == budgets[0] and accuracies[0] > ref.accuracy,
            )
        )
    return out


# ---------------------------------------------------------------- output
def print_tts_report(report: TtsReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    budgets = list(report.settings.budgets)
    names = sorted({p.strategy for p in report.strategies})
    table = Table(title=f"Accuracy by budget (test: {report.n_test} questions, validation: {report.n_validation})")
    table.add_column("strategy")
    for b in budgets:
        table.add_column(f"N={b}", justify="right")
    lookup = {(p.strategy, p.budget): p for p in report.strategies}
    for name in names:
        table.add_row(name, *[f"{lookup[(name, b)].accuracy:.3f}" if (name, b) in lookup else "-" for b in budgets])
    for kind, points in report.policies.items():
        by_budget = {p.budget: p for p in points}
        table.add_row(f"[bold]policy ({kind} bins)[/bold]", *[_cell(by_budget.get(b)) for b in budgets])
        table.add_row(f"  regret vs oracle ({kind})", *[_regret(by_budget.get(b)) for b in budgets])
    console.print(table)
    for kind, points in report.savings.items():
        savings = Table(title=f"Policy ({kind} bins) compute to match {points[0].reference if points else '-'}")
        for column in ("N", "reference acc", "policy samples", "x fewer samples", "x fewer tokens"):
            savings.add_column(column, justify="right")
        for s in points:
            savings.add_row(
                str(s.budget),
                f"{s.reference_accuracy:.3f}",
                "not reached" if s.policy_budget is None else f"{s.policy_budget:.2f}",
                _ratio(s.samples_ratio, s.lower_bound),
                _ratio(s.tokens_ratio, s.lower_bound),
            )
        console.print(savings)
    matched = Table(title="Policy choosing strategy and budget within best-of-N weighted's tokens")
    for column in ("N", "reference acc", *[f"policy ({kind})" for kind in report.compute_matched], "tokens"):
        matched.add_column(column, justify="right")
    references = {s.budget: s for points in report.savings.values() for s in points}
    for i, budget in enumerate(p.budget for p in next(iter(report.compute_matched.values()), [])):
        row = [report.compute_matched[kind][i] for kind in report.compute_matched]
        ref = references.get(budget)
        matched.add_row(
            str(budget),
            "-" if ref is None else f"{ref.reference_accuracy:.3f}",
            *[f"{p.accuracy:.3f}" for p in row],
            f"{row[0].tokens:.0f}",
        )
    console.print(matched)
    if report.rejections:
        console.print(f"[yellow]{len(report.rejections)} sample rows rejected[/yellow]")


def _ratio(value: float | None, lower_bound: bool) -> str:
    return "-" if value is None else (">=" if lower_bound else "") + f"{value:.2f}"


def _cell(point: PolicyPoint | None) -> str:
    return "-" if point is None else f"{point.accuracy:.3f}"


def _regret(point: PolicyPoint | None) -> str:
    return "-" if point is None else f"{point.regret:.3f}"


def plot_tts_report(report: TtsReport, path: str | Path) -> Path:
    """Accuracy against budget in samples (left) and in tokens or FLOPs (right), strategies thin, policies bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    use_flops = bool(report.settings.generator_params)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    names = sorted({p.strategy for p in report.strategies})
    for i, name in enumerate(names):
        pts = sorted((p for p in report.strategies if p.strategy == name), key=lambda p: p.budget)
        cost = [p.flops if use_flops else p.tokens for p in pts]
        style = {"color": f"C{i % 10}", "linewidth": 1, "marker": ".", "alpha": 0.8}
        left.plot([p.budget for p in pts], [p.accuracy for p in pts], label=name, **style)
        right.plot(cost, [p.accuracy for p in pts], **style)
    for j, (kind, pts) in enumerate(report.policies.items()):
        style = {"color": "black", "linewidth": 2.5, "linestyle": ("-", "--")[j % 2], "marker": "o"}
        cost = [p.flops if use_flops else p.tokens for p in pts]
        left.plot([p.budget for p in pts], [p.accuracy for p in pts], label=f"policy ({kind} bins)", **style)
        right.plot(cost, [p.accuracy for p in pts], **style)
    for j, (kind, pts) in enumerate(report.compute_matched.items()):
        style = {"color": "dimgray", "linewidth": 2, "linestyle": (":", "-.")[j % 2], "marker": "s"}
        cost = [p.flops if use_flops else p.tokens for p in pts]
        right.plot(cost, [p.accuracy for p in pts], label=f"policy over (strategy, N), {kind} bins", **style)
    right.legend(fontsize=7, loc="lower right")
    for ax, xlabel in (
        (left, "budget (samples)"),
        (right, "FLOPs per question" if use_flops else "tokens per question"),
    ):
        ax.set_xscale("log", base=2 if ax is left else 10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
