"""Passthrough for text that is already clean (text datasets, TREC, text/plain WARC payloads)."""

from __future__ import annotations

from extract.extractors.base import Extractor, document_text, register_extractor
from extract.records import RawDocument


@register_extractor
class PlainExtractor(Extractor):
    name = "plain"
    content_types = frozenset({"text/plain"})
    library = "reread"

    def extract(self, raw: RawDocument) -> tuple[str, str]:
        return raw.title, document_text(raw).strip()
