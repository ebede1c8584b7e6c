"""Daily (or weekly) data compounded to the rebalance frequency (issue 18).

A backtest rebalances monthly or weekly; CRSP and Ken French also publish
daily files. Everything given at a higher frequency than the rebalance one is
compounded to it, period by period, before any estimate:

- simple returns: ``(1 + r).groupby(period).prod() - 1`` over the days the
  period has (a delisting day's return already includes CRSP's ``dlret``:
  ``(1 + ret)(1 + dlret) - 1``). A stock with some days missing inside its
  listed life gets the compounded return of the days it has (counted in the
  notes); a stock with no return at all in a period is missing for it (NaN);
- levels (market caps, prices, industries): the value of the period's last
  trading day, or of the stock's last day in the period when it has none then
  (a stock that delisted mid-period);
- dollar volume: the sum over the period's days of ``|prc| x vol``;
- factors: each long-short factor (SMB, HML, Mom, ...) and ``RF`` compounded
  like a return; the market is compounded as a *total* return,
  ``Mkt = Mkt-RF + RF``, and the period's excess return is
  ``Mkt-RF = (prod(1 + Mkt) - 1) - (prod(1 + RF) - 1)``, which is what an
  excess return over the period means (compounding the daily ``Mkt-RF``
  itself would not be). Ken French builds his monthly file from monthly
  portfolio returns, so a compounded daily file differs from his monthly one
  by a few basis points a month; that is the data, not a rounding.

Periods are labelled by their calendar end: the month end (as the monthly
files are) or the Friday of the week.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xlfuncs.core._market import PERIODS_PER_YEAR, period_ends
from xlfuncs.errors import InputError

__all__ = ["FREQUENCIES", "Compounded", "compound_factors", "compound_panels",
           "compound_returns", "frequency_name", "frequency_ppy"]

#: Rebalance frequencies a backtest accepts: name -> periods per year.
FREQUENCIES = {name: PERIODS_PER_YEAR[name] for name in ("monthly", "weekly")}
_NAMES = {ppy: name for name, ppy in PERIODS_PER_YEAR.items()}


def frequency_name(ppy: int) -> str:
    """``monthly``, ``weekly``, ``daily``... of a number of periods per year."""
    return _NAMES.get(int(ppy), f"{ppy} periods a year")


def frequency_ppy(frequency: object, name: str = "frequency") -> int | None:
    """Periods per year of a frequency name (None for a blank one).

    Raises
    ------
    InputError
        A name other than ``monthly`` or ``weekly``.

    """
    if frequency is None or (isinstance(frequency, str) and not frequency.strip()):
        return None
    text = str(frequency).strip().lower()
    if text not in FREQUENCIES:
        raise InputError(f"{name} must be monthly or weekly (got {frequency!r})", name)
    return FREQUENCIES[text]


def compound_returns(returns: pd.DataFrame | pd.Series,
                     labels: pd.DatetimeIndex) -> pd.DataFrame | pd.Series:
    """``(1 + r).groupby(labels).prod() - 1``; NaN where a period has no return at all.

    Parameters
    ----------
    returns : DataFrame of shape (n_days, n_assets) or Series of shape (n_days,)
        Simple returns in fractions; NaN for a missing day.
    labels : DatetimeIndex of shape (n_days,)
        The period of each row (:func:`~xlfuncs.core._market.period_ends`).

    Returns
    -------
    DataFrame of shape (n_periods, n_assets) or Series of shape (n_periods,)
        Indexed by the sorted period labels.

    """
    grouped = (1.0 + returns).groupby(np.asarray(labels), sort=True)
    out = grouped.prod(min_count=1) - 1.0
    out.index = pd.DatetimeIndex(out.index).rename(returns.index.name)
    return out


def compound_factors(factors: pd.DataFrame, rf: pd.Series, labels: pd.DatetimeIndex,
                     market: str | None = "Mkt-RF") -> tuple[pd.DataFrame, pd.Series]:
    """Factor returns and the risk-free rate compounded to periods (module docstring).

    Parameters
    ----------
    factors : DataFrame of shape (n_days, n_factors)
        Excess (long-short) factor returns in fractions; ``market`` is the
        market's excess return over ``rf``.
    rf : Series of shape (n_days,)
        Risk-free return per day, fractions.
    labels : DatetimeIndex of shape (n_days,)
        The period of each row (:func:`~xlfuncs.core._market.period_ends`).
    market : str or None
        The market column, compounded as the total return ``market + rf`` less
        the compounded ``rf``; None when there is none.

    Returns
    -------
    factors : DataFrame of shape (n_periods, n_factors)
    rf : Series of shape (n_periods,)

    """
    rf_p = compound_returns(rf, labels)
    out = compound_returns(factors, labels)
    if market is not None and market in factors.columns:
        total = compound_returns(factors[market] + rf, labels)
        out[market] = total - rf_p
    return out, rf_p


@dataclass(frozen=True)
class Compounded:
    """Wide panels compounded to periods (:func:`compound_panels`); shapes (n_periods, n_assets)."""

    returns: pd.DataFrame
    caps: pd.DataFrame | None
    prices: pd.DataFrame | None
    dollar_volume: pd.DataFrame | None
    industry_history: pd.DataFrame | None
    gaps: int  # stock-periods compounded over fewer days than the stock had listed
    empty: int  # stock-periods inside a listed life with no return at all (NaN)


def compound_panels(returns: pd.DataFrame, periods_per_year: int, *,
                    caps: pd.DataFrame | None = None, prices: pd.DataFrame | None = None,
                    dollar_volume: pd.DataFrame | None = None,
                    industry_history: pd.DataFrame | None = None) -> Compounded:
    """Daily panels compounded to ``periods_per_year`` (module docstring for the rules).

    Parameters
    ----------
    returns : DataFrame of shape (n_days, n_assets)
        Simple daily returns (delisting returns included), NaN when missing.
    periods_per_year : {12, 52}
        Monthly or weekly periods.
    caps, prices : DataFrame of shape (n_days, n_assets), optional
        Levels: the last value in each period is kept.
    dollar_volume : DataFrame of shape (n_days, n_assets), optional
        ``|prc| x vol`` per day: summed over each period.
    industry_history : DataFrame of shape (n_days, n_assets), optional
        Labels: the last in each period is kept.

    Returns
    -------
    Compounded
        ``gaps`` counts the stock-periods that miss some day inside the stock's
        listed life (from its first to its last day with a return), ``empty``
        those of them with no return at all.

    """
    labels = period_ends(returns.index, periods_per_year)
    key = np.asarray(labels)
    have = returns.notna()
    listed = have.cummax() & have[::-1].cummax()[::-1]
    missing = (listed & ~have).groupby(key, sort=True).any()
    any_return = have.groupby(key, sort=True).any()
    out = compound_returns(returns, labels)

    def last(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        if frame is None:
            return None
        got = frame.groupby(key, sort=True).last()
        got.index = out.index
        return got

    volume = None
    if dollar_volume is not None:
        volume = dollar_volume.groupby(key, sort=True).sum(min_count=1)
        volume.index = out.index
    return Compounded(out, last(caps), last(prices), volume, last(industry_history),
                      int(missing.to_numpy().sum()),
                      int((missing & ~any_return).to_numpy().sum()))
