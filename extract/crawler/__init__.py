"""A polite, SSRF-safe crawler: async httpx, robots.txt, per-host politeness, limits, WARC output.

Public API: ``CrawlConfig``, ``Crawler(config, warc_dir, previous).run()``, ``crawl(...)`` (blocking),
``CrawlResult``, ``FetchRecord``. See docs/crawler.md.
"""

from extract.crawler.config import CrawlConfig
from extract.crawler.crawler import Crawler, crawl
from extract.crawler.records import CrawlResult, FetchRecord, FetchRefused
from extract.crawler.safety import AddressGuard, NonPublicAddress, non_public_kind

__all__ = [
    "AddressGuard",
    "CrawlConfig",
    "CrawlResult",
    "Crawler",
    "FetchRecord",
    "FetchRefused",
    "NonPublicAddress",
    "crawl",
    "non_public_kind",
]
