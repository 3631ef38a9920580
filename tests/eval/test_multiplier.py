"""Compute multipliers: known curves are recovered, ceilings are flagged, bootstrap CIs cover at their nominal rate."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from catalog.errors import RereadError
from eval.multiplier import (
    LadderError,
    MultiplierSettings,
    _AccuracyEntry,
    compute_multipliers,
    multiplier_key,
    read_ladder,
    resample_accuracies,
)
from eval.multiplier_curves import Logistic, PiecewiseLogLinear, PowerLaw, Sigmoid, isotonic_increasing
from flows.cli import app

LADDER_X = np.arange(21.0, 25.01, 0.5)  # log10 FLOPs of nine ladder models


def _ladder(curve, params, method_shift: dict[float, float]) -> pl.DataFrame:
    """Noise-free ladder from ``curve``; models at the keys of ``method_shift`` get a method worth that many decades."""
    base = curve.predict(np.array(params), LADDER_X)[0]
    method = [
        float(curve.predict(np.array(params), np.array([x + method_shift[x]]))[0, 0]) if x in method_shift else None
        for x in LADDER_X
    ]
    return pl.DataFrame(
        {"model": [f"m{x}" for x in LADDER_X], "flops": 10.0**LADDER_X, "base_acc": base, "method_acc": method}
    )


NO_BOOT = MultiplierSettings(bootstrap="none", compare_forms=())


@pytest.mark.parametrize(
    ("form", "curve", "params"),
    [
        ("sigmoid", Sigmoid(chance=0.25), [0.9, 1.5, 23.0]),
        ("logistic", Logistic(), [0.1, 0.85, 1.2, 23.5]),
        ("power", PowerLaw(), [10.0, 0.5]),
    ],
)
def test_parametric_forms_recover_known_multipliers(form, curve, params):
    shifts = {22.0: 1.0, 23.0: 0.5, 21.5: 2.0}
    ladder = _ladder(curve, params, shifts)
    report = compute_multipliers(ladder, MultiplierSettings(form=form, bootstrap="none", compare_forms=()))
    got = {row.model: row for row in report.rows}
    assert len(got) == 3
    for x, shift in shifts.items():
        row = got[f"m{x}"]
        assert row.status == "ok"
        assert row.multiplier == pytest.approx(10.0**shift, rel=1e-3)
        # The base model sits on the curve, so the diagnostic ratio is the same multiplier.
        assert row.multiplier_vs_fitted_base == pytest.approx(10.0**shift, rel=1e-3)


def test_power_law_with_irreducible_error_recovers_multiplier():
    curve = PowerLaw(irreducible=True)
    ladder = _ladder(curve, [10.0, 0.5, 0.08], {22.0: 1.5})
    report = compute_multipliers(ladder, MultiplierSettings(form="power", irreducible=True, bootstrap="none"))
    assert report.rows[0].multiplier == pytest.approx(10**1.5, rel=1e-3)
    assert report.curves[0].summary()["params"]["e0"] == pytest.approx(0.08, abs=1e-4)


def test_piecewise_recovers_multiplier_of_a_piecewise_linear_truth():
    # Truth is linear between the ladder's knots, so interpolation is exact for matched compute inside the ladder.
    base = np.interp(LADDER_X, [21.0, 23.0, 25.0], [0.3, 0.5, 0.8])
    ladder = pl.DataFrame(
        {
            "model": [f"m{x}" for x in LADDER_X],
            "flops": 10.0**LADDER_X,
            "base_acc": base,
            "method_acc": [float(np.interp(22.25, [21.0, 23.0, 25.0], [0.3, 0.5, 0.8]))] + [None] * 8,
        }
    )
    report = compute_multipliers(ladder, MultiplierSettings(form="piecewise", bootstrap="none", compare_forms=()))
    assert report.rows[0].multiplier == pytest.approx(10**1.25, rel=1e-9)
    assert report.rows[0].status == "ok"


def test_piecewise_is_monotone_even_when_the_ladder_is_not():
    assert isotonic_increasing(np.array([0.3, 0.5, 0.4, 0.6]), np.ones(4)).tolist() == pytest.approx(
        [0.3, 0.45, 0.45, 0.6]
    )
    form = PiecewiseLogLinear()
    params = form.fit(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.3, 0.5, 0.4, 0.6]))
    assert form.inverse(params[None], np.array([0.5]))[0] == pytest.approx(3.0 + 0.05 / 0.15)


def test_fixed_curve_is_used_as_given():
    floor, ceil, slope, mid = 0.25, 0.9, 1.5, 23.0
    curve = Sigmoid(chance=floor)
    # A ladder that disagrees with the published curve: the fixed curve must ignore it.
    ladder = _ladder(curve, [0.7, 0.8, 24.0], {})
    target = float(curve.predict(np.array([ceil, slope, mid]), np.array([23.7]))[0, 0])
    ladder = ladder.with_columns(pl.when(pl.col("model") == "m22.0").then(target).otherwise(None).alias("method_acc"))
    settings = MultiplierSettings(fixed_curve=(floor, ceil, slope, mid), bootstrap="none", compare_forms=())
    row = compute_multipliers(ladder, settings).rows[0]
    assert row.multiplier == pytest.approx(10**1.7, rel=1e-9)
    assert row.form == "fixed"


def test_accuracy_above_ceiling_is_a_flagged_finite_lower_bound():
    ladder = _ladder(Sigmoid(0.25), [0.8, 1.5, 23.0], {})
    ladder = ladder.with_columns(
        pl.when(pl.col("model") == "m22.0").then(0.95).when(pl.col("model") == "m23.0").then(0.25).alias("method_acc")
    )
    report = compute_multipliers(ladder, MultiplierSettings(n_boot=50, compare_forms=("sigmoid", "power")))
    rows = {row.model: row for row in report.rows}
    above, below = rows["m22.0"], rows["m23.0"]
    assert above.status == "above_ceiling" and above.bound == "lower_bound"
    assert above.matched_flops >= 1e25  # at least the ladder's largest model
    assert below.status == "below_floor" and below.bound == "upper_bound"
    text = report.to_json()  # allow_nan=False: raises on NaN/inf
    for row in json.loads(text):
        for key in ("matched_flops", "multiplier", "ci_low", "ci_high", "multiplier_vs_fitted_base", "form_spread"):
            assert row[key] is None or math.isfinite(row[key])
        assert all(math.isfinite(v) for v in row["by_form"].values())


def test_matched_compute_beyond_the_ladder_is_extrapolated():
    ladder = _ladder(Sigmoid(0.25), [0.9, 1.0, 24.0], {24.5: 1.5})
    row = compute_multipliers(ladder, NO_BOOT).rows[0]
    assert row.status == "extrapolated"
    assert row.multiplier == pytest.approx(10**1.5, rel=1e-3)


def test_bad_rows_are_rejected_and_counted_and_tiny_groups_skipped():
    good = _ladder(Sigmoid(0.25), [0.9, 1.5, 23.0], {22.0: 1.0}).with_columns(pl.lit("a").alias("benchmark"))
    bad = pl.DataFrame(
        {
            "model": ["neg", "acc", "x1", "x2"],
            "flops": [-1.0, 1e22, 1e22, 1e23],
            "base_acc": [0.5, 1.5, 0.4, 0.5],
            "method_acc": [None, None, None, None],
            "benchmark": ["a", "a", "b", "b"],
        }
    )
    report = compute_multipliers(pl.concat([good, bad]), NO_BOOT)
    reasons = sorted(r.reason for r in report.rejections)
    assert reasons == ["invalid_accuracy", "invalid_flops", "too_few_ladder_points"]
    assert report.stats.as_dict()["rejected_invalid_flops"] == 1
    assert [row.benchmark for row in report.rows] == ["a"]
    with pytest.raises(LadderError, match="no ladder group"):
        compute_multipliers(bad, NO_BOOT)


def test_conflicting_base_accuracies_are_reported():
    ladder = _ladder(Sigmoid(0.25), [0.9, 1.5, 23.0], {22.0: 1.0})
    conflicting = ladder.filter(pl.col("model") == "m22.0").with_columns(
        pl.lit(0.99).alias("base_acc"), pl.lit(0.7).alias("method_acc")
    )
    report = compute_multipliers(pl.concat([ladder, conflicting]), NO_BOOT)
    assert [(r.reason, r.input_ref) for r in report.rejections] == [("conflicting_base_accuracy", "all/all/m22.0")]
    assert len(report.rows) == 2
    assert report.rows[0].multiplier == pytest.approx(10.0, rel=1e-3)  # the first row's base_acc shapes the curve


def test_fixture_ladder_per_category_and_per_method(fixtures_dir):
    report = compute_multipliers(read_ladder(fixtures_dir / "multiplier" / "synthetic_ladder.csv"), NO_BOOT)
    assert {(r.category, r.method) for r in report.rows} == {
        (c, m) for c in ("stem", "humanities", "social_sciences", "other") for m in ("retrieval", "retrieval+sc8")
    }
    for row in report.rows:
        expected = 10.0 if row.method == "retrieval" else 10**1.4
        assert row.multiplier == pytest.approx(expected, rel=0.02)


def test_question_resampling_with_correctness_is_paired_and_unbiased():
    rng = np.random.default_rng(0)
    correct = (rng.random(400) < 0.6).astype(float)
    paired = correct.copy()
    paired[:20] = 1.0  # the method fixes some questions: identical otherwise
    entries = [_AccuracyEntry(correct.mean(), None, correct), _AccuracyEntry(paired.mean(), None, paired)]
    draws = resample_accuracies(entries, 4000, rng, 400)
    assert draws[:, 0].mean() == pytest.approx(correct.mean(), abs=0.003)
    assert draws[:, 0].std() == pytest.approx(math.sqrt(0.6 * 0.4 / 400), rel=0.1)
    # Paired draws: the difference varies far less than two independent accuracies would.
    assert np.std(draws[:, 1] - draws[:, 0]) < 0.5 * draws[:, 0].std()


def test_correctness_table_drives_the_question_bootstrap():
    curve, params = Sigmoid(0.25), [0.9, 1.5, 23.0]
    ladder = _ladder(curve, params, {22.0: 1.0})
    ladder = ladder.with_columns(pl.when(pl.col("method_acc").is_not_null()).then(pl.lit("rag")).alias("method"))
    rng = np.random.default_rng(1)
    rows = []
    for model, base, method in ladder.select("model", "base_acc", "method_acc").iter_rows():
        for q in range(300):
            rows.append({"model": model, "question_id": f"q{q}", "correct": int(rng.random() < base), "method": ""})
            if method is not None:
                rows.append(
                    {"model": model, "question_id": f"q{q}", "correct": int(rng.random() < method), "method": "rag"}
                )
    correctness = pl.DataFrame(rows)
    settings = MultiplierSettings(bootstrap="questions", n_boot=200, compare_forms=())
    # The ladder says the curve's exact accuracies; the simulated answers differ: flagged, binomial fallback unused.
    mismatched = compute_multipliers(ladder, settings, correctness=correctness)
    assert {r.reason for r in mismatched.rejections} == {"correctness_mismatch"}
    assert mismatched.rows[0].ci_low is None  # no n_questions: nothing to resample without the correctness vectors

    means = correctness.group_by("model", "method").agg(pl.col("correct").mean())
    observed = ladder.with_columns(
        pl.col("model")
        .replace_strict(dict(means.filter(pl.col("method") == "").select("model", "correct").iter_rows()))
        .alias("base_acc"),
        pl.when(pl.col("method") == "rag")
        .then(means.filter(pl.col("method") == "rag")["correct"][0])
        .alias("method_acc"),
    )
    report = compute_multipliers(observed, settings, correctness=correctness)
    assert report.rejections == []
    row = report.rows[0]
    assert row.ci_low is not None and row.ci_low < row.multiplier < row.ci_high
    # 300 questions per model: the interval is wide but bounded (about +-0.4 decades here).
    assert 0.1 < math.log10(row.ci_high / row.ci_low) < 2.0


def _simulated_ci_covers(rng: np.random.Generator, true_shift: float) -> bool:
    curve, truth = Sigmoid(0.25), np.array([0.9, 1.5, 23.0])
    n = 1000
    base = rng.binomial(n, curve.predict(truth, LADDER_X)[0]) / n
    target_x = 22.5
    method_acc = rng.binomial(n, curve.predict(truth, np.array([target_x + true_shift]))[0, 0]) / n
    ladder = pl.DataFrame(
        {
            "model": [f"m{x}" for x in LADDER_X],
            "flops": 10.0**LADDER_X,
            "base_acc": base,
            "method_acc": [method_acc if x == target_x else None for x in LADDER_X],
            "n_questions": [n] * len(LADDER_X),
        }
    )
    settings = MultiplierSettings(
        bootstrap="questions", n_boot=150, ci=0.9, compare_forms=(), seed=int(rng.integers(1 << 30))
    )
    row = compute_multipliers(ladder, settings).rows[0]
    return row.ci_low <= 10**true_shift <= row.ci_high


@pytest.mark.slow
def test_bootstrap_interval_covers_at_about_nominal_rate():
    rng = np.random.default_rng(2024)
    covered = [_simulated_ci_covers(rng, true_shift=1.0) for _ in range(200)]
    assert 0.8 <= np.mean(covered) <= 0.97


def test_ladder_bootstrap_widens_the_interval():
    rng = np.random.default_rng(5)
    curve, truth = Sigmoid(0.25), np.array([0.9, 1.5, 23.0])
    base = np.clip(curve.predict(truth, LADDER_X)[0] + rng.normal(0, 0.02, len(LADDER_X)), 0, 1)
    ladder = pl.DataFrame(
        {
            "model": [f"m{x}" for x in LADDER_X],
            "flops": 10.0**LADDER_X,
            "base_acc": base,
            "method_acc": [0.6 if x == 22.0 else None for x in LADDER_X],
            "n_questions": [2000] * len(LADDER_X),
        }
    )

    def width(mode: str) -> float:
        row = compute_multipliers(ladder, MultiplierSettings(bootstrap=mode, n_boot=300, compare_forms=())).rows[0]
        return math.log10(row.ci_high) - math.log10(row.ci_low)

    assert width("ladder") > 0
    assert width("both") > width("questions")


# ---------------------------------------------------------------- CLI
runner = CliRunner()
JSON_KEYS = {"model", "flops", "base_acc", "method_acc", "matched_flops", "multiplier", "ci_low", "ci_high", "status"}


def test_cli_json_schema_and_plot(fixtures_dir, tmp_path):
    plot = tmp_path / "ladder.png"
    args = ["multiplier", str(fixtures_dir / "multiplier" / "synthetic_ladder.csv"), "--json", "--n-boot", "50"]
    result = runner.invoke(app, [*args, "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 8
    for row in rows:
        assert JSON_KEYS <= set(row)
        assert row["status"] in {"ok", "extrapolated", "above_ceiling", "below_floor"}
        assert row["ci_low"] <= row["multiplier"] <= row["ci_high"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_fixed_curve(tmp_path):
    ladder = tmp_path / "ladder.csv"
    curve = Sigmoid(0.25)
    method = float(curve.predict(np.array([0.9, 1.5, 23.0]), np.array([23.0]))[0, 0])
    ladder.write_text(
        f"model,flops,base_acc,method_acc\nsmall,1e22,0.4,{method}\n"
    )  # one row: only a fixed curve works
    result = runner.invoke(app, ["multiplier", str(ladder), "--fixed-curve", "0.25,0.9,1.5,23", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["multiplier"] == pytest.approx(10.0, rel=1e-9)
    assert row["matched_flops"] == pytest.approx(1e23, rel=1e-9)
    assert (tmp_path / "ladder.multiplier.png").is_file()


def test_cli_rejects_a_malformed_fixed_curve(tmp_path):
    ladder = tmp_path / "ladder.csv"
    ladder.write_text("model,flops,base_acc,method_acc\nsmall,1e22,0.4,0.5\n")
    result = runner.invoke(app, ["multiplier", str(ladder), "--fixed-curve", "0.25,0.9"])
    assert result.exit_code != 0
    assert isinstance(result.exception, RereadError)
    assert "FLOOR,CEIL,SLOPE,MIDPOINT" in str(result.exception)


def test_multiplier_key_follows_inputs_and_settings(fixtures_dir):
    ladder = read_ladder(fixtures_dir / "multiplier" / "synthetic_ladder.csv")
    key = multiplier_key(ladder, MultiplierSettings())
    assert key == multiplier_key(ladder.clone(), MultiplierSettings())
    assert key != multiplier_key(ladder, MultiplierSettings(form="power"))
    assert key != multiplier_key(ladder.with_columns(pl.col("base_acc") * 0.99), MultiplierSettings())
