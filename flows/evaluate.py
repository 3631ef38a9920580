"""``evaluate`` and ``compare_variants``: retrieval quality of built datastores on evaluation tasks, cached as
artifacts keyed by the index and the task config, compared side by side with paired bootstrap tests."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from catalog import queries
from catalog.artifacts import ArtifactManifest, ArtifactStore, StageResult
from catalog.db import Catalog
from catalog.hashing import canonical_json, stable_hash
from catalog.stage_runner import StageSpec, execute_stage, register_artifact
from catalog.variant import Variant, load_variant
from eval import retrieval_eval
from eval.compare import (
    compare_per_item,
    config_differences,
    context_markdown,
    html_report,
    markdown_report,
    mean_intervals,
    metric_sort_key,
    plot_accuracy_vs_flops,
    plot_accuracy_vs_k,
    plot_metrics,
    search_cost,
    summary_table,
)
from eval.tasks import QATask, QrelsTask, resolve_task, task_hash
from flows.datastore import locate_datastore, open_retriever
from flows.runtime import artifact_key_name, current_flow_run_id, retry_condition
from indexing.ir_metrics import load_trec_qrels

RETRIEVAL_EVAL_VERSION = "1"


def _contaminated_items(data_dir: str, variant: Variant, benchmark: str) -> set[str]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        return queries.contaminated_items(catalog, variant.name, benchmark)


SEARCH_BATCH = 64  # queries embedded and searched at a time: the progress bar's step


def _search_with_progress(retriever, texts: list[str], k: int, task_name: str, on_progress=None) -> list:
    """Every query's hits, searched in batches behind a progress bar per question (hidden when not a terminal);
    ``on_progress(done, total)`` after each batch (the flow's Prefect progress artifact)."""
    from tqdm import tqdm

    hits: list = []
    with tqdm(total=len(texts), desc=f"searching {task_name}", unit="question", disable=None, leave=False) as bar:
        for start in range(0, len(texts), SEARCH_BATCH):
            hits += retriever.search(texts[start : start + SEARCH_BATCH], k=k)
            bar.update(min(SEARCH_BATCH, len(texts) - start))
            if on_progress is not None:
                on_progress(len(hits), len(texts))
    return hits


def retrieval_eval_run(
    retriever, eval_task: QrelsTask | QATask, out: Path, contaminated: set[str], on_progress=None
) -> StageResult:
    """Search every query of the task once (top ``retrieve_k``) and score per item; writes ``per_item.parquet``."""
    if isinstance(eval_task, QrelsTask):
        queries = retrieval_eval.load_trec_queries(eval_task.queries)
        qrels = retrieval_eval.qrels_by_source_id(eval_task.source, load_trec_qrels(eval_task.qrels))
        ids = [q for q in queries if q in qrels][: eval_task.limit]
        texts = [queries[q] for q in ids]
        found = _search_with_progress(retriever, texts, eval_task.retrieve_k, eval_task.name, on_progress)
        hits = dict(zip(ids, found, strict=True))
        per_item = retrieval_eval.qrels_metrics({q: queries[q] for q in ids}, qrels, hits, eval_task.ks)
    else:
        from eval.benchmarks import load_benchmark

        items = load_benchmark(eval_task.benchmark, eval_task.path, **eval_task.options)[: eval_task.limit]
        texts = [item.question for item in items]
        results = _search_with_progress(retriever, texts, eval_task.retrieve_k, eval_task.name, on_progress)
        hits = {item.item_id: item_hits for item, item_hits in zip(items, results, strict=True)}
        per_item = retrieval_eval.qa_metrics(items, hits, eval_task.ks, contaminated)
    per_item.write_parquet(out / "per_item.parquet")
    means = {c: float(per_item[c].cast(pl.Float64).mean()) for c in per_item.columns if c != "item_id"}
    return StageResult(files=["per_item.parquet"], rows=per_item.height, content_hash=stable_hash(means), stats=means)


@task(name="retrieval-eval", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_condition)
def retrieval_eval_task(variant: Variant, eval_task_ref: str, data_dir: str) -> tuple[ArtifactManifest, bool]:
    eval_task = resolve_task(eval_task_ref)
    paths = locate_datastore(variant, data_dir)
    contaminated = (
        _contaminated_items(data_dir, variant, eval_task.benchmark) if isinstance(eval_task, QATask) else set()
    )
    spec = StageSpec(
        "retrieval_eval", RETRIEVAL_EVAL_VERSION, task_hash(eval_task),
        stable_hash({"index": paths.index_key, "embedder": variant.stage_config("embed"),
                     "contaminated": sorted(contaminated)}),
    )  # fmt: skip

    def evaluate_into(out: Path) -> StageResult:
        progress_id = create_progress_artifact(
            progress=0.0,
            key=artifact_key_name(f"eval-{variant.name}-{eval_task.name}-progress"),
            description=f"questions of {eval_task.name} searched in {variant.name}",
        )

        def on_progress(done: int, total: int) -> None:
            update_progress_artifact(progress_id, progress=100.0 * done / max(total, 1))

        return retrieval_eval_run(open_retriever(variant, data_dir), eval_task, out, contaminated, on_progress)

    manifest, cached = execute_stage(ArtifactStore(data_dir), spec, evaluate_into)
    get_run_logger().info("%s on %s: %s", variant.name, eval_task.name, "cached" if cached else "evaluated")
    return manifest, cached


def _per_item(manifest: ArtifactManifest) -> pl.DataFrame:
    return pl.read_parquet(manifest.folder / "per_item.parquet")


def _task_queries(eval_task: QrelsTask | QATask) -> list[str]:
    """The query texts of a task, as its evaluation searches them."""
    if isinstance(eval_task, QrelsTask):
        return list(retrieval_eval.load_trec_queries(eval_task.queries).values())[: eval_task.limit]
    from eval.benchmarks import load_benchmark

    items = load_benchmark(eval_task.benchmark, eval_task.path, **eval_task.options)[: eval_task.limit]
    return [item.question for item in items]


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def datastore_facts(catalog: Catalog, variant: Variant, data_dir: str, queries_for_cost: list[str], k: int) -> dict:
    """What a built variant holds and costs: documents, chunks, vectors, index type; the build time (the stage work
    of every unit, extraction to index, summed) and bytes on disk of every artifact the datastore was built from;
    and search QPS and latency on the task's queries (cache bypassed)."""
    outputs = queries.datastore_outputs(catalog, variant.name).to_dicts()
    if not outputs:
        return {}
    stats = [(o, json.loads(o["stats"] or "{}")) for o in outputs]
    chunks = [(o, st) for o, st in stats if o["stage"] == "chunk"]
    index = next((st for o, st in stats if o["stage"] == "index"), {})
    return {
        "documents": sum(int(st.get("documents_out", 0)) for _, st in chunks),
        "chunks": sum(int(o["row_count"]) for o, _ in chunks),
        "vectors": index.get("vectors"),
        "index_type": index.get("index_type"),
        "build_s": sum(float((st.get("timing") or {}).get("seconds", 0.0)) for _, st in stats),
        "bytes": sum(_folder_bytes(Path(data_dir) / o["path"]) for o in outputs),
        **search_cost(open_retriever(variant, data_dir), queries_for_cost, k),
    }


def _metrics_of(frames: list[pl.DataFrame]) -> list[str]:
    metrics: list[str] = []
    for frame in frames:
        metrics += [c for c in frame.columns if c not in ("item_id", "contaminated") and c not in metrics]
    return metrics


@flow(name="evaluate", log_prints=True)
def evaluate(variant_path: str, data_dir: str, tasks: list[str]) -> dict:
    """Retrieval quality of one built variant on each task (cached per index and task config)."""
    variant = load_variant(variant_path)
    report = {"variant": variant.name, "tasks": {}}
    with Catalog.in_data_dir(data_dir) as catalog:
        run_id = catalog.start_run(variant.name, "evaluate", flow_run_id=current_flow_run_id())
        for ref in tasks:
            manifest, cached = retrieval_eval_task(variant, ref, data_dir)
            register_artifact(catalog, manifest, variant.name, run_id)
            metrics = {k: manifest.stats[k] for k in sorted(manifest.stats, key=metric_sort_key)}
            metrics = {k: v for k, v in metrics.items() if isinstance(v, float)}
            report["tasks"][resolve_task(ref).name] = {"cached": cached, "n": manifest.rows, **metrics}
            create_table_artifact(
                key=artifact_key_name(f"eval-{variant.name}-{resolve_task(ref).name}"),
                table=[{"metric": k, "value": round(v, 4)} for k, v in metrics.items()],
                description=f"retrieval quality of {variant.name} on {ref}",
            )
        catalog.finish_run(run_id, "completed", report)
    return report


@flow(name="compare-variants", log_prints=True)
def compare_variants(
    variant_paths: list[str], data_dir: str, task_ref: str, out_dir: str | None = None, reader_config: str | None = None
) -> dict:
    """Each variant on one task, side by side: a table, paired bootstrap tests against the first variant, a plot,
    an HTML report and a markdown artifact. With ``reader_config`` (a QA task), also reader accuracy per test-time
    strategy, tested pairwise per question, and a plot of accuracy against FLOPs per strategy."""
    variants = [load_variant(p) for p in variant_paths]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variants to compare must have distinct names, got {names}")
    eval_task = resolve_task(task_ref)
    with Catalog.in_data_dir(data_dir) as catalog:
        run_id = catalog.start_run(",".join(names), "compare", flow_run_id=current_flow_run_id())
        folder = Path(out_dir) if out_dir else Path(data_dir) / "runs" / run_id
        folder.mkdir(parents=True, exist_ok=True)
        cfg = None
        if reader_config is not None:
            from eval.reader_eval import flops_by_strategy, load_reader_eval_config, per_question_accuracy

            cfg = load_reader_eval_config(reader_config)
        per_item, flops_points = {}, []
        for variant in variants:
            manifest, _ = retrieval_eval_task(variant, task_ref, data_dir)
            register_artifact(catalog, manifest, variant.name, run_id)
            per_item[variant.name] = _per_item(manifest)
            if cfg is None:
                continue
            graded = _reader_samples(variant, task_ref, cfg, data_dir, catalog, run_id)
            accuracy = per_question_accuracy(graded)
            per_item[variant.name] = per_item[variant.name].join(accuracy, on="item_id", how="left")
            for strategy, flops in (flops_by_strategy(graded, cfg.sizes) if cfg.sizes else {}).items():
                column = next(c for c in accuracy.columns if c.startswith(f"{strategy} maj@"))
                flops_points.append(
                    {"variant": variant.name, "strategy": strategy, "flops": flops["total_per_question"],
                     "accuracy": float(accuracy[column].mean())}
                )  # fmt: skip
        metrics = _metrics_of(list(per_item.values()))
        summary = summary_table(per_item, metrics)
        tests = compare_per_item(per_item, metrics)
        intervals = mean_intervals(per_item, metrics)
        differences = config_differences({v.name: v.model_dump(mode="json") for v in variants})
        cost_queries = _task_queries(eval_task)
        facts = {v.name: datastore_facts(catalog, v, data_dir, cost_queries, max(eval_task.ks)) for v in variants}
        context = context_markdown(differences, facts)
        title = f"{eval_task.name}: {' vs '.join(names)}"
        plots = [plot_metrics(summary, metrics, folder / "metrics.png", intervals)]
        if flops_points:
            plots.append(plot_accuracy_vs_flops(flops_points, folder / "accuracy_vs_flops.png"))
        html_path = html_report(title, summary, tests, plots, folder / "compare.html", context)
        markdown = markdown_report(title, summary, tests, intervals, context)
        (folder / "compare.md").write_text(markdown + "".join(f"\n\n![{p.stem}]({p.name})" for p in plots) + "\n")
        report = {
            "task": eval_task.name,
            "summary": summary.to_dicts(),
            "intervals": {v: {m: list(b) for m, b in per.items()} for v, per in intervals.items()},
            "tests": [vars(t) for t in tests],
            "differences": differences,
            "datastores": facts,
            "html": str(html_path),
            "plot": str(plots[0]),
            "plots": [str(p) for p in plots],
            "accuracy_vs_flops": flops_points,
        }
        (folder / "compare.json").write_text(json.dumps(report, indent=2))
        create_markdown_artifact(
            key=artifact_key_name(f"compare-{eval_task.name}"),
            markdown=markdown + f"\n\nReport: `{html_path}`; plots: " + ", ".join(f"`{p}`" for p in plots),
            description=title,
        )
        catalog.finish_run(run_id, "completed", {"task": eval_task.name, "html": str(html_path)})
    return report


# ---------------------------------------------------------------- reader evaluation (test-time compute)
READER_EVAL_VERSION = (
    "3"  # 3: samples only (graded in reader_grades), keyed on template and task contents; 2: source_doc_ids
)
READER_GRADES_VERSION = "1"


def _passages_fn(variant: Variant, data_dir: str, seed: int):
    """Passages for each item under a strategy: top candidates (cached per query), rerank, MMR, then the top k or
    ``bags`` seeded random subsets of size k for bagging."""
    from catalog.variant import RetrievalConfig
    from indexing.diversify import bag
    from indexing.retrieve import select_for_reading

    retriever = open_retriever(variant, data_dir)

    def passages_for(items, strategy, n_samples):
        cfg = RetrievalConfig(
            top_k=strategy.candidates, mmr_lambda=strategy.mmr_lambda,
            near_dup_threshold=variant.retrieval.near_dup_threshold,
        )  # fmt: skip
        reranker = _reranker(strategy.rerank) if strategy.rerank else None
        pool_size = strategy.candidates if strategy.bags else strategy.k
        pools = select_for_reading(retriever, [i.question for i in items], cfg, pool_size, reranker=reranker)
        if not strategy.bags:
            return [[pool] for pool in pools]
        return [bag(pool, strategy.bags, strategy.k, seed) for pool in pools]

    return passages_for, retriever


@lru_cache(maxsize=4)
def _reranker(path: str):
    from indexing.rerank import Reranker

    return Reranker(path)


@lru_cache(maxsize=1)
def _reader(reader_json: str):
    """One loaded reader per process for all strategies of an evaluation (loading an LLM is the costly part)."""
    from eval.readers import make_reader

    return make_reader(**json.loads(reader_json))


def reader_samples_run(variant, data_dir, eval_task: QATask, cfg, strategy, out: Path) -> StageResult:
    """Draw and store the strategy's samples (ungraded: grading is its own stage, so a grader failure or a new
    grader never draws them again)."""
    from eval.benchmarks import load_benchmark
    from eval.reader_eval import generate_samples

    items = load_benchmark(eval_task.benchmark, eval_task.path, **eval_task.options)[: eval_task.limit]
    reader = _reader(canonical_json(cfg.reader))
    passages_for, count, count_pairs = None, None, None
    if strategy.retrieval:
        passages_for, retriever = _passages_fn(variant, data_dir, cfg.seed)
        tokenizer = retriever.embedder.tokenizer

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=True)["input_ids"])

        # The reranker scores every candidate (the search is cached: no second query). Pairs are counted in the
        # embedder's tokens, an estimate when the reranker has another vocabulary.
        def count_pairs(item) -> int:
            pool = retriever.search([item.question], strategy.candidates)[0]
            return sum(count(item.question) + count(hit.text) for hit in pool)

    cpu_start = time.process_time()
    samples, rejections = generate_samples(
        items, reader, cfg, strategy, passages_for, count_query_tokens=count, count_rerank_tokens=count_pairs
    )
    samples.write_parquet(out / "samples.parquet")
    # process CPU seconds (retrieval and generation): on a shared machine, closer to an idle machine's wall time
    stats = {
        "questions": len(items),
        "samples": samples.height,
        "cpu_seconds": round(time.process_time() - cpu_start, 3),
    }
    return StageResult(
        files=["samples.parquet"], rows=samples.height, content_hash=stable_hash(samples["text"].to_list()),
        stats=stats, rejections=rejections,
    )  # fmt: skip


def _qa_task(eval_task_ref: str) -> QATask:
    eval_task = resolve_task(eval_task_ref)
    if not isinstance(eval_task, QATask):
        raise ValueError(f"task {eval_task.name!r} has no questions for a reader (kind {eval_task.kind})")
    return eval_task


@task(name="reader-samples", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_condition)
def reader_samples_task(variant, eval_task_ref: str, cfg, strategy, data_dir: str) -> tuple[ArtifactManifest, bool]:
    from eval.prompts import template_hash

    eval_task = _qa_task(eval_task_ref)
    index_key = locate_datastore(variant, data_dir).index_key if strategy.retrieval else "none"
    config = {
        "reader": cfg.model_dump(mode="json", exclude={"strategies", "sizes", "grader", "n_samples", "temperature"}),
        "strategy": strategy, "n_samples": cfg.samples_of(strategy), "temperature": cfg.temperature_of(strategy),
        "template": template_hash(eval_task.benchmark),
    }  # fmt: skip
    spec = StageSpec(
        "reader_eval", READER_EVAL_VERSION, stable_hash(config),
        stable_hash({"task": task_hash(eval_task, grading=False), "index": index_key}), strategy.name,
    )  # fmt: skip
    return execute_stage(
        ArtifactStore(data_dir), spec, lambda out: reader_samples_run(variant, data_dir, eval_task, cfg, strategy, out)
    )


def grader_key(cfg, eval_task: QATask) -> dict:
    """What decides the grades besides the samples: the grader (name, version, options, judge), or the template's
    grader with the task's match mode."""
    from eval.graders import GRADERS
    from eval.prompts import get_template

    if cfg.grader is None:
        name = get_template(eval_task.benchmark).grader
        chosen = {"name": name, "options": {"mode": eval_task.match} if name == "normalized" else {}, "judge": None}
    else:
        chosen = cfg.grader.model_dump(mode="json")
    return {**chosen, "version": getattr(GRADERS.get(chosen["name"]), "version", "1")}


@task(name="reader-grades", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_condition)
def reader_grades_task(
    samples: ArtifactManifest, eval_task_ref: str, cfg, data_dir: str
) -> tuple[ArtifactManifest, bool]:
    """Grade stored samples (outcome, correct, answer classes, the grader's extra metrics), cached per samples
    artifact, grader and task contents."""
    eval_task = _qa_task(eval_task_ref)
    spec = StageSpec(
        "reader_grades", READER_GRADES_VERSION, stable_hash(grader_key(cfg, eval_task)),
        stable_hash({"samples": samples.key, "content": samples.content_hash, "task": task_hash(eval_task)}),
        samples.shard,
    )  # fmt: skip

    def run(out: Path) -> StageResult:
        from eval.benchmarks import load_benchmark
        from eval.reader_eval import grade_samples, make_task_grader

        items = load_benchmark(eval_task.benchmark, eval_task.path, **eval_task.options)[: eval_task.limit]
        frame = pl.read_parquet(samples.folder / "samples.parquet")
        graded = grade_samples(frame, items, make_task_grader(cfg, eval_task.benchmark, eval_task.match))
        graded.write_parquet(out / "graded.parquet")
        accuracy = float(graded["correct"].mean()) if graded.height else 0.0
        return StageResult(
            files=["graded.parquet"], rows=graded.height,
            content_hash=stable_hash(graded.select("outcome", "answer_class").rows()),
            stats={"samples": graded.height, "sample_accuracy": accuracy},
        )  # fmt: skip

    return execute_stage(ArtifactStore(data_dir), spec, run)


def _reader_samples(
    variant, task_ref: str, cfg, data_dir: str, catalog: Catalog, run_id: str, timings: dict | None = None
) -> pl.DataFrame:
    """Every strategy's stored (or newly drawn) samples, graded; newly graded ones are copied into ``eval_samples``.
    ``timings`` (when given) receives each strategy's generation wall and CPU seconds and whether it was cached."""
    frames = []
    for strategy in cfg.strategies:
        samples_manifest, cached = reader_samples_task(variant, task_ref, cfg, strategy, data_dir)
        if timings is not None:
            timings[strategy.name] = {
                "cached": cached, "seconds": samples_manifest.stats.get("timing", {}).get("seconds"),
                "cpu_seconds": samples_manifest.stats.get("cpu_seconds"),
            }  # fmt: skip
        register_artifact(catalog, samples_manifest, variant.name, run_id)
        manifest, _ = reader_grades_task(samples_manifest, task_ref, cfg, data_dir)
        graded = pl.read_parquet(manifest.folder / "graded.parquet")
        if register_artifact(catalog, manifest, variant.name, run_id):
            details = graded.with_columns(
                pl.lit(variant.name).alias("variant"), pl.lit(resolve_task(task_ref).name).alias("task"),
                pl.lit(manifest.key).alias("artifact_key"),
            )  # fmt: skip
            catalog.insert_rows("eval_samples", details)
        frames.append(graded)
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def reader_report(graded: pl.DataFrame, cfg, title: str, folder: Path, variant: str = "") -> tuple[str, dict]:
    """Markdown: the strategy summary (final-answer accuracy with CIs, EM/contains/F1, FLOPs per question, paired
    difference to the first strategy), then pass@k / maj@k / extra metrics per strategy with CIs; plots of accuracy
    against k and, with model sizes, against FLOPs per question."""
    from eval.compare import plot_accuracy_vs_flops
    from eval.reader_eval import flops_by_strategy, score_strategies, strategy_summary, summary_markdown

    scores = score_strategies(graded, seed=cfg.seed)
    flops = flops_by_strategy(graded, cfg.sizes) if cfg.sizes else {}
    summary = strategy_summary(graded, flops, seed=cfg.seed)
    lines = [
        f"# {title}",
        "",
        summary_markdown(summary),
        "",
        "| strategy | metric | k | value | 95% CI | FLOPs/question |",
        "|---|---|---|---|---|---|",
    ]
    for row in scores.iter_rows(named=True):
        per_q = flops.get(row["strategy"], {}).get("total_per_question")
        lines.append(
            f"| {row['strategy']} | {row['metric']} | {row['k']} | {row['value']:.4f} | "
            f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}] | {'-' if per_q is None else f'{per_q:.3g}'} |"
        )
    plots = [plot_accuracy_vs_k(scores, folder / "accuracy_vs_k.png")]
    if flops:
        points = [
            {"variant": variant, "strategy": r["strategy"], "flops": r["flops_per_question"],
             "accuracy": r["accuracy"]}
            for r in summary
        ]  # fmt: skip
        plots.append(plot_accuracy_vs_flops(points, folder / "accuracy_vs_flops.png"))
    lines += ["", *(f"![{p.stem}]({p})" for p in plots)]
    report = {"scores": scores.to_dicts(), "flops": flops, "summary": summary, "plot": str(plots[0]),
              "plots": [str(p) for p in plots]}  # fmt: skip
    return "\n".join(lines), report


@flow(name="evaluate-reader", log_prints=True)
def evaluate_reader(variant_path: str, data_dir: str, task_ref: str, reader_config: str) -> dict:
    """Reader accuracy with test-time compute on a QA task: every strategy sampled once and stored; pass@k, maj@k
    with CIs and FLOPs computed from the stored samples."""
    from eval.reader_eval import load_reader_eval_config

    variant = load_variant(variant_path)
    cfg = load_reader_eval_config(reader_config)
    eval_task = resolve_task(task_ref)
    with Catalog.in_data_dir(data_dir) as catalog:
        run_id = catalog.start_run(variant.name, "evaluate-reader", flow_run_id=current_flow_run_id())
        timings: dict = {}
        graded = _reader_samples(variant, task_ref, cfg, data_dir, catalog, run_id, timings)
        folder = Path(data_dir) / "runs" / run_id
        folder.mkdir(parents=True, exist_ok=True)
        markdown, report = reader_report(graded, cfg, f"{variant.name} on {eval_task.name}", folder, variant.name)
        (folder / "reader_eval.md").write_text(markdown)
        create_markdown_artifact(key=artifact_key_name(f"reader-eval-{eval_task.name}"), markdown=markdown)
        catalog.finish_run(run_id, "completed", {"task": eval_task.name, "report": str(folder / "reader_eval.md")})
    return {"variant": variant.name, "task": eval_task.name, "markdown": markdown, "generation": timings, **report}
