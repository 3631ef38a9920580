"""Side-by-side comparison of corpus variants on per-item metrics, with paired bootstrap tests of each difference,
saved as an HTML report with PNG plots (and returned as markdown for a Prefect artifact)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

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


def plot_metrics(summary: pl.DataFrame, metrics: list[str], path: Path) -> Path:
    present = [m for m in metrics if m in summary.columns]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(present)), 4))
    width = 0.8 / max(summary.height, 1)
    x = np.arange(len(present))
    for i, row in enumerate(summary.iter_rows(named=True)):
        ax.bar(x + i * width, [row[m] for m in present], width, label=row["variant"])
    ax.set_xticks(x + width * (summary.height - 1) / 2, present, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over items")
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


def markdown_report(title: str, summary: pl.DataFrame, tests: list[PairedTest]) -> str:
    metric_cols = [c for c in summary.columns if c not in ("variant", "n")]
    lines = [f"# {title}", "", "| variant | n | " + " | ".join(metric_cols) + " |"]
    lines.append("|---" * (2 + len(metric_cols)) + "|")
    for row in summary.iter_rows(named=True):
        values = " | ".join(f"{row[c]:.4f}" if row[c] is not None else "-" for c in metric_cols)
        lines.append(f"| {row['variant']} | {row['n']} | {values} |")
    if tests:
        lines += ["", "Paired bootstrap (each variant minus the first; 95% CI; two-sided p):", ""]
        lines += ["| metric | variant | diff | 95% CI | p |", "|---|---|---|---|---|"]
        for t in tests:
            lines.append(
                f"| {t.metric} | {t.variant} | {t.diff:+.4f} | [{t.ci_low:+.4f}, {t.ci_high:+.4f}] | {t.p_value:.3f} |"
            )
    return "\n".join(lines)


def html_report(title: str, summary: pl.DataFrame, tests: list[PairedTest], plots: list[Path], path: Path) -> Path:
    """A self-contained HTML file: the tables and the plots embedded as base64 PNG."""
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
{images}</body></html>"""
    path.write_text(doc, encoding="utf-8")
    return path
