"""Reader evaluation with test-time compute, "sample once, score many".

For each benchmark item and strategy (retrieval on/off, passages in context, rerank, MMR, bagging), prompts are built
and the reader draws ``n_samples`` completions once. Every sample is kept with its tokens, seed and the chunk ids it
saw; grading, answer-equivalence classes, pass@k / maj@k for every k with bootstrap CIs, and FLOPs per question are
all computed from the stored samples, so re-analysis never generates again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from catalog.errors import ConfigError
from catalog.records import Rejection
from eval.answers import extract_answer
from eval.benchmarks.types import BenchmarkItem
from eval.config_files import load_yaml_model
from eval.flops import ModelSizes, QuestionCompute, ReaderCall, strategy_flops
from eval.graders import GRADERS, Grader, make_grader
from eval.prompts import ContextBudget, build_prompt, get_template
from eval.readers.base import Completion, GenerationParams, Reader, ReaderError
from eval.sample_metrics import answer_classes, bootstrap_ci, score_samples

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
    top ``candidates`` passages (bagging, for variance reduction); otherwise every sample sees the same top ``k``.
    ``n_samples`` and ``temperature`` override the config's, so greedy strategies and self-consistency share a file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    retrieval: bool = True
    k: int = Field(default=5, ge=1, description="passages in the prompt")
    candidates: int = Field(default=100, ge=1, description="hits retrieved before rerank/MMR/bagging")
    rerank: str | None = None  # cross-encoder path
    mmr_lambda: float | None = Field(default=None, ge=0, le=1)
    bags: int = Field(default=0, ge=0)
    n_samples: int | None = Field(default=None, ge=1, description="samples per question (default: the config's)")
    temperature: float | None = Field(default=None, ge=0, description="sampling temperature (default: the config's)")


class GraderConfig(BaseModel):
    """Which grader decides ``correct``: a registered grader name and its options; ``judge`` is the reader (same
    keys as ``reader``) that LLM-judge graders such as ``simpleqa`` ask."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    judge: dict[str, Any] | None = None


class ReaderEvalConfig(BaseModel):
    """A reader evaluation as YAML: the reader (``eval.readers.make_reader`` kind and arguments), sampling, the
    grader, and the strategies to compare."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reader: dict[str, Any] = Field(description="kind (transformers, openai, vllm) and that reader's arguments")
    n_samples: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.7, ge=0)
    max_tokens: int = Field(default=256, ge=1)
    seed: int = 0
    max_context_chars: int = Field(default=8000, ge=0)
    grader: GraderConfig | None = None  # default: the benchmark template's grader (with the task's ``match``)
    strategies: tuple[Strategy, ...] = (Strategy(name="no-retrieval", retrieval=False), Strategy(name="retrieval"))
    sizes: ModelSizes | None = None  # model sizes for FLOP accounting

    def samples_of(self, strategy: Strategy) -> int:
        return strategy.n_samples if strategy.n_samples is not None else self.n_samples

    def temperature_of(self, strategy: Strategy) -> float:
        return strategy.temperature if strategy.temperature is not None else self.temperature


def load_reader_eval_config(path) -> ReaderEvalConfig:
    return load_yaml_model(path, ReaderEvalConfig, "reader config")


PassageFn = Callable[[Sequence[BenchmarkItem], Strategy, int], list[list[list[Any]]]]
"""(items, strategy, n_samples) -> per item, per prompt, the passages; one prompt per bag (or one prompt)."""


@dataclass
class _PromptJob:
    """One prompt of one question: its passages, how many samples it gets and from which sample index on."""

    item: BenchmarkItem
    prompt_index: int
    passages: list[Any]
    n: int
    first_sample: int
    query_tokens: int
    rerank_tokens: int


def generate_samples(
    items: Sequence[BenchmarkItem],
    reader: Reader,
    cfg: ReaderEvalConfig,
    strategy: Strategy,
    passages_for: PassageFn | None,
    count_query_tokens: Callable[[str], int] | None = None,
    count_rerank_tokens: Callable[[BenchmarkItem], int] | None = None,
    questions_per_call: int = 64,
) -> tuple[pl.DataFrame, list[Rejection]]:
    """Draw the strategy's samples per item, ``questions_per_call`` at a time: the prompts of those that share
    sampling parameters (all of them, or one bag index each with bagging) go to the reader in one call (a reader
    batches them its own way: by length, or as concurrent requests). A reader failure on a call is retried prompt by
    prompt, and a question that still fails is recorded as a rejection and left out (all its samples), never killing
    the run."""
    rows: list[dict] = []
    rejections: list[Rejection] = []
    n_samples, temperature = cfg.samples_of(strategy), cfg.temperature_of(strategy)
    budget = ContextBudget(max_passages=strategy.k, max_units=cfg.max_context_chars)
    for start in tqdm(range(0, len(items), questions_per_call), desc=f"generate {strategy.name}", disable=None):
        batch = list(items[start : start + questions_per_call])
        passage_sets = (
            passages_for(batch, strategy, n_samples) if strategy.retrieval and passages_for else [[[]]] * len(batch)
        )
        groups: dict[tuple[int, int], list[_PromptJob]] = {}
        for item, prompts_passages in zip(batch, passage_sets, strict=True):
            n_prompts = len(prompts_passages)
            per_prompt = [n_samples // n_prompts + (i < n_samples % n_prompts) for i in range(n_prompts)]
            query_tokens = count_query_tokens(item.question) if strategy.retrieval and count_query_tokens else 0
            rerank_tokens = count_rerank_tokens(item) if strategy.rerank and count_rerank_tokens else 0
            first = 0
            for prompt_index, (passages, n) in enumerate(zip(prompts_passages, per_prompt, strict=True)):
                if n:
                    job = _PromptJob(item, prompt_index, list(passages), n, first, query_tokens, rerank_tokens)
                    groups.setdefault((n, first), []).append(job)
                first += n
        completions: dict[tuple[str, int], list[Completion]] = {}
        failed: dict[str, str] = {}
        for (n, first), jobs in groups.items():
            params = GenerationParams(max_tokens=cfg.max_tokens, temperature=temperature, n=n, seed=cfg.seed + first)
            prompts = [build_prompt(job.item, job.passages, budget) for job in jobs]
            try:
                results = reader.generate(prompts, params)
            except ReaderError:
                results = []
                for job, prompt in zip(jobs, prompts, strict=True):
                    try:
                        (result,) = reader.generate([prompt], params)
                    except ReaderError as exc:
                        failed.setdefault(job.item.item_id, str(exc))
                        result = []
                    results.append(result)
            for job, result in zip(jobs, results, strict=True):
                completions[(job.item.item_id, job.prompt_index)] = result
        for item in batch:
            if item.item_id in failed:
                rejections.append(Rejection(STAGE, item.benchmark, item.item_id, "reader_error", failed[item.item_id]))
        answer_format = get_template(batch[0].benchmark).answer_format if batch else "short"
        for jobs in groups.values():
            for job in jobs:
                if job.item.item_id in failed:
                    continue
                for j, completion in enumerate(completions[(job.item.item_id, job.prompt_index)]):
                    rows.append(
                        {
                            "reader": reader.name,
                            "strategy": strategy.name,
                            "question_id": job.item.item_id,
                            "sample_index": job.first_sample + j,
                            "prompt_index": job.prompt_index,
                            "seed": completion.seed,
                            "prompt_tokens": completion.prompt_tokens,
                            "completion_tokens": completion.completion_tokens,
                            "text": completion.text,
                            "answer": extract_answer(answer_format, completion.text),
                            "chunk_ids": [getattr(p, "chunk_id", "") for p in job.passages],
                            "source_doc_ids": [getattr(p, "source_doc_id", None) or "" for p in job.passages],
                            "query_tokens": job.query_tokens,
                            "rerank_pair_tokens": job.rerank_tokens,
                        }
                    )
    frame = pl.DataFrame(rows, schema=SAMPLE_SCHEMA)
    return frame.sort("question_id", "sample_index") if frame.height else frame, rejections


def make_task_grader(cfg: ReaderEvalConfig, benchmark: str, match: str = "exact") -> Grader:
    """The grader of a reader evaluation: the config's ``grader`` (building its judge reader), else the benchmark
    template's grader, where the ``normalized`` grader takes the task's ``match`` mode."""
    if cfg.grader is None:
        name = get_template(benchmark).grader
        return make_grader(name, mode=match) if name == "normalized" else _grader_with_judge(name, {}, None)
    return _grader_with_judge(cfg.grader.name, cfg.grader.options, cfg.grader.judge)


def _grader_with_judge(name: str, options: dict[str, Any], judge: dict[str, Any] | None) -> Grader:
    accepts = inspect.signature(GRADERS[name].__init__).parameters if name in GRADERS else {}
    if "reader" in accepts:
        if judge is None:
            raise ConfigError(
                f"grader {name!r} asks a judge model: give the judge reader in the reader config "
                "(grader: {name: %s, judge: {kind: ..., ...}}), or pick an offline grader (normalized)" % name
            )
        from eval.readers import make_reader

        return make_grader(name, reader=make_reader(**judge), **options)
    return make_grader(name, **options)


def grade_samples(samples: pl.DataFrame, items: Sequence[BenchmarkItem], grader: Grader | None = None) -> pl.DataFrame:
    """Add ``outcome``, ``correct`` and ``answer_class`` (equivalence classes of one question's answers, using the
    grader's ``equivalent`` when it has one, e.g. MATH), plus the grader's extra per-sample metrics (e.g.
    ``exact_match``, ``f1``, ``contains`` of the normalized grader). Golds are every accepted answer of an item."""
    if samples.height == 0:
        return samples.with_columns(
            pl.lit(None, pl.String).alias("outcome"), pl.lit(None, pl.Boolean).alias("correct"),
            pl.lit(None, pl.Int64).alias("answer_class"),
        )  # fmt: skip
    by_id = {item.item_id: item for item in items}
    if grader is None:
        grader = make_grader(get_template(items[0].benchmark).grader)
    try:
        answers = [a or "" for a in samples["answer"].to_list()]
        question_ids = samples["question_id"].to_list()
        takes_aliases = hasattr(grader, "metrics")
        golds = [by_id[q].accepted_answers if takes_aliases else by_id[q].answer for q in question_ids]
        questions = [by_id[q].question for q in question_ids]
        grades = grader.grade(answers, golds, questions=questions)
        extra = grader.metrics(answers, golds, questions) if takes_aliases else []
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
    metric_columns = [pl.Series(name, [m[name] for m in extra], pl.Float64) for name in (extra[0] if extra else {})]
    return samples.with_columns(
        pl.Series("outcome", [g.outcome for g in grades], pl.String),
        pl.Series("correct", [g.outcome == "correct" for g in grades], pl.Boolean),
        pl.Series("answer_class", answer_class),
        *metric_columns,
    )


EXTRA_METRICS = ("exact_match", "f1", "contains")  # per-sample grader metrics reported beside pass@k and maj@k


def score_strategies(graded: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """pass@k and maj@k for every k with bootstrap CIs, per strategy; plus the mean over a question's samples of
    each extra grader metric present (exact match, token F1, answer contained) at k = 1, with its bootstrap CI."""
    frames = []
    for (strategy,), group in graded.group_by("strategy", maintain_order=True):
        scores = score_samples(group.select("question_id", "sample_index", "answer", "correct", "answer_class"),
                               seed=seed)  # fmt: skip
        extra = [m for m in EXTRA_METRICS if m in group.columns]
        if extra:
            per_question = group.group_by("question_id", maintain_order=True).agg(pl.col(extra).mean())
            values = per_question.select(extra).to_numpy().astype(float)
            low, high = bootstrap_ci(values, seed=seed)
            rows = [
                {"metric": m, "k": 1, "value": float(values[:, j].mean()), "ci_low": float(low[j]),
                 "ci_high": float(high[j]), "n_questions": per_question.height}
                for j, m in enumerate(extra)
            ]  # fmt: skip
            scores = pl.concat([scores, pl.DataFrame(rows, schema=scores.schema)])
        frames.append(scores.with_columns(pl.lit(strategy).alias("strategy")))
    return pl.concat(frames) if frames else pl.DataFrame()


def per_question_accuracy(graded: pl.DataFrame) -> pl.DataFrame:
    """Per question and strategy: sample accuracy and majority-vote accuracy over all n samples, as columns
    ``<strategy> acc`` and ``<strategy> maj@n`` keyed by ``item_id`` (for paired tests between strategies or
    variants)."""
    from eval.sample_metrics import SampleMatrix, maj_at_k_curve

    frame = None
    for (strategy,), group in graded.group_by("strategy", maintain_order=True):
        matrix = SampleMatrix.from_table(group)
        maj = maj_at_k_curve(matrix.answer_class, matrix.correct)[:, -1]
        part = pl.DataFrame(
            {"item_id": matrix.question_ids, f"{strategy} acc": matrix.correct.mean(axis=1),
             f"{strategy} maj@{matrix.n}": maj}
        )  # fmt: skip
        frame = part if frame is None else frame.join(part, on="item_id", how="full", coalesce=True)
    return frame if frame is not None else pl.DataFrame({"item_id": []})


def strategy_summary(
    graded: pl.DataFrame, flops: dict[str, dict[str, float]] | None = None, seed: int = 0
) -> list[dict]:
    """One row per strategy: samples per question, accuracy of the final answer (majority vote over all samples;
    with one sample, its exact correctness) with a bootstrap 95% CI, the mean extra metrics, FLOPs per question,
    and the paired difference to the first strategy (bootstrap over questions, 95% CI)."""
    from eval.compare import paired_bootstrap

    accuracy = per_question_accuracy(graded)
    strategies = list(dict.fromkeys(graded["strategy"].to_list()))
    column = {s: next(c for c in accuracy.columns if c.startswith(f"{s} maj@")) for s in strategies}
    baseline = strategies[0] if strategies else None
    rows = []
    for strategy in strategies:
        group = graded.filter(pl.col("strategy") == strategy)
        values = accuracy[column[strategy]].drop_nulls().to_numpy().astype(float)
        low, high = bootstrap_ci(values[:, None], seed=seed)
        row = {
            "strategy": strategy, "samples": int(column[strategy].rsplit("@", 1)[1]), "questions": len(values),
            "accuracy": float(values.mean()), "ci_low": float(low[0]), "ci_high": float(high[0]),
        }  # fmt: skip
        for metric in EXTRA_METRICS:
            if metric in group.columns:
                row[metric] = float(group.group_by("question_id").agg(pl.col(metric).mean())[metric].mean())
        if flops and strategy in flops:
            row["flops_per_question"] = flops[strategy]["total_per_question"]
        if strategy != baseline:
            both = accuracy.select(column[baseline], column[strategy]).drop_nulls()
            diff, d_low, d_high, p = paired_bootstrap(
                both[column[baseline]].to_numpy(), both[column[strategy]].to_numpy(), seed=seed
            )
            row.update({"diff_vs": baseline, "diff": diff, "diff_ci_low": d_low, "diff_ci_high": d_high, "p_value": p})
        rows.append(row)
    return rows


def summary_markdown(rows: list[dict]) -> str:
    """The strategy summary as a markdown table, then a line saying what its short headers mean (so the table fits
    a 100-column terminal)."""
    if not rows:
        return ""
    baseline = rows[0]["strategy"]
    lines = [
        f"| strategy | k | accuracy [95% CI] | EM | contains | F1 | FLOPs/q | minus {baseline} [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def fmt(row, key):
        return f"{row[key]:.3f}" if key in row else "-"

    for r in rows:
        diff = f"{r['diff']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]" if "diff" in r else "-"
        flops = f"{r['flops_per_question']:.3g}" if "flops_per_question" in r else "-"
        lines.append(
            f"| {r['strategy']} | {r['samples']} | {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
            f"{fmt(r, 'exact_match')} | {fmt(r, 'contains')} | {fmt(r, 'f1')} | {flops} | {diff} |"
        )
    lines += ["", "k: samples per question; FLOPs/q: FLOPs per question; CIs: 95% bootstrap over questions."]
    return "\n".join(lines)


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
