"""A built datastore under damage, moves and a concurrent writer: damaged artifacts (flipped bytes in index.faiss and
in an embedding shard, a truncated chunk Parquet, a deleted artifact.json) are an error naming the file for search
and are rebuilt by `reread build` to exactly the clean datastore; a moved or copied data dir searches its own files;
search and `reread runs` work while another process holds the catalog's write lock."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from catalog import artifacts
from catalog.artifacts import MANIFEST
from catalog.errors import ArtifactError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
QUERIES = ["history of the city", "recipe with chocolate", "football match result", "software license terms"]


def _write_variant(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()[:24]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "variant.yaml").write_text(
        """name: integrity
sources:
  - {name: c4, type: jsonl, path: docs.jsonl, text_field: text, url_field: url, extractor: plain}
dedup: {exact: true, near: false}
chunking: {size: 96, overlap: 8}
embedder: {shard_size: 48}
"""
    )
    return folder / "variant.yaml"


def _search(variant: Path, data_dir: Path) -> list[list[str]]:
    from catalog.variant import load_variant
    from flows.datastore import open_retriever

    return [[h.chunk_id for h in hits] for hits in open_retriever(load_variant(variant), data_dir).search(QUERIES, 5)]


def _index_ids(data_dir: Path) -> list[str]:
    (ids,) = (data_dir / "artifacts" / "index").glob("*/index/ids.parquet")
    return pl.read_parquet(ids)["chunk_id"].to_list()


@pytest.fixture(scope="module")
def clean(tmp_path_factory, prefect_harness):
    from flows.build import run_build

    root = tmp_path_factory.mktemp("integrity")
    variant = _write_variant(root / "variant")
    data_dir = root / "clean"
    run_build(variant, data_dir)
    return variant, data_dir, _search(variant, data_dir), _index_ids(data_dir)


def _copy(data_dir: Path, to: Path) -> Path:
    shutil.copytree(data_dir, to, ignore=shutil.ignore_patterns("cache"))
    return to


def _flip(path: Path, at: int, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[at : at + n] = bytes(b ^ 0xFF for b in data[at : at + n])
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_damaged_artifacts_are_named_errors_for_search_and_rebuilt_by_build(clean, tmp_path):
    from flows.build import run_build

    variant, clean_dir, clean_hits, clean_ids = clean
    data_dir = _copy(clean_dir, tmp_path / "damaged")
    arts = data_dir / "artifacts"
    (index_faiss,) = arts.glob("index/*/index/index.faiss")
    _flip(index_faiss, index_faiss.stat().st_size // 2)  # same size
    artifacts.forget_verified()
    with pytest.raises(ArtifactError, match=rf"{index_faiss}: sha256 .* differs"):
        _search(variant, data_dir)

    shard = sorted(arts.glob("embed/*/embeddings/shard-*.npy"))[1]
    _flip(shard, shard.stat().st_size - 200)
    (chunks,) = arts.glob("chunk/*/part-*.parquet")
    chunks.write_bytes(chunks.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match=rf"{chunks}: .* bytes, artifact.json records"):
        _search(variant, data_dir)
    (dedup,) = arts.glob("dedup/*")
    (dedup / MANIFEST).unlink()

    summary = run_build(variant, data_dir)
    rebuilt = sorted({s["stage"] for s in summary["stages"] if not s["cached"]})
    assert rebuilt == ["chunk", "dedup", "embed", "index"]  # extraction was intact and reused
    embed = next(s for s in summary["stages"] if s["stage"] == "embed")
    assert embed["stats"]["shards_skipped"] >= 1  # intact shards are kept, only the damaged one is embedded again
    assert (dedup / MANIFEST).exists() and not list(arts.glob("*/*.partial"))
    assert _index_ids(data_dir) == clean_ids
    artifacts.forget_verified()
    assert _search(variant, data_dir) == clean_hits


def test_moved_and_copied_data_dirs_read_their_own_files(clean, tmp_path):
    variant, clean_dir, clean_hits, _ = clean
    original = _copy(clean_dir, tmp_path / "original")
    copy = _copy(original, tmp_path / "copy")
    moved = tmp_path / "moved"
    original.rename(moved)
    for manifest in moved.glob("artifacts/*/*/" + MANIFEST):
        assert str(tmp_path) not in manifest.read_text()
    assert _search(variant, moved) == clean_hits
    # a copy whose index is damaged reports its own file, although the moved original is intact
    (index_faiss,) = copy.glob("artifacts/index/*/index/index.faiss")
    index_faiss.write_bytes(index_faiss.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=str(index_faiss)):
        _search(variant, copy)


def test_search_and_runs_work_while_another_process_holds_the_catalog(clean, tmp_path):
    from flows.reports import recent_runs

    variant, clean_dir, clean_hits, _ = clean
    data_dir = _copy(clean_dir, tmp_path / "busy")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from catalog.db import Catalog
                cat = Catalog.in_data_dir({str(data_dir)!r})
                cat.start_run("integrity", "build")
                print("READY", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "READY"
        assert _search(variant, data_dir) == clean_hits
        runs = recent_runs(data_dir)
        assert [r["status"] for r in runs][:2] == ["running", "completed"]
        assert json.dumps(runs, default=str)
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
