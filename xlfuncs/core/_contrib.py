"""Where a portfolio's risk comes from: contributions, risk budgets, factor exposures (SPEC 3.6).

**Risk contributions.** With weights ``w`` and covariance ``Sigma`` the
volatility is ``sigma = sqrt(w' Sigma w)``; asset *i*'s marginal contribution is
``m_i = d sigma / d w_i = (Sigma w)_i / sigma`` and its contribution
``c_i = w_i m_i``. Because ``sigma`` is homogeneous of degree one in ``w``,
``sum_i c_i = sigma`` (Euler). Against a benchmark ``b`` the same holds for the
active weights ``a = w - b`` and the tracking error ``sqrt(a' Sigma a)``. A
group's (sector's) contribution is the sum of its members'; its marginal
contribution is its contribution per unit of its (active) weight.

**Risk budgets.** Long-only weights whose shares of risk ``c_i / sigma`` equal
given budgets ``b_i > 0`` (``sum b_i = 1``; equal budgets: risk parity). They
are ``w = y / sum(y)`` with ``y`` the minimiser of the strictly convex
``phi(y) = y' Sigma y / 2 - sum_i b_i log y_i`` over ``y > 0``, whose optimality
condition is ``y_i (Sigma y)_i = b_i``. Damped Newton on ``phi`` converges
quadratically from any positive start. With weight bounds ``lo <= w_i <= hi``
(linear and homogeneous in ``y``: ``lo * sum(y) <= y_i <= hi * sum(y)``) the
same problem is solved by cvxpy with Clarabel; where a bound binds, the
shares of risk differ from the budgets.

**Factor exposures.** Each asset's returns are regressed (OLS) on the factor
returns, ``r_i = alpha_i + beta_i' f + e_i``; the portfolio's (or the active)
exposure is ``x = sum_i w_i beta_i``. Its variance splits into a factor part
``x' Sigma_f x`` (``Sigma_f`` the sample factor covariance, ddof 1) and a
specific part ``sum_i w_i^2 s_i^2`` (``s_i^2`` the residual variance, RSS /
(T - k - 1)); factor *k*'s share of the factor part is ``x_k (Sigma_f x)_k``.

Units: every figure is in the units of its inputs (an annualised covariance
gives annualised volatilities; monthly returns give monthly variances).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xlfuncs.core._covcheck import check_covariance, check_psd
from xlfuncs.core._lstsq import wls
from xlfuncs.errors import ConvergenceError, InfeasibleError, InputError

__all__ = [
    "FactorExposures",
    "RiskBudget",
    "RiskContributions",
    "factor_exposures",
    "risk_budget",
    "risk_contributions",
]

# Budgets are met to this (absolute, in shares of risk) or the answer is refused.
BUDGET_TOL = 1e-8
_NEWTON_MAX = 200


def _names(labels: Sequence[str] | None, n: int) -> tuple[str, ...]:
    if labels is None:
        return tuple(f"asset {i + 1}" for i in range(n))
    if len(labels) != n:
        raise InputError(f"labels has {len(labels)} names for {n} assets", "labels")
    return tuple(labels)


def _cov(cov: np.ndarray, labels: Sequence[str] | None, name: str) -> np.ndarray:
    s = np.asarray(cov, dtype=float)
    if labels is not None and s.ndim == 2 and s.shape[0] != len(labels):
        raise InputError(f"weights has {len(labels)} values but {name} has {s.shape[0]} "
                         "assets", name)
    names = _names(labels, s.shape[0] if s.ndim else 0)
    s = check_covariance(s, names, name)
    check_psd(s, names, name)
    return s


def _finite(x: np.ndarray, labels: Sequence[str], name: str) -> np.ndarray:
    if x.ndim != 1 or len(x) != len(labels):
        raise InputError(f"{name} must have {len(labels)} values, one per asset (has "
                         f"{x.size})", name)
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise InputError(f"{name} has a non-finite value for {labels[bad[0]]}", name)
    return x


# --------------------------------------------------------------------------- contributions


@dataclass(frozen=True)
class RiskContributions:
    """Euler decomposition of a portfolio's volatility (or tracking error).

    Attributes
    ----------
    labels : tuple of str
        Tickers (or groups), in the order of the arrays.
    weights : ndarray of shape (n,)
        Weights, or active weights ``w - b`` when ``active``.
    marginal : ndarray of shape (n,)
        ``d sigma / d w_i = (Sigma w)_i / sigma``; for a group, its
        contribution per unit of its weight (NaN for a group of weight 0).
    contributions : ndarray of shape (n,)
        ``w_i * marginal_i``; they sum to ``total``.
    total : float
        ``sigma = sqrt(w' Sigma w)`` (or the tracking error), in the
        covariance's units (annualised when it is).
    active : bool
        Against a benchmark (tracking error) or not (volatility).

    """

    labels: tuple[str, ...]
    weights: np.ndarray
    marginal: np.ndarray
    contributions: np.ndarray
    total: float
    active: bool

    @property
    def shares(self) -> np.ndarray:
        """``contributions / total``: each line's share of the risk (sums to 1)."""
        return self.contributions / self.total

    def by_group(self, groups: Sequence[str]) -> RiskContributions:
        """The same decomposition summed by group.

        Parameters
        ----------
        groups : sequence of str of length n
            The group (sector) of each line, in the order of :attr:`labels`.

        Returns
        -------
        RiskContributions
            One line per group, in order of first appearance.

        """
        if len(groups) != len(self.labels):
            raise InputError(f"groups has {len(groups)} entries for {len(self.labels)} assets",
                             "groups")
        names = tuple(dict.fromkeys(groups))
        code = np.array([names.index(g) for g in groups])
        k = len(names)
        w = np.bincount(code, weights=self.weights, minlength=k)
        c = np.bincount(code, weights=self.contributions, minlength=k)
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(w != 0, c / w, np.nan)
        return RiskContributions(names, w, m, c, self.total, self.active)


def risk_contributions(
    weights: np.ndarray,
    cov: np.ndarray,
    benchmark: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> RiskContributions:
    """Euler risk contributions of a portfolio, or of its active weights.

    Parameters
    ----------
    weights : ndarray of shape (n,)
        Portfolio weights (fractions; shorts negative).
    cov : ndarray of shape (n, n)
        Covariance of the assets' returns (e.g. annualised).
    benchmark : ndarray of shape (n,), optional
        Benchmark weights: decompose the tracking error of ``w - b``.
    labels : sequence of str, optional
        Tickers, for the result and the messages.

    Returns
    -------
    RiskContributions

    Raises
    ------
    InputError
        Malformed inputs, a covariance that is not PSD, or zero risk (nothing
        to decompose).

    """
    w = np.asarray(weights, dtype=float)
    names = _names(labels, w.size)
    s = _cov(cov, names, "cov")
    if s.shape[0] != len(w):
        raise InputError(f"weights has {len(w)} values but cov has {s.shape[0]} assets", "cov")
    _finite(w, names, "weights")
    a = w
    if benchmark is not None:
        b = _finite(np.asarray(benchmark, dtype=float), names, "benchmark")
        a = w - b
    sa = s @ a
    var = float(a @ sa)
    if not var > 0:
        what = ("the weights equal the benchmark: the tracking error is 0"
                if benchmark is not None else "the portfolio has zero variance")
        raise InputError(f"{what}; there is no risk to decompose", "weights")
    sigma = math.sqrt(var)
    m = sa / sigma
    return RiskContributions(names, a, m, a * m, sigma, benchmark is not None)


# --------------------------------------------------------------------------- risk budgets


@dataclass(frozen=True)
class RiskBudget:
    """Long-only weights that share the risk out as budgeted.

    Attributes
    ----------
    labels : tuple of str
        Tickers.
    weights : ndarray of shape (n,)
        Weights (>= 0, sum 1).
    budgets : ndarray of shape (n,)
        Budgets as shares of risk (> 0, sum 1).
    shares : ndarray of shape (n,)
        Shares of risk reached, ``w_i (Sigma w)_i / (w' Sigma w)``; equal to
        the budgets to 1e-8 unless a bound binds.
    vol : float
        ``sqrt(w' Sigma w)`` in the covariance's units.
    bounded : tuple of str
        The assets held at a weight bound.
    method : str
        ``"newton"`` (no bound binds) or ``"clarabel"`` (bounds).
    seconds : float
        Wall-clock time.

    """

    labels: tuple[str, ...]
    weights: np.ndarray
    budgets: np.ndarray
    shares: np.ndarray
    vol: float
    bounded: tuple[str, ...]
    method: str
    seconds: float

    @property
    def contributions(self) -> np.ndarray:
        """Each asset's contribution to the volatility, ``shares * vol``; they sum to ``vol``."""
        return self.shares * self.vol


def _newton_budget(s: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``y > 0`` with ``y_i (s y)_i = b_i``: damped Newton on the log-barrier objective."""
    y = b / np.sqrt(np.diag(s))  # inverse-vol start, any y > 0 would do

    def phi(v: np.ndarray) -> float:
        return 0.5 * float(v @ s @ v) - float(b @ np.log(v))

    for _ in range(_NEWTON_MAX):
        g = s @ y - b / y
        h = s + np.diag(b / (y * y))
        try:
            step = np.linalg.solve(h, -g)
        except np.linalg.LinAlgError:
            return None
        if float(np.max(np.abs(y * (s @ y) - b))) < 1e-15:
            return y
        t = 1.0
        neg = step < 0
        if neg.any():  # stay inside y > 0
            t = min(1.0, 0.99 * float(np.min(-y[neg] / step[neg])))
        f0, slope = phi(y), float(g @ step)
        while t > 1e-12 and phi(y + t * step) > f0 + 1e-4 * t * slope + 1e-15 * abs(f0):
            t *= 0.5
        y = y + t * step
        if not np.isfinite(y).all() or y.max() > 1e150:
            return None
    return y


def _clarabel_budget(s: np.ndarray, b: np.ndarray, lo: float, hi: float) -> np.ndarray | None:
    """The bounded problem in cvxpy: min y'Sy/2 - b'log y, lo*sum(y) <= y <= hi*sum(y)."""
    import cvxpy as cp

    n = len(b)
    scale = float(np.mean(np.diag(s)))
    y = cp.Variable(n)
    root = np.linalg.cholesky(s / scale + 1e-14 * np.eye(n)).T
    cons = [y >= lo * cp.sum(y), y <= hi * cp.sum(y)]
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(root @ y) - b @ cp.log(y)), cons)
    try:
        prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    except cp.error.SolverError:
        return None
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or y.value is None:
        return None
    return np.asarray(y.value, dtype=float)


def risk_budget(
    cov: np.ndarray,
    budgets: np.ndarray | None = None,
    bounds: tuple[float | None, float | None] | None = None,
    labels: Sequence[str] | None = None,
) -> RiskBudget:
    """Long-only risk-budget (risk-parity by default) weights.

    Parameters
    ----------
    cov : ndarray of shape (n, n)
        Covariance of the assets' returns; must be positive definite on the
        assets held (a riskless combination has no budget portfolio).
    budgets : ndarray of shape (n,), optional
        Shares of risk wanted (> 0), scaled to sum to 1; default equal.
    bounds : (float or None, float or None), optional
        Smallest and largest weight of every asset (None: no bound).
    labels : sequence of str, optional
        Tickers.

    Returns
    -------
    RiskBudget

    Raises
    ------
    InputError
        Malformed inputs, a budget <= 0, bounds that no weights meet.
    ConvergenceError
        The shares of risk miss the budgets by more than 1e-8 without a
        binding bound.

    """
    t0 = time.perf_counter()
    s0 = np.asarray(cov, dtype=float)
    n = s0.shape[0] if s0.ndim == 2 else 0
    names = _names(labels, n)
    s = _cov(s0, names, "cov")
    zero = np.flatnonzero(np.diag(s) <= 0)
    if zero.size:
        raise InputError(f"cov gives {names[zero[0]]} zero variance; a riskless asset has no "
                         "risk budget", "cov")
    if budgets is None:
        b = np.full(n, 1.0 / n)
    else:
        b = _finite(np.asarray(budgets, dtype=float), names, "budgets")
        if b.shape != (n,):
            raise InputError(f"budgets has {b.size} values but cov has {n} assets", "budgets")
        low = np.flatnonzero(b <= 0)
        if low.size:
            raise InputError(f"budgets must be positive ({names[low[0]]} has {b[low[0]]:g}); "
                             "leave an asset out rather than give it 0", "budgets")
        b = b / b.sum()
    lo, hi = bounds if bounds is not None else (None, None)
    lo_v = 0.0 if lo is None else float(lo)
    hi_v = 1.0 if hi is None else float(hi)
    if not 0 <= lo_v < 1 or not 0 < hi_v <= 1 or lo_v > hi_v:
        raise InputError(f"bounds must satisfy 0 <= min <= max <= 1 (got {lo_v:g}, {hi_v:g})",
                         "bounds")
    if lo_v * n > 1 + 1e-12 or hi_v * n < 1 - 1e-12:
        raise InfeasibleError(f"bounds {lo_v:g} to {hi_v:g} cannot hold for {n} weights summing "
                              f"to 1", "bounds")
    y = _newton_budget(s, b)
    method = "newton"
    if y is None or not (y > 0).all():
        raise InputError("cov is singular: a riskless long-only combination has no risk "
                         "budget", "cov")
    w = y / y.sum()
    if (w < lo_v - 1e-12).any() or (w > hi_v + 1e-12).any():
        y = _clarabel_budget(s, b, lo_v, hi_v)
        if y is None:
            raise ConvergenceError("the bounded risk budget did not solve; relax bounds",
                                   "bounds")
        method = "clarabel"
        w = np.clip(y / y.sum(), lo_v, hi_v)
        w = w / w.sum()
    sw = s @ w
    var = float(w @ sw)
    shares = w * sw / var
    tol = 1e-6
    bounded = tuple(names[i] for i in np.flatnonzero((w <= lo_v + tol) | (w >= hi_v - tol))
                    ) if method == "clarabel" else ()
    if method == "newton" and float(np.max(np.abs(shares - b))) > BUDGET_TOL:
        raise ConvergenceError(f"risk budget missed by {np.max(np.abs(shares - b)):.2g}; check "
                               "that cov is well conditioned", "cov")
    return RiskBudget(names, w, b, shares, math.sqrt(var), bounded, method,
                      time.perf_counter() - t0)


# --------------------------------------------------------------------------- exposures


@dataclass(frozen=True)
class FactorExposures:
    """A portfolio's (or its active) factor betas and the split of its variance.

    Attributes
    ----------
    factors : tuple of str
        Factor names.
    exposures : ndarray of shape (k,)
        ``x = sum_i w_i beta_i`` (active weights when ``active``).
    factor_contributions : ndarray of shape (k,)
        ``x_k (Sigma_f x)_k``; they sum to :attr:`factor_variance`.
    factor_variance, specific_variance : float
        ``x' Sigma_f x`` and ``sum_i w_i^2 s_i^2``, per period of the returns.
    betas : ndarray of shape (k, n)
        Each asset's OLS betas.
    resid_var : ndarray of shape (n,)
        Each asset's residual variance, RSS / (T - k - 1).
    labels : tuple of str
        Assets.
    n_obs : int
        Periods used.
    active : bool
        Against a benchmark or not.

    """

    factors: tuple[str, ...]
    exposures: np.ndarray
    factor_contributions: np.ndarray
    factor_variance: float
    specific_variance: float
    betas: np.ndarray
    resid_var: np.ndarray
    labels: tuple[str, ...]
    n_obs: int
    active: bool

    @property
    def total_variance(self) -> float:
        """Factor plus specific variance (per period)."""
        return self.factor_variance + self.specific_variance

    @property
    def factor_shares(self) -> np.ndarray:
        """Each factor's share of the total variance, shape (k,)."""
        return self.factor_contributions / self.total_variance

    @property
    def specific_share(self) -> float:
        """The specific variance's share of the total."""
        return self.specific_variance / self.total_variance


def factor_exposures(
    weights: np.ndarray,
    returns: np.ndarray,
    factors: np.ndarray,
    benchmark: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    factor_names: Sequence[str] | None = None,
) -> FactorExposures:
    """Factor betas of a portfolio from per-asset OLS on factor returns.

    Parameters
    ----------
    weights : ndarray of shape (n,)
        Portfolio weights.
    returns : ndarray of shape (T, n)
        Asset returns per period, rows aligned with ``factors``.
    factors : ndarray of shape (T, k)
        Factor returns per period.
    benchmark : ndarray of shape (n,), optional
        Benchmark weights: exposures of ``w - b``.
    labels, factor_names : sequence of str, optional
        Names of the assets and the factors.

    Returns
    -------
    FactorExposures

    Raises
    ------
    InputError
        Too few periods for the regression, or a factor table whose columns
        are collinear.

    """
    w = np.asarray(weights, dtype=float)
    r = np.asarray(returns, dtype=float)
    x = np.asarray(factors, dtype=float)
    t_len, n = r.shape
    k = x.shape[1]
    names = _names(labels, n)
    fnames = tuple(factor_names) if factor_names is not None else tuple(
        f"factor {j + 1}" for j in range(k))
    if len(w) != n:
        raise InputError(f"weights has {len(w)} values but returns has {n} assets", "returns")
    if x.shape[0] != t_len:
        raise InputError(f"returns has {t_len} periods but factors has {x.shape[0]}", "factors")
    if t_len < k + 3:
        raise InputError(f"factors: {k} factors need at least {k + 3} periods of returns "
                         f"(got {t_len})", "factors")
    _finite(w, names, "weights")
    a = w if benchmark is None else w - _finite(np.asarray(benchmark, dtype=float), names,
                                                "benchmark")
    x_c = x - x.mean(axis=0)
    if np.linalg.matrix_rank(x_c) < k:
        raise InputError("factors has collinear (or constant) columns; drop one", "factors")
    fit = wls(r, x, None, k + 2)
    if not fit.ok.all():
        i = int(np.argmin(fit.ok))
        raise InputError(f"returns: the regression of {names[i]} on the factors failed", "returns")
    betas = fit.coef[1:]
    expo = betas @ a
    sf = np.cov(x, rowvar=False, ddof=1).reshape(k, k)
    fc = expo * (sf @ expo)
    return FactorExposures(fnames, expo, fc, float(fc.sum()), float(fit.resid_var @ (a * a)),
                           betas, fit.resid_var, names, t_len, benchmark is not None)
