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

        from flows.reports import readable, stat_rows

        out = console()
        if not report:
            out.print(f"no runs in {data_dir}")
        overview = Table(title=f"recent runs in {data_dir}")
        for column in ("run", "command", "variant", "state", "started (UTC)", "took", "stage outputs"):
            overview.add_column(column, justify="right" if column in ("took", "stage outputs") else "left")
        for run in report:
            overview.add_row(
                run["run_id"], run["command"], run["variant"], run["status"], f"{run['started_at']:%Y-%m-%d %H:%M:%S}",
                readable("seconds", run["seconds"]), str(len(run["stages"])),
            )  # fmt: skip
        if report:
            print_table(overview, out)
        for run in report:
            if not run["stages"]:
                continue
            table = Table(title=f"{run['run_id']}: {run['command']} {run['variant']} ({run['status']})")
            for column in ("stage", "shard", "rows", "took", "stats"):
                table.add_column(column, justify="right" if column in ("rows", "took") else "left")
            for s in run["stages"]:
                timing = s["stats"].get("timing") or {}
                stats = {k: v for k, v in s["stats"].items() if k != "timing"}
                took = readable("seconds", timing["seconds"]) if "seconds" in timing else ""
                details = ", ".join(f"{r['metric']}={r['value']}" for r in stat_rows(stats))
                table.add_row(s["stage"], s["shard"] or "", f"{s['row_count']:,}", took, details)
            print_table(table, out)

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

    @app.command()
    def rejections(
        target: Annotated[
            str, typer.Argument(help="A run id (see `reread runs`), or a variant: its name, YAML file or bundled name.")
        ],
        data_dir: DataDirOption,
        examples: Annotated[int, typer.Option("--examples", "-n", min=0, help="Examples shown per reason.")] = 5,
        as_json: JsonOption = False,
    ) -> None:
        """What a run or a variant's build rejected: counts per stage and reason (most frequent first), then
        examples of each with the input (file, record, URL) and the detail."""
        from flows.reports import rejections_report

        report = rejections_report(target, data_dir, examples)
        if as_json:
            typer.echo(json.dumps(report, default=str))
            return
        from rich.table import Table

        out = console()
        title = f"rejections of {'run' if 'run' in report else 'variant'} {report.get('run') or report.get('variant')}"
        counts = Table(title=f"{title}: {report['total']} in all")
        for column in ("stage", "reason", "count"):
            counts.add_column(column, justify="right" if column == "count" else "left")
        for r in report["reasons"]:
            counts.add_row(r["stage"], r["reason"], f"{r['count']:,}")
        print_table(counts, out)
        if examples == 0 or not report["reasons"]:
            return
        table = Table(title="examples")
        for column in ("stage", "reason", "source", "input", "detail"):
            table.add_column(column)
        for r in report["reasons"]:
            for e in r["examples"]:
                table.add_row(r["stage"], r["reason"], e["source"] or "", e["input_ref"] or "", e["detail"] or "")
        print_table(table, out)
