"""End-to-end build throughput and orchestration overhead.

Builds the bundled ``sample`` variant and a 10x replicated copy of its text sources (each copy made unique, so dedup
keeps it), each into a fresh data directory, with the default runner. Reports documents per second end to end and
the share of wall time that is not inside any stage function (Prefect startup, task scheduling, catalog
registration, artifact publishing): the union of the stages' own intervals, recorded in each artifact, is stage work.

    python benchmarks/pipeline.py [--copies 10] [--out benchmarks/results/pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"


def replicated_variant(folder: Path, copies: int) -> Path:
    """The sample's C4, arXiv and Wikipedia text, ``copies`` times over, each copy tagged so it stays unique."""
    lines = (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()
    lines += (SAMPLE / "jsonl" / "arxiv_sample.jsonl").read_text().splitlines()
    wiki = [(p.stem, p.read_text()) for p in sorted((SAMPLE / "wikitext").glob("*.txt"))]
    with open(folder / "docs.jsonl", "w") as out:
        for c in range(copies):
            for i, line in enumerate(lines):
                doc = json.loads(line)
                out.write(json.dumps({"id": f"{c}-{i}", "text": f"Copy {c}.\n\n{doc['text']}"}) + "\n")
            for title, text in wiki:
                out.write(json.dumps({"id": f"{c}-{title}", "text": f"Copy {c} of {title}.\n\n{text}"}) + "\n")
    (folder / "variant.yaml").write_text(
        "name: replicated\nsources:\n  - {name: text, type: jsonl, path: docs.jsonl, id_field: id, extractor: plain}\n"
        "dedup: {exact: true, near: false}\n"
    )
    return folder / "variant.yaml"


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def measure(variant: Path) -> dict:
    from catalog.db import Catalog
    from flows.build import run_build

    data_dir = Path(tempfile.mkdtemp(prefix="reread-bench-"))
    try:
        started = time.perf_counter()
        summary = run_build(variant, data_dir)
        wall = time.perf_counter() - started
        with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
            stats = [json.loads(s) for s in catalog.query("SELECT stats FROM stage_outputs")["stats"].to_list()]
        timings = [s["timing"] for s in stats if "timing" in s]
        intervals = [(t["started_at"], t["started_at"] + t["seconds"]) for t in timings]
        stage_time = union_seconds(intervals)
        docs = sum(s["rows"] for s in summary["stages"] if s["stage"] == "extract")
        chunks = sum(s["rows"] for s in summary["stages"] if s["stage"] == "chunk")
        by_stage: dict[str, float] = {}
        for s in summary["stages"]:
            by_stage[s["stage"]] = by_stage.get(s["stage"], 0.0) + s["stats"].get("timing", {}).get("seconds", 0.0)
        return {
            "documents": docs,
            "chunks": chunks,
            "wall_s": round(wall, 2),
            "docs_per_s": round(docs / wall, 2),
            "stage_work_s": round(stage_time, 2),
            "orchestration_share": round(1 - stage_time / wall, 4),
            "stage_seconds": {k: round(v, 2) for k, v in by_stage.items()},
        }
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "pipeline.json")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    rows = {"sample": measure(SAMPLE / "variants" / "sample.yaml")}
    with tempfile.TemporaryDirectory() as tmp:
        rows[f"{args.copies}x text"] = measure(replicated_variant(Path(tmp), args.copies))
    print(f"{'corpus':<12} {'docs':>6} {'chunks':>7} {'wall s':>8} {'docs/s':>8} {'stage s':>8} {'orchestration':>13}")
    for name, r in rows.items():
        print(
            f"{name:<12} {r['documents']:>6} {r['chunks']:>7} {r['wall_s']:>8} {r['docs_per_s']:>8} "
            f"{r['stage_work_s']:>8} {r['orchestration_share']:>12.1%}"
        )
        print("             per stage (s): " + ", ".join(f"{k}={v}" for k, v in r["stage_seconds"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_avg": os.getloadavg(), "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
