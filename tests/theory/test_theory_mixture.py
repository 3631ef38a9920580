"""Spec section 10 oracles 8-10: multi-task preconditioners, the task-selection QP variants, coverage constraints and
the trained LSA."""

from __future__ import annotations

import numpy as np
import pytest

from eval.theory.error_curves import coverage_eigenvalues, err_population
from eval.theory.lsa import gamma, power_law_spectrum, sample_prompt
from eval.theory.mixture import (
    CoverageInfeasibleError,
    diagnose,
    forward_optimal_weights,
    mixture_preconditioner,
    mixture_weights,
    project_to_simplex,
    qp_coeffs,
    simplex_grid,
    size_proportional_weights,
    solve_simplex_qp,
    uniform_weights,
)
from eval.theory.training import TrainConfig, train_lsa

ALPHAS = (0.0, 0.5, 1.0, 2.0)  # easy, medium, matched, very hard (docs/theory.md oracle 8)

# Tests using these fixtures are marked slow (tests/conftest.py): trained runs the LSA training loop.
SLOW_FIXTURES = ("trained",)


@pytest.fixture(scope="module")
def check13():
    lams = [np.diag(power_law_spectrum(6, a, trace=6)) for a in ALPHAS]
    return lams, lams[2]


# ---------------------------------------------------------------- oracle 8
def test_single_task_mixture_is_gamma_inverse_and_pooled_tends_to_lambda_bar_inverse():
    lam = np.diag([3.0, 1.0, 0.2])
    assert np.allclose(mixture_preconditioner([lam], np.array([1.0]), 10, "task"), np.linalg.inv(gamma(lam, 10)))
    lams, pi = [lam, np.diag([0.5, 2.0, 1.0])], np.array([0.25, 0.75])
    lam_bar = 0.25 * lams[0] + 0.75 * lams[1]
    assert np.allclose(mixture_preconditioner(lams, pi, np.inf, "pooled"), np.linalg.inv(lam_bar))


def _least_squares_preconditioner(sample_x, reps=40_000):
    """Monte Carlo ``E[S] E[S^2]^-1`` (``S = X X^T / n``) over ``reps`` prompts ``X`` from ``sample_x()``: the
    preconditioner least squares fits on those prompts."""
    lhs = rhs = 0.0
    for _ in range(reps):
        x = sample_x()
        s = x @ x.T / x.shape[1]
        lhs, rhs = lhs + s @ s, rhs + s
    return rhs @ np.linalg.inv(lhs)


@pytest.mark.slow
def test_task_level_preconditioner_matches_monte_carlo_least_squares():
    rng = np.random.default_rng(0)
    lams = [np.diag([2.0, 0.5]), np.array([[1.0, 0.4], [0.4, 1.0]])]
    pi, n = np.array([0.3, 0.7]), 6
    mc = _least_squares_preconditioner(lambda: sample_prompt(lams[rng.choice(2, p=pi)], n, rng)[0])
    exact = mixture_preconditioner(lams, pi, n, "task")
    assert np.linalg.norm(mc - exact) / np.linalg.norm(exact) < 0.02


@pytest.mark.slow
def test_pooled_preconditioner_matches_monte_carlo_least_squares():
    rng = np.random.default_rng(1)
    lams = [np.diag([2.0, 0.2]), np.diag([0.3, 1.5])]
    pi, n = np.array([0.6, 0.4]), 8

    def pooled_prompt():
        return np.stack([sample_prompt(lams[t], 1, rng)[0][:, 0] for t in rng.choice(2, size=n, p=pi)], axis=1)

    mc = _least_squares_preconditioner(pooled_prompt)
    exact = mixture_preconditioner(lams, pi, n, "pooled")
    assert np.linalg.norm(mc - exact) / np.linalg.norm(exact) < 0.02


def test_disjoint_supports_make_task_level_preconditioner_independent_of_weights():
    first, second = np.diag([1.0, 2.0, 0.0, 0.0]), np.diag([0.0, 0.0, 3.0, 0.5])
    a = mixture_preconditioner([first, second], np.array([0.2, 0.8]), 15, "task")
    b = mixture_preconditioner([first, second], np.array([0.9, 0.1]), 15, "task")
    assert np.max(np.abs(a - b)) < 1e-12
    assert np.allclose(a[:2, :2], np.linalg.inv(gamma(np.diag([1.0, 2.0]), 15)))


def test_reported_qp_picks_matched_task_and_gamma_qp_picks_hard_task(check13):
    lams, sigma = check13
    reported = mixture_weights(lams, sigma, "reported")
    assert np.allclose(reported.pi, [0, 0, 1, 0]) and reported.objective < 1e-13
    assert np.allclose(mixture_weights(lams, sigma, "gamma", n=10).pi, [0, 0, 0, 1])
    # at large n every variant settles near the matched task
    for variant in ("gamma", "residual"):
        assert mixture_weights(lams, sigma, variant, n=200).pi[2] > 0.9


@pytest.mark.slow
def test_exact_task_level_optimum_prefers_harder_tasks_at_small_n(check13):
    lams, sigma = check13
    assert np.allclose(forward_optimal_weights(lams, sigma, 10, 1)[0], [0, 0, 0, 1])
    assert np.allclose(forward_optimal_weights(lams, sigma, 20, 5)[0], [0, 0, 0.45, 0.55])
    assert np.allclose(forward_optimal_weights(lams, sigma, 200, 1)[0], [0, 0, 0.95, 0.05])


def test_qp_coefficients_match_the_objective_they_encode(check13):
    lams, sigma = check13
    rng = np.random.default_rng(2)
    pi = project_to_simplex(rng.random(4))
    coeffs = qp_coeffs(lams, sigma, "reported")
    direct = np.eye(6) - np.linalg.inv(sigma) @ sum(p * lam for p, lam in zip(pi, lams, strict=True))
    assert coeffs.objective(pi) == pytest.approx(np.sum(direct**2), rel=1e-12)
    assert coeffs.lin[1] == pytest.approx(np.trace(np.linalg.inv(sigma) @ lams[1]))
    assert np.all(np.linalg.eigvalsh(coeffs.quad) > -1e-9)


def test_simplex_qp_solver_agrees_with_grid_search():
    rng = np.random.default_rng(3)
    lams = [np.diag(rng.uniform(0.2, 3.0, 4)) for _ in range(3)]
    sigma = np.diag(rng.uniform(0.5, 2.0, 4))
    coeffs = qp_coeffs(lams, sigma, "reported")
    best = min(coeffs.objective(p) for p in simplex_grid(3, 200))
    pi = solve_simplex_qp(coeffs)
    assert pi.sum() == pytest.approx(1.0) and pi.min() >= 0
    assert coeffs.objective(pi) <= best + 1e-9


# ---------------------------------------------------------------- oracle 9 and coverage constraints
def test_pooled_asymmetry_and_coverage_constraints():
    lams, sigma = [np.diag([1.0, 0.0]), np.diag([10.0, 1.0])], np.eye(2)
    reported = mixture_weights(lams, sigma, "reported")
    assert reported.pi == pytest.approx([81 / 82, 1 / 82], abs=1e-9)
    pooled = diagnose(lams, reported.pi, sigma, n=1000, model="pooled")
    assert pooled.max_mu == pytest.approx(39.71, abs=0.01) and pooled.overthinking and pooled.k_star == 1
    task = diagnose(lams, reported.pi, sigma, n=1000, model="task")
    assert task.max_mu == pytest.approx(0.99, abs=0.01) and not task.overthinking
    covered = mixture_weights(lams, sigma, "reported", coverage_margin=0.25)
    fixed = diagnose(lams, covered.pi, sigma, n=1000, model="pooled", margin=0.25)
    assert fixed.stable and fixed.k_star is None
    assert np.all(fixed.coverage_ratios <= 2 - 0.25 + 1e-9)
    best_pi, best_err = forward_optimal_weights(lams, sigma, 1000, 5, "pooled", grid=100)
    assert best_pi == pytest.approx([0.4, 0.6]) and best_err == pytest.approx(0.194, abs=1e-3)
    assert err_population(mixture_preconditioner(lams, covered.pi, 1000, "pooled"), sigma, 5)[0] < 0.3


def test_coverage_infeasible_names_the_directions():
    lams = [np.diag([1.0, 0.0]), np.diag([0.0, 1.0])]
    with pytest.raises(CoverageInfeasibleError, match=r"directions no candidate reaches: \[0, 1\]"):
        mixture_weights(lams, 3 * np.eye(2), coverage_margin=0.25)


def test_baseline_weights():
    assert uniform_weights(4) == pytest.approx([0.25] * 4)
    assert size_proportional_weights([1, 3]) == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="source sizes"):
        size_proportional_weights([0, 0])


def test_uncovered_direction_is_never_learned():
    lams, sigma = [np.diag([1.0, 0.0])], np.eye(2)
    precond = mixture_preconditioner(lams, np.array([1.0]), np.inf, "pooled")
    assert coverage_eigenvalues(precond, sigma) == pytest.approx([0.0, 1.0])
    assert err_population(precond, sigma, 50)[0] == pytest.approx(1.0)


# ---------------------------------------------------------------- oracle 10
@pytest.fixture(scope="module")
def trained():
    lam = np.diag(power_law_spectrum(3, 1.0))
    config = TrainConfig(n=10, prompts=100_000, steps=1500)
    return lam, {
        p: train_lsa(lam, TrainConfig(**{**config.__dict__, "parameterisation": p})) for p in ("frozen_w", "free")
    }


def test_trained_product_matches_gamma_inverse(trained):
    lam, results = trained
    target = np.linalg.inv(gamma(lam, 10))
    for result in results.values():
        assert np.linalg.norm(result.product - target) / np.linalg.norm(target) < 0.01
        assert result.losses[-1] < 0.5 * result.losses[0]


def _cot_curve(lam, result, ks, reps=100, m=2000):
    from eval.theory.lsa import lsa_cot

    rng = np.random.default_rng(9)
    errs = np.zeros(len(ks))
    for _ in range(reps):
        x, y, w = sample_prompt(lam, m, rng)
        estimates = lsa_cot(x, y, result.v, result.w, max(ks))
        errs += np.sum((estimates[np.array(ks) - 1] - w) ** 2, axis=1)
    return errs / reps


def test_frozen_w_cot_converges_and_free_w_plateaus(trained):
    lam, results = trained
    frozen = _cot_curve(lam, results["frozen_w"], [1, 40])
    assert frozen[1] < 1e-10
    free = results["free"]
    assert abs(1 + free.w[3, 7]) > 0.1  # the scale split drifted away from W_*
    plateau = _cot_curve(lam, free, [60, 80])
    assert plateau[0] == pytest.approx(plateau[1], rel=0.05)
    assert plateau[1] == pytest.approx(3 * (1 + free.w[3, 7]) ** 2, rel=0.1)
    assert free.cot_plateau == pytest.approx(3 * (1 + free.w[3, 7]) ** 2)
