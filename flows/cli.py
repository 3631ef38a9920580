"""The ``reread`` command line. Commands live one module each in ``flows/commands``; each module's
``register(app)`` adds its commands, so this file only discovers and runs them."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from catalog.errors import RereadError

app = typer.Typer(
    name="reread",
    help="Build retrieval datastores from pre-training corpora and evaluate them at test time.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


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
        sys.exit(2)
