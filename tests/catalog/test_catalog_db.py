"""The DuckDB catalog: schema version, transactional registration, the single-writer lock across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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
