"""``refresh``: bring a variant's datastore up to date with its sources.

Dump sources (WARC, JSONL, Parquet, MediaWiki, files) are fingerprinted by content hash, so only sources whose bytes
changed are re-extracted, and only stages downstream of a changed artifact re-run. Crawl sources are re-fetched first
by the crawler with conditional requests (see docs/crawler.md) and then follow the same path.
"""

from __future__ import annotations

from prefect import flow

from catalog.variant import load_variant
from flows.build import build_datastore


@flow(name="refresh", log_prints=True)
def refresh(variant_path: str, data_dir: str) -> dict:
    variant = load_variant(variant_path)
    crawled = []
    for source in variant.sources:
        if source.type == "crawl" and source.seeds:
            from extract.crawler import crawl_source

            crawled.append(crawl_source(source))
    summary = build_datastore(variant_path, data_dir)
    return {"variant": variant.name, "crawled": crawled, "build": summary}
