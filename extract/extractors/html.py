"""HTML main-text extractors: trafilatura (default, precise) and resiliparse (fast; DCLM's choice)."""

from __future__ import annotations

from typing import Any

import trafilatura
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree
from trafilatura.metadata import extract_title
from trafilatura.utils import load_html

from extract.extractors.base import Extractor, document_text, register_extractor
from extract.records import RawDocument

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


@register_extractor
class TrafilaturaExtractor(Extractor):
    """``trafilatura.extract`` (plain text) plus the page title; full metadata extraction would cost ~40% more time."""

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
        tree = load_html(document_text(raw))  # parsed once: the title is read before extraction prunes the tree
        if tree is None:
            return raw.title, ""
        title = extract_title(tree) or raw.title
        return title, trafilatura.extract(tree, url=raw.url or None, **self.options) or ""


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
        tree = HTMLTree.parse(document_text(raw))
        title = (tree.title or "").strip() or raw.title
        return title, extract_plain_text(tree, **self.options)
