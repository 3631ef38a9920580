"""Figures of the theory experiments, one function per experiment, drawn from the JSON result alone (so a figure
can be redrawn from a saved result)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and workers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from catalog.registry import Registry

PLOTTERS: Registry[Callable[[dict, plt.Figure], None]] = Registry("figure", ValueError)


def plotter(name: str) -> Callable:
    return PLOTTERS.register(name)


def save_figure(name: str, result: dict, path: Path) -> Path:
    """Draw experiment ``name``'s figure from its result and write it as PNG."""
    if name not in PLOTTERS:
        raise ValueError(f"no figure for experiment {name!r}; known: {', '.join(PLOTTERS)}")
    fig = plt.figure(figsize=(11, 4.2))
    try:
        PLOTTERS[name](result, fig)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def _positive(values: list[float]) -> np.ndarray:
    """Log-scale axes cannot show zeros or overflowed values: mask them."""
    arr = np.asarray(values, dtype=float)
    return np.where(np.isfinite(arr) & (arr > 0), arr, np.nan)


def _population_and_mc(ax: plt.Axes, ks: list[int], row: dict, label: str, mc_label: str | None = None) -> str:
    """A row's exact population curve (line) and the LSA's Monte Carlo errors (dots, same colour); returns the
    colour."""
    color = ax.semilogy(ks, _positive(row["population"]), label=label)[0].get_color()
    ax.semilogy(ks, _positive(row["lsa_monte_carlo"]), "o", ms=3, color=color, label=mc_label)
    return color


@plotter("trade")
def _trade(result: dict, fig: plt.Figure) -> None:
    ax, table = fig.subplots(1, 2)
    ks = result["k"]
    for n, curve in result["curves"].items():
        color = _population_and_mc(ax, ks, curve, f"n={n} population", f"n={n} LSA (MC)")
        ax.semilogy(ks, _positive(curve["bound_cor35"]), ":", color=color)
    ax.set(
        xlabel="CoT steps k",
        ylabel="E||w_k - w||^2",
        title=f"k-for-n trade (H = {result['hardness']:.1f}); dotted: Cor 3.5",
    )
    ax.legend(fontsize=7)
    table.semilogy(ks, result["n_for_error"]["n"], "s-")
    table.set(xlabel="CoT steps k", ylabel="training n", title=f"n needed for error {result['n_for_error']['eps']}")


@plotter("overthinking")
def _overthinking(result: dict, fig: plt.Figure) -> None:
    ax, mu_ax = fig.subplots(1, 2)
    ks = result["k"]
    for n, row in result["per_n"].items():
        _population_and_mc(ax, ks, row, f"n={n} (k*={row['k_star']})")
        mu_ax.plot(range(1, len(row["mu"]) + 1), sorted(row["mu"], reverse=True), ".-", label=f"n={n}")
    ax.set(xlabel="CoT steps k", ylabel="E||w_k - w||^2", title="skewed training, isotropic test (dots: LSA MC)")
    ax.legend(fontsize=7)
    mu_ax.axhline(2.0, color="k", ls="--", lw=1)
    mu_ax.set(xlabel="direction", ylabel="mu (eig of Gamma^-1 Sigma)", title="coverage: mu > 2 diverges")
    mu_ax.legend(fontsize=7)


@plotter("instability")
def _instability(result: dict, fig: plt.Figure) -> None:
    ax = fig.subplots(1, 1)
    for label, row in result["curves"].items():
        ax.semilogy(result["k"], _positive(row["errors"]), label=f"{label} (MP edge mu {row['mp_edge_mu']:.2f})")
    ax.set(xlabel="CoT steps k", ylabel="E||w_k - w||^2 (MC)", title="finite test prompts, Lambda = Sigma = I")
    ax.legend(fontsize=8)


@plotter("selection")
def _selection(result: dict, fig: plt.Figure) -> None:
    axes = fig.subplots(1, len(result["per_n"]) + 1)
    for ax, (n, rows) in zip(axes, result["per_n"].items(), strict=False):
        methods = list(rows)
        weights = np.array([rows[m]["pi"] for m in methods])
        ax.imshow(weights, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(weights):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="w" if value < 0.6 else "k")
        ax.set_xticks(range(len(result["alphas"])), [f"a={a}" for a in result["alphas"]], fontsize=7)
        errors = [f"{m} ({rows[m]['error_at_k']:.1e})" for m in methods]
        ax.set_yticks(
            range(len(methods)),
            errors if ax is axes[0] else [f"{rows[m]['error_at_k']:.1e}" for m in methods],
            fontsize=6,
        )
        ax.set_title(f"n={n}: weights (Err at k)", fontsize=8)
    pooled = axes[-1]
    for label, row in result["pooled_asymmetry"].items():
        ks = range(1, len(row["errors"]) + 1)
        pooled.semilogy(ks, _positive(row["errors"]), label=f"{label} (max mu {row['max_mu']:.2f})")
    pooled.set(xlabel="CoT steps k", ylabel="Err(k), pooled n=1000")
    pooled.set_title("under-coverage under pooling", fontsize=8)
    pooled.legend(fontsize=6)


@plotter("training")
def _training(result: dict, fig: plt.Figure) -> None:
    loss_ax, cot_ax = fig.subplots(1, 2)
    for name, row in result["parameterisations"].items():
        loss_ax.semilogy(row["losses"], label=f"{name}: |P - Gamma^-1|/|Gamma^-1| = {row['product_rel_error']:.4f}")
        line = cot_ax.semilogy(result["k"], _positive(row["cot_errors"]), label=f"{name} (W[y,1] = {row['w_y1']:.2f})")[
            0
        ]
        if row["predicted_plateau"] > 0:
            cot_ax.axhline(row["predicted_plateau"], color=line.get_color(), ls=":", lw=1)
    loss_ax.set(xlabel="step", ylabel="training loss", title="one-pass training (Adam, full batch)")
    loss_ax.legend(fontsize=7)
    cot_ax.set(
        xlabel="CoT steps k", ylabel="E||w_k - w||^2 (MC)", title="CoT of the trained LSA; dotted: d(1+W[y,1])^2"
    )
    cot_ax.legend(fontsize=7)
