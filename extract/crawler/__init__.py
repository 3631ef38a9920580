"""A polite, SSRF-safe crawler: async httpx, robots.txt, per-host politeness, limits, WARC output.

Public API: ``CrawlConfig``, ``Crawler(config, warc_dir, previous).run()``, ``crawl(...)`` (blocking),
``crawl_into(config, warc_dir)`` (incremental, keeps ``fetch-records.parquet``), ``crawl_source(source)`` (a variant's
crawl source), ``config_for_source``, ``current_pages``, ``CrawlResult``, ``FetchRecord``. See docs/crawler.md.
"""

from extract.crawler.config import CrawlConfig
from extract.crawler.crawler import Crawler, crawl
from extract.crawler.records import CrawlResult, FetchRecord, FetchRefused
from extract.crawler.safety import AddressGuard, NonPublicAddress, non_public_kind
from extract.crawler.store import (
    FETCH_RECORDS_FILE,
    config_for_source,
    crawl_into,
    crawl_source,
    current_pages,
    load_fetch_records,
    save_fetch_records,
)

__all__ = [
    "FETCH_RECORDS_FILE",
    "AddressGuard",
    "CrawlConfig",
    "CrawlResult",
    "Crawler",
    "FetchRecord",
    "FetchRefused",
    "NonPublicAddress",
    "config_for_source",
    "crawl",
    "crawl_into",
    "crawl_source",
    "current_pages",
    "load_fetch_records",
    "non_public_kind",
    "save_fetch_records",
]
