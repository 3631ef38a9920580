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


def test_a_build_names_its_task_runs_by_source_and_publishes_readable_tables(tmp_path, prefect_harness):
    import re
    from pathlib import Path
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from catalog.db import Catalog
    from flows.build import run_build

    sample = Path(__file__).resolve().parents[2] / "sample_data"
    variant = tmp_path / "named.yaml"
    variant.write_text(
        f"name: named\nsources:\n  - {{name: c4-news, type: jsonl, path: {sample / 'jsonl' / 'c4_sample.jsonl'}, "
        f"limit: 5, extractor: plain}}\n  - {{name: arxiv-abs, type: jsonl, path: {sample / 'jsonl' / 'arxiv_sample.jsonl'}, "
        "limit: 5, extractor: plain}\ndedup: {exact: true, near: false}\n"
    )
    summary = run_build(variant, tmp_path / "data")
    with Catalog.in_data_dir(tmp_path / "data", read_only=True) as catalog:
        (flow_run_id,) = catalog.query_one("SELECT flow_run_id FROM runs WHERE run_id = ?", [summary["run_id"]])
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
        artifacts = client.read_artifacts()
    names = {run.name for run in runs}
    extract_names = {n for n in names if n.startswith("extract")}
    # one per source, named by it: the dashboard says which source a slow or failed extraction is
    assert len(extract_names) == 2
    assert all(any(s in n for s in ("c4-news", "arxiv-abs")) for n in extract_names)
    assert not any(re.fullmatch(r"(extract|decontaminate)-\d+", n) for n in names), names  # not extract-473
    tables = [a for a in artifacts if a.type == "table" and a.key and a.key.startswith("named-")]
    assert tables
    for artifact in tables:
        rows = artifact.data if isinstance(artifact.data, list) else __import__("json").loads(artifact.data)
        assert not any("{" in str(row["value"]) for row in rows), (artifact.key, rows)
        timing = {row["metric"]: row["value"] for row in rows if row["metric"].startswith("timing: ")}
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", timing["timing: started_at"])
    # every long stage moves a progress bar: per source extracted, per shard hashed, dedup, per part chunked
    progress = {a.key: a for a in artifacts if a.type == "progress" and a.key and a.key.startswith("named-")}
    per_source = [
        f"{stage}-{source}" for stage in ("extract", "dedup-signatures") for source in ("c4-news", "arxiv-abs")
    ]
    assert {f"named-{unit}-progress" for unit in (*per_source, "dedup")} <= set(progress), sorted(progress)
    assert all(any(key.startswith(f"named-{stage}") for key in progress) for stage in ("chunk-part-", "embed"))
    for artifact in progress.values():
        assert float(artifact.data) == 100.0, (artifact.key, artifact.data)
    assert progress["named-extract-c4-news-progress"].description == "extract-c4-news of named: 5 documents, done"
    assert progress["named-dedup-progress"].description == "dedup of named: 2 of 2 shards written"


def test_integer_keys_are_read_as_names():
    # dedup's cluster sizes by size: in memory (the first, uncached run) their keys are ints, not JSON strings
    rows = {r["metric"]: r["value"] for r in stat_rows({"cluster_sizes": {"exact": {2: 5, 10: 1}}, "n": 3})}
    assert rows == {"cluster_sizes: exact: 10": "1", "cluster_sizes: exact: 2": "5", "n": "3"}
