"""Links of an HTML page (lxml), for depth-limited discovery."""

from __future__ import annotations

import lxml.etree
import lxml.html

from extract.crawler.urls import normalize_url


def extract_links(html: bytes, base_url: str) -> list[str]:
    """Normalized, de-duplicated http(s) links of ``<a href>`` in document order.

    ``<base href>`` is honoured; ``rel="nofollow"`` links and pages with ``<meta name="robots" content="nofollow">``
    give nothing. A page lxml cannot parse gives no links rather than an error.
    """
    try:
        doc = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    for meta in doc.xpath("//meta[@name]"):
        if meta.get("name", "").lower() == "robots" and "nofollow" in meta.get("content", "").lower():
            return []
    base = next(iter(doc.xpath("//base/@href")), None)
    if base:
        base_url = normalize_url(str(base), base_url) or base_url
    links: dict[str, None] = {}
    for anchor in doc.xpath("//a[@href]"):
        if "nofollow" in anchor.get("rel", "").lower().split():
            continue
        url = normalize_url(anchor.get("href", ""), base_url)
        if url:
            links[url] = None
    return list(links)
