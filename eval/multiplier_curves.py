"""Curve forms for accuracy against log10 training FLOPs, fitted to a model ladder.

Every form works on *batches* of parameter vectors (``params`` of shape ``[B, P]``) so that bootstrap refits
(hundreds per ladder) run as one vectorized Levenberg-Marquardt instead of hundreds of scipy calls. The first fit
of a ladder uses ``scipy.optimize.least_squares`` with bounds from several starting points; the bootstrap refits
start from that solution.

Forms are registered by name in ``CURVE_FORMS`` (``sigmoid``, ``logistic``, ``power``, ``piecewise``); a
published curve is reused with ``FixedSigmoid``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from scipy.optimize import least_squares

from catalog.registry import Registry

CURVE_FORMS: Registry[type[CurveForm]] = Registry("curve form", ValueError)

# Slopes are per decade of FLOPs; midpoints may sit this many decades outside the ladder.
_MAX_SLOPE = 50.0
_MID_MARGIN_DECADES = 10.0
_LM_ITERATIONS = 60
_POLISHED_STARTS = 3


def register_form(name: str) -> Callable[[type[CurveForm]], type[CurveForm]]:
    def decorate(cls: type[CurveForm]) -> type[CurveForm]:
        cls.name = name
        return CURVE_FORMS.add(name, cls)

    return decorate


class CurveForm(ABC):
    """A family of monotone increasing curves acc = f(log10 FLOPs; params)."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    # True when the ceiling is an asymptote, approached only at infinite compute: accuracies within epsilon of it
    # cannot be inverted reliably. False when the ceiling is a reached data point (piecewise).
    asymptotic: ClassVar[bool] = True

    @abstractmethod
    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Accuracy at log10 FLOPs ``x`` (``[N]`` or ``[B, N]``) for each parameter row: ``[B, N]``."""

    @abstractmethod
    def inverse(self, params: np.ndarray, acc: np.ndarray) -> np.ndarray:
        """log10 FLOPs reaching ``acc`` (``[B]``); only called with floor < acc < ceiling."""

    @abstractmethod
    def floor(self, params: np.ndarray) -> np.ndarray:
        """Lowest accuracy of each curve (``[B]``)."""

    @abstractmethod
    def ceiling(self, params: np.ndarray) -> np.ndarray:
        """Highest accuracy of each curve (``[B]``)."""

    @abstractmethod
    def bounds(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the parameters for a ladder."""

    @abstractmethod
    def initial_guesses(self, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        """Several starting points, so a bad local minimum of one start does not decide the fit."""

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def options(self) -> dict[str, float | bool | None]:
        """Settings of the form that are not fitted (for reports)."""
        return {}

    @classmethod
    def from_options(cls, chance: float, irreducible: bool) -> CurveForm:
        """Build the form from the CLI/API options it uses (most use none)."""
        return cls()

    def fit(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Least-squares fit of one ladder: the best of several bounded ``least_squares`` runs, shape ``[P]``."""
        w = np.ones_like(y) if weights is None else weights
        sqrt_w = np.sqrt(w)
        lower, upper = self.bounds(x, y)

        def residuals(p: np.ndarray) -> np.ndarray:
            return sqrt_w * (self.predict(p[None, :], x)[0] - y)

        starts = np.clip(np.array(self.initial_guesses(x, y)), lower + 1e-9, upper - 1e-9)
        # Rank the starting grid by its cost in one vectorized pass; polish only the most promising few.
        start_costs = np.sum(w * (self.predict(starts, x) - y) ** 2, axis=1)
        best, best_cost = None, np.inf
        for start in starts[np.argsort(start_costs)[:_POLISHED_STARTS]]:
            result = least_squares(residuals, start, bounds=(lower, upper), method="trf", x_scale="jac")
            if result.cost < best_cost:
                best, best_cost = result.x, result.cost
        return np.asarray(best, dtype=float)

    def refit_batch(self, start: np.ndarray, x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Refit ``B`` resampled ladders (``y``/``weights`` ``[B, N]``) at once, warm-started from ``start`` ``[P]``."""
        lower, upper = self.bounds(x, y.reshape(-1))
        return batched_levenberg_marquardt(self.predict, start, x, y, weights, lower, upper)


def batched_levenberg_marquardt(
    model: Callable[[np.ndarray, np.ndarray], np.ndarray],
    start: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    iterations: int = _LM_ITERATIONS,
) -> np.ndarray:
    """Weighted least squares for many datasets at once: damped Gauss-Newton steps projected onto the bounds.

    ``weights`` of zero drop a point (a ladder row not drawn by the bootstrap); a step is kept only for the
    datasets whose cost it lowers, and their damping shrinks, the others' grows.
    """
    batch, n_params = y.shape[0], start.shape[0]
    params = np.tile(np.clip(start, lower, upper), (batch, 1))
    damping = np.full(batch, 1e-2)

    def cost_of(p: np.ndarray) -> np.ndarray:
        return np.sum(weights * (model(p, x) - y) ** 2, axis=1)

    cost = cost_of(params)
    for _ in range(iterations):
        fitted = model(params, x)
        residual = fitted - y
        step_sizes = 1e-6 * np.maximum(1.0, np.abs(params))
        jac = np.empty((batch, y.shape[1], n_params))
        for j in range(n_params):
            shifted = params.copy()
            shifted[:, j] += step_sizes[:, j]
            jac[:, :, j] = (model(shifted, x) - fitted) / step_sizes[:, j : j + 1]
        jtw = np.transpose(jac * weights[:, :, None], (0, 2, 1))
        normal = jtw @ jac
        gradient = np.einsum("bpn,bn->bp", jtw, residual)
        diag = np.einsum("bpp->bp", normal)
        regularized = normal + (damping[:, None] * (diag + 1e-9))[:, :, None] * np.eye(n_params)[None]
        delta = np.linalg.solve(regularized, -gradient[:, :, None])[:, :, 0]
        candidate = np.clip(params + delta, lower, upper)
        candidate_cost = cost_of(candidate)
        better = candidate_cost < cost
        params = np.where(better[:, None], candidate, params)
        cost = np.where(better, candidate_cost, cost)
        damping = np.clip(np.where(better, damping / 3.0, damping * 4.0), 1e-9, 1e9)
    return params


def _as_batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[None, :] if x.ndim == 1 else x


def _sigmoid_curve(floor: np.ndarray, ceiling: np.ndarray, slope: np.ndarray, mid: np.ndarray, x: np.ndarray):
    z = np.clip(-slope[:, None] * (_as_batch(x) - mid[:, None]), -500, 500)
    return floor[:, None] + (ceiling - floor)[:, None] / (1.0 + np.exp(z))


def _sigmoid_inverse(floor, ceiling, slope, mid, acc):
    return mid - np.log((ceiling - floor) / (acc - floor) - 1.0) / slope


def _sigmoid_starts(x: np.ndarray, y: np.ndarray, floor: float) -> list[tuple[float, float, float]]:
    """(ceiling, slope, midpoint) starts: midpoints across and beyond the ladder, shallow and steep slopes."""
    top = float(np.clip(np.max(y) + 0.05, floor + 0.05, 1.0))
    mids = np.quantile(x, [0.25, 0.5, 0.75]).tolist() + [float(np.max(x)) + 1.0]
    return [(ceil, slope, mid) for ceil in (top, 1.0) for slope in (0.7, 2.0) for mid in mids]


@register_form("sigmoid")
class Sigmoid(CurveForm):
    """acc = floor + (ceiling - floor) / (1 + exp(-slope (x - midpoint))), floor fixed at the chance level."""

    param_names = ("ceiling", "slope", "midpoint")

    def __init__(self, chance: float = 0.25) -> None:
        if not 0.0 <= chance < 1.0:
            raise ValueError(f"chance level must be in [0, 1), got {chance}")
        self.chance = chance

    def options(self) -> dict[str, float | bool | None]:
        return {"floor": self.chance}

    @classmethod
    def from_options(cls, chance: float, irreducible: bool) -> CurveForm:
        return cls(chance=chance)

    def predict(self, params, x):
        params = _as_batch(params)
        return _sigmoid_curve(np.full(len(params), self.chance), params[:, 0], params[:, 1], params[:, 2], x)

    def inverse(self, params, acc):
        params = _as_batch(params)
        return _sigmoid_inverse(self.chance, params[:, 0], params[:, 1], params[:, 2], acc)

    def floor(self, params):
        return np.full(len(_as_batch(params)), self.chance)

    def ceiling(self, params):
        return _as_batch(params)[:, 0]

    def bounds(self, x, y):
        lower = np.array([self.chance + 1e-3, 1e-3, np.min(x) - _MID_MARGIN_DECADES])
        upper = np.array([1.0, _MAX_SLOPE, np.max(x) + _MID_MARGIN_DECADES])
        return lower, upper

    def initial_guesses(self, x, y):
        return [np.array(s) for s in _sigmoid_starts(x, y, self.chance)]


@register_form("logistic")
class Logistic(CurveForm):
    """A sigmoid whose floor is fitted too (free logistic): for benchmarks whose small models sit below chance."""

    param_names = ("floor", "ceiling", "slope", "midpoint")

    def predict(self, params, x):
        p = _as_batch(params)
        return _sigmoid_curve(p[:, 0], p[:, 1], p[:, 2], p[:, 3], x)

    def inverse(self, params, acc):
        p = _as_batch(params)
        return _sigmoid_inverse(p[:, 0], p[:, 1], p[:, 2], p[:, 3], acc)

    def floor(self, params):
        return _as_batch(params)[:, 0]

    def ceiling(self, params):
        return _as_batch(params)[:, 1]

    def bounds(self, x, y):
        # floor <= the weakest model's accuracy < ceiling keeps the curve increasing (a floor above the ceiling
        # with a positive slope would be a falling curve).
        lowest = float(np.clip(np.min(y), 0.0, 1.0 - 2e-3))
        lower = np.array([0.0, lowest + 1e-3, 1e-3, np.min(x) - _MID_MARGIN_DECADES])
        upper = np.array([lowest, 1.0, _MAX_SLOPE, np.max(x) + _MID_MARGIN_DECADES])
        return lower, upper

    def initial_guesses(self, x, y):
        floors = (max(0.0, float(np.min(y)) - 0.05), 0.5 * float(np.min(y)))
        return [np.array((f, max(c, f + 0.05), s, m)) for f in floors for c, s, m in _sigmoid_starts(x, y, f)]


@register_form("power")
class PowerLaw(CurveForm):
    """Error falls as a power of compute: acc = 1 - e0 - a * C^-b (e0 = 0 unless ``irreducible``).

    Parameters are ``log10_a`` and ``b`` (a in FLOPs units overflows floats), plus ``e0`` when fitted.
    """

    def __init__(self, irreducible: bool = False) -> None:
        self.irreducible = irreducible
        self.param_names = ("log10_a", "b", "e0") if irreducible else ("log10_a", "b")

    def options(self) -> dict[str, float | bool | None]:
        return {"irreducible": self.irreducible}

    @classmethod
    def from_options(cls, chance: float, irreducible: bool) -> CurveForm:
        return cls(irreducible=irreducible)

    def _e0(self, p: np.ndarray) -> np.ndarray:
        return p[:, 2] if self.irreducible else np.zeros(len(p))

    def predict(self, params, x):
        p = _as_batch(params)
        log10_err = np.clip(p[:, 0:1] - p[:, 1:2] * _as_batch(x), -300, 300)
        return 1.0 - self._e0(p)[:, None] - 10.0**log10_err

    def inverse(self, params, acc):
        p = _as_batch(params)
        return (p[:, 0] - np.log10(1.0 - self._e0(p) - acc)) / p[:, 1]

    def floor(self, params):
        return np.full(len(_as_batch(params)), -np.inf)

    def ceiling(self, params):
        p = _as_batch(params)
        return 1.0 - self._e0(p)

    def bounds(self, x, y):
        lower = [-300.0, 1e-4] + ([0.0] if self.irreducible else [])
        upper = [300.0, 10.0] + ([1.0 - 1e-3] if self.irreducible else [])
        return np.array(lower), np.array(upper)

    def initial_guesses(self, x, y):
        starts = []
        for e0 in (0.0, max(0.0, 1.0 - float(np.max(y)) - 0.02)) if self.irreducible else (0.0,):
            err = np.clip(1.0 - e0 - y, 1e-4, None)
            b = float(np.clip(-np.polyfit(x, np.log10(err), 1)[0], 1e-3, 10.0))  # log10 err = log10 a - b x
            guess = [float(np.mean(np.log10(err) + b * x)), b]
            starts.append(np.array(guess + ([e0] if self.irreducible else [])))
        return starts


@register_form("piecewise")
class PiecewiseLogLinear(CurveForm):
    """Piecewise-linear interpolation of accuracy in log10 FLOPs through the ladder (made monotone first).

    No functional assumption at all, so it cannot place matched compute beyond the ladder: accuracies above the best
    ladder model are lower bounds at the ladder's largest FLOPs; below the smallest, the first segment is extended.
    ``params`` are the monotone accuracies at the ladder's knots (NaN for knots a bootstrap draw left out).
    """

    param_names = ()
    asymptotic = False

    def __init__(self) -> None:
        self.knots: np.ndarray | None = None

    def _knots(self) -> np.ndarray:
        if self.knots is None:
            raise RuntimeError("piecewise curve used before fit")
        return self.knots

    def predict(self, params, x):
        params, x = _as_batch(params), _as_batch(x)
        out = np.empty((len(params), x.shape[1]))
        for i, row in enumerate(params):
            kx, ky = self._valid(row)
            xi = x[min(i, len(x) - 1)]
            out[i] = np.interp(xi, kx, ky)
            below = xi < kx[0]
            if below.any() and len(kx) > 1:
                slope = (ky[1] - ky[0]) / (kx[1] - kx[0])
                out[i, below] = ky[0] + slope * (xi[below] - kx[0])
        return out

    def inverse(self, params, acc):
        params = _as_batch(params)
        acc = np.broadcast_to(np.asarray(acc, dtype=float), (len(params),))
        out = np.empty(len(params))
        for i, row in enumerate(params):
            kx, ky = self._valid(row)
            # On a flat stretch the curve leaves the level at the run's last knot: keep that one for the inverse.
            rising = np.concatenate([np.diff(ky) > 0, [True]])
            kx, ky = kx[rising], ky[rising]
            if acc[i] >= ky[0] or len(kx) < 2:
                out[i] = np.interp(acc[i], ky, kx)
            else:
                out[i] = kx[0] - (ky[0] - acc[i]) * (kx[1] - kx[0]) / (ky[1] - ky[0])
        return out

    def _valid(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = np.isfinite(row)
        return self._knots()[keep], row[keep]

    def floor(self, params):
        return np.full(len(_as_batch(params)), -np.inf)

    def ceiling(self, params):
        return np.nanmax(_as_batch(params), axis=1)

    def bounds(self, x, y):
        return np.zeros(0), np.zeros(0)

    def initial_guesses(self, x, y):
        return []

    def fit(self, x, y, weights=None):
        order = np.argsort(x)
        knots, inverse_idx = np.unique(x[order], return_inverse=True)
        w = np.ones_like(y) if weights is None else weights
        self.knots = knots
        return _knot_means_monotone(inverse_idx, y[order], w[order], len(knots))

    def refit_batch(self, start, x, y, weights):
        order = np.argsort(x)
        _, inverse_idx = np.unique(x[order], return_inverse=True)
        return np.stack(
            [
                _knot_means_monotone(inverse_idx, yb[order], wb[order], len(self._knots()))
                for yb, wb in zip(y, weights, strict=True)
            ]
        )


def _knot_means_monotone(knot_of: np.ndarray, y: np.ndarray, w: np.ndarray, n_knots: int) -> np.ndarray:
    """Weighted mean accuracy per knot, then pool-adjacent-violators so the curve never decreases."""
    total_w = np.bincount(knot_of, weights=w, minlength=n_knots)
    total_y = np.bincount(knot_of, weights=w * y, minlength=n_knots)
    present = total_w > 0
    out = np.full(n_knots, np.nan)
    out[present] = isotonic_increasing(total_y[present] / total_w[present], total_w[present])
    return out


def isotonic_increasing(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [weighted mean, weight, count]
    for value, weight in zip(y, w, strict=True):
        blocks.append([float(value), float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(c, v) for v, _, c in blocks])


class FixedSigmoid(Sigmoid):
    """A published sigmoid reused as is: y = floor + (ceil - floor) / (1 + exp(-slope (log10 FLOPs - midpoint)))."""

    name = "fixed"

    def __init__(self, floor: float, ceiling: float, slope: float, midpoint: float) -> None:
        if not floor < ceiling <= 1.0 or slope <= 0:
            raise ValueError(f"fixed curve needs floor < ceiling <= 1 and slope > 0, got {floor},{ceiling},{slope}")
        super().__init__(chance=floor)
        self.fixed = np.array([ceiling, slope, midpoint], dtype=float)

    def fit(self, x, y, weights=None):
        return self.fixed.copy()

    def refit_batch(self, start, x, y, weights):
        return np.tile(self.fixed, (y.shape[0], 1))


def make_form(name: str, chance: float = 0.25, irreducible: bool = False) -> CurveForm:
    """Build a registered form with its options (the chance floor for ``sigmoid``, ``irreducible`` for ``power``)."""
    return CURVE_FORMS.lookup(name).from_options(chance=chance, irreducible=irreducible)
