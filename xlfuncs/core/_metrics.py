"""Backtest accounting and performance metrics (SPEC section 3.5).

Timing: weights decided at the close of date ``t`` earn the returns of period
``t+1`` (the period that ends at the next date); :func:`portfolio_returns` and
:func:`turnover_series` apply that one-period lag. Returns are simple
(not log) returns per period; ``A`` is the number of periods per year (12 for
monthly data).

Every metric states its convention in :data:`CONVENTIONS`. They agree with
empyrical-reloaded (``annual_return``, ``annual_volatility``, ``sharpe_ratio``,
``max_drawdown``, ``excess_sharpe``, ``batting_average``) on the same returns,
with the same conventions (ddof=1, geometric annual return, drawdown from an
initial wealth of 1). Differences: missing values are an error here (empyrical
skips them), and a ratio over a zero standard deviation is NaN (empyrical
gives +-inf).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from xlfuncs.errors import InputError

__all__ = [
    "CONVENTIONS",
    "HOLDING_THRESHOLD",
    "PerformanceStats",
    "drifted_weights",
    "one_way_turnover",
    "performance_stats",
    "portfolio_returns",
    "turnover_series",
]

# A position counts as a holding when its absolute weight exceeds this.
HOLDING_THRESHOLD = 1e-6

CONVENTIONS: dict[str, str] = {
    "ann_return": "geometric (CAGR): (prod(1 + r))^(A/T) - 1",
    "ann_volatility": "std(r, ddof=1) * sqrt(A)",
    "sharpe": "mean(r - r_f) / std(r - r_f, ddof=1) * sqrt(A)",
    "tracking_error": "std(a, ddof=1) * sqrt(A), a = r - r_b (realised, ex post)",
    "information_ratio": "mean(a) / std(a, ddof=1) * sqrt(A), a = r - r_b",
    "max_drawdown": "min over t of W_t / max(W_0..W_t) - 1, W_t = prod(1 + r), W_0 = 1 "
                    "(<= 0)",
    "turnover": "mean one-way turnover per rebalance: sum |w_t - w_(t-1) drifted| / 2",
    "avg_holdings": f"mean number of positions with |w| > {HOLDING_THRESHOLD:g}",
    "hit_rate": "share of periods with a = r - r_b > 0",
    "ir_per_period": "mean(a) / std(a, ddof=1), not annualised",
}


@dataclass(frozen=True)
class PerformanceStats:
    """Performance of a backtest, each field with the convention in :data:`CONVENTIONS`.

    Attributes
    ----------
    ann_return : float
        Geometric annualised return (fraction, 0.08 = 8% a year).
    ann_volatility : float
        Annualised volatility of the per-period returns.
    sharpe : float
        Annualised Sharpe ratio of the returns over the risk-free rate.
    tracking_error : float
        Annualised realised tracking error against the benchmark.
    information_ratio : float
        Annualised information ratio.
    max_drawdown : float
        Largest fall of compounded wealth from a running peak (<= 0).
    turnover : float
        Mean one-way turnover per rebalance (NaN when not given).
    avg_holdings : float
        Mean number of holdings (NaN when not given).
    hit_rate : float
        Share of periods that beat the benchmark.
    ir_per_period : float
        Information ratio per period (not annualised).

    """

    ann_return: float
    ann_volatility: float
    sharpe: float
    tracking_error: float
    information_ratio: float
    max_drawdown: float
    turnover: float
    avg_holdings: float
    hit_rate: float
    ir_per_period: float

    def as_dict(self) -> dict[str, float]:
        """The metrics as an ordered name -> value mapping."""
        return asdict(self)

    def table(self) -> list[list[object]]:
        """Header ``metric, value, convention`` and one row per metric."""
        rows: list[list[object]] = [["metric", "value", "convention"]]
        for name, value in self.as_dict().items():
            rows.append([name, value, CONVENTIONS[name]])
        return rows


# --------------------------------------------------------------------------- inputs


def _series(x: object, name: str, index: pd.Index | None = None) -> pd.Series:
    """A float Series of finite values; same dates as ``index`` when given."""
    if isinstance(x, pd.DataFrame):
        if x.shape[1] != 1:
            raise InputError(f"{name} must be one column of returns (it has {x.shape[1]})",
                             name)
        x = x.iloc[:, 0]
    if isinstance(x, pd.Series):
        s = x.astype(float)
    else:
        try:
            arr = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be numbers", name) from None
        if arr.ndim == 0 and index is not None:  # a constant (e.g. a risk-free rate)
            arr = np.full(len(index), float(arr))
        if arr.ndim != 1:
            raise InputError(f"{name} must be a single series of returns", name)
        s = pd.Series(arr, index=index if index is not None and len(index) == len(arr)
                      else None)
    if index is not None:
        if len(s) != len(index):
            raise InputError(f"{name} has {len(s)} periods but returns has {len(index)}", name)
        if isinstance(x, pd.Series) and not s.index.equals(index):
            at = next(i for i, (u, v) in enumerate(zip(s.index, index, strict=True)) if u != v)
            raise InputError(f"{name}'s dates differ from returns' (first at position {at}: "
                             f"{s.index[at]} vs {index[at]})", name)
    bad = np.flatnonzero(~np.isfinite(s.to_numpy()))
    if bad.size:
        raise InputError(f"{name} has a missing or non-finite value at {s.index[bad[0]]}", name)
    return s


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _std(x: np.ndarray) -> float:
    """Sample standard deviation (ddof=1); exactly 0 for a constant series."""
    if np.all(x == x[0]):
        return 0.0
    return float(np.std(x, ddof=1))


# --------------------------------------------------------------------------- metrics


def performance_stats(
    returns: pd.Series,
    benchmark: pd.Series,
    rf: pd.Series | float,
    periods_per_year: float,
    turnover: pd.Series | np.ndarray | None = None,
    holdings: pd.Series | pd.DataFrame | np.ndarray | None = None,
) -> PerformanceStats:
    """Annualised performance, risk and activity of a backtest (SPEC 3.5).

    Parameters
    ----------
    returns : pd.Series of shape (T,)
        The portfolio's simple return per period (fractions), the period ``t+1``
        returns of the weights decided at ``t``.
    benchmark : pd.Series of shape (T,)
        The benchmark's simple returns over the same periods (same index).
    rf : pd.Series of shape (T,) or float
        The risk-free return per period (not annualised).
    periods_per_year : float
        ``A``: 12 for monthly, 52 weekly, 252 daily.
    turnover : pd.Series or ndarray, optional
        One-way turnover of each rebalance (e.g. from :func:`turnover_series`).
    holdings : pd.Series, pd.DataFrame or ndarray, optional
        The number of holdings per rebalance, or the weights themselves
        (dates x assets), counted as ``|w| > 1e-6``.

    Returns
    -------
    PerformanceStats
        Ratios with a zero denominator (a constant series) are NaN.

    Raises
    ------
    InputError
        Fewer than 2 periods, missing values, or dates that differ.

    """
    a_per_year = float(periods_per_year)
    if not (math.isfinite(a_per_year) and a_per_year > 0):
        raise InputError("periods_per_year must be positive, e.g. 12 for monthly",
                         "periods_per_year")
    r = _series(returns, "returns")
    if len(r) < 2:
        raise InputError(f"returns needs at least 2 periods (has {len(r)})", "returns")
    rb = _series(benchmark, "benchmark", r.index)
    r_f = _series(rf, "rf", r.index)
    x, xb, xf = r.to_numpy(), rb.to_numpy(), r_f.to_numpy()
    t_len = len(x)
    root_a = math.sqrt(a_per_year)

    wealth = np.cumprod(1.0 + x)
    ann_return = float(wealth[-1] ** (a_per_year / t_len) - 1.0) if wealth[-1] > 0 else -1.0
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    max_drawdown = float(min((wealth / peak - 1.0).min(), 0.0))

    excess = x - xf
    active = x - xb
    sd_active = _std(active)
    ir_pp = _ratio(float(active.mean()), sd_active)
    return PerformanceStats(
        ann_return=ann_return,
        ann_volatility=_std(x) * root_a,
        sharpe=_ratio(float(excess.mean()), _std(excess)) * root_a,
        tracking_error=sd_active * root_a,
        information_ratio=ir_pp * root_a,
        max_drawdown=max_drawdown,
        turnover=_mean_of(turnover, "turnover"),
        avg_holdings=_holdings(holdings),
        hit_rate=float((active > 0).mean()),
        ir_per_period=ir_pp,
    )


def _mean_of(x: object, name: str) -> float:
    if x is None:
        return math.nan
    arr = np.asarray(x, dtype=float).reshape(-1)
    if arr.size == 0:
        return math.nan
    if not np.isfinite(arr).all():
        raise InputError(f"{name} has a missing or non-finite value", name)
    return float(arr.mean())


def _holdings(holdings: object) -> float:
    if holdings is None:
        return math.nan
    arr = np.asarray(holdings, dtype=float)
    if arr.ndim == 2:  # weights: dates x assets (NaN = not held)
        return float((np.nan_to_num(np.abs(arr)) > HOLDING_THRESHOLD).sum(axis=1).mean())
    return _mean_of(arr, "holdings")


# --------------------------------------------------------------------------- accounting


def drifted_weights(w: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Weights at the end of a period after the assets' returns moved them.

    ``w_i (1 + r_i) / sum_j w_j (1 + r_j)``: the weights the next rebalance
    starts from (no trading during the period).

    Parameters
    ----------
    w : ndarray of shape (n,)
        Weights at the start of the period (summing to 1).
    r : ndarray of shape (n,)
        Simple returns of the assets over the period; NaN is allowed where the
        weight is 0 (an asset not held, e.g. not listed).

    Returns
    -------
    ndarray of shape (n,)
        Drifted weights, summing to 1.

    Raises
    ------
    InputError
        A held asset without a return, or a portfolio that lost everything.

    """
    w = np.asarray(w, dtype=float)
    r = np.asarray(r, dtype=float)
    if w.shape != r.shape or w.ndim != 1:
        raise InputError(f"w and r must be two vectors of one length (got {w.shape} and "
                         f"{r.shape})", "r")
    if not np.isfinite(w).all():
        raise InputError("w has a missing or non-finite weight", "w")
    held = w != 0
    bad = np.flatnonzero(held & ~np.isfinite(r))
    if bad.size:
        raise InputError(f"r has no return for held asset {bad[0]} (0-based)", "r")
    grown = np.where(held, w * (1.0 + np.where(held, r, 0.0)), 0.0)
    total = float(grown.sum())
    if not total > 0:
        raise InputError(f"the portfolio's value fell to {total:.4g} of its start; weights "
                         "cannot drift", "r")
    return grown / total


def one_way_turnover(w_new: np.ndarray, w_prev_drifted: np.ndarray | None) -> float:
    """One-way turnover ``sum |w_new - w_prev_drifted| / 2`` (a fraction of the portfolio).

    Parameters
    ----------
    w_new : ndarray of shape (n,)
        The weights traded to.
    w_prev_drifted : ndarray of shape (n,) or None
        The previous weights drifted to the rebalance date
        (:func:`drifted_weights`); None for the first build from cash.

    Returns
    -------
    float
        0.5 * the total absolute trade; 0.5 for a long-only build from cash.

    """
    new = np.asarray(w_new, dtype=float)
    prev = np.zeros_like(new) if w_prev_drifted is None else np.asarray(w_prev_drifted,
                                                                           dtype=float)
    if new.shape != prev.shape:
        raise InputError(f"w_new and w_prev_drifted differ in shape ({new.shape} vs "
                         f"{prev.shape})", "w_prev_drifted")
    return 0.5 * float(np.abs(new - prev).sum())


def _frames(weights: pd.DataFrame, returns: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(weights, pd.DataFrame) or not isinstance(returns, pd.DataFrame):
        raise InputError("weights and returns must be DataFrames (dates x assets)", "weights")
    if not weights.index.equals(returns.index) or not weights.columns.equals(returns.columns):
        raise InputError("weights and returns must have the same dates and assets "
                         "(reindex one to the other)", "returns")
    if len(weights) < 2:
        raise InputError("weights needs at least 2 dates", "weights")
    w = np.nan_to_num(weights.to_numpy(dtype=float))
    return w, returns.to_numpy(dtype=float)


def portfolio_returns(weights: pd.DataFrame, returns: pd.DataFrame) -> pd.Series:
    """The portfolio's return of every period: weights at ``t`` earn the returns of ``t+1``.

    Parameters
    ----------
    weights : pd.DataFrame (dates x assets)
        Weights decided at the close of each date (rebalanced every date; NaN
        = not held).
    returns : pd.DataFrame (dates x assets)
        Simple return of each asset over the period ending at each date; NaN
        allowed where the previous date's weight is 0.

    Returns
    -------
    pd.Series
        ``r_p(t_(j+1)) = sum_i w_i(t_j) r_i(t_(j+1))``, indexed by the dates
        from the second on.

    """
    w, r = _frames(weights, returns)
    w_prev, r_next = w[:-1], r[1:]
    held = w_prev != 0
    bad = np.argwhere(held & ~np.isfinite(r_next))
    if bad.size:
        j, i = bad[0]
        raise InputError(f"returns has no value for held asset {returns.columns[i]} at "
                         f"{returns.index[j + 1]}", "returns")
    out = (w_prev * np.where(held, r_next, 0.0)).sum(axis=1)
    return pd.Series(out, index=returns.index[1:], name="portfolio")


def turnover_series(weights: pd.DataFrame, returns: pd.DataFrame) -> pd.Series:
    """One-way turnover of every rebalance after the first, from the drifted weights.

    Parameters
    ----------
    weights : pd.DataFrame (dates x assets)
        Weights decided at the close of each date (summing to 1).
    returns : pd.DataFrame (dates x assets)
        Simple returns over the period ending at each date.

    Returns
    -------
    pd.Series
        ``sum |w(t_j) - drift(w(t_(j-1)), r(t_j))| / 2`` indexed by the dates
        from the second on (the first build from cash is not included).

    """
    w, r = _frames(weights, returns)
    out = [one_way_turnover(w[j], drifted_weights(w[j - 1], r[j])) for j in range(1, len(w))]
    return pd.Series(out, index=weights.index[1:], name="turnover")
