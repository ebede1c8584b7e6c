"""How a backtest behaved in crises and in each market regime (SPEC 3.6).

**Crisis windows.** The SPEC 3.5 statistics (annualised return and volatility,
tracking error, information ratio, max drawdown; plus the compounded return
over the window) of every strategy and of the benchmark, restricted to the
periods earned inside a named date window. A window the returns do not reach
(fewer than 2 periods inside it) is left out.

**Regimes.** The same statistics within each state of a Gaussian hidden Markov
model of the factor returns. No look-ahead: the model is fitted once on the
factor returns up to the first decision date (the history before the
backtest), and each period ``t + 1`` is classified by the state whose
*filtered* probability ``P(s_t | rows up to t)`` is highest at the decision
date ``t`` (never by a smoothed probability, which would read later rows).
States are numbered by the volatility of the first factor (the market),
calmest first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xlfuncs.core._metrics import performance_stats
from xlfuncs.core._regime import filtered_probs, fit_regime
from xlfuncs.errors import InputError

__all__ = ["DEFAULT_WINDOWS", "WINDOW_COLUMNS", "parse_windows", "regime_stats", "window_stats"]

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
_STATS = ("ann_return", "ann_volatility", "tracking_error", "information_ratio", "max_drawdown")


def _day(text: object, name: str, item: str) -> pd.Timestamp:
    value = str(text).strip()
    if not re.fullmatch(r"\d{4}(-\d{1,2}(-\d{1,2})?)?", value):
        raise InputError(f"{name}: {item} needs dates written year first, such as 2008-01 "
                         f"(got {value!r})", name)
    return pd.Timestamp(value)


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
        items = [tuple(v) for v in value]  # type: ignore[attr-defined]
    out = []
    for key, start, end in items:
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
        ``regime 1 of 2 (calmest)``; a row per regime met and strategy.

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
    fit = fit_regime(f.loc[: decided[-1]], n_states, seed)
    probs = filtered_probs(fit, f)  # row t uses rows up to t only
    order = np.argsort(fit.covs[:, 0, 0])  # calmest market first
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    state = pd.Series(rank[probs.argmax(axis=1)], index=f.index)
    # the period earned at t+1 belongs to the state at its decision date t
    pos = f.index.get_indexer(earned)
    if (pos <= 0).any():
        raise InputError("regimes: the factors have no row for a decision date", "factors")
    at_decision = state.iloc[pos - 1].to_numpy()
    strategies = [c for c in returns.columns if c not in ("benchmark", "rf")]
    rows: list[dict[str, Any]] = []
    for s in range(n_states):
        tag = " (calmest)" if s == 0 else " (most volatile)" if s == n_states - 1 else ""
        rows += _rows(f"regime {s + 1} of {n_states}{tag}", returns.loc[at_decision == s],
                      strategies, periods_per_year)
    return pd.DataFrame(rows, columns=list(WINDOW_COLUMNS))
