"""Generators and verifiers over readers, and the functions that fill the samples table from them.

``Generator`` samples whole solutions, next steps (for step-level search) and revisions; ``ReaderGenerator``
implements it over any ``eval.readers.base.Reader``. ``OutcomeVerifier`` scores whole solutions and
``ProcessRewardModel`` scores each step prefix (``eval.tts.verifiers`` loads both from a model path). Every
generated candidate becomes one row of the samples table (``eval.tts.samples``), so later analysis never
regenerates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import polars as pl
from tqdm import tqdm

from eval.answers import extract_answer
from eval.graders.base import Grader, make_grader
from eval.readers.base import ChatMessage, GenerationParams, Reader
from eval.tts.samples import NO_RETRIEVAL, PARALLEL, REVISION


@dataclass(frozen=True)
class TtsQuestion:
    question_id: str
    prompt: str  # the question as the model sees it, with retrieved context already in it when retrieval is on
    reference: str = ""  # the gold answer, for grading
    retrieval: str = NO_RETRIEVAL  # the retrieval setting ``prompt`` was built with (a strategy's retrieval part)


@dataclass(frozen=True)
class Generation:
    text: str
    answer: str  # extracted final answer, "" when none
    tokens: int  # completion tokens
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Step:
    text: str
    tokens: int
    final: bool  # the step ends the solution (it states the final answer)
    answer: str = ""
    prompt_tokens: int = 0


@runtime_checkable
class Generator(Protocol):
    def solutions(self, question: TtsQuestion, n: int, seed: int) -> list[Generation]:
        """``n`` independent full solutions."""
        ...

    def next_steps(self, question: TtsQuestion, prefix: Sequence[str], n: int, seed: int) -> list[Step]:
        """``n`` candidate next steps after the solution prefix ``prefix`` (temperature 0 when ``seed`` < 0)."""
        ...

    def revise(self, question: TtsQuestion, attempts: Sequence[Generation], seed: int) -> Generation:
        """A new attempt that sees the previous ``attempts`` of the same chain."""
        ...


@runtime_checkable
class OutcomeVerifier(Protocol):
    def score(self, question: str, solutions: Sequence[str]) -> list[float]:
        """Probability in [0, 1] that each whole solution is correct."""
        ...


@runtime_checkable
class ProcessRewardModel(Protocol):
    def score_steps(self, question: str, solutions: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each solution (a list of steps), the score of every step prefix."""
        ...


def default_grader() -> Grader:
    """Normalized string match against the reference (pass ``make_grader("math")`` etc. for other benchmarks)."""
    return make_grader("normalized")


def grade_answers(grader: Grader, question: TtsQuestion, answers: Sequence[str]) -> list[bool]:
    """Grade one question's extracted answers ("" means none was extracted)."""
    grades = grader.grade([a or None for a in answers], [question.reference] * len(answers))
    return [g.correct for g in grades]


class ReaderGenerator:
    """A ``Generator`` over a Reader: plain chat prompts for solutions, steps (stop at the delimiter) and revisions."""

    def __init__(
        self,
        reader: Reader,
        answer_format: str = "boxed",  # an eval.answers extractor: boxed, multiple_choice, short
        max_tokens: int = 1024,
        temperature: float = 0.8,
        top_p: float = 1.0,
        step_delimiter: str = "\n\n",
        max_step_tokens: int = 256,
    ) -> None:
        self.reader = reader
        self.answer_format = answer_format
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.step_delimiter = step_delimiter
        self.max_step_tokens = max_step_tokens

    def _answer(self, text: str) -> str:
        return extract_answer(self.answer_format, text) or ""

    def _params(self, n: int, seed: int, max_tokens: int, stop: tuple[str, ...] = ()) -> GenerationParams:
        greedy = seed < 0
        return GenerationParams(
            max_tokens=max_tokens,
            temperature=0.0 if greedy else self.temperature,
            top_p=self.top_p,
            n=n,
            seed=max(seed, 0),
            stop=stop,
        )

    def solutions(self, question: TtsQuestion, n: int, seed: int) -> list[Generation]:
        prompt = [ChatMessage("user", question.prompt)]
        (completions,) = self.reader.generate([prompt], self._params(n, seed, self.max_tokens))
        return [Generation(c.text, self._answer(c.text), c.completion_tokens, c.prompt_tokens) for c in completions]

    def next_steps(self, question: TtsQuestion, prefix: Sequence[str], n: int, seed: int) -> list[Step]:
        so_far = self.step_delimiter.join(prefix)
        content = question.prompt if not prefix else f"{question.prompt}\n\nSolution so far:\n{so_far}\n\nNext step:"
        params = self._params(n, seed, self.max_step_tokens, stop=(self.step_delimiter,))
        (completions,) = self.reader.generate([[ChatMessage("user", content)]], params)
        steps = []
        for c in completions:
            answer = self._answer(c.text)
            # A step states the answer, or is empty (the model has nothing left to add): either ends the solution.
            final = bool(answer) or not c.text.strip()
            steps.append(Step(c.text.strip(), c.completion_tokens, final, answer, c.prompt_tokens))
        return steps

    def revise(self, question: TtsQuestion, attempts: Sequence[Generation], seed: int) -> Generation:
        shown = "\n\n".join(f"Attempt {i + 1}:\n{a.text}" for i, a in enumerate(attempts))
        content = (
            f"{question.prompt}\n\nPrevious attempts (they may be wrong):\n{shown}\n\n"
            "Find any mistakes and write a corrected complete solution."
        )
        (completions,) = self.reader.generate([[ChatMessage("user", content)]], self._params(1, seed, self.max_tokens))
        c = completions[0]
        return Generation(c.text, self._answer(c.text), c.completion_tokens, c.prompt_tokens)


def _rows(
    question: TtsQuestion,
    generations: Sequence[Generation],
    grader: Grader,
    verifier: OutcomeVerifier | None,
    source: str,
    chain: int | None,
) -> list[dict]:
    """Samples-table rows of one question's generations (``chain`` None: each sample is its own chain)."""
    correct = grade_answers(grader, question, [g.answer for g in generations])
    scores = _scores(verifier, question, generations)
    return [
        {
            "question_id": question.question_id,
            "sample_idx": i,
            "answer": g.answer,
            "correct": ok,
            "verifier_score": score,
            "step_scores": None,
            "tokens": g.tokens,
            "prompt_tokens": g.prompt_tokens,
            "retrieval": question.retrieval,
            "source": source,
            "chain": i if chain is None else chain,
            "budget": 0,
        }
        for i, (g, ok, score) in enumerate(zip(generations, correct, scores, strict=True))
    ]


SAMPLE_SCHEMA = {"step_scores": pl.List(pl.Float64), "verifier_score": pl.Float64}


def _scores(verifier: OutcomeVerifier | None, question: TtsQuestion, generations: Sequence[Generation]) -> list:
    if verifier is None:
        return [None] * len(generations)
    return list(verifier.score(question.prompt, [g.text for g in generations]))


def sample_parallel(
    generator: Generator,
    questions: Sequence[TtsQuestion],
    n: int,
    grader: Grader | None = None,
    verifier: OutcomeVerifier | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """``n`` independent samples per question, graded and (optionally) verifier-scored, as samples-table rows."""
    grader = grader or default_grader()
    rows = []
    for question in tqdm(questions, desc="parallel samples", disable=None):
        rows.extend(_rows(question, generator.solutions(question, n, seed), grader, verifier, PARALLEL, None))
    return pl.DataFrame(rows, schema_overrides=SAMPLE_SCHEMA)


def sample_revisions(
    generator: Generator,
    questions: Sequence[TtsQuestion],
    chains: int,
    length: int,
    grader: Grader | None = None,
    verifier: OutcomeVerifier | None = None,
    seed: int = 0,
    context: int = 4,
) -> pl.DataFrame:
    """``chains`` sequential-revision chains of ``length`` attempts per question; each attempt sees the last
    ``context`` attempts of its chain. Mixes of parallel chains and revisions are read from these rows later."""
    grader = grader or default_grader()
    rows = []
    for question in tqdm(questions, desc="revision chains", disable=None):
        for chain in range(chains):
            chain_seed = seed + chain * length
            attempts = [generator.solutions(question, 1, chain_seed)[0]]
            for step in range(1, length):
                attempts.append(generator.revise(question, attempts[-context:], chain_seed + step))
            rows.extend(_rows(question, attempts, grader, verifier, REVISION, chain))
    return pl.DataFrame(rows, schema_overrides=SAMPLE_SCHEMA)
