"""Fuzzing every answer extractor and the grader-side text handling (issue 14): any text, including long runs of
the tokens the patterns look for, gives an answer (str) or None, quickly. The bound is loose (a loaded CI machine);
the super-linear versions these guard against need minutes on such inputs."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval.answers import ANSWER_EXTRACTORS, extract_answer
from eval.graders.math_equivalence import normalize_math_answer, precheck
from eval.graders.simpleqa import parse_grade_letter

BOUND_S = 1.0
EXPLORE = int(os.environ.get("REREAD_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXPLORE or 60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not EXPLORE,
    database=None,
)
# What the patterns react to, so that random text is mostly near-misses of real answers.
TOKENS = ["Answer", "answer", "ANSWER", ":", "-", " ", "  ", "\n", "\t", "*", "**", "(", ")", "[", "]", "A", "b", "J",
          "\\boxed", "\\fbox", "{", "}", "\\{", "\\}", "$", ".", ". ", "final answer is", "Final Answer:", "\\frac",
          "12", "-3", "x=", "\\text{cm}", "^\\circ", "%", ",", "é", "\u00a0", "\u2028"]  # fmt: skip


@st.composite
def model_outputs(draw) -> str:
    """Token soup with long runs: a token repeated hundreds or thousands of times is what degenerate outputs do."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        token = draw(st.sampled_from(TOKENS) | st.text(max_size=8))
        parts.append(token * draw(st.sampled_from([1, 1, 2, 3, 50, 400, 3000])))
    return "".join(parts)[:100_000]


def _within_bound(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - start
    assert elapsed < BOUND_S, f"{fn.__name__} took {elapsed:.2f} s on {len(args[0])} chars"
    return result


def test_every_extractor_is_fuzzed():
    assert set(ANSWER_EXTRACTORS) == {"multiple_choice", "boxed", "short", "phrase"}


@pytest.mark.timeout(300 + EXPLORE)
@pytest.mark.parametrize("answer_format", sorted(ANSWER_EXTRACTORS))
@FUZZ
@given(text=model_outputs() | st.text(max_size=2000))
def test_extractors_answer_or_none_quickly(answer_format, text):
    answer = _within_bound(extract_answer, answer_format, text)
    if answer is None:
        return
    assert isinstance(answer, str) and answer.strip()
    if answer_format == "multiple_choice":
        assert len(answer) == 1 and answer in "ABCDEFGHIJ" and answer in text.upper()
    else:
        assert answer in text  # a piece of the output, never something made up


@pytest.mark.timeout(300 + EXPLORE)
@FUZZ
@given(text=model_outputs() | st.text(max_size=2000), gold=st.sampled_from(["42", "\\frac{1}{2}", "x^2", "3.5"]))
def test_math_precheck_and_grade_letter_quickly(text, gold):
    _within_bound(normalize_math_answer, text)
    verdict = _within_bound(precheck, text[:2000], gold)  # the grader's max_chars cut
    assert verdict is None or verdict.outcome in ("correct", "incorrect")
    assert _within_bound(parse_grade_letter, text).outcome in ("correct", "incorrect", "not_attempted", "unparsed")
