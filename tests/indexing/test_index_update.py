"""Refreshing an index in place: remove gone chunks, add new ones, reuse untouched shards; results as a rebuild's.

Synthetic unit vectors in the real embedding-folder format; a "refresh" drops some chunk ids, adds new ones and
re-shards the embedding set, as re-embedding a changed corpus does."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from catalog.variant import IndexConfig
from indexing.embedding_store import EmbeddingSet, write_embedding_shards
from indexing.index_update import apply_index_update, plan_index_update
from indexing.vector_index import VectorIndex, build_index, read_index_manifest

DIM = 24


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write(folder: Path, ids: list[str], vectors: np.ndarray, shard_rows: int, model: str = "synthetic@0") -> Path:
    shards = [(ids[i : i + shard_rows], vectors[i : i + shard_rows]) for i in range(0, len(ids), shard_rows)]
    write_embedding_shards(folder, shards, model)
    return folder


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Before: 2,000 chunks in shards of 500. After: 60 chunks of rows 1,000-1,059 removed, 80 new chunks inserted
    in the middle (a changed page keeps its place in the corpus), re-sharded by 400 rows."""
    rng = np.random.default_rng(3)
    ids = [f"c{i:05d}" for i in range(2000)]
    vectors = unit(rng.standard_normal((2000, DIM)))
    new_ids = [f"n{i:03d}" for i in range(80)]
    new_vectors = unit(rng.standard_normal((80, DIM)))
    after_ids = ids[:1000] + new_ids + ids[1060:]
    after_vectors = np.concatenate([vectors[:1000], new_vectors, vectors[1060:]])
    root = tmp_path_factory.mktemp("update")
    before = write(root / "before", ids, vectors, 500)
    after = write(root / "after", after_ids, after_vectors, 400)
    return before, after, dict(zip(after_ids, after_vectors, strict=True)), set(ids[1000:1060]), set(new_ids)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return unit(np.random.default_rng(5).standard_normal((30, DIM)))


def updated(tmp_path: Path, corpora, cfg: IndexConfig):
    before, after, *_ = corpora
    build_index(before, tmp_path / "before-index", cfg, threads=1)
    delta, why = plan_index_update(tmp_path / "before-index", EmbeddingSet.open(after), cfg)
    assert delta is not None, why
    result = apply_index_update(delta, EmbeddingSet.open(after), tmp_path / "updated", cfg, threads=1)
    return result, VectorIndex.load(tmp_path / "updated")


def ids_and_scores(index: VectorIndex, queries: np.ndarray, k: int = 10):
    result = index.search(queries, k)
    return [index.chunk_ids(r) for r in result.rows], result.scores


def test_flat_update_removes_in_place_appends_and_searches_like_a_rebuild(tmp_path, corpora, queries):
    cfg = IndexConfig()
    result, index = updated(tmp_path, corpora, cfg)
    stats = result.stats
    assert (stats["vectors_removed"], stats["vectors_added"]) == (60, 80)
    assert stats["changed_fraction"] == pytest.approx(140 / 2000)
    assert stats["shards_removed_in_place"] == 1 and stats["shards_rebuilt"] == stats["shards_new"] == 0
    assert index.ntotal == 2020 and result.manifest.updated_from == read_index_manifest(
        tmp_path / "before-index"
    ).manifest_hash

    build_index(corpora[1], tmp_path / "rebuilt", cfg, threads=1)
    got_ids, got_scores = ids_and_scores(index, queries)
    want_ids, want_scores = ids_and_scores(VectorIndex.load(tmp_path / "rebuilt"), queries)
    assert got_ids == want_ids
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-6)
    # every row's vector is its chunk's: the ids file and the shards agree after removal and append
    rows = np.arange(index.ntotal)
    vectors_by_id = corpora[2]
    np.testing.assert_array_equal(index.reconstruct(rows), np.stack([vectors_by_id[c] for c in index.chunk_ids(rows)]))


def test_sharded_update_reuses_untouched_shards_and_fills_new_ones(tmp_path, corpora, queries):
    cfg = IndexConfig(rows_per_shard=500)  # four shards of 500: removals only touch the third
    result, index = updated(tmp_path, corpora, cfg)
    assert result.stats["shards_reused"] == 3  # shards 0, 1 and 3 have no removed rows
    assert result.stats["shards_removed_in_place"] == 1
    assert result.stats["shards_appended"] == 0  # the last shard was full
    assert result.stats["shards_new"] == 1
    assert [s.rows for s in index.manifest.shards] == [500, 500, 440, 500, 80]
    before_file = tmp_path / "before-index" / "index-00000.faiss"
    assert (tmp_path / "updated" / "index-00000.faiss").stat().st_ino == before_file.stat().st_ino  # linked, not copied

    build_index(corpora[1], tmp_path / "rebuilt", cfg, threads=1)
    got_ids, got_scores = ids_and_scores(index, queries)
    want_ids, want_scores = ids_and_scores(VectorIndex.load(tmp_path / "rebuilt"), queries)
    assert got_ids == want_ids
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-6)


def test_ivf_update_rebuilds_the_touched_shard_without_retraining(tmp_path, corpora, queries):
    cfg = IndexConfig(factory="IVF16,Flat", nprobe=16)  # all lists probed: exact, so comparable to brute force
    result, index = updated(tmp_path, corpora, cfg)
    assert result.stats["shards_rebuilt"] == 1
    before = faiss.read_index(str(tmp_path / "before-index" / "index.faiss"))
    after = faiss.read_index(str(tmp_path / "updated" / "index.faiss"))
    np.testing.assert_array_equal(  # the same centroids: the quantizer was kept, not trained again
        faiss.extract_index_ivf(before).quantizer.reconstruct_n(0, 16),
        faiss.extract_index_ivf(after).quantizer.reconstruct_n(0, 16),
    )
    assert result.manifest.search_params == {"nprobe": 16} and result.manifest.recall_at_10 == 1.0

    vectors_by_id = corpora[2]
    ids = list(vectors_by_id)
    sims = queries @ np.stack([vectors_by_id[c] for c in ids]).T
    want = [[ids[j] for j in np.argsort(-row)[:10]] for row in sims]
    assert ids_and_scores(index, queries)[0] == want


def test_hnsw_update_drops_removed_chunks_and_finds_added_ones(tmp_path, corpora):
    cfg = IndexConfig(factory="HNSW16", ef_search=64)
    result, index = updated(tmp_path, corpora, cfg)
    assert result.stats["shards_rebuilt"] == 1  # HNSW cannot remove: its one shard is rebuilt from live vectors
    _, _, vectors_by_id, removed, added = corpora
    probe = sorted(added)[:20]
    found, _ = ids_and_scores(index, np.stack([vectors_by_id[c] for c in probe]), k=5)
    assert [hits[0] for hits in found] == probe  # each added vector is its own nearest neighbour
    everything, _ = ids_and_scores(index, np.stack(list(vectors_by_id.values())[:200]), k=20)
    assert not removed & {c for hits in everything for c in hits}
    assert result.manifest.recall_at_10 >= 0.9


def test_no_change_reuses_every_shard(tmp_path, corpora):
    before = corpora[0]
    cfg = IndexConfig(rows_per_shard=500)
    build_index(before, tmp_path / "index", cfg, threads=1)
    delta, _ = plan_index_update(tmp_path / "index", EmbeddingSet.open(before), cfg)
    assert delta.changed_fraction == 0
    result = apply_index_update(delta, EmbeddingSet.open(before), tmp_path / "same", cfg, threads=1)
    assert result.stats["shards_reused"] == 4 and result.stats["vectors_added"] == 0


def test_what_forces_a_full_build(tmp_path, corpora):
    before, after, *_ = corpora
    build_index(before, tmp_path / "index", IndexConfig(), threads=1)
    after_set = EmbeddingSet.open(after)

    assert plan_index_update(tmp_path / "index", after_set, IndexConfig(refresh_max_change=0.05)) == (
        None,
        "60 removed + 80 added vectors are 7% of the index, over refresh_max_change 5%",
    )
    assert plan_index_update(tmp_path / "index", after_set, IndexConfig(metric="l2"))[1] == "the index config changed"
    # where it runs and the refresh policy are not part of the index's identity
    assert plan_index_update(tmp_path / "index", after_set, IndexConfig(use_gpu=True, refresh_max_change=1))[0]

    rng = np.random.default_rng(0)
    other = write(tmp_path / "other", ["x0", "x1"], unit(rng.standard_normal((2, DIM))), 2, model="other@1")
    assert plan_index_update(tmp_path / "index", EmbeddingSet.open(other), IndexConfig())[1] == (
        "the embedding model changed (synthetic@0 -> other@1)"
    )
