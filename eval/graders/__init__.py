"""Graders registered by name: ``choice``, ``normalized``, ``math``, ``simpleqa``. Importing registers them all."""

from eval.graders import choice, math_equivalence, normalized, simpleqa  # noqa: F401  (importing registers)
from eval.graders.base import (
    CORRECT,
    GRADERS,
    INCORRECT,
    NOT_ATTEMPTED,
    OUTCOMES,
    TIMEOUT,
    UNPARSED,
    Grade,
    Grader,
    grade_each,
    make_grader,
    register_grader,
)
from eval.graders.math_equivalence import MathGrader
from eval.graders.simpleqa import SimpleQAGrader, simpleqa_metrics

__all__ = [
    "CORRECT",
    "GRADERS",
    "INCORRECT",
    "NOT_ATTEMPTED",
    "OUTCOMES",
    "TIMEOUT",
    "UNPARSED",
    "Grade",
    "Grader",
    "MathGrader",
    "SimpleQAGrader",
    "grade_each",
    "make_grader",
    "register_grader",
    "simpleqa_metrics",
]
