"""The single-layer linear self-attention (LSA) model of in-context linear regression and its chain of thought.

Embedding rows are four blocks ``(x, y, w, 1)`` of sizes ``(d, 1, d, 1)``; a prompt of ``m`` pairs is a
``(2d+2) x (m+1)`` matrix whose last column is the query token carrying the current weight estimate. The closed-form
optimum preconditions with ``Gamma^-1`` and, run with ``k`` chain-of-thought passes, is exactly a pseudo-Newton method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Blocks:
    """Row/column index ranges of the four embedding blocks for feature dimension ``d``."""

    d: int

    @property
    def size(self) -> int:
        return 2 * self.d + 2

    @property
    def x(self) -> slice:
        return slice(0, self.d)

    @property
    def y(self) -> int:
        return self.d

    @property
    def w(self) -> slice:
        return slice(self.d + 1, 2 * self.d + 1)

    @property
    def one(self) -> int:
        return 2 * self.d + 1


def power_law_spectrum(d: int, alpha: float, trace: float | None = None) -> np.ndarray:
    """Eigenvalues ``i^-alpha`` for ``i = 1..d``; rescaled to sum to ``trace`` when given (docs/theory.md's
    trace-normalised tasks use ``trace = d`` so that tasks differ in shape, not in total energy)."""
    lam = np.arange(1, d + 1, dtype=float) ** -float(alpha)
    return lam * (trace / lam.sum()) if trace is not None else lam


def gamma(lam: np.ndarray, n: float) -> np.ndarray:
    """``Gamma = (1 + 1/n) Lambda + tr(Lambda)/n I``: the ridge-regularised covariance the trained LSA inverts.
    ``n = inf`` gives ``Lambda`` itself (infinitely long training prompts)."""
    lam = np.asarray(lam, dtype=float)
    return (1.0 + 1.0 / n) * lam + (np.trace(lam) / n) * np.eye(lam.shape[0])


def hardness(lam: np.ndarray) -> float:
    """Task hardness ``tr(Lambda) / lambda_min(Lambda)``: many skills with a long weak tail make a task hard."""
    lam = np.asarray(lam, dtype=float)
    eigs = np.linalg.eigvalsh(lam)
    if eigs[0] <= 0:
        raise ValueError(f"hardness needs a positive definite covariance; smallest eigenvalue is {eigs[0]:.3g}")
    return float(np.trace(lam) / eigs[0])


def wishart_second_moment(lam: np.ndarray, b: np.ndarray, n: float) -> np.ndarray:
    """``E[S B S]`` for ``S = X X^T / n``, ``x ~ N(0, Lambda)`` and symmetric ``B`` (Lemma A.2):
    ``(1 + 1/n) Lambda B Lambda + (1/n) tr(Lambda B) Lambda``."""
    lam = np.asarray(lam, dtype=float)
    return (1.0 + 1.0 / n) * lam @ b @ lam + (np.trace(lam @ b) / n) * lam


def sample_prompt(
    cov: np.ndarray, length: int, rng: np.random.Generator, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One noiseless regression prompt: ``X`` (d x length) with columns ``~ N(0, cov)``, ``w ~ N(0, I)``, ``y = X^T w``."""
    d = cov.shape[0]
    x = np.linalg.cholesky(cov) @ rng.standard_normal((d, length))
    w = rng.standard_normal(d) if w is None else w
    return x, x.T @ w, w


def lsa_optimal_params(lam: np.ndarray, n: float, c: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The global optimum ``(V_*, W_*)`` of Theorem 3.1: ``V[w,x] = -Gamma^-1 / c``, ``W[x,w] = c I``,
    ``W[y,1] = -c``, every other entry zero. The scale ``c`` is free: only the product is identified."""
    d = np.asarray(lam).shape[0]
    blocks = Blocks(d)
    v = np.zeros((blocks.size, blocks.size))
    w = np.zeros((blocks.size, blocks.size))
    v[blocks.w, blocks.x] = -np.linalg.inv(gamma(lam, n)) / c
    w[blocks.x, blocks.w] = c * np.eye(d)
    w[blocks.y, blocks.one] = -c
    return v, w


def build_embedding(x: np.ndarray, y: np.ndarray, w0: np.ndarray | None = None) -> np.ndarray:
    """The initial ``(2d+2) x (m+1)`` embedding: pairs in the first ``m`` columns, the query token
    ``(0, 0, w0, 1)`` last (``w0 = 0`` unless given)."""
    d, m = x.shape
    blocks = Blocks(d)
    e = np.zeros((blocks.size, m + 1))
    e[blocks.x, :m] = x
    e[blocks.y, :m] = y
    e[blocks.w, m] = 0.0 if w0 is None else w0
    e[blocks.one, m] = 1.0
    return e


def lsa_forward(e: np.ndarray, v: np.ndarray, w: np.ndarray, rho: float) -> np.ndarray:
    """``f(E) = E + V E (E^T W E) / rho``: softmax attention without the softmax."""
    return e + v @ e @ (e.T @ w @ e) / rho


def lsa_last_column(e: np.ndarray, v: np.ndarray, w: np.ndarray, rho: float) -> np.ndarray:
    """``f(E)[:, -1]`` without forming the ``(m+1) x (m+1)`` attention matrix: ``E[:, -1] + V E (E^T W E[:, -1]) / rho``."""
    return e[:, -1] + v @ (e @ (e.T @ (w @ e[:, -1]))) / rho


def lsa_cot(x: np.ndarray, y: np.ndarray, v: np.ndarray, w: np.ndarray, k: int, rho: float | None = None) -> np.ndarray:
    """Run ``k`` LSA passes, appending each whole output column as a new token; returns ``(k, d)`` estimates
    ``w_1..w_k``. ``rho`` defaults to the number of prompt pairs ``m`` (CoT tokens are not counted), which is what
    gives the pseudo-Newton step its ``1/m``; ``rho = n`` scales every step by ``m/n``."""
    d, m = x.shape
    blocks = Blocks(d)
    rho = float(m) if rho is None else float(rho)
    e = build_embedding(x, y)
    estimates = np.empty((k, d))
    for i in range(k):
        column = lsa_last_column(e, v, w, rho)
        estimates[i] = column[blocks.w]
        e = np.concatenate([e, column[:, None]], axis=1)
    return estimates


def pseudo_newton(x: np.ndarray, y: np.ndarray, precond: np.ndarray, k: int, step: float = 1.0) -> np.ndarray:
    """Proposition 3.2 from labels: ``w_{i+1} = w_i - (step/m) P X (X^T w_i - y)`` with ``w_0 = 0``, i.e. Newton's
    method on the least-squares loss with the inverse Hessian replaced by ``P`` (``Gamma^-1`` at the optimum).
    Returns the ``(k, d)`` iterates ``w_1..w_k``; O(md + d^2) per step."""
    d, m = x.shape
    estimate = np.zeros(d)
    iterates = np.empty((k, d))
    for i in range(k):
        estimate = estimate - (step / m) * precond @ (x @ (x.T @ estimate - y))
        iterates[i] = estimate
    return iterates
