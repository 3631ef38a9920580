"""PNG plot of fitted ladder curves, the ladder points and each method's matched compute."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eval.multiplier import MultiplierReport  # noqa: E402

_MARKERS = {"ok": "o", "extrapolated": "s", "above_ceiling": "^", "below_floor": "v"}


def plot_multipliers(report: MultiplierReport, path: str | Path) -> Path:
    """One panel per (benchmark, category): curve, ladder, and an arrow from each model to its matched compute."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(report.curves)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.5 * rows), squeeze=False)
    for ax, curve in zip(axes.flat, report.curves, strict=False):
        group_rows = [r for r in report.rows if (r.benchmark, r.category) == (curve.benchmark, curve.category)]
        matched = [math.log10(r.matched_flops) for r in group_rows]
        lo, hi = curve.log10_range
        lo, hi = min([lo, *matched]) - 0.3, max([hi, *matched]) + 0.3
        grid = np.linspace(lo, hi, 300)
        ax.plot(grid, curve.form.predict(curve.params, grid)[0], color="C0", label=f"{curve.form.name} fit")
        ax.scatter(curve.log10_flops, curve.accuracy, color="C0", zorder=3, label="ladder (base)")
        for i, row in enumerate(group_rows):
            x0, x1 = math.log10(row.flops), math.log10(row.matched_flops)
            color = f"C{1 + i % 8}"
            ax.annotate(
                "",
                xy=(x1, row.method_acc),
                xytext=(x0, row.method_acc),
                arrowprops={"arrowstyle": "->", "color": color},
            )
            label = f"{row.model} {row.method}".strip() + f": x{row.multiplier:.3g}"
            ax.scatter([x1], [row.method_acc], color=color, marker=_MARKERS[row.status], zorder=4, label=label)
        ax.set_xlabel("log10 training FLOPs")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{curve.benchmark} / {curve.category}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
