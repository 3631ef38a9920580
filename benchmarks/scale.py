"""Corpus-scale build: memory and throughput of extract -> decontaminate -> dedup -> chunk as the corpus grows.

For each size N a deterministic corpus is generated from real text (sentences of the bundled C4, arXiv, Wikipedia
and Vaswani samples recombined into 1-3 KB documents with random ids, fixed seed; about 10% exact copies, with
case and spacing changed, and 5% near copies, one word in ~150 replaced, planted among them) as JSONL files of
``--docs-per-file`` documents (``--docs-per-part`` sets the variant's ``sharding.documents_per_part``, the chunk
and embed unit). The build plan (``buildplan.build``) then runs extract -> decontaminate (the bundled
MMLU slice) -> dedup -> chunk over it, and embedding + a Flat index over a fixed ``--embed-chunks`` subset of the
chunks, so sizes stay comparable. Each size runs in a fresh child process; the parent samples the peak RSS of the
whole process tree (extraction workers, Dask workers included) every 0.1 s.

    python benchmarks/scale.py --sizes 20000,200000 --json benchmarks/results/scale.json [--compare-workers]

Per size: ``{"documents": N, "peak_rss_mb": M, "seconds": {stage: s}, "docs_per_s": {stage: r},
"exact_removed": a, "near_removed": b, ...}`` under ``"sizes"``. With ``--compare-workers`` the smallest size is
also built on a local Dask cluster of one and of two workers, and ``"dask_speedup"`` gives the docs/s ratio of
extraction and chunking. Goals (issue 12): peak RSS at the largest size <= 1.5x the smallest; docs/s there >= 0.8x;
>= 99% of planted exact and >= 90% of planted near copies removed; two workers >= 1.6x one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
SEED = 12
STAGES = ("extract", "decontaminate", "dedup", "chunk", "embed", "index")


# ---------------------------------------------------------------- the corpus
def sentence_pool() -> list[str]:
    """Sentences of the bundled real text: C4 pages, arXiv papers, Wikipedia articles, Vaswani abstracts."""
    texts = [json.loads(line)["text"] for line in (SAMPLE / "jsonl" / "c4_sample.jsonl").read_text().splitlines()]
    texts += [json.loads(line)["text"] for line in (SAMPLE / "jsonl" / "arxiv_sample.jsonl").read_text().splitlines()]
    texts += [p.read_text() for p in sorted((SAMPLE / "wikitext").glob("*.txt"))]
    trec = (SAMPLE / "vaswani" / "doc-text.trec").read_text()
    texts += re.findall(r"<DOC>\s*<DOCNO>.*?</DOCNO>(.*?)</DOC>", trec, re.S)
    sentences = {s.strip() for text in texts for s in re.split(r"(?<=[.!?])\s+|\n+", text)}
    return sorted(s for s in sentences if 40 <= len(s) <= 400 and len(s.split()) >= 6)


def _reformat(text: str, rng: random.Random) -> str:
    """An exact copy after normalization: case and spacing changed."""
    return "  ".join(w.upper() if rng.random() < 0.2 else w for w in text.split())


def _near_copy(text: str, rng: random.Random) -> str:
    """A near copy: one word in ~150 replaced by a new word (Jaccard of 5-shingles about 0.9)."""
    words = text.split()
    for _ in range(max(1, len(words) // 150)):
        words[rng.randrange(len(words))] = f"zq{rng.getrandbits(40):x}"
    return " ".join(words)


def write_corpus(folder: Path, n: int, docs_per_file: int, seed: int = SEED) -> dict:
    """N documents in JSONL files: originals of 1-3 KB, 10% exact and 5% near copies of earlier originals."""
    rng = random.Random(seed)
    pool = sentence_pool()
    folder.mkdir(parents=True, exist_ok=True)
    originals: list[str] = []
    planted = {"exact": 0, "near": 0}
    out = None
    for i in range(n):
        if i % docs_per_file == 0:
            if out:
                out.close()
            out = open(folder / f"part-{i // docs_per_file:05d}.jsonl", "w", encoding="utf-8")
        roll = rng.random()
        if originals and roll < 0.10:
            text, kind = _reformat(rng.choice(originals), rng), "exact"
        elif originals and roll < 0.15:
            text, kind = _near_copy(rng.choice(originals), rng), "near"
        else:
            target, parts, size = rng.randint(1000, 3000), [], 0
            while size < target:
                sentence = rng.choice(pool)
                parts.append(sentence)
                size += len(sentence) + 1
            text, kind = " ".join(parts), None
            originals.append(text)
        if kind:
            planted[kind] += 1
        out.write(json.dumps({"id": f"{rng.getrandbits(64):016x}", "text": text}) + "\n")
    if out:
        out.close()
    return planted


def write_variant(folder: Path, corpus: Path, name: str, docs_per_part: int | None = None) -> Path:
    """The benchmark's variant; ``docs_per_part``: its ``sharding.documents_per_part`` (None: the default)."""
    mmlu = SAMPLE / "benchmarks" / "mmlu" / "test"
    path = folder / "variant.yaml"
    sharding = f"sharding: {{documents_per_part: {docs_per_part}}}\n" if docs_per_part is not None else ""
    path.write_text(
        f"""name: {name}
sources:
  - {{name: corpus, type: jsonl, path: {corpus}, id_field: id, extractor: plain}}
decontamination:
  action: drop_document
  benchmarks:
    - {{name: mmlu, path: {mmlu}, ngram: 16}}
dedup: {{exact: true, near: true}}
{sharding}"""
    )
    return path


# ---------------------------------------------------------------- one size, in a child process
def run_size(variant_path: Path, data_dir: Path, runner: str, workers: int, embed_chunks: int) -> dict:
    import polars as pl

    from buildplan.build import Build
    from buildplan.executors import DaskExecutor, LocalExecutor
    from catalog.db import Catalog
    from catalog.variant import load_variant
    from indexing.embed import Embedder
    from indexing.embed import embed_chunks as embed
    from indexing.vector_index import build_index

    variant = load_variant(variant_path)
    executor = DaskExecutor(workers=workers) if runner == "dask" else LocalExecutor()
    seconds: dict[str, float] = {}

    def timed(stage: str, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        seconds[stage] = round(time.perf_counter() - started, 2)
        return result

    with Catalog.in_data_dir(data_dir) as catalog:
        run_id = catalog.start_run(variant.name, "benchmark")
        build = Build(variant, str(data_dir), catalog, run_id, executor)
        extracted = timed("extract", build.extract)
        clean = timed("decontaminate", build.decontaminate, extracted)
        deduped = timed("dedup", build.dedup, clean)
        chunks = timed("chunk", build.chunk, deduped)
    result = {
        "seconds": seconds,
        "dedup": deduped.stats,
        "chunks": sum(m.rows for m in chunks),
        "documents_after_dedup": deduped.rows,
    }
    if runner == "dask":
        executor.close()
    if embed_chunks:
        subset = data_dir / "embed-subset" / "chunks.parquet"
        subset.parent.mkdir(parents=True)
        pl.scan_parquet([p for m in chunks for p in m.file_paths()]).head(embed_chunks).sink_parquet(subset)
        embedder = Embedder(variant.embedder)
        manifest = timed("embed", embed, [subset], data_dir / "embed-subset" / "embeddings", embedder, 10_000)
        timed("index", build_index, data_dir / "embed-subset" / "embeddings", data_dir / "embed-subset" / "index",
              variant.index)  # fmt: skip
        result["embedded_chunks"] = manifest.rows
    return result


# ---------------------------------------------------------------- the parent: process-tree RSS, the table
def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def measure_child(args: list[str]) -> tuple[dict, float]:
    """Run this script as a child with ``args``; its JSON answer and the peak RSS (MiB) of its process tree."""
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), peak / 2**20


def measure_size(n: int, work: Path, args: argparse.Namespace) -> dict:
    corpus = work / f"corpus-{n}"
    planted = write_corpus(corpus, n, args.docs_per_file)
    variant = write_variant(work, corpus, f"scale-{n}", args.docs_per_part)
    child_args = [
        "--child",
        str(variant),
        "--data-dir",
        str(work / f"data-{n}"),
        "--embed-chunks",
        str(args.embed_chunks),
    ]
    result, peak_mb = measure_child(child_args)
    artifacts = work / f"data-{n}" / "artifacts"
    storage = {
        stage.name: sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
        for stage in sorted(artifacts.iterdir())
    }
    subset = work / f"data-{n}" / "embed-subset"
    storage |= {
        part: sum(f.stat().st_size for f in (subset / part).rglob("*") if f.is_file())
        for part in ("embeddings", "index")
    }
    seconds = result["seconds"]
    dedup = result["dedup"]
    row = {
        "documents": n,
        "peak_rss_mb": round(peak_mb, 1),
        "seconds": seconds,
        "docs_per_s": {
            s: round(n / t, 1) for s, t in seconds.items() if s in ("extract", "decontaminate", "dedup", "chunk") and t
        },
        "exact_removed": dedup.get("exact_removed", 0),
        "near_removed": dedup.get("near_removed", 0),
        "planted": planted,
        "exact_found": round(dedup.get("exact_removed", 0) / max(planted["exact"], 1), 4),
        "near_found": round(dedup.get("near_removed", 0) / max(planted["near"], 1), 4),
        "chunks": result["chunks"],
        "embedded_chunks": result.get("embedded_chunks", 0),
        "storage_bytes": storage,  # per stage (embeddings and index: of the embedded subset)
        "chunks_per_s_embed": round(result.get("embedded_chunks", 0) / seconds["embed"], 1)
        if "embed" in seconds
        else None,
    }
    return row


def compare_workers(n: int, work: Path, args: argparse.Namespace) -> dict:
    """docs/s of extraction and chunking on a local Dask cluster of two workers over one (same corpus)."""
    corpus = work / f"corpus-{n}"
    variant = write_variant(work, corpus, f"scale-{n}", args.docs_per_part)
    rates = {}
    for workers in (1, 2):
        child_args = ["--child", str(variant), "--data-dir", str(work / f"dask{workers}-{n}"), "--embed-chunks", "0",
                      "--runner", "dask", "--workers", str(workers)]  # fmt: skip
        result, _ = measure_child(child_args)
        rates[workers] = {s: n / result["seconds"][s] for s in ("extract", "chunk")}
    return {s: round(rates[2][s] / rates[1][s], 3) for s in ("extract", "chunk")} | {
        "docs_per_s_1_worker": {s: round(r, 1) for s, r in rates[1].items()},
        "docs_per_s_2_workers": {s: round(r, 1) for s, r in rates[2].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,200000", help="comma-separated corpus sizes (documents)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--docs-per-file", type=int, default=10_000, help="documents per JSONL file (the unit)")
    parser.add_argument(
        "--docs-per-part",
        type=int,
        default=None,
        help="the variant's sharding.documents_per_part: documents per chunk/embed unit (default: the variant default)",
    )
    parser.add_argument("--embed-chunks", type=int, default=20_000, help="chunks embedded and indexed per size")
    parser.add_argument("--compare-workers", action="store_true", help="also 1 vs 2 local Dask workers")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep corpora and data dirs here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runner", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        result = run_size(args.child, args.data_dir, args.runner, args.workers, args.embed_chunks)
        print(json.dumps(result, default=str))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="reread-scale-"))
    rows = []
    for n in sizes:
        rows.append(measure_size(n, work, args))
        print(json.dumps(rows[-1]), flush=True)
    report: dict = {
        "sizes": rows,
        "docs_per_file": args.docs_per_file,
        "docs_per_part": args.docs_per_part,
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    if args.compare_workers:
        report["dask_speedup"] = compare_workers(sizes[0], work, args)
    small, large = rows[0], rows[-1]
    report["goals"] = {
        "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "docs_per_s_ratio": {s: round(large["docs_per_s"][s] / small["docs_per_s"][s], 3) for s in small["docs_per_s"]},
        "exact_found_min": min(r["exact_found"] for r in rows),
        "near_found_min": min(r["near_found"] for r in rows),
    }
    print(f"\n{'documents':>10} {'peak MiB':>9} " + " ".join(f"{s + ' s':>14}" for s in STAGES) + "  exact  near")
    for r in rows:
        stage_cols = " ".join(f"{r['seconds'].get(s, float('nan')):>14.1f}" for s in STAGES)
        print(
            f"{r['documents']:>10} {r['peak_rss_mb']:>9.0f} {stage_cols}  {r['exact_found']:.3f}  {r['near_found']:.3f}"
        )
    print(json.dumps(report["goals"]))
    if "dask_speedup" in report:
        print("2 vs 1 Dask workers:", json.dumps(report["dask_speedup"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
