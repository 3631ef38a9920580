"""The ``reread`` command line. Commands live one module each in ``flows/commands``; each module's
``register(app)`` adds its commands, so this file only discovers and runs them.

Starting is cheap: command modules import only typer and ``flows.commands._common`` at the top, and each command
imports its libraries (Prefect, torch, FAISS, DuckDB) when it runs, so ``reread --help`` and ``reread --version``
load none of them and no command starts Prefect's temporary server unless it runs a flow."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated

import typer

from catalog.errors import RereadError
from flows.commands._common import LOG_LEVELS, configure_output, package_version

app = typer.Typer(
    name="reread",
    help="Build retrieval datastores from pre-training corpora and evaluate them at test time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"reread {package_version()}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's flow and task logs (INFO) and library warnings.")
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help=f"Log level of the console: {', '.join(LOG_LEVELS)} (default WARNING; env REREAD_LOG_LEVEL).",
            case_sensitive=False,
        ),
    ] = None,
) -> None:
    """Build retrieval datastores from pre-training corpora and evaluate them at test time."""
    configure_output(verbose=verbose, log_level=log_level)


def _register_commands() -> None:
    import flows.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"flows.commands.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except RereadError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
