"""Dashboard table artifacts read as numbers and dates, not as Python dicts and epoch seconds."""

from __future__ import annotations

from catalog.artifacts import ArtifactManifest
from flows.reports import readable, stage_table_rows, stat_rows


def test_stage_stats_become_readable_rows():
    stats = {
        "documents_in": 12345,
        "timing": {"started_at": 1796305538.25, "seconds": 1.23456},
        "contamination": {"mmlu": {"items_found": 3, "rate": 0.0123456}},
        "index_update": "incremental",
        "kept": True,
        "factories": ["Flat", "HNSW32"],
    }
    rows = {r["metric"]: r["value"] for r in stat_rows(stats)}
    assert rows == {
        "documents_in": "12,345",
        "timing: started_at": "2026-12-03 13:45:38 UTC",
        "timing: seconds": "1.23 s",
        "contamination: mmlu: items_found": "3",
        "contamination: mmlu: rate": "0.01235",
        "index_update": "incremental",
        "kept": "yes",
        "factories": "Flat, HNSW32",
    }
    assert readable("seconds", 3725) == "1 h 2 min" and readable("elapsed_s", 125.4) == "2 min 5 s"


def test_a_stage_table_has_no_raw_dicts(tmp_path):
    manifest = ArtifactManifest(
        stage="dedup", key="k", stage_version="1", config_hash="c", input_hash="i", path=str(tmp_path), rows=1500,
        content_hash="h",
        stats={"timing": {"started_at": 1796305538.0, "seconds": 0.5}, "removed": {"exact": 3, "near": 4}},
    )  # fmt: skip
    rows = stage_table_rows(manifest, cached=False)
    assert not any("{" in r["value"] or "}" in r["value"] for r in rows)
    assert {"metric": "rows out", "value": "1,500"} in rows and {"metric": "cached", "value": "no"} in rows
    assert {"metric": "removed: near", "value": "4"} in rows
