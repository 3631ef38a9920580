"""Multiple choice: the extracted letter against the gold letter."""

from __future__ import annotations

from collections.abc import Sequence

from eval.graders.base import CORRECT, INCORRECT, UNPARSED, Grade, grade_each, register_grader


@register_grader("choice")
class ChoiceGrader:
    name: str

    def grade_one(self, predicted: str | None, gold: str) -> Grade:
        if not predicted:
            return Grade(UNPARSED, "no answer letter")
        if predicted.strip().upper() == gold.strip().upper():
            return Grade(CORRECT)
        return Grade(INCORRECT, f"{predicted} != {gold}")

    def grade(
        self, predictions: Sequence[str | None], golds: Sequence[str], questions: Sequence[str] | None = None
    ) -> list[Grade]:
        return grade_each(self.grade_one, predictions, golds, questions)
