"""Index build and search costs, and the overhead of Reread's search path over calling faiss directly.

    .venv/bin/python benchmarks/index.py [--sizes 100000,1000000] [--queries 1000] [--embed-texts 1000]

1. Embedding throughput of all-MiniLM-L6-v2 on CPU (chunks/s) with the torch backend and, when its dependencies are
   installed, the ONNX backend (else reported unavailable), on real Vaswani abstracts.
2. For each size: vectors of dim 384 sampled around those real MiniLM embeddings (a real embedding plus a random share
   of another plus Gaussian noise, renormalized: the corpus stays in the region real text occupies), written as an
   embedding folder and indexed with ``build_index`` as Flat, IVF, IVF-PQ and HNSW: build time, bytes per vector
   (index file size), queries/s of batched search (k=10) at two settings of nprobe / efSearch, recall@10 against Flat,
   and the peak RSS of the build and of a search process (index loaded into RAM, and for IVF types also with the
   lists on disk: ``VectorIndex.load(mmap=True)``). Each build and each search runs in a fresh process so its peak RSS
   (``VmHWM``, file pages it mapped included) is its own; ``anon_mb`` is the anonymous (heap) RSS at the end of the
   search, what mapped lists do not add; ``baseline_mb`` is such a process before it does anything.
3. On the Flat index: ``faiss`` ``index.search`` vs ``VectorIndex.search`` vs ``Retriever.search_vectors`` (search plus
   text and provenance of every hit) on the same loaded index, batched; the overhead is the extra time in percent,
   end to end and (steadier on a loaded machine) as the time of the added hit hydration alone.

Prints tables; writes ``benchmarks/results/index.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import faiss
import numpy as np
import polars as pl

from catalog.parquet import CHUNK_SCHEMA
from catalog.variant import EmbedderConfig, IndexConfig
from indexing.embed import Embedder
from indexing.embedding_store import write_embedding_shards
from indexing.retrieve import Retriever
from indexing.vector_index import VectorIndex, build_index, configure_threads, ivf_nlist, neighbor_recall

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "retrieval" / "vaswani_npl" / "doc-text.trec"
RESULTS = REPO / "benchmarks" / "results" / "index.json"
DIM = 384
SHARD_ROWS = 50_000
NOISE = 0.3  # noise norm relative to a unit embedding: no two generated vectors coincide
K = 10
REPEATS = 7  # timings are the minimum over repeats: the machine is shared, the minimum is the least disturbed run
WORDS = "retrieval datastore corpus embedding index query shard vector text passage model token".split()


def real_texts(path: Path, n: int) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [" ".join(m.split()) for m in re.findall(r"</DOCNO>(.*?)</DOC>", text, re.S)][:n]


def bench_embedding(texts: list[str]) -> tuple[list[dict], np.ndarray]:
    rows, vectors = [], None
    for backend in ("torch", "onnx"):
        try:
            embedder = Embedder(EmbedderConfig(backend=backend))
        except Exception as exc:  # noqa: BLE001 - any failure to load a backend is reported, not fatal
            rows.append({"backend": backend, "chunks_per_s": None, "note": f"unavailable: {exc}"[:160]})
            continue
        embedder.encode_documents(texts[:32])  # warm-up
        start = time.perf_counter()
        out = embedder.encode_documents(texts)
        elapsed = time.perf_counter() - start
        rows.append({"backend": backend, "chunks_per_s": round(len(texts) / elapsed, 1), "note": f"{len(texts)} texts"})
        vectors = out if vectors is None else vectors
    return rows, vectors


def sample_around(base: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Points on the span of real embeddings: a random real embedding, plus a random share of another one, plus
    Gaussian noise, renormalized. Mixing pairs fills the space between texts (no artificial clusters of copies)."""
    first = base[rng.integers(0, len(base), size=n)]
    second = base[rng.integers(0, len(base), size=n)]
    share = rng.uniform(0, 1, size=(n, 1)).astype(np.float32)
    noise = rng.standard_normal((n, base.shape[1])).astype(np.float32) * np.float32(NOISE / np.sqrt(base.shape[1]))
    out = first + share * second + noise
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def write_embedding_folder(folder: Path, vectors: np.ndarray) -> list[str]:
    """An embedding folder in indexing.embed's format; chunk ids are synthetic."""
    starts = range(0, len(vectors), SHARD_ROWS)
    ids = [[f"synthetic-{i:08d}" for i in range(s, min(s + SHARD_ROWS, len(vectors)))] for s in starts]
    shards = [(chunk_ids, vectors[s : s + SHARD_ROWS]) for chunk_ids, s in zip(ids, starts, strict=True)]
    folder.mkdir(parents=True)
    write_embedding_shards(folder, shards, "synthetic-around-minilm@0")
    return [i for chunk_ids in ids for i in chunk_ids]


def write_chunks(path: Path, ids: list[str], rng: np.random.Generator) -> None:
    """Chunk rows for the synthetic ids, with ~600 characters of text each (a realistic payload to fetch)."""
    words = np.array(WORDS)
    texts = [" ".join(words[rng.integers(0, len(words), size=80)]) for _ in range(len(ids))]
    frame = pl.DataFrame(
        {
            "chunk_id": ids,
            "doc_id": [f"doc-{i // 4}" for i in range(len(ids))],
            "source": "synthetic",
            "url": [f"https://example.org/{i // 4}" for i in range(len(ids))],
            "title": None,
            "text": texts,
            "char_start": 0,
            "char_end": [len(t) for t in texts],
            "n_tokens": 80,
        },
        schema=pl.DataFrame(CHUNK_SCHEMA.empty_table()).schema,
    )
    frame.write_parquet(path)


def timed(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _rss_mb() -> dict[str, float]:
    """This process's peak RSS (VmHWM) and current anonymous RSS (RssAnon), in MiB (Linux /proc)."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon"):
                fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"peak_rss_mb": fields["VmHWM"], "anon_mb": fields["RssAnon"]}


def _child_baseline() -> dict:
    return _rss_mb()


def _child_build(emb_dir: str, out: str, cfg_json: str) -> dict:
    start = time.perf_counter()
    manifest = build_index(emb_dir, out, IndexConfig.model_validate_json(cfg_json))
    return {"build_s": time.perf_counter() - start, "bytes": sum(s.bytes for s in manifest.shards), **_rss_mb()}


def _child_search(index_dir: str, mmap: bool, param: str | None, value: int | None, queries: np.ndarray) -> dict:
    index = VectorIndex.load(index_dir, mmap=mmap)
    if param is not None:
        index.set_search_params(**{param: value})
    seconds = timed(lambda: index.search(queries, K), repeats=3)
    return {"seconds": seconds, "rows": index.search(queries, K).rows, **_rss_mb()}


def in_fresh_process(fn, *args) -> dict:
    """``fn(*args)`` in a new spawned interpreter: its peak RSS is that of this one step alone."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def bench_indexes(work: Path, n: int, base: np.ndarray, queries: np.ndarray, rng) -> tuple[list[dict], Path, list]:
    vectors = sample_around(base, n, rng)
    ids = write_embedding_folder(work / f"emb-{n}", vectors)
    del vectors
    nlist = ivf_nlist(n)
    specs = [
        ("Flat", IndexConfig(), None, [None]),
        (f"IVF{nlist},Flat", IndexConfig(factory=f"IVF{nlist},Flat", nprobe=16), "nprobe", [16, 64]),
        (f"IVF{nlist},PQ48", IndexConfig(factory=f"IVF{nlist},PQ48", nprobe=16), "nprobe", [16, 64]),
        ("HNSW32", IndexConfig(factory="HNSW32", ef_search=64), "efSearch", [32, 128]),
    ]
    baseline = in_fresh_process(_child_baseline)["peak_rss_mb"]
    rows, exact = [], None
    for name, cfg, param, values in specs:
        out = work / f"index-{n}-{name.replace(',', '_')}"
        built = in_fresh_process(_child_build, str(work / f"emb-{n}"), str(out), cfg.model_dump_json())
        for mmap in (False, True) if param == "nprobe" else (False,):
            for value in values:
                searched = in_fresh_process(_child_search, str(out), mmap, param, value, queries)
                if exact is None:
                    exact = searched["rows"]
                rows.append(
                    {
                        "n": n,
                        "index": name,
                        "param": f"{param}={value}" if param else "-",
                        "lists": "disk" if mmap else "ram",
                        "build_s": round(built["build_s"], 1),
                        "bytes_per_vector": round(built["bytes"] / n, 1),
                        "build_peak_mb": built["peak_rss_mb"],
                        "qps": round(len(queries) / searched["seconds"], 1),
                        "recall@10": round(neighbor_recall(searched["rows"], exact, K), 4),
                        "search_peak_mb": searched["peak_rss_mb"],
                        "anon_mb": searched["anon_mb"],
                        "baseline_mb": baseline,
                    }
                )
                print(rows[-1], flush=True)
    return rows, work / f"index-{n}-Flat", ids


def bench_overhead(index_dir: Path, ids: list[str], queries: np.ndarray, work: Path, rng) -> list[dict]:
    chunks = work / "overhead-chunks.parquet"
    write_chunks(chunks, ids, rng)
    retriever = Retriever(index_dir, [chunks], None, cache_dir=work / "cache")  # vectors in: no embedder
    raw = retriever.index.shard_indexes[0]
    rows = []
    for batch, k in ((1, 10), (100, 10), (100, 100)):
        q = np.ascontiguousarray(queries[:batch])
        calls = {
            "faiss": lambda q=q, k=k: raw.search(q, k),
            "vector_index": lambda q=q, k=k: retriever.index.search(q, k),
            "retriever": lambda q=q, k=k: retriever.search_vectors(q, k),
        }
        found = retriever.index.search(q, k)
        calls["hydrate"] = lambda found=found: retriever.hits_for_rows(list(found.rows), list(found.scores))
        calls["retriever"]()  # warm the memory map
        best = dict.fromkeys(calls, float("inf"))
        for _ in range(REPEATS * 2):  # interleaved, so drifting load hits all three alike
            for name, call in calls.items():
                best[name] = min(best[name], timed(call, repeats=1))
        rows.append(
            {
                "queries": batch,
                "k": k,
                "faiss_ms": round(best["faiss"] * 1e3, 2),
                "vector_index_ms": round(best["vector_index"] * 1e3, 2),
                "retriever_ms": round(best["retriever"] * 1e3, 2),
                "overhead_pct": round(100 * (best["retriever"] - best["faiss"]) / best["faiss"], 1),
                # The added work alone (text + provenance of every hit), less exposed to the shared machine's noise.
                "hydrate_ms": round(best["hydrate"] * 1e3, 2),
                "hydrate_pct": round(100 * best["hydrate"] / best["faiss"], 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    if not rows:
        return
    print(f"\n{title}")
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[k]).rjust(w) for k, w in zip(keys, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated corpus sizes, e.g. 100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--embed-texts", type=int, default=1000, help="real abstracts embedded (throughput, base)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    threads = configure_threads()
    rng = np.random.default_rng(0)

    texts = real_texts(args.data, args.embed_texts)
    embed_rows, real = bench_embedding(texts)
    print_table("embedding throughput (CPU)", embed_rows)
    base, held_out = real[: len(real) * 4 // 5], real[len(real) * 4 // 5 :]
    queries = sample_around(held_out, args.queries, rng)

    index_rows, overhead_rows = [], []
    with tempfile.TemporaryDirectory(prefix="reread-index-bench-") as tmp:
        work = Path(tmp)
        for i, n in enumerate(int(s) for s in args.sizes.split(",")):
            rows, flat_dir, ids = bench_indexes(work, n, base, queries, rng)
            index_rows += rows
            if i == 0:
                overhead_rows = bench_overhead(flat_dir, ids, queries, work, rng)
    print_table("embedding throughput (CPU)", embed_rows)
    print_table(f"indexes (dim {DIM}, {args.queries} queries, k={K}, {threads} threads)", index_rows)
    print_table(f"search-path overhead on the Flat index (best of {REPEATS * 2}, interleaved)", overhead_rows)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "embedding": embed_rows,
                "indexes": index_rows,
                "overhead": overhead_rows,
                "faiss": faiss.__version__,
                "machine": {
                    "cpus": os.cpu_count(),
                    "threads": threads,
                    "platform": platform.platform(),
                    "load": os.getloadavg(),
                },
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
