"""Spec section 10 oracles 1-7: the LSA model, its CoT, the error formulas, bounds and overthinking onsets."""

from __future__ import annotations

import numpy as np
import pytest

from eval.theory.error_curves import (
    bound_cor35,
    bound_thm33,
    coverage_eigenvalues,
    err_finite_m_mc,
    err_k1_finite_m,
    err_population,
    err_remark41,
    n_for_error,
    overthinking_onset,
)
from eval.theory.lsa import (
    build_embedding,
    gamma,
    hardness,
    lsa_cot,
    lsa_forward,
    lsa_optimal_params,
    power_law_spectrum,
    pseudo_newton,
    sample_prompt,
    wishart_second_moment,
)


# ---------------------------------------------------------------- oracle 1
def test_gamma_and_hardness_closed_forms():
    d, n = 7, 13
    assert np.allclose(gamma(np.eye(d), n), (1 + (1 + d) / n) * np.eye(d))
    assert hardness(np.eye(d)) == pytest.approx(d)
    harmonic = np.sum(1 / np.arange(1, d + 1))
    assert hardness(np.diag(1 / np.arange(1, d + 1))) == pytest.approx(d * harmonic)
    assert np.allclose(gamma(np.diag([2.0, 1.0]), np.inf), np.diag([2.0, 1.0]))


def test_hardness_rejects_singular_covariance():
    with pytest.raises(ValueError, match="positive definite"):
        hardness(np.diag([1.0, 0.0]))


@pytest.mark.slow
def test_wishart_second_moment_matches_monte_carlo():
    rng = np.random.default_rng(0)
    lam, n = np.diag([2.0, 1.0, 0.25]), 5
    b = np.array([[1.0, 0.3, 0.0], [0.3, 2.0, -0.5], [0.0, -0.5, 0.5]])
    acc = np.zeros((3, 3))
    reps = 40_000
    for _ in range(reps):
        x, _, _ = sample_prompt(lam, n, rng)
        s = x @ x.T / n
        acc += s @ b @ s
    exact = wishart_second_moment(lam, b, n)
    assert np.linalg.norm(acc / reps - exact) / np.linalg.norm(exact) < 0.02


# ---------------------------------------------------------------- oracle 2
def test_isotropic_population_error_values():
    d, n = 10, 10
    errs = err_population(np.linalg.inv(gamma(np.eye(d), n)), np.eye(d), [1, 2, 5, 10])
    assert errs == pytest.approx([2.7438, 0.75282, 0.015550, 2.418e-5], rel=2e-4)
    assert errs == pytest.approx(d * ((1 + d) / (n + 1 + d)) ** (2 * np.array([1, 2, 5, 10])), rel=1e-12)


# ---------------------------------------------------------------- oracle 3
def test_cor35_bound_example_and_equality_for_identity():
    lam = np.diag(1 / np.arange(1, 9))
    assert hardness(lam) == pytest.approx(21.74, abs=5e-3)
    exact = err_population(np.linalg.inv(gamma(lam, 20)), lam, 1)[0]
    assert exact == pytest.approx(1.2477, abs=1e-4)
    assert bound_cor35(lam, 20, 1)[0] == pytest.approx(2.2649, abs=1e-4)
    eye = np.eye(6)
    ks = np.arange(1, 8)
    assert err_population(np.linalg.inv(gamma(eye, 9)), eye, ks) == pytest.approx(bound_cor35(eye, 9, ks), rel=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("n", [5, 20, 100])
def test_cor35_bound_holds_for_power_laws(alpha, n):
    lam = np.diag(power_law_spectrum(8, alpha))
    ks = np.arange(1, 30)
    exact = err_population(np.linalg.inv(gamma(lam, n)), lam, ks)
    assert np.all(exact <= bound_cor35(lam, n, ks) * (1 + 1e-12))


def test_thm33_bound_holds_and_is_loose():
    lam = np.diag(1 / np.arange(1, 9))
    exact = err_k1_finite_m(gamma(lam, 20), lam, 50)
    assert exact < bound_thm33(lam, 20, 50)


def test_n_for_error_trade_table():
    ns = n_for_error([1, 2, 5, 10, 20], 0.01, 10, 10)
    assert ns == pytest.approx([336.9, 50.9, 11.0, 4.5, 2.1], abs=0.06)
    assert n_for_error(3, 0.01, 10, 100)[0] / n_for_error(3, 0.01, 10, 10)[0] == pytest.approx(101 / 11)


# ---------------------------------------------------------------- oracle 4
@pytest.mark.parametrize("c", [1.0, 0.3, 4.0])
def test_lsa_with_appended_columns_is_pseudo_newton(c):
    rng = np.random.default_rng(1)
    d, n, m, k = 4, 12, 30, 8
    lam = np.diag(power_law_spectrum(d, 1.0))
    v, w = lsa_optimal_params(lam, n, c)
    x, y, _ = sample_prompt(lam, m, rng)
    by_lsa = lsa_cot(x, y, v, w, k)
    by_newton = pseudo_newton(x, y, np.linalg.inv(gamma(lam, n)), k)
    assert np.max(np.abs(by_lsa - by_newton)) < 1e-12
    # rho = n at test multiplies every step by m / n.
    scaled = pseudo_newton(x, y, np.linalg.inv(gamma(lam, n)), k, step=m / n)
    assert np.max(np.abs(lsa_cot(x, y, v, w, k, rho=n) - scaled)) < 1e-12
    assert np.max(np.abs(by_lsa - scaled)) > 1e-3


def test_appended_cot_column_has_the_documented_layout():
    rng = np.random.default_rng(2)
    d, n = 3, 10
    lam = np.eye(d)
    v, w = lsa_optimal_params(lam, n)
    x, y, _ = sample_prompt(lam, 20, rng)
    column = lsa_forward(build_embedding(x, y), v, w, 20)[:, -1]
    assert np.allclose(column[: d + 1], 0) and column[-1] == 1.0
    assert np.allclose(column[d + 1 : 2 * d + 1], pseudo_newton(x, y, np.linalg.inv(gamma(lam, n)), 1)[0])


# ---------------------------------------------------------------- oracle 5
def test_one_pass_finite_m_formula_matches_monte_carlo():
    rng = np.random.default_rng(3)
    lam = np.diag(power_law_spectrum(5, 1.0))
    g, m = gamma(lam, 10), 15
    mc = err_finite_m_mc(np.linalg.inv(g), lam, m, kmax=1, reps=20_000, rng=rng)[0]
    assert mc == pytest.approx(err_k1_finite_m(g, lam, m), rel=0.01)


# ---------------------------------------------------------------- oracle 6
def test_overthinking_onsets_trace_normalised():
    sigma = np.eye(20)
    lam = np.diag(power_law_spectrum(20, 1.0, trace=20))
    precond = np.linalg.inv(gamma(lam, 100))
    assert coverage_eigenvalues(precond, sigma).max() == pytest.approx(2.08, abs=5e-3)
    assert overthinking_onset(precond, sigma) == 5
    assert err_population(precond, sigma, np.arange(1, 200)).min() == pytest.approx(4.649, abs=1e-3)
    assert err_population(precond, sigma, [1, 5, 10, 20]) == pytest.approx([8.07, 4.65, 6.62, 24.1], rel=5e-3)
    lam10 = np.diag(power_law_spectrum(10, 1.0, trace=10))
    assert overthinking_onset(np.linalg.inv(gamma(lam10, 100)), np.eye(10)) == 2
    assert overthinking_onset(np.linalg.inv(gamma(lam10, 1000)), np.eye(10)) == 1
    for n in (10, 20, 30):
        assert overthinking_onset(np.linalg.inv(gamma(lam10, n)), np.eye(10)) is None
        assert overthinking_onset(np.linalg.inv(gamma(lam, n)), sigma) is None


def test_overthinking_onset_raw_power_law():
    lam = np.diag(1 / np.arange(1, 11))
    precond = np.linalg.inv(gamma(lam, 10))
    assert coverage_eigenvalues(precond, np.eye(10)).max() == pytest.approx(2.48, abs=5e-3)
    assert overthinking_onset(precond, np.eye(10)) == 1


def test_remark41_equals_population_error_when_commuting_and_grows_alike_otherwise():
    lam = np.diag(power_law_spectrum(6, 1.0, trace=6))
    g = gamma(lam, 100)
    ks = np.arange(1, 15)
    assert err_remark41(g, np.eye(6), ks) == pytest.approx(err_population(np.linalg.inv(g), np.eye(6), ks), rel=1e-10)
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    sigma = q @ np.diag([3.0, 1.0, 1.0, 0.5, 0.5, 0.2]) @ q.T
    remark, population = err_remark41(g, sigma, ks), err_population(np.linalg.inv(g), sigma, ks)
    assert not np.allclose(remark, population, rtol=1e-3)
    growth_remark, growth_population = remark[-1] / remark[-2], population[-1] / population[-2]
    assert growth_remark == pytest.approx(growth_population, rel=0.02)
    assert growth_remark > 1


# ---------------------------------------------------------------- oracle 7
def test_finite_m_instability_without_shift():
    d, kmax, eye = 10, 40, np.eye(10)

    def curve(n, m, seed):
        return err_finite_m_mc(np.linalg.inv(gamma(eye, n)), eye, m, kmax, reps=100, rng=np.random.default_rng(seed))

    diverging = curve(1000, 20, 5)
    assert diverging[-1] > 1e3 * diverging[0]
    u_shape = curve(1000, 60, 8)
    assert 0 < int(np.argmin(u_shape)) < kmax - 1 and u_shape.min() < 0.5 * u_shape[0] and u_shape[-1] > u_shape[0]
    converging = curve(1000, 200, 6)
    assert converging[-1] < 1e-8 and np.all(np.diff(converging) < 0)
    damped = curve(10, 20, 7)
    assert damped[-1] < 0.2 * damped[0]
    assert np.all(np.isfinite(damped)) and damped[-1] < d
