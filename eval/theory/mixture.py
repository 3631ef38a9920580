"""Training-task mixtures: the preconditioner a mixture trains, the task-selection QP and its stability diagnostic.

Every QP variant is written as ``min_pi ||T - sum_l pi_l A_l||_F^2`` over the probability simplex, so one Gram-matrix
routine gives its coefficients and one solver handles all of them. Per-direction coverage constraints keep each of the
target's eigen-directions covered (``mu < 2 - margin``), which the reported QP alone does not (docs/theory.md, Formulas: mixtures).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog, minimize

from catalog.errors import RereadError
from catalog.registry import Registry
from eval.theory.error_curves import coverage_eigenvalues, err_population, overthinking_onset
from eval.theory.lsa import gamma


class CoverageInfeasibleError(RereadError):
    """No mixture of the candidate tasks covers every constrained target direction: reweighting cannot create a
    skill that no candidate has."""


# ---------------------------------------------------------------- mixture models: which P_pi a mixture trains
MixtureModel = Callable[[Sequence[np.ndarray], np.ndarray, float], np.ndarray]
MIXTURE_MODELS: Registry[MixtureModel] = Registry("mixture model", ValueError)


def mixture_model(name: str) -> Callable[[MixtureModel], MixtureModel]:
    return MIXTURE_MODELS.register(name)


def _min_norm_inverse(moment: np.ndarray) -> np.ndarray:
    """Pseudo-inverse: a direction no task in the mixture covers gets no gradient, so any value there is optimal;
    the minimum-norm optimum leaves it at zero (that direction is never learned, whatever the CoT length)."""
    return np.linalg.pinv(moment, hermitian=True)


def _mix(mats: Sequence[np.ndarray], pi: np.ndarray) -> np.ndarray:
    return np.einsum("l,lij->ij", pi, np.asarray(mats, dtype=float))


@mixture_model("task")
def task_level_preconditioner(lams: Sequence[np.ndarray], pi: np.ndarray, n: float) -> np.ndarray:
    """Each prompt comes from one task: ``P = Lambda_bar M^-1``, ``M = sum pi_l [(1+1/n) L_l^2 + tr(L_l)/n L_l]``."""
    second = [(1 + 1 / n) * lam @ lam + np.trace(lam) / n * lam for lam in lams]
    return _mix(lams, pi) @ _min_norm_inverse(_mix(second, pi))


@mixture_model("pooled")
def pooled_preconditioner(lams: Sequence[np.ndarray], pi: np.ndarray, n: float) -> np.ndarray:
    """Every ``x`` of a prompt drawn from the Gaussian mixture: ``P = Lambda_bar E[S^2]^-1`` with
    ``E[S^2] = (1 - 1/n) Lambda_bar^2 + (1/n) sum pi_l (2 L_l^2 + tr(L_l) L_l)``."""
    lam_bar = _mix(lams, pi)
    fourth = _mix([2 * lam @ lam + np.trace(lam) * lam for lam in lams], pi)
    return lam_bar @ _min_norm_inverse((1 - 1 / n) * lam_bar @ lam_bar + fourth / n)


def mixture_preconditioner(lams: Sequence[np.ndarray], pi: np.ndarray, n: float, model: str = "task") -> np.ndarray:
    """The population-optimal LSA preconditioner ``P_pi`` trained on mixture ``pi`` (``n = inf`` allowed)."""
    if model not in MIXTURE_MODELS:
        raise ValueError(f"unknown mixture model {model!r}; known: {', '.join(MIXTURE_MODELS)}")
    return MIXTURE_MODELS[model](lams, np.asarray(pi, dtype=float), n)


# ---------------------------------------------------------------- QP variants: (target T, design matrices A_l)
QpDesign = Callable[[Sequence[np.ndarray], np.ndarray, float], tuple[np.ndarray, list[np.ndarray]]]
QP_VARIANTS: Registry[QpDesign] = Registry("QP variant", ValueError)


def qp_variant(name: str) -> Callable[[QpDesign], QpDesign]:
    return QP_VARIANTS.register(name)


@qp_variant("reported")
def _reported(lams: Sequence[np.ndarray], sigma: np.ndarray, n: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """The paper's QP ``||I - Sigma^-1 sum pi_l Lambda_l||_F^2`` (n plays no part)."""
    sigma_inv = np.linalg.inv(sigma)
    return np.eye(sigma.shape[0]), [sigma_inv @ lam for lam in lams]


@qp_variant("symmetric")
def _symmetric(lams: Sequence[np.ndarray], sigma: np.ndarray, n: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Basis-invariant form ``||I - Sigma^-1/2 Lambda_bar Sigma^-1/2||_F^2``; equals 'reported' when all commute."""
    vals, vecs = np.linalg.eigh(sigma)
    half_inv = vecs @ np.diag(vals**-0.5) @ vecs.T
    return np.eye(sigma.shape[0]), [half_inv @ lam @ half_inv for lam in lams]


@qp_variant("gamma")
def _gamma(lams: Sequence[np.ndarray], sigma: np.ndarray, n: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Finite-n: ``||I - Sigma^-1 sum pi_l Gamma_l(n)||_F^2``; the ridge makes it prefer harder tasks at small n."""
    sigma_inv = np.linalg.inv(sigma)
    return np.eye(sigma.shape[0]), [sigma_inv @ gamma(lam, n) for lam in lams]


@qp_variant("residual")
def _residual(lams: Sequence[np.ndarray], sigma: np.ndarray, n: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Finite-n: ``||Sigma^-1 (M_pi - Sigma Lambda_bar) Sigma^-1||_F^2``, the task-level model's exact zero-residual
    condition, linear in pi."""
    sigma_inv = np.linalg.inv(sigma)
    designs = [
        sigma_inv @ ((1 + 1 / n) * lam @ lam + np.trace(lam) / n * lam - sigma @ lam) @ sigma_inv for lam in lams
    ]
    return np.zeros_like(sigma, dtype=float), designs


@dataclass(frozen=True)
class QpCoefficients:
    """Objective ``const - 2 c^T pi + pi^T Q pi``. ``c`` reads as relevance, small off-diagonal ``Q`` as diversity."""

    quad: np.ndarray  # Q, a Gram matrix: PSD, so the problem is convex
    lin: np.ndarray  # c
    const: float

    def objective(self, pi: np.ndarray) -> float:
        return float(self.const - 2 * self.lin @ pi + pi @ self.quad @ pi)


def qp_coeffs(
    lams: Sequence[np.ndarray], sigma: np.ndarray, variant: str = "reported", n: float = np.inf
) -> QpCoefficients:
    """Coefficients of a registered QP variant for candidate task covariances ``lams`` and target ``sigma``."""
    if variant not in QP_VARIANTS:
        raise ValueError(f"unknown QP variant {variant!r}; known: {', '.join(QP_VARIANTS)}")
    target, designs = QP_VARIANTS[variant](lams, np.asarray(sigma, dtype=float), n)
    flat = np.stack([a.ravel() for a in designs])
    return QpCoefficients(quad=flat @ flat.T, lin=flat @ target.ravel(), const=float(target.ravel() @ target.ravel()))


# ---------------------------------------------------------------- solvers
def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Exact Euclidean projection onto ``{pi >= 0, sum pi = 1}`` (sort-and-threshold)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    idx = np.arange(1, len(v) + 1)
    rho = np.flatnonzero(u - cumulative / idx > 0)[-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0.0)


def solve_simplex_qp(coeffs: QpCoefficients, max_iter: int = 20_000, tol: float = 1e-15) -> np.ndarray:
    """Projected gradient with step ``1/(2 lambda_max(Q))`` from the uniform mixture (dependency-free), then an
    exact solve on the support it found: near a vertex a flat objective leaves projected gradient crawling."""
    q, c = coeffs.quad, coeffs.lin
    step = 1.0 / (2.0 * max(np.linalg.eigvalsh(q)[-1], 1e-300))
    pi = np.full(len(c), 1.0 / len(c))
    for _ in range(max_iter):
        nxt = project_to_simplex(pi - step * (2 * q @ pi - 2 * c))
        if np.max(np.abs(nxt - pi)) < tol:
            pi = nxt
            break
        pi = nxt
    return _polish_on_support(coeffs, pi)


def _polish_on_support(coeffs: QpCoefficients, pi: np.ndarray, threshold: float = 1e-4) -> np.ndarray:
    """Solve the equality-constrained QP (KKT system) on ``{pi_l > threshold}``; keep it only if it is feasible and
    no worse than ``pi``."""
    support = np.flatnonzero(pi > threshold)
    size = len(support)
    kkt = np.zeros((size + 1, size + 1))
    kkt[:size, :size] = 2 * coeffs.quad[np.ix_(support, support)]
    kkt[:size, size] = kkt[size, :size] = 1.0
    rhs = np.concatenate([2 * coeffs.lin[support], [1.0]])
    solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]
    candidate = np.zeros_like(pi)
    candidate[support] = solution
    feasible = candidate.min() >= 0 and abs(candidate.sum() - 1) < 1e-9
    if feasible and coeffs.objective(candidate) <= coeffs.objective(pi) + 1e-15 * max(1.0, abs(coeffs.objective(pi))):
        return candidate
    return pi


@dataclass(frozen=True)
class CoverageConstraints:
    """Coverage of the target by ``Gamma_pi = sum pi_l Gamma_l``: the direction ``u_j`` of Sigma needs
    ``u_j^T Gamma_pi u_j >= sigma_j / (2 - margin)`` (docs/theory.md's per-direction rows ``G pi >= h``, linear in pi).
    Those rows are necessary; the sufficient form is the matrix inequality ``Gamma_pi >= Sigma / (2 - margin)``,
    i.e. every eigenvalue of ``Gamma_pi^-1 Sigma`` below ``2 - margin``, which also catches directions that are
    covered one by one but not jointly (off-diagonal structure). Its ``lambda_min`` is concave in pi, so the
    constrained problem stays convex."""

    lhs: np.ndarray  # G: (directions, tasks), u_j^T Gamma_l u_j
    rhs: np.ndarray  # h: (directions,)
    gammas: np.ndarray  # (tasks, d, d) Gamma_l
    floor: np.ndarray  # Sigma / (2 - margin)

    def uncoverable(self) -> np.ndarray:
        """Directions no single task reaches: no mixture can cover them."""
        return np.flatnonzero(self.lhs.max(axis=1) < self.rhs)

    def matrix_slack(self, pi: np.ndarray) -> tuple[float, np.ndarray]:
        """``lambda_min(Gamma_pi - Sigma/(2 - margin))`` and its gradient in pi."""
        vals, vecs = np.linalg.eigh(np.einsum("l,lij->ij", pi, self.gammas) - self.floor)
        v = vecs[:, 0]
        return float(vals[0]), np.einsum("i,lij,j->l", v, self.gammas, v)


def eigenbasis(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of the target covariance. A diagonal target keeps its coordinate basis and order
    (so direction j is coordinate j, e.g. the advisor's j-th top direction) rather than eigh's ascending order."""
    if np.count_nonzero(sigma - np.diag(np.diag(sigma))) == 0:
        return np.diag(sigma).astype(float), np.eye(sigma.shape[0])
    return np.linalg.eigh(sigma)


def coverage_constraints(
    lams: Sequence[np.ndarray], sigma: np.ndarray, n: float = np.inf, margin: float = 0.25
) -> CoverageConstraints:
    """Coverage constraints of every target direction at ``mu < 2 - margin`` (affine in pi because ``Gamma_pi`` is)."""
    if not 0 <= margin < 2:
        raise ValueError(f"coverage margin must lie in [0, 2), got {margin}")
    sig_vals, sig_vecs = eigenbasis(sigma)
    gammas = np.stack([gamma(lam, n) for lam in lams])
    lhs = np.einsum("ij,lik,kj->jl", sig_vecs, gammas, sig_vecs)
    return CoverageConstraints(lhs=lhs, rhs=sig_vals / (2.0 - margin), gammas=gammas, floor=sigma / (2.0 - margin))


def solve_constrained_qp(coeffs: QpCoefficients, constraints: CoverageConstraints) -> np.ndarray:
    """The QP under coverage constraints: feasibility of the per-direction rows by linear programming, then SLSQP
    with the rows and the matrix inequality from the closest feasible point. Raises CoverageInfeasibleError naming
    the directions when no mixture covers the target."""
    n_tasks = len(coeffs.lin)
    feasible = linprog(
        np.zeros(n_tasks),
        A_ub=-constraints.lhs,
        b_ub=-constraints.rhs,
        A_eq=np.ones((1, n_tasks)),
        b_eq=[1.0],
        bounds=[(0, None)] * n_tasks,
        method="highs",
    )
    if feasible.status != 0:
        missing = constraints.uncoverable().tolist()
        raise CoverageInfeasibleError(
            f"no mixture of the {n_tasks} candidate tasks covers every target direction "
            f"(directions no candidate reaches: {missing or 'none alone; only jointly infeasible'})"
        )
    result = minimize(
        coeffs.objective,
        np.asarray(feasible.x, dtype=float),
        jac=lambda pi: 2 * coeffs.quad @ pi - 2 * coeffs.lin,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n_tasks,
        constraints=[
            {"type": "eq", "fun": lambda pi: np.sum(pi) - 1.0, "jac": lambda pi: np.ones(n_tasks)},
            {
                "type": "ineq",
                "fun": lambda pi: constraints.lhs @ pi - constraints.rhs,
                "jac": lambda pi: constraints.lhs,
            },
            {
                "type": "ineq",
                "fun": lambda pi: constraints.matrix_slack(pi)[0],
                "jac": lambda pi: constraints.matrix_slack(pi)[1],
            },
        ],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    pi = project_to_simplex(np.asarray(result.x, dtype=float))
    slack = constraints.matrix_slack(pi)[0]
    if slack < -1e-8 * max(1.0, float(np.abs(constraints.floor).max())):
        raise CoverageInfeasibleError(
            f"no mixture of the {n_tasks} candidate tasks covers the target jointly: every direction is reachable "
            f"alone but the best mixture leaves lambda_min(Gamma_pi - Sigma/(2 - margin)) = {slack:.3g} < 0"
        )
    return pi


@dataclass(frozen=True)
class MixtureWeights:
    pi: np.ndarray
    objective: float
    variant: str
    constrained: bool


def mixture_weights(
    lams: Sequence[np.ndarray],
    sigma: np.ndarray,
    variant: str = "reported",
    n: float = np.inf,
    coverage_margin: float | None = None,
) -> MixtureWeights:
    """Task-selection weights from a QP variant; with ``coverage_margin`` every target direction must be covered."""
    coeffs = qp_coeffs(lams, sigma, variant, n)
    if coverage_margin is None:
        pi = solve_simplex_qp(coeffs)
    else:
        pi = solve_constrained_qp(coeffs, coverage_constraints(lams, sigma, n, coverage_margin))
    return MixtureWeights(
        pi=pi, objective=coeffs.objective(pi), variant=variant, constrained=coverage_margin is not None
    )


def forward_optimal_weights(
    lams: Sequence[np.ndarray], sigma: np.ndarray, n: float, k: int, model: str = "task", grid: int = 20
) -> tuple[np.ndarray, float]:
    """The mixture minimising the exact forward error ``||(I - P_pi Sigma)^k||_F^2`` by a simplex grid search with
    ``grid`` steps per unit (cheap for a handful of tasks; the refinement step after the QP warm start)."""
    best_pi, best_err = None, np.inf
    for pi in simplex_grid(len(lams), grid):
        err = float(err_population(mixture_preconditioner(lams, pi, n, model), sigma, k)[0])
        if err < best_err:
            best_pi, best_err = pi, err
    return best_pi, best_err


def simplex_grid(n_tasks: int, steps: int) -> list[np.ndarray]:
    """All mixtures whose weights are multiples of ``1/steps`` (integer compositions of ``steps``)."""
    points = []
    for bars in itertools.combinations(range(steps + n_tasks - 1), n_tasks - 1):
        edges = np.array([-1, *bars, steps + n_tasks - 1])
        points.append((np.diff(edges) - 1) / steps)
    return points


# ---------------------------------------------------------------- baselines and the stability diagnostic
def uniform_weights(n_tasks: int) -> np.ndarray:
    return np.full(n_tasks, 1.0 / n_tasks)


def size_proportional_weights(sizes: Sequence[float]) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=float)
    if sizes.min() < 0 or sizes.sum() <= 0:
        raise ValueError(f"source sizes must be non-negative with a positive total, got {sizes.tolist()}")
    return sizes / sizes.sum()


@dataclass(frozen=True)
class Diagnosis:
    """How a mixture's trained preconditioner behaves on the target: ``mu`` are the eigenvalues of ``P_pi Sigma``."""

    mu: np.ndarray
    k_star: int | None
    errors: np.ndarray  # Err(k), k = 1..kmax
    coverage_ratios: np.ndarray  # sigma_j / (u_j^T Gamma_pi u_j) per target direction (see eigenbasis)
    margin: float = 0.0

    @property
    def max_mu(self) -> float:
        return float(self.mu.max())

    @property
    def overthinking(self) -> bool:
        return self.max_mu > 2.0

    @property
    def stable(self) -> bool:
        """Largest eigenvalue below ``2 - margin``: longer CoT keeps helping with room to spare."""
        return self.max_mu < 2.0 - self.margin


def diagnose(
    lams: Sequence[np.ndarray],
    pi: np.ndarray,
    sigma: np.ndarray,
    n: float = np.inf,
    model: str = "pooled",
    kmax: int = 20,
    margin: float = 0.0,
) -> Diagnosis:
    """The forward check the QP needs: eigenvalues of ``P_pi Sigma``, the overthinking onset, ``Err(k)`` and
    per-direction coverage ratios."""
    precond = mixture_preconditioner(lams, pi, n, model)
    gamma_pi = _mix([gamma(lam, n) for lam in lams], np.asarray(pi, dtype=float))
    sig_vals, sig_vecs = eigenbasis(sigma)
    covered = np.einsum("ij,ik,kj->j", sig_vecs, gamma_pi, sig_vecs)
    return Diagnosis(
        mu=coverage_eigenvalues(precond, sigma),
        k_star=overthinking_onset(precond, sigma, kmax),
        errors=err_population(precond, sigma, np.arange(1, kmax + 1)),
        coverage_ratios=sig_vals / np.maximum(covered, 1e-300),
        margin=margin,
    )
