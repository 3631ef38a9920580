"""The quick-start job: build the bundled variants, evaluate the sample datastore's retrieval, and evaluate a real
reader (the bundled SmolLM2-135M-Instruct) on NQ-open questions closed-book and with retrieval, then compare two
corpus variants with that reader: the full Wikipedia passages and the distractor passages alone."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from catalog.variant import load_variant
from flows.build import build_datastore
from flows.evaluate import compare_variants, evaluate, evaluate_reader
from flows.reports import contamination_report

OPEN_QA_VARIANTS = ("open-qa", "open-qa-distractors")
OPEN_QA_TASK = "nq_open_demo"
READER_CONFIG = "smollm2-nq-open.yaml"  # every strategy, on the full corpus
COMPARE_CONFIG = "smollm2-nq-open-compare.yaml"  # closed-book and top-1 on both corpus variants


@flow(name="demo", log_prints=True)
def demo(sample_dir: str, data_dir: str) -> dict:
    from eval.reader_eval import summary_markdown

    variants, tasks = Path(sample_dir) / "variants", Path(sample_dir) / "tasks"
    builds = [build_datastore(str(variants / f"{name}.yaml"), data_dir) for name in ("sample", *OPEN_QA_VARIANTS)]
    sample_eval = evaluate(
        str(variants / "sample.yaml"), data_dir, [str(tasks / f"{t}.yaml") for t in ("simpleqa", "mmlu")]
    )
    reader_config = str(Path(sample_dir) / "readers" / READER_CONFIG)
    open_qa = [str(variants / f"{name}.yaml") for name in OPEN_QA_VARIANTS]
    task = str(tasks / f"{OPEN_QA_TASK}.yaml")
    reader = evaluate_reader(open_qa[0], data_dir, task, reader_config)
    compare_config = str(Path(sample_dir) / "readers" / COMPARE_CONFIG)
    comparison = compare_variants(open_qa, data_dir, task, reader_config=compare_config)
    timing = reader["generation"]
    drawn = [t for t in timing.values() if not t["cached"]]
    questions = reader["summary"][0]["questions"] if reader["summary"] else 0
    cost = (
        f"\n\nGeneration for {questions} questions: {sum(t['seconds'] or 0 for t in drawn):.0f} s wall, "
        f"{sum(t['cpu_seconds'] or 0 for t in drawn):.0f} CPU s"
        if drawn
        else "\n\nAll samples were stored by an earlier run (nothing generated)."
    )
    return {
        "builds": builds,
        "contamination": contamination_report(load_variant(variants / "sample.yaml"), data_dir),
        "sample_eval": sample_eval,
        "reader": reader,
        "reader_markdown": f"## Reader: SmolLM2-135M-Instruct on {reader['variant']}, {reader['task']}\n\n"
        + summary_markdown(reader["summary"])
        + cost,
        "comparison": comparison,
        "comparison_markdown": Path(comparison["html"]).with_name("compare.md").read_text().split("![")[0],
    }
