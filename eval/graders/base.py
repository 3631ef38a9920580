"""The grader interface, grade records and the registry of graders by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from catalog.registry import Registry

CORRECT = "correct"
INCORRECT = "incorrect"
UNPARSED = "unparsed"  # no answer could be read from the response (or parsed by the math parser)
TIMEOUT = "timeout"  # the math worker ran past its hard timeout and was killed
NOT_ATTEMPTED = "not_attempted"  # SimpleQA: the response neither gives nor contradicts the gold answer
OUTCOMES = (CORRECT, INCORRECT, UNPARSED, TIMEOUT, NOT_ATTEMPTED)


@dataclass(frozen=True, slots=True)
class Grade:
    outcome: str  # one of OUTCOMES
    detail: str = ""  # why (the matched rule, the parser's failure, the grader model's reply)

    @property
    def correct(self) -> bool:
        return self.outcome == CORRECT


class Grader(Protocol):
    name: str

    def grade(
        self, predictions: Sequence[str | None], golds: Sequence[str], questions: Sequence[str] | None = None
    ) -> list[Grade]:
        """Grade extracted answers (None: nothing extracted) against gold answers, one Grade per prediction."""
        ...


GRADERS: Registry[type] = Registry("grader")


def register_grader(name: str) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        cls.name = name
        return GRADERS.add(name, cls)

    return decorate


def make_grader(name: str, **kwargs: Any) -> Grader:
    """Build a registered grader: ``choice``, ``normalized``, ``math`` or ``simpleqa`` (needs ``reader=``)."""
    return GRADERS.lookup(name)(**kwargs)


def check_lengths(predictions: Sequence[Any], golds: Sequence[Any], questions: Sequence[Any] | None) -> None:
    if len(predictions) != len(golds) or (questions is not None and len(questions) != len(golds)):
        raise ValueError(
            f"grade: {len(predictions)} predictions, {len(golds)} golds"
            + (f", {len(questions)} questions" if questions is not None else "")
            + ": lengths must match"
        )


def grade_each(
    grade_one: Callable[[str | None, str], Grade],
    predictions: Sequence[str | None],
    golds: Sequence[str],
    questions: Sequence[str] | None = None,
) -> list[Grade]:
    """``Grader.grade`` for graders that judge each (prediction, gold) pair on its own."""
    check_lengths(predictions, golds, questions)
    return [grade_one(predicted, gold) for predicted, gold in zip(predictions, golds, strict=True)]
