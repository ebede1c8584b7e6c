"""Factor model and factor moments at one rebalance date (SPEC section 3.3).

Per asset *i* the excess return follows ``r_i - r_f = alpha_i + beta_i' f + eps_i``
with ``Var(eps_i) = e_i``. :func:`fit_factor_model` estimates it by (weighted)
least squares on a rolling or expanding window that ends at the rebalance date;
:func:`factor_moments` estimates the mean and covariance of the factors, by the
sample or EWMA estimators of :mod:`xlfuncs.core._risk` (the non-regime
baseline) or as the moments of a Gaussian hidden-Markov mixture forecast
``horizon`` periods ahead (:mod:`xlfuncs.core._regime`).

No look-ahead: every estimate "as of" a date uses the rows dated up to and
including it, never a later one; the regime model is fitted (and initialised)
on those rows only.

Units. Every moment here is **per period** of the data (weekly moments for
weekly returns, monthly for monthly). A tracking-error budget is quoted
**annually**; :func:`per_period_budget` is the one place it is converted, as the
per-period variance ``TEV**2 / periods_per_year``. (The original research
compared a weekly variance with ``TEV**2 / 12``, a monthly budget: with weekly
data the divisor is 52.)
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xlfuncs.core import _regime
from xlfuncs.core._lstsq import one_thread, wls
from xlfuncs.core._regime import RegimeFit
from xlfuncs.core._risk import (
    DEFAULT_HALFLIFE,
    RiskMethod,
    _check_halflife,
    _ewma_weights,
    covariance,
)
from xlfuncs.core._risk import parse_risk_method as _parse_risk_method
from xlfuncs.errors import InputError

__all__ = [
    "FACTOR_MOMENT_METHODS",
    "FactorModel",
    "FactorMoments",
    "FactorTable",
    "factor_moments",
    "fit_factor_model",
    "fit_factor_tables",
    "per_period_budget",
    "per_period_to_annual",
]

FACTOR_MOMENT_METHODS = ("sample", "ewma", "ledoit-wolf", "regime")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FactorModel:
    """Per-asset factor regressions ``r_i - r_f = alpha_i + beta_i' f + eps_i``.

    Attributes
    ----------
    assets : tuple of str
        The assets estimated (``n`` of them), in the order of the input columns.
    factors : tuple of str
        The factors (``k`` of them).
    alpha : ndarray of shape (n,)
        Intercepts, excess return per period.
    betas : ndarray of shape (k, n)
        Loadings: ``betas[j, i]`` is asset *i*'s exposure to factor *j*.
    resid_var : ndarray of shape (n,)
        Residual variances ``e_i`` per period, unbiased (``ddof = k + 1``; for
        weighted fits see :func:`fit_factor_model`).
    n_obs : ndarray of shape (n,)
        Rows each asset was estimated on (non-missing returns in the window).
    dropped : tuple of str
        Assets of the input left out: fewer than ``min_obs`` returns in the
        window, or a singular design on their rows.
    start, end : hashable
        Index labels of the first and last row of the window.

    """

    assets: tuple[str, ...]
    factors: tuple[str, ...]
    alpha: np.ndarray
    betas: np.ndarray
    resid_var: np.ndarray
    n_obs: np.ndarray
    dropped: tuple[str, ...]
    start: Hashable
    end: Hashable

    @property
    def loadings(self) -> np.ndarray:
        """The SPEC's ``F``: ``vstack([alpha, betas])``, shape (k + 1, n).

        With ``mu_f = [1, E f]`` (length ``k + 1``) the expected excess returns
        are ``F' mu_f``; row 0 holds the intercepts.
        """
        return np.vstack([self.alpha, self.betas])

    def expected_excess(self, factor_mean: np.ndarray) -> np.ndarray:
        """Expected excess returns ``F' [1, factor_mean]``, shape (n,), per period.

        Parameters
        ----------
        factor_mean : ndarray of shape (k,)
            Mean factor returns per period (e.g. :attr:`FactorMoments.mean`).

        """
        mu = np.asarray(factor_mean, dtype=float)
        if mu.shape != (len(self.factors),):
            raise InputError(f"factor_mean must have {len(self.factors)} values", "factor_mean")
        return self.alpha + mu @ self.betas

    def covariance(self, factor_cov: np.ndarray) -> np.ndarray:
        """Asset covariance ``B' Sigma_f B + diag(e)``, shape (n, n), per period.

        Parameters
        ----------
        factor_cov : ndarray of shape (k, k)
            Factor covariance per period (e.g. :attr:`FactorMoments.cov`).

        """
        k = len(self.factors)
        s = np.asarray(factor_cov, dtype=float)
        if s.shape != (k, k):
            raise InputError(f"factor_cov must be {k}x{k}", "factor_cov")
        cov = self.betas.T @ s @ self.betas
        cov = 0.5 * (cov + cov.T)
        cov[np.diag_indices_from(cov)] += self.resid_var
        return cov


@dataclass(frozen=True)
class FactorMoments:
    """Mean and covariance of the factor returns, per period.

    Attributes
    ----------
    factors : tuple of str
        The ``k`` factors.
    mean : ndarray of shape (k,)
        Expected factor returns per period.
    cov : ndarray of shape (k, k)
        Factor covariance per period.
    method : str
        ``sample``, ``ewma``, ``ledoit-wolf`` or ``regime``.
    n_obs : int
        Rows used.
    start, end : hashable
        Index labels of the first and last row used.
    halflife : float or None
        EWMA half-life in periods (``ewma`` only).
    horizon : int or None
        Steps ahead of the state forecast (``regime`` only).
    probs : ndarray of shape (S,) or None
        Forecast state probabilities ``pi = (P^h)' gamma_T`` (``regime`` only).
    state_means : ndarray of shape (S, k) or None
        Per-state factor means (``regime`` only).
    state_covs : ndarray of shape (S, k, k) or None
        Per-state factor covariances (``regime`` only).
    transmat : ndarray of shape (S, S) or None
        Transition matrix, rows = from-state (``regime`` only).
    regime : RegimeFit or None
        The fitted hidden Markov model, e.g. to warm-start the next date's fit.

    """

    factors: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray
    method: str
    n_obs: int
    start: Hashable
    end: Hashable
    halflife: float | None = None
    horizon: int | None = None
    probs: np.ndarray | None = None
    state_means: np.ndarray | None = None
    state_covs: np.ndarray | None = None
    transmat: np.ndarray | None = None
    regime: RegimeFit | None = None

    @property
    def mean_with_constant(self) -> np.ndarray:
        """The SPEC's ``mu_f = [1, mean]``, shape (k + 1,), to pair with ``F``."""
        return np.concatenate([[1.0], self.mean])


# --------------------------------------------------------------------------- units


def per_period_budget(tev_annual: float, periods_per_year: float) -> float:
    """Per-period tracking variance of an annual tracking-error budget.

    The convention of the whole package: moments are per period of the data,
    budgets are annual, and this is the one conversion, ``TEV**2 / periods_per_year``
    (returns i.i.d. across periods, so variance scales with time).

    Parameters
    ----------
    tev_annual : float
        Annual tracking-error volatility, a fraction (0.05 for 5 %).
    periods_per_year : float
        52 for weekly data, 12 for monthly, 252 for daily.

    Returns
    -------
    float
        Tracking variance per period, comparable with ``w' Sigma w`` for a
        per-period ``Sigma``.

    """
    tev = float(tev_annual)
    ppy = float(periods_per_year)
    if not (math.isfinite(tev) and tev >= 0):
        raise InputError("tev must be a non-negative annual tracking error", "tev")
    if not (math.isfinite(ppy) and ppy > 0):
        raise InputError("periods_per_year must be a positive number", "periods_per_year")
    return tev * tev / ppy


def per_period_to_annual(
    mean: np.ndarray | float, cov: np.ndarray | float, periods_per_year: float
) -> tuple[np.ndarray, np.ndarray]:
    """Annualise per-period moments for display: ``mean * ppy``, ``cov * ppy``.

    Parameters
    ----------
    mean : float or ndarray of shape (k,)
        Mean return per period.
    cov : float or ndarray of shape (k, k)
        Variance or covariance per period.
    periods_per_year : float
        52 weekly, 12 monthly, 252 daily.

    Returns
    -------
    tuple of ndarray
        Annual mean and annual covariance (arithmetic, i.i.d. scaling).

    """
    ppy = float(periods_per_year)
    if not (math.isfinite(ppy) and ppy > 0):
        raise InputError("periods_per_year must be a positive number", "periods_per_year")
    return np.asarray(mean, dtype=float) * ppy, np.asarray(cov, dtype=float) * ppy


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class FactorTable:
    """A panel as its numbers, dates and column names (read from a frame once)."""

    values: np.ndarray  # (T, c) float
    index: pd.Index  # dates, unique, increasing
    names: tuple[str, ...]


def _frame(data: object, name: str) -> FactorTable:
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if not isinstance(data, pd.DataFrame):
        raise InputError(f"{name} must be a table with dates in its index (a DataFrame)", name)
    if data.shape[1] == 0:
        raise InputError(f"{name} has no columns", name)
    if not data.columns.is_unique:
        dup = data.columns[data.columns.duplicated()][0]
        raise InputError(f"{name} has the column {dup} twice", name)
    if not data.index.is_unique:
        dup = data.index[data.index.duplicated()][0]
        raise InputError(f"{name} has the date {dup} twice", name)
    if not data.index.is_monotonic_increasing:
        raise InputError(f"{name} must be sorted by date, oldest first", name)
    try:
        values = data.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must hold numbers only", name) from None
    return FactorTable(values, data.index, tuple(str(c) for c in data.columns))


def _window_rows(index: pd.Index, asof: object, window: int | None, name: str) -> slice:
    """Positions of the rows dated up to ``asof``, the last ``window`` of them."""
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
            raise InputError("window must be a positive whole number of rows or blank", "window")
    if asof is None:
        stop = len(index)
    else:
        try:
            stop = int(index.searchsorted(asof, side="right"))
        except TypeError:
            raise InputError(f"asof {asof!r} cannot be compared with the dates of {name}",
                             "asof") from None
    if stop == 0:
        raise InputError(f"{name} has no row dated on or before {asof}", name)
    start = 0 if window is None else max(0, stop - int(window))
    return slice(start, stop)


def _check_finite(x: np.ndarray, index: pd.Index, names: tuple[str, ...], name: str) -> None:
    if not np.isfinite(x).all():
        i, j = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"{name} has a missing value for {names[j]} on {index[i]}", name)


# --------------------------------------------------------------------------- factor model


def fit_factor_model(
    excess_returns: pd.DataFrame,
    factors: pd.DataFrame,
    *,
    window: int | None = None,
    min_obs: int = 24,
    weights: np.ndarray | pd.Series | None = None,
    asof: Hashable | None = None,
) -> FactorModel:
    """Regress each asset's excess returns on the factors over one window.

    Parameters
    ----------
    excess_returns : DataFrame of shape (T, n)
        Returns over the risk-free rate per period, dates (sorted, oldest
        first) in the index, assets in the columns; NaN where an asset has no
        return (not yet listed, delisted).
    factors : DataFrame of shape (T_f, k)
        Factor returns per period, indexed by the same dates; it must have a
        complete row for every date of the window (extra dates are ignored).
    window : int, optional
        Rolling window of the last ``window`` rows (dates) up to ``asof``;
        ``None`` (default) is the expanding window from the first row.
    min_obs : int
        Assets with fewer returns than this in the window are left out and
        listed in :attr:`FactorModel.dropped`. At least ``k + 2``.
    weights : array-like of shape (T,) or Series, optional
        Non-negative observation weights for weighted least squares, one per
        row of ``excess_returns`` (a Series is matched by date). The residual
        variance is then ``sum w e^2 / sum w * n_eff / (n_eff - k - 1)`` with
        ``n_eff = (sum w)^2 / sum w^2`` (unbiased for equal or 0/1 weights).
    asof : hashable, optional
        The rebalance date: only rows dated up to and including it are used.
        ``None`` uses every row.

    Returns
    -------
    FactorModel
        Loadings of the assets with enough data, per period.

    Raises
    ------
    InputError
        Malformed tables, missing factor rows, a bad window, weight or ``min_obs``.

    Notes
    -----
    Ordinary least squares per asset on its own non-missing rows, with
    ``ddof = k + 1`` for the residual variance; computed for all assets at
    once through per-asset normal equations on standardised regressors.

    """
    ret = _frame(excess_returns, "excess_returns")
    fac = _frame(factors, "factors")
    return fit_factor_tables(ret, fac, window=window, min_obs=min_obs, weights=weights, asof=asof)


def fit_factor_tables(ret: FactorTable, fac: FactorTable, *, window: int | None = None,
                      min_obs: int = 24, weights: np.ndarray | pd.Series | None = None,
                      asof: Hashable | None = None) -> FactorModel:
    """:func:`fit_factor_model` on tables already read (a backtest reads its data once)."""
    k = len(fac.names)
    if isinstance(min_obs, bool) or not isinstance(min_obs, int | np.integer):
        raise InputError("min_obs must be a whole number", "min_obs")
    if min_obs < k + 2:
        raise InputError(f"min_obs must be at least {k + 2} for {k} factors (it is {min_obs})",
                         "min_obs")
    rows = _window_rows(ret.index, asof, window, "excess_returns")
    dates = ret.index[rows]
    y = ret.values[rows]
    if fac.index.equals(ret.index):
        x = fac.values[rows]
    else:
        pos = fac.index.get_indexer(dates)
        if (pos < 0).any():
            raise InputError(f"factors has no row for {dates[np.argmax(pos < 0)]}", "factors")
        x = fac.values[pos]
    _check_finite(x, dates, fac.names, "factors")
    if np.isinf(y).any():
        i, j = np.argwhere(np.isinf(y))[0]
        raise InputError(f"excess_returns has an infinite value for {ret.names[j]} "
                         f"on {dates[i]}", "excess_returns")
    w = None
    if weights is not None:
        if isinstance(weights, pd.Series):
            ws = weights.reindex(dates)
            if ws.isna().any():
                raise InputError(f"weights has no value for {dates[np.argmax(ws.isna())]}",
                                 "weights")
            w = ws.to_numpy(dtype=float)
        else:
            wa = np.asarray(weights, dtype=float)
            if wa.shape != (len(ret.index),):
                raise InputError(f"weights must have one value per row of excess_returns "
                                 f"({len(ret.index)})", "weights")
            w = wa[rows]
        if not (np.isfinite(w).all() and (w >= 0).all()):
            raise InputError("weights must be finite and non-negative", "weights")
        if not w.any():
            raise InputError("weights are all zero in the window", "weights")
    with one_thread():
        fit = wls(y, x, w, int(min_obs))
    keep = np.flatnonzero(fit.ok)
    return FactorModel(
        assets=tuple(ret.names[i] for i in keep),
        factors=fac.names,
        alpha=fit.coef[0, keep],
        betas=fit.coef[1:, keep],
        resid_var=fit.resid_var[keep],
        n_obs=fit.n_obs[keep],
        dropped=tuple(ret.names[i] for i in np.flatnonzero(~fit.ok)),
        start=dates[0],
        end=dates[-1],
    )


# --------------------------------------------------------------------------- factor moments


def factor_moments(
    factors: pd.DataFrame,
    method: str | RiskMethod = "sample",
    *,
    halflife: float | None = None,
    n_states: int = 2,
    horizon: int = 1,
    seed: int = 0,
    window: int | None = None,
    asof: Hashable | None = None,
    n_iter: int = 500,
    tol: float = 1e-4,
    warm_start: RegimeFit | None = None,
) -> FactorMoments:
    """Mean and covariance of the factors per period, as of one date.

    Parameters
    ----------
    factors : DataFrame of shape (T, k)
        Factor returns per period, dates sorted oldest first; no missing
        values in the rows used.
    method : str or RiskMethod
        ``sample`` (mean, covariance with ``ddof = 1``); ``ewma`` or
        ``ewma:HALFLIFE`` (exponentially weighted mean and covariance, weights
        ``0.5 ** (age / halflife)``); ``ledoit-wolf`` (sample mean, shrunk
        covariance); ``regime`` (Gaussian HMM mixture, see Notes).
    halflife : float, optional
        EWMA half-life in periods; overrides one given in ``method``
        (default 60).
    n_states : int
        Regime states, 2 to 4 (``regime`` only).
    horizon : int
        Periods ahead of the state forecast, >= 0 (``regime`` only; 1 = the
        next period's state).
    seed : int
        Seed of the HMM's k-means initialisation (``regime`` only).
    window : int, optional
        Use the last ``window`` rows up to ``asof``; ``None`` (default) is the
        expanding window.
    asof : hashable, optional
        Only rows dated up to and including it are used; ``None`` = all rows.
    n_iter, tol : int, float
        EM iterations and log-likelihood tolerance (``regime`` only).
    warm_start : RegimeFit, optional
        Start EM from this earlier fit instead of k-means (``regime`` only).

    Returns
    -------
    FactorMoments
        Per-period moments (see :func:`per_period_budget` for the units).

    Raises
    ------
    InputError
        Bad method, missing values, too few rows.
    ConvergenceError
        The regime model did not converge or is degenerate.

    Notes
    -----
    ``regime``: a ``GaussianHMM`` (full covariances) is fitted to the window's
    rows only; the filtered state probabilities ``gamma_T`` at the last row
    are carried ``horizon`` steps ahead, ``pi = (P^h)' gamma_T``, and the
    moments are those of the mixture: ``mean = sum_s pi_s mu_s`` and
    ``cov = sum_s pi_s (Sigma_s + mu_s mu_s') - mean mean'``.

    """
    fac = _frame(factors, "factors")
    rows = _window_rows(fac.index, asof, window, "factors")
    x = fac.values[rows]
    dates = fac.index[rows]
    _check_finite(x, dates, fac.names, "factors")
    names = fac.names
    start, end = dates[0], dates[-1]
    is_regime = isinstance(method, str) and method.strip().lower() in ("regime", "hmm")
    if is_regime:
        fit = _regime.fit_regime(x, n_states, seed, n_iter=n_iter, tol=tol, init=warm_start)
        probs = _regime.forecast_probs(fit, fit.filtered[-1], horizon)
        mean, cov = _regime.mixture_moments(probs, fit.means, fit.covs)
        return FactorMoments(names, mean, cov, "regime", len(x), start, end, None,
                             int(horizon), probs, fit.means, fit.covs, fit.transmat, fit)
    if isinstance(method, RiskMethod):
        rm = method
    else:
        try:
            rm = _parse_risk_method(method, "method")
        except InputError as exc:
            if str(method).strip().lower().startswith("ewma"):
                raise  # the half-life's own message (with a RiskMetrics lambda's half-life)
            raise InputError("method must be one of sample, ewma, ewma:HALFLIFE, ledoit-wolf, "
                             f'regime (got "{method}")', "method") from exc
    if halflife is not None:
        try:
            hl_value = float(halflife)
        except (TypeError, ValueError):
            hl_value = math.nan
        if isinstance(halflife, bool) or not (math.isfinite(hl_value) and hl_value > 0):
            raise InputError("halflife must be a positive number of periods", "halflife")
        _check_halflife(hl_value, "halflife")
        if rm.name == "ewma":
            rm = RiskMethod("ewma", hl_value)
    if len(x) < 2:
        raise InputError(f"factors needs at least 2 rows (has {len(x)})", "factors")
    cov = covariance(x, rm, 1.0, names, "factors")
    if rm.name == "ewma":
        hl = rm.halflife or DEFAULT_HALFLIFE
        mean = _ewma_weights(len(x), hl) @ x
    else:
        hl = None
        mean = x.mean(axis=0)
    return FactorMoments(names, mean, cov, rm.name, len(x), start, end, hl)
