"""The theory's experiments as plain functions: a frozen config in, a JSON-able result out (figures: ``plots``).

Registered by name so the flows and the CLI share one list. Defaults are sized to finish well under a minute on two
CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from catalog.registry import Registry
from eval.theory.error_curves import (
    bound_cor35,
    coverage_eigenvalues,
    err_finite_m_mc,
    err_lsa_mc,
    err_population,
    err_remark41,
    n_for_error,
    overthinking_onset,
)
from eval.theory.lsa import Blocks, gamma, hardness, lsa_optimal_params, power_law_spectrum
from eval.theory.mixture import (
    diagnose,
    forward_optimal_weights,
    mixture_preconditioner,
    mixture_weights,
    size_proportional_weights,
    uniform_weights,
)


@dataclass(frozen=True)
class Experiment:
    name: str
    config: type
    run: Callable[[Any], dict]
    summary: str


EXPERIMENTS: Registry[Experiment] = Registry("experiment", ValueError)


def experiment(name: str, config: type, summary: str) -> Callable[[Callable[[Any], dict]], Callable[[Any], dict]]:
    def register(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
        EXPERIMENTS.add(name, Experiment(name=name, config=config, run=fn, summary=summary))
        return fn

    return register


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values)]


# ---------------------------------------------------------------- k-for-n trade
@dataclass(frozen=True)
class TradeConfig:
    d: int = 8
    alpha: float = 1.0  # training = test covariance diag(i^-alpha)
    ns: tuple[int, ...] = (10, 20, 30)
    kmax: int = 20
    m: int = 400  # test prompt length of the Monte Carlo runs of the LSA itself
    reps: int = 40
    eps: float = 0.01  # target error of the n-for-k table
    seed: int = 0


@experiment("trade", TradeConfig, "error vs CoT steps k for several training prompt lengths n (k-for-n trade)")
def trade_experiment(config: TradeConfig) -> dict:
    lam = np.diag(power_law_spectrum(config.d, config.alpha))
    hard = hardness(lam)
    ks = np.arange(1, config.kmax + 1)
    rng = np.random.default_rng(config.seed)
    curves = {}
    for n in config.ns:
        v, w = lsa_optimal_params(lam, n)
        curves[str(n)] = {
            "population": _floats(err_population(np.linalg.inv(gamma(lam, n)), lam, ks)),
            "bound_cor35": _floats(bound_cor35(lam, n, ks)),
            "lsa_monte_carlo": _floats(err_lsa_mc(v, w, lam, config.m, config.kmax, config.reps, rng)),
        }
    longest = str(max(config.ns))
    direct_longest = curves[longest]["population"][0]
    steps_to_match = {
        n: next((int(k) for k, e in zip(ks, curves[n]["population"], strict=True) if e <= direct_longest), None)
        for n in curves
    }
    return {
        "k": ks.tolist(),
        "hardness": hard,
        "curves": curves,
        "steps_to_match_longest_direct": steps_to_match,
        "n_for_error": {"eps": config.eps, "n": _floats(n_for_error(ks, config.eps, config.d, hard))},
    }


# ---------------------------------------------------------------- overthinking
@dataclass(frozen=True)
class OverthinkingConfig:
    d: int = 20
    alpha: float = 1.0  # skewed training covariance diag(i^-alpha), test covariance I
    trace_normalised: bool = True  # trace d (the paper's U-shape); False: raw i^-alpha
    ns: tuple[int, ...] = (10, 30, 100, 1000)
    kmax: int = 30
    m: int = 2000
    reps: int = 10
    seed: int = 0


@experiment(
    "overthinking", OverthinkingConfig, "skewed training covariance, isotropic test: error first falls, then rises"
)
def overthinking_experiment(config: OverthinkingConfig) -> dict:
    lam = np.diag(power_law_spectrum(config.d, config.alpha, trace=config.d if config.trace_normalised else None))
    sigma = np.eye(config.d)
    ks = np.arange(1, config.kmax + 1)
    rng = np.random.default_rng(config.seed)
    per_n = {}
    for n in config.ns:
        gamma_n = gamma(lam, n)
        precond = np.linalg.inv(gamma_n)
        population = err_population(precond, sigma, ks)
        mu = coverage_eigenvalues(precond, sigma)
        v, w = lsa_optimal_params(lam, n)
        per_n[str(n)] = {
            "mu": _floats(mu),
            "max_mu": float(mu.max()),
            "k_star": overthinking_onset(precond, sigma),
            "min_error": float(population.min()),
            "population": _floats(population),
            "remark41": _floats(err_remark41(gamma_n, sigma, ks)),
            "lsa_monte_carlo": _floats(err_lsa_mc(v, w, sigma, config.m, config.kmax, config.reps, rng)),
        }
    return {"k": ks.tolist(), "hardness": hardness(lam), "per_n": per_n}


# ---------------------------------------------------------------- finite-m instability
@dataclass(frozen=True)
class InstabilityConfig:
    d: int = 10
    cases: tuple[tuple[int, int], ...] = ((1000, 20), (1000, 60), (1000, 200), (10, 20))  # (n, m)
    kmax: int = 40
    reps: int = 200
    seed: int = 0


@experiment("instability", InstabilityConfig, "finite test prompts: long training contexts trade stability for speed")
def instability_experiment(config: InstabilityConfig) -> dict:
    eye = np.eye(config.d)
    rng = np.random.default_rng(config.seed)
    curves = {}
    for n, m in config.cases:
        gamma_n = gamma(eye, n)
        curve = err_finite_m_mc(np.linalg.inv(gamma_n), eye, m, config.kmax, config.reps, rng)
        curves[f"n={n},m={m}"] = {
            "n": n,
            "m": m,
            "errors": _floats(curve),
            "mp_edge_mu": float((1 + np.sqrt(config.d / m)) ** 2 / gamma_n[0, 0]),
        }
    return {"k": list(range(1, config.kmax + 1)), "curves": curves}


# ---------------------------------------------------------------- multi-task selection
@dataclass(frozen=True)
class SelectionConfig:
    d: int = 6
    alphas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)  # candidate tasks (trace-normalised power laws)
    target_alpha: float = 1.0
    sizes: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0)  # corpus sizes of the candidates (easy data is plentiful)
    ns: tuple[int, ...] = (10, 20, 200)
    k: int = 5
    grid: int = 20
    kmax: int = 20


def _weightings(lams, sigma, n, config: SelectionConfig) -> dict[str, np.ndarray]:
    return {
        "qp_reported": mixture_weights(lams, sigma, "reported").pi,
        "qp_gamma": mixture_weights(lams, sigma, "gamma", n).pi,
        "qp_residual": mixture_weights(lams, sigma, "residual", n).pi,
        "forward_optimal": forward_optimal_weights(lams, sigma, n, config.k, "task", config.grid)[0],
        "uniform": uniform_weights(len(lams)),
        "size_proportional": size_proportional_weights(config.sizes),
    }


def _pooled_asymmetry(kmax: int) -> dict:
    """Spec Check 12: the reported QP under-covers a target direction; under pooling that diverges."""
    lams, sigma, n = [np.diag([1.0, 0.0]), np.diag([10.0, 1.0])], np.eye(2), 1000
    weightings = {
        "qp_reported": mixture_weights(lams, sigma, "reported").pi,
        "qp_coverage": mixture_weights(lams, sigma, "reported", coverage_margin=0.25).pi,
        "forward_optimal": forward_optimal_weights(lams, sigma, n, 5, "pooled", grid=100)[0],
        "uniform": uniform_weights(2),
    }
    out = {}
    for label, pi in weightings.items():
        diag = diagnose(lams, pi, sigma, n, "pooled", kmax)
        out[label] = {"pi": _floats(pi), "max_mu": diag.max_mu, "k_star": diag.k_star, "errors": _floats(diag.errors)}
    return out


@experiment("selection", SelectionConfig, "task-mixture selection: QP variants vs the exact optimum and baselines")
def selection_experiment(config: SelectionConfig) -> dict:
    if len(config.sizes) != len(config.alphas):
        raise ValueError(f"sizes ({len(config.sizes)}) must give one size per candidate alpha ({len(config.alphas)})")
    lams = [np.diag(power_law_spectrum(config.d, a, trace=config.d)) for a in config.alphas]
    sigma = np.diag(power_law_spectrum(config.d, config.target_alpha, trace=config.d))
    per_n = {}
    for n in config.ns:
        rows = {}
        for label, pi in _weightings(lams, sigma, n, config).items():
            precond = mixture_preconditioner(lams, pi, n, "task")
            rows[label] = {
                "pi": _floats(pi),
                "error_at_k": float(err_population(precond, sigma, config.k)[0]),
                "max_mu": float(coverage_eigenvalues(precond, sigma).max()),
            }
        per_n[str(n)] = rows
    return {
        "alphas": list(config.alphas),
        "hardness": [hardness(lam) for lam in lams],
        "per_n": per_n,
        "pooled_asymmetry": _pooled_asymmetry(config.kmax),
    }


# ---------------------------------------------------------------- training by gradient descent
@dataclass(frozen=True)
class TrainingConfig:
    d: int = 3
    alpha: float = 1.0
    n: int = 10
    prompts: int = 100_000
    steps: int = 1500
    lr: float = 0.05
    m: int = 2000
    reps: int = 50
    kmax: int = 60
    seed: int = 0


@experiment("training", TrainingConfig, "LSA trained by gradient descent (torch) vs the closed form, and its CoT")
def training_experiment(config: TrainingConfig) -> dict:
    from eval.theory.training import TrainConfig, train_lsa  # torch: loaded by this experiment only

    lam = np.diag(power_law_spectrum(config.d, config.alpha))
    target = np.linalg.inv(gamma(lam, config.n))
    blocks = Blocks(config.d)
    rng = np.random.default_rng(config.seed)
    out = {}
    for name in ("frozen_w", "free"):
        result = train_lsa(
            lam,
            TrainConfig(
                n=config.n,
                prompts=config.prompts,
                steps=config.steps,
                lr=config.lr,
                parameterisation=name,
                seed=config.seed,
            ),
        )
        out[name] = {
            "losses": _floats(result.losses),
            "product": result.product.tolist(),
            "product_rel_error": float(np.linalg.norm(result.product - target) / np.linalg.norm(target)),
            "w_y1": float(result.w[blocks.y, blocks.one]),
            "predicted_plateau": result.cot_plateau,
            "cot_errors": _floats(err_lsa_mc(result.v, result.w, lam, config.m, config.kmax, config.reps, rng)),
        }
    return {"gamma_inv": target.tolist(), "k": list(range(1, config.kmax + 1)), "parameterisations": out}


def config_from_overrides(name: str, overrides: dict[str, Any]) -> Any:
    """An experiment's config with some fields replaced (lists become tuples, as the frozen configs hold)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    cls = EXPERIMENTS[name].config
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"experiment {name!r} has no setting {', '.join(unknown)}; settings: {', '.join(sorted(known))}"
        )
    return cls(**{k: _tupled(v) for k, v in overrides.items()})


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
