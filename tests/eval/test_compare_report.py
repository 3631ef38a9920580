"""The compare report's context: bootstrap error bars, a y axis fitted to small values, the config diff of the
variants and the cost table, and search cost measured on a real FAISS index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from eval.compare import (
    config_differences,
    context_markdown,
    html_report,
    markdown_report,
    mean_intervals,
    plot_metrics,
    search_cost,
    summary_table,
)


def _per_item() -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(0)
    ids = [f"q{i}" for i in range(200)]
    return {
        "flat": pl.DataFrame({"item_id": ids, "recall@10": (rng.random(200) < 0.02).astype(float)}),
        "hnsw": pl.DataFrame({"item_id": ids, "recall@10": (rng.random(200) < 0.01).astype(float)}),
    }


def test_mean_intervals_bracket_the_mean_and_shrink_with_more_items() -> None:
    per_item = _per_item()
    intervals = mean_intervals(per_item, ["recall@10"])
    for name, frame in per_item.items():
        low, high = intervals[name]["recall@10"]
        assert low <= frame["recall@10"].mean() <= high and high - low > 0
    many = {"x": pl.DataFrame({"item_id": range(5000), "m": np.tile([0.0, 1.0], 2500)})}
    few = {"x": pl.DataFrame({"item_id": range(50), "m": np.tile([0.0, 1.0], 25)})}
    width = {n: (lambda b: b[1] - b[0])(mean_intervals(d, ["m"])["x"]["m"]) for n, d in (("many", many), ("few", few))}
    assert width["many"] < width["few"] / 5


def test_plot_axis_fits_small_values(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.axes

    limits: list[tuple[float, float]] = []
    original = matplotlib.axes.Axes.set_ylim
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylim", lambda ax, *a, **k: limits.append(a) or original(ax, *a, **k))
    per_item = _per_item()
    summary = summary_table(per_item, ["recall@10"])
    intervals = mean_intervals(per_item, ["recall@10"])
    path = plot_metrics(summary, ["recall@10"], tmp_path / "m.png", intervals)
    assert path.stat().st_size > 0
    top = max(high for per in intervals.values() for _, high in per.values())
    assert limits[-1] == (0, top * 1.15) and top < 0.1  # the last limit set: ours, after the bars


def test_config_differences_list_only_settings_that_differ() -> None:
    a = {"name": "a", "description": "x", "index": {"factory": "Flat", "nprobe": 8}, "chunk": {"tokens": 256}}
    b = {"name": "b", "description": "y", "index": {"factory": "HNSW32", "nprobe": 8}, "chunk": {"tokens": 256}}
    assert config_differences({"a": a, "b": b}) == [{"setting": "index.factory", "a": "Flat", "b": "HNSW32"}]
    assert config_differences({"a": a, "a2": {**a, "name": "a2"}}) == []


def test_source_differences_name_each_field_and_each_source_only_one_variant_has() -> None:
    """open-qa and open-qa-distractors differ by one source (nq-gold); a wiki18 limit set in one variant differs
    in one field. Each is one short row, structured in the report's JSON, and the table fits 100 columns."""
    from catalog.variant import load_variant
    from sample_data import bundled_variant

    gold, distractors = (load_variant(bundled_variant(n)) for n in ("open-qa", "open-qa-distractors"))
    sources = [s.model_copy(update={"limit": 500}) for s in distractors.sources]
    distractors = distractors.model_copy(update={"sources": tuple(sources)})
    configs = {v.name: v.model_dump(mode="json") for v in (gold, distractors)}
    differences = config_differences(configs)
    assert [d["setting"] for d in differences] == ["sources.nq-gold", "sources.wiki18.limit"]
    only_gold, limit = differences
    assert only_gold["open-qa"]["path"] == str(gold.sources[0].path) and only_gold["open-qa-distractors"] is None
    assert limit == {"setting": "sources.wiki18.limit", "open-qa": None, "open-qa-distractors": 500}
    assert json.loads(json.dumps(differences)) == differences  # plain data for --json

    facts = {"open-qa": {}, "open-qa-distractors": {}}
    table = context_markdown(differences, facts).split("## What it costs")[0]
    assert "| sources.nq-gold | jsonl gold_passages.jsonl | absent |" in table
    assert "| sources.wiki18.limit | - | 500 |" in table
    assert max(len(line) for line in table.splitlines()) <= 100


def test_difference_cells_shorten_paths_to_what_differs() -> None:
    base = "/data/corpora/2024-snapshot"
    differences = [
        {"setting": "sources.c4.path", "a": f"{base}/en/c4.jsonl", "b": f"{base}/realnewslike/c4.jsonl"},
        {"setting": "embedder.model", "a": "x" * 40, "b": "/models/" + "m" * 40},
    ]
    table = context_markdown(differences, {"a": {}, "b": {}})
    assert "| sources.c4.path | en/c4.jsonl | realnewslike/c4.jsonl |" in table
    assert f"| embedder.model | {'x' * 27}… | …{'m' * 27} |" in table


def test_report_sections_in_markdown_and_html(tmp_path: Path) -> None:
    per_item = _per_item()
    summary = summary_table(per_item, ["recall@10"])
    intervals = mean_intervals(per_item, ["recall@10"])
    facts = {
        "flat": {"documents": 1200, "chunks": 3400, "vectors": 3400, "index_type": "Flat", "build_s": 12.5,
                 "bytes": 5_000_000, "qps": 150.0, "latency_ms_median": 6.5},
        "hnsw": {"documents": 1200, "chunks": 3400, "vectors": 3400, "index_type": "HNSW32", "build_s": 14.0,
                 "bytes": 6_000_000, "qps": 210.0, "latency_ms_median": 4.25},
    }  # fmt: skip
    context = context_markdown([{"setting": "index.factory", "flat": "Flat", "hnsw": "HNSW32"}], facts)
    markdown = markdown_report("t", summary, [], intervals, context)
    (flat_low, flat_high), (hnsw_low, hnsw_high) = (intervals[v]["recall@10"] for v in ("flat", "hnsw"))
    flat_mean, hnsw_mean = summary["recall@10"]
    assert "| metric | flat | hnsw |\n|---|---|---|\n| n | 200 | 200 |" in markdown  # a column per variant
    assert (
        f"| recall@10 | {flat_mean:.4f} [{flat_low:.3f}, {flat_high:.3f}] | {hnsw_mean:.4f} [{hnsw_low:.3f}, {hnsw_high:.3f}] |"
        in markdown
    )
    assert "| index.factory | Flat | HNSW32 |" in markdown
    assert "| bytes on disk, all stages | 5,000,000 | 6,000,000 |" in markdown
    assert "| search latency, median (ms) | 6.50 | 4.25 |" in markdown
    html = html_report("t", summary, [], [], tmp_path / "r.html", context).read_text()
    assert "<td>index.factory</td>" in html and "What it costs" in html


def test_search_cost_on_a_real_index() -> None:
    import faiss

    class FlatRetriever:  # a real FAISS index behind the two calls search_cost makes; queries embedded by hashing
        def __init__(self) -> None:
            self.index = faiss.IndexFlatIP(16)
            self.index.add(np.random.default_rng(0).random((2000, 16), dtype=np.float32))

        def encode(self, queries: list[str]) -> np.ndarray:
            return np.stack([np.random.default_rng(len(q)).random(16, dtype=np.float32) for q in queries])

        def search_vectors(self, vectors: np.ndarray, k: int):
            return self.index.search(vectors, k)

    cost = search_cost(FlatRetriever(), [f"query {i}" for i in range(50)], k=10, latency_queries=5)
    assert cost["queries"] == 50 and cost["qps"] > 0 and cost["latency_ms_median"] > 0
    assert search_cost(FlatRetriever(), [], k=10) == {"queries": 0, "qps": 0.0, "latency_ms_median": 0.0}


def test_metric_order_is_by_name_then_cutoff() -> None:
    from eval.compare import metric_sort_key

    names = ["recall@100", "ndcg@10", "recall@5", "mrr", "recall@10", "ndcg@100"]
    assert sorted(names, key=metric_sort_key) == ["mrr", "ndcg@10", "ndcg@100", "recall@5", "recall@10", "recall@100"]
