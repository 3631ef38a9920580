"""MATH-500 (the PRM800K test split of MATH): JSON lines with ``problem, answer, subject, level, unique_id``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from catalog.records import Rejection
from eval.benchmarks.registry import register_benchmark, reject
from eval.benchmarks.types import BenchmarkItem

NAME = "math500"
REQUIRED = ("problem", "answer", "unique_id")


def _file(path: Path) -> Path:
    return path / "test.jsonl" if path.is_dir() else path


@register_benchmark(NAME, default_ngram=26)
def read_math500(path: Path) -> Iterator[BenchmarkItem | Rejection]:
    """One item per JSON line; ``item_id`` is the line's ``unique_id`` (e.g. ``test/precalculus/807.json``)."""
    file = _file(path)
    with open(file, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            ref = f"{file}:{line_no}"
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                yield reject(NAME, ref, "malformed_json", str(exc))
                continue
            if not isinstance(rec, dict):
                yield reject(NAME, ref, "malformed_json", f"expected an object, got {type(rec).__name__}")
                continue
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
