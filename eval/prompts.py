"""Prompt templates per benchmark: declarative records in a registry, rendered to explicit chat messages.

A template is data (system text, instruction, answer format, grader name), so a change to a prompt changes its
``template_hash`` and with it every artifact key that depends on the prompt. Retrieved passages come first, then the
question, then the answer instruction; the context is cut to a number of passages and a character or token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from catalog.errors import ConfigError
from catalog.hashing import stable_hash
from catalog.registry import Registry
from eval.benchmarks.types import LETTERS, BenchmarkItem
from eval.readers.base import ChatMessage


class Passage(Protocol):
    """Anything retrieved with these attributes (``indexing.hits.Hit`` is one)."""

    title: str
    url: str
    source: str
    text: str


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    instruction: str  # after the question (and choices): how to answer
    answer_format: str  # an ``eval.answers`` extractor
    grader: str  # an ``eval.graders`` grader
    context_intro: str = "Here are passages retrieved from a reference corpus; they may help.\n\n"
    # "cited": ``[1] Title (source, url)`` headers; "titled": ``Title: ...`` only, for small readers that copy
    # citation headers into their answers instead of answering
    passage_style: str = "cited"


PROMPTS: Registry[PromptTemplate] = Registry("prompt template")


def register_prompt(template: PromptTemplate, *aliases: str) -> PromptTemplate:
    for name in (template.name, *aliases):
        PROMPTS.add(name, template)
    return template


_MC_INSTRUCTION = (
    "Think step by step, then finish with a line of the form 'Answer: X' where X is the letter of the correct choice."
)
_MC_SYSTEM = "You are an expert who answers multiple-choice questions accurately."

register_prompt(
    PromptTemplate(
        name="mmlu", system=_MC_SYSTEM, instruction=_MC_INSTRUCTION, answer_format="multiple_choice", grader="choice"
    )
)
register_prompt(
    PromptTemplate(
        name="gpqa", system=_MC_SYSTEM, instruction=_MC_INSTRUCTION, answer_format="multiple_choice", grader="choice"
    )
)
register_prompt(
    PromptTemplate(
        name="math500",
        system="You are a careful mathematician.",
        instruction="Solve the problem step by step. Put your final answer within \\boxed{}.",
        answer_format="boxed",
        grader="math",
    ),
    "math",
)
register_prompt(
    PromptTemplate(
        name="simpleqa",
        system="You answer factual questions with a short answer: a name, a date, a number or a short phrase.",
        instruction='Give only the short answer. If you do not know, say "I don\'t know".',
        answer_format="short",
        grader="simpleqa",
    )
)


register_prompt(
    PromptTemplate(
        name="nq_open",
        system="You answer questions with a short answer: a name, a date, a number or a short phrase.",
        instruction="Reply with the short answer only, not a sentence.",
        answer_format="phrase",
        grader="normalized",
        context_intro="Background from Wikipedia:\n\n",
        passage_style="titled",
    )
)


def get_template(benchmark: str) -> PromptTemplate:
    try:
        return PROMPTS[benchmark]
    except KeyError:
        raise ConfigError(f"benchmark {benchmark!r}: no prompt template; known: {', '.join(sorted(PROMPTS))}") from None


def template_hash(benchmark: str) -> str:
    """Content hash of a benchmark's template, for artifact keys of anything generated from it."""
    return stable_hash(asdict(get_template(benchmark)))


@dataclass(frozen=True)
class ContextBudget:
    """How much retrieved context goes into a prompt.

    ``max_units`` is counted by the ``length`` function given to ``format_context``: characters by default, or
    tokens when a tokenizer's counter is passed. None: no budget beyond ``max_passages``.
    """

    max_passages: int = 5
    max_units: int | None = 8000


PASSAGE_STYLES = ("cited", "titled")


def format_passage(index: int, passage: Passage, style: str = "cited") -> str:
    """``[1] Title (source, url)`` then the text (empty source or url parts left out); with style ``titled``,
    ``Title: ...`` then the text."""
    if style == "titled":
        return f"Title: {passage.title or '(untitled)'}\n{passage.text.strip()}"
    if style != "cited":
        raise ConfigError(f"passage style {style!r}: unknown; known: {', '.join(PASSAGE_STYLES)}")
    origin = ", ".join(part for part in (passage.source, passage.url) if part)
    header = f"[{index}] {passage.title or '(untitled)'}"
    if origin:
        header += f" ({origin})"
    return f"{header}\n{passage.text.strip()}"


def _truncate_to(text: str, budget: int, length: Callable[[str], int]) -> str:
    """The longest prefix of ``text`` (cut at a space) whose length is within ``budget``: binary search on chars."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if length(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    prefix = text[:lo]
    cut = prefix.rfind(" ")
    return prefix[:cut] if cut > 0 and lo < len(text) else prefix


def format_context(
    passages: Sequence[Passage],
    budget: ContextBudget = ContextBudget(),
    length: Callable[[str], int] = len,
    style: str = "cited",
) -> str:
    """Numbered passages in retrieval order, within the budget: whole passages while they fit, the first that
    does not fit is cut (at a word boundary) to the space left, and the rest are dropped."""
    blocks: list[str] = []
    used = 0
    separator_cost = length("\n\n")
    for i, passage in enumerate(passages[: budget.max_passages], start=1):
        block = format_passage(i, passage, style)
        cost = length(block) + (separator_cost if blocks else 0)
        if budget.max_units is None or used + cost <= budget.max_units:
            blocks.append(block)
            used += cost
            continue
        room = budget.max_units - used - (separator_cost if blocks else 0)
        header_cost = length(block.split("\n", 1)[0] + "\n")
        if room > header_cost:
            blocks.append(_truncate_to(block, room, length))
        break
    return "\n\n".join(blocks)


def format_choices(choices: Sequence[str]) -> str:
    if len(choices) > len(LETTERS):
        raise ValueError(f"{len(choices)} choices: at most {len(LETTERS)} can be lettered")
    return "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))


def build_prompt(
    item: BenchmarkItem,
    passages: Sequence[Passage] = (),
    budget: ContextBudget = ContextBudget(),
    length: Callable[[str], int] = len,
    template: PromptTemplate | None = None,
) -> list[ChatMessage]:
    """System + user messages for one question: retrieved context (if any), question, choices, instruction."""
    template = template or get_template(item.benchmark)
    parts: list[str] = []
    context = format_context(passages, budget, length, template.passage_style) if passages else ""
    if context:
        parts.append(template.context_intro + context)
    question = f"Question: {item.question.strip()}"
    if item.choices:
        question += "\n\n" + format_choices(item.choices)
    parts.append(question)
    parts.append(template.instruction)
    return [ChatMessage("system", template.system), ChatMessage("user", "\n\n".join(parts))]
