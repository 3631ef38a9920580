"""reread theory <experiment> (figures of the training-data theory) and reread mixture (corpus-mixture advice)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from catalog.errors import ConfigError
from flows.commands._common import DataDirOption, JsonOption, console, parse_key_values, print_table

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting, KEY=VALUE with a JSON value (e.g. --set d=10 --set ns=[10,40])."),
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Output folder (default: <data-dir>/theory/<experiment>).")
]


def _experiment_command(theory_app: typer.Typer, name: str, summary: str) -> None:
    @theory_app.command(name=name, help=f"{summary[:1].upper()}{summary[1:]}; writes {name}.json and {name}.png.")
    def command(
        data_dir: DataDirOption,
        out: OutOption = None,
        settings: SetOption = None,
        as_json: JsonOption = False,
    ) -> None:
        from eval.theory.experiments import config_from_overrides
        from flows.runtime import offline_defaults
        from flows.theory import THEORY_FLOWS, default_out_dir

        offline_defaults()
        overrides = parse_key_values(settings, "--set")
        try:
            config_from_overrides(name, overrides)  # before the flow: a bad setting starts no Prefect server
            outputs = THEORY_FLOWS[name](out or default_out_dir(data_dir, name), overrides)
        except ValueError as exc:  # an unknown or inconsistent setting
            raise ConfigError(f"reread theory {name}: {exc}") from None
        if as_json:
            typer.echo(json.dumps(outputs))
        else:
            typer.echo(f"{name}: wrote {outputs['json']} and {outputs['png']} (config {outputs['config_hash']})")


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


def print_mixture_report(report: Any, out: Any) -> None:
    from rich.table import Table

    sources = Table(title=f"sources vs the target's top {report.rank} directions ({report.questions} questions)")
    for column in ("source", "chunks", "hardness (tr/lambda_r)", "effective rank", "relevance", "covered", "note"):
        sources.add_column(column)
    for p in report.sources:
        note = "few chunks: noisy" if p.few_chunks else ""
        sources.add_row(
            p.name, str(p.chunks), _fmt(p.hardness), _fmt(p.effective_rank), _fmt(p.relevance),
            f"{p.covered_fraction:.0%}", note,
        )  # fmt: skip
    print_table(sources, out)
    weights = Table(title="mixture weights (qp = recommended)")
    weights.add_column("weighting")
    for p in report.sources:
        weights.add_column(p.name)
    for column in ("QP objective", "max mu", "overthinking", "k*"):
        weights.add_column(column)
    for w in report.weightings:
        weights.add_row(
            w.name, *(f"{w.weights[p.name]:.3f}" for p in report.sources), _fmt(w.objective), _fmt(w.max_mu),
            "yes" if w.overthinking else "no", str(w.k_star or "-"),
        )  # fmt: skip
    print_table(weights, out)
    if report.coverage_margin_held is None:
        out.print("[yellow]no mixture covers every target direction: the weights are the unconstrained QP[/]")
    if report.uncoverable_directions:
        out.print(f"target directions no source covers: {report.uncoverable_directions}")
    for r in report.rejections:
        out.print(f"skipped source {r.source}: {r.reason} ({r.detail})")
    out.print("\n[bold]Caveats (spec section 11)[/]")
    for i, caveat in enumerate(report.caveats, 1):
        out.print(f"{i}. {caveat}")


class _ExperimentGroup(TyperGroup):
    """``reread theory``: one command per registered experiment, made when the group is used (the experiments'
    module imports numpy, scipy and torch, which ``reread --help`` must not pay for)."""

    def _load_experiments(self) -> None:
        if self.commands:
            return
        from eval.theory.experiments import EXPERIMENTS

        experiments = typer.Typer()
        for name, experiment in EXPERIMENTS.items():
            _experiment_command(experiments, name, experiment.summary)
        self.commands.update(typer.main.get_group(experiments).commands)

    def list_commands(self, ctx):
        self._load_experiments()
        return super().list_commands(ctx)

    def get_command(self, ctx, cmd_name):
        self._load_experiments()
        return super().get_command(ctx, cmd_name)


def register(app: typer.Typer) -> None:
    theory_app = typer.Typer(
        cls=_ExperimentGroup,
        no_args_is_help=True,
        help="Figures of the training-data theory of test-time scaling (PNG + JSON).",
    )
    app.add_typer(theory_app, name="theory")

    @app.command()
    def mixture(
        variant: Annotated[
            Path, typer.Argument(help="Variant YAML file of a built datastore.", exists=True, dir_okay=False)
        ],
        benchmark: Annotated[str, typer.Option("--benchmark", help="Benchmark name (mmlu, math500, gpqa, simpleqa).")],
        data_dir: DataDirOption,
        benchmark_path: Annotated[
            Path | None, typer.Option("--benchmark-path", help="Benchmark files (default: the variant's).")
        ] = None,
        rank: Annotated[
            int | None, typer.Option("--rank", help="Target directions kept (default questions/5).")
        ] = None,
        shrinkage: Annotated[float, typer.Option("--shrinkage", help="Target shrinkage towards isotropy.")] = 0.1,
        qp: Annotated[str, typer.Option("--qp", help="QP variant: reported, symmetric, gamma, residual.")] = "reported",
        n: Annotated[float, typer.Option("--n", help="Training items per context (inf: long contexts).")] = math.inf,
        margin: Annotated[float, typer.Option("--margin", help="Coverage margin: keep mu < 2 - margin.")] = 0.25,
        center: Annotated[str, typer.Option("--center", help="Common centre: union, target or none.")] = "union",
        max_per_source: Annotated[int, typer.Option("--max-per-source", help="Chunks sampled per source.")] = 5000,
        max_questions: Annotated[int | None, typer.Option("--max-questions", help="Use the first N questions.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Recommend corpus-source weights for a benchmark from embedding second moments (a heuristic prior, printed
        with its caveats), next to uniform and size-proportional weights."""
        from eval.theory.advisor import AdvisorConfig
        from flows.runtime import offline_defaults
        from flows.theory import run_mixture_advice

        offline_defaults()
        config = AdvisorConfig(rank=rank, shrinkage=shrinkage, center=center, variant=qp, n=n, coverage_margin=margin)
        try:
            report = run_mixture_advice(
                variant, benchmark, data_dir, benchmark_path, config, max_per_source, max_questions
            )
        except ValueError as exc:
            raise ConfigError(f"reread mixture {variant}: {exc}") from None
        if as_json:
            typer.echo(json.dumps(report.as_dict(), default=str))
        else:
            print_mixture_report(report, console())
