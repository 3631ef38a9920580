"""Options shared by every command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

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
