"""The compare report's cost of a datastore covers every stage of its build (extract to index), also the outputs
another variant built first and this one took as they were: bytes on disk are the sizes of those artifact folders'
files, build time their units' own times summed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import queries
from catalog.db import Catalog

REPO = Path(__file__).resolve().parents[2]
BUILD_STAGES = {"extract", "decontaminate", "dedup_signatures", "dedup", "chunk", "embed", "index"}


def _write_variants(folder: Path) -> tuple[Path, Path]:
    """Two variants over the same 12 C4 documents (their first 400 characters: one chunk each) that differ only in
    their index: the second build reuses every output of the first up to the embeddings."""
    lines = (REPO / "sample_data" / "jsonl" / "c4_sample.jsonl").read_text().splitlines()[:12]
    docs = [{"text": json.loads(line)["text"][:400]} for line in lines]
    (folder / "docs.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    paths = []
    for name, factory in (("tiny-flat", "Flat"), ("tiny-hnsw", "HNSW8")):
        path = folder / f"{name}.yaml"
        path.write_text(
            f"name: {name}\nsources:\n  - {{name: c4, type: jsonl, path: docs.jsonl, extractor: plain}}\n"
            f"dedup: {{exact: true, near: true}}\nindex: {{factory: {factory}}}\n"
        )
        paths.append(path)
    return paths[0], paths[1]


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


@pytest.mark.slow
def test_cost_covers_every_build_stage_including_outputs_another_variant_made(tmp_path: Path) -> None:
    from buildplan.build import build
    from catalog.variant import load_variant
    from flows.evaluate import datastore_facts

    data_dir = tmp_path / "data"
    flat_path, hnsw_path = _write_variants(tmp_path)
    flat_summary = build(flat_path, data_dir)
    hnsw_summary = build(hnsw_path, data_dir)
    assert {s.stage for s in hnsw_summary.stages if not s.cached} == {"index"}  # the rest was tiny-flat's

    artifacts = data_dir / "artifacts"
    every_folder = [f for f in artifacts.glob("*/*") if f.is_dir()]
    assert not [f for f in every_folder if f.name.endswith(".partial")]
    total = sum(_folder_bytes(f) for f in every_folder)
    index_bytes = {s.index_key: _folder_bytes(artifacts / "index" / s.index_key) for s in (flat_summary, hnsw_summary)}

    with Catalog.in_data_dir(data_dir) as catalog:
        for path, summary, other in ((flat_path, flat_summary, hnsw_summary), (hnsw_path, hnsw_summary, flat_summary)):
            variant = load_variant(path)
            outputs = queries.datastore_outputs(catalog, variant.name)
            assert set(outputs["stage"]) == BUILD_STAGES
            assert sorted(outputs["artifact_key"]) == sorted(s.key for s in summary.stages)
            facts = datastore_facts(catalog, variant, str(data_dir), [], 10)
            # every artifact folder on disk but the other variant's index
            assert facts["bytes"] == total - index_bytes[other.index_key] > 0
            timings = [json.loads((data_dir / p / "artifact.json").read_text()) for p in outputs["path"]]
            assert facts["build_s"] == sum(m["stats"]["timing"]["seconds"] for m in timings) > 0
            assert facts["documents"] == 12 and facts["vectors"] == facts["chunks"] > 0
