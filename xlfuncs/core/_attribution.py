"""How a backtest behaved in crises and in each market regime (SPEC 3.6).

**Crisis windows.** The SPEC 3.5 statistics (annualised return and volatility,
tracking error, information ratio, max drawdown; plus the compounded return
over the window) of every strategy and of the benchmark, restricted to the
periods earned inside a named date window. A window the returns do not reach
(fewer than 2 periods inside it) is left out.

**Regimes.** The same statistics within each state of a Gaussian hidden Markov
model of the factor returns, fitted on an expanding window
(:func:`regime_states`). No look-ahead: the model is fitted on the factor
returns up to the first decision date (the history before the backtest) and
refitted on the rows up to the decision date every :data:`REGIME_REFIT`
periods after it, each refit warm-started from the one before; each period
``t + 1`` is classified by the state whose *filtered* probability
``P(s_t | rows up to t)``, under the latest fit made at or before ``t``, is
highest at the decision date ``t`` (never by a smoothed probability, which
would read later rows). States are numbered by the volatility of the first
factor (the market) in each fit, calmest first, so a label means the same
across refits.

**Active exposures and risk per rebalance** (:func:`active_risk`): the active
factor exposures ``f = F w - x_b``, the active industry weights, and the split
of the ex-ante ``TE^2 = f' Sigma_f f + sum_i e_i a_i^2`` into its factor and
specific parts, with the largest contributors ``a_i (Sigma a)_i / TE``
(``Sigma = F' Sigma_f F + diag(e)``, never formed).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xlfuncs.core._metrics import performance_stats
from xlfuncs.core._regime import RegimeFit, filtered_probs, fit_regime
from xlfuncs.errors import ConvergenceError, InputError

__all__ = ["DEFAULT_WINDOWS", "REGIME_REFIT", "WINDOW_COLUMNS", "active_risk", "parse_windows",
           "regime_states", "regime_stats", "window_stats"]

#: The default crisis windows: name, first and last day (calendar years).
DEFAULT_WINDOWS: tuple[tuple[str, str, str], ...] = (
    ("1973-74", "1973-01-01", "1974-12-31"),
    ("1987", "1987-01-01", "1987-12-31"),
    ("2000-02", "2000-01-01", "2002-12-31"),
    ("2008-09", "2008-01-01", "2009-12-31"),
    ("2020", "2020-01-01", "2020-12-31"),
)
#: The columns of :func:`window_stats` and :func:`regime_stats`.
WINDOW_COLUMNS = ("window", "strategy", "start", "end", "periods", "total_return", "ann_return",
                  "ann_volatility", "tracking_error", "information_ratio", "max_drawdown")
#: Periods between refits of the regime model of :func:`regime_states`.
REGIME_REFIT = 12
_STATS = ("ann_return", "ann_volatility", "tracking_error", "information_ratio", "max_drawdown")


def _day(text: object, name: str, item: str) -> pd.Timestamp:
    value = str(text).strip()
    if not re.fullmatch(r"\d{4}(-\d{1,2}(-\d{1,2})?)?", value):
        raise InputError(f"{name}: {item} needs dates written year first, such as 2008-01 "
                         f"(got {value!r})", name)
    try:
        return pd.Timestamp(value)
    except ValueError:  # 2008-13, 2008-02-30
        raise InputError(f"{name}: {item} has {value!r}, which is not a date", name) from None


def parse_windows(value: object, name: str = "windows") -> tuple[tuple[str, str, str], ...]:
    """Crisis windows from ``"NAME=START:END; ..."`` text, a mapping or a sequence of triples.

    ``START`` and ``END`` are ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; a year or
    a month as ``END`` means its last day. Blank gives :data:`DEFAULT_WINDOWS`.

    Returns
    -------
    tuple of (str, str, str)
        Name, first day and last day (ISO dates).

    """
    if value is None or (isinstance(value, str) and not value.strip()) or value == ():
        return DEFAULT_WINDOWS
    if isinstance(value, str):
        items: list[tuple[Any, Any, Any]] = []
        for part in re.split(r"[;\n]", value):
            if not part.strip():
                continue
            key, eq, rhs = part.partition("=")
            start, colon, end = rhs.partition(":")
            if not (eq and colon and key.strip()):
                raise InputError(f"{name} must be NAME=START:END items separated by ; (got "
                                 f"{part.strip()!r})", name)
            items.append((key.strip(), start, end))
    elif isinstance(value, Mapping):
        items = [(k, *v) for k, v in value.items()]
    else:
        try:
            items = [tuple(v) for v in value]  # type: ignore[attr-defined]
        except TypeError:
            items = [(value,)]
    out = []
    for item in items:
        if len(item) != 3:
            raise InputError(f"{name} must be NAME=START:END items, or (name, start, end) "
                             f"triples (got {item!r})", name)
        key, start, end = item
        first = _day(start, name, str(key))
        last_text = str(end).strip()
        last = _day(last_text, name, str(key))
        if len(last_text) == 4:
            last = last + pd.offsets.YearEnd(0)
        elif len(last_text) <= 7:
            last = last + pd.offsets.MonthEnd(0)
        if last < first:
            raise InputError(f"{name}: {key} ends before it starts", name)
        out.append((str(key), first.date().isoformat(), last.date().isoformat()))
    return tuple(out)


def _rows(label: str, returns: pd.DataFrame, strategies: Sequence[str],
          periods_per_year: float) -> list[dict[str, Any]]:
    """The statistics of every strategy and the benchmark over the periods of ``returns``."""
    out = []
    bench, rf = returns["benchmark"], returns["rf"]
    for name in ("benchmark", *strategies):
        r = returns[name].dropna()
        if len(r) < 2:
            continue
        st = performance_stats(r, bench.loc[r.index], rf.loc[r.index], periods_per_year)
        row: dict[str, Any] = {"window": label, "strategy": name, "start": r.index[0],
                               "end": r.index[-1], "periods": len(r),
                               "total_return": float(np.prod(1.0 + r.to_numpy()) - 1.0)}
        stats = st.as_dict()
        row.update({k: stats[k] for k in _STATS})
        if name == "benchmark":
            row["tracking_error"] = row["information_ratio"] = np.nan
        out.append(row)
    return out


def window_stats(returns: pd.DataFrame, windows: Sequence[tuple[str, str, str]],
                 periods_per_year: float) -> pd.DataFrame:
    """The SPEC 3.5 statistics of each strategy and the benchmark inside each window.

    Parameters
    ----------
    returns : DataFrame
        A backtest's returns: index the date earned, columns ``benchmark``,
        ``rf`` and one per strategy (simple returns per period).
    windows : sequence of (str, str, str)
        Name, first and last day (see :func:`parse_windows`).
    periods_per_year : float
        ``A`` for the annualised figures.

    Returns
    -------
    DataFrame
        Columns :data:`WINDOW_COLUMNS`; a row per window reached and strategy.

    """
    strategies = [c for c in returns.columns if c not in ("benchmark", "rf")]
    rows: list[dict[str, Any]] = []
    for name, first, last in windows:
        inside = returns.loc[(returns.index >= pd.Timestamp(first))
                             & (returns.index <= pd.Timestamp(last))]
        rows += _rows(name, inside, strategies, periods_per_year)
    return pd.DataFrame(rows, columns=list(WINDOW_COLUMNS))


def _refit(rows: pd.DataFrame, n_states: int, seed: int, last: RegimeFit | None) -> RegimeFit:
    """The fit on ``rows``: warm from ``last``, else cold; ``last`` kept if both fail."""
    if last is not None:
        try:
            return fit_regime(rows, n_states, seed, init=last)
        except ConvergenceError:
            pass
    try:
        return fit_regime(rows, n_states, seed)
    except ConvergenceError:
        if last is None:
            raise
        return last  # still a fit made on earlier rows only


def regime_states(factors: pd.DataFrame, first: pd.Timestamp, n_states: int = 2, seed: int = 0,
                  every: int = REGIME_REFIT) -> pd.Series:
    """The regime of each date from ``first`` on, by an expanding-window fit (no look-ahead).

    The model is fitted on the rows up to ``first``, then refitted on the rows up
    to every ``every``-th date after it (warm-started from the previous fit; a
    refit that fails starts cold, and if that fails too the previous fit stays).
    Date ``t`` gets the state of highest filtered probability
    ``P(s_t | rows up to t)`` under the latest fit made at or before ``t``, so
    rows after ``t`` never change it.

    Parameters
    ----------
    factors : DataFrame
        Factor returns per period, oldest first (the first column the market),
        no missing values.
    first : Timestamp
        The first date classified (the first decision date); a row of ``factors``.
    n_states : int
        States of the hidden Markov model (2-4).
    seed : int
        Seed of the cold fits' initialisation.
    every : int
        Periods between refits.

    Returns
    -------
    Series of int
        Index the dates of ``factors`` from ``first`` on; values ``0 .. n_states - 1``,
        numbered by the variance of the first factor in the fit used, calmest first.

    Raises
    ------
    InputError
        Too few rows up to ``first`` for the model.
    ConvergenceError
        The first fit failed.

    """
    x = factors
    begin0 = int(x.index.get_loc(first))
    states = np.empty(len(x) - begin0, dtype=int)
    fit: RegimeFit | None = None
    for begin in range(begin0, len(x), every):
        stop = min(begin + every, len(x))
        fit = _refit(x.iloc[: begin + 1], n_states, seed, fit)
        probs = filtered_probs(fit, x.iloc[:stop])[begin:]  # row t reads rows up to t only
        rank = np.argsort(np.argsort(fit.covs[:, 0, 0], kind="stable"))  # calmest market first
        states[begin - begin0: stop - begin0] = rank[probs.argmax(axis=1)]
    return pd.Series(states, index=x.index[begin0:])


def regime_stats(returns: pd.DataFrame, factors: pd.DataFrame, periods_per_year: float,
                 n_states: int = 2, seed: int = 0) -> pd.DataFrame:
    """The SPEC 3.5 statistics within each regime, classified without look-ahead.

    Parameters
    ----------
    returns : DataFrame
        A backtest's returns (see :func:`window_stats`).
    factors : DataFrame
        Factor returns per period, dated like the data (rows up to the last
        return; the first column the market).
    periods_per_year : float
        ``A``.
    n_states : int
        States of the hidden Markov model (2-4).
    seed : int
        Seed of its initialisation.

    Returns
    -------
    DataFrame
        Columns :data:`WINDOW_COLUMNS` with ``window`` the regime, e.g.
        ``regime 1 of 2 (calmest)``; a row per regime met and strategy. Each
        period earned at ``t + 1`` is in the regime of its decision date ``t``
        (:func:`regime_states`).

    Raises
    ------
    InputError
        Too little factor history before the first decision to fit the model.

    """
    f = factors.dropna()
    earned = returns.index
    decided = f.index[f.index < earned[0]]
    if len(decided) == 0:
        raise InputError("regimes: the factors start after the backtest", "factors")
    # the period earned at t+1 belongs to the state at its decision date t
    pos = f.index.get_indexer(earned)
    if (pos <= 0).any():
        raise InputError("regimes: the factors have no row for a decision date", "factors")
    last = f.index[pos[-1] - 1]
    state = regime_states(f.loc[:last], decided[-1], n_states, seed)
    at_decision = state.loc[f.index[pos - 1]].to_numpy()
    strategies = [c for c in returns.columns if c not in ("benchmark", "rf")]
    rows: list[dict[str, Any]] = []
    for s in range(n_states):
        tag = " (calmest)" if s == 0 else " (most volatile)" if s == n_states - 1 else ""
        rows += _rows(f"regime {s + 1} of {n_states}{tag}", returns.loc[at_decision == s],
                      strategies, periods_per_year)
    return pd.DataFrame(rows, columns=list(WINDOW_COLUMNS))


@functools.lru_cache(maxsize=256)
def _industry_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    """The exposure names of industries (one string each, however many dates use it)."""
    return tuple(f"industry: {name}" for name in names)


def active_risk(
    loadings: np.ndarray,
    factor_cov: np.ndarray,
    resid_var: np.ndarray,
    weights: np.ndarray,
    benchmark: np.ndarray | None,
    benchmark_exposure: np.ndarray | None,
    assets: Sequence[str],
    factors: Sequence[str],
    industries: np.ndarray,
    industry_names: Sequence[str],
    periods_per_year: float,
    top: int = 3,
) -> tuple[dict[str, float], dict[str, Any]]:
    """One rebalance's active exposures and the split of its ex-ante tracking error.

    Parameters
    ----------
    loadings : ndarray of shape (m, n)
        ``F``: row 0 the alphas, then one row per factor.
    factor_cov : ndarray of shape (m, m)
        Per-period factor covariance (zero first row and column).
    resid_var : ndarray of shape (n,)
        Per-period residual variances ``e``.
    weights : ndarray of shape (n,)
        The decided weights ``w``.
    benchmark : ndarray of shape (n,) or None
        Benchmark weights ``b``; None for a factor benchmark.
    benchmark_exposure : ndarray of shape (m,) or None
        A factor benchmark's exposure ``x_b``.
    assets, factors : sequence of str
        Names of the ``n`` assets and the ``m - 1`` factors.
    industries : ndarray of shape (n,)
        Industry code per asset (``0..k-1``).
    industry_names : sequence of str
        The ``k`` industries.
    periods_per_year : float
        For the annualised tracking error.
    top : int
        How many of the largest contributors to report.

    Returns
    -------
    exposures : dict
        Active exposure ``f_k`` per factor, and ``industry: NAME`` the active
        industry weight ``u - u_b`` (the benchmark's industries from its weights;
        for a factor benchmark, the portfolio's own industry weights).
    risk : dict
        ``tracking_error`` (annualised), ``factor_share`` and ``specific_share``
        of the active variance, and the ``top`` assets by contribution to the
        tracking error (``a_i (Sigma a)_i / TE``, weight benchmarks only).

    """
    w = np.asarray(weights, dtype=float)
    f_mat = np.asarray(loadings, dtype=float)
    sf = np.asarray(factor_cov, dtype=float)
    e = np.asarray(resid_var, dtype=float)
    a = w - benchmark if benchmark is not None else w
    xb = f_mat @ benchmark if benchmark is not None else np.asarray(benchmark_exposure, float)
    f = f_mat @ w - xb
    factor_var = float(f @ sf @ f)
    specific_var = float(e @ (a * a))
    total = factor_var + specific_var
    exposures: dict[str, float] = dict(zip(factors, f[1:].tolist(), strict=True))
    by_industry = np.bincount(industries, weights=a, minlength=len(industry_names))
    exposures.update(zip(_industry_keys(tuple(industry_names)), by_industry.tolist(),
                         strict=True))
    te = float(np.sqrt(max(total, 0.0)))
    risk: dict[str, Any] = {"tracking_error": te * float(np.sqrt(periods_per_year)),
                            "factor_share": factor_var / total if total > 0 else np.nan,
                            "specific_share": specific_var / total if total > 0 else np.nan}
    if benchmark is not None and te > 0:
        contrib = a * (f_mat.T @ (sf @ f) + e * a) / te  # sums to te (Euler)
        for rank, i in enumerate(np.argsort(-contrib)[:top], start=1):
            risk[f"top{rank}"] = assets[i]
            risk[f"top{rank}_share"] = float(contrib[i] / te)
    return exposures, risk
