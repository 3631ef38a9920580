"""The quick-start job: build the bundled variants, evaluate the sample datastore, compare the two Vaswani variants."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from catalog.variant import load_variant
from flows.build import build_datastore
from flows.evaluate import compare_variants, evaluate
from flows.reports import contamination_report


@flow(name="demo", log_prints=True)
def demo(sample_dir: str, data_dir: str) -> dict:
    variants, tasks = Path(sample_dir) / "variants", Path(sample_dir) / "tasks"
    builds = [
        build_datastore(str(variants / f"{name}.yaml"), data_dir) for name in ("sample", "vaswani", "vaswani-hnsw")
    ]
    sample_eval = evaluate(
        str(variants / "sample.yaml"), data_dir, [str(tasks / f"{t}.yaml") for t in ("simpleqa", "mmlu")]
    )
    comparison = compare_variants(
        [str(variants / "vaswani.yaml"), str(variants / "vaswani-hnsw.yaml")], data_dir, str(tasks / "vaswani.yaml")
    )
    return {
        "builds": builds,
        "contamination": contamination_report(load_variant(variants / "sample.yaml"), data_dir),
        "sample_eval": sample_eval,
        "comparison": comparison,
        "comparison_markdown": Path(comparison["html"]).with_name("compare.md").read_text().split("![")[0],
    }
