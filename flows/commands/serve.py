"""reread serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        config: Annotated[
            Path | None, typer.Option("--config", help="Schedule config YAML (see docs/orchestration.md).")
        ] = None,
        runner: Annotated[
            str | None, typer.Option("--runner", help="Task runner of the served builds (overrides the config's).")
        ] = None,
        workers: Annotated[int | None, typer.Option("--workers", help="Workers of that task runner.")] = None,
    ) -> None:
        """Serve the deployments: scheduled refresh, nightly evaluation, evaluation when an index is built."""
        from flows.serve import load_serve_config
        from flows.serve import serve as serve_deployments

        serve_deployments(load_serve_config(config, runner=runner, workers=workers))
