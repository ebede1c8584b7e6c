"""Liquidity filters on the tradable universe of a backtest (issue 18).

At each rebalance date ``t`` a stock that is tradable (a return at ``t``, a
positive cap, enough history for its regression) stays in the universe only
if it passes every filter that is set, judged on data up to ``t``:

- ``min_price``: its price at ``t`` (CRSP ``|prc|``) is at least the minimum;
- ``min_dollar_volume``: its average dollar volume per period over the
  trailing ``volume_window`` periods ending at ``t`` (the periods of the
  window that have a volume; ``|prc| x vol`` summed over each period's days)
  is at least the minimum;
- ``min_cap``: its market cap at ``t`` is at least the minimum.

Units are the data's: CRSP prices in dollars, caps in thousands of dollars
(``|prc| x shrout``), volume in shares. A stock with no price (or no volume
in the window) at ``t`` fails that filter. Each filter's count is the number
of tradable stocks that fail it, so a stock failing two filters counts in
both; ``filters.csv`` has them per date.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xlfuncs.core._market import MarketData
from xlfuncs.errors import InputError

__all__ = ["LIQUIDITY_FILTERS", "check_filters", "check_minimum", "filter_note", "filter_table",
           "liquidity_filter"]

#: The filters, in the order they are reported: setting -> the panel it reads.
LIQUIDITY_FILTERS = {"min_price": "prices", "min_dollar_volume": "dollar_volume",
                     "min_cap": "caps"}
_NEEDS = {"prices": "prices (a prc column)", "dollar_volume": "volumes (prc and vol columns)",
          "caps": "market caps (mktcap, or prc and shrout)"}


def check_minimum(value: Any, name: str) -> float | None:
    """A filter's minimum: None (blank) or a finite number >= 0."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float | np.number)
            or not (math.isfinite(float(value)) and float(value) >= 0)):
        raise InputError(f"{name} must be a number of at least 0 (got {value!r})", name)
    return float(value)


def check_filters(data: MarketData, settings: dict[str, float | None]) -> None:
    """Every filter that is set has the data it reads; else one error naming the setting."""
    for name, panel in LIQUIDITY_FILTERS.items():
        if settings.get(name) is not None and getattr(data, panel) is None:
            raise InputError(f"{name} needs {_NEEDS[panel]}; the data have none", name)


def liquidity_filter(data: MarketData, i: int, assets: Sequence[str],
                     settings: dict[str, float | None],
                     volume_window: int) -> tuple[np.ndarray, tuple[tuple[str, int], ...]]:
    """Which of ``assets`` pass the filters at period ``i``, and how many each removed.

    Parameters
    ----------
    data : MarketData
        The panels (``prices``, ``dollar_volume``, ``caps``).
    i : int
        The decision period; only rows ``<= i`` are read.
    assets : sequence of str, length n
        The tradable assets at ``i``.
    settings : dict
        ``min_price``, ``min_dollar_volume``, ``min_cap``: the minimum, or None.
    volume_window : int
        Periods of the trailing dollar-volume average.

    Returns
    -------
    keep : ndarray of bool, shape (n,)
    removed : tuple of (str, int)
        Each filter that is set, with the number of ``assets`` failing it.

    """
    cols = list(assets)
    keep = np.ones(len(cols), dtype=bool)
    removed = []
    for name, panel in LIQUIDITY_FILTERS.items():
        low = settings.get(name)
        if low is None:
            continue
        frame = getattr(data, panel)
        if name == "min_dollar_volume":
            values = frame.iloc[max(0, i - volume_window + 1):i + 1][cols].mean(axis=0)
        else:
            values = frame.iloc[i][cols]
        ok = (values.to_numpy(dtype=float) >= low)  # NaN fails
        removed.append((name, int((~ok).sum())))
        keep &= ok
    return keep, tuple(removed)


def filter_table(rows: Sequence[tuple[pd.Timestamp, tuple[tuple[str, int], ...]]]
                 ) -> pd.DataFrame:
    """``date, filter, removed`` from each date's counts (empty when no filter is set)."""
    return pd.DataFrame([(d, name, n) for d, counts in rows for name, n in counts],
                        columns=["date", "filter", "removed"])


def filter_note(table: pd.DataFrame, left: Sequence[int]) -> str | None:
    """One line for the notes: each filter's average (and largest) count per date."""
    if table.empty:
        return None
    parts = [f"{name} {g.mean():.1f} (at most {g.max()})"
             for name, g in table.groupby("filter", sort=False)["removed"]]
    return (f"liquidity filters removed per rebalance date, on average: {', '.join(parts)}; "
            f"{np.mean(left):.1f} stocks left on average (filters.csv has every date)")
