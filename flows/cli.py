"""The ``reread`` command line. Commands live one module each in ``flows/commands``; each module's
``register(app)`` adds its commands, so this file only discovers and runs them."""

from __future__ import annotations

import atexit
import importlib
import os
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
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except RereadError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        code = 2
    # Run the exit hooks (they stop Prefect's temporary server), then skip the rest of interpreter finalization:
    # DuckDB 2's nanobind bindings print spurious "leaked instance" reports there, which bury the command's output.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
