"""Small record types shared by every stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

# How a unit of work reports progress to whoever runs it (a Prefect progress artifact, a log): called with the items
# done so far and their total, None when it is not known ahead (an extraction reading a source of unknown length).
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class Rejection:
    """One input that a stage could not use, with a short machine-readable reason and a human detail.

    ``reason`` is a snake_case code (``truncated_record``, ``timeout``, ``empty_text``, ``too_large``, ...)
    so rejections can be counted by reason; ``detail`` says what exactly was wrong.
    """

    stage: str
    source: str
    input_ref: str  # file path, path#offset for a WARC record, URL, or line number: enough to find the input again
    reason: str
    detail: str = ""

    def as_row(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class StageStats:
    """Counters a step keeps while it runs (datatrove style): documents in/out, rejections by reason, extras."""

    stage: str
    counters: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def merge(self, other: StageStats) -> StageStats:
        for k, v in other.counters.items():
            self.add(k, v)
        return self

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counters.items()))
