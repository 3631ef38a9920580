"""MATH-500 (the PRM800K test split of MATH): JSON lines with ``problem, answer, subject, level, unique_id``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from catalog.records import Rejection
from eval.benchmarks.registry import json_lines, register_benchmark, reject
from eval.benchmarks.types import BenchmarkItem

NAME = "math500"
REQUIRED = ("problem", "answer", "unique_id")


def _file(path: Path) -> Path:
    return path / "test.jsonl" if path.is_dir() else path


@register_benchmark(NAME, default_ngram=26)
def read_math500(path: Path) -> Iterator[BenchmarkItem | Rejection]:
    """One item per JSON line; ``item_id`` is the line's ``unique_id`` (e.g. ``test/precalculus/807.json``)."""
    file = _file(path)
    for entry in json_lines(NAME, file):
        if isinstance(entry, Rejection):
            yield entry
            continue
        ref, rec = entry
        missing = [k for k in REQUIRED if not isinstance(rec.get(k), str) or not rec[k].strip()]
        if missing:
            yield reject(NAME, ref, "missing_field", f"missing or empty: {', '.join(missing)}")
            continue
        metadata = {"level": str(rec.get("level", "")), "subject": str(rec.get("subject", ""))}
        if isinstance(rec.get("solution"), str):
            metadata["solution"] = rec["solution"]
        yield BenchmarkItem(
            benchmark=NAME,
            item_id=rec["unique_id"],
            question=rec["problem"],
            answer=rec["answer"],
            category=str(rec.get("subject", "")),
            metadata=metadata,
        )
