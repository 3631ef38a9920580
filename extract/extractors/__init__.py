"""Extractors: RawDocument -> (title, text), registered by name and versioned.

    extractor = get_extractor("trafilatura", favor_precision=True)
    title, text = extractor.extract(raw)

Each content type has a default extractor (``DEFAULT_FOR_CONTENT_TYPE``): plain text and wikitext never go through an
HTML extractor, whatever the variant names.
"""

from __future__ import annotations

from extract.extractors import html, plain, wikipedia  # noqa: F401  (register the extractors)
from extract.extractors.base import EXTRACTORS, Extractor, get_extractor, register_extractor, resolve_extractor_class

DEFAULT_EXTRACTOR = "trafilatura"
DEFAULT_FOR_CONTENT_TYPE: dict[str, str] = {
    "text/html": DEFAULT_EXTRACTOR,
    "application/xhtml+xml": DEFAULT_EXTRACTOR,
    "text/plain": "plain",
    "text/x-wiki": "wikipedia",
}

__all__ = [
    "DEFAULT_EXTRACTOR",
    "DEFAULT_FOR_CONTENT_TYPE",
    "EXTRACTORS",
    "Extractor",
    "get_extractor",
    "register_extractor",
    "resolve_extractor_class",
]
