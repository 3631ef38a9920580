"""One registry type for everything a config names: source types, HTML extractors, answer extractors, readers,
graders, benchmarks, prompts, test-time strategies, curve forms, theory experiments.

lm-evaluation-harness style: a decorator fills it, a second entry under one name is an error (never a silent
overwrite), and an unknown name is an error that lists the registered ones. A ``Registry`` is a read-only mapping, so
``name in REG``, ``REG[name]``, ``sorted(REG)`` and ``REG.items()`` work as on a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from catalog.errors import ConfigError

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Entries of one ``kind`` by name. ``lookup`` raises ``error`` (a ConfigError by default) for unknown names."""

    def __init__(self, kind: str, error: type[Exception] = ConfigError) -> None:
        self.kind = kind
        self._error = error
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({self._entries[name]!r}, {entry!r})")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` adds the decorated object under ``name`` and returns it."""

        def decorate(entry: T) -> T:
            return self.add(name, entry)

        return decorate

    def lookup(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise self._error(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
