"""Options shared by every command."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.errors import ConfigError

DEFAULT_DATA_DIR = "reread-data"


def data_dir_default() -> Path:
    return Path(os.environ.get("REREAD_DATA_DIR", DEFAULT_DATA_DIR))


DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Data directory holding catalog.duckdb and artifacts (env REREAD_DATA_DIR).",
        default_factory=data_dir_default,
        show_default="./reread-data",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
VariantArgument = Annotated[Path, typer.Argument(help="Variant YAML file.", exists=True, dir_okay=False)]


def parse_key_values(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs given with ``flag``; values are read as JSON when they parse (true, 3, [1, 2], null),
    else kept as strings: data, never evaluated."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE")
        try:
            values[key.strip()] = json.loads(raw)
        except ValueError:
            values[key.strip()] = raw
    return values
