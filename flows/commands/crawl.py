"""reread crawl: run one crawl by hand (seeds on the command line, or a variant's crawl source)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from catalog.errors import ConfigError
from flows.commands._common import DataDirOption, JsonOption, console, print_table


def _variant_source(variant_path: Path, name: str | None) -> tuple[str, Any]:
    """The variant's name and its crawl source ``name`` (its first crawl source when no name is given)."""
    from catalog.variant import CrawlSource, load_variant

    variant = load_variant(variant_path)
    sources = [s for s in variant.sources if isinstance(s, CrawlSource) and (name is None or s.name == name)]
    if not sources:
        wanted = f"crawl source named {name!r}" if name else "source of type 'crawl'"
        raise ConfigError(f"{variant_path}: variant {variant.name!r} has no {wanted}")
    return variant.name, sources[0]


def _folder_name(seed: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", urlsplit(seed).netloc) or "crawl"


def _print_summary(summary: dict, folder: Path) -> None:
    from rich.table import Table

    table = Table(title=f"crawl into {folder}")
    table.add_column("outcome")
    table.add_column("pages", justify="right")
    for outcome, n in summary["outcomes"].items():
        table.add_row(outcome, str(n))
    for reason, n in summary["skipped_by_reason"].items():
        table.add_row(f"  skipped: {reason}", str(n))
    for change, n in summary["changes"].items():
        table.add_row(f"  change: {change}", str(n))
    print_table(table)
    console().print(f"{len(summary['warc_files'])} WARC file(s), {summary['elapsed_s']} s")


def register(app: typer.Typer) -> None:
    @app.command()
    def crawl(
        data_dir: DataDirOption,
        seeds: Annotated[list[str] | None, typer.Argument(help="Seed URLs (default: the variant's seeds).")] = None,
        variant: Annotated[
            Path | None,
            typer.Option("--variant", help="Variant YAML with a crawl source.", exists=True, dir_okay=False),
        ] = None,
        source: Annotated[str | None, typer.Option("--source", help="Which crawl source of the variant.")] = None,
        max_pages: Annotated[int | None, typer.Option("--max-pages", min=1)] = None,
        max_depth: Annotated[int | None, typer.Option("--max-depth", min=0)] = None,
        delay: Annotated[
            float | None, typer.Option("--delay", min=0, help="Seconds between requests to a host.")
        ] = None,
        allow: Annotated[
            list[str] | None,
            typer.Option("--allow", help="CIDR, address or host exempt from the non-public refusal (repeatable)."),
        ] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="WARC folder (default <data-dir>/crawl/<host>).")
        ] = None,
        fresh: Annotated[
            bool, typer.Option("--fresh", help="Ignore the folder's last crawl (no conditional requests).")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Crawl SEEDS (or a variant's crawl source) politely into WARC files, incrementally when the folder was
        crawled before. Prints pages fetched and skipped by reason; --json prints every fetch record."""
        from pydantic import ValidationError

        from extract.crawler import CrawlConfig, config_for_source, crawl_into

        overrides: dict[str, Any] = {
            key: value
            for key, value in {
                "seeds": tuple(seeds or ()),
                "max_pages": max_pages,
                "max_depth": max_depth,
                "per_host_delay_s": delay,
                "allow_addresses": tuple(allow or ()),
            }.items()
            if value not in (None, ())
        }
        try:
            if variant is not None:
                variant_name, crawl_source = _variant_source(variant, source)
                config = config_for_source(crawl_source, **overrides)
                folder = out or crawl_source.path
            else:
                if not seeds:
                    raise ConfigError("reread crawl: give SEEDS or --variant naming a variant with a crawl source")
                config = CrawlConfig(**overrides)
                folder = out or data_dir / "crawl" / _folder_name(seeds[0])
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"reread crawl: invalid settings: {problems}") from None

        result = crawl_into(config, folder, incremental=not fresh)
        if variant is not None and out is None:  # the variant source's own folder: its fetch records are current
            from catalog.db import Catalog

            with Catalog.in_data_dir(data_dir) as catalog:
                rows = [r.as_row() for r in result.latest_records()]
                catalog.register_fetch_records(variant_name, crawl_source.name, None, rows)
        summary = {"folder": str(folder), **result.summary()}
        if as_json:
            typer.echo(json.dumps({"summary": summary, "records": [r.as_row() for r in result.records]}))
        else:
            _print_summary(summary, folder)
