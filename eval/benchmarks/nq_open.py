"""NQ-open (open-domain Natural Questions): JSON lines ``{"id", "question", "answers": [...]}``.

Every string in ``answers`` is an accepted answer (the NQ-open convention grades against any of them): the first is
the item's ``answer``, the rest its ``aliases``. Extra fields (e.g. ``gold_passage_id``) are kept as metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from catalog.records import Rejection
from eval.benchmarks.registry import json_lines, register_benchmark, reject
from eval.benchmarks.types import BenchmarkItem

NAME = "nq_open"


def _file(path: Path) -> Path:
    return path / "nq_open_questions.jsonl" if path.is_dir() else path


@register_benchmark(NAME)
def read_nq_open(path: Path) -> Iterator[BenchmarkItem | Rejection]:
    file = _file(path)
    seen: set[str] = set()
    for entry in json_lines(NAME, file):
        if isinstance(entry, Rejection):
            yield entry
            continue
        ref, rec = entry
        item_id, question, answers = rec.get("id"), rec.get("question"), rec.get("answers")
        if not isinstance(item_id, str) or not item_id.strip() or not isinstance(question, str):
            yield reject(NAME, ref, "missing_field", "id and question must be non-empty strings")
            continue
        if not question.strip():
            yield reject(NAME, ref, "missing_field", "empty question")
            continue
        if not isinstance(answers, list) or not answers:
            yield reject(NAME, ref, "missing_field", "answers must be a non-empty list of strings")
            continue
        accepted = [a.strip() for a in answers if isinstance(a, str) and a.strip()]
        if len(accepted) != len(answers):
            yield reject(NAME, ref, "malformed_answers", f"answers holds empty or non-string values: {answers!r:.200}")
            continue
        if item_id in seen:
            yield reject(NAME, ref, "duplicate_id", item_id)
            continue
        seen.add(item_id)
        metadata = {k: str(v) for k, v in rec.items() if k not in ("id", "question", "answers") and v is not None}
        yield BenchmarkItem(
            benchmark=NAME,
            item_id=item_id,
            question=question.strip(),
            answer=accepted[0],
            aliases=tuple(dict.fromkeys(accepted[1:])),
            metadata=metadata,
        )
