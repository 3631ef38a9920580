"""generate_samples / grade_samples / strategy_summary without a datastore: prompts batched per reader call,
per-strategy sample counts and temperatures, a failing prompt rejected alone, aliases and extra metrics graded."""

from __future__ import annotations

import polars as pl
import pytest

from catalog.errors import ConfigError
from eval.benchmarks.types import BenchmarkItem
from eval.reader_eval import (
    ReaderEvalConfig,
    Strategy,
    generate_samples,
    grade_samples,
    make_task_grader,
    score_strategies,
    strategy_summary,
)
from eval.readers.base import Completion, ReaderError

ITEMS = [
    BenchmarkItem("nq_open", f"q{i}", f"who is number {i}", f"answer {i}", aliases=(f"alias {i}",)) for i in range(5)
]


class ScriptedReader:
    """A test double of the Reader protocol: answers ``alias <i>`` for question i when the prompt has passages,
    ``I think <i>`` otherwise; records every call; fails on prompts that mention ``fail_on``."""

    name = "scripted"
    n_params = None

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[int, int, float]] = []  # (prompts, n, temperature)
        self.fail_on = fail_on

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params.n, params.temperature))
        out = []
        for messages in prompts:
            text = messages[-1].content
            if self.fail_on and self.fail_on in text:
                raise ReaderError(f"scripted failure on {self.fail_on}")
            number = text.split("who is number ")[1].split()[0]
            answer = f"alias {number}." if "Title:" in text else f"I think {number}"
            out.append([Completion(answer, 10, 3, params.seed + i, "stop") for i in range(params.n)])
        return out

    def score(self, prompts, continuations):
        raise NotImplementedError


class _Passage:
    def __init__(self, i: int) -> None:
        self.title, self.text, self.url, self.source, self.chunk_id = f"T{i}", f"text {i}", "", "", f"c{i}"


def passages_for(items, strategy, n_samples):
    pools = [[_Passage(j) for j in range(strategy.k)] for _ in items]
    return [[pool] * strategy.bags if strategy.bags else [pool] for pool in pools]


CFG = ReaderEvalConfig(
    reader={"kind": "scripted"},
    n_samples=4,
    temperature=0.7,
    strategies=(
        Strategy(name="closed-book", retrieval=False, n_samples=1, temperature=0.0),
        Strategy(name="top-1", k=1),
        Strategy(name="bagged", k=1, bags=2),
    ),
)


def test_prompts_are_batched_per_call_with_each_strategys_samples_and_temperature():
    reader = ScriptedReader()
    closed, _ = generate_samples(ITEMS, reader, CFG, CFG.strategies[0], passages_for, questions_per_call=4)
    assert reader.calls == [(4, 1, 0.0), (1, 1, 0.0)]  # 5 questions in batches of 4: two calls, greedy, 1 sample
    reader.calls.clear()
    top1, _ = generate_samples(ITEMS, reader, CFG, CFG.strategies[1], passages_for, questions_per_call=8)
    assert reader.calls == [(5, 4, 0.7)] and top1.height == 5 * 4
    reader.calls.clear()
    bagged, _ = generate_samples(ITEMS, reader, CFG, CFG.strategies[2], passages_for, questions_per_call=8)
    assert reader.calls == [(5, 2, 0.7), (5, 2, 0.7)]  # one call per bag: 4 samples spread over 2 prompts
    assert sorted(set(bagged.filter(pl.col("question_id") == "q0")["seed"].to_list())) == [0, 1, 2, 3]
    assert bagged["prompt_index"].to_list().count(1) == 5 * 2


def test_a_failing_question_is_rejected_alone():
    reader = ScriptedReader(fail_on="number 2")
    samples, rejections = generate_samples(ITEMS, reader, CFG, CFG.strategies[1], passages_for, questions_per_call=8)
    assert [r.input_ref for r in rejections] == ["q2"] and rejections[0].reason == "reader_error"
    assert sorted(samples["question_id"].unique()) == ["q0", "q1", "q3", "q4"]


def test_grading_uses_aliases_and_summary_pairs_strategies():
    reader = ScriptedReader()
    frames = [generate_samples(ITEMS, reader, CFG, s, passages_for)[0] for s in CFG.strategies]
    grader = make_task_grader(CFG, "nq_open", "exact")
    graded = grade_samples(pl.concat(frames), ITEMS, grader)
    assert graded.filter(pl.col("strategy") == "top-1")["correct"].all()  # "alias i." matches the second answer
    assert not graded.filter(pl.col("strategy") == "closed-book")["correct"].any()
    assert {"exact_match", "f1", "contains"} <= set(graded.columns)
    scores = score_strategies(graded)
    f1 = scores.filter((pl.col("strategy") == "closed-book") & (pl.col("metric") == "f1"))["value"][0]
    assert 0 < f1 < 1  # "I think 2" shares the number with "answer 2"
    summary = {row["strategy"]: row for row in strategy_summary(graded)}
    assert summary["closed-book"]["accuracy"] == 0.0 and summary["top-1"]["accuracy"] == 1.0
    assert summary["top-1"]["diff"] == pytest.approx(1.0) and summary["top-1"]["diff_ci_low"] == pytest.approx(1.0)
    assert summary["bagged"]["samples"] == 4 and summary["closed-book"]["samples"] == 1


def test_an_llm_judge_grader_needs_a_judge():
    cfg = ReaderEvalConfig(reader={"kind": "scripted"}, grader={"name": "simpleqa"})
    with pytest.raises(ConfigError, match="grader 'simpleqa' asks a judge model"):
        make_task_grader(cfg, "simpleqa")
    with pytest.raises(ConfigError, match="grader 'simpleqa' asks a judge model"):
        make_task_grader(ReaderEvalConfig(reader={"kind": "scripted"}), "simpleqa")
    contains = make_task_grader(ReaderEvalConfig(reader={}), "nq_open", "contains")
    assert contains.mode == "contains"


def test_summary_table_fits_a_100_column_terminal_without_wrapping() -> None:
    """The demo's reader summary (every strategy, CIs and differences) renders one line per strategy on a 100-column
    terminal: its headers are short (k, FLOPs/q) and a note says what they mean."""
    import io

    from rich.console import Console
    from rich.markdown import Markdown

    from eval.reader_eval import summary_markdown

    rows = [
        {"strategy": "closed-book", "samples": 1, "accuracy": 0.05, "ci_low": 0.0, "ci_high": 0.15,
         "exact_match": 0.0, "contains": 0.05, "f1": 0.0714, "flops_per_question": 2.03e10},
    ]  # fmt: skip
    for name, samples in (("top-1", 1), ("sc-top-1", 4), ("sc-bagged", 4)):
        rows.append(
            {**rows[0], "strategy": name, "samples": samples, "accuracy": 0.2, "ci_low": 0.05, "ci_high": 0.4,
             "diff_vs": "closed-book", "diff": -0.036, "diff_ci_low": -0.108, "diff_ci_high": 0.0}
        )  # fmt: skip
    markdown = summary_markdown(rows)
    assert markdown.endswith("k: samples per question; FLOPs/q: FLOPs per question; CIs: 95% bootstrap over questions.")
    screen = Console(width=100, force_terminal=True, color_system=None, record=True, file=io.StringIO())
    screen.print(Markdown(markdown))
    lines = screen.export_text().splitlines()
    for row in rows:
        (line,) = [line for line in lines if line.strip().startswith(row["strategy"] + " ")]
        assert f"{row['accuracy']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" in line
    assert "-0.036 [-0.108, +0.000]" in lines[[i for i, t in enumerate(lines) if "sc-bagged" in t][0]]
