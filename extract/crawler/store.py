"""A crawl folder: WARC files plus ``fetch-records.parquet`` (the latest record of every URL), so a crawl can be
re-run incrementally from the folder alone; and the entry point for a variant's ``crawl`` source."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.errors import ArtifactError
from catalog.variant import CrawlSource
from extract.crawler.config import CrawlConfig
from extract.crawler.crawler import crawl
from extract.crawler.records import CrawlResult, FetchRecord

FETCH_RECORDS_FILE = "fetch-records.parquet"

FETCH_RECORD_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("final_url", pa.string()),
        ("outcome", pa.string()),
        ("depth", pa.int64()),
        ("fetched_at", pa.string()),
        ("status", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("change", pa.string()),
        ("content_hash", pa.string()),
        ("content_type", pa.string()),
        ("bytes", pa.int64()),
        ("etag", pa.string()),
        ("last_modified", pa.string()),
        ("redirects", pa.int64()),
        ("warc_file", pa.string()),
    ]
)


def load_fetch_records(warc_dir: str | Path) -> dict[str, FetchRecord]:
    """The records of the folder's last crawl by URL; empty when it was never crawled."""
    path = Path(warc_dir) / FETCH_RECORDS_FILE
    if not path.exists():
        return {}
    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArtifactError(f"{path}: unreadable fetch records ({exc}); delete it to crawl from scratch") from None
    return {row["url"]: FetchRecord.from_row(row) for row in rows}


def save_fetch_records(warc_dir: str | Path, records: list[FetchRecord]) -> Path:
    """Write the records whole under a temporary name, then rename: a crash keeps the previous file intact."""
    path = Path(warc_dir) / FETCH_RECORDS_FILE
    partial = path.with_suffix(".parquet.partial")
    table = pa.Table.from_pylist([r.as_row() for r in records], schema=FETCH_RECORD_SCHEMA)
    pq.write_table(table, partial)
    os.replace(partial, path)
    return path


def crawl_into(config: CrawlConfig, warc_dir: str | Path, *, incremental: bool = True) -> CrawlResult:
    """Crawl into ``warc_dir``: with ``incremental``, revisit the folder's last crawl with conditional requests.

    The latest record of every URL is kept: this crawl's, plus earlier tombstones (``gone``) it did not revisit.
    """
    previous = load_fetch_records(warc_dir) if incremental else {}
    result = crawl(config, warc_dir, previous)
    visited = {r.url for r in result.records}
    tombstones = [r for url, r in previous.items() if r.outcome == "gone" and url not in visited]
    save_fetch_records(warc_dir, [*result.records, *tombstones])
    return result


def config_for_source(source: CrawlSource, **overrides: Any) -> CrawlConfig:
    """The crawl settings a variant's ``crawl`` source names, with ``overrides`` (any CrawlConfig field) on top."""
    settings: dict[str, Any] = {
        "seeds": source.seeds,
        "allowed_domains": source.allowed_domains,
        "max_pages": source.max_pages,
        "max_depth": source.max_depth,
    }
    return CrawlConfig(**settings | overrides)


def crawl_source(source: CrawlSource, **overrides: Any) -> dict:
    """Crawl (or re-crawl, incrementally) a variant's ``crawl`` source into its path; returns a JSON-able summary."""
    result = crawl_into(config_for_source(source, **overrides), source.path)
    return {"source": source.name, "path": str(source.path), **result.summary()}
