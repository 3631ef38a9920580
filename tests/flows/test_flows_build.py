"""The build flow end to end under the Prefect test harness: real sources, extraction, decontamination, dedup,
chunking, the real MiniLM embedder and FAISS; caching across runs; resuming after a real process kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import polars as pl
import pytest

from catalog.db import Catalog

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"


def _mmlu_question() -> str:
    import csv

    with open(SAMPLE / "benchmarks" / "mmlu" / "test" / "astronomy_test.csv", newline="") as f:
        return next(csv.reader(f))[0]


def write_variant(folder: Path, chunk_size: int = 128, name: str = "mini") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    docs = [json.loads(line) for line in (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()[:30]]
    docs.append({"text": "Planted page. " + _mmlu_question() + " More text after it.", "url": "http://planted.test/"})
    docs.append(dict(docs[0]))  # an exact duplicate: dedup removes one
    with open(folder / "docs.jsonl", "w") as f:
        for doc in docs:
            f.write(json.dumps(doc) + "\n")
    wiki = folder / "wiki"
    wiki.mkdir(exist_ok=True)
    for article in ("Bodmin", "Goryeo-ware"):
        shutil.copy(SAMPLE / "wikitext" / f"{article}.txt", wiki)
    (folder / "variant.yaml").write_text(
        f"""name: {name}
sources:
  - {{name: c4, type: jsonl, path: docs.jsonl, text_field: text, url_field: url, extractor: plain}}
  - {{name: wiki, type: wikitext, path: wiki, extractor: wikipedia}}
  - {{name: cc, type: warc, path: {SAMPLE / "warc" / "jwarc_cc.warc.gz"}}}
decontamination:
  action: drop_document
  benchmarks:
    - {{name: mmlu, path: {SAMPLE / "benchmarks" / "mmlu" / "test"}, ngram: 16}}
dedup: {{exact: true, near: true}}
chunking: {{size: {chunk_size}, overlap: 16}}
embedder: {{shard_size: 64}}
"""
    )
    return folder / "variant.yaml"


def executed(summary: dict) -> list[str]:
    return sorted({s["stage"] for s in summary["stages"] if not s["cached"]})


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness):
    from flows.build import run_build

    root = tmp_path_factory.mktemp("build")
    variant = write_variant(root / "variant")
    data_dir = root / "data"
    first = run_build(variant, data_dir)
    return variant, data_dir, first


def test_build_end_to_end(built):
    variant, data_dir, first = built
    assert executed(first) == ["chunk", "decontaminate", "dedup", "dedup_signatures", "embed", "extract", "index"]
    by_stage = {}
    for s in first["stages"]:
        by_stage.setdefault(s["stage"], []).append(s)
    assert {s["shard"] for s in by_stage["extract"]} == {"c4", "wiki", "cc"}
    assert sum(s["rows"] for s in by_stage["extract"] if s["shard"] == "c4") == 32
    # the planted question's document is gone, the duplicate is gone
    decontaminated = sum(s["rows"] for s in by_stage["decontaminate"])
    extracted = sum(s["rows"] for s in by_stage["extract"])
    assert decontaminated == extracted - 1
    assert by_stage["dedup"][0]["rows"] == decontaminated - 1
    chunks = sum(s["rows"] for s in by_stage["chunk"])
    # one embed unit per chunk part (one part per source here), named after it; one index over all of them
    assert len(by_stage["chunk"]) == 3
    assert [(s["shard"], s["rows"]) for s in by_stage["embed"]] == [(s["shard"], s["rows"]) for s in by_stage["chunk"]]
    assert chunks == by_stage["index"][0]["rows"] > 30
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        record = catalog.datastore("mini")
        assert record["index_key"] == first["index_key"]
        hits = catalog.query("SELECT benchmark, item_id FROM contamination_hits")
        assert hits.rows() == [("mmlu", "astronomy/0")]
        assert catalog.query_one("SELECT count(*) FROM extracted_texts")[0] == extracted
        # the removed copy (the last line of docs.jsonl) is recorded with the document it duplicates (the first)
        removals = catalog.query(
            "SELECT d.kind, k.input_ref AS kept, r.input_ref AS removed FROM dedup_removals d"
            " JOIN raw_documents k ON k.doc_id = d.kept_doc_id JOIN raw_documents r ON r.doc_id = d.doc_id"
        )
        docs_file = variant.parent / "docs.jsonl"
        assert removals.rows() == [("exact", f"{docs_file}:1", f"{docs_file}:32")]
        assert catalog.query_one("SELECT count(*) FROM raw_documents")[0] >= extracted


def test_embeddings_per_chunk_part_index_like_one_embedding_of_all_chunks(built, tmp_path):
    """The per-part embed units give the index (ids, search hits) that one embedding run over every chunk gives."""
    from catalog.artifacts import ArtifactStore
    from catalog.variant import load_variant
    from indexing.embed import Embedder, embed_chunks
    from indexing.vector_index import VectorIndex, build_index, read_index_manifest

    variant_path, data_dir, first = built
    variant = load_variant(variant_path)
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        record = catalog.datastore("mini")
    store = ArtifactStore(data_dir)
    embeds = [store.open("embed", key) for key in record["embed_keys"]]
    chunks = [store.open("chunk", key) for key in record["chunk_keys"]]
    assert len(embeds) == len(chunks) == 3 and [e.shard for e in embeds] == [c.shard for c in chunks]
    assert [e.rows for e in embeds] == [c.rows for c in chunks]

    embedder = Embedder(variant.embedder)
    embed_chunks([p for c in chunks for p in c.file_paths()], tmp_path / "emb", embedder, variant.embedder.shard_size)
    build_index(tmp_path / "emb", tmp_path / "index", variant.index)
    built_dir = store.open("index", record["index_key"]).folder / "index"
    assert (
        pl.read_parquet(built_dir / "ids.parquet")["chunk_id"].to_list()
        == pl.read_parquet(tmp_path / "index" / "ids.parquet")["chunk_id"].to_list()
    )
    queries = embedder.encode_queries(["history of a town in Cornwall", "Korean pottery glaze", "a cooking recipe"])
    ours, reference = (
        VectorIndex.load(built_dir).search(queries, 5),
        VectorIndex.load(tmp_path / "index").search(queries, 5),
    )
    assert ours.rows.tolist() == reference.rows.tolist()
    assert ours.scores == pytest.approx(reference.scores, abs=1e-5)
    # the index records which part's embedding shard each vector came from
    labels = [label for shard in read_index_manifest(built_dir).shards for label in shard.embedding_shards]
    assert [label.split("/")[0] for label in labels if label.endswith("shard-00000")] == [e.key for e in embeds]


def test_second_build_does_no_stage_work(built):
    from flows.build import run_build

    variant, data_dir, first = built
    second = run_build(variant, data_dir)
    assert executed(second) == []
    assert second["index_key"] == first["index_key"]
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        # cached outputs are not registered twice
        assert catalog.query_one("SELECT count(*) FROM stage_outputs")[0] == len(first["stages"])


def test_changing_chunk_size_reruns_chunking_onward_only(built, tmp_path):
    from flows.build import run_build

    variant, data_dir, first = built
    original = variant.read_text()
    variant.write_text(original.replace("chunking: {size: 128", "chunking: {size: 64"))
    try:
        third = run_build(variant, data_dir)
    finally:
        variant.write_text(original)  # exactly: replacing "size: 64" back also turned shard_size: 64 into 128
    assert executed(third) == ["chunk", "embed", "index"]
    assert third["index_key"] != first["index_key"]


def _stage_rows(data_dir: Path) -> list[tuple]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        return catalog.query(
            "SELECT stage, shard, row_count, content_hash, artifact_key FROM stage_outputs ORDER BY stage, shard"
        ).rows()


def _index_ids(data_dir: Path) -> tuple[int, list[str]]:
    with Catalog.in_data_dir(data_dir, read_only=True) as catalog:
        key = catalog.datastore("killme")["index_key"]
    folder = data_dir / "artifacts" / "index" / key / "index"
    return faiss.read_index(str(next(folder.glob("*.faiss")))).ntotal, pl.read_parquet(folder / "ids.parquet")[
        "chunk_id"
    ].to_list()


def test_killed_build_resumes_to_the_same_catalog_and_index(tmp_path, prefect_harness):
    """A real SIGKILL in the middle of embedding, a restart, and the result equals a clean build's."""
    from flows.build import run_build

    folder = tmp_path / "variant"
    folder.mkdir()
    (folder / "variant.yaml").write_text(
        f"""name: killme
sources:
  - {{name: npl, type: trec, path: {SAMPLE / "vaswani" / "doc-text.trec"}, limit: 500}}
extractor: plain
dedup: {{exact: true, near: false}}
embedder: {{shard_size: 50}}
"""
    )
    variant = folder / "variant.yaml"
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "build", str(variant), "--data-dir", str(killed_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    shards: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        shards = list((killed_dir / "artifacts" / "embed").glob("*.partial/embeddings/shard-00002.npy"))
        if shards:
            break
        time.sleep(0.2)
    assert shards, "the build never reached its third embedding shard"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    embeddings = shards[0].parent
    finished = {p.name: p.stat().st_mtime_ns for p in embeddings.glob("shard-*.npy")}
    assert "artifact.json" not in {p.name for p in embeddings.parent.iterdir()}

    resumed = run_build(variant, killed_dir)
    embed = next(s for s in resumed["stages"] if s["stage"] == "embed")
    assert not embed["cached"] and embed["stats"]["shards_skipped"] >= 2
    final = next((killed_dir / "artifacts" / "embed").glob("*/embeddings"))
    for name, mtime in finished.items():
        if (final / name).exists() and name < "shard-00002.npy":
            assert (final / name).stat().st_mtime_ns == mtime  # finished shards were not re-embedded

    clean_dir = tmp_path / "clean"
    run_build(variant, clean_dir)
    assert [r[:4] for r in _stage_rows(killed_dir)] == [r[:4] for r in _stage_rows(clean_dir)]
    assert _index_ids(killed_dir) == _index_ids(clean_dir)


def test_plain_python_build_equals_the_flow_build(built, tmp_path):
    """The build plan without Prefect (in-process executor) makes the same artifacts, keys and index."""
    from buildplan.build import build

    variant, data_dir, first = built
    summary = build(variant, tmp_path / "plain")
    assert summary.index_key == first["index_key"]
    assert sorted((s.stage, s.shard, s.key) for s in summary.stages) == sorted(
        (s["stage"], s["shard"], s["key"]) for s in first["stages"]
    )
    plain_rows = _stage_rows(tmp_path / "plain")  # stage, shard, rows, content hash, key
    assert len(plain_rows) == len(first["stages"]) and set(plain_rows) <= set(_stage_rows(data_dir))
