"""Options shared by every command, and the process setup the CLI does before a command runs.

Imported when the CLI starts: keep it to the standard library, typer and ``catalog.errors``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from catalog.errors import ConfigError

DEFAULT_DATA_DIR = "reread-data"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reread")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def configure_output(verbose: bool = False, log_level: str | None = None) -> None:
    """Quiet by default, like lm-eval and datatrove: the console shows warnings and errors (Prefect's INFO run logs
    still reach its API and UI), no telemetry, no model-loading bars, no library Future/Deprecation warnings.
    ``--verbose`` (or ``--log-level INFO``/``DEBUG``) shows them. Set before a command imports Prefect or
    transformers, which read these variables once at import; values already in the environment win."""
    from flows.runtime import offline_defaults

    offline_defaults()
    level = (log_level or os.environ.get("REREAD_LOG_LEVEL") or ("INFO" if verbose else "WARNING")).upper()
    if level not in LOG_LEVELS:
        raise typer.BadParameter(f"{level!r}: choose one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    quiet = level not in ("DEBUG", "INFO")
    explicit = log_level is not None or verbose
    env = os.environ.__setitem__ if explicit else os.environ.setdefault
    env("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", level)  # the console only: the API handler keeps every log
    env("PREFECT_LOGGING_ROOT_LEVEL", level)  # the library's own loggers
    env("PREFECT_SERVER_LOGGING_LEVEL", "WARNING" if quiet else level)
    if quiet:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights" bars
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")  # workers
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)


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
LockTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        help="Seconds to wait for another process writing the catalog (env REREAD_LOCK_TIMEOUT).",
        min=0,
        show_default="600",
    ),
]


def use_lock_timeout(seconds: float | None) -> None:
    """Make ``--lock-timeout`` the catalog's lock timeout for this command (and processes it starts)."""
    from catalog.db import LOCK_TIMEOUT_ENV

    if seconds is not None:
        os.environ[LOCK_TIMEOUT_ENV] = str(seconds)


def resolve_variant(value: Path) -> Path:
    """A variant argument: a YAML file, or the name of a bundled variant (``vaswani``), from any directory."""
    if value.is_file():
        return value
    from sample_data import bundled_variant, bundled_variant_names

    bundled = bundled_variant(str(value)) if value.suffix == "" and len(value.parts) == 1 else None
    if bundled is None:
        raise typer.BadParameter(
            f"{value}: no such file, and not a bundled variant ({', '.join(bundled_variant_names())})"
        )
    return bundled


def _resolve_variants(values: list[Path] | Path | None):
    if values is None:
        return None
    return [resolve_variant(v) for v in values] if isinstance(values, list) else resolve_variant(values)


VARIANT_HELP = "Variant YAML file, or a bundled variant's name (e.g. sample, vaswani, vaswani-hnsw)."
VariantArgument = Annotated[Path, typer.Argument(help=VARIANT_HELP, callback=_resolve_variants, metavar="VARIANT")]
VariantsArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Two or more variants: YAML files or bundled names.", callback=_resolve_variants, metavar="VARIANT..."
    ),
]


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


def console():
    """The console a command prints its report on (rich, imported when a command prints). Piped or redirected, lines
    are not wrapped at the 80 columns rich assumes for a non-terminal."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(soft_wrap=True)


def print_markdown(text: str, out=None) -> None:
    """A markdown report up to its first image (plots do not render in a terminal): rendered on a terminal, the
    markdown source itself (already readable, and tables stay whole) when piped."""
    from rich.markdown import Markdown

    out = out or console()
    text = text.split("![")[0].rstrip()
    if out.is_terminal:
        out.print(Markdown(text))
    else:
        out.file.write(text + "\n")


def print_table(table, out=None) -> None:
    """A rich table on a terminal; tab-separated values (title as a ``#`` line, then the header) when piped or
    redirected, so no column is cut to the 80 columns rich assumes for a non-terminal."""
    from rich.text import Text

    out = out or console()
    if out.is_terminal:
        out.print(table)
        return

    def plain(cell: Any) -> str:
        text = cell.plain if isinstance(cell, Text) else Text.from_markup(str(cell)).plain
        return text.replace("\t", " ").replace("\n", " ")

    lines = [f"# {plain(table.title)}"] if table.title else []
    lines.append("\t".join(plain(c.header) for c in table.columns))
    lines.extend("\t".join(plain(cell) for cell in row) for row in zip(*(c.cells for c in table.columns), strict=True))
    out.file.write("\n".join(lines) + "\n")


ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads for torch (reader generation, embedding). On a busy machine 1 is often faster than all "
        "cores. Default: torch's choice.",
    ),
]


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count for this process (flows run in it), when given."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
