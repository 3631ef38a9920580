"""Speed of compute-multiplier fits and bootstraps, and of test-time-scaling analysis on stored samples.

    .venv/bin/python benchmarks/multiplier_tts.py --ladders 50 --n-boot 500 --questions 1000 --samples 64

Multiplier: one ladder (9 models, 4 forms) fitted from scratch (scipy least_squares, several starts), then the
bootstrap refits as one batched Levenberg-Marquardt, beside the same refits done one scipy call each; and the
coverage of the 90% interval over ``--ladders`` simulated ladders (true multiplier 10x). TTS: ``evaluate_strategy``
on ``--questions`` x ``--samples`` stored samples at several budgets, and a whole report (all strategies, both
difficulty kinds, the policy) on the same table. Prints a table and writes ``benchmarks/results/multiplier_tts.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import polars as pl

from eval.multiplier import MultiplierSettings, compute_multipliers
from eval.multiplier_curves import CURVE_FORMS, Sigmoid, make_form
from eval.tts.report import TtsSettings, build_tts_report
from eval.tts.samples import validate_samples
from eval.tts.strategies import StrategySpec, evaluate_strategy

RESULTS = Path(__file__).resolve().parent / "results" / "multiplier_tts.json"
LADDER_X = np.arange(21.0, 25.01, 0.5)
TRUTH = np.array([0.9, 1.5, 23.0])


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat, out


def bench_fits(n_boot: int) -> dict:
    rng = np.random.default_rng(0)
    curve = Sigmoid(0.25)
    y = rng.binomial(1000, curve.predict(TRUTH, LADDER_X)[0]) / 1000
    boot_y = rng.binomial(1000, np.tile(y, (n_boot, 1))) / 1000
    weights = np.ones_like(boot_y)
    loop_n = min(n_boot, 100)  # one scipy fit per replicate is slow: time a slice
    out = {}
    for name in CURVE_FORMS:
        form = make_form(name)
        fit_s, params = _timed(lambda form=form: form.fit(LADDER_X, y), repeat=5)
        batched_s, _ = _timed(lambda form=form, p=params: form.refit_batch(p, LADDER_X, boot_y, weights))
        loop_s, _ = _timed(lambda form=form: [form.fit(LADDER_X, row) for row in boot_y[:loop_n]])
        out[name] = {
            "fit_ms": 1e3 * fit_s,
            "batched_refits_per_s": n_boot / batched_s,
            "scipy_refits_per_s": loop_n / loop_s,
        }
    return out


def bench_coverage(n_ladders: int, n_boot: int) -> dict:
    rng = np.random.default_rng(1)
    curve = Sigmoid(0.25)
    covered, widths = [], []
    start = time.perf_counter()
    for _ in range(n_ladders):
        base = rng.binomial(1000, curve.predict(TRUTH, LADDER_X)[0]) / 1000
        method = rng.binomial(1000, curve.predict(TRUTH, np.array([23.5]))[0, 0]) / 1000
        ladder = pl.DataFrame(
            {
                "model": [f"m{x}" for x in LADDER_X],
                "flops": 10.0**LADDER_X,
                "base_acc": base,
                "method_acc": [method if x == 22.5 else None for x in LADDER_X],
                "n_questions": [1000] * len(LADDER_X),
            }
        )
        settings = MultiplierSettings(
            bootstrap="questions", n_boot=n_boot, compare_forms=(), seed=int(rng.integers(1e9))
        )
        row = compute_multipliers(ladder, settings).rows[0]
        covered.append(row.ci_low <= 10.0 <= row.ci_high)
        widths.append(np.log10(row.ci_high / row.ci_low))
    seconds = time.perf_counter() - start
    return {
        "ladders": n_ladders,
        "coverage_90": float(np.mean(covered)),
        "median_ci_width_decades": float(np.median(widths)),
        "seconds_per_ladder": seconds / n_ladders,
    }


def samples_table(n_questions: int, n_samples: int) -> pl.DataFrame:
    rng = np.random.default_rng(2)
    p = rng.beta(0.7, 0.7, n_questions)
    correct = rng.random((n_questions, n_samples)) < p[:, None]
    wrong = rng.integers(0, 4, (n_questions, n_samples))
    return pl.DataFrame(
        {
            "question_id": np.repeat([f"q{i}" for i in range(n_questions)], n_samples),
            "sample_idx": np.tile(np.arange(n_samples), n_questions),
            "answer": np.where(correct, "gold", np.char.add("wrong", wrong.astype(str))).ravel(),
            "correct": correct.ravel(),
            "verifier_score": np.clip(0.5 * correct + rng.random(correct.shape) * 0.6, 0, 1).ravel(),
            "tokens": np.full(n_questions * n_samples, 300),
        }
    )


def bench_tts(n_questions: int, n_samples: int) -> dict:
    table = validate_samples(samples_table(n_questions, n_samples))
    qids = table.question_ids
    out = {"questions": n_questions, "samples_per_question": n_samples, "evaluate_ms": {}}
    for budget in (1, 8, n_samples // 2):
        seconds, _ = _timed(
            lambda b=budget: evaluate_strategy(table, StrategySpec("parallel", "weighted"), b, qids, draws=64)
        )
        out["evaluate_ms"][f"weighted@{budget}"] = 1e3 * seconds
    budgets = tuple(2**i for i in range(int(np.log2(n_samples)) + 1))
    out["report_s"], report = _timed(lambda: build_tts_report(table, TtsSettings(budgets=budgets, draws=64)))
    out["report_budgets"] = list(budgets)
    out["policy_regret_max"] = max(p.regret for pts in report.policies.values() for p in pts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladders", type=int, default=50)
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()

    fits = bench_fits(args.n_boot)
    coverage = bench_coverage(args.ladders, min(args.n_boot, 200))
    tts = bench_tts(args.questions, args.samples)

    print(f"{'form':<10} {'fit ms':>8} {'batched refits/s':>18} {'scipy refits/s':>16}")
    for name, row in fits.items():
        print(
            f"{name:<10} {row['fit_ms']:>8.1f} {row['batched_refits_per_s']:>18.0f} {row['scipy_refits_per_s']:>16.0f}"
        )
    print(
        f"\nbootstrap coverage (90% CI, {coverage['ladders']} ladders): {coverage['coverage_90']:.2f}, "
        f"median width {coverage['median_ci_width_decades']:.2f} decades, "
        f"{coverage['seconds_per_ladder']:.3f} s per ladder"
    )
    print(f"\nTTS on {tts['questions']} questions x {tts['samples_per_question']} samples")
    for key, ms in tts["evaluate_ms"].items():
        print(f"  evaluate {key:<14} {ms:8.1f} ms")
    print(f"  full report (budgets {tts['report_budgets']}): {tts['report_s']:.1f} s")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": platform.platform(), "args": vars(args), "fits": fits, "coverage": coverage, "tts": tts}
    RESULTS.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
