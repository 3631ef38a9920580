"""``reread samples export``: stored reader-evaluation samples as a ``tts-report`` input table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog.errors import ConfigError
from flows.commands._common import DataDirOption


def register(app: typer.Typer) -> None:
    samples_app = typer.Typer(help="Stored reader-evaluation samples.", no_args_is_help=True)
    app.add_typer(samples_app, name="samples")

    @samples_app.command("export")
    def export(
        variant: Annotated[str, typer.Argument(help="Variant YAML file or variant name.")],
        task: Annotated[str, typer.Option("--benchmark", "--task", "-b", help="Evaluation task (name or YAML).")],
        data_dir: DataDirOption,
        out: Annotated[Path | None, typer.Option("--out", help="Parquet file to write.")] = None,
        reader: Annotated[str | None, typer.Option("--reader", help="Only samples of this reader.")] = None,
    ) -> None:
        """Write the stored samples of VARIANT on a task in the tts-report input schema (Parquet): one retrieval
        setting per strategy, completion and prompt tokens, graded correctness; then run `reread tts-report` on it."""
        from catalog.db import Catalog
        from catalog.variant import load_variant
        from eval.tasks import resolve_task
        from eval.tts.samples import from_reader_samples

        name = load_variant(variant).name if Path(variant).is_file() else variant
        task_name = resolve_task(task).name
        # the newest grading of each strategy (older ones remain when a grader or task file changed)
        query = """SELECT s.* FROM eval_samples s JOIN stage_outputs o USING (artifact_key)
                   WHERE s.variant = ? AND s.task = ?
                   QUALIFY o.created_at = max(o.created_at) OVER (PARTITION BY s.reader, s.strategy)"""
        with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
            frame = catalog.query(query, [name, task_name])
        if reader is not None:
            frame = frame.filter(frame["reader"] == reader)
        if frame.height == 0:
            raise ConfigError(f"no stored reader samples for variant {name!r} on task {task_name!r} in {data_dir}")
        if frame["reader"].n_unique() > 1:
            raise ConfigError(
                f"samples of several readers ({', '.join(sorted(frame['reader'].unique()))}): pick one with --reader"
            )
        table = from_reader_samples(frame)
        path = out or Path(data_dir) / "exports" / f"{name}-{task_name}-samples.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.write_parquet(path)
        strategies = ", ".join(sorted(table["retrieval"].unique()))
        typer.echo(f"{table.height} samples of {table['question_id'].n_unique()} questions ({strategies}) -> {path}")
