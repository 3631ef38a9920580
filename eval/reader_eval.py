"""Reader evaluation with test-time compute, "sample once, score many".

For each benchmark item and strategy (retrieval on/off, passages in context, rerank, MMR, bagging), prompts are built
and the reader draws ``n_samples`` completions once. Every sample is kept with its tokens, seed and the chunk ids it
saw; grading, answer-equivalence classes, pass@k / maj@k for every k with bootstrap CIs, and FLOPs per question are
all computed from the stored samples, so re-analysis never generates again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from catalog.records import Rejection
from eval.answers import extract_answer
from eval.benchmarks.types import BenchmarkItem
from eval.config_files import load_yaml_model
from eval.flops import ModelSizes, QuestionCompute, ReaderCall, strategy_flops
from eval.graders import make_grader
from eval.prompts import ContextBudget, build_prompt, get_template
from eval.readers.base import GenerationParams, Reader, ReaderError
from eval.sample_metrics import answer_classes, score_samples

STAGE = "reader_eval"

SAMPLE_SCHEMA = {
    "reader": pl.String,  # the reader's model name or path: a rung of a compute-multiplier ladder
    "strategy": pl.String,
    "question_id": pl.String,
    "sample_index": pl.Int64,
    "prompt_index": pl.Int64,  # which prompt (bag) of the question the sample answered
    "seed": pl.Int64,
    "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
    "text": pl.String,
    "answer": pl.String,
    "chunk_ids": pl.List(pl.String),
    "source_doc_ids": pl.List(pl.String),  # each passage's document id in its source, beside its chunk id
    "query_tokens": pl.Int64,
    "rerank_pair_tokens": pl.Int64,  # tokens of every (query, candidate) pair the reranker scored for the question
}


class Strategy(BaseModel):
    """One test-time configuration. ``bags > 0`` spreads the samples over that many seeded random subsets of the
    top ``candidates`` passages (bagging, for variance reduction); otherwise every sample sees the same top ``k``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    retrieval: bool = True
    k: int = Field(default=5, ge=1, description="passages in the prompt")
    candidates: int = Field(default=100, ge=1, description="hits retrieved before rerank/MMR/bagging")
    rerank: str | None = None  # cross-encoder path
    mmr_lambda: float | None = Field(default=None, ge=0, le=1)
    bags: int = Field(default=0, ge=0)


class ReaderEvalConfig(BaseModel):
    """A reader evaluation as YAML: the reader (``eval.readers.make_reader`` kind and arguments), sampling, and the
    strategies to compare."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reader: dict[str, Any] = Field(description="kind (transformers, openai, vllm) and that reader's arguments")
    n_samples: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.7, ge=0)
    max_tokens: int = Field(default=256, ge=1)
    seed: int = 0
    max_context_chars: int = Field(default=8000, ge=0)
    strategies: tuple[Strategy, ...] = (Strategy(name="no-retrieval", retrieval=False), Strategy(name="retrieval"))
    sizes: ModelSizes | None = None  # model sizes for FLOP accounting


def load_reader_eval_config(path) -> ReaderEvalConfig:
    return load_yaml_model(path, ReaderEvalConfig, "reader config")


PassageFn = Callable[[Sequence[BenchmarkItem], Strategy, int], list[list[list[Any]]]]
"""(items, strategy, n_samples) -> per item, per prompt, the passages; one prompt per bag (or one prompt)."""


def generate_samples(
    items: Sequence[BenchmarkItem],
    reader: Reader,
    cfg: ReaderEvalConfig,
    strategy: Strategy,
    passages_for: PassageFn | None,
    count_query_tokens: Callable[[str], int] | None = None,
    count_rerank_tokens: Callable[[BenchmarkItem], int] | None = None,
    batch_size: int = 8,
) -> tuple[pl.DataFrame, list[Rejection]]:
    """Draw ``cfg.n_samples`` completions per item for one strategy; a reader failure on a batch is retried item by
    item, and an item that still fails is recorded as a rejection, never killing the run."""
    rows: list[dict] = []
    rejections: list[Rejection] = []
    budget = ContextBudget(max_passages=strategy.k, max_units=cfg.max_context_chars)
    for start in tqdm(range(0, len(items), batch_size), desc=f"generate {strategy.name}", disable=None):
        batch = list(items[start : start + batch_size])
        passage_sets = (
            passages_for(batch, strategy, cfg.n_samples) if strategy.retrieval and passages_for else [[[]]] * len(batch)
        )
        for item, prompts_passages in zip(batch, passage_sets, strict=True):
            n_prompts = len(prompts_passages)
            per_prompt = [cfg.n_samples // n_prompts + (i < cfg.n_samples % n_prompts) for i in range(n_prompts)]
            first_sample = 0
            query_tokens = count_query_tokens(item.question) if strategy.retrieval and count_query_tokens else 0
            rerank_tokens = count_rerank_tokens(item) if strategy.rerank and count_rerank_tokens else 0
            for prompt_index, (passages, n) in enumerate(zip(prompts_passages, per_prompt, strict=True)):
                if n == 0:
                    continue
                params = GenerationParams(
                    max_tokens=cfg.max_tokens, temperature=cfg.temperature, n=n, seed=cfg.seed + first_sample
                )
                try:
                    (completions,) = reader.generate([build_prompt(item, passages, budget)], params)
                except ReaderError as exc:
                    rejections.append(Rejection(STAGE, item.benchmark, item.item_id, "reader_error", str(exc)))
                    break
                answer_format = get_template(item.benchmark).answer_format
                for j, completion in enumerate(completions):
                    rows.append(
                        {
                            "reader": reader.name,
                            "strategy": strategy.name,
                            "question_id": item.item_id,
                            "sample_index": first_sample + j,
                            "prompt_index": prompt_index,
                            "seed": completion.seed,
                            "prompt_tokens": completion.prompt_tokens,
                            "completion_tokens": completion.completion_tokens,
                            "text": completion.text,
                            "answer": extract_answer(answer_format, completion.text),
                            "chunk_ids": [getattr(p, "chunk_id", "") for p in passages],
                            "source_doc_ids": [getattr(p, "source_doc_id", None) or "" for p in passages],
                            "query_tokens": query_tokens,
                            "rerank_pair_tokens": rerank_tokens,
                        }
                    )
                first_sample += n
    return pl.DataFrame(rows, schema=SAMPLE_SCHEMA), rejections


def grade_samples(
    samples: pl.DataFrame, items: Sequence[BenchmarkItem], grader_name: str | None = None
) -> pl.DataFrame:
    """Add ``outcome``, ``correct`` and ``answer_class`` (equivalence classes of one question's answers, using the
    benchmark's grader for equivalence when it has one, e.g. MATH)."""
    if samples.height == 0:
        return samples.with_columns(
            pl.lit(None, pl.String).alias("outcome"), pl.lit(None, pl.Boolean).alias("correct"),
            pl.lit(None, pl.Int64).alias("answer_class"),
        )  # fmt: skip
    by_id = {item.item_id: item for item in items}
    benchmark = items[0].benchmark
    grader = make_grader(grader_name or get_template(benchmark).grader)
    try:
        answers = [a or "" for a in samples["answer"].to_list()]
        golds = [by_id[q].answer for q in samples["question_id"].to_list()]
        grades = grader.grade(answers, golds, questions=[by_id[q].question for q in samples["question_id"].to_list()])
        equivalent = getattr(grader, "equivalent", None)
        classes: dict[tuple[str, str], list[int]] = {}
        for (strategy, qid), group in samples.with_row_index("row").group_by(["strategy", "question_id"]):
            ids = answer_classes(group["answer"].to_list(), equivalent=equivalent)
            classes[(strategy, qid)] = list(zip(group["row"].to_list(), ids, strict=True))
    finally:
        close = getattr(grader, "close", None)
        if close is not None:
            close()
    answer_class = np.full(samples.height, -1, dtype=np.int64)
    for pairs in classes.values():
        for row, cls in pairs:
            answer_class[row] = cls
    return samples.with_columns(
        pl.Series("outcome", [g.outcome for g in grades], pl.String),
        pl.Series("correct", [g.outcome == "correct" for g in grades], pl.Boolean),
        pl.Series("answer_class", answer_class),
    )


def score_strategies(graded: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """pass@k and maj@k for every k with bootstrap CIs, per strategy."""
    frames = []
    for (strategy,), group in graded.group_by("strategy", maintain_order=True):
        scores = score_samples(group.select("question_id", "sample_index", "answer", "correct", "answer_class"),
                               seed=seed)  # fmt: skip
        frames.append(scores.with_columns(pl.lit(strategy).alias("strategy")))
    return pl.concat(frames) if frames else pl.DataFrame()


def flops_by_strategy(graded: pl.DataFrame, sizes: ModelSizes) -> dict[str, dict[str, float]]:
    """FLOPs per strategy from the stored token counts (prefill once per prompt, generation per sample, query
    embedding and reranking when their model sizes are configured)."""
    out = {}
    for (strategy,), group in graded.group_by("strategy", maintain_order=True):
        records = []
        for (_,), q in group.group_by("question_id", maintain_order=True):
            calls = [
                ReaderCall(int(p["prompt_tokens"][0]), tuple(int(t) for t in p["completion_tokens"].to_list()))
                for (_,), p in q.group_by("prompt_index", maintain_order=True)
            ]
            query = (int(q["query_tokens"][0]),) if q["query_tokens"][0] and sizes.embedder_params else ()
            rerank = (int(q["rerank_pair_tokens"][0]),) if q["rerank_pair_tokens"][0] and sizes.reranker_params else ()
            records.append(QuestionCompute(reader_calls=tuple(calls), query_tokens=query, rerank_pair_tokens=rerank))
        out[strategy] = strategy_flops(records, sizes).as_dict()
    return out
