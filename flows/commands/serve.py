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
        address: Annotated[
            str | None,
            typer.Option(
                "--address", help="A running Dask/Ray cluster for --runner dask/ray (overrides the config's)."
            ),
        ] = None,
        data_dir: Annotated[
            Path | None,
            typer.Option(
                "--data-dir",
                help="Data directory the deployments build into and evaluate (default: the config's data_dir, "
                "else env REREAD_DATA_DIR, else ./reread-data).",
            ),
        ] = None,
    ) -> None:
        """Serve the deployments: scheduled refresh, nightly evaluation, evaluation when an index is built."""
        from flows.serve import load_serve_config
        from flows.serve import serve as serve_deployments

        # --data-dir is relative to the working directory, not to the config file
        absolute_data_dir = str(data_dir.resolve()) if data_dir is not None else None
        serve_deployments(
            load_serve_config(config, runner=runner, workers=workers, address=address, data_dir=absolute_data_dir)
        )
