"""``evaluate`` and ``compare_variants``: retrieval quality of built datastores on evaluation tasks, cached as
artifacts keyed by the index and the task config, compared side by side with paired bootstrap tests."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from catalog.artifacts import ArtifactManifest, ArtifactStore, StageResult
from catalog.db import Catalog
from catalog.hashing import stable_hash
from catalog.stage_runner import StageSpec, execute_stage, register_artifact
from catalog.variant import Variant, load_variant
from eval import retrieval_eval
from eval.compare import compare_per_item, html_report, markdown_report, plot_metrics, summary_table
from eval.tasks import QATask, QrelsTask, resolve_task
from flows.datastore import DatastorePaths, locate_datastore
from flows.runtime import offline_defaults

RETRIEVAL_EVAL_VERSION = "1"


def _contaminated_items(data_dir: str, variant: Variant, benchmark: str) -> set[str]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        frame = catalog.query(
            "SELECT DISTINCT h.item_id FROM contamination_hits h JOIN stage_outputs o USING (artifact_key)"
            " WHERE o.variant = ? AND h.benchmark = ?",
            [variant.name, benchmark],
        )
    return set(frame["item_id"].to_list()) if frame.height else set()


def retrieval_eval_run(
    variant: Variant, paths: DatastorePaths, eval_task: QrelsTask | QATask, out: Path, contaminated: set[str]
) -> StageResult:
    """Search every query of the task once (top ``retrieve_k``) and score per item; writes ``per_item.parquet``."""
    from indexing.retrieve import Retriever

    from indexing.embed import Embedder

    retriever = Retriever(paths.index_dir, paths.chunks, Embedder(variant.embedder))
    if isinstance(eval_task, QrelsTask):
        queries = retrieval_eval.load_trec_queries(eval_task.queries)
        qrels = retrieval_eval.native_to_doc_ids(eval_task.source, retrieval_eval.load_qrels(eval_task.qrels))
        ids = [q for q in queries if q in qrels][: eval_task.limit]
        hits = dict(zip(ids, retriever.search([queries[q] for q in ids], k=eval_task.retrieve_k), strict=True))
        per_item = retrieval_eval.qrels_metrics({q: queries[q] for q in ids}, qrels, hits, eval_task.ks)
    else:
        from eval.benchmarks import load_benchmark

        items = load_benchmark(eval_task.benchmark, eval_task.path, **eval_task.options)[: eval_task.limit]
        results = retriever.search([item.question for item in items], k=eval_task.retrieve_k)
        hits = {item.item_id: item_hits for item, item_hits in zip(items, results, strict=True)}
        per_item = retrieval_eval.qa_metrics(items, hits, eval_task.ks, contaminated)
    per_item.write_parquet(out / "per_item.parquet")
    means = {c: float(per_item[c].cast(pl.Float64).mean()) for c in per_item.columns if c != "item_id"}
    return StageResult(files=["per_item.parquet"], rows=per_item.height, content_hash=stable_hash(means), stats=means)


@task(name="retrieval-eval", retries=1, retry_delay_seconds=5)
def retrieval_eval_task(variant: Variant, eval_task_ref: str, data_dir: str) -> tuple[ArtifactManifest, bool]:
    eval_task = resolve_task(eval_task_ref)
    paths = locate_datastore(variant, data_dir)
    contaminated = (
        _contaminated_items(data_dir, variant, eval_task.benchmark) if isinstance(eval_task, QATask) else set()
    )
    spec = StageSpec(
        "retrieval_eval", RETRIEVAL_EVAL_VERSION, stable_hash(eval_task),
        stable_hash({"index": paths.index_key, "embedder": variant.stage_config("embed"),
                     "contaminated": sorted(contaminated)}),
    )  # fmt: skip
    manifest, cached = execute_stage(
        ArtifactStore(data_dir), spec, lambda out: retrieval_eval_run(variant, paths, eval_task, out, contaminated)
    )
    get_run_logger().info("%s on %s: %s", variant.name, eval_task.name, "cached" if cached else "evaluated")
    return manifest, cached


def _per_item(manifest: ArtifactManifest) -> pl.DataFrame:
    return pl.read_parquet(manifest.folder / "per_item.parquet")


def _metrics_of(frames: list[pl.DataFrame]) -> list[str]:
    metrics: list[str] = []
    for frame in frames:
        metrics += [c for c in frame.columns if c not in ("item_id", "contaminated") and c not in metrics]
    return metrics


@flow(name="evaluate", log_prints=True)
def evaluate(variant_path: str, data_dir: str, tasks: list[str]) -> dict:
    """Retrieval quality of one built variant on each task (cached per index and task config)."""
    offline_defaults()
    variant = load_variant(variant_path)
    report = {"variant": variant.name, "tasks": {}}
    with Catalog.in_data_dir(data_dir) as catalog:
        run_id = catalog.start_run(variant.name, "evaluate")
        for ref in tasks:
            manifest, cached = retrieval_eval_task(variant, ref, data_dir)
            register_artifact(catalog, manifest, variant.name, run_id)
            report["tasks"][resolve_task(ref).name] = {"cached": cached, "n": manifest.rows, **manifest.stats}
            create_table_artifact(
                key=f"eval-{variant.name}-{resolve_task(ref).name}".lower().replace("_", "-").replace(".", "-"),
                table=[{"metric": k, "value": round(v, 4)} for k, v in sorted(manifest.stats.items())],
                description=f"retrieval quality of {variant.name} on {ref}",
            )
        catalog.finish_run(run_id, "completed", report)
    return report


@flow(name="compare-variants", log_prints=True)
def compare_variants(variant_paths: list[str], data_dir: str, task_ref: str, out_dir: str | None = None) -> dict:
    """Each variant on one task, side by side: a table, paired bootstrap tests against the first variant, a plot,
    an HTML report and a markdown artifact."""
    offline_defaults()
    variants = [load_variant(p) for p in variant_paths]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variants to compare must have distinct names, got {names}")
    eval_task = resolve_task(task_ref)
    with Catalog.in_data_dir(data_dir) as catalog:
        run_id = catalog.start_run(",".join(names), "compare")
        per_item = {}
        for variant in variants:
            manifest, _ = retrieval_eval_task(variant, task_ref, data_dir)
            register_artifact(catalog, manifest, variant.name, run_id)
            per_item[variant.name] = _per_item(manifest)
        metrics = _metrics_of(list(per_item.values()))
        summary = summary_table(per_item, metrics)
        tests = compare_per_item(per_item, metrics)
        folder = Path(out_dir) if out_dir else Path(data_dir) / "runs" / run_id
        folder.mkdir(parents=True, exist_ok=True)
        title = f"{eval_task.name}: {' vs '.join(names)}"
        plot = plot_metrics(summary, metrics, folder / "metrics.png")
        html_path = html_report(title, summary, tests, [plot], folder / "compare.html")
        markdown = markdown_report(title, summary, tests)
        (folder / "compare.md").write_text(markdown + f"\n\n![metrics]({plot.name})\n")
        report = {
            "task": eval_task.name,
            "summary": summary.to_dicts(),
            "tests": [vars(t) for t in tests],
            "html": str(html_path),
            "plot": str(plot),
        }
        (folder / "compare.json").write_text(json.dumps(report, indent=2))
        create_markdown_artifact(
            key=f"compare-{eval_task.name}".lower().replace("_", "-"),
            markdown=markdown + f"\n\nReport: `{html_path}`, plot: `{plot}`",
            description=title,
        )
        catalog.finish_run(run_id, "completed", {"task": eval_task.name, "html": str(html_path)})
    return report
