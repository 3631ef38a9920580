"""The benchmark loader registry: ``@register_benchmark(name, default_ngram=...)`` on a reader function.

A reader yields ``BenchmarkItem`` for every good row and a ``catalog.records.Rejection`` for every malformed one,
so one bad row is counted and reported while the rest load. ``read_benchmark`` collects both;
``load_benchmark`` returns just the items and logs a summary of the rejections.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.errors import RereadError
from catalog.records import Rejection
from catalog.registry import Registry
from eval.benchmarks.types import BenchmarkItem

log = logging.getLogger(__name__)

STAGE = "benchmarks"
DEFAULT_NGRAM = 13

Reader = Callable[..., Iterator[BenchmarkItem | Rejection]]


class BenchmarkError(RereadError):
    """A benchmark cannot be loaded at all (unknown name, missing file, wrong password, bad option)."""


@dataclass(frozen=True, slots=True)
class BenchmarkLoader:
    """A registered benchmark: its reader and the n-gram size decontamination uses for its questions by default."""

    name: str
    read: Reader
    default_ngram: int = DEFAULT_NGRAM

    def __call__(self, path: str | Path, **options: Any) -> BenchmarkLoad:
        path = Path(path)
        if not path.exists():
            raise BenchmarkError(f"{self.name}: benchmark path {path} does not exist")
        try:
            inspect.signature(self.read).bind(path, **options)
        except TypeError as exc:
            raise BenchmarkError(f"{self.name}: bad loader options {sorted(options)} for {path}: {exc}") from None
        loaded = BenchmarkLoad(self.name)
        for record in self.read(path, **options):
            if isinstance(record, Rejection):
                loaded.rejections.append(record)
            else:
                loaded.items.append(record)
        return loaded


@dataclass(slots=True)
class BenchmarkLoad:
    """The items of one benchmark plus the rows that could not be used."""

    benchmark: str
    items: list[BenchmarkItem] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def rejection_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.rejections).items()))


BENCHMARKS: Registry[BenchmarkLoader] = Registry("benchmark", BenchmarkError)


def register_benchmark(name: str, *, default_ngram: int = DEFAULT_NGRAM) -> Callable[[Reader], Reader]:
    def decorate(read: Reader) -> Reader:
        BENCHMARKS.add(name, BenchmarkLoader(name, read, default_ngram))
        return read

    return decorate


def get_loader(name: str) -> BenchmarkLoader:
    return BENCHMARKS.lookup(name)


def read_benchmark(name: str, path: str | Path, **options: Any) -> BenchmarkLoad:
    """Load a benchmark's items and its rejected rows."""
    return get_loader(name)(path, **options)


def load_benchmark(name: str, path: str | Path, **options: Any) -> list[BenchmarkItem]:
    """Load a benchmark's items; malformed rows are skipped and summarized in a log warning."""
    loaded = read_benchmark(name, path, **options)
    if loaded.rejections:
        first = loaded.rejections[0]
        log.warning(
            "%s: skipped %d malformed rows of %s %s (first: %s %s)",
            name,
            len(loaded.rejections),
            path,
            loaded.rejection_counts(),
            first.input_ref,
            first.detail,
        )
    return loaded.items


def reject(benchmark: str, input_ref: str, reason: str, detail: str = "") -> Rejection:
    return Rejection(stage=STAGE, source=benchmark, input_ref=input_ref, reason=reason, detail=detail)


def json_lines(benchmark: str, file: Path) -> Iterator[tuple[str, dict[str, Any]] | Rejection]:
    """The JSON objects of a JSONL benchmark file as ``(file:line, object)``; a line that is not a JSON object is a
    ``malformed_json`` rejection, blank lines are skipped."""
    with open(file, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            ref = f"{file}:{line_no}"
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                yield reject(benchmark, ref, "malformed_json", str(exc)[:200])
                continue
            if not isinstance(rec, dict):
                yield reject(benchmark, ref, "malformed_json", f"expected an object, got {type(rec).__name__}")
                continue
            yield ref, rec
