"""The benchmark questions decontamination scans for, loaded here and handed to the units (indexing does not load
benchmarks: it takes ``BenchmarkQuestions``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from catalog.variant import DecontaminationConfig
from eval.benchmarks import get_loader
from indexing.decontaminate import BenchmarkQuestions, Question


def load_questions(cfg: DecontaminationConfig) -> tuple[BenchmarkQuestions, ...]:
    """Every configured benchmark's questions, with its n (``BenchmarkRef.ngram`` or the benchmark's default)."""
    questions = []
    for ref in cfg.benchmarks:
        loader = get_loader(ref.name)
        loaded = loader(ref.path, **ref.options)
        items = tuple(loaded.items)
        questions.append(
            BenchmarkQuestions(ref.name, items, ref.ngram or loader.default_ngram, tuple(loaded.rejections))
        )
    return tuple(questions)


def questions_of(
    items_by_benchmark: Mapping[str, Sequence[Question]], ngrams: Mapping[str, int] | None = None
) -> tuple[BenchmarkQuestions, ...]:
    """Already loaded items as ``BenchmarkQuestions`` (n from ``ngrams`` or the registered benchmark's default)."""
    ngrams = ngrams or {}
    return tuple(
        BenchmarkQuestions(name, tuple(items), ngrams.get(name) or get_loader(name).default_ngram)
        for name, items in items_by_benchmark.items()
    )
