"""FAISS index build/load/search on embedding folders in the real artifact format (synthetic vectors: exactness,
sharded merge, artifact validation, auto choice). Recall on real MiniLM embeddings is in test_retrieve.py."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.errors import ArtifactError, ConfigError
from catalog.variant import IndexConfig
from indexing.embedding_store import write_embedding_shards
from indexing.vector_index import (
    VectorIndex,
    build_index,
    choose_factory,
    gpu_unavailable_reason,
    ivf_nlist,
    merge_topk,
    plan_shard_groups,
    read_index_manifest,
)

DIM = 32
SHARD_ROWS = (700, 500, 900)


def write_embeddings(folder: Path, shards: list[tuple[list[str], np.ndarray]], model_id: str = "synthetic@0") -> Path:
    """An embedding folder exactly as indexing.embed writes it (manifest, .npy and .ids.parquet per shard)."""
    folder.mkdir(parents=True)
    write_embedding_shards(folder, shards, model_id)
    return folder


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    shards, all_vecs, all_ids = [], [], []
    for s, rows in enumerate(SHARD_ROWS):
        ids = [f"chunk-{s}-{i:04d}" for i in range(rows)]
        vecs = unit(rng.standard_normal((rows, DIM)))
        shards.append((ids, vecs))
        all_vecs.append(vecs)
        all_ids += ids
    folder = write_embeddings(tmp_path_factory.mktemp("emb") / "embeddings", shards)
    return folder, np.concatenate(all_vecs), all_ids


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return unit(np.random.default_rng(11).standard_normal((25, DIM)))


@pytest.fixture(scope="module")
def flat_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("flat") / "index"
    build_index(corpus[0], out, IndexConfig(), threads=1)
    return out


def test_flat_is_exact_cosine(corpus, queries, flat_dir):
    _, vectors, _ = corpus
    result = VectorIndex.load(flat_dir).search(queries, 10)
    sims = queries @ vectors.T
    expected_rows = np.argsort(-sims, axis=1)[:, :10]
    np.testing.assert_array_equal(result.rows, expected_rows)
    np.testing.assert_allclose(result.scores, np.take_along_axis(sims, expected_rows, axis=1), atol=1e-5)


def test_manifest_records_model_factory_and_rows(corpus, flat_dir):
    manifest = read_index_manifest(flat_dir)
    assert (manifest.factory, manifest.metric, manifest.dim, manifest.ntotal) == ("Flat", "ip", DIM, sum(SHARD_ROWS))
    assert manifest.model == "synthetic@0"
    assert [s.embedding_shards for s in manifest.shards] == [["shard-00000", "shard-00001", "shard-00002"]]
    assert manifest.recall_at_10 is None  # exact: nothing to measure


def test_rows_map_to_chunk_ids(corpus, queries, flat_dir):
    _, vectors, ids = corpus
    index = VectorIndex.load(flat_dir)
    result = index.search(vectors[[5, 800, 2000]], 1)  # each vector finds itself
    assert index.chunk_ids(result.rows[:, 0]) == [ids[5], ids[800], ids[2000]]
    assert index.chunk_ids(result.rows[:, 0]) == ["chunk-0-0005", "chunk-1-0100", "chunk-2-0800"]


@pytest.mark.parametrize("sharding", [{"shards": 2}, {"shards": 3}, {"rows_per_shard": 600}])
def test_sharded_search_equals_unsharded_flat(corpus, queries, flat_dir, tmp_path, sharding):
    manifest = build_index(corpus[0], tmp_path / "sharded", IndexConfig(), threads=1, **sharding)
    assert len(manifest.shards) > 1
    assert sum(s.rows for s in manifest.shards) == manifest.ntotal == sum(SHARD_ROWS)
    sharded, single = VectorIndex.load(tmp_path / "sharded"), VectorIndex.load(flat_dir)
    for k in (1, 10, 800):  # 800 exceeds the smaller shards' row counts
        a, b = sharded.search(queries, k), single.search(queries, k)
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.scores, b.scores)
    assert sharded.chunk_ids(a.rows[0]) == single.chunk_ids(b.rows[0])


def test_k_beyond_corpus_pads_with_minus_one(flat_dir, queries):
    result = VectorIndex.load(flat_dir).search(queries[:2], sum(SHARD_ROWS) + 5)
    assert (result.rows[:, -5:] == -1).all()
    assert (result.rows[:, :-5] >= 0).all()


def test_merge_topk_orders_by_metric():
    scores = [np.array([[0.9, 0.1]]), np.array([[0.5, 0.4]])]
    rows = [np.array([[0, 1]]), np.array([[10, -1]])]
    s, r = merge_topk(scores, rows, 3, "ip")
    assert r.tolist() == [[0, 10, 1]]
    s, r = merge_topk(scores, rows, 3, "l2")
    assert r.tolist() == [[1, 10, 0]]


def test_ivf_and_hnsw_record_recall_and_search_params(corpus, tmp_path):
    ivf = build_index(corpus[0], tmp_path / "ivf", IndexConfig(factory="IVF16,Flat", nprobe=4), threads=1)
    assert ivf.search_params == {"nprobe": 4}
    assert 0 < ivf.recall_at_10 < 1  # random vectors have no cluster structure: nprobe 4 of 16 misses neighbours
    hnsw = build_index(corpus[0], tmp_path / "hnsw", IndexConfig(factory="HNSW32", ef_search=128), threads=1)
    assert hnsw.search_params == {"efSearch": 128}
    assert hnsw.recall_at_10 >= 0.9
    assert VectorIndex.load(tmp_path / "hnsw").manifest.search_params == {"efSearch": 128}


def test_auto_tunes_to_target_recall_and_records_it(corpus, tmp_path):
    manifest = build_index(corpus[0], tmp_path / "auto", IndexConfig(factory="auto"), threads=1, flat_max_vectors=100)
    assert manifest.factory == "HNSW32"
    assert manifest.requested_factory == "auto"
    assert manifest.recall_at_10 >= 0.95
    assert manifest.recall_queries == 500
    assert manifest.search_params["efSearch"] in (16, 32, 64, 128, 256, 512, 1024)
    small = build_index(corpus[0], tmp_path / "auto-flat", IndexConfig(factory="auto"), threads=1)
    assert (small.factory, small.recall_at_10) == ("Flat", 1.0)


def test_choose_factory_by_size_and_memory_budget():
    assert choose_factory(50_000, 384, 4096) == "Flat"
    assert choose_factory(2_000_000, 384, 4096) == "HNSW32"  # 2M x (4*384 + 8*32) bytes = 3.3 GiB
    assert choose_factory(2_400_000, 384, 4096) == f"IVF{ivf_nlist(2_400_000)},Flat"
    assert choose_factory(50_000_000, 384, 4096) == "OPQ64,IVF32768_HNSW32,PQ64x8"
    assert choose_factory(5_000, 384, 1) == "OPQ32,IVF128,PQ32x8"  # the largest code that fits 1 MiB
    with pytest.raises(ConfigError, match="memory_budget_mb=1 is too small"):
        choose_factory(10_000_000, 384, 1)
    assert ivf_nlist(1_000_000) == 4096
    assert ivf_nlist(1_000) == 16  # at least 39 training points per list


def test_plan_shard_groups_is_balanced_and_keeps_order():
    assert plan_shard_groups([10, 10, 10, 10]) == [[0, 1, 2, 3]]
    assert plan_shard_groups([10, 10, 10, 10], shards=2) == [[0, 1], [2, 3]]
    assert plan_shard_groups([10, 10, 10], shards=5) == [[0], [1], [2]]
    assert plan_shard_groups([5, 5, 12, 3], rows_per_shard=10) == [[0, 1], [2], [3]]
    with pytest.raises(ConfigError, match="not both"):
        plan_shard_groups([1], shards=1, rows_per_shard=1)


def test_refuses_mixed_models(corpus, tmp_path):
    rng = np.random.default_rng(3)
    other = write_embeddings(tmp_path / "other", [(["x1", "x2"], unit(rng.standard_normal((2, DIM))))], "other@1")
    with pytest.raises(ArtifactError, match="different models"):
        build_index([corpus[0], other], tmp_path / "mixed", IndexConfig())
    assert not (tmp_path / "mixed").exists()


def test_two_embedding_folders_of_one_model_index_together(corpus, tmp_path):
    rng = np.random.default_rng(4)
    more = write_embeddings(tmp_path / "more", [(["m1", "m2", "m3"], unit(rng.standard_normal((3, DIM))))])
    manifest = build_index([corpus[0], more], tmp_path / "both", IndexConfig())
    assert manifest.ntotal == sum(SHARD_ROWS) + 3
    assert VectorIndex.load(tmp_path / "both").chunk_ids([manifest.ntotal - 1]) == ["m3"]


def test_invalid_factory_is_a_config_error(corpus, tmp_path):
    with pytest.raises(ConfigError, match="'Bogus12'"):
        build_index(corpus[0], tmp_path / "bad", IndexConfig(factory="Bogus12"))


def test_existing_index_folder_is_never_overwritten(corpus, flat_dir):
    with pytest.raises(ArtifactError, match="already exists"):
        build_index(corpus[0], flat_dir, IndexConfig())


@pytest.fixture
def damaged(flat_dir, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(flat_dir, copy)
    return copy


def test_truncated_index_file_is_an_artifact_error(damaged):
    path = damaged / "index.faiss"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=r"index\.faiss: index file has 1000 bytes"):
        VectorIndex.load(damaged)


def test_garbage_index_file_is_an_artifact_error(damaged):
    path = damaged / "index.faiss"
    path.write_bytes(b"\x00garbage" * (path.stat().st_size // 8) + b"\x00" * (path.stat().st_size % 8))
    with pytest.raises(ArtifactError, match=r"index\.faiss: corrupted index file"):
        VectorIndex.load(damaged)


def test_missing_index_file_is_an_artifact_error(damaged):
    (damaged / "index.faiss").unlink()
    with pytest.raises(ArtifactError, match=r"index\.faiss: index file is missing"):
        VectorIndex.load(damaged)


def test_ntotal_mismatch_is_an_artifact_error(damaged):
    raw = json.loads((damaged / "manifest.json").read_text())
    raw["shards"][0]["rows"] += 1
    (damaged / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=f"holds {sum(SHARD_ROWS)} vectors, manifest says {sum(SHARD_ROWS) + 1}"):
        VectorIndex.load(damaged)


def test_ids_file_of_wrong_length_is_an_artifact_error(damaged):
    pq.write_table(pa.table({"row": [0], "chunk_id": ["x"]}), damaged / "ids.parquet")
    with pytest.raises(ArtifactError, match=r"ids\.parquet: 1 ids, manifest says ntotal=2100"):
        VectorIndex.load(damaged)


def test_missing_or_broken_manifest_is_an_artifact_error(damaged):
    (damaged / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"manifest\.json: index manifest is not readable JSON"):
        VectorIndex.load(damaged)
    (damaged / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json: index manifest is missing"):
        VectorIndex.load(damaged)


# ---------------------------------------------------------------- at scale: IVF-PQ, lists on disk, GPU fallback
@pytest.mark.parametrize("factory", ["IVF16,Flat", pytest.param("IVF16,PQ8x4", marks=pytest.mark.slow)])
def test_search_on_disk_returns_what_the_loaded_index_returns(corpus, queries, tmp_path, factory):
    # two index shards, each filled from its memory-mapped embedding shards after one training on a sample
    manifest = build_index(corpus[0], tmp_path / "ivf", IndexConfig(factory=factory, nprobe=8), rows_per_shard=1200)
    assert [s.embedding_shards for s in manifest.shards] == [["shard-00000", "shard-00001"], ["shard-00002"]]
    in_ram = VectorIndex.load(tmp_path / "ivf").search(queries, 10)
    on_disk = VectorIndex.load(tmp_path / "ivf", mmap=True).search(queries, 10)
    np.testing.assert_array_equal(on_disk.rows, in_ram.rows)
    np.testing.assert_allclose(on_disk.scores, in_ram.scores, rtol=1e-6)
    assert manifest.recall_at_10 > (0.2 if "PQ" in factory else 0.8)  # chance: 10 of 2100


def test_use_gpu_without_a_gpu_builds_and_searches_on_cpu_and_says_why(corpus, queries, tmp_path, caplog):
    if gpu_unavailable_reason() is None:
        pytest.skip("faiss sees a GPU here: the fallback is not reachable")
    cfg = IndexConfig(factory="IVF16,Flat", nprobe=16)
    with caplog.at_level(logging.WARNING, logger="indexing.vector_index"):
        build_index(corpus[0], tmp_path / "gpu", cfg.model_copy(update={"use_gpu": True}), threads=1)
    assert f"use_gpu: {gpu_unavailable_reason()}; building on CPU" in caplog.text
    assert "without GPU support" in caplog.text or "no GPU" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="indexing.vector_index"):
        index = VectorIndex.load(tmp_path / "gpu", use_gpu=True)
    assert not index.on_gpu and caplog.text.count("searching on CPU") == 1
    build_index(corpus[0], tmp_path / "cpu", cfg, threads=1)
    cpu = VectorIndex.load(tmp_path / "cpu")
    assert read_index_manifest(tmp_path / "gpu") == read_index_manifest(tmp_path / "cpu")  # same index either way
    np.testing.assert_array_equal(index.search(queries, 10).rows, cpu.search(queries, 10).rows)
