"""A model ladder for compute multipliers, assembled from stored reader evaluations.

Each rung is a reader (a base model of known training FLOPs) evaluated on one task with a base strategy (e.g.
closed-book) and method strategies (retrieval, rerank, self-consistency...). Per-question accuracy is the mean
correctness of the question's stored samples; the ladder has one row per (model, method, category) and the
correctness table one row per (model, method, question), which gives ``eval.multiplier`` its question bootstrap.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from catalog.errors import ConfigError
from eval.config_files import load_yaml_model

ALL = "all"


class LadderModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    reader: str  # the reader's model name or path, as recorded with its samples
    flops: float = Field(gt=0, description="training FLOPs of the base model")


class LadderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    benchmark: str
    base: str  # the strategy that is the base model alone
    methods: tuple[str, ...] = Field(min_length=1)
    models: tuple[LadderModel, ...] = Field(min_length=2)


def load_ladder_spec(path: str | Path) -> LadderSpec:
    return load_yaml_model(path, LadderSpec, "ladder spec")


def ladder_from_samples(
    samples: pl.DataFrame, spec: LadderSpec, categories: dict[str, str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(ladder, correctness) from stored samples with columns ``reader, strategy, question_id, correct``.

    Only questions answered by every model under every strategy count, so all rungs are scored on the same items.
    """
    readers = {m.reader: m for m in spec.models}
    strategies = (spec.base, *spec.methods)
    per_question = (
        samples.filter(pl.col("reader").is_in(list(readers)) & pl.col("strategy").is_in(list(strategies)))
        .group_by("reader", "strategy", "question_id")
        .agg(pl.col("correct").cast(pl.Float64).mean().alias("correct"))
    )
    missing = [(r, s) for r in readers for s in strategies
               if per_question.filter((pl.col("reader") == r) & (pl.col("strategy") == s)).is_empty()]  # fmt: skip
    if missing:
        raise ConfigError(
            f"no stored samples for (reader, strategy) {missing}: run `reread eval --reader-config` first"
        )
    common = per_question.group_by("question_id").len().filter(pl.col("len") == len(readers) * len(strategies))
    per_question = per_question.join(common.select("question_id"), on="question_id")
    category = pl.col("question_id").replace_strict(categories or {}, default=ALL, return_dtype=pl.String)
    per_question = per_question.with_columns(
        pl.col("reader").replace_strict({r: m.name for r, m in readers.items()}).alias("model"),
        pl.when(pl.col("strategy") == spec.base).then(pl.lit("")).otherwise(pl.col("strategy")).alias("method"),
        category.alias("category"),
    )
    correctness = per_question.select("model", "method", "question_id", "correct", "category").with_columns(
        pl.lit(spec.benchmark).alias("benchmark")
    )
    rows = []
    groups = [(ALL, per_question)]
    if categories:
        # only categories with common questions: one whose questions were not all answered has no accuracy
        present = sorted(set(per_question["category"]) - {ALL})
        groups += [(c, per_question.filter(pl.col("category") == c)) for c in present]
    for cat, frame in groups:
        for model in spec.models:
            mine = frame.filter(pl.col("model") == model.name)
            base = mine.filter(pl.col("method") == "")
            for method in spec.methods:
                with_method = mine.filter(pl.col("method") == method)
                rows.append(
                    {"model": model.name, "flops": model.flops, "base_acc": float(base["correct"].mean() or 0.0),
                     "method_acc": float(with_method["correct"].mean() or 0.0), "method": method,
                     "benchmark": spec.benchmark, "category": cat, "n_questions": base.height}
                )  # fmt: skip
    return pl.DataFrame(rows), correctness
