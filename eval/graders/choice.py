"""Multiple choice: the extracted letter against the gold letter."""

from __future__ import annotations

from collections.abc import Sequence

from eval.graders.base import CORRECT, INCORRECT, UNPARSED, Grade, check_lengths, register_grader


@register_grader("choice")
class ChoiceGrader:
    name: str

    def grade(
        self, predictions: Sequence[str | None], golds: Sequence[str], questions: Sequence[str] | None = None
    ) -> list[Grade]:
        check_lengths(predictions, golds, questions)
        grades = []
        for predicted, gold in zip(predictions, golds, strict=True):
            if not predicted:
                grades.append(Grade(UNPARSED, "no answer letter"))
            elif predicted.strip().upper() == gold.strip().upper():
                grades.append(Grade(CORRECT))
            else:
                grades.append(Grade(INCORRECT, f"{predicted} != {gold}"))
        return grades
