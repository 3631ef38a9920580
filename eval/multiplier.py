"""Compute multipliers: how much more pre-training compute a base model would need to match a test-time method.

A ladder of base models (training FLOPs, accuracy) is fitted with a curve f(log10 FLOPs) (``eval.multiplier_curves``).
For a model evaluated with a method (retrieval, test-time strategy) the matched compute is f^-1(method accuracy);
the multiplier is matched compute / the model's actual training FLOPs (the reference definition), with
f^-1(method) / f^-1(base) as a diagnostic. Confidence intervals come from a bootstrap over questions (per-question
correctness when given, else binomial draws from ``n_questions``) and over ladder points (rows resampled, curve refit).

Every number in the output is finite: accuracies beyond the fitted ceiling give a lower bound (status
``above_ceiling``), matched compute outside the ladder is flagged ``extrapolated``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import yaml

from catalog.errors import RereadError
from catalog.hashing import content_hash, stable_hash
from catalog.records import Rejection, StageStats
from eval.multiplier_curves import CURVE_FORMS, CurveForm, FixedSigmoid, make_form

STAGE = "multiplier"
STAGE_VERSION = 1  # bump when a change alters results for the same ladder and settings
REQUIRED_COLUMNS = ("model", "flops", "base_acc")
OPTIONAL_COLUMNS = {"method_acc": pl.Float64, "benchmark": pl.Utf8, "category": pl.Utf8, "method": pl.Utf8}
OPTIONAL_NUMERIC = ("n_questions", "chance")

# Chance accuracy of each benchmark (the sigmoid's floor); unknown benchmarks use DEFAULT_CHANCE (4-way MC).
CHANCE_LEVELS = {"mmlu": 0.25, "gpqa": 0.25, "math500": 0.0, "simpleqa": 0.0}
DEFAULT_CHANCE = 0.25
ALL = "all"  # benchmark / category of rows that name none

# Outputs are 10**x; clipping x keeps them finite floats whatever a degenerate fit returns.
_MAX_LOG10 = 300.0
_RANGE_TOLERANCE_DECADES = 1e-6
# Accuracies in a ladder file are often rounded; a larger gap means the correctness file is another run.
CORRECTNESS_TOLERANCE = 1e-3

Status = Literal["ok", "extrapolated", "above_ceiling", "below_floor"]
BootstrapMode = Literal["both", "questions", "ladder", "none"]


class LadderError(RereadError):
    """A ladder file or table that cannot be used: the message names the input and the reason."""


@dataclass(frozen=True)
class MultiplierSettings:
    form: str = "sigmoid"
    chance: float | None = None  # sigmoid floor; None: the benchmark's chance level (CHANCE_LEVELS)
    irreducible: bool = False  # power form: fit an irreducible error e0
    fixed_curve: tuple[float, float, float, float] | None = None  # FLOOR, CEIL, SLOPE, MIDPOINT: no fit
    bootstrap: BootstrapMode = "both"
    n_boot: int = 200
    ci: float = 0.9
    seed: int = 0
    ceiling_epsilon: float = 0.01  # accuracy within this of the fitted ceiling/floor cannot be inverted reliably
    compare_forms: tuple[str, ...] = tuple(CURVE_FORMS)  # forms refitted (point estimates) for the spread table

    def __post_init__(self) -> None:
        if self.form not in CURVE_FORMS:
            raise LadderError(f"form {self.form!r}: unknown; forms: {', '.join(sorted(CURVE_FORMS))}")
        if not 0.0 < self.ci < 1.0:
            raise LadderError(f"ci {self.ci}: must be between 0 and 1")
        if self.bootstrap not in ("both", "questions", "ladder", "none"):
            raise LadderError(f"bootstrap {self.bootstrap!r}: use both, questions, ladder or none")
        if self.n_boot < 0:
            raise LadderError(f"n_boot {self.n_boot}: must be >= 0")


@dataclass
class MultiplierRow:
    model: str
    benchmark: str
    category: str
    method: str
    flops: float
    base_acc: float
    method_acc: float
    matched_flops: float
    multiplier: float
    ci_low: float | None
    ci_high: float | None
    status: Status
    bound: Literal["lower_bound", "upper_bound"] | None  # the multiplier is only a bound when not None
    multiplier_vs_fitted_base: float  # f^-1(method acc) / f^-1(base acc): diagnostic, independent of curve offset
    form: str
    by_form: dict[str, float] = field(default_factory=dict)  # point multiplier under every compared form
    form_spread: float = 1.0  # max / min of by_form: how much the answer depends on the form

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class CurveFit:
    """The fitted curve of one (benchmark, category) group, with the ladder it was fitted on (for plots)."""

    benchmark: str
    category: str
    form: CurveForm
    params: np.ndarray
    models: list[str]
    log10_flops: np.ndarray
    accuracy: np.ndarray

    @property
    def log10_range(self) -> tuple[float, float]:
        return float(self.log10_flops.min()), float(self.log10_flops.max())

    def summary(self) -> dict:
        return {
            "benchmark": self.benchmark,
            "category": self.category,
            "form": self.form.name,
            "params": {k: float(v) for k, v in zip(self.form.param_names, self.params, strict=True)},
            "options": self.form.options(),
            "ceiling": float(self.form.ceiling(self.params)[0]),
            "rmse": float(np.sqrt(np.mean((self.form.predict(self.params, self.log10_flops)[0] - self.accuracy) ** 2))),
            "ladder": [
                {"model": m, "flops": 10.0**x, "base_acc": float(y)}
                for m, x, y in zip(self.models, self.log10_flops, self.accuracy, strict=True)
            ],
        }


@dataclass
class MultiplierReport:
    rows: list[MultiplierRow]
    curves: list[CurveFit]
    rejections: list[Rejection]
    stats: StageStats

    def json_rows(self) -> list[dict]:
        return [row.as_dict() for row in self.rows]

    def to_json(self) -> str:
        """The rows as JSON; ``allow_nan=False`` makes a NaN/inf a bug that fails loudly instead of invalid JSON."""
        return json.dumps(self.json_rows(), allow_nan=False, indent=2)


# ---------------------------------------------------------------- reading ladders
def read_ladder(path: str | Path) -> pl.DataFrame:
    """A ladder from CSV, Parquet or YAML (a list of rows, or a mapping with a ``ladder:`` list)."""
    path = Path(path)
    if not path.is_file():
        raise LadderError(f"{path}: ladder file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pl.read_csv(path, infer_schema_length=None)
        elif suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif suffix in (".yaml", ".yml"):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            rows = raw.get("ladder") if isinstance(raw, dict) else raw
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise LadderError(f"{path}: YAML ladder must be a list of rows or a mapping with a 'ladder' list")
            frame = pl.DataFrame(rows, infer_schema_length=None)
        else:
            raise LadderError(f"{path}: unsupported ladder format {suffix!r} (use .csv, .parquet, .yaml)")
    except (pl.exceptions.PolarsError, yaml.YAMLError, OSError) as exc:
        raise LadderError(f"{path}: cannot read ladder ({exc})") from exc
    return frame


def read_correctness(path: str | Path) -> pl.DataFrame:
    """Per-question correctness (``model, question_id, correct`` plus optional ``method, benchmark, category``)."""
    path = Path(path)
    if not path.is_file():
        raise LadderError(f"{path}: correctness file not found")
    try:
        frame = pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise LadderError(f"{path}: cannot read correctness table ({exc})") from exc
    missing = {"model", "question_id", "correct"} - set(frame.columns)
    if missing:
        raise LadderError(f"{path}: correctness table lacks columns {', '.join(sorted(missing))}")
    return frame


def normalize_ladder(frame: pl.DataFrame, source: str = "ladder") -> tuple[pl.DataFrame, list[Rejection]]:
    """Typed columns with defaults, and the rows that cannot be used turned into rejections."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise LadderError(f"{source}: ladder lacks required columns {', '.join(missing)} (have {frame.columns})")
    try:
        frame = frame.with_columns(
            pl.col("model").cast(pl.Utf8),
            pl.col("flops").cast(pl.Float64),
            pl.col("base_acc").cast(pl.Float64),
            *[
                (pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t)).alias(c)
                for c, t in OPTIONAL_COLUMNS.items()
            ],
            *[
                (pl.col(c).cast(pl.Float64) if c in frame.columns else pl.lit(None, dtype=pl.Float64)).alias(c)
                for c in OPTIONAL_NUMERIC
            ],
        )
    except pl.exceptions.PolarsError as exc:
        raise LadderError(f"{source}: ladder columns have the wrong types ({exc})") from exc
    frame = frame.with_columns(
        pl.col("benchmark").fill_null(ALL),
        pl.col("category").fill_null(ALL),
        pl.col("method").fill_null(""),
        pl.int_range(pl.len()).alias("_row"),
    )
    rejections, keep = [], []
    for row in frame.iter_rows(named=True):
        reason = _row_problem(row)
        if reason:
            rejections.append(Rejection(STAGE, source, f"row {row['_row'] + 1}", reason[0], reason[1]))
        else:
            keep.append(row["_row"])
    return frame.filter(pl.col("_row").is_in(keep)), rejections


def _row_problem(row: dict) -> tuple[str, str] | None:
    if not row["model"]:
        return "missing_model", "model name is empty"
    flops = row["flops"]
    if flops is None or not math.isfinite(flops) or flops <= 0:
        return "invalid_flops", f"flops must be a positive number, got {flops}"
    for column in ("base_acc", "method_acc"):
        value = row[column]
        if value is None and column == "method_acc":
            continue
        if value is None or not math.isfinite(value) or not 0.0 <= value <= 1.0:
            return "invalid_accuracy", f"{column} must be in [0, 1], got {value}"
    n = row["n_questions"]
    if n is not None and (not math.isfinite(n) or n < 1):
        return "invalid_n_questions", f"n_questions must be >= 1, got {n}"
    return None


# ---------------------------------------------------------------- matching compute
@dataclass(frozen=True)
class _Match:
    log10_flops: np.ndarray  # [B]
    status: np.ndarray  # [B] of Status


def match_compute(
    form: CurveForm, params: np.ndarray, acc: np.ndarray, log10_range: tuple[float, float], epsilon: float
) -> _Match:
    """log10 FLOPs at which each curve (``params`` ``[B, P]``) reaches ``acc`` ``[B]``, with a status per entry.

    At or above the ceiling the answer is a lower bound: the larger of f^-1(ceiling - epsilon) and the ladder's
    largest model. At or below the floor it is an upper bound at f^-1(floor + epsilon).
    """
    params = np.atleast_2d(params)
    acc = np.broadcast_to(np.asarray(acc, dtype=float), (len(params),))
    ceiling, floor = form.ceiling(params), form.floor(params)
    margin = epsilon if form.asymptotic else 0.0
    above = acc >= ceiling - margin if margin else acc > ceiling
    below = acc <= floor + margin
    target = np.minimum(np.maximum(acc, floor + margin), ceiling - margin)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        x = form.inverse(params, target)
    x = np.where(above, np.fmax(x, log10_range[1]), x)
    x = np.clip(np.nan_to_num(x, nan=log10_range[1], posinf=_MAX_LOG10, neginf=-_MAX_LOG10), -_MAX_LOG10, _MAX_LOG10)
    outside = (x < log10_range[0] - _RANGE_TOLERANCE_DECADES) | (x > log10_range[1] + _RANGE_TOLERANCE_DECADES)
    status = np.where(above, "above_ceiling", np.where(below, "below_floor", np.where(outside, "extrapolated", "ok")))
    return _Match(x, status)


def _pow10(log10_value: float) -> float:
    return float(10.0 ** np.clip(log10_value, -_MAX_LOG10, _MAX_LOG10))


# ---------------------------------------------------------------- bootstrap
@dataclass
class _AccuracyEntry:
    """One accuracy that the question bootstrap redraws: a ladder point or a method result."""

    acc: float
    n_questions: float | None
    correct: np.ndarray | None = None  # per-question 0/1 over the group's question ids (NaN: not asked)


def resample_accuracies(
    entries: Sequence[_AccuracyEntry], n_boot: int, rng: np.random.Generator, n_question_ids: int
) -> np.ndarray:
    """``[n_boot, E]`` redrawn accuracies.

    Entries with per-question correctness share one draw of question ids (all models answered the same
    questions, so their errors are correlated); the others are binomial with their ``n_questions``; entries
    with neither stay fixed.
    """
    out = np.tile(np.array([e.acc for e in entries], dtype=float), (n_boot, 1))
    if n_question_ids:
        counts = rng.multinomial(n_question_ids, np.full(n_question_ids, 1.0 / n_question_ids), size=n_boot)
    for j, entry in enumerate(entries):
        if entry.correct is not None:
            asked = np.isfinite(entry.correct)
            drawn = counts @ asked
            out[:, j] = np.where(drawn > 0, (counts @ np.nan_to_num(entry.correct)) / np.maximum(drawn, 1), entry.acc)
        elif entry.n_questions:
            n = int(entry.n_questions)
            out[:, j] = rng.binomial(n, entry.acc, size=n_boot) / n
    return out


# ---------------------------------------------------------------- per-group computation
def _group_chance(group: pl.DataFrame, benchmark: str, settings: MultiplierSettings) -> float:
    if settings.chance is not None:
        return settings.chance
    chances = group["chance"].drop_nulls()
    if len(chances):
        return float(chances[0])
    return CHANCE_LEVELS.get(benchmark.lower(), DEFAULT_CHANCE)


def _make_form(name: str, chance: float, settings: MultiplierSettings) -> CurveForm:
    if settings.fixed_curve is not None and name == settings.form:
        return FixedSigmoid(*settings.fixed_curve)
    return make_form(name, chance=chance, irreducible=settings.irreducible)


def _min_points(form: CurveForm) -> int:
    return max(2, form.n_params + 1) if not isinstance(form, FixedSigmoid) else 0


def _correctness_vectors(
    correctness: pl.DataFrame | None, benchmark: str, category: str
) -> tuple[dict[tuple[str, str], np.ndarray], int]:
    """(model, method) -> per-question 0/1 vector over the group's sorted question ids ("" is the base model)."""
    if correctness is None:
        return {}, 0
    frame = correctness
    for column, value in (("benchmark", benchmark), ("category", category)):
        if column in frame.columns and value != ALL:
            frame = frame.filter(pl.col(column).cast(pl.Utf8) == value)
    if frame.is_empty():
        return {}, 0
    method = pl.col("method").cast(pl.Utf8).fill_null("") if "method" in frame.columns else pl.lit("")
    frame = frame.select(
        pl.col("model").cast(pl.Utf8),
        method.alias("method"),
        pl.col("question_id").cast(pl.Utf8),
        pl.col("correct").cast(pl.Float64),
    )
    question_ids = sorted(frame["question_id"].unique().to_list())
    index = {q: i for i, q in enumerate(question_ids)}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for (model, method_name), part in frame.group_by(["model", "method"]):
        vector = np.full(len(question_ids), np.nan)
        vector[[index[q] for q in part["question_id"]]] = part["correct"].to_numpy()
        vectors[(model, method_name)] = vector
    return vectors, len(question_ids)


def _fit_group(
    group: pl.DataFrame,
    benchmark: str,
    category: str,
    settings: MultiplierSettings,
    correctness: pl.DataFrame | None,
    rng: np.random.Generator,
    source: str,
    rejections: list[Rejection],
) -> tuple[CurveFit, list[MultiplierRow]] | Rejection:
    chance = _group_chance(group, benchmark, settings)
    form = _make_form(settings.form, chance, settings)
    conflicting = group.group_by("model").agg(pl.col("base_acc").n_unique().alias("n")).filter(pl.col("n") > 1)
    for model in conflicting["model"].to_list():
        detail = "rows of this model disagree on base_acc; the first row's value is the ladder point"
        rejections.append(
            Rejection(STAGE, source, f"{benchmark}/{category}/{model}", "conflicting_base_accuracy", detail)
        )
    ladder = group.unique(subset=["model"], keep="first", maintain_order=True).sort("flops")
    x = np.log10(ladder["flops"].to_numpy())
    y = ladder["base_acc"].to_numpy()
    if len(ladder) < _min_points(form):
        return Rejection(
            STAGE,
            source,
            f"{benchmark}/{category}",
            "too_few_ladder_points",
            f"form {form.name} needs {_min_points(form)} ladder models, got {len(ladder)}",
        )
    params = form.fit(x, y)
    curve = CurveFit(benchmark, category, form, params, ladder["model"].to_list(), x, y)
    targets = group.filter(pl.col("method_acc").is_not_null())
    if targets.is_empty():
        return curve, []

    t_x = np.log10(targets["flops"].to_numpy())
    t_base, t_method = targets["base_acc"].to_numpy(), targets["method_acc"].to_numpy()
    point = match_compute(
        form, np.tile(params, (len(targets), 1)), t_method, curve.log10_range, settings.ceiling_epsilon
    )
    base_point = match_compute(form, np.tile(params, (len(targets), 1)), t_base, curve.log10_range, 0.0)
    ci = _bootstrap_log10_multipliers(
        form, params, ladder, targets, settings, correctness, rng, benchmark, category, rejections, source
    )
    by_form = _multipliers_by_form(x, y, t_x, t_method, chance, settings, curve.log10_range)

    rows = []
    for i, target in enumerate(targets.iter_rows(named=True)):
        status = str(point.status[i])
        forms_i = {name: _pow10(values[i] - t_x[i]) for name, values in by_form.items()}
        rows.append(
            MultiplierRow(
                model=target["model"],
                benchmark=benchmark,
                category=category,
                method=target["method"],
                flops=float(target["flops"]),
                base_acc=float(t_base[i]),
                method_acc=float(t_method[i]),
                matched_flops=_pow10(point.log10_flops[i]),
                multiplier=_pow10(point.log10_flops[i] - t_x[i]),
                ci_low=None if ci is None else _pow10(ci[0][i] - t_x[i]),
                ci_high=None if ci is None else _pow10(ci[1][i] - t_x[i]),
                status=status,  # type: ignore[arg-type]
                bound={"above_ceiling": "lower_bound", "below_floor": "upper_bound"}.get(status),  # type: ignore[arg-type]
                multiplier_vs_fitted_base=_pow10(point.log10_flops[i] - base_point.log10_flops[i]),
                form=form.name,
                by_form=forms_i,
                form_spread=max(forms_i.values()) / min(forms_i.values()) if forms_i else 1.0,
            )
        )
    return curve, rows


def _entry(
    model: str,
    method: str,
    acc: float,
    n_questions: float | None,
    vectors: dict[tuple[str, str], np.ndarray],
    rejections: list[Rejection],
    source: str,
) -> _AccuracyEntry:
    """An accuracy with its per-question correctness, which is dropped (and reported) when the two disagree."""
    correct = vectors.get((model, method))
    if correct is not None and abs(float(np.nanmean(correct)) - acc) > CORRECTNESS_TOLERANCE:
        detail = f"correctness mean {np.nanmean(correct):.4f} != accuracy {acc:.4f}; using binomial resampling"
        rejections.append(Rejection(STAGE, source, f"{model}/{method or 'base'}", "correctness_mismatch", detail))
        correct = None
    return _AccuracyEntry(acc, n_questions, correct)


def _bootstrap_log10_multipliers(
    form: CurveForm,
    params: np.ndarray,
    ladder: pl.DataFrame,
    targets: pl.DataFrame,
    settings: MultiplierSettings,
    correctness: pl.DataFrame | None,
    rng: np.random.Generator,
    benchmark: str,
    category: str,
    rejections: list[Rejection],
    source: str,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Percentile interval of the matched log10 FLOPs of every target, or None when nothing can be resampled."""
    if settings.bootstrap == "none" or settings.n_boot == 0:
        return None
    n_boot, n_ladder = settings.n_boot, len(ladder)
    vectors, n_question_ids = _correctness_vectors(correctness, benchmark, category)
    entries = [
        _entry(model, "", acc, n, vectors, rejections, source)
        for model, acc, n in ladder.select("model", "base_acc", "n_questions").iter_rows()
    ] + [
        _entry(model, method, acc, n, vectors, rejections, source)
        for model, method, acc, n in targets.select("model", "method", "method_acc", "n_questions").iter_rows()
    ]
    resample_questions = settings.bootstrap in ("both", "questions") and any(
        e.correct is not None or e.n_questions for e in entries
    )
    resample_ladder = settings.bootstrap in ("both", "ladder") and not isinstance(form, FixedSigmoid)
    if not (resample_questions or resample_ladder):
        return None
    accs = (
        resample_accuracies(entries, n_boot, rng, n_question_ids)
        if resample_questions
        else np.tile([e.acc for e in entries], (n_boot, 1))
    )
    weights = (
        rng.multinomial(n_ladder, np.full(n_ladder, 1.0 / n_ladder), size=n_boot).astype(float)
        if resample_ladder
        else np.ones((n_boot, n_ladder))
    )
    x = np.log10(ladder["flops"].to_numpy())
    boot_params = form.refit_batch(params, x, accs[:, :n_ladder], weights)
    log10_range = (float(x.min()), float(x.max()))
    matched = np.stack(
        [
            match_compute(form, boot_params, accs[:, n_ladder + t], log10_range, settings.ceiling_epsilon).log10_flops
            for t in range(len(targets))
        ],
        axis=1,
    )
    tail = (1.0 - settings.ci) / 2.0
    return np.quantile(matched, tail, axis=0), np.quantile(matched, 1.0 - tail, axis=0)


def _multipliers_by_form(
    x: np.ndarray,
    y: np.ndarray,
    t_x: np.ndarray,
    t_method: np.ndarray,
    chance: float,
    settings: MultiplierSettings,
    log10_range: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Matched log10 FLOPs of each target under every compared form that the ladder is large enough for."""
    out = {}
    for name in settings.compare_forms:
        form = make_form(name, chance=chance, irreducible=settings.irreducible)
        if len(x) < _min_points(form):
            continue
        params = form.fit(x, y)
        out[name] = match_compute(
            form, np.tile(params, (len(t_x), 1)), t_method, log10_range, settings.ceiling_epsilon
        ).log10_flops
    return out


# ---------------------------------------------------------------- entry point
def multiplier_key(ladder: pl.DataFrame, settings: MultiplierSettings, correctness: pl.DataFrame | None = None) -> str:
    """Content key of a multiplier result: stage, version, settings and the exact input tables."""
    return stable_hash(
        {
            "stage": STAGE,
            "version": STAGE_VERSION,
            "settings": asdict(settings),
            "ladder": content_hash(ladder.write_csv()),
            "correctness": None if correctness is None else content_hash(correctness.write_csv()),
        }
    )


def compute_multipliers(
    ladder: pl.DataFrame,
    settings: MultiplierSettings | None = None,
    correctness: pl.DataFrame | None = None,
    source: str = "ladder",
) -> MultiplierReport:
    """Fit each (benchmark, category) group's ladder and compute the multiplier of every row with a method accuracy.

    ``ladder`` has columns ``model, flops, base_acc`` and optionally ``method_acc, method, benchmark, category,
    n_questions, chance`` (one row per model and method; rows without ``method_acc`` only shape the curve).
    ``correctness`` (``model, question_id, correct`` [+ ``method, benchmark, category``]) enables the
    per-question bootstrap. Unusable rows and groups become rejections; nothing usable raises ``LadderError``.
    """
    settings = settings or MultiplierSettings()
    frame, rejections = normalize_ladder(ladder, source)
    stats = StageStats(STAGE)
    stats.add("rows_in", len(ladder))
    rng = np.random.default_rng(settings.seed)
    curves, rows = [], []
    for (benchmark, category), group in sorted(frame.group_by(["benchmark", "category"]), key=lambda kv: kv[0]):
        result = _fit_group(group, benchmark, category, settings, correctness, rng, source, rejections)
        if isinstance(result, Rejection):
            rejections.append(result)
            continue
        curves.append(result[0])
        rows.extend(result[1])
    for rejection in rejections:
        stats.add(f"rejected_{rejection.reason}")
    stats.add("groups_fitted", len(curves))
    stats.add("rows_out", len(rows))
    if not curves:
        reasons = "; ".join(f"{r.input_ref}: {r.reason} ({r.detail})" for r in rejections[:5])
        raise LadderError(f"{source}: no ladder group could be fitted ({reasons or 'no rows'})")
    return MultiplierReport(rows, curves, rejections, stats)
