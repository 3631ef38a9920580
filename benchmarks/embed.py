"""Chunking and embedding throughput on real pre-training text (20 arXiv LaTeX papers, 99 C4 pages), on this machine.

Chunking: documents, tokens and chunks per second with the all-MiniLM-L6-v2 tokenizer, chunk sizes, overlaps, and
where chunks end (paragraph break, sentence end, word boundary, inside a word). Embedding: all-MiniLM-L6-v2 chunks
per second on CPU (torch, fp32) by batch size, then ``embed_chunks`` end to end and its re-run (every shard skipped).

    .venv/bin/python benchmarks/embed.py [--data PATH] [--n-embed 512]

Prints tables; writes ``benchmarks/results/embed.json``. Numbers depend on the machine's load (recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from catalog.variant import DEFAULT_EMBEDDER, ChunkingConfig, EmbedderConfig
from indexing.chunk import Chunker, chunk_documents
from indexing.embed import Embedder, embed_chunks

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared/data/pretraining_samples"
RESULTS = REPO / "benchmarks/results/embed.json"
CHUNKINGS = (ChunkingConfig(size=254, overlap=32), ChunkingConfig(size=128, overlap=16))
BATCH_SIZES = (16, 64, 128)


def read_documents(data: Path) -> pl.DataFrame:
    rows = []
    with (data / "arxiv_redpajama_sample.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rows.append({"doc_id": f"arxiv-{row['meta']['arxiv_id']}", "text": row["text"], "source": "arxiv"})
    with (data / "c4_sample.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rows.append({"doc_id": f"c4-{row['id']}", "text": row["text"], "source": "c4"})
    return pl.DataFrame(rows)


def end_kind(text: str, end: int) -> str:
    """How a chunk ends: what separates it from the following text."""
    gap = re.match(r"\s*", text[end:]).group(0)
    if not gap:
        return "inside_word"
    if re.search(r"\n[^\S\n]*\n", gap):
        return "paragraph"
    if "\n" in gap or re.search(r"[.!?][\"')\]]*$", text[:end]):
        return "sentence"
    return "word"


def bench_chunking(docs: pl.DataFrame, tokenizer) -> tuple[list[dict], pl.DataFrame]:
    texts = dict(zip(docs["doc_id"], docs["text"], strict=True))
    rows, first = [], None
    for cfg in CHUNKINGS:
        chunker = Chunker(tokenizer, cfg)
        start = time.perf_counter()
        chunks = chunk_documents(docs, chunker)
        seconds = time.perf_counter() - start
        first = chunks if first is None else first
        inner = chunks.filter(pl.col("doc_id") == pl.col("doc_id").shift(-1))  # a document's last chunk ends it
        kinds = [end_kind(texts[d], e) for d, e in zip(inner["doc_id"], inner["char_end"], strict=True)]
        overlaps = [
            a_end - b_start
            for (a_doc, a_end), (b_doc, b_start) in zip(
                zip(chunks["doc_id"], chunks["char_end"], strict=True),
                zip(chunks["doc_id"][1:], chunks["char_start"][1:], strict=True),
                strict=False,
            )
            if a_doc == b_doc
        ]
        rows.append(
            {
                "size": cfg.size,
                "overlap": cfg.overlap,
                "documents": docs.height,
                "chars": int(docs["text"].str.len_chars().sum()),
                "chunks": chunks.height,
                "seconds": round(seconds, 3),
                "docs_per_s": round(docs.height / seconds, 1),
                "chunk_tokens_per_s": round(int(chunks["n_tokens"].sum()) / seconds),
                "mean_tokens": round(float(chunks["n_tokens"].mean()), 1),
                "max_tokens": int(chunks["n_tokens"].max()),
                "mean_overlap_chars": round(float(np.mean(overlaps)), 1),
                **{f"ends_{k}": round(kinds.count(k) / len(kinds), 3) for k in ("paragraph", "sentence", "word")},
                "ends_inside_word": round(kinds.count("inside_word") / len(kinds), 3),
            }
        )
    return rows, first


def bench_encode(embedder: Embedder, texts: list[str]) -> list[dict]:
    rows = []
    embedder.encode_documents(texts[:8])  # warm-up: first call allocates
    for batch_size in BATCH_SIZES:
        cfg = embedder.cfg.model_copy(update={"batch_size": batch_size})
        embedder.cfg = cfg
        start = time.perf_counter()
        embedder.encode_documents(texts)
        seconds = time.perf_counter() - start
        rows.append({"batch_size": batch_size, "chunks": len(texts), "seconds": round(seconds, 2),
                     "chunks_per_s": round(len(texts) / seconds, 1)})  # fmt: skip
    return rows


def bench_embed_chunks(embedder: Embedder, chunks: pl.DataFrame) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "part-00000.parquet"
        chunks.write_parquet(part)
        shard_size = max(1, chunks.height // 4)
        start = time.perf_counter()
        first = embed_chunks([part], Path(tmp) / "emb", embedder, shard_size)
        embed_s = time.perf_counter() - start
        start = time.perf_counter()
        again = embed_chunks([part], Path(tmp) / "emb", embedder, shard_size)
        rerun_s = time.perf_counter() - start
    return {
        "chunks": chunks.height,
        "shard_size": shard_size,
        "embed_seconds": round(embed_s, 2),
        "chunks_per_s": round(chunks.height / embed_s, 1),
        "shards_embedded": first.stats.as_dict().get("shards_embedded", 0),
        "rerun_seconds": round(rerun_s, 3),
        "rerun_shards_skipped": again.stats.as_dict().get("shards_skipped", 0),
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[k]).rjust(w) for k, w in zip(keys, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with the two sample JSONL files")
    parser.add_argument("--n-embed", type=int, default=512, help="chunks to embed in the throughput runs")
    args = parser.parse_args()

    machine = {"cpu_threads": torch.get_num_threads(), "load_average_1m": round(os.getloadavg()[0], 2)}
    embedder = Embedder(EmbedderConfig(model=DEFAULT_EMBEDDER))
    machine.update(device=embedder.device, precision=embedder.precision, torch_threads=torch.get_num_threads())
    docs = read_documents(args.data)
    chunking, chunks = bench_chunking(docs, embedder.tokenizer)
    sample = chunks.sample(n=min(args.n_embed, chunks.height), seed=0)
    encoding = bench_encode(embedder, sample["text"].to_list())
    end_to_end = bench_embed_chunks(embedder, sample)
    machine["load_average_1m_after"] = round(os.getloadavg()[0], 2)

    print(f"machine: {machine}")
    print_table("chunking (all-MiniLM-L6-v2 tokenizer)", chunking)
    print_table(f"encode_documents, {embedder.model_id}, chunks of <= 254 tokens", encoding)
    print_table("embed_chunks (4 shards), then re-run", [end_to_end])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine, "chunking": chunking, "encode": encoding, "embed_chunks": end_to_end}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
