"""The Extractor base class and the extractor registry.

An extractor turns one RawDocument into ``(title, text)``. It is registered by name, carries a version that names the
library release it wraps (so an upgrade re-keys the extraction artifacts), and accepts only the options it declares.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any, ClassVar

from catalog.errors import ConfigError
from catalog.registry import Registry
from extract.records import RawDocument
from extract.sources.charset import decode_bytes

EXTRACTORS: Registry[type[Extractor]] = Registry("extractor")


def register_extractor(cls: type[Extractor]) -> type[Extractor]:
    """Class decorator: register an Extractor subclass under its ``name``."""
    return EXTRACTORS.add(cls.name, cls)


def library_version(distribution: str) -> str:
    try:
        return dist_version(distribution)
    except PackageNotFoundError:
        return "unknown"


def document_text(raw: RawDocument) -> str:
    """The document as text: str content as is, bytes decoded with its charset (bad bytes become U+FFFD)."""
    if isinstance(raw.content, str):
        return raw.content
    return decode_bytes(raw.content, raw.encoding)


class Extractor:
    """Base class. Subclasses set ``name``, ``content_types``, ``library``, ``defaults`` and implement ``extract``.

    ``adapter_version`` is bumped when Reread's own handling (options, post-processing) changes its output.
    """

    name: ClassVar[str]
    content_types: ClassVar[frozenset[str]]
    library: ClassVar[str]  # the distribution whose release goes into ``version``
    adapter_version: ClassVar[int] = 1
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(f"extractor {self.name!r}: unknown option(s) {', '.join(unknown)}; allowed: {allowed}")
        self.options: dict[str, Any] = {**self.defaults, **options}

    @property
    def version(self) -> str:
        return f"{self.library}-{library_version(self.library)}/{self.adapter_version}"

    def extract(self, raw: RawDocument) -> tuple[str, str]:
        raise NotImplementedError


def resolve_extractor_class(name: str) -> type[Extractor]:
    """A registered name, or an import path ``package.module:ClassName`` (plugins, test doubles in worker processes)."""
    if name in EXTRACTORS:
        return EXTRACTORS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"extractor {name!r}: cannot import ({exc})") from None
        if not (isinstance(cls, type) and issubclass(cls, Extractor)):
            raise ConfigError(f"extractor {name!r}: not an Extractor subclass")
        return cls
    raise ConfigError(f"unknown extractor {name!r}; registered: {', '.join(sorted(EXTRACTORS))}")


def get_extractor(name: str, **options: Any) -> Extractor:
    """An extractor instance by registered name (or ``module:Class`` import path) with its options checked."""
    return resolve_extractor_class(name)(**options)
