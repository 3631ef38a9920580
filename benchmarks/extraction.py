"""Extraction quality and speed on the ScrapingHub article-extraction benchmark (181 pages with gold article bodies).

Metric, as the benchmark's ``evaluate.py`` defines it: each text is tokenized with ``\\w+``; the multiset of token
4-gram shingles of prediction and gold gives TP/FP/FN, normalized per page so that long pages do not weigh more;
precision and recall are means over pages (precision over pages with any predicted or true-positive shingle, recall
over pages with a gold shingle); F1 = 2PR/(P+R) of those means. 95% intervals: 1.96 x the std of 1,000 bootstrap
resamples of pages. The scorer is checked against the benchmark's published numbers for its stored outputs.

    .venv/bin/python benchmarks/extraction.py [--data PATH] [--n-bootstrap 1000]

Prints a table; writes ``benchmarks/results/extraction.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import trafilatura
from tqdm import tqdm

from catalog.records import Rejection
from catalog.variant import ExtractionConfig, HtmlSource
from extract.extractors import get_extractor
from extract.records import RawDocument
from extract.runner import ExtractionRunner
from extract.sources import open_source

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared/data/html_extraction/scrapinghub_article_extraction_benchmark"
RESULTS = REPO / "benchmarks/results/extraction.json"
HTML_EXTRACTORS = ("trafilatura", "resiliparse")  # wikipedia and plain do not take HTML (the runner never routes it)
PUBLISHED = {  # the benchmark README's numbers for its stored outputs
    "trafilatura.json": {"f1": 0.958, "precision": 0.938, "recall": 0.978},
    "readability.json": {"f1": 0.922, "precision": 0.913, "recall": 0.931},
}
_TOKEN = re.compile(r"\w+", re.UNICODE)
SHINGLE = 4

Counts = tuple[float, float, float]


# ------------------------------------------------------------------ the benchmark's metric
def shingles(text: str) -> Counter:
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + SHINGLE]) for i in range(max(1, len(tokens) - SHINGLE + 1)) if tokens)


def page_counts(gold: str, predicted: str) -> Counts:
    true, pred = shingles(gold), shingles(predicted)
    tp = float(sum((true & pred).values()))
    fp = float(sum((pred - true).values()))
    fn = float(sum((true - pred).values()))
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def _precision(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fp == 0 else tp / (tp + fp)


def _recall(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    return 0.0 if tp == fn == 0 else tp / (tp + fn)


def scores(counts: list[Counts]) -> dict[str, float]:
    precision = statistics.mean(_precision(*c) for c in counts if c[0] + c[1] > 0)
    recall = statistics.mean(_recall(*c) for c in counts if c[0] + c[2] > 0)
    return {"f1": 2 * precision * recall / (precision + recall), "precision": precision, "recall": recall}


def evaluate(gold: dict[str, str], predicted: dict[str, str], n_bootstrap: int) -> dict[str, float]:
    counts = [page_counts(gold[key], predicted.get(key) or "") for key in sorted(gold)]
    result = scores(counts)
    rng = random.Random(0)
    samples = [scores([rng.choice(counts) for _ in counts]) for _ in range(n_bootstrap)]
    for name in ("f1", "precision", "recall"):
        result[f"{name}_ci"] = 1.96 * statistics.stdev(s[name] for s in samples) if n_bootstrap > 1 else 0.0
    return result


# ------------------------------------------------------------------ runs
def page_key(doc: RawDocument) -> str:
    return Path(doc.input_ref).name.split(".")[0]


def load_pages(data: Path) -> list[RawDocument]:
    source = open_source(HtmlSource(type="html", name="scrapinghub", path=data / "html", pattern="*.html.gz"))
    return [d for d in source.iter_documents() if isinstance(d, RawDocument)]


def run_in_process(name: str, pages: list[RawDocument]) -> tuple[dict[str, str], float]:
    """Extractor called directly in this process: pure extraction speed."""
    extractor = get_extractor(name)
    out: dict[str, str] = {}
    started = time.perf_counter()
    for doc in tqdm(pages, desc=f"{name} in-process", disable=None):
        out[page_key(doc)] = extractor.extract(doc)[1]
    return out, time.perf_counter() - started


def run_through_runner(name: str, pages: list[RawDocument]) -> tuple[dict[str, str], float, dict[str, int]]:
    """Reread's runner (one spawn worker, batches, per-document timeout), start-up included."""
    runner = ExtractionRunner(name, {}, ExtractionConfig(workers=1, timeout_s=120, min_chars=0))
    by_id = {doc.doc_id: page_key(doc) for doc in pages}
    out: dict[str, str] = {}
    started = time.perf_counter()
    for item in runner.run(pages):
        if not isinstance(item, Rejection):
            out[by_id[item.doc_id]] = item.text
    return out, time.perf_counter() - started, runner.stats.as_dict()


def run_trafilatura_direct(data: Path, options: dict) -> tuple[dict[str, str], float]:
    """trafilatura exactly as the benchmark's run_trafilatura.py calls it (UTF-8 text in), with Reread's options."""
    out: dict[str, str] = {}
    paths = sorted((data / "html").glob("*.html.gz"))
    htmls = {p.name.split(".")[0]: gzip.open(p, "rt", encoding="utf8").read() for p in paths}
    started = time.perf_counter()
    for key, html in tqdm(htmls.items(), desc="trafilatura direct", disable=None):
        out[key] = trafilatura.extract(html, **options) or ""
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="benchmark folder (html/, ground-truth.json)")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    gold = {k: v["articleBody"] for k, v in json.loads((args.data / "ground-truth.json").read_text()).items()}
    pages = load_pages(args.data)
    rows: dict[str, dict] = {}

    for stored, published in PUBLISHED.items():  # scorer check against the README
        path = args.data / "baseline_outputs" / stored
        if path.exists():
            output = json.loads(path.read_text())
            predicted = {k: v.get("articleBody") or "" for k, v in output["output"].items()}
            rows[f"stored {stored} ({output.get('version', '?')})"] = {
                **evaluate(gold, predicted, args.n_bootstrap),
                "published": published,
            }

    trafilatura_options = get_extractor("trafilatura").options
    direct, direct_s = run_trafilatura_direct(args.data, trafilatura_options)
    rows["trafilatura direct call"] = {
        **evaluate(gold, direct, args.n_bootstrap),
        "docs_per_s": len(direct) / direct_s,
        "options": trafilatura_options,
    }
    speeds: dict[str, float] = {}
    for name in HTML_EXTRACTORS:
        version = get_extractor(name).version
        predicted, seconds = run_in_process(name, pages)
        speeds[name] = len(predicted) / seconds
        rows[f"{name} in-process ({version})"] = {
            **evaluate(gold, predicted, args.n_bootstrap),
            "docs_per_s": speeds[name],
        }
        via_runner, runner_s, stats = run_through_runner(name, pages)
        rows[f"{name} via ExtractionRunner"] = {
            **evaluate(gold, via_runner, args.n_bootstrap),
            "docs_per_s": len(via_runner) / runner_s,
            "stats": stats,
        }
        if name == "trafilatura":
            rows[f"{name} via ExtractionRunner"]["identical_texts_to_direct"] = sum(
                via_runner.get(k, "") == direct.get(k, "") for k in gold
            )

    print(f"{'run':<48} {'F1':>13} {'precision':>9} {'recall':>7} {'docs/s':>8}")
    for label, row in rows.items():
        speed = f"{row['docs_per_s']:8.1f}" if "docs_per_s" in row else " " * 8
        f1 = f"{row['f1']:.3f}±{row['f1_ci']:.3f}"
        print(f"{label:<48} {f1:>13} {row['precision']:9.3f} {row['recall']:7.3f} {speed}")
        if "published" in row:
            p = row["published"]
            print(
                f"{'   published in the benchmark README':<48} {p['f1']:>13.3f} {p['precision']:9.3f} {p['recall']:7.3f}"
            )
    speedup = speeds["resiliparse"] / speeds["trafilatura"]
    same = rows["trafilatura via ExtractionRunner"]["identical_texts_to_direct"]
    print(
        f"\ntrafilatura via Reread vs direct: F1 {rows['trafilatura via ExtractionRunner']['f1']:.4f} vs "
        f"{rows['trafilatura direct call']['f1']:.4f}; identical texts on {same}/{len(gold)} pages"
    )
    print(f"resiliparse speed-up over trafilatura (in-process): {speedup:.1f}x")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "pages": len(gold),
        "metric": "scrapinghub shingle-4 P/R/F1",
        "runs": rows,
        "resiliparse_speedup": speedup,
    }
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":  # the runner's spawn workers re-import this module; only the parent runs the benchmark
    main()
