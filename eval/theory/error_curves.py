"""Error of the chain-of-thought estimate ``w_k`` after ``k`` passes: exact population curves, the finite-``m``
one-pass formula, Monte Carlo over real prompts, the paper's bounds and the overthinking onset.

Every curve takes a preconditioner ``P`` (``Gamma^-1`` for a single training task, ``P_pi`` for a mixture) and the test
covariance ``Sigma``; ``k`` counts LSA passes, so ``k = 1`` is direct in-context learning.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh, sqrtm

from eval.theory.lsa import hardness, lsa_cot, pseudo_newton, sample_prompt


def _ks(ks: int | np.ndarray) -> np.ndarray:
    ks = np.atleast_1d(np.asarray(ks, dtype=int))
    if ks.min() < 0:
        raise ValueError(f"CoT step counts must be non-negative, got {ks.min()}")
    return ks


def _frobenius_power_curve(step: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """``||step^k||_F^2`` for each k, by repeated multiplication up to ``max(ks)`` (overflow reads as inf)."""
    power = np.eye(step.shape[0])
    out = np.empty(len(ks))
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(int(ks.max()) + 1):
            out[ks == k] = float(np.sum(power * power))
            power = step @ power
    return out


def err_population(precond: np.ndarray, sigma: np.ndarray, ks: int | np.ndarray) -> np.ndarray:
    """``Err(k) = ||(I - P Sigma)^k||_F^2``: expected ``||w_k - w||^2`` for ``w ~ N(0, I)`` as ``m -> inf``."""
    d = sigma.shape[0]
    return _frobenius_power_curve(np.eye(d) - precond @ sigma, _ks(ks))


def err_remark41(gamma_: np.ndarray, sigma: np.ndarray, ks: int | np.ndarray) -> np.ndarray:
    """Remark 4.1's ``tr((I - Gamma^-1/2 Sigma Gamma^-1/2)^2k)``; equals ``err_population`` when Gamma and Sigma
    commute and grows at the same rate otherwise."""
    g_half_inv = np.linalg.inv(np.real(sqrtm(gamma_)))
    sym = np.eye(sigma.shape[0]) - g_half_inv @ sigma @ g_half_inv
    r = np.linalg.eigvalsh((sym + sym.T) / 2)
    ks = _ks(ks)
    with np.errstate(over="ignore"):
        return np.array([float(np.sum(r ** (2 * k))) for k in ks])


def err_k1_finite_m(g: np.ndarray, sigma: np.ndarray, m: int) -> float:
    """Exact one-pass error with an ``m``-pair test prompt and preconditioner ``G^-1`` (Prop. 5.1 of the follow-up,
    without its typo): ``||I - G^-1 Sigma||_F^2 + (1/m)[tr(G^-1 Sigma^2 G^-T) + tr(G^-1 Sigma G^-T) tr(Sigma)]``."""
    g_inv = np.linalg.inv(g)
    bias = np.eye(sigma.shape[0]) - g_inv @ sigma
    variance = np.trace(g_inv @ sigma @ sigma @ g_inv.T) + np.trace(g_inv @ sigma @ g_inv.T) * np.trace(sigma)
    return float(np.sum(bias * bias) + variance / m)


def err_finite_m_mc(
    precond: np.ndarray, sigma: np.ndarray, m: int, kmax: int, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """Monte Carlo mean of ``||w_k - w||^2`` for ``k = 1..kmax`` over ``reps`` fresh test prompts of ``m`` pairs,
    running the pseudo-Newton recursion from the labels (what the LSA computes)."""
    total = np.zeros(kmax)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(reps):
            x, y, w = sample_prompt(sigma, m, rng)
            iterates = pseudo_newton(x, y, precond, kmax)
            total += np.sum((iterates - w) ** 2, axis=1)
    return total / reps


def bound_thm33(lam: np.ndarray, n: float, m: float) -> float:
    """Theorem 3.3 (k = 1, Sigma = Lambda): ``(d/n^2)(1 + H)^2 + (d/m)(1 + H)``."""
    d, h = lam.shape[0], hardness(lam)
    return float(d / n**2 * (1 + h) ** 2 + d / m * (1 + h))


def bound_cor35(lam: np.ndarray, n: float, ks: int | np.ndarray) -> np.ndarray:
    """Corollary 3.5 (Sigma = Lambda, m -> inf): ``d (1 + n/(1 + H))^-2k``; equality for ``Lambda = I``."""
    d, h = lam.shape[0], hardness(lam)
    return d * (1.0 + n / (1.0 + h)) ** (-2.0 * _ks(ks))


def n_for_error(k: int | np.ndarray, eps: float, d: int, hard: float) -> np.ndarray:
    """Training prompt length that Corollary 3.5 says reaches error ``eps`` after ``k`` passes:
    ``n = (1 + H)((d/eps)^(1/2k) - 1)``: test-time steps traded for training context."""
    return (1.0 + hard) * ((d / eps) ** (1.0 / (2.0 * _ks(k))) - 1.0)


def coverage_eigenvalues(precond: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Eigenvalues ``mu`` of ``P Sigma`` (ascending). The recursion is stable iff every ``0 < mu < 2``; a test
    direction with ``mu > 2`` is under-covered by training and makes longer CoT diverge (overthinking)."""
    sym_p = (precond + precond.T) / 2
    if np.allclose(precond, sym_p) and np.all(np.linalg.eigvalsh(sym_p) > 0):
        # P Sigma is similar to the symmetric Sigma^1/2 P Sigma^1/2: real spectrum, computed stably.
        return eigh(sigma, np.linalg.inv(sym_p), eigvals_only=True)
    return np.sort(np.real(np.linalg.eigvals(precond @ sigma)))


def overthinking_onset(precond: np.ndarray, sigma: np.ndarray, kmax: int = 1000) -> int | None:
    """``k*``: the smallest ``k`` with ``Err(k+1) > Err(k)``, or None when the error never rises within ``kmax``
    (it never does when every ``|1 - mu| <= 1`` and ``P Sigma`` is diagonalisable in an orthonormal basis)."""
    curve = err_population(precond, sigma, np.arange(1, kmax + 2))
    rises = np.flatnonzero(curve[1:] > curve[:-1])
    return int(rises[0]) + 1 if rises.size else None


def err_lsa_mc(
    v: np.ndarray, w: np.ndarray, sigma: np.ndarray, m: int, kmax: int, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """Monte Carlo mean of ``||w_k - w||^2`` for ``k = 1..kmax`` running the LSA itself (parameters ``V, W``) with
    chain-of-thought columns appended, on ``reps`` fresh test prompts of ``m`` pairs."""
    total = np.zeros(kmax)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(reps):
            x, y, w_true = sample_prompt(sigma, m, rng)
            total += np.sum((lsa_cot(x, y, v, w, kmax) - w_true) ** 2, axis=1)
    return total / reps
