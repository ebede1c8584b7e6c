"""The factors a backtest's model uses: a chosen subset of the factor file's columns.

A factor set names columns of the factor file, ``"Mkt-RF, SMB, HML"`` (``,`` or
``;`` between them), matched without regard to case or spaces (``mkt - rf`` is
``Mkt-RF``). ``RF`` is the risk-free rate, never a model factor. An empty set
means every factor of the file. The selection is made once, on
:attr:`MarketData.factors`, before any estimate: the loadings, the factor
moments and the regime model all see the chosen factors only, in the order
given.
"""

from __future__ import annotations

import re
from dataclasses import replace

from xlfuncs.core._market import MarketData
from xlfuncs.errors import InputError

__all__ = ["parse_factor_set", "select_factor_set"]


def _key(name: object) -> str:
    return re.sub(r"\s+", "", str(name)).lower()


def parse_factor_set(value: object) -> tuple[str, ...]:
    """The factor names of a ``factor_set`` setting, as typed (stripped), in order.

    Parameters
    ----------
    value : str, sequence of str or None
        ``"Mkt-RF, SMB, HML"`` (``,`` or ``;`` between names), or a list of
        names (a TOML array); None or blank for every factor.

    Returns
    -------
    tuple of str
        Empty for every factor.

    Raises
    ------
    InputError
        A name given twice, ``RF``, or a value that is not text.

    """
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        bad = value if not isinstance(items, list | tuple) else next(
            x for x in items if not isinstance(x, str))
        raise InputError(f"factor_set must be factor names such as Mkt-RF, SMB, HML (got "
                         f"{bad!r})", "factor_set")
    names = [part.strip() for item in items for part in re.split(r"[;,]", item)
             if part.strip()]
    seen: set[str] = set()
    for name in names:
        if _key(name) == "rf":
            raise InputError("factor_set: RF is the risk-free rate, never a model factor",
                             "factor_set")
        if _key(name) in seen:
            raise InputError(f"factor_set names {name!r} twice", "factor_set")
        seen.add(_key(name))
    return tuple(names)


def select_factor_set(data: MarketData, factor_set: tuple[str, ...]) -> MarketData:
    """``data`` with only the factors of ``factor_set``, in its order, and a note saying which.

    Parameters
    ----------
    data : MarketData
        The market data; its ``factors`` are the file's factors (``RF`` is ``data.rf``).
    factor_set : tuple of str
        Names from :func:`parse_factor_set`; empty keeps every factor.

    Returns
    -------
    MarketData
        Its notes end with the model's factors.

    Raises
    ------
    InputError
        A name that is not a factor of the file; the message lists the factors.

    """
    columns = [str(c) for c in data.factors.columns]
    if not factor_set:
        note = f"model factors: {', '.join(columns)} (every factor of the file)"
        return replace(data, notes=(*data.notes, note))
    by_key = {_key(c): c for c in columns}
    chosen = []
    for name in factor_set:
        if _key(name) not in by_key:
            raise InputError(f"factor_set: no factor {name!r}; the factors are "
                             f"{', '.join(columns)}", "factor_set")
        chosen.append(by_key[_key(name)])
    note = f"model factors: {', '.join(chosen)} (factor_set, of {', '.join(columns)})"
    return replace(data, factors=data.factors[chosen], notes=(*data.notes, note))
