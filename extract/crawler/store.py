"""A crawl folder: WARC files plus ``fetch-records.parquet`` (the latest record of every URL), so a crawl can be
re-run incrementally from the folder alone; and the entry point for a variant's ``crawl`` source."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from catalog.errors import ArtifactError, ConfigError
from catalog.parquet import write_parquet_atomic
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


def current_pages(records: Iterable[FetchRecord]) -> dict[str, FetchRecord]:
    """The pages a crawl folder holds now: its live records by ``final_url`` (the WARC-Target-URI their response is
    stored under). When two URLs led to one page (a redirect and a link), the latest fetch wins."""
    pages: dict[str, FetchRecord] = {}
    for record in sorted((r for r in records if r.is_live), key=lambda r: r.fetched_at):
        pages[record.final_url] = record
    return pages


def save_fetch_records(warc_dir: str | Path, records: list[FetchRecord]) -> Path:
    """Write the records atomically: a crash keeps the previous file intact."""
    path = Path(warc_dir) / FETCH_RECORDS_FILE
    write_parquet_atomic(pa.Table.from_pylist([r.as_row() for r in records], schema=FETCH_RECORD_SCHEMA), path)
    return path


def crawl_into(config: CrawlConfig, warc_dir: str | Path, *, incremental: bool = True) -> CrawlResult:
    """Crawl into ``warc_dir``: with ``incremental``, revisit the folder's last crawl with conditional requests.

    The latest record of every URL is kept: this crawl's, except the earlier records it carries over
    (``result.carried``): tombstones (``gone``) it did not revisit, and the last good record of a live page it could
    not fetch this time for a transient reason. ``result.latest_records()`` is what ``fetch-records.parquet`` then
    holds.
    """
    previous = load_fetch_records(warc_dir) if incremental else {}
    result = crawl(config, warc_dir, previous)
    visited = {r.url for r in result.records}
    tombstones = [r for url, r in previous.items() if r.outcome == "gone" and url not in visited]
    still_live = [
        previous[r.url]
        for r in result.records
        if r.failed_transiently and r.url in previous and previous[r.url].is_live
    ]
    result.carried = tombstones + still_live
    save_fetch_records(warc_dir, result.latest_records())
    return result


def _setting_label(field: str, source: CrawlSource, overrides: dict[str, Any]) -> str:
    """Where a CrawlConfig field's value came from, as the user would find it."""
    if field in overrides:
        return f"{field} (override)"
    return f"options.{field}" if field in source.options else field


def config_for_source(source: CrawlSource, **overrides: Any) -> CrawlConfig:
    """The crawl settings of a variant's ``crawl`` source (its crawl fields, then its ``options``), with
    ``overrides`` (any CrawlConfig field) on top. Raises ConfigError naming the source and each bad field."""
    own = {  # the source's crawl fields are the ones it keeps out of the extract config (see CrawlSource)
        name: getattr(source, name)
        for name, info in CrawlSource.model_fields.items()
        if info.exclude and name != "options" and getattr(source, name) is not None
    }
    try:
        return CrawlConfig(**own | source.options | overrides)
    except ValidationError as exc:
        lines = [f"crawl source {source.name!r} ({source.path}): invalid crawl settings"]
        for error in exc.errors():
            field, *rest = [str(part) for part in error["loc"]] or ["(root)"]
            loc = ".".join([_setting_label(field, source, overrides), *rest])
            lines.append(f"  field '{loc}': {error['msg']}")
        raise ConfigError("\n".join(lines)) from None


def crawl_source(source: CrawlSource, **overrides: Any) -> CrawlResult:
    """Crawl (or re-crawl, incrementally) a variant's ``crawl`` source into its path.

    Register ``result.latest_records()`` in the catalog (``Catalog.register_fetch_records``) and report
    ``result.summary()``."""
    return crawl_into(config_for_source(source, **overrides), source.path)
