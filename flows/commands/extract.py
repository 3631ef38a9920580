"""reread extract: run an extractor over loose files (HTML pages, WARC files, dumps) without a variant or catalog."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows.commands._common import JsonOption, parse_key_values


def register(app: typer.Typer) -> None:
    @app.command()
    def extract(
        paths: Annotated[list[Path], typer.Argument(help="HTML files, WARC files, MediaWiki XML dumps, ...")],
        extractor: Annotated[
            str, typer.Option("--extractor", help="trafilatura, resiliparse, wikipedia, plain (or module:Class).")
        ] = "trafilatura",
        option: Annotated[
            list[str] | None, typer.Option("--option", help="Extractor option KEY=VALUE (repeatable).")
        ] = None,
        timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per document.")] = 30.0,
        workers: Annotated[int, typer.Option("--workers", min=1)] = 1,
        as_json: JsonOption = False,
    ) -> None:
        """Extract the main text of PATHS. WARC files give one result per HTML record. Rejected documents are
        reported on stderr with their reason; --json prints one JSON object per line (path, url, title, text)."""
        from catalog.records import Rejection
        from catalog.variant import ExtractionConfig
        from extract.runner import extract_paths

        cfg = ExtractionConfig(timeout_s=timeout, workers=workers)
        for item in extract_paths(paths, extractor, parse_key_values(option, "--option"), cfg):
            if isinstance(item, Rejection):
                detail = f" ({item.detail})" if item.detail else ""
                typer.echo(f"rejected {item.input_ref}: {item.reason}{detail}", err=True)
            elif as_json:
                row = {"path": item.input_ref, "url": item.url, "title": item.title, "text": item.text}
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                header = " | ".join(part for part in (item.input_ref, item.url, item.title) if part)
                typer.echo(f"==> {header} <==\n{item.text}\n")
