"""reread runs / reread contamination: read-only views of the catalog."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flows.commands._common import DataDirOption, JsonOption, VariantArgument, console, print_table


def register(app: typer.Typer) -> None:
    @app.command()
    def runs(
        data_dir: DataDirOption,
        limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent runs.")] = 10,
        as_json: JsonOption = False,
    ) -> None:
        """Recent runs and their stage stats, from the catalog."""
        from flows.reports import recent_runs

        report = recent_runs(data_dir, limit)
        if as_json:
            typer.echo(json.dumps(report, default=str))
            return
        from rich.table import Table

        for run in report:
            table = Table(
                title=f"{run['run_id']}  {run['command']} {run['variant']}  {run['status']}  "
                f"{run['started_at']:%Y-%m-%d %H:%M:%S} ({run['seconds']:.1f} s)"
            )
            for column in ("stage", "shard", "rows", "stats"):
                table.add_column(column)
            for s in run["stages"]:
                stats = ", ".join(f"{k}={v}" for k, v in sorted(s["stats"].items()))
                table.add_row(s["stage"], s["shard"], str(s["row_count"]), stats)
            print_table(table)

    @app.command()
    def contamination(
        variant: VariantArgument,
        data_dir: DataDirOption,
        as_json: JsonOption = False,
    ) -> None:
        """The decontamination report of a built variant: per benchmark items checked, found and rate, and the
        removed documents or chunks with the benchmark items that matched them."""
        from catalog.variant import load_variant
        from flows.reports import contamination_report

        report = contamination_report(load_variant(variant), data_dir)
        if as_json:
            typer.echo(json.dumps(report, default=str))
            return
        from rich.table import Table

        out = console()
        table = Table(title=f"contamination of {report['variant']} ({report['action']})")
        for column in ("benchmark", "items checked", "items found", "rate"):
            table.add_column(column)
        for b in report["benchmarks"]:
            table.add_row(b["benchmark"], str(b["items_checked"]), str(b["items_found"]), f"{b['rate']:.2%}")
        print_table(table, out)
        for r in report["removed"][:50]:
            where = r["url"] or r["input_ref"] or r["id"]  # as the source names it; Reread's hash as a last resort
            out.print(f"removed {r['kind']} {r['source']}: {where}: {', '.join(r['items'])}")
        if len(report["removed"]) > 50:
            out.print(f"... and {len(report['removed']) - 50} more (use --json)")
