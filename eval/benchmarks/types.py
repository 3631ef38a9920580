"""The one record every benchmark loader yields."""

from __future__ import annotations

from dataclasses import dataclass, field

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True, slots=True)
class BenchmarkItem:
    """One benchmark question.

    ``answer`` is the gold letter for multiple choice (``choices`` non-empty, already in presentation order:
    GPQA's are shuffled by a seed derived from ``item_id``), the reference answer string otherwise (MATH-500's
    final answer, SimpleQA's short answer, NQ-open's first accepted answer). ``category`` is the subject (MMLU subject, MATH-500 subject, GPQA
    domain, SimpleQA topic); ``metadata`` keeps the rest (MMLU supercategory, MATH level, SimpleQA urls, ...).
    """

    benchmark: str
    item_id: str  # stable across runs and machines: the benchmark's own id, or a content hash of the question
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    category: str = ""
    aliases: tuple[str, ...] = ()  # other accepted answers (NQ-open lists several; graders accept any)
    metadata: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.choices)

    @property
    def accepted_answers(self) -> tuple[str, ...]:
        return (self.answer, *self.aliases)

    @property
    def answer_index(self) -> int:
        return LETTERS.index(self.answer)
