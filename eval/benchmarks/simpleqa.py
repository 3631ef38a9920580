"""SimpleQA (OpenAI simple-evals): CSV ``metadata, problem, answer``; metadata is a Python-literal dict string.

The metadata is parsed with ``ast.literal_eval``, which accepts only literals (never evaluates code), and must
come out a dict. SimpleQA has no ids: ``item_id`` is the content hash of the question text.
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterator
from pathlib import Path

from catalog.hashing import content_hash
from catalog.records import Rejection
from eval.benchmarks.registry import register_benchmark, reject
from eval.benchmarks.types import BenchmarkItem

NAME = "simpleqa"
COLUMNS = ("metadata", "problem", "answer")
MAX_METADATA_CHARS = 100_000  # literal_eval recurses: refuse absurd inputs instead of risking a crash


def _file(path: Path) -> Path:
    return path / "simple_qa_test_set.csv" if path.is_dir() else path


def parse_metadata(text: str) -> dict:
    """The metadata cell as a dict. Raises ValueError when it is not a plain dict literal."""
    if len(text) > MAX_METADATA_CHARS:
        raise ValueError(f"metadata too long ({len(text)} chars)")
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"not a plain literal ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a dict, got {type(value).__name__}")
    return value


@register_benchmark(NAME)
def read_simpleqa(path: Path) -> Iterator[BenchmarkItem | Rejection]:
    file = _file(path)
    with open(file, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            yield reject(NAME, str(file), "missing_columns", f"header lacks {', '.join(missing)}")
            return
        seen: set[str] = set()
        for row_no, row in enumerate(reader):
            ref = f"{file}:row {row_no}"
            problem, answer = (row.get("problem") or "").strip(), (row.get("answer") or "").strip()
            if not problem or not answer:
                yield reject(NAME, ref, "missing_field", "empty problem or answer")
                continue
            try:
                meta = parse_metadata(row.get("metadata") or "")
            except ValueError as exc:
                yield reject(NAME, ref, "malformed_metadata", str(exc))
                continue
            item_id = content_hash(problem)
            if item_id in seen:
                yield reject(NAME, ref, "duplicate_question", problem[:80])
                continue
            seen.add(item_id)
            urls = meta.get("urls") or []
            yield BenchmarkItem(
                benchmark=NAME,
                item_id=item_id,
                question=problem,
                answer=answer,
                category=str(meta.get("topic", "")),
                metadata={
                    "topic": str(meta.get("topic", "")),
                    "answer_type": str(meta.get("answer_type", "")),
                    "urls": "\n".join(str(u) for u in urls) if isinstance(urls, list) else str(urls),
                },
            )
