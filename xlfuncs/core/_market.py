"""Market data for factor-model backtests: one validated container (SPEC 4.3).

:class:`MarketData` holds aligned panels on one calendar of period ends: asset
returns, market caps, industries, factor returns, the risk-free rate and an
optional benchmark. Every table shares one sorted, unique
:class:`pandas.DatetimeIndex`; returns are simple returns in fractions earned
*during* period ``t`` (from the end of ``t - 1`` to the end of ``t``), caps are
values at the *end* of ``t``. An asset that is not listed in a period has NaN
there. The loaders live in :mod:`xlfuncs.data.market`; this module is pure
numpy/pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from xlfuncs.errors import InputError

__all__ = [
    "PERIODS_PER_YEAR",
    "MarketData",
    "date_slice",
    "infer_periods_per_year",
    "period_ends",
]

#: Recognised sampling frequencies: name -> periods per year.
PERIODS_PER_YEAR = {"daily": 252, "weekly": 52, "monthly": 12, "quarterly": 4, "annual": 1}

# median spacing of the dates, in days (inclusive bounds) -> periods per year
_SPACING = ((1, 4, 252), (5, 10, 52), (25, 35, 12), (80, 100, 4), (350, 380, 1))


def infer_periods_per_year(dates: pd.DatetimeIndex | Any, name: str = "dates") -> int:
    """Periods per year of a date series, from the median spacing of its dates.

    Parameters
    ----------
    dates : DatetimeIndex or array-like of dates, shape (n_periods,)
        At least 2 distinct dates, any order.
    name : str
        The input's name, used in messages.

    Returns
    -------
    int
        252 (daily: median spacing 1-4 days), 52 (weekly: 5-10 days), 12
        (monthly: 25-35 days), 4 (quarterly: 80-100 days) or 1 (annual:
        350-380 days).

    Raises
    ------
    InputError
        Fewer than 2 distinct dates, or a spacing that matches no frequency.

    """
    idx = pd.DatetimeIndex(dates).unique().sort_values()
    if len(idx) < 2:
        raise InputError(f"{name} needs at least 2 dates to tell the frequency (has {len(idx)})",
                         name)
    days = float(np.median(np.diff(idx.as_unit("ns").asi8)) / 86_400e9)
    for low, high, ppy in _SPACING:
        if low <= days <= high:
            return ppy
    raise InputError(f"{name} are {days:g} days apart (median); expected daily, weekly, "
                     "monthly, quarterly or annual dates", name)


def period_ends(dates: pd.DatetimeIndex | Any, periods_per_year: int) -> pd.DatetimeIndex:
    """Dates moved to the calendar end of their period (week, month, quarter or year).

    CRSP dates a month by its last trading day (2001-03-30) while Ken French
    dates it by ``YYYYMM``; both become the calendar month end (2001-03-31) so
    that the two line up. A week ends on its Friday (weeks run Saturday to
    Friday), so a week whose last trading day is a Thursday (Good Friday) meets
    the same week of daily data compounded. Daily dates are returned unchanged
    (normalised to midnight).

    Parameters
    ----------
    dates : DatetimeIndex or array-like of dates, shape (n,)
        The dates, in any order (the order is kept).
    periods_per_year : int
        52, 12, 4 or 1 move dates to the week's Friday, the month, quarter or
        year end; other values leave them.

    Returns
    -------
    DatetimeIndex of shape (n,)
        In nanoseconds, as every index the loaders make.

    """
    idx = pd.DatetimeIndex(dates).normalize().as_unit("ns")
    if periods_per_year == 52:
        return idx + pd.offsets.Week(0, weekday=4)
    if periods_per_year == 12:
        return idx + pd.offsets.MonthEnd(0)
    if periods_per_year == 4:
        return idx + pd.offsets.QuarterEnd(0)
    if periods_per_year == 1:
        return idx + pd.offsets.YearEnd(0)
    return idx


def _first_date(mask: np.ndarray, index: pd.DatetimeIndex) -> str:
    return f"{index[int(np.argmax(mask))]:%Y-%m-%d}"


def _is_number_dtype(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _check_frame(frame: object, what: str, index: pd.DatetimeIndex | None) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{what} must be a pandas DataFrame (got {type(frame).__name__})", what)
    if not frame.columns.is_unique:
        dup = frame.columns[frame.columns.duplicated()][0]
        raise InputError(f"{what} has the column {dup!r} twice", what)
    bad = ([] if frame.columns.inferred_type in ("string", "empty")
           else [c for c in frame.columns if not isinstance(c, str)])
    if bad:
        raise InputError(f"{what} column names must be text (got {bad[0]!r})", what)
    if not all(_is_number_dtype(t) for t in set(frame.dtypes)):
        col = next(c for c, t in frame.dtypes.items() if not _is_number_dtype(t))
        raise InputError(f"{what} column {col!r} must hold numbers (dtype {frame[col].dtype})",
                         what)
    if index is not None:
        _check_same_index(frame.index, index, what)
    return frame


def _check_same_index(idx: pd.Index, ref: pd.DatetimeIndex, what: str) -> None:
    if idx.equals(ref):
        return
    if len(idx) != len(ref):
        raise InputError(f"{what} has {len(idx)} dates, returns have {len(ref)}; "
                         "they must share one index", what)
    diff = np.flatnonzero(np.asarray(idx != ref))
    at = f"{ref[diff[0]]:%Y-%m-%d}" if diff.size else "?"
    raise InputError(f"{what} dates differ from the returns dates (first at {at}); "
                     "they must share one index", what)


def _check_series(series: object, what: str, index: pd.DatetimeIndex) -> pd.Series:
    if not isinstance(series, pd.Series):
        raise InputError(f"{what} must be a pandas Series (got {type(series).__name__})", what)
    if not _is_number_dtype(series.dtype):
        raise InputError(f"{what} must hold numbers (dtype {series.dtype})", what)
    _check_same_index(series.index, index, what)
    return series


def date_slice(index: pd.DatetimeIndex, start: object = None, end: object = None) -> slice:
    """Positions of the dates within [start, end], inclusive.

    Parameters
    ----------
    index : DatetimeIndex of shape (n,)
        Sorted dates.
    start, end : date-like or str, optional
        Bounds; None leaves that side open. A partial string covers its whole
        period (``"2010-06"`` as ``end`` keeps every date in June 2010).

    Returns
    -------
    slice
        For ``index[slice]`` or ``frame.iloc[slice]``.

    Raises
    ------
    InputError
        A bound that is not a date, or ``start`` after ``end``.

    """
    for label, value in (("start", start), ("end", end)):
        if value is None:
            continue
        try:
            pd.Timestamp(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f'{label} is not a date: "{value}"', label) from exc
    if start is not None and end is not None and pd.Timestamp(start) > pd.Timestamp(end):
        raise InputError(f"start ({start}) is after end ({end})", "start")
    try:
        return index.slice_indexer(start, end)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"cannot cut the dates at start={start}, end={end}: {exc}",
                         "end") from exc


@dataclass(frozen=True)
class MarketData:
    """Aligned market data for a backtest: assets, caps, industries, factors, risk-free.

    Every table has the same index: a sorted, unique :class:`pandas.DatetimeIndex`
    of period ends (calendar month ends for monthly data). All returns are
    simple returns in fractions (0.0123 for 1.23%).

    Attributes
    ----------
    returns : DataFrame of shape (n_periods, n_assets)
        Return of each asset earned during period ``t`` (from the end of
        ``t - 1`` to the end of ``t``); NaN when the asset is not listed (or
        its return is missing). Columns are the asset ids (text). Present
        values are finite and > -1.
    caps : DataFrame of shape (n_periods, n_assets) or None
        Market capitalisation at the end of period ``t``, in the source's
        currency units (CRSP: thousands of dollars); NaN when not listed or
        unknown, otherwise finite and >= 0. Same index and columns as
        ``returns``. None when there are no caps; then ``benchmark`` is
        required.
    industries : Series of shape (n_assets,)
        Asset id -> industry label (non-empty text), for every asset, in the
        column order of ``returns`` (reordered on construction).
    factors : DataFrame of shape (n_periods, n_factors)
        Factor returns (e.g. ``Mkt-RF``, ``SMB``, ``HML``, ``Mom``), excess
        returns in fractions, finite; at least one factor.
    rf : Series of shape (n_periods,)
        Risk-free return per period, fractions, finite.
    periods_per_year : int
        12 monthly, 52 weekly, 252 daily (4 quarterly, 1 annual).
    benchmark : Series of shape (n_periods,) or None
        A given benchmark return series (e.g. the market, ``Mkt-RF + RF``);
        finite and > -1.
    source : str
        A human description of where the data came from, for reports.
    notes : tuple of str
        What the loader dropped, filled or assumed (one line each), for reports.
    industry_history : DataFrame of shape (n_periods, n_assets) or None
        The industry label each asset had at each date, when labels change over
        time (a company moving to another SIC code); a backtest classifies at
        date t by the label of date t, never by a later one. None: ``industries``
        holds at every date.
    prices : DataFrame of shape (n_periods, n_assets) or None
        Price at the end of period ``t`` (CRSP ``|prc|``), NaN when unknown,
        otherwise finite and > 0; for the liquidity filters. Same index and
        columns as ``returns``.
    dollar_volume : DataFrame of shape (n_periods, n_assets) or None
        Dollar volume traded during period ``t`` (``|prc| x vol`` summed over
        its days), NaN when unknown, otherwise finite and >= 0.

    Raises
    ------
    InputError
        On construction, when any of the above does not hold; the message names
        the input (``returns``, ``caps``, ``industries``, ``factors``, ``rf``,
        ``benchmark``, ``periods_per_year``, ``prices``, ``dollar_volume``) and
        the problem.

    """

    returns: pd.DataFrame
    caps: pd.DataFrame | None
    industries: pd.Series
    factors: pd.DataFrame
    rf: pd.Series
    periods_per_year: int
    benchmark: pd.Series | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default=())
    industry_history: pd.DataFrame | None = None
    prices: pd.DataFrame | None = None
    dollar_volume: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        r = _check_frame(self.returns, "returns", None)
        idx = r.index
        if not isinstance(idx, pd.DatetimeIndex):
            raise InputError("returns must be indexed by dates (a DatetimeIndex)", "returns")
        if len(idx) == 0:
            raise InputError("returns have no periods", "returns")
        if r.shape[1] == 0:
            raise InputError("returns have no assets", "returns")
        if idx.hasnans:
            raise InputError("returns have a blank date", "returns")
        if not idx.is_unique:
            dup = idx[idx.duplicated()][0]
            raise InputError(f"returns have the date {dup:%Y-%m-%d} twice", "returns")
        if not idx.is_monotonic_increasing:
            pos = int(np.flatnonzero(np.diff(idx.asi8) < 0)[0]) + 1
            raise InputError(f"returns dates are not sorted ({idx[pos]:%Y-%m-%d} comes after "
                             f"{idx[pos - 1]:%Y-%m-%d})", "returns")
        values = r.to_numpy(dtype=float)
        bad = np.isinf(values) | (values <= -1)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise InputError(f"returns of {r.columns[j]} on {idx[i]:%Y-%m-%d} is "
                             f"{values[i, j]:.6g}; returns must be finite and > -1", "returns")

        for what, frame in (("caps", self.caps), ("prices", self.prices),
                            ("dollar_volume", self.dollar_volume)):
            if frame is None:
                continue
            c = _check_frame(frame, what, idx)
            if not c.columns.equals(r.columns):
                raise InputError(f"{what} columns must be the returns columns, in the same "
                                 "order", what)
            cv = c.to_numpy(dtype=float)
            bad = np.isinf(cv) | (cv <= 0 if what == "prices" else cv < 0)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                sign = "> 0" if what == "prices" else ">= 0"
                raise InputError(f"{what} of {c.columns[j]} on {idx[i]:%Y-%m-%d} is "
                                 f"{cv[i, j]:.6g}; {what} must be finite and {sign}", what)

        ind = self.industries
        if not isinstance(ind, pd.Series):
            raise InputError(f"industries must be a pandas Series (got {type(ind).__name__})",
                             "industries")
        if not ind.index.is_unique:
            dup = ind.index[ind.index.duplicated()][0]
            raise InputError(f"industries lists {dup} twice", "industries")
        missing = r.columns.difference(ind.index, sort=False)
        if len(missing):
            raise InputError(f"industries has no label for {len(missing)} asset(s), first "
                             f"{missing[0]}", "industries")
        ind = ind.reindex(r.columns)
        labels = ind.to_numpy(dtype=object)
        blank = [j for j, v in enumerate(labels) if not isinstance(v, str) or not v.strip()]
        if blank:
            raise InputError(f"industries label of {ind.index[blank[0]]} is blank or not text",
                             "industries")
        object.__setattr__(self, "industries", ind.astype(object).rename("industry"))
        if self.industry_history is not None:
            hist = self.industry_history
            if not isinstance(hist, pd.DataFrame) or not hist.index.equals(idx):
                raise InputError("industry_history must be a table with the dates of returns",
                                 "industry_history")
            hist = hist.reindex(columns=r.columns)
            filled = hist.fillna(pd.DataFrame({c: ind[c] for c in r.columns}, index=idx))
            object.__setattr__(self, "industry_history", filled.astype(object))

        f = _check_frame(self.factors, "factors", idx)
        if f.shape[1] == 0:
            raise InputError("factors have no columns", "factors")
        fv = f.to_numpy(dtype=float)
        if not np.isfinite(fv).all():
            i, j = np.argwhere(~np.isfinite(fv))[0]
            raise InputError(f"factors {f.columns[j]} on {idx[i]:%Y-%m-%d} is blank or not finite",
                             "factors")
        rf = _check_series(self.rf, "rf", idx).to_numpy(dtype=float)
        if not np.isfinite(rf).all():
            raise InputError(f"rf on {_first_date(~np.isfinite(rf), idx)} is blank or not finite",
                             "rf")
        if self.benchmark is not None:
            b = _check_series(self.benchmark, "benchmark", idx).to_numpy(dtype=float)
            bad = ~np.isfinite(b) | (b <= -1)
            if bad.any():
                raise InputError(f"benchmark on {_first_date(bad, idx)} is blank, not finite or "
                                 "<= -1", "benchmark")
        elif self.caps is None:
            raise InputError("benchmark is required when there are no market caps", "benchmark")
        ppy = self.periods_per_year
        if isinstance(ppy, bool) or not isinstance(ppy, (int, np.integer)) or ppy < 1:
            raise InputError(f"periods_per_year must be a positive whole number (got {ppy!r})",
                             "periods_per_year")
        object.__setattr__(self, "periods_per_year", int(ppy))
        object.__setattr__(self, "notes", tuple(self.notes))

    # ------------------------------------------------------------------ views

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The period ends, shape (n_periods,)."""
        return self.returns.index

    @property
    def n_periods(self) -> int:
        """Number of periods (rows)."""
        return self.returns.shape[0]

    @property
    def n_assets(self) -> int:
        """Number of assets (columns of ``returns``)."""
        return self.returns.shape[1]

    def truncate(self, start: object = None, end: object = None, *,
                 drop_unlisted: bool = True) -> MarketData:
        """Every input cut to the periods ``start <= t <= end``.

        Parameters
        ----------
        start, end : date-like or str, optional
            Bounds, inclusive; None leaves that side open. A partial string
            covers its whole period: ``end="2010-06"`` keeps June 2010, and
            ``end="2010"`` the whole of 2010.
        drop_unlisted : bool
            Drop the assets that have neither a return nor a cap in the window
            (so the result says nothing about assets listed after ``end``).

        Returns
        -------
        MarketData
            A new object; its notes record the cut.

        Raises
        ------
        InputError
            A bound that is not a date, ``start`` after ``end``, or no period
            left in the window.

        """
        cut = date_slice(self.dates, start, end)
        returns = self.returns.iloc[cut]
        if returns.shape[0] == 0:
            raise InputError(f"no periods between start={start} and end={end} (data cover "
                             f"{self.dates[0]:%Y-%m-%d} to {self.dates[-1]:%Y-%m-%d})",
                             "end" if end is not None else "start")
        caps = None if self.caps is None else self.caps.iloc[cut]
        keep = returns.notna().any(axis=0).to_numpy()
        if caps is not None:
            keep = keep | caps.notna().any(axis=0).to_numpy()
        notes = list(self.notes)
        if drop_unlisted and not keep.all():
            if not keep.any():
                raise InputError(f"no asset is listed between start={start} and end={end}",
                                 "end" if end is not None else "start")
            notes.append(f"{int((~keep).sum())} asset(s) not listed between "
                         f"{returns.index[0]:%Y-%m-%d} and {returns.index[-1]:%Y-%m-%d} dropped")
            returns = returns.loc[:, keep]
            caps = None if caps is None else caps.loc[:, keep]
        span = f"cut to {returns.index[0]:%Y-%m-%d} .. {returns.index[-1]:%Y-%m-%d}"
        if not notes or notes[-1] != span:  # cut again to the same dates: one note
            notes.append(span)
        return replace(
            self,
            returns=returns,
            caps=caps,
            industries=self.industries.reindex(returns.columns),
            factors=self.factors.iloc[cut],
            rf=self.rf.iloc[cut],
            benchmark=None if self.benchmark is None else self.benchmark.iloc[cut],
            notes=tuple(notes),
            industry_history=(None if self.industry_history is None
                              else self.industry_history.iloc[cut].reindex(
                                  columns=returns.columns)),
            prices=(None if self.prices is None
                    else self.prices.iloc[cut].reindex(columns=returns.columns)),
            dollar_volume=(None if self.dollar_volume is None
                           else self.dollar_volume.iloc[cut].reindex(columns=returns.columns)),
        )

    def window(self, end: object) -> MarketData:
        """The data up to and including ``end`` (see :meth:`truncate`)."""
        return self.truncate(None, end)
