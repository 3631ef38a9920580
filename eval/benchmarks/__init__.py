"""Benchmark question loaders (MMLU, MATH-500, SimpleQA, GPQA, NQ-open) behind one registry.

``load_benchmark("mmlu", "data/mmlu", split="test")`` returns ``BenchmarkItem``s; ``read_benchmark`` also returns
the rejected rows. Importing this package registers every loader.
"""

from eval.benchmarks import gpqa, math500, mmlu, nq_open, simpleqa  # noqa: F401  (importing registers the loaders)
from eval.benchmarks.registry import (
    BENCHMARKS,
    BenchmarkError,
    BenchmarkLoad,
    BenchmarkLoader,
    get_loader,
    load_benchmark,
    read_benchmark,
    register_benchmark,
)
from eval.benchmarks.types import BenchmarkItem

__all__ = [
    "BENCHMARKS",
    "BenchmarkError",
    "BenchmarkItem",
    "BenchmarkLoad",
    "BenchmarkLoader",
    "get_loader",
    "load_benchmark",
    "read_benchmark",
    "register_benchmark",
]
