"""Retrieval end to end on real text: Vaswani abstracts chunked one per document, embedded with the real bundled
MiniLM (indexing.embed), indexed with real FAISS; search, cache, recall of IVF/HNSW, near-duplicates, MMR, bagging,
reranking with a tiny cross-encoder built here, and BM25 / hybrid."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from catalog.errors import ArtifactError
from catalog.ids import chunk_id
from catalog.parquet import CHUNK_SCHEMA
from catalog.variant import EmbedderConfig, IndexConfig, RetrievalConfig
from indexing.bm25 import BM25Index, HybridRetriever, reciprocal_rank_fusion
from indexing.diversify import bag, mmr, near_duplicate_free
from indexing.embed import Embedder, embed_chunks
from indexing.rerank import Reranker
from indexing.retrieve import Retriever, select_for_reading
from indexing.vector_index import VectorIndex, build_index, neighbor_recall

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "retrieval"
N_DOCS = 500
CHUNKS_PER_FILE = 300
DUPLICATED_DOC = "vaswani-17"


# Tests using these fixtures are marked slow (tests/conftest.py): the datastore embeds Vaswani with MiniLM.
SLOW_FIXTURES = ("datastore",)


def read_trec_docs(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    return [(m[0], " ".join(m[1].split())) for m in re.findall(r"<DOCNO>(\d+)</DOCNO>(.*?)</DOC>", text, re.S)]


def read_trec_queries(path: Path) -> list[str]:
    return [" ".join(q.split()).lower() for q in re.findall(r"<title>(.*?)</title>", path.read_text(), re.S)]


def chunk_row(doc_id: str, text: str) -> dict:
    return {
        "chunk_id": chunk_id(doc_id, text),
        "doc_id": doc_id,
        "source_doc_id": doc_id.removeprefix("vaswani-"),  # the collection's own DOCNO
        "source": "vaswani",
        "url": f"npl://{doc_id}",
        "title": None,
        "text": text,
        "char_start": 0,
        "char_end": len(text),
        "n_tokens": len(text.split()),
    }


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(EmbedderConfig(batch_size=64))


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return read_trec_queries(FIXTURES / "vaswani_queries.trec")


@pytest.fixture(scope="module")
def datastore(tmp_path_factory, embedder) -> dict:
    """Two chunk files (one chunk per abstract, plus a near-copy of one abstract), embeddings and a Flat index."""
    root = tmp_path_factory.mktemp("datastore")
    docs = read_trec_docs(FIXTURES / "vaswani_docs_1500.trec")[:N_DOCS]
    rows = [chunk_row(f"vaswani-{docno}", text) for docno, text in docs]
    original = next(r for r in rows if r["doc_id"] == DUPLICATED_DOC)
    rows.append(chunk_row("copy-of-17", original["text"].replace(" the ", " a ", 1) + " reprinted"))
    paths = []
    for part, start in enumerate(range(0, len(rows), CHUNKS_PER_FILE)):
        path = root / f"chunks-{part}.parquet"
        pl.DataFrame(
            rows[start : start + CHUNKS_PER_FILE], schema=pl.DataFrame(CHUNK_SCHEMA.empty_table()).schema
        ).write_parquet(path)
        paths.append(path)
    embed_chunks(paths, root / "embeddings", embedder, shard_size=400)
    build_index(root / "embeddings", root / "flat", IndexConfig(), threads=2)
    return {"root": root, "chunks": paths, "rows": {r["chunk_id"]: r for r in rows}, "texts": [r["text"] for r in rows]}


@pytest.fixture(scope="module")
def retriever(datastore, embedder) -> Retriever:
    return Retriever(datastore["root"] / "flat", datastore["chunks"], embedder)


def test_hits_carry_text_and_provenance_of_the_indexed_chunk(datastore, retriever, embedder, queries):
    results = retriever.search(queries[:5], k=10)
    assert [len(hits) for hits in results] == [10] * 5
    query_vecs = embedder.encode_queries(queries[:5])
    doc_vecs = embedder.encode_documents([h.text for hits in results for h in hits]).reshape(5, 10, -1)
    for hits, qvec, hit_vecs in zip(results, query_vecs, doc_vecs, strict=True):
        assert [h.rank for h in hits] == list(range(1, 11))
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
        for h, doc_vec in zip(hits, hit_vecs, strict=True):
            row = datastore["rows"][h.chunk_id]
            assert (h.doc_id, h.source, h.url, h.title, h.text) == (
                row["doc_id"],
                "vaswani",
                row["url"],
                None,
                row["text"],
            )
            assert (h.char_start, h.char_end) == (0, len(row["text"]))
            assert h.score == pytest.approx(float(qvec @ doc_vec), abs=1e-4)


def test_search_equals_bare_faiss_search(datastore, retriever, embedder, queries):
    bare = VectorIndex.load(datastore["root"] / "flat").search(embedder.encode_queries(queries[:20]), 20)
    hits = retriever.search(queries[:20], k=20)
    assert [[h.row for h in q] for q in hits] == bare.rows.tolist()


def test_an_abstract_retrieves_itself_first(datastore, retriever):
    text = datastore["texts"][123]
    top = retriever.search([text], k=3)[0]
    assert top[0].text == text
    assert top[0].score > 0.99


def test_top_k_cache_skips_faiss_on_the_second_search(datastore, embedder, queries, tmp_path):
    first = Retriever(datastore["root"] / "flat", datastore["chunks"], embedder, cache_dir=tmp_path)
    before = first.search(queries[:8], k=15)
    assert first.index.stats.counters["faiss_searches"] == 1
    assert first.stats.counters == {"cache_hits": 0, "cache_misses": 8}
    again = first.search(queries[:8], k=15)
    assert again == before
    assert first.index.stats.counters["faiss_searches"] == 1  # no new faiss call
    assert first.stats.counters["cache_hits"] == 8
    # A new retriever (a later ablation run) reuses the stored top-K; another K is another key.
    second = Retriever(datastore["root"] / "flat", datastore["chunks"], embedder, cache_dir=tmp_path)
    assert second.search(queries[:8], k=15) == before
    assert "faiss_searches" not in second.index.stats.counters
    second.search(queries[:2], k=5)
    assert second.index.stats.counters["faiss_searches"] == 1
    assert len(list((tmp_path / "topk").rglob("*.json"))) == 10


def test_missing_chunk_files_are_an_artifact_error(datastore, embedder):
    missing = N_DOCS + 1 - CHUNKS_PER_FILE
    with pytest.raises(ArtifactError, match=rf"ids\.parquet: {missing} indexed chunk ids are in none of the 1 chunk"):
        Retriever(datastore["root"] / "flat", datastore["chunks"][:1], embedder)
    with pytest.raises(ArtifactError, match="chunk file is missing"):
        Retriever(datastore["root"] / "flat", [datastore["root"] / "nope.parquet"], embedder)


def test_chunk_file_passed_twice_is_an_artifact_error(datastore, embedder):
    with pytest.raises(ArtifactError, match=f"repeat {CHUNKS_PER_FILE} chunk ids"):
        Retriever(datastore["root"] / "flat", [*datastore["chunks"], datastore["chunks"][0]], embedder)


def test_damaged_lookup_file_is_rebuilt(datastore, embedder, queries, tmp_path):
    expected = Retriever(datastore["root"] / "flat", datastore["chunks"], embedder, cache_dir=tmp_path).search(
        queries[:3], k=5
    )
    (lookup,) = (tmp_path / "lookup").glob("chunks-*.arrow")
    lookup.write_bytes(lookup.read_bytes()[:100])
    again = Retriever(datastore["root"] / "flat", datastore["chunks"], embedder, cache_dir=tmp_path)
    assert again.search(queries[:3], k=5) == expected
    assert lookup.stat().st_size > 100


@pytest.mark.parametrize(("factory", "params", "bound"), [("IVF16,Flat", {"nprobe": 4}, 0.8), ("HNSW32", {}, 0.95)])
def test_approximate_indexes_recall_on_real_embeddings(datastore, embedder, queries, factory, params, bound):
    out = datastore["root"] / f"index-{factory}"
    cfg = IndexConfig(factory=factory, **params)
    manifest = build_index(datastore["root"] / "embeddings", out, cfg, threads=2)
    query_vecs = embedder.encode_queries(queries)
    exact = VectorIndex.load(datastore["root"] / "flat").search(query_vecs, 10).rows
    approx = VectorIndex.load(out).search(query_vecs, 10).rows
    assert neighbor_recall(approx, exact) >= bound
    assert manifest.recall_at_10 >= bound  # recorded on corpus-sampled queries at build time


def test_auto_index_on_real_embeddings_records_recall(datastore):
    out = datastore["root"] / "index-auto"
    manifest = build_index(datastore["root"] / "embeddings", out, IndexConfig(factory="auto"), flat_max_vectors=100)
    assert manifest.factory == "HNSW32"
    assert manifest.recall_at_10 >= 0.95
    assert set(manifest.search_params) == {"efSearch"}


def test_near_duplicates_and_mmr_on_a_planted_copy(retriever):
    query = "design formulae for matching quadripoles"
    pool = retriever.search([query], k=10)[0]
    assert {pool[0].doc_id, pool[1].doc_id} == {DUPLICATED_DOC, "copy-of-17"}
    vecs = retriever.vectors(pool)
    assert near_duplicate_free(vecs, 0.95) == [0, *range(2, 10)]  # the copy goes, everything else stays
    qvec = retriever.encode([query])[0]
    assert mmr(qvec, vecs, 1.0, 10) == list(range(10))  # lambda 1: relevance order
    diverse = mmr(qvec, vecs, 0.5, 3)
    assert diverse[0] == 0 and 1 not in diverse

    cfg = RetrievalConfig(top_k=10, near_dup_threshold=0.95)
    picked = select_for_reading(retriever, [query], cfg, n_docs=3)[0]
    assert [h.chunk_id for h in picked] == [pool[0].chunk_id, pool[2].chunk_id, pool[3].chunk_id]
    assert [h.rank for h in picked] == [1, 2, 3]
    picked = select_for_reading(retriever, [query], RetrievalConfig(top_k=10, mmr_lambda=0.5), n_docs=3)[0]
    assert len(picked) == 3 and picked[0].chunk_id == pool[0].chunk_id
    assert not {DUPLICATED_DOC, "copy-of-17"} <= {h.doc_id for h in picked}


def test_bagging_is_seeded_and_keeps_rank_order(retriever, queries):
    hits = retriever.search(queries[:1], k=20)[0]
    bags = bag(hits, n_bags=4, bag_size=5, seed=13)
    assert bags == bag(hits, n_bags=4, bag_size=5, seed=13)
    assert bags != bag(hits, n_bags=4, bag_size=5, seed=14)
    for b in bags:
        assert len({h.chunk_id for h in b}) == 5
        assert [h.rank for h in b] == sorted(h.rank for h in b)
    assert len({tuple(h.rank for h in b) for b in bags}) > 1
    assert bag(hits[:3], n_bags=2, bag_size=5, seed=0) == [hits[:3], hits[:3]]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory, save_tiny_bert) -> Path:
    """A random 2-layer BERT sequence classifier (one logit), saved with MiniLM's tokenizer: a real cross-encoder."""
    from transformers import BertForSequenceClassification

    return save_tiny_bert(tmp_path_factory.mktemp("cross-encoder"), BertForSequenceClassification, num_labels=1)


def test_rerank_reorders_hits_by_cross_encoder_score(tiny_cross_encoder, retriever, queries):
    from sentence_transformers import CrossEncoder

    hits = retriever.search(queries[:3], k=8)
    reranked = Reranker(tiny_cross_encoder).rerank(queries[:3], hits, top_n=5)
    direct = CrossEncoder(str(tiny_cross_encoder))
    for query, before, after in zip(queries[:3], hits, reranked, strict=True):
        scores = direct.predict([(query, h.text) for h in before])
        expected = [before[i].chunk_id for i in np.argsort(-scores, kind="stable")[:5]]
        assert [h.chunk_id for h in after] == expected
        assert [h.rank for h in after] == [1, 2, 3, 4, 5]
        assert [h.score for h in after] == pytest.approx(sorted(scores, reverse=True)[:5], abs=1e-5)
    assert any([h.chunk_id for h in a] != [h.chunk_id for h in b[:5]] for a, b in zip(reranked, hits, strict=True))


def test_bm25_and_hybrid(retriever, queries, tmp_path):
    bm25 = BM25Index.for_retriever(retriever)
    rows, scores = bm25.search(["dielectric constant of liquids"], k=5)
    hits = retriever.hits_for_rows([rows[0]], [scores[0]])[0]
    assert all("dielectric" in h.text for h in hits[:3])
    assert list(scores[0]) == sorted(scores[0], reverse=True)
    bm25.save(tmp_path / "bm25")
    reloaded_rows, reloaded_scores = BM25Index.load(tmp_path / "bm25").search(["dielectric constant of liquids"], k=5)
    np.testing.assert_array_equal(reloaded_rows, rows)
    np.testing.assert_allclose(reloaded_scores, scores)

    hybrid = HybridRetriever(retriever, bm25, pool=50).search(queries[:4], k=10)
    dense = retriever.search(queries[:4], k=50)
    sparse_rows, _ = bm25.search(queries[:4], k=50)
    for fused, d, s in zip(hybrid, dense, sparse_rows, strict=True):
        assert len(fused) == 10
        assert {h.row for h in fused} <= {h.row for h in d} | set(s.tolist())
        assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_reciprocal_rank_fusion_scores():
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [doc for doc, _ in reciprocal_rank_fusion([[1, 2, 3], [3, 1]])] == [1, 3, 2]


def test_hit_is_a_plain_record(retriever, queries):
    hit = retriever.search(queries[:1], k=1)[0][0]
    assert replace(hit, rank=7).rank == 7
    fields = {"chunk_id", "doc_id", "source_doc_id", "text", "score", "rank", "char_start", "char_end"}
    assert set(hit.as_dict()) >= fields
    assert hit.doc_id == f"vaswani-{hit.source_doc_id}" and hit.source_doc_id.isdigit()


def test_retriever_without_embedder_searches_vectors_only(datastore, embedder, queries):
    vectors_only = Retriever(datastore["root"] / "flat", datastore["chunks"], None)
    query_vecs = embedder.encode_queries(queries[:2])
    hits = vectors_only.search_vectors(query_vecs, k=4)
    assert [[h.chunk_id for h in q] for q in hits] == [
        vectors_only.index.chunk_ids(rows) for rows in vectors_only.index.search(query_vecs, 4).rows
    ]
    with pytest.raises(ValueError, match="has no embedder"):
        vectors_only.search(queries[:1])


def test_select_for_reading_reranks_the_deduplicated_pool(tiny_cross_encoder, retriever):
    query = "design formulae for matching quadripoles"
    reranker = Reranker(tiny_cross_encoder)
    cfg = RetrievalConfig(top_k=10, near_dup_threshold=0.95)
    picked = select_for_reading(retriever, [query], cfg, n_docs=4, reranker=reranker)[0]
    pool = retriever.search([query], k=10)[0]
    deduplicated = [pool[0], *pool[2:]]  # the planted copy at rank 2 is dropped first
    expected = reranker.rerank([query], [deduplicated], top_n=4)[0]
    assert [h.chunk_id for h in picked] == [h.chunk_id for h in expected]
    assert [h.rank for h in picked] == [1, 2, 3, 4]
    assert [h.score for h in picked] == pytest.approx([h.score for h in expected])
    with_mmr = select_for_reading(
        retriever, [query], cfg.model_copy(update={"mmr_lambda": 1.0}), n_docs=4, reranker=reranker
    )[0]
    assert [h.chunk_id for h in with_mmr] == [h.chunk_id for h in expected]  # lambda 1 keeps the reranker's order
    other = "electron density in the ionosphere"  # a batch reranks every query's pool as each alone would
    batched = select_for_reading(retriever, [other, query], cfg, n_docs=4, reranker=reranker)
    alone = select_for_reading(retriever, [other], cfg, n_docs=4, reranker=reranker)[0]
    assert [[h.chunk_id for h in hits] for hits in batched] == [
        [h.chunk_id for h in alone],
        [h.chunk_id for h in picked],
    ]
