"""Throughput of decontamination and dedup on real corpus text, beside datatrove's n-gram decontamination filter.

Input: the C4 and arXiv samples and the Vaswani abstracts from the shared data, replicated to ``--target-mb``, with
real benchmark questions planted into a known set of documents. Reread's filter indexes MMLU (n=16), MATH-500
(n=26), SimpleQA and GPQA (n=13; GPQA only when REREAD_GPQA_PASSWORD is set) and scans the corpus; datatrove's
``NGramsDecontFilter`` is given the same questions at the same n (one filter per n, chained) on the first
``--datatrove-mb`` of the same corpus (it tokenizes with spaCy in Python, so the whole corpus would take long).
Dedup (exact + MinHash LSH, default config) runs on the replicated corpus where every replica after the first has
its last word replaced, so the replicas are near duplicates (short abstracts fall below the threshold).

    .venv/bin/python benchmarks/decontamination.py --target-mb 50

Prints a table and writes ``benchmarks/results/decontamination.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from buildplan.questions import load_questions
from catalog.variant import BenchmarkRef, DecontaminationConfig, DedupConfig
from eval.benchmarks import BENCHMARKS, load_benchmark
from eval.benchmarks.gpqa import PASSWORD_ENV
from indexing.decontaminate import DecontaminationFilter
from indexing.dedup import Deduplicator
from indexing.normalize import word_tokens

REPO = Path(__file__).resolve().parent.parent
PLANTED_PER_BENCHMARK = {"mmlu": 50, "math500": 20, "simpleqa": 20, "gpqa": 10}
BATCH_DOCS = 5000


def load_corpus(data: Path) -> list[str]:
    samples = data / "pretraining_samples"
    texts = [json.loads(line)["text"] for line in open(samples / "c4_sample.jsonl", encoding="utf-8")]
    texts += [json.loads(line)["text"] for line in open(samples / "arxiv_redpajama_sample.jsonl", encoding="utf-8")]
    trec = (data / "retrieval" / "vaswani_npl" / "doc-text.trec").read_text(encoding="utf-8")
    return texts + re.findall(r"<DOC>\s*<DOCNO>.*?</DOCNO>(.*?)</DOC>", trec, re.S)


def mb(texts: list[str]) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


def benchmark_refs(data: Path) -> list[BenchmarkRef]:
    refs = [
        BenchmarkRef(name="mmlu", path=data / "mmlu"),
        BenchmarkRef(name="math500", path=data / "math500"),
        BenchmarkRef(name="simpleqa", path=data / "simpleqa"),
    ]
    if os.environ.get(PASSWORD_ENV):
        refs.append(BenchmarkRef(name="gpqa", path=data / "gpqa"))
    return refs


def plant_questions(texts: list[str], refs: list[BenchmarkRef], rng: random.Random) -> tuple[list[str], set[int]]:
    """Insert questions at least n tokens long (so both tools can index them) into random distinct documents."""
    texts = list(texts)
    targets = iter(rng.sample(range(len(texts)), sum(PLANTED_PER_BENCHMARK.values())))
    planted: set[int] = set()
    for ref in refs:
        n = BENCHMARKS[ref.name].default_ngram
        questions = [i.question for i in load_benchmark(ref.name, ref.path) if len(word_tokens(i.question)) >= n + 4]
        for question in rng.sample(questions, PLANTED_PER_BENCHMARK[ref.name]):
            doc = next(targets)
            cut = texts[doc].find(" ", len(texts[doc]) // 2)
            cut = len(texts[doc]) if cut < 0 else cut
            texts[doc] = f"{texts[doc][:cut]}\n{question}\n{texts[doc][cut:]}"
            planted.add(doc)
    return texts, planted


def near_copies(texts: list[str], replicas: int) -> list[str]:
    """``texts`` then ``replicas - 1`` copies of it, each copy's last word changed: near, not exact, duplicates."""
    out = list(texts)
    for r in range(1, replicas):
        out.extend(f"{t.rsplit(maxsplit=1)[0] if len(t.split()) > 1 else ''} replica{r}" for t in texts)
    return out


def bench_reread_decontamination(refs: list[BenchmarkRef], texts: list[str], planted: set[int]) -> dict:
    start = time.perf_counter()
    step = DecontaminationFilter.from_questions(load_questions(DecontaminationConfig(benchmarks=tuple(refs))))
    build_s = time.perf_counter() - start
    table = pl.DataFrame({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    batches = [table.slice(i, BATCH_DOCS) for i in range(0, table.height, BATCH_DOCS)]
    start = time.perf_counter()
    kept = sum(k.height for k in step.run_stream(batches))
    scan_s = time.perf_counter() - start
    removed = {int(d) for d in step.hits()["doc_id"].to_list()}
    return {
        "index_build_s": round(build_s, 2),
        "scan_s": round(scan_s, 2),
        "mb_per_s": round(mb(texts) / scan_s, 2),
        "docs_removed": len(texts) - kept,
        "planted_removed": len(removed & planted),
        "false_removals": len(removed - planted),
        "summary": step.summary().to_dicts(),
    }


def bench_dedup(texts: list[str], replicas: int) -> dict:
    table = pl.DataFrame({"doc_id": [str(i) for i in range(len(texts))], "text": texts})
    result = {}
    for name, cfg in {"exact": DedupConfig(near=False), "exact+near": DedupConfig()}.items():
        start = time.perf_counter()
        out = Deduplicator(cfg).run(table)
        seconds = time.perf_counter() - start
        result[name] = {
            "seconds": round(seconds, 2),
            "mb_per_s": round(mb(texts) / seconds, 2),
            "stats": out.stats.as_dict(),
            "largest_cluster": max((max(s) for s in out.cluster_sizes.values() if s), default=0),
        }
    result["replicas"] = replicas
    result["planted_near_duplicates"] = len(texts) - len(texts) // replicas
    return result


def bench_datatrove(refs: list[BenchmarkRef], texts: list[str], planted: set[int]) -> dict:
    try:
        from datatrove.data import Document
        from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter
        from datatrove.utils.hashing import create_hash_func
        from datatrove.utils.text import ngrams, simplify_text
        from datatrove.utils.word_tokenizers import load_word_tokenizer
    except ImportError as exc:
        return {"status": "not installed", "detail": str(exc)}
    # NGramsDecontIndexer.run() fetches tasks through lighteval (network); its compute_hashes logic is reproduced
    # here with datatrove's own normalization, tokenizer and hash function, writing its *.index.hashes format.
    filters = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            tokenizer = load_word_tokenizer("en")
        except Exception as exc:  # spaCy missing or its blank model failing: record why
            return {"status": "tokenizer unavailable", "detail": repr(exc)}
        by_n: dict[int, list[BenchmarkRef]] = {}
        for ref in refs:
            by_n.setdefault(BENCHMARKS[ref.name].default_ngram, []).append(ref)
        for n, group in sorted(by_n.items()):
            config = NGramsDecontConfig(n_grams=n, find_query_ngrams=True, find_overlap_ngrams=False)
            hash_func = create_hash_func(config.hash_config)
            folder = Path(tmp) / f"n{n}"
            folder.mkdir()
            for ref in group:
                hashes = set()
                for item in load_benchmark(ref.name, ref.path):
                    tokens = tokenizer.word_tokenize(simplify_text(item.question, config.norm_config))
                    hashes.update(hash_func(" ".join(g)) for g in ngrams(tokens, n))
                array = np.array(sorted(hashes), dtype=config.hash_config.np_descr)
                array.tofile(folder / f"{ref.name}.index.hashes")
            filters.append(NGramsDecontFilter(index_folder=str(folder), config=config))
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        removed = set()
        for i, text in enumerate(texts):
            doc = Document(text=text, id=str(i))
            if any(f.filter(doc) is not True for f in filters):
                removed.add(i)
        scan_s = time.perf_counter() - start
    return {
        "status": "ok",
        "index_build_s": round(build_s, 2),
        "scan_s": round(scan_s, 2),
        "mb": round(mb(texts), 2),
        "mb_per_s": round(mb(texts) / scan_s, 2),
        "docs_removed": len(removed),
        "planted_removed": len(removed & planted),
        "planted_in_slice": len(planted & set(range(len(texts)))),
        "false_removals": len(removed - planted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(os.environ.get("REREAD_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data, help="the shared data folder")
    parser.add_argument("--target-mb", type=float, default=50.0)
    parser.add_argument("--datatrove-mb", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "decontamination.json")
    args = parser.parse_args()
    rng = random.Random(0)

    base = load_corpus(args.data)
    replicas = max(1, round(args.target_mb / mb(base)))
    refs = benchmark_refs(args.data)
    corpus, planted = plant_questions(base * replicas, refs, rng)
    print(
        f"corpus: {len(corpus)} docs, {mb(corpus):.1f} MB ({len(base)} real docs x {replicas}); planted {len(planted)}"
    )

    reread = bench_reread_decontamination(refs, corpus, planted)
    slice_docs = next((i for i in range(len(corpus)) if mb(corpus[:i]) >= args.datatrove_mb), len(corpus))
    datatrove = bench_datatrove(refs, corpus[:slice_docs], planted)
    dedup = bench_dedup(near_copies(base, replicas), replicas)

    print(f"\n{'step':<34}{'MB':>8}{'seconds':>10}{'MB/s':>8}{'removed':>10}{'planted found':>15}")
    print(f"{'reread decontaminate':<34}{mb(corpus):>8.1f}{reread['scan_s']:>10}{reread['mb_per_s']:>8}"
          f"{reread['docs_removed']:>10}{reread['planted_removed']:>10}/{len(planted)}")  # fmt: skip
    if datatrove["status"] == "ok":
        print(f"{'datatrove NGramsDecontFilter':<34}{datatrove['mb']:>8.1f}{datatrove['scan_s']:>10}"
              f"{datatrove['mb_per_s']:>8}{datatrove['docs_removed']:>10}"
              f"{datatrove['planted_removed']:>10}/{datatrove['planted_in_slice']}")  # fmt: skip
    else:
        print(f"datatrove: {datatrove['status']} ({datatrove.get('detail', '')})")
    for name in ("exact", "exact+near"):
        d = dedup[name]
        print(f"{'reread dedup ' + name:<34}{mb(base) * replicas:>8.1f}{d['seconds']:>10}{d['mb_per_s']:>8}"
              f"{d['stats'].get('exact_removed', 0) + d['stats'].get('near_removed', 0):>10}"
              f"{'':>10}/{dedup['planted_near_duplicates']}")  # fmt: skip
    print("\nper benchmark (reread):")
    for row in reread["summary"]:
        print(f"  {row['benchmark']:<10} checked {row['items_checked']:>6}  found {row['items_found']:>4}"
              f"  too short {row['items_too_short']:>5}")  # fmt: skip

    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "corpus": {"docs": len(corpus), "mb": round(mb(corpus), 2), "replicas": replicas, "planted_docs": len(planted)},
        "benchmarks": [r.name for r in refs],
        "gpqa_included": any(r.name == "gpqa" for r in refs),
        "reread_decontamination": reread,
        "datatrove_decontamination": datatrove,
        "dedup": dedup,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
