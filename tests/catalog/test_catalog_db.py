"""The DuckDB catalog: schema version, transactional registration, the single-writer lock across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from catalog.db import LOCK_TIMEOUT_ENV, SCHEMA_VERSION, Catalog, StageOutput, lock_timeout_default
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


def _hold_writer(data_dir: Path, seconds: float) -> subprocess.Popen:
    """Another process that opens the catalog for writing, commits a run, says READY and keeps the lock."""
    code = textwrap.dedent(
        f"""
        import time
        from catalog.db import Catalog
        cat = Catalog.in_data_dir({str(data_dir)!r})
        cat.start_run("other", "build")
        print("READY", flush=True)
        time.sleep({seconds})
        cat.close()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "READY"
    return proc


@pytest.mark.slow
def test_second_writer_gives_up_after_its_lock_timeout_with_a_clear_error(tmp_path: Path, capfd):
    with Catalog.in_data_dir(tmp_path) as cat:
        cat.register_output(output("k1"))
    holder = _hold_writer(tmp_path, 60)
    try:
        started = time.monotonic()
        with pytest.raises(CatalogLockedError, match=rf"locked by process {holder.pid}.*gave up after waiting 1 s"):
            Catalog.in_data_dir(tmp_path, lock_timeout=1)
        assert 1 <= time.monotonic() - started < 30
        assert "waiting for the catalog lock" in capfd.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # the file is intact and readable read-only afterwards
    with Catalog.in_data_dir(tmp_path, read_only=True) as reader:
        assert reader.find_output("k1").row_count == 3
        assert not reader.is_snapshot
        with pytest.raises(duckdb.Error):
            reader.execute("INSERT INTO meta VALUES ('x', 'y')")


@pytest.mark.slow
def test_second_writer_waits_for_the_lock_and_then_writes(tmp_path: Path, capfd):
    Catalog.in_data_dir(tmp_path).close()
    holder = _hold_writer(tmp_path, 3)
    try:
        with Catalog.in_data_dir(tmp_path, lock_timeout=120) as cat:
            cat.start_run("mine", "build")
            assert sorted(cat.recent_runs()["variant"]) == ["mine", "other"]
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
    assert f"is being written by process {holder.pid}" in capfd.readouterr().err


def test_lock_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2.5")
    assert lock_timeout_default() == 2.5
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "soon")
    with pytest.raises(RereadError, match="REREAD_LOCK_TIMEOUT='soon'"):
        lock_timeout_default()


def test_reader_reads_a_snapshot_while_another_process_writes(tmp_path: Path):
    with Catalog.in_data_dir(tmp_path) as cat:
        cat.register_output(output("k1"))
    holder = _hold_writer(tmp_path, 60)
    try:
        with Catalog.in_data_dir(tmp_path, read_only=True) as reader:
            assert reader.is_snapshot
            assert reader.find_output("k1").row_count == 3
            assert reader.recent_runs()["variant"].to_list() == ["other"]  # committed by the writer, not checkpointed
            snapshot = reader._snapshot
            assert snapshot.exists() and not snapshot.is_relative_to(tmp_path)
        assert not snapshot.exists()
        assert holder.poll() is None  # the writer never noticed
    finally:
        holder.kill()
        holder.wait()


def test_truncated_catalog_is_a_clear_error_naming_the_file(tmp_path: Path):
    with Catalog.in_data_dir(tmp_path) as cat:
        cat.register_output(output("k1"))
        cat.execute("CHECKPOINT")
    path = tmp_path / "catalog.duckdb"
    path.write_bytes(path.read_bytes()[:5000])
    for read_only in (True, False):
        with pytest.raises(RereadError, match=rf"{path}: cannot open the catalog"):
            Catalog.in_data_dir(tmp_path, read_only=read_only, lock_timeout=0)


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


def test_a_datastore_recorded_with_one_embed_key_reads_as_a_list_of_embed_keys(tmp_path: Path):
    """Datastores recorded before embedding ran per chunk part have one embed_key and no embed_keys column."""
    with Catalog.in_data_dir(tmp_path) as cat:
        cat.execute("ALTER TABLE datastores DROP COLUMN embed_keys")  # the catalog as it was before the column
        cat.execute("INSERT INTO datastores VALUES ('old', 'old.yaml', 'ix1', '[\"c1\", \"c2\"]', 'e1', now(), 'run1')")
    with Catalog.in_data_dir(tmp_path, read_only=True) as reader:  # a reader does not migrate
        record = reader.datastore("old")
        assert (record["chunk_keys"], record["embed_keys"], record["index_key"]) == (["c1", "c2"], ["e1"], "ix1")
    with Catalog.in_data_dir(tmp_path) as cat:  # a writer adds the column; the old record reads the same
        assert cat.datastore("old")["embed_keys"] == ["e1"]
        cat.register_datastore("new", "new.yaml", "ix2", ["c1", "c2", "c3"], ["e1", "e2", "e3"], "run2")
        cat.register_datastore("old", "old.yaml", "ix3", ["c4"], ["e4"], "run3")
    with Catalog.in_data_dir(tmp_path, read_only=True) as reader:
        assert reader.datastore("new")["embed_keys"] == ["e1", "e2", "e3"]
        assert (reader.datastore("old")["embed_keys"], reader.datastore("old")["run_id"]) == (["e4"], "run3")
        assert reader.datastore("missing") is None
