"""``reread multiplier`` (compute multipliers from a model ladder) and ``reread tts-report`` (test-time scaling)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from catalog.errors import RereadError
from flows.commands._common import JsonOption, console, print_table


def _parse_fixed_curve(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise RereadError(f"--fixed-curve {text!r}: expected four numbers FLOOR,CEIL,SLOPE,MIDPOINT")
    return values  # type: ignore[return-value]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _label(row) -> tuple[str, str]:
    group = row.benchmark if row.category == "all" else f"{row.benchmark}/{row.category}"
    return group, f"{row.model} {row.method}".strip()


def _print_multipliers(report) -> None:
    from rich.table import Table

    out = console()
    table = Table(title="Compute multipliers")
    for column in ("group", "model method", "FLOPs", "base", "method", "matched", "multiplier", "CI", "status"):
        table.add_column(column, justify="left" if column in ("group", "model method", "status") else "right")
    for r in report.rows:
        bound = {"lower_bound": ">=", "upper_bound": "<="}.get(r.bound or "", "")
        table.add_row(
            *_label(r),
            _fmt(r.flops),
            f"{r.base_acc:.3f}",
            f"{r.method_acc:.3f}",
            _fmt(r.matched_flops),
            bound + _fmt(r.multiplier),
            f"{_fmt(r.ci_low)}-{_fmt(r.ci_high)}",
            r.status,
        )
    print_table(table, out)
    forms = sorted({name for r in report.rows for name in r.by_form})
    by_form = Table(title="Multiplier by curve form (point estimates)")
    for column in ("group", "model method", *forms, "max/min"):
        by_form.add_column(column, justify="left" if column in ("group", "model method") else "right")
    for r in report.rows:
        by_form.add_row(*_label(r), *[_fmt(r.by_form.get(f)) for f in forms], f"{r.form_spread:.3g}")
    print_table(by_form, out)
    for rejection in report.rejections:
        out.print(f"[yellow]skipped {rejection.input_ref}: {rejection.reason} ({rejection.detail})[/yellow]")


def register(app: typer.Typer) -> None:
    @app.command("multiplier")
    def multiplier(
        ladder: Annotated[Path, typer.Argument(help="Ladder CSV/YAML/Parquet: model,flops,base_acc,method_acc,...")],
        fixed_curve: Annotated[
            str | None,
            typer.Option(help="Reuse a published sigmoid instead of fitting: FLOOR,CEIL,SLOPE,MIDPOINT (log10 FLOPs)."),
        ] = None,
        form: Annotated[str, typer.Option(help="Curve form: sigmoid, logistic, power or piecewise.")] = "sigmoid",
        chance: Annotated[
            float | None, typer.Option(help="Sigmoid floor (default: the benchmark's chance level, 0.25 for MC).")
        ] = None,
        irreducible: Annotated[bool, typer.Option(help="Power form: fit an irreducible error.")] = False,
        correctness: Annotated[
            Path | None, typer.Option(help="Per-question correctness (model,question_id,correct[,method]).")
        ] = None,
        bootstrap: Annotated[str, typer.Option(help="Resample: both, questions, ladder or none.")] = "both",
        n_boot: Annotated[int, typer.Option(help="Bootstrap replicates.")] = 500,
        ci: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.9,
        seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
        plot: Annotated[Path | None, typer.Option(help="PNG path (default: beside the ladder file).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Fit accuracy against training FLOPs and report each method's compute multiplier with bootstrap CIs."""
        from eval.multiplier import MultiplierSettings, compute_multipliers, read_correctness, read_ladder
        from eval.multiplier_plot import plot_multipliers

        settings = MultiplierSettings(
            form=form,
            chance=chance,
            irreducible=irreducible,
            fixed_curve=_parse_fixed_curve(fixed_curve),
            bootstrap=bootstrap,  # type: ignore[arg-type]
            n_boot=n_boot,
            ci=ci,
            seed=seed,
        )
        report = compute_multipliers(
            read_ladder(ladder),
            settings,
            correctness=read_correctness(correctness) if correctness else None,
            source=str(ladder),
        )
        plot_path = plot_multipliers(report, plot or ladder.with_suffix(".multiplier.png"))
        if as_json:
            typer.echo(report.to_json())
        else:
            _print_multipliers(report)
            typer.echo(f"plot: {plot_path}")

    @app.command("tts-report")
    def tts_report(
        samples: Annotated[Path, typer.Argument(help="Samples table (Parquet) of stored generations and scores.")],
        budgets: Annotated[str, typer.Option(help="Comma-separated sample budgets.")] = "1,2,4,8,16",
        selection: Annotated[
            str, typer.Option(help="Policy selection: split (validation/test) or crossfit.")
        ] = "split",
        generator_params: Annotated[
            int | None, typer.Option(help="Generator parameter count, for the FLOPs axis (2 x params per token).")
        ] = None,
        verifier_params: Annotated[
            int | None, typer.Option(help="Verifier parameter count, charged for selections that use its scores.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the subset draws.")] = 0,
        plot: Annotated[Path | None, typer.Option(help="PNG path (default: beside the samples file).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Accuracy against test-time budget for every strategy and the compute-optimal policy."""
        from eval.tts.report import TtsSettings, build_tts_report, plot_tts_report, print_tts_report
        from eval.tts.samples import read_samples

        try:
            budget_list = tuple(int(b) for b in budgets.split(","))
        except ValueError:
            raise RereadError(f"--budgets {budgets!r}: expected comma-separated integers") from None
        settings = TtsSettings(
            budgets=budget_list,
            selection=selection,  # type: ignore[arg-type]
            generator_params=generator_params,
            verifier_params=verifier_params,
            seed=seed,
        )
        report = build_tts_report(read_samples(samples), settings)
        plot_path = plot_tts_report(report, plot or samples.with_suffix(".tts.png"))
        if as_json:
            typer.echo(json.dumps(report.as_dict(), allow_nan=False, indent=2))
        else:
            print_tts_report(report)
            typer.echo(f"plot: {plot_path}")
