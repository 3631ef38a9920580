"""reread ladder: a compute-multiplier ladder from stored reader evaluations in the catalog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.commands._common import DataDirOption, JsonOption


def register(app: typer.Typer) -> None:
    @app.command()
    def ladder(
        spec: Annotated[Path, typer.Argument(help="Ladder spec YAML: benchmark, base, methods, models.", exists=True)],
        data_dir: DataDirOption,
        task: Annotated[str, typer.Option("--task", "-b", help="The evaluation task the readers ran.")],
        out: Annotated[Path, typer.Option("--out", help="Ladder CSV to write (correctness beside it).")] = Path(
            "ladder.csv"
        ),
        variant: Annotated[str | None, typer.Option("--variant", help="Only samples of this variant name.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Write LADDER.csv (model, flops, base_acc, method_acc, method, category, ...) and its per-question
        correctness file from `reread eval --reader-config` runs, ready for `reread multiplier LADDER.csv
        --correctness LADDER.correctness.csv`."""
        from catalog import queries
        from catalog.db import Catalog
        from eval.benchmarks import load_benchmark
        from eval.ladder import ladder_from_samples, load_ladder_spec
        from eval.tasks import QATask, resolve_task

        ladder_spec = load_ladder_spec(spec)
        eval_task = resolve_task(task)
        with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
            samples = queries.sample_outcomes(catalog, eval_task.name, variant)
        categories = None
        if isinstance(eval_task, QATask):
            items = load_benchmark(eval_task.benchmark, eval_task.path, **eval_task.options)
            categories = {i.item_id: i.metadata["supercategory"] for i in items if "supercategory" in i.metadata}
        rungs, correctness = ladder_from_samples(samples, ladder_spec, categories or None)
        rungs.write_csv(out)
        correctness_path = out.with_suffix(".correctness.csv")
        correctness.write_csv(correctness_path)
        if as_json:
            written = {"ladder": str(out), "rows": rungs.height, "correctness": str(correctness_path)}
            typer.echo(json.dumps({**written, "correctness_rows": correctness.height}))
        else:
            typer.echo(f"wrote {out} ({rungs.height} rows) and {correctness_path} ({correctness.height} rows)")
