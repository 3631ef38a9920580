"""Seeds from XML sitemaps (urlset and sitemapindex, optionally gzip), fetched through the guarded fetcher."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import lxml.etree

from catalog.records import StageStats
from extract.crawler.fetcher import Fetcher
from extract.crawler.records import FetchRefused
from extract.crawler.urls import normalize_url

MAX_SITEMAP_NESTING = 3
GZIP_MAGIC = b"\x1f\x8b"
# No entities, no network, no huge trees: a sitemap is untrusted XML.
_PARSER = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, max_bytes + 1)
    if len(out) > max_bytes:
        raise FetchRefused("too_large", f"gzip sitemap inflates past max_bytes {max_bytes}")
    return out


def parse_sitemap(data: bytes, max_bytes: int) -> tuple[list[str], list[str]]:
    """(page URLs, nested sitemap URLs) of one sitemap document; unparseable XML gives nothing."""
    if data.startswith(GZIP_MAGIC):
        data = _gunzip(data, max_bytes)
    try:
        root = lxml.etree.fromstring(data, _PARSER)
    except lxml.etree.XMLSyntaxError:
        return [], []
    if root is None:
        return [], []
    locs = [(el.getparent(), (el.text or "").strip()) for el in root.iter("{*}loc")]
    pages = [url for parent, url in locs if parent is not None and lxml.etree.QName(parent).localname == "url"]
    nested = [url for parent, url in locs if parent is not None and lxml.etree.QName(parent).localname == "sitemap"]
    return pages, nested


async def sitemap_urls(
    fetcher: Fetcher,
    sitemaps: tuple[str, ...],
    limit: int,
    max_bytes: int,
    stats: StageStats,
    in_scope: Callable[[str], bool],
) -> list[str]:
    """In-scope page URLs from sitemaps (following sitemap indexes up to MAX_SITEMAP_NESTING levels), at most ``limit``.

    A sitemap that cannot be fetched or parsed contributes nothing (counted as ``sitemap_unreadable`` and by reason,
    ``sitemap_unreadable_<reason>``); the crawl goes on with the other seeds. Out-of-scope pages are only counted
    (``sitemap_urls_out_of_scope``), like out-of-scope links: a site-wide sitemap must not fill ``max_pages`` with
    pages the crawl would refuse.
    """
    found: dict[str, None] = {}
    queue = [(url, 0) for url in sitemaps]
    seen: set[str] = set()
    while queue and len(found) < limit:
        url, level = queue.pop(0)
        if url in seen or level > MAX_SITEMAP_NESTING:
            continue
        seen.add(url)
        try:
            exchange = await fetcher.get(url, archive=False)
            if exchange.status != 200:
                raise FetchRefused("http_error", f"HTTP {exchange.status}")
            pages, nested = parse_sitemap(exchange.body, max_bytes)
        except FetchRefused as exc:
            stats.add("sitemap_unreadable")
            stats.add(f"sitemap_unreadable_{exc.reason}")  # as pages count skipped_<reason>
            continue
        stats.add("sitemaps_read")
        for page in pages:
            normalized = normalize_url(page)
            if normalized and in_scope(normalized):
                found[normalized] = None
            elif normalized:
                stats.add("sitemap_urls_out_of_scope")
        queue.extend((n, level + 1) for n in map(normalize_url, nested) if n)
    return list(found)[:limit]
