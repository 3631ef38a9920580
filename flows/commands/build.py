"""reread build / reread ingest / reread refresh."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.commands._common import (
    DataDirOption,
    JsonOption,
    LockTimeoutOption,
    VariantArgument,
    print_table,
    use_lock_timeout,
)

RunnerOption = Annotated[
    str, typer.Option("--runner", help="Task runner: threads (default), processes, dask, ray (scale extra).")
]
WorkersOption = Annotated[int | None, typer.Option("--workers", help="Workers of the task runner.")]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="A running cluster to submit to: tcp://HOST:8786 (--runner dask) or ray://HOST:10001 (--runner ray); "
        "its workers must see the data dir (docs/scale.md).",
    ),
]


def _print_stages(summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"build of {summary['variant']} (run {summary['run_id']})")
    for column in ("stage", "shard", "status", "rows", "details"):
        table.add_column(column)
    for s in summary["stages"]:
        details = ", ".join(f"{k}={v}" for k, v in sorted(s["stats"].items()) if not isinstance(v, dict))
        table.add_row(s["stage"], s["shard"], "cached" if s["cached"] else "built", str(s["rows"]), details)
    print_table(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def build(
        variant: VariantArgument,
        data_dir: DataDirOption,
        runner: RunnerOption = "threads",
        workers: WorkersOption = None,
        lock_timeout: LockTimeoutOption = None,
        address: AddressOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Build a variant's datastore: ingest -> extract -> decontaminate -> dedup -> chunk -> embed -> index.
        Stages whose inputs and config are unchanged are skipped."""
        from flows.build import run_build
        from flows.preflight import check_build

        check_build(variant)
        use_lock_timeout(lock_timeout)
        summary = run_build(variant, data_dir, runner=runner, workers=workers, address=address)
        if as_json:
            typer.echo(json.dumps(summary, default=str))
        else:
            _print_stages(summary)

    @app.command()
    def ingest(
        variant: VariantArgument,
        data_dir: DataDirOption,
        runner: RunnerOption = "threads",
        workers: WorkersOption = None,
        lock_timeout: LockTimeoutOption = None,
        address: AddressOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Read a variant's sources and extract their text into the catalog (documents read, extracted, rejected)."""
        from catalog.variant import load_variant
        from flows.build import run_ingest

        load_variant(variant)
        use_lock_timeout(lock_timeout)
        summary = run_ingest(variant, data_dir, runner=runner, workers=workers, address=address)
        if as_json:
            typer.echo(json.dumps(summary, default=str))
            return
        from rich.table import Table

        table = Table(title=f"ingest of {summary['variant']}")
        for column in ("source", "status", "read", "extracted", "rejected", "rejections by reason"):
            table.add_column(column)
        for s in summary["sources"]:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(s["rejections"].items()))
            table.add_row(
                s["source"], "cached" if s["cached"] else "extracted", str(s["read"]), str(s["extracted"]),
                str(s["rejected"]), reasons,
            )  # fmt: skip
        print_table(table)

    @app.command()
    def refresh(
        variant: VariantArgument,
        data_dir: DataDirOption,
        runner: RunnerOption = "threads",
        workers: WorkersOption = None,
        lock_timeout: LockTimeoutOption = None,
        address: AddressOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Bring a variant's datastore up to date: re-crawl its crawl sources (conditional requests), then rebuild
        only what changed. Prints what changed: pages, and per stage the rows of new work and the rows reused."""
        from flows.commands._common import print_markdown
        from flows.preflight import check_build
        from flows.refresh import report_markdown, run_refresh

        check_build(variant)
        use_lock_timeout(lock_timeout)
        result = run_refresh(variant, data_dir, runner=runner, workers=workers, address=address)
        if as_json:
            typer.echo(json.dumps(result, default=str))
        else:
            print_markdown(report_markdown(result["changes"]))
