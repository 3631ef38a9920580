"""Graders: multiple choice, normalized strings, MATH equivalence in a killable worker, SimpleQA through a reader."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from catalog.errors import ConfigError
from eval.graders import (
    CORRECT,
    GRADERS,
    INCORRECT,
    NOT_ATTEMPTED,
    TIMEOUT,
    UNPARSED,
    Grade,
    MathGrader,
    SimpleQAGrader,
    make_grader,
    simpleqa_metrics,
)
from eval.graders.math_equivalence import exact_number, normalize_math_answer, precheck
from eval.graders.simpleqa import GRADER_TEMPLATE, parse_grade_letter
from eval.readers.base import ChatMessage, Completion, GenerationParams

TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def math_grader():
    """A short timeout, for the tests of what a timeout stops."""
    with MathGrader(timeout_s=TIMEOUT_S) as grader:
        yield grader


@pytest.fixture(scope="module")
def patient_math_grader():
    """Timeouts far beyond any equivalence case (Math-Verify's own is a quarter of the hard one): on a loaded machine
    the short grader's 1 s parser timeout turned ``x^2+2x+1`` vs ``(x+1)^2`` into a timeout."""
    with MathGrader(timeout_s=60) as grader:
        yield grader


def test_registry_has_all_graders():
    assert {"choice", "normalized", "math", "simpleqa"} <= set(GRADERS)
    with pytest.raises(ConfigError, match="unknown"):
        make_grader("vibes")


def test_choice_grader():
    grades = make_grader("choice").grade(["B", "c", None, "A"], ["B", "C", "A", "D"])
    assert [g.outcome for g in grades] == [CORRECT, CORRECT, UNPARSED, INCORRECT]
    with pytest.raises(ValueError, match="lengths must match"):
        make_grader("choice").grade(["A"], ["A", "B"])


def test_normalized_grader_exact_and_contains():
    exact = make_grader("normalized")
    assert [g.outcome for g in exact.grade(["The Eiffel Tower!", "eiffel", ""], ["eiffel tower"] * 3)] == [
        CORRECT,
        INCORRECT,
        UNPARSED,
    ]
    contains = make_grader("normalized", mode="contains")
    outcomes = [
        g.outcome for g in contains.grade(["It was in 1984.", "in 19845", "Paris, France"], ["1984"] * 2 + ["paris"])
    ]
    assert outcomes == [CORRECT, INCORRECT, CORRECT]


@pytest.mark.parametrize(
    ("predicted", "gold"),
    [
        (r"\frac12", "0.5"),
        (r"\dfrac{1}{2}", r"\frac{1}{2}"),
        ("x=2", "2"),
        (r"5\text{ cm}", "5"),
        ("(1, 2]", "(1,2]"),
        ("1,000", "1000"),
        (r"90^\circ", "90"),
        ("-3/4", r"-\frac{3}{4}"),
    ],
)
def test_math_precheck_handles_common_forms_without_the_worker(predicted, gold):
    assert precheck(predicted, gold) == Grade(CORRECT, precheck(predicted, gold).detail)


def test_math_precheck_numbers_are_read_not_evaluated():
    assert exact_number(normalize_math_answer(r"\frac{6}{8}")) == exact_number("0.75")
    assert exact_number("2**10") is None
    assert precheck("3", "4").outcome == INCORRECT
    assert precheck(r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}") is None  # needs Math-Verify


@pytest.mark.parametrize(
    ("predicted", "gold", "outcome"),
    [
        (r"\frac{\sqrt2}{2}", r"\sqrt{2}/2", CORRECT),
        (r"\frac{1}{\sqrt{2}}", r"\frac{\sqrt{2}}{2}", CORRECT),
        ("[1,2]", "(1,2]", INCORRECT),
        (r"2\pi", r"\pi \cdot 2", CORRECT),
        (r"x^2+2x+1", r"(x+1)^2", CORRECT),
        (r"\frac{1}{3}", "0.3", INCORRECT),
        (None, "1", UNPARSED),
    ],
)
def test_math_equivalence(patient_math_grader, predicted, gold, outcome):
    assert patient_math_grader.grade([predicted], [gold])[0].outcome == outcome


def test_math_equivalent_helper(patient_math_grader):
    assert patient_math_grader.equivalent(r"\frac{2}{4}", "0.5")
    assert not patient_math_grader.equivalent("3", "4")


HOSTILE = [
    "__import__('os').system('touch {marker}')",
    "__import__('os').system('touch {marker}') + 1",
    "10**10**10**10",
    "2^{2^{2^{2^{100}}}}",
    "{" * 5000,
    "{" * 500 + "1" + "}" * 500,
    r"\frac{" * 300 + "1",
    "9" * 1990,
]


def test_hostile_outputs_are_never_executed_and_end_within_the_timeout(math_grader, tmp_path):
    marker = tmp_path / "pwned"
    math_grader.grade(["1"], ["1"])  # worker started outside the timed section
    for hostile in HOSTILE:
        text = hostile.replace("{marker}", str(marker)) if "marker" in hostile else hostile
        start = time.monotonic()
        grade = math_grader.grade([text], ["1"])[0]
        elapsed = time.monotonic() - start
        assert grade.outcome in (INCORRECT, UNPARSED, TIMEOUT), (hostile[:40], grade)
        # a timeout kills the worker; its replacement's start-up is part of the next call, not this one
        assert elapsed < TIMEOUT_S + 1.5, (hostile[:40], elapsed)
        assert not marker.exists()
    # the grader still works after whatever happened to the worker
    assert math_grader.grade([r"\frac{4}{8}"], ["0.5"])[0].outcome == CORRECT
    assert math_grader.grade([r"\sqrt{4}"], ["2"])[0].outcome == CORRECT


@pytest.mark.slow
def test_math_worker_is_killed_on_timeout_and_restarted():
    # Math-Verify's own timeouts set far beyond the hard one, so only the kill can stop this enormous power.
    with MathGrader(timeout_s=1.0, parser_timeout_s=60) as grader:
        assert grader.grade([r"\sqrt{9}"], ["3"])[0].outcome == CORRECT
        start = time.monotonic()
        grade = grader.grade(["9^{9^{9^{9}}}"], ["1"])[0]
        assert time.monotonic() - start < 2.5
        assert grade.outcome == TIMEOUT
        assert grader.restarts == 1
        assert grader.grade([r"\sqrt{16}"], ["4"])[0].outcome == CORRECT


class ScriptedGraderModel:
    """Test double for a large grader LLM: replies with a scripted text per predicted answer."""

    name = "scripted-grader"
    n_params = None

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.prompts: list[Sequence[ChatMessage]] = []

    def generate(self, prompts, params: GenerationParams) -> list[list[Completion]]:
        self.prompts.extend(prompts)
        out = []
        for messages in prompts:
            predicted = messages[-1].content.split("Predicted answer: ")[-1].split("\n")[0]
            out.append([Completion(self.replies[predicted], 10, 1, params.seed, "stop")])
        return out

    def score(self, prompts, continuations):
        raise NotImplementedError


def test_simpleqa_grader_parses_letter_alone_and_computes_metrics():
    model = ScriptedGraderModel(
        {"Paris": "A", "Lyon": "B", "I don't know": "C", "Marseille": "INCORRECT", "Nice": "CORRECT"}
    )
    grader = SimpleQAGrader(model)
    predictions = ["Paris", "Lyon", "I don't know", "Marseille", None, "Nice"]
    grades = grader.grade(predictions, ["Paris"] * 6, ["Capital of France?"] * 6)
    assert [g.outcome for g in grades] == [CORRECT, INCORRECT, NOT_ATTEMPTED, UNPARSED, NOT_ATTEMPTED, UNPARSED]
    assert len(model.prompts) == 5  # the empty prediction never reaches the grader model
    prompt = model.prompts[0][0].content
    assert "Question: Capital of France?\nGold target: Paris\nPredicted answer: Paris" in prompt
    assert prompt.endswith('Just return the letters "A", "B", or "C", with no text around it.')

    metrics = simpleqa_metrics(grades)
    assert metrics["correct"] == pytest.approx(1 / 6)
    assert metrics["incorrect"] == pytest.approx(1 / 6)
    assert metrics["not_attempted"] == pytest.approx(4 / 6)
    assert metrics["correct_given_attempted"] == pytest.approx(0.5)
    assert metrics["f_score"] == pytest.approx(2 * (1 / 6) * 0.5 / (1 / 6 + 0.5))


def test_simpleqa_letter_parser_is_anchored():
    assert parse_grade_letter("CORRECT").outcome == UNPARSED  # unanchored (A|B|C) would read C
    assert parse_grade_letter("NOT_ATTEMPTED").outcome == UNPARSED
    assert parse_grade_letter("B").outcome == INCORRECT
    assert parse_grade_letter("The grade is: A").outcome == CORRECT


def test_simpleqa_template_is_the_reference_one():
    assert GRADER_TEMPLATE.startswith("Your job is to look at a question, a gold target, and a predicted answer")
    assert GRADER_TEMPLATE.count("{question}") == GRADER_TEMPLATE.count("{target}") == 1
    assert "A: CORRECT\nB: INCORRECT\nC: NOT_ATTEMPTED" in GRADER_TEMPLATE
    assert len(GRADER_TEMPLATE) == 5964  # guards against accidental edits of the copied text


@pytest.mark.slow
def test_math_verify_giving_up_is_a_timeout_not_incorrect():
    # Math-Verify's own (SIGALRM) timeout answers False: without telling it apart, a slow comparison on a loaded
    # machine would be graded INCORRECT. The hard timeout is far away, so only Math-Verify's own one can fire.
    with MathGrader(timeout_s=60, parser_timeout_s=1, workers=1) as grader:
        # a comparison sympy needs well over 5 s for on an idle machine (the old sin/cos pair took 0.35 s idle and
        # timed out only under load)
        [grade] = grader.grade([r"(x+y+z+w)^{40}"], [r"(x+y+z+w)^{39}(x+y+z+w+1)"])
        assert (grade.outcome, grade.detail.split(" (")[0]) == (TIMEOUT, "math-verify gave up after 1s")
        assert grader.restarts == 0  # the worker lives on
        assert grader.grade([r"\sqrt{16}"], ["4"])[0].outcome == CORRECT
