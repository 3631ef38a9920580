"""Prompt templates, context formatting and answer extraction."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from catalog.errors import ConfigError
from eval.answers import extract_answer, extract_boxed_answer, extract_choice_letter, extract_short_answer, last_boxed
from eval.benchmarks.types import BenchmarkItem
from eval.prompts import PROMPTS, ContextBudget, build_prompt, format_context, get_template, template_hash


@dataclass(frozen=True)
class Retrieved:
    title: str
    url: str
    source: str
    text: str


PASSAGES = [
    Retrieved("Paris", "https://en.wikipedia.org/wiki/Paris", "wikipedia", "Paris is the capital of France."),
    Retrieved("Lyon", "", "dclm", "Lyon is a city in France. " * 20),
    Retrieved("Nice", "https://nice.fr", "", "Nice is on the Riviera."),
]


def test_multiple_choice_prompt_lists_choices_and_asks_for_answer_line():
    item = BenchmarkItem("mmlu", "q1", "Capital of France?", "B", ("Lyon", "Paris", "Nice", "Lille"))
    system, user = build_prompt(item)
    assert (system.role, user.role) == ("system", "user")
    assert "A. Lyon\nB. Paris\nC. Nice\nD. Lille" in user.content
    assert "Answer: X" in user.content
    assert "retrieved" not in user.content  # no passages, no context block
    with pytest.raises(ValueError, match="11 choices"):
        build_prompt(BenchmarkItem("mmlu", "q9", "?", "A", tuple("abcdefghijk")))


def test_context_comes_before_question_with_titles_and_sources():
    item = BenchmarkItem("simpleqa", "q2", "What is the capital of France?", "Paris")
    _, user = build_prompt(item, PASSAGES, ContextBudget(max_passages=1, max_units=None))
    content = user.content
    assert "[1] Paris (wikipedia, https://en.wikipedia.org/wiki/Paris)\nParis is the capital of France." in content
    assert "[2]" not in content
    assert content.index("[1] Paris") < content.index("Question: What is the capital")


def test_context_budget_cuts_the_overflowing_passage_and_drops_the_rest():
    context = format_context(PASSAGES, ContextBudget(max_passages=3, max_units=200))
    assert len(context) <= 200
    assert context.startswith("[1] Paris")
    assert "[2] Lyon (dclm)\nLyon is a city" in context
    assert "[3]" not in context
    assert not context.endswith(" ")  # cut at a word boundary


def test_context_budget_in_tokens_uses_the_given_counter():
    def words(text: str) -> int:
        return len(text.split())

    context = format_context(PASSAGES, ContextBudget(max_passages=3, max_units=30), length=words)
    assert words(context) <= 30
    assert "[2] Lyon" in context


def test_templates_registered_for_every_benchmark_and_hash_changes_with_content():
    assert {"mmlu", "gpqa", "math500", "simpleqa"} <= set(PROMPTS)
    assert get_template("math500").answer_format == "boxed"
    assert template_hash("mmlu") == template_hash("mmlu")
    assert template_hash("mmlu") != template_hash("math500")
    with pytest.raises(ConfigError, match="nope"):
        get_template("nope")


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("Reasoning...\nAnswer: B", "B"),
        ("answer: (c)", "C"),
        ("**Answer:** D", "D"),
        ("**Answer: A**", "A"),
        ("ANSWER: [b]", "B"),
        ("First I thought Answer: A. On reflection, Answer: C.", "C"),  # the last one wins
        ("Answer: a bit unclear; Answer: (D)", "D"),  # a lowercase word is not a choice
        ("Answer: Because it is", None),
        ("I think it's B", None),
    ],
)
def test_choice_extraction(response, letter):
    assert extract_choice_letter(response) == letter
    assert extract_answer("multiple_choice", response) == letter


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        (r"So $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\boxed{1} wait, actually \boxed{\sqrt{\frac{3}{4}}}", r"\sqrt{\frac{3}{4}}"),
        (r"\fbox{42}", "42"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed 7 is it", "7"),
        (r"The final answer is $x = 3$. Done", "x = 3"),
        ("no answer here", None),
        (r"\boxed{" + "{" * 5000, None),  # never closes: truncated output is unparsed, and fast
        (r"\boxed{12} then truncated \boxed{1", "12"),  # an unclosed last box falls back to the previous one
    ],
)
def test_boxed_extraction(response, answer):
    assert extract_boxed_answer(response) == answer


def test_boxed_nested_braces_deep():
    inner = "{" * 300 + "x" + "}" * 300
    assert last_boxed(r"\boxed{" + inner + "}") == inner


def test_short_answer_strips_prefix():
    assert extract_short_answer("Answer: Marie Curie") == "Marie Curie"
    assert extract_short_answer("  ") is None
    with pytest.raises(KeyError, match="unknown answer format"):
        extract_answer("essay", "x")
