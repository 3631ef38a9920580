"""Degenerate model outputs (issue 14.2): every answer extraction stays linear in the output's length.

The reproductions took 88 s ("Answer:" + 300 spaces + "!") or never finished (400 newlines; ``\\boxed{`` x 8,000
unclosed). Each case here is 100 KB or more and must give its answer (or None) well inside the bound; the bound is
loose on purpose (a loaded CI machine), since the quadratic and worse versions need minutes to hours at this size.
"""

from __future__ import annotations

import time

import pytest

from eval.answers import ANSWER_EXTRACTORS, extract_answer
from eval.graders.math_equivalence import MathGrader, normalize_math_answer, precheck

BOUND_S = 1.0
SIZE = 100_000


def _pad(unit: str) -> str:
    return unit * (SIZE // len(unit) + 1)


DEGENERATE = {
    "answer_colon_spaces_bang": "Answer:" + " " * 300 + "!",
    "answer_colon_many_spaces_bang": "Answer:" + " " * SIZE + "!",
    "answer_colon_newlines": "Answer:" + "\n" * 400,
    "answer_colon_many_newlines_x": "Answer:" + "\n" * SIZE + "x",
    "answer_colon_stars_spaces": "Answer" + _pad(" *") + ":",
    "answer_lowercase_then_long_tail": "Answer: a" + " " * SIZE + "x",
    "answer_repeated_on_one_line": _pad("Answer: A "),
    "answer_lowercase_repeated": _pad("answer: a ) "),
    "answer_word_repeated": _pad("answer "),
    "boxed_unclosed_8000": "\\boxed{" * 8000,
    "boxed_unclosed_many": _pad("\\boxed{"),
    "boxed_spaces_unclosed": _pad("\\boxed   {"),
    "fbox_then_braces": "\\fbox{" + "{" * SIZE,
    "boxed_no_brace_spaces": _pad("\\boxed "),
    "final_answer_spaces": "The final answer is x" + " " * SIZE + "y",
    "final_answer_repeated": _pad("final answer is "),
    "final_answer_newlines": "final answer is" + "\n" * SIZE,
    "final_answer_dots": "final answer is " + _pad(". "),
    "short_prefix_spaces": "Answer" + " " * SIZE + "!",
    "short_prefix_stars": "**Answer" + _pad(" *") + "x",
    "unit_repeated": _pad("1\\text{ a b }"),
    "braces_only": _pad("{"),
    "closing_braces": _pad("}"),
    "escaped_braces": _pad("\\{"),
}


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


@pytest.mark.parametrize("answer_format", sorted(ANSWER_EXTRACTORS))
@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_every_extractor_is_fast_on_degenerate_output(answer_format, case):
    answer, seconds = _timed(extract_answer, answer_format, DEGENERATE[case])
    assert seconds < BOUND_S, f"{answer_format} on {case}: {seconds:.2f} s"
    assert answer is None or isinstance(answer, str)


@pytest.mark.parametrize(
    ("answer_format", "case", "answer"),
    [
        ("multiple_choice", "answer_colon_spaces_bang", None),
        ("multiple_choice", "answer_colon_newlines", None),
        ("multiple_choice", "answer_lowercase_then_long_tail", None),  # "a" followed by more text is not a choice
        ("multiple_choice", "answer_repeated_on_one_line", "A"),
        ("multiple_choice", "answer_lowercase_repeated", "A"),  # only the last one ends its line
        ("boxed", "boxed_unclosed_8000", None),
        ("boxed", "boxed_unclosed_many", None),
        ("boxed", "final_answer_spaces", "x" + " " * SIZE + "y"),  # one line, no full stop: all of it
        ("boxed", "final_answer_newlines", None),
        ("short", "short_prefix_spaces", "Answer" + " " * SIZE + "!"),  # no colon: not a prefix, kept whole
        ("short", "answer_colon_spaces_bang", "!"),
    ],
)
def test_degenerate_outputs_keep_their_meaning(answer_format, case, answer):
    assert extract_answer(answer_format, DEGENERATE[case]) == answer


def test_answers_after_degenerate_padding_are_still_found():
    assert extract_answer("multiple_choice", "Answer:" + " " * SIZE + "C") == "C"
    assert extract_answer("multiple_choice", "Answer:" + "\n" * SIZE + "(d)") == "D"
    assert extract_answer("multiple_choice", _pad("Answer: A ") + "\nAnswer: B") == "B"
    assert extract_answer("boxed", "\\boxed{" * 8000 + "\\boxed{42}") == "42"
    assert extract_answer("boxed", "\\boxed{7}" + "\\boxed{" * 8000) == "7"  # the last complete box
    assert extract_answer("boxed", "\\boxed" + " " * SIZE + "{3}") == "3"
    assert extract_answer("boxed", "so the final answer is 12. " + _pad("Final answer is ")) is None


@pytest.mark.parametrize("case", sorted(DEGENERATE))
def test_math_grader_precheck_is_fast_on_degenerate_text(case):
    """The grader side: what the math pre-check and the majority vote see is bounded or linear too."""
    text = DEGENERATE[case]
    _, seconds = _timed(normalize_math_answer, text)
    assert seconds < BOUND_S, f"normalize on {case}: {seconds:.2f} s"
    _, seconds = _timed(precheck, text[:2000], "42")
    assert seconds < BOUND_S, f"precheck on {case}: {seconds:.2f} s"
    grader = MathGrader()
    if len(text) > grader.max_chars:  # too long for either side of a majority vote: no worker starts
        verdict, seconds = _timed(grader.equivalent, "42", text)
        assert (verdict, seconds < BOUND_S) == (False, True)
        assert "workers_started" not in grader._pool.stats.counters
