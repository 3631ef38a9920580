"""HTML main-text extractors: trafilatura (default, precise) and resiliparse (fast; DCLM's choice)."""

from __future__ import annotations

from typing import Any

from extract.extractors.base import Extractor, document_text, register_extractor
from extract.records import RawDocument

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@register_extractor
class TrafilaturaExtractor(Extractor):
    """``trafilatura.bare_extraction`` with metadata for the title; its text equals ``trafilatura.extract``'s."""

    name = "trafilatura"
    content_types = HTML_TYPES
    library = "trafilatura"
    defaults: dict[str, Any] = {
        "favor_precision": False,
        "favor_recall": False,
        "include_comments": False,  # reader comments are noise in a retrieval datastore
        "include_tables": True,
        "include_links": False,
        "include_images": False,
        "include_formatting": False,
        "fast": False,
        "target_language": None,
        "deduplicate": False,
        "prune_xpath": None,
    }

    def extract(self, raw: RawDocument) -> tuple[str, str]:
        import trafilatura

        document = trafilatura.bare_extraction(
            document_text(raw), url=raw.url or None, with_metadata=True, **self.options
        )
        if document is None:
            return raw.title, ""
        return (document.title or raw.title), (document.text or "")


@register_extractor
class ResiliparseExtractor(Extractor):
    """``resiliparse.extract.html2text.extract_plain_text`` on a parsed tree (parsed once, also for the title)."""

    name = "resiliparse"
    content_types = HTML_TYPES
    library = "resiliparse"
    defaults: dict[str, Any] = {
        "main_content": True,
        "preserve_formatting": True,
        "list_bullets": True,
        "alt_texts": True,
        "links": False,
        "form_fields": False,
        "noscript": False,
        "comments": True,
    }

    def extract(self, raw: RawDocument) -> tuple[str, str]:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        tree = HTMLTree.parse(document_text(raw))
        title = (tree.title or "").strip() or raw.title
        return title, extract_plain_text(tree, **self.options)
