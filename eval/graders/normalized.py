"""Offline string grading with SQuAD-style normalization: exact match, or gold contained in the prediction."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Literal

from eval.graders.base import CORRECT, INCORRECT, UNPARSED, Grade, grade_each, register_grader

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lowercase, drop punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


@register_grader("normalized")
class NormalizedStringGrader:
    name: str

    def __init__(self, mode: Literal["exact", "contains"] = "exact") -> None:
        if mode not in ("exact", "contains"):
            raise ValueError(f"normalized grader: mode must be 'exact' or 'contains', got {mode!r}")
        self.mode = mode

    def matches(self, predicted: str, gold: str) -> bool:
        pred, ref = normalize_answer(predicted), normalize_answer(gold)
        if self.mode == "exact":
            return pred == ref
        # Whole-word containment, so gold "1" does not match "1984".
        return bool(ref) and re.search(rf"(?:^| ){re.escape(ref)}(?: |$)", pred) is not None

    def grade_one(self, predicted: str | None, gold: str) -> Grade:
        if not predicted or not normalize_answer(predicted):
            return Grade(UNPARSED, "empty answer")
        if self.matches(predicted, gold):
            return Grade(CORRECT, self.mode)
        return Grade(INCORRECT, f"{self.mode} match failed")

    def grade(
        self, predictions: Sequence[str | None], golds: Sequence[str], questions: Sequence[str] | None = None
    ) -> list[Grade]:
        return grade_each(self.grade_one, predictions, golds, questions)
