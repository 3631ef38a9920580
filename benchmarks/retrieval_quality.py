"""Retrieval quality on the Vaswani (NPL) collection: dense (all-MiniLM-L6-v2, Flat inner product), BM25 and hybrid
(reciprocal rank fusion) side by side, nDCG@10 and recall@100 against the collection's qrels.

    .venv/bin/python benchmarks/retrieval_quality.py [--data PATH] [--work DIR]

Documents are short abstracts, so each is one chunk. The corpus goes through Reread's own path: chunk Parquet ->
``embed_chunks`` -> ``build_index`` -> ``Retriever``. BM25 runs without stemming and, when PyStemmer is installed,
with the English Snowball stemmer too. Prints a table; writes ``benchmarks/results/retrieval_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import polars as pl

from catalog.ids import chunk_id
from catalog.parquet import CHUNK_SCHEMA
from catalog.variant import EmbedderConfig, IndexConfig
from indexing.bm25 import BM25Index, HybridRetriever
from indexing.embed import Embedder, embed_chunks
from indexing.ir_metrics import load_trec_qrels, mean_metric, ndcg_at_k, recall_at_k
from indexing.retrieve import Retriever
from indexing.vector_index import build_index

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "retrieval" / "vaswani_npl"
RESULTS = REPO / "benchmarks" / "results" / "retrieval_quality.json"
DEPTH = 100


def read_docs(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    return [(m[0], " ".join(m[1].split())) for m in re.findall(r"<DOCNO>(\d+)</DOCNO>(.*?)</DOC>", text, re.S)]


def read_queries(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    pairs = re.findall(r"<num>(\d+)</num><title>(.*?)</title>", text, re.S)
    return {num: " ".join(title.split()).lower() for num, title in pairs}


def write_chunks(docs: list[tuple[str, str]], path: Path) -> Path:
    rows = [
        {
            "chunk_id": chunk_id(docno, text),
            "doc_id": docno,
            "source_doc_id": docno,
            "source": "vaswani",
            "url": None,
            "title": None,
            "text": text,
            "char_start": 0,
            "char_end": len(text),
            "n_tokens": len(text.split()),
        }
        for docno, text in docs
    ]
    pl.DataFrame(rows, schema=pl.DataFrame(CHUNK_SCHEMA.empty_table()).schema).write_parquet(path)
    return path


def english_stemmer():
    try:
        import Stemmer
    except ImportError:
        return None
    return Stemmer.Stemmer("english").stemWord


def evaluate(runs: dict[str, list[str]], qrels) -> dict[str, float]:
    return {
        "ndcg@10": round(mean_metric(ndcg_at_k, runs, qrels, 10), 4),
        f"recall@{DEPTH}": round(mean_metric(recall_at_k, runs, qrels, DEPTH), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="folder for chunks, embeddings and index (temporary)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="reread-vaswani-"))
    work.mkdir(parents=True, exist_ok=True)

    docs = read_docs(args.data / "doc-text.trec")
    queries = read_queries(args.data / "query-text.trec")
    qrels = load_trec_qrels(args.data / "qrels")
    qids = sorted(queries, key=int)
    texts = [queries[q] for q in qids]
    timings: dict[str, float] = {}

    chunks = write_chunks(docs, work / "chunks.parquet")
    embedder = Embedder(EmbedderConfig())
    start = time.perf_counter()
    embedded = embed_chunks([chunks], work / "embeddings", embedder, shard_size=4000)  # a --work rerun skips shards
    timings["embed_s"] = time.perf_counter() - start
    timings["chunks_embedded"] = embedded.stats.counters.get("chunks_embedded", 0)  # 0: embed_s timed reuse only
    start = time.perf_counter()
    if not (work / "index" / "manifest.json").is_file():
        build_index(work / "embeddings", work / "index", IndexConfig())
    timings["index_s"] = time.perf_counter() - start
    retriever = Retriever(work / "index", [chunks], embedder)

    results: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    dense = retriever.search(texts, k=DEPTH)
    timings["dense_search_s"] = time.perf_counter() - start
    results["dense (MiniLM, Flat IP)"] = evaluate(
        {q: [h.doc_id for h in hits] for q, hits in zip(qids, dense, strict=True)}, qrels
    )

    doc_ids = retriever.lookup.table.column("doc_id").to_pylist()  # BM25 positions are index rows
    bm25_variants = {"bm25": None}
    stemmer = english_stemmer()
    if stemmer is not None:
        bm25_variants["bm25 (stemmed)"] = stemmer
    for name, stem in bm25_variants.items():
        start = time.perf_counter()
        bm25 = BM25Index.for_retriever(retriever, stemmer=stem)
        rows, _ = bm25.search(texts, DEPTH)
        timings[f"{name}_s"] = time.perf_counter() - start
        results[name] = evaluate(
            {q: [doc_ids[r] for r in row] for q, row in zip(qids, rows.tolist(), strict=True)}, qrels
        )
        hybrid = HybridRetriever(retriever, bm25, pool=DEPTH).search(texts, k=DEPTH)
        results[f"hybrid RRF (dense + {name})"] = evaluate(
            {q: [h.doc_id for h in hits] for q, hits in zip(qids, hybrid, strict=True)}, qrels
        )

    print(f"Vaswani NPL: {len(docs)} docs, {len(qids)} queries, {sum(len(v) for v in qrels.values())} qrels")
    print(f"{'method':38s} {'nDCG@10':>8s} {'R@100':>8s}")
    for name, metrics in results.items():
        print(f"{name:38s} {metrics['ndcg@10']:8.4f} {metrics[f'recall@{DEPTH}']:8.4f}")
    print("timings: " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "collection": "vaswani_npl",
                "docs": len(docs),
                "queries": len(qids),
                "embedder": embedder.model_id,
                "results": results,
                "timings_s": {k: round(v, 2) for k, v in timings.items()},
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
