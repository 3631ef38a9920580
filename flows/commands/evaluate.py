"""reread eval / reread compare / reread demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.commands._common import (
    DataDirOption,
    JsonOption,
    LockTimeoutOption,
    ThreadsOption,
    VariantArgument,
    VariantsArgument,
    apply_threads,
    console,
    print_markdown,
    print_table,
    use_lock_timeout,
)

TaskOption = Annotated[
    list[str],
    typer.Option(
        "--benchmark",
        "--task",
        "-b",
        help="Evaluation task: a task YAML, or a name in REREAD_TASKS_DIR (default: the bundled tasks).",
    ),
]

ReaderConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--reader-config",
        help="Reader evaluation YAML (reader, samples, strategies): adds reader accuracy per test-time strategy, "
        "with pass@k, maj@k and FLOPs, on the QA tasks.",
        exists=True,
        dir_okay=False,
    ),
]


def quality_table(title: str, tasks: dict[str, dict]):
    """Retrieval quality per task as a table: a row per metric (in the report's order), a column per task (one line
    per task ran to 200 columns and more)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    for name in tasks:
        table.add_column(name, justify="right")
    table.add_row("n", *(str(metrics["n"]) for metrics in tasks.values()))
    names = dict.fromkeys(k for metrics in tasks.values() for k, v in metrics.items() if isinstance(v, float))
    for name in names:
        table.add_row(name, *(f"{m[name]:.4f}" if isinstance(m.get(name), float) else "-" for m in tasks.values()))
    return table


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        variant: VariantArgument,
        data_dir: DataDirOption,
        tasks: TaskOption = ["vaswani"],  # noqa: B006 (typer needs a literal default)
        reader_config: ReaderConfigOption = None,
        lock_timeout: LockTimeoutOption = None,
        threads: ThreadsOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Retrieval quality of a built variant on evaluation tasks (cached per index and task); with
        --reader-config, also reader accuracy per strategy (pass@k, maj@k with CIs, FLOPs)."""
        from flows.evaluate import evaluate, evaluate_reader
        from flows.preflight import check_eval
        from flows.runtime import tie_temporary_server_to_this_process

        check_eval(variant, tasks, reader_config)
        use_lock_timeout(lock_timeout)
        tie_temporary_server_to_this_process()

        apply_threads(threads)

        report = evaluate(str(variant.resolve()), str(data_dir.resolve()), tasks)
        if reader_config is not None:
            from eval.tasks import QATask, resolve_task

            report["reader"] = {
                t: evaluate_reader(str(variant.resolve()), str(data_dir.resolve()), t, str(reader_config.resolve()))
                for t in tasks
                if isinstance(resolve_task(t), QATask)
            }
        if as_json:
            typer.echo(json.dumps(report, default=str))
            return
        out = console()
        print_table(quality_table(f"retrieval quality of {report['variant']}", report["tasks"]), out)
        for reader_report in report.get("reader", {}).values():
            print_markdown(reader_report["markdown"], out)

    @app.command()
    def compare(
        variants: VariantsArgument,
        data_dir: DataDirOption,
        task: Annotated[str, typer.Option("--benchmark", "--task", "-b", help="Evaluation task.")] = "vaswani",
        out: Annotated[Path | None, typer.Option("--out", help="Folder for the HTML report and plots.")] = None,
        reader_config: ReaderConfigOption = None,
        threads: ThreadsOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Compare built variants side by side: one table, paired bootstrap tests, plots, an HTML report."""
        from flows.evaluate import compare_variants
        from flows.runtime import tie_temporary_server_to_this_process

        tie_temporary_server_to_this_process()
        apply_threads(threads)
        report = compare_variants(
            [str(v.resolve()) for v in variants],
            str(data_dir.resolve()),
            task,
            str(out) if out else None,
            str(reader_config.resolve()) if reader_config else None,
        )
        if as_json:
            typer.echo(json.dumps(report, default=str))
            return
        out = console()
        print_markdown(Path(report["html"]).with_name("compare.md").read_text(), out)
        out.print(f"HTML report: {report['html']}")

    @app.command()
    def demo(
        data_dir: DataDirOption,
        sample_dir: Annotated[
            Path | None, typer.Option(help="A sample data folder laid out like the bundled one (default: bundled).")
        ] = None,
        threads: ThreadsOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """The quick-start job: build the bundled sample datastores, report their retrieval quality, and evaluate
        the bundled SmolLM2 reader on NQ-open closed-book and with retrieval from two corpus variants."""
        from flows.demo import demo as demo_flow
        from flows.runtime import tie_temporary_server_to_this_process
        from sample_data import SAMPLE_DATA

        tie_temporary_server_to_this_process()
        apply_threads(threads)
        report = demo_flow(str((sample_dir or SAMPLE_DATA).resolve()), str(data_dir.resolve()))
        if as_json:
            typer.echo(json.dumps(report, default=str))
            return
        out = console()
        for build in report["builds"]:
            built = [s for s in build["stages"] if not s["cached"]]
            out.print(
                f"built [bold]{build['variant']}[/bold]: {len(build['stages'])} stage outputs, {len(built)} computed now"
            )
        sample_eval = report["sample_eval"]
        print_table(quality_table(f"retrieval quality of {sample_eval['variant']}", sample_eval["tasks"]), out)
        print_markdown(report["reader_markdown"], out)
        print_markdown(report["comparison_markdown"], out)
        out.print(f"HTML report: {report['comparison']['html']}")
