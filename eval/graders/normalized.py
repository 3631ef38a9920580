"""Offline short-answer grading with SQuAD-style normalization (the NQ-open / TriviaQA convention).

A prediction is checked against every accepted answer (a gold may be one string or a sequence of aliases):
exact match of the normalized strings, token F1, and "contained" (a normalized gold occurs on word boundaries in the
normalized prediction). ``mode`` picks which one decides ``correct``: ``exact`` (the standard) or ``contains`` (fair
to small models that answer in sentences). With ``contains``, a gold that already occurs in the question is not
credited: an answer that merely repeats the question's words is not evidence of knowing the answer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from eval.graders.base import CORRECT, INCORRECT, UNPARSED, Grade, check_lengths, register_grader

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)

Gold = str | Sequence[str]


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lowercase, drop punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def contains_phrase(text: str, phrase: str) -> bool:
    """Normalized ``phrase`` occurs in normalized ``text`` on word boundaries (gold "1" does not match "1984")."""
    needle = normalize_answer(phrase)
    return bool(needle) and f" {needle} " in f" {normalize_answer(text)} "


def token_f1(predicted: str, gold: str) -> float:
    """SQuAD token F1 between the normalized strings."""
    pred, ref = normalize_answer(predicted).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _aliases(gold: Gold) -> list[str]:
    return [gold] if isinstance(gold, str) else list(gold)


def answer_metrics(predicted: str | None, gold: Gold, question: str | None = None) -> dict[str, float]:
    """``exact_match``, ``f1`` and ``contains`` (0/1 or F1 in [0, 1]), each the best over the accepted answers.
    ``contains`` ignores golds that occur in ``question``."""
    aliases = _aliases(gold)
    if not predicted or not normalize_answer(predicted):
        return {"exact_match": 0.0, "f1": 0.0, "contains": 0.0}
    pred = normalize_answer(predicted)
    fair = [a for a in aliases if not (question and contains_phrase(question, a))]
    return {
        "exact_match": float(any(pred == normalize_answer(a) for a in aliases)),
        "f1": max(token_f1(predicted, a) for a in aliases),
        "contains": float(any(contains_phrase(predicted, a) for a in fair)),
    }


@register_grader("normalized")
class NormalizedStringGrader:
    name: str
    version = "2"  # 2: accepted-answer aliases, token F1, golds that occur in the question not credited
    metric_names = ("exact_match", "f1", "contains")

    def __init__(self, mode: Literal["exact", "contains"] = "exact") -> None:
        if mode not in ("exact", "contains"):
            raise ValueError(f"normalized grader: mode must be 'exact' or 'contains', got {mode!r}")
        self.mode = mode

    def metrics(
        self, predictions: Sequence[str | None], golds: Sequence[Gold], questions: Sequence[str] | None = None
    ) -> list[dict[str, float]]:
        check_lengths(predictions, golds, questions)
        asked = questions if questions is not None else [None] * len(golds)
        return [answer_metrics(p, g, q) for p, g, q in zip(predictions, golds, asked, strict=True)]

    def grade(
        self, predictions: Sequence[str | None], golds: Sequence[Gold], questions: Sequence[str] | None = None
    ) -> list[Grade]:
        key = "exact_match" if self.mode == "exact" else "contains"
        grades = []
        for predicted, values in zip(predictions, self.metrics(predictions, golds, questions), strict=True):
            if not predicted or not normalize_answer(predicted):
                grades.append(Grade(UNPARSED, "empty answer"))
            elif values[key]:
                grades.append(Grade(CORRECT, self.mode))
            else:
                grades.append(Grade(INCORRECT, f"{self.mode} match failed (f1 {values['f1']:.2f})"))
        return grades

    def equivalent(self, a: str, b: str) -> bool:
        """Two answers of one question vote together when their normalized forms are equal."""
        return normalize_answer(a) == normalize_answer(b)
