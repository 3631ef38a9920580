"""Side-by-side comparison of corpus variants on per-item metrics, with paired bootstrap tests of each difference,
saved as an HTML report with PNG plots (and returned as markdown for a Prefect artifact)."""

from __future__ import annotations

import base64
import html
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: plots are files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402


@dataclass(frozen=True)
class PairedTest:
    metric: str
    baseline: str
    variant: str
    n: int
    mean_baseline: float
    mean_variant: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def metric_sort_key(name: str) -> tuple[str, float]:
    """One order for metric names everywhere (fresh or cached results alike): by name, then by cut-off as a number
    (``recall@5`` before ``recall@10``)."""
    base, _, cutoff = name.rpartition("@")
    if base and cutoff.isdigit():
        return base, float(cutoff)
    return name, -1.0


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05):
    """Bootstrap over items of mean(b - a): (diff, ci_low, ci_high, two-sided p for diff == 0)."""
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    n = len(diffs)
    if n == 0:
        return 0.0, 0.0, 0.0, 1.0
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    observed = float(diffs.mean())
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    if observed == 0:
        return 0.0, float(low), float(high), 1.0
    # centre the bootstrap distribution on the null (no difference) and count resamples at least as extreme
    p = max(float(np.mean(np.abs(means - observed) >= abs(observed))), 1.0 / n_boot)
    return observed, float(low), float(high), p


def compare_per_item(per_item: dict[str, pl.DataFrame], metrics: list[str], seed: int = 0) -> list[PairedTest]:
    """Each variant against the first one, on the items all variants share."""
    names = list(per_item)
    baseline = names[0]
    tests = []
    for other in names[1:]:
        joined = per_item[baseline].join(per_item[other], on="item_id", suffix="__other")
        for metric in metrics:
            if metric not in joined.columns or f"{metric}__other" not in joined.columns:
                continue
            a, b = joined[metric].to_numpy(), joined[f"{metric}__other"].to_numpy()
            diff, low, high, p = paired_bootstrap(a, b, seed=seed)
            tests.append(
                PairedTest(metric, baseline, other, len(a), float(a.mean()), float(b.mean()), diff, low, high, p)
            )
    return tests


def summary_table(per_item: dict[str, pl.DataFrame], metrics: list[str]) -> pl.DataFrame:
    rows = []
    for name, frame in per_item.items():
        row = {"variant": name, "n": frame.height}
        for metric in metrics:
            if metric in frame.columns:
                row[metric] = float(frame[metric].cast(pl.Float64).mean())
        rows.append(row)
    return pl.DataFrame(rows)


def mean_intervals(
    per_item: dict[str, pl.DataFrame], metrics: list[str], n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, dict[str, tuple[float, float]]]:
    """Bootstrap (over items) confidence interval of each variant's mean of each metric: variant -> metric ->
    (low, high); the error bars of the plot and the ranges of the report."""
    rng = np.random.default_rng(seed)
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    for name, frame in per_item.items():
        intervals[name] = {}
        if frame.height == 0:
            continue
        draws = rng.integers(0, frame.height, size=(n_boot, frame.height))
        for metric in metrics:
            if metric in frame.columns:
                values = frame[metric].cast(pl.Float64).fill_null(0.0).to_numpy()
                low, high = np.quantile(values[draws].mean(axis=1), [alpha / 2, 1 - alpha / 2])
                intervals[name][metric] = (float(low), float(high))
    return intervals


def plot_metrics(
    summary: pl.DataFrame,
    metrics: list[str],
    path: Path,
    intervals: dict[str, dict[str, tuple[float, float]]] | None = None,
) -> Path:
    """Grouped bars of each variant's mean per metric, with bootstrap error bars when ``intervals`` are given; the
    y axis fits the values (a metric near 0.01 stays visible), from 0 to a little above the highest bar or bound."""
    present = [m for m in metrics if m in summary.columns]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(present)), 4))
    width = 0.8 / max(summary.height, 1)
    x = np.arange(len(present))
    top = 0.0
    for i, row in enumerate(summary.iter_rows(named=True)):
        means = np.array([row[m] if row[m] is not None else np.nan for m in present], dtype=float)
        bounds = (intervals or {}).get(row["variant"], {})
        yerr = None
        if bounds:
            low = np.array([bounds.get(m, (v, v))[0] for m, v in zip(present, means, strict=True)])
            high = np.array([bounds.get(m, (v, v))[1] for m, v in zip(present, means, strict=True)])
            yerr = np.vstack([np.clip(means - low, 0, None), np.clip(high - means, 0, None)])
            top = max(top, float(np.nanmax(high)) if len(high) else 0.0)
        top = max(top, float(np.nanmax(means)) if len(means) else 0.0)
        ax.bar(x + i * width, means, width, yerr=yerr, capsize=3, label=row["variant"])
    ax.set_xticks(x + width * (summary.height - 1) / 2, present, rotation=20)
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set_ylabel("mean over items" + (" (95% bootstrap CI)" if intervals else ""))
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_accuracy_vs_flops(points: list[dict], path: Path) -> Path:
    """One marker per (variant, strategy): accuracy against FLOPs per question, log x."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for variant in sorted({p["variant"] for p in points}):
        mine = [p for p in points if p["variant"] == variant]
        ax.scatter([p["flops"] for p in mine], [p["accuracy"] for p in mine], label=variant)
        for p in mine:
            ax.annotate(p["strategy"], (p["flops"], p["accuracy"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per question")
    ax.set_ylabel("accuracy (majority vote over all samples)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_accuracy_vs_k(scores: pl.DataFrame, path: Path) -> Path:
    """pass@k and maj@k curves per strategy (``score_strategies`` rows: strategy, metric, k, value)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for (strategy, metric), group in scores.group_by(["strategy", "metric"], maintain_order=True):
        ax.plot(group["k"], group["value"], marker="o", label=f"{strategy} {metric}")
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def config_differences(configs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The settings whose values differ between variants, one row per setting: ``{"setting": key, <variant>:
    value, ...}``, nested keys joined with dots, the name and description left out. Lists of named items (sources,
    decontamination benchmarks) are compared item by item: a row per field that differs
    (``sources.wiki18.limit``), and one row for an item only some variants have (``sources.nq-gold``: its config
    where present, None where absent). An empty list reads as a list of no items."""
    leaves = {name: {} for name in configs}
    items: dict[str, dict[str, Any]] = {name: {} for name in configs}
    for name, config in configs.items():
        _flatten(config, "", leaves[name], items[name])
    partial = sorted({k for per in items.values() for k in per if any(k not in other for other in items.values())})

    def inside_partial(key: str) -> bool:
        return any(key.startswith(f"{item}.") for item in partial)

    rows = [{"setting": k, **{n: per.get(k) for n, per in items.items()}} for k in partial if not inside_partial(k)]
    for key in sorted({k for per in leaves.values() for k in per} - {"name", "description"}):
        values = {name: per.get(key) for name, per in leaves.items()}
        if len({repr(v) for v in values.values()}) > 1 and not inside_partial(key):
            rows.append({"setting": key, **values})
    return sorted(rows, key=lambda row: row["setting"])


def _flatten(value: Any, prefix: str, leaves: dict[str, Any], items: dict[str, Any]) -> None:
    """``value``'s settings into ``leaves`` (dotted key -> value) and its named items into ``items`` (dotted key ->
    the item's config without its name)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}{key}.", leaves, items)
    elif isinstance(value, list) and _named_items(value):
        for item in value:
            key = f"{prefix}{item['name']}"
            items[key] = {k: v for k, v in item.items() if k != "name"}
            _flatten(items[key], f"{key}.", leaves, items)
    else:
        leaves[prefix[:-1]] = value


def _named_items(values: list) -> bool:
    names = [v.get("name") if isinstance(v, dict) else None for v in values]
    return all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def search_cost(retriever: Any, queries: list[str], k: int, latency_queries: int = 20) -> dict[str, float]:
    """What searching a datastore costs on real queries, the top-K cache bypassed: queries per second for the whole
    batch (query embedding + index search), and the median latency of one query searched alone (first
    ``latency_queries`` queries)."""
    if not queries:
        return {"queries": 0, "qps": 0.0, "latency_ms_median": 0.0}
    start = time.perf_counter()
    retriever.search_vectors(retriever.encode(queries), k)
    batch_s = time.perf_counter() - start
    latencies = []
    for query in queries[:latency_queries]:
        start = time.perf_counter()
        retriever.search_vectors(retriever.encode([query]), k)
        latencies.append(time.perf_counter() - start)
    return {
        "queries": len(queries),
        "qps": len(queries) / batch_s if batch_s > 0 else float("inf"),
        "latency_ms_median": float(np.median(latencies)) * 1000,
    }


def context_markdown(differences: list[dict[str, Any]], facts: dict[str, dict[str, Any]]) -> str:
    """The "what differs" and "what it costs" sections: the config diff, then per variant its documents, chunks,
    vectors, index type, build time, bytes on disk and search speed."""
    names = list(facts)
    lines = ["## What differs", ""]
    if differences:
        lines += ["| setting | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
        lines += [f"| {d['setting']} | " + " | ".join(_difference_cells(d, names)) + " |" for d in differences]
    else:
        lines.append("The variants' settings are the same (apart from their names).")
    rows = [
        ("documents", "documents", "{:,}"), ("chunks", "chunks", "{:,}"), ("vectors", "vectors", "{:,}"),
        ("index type", "index_type", "{}"), ("build time, all stages (s)", "build_s", "{:.1f}"),
        ("bytes on disk, all stages", "bytes", "{:,}"), ("search QPS", "qps", "{:.1f}"),
        ("search latency, median (ms)", "latency_ms_median", "{:.2f}"),
    ]  # fmt: skip
    lines += ["", "## What it costs", "", "| | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
    for label, key, fmt in rows:
        cells = [fmt.format(facts[n][key]) if facts[n].get(key) is not None else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


CELL_CHARS = 28  # a value in the "what differs" table: two variants and a setting fit a 100-column screen


def _difference_cells(row: dict[str, Any], names: list[str]) -> list[str]:
    """One "what differs" row's values, shortened: a named item (a source) only some variants have as its type and
    file ("absent" where missing), paths as the part after the folder they share, anything longer than
    ``CELL_CHARS`` cut (paths at the front, other values at the end)."""
    values = [row.get(n) for n in names]
    item_row = any(isinstance(v, dict) for v in values)
    paths = [v for v in values if isinstance(v, str) and v.startswith("/")]
    shared = os.path.commonpath(paths) if len(set(paths)) > 1 else None
    cells = []
    for value in values:
        is_path = value in paths
        if value is None:
            text = "absent" if item_row else "-"
        elif isinstance(value, dict):
            brief = [str(value["type"])] if value.get("type") else []
            brief += [Path(value["path"]).name] if value.get("path") else []
            text = " ".join(brief) or json.dumps(value)
        elif is_path:
            text = os.path.relpath(value, shared) if shared else Path(value).name
        else:
            text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > CELL_CHARS:
            text = "…" + text[1 - CELL_CHARS :] if is_path else text[: CELL_CHARS - 1] + "…"
        cells.append(text.replace("|", "\\|"))
    return cells


def markdown_report(
    title: str,
    summary: pl.DataFrame,
    tests: list[PairedTest],
    intervals: dict[str, dict[str, tuple[float, float]]] | None = None,
    context: str = "",
) -> str:
    """The comparison as markdown: the means (with their 95% bootstrap CI when ``intervals`` are given), one row per
    metric and a column per variant (as many metrics as a reader config brings still fit a screen), the paired
    tests, then ``context`` (``context_markdown``)."""
    metric_cols = [c for c in summary.columns if c not in ("variant", "n")]
    rows = summary.to_dicts()
    lines = [f"# {title}", "", "| metric | " + " | ".join(r["variant"] for r in rows) + " |"]
    lines += ["|---" * (1 + len(rows)) + "|", "| n | " + " | ".join(str(r["n"]) for r in rows) + " |"]
    for c in metric_cols:
        cells = []
        for row in rows:
            bounds = (intervals or {}).get(row["variant"], {})
            cells.append(
                "-" if row[c] is None
                else f"{row[c]:.4f} [{bounds[c][0]:.3f}, {bounds[c][1]:.3f}]" if c in bounds
                else f"{row[c]:.4f}"
            )  # fmt: skip
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    if tests:
        lines += ["", "Paired bootstrap (each variant minus the first; 95% CI; two-sided p):", ""]
        lines += ["| metric | variant | diff | 95% CI | p |", "|---|---|---|---|---|"]
        for t in tests:
            lines.append(
                f"| {t.metric} | {t.variant} | {t.diff:+.4f} | [{t.ci_low:+.4f}, {t.ci_high:+.4f}] | {t.p_value:.3f} |"
            )
    if context:
        lines += ["", context]
    return "\n".join(lines)


def html_report(
    title: str, summary: pl.DataFrame, tests: list[PairedTest], plots: list[Path], path: Path, context: str = ""
) -> Path:
    """A self-contained HTML file: the tables, ``context`` (markdown: what differs, what it costs) and the plots
    embedded as base64 PNG."""
    from markdown_it import MarkdownIt

    context_html = MarkdownIt("commonmark", {"html": False}).enable("table").render(context) if context else ""
    metric_cols = [c for c in summary.columns if c not in ("variant", "n")]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["variant", "n", *metric_cols])
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(r['variant'])}</td><td>{r['n']}</td>"
        + "".join(f"<td>{r[c]:.4f}</td>" if r[c] is not None else "<td>-</td>" for c in metric_cols)
        + "</tr>"
        for r in summary.iter_rows(named=True)
    )
    test_rows = "".join(
        f"<tr><td>{html.escape(t.metric)}</td><td>{html.escape(t.variant)}</td><td>{t.diff:+.4f}</td>"
        f"<td>[{t.ci_low:+.4f}, {t.ci_high:+.4f}]</td><td>{t.p_value:.3f}</td></tr>"
        for t in tests
    )
    images = "".join(
        f'<img alt="{html.escape(p.name)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in plots
    )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{body}</table>
<h2>Paired bootstrap tests (each variant minus {html.escape(summary["variant"][0])})</h2>
<table><tr><th>metric</th><th>variant</th><th>diff</th><th>95% CI</th><th>p</th></tr>{test_rows}</table>
{context_html}{images}</body></html>"""
    path.write_text(doc, encoding="utf-8")
    return path
