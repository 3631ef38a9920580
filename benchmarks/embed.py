"""Chunking and embedding throughput on real pre-training text (20 arXiv LaTeX papers, 99 C4 pages), on this machine,
and how close embedding comes to the machine's fp32 matmul peak.

Chunking: documents, tokens and chunks per second with the all-MiniLM-L6-v2 tokenizer, chunk sizes, overlaps, and
where chunks end (paragraph break, sentence end, word boundary, inside a word).

Embedding efficiency: the machine's fp32 matmul peak is measured in the same run (a torch GEMM, best of several
square sizes), and each embedding setting reports its achieved FLOP/s, counted as 2 x non-embedding parameters x real
(non-padding) tokens, as a fraction of that peak, plus chunks/s. On a shared machine the peak moves with the load, so
a GEMM probe also runs between every two batches and each setting reports a second fraction against the probes' rate
(same load as the batches around them). Settings (levers): batch size with length-sorted batches (what
``Embedder.encode_documents`` does), the same batches in the input's order (padding cost), one torch thread, and two
processes of one thread each on halves of the input (parallel shards). Then ``embed_chunks`` end to end and its re-run
(every shard skipped).

    .venv/bin/python benchmarks/embed.py [--data PATH] [--n-embed 256]

Prints tables; writes ``benchmarks/results/embed.json``. Numbers depend on the machine's load (recorded).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
GOAL_OF_PEAK = 0.7


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


class GemmProbe:
    """fp32 ``torch.mm`` of two ``n x n`` matrices, timed: the machine's matmul rate at the moment it runs."""

    def __init__(self, n: int = 1024):
        generator = torch.Generator().manual_seed(0)
        self.n = n
        self.a, self.b = (torch.randn(n, n, generator=generator) for _ in range(2))
        self.out = torch.empty(n, n)
        self.seconds = 0.0
        self.flops = 0.0
        torch.mm(self.a, self.b, out=self.out)  # warm-up

    def __call__(self, *_: object) -> float:
        start = time.perf_counter()
        torch.mm(self.a, self.b, out=self.out)
        seconds = time.perf_counter() - start
        self.seconds += seconds
        self.flops += 2 * self.n**3
        return seconds

    @property
    def rate(self) -> float:
        return self.flops / self.seconds


def matmul_peak(repeats: int = 5) -> dict:
    """Best fp32 GEMM rate over square sizes (the largest is usually the best; a loaded machine can disagree)."""
    rates = {}
    for n in (512, 1024, 2048):
        probe = GemmProbe(n)
        rates[n] = 2 * n**3 / min(probe() for _ in range(repeats))
    return {
        "peak_gflops": round(max(rates.values()) / 1e9, 2),
        **{f"gemm{n}_gflops": round(r / 1e9, 2) for n, r in rates.items()},
    }


def non_embedding_parameters(embedder: Embedder) -> int:
    """Parameters of the transformer without its embedding tables (lookups, not matmuls)."""
    model = embedder.model[0].auto_model
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


def padded_tokens(lengths: list[int], order: list[int], batch_size: int) -> int:
    """Tokens computed when batches are taken in ``order``: every text is padded to its batch's longest."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


def encode_in_given_order(embedder: Embedder, texts: list[str], on_batch) -> None:
    """Batches in the input's order (no sorting by length): what padding costs."""
    size = embedder.cfg.batch_size
    for start in range(0, len(texts), size):
        batch = texts[start : start + size]
        embedder.model.encode(batch, batch_size=len(batch), prompt="", show_progress_bar=False)
        on_batch(len(batch))


def efficiency_row(setting: str, texts: list[str], lengths: list[int], seconds: float, probe_rate: float | None,
                   peak: float, params: int, **extra) -> dict:  # fmt: skip
    flops = 2 * params * sum(lengths)
    row = {"setting": setting, **extra, "chunks": len(texts), "seconds": round(seconds, 1),
           "chunks_per_s": round(len(texts) / seconds, 2), "gflops": round(flops / seconds / 1e9, 2),
           "of_peak": round(flops / seconds / peak, 3),
           "of_probes": round(flops / seconds / probe_rate, 3) if probe_rate else None}  # fmt: skip
    print(row, flush=True)
    return row


def _embed_half(texts: list[str], batch_size: int, barrier, results) -> None:
    """One of the parallel-shard processes: one torch thread, its half of the texts, timed from a common start."""
    torch.set_num_threads(1)  # torch is imported with this module: the environment is read too early to count
    embedder = Embedder(EmbedderConfig(model=DEFAULT_EMBEDDER, batch_size=batch_size))
    embedder.encode_documents(texts[:4])  # warm-up
    barrier.wait()
    start = time.perf_counter()
    embedder.encode_documents(texts)
    results.put(time.perf_counter() - start)


def parallel_processes(texts: list[str], processes: int, batch_size: int) -> float:
    """Wall seconds for ``processes`` spawned processes (one thread each) to embed equal parts of ``texts``."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_embed_half, args=(texts[i::processes], batch_size, barrier, results))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    seconds = max(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    return seconds


def bench_efficiency(embedder: Embedder, texts: list[str], threads: int) -> tuple[dict, list[dict]]:
    peak = matmul_peak()
    params = non_embedding_parameters(embedder)
    lengths = embedder.token_counts(texts)
    print(f"matmul peak: {peak}; non-embedding parameters: {params}; tokens: {sum(lengths)}", flush=True)
    peak_rate = peak["peak_gflops"] * 1e9
    sorted_order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # as encode_documents batches
    rows = []
    embedder.encode_documents(texts[:8])  # warm-up: first call allocates

    def measure(setting: str, encode, batch_size: int, n_threads: int, order: list[int]) -> None:
        torch.set_num_threads(n_threads)
        embedder.cfg = embedder.cfg.model_copy(update={"batch_size": batch_size})
        probe = GemmProbe()
        start = time.perf_counter()
        encode(probe)
        seconds = time.perf_counter() - start - probe.seconds
        padding = padded_tokens(lengths, order, batch_size) / sum(lengths) - 1
        rows.append(efficiency_row(setting, texts, lengths, seconds, probe.rate, peak_rate, params,
                                   batch_size=batch_size, threads=n_threads, processes=1,
                                   padding_pct=round(100 * padding, 1)))  # fmt: skip

    for batch_size in BATCH_SIZES:
        measure("sorted", lambda p: embedder.encode_documents(texts, on_batch=p), batch_size, threads, sorted_order)
    measure("input order", lambda p: encode_in_given_order(embedder, texts, p), 64, threads, list(range(len(texts))))
    if threads > 1:
        measure("sorted", lambda p: embedder.encode_documents(texts, on_batch=p), 64, 1, sorted_order)
        for batch_size in (16, 64):
            seconds = parallel_processes(texts, threads, batch_size)
            rows.append(efficiency_row(f"{threads} processes", texts, lengths, seconds, None, peak_rate, params,
                                       batch_size=batch_size, threads=1, processes=threads,
                                       padding_pct=None))  # fmt: skip
    torch.set_num_threads(threads)
    embedder.cfg = embedder.cfg.model_copy(update={"batch_size": EmbedderConfig().batch_size})
    return {**peak, "non_embedding_parameters": params, "tokens": sum(lengths)}, rows


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
    parser.add_argument("--n-embed", type=int, default=256, help="chunks to embed in each efficiency setting")
    args = parser.parse_args()

    machine = {
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "note": "shared machine: other processes compete for the same cores; peak and embedding measured in one run",
    }
    embedder = Embedder(EmbedderConfig(model=DEFAULT_EMBEDDER))
    threads = torch.get_num_threads()
    machine.update(device=embedder.device, precision=embedder.precision, torch_threads=threads)
    docs = read_documents(args.data)
    chunking, chunks = bench_chunking(docs, embedder.tokenizer)
    sample = chunks.sample(n=min(args.n_embed, chunks.height), seed=0)
    peak, efficiency = bench_efficiency(embedder, sample["text"].to_list(), threads)
    end_to_end = bench_embed_chunks(embedder, sample)
    machine["load_average_1m_after"] = round(os.getloadavg()[0], 2)

    print(f"machine: {machine}")
    print_table("chunking (all-MiniLM-L6-v2 tokenizer)", chunking)
    print(f"\nfp32 matmul peak (torch GEMM, this run): {peak}")
    print_table(
        f"embedding efficiency, {embedder.model_id}, chunks of <= 254 tokens; FLOPs = 2 x "
        f"{peak['non_embedding_parameters']:,} x real tokens; goal >= {GOAL_OF_PEAK} of peak",
        efficiency,
    )
    print_table("embed_chunks (4 shards), then re-run", [end_to_end])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine, "chunking": chunking, "matmul_peak": peak, "efficiency": efficiency,
              "embed_chunks": end_to_end}  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
