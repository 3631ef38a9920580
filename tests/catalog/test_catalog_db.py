"""The DuckDB catalog: schema version, transactional registration, the single-writer lock across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from catalog.db import SCHEMA_VERSION, Catalog, StageOutput
from catalog.errors import CatalogLockedError, CatalogSchemaError, RereadError
from catalog.records import Rejection


def output(key: str, rows: int = 3) -> StageOutput:
    return StageOutput(key, "extract", "1", "cfg", "inp", "v", "s", f"/x/{key}", rows, "h", {"docs_in": rows}, "run1")


def test_new_catalog_has_versioned_schema(tmp_path: Path):
    with Catalog.in_data_dir(tmp_path) as cat:
        assert cat.schema_version == SCHEMA_VERSION
        tables = set(cat.query("SELECT table_name FROM information_schema.tables")["table_name"])
    assert {"runs", "sources", "stage_outputs", "raw_documents", "extracted_texts", "rejections"} <= tables


def test_register_output_is_atomic_and_idempotent(tmp_path: Path):
    rejects = [Rejection("extract", "s", "a.html", "empty_text", "no text"), Rejection("extract", "s", "b", "timeout")]
    texts = pl.DataFrame(
        {"doc_id": ["d1", "d2"], "raw_hash": ["r1", "r2"], "extractor": ["plain"] * 2, "extractor_version": ["1"] * 2}
    )
    with Catalog.in_data_dir(tmp_path) as cat:
        assert cat.register_output(output("k1"), rejections=rejects, detail_tables={"extracted_texts": texts})
        # a second registration of the same key (a resumed run) writes nothing
        assert not cat.register_output(output("k1"), rejections=rejects, detail_tables={"extracted_texts": texts})
        assert cat.query_one("SELECT count(*) FROM rejections")[0] == 2
        assert cat.query_one("SELECT count(*) FROM extracted_texts")[0] == 2
        assert cat.find_output("k1").stats == {"docs_in": 3}
        # a failure inside the transaction leaves nothing behind
        broken = {"no_such_table": pl.DataFrame({"a": [1]})}
        with pytest.raises(duckdb.Error):
            cat.register_output(output("k2"), rejections=rejects, detail_tables=broken)
        assert cat.find_output("k2") is None
        assert cat.query_one("SELECT count(*) FROM rejections")[0] == 2


def test_runs_are_recorded(tmp_path: Path):
    with Catalog.in_data_dir(tmp_path) as cat:
        run = cat.start_run("v", "build")
        cat.finish_run(run, "completed", {"chunks": 10})
        runs = cat.recent_runs()
    assert runs.height == 1 and runs["status"][0] == "completed"


def test_second_writer_process_gets_a_clear_locked_error(tmp_path: Path):
    cat = Catalog.in_data_dir(tmp_path)
    cat.register_output(output("k1"))
    code = textwrap.dedent(
        f"""
        from catalog.db import Catalog
        from catalog.errors import CatalogLockedError
        try:
            Catalog.in_data_dir({str(tmp_path)!r})
        except CatalogLockedError as exc:
            print("LOCKED", exc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOCKED" in proc.stdout and "catalog is locked by another process" in proc.stdout, proc.stderr
    cat.close()
    # the file is intact and readable read-only afterwards
    with Catalog.in_data_dir(tmp_path, read_only=True) as reader:
        assert reader.find_output("k1").row_count == 3
        with pytest.raises(duckdb.Error):
            reader.execute("INSERT INTO meta VALUES ('x', 'y')")


def test_schema_version_mismatch_and_missing_catalog(tmp_path: Path):
    with Catalog.in_data_dir(tmp_path) as cat:
        cat.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(CatalogSchemaError, match="schema version 999"):
        Catalog.in_data_dir(tmp_path)
    with pytest.raises(RereadError, match="no catalog here yet"):
        Catalog.in_data_dir(tmp_path / "empty", read_only=True)
    assert issubclass(CatalogLockedError, RereadError)


def fetch_row(url: str, **fields) -> dict:
    """A FetchRecord.as_row() dict (depth is not a catalog column)."""
    row = {"url": url, "final_url": url, "outcome": "fetched", "depth": 1, "fetched_at": "2026-03-01T12:00:00.5+00:00"}
    row |= {
        "status": 200,
        "reason": "",
        "detail": "",
        "change": "new",
        "content_hash": "h1",
        "content_type": "text/html",
    }
    row |= {"bytes": 10, "etag": '"e"', "last_modified": "", "redirects": 0, "warc_file": "crawl-1.warc.gz"}
    return row | fields


def test_fetch_records_hold_the_latest_crawl_of_a_source(tmp_path: Path):
    skipped = fetch_row("http://a.test/x", outcome="skipped", status=None, reason="timeout", content_hash="")
    with Catalog.in_data_dir(tmp_path) as cat:
        assert cat.register_fetch_records("v", "web", "run1", [fetch_row("http://a.test/"), skipped]) == 2
        assert cat.register_fetch_records("v", "other", "run1", [fetch_row("http://b.test/")]) == 1
        first = cat.fetch_records("v", "web")
        assert [(r["url"], r["status"], r["reason"]) for r in first] == [
            ("http://a.test/", 200, ""),
            ("http://a.test/x", None, "timeout"),
        ]
        assert first[0]["fetched_at"] == datetime(2026, 3, 1, 12, 0, 0, 500000)  # UTC, like every catalog time
        assert set(first[0]) == {
            "variant", "source", "url", "final_url", "outcome", "change", "status", "reason", "detail", "etag",
            "last_modified", "content_hash", "content_type", "bytes", "redirects", "warc_file", "fetched_at", "run_id",
        }  # fmt: skip

        # a refresh replaces the source's rows (a URL no longer crawled leaves), other sources keep theirs
        changed = fetch_row("http://a.test/", change="changed", content_hash="h2", warc_file="crawl-2.warc.gz")
        assert cat.register_fetch_records("v", "web", "run2", [changed]) == 1
        second = cat.fetch_records("v", "web")
        assert [(r["url"], r["change"], r["content_hash"], r["run_id"]) for r in second] == [
            ("http://a.test/", "changed", "h2", "run2")
        ]
        assert len(cat.fetch_records("v", "other")) == 1 and cat.fetch_records("v", "never") == []

        # a failure inside the transaction keeps the previous rows
        with pytest.raises(duckdb.Error):
            cat.register_fetch_records("v", "web", "run3", [fetch_row("http://a.test/y", status="not a number")])
        assert [r["run_id"] for r in cat.fetch_records("v", "web")] == ["run2"]


def test_a_catalog_made_before_fetch_records_keeps_opening(tmp_path: Path):
    with Catalog.in_data_dir(tmp_path) as cat:
        cat.register_output(output("k1"))
        cat.execute("DROP TABLE fetch_records")  # the schema-1 catalog as it was before the table existed
    with Catalog.in_data_dir(tmp_path, read_only=True) as reader:
        assert reader.schema_version == SCHEMA_VERSION == 1
        assert reader.fetch_records("v", "web") == []
    with Catalog.in_data_dir(tmp_path) as cat:  # a writer adds the table; nothing else changes
        assert cat.find_output("k1").row_count == 3
        assert cat.register_fetch_records("v", "web", "run1", [fetch_row("http://a.test/")]) == 1
    with Catalog.in_data_dir(tmp_path, read_only=True) as reader:
        assert [r["url"] for r in reader.fetch_records("v", "web")] == ["http://a.test/"]
