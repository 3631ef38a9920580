"""A rebuild after a source changed decontaminates and chunks only the new or changed documents, and its
decontamination (kept documents, hit rows, summary) and chunks equal a fresh build's of the same source."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from catalog.artifacts import ArtifactStore
from catalog.db import Catalog
from catalog.ids import make_doc_id

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
MMLU = SAMPLE / "benchmarks" / "mmlu" / "test"
CHANGED = {3, 17, 29, 35}  # 4 of the 40 pages
PLANTED, NEWLY_CONTAMINATED = 40, 17  # a page holding a benchmark question all along; a changed page that gains one


def _questions() -> list[str]:
    with open(MMLU / "astronomy_test.csv", newline="") as f:
        return [row[0] for row in csv.reader(f)]


def _write_source(folder: Path, changed: set[int]) -> None:
    questions = _questions()
    texts = [json.loads(line)["text"] for line in (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()]
    texts = [*texts[:40], f"Planted page. {questions[0]} More text after it."]
    with open(folder / "docs.jsonl", "w") as f:
        for i, text in enumerate(texts):
            if i in changed:
                text = f"Updated page {i}. " + text[::-1][:400]
            if i in changed and i == NEWLY_CONTAMINATED:
                text += f" {questions[1]}"
            f.write(json.dumps({"id": str(i), "text": text, "url": f"https://c4.test/{i}"}) + "\n")


def _stage(summary: dict, stage: str) -> dict:
    (run,) = [s for s in summary["stages"] if s["stage"] == stage]
    return run


def _rows(data_dir: Path, stage: str, key: str) -> pl.DataFrame:
    return pl.read_parquet(ArtifactStore(data_dir).find(stage, key).file_paths())


def _hits(data_dir: Path, key: str) -> tuple[list[tuple], list[tuple]]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        hits = catalog.query(
            "SELECT benchmark, item_id, doc_id, n_hits FROM contamination_hits WHERE artifact_key = ? ORDER BY doc_id",
            [key],
        )
        summary = catalog.query(
            "SELECT benchmark, items_checked, items_found, rate FROM contamination_summary WHERE artifact_key = ?",
            [key],
        )
    return hits.rows(), summary.rows()


def test_refresh_decontaminates_and_chunks_only_changed_documents_like_a_fresh_build(tmp_path, prefect_harness):
    from flows.build import run_build

    variant = tmp_path / "variant.yaml"
    variant.write_text(
        "name: reusing\nsources:\n  - {name: c4, type: jsonl, path: docs.jsonl, id_field: id, url_field: url, "
        "extractor: plain}\n"
        f"decontamination:\n  action: drop_document\n  benchmarks:\n    - {{name: mmlu, path: {MMLU}, ngram: 16}}\n"
        "dedup: {exact: true, near: false}\nchunking: {size: 64, overlap: 8}\n"
    )
    _write_source(tmp_path, changed=set())
    run_build(variant, tmp_path / "data")

    _write_source(tmp_path, changed=CHANGED)
    second = run_build(variant, tmp_path / "data")
    decontaminate, chunk = _stage(second, "decontaminate"), _stage(second, "chunk")
    assert not decontaminate["cached"] and not chunk["cached"]
    # 41 pages: the 4 changed ones and the planted one (dropped before, so scanned again) are scanned, 36 are not
    assert decontaminate["stats"]["documents_reused"] == 36
    assert (decontaminate["stats"]["documents_in"], decontaminate["rows"]) == (41, 39)
    # 39 documents left: the 3 changed clean ones are chunked, the 36 others take their earlier chunks
    assert (chunk["stats"]["documents_in"], chunk["stats"]["documents_reused"]) == (39, 36)
    assert 0 < chunk["rows"] - chunk["stats"]["chunks_reused"] < 0.2 * chunk["rows"]

    third = run_build(variant, tmp_path / "data")  # nothing changed since: nothing runs
    assert [s["stage"] for s in third["stages"] if not s["cached"]] == []

    fresh = run_build(variant, tmp_path / "fresh")
    fresh_decontaminate, fresh_chunk = _stage(fresh, "decontaminate"), _stage(fresh, "chunk")
    assert "documents_reused" not in fresh_decontaminate["stats"]  # a full run: every document scanned
    # the same output is the same artifact: reuse changes how it was made, not what it is
    assert (decontaminate["key"], chunk["key"]) == (fresh_decontaminate["key"], fresh_chunk["key"])
    kept = _rows(tmp_path / "data", "decontaminate", decontaminate["key"])
    assert kept.equals(_rows(tmp_path / "fresh", "decontaminate", fresh_decontaminate["key"]))
    assert kept.height == 39
    hits, summary = _hits(tmp_path / "data", decontaminate["key"])
    assert (hits, summary) == _hits(tmp_path / "fresh", fresh_decontaminate["key"])
    planted, changed = make_doc_id("c4", str(PLANTED)), make_doc_id("c4", str(NEWLY_CONTAMINATED))
    assert sorted((item, doc) for _, item, doc, _ in hits) == sorted(
        [("astronomy/0", planted), ("astronomy/1", changed)]
    )
    assert [found for _, _, found, _ in summary] == [2]

    chunks = _rows(tmp_path / "data", "chunk", chunk["key"])
    fresh_chunks = _rows(tmp_path / "fresh", "chunk", fresh_chunk["key"])
    assert chunks.equals(fresh_chunks)  # same chunk ids, texts, offsets, in the same order
    assert chunks.height == chunk["rows"] == fresh_chunk["rows"]

    # The contamination report names each removed document as its source does (URL, file:line), not by hash alone.
    from catalog.variant import load_variant
    from flows.reports import contamination_report

    report = contamination_report(load_variant(variant), tmp_path / "data")
    removed = {r["url"]: (r["source"], r["input_ref"], r["id"], r["items"]) for r in report["removed"]}
    source_file = tmp_path / "docs.jsonl"
    assert removed == {
        f"https://c4.test/{PLANTED}": ("c4", f"{source_file}:{PLANTED + 1}", planted, ["mmlu/astronomy/0"]),
        f"https://c4.test/{NEWLY_CONTAMINATED}": ("c4", f"{source_file}:{NEWLY_CONTAMINATED + 1}", changed,
                                                  ["mmlu/astronomy/1"]),
    }  # fmt: skip
