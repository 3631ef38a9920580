"""A rebuild after a source changed extracts only changed documents and embeds only new or changed chunk texts,
and searches like a full build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from catalog.variant import load_variant

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def _write_source(folder: Path, changed: set[int]) -> None:
    lines = (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()[:40]
    with open(folder / "docs.jsonl", "w") as f:
        for i, line in enumerate(lines):
            doc = json.loads(line)
            if i in changed:
                doc["text"] = f"Updated page {i}. " + doc["text"][::-1][:400]
            f.write(json.dumps({"id": str(i), "text": doc["text"], "url": f"https://c4.test/{i}"}) + "\n")


def _search(variant: Path, data_dir: Path) -> list[list[tuple[str, float]]]:
    from flows.datastore import open_retriever

    retriever = open_retriever(load_variant(variant), data_dir)
    hits = retriever.search(["gingerbread cards", "travel insurance", "music festival tickets"], k=10)
    return [[(h.chunk_id, round(h.score, 4)) for h in q] for q in hits]


def test_refresh_embeds_only_changed_chunks_and_matches_a_full_build(tmp_path, prefect_harness):
    from flows.build import run_build

    (tmp_path / "variant.yaml").write_text(
        "name: refreshing\nsources:\n  - {name: c4, type: jsonl, path: docs.jsonl, id_field: id, url_field: url, "
        "extractor: plain}\ndedup: {exact: true, near: false}\nchunking: {size: 64, overlap: 8}\n"
        "index: {refresh_max_change: 0.5}\n"  # the changed pages shrink: 110 of 344 vectors change
    )
    variant = tmp_path / "variant.yaml"
    _write_source(tmp_path, changed=set())
    first = run_build(variant, tmp_path / "data")
    total = next(s for s in first["stages"] if s["stage"] == "embed")["rows"]

    _write_source(tmp_path, changed={3, 17, 29, 35})  # 10% of the pages change
    second = run_build(variant, tmp_path / "data")
    extract = next(s for s in second["stages"] if s["stage"] == "extract")
    assert extract["stats"]["documents_reused"] == 36  # only the 4 changed pages went through the extractor
    embed = next(s for s in second["stages"] if s["stage"] == "embed")
    assert not embed["cached"]
    computed, reused = embed["stats"]["chunks_computed"], embed["stats"]["chunks_reused_by_text"]
    assert computed + reused == embed["rows"]
    assert 0 < computed <= 0.2 * total  # about the changed pages' chunks, not the corpus
    index = next(s for s in second["stages"] if s["stage"] == "index")
    assert index["stats"]["index_update"] == "incremental"  # the previous index was updated, not rebuilt
    assert index["stats"]["vectors_added"] == computed  # exactly the changed chunks went into faiss
    assert index["stats"]["vectors_removed"] == total - reused  # and their old versions came out

    third = run_build(variant, tmp_path / "data")  # nothing changed since: nothing runs
    assert [s["stage"] for s in third["stages"] if not s["cached"]] == []

    run_build(variant, tmp_path / "fresh")
    refreshed, fresh = _search(variant, tmp_path / "data"), _search(variant, tmp_path / "fresh")
    assert [[c for c, _ in q] for q in refreshed] == [[c for c, _ in q] for q in fresh]
    assert np.allclose([[s for _, s in q] for q in refreshed], [[s for _, s in q] for q in fresh], atol=1e-4)
