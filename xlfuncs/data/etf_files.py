"""ETF issuer holdings files read into one form: tickers and fraction weights.

Four layouts are recognised from the file's content (never from its name):

========== ================================================================
layout     how it is recognised
========== ================================================================
ishares    iShares CSV: a header row with ``Ticker``, ``Name``,
           ``Asset Class`` and ``Weight (%)`` after a short preamble
           (fund name, ``Fund Holdings as of,"Oct 05, 2026"``, ...)
ssga       SSGA (SPDR) XLSX, sheet ``holdings``: ``Fund Name:``,
           ``Ticker Symbol:``, ``Holdings:`` ``As of 20-Aug-2026``, then a
           header row with ``Name``, ``Ticker``, ``Identifier``, ``SEDOL``,
           ``Weight``
janus      Janus Henderson: a header row whose first cell reads
           ``Full Portfolio Holdings (As of MM/DD/YYYY)`` (that column holds
           the security name), with ``Ticker``, ``Cusip`` and ``Weight %``
plain      two columns, ticker and weight; a header whose weight cell holds
           ``%`` means percent, a header reading ``weight`` means fractions,
           and with no header the caller states ``percent=True/False``
========== ================================================================

Weights are never taken as percent or fraction from their size: the issuer
layouts are percent by layout, a cell written ``12.5%`` is percent, and a plain
file says so in its header or through the caller. Cash, currency, money-market
and derivative rows are dropped explicitly and reported, and so are total and
subtotal rows (a ticker or name cell reading ``Total``, ``Grand Total``,
``Subtotal`` or ``Sum``); the kept weights are renormalised to sum to one and
the original total is reported. The table ends
at the first blank row (the legal disclaimers that follow are ignored).

Weights that cannot be an ETF's are refused rather than renormalised: a weight
outside -100% to 100% (:data:`WEIGHT_RANGE`; the message names its row), and kept
holdings whose weights sum to less than 90% or more than 110% (:data:`TOTAL_BAND`).
An issuer's file adds up to 100% with its cash and derivative rows, which for an
equity ETF are a few percent at most (the fixtures: 0.13% to 2%, kept holdings
summing to 98% to 99.87%). A total outside the band is a file read in the wrong
unit, rows repeated, a top-10 list, or a fund so much in cash or derivatives that
its stocks do not stand for it (renormalising them would inflate its beta by more
than a tenth).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from xlfuncs.core import normalise_ticker
from xlfuncs.errors import InputError

__all__ = ["TOTAL_BAND", "WEIGHT_RANGE", "DroppedRow", "EtfHoldings", "parse_etf_table",
           "read_etf_file"]

#: The weights, as fractions, one row of a holdings file may have.
WEIGHT_RANGE = (-1.0, 1.0)
#: The sum, as a fraction, of the kept holdings' weights before renormalisation.
TOTAL_BAND = (0.90, 1.10)

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DroppedRow:
    """A cash, currency, money-market, derivative or total row left out of the holdings.

    Attributes
    ----------
    ticker : str or None
        The row's ticker (normalised), None when the file leaves it blank or ``-``.
    name : str or None
        The security name, when the file has one.
    weight : float or None
        The row's weight as a fraction of the file's total (0.0011 for 0.11%),
        None when the file leaves it blank.
    reason : str
        Why it was dropped: ``cash``, ``money market``, ``futures``, ``swap``,
        ``option``, ``forward``, ``fx forward``, ``derivative``, ``no ticker``,
        ``total`` (a total or subtotal row; its label is the ``name``), ...
    row : int or None
        The row number in the file (1-based), when known.

    """

    ticker: str | None
    name: str | None
    weight: float | None
    reason: str
    row: int | None = None


@dataclass(frozen=True)
class EtfHoldings:
    """The holdings of one ETF file: normalised tickers and fraction weights.

    Attributes
    ----------
    tickers : tuple of str
        Normalised tickers (:func:`xlfuncs.core.normalise_ticker`), in file order.
    weights : numpy.ndarray
        Fractions, renormalised to sum to one (read-only).
    layout : str
        ``"ishares"``, ``"ssga"``, ``"janus"`` or ``"plain"``.
    fund : str or None
        The fund's name and/or ticker, when the file states them.
    as_of : datetime.date or None
        The holdings date, when the file states it.
    names : tuple of (str or None)
        Security names, where the file has them.
    dropped : tuple of DroppedRow
        The cash and derivative rows left out, each with its reason.
    original_total : float
        Sum of the kept weights before renormalisation, as a fraction
        (0.9987 for 99.87%).
    merged : tuple of str
        Tickers listed on several rows (lots of one security, as bond funds
        publish them), whose weights were added into one line.

    """

    tickers: tuple[str, ...]
    weights: np.ndarray
    layout: str
    fund: str | None
    as_of: dt.date | None
    names: tuple[str | None, ...]
    dropped: tuple[DroppedRow, ...]
    original_total: float
    merged: tuple[str, ...] = ()

    def report(self) -> list[str]:
        """Short human lines: layout, as-of date, holdings, dropped rows, renormalisation.

        Returns
        -------
        list of str
            One line each, ready for a status cell or a log.

        """
        known = _LAYOUTS_BY_NAME.get(self.layout)
        title = known.title if known is not None else self.layout
        lines = [f"layout: {title}" + (f" ({self.fund})" if self.fund else "")]
        lines.append(f"as of: {self.as_of.isoformat() if self.as_of else 'not stated'}")
        lines.append(f"holdings: {len(self.tickers)}")
        cash = [d for d in self.dropped if d.reason != _TOTAL_REASON]
        totals = [d for d in self.dropped if d.reason == _TOTAL_REASON]
        if cash:
            shown = [
                f"{d.ticker or d.name or '?'} ({d.reason}"
                + (f", {_pct(d.weight)})" if d.weight is not None else ")")
                for d in cash[:_REPORT_DROPPED]
            ]
            lines.append(f"dropped {_rows(len(cash), 'cash/derivative')}: "
                         + ", ".join(shown) + _more(len(cash)))
        else:
            lines.append("dropped: no cash or derivative rows")
        if totals:
            shown = [
                f"{d.name or d.ticker or '?'} (row {d.row}"
                + (f", {_pct(d.weight)})" if d.weight is not None else ")")
                for d in totals[:_REPORT_DROPPED]
            ]
            lines.append(f"dropped {_rows(len(totals), 'total')}: " + ", ".join(shown)
                         + _more(len(totals)))
        if self.merged:
            lines.append("added up the rows of tickers listed more than once: "
                         + ", ".join(self.merged))
        if abs(self.original_total - 1.0) <= _TOTAL_TOLERANCE:
            lines.append("weights sum to 100%")
        else:
            lines.append(
                f"weights summed to {_pct(self.original_total)}; renormalised to 100%"
            )
        return lines

    def to_frame(self) -> pd.DataFrame:
        """The holdings as a DataFrame.

        Returns
        -------
        pandas.DataFrame
            Columns ``ticker`` and ``weight``, and ``name`` when the file has names.

        """
        frame = pd.DataFrame({"ticker": list(self.tickers), "weight": self.weights})
        if any(n is not None for n in self.names):
            frame["name"] = list(self.names)
        return frame


_REPORT_DROPPED = 6
_TOTAL_TOLERANCE = 1e-9
_TOTAL_REASON = "total"


def _pct(fraction: float) -> str:
    if abs(fraction) >= 1e7:  # a file whose weights are far from percent or fractions
        text = f"{fraction * 100:.4g}" if abs(fraction) < 1e306 else (
            re.sub(r"\.?0+e", "e", f"{Decimal(fraction) * 100:.4g}"))  # 1e+310%, not inf%
        return f"{text}%"
    text = f"{fraction * 100:.4f}".rstrip("0").rstrip(".")
    return f"{'0' if text in ('', '-0') else text}%"


def _rows(n: int, kind: str) -> str:
    return f"{n} {kind} row{'s' if n != 1 else ''}"


def _more(n: int) -> str:
    return f" and {n - _REPORT_DROPPED} more" if n > _REPORT_DROPPED else ""


# --------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class _Layout:
    """How one issuer's table is found and read.

    ``required`` are header cells (compared case-insensitively with spaces
    collapsed) that identify the header row; the other fields name the columns
    read from it. ``title_cell`` matches a header's first cell that is a title
    rather than a column name (Janus); that column then holds the security name.
    """

    name: str
    title: str
    needs: str
    required: frozenset[str]
    ticker: str
    weight: str
    percent: bool | None
    name_col: str | None = None
    market_value: str | None = None
    notional: str | None = None
    asset_class: str | None = None
    sector: str | None = None
    strike: str | None = None
    underlying: str | None = None
    title_cell: re.Pattern[str] | None = None
    meta: Callable[[list[list[str]]], tuple[str | None, dt.date | None]] | None = None


def _cells_by_label(rows: list[list[str]]) -> dict[str, str]:
    """Preamble rows ``label, value`` as a dict keyed by the label's key."""
    out: dict[str, str] = {}
    for row in rows:
        filled = [c for c in row if c]
        if len(filled) >= 2:
            out.setdefault(_key(filled[0]), filled[1])
    return out


def _ishares_meta(rows: list[list[str]]) -> tuple[str | None, dt.date | None]:
    fund = None
    for row in rows:
        filled = [c for c in row if c]
        if filled:
            if len(filled) == 1:
                fund = filled[0]
            break
    labels = _cells_by_label(rows)
    return fund, _date(labels.get("fund holdings as of"))


def _ssga_meta(rows: list[list[str]]) -> tuple[str | None, dt.date | None]:
    labels = _cells_by_label(rows)
    name, ticker = labels.get("fund name:"), labels.get("ticker symbol:")
    fund = f"{name} ({ticker})" if name and ticker else (name or ticker)
    held = labels.get("holdings:", "")
    return fund, _date(re.sub(r"(?i)^\s*as\s+of\s*", "", held))


_JANUS_TITLE = re.compile(r"(?i)^\s*full\s+portfolio\s+holdings\b")
_AS_OF_PAREN = re.compile(r"(?i)\(\s*as\s+of\s+([^)]*)\)")


def _janus_meta(rows: list[list[str]]) -> tuple[str | None, dt.date | None]:
    for row in rows:
        for cell in row:
            match = _AS_OF_PAREN.search(cell)
            if match:
                return None, _date(match[1])
    return None, None


_LAYOUTS: tuple[_Layout, ...] = (
    _Layout(
        name="ishares",
        title="iShares CSV",
        needs="header Ticker, Name, Sector, Asset Class, Market Value, Weight (%), ...",
        required=frozenset({"ticker", "name", "asset class", "weight (%)"}),
        ticker="ticker",
        weight="weight (%)",
        percent=True,
        name_col="name",
        market_value="market value",
        notional="notional value",
        asset_class="asset class",
        sector="sector",
        meta=_ishares_meta,
    ),
    _Layout(
        name="ssga",
        title="SSGA (SPDR) XLSX",
        needs="header Name, Ticker, Identifier, SEDOL, Weight, Sector, Shares Held, ...",
        required=frozenset({"name", "ticker", "identifier", "sedol", "weight"}),
        ticker="ticker",
        weight="weight",
        percent=True,
        name_col="name",
        sector="sector",
        meta=_ssga_meta,
    ),
    _Layout(
        name="janus",
        title="Janus Henderson",
        needs=(
            "header 'Full Portfolio Holdings (As of MM/DD/YYYY)', Ticker, Cusip, ..., "
            "Market Value, Weight %"
        ),
        required=frozenset({"ticker", "cusip", "weight %"}),
        ticker="ticker",
        weight="weight %",
        percent=True,
        name_col="name",
        market_value="market value",
        notional="notional value",
        strike="strike price",
        underlying="underlying security",
        title_cell=_JANUS_TITLE,
        meta=_janus_meta,
    ),
)
_PLAIN = _Layout(
    name="plain",
    title="plain two-column",
    needs="two columns ticker, weight (header 'ticker,weight %' for percent)",
    required=frozenset(),
    ticker="ticker",
    weight="weight",
    percent=None,
)
_LAYOUTS_BY_NAME = {layout.name: layout for layout in (*_LAYOUTS, _PLAIN)}
_EXPECTED = "; ".join(f"{layout.title} ({layout.needs})" for layout in (*_LAYOUTS, _PLAIN))

# --------------------------------------------------------------------------- cells

_BLANKS = " \t\r\n\u00a0\ufeff\u200b"
_MISSING = frozenset({"", "-", "--", "\u2013", "\u2014", "n/a", "na", "nan", "none", "null"})
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9 .\-/&+:^=*#]{0,29}$")
_NO_TICKER = frozenset({"", "-", "--", "\u2013", "\u2014", "N/A", "NA"})
# ISO codes of currencies an ETF holds as cash; a row with one of these as its
# ticker is cash unless its asset class says otherwise (SSGA/Janus have none)
_CURRENCIES = frozenset(
    "USD EUR GBP JPY CHF CAD AUD NZD HKD SGD SEK NOK DKK CNY CNH KRW TWD INR BRL MXN ZAR "
    "ILS PLN CZK HUF TRY IDR MYR THB PHP SAR AED CLP COP PEN KWD QAR".split()
)


# A total or subtotal row, by its ticker or name cell (the whole cell, any case).
_TOTAL_LABEL = re.compile(r"(?i)^(?:grand|sub)?[\s-]*totals?\s*:?$")
_SUM_LABEL = re.compile(r"(?i)^sum\s*:?$")


class _TooLarge(ValueError):
    """A number cell whose value is not finite (``1e400``)."""


def _text(cell: object) -> str:
    """A cell as stripped text ('' for None); integral floats without '.0'."""
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, dt.datetime):
        return cell.date().isoformat()
    if isinstance(cell, dt.date):
        return cell.isoformat()
    return " ".join(str(cell).replace("\u00a0", " ").strip(_BLANKS).split())


def _key(cell: object) -> str:
    """A header cell as compared: case-folded text with single spaces."""
    return _text(cell).casefold()


def _parse_number(cell: object) -> tuple[float | None, bool]:
    """A numeric cell as ``(value, written_as_percent)``; ``(None, False)`` if missing.

    Accepts numbers and strings such as ``"1,234.56"``, ``"$1,234"``,
    ``"(1,234)"`` (negative), ``"-$5"``, ``"12.5%"``; ``-``, ``n/a`` and blank
    are missing. Raises ValueError for anything else, and for numbers too large
    for a float such as ``"1e400"`` (the caller names the row).
    """
    if cell is None:
        return None, False
    if isinstance(cell, bool):
        raise ValueError(cell)
    if isinstance(cell, int | float | np.integer | np.floating):
        value = float(cell)
        if math.isnan(value):
            return None, False
        if not math.isfinite(value):
            raise _TooLarge(cell)
        return value, False
    text = _text(cell).replace(" ", "").replace("\u2212", "-")
    if text.casefold() in _MISSING:
        return None, False
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    percent = text.endswith("%")
    if percent:
        text = text[:-1]
    if text.startswith(("-$", "+$")):
        text = text[0] + text[2:]
    elif text.startswith("$"):
        text = text[1:]
    if "," in text:
        if not _GROUPED.match(text):
            raise ValueError(cell)  # "7,1" (a decimal comma) is not guessed at
        text = text.replace(",", "")
    if not _NUMBER.match(text) or (negative and text.startswith(("-", "+"))):
        raise ValueError(cell)
    value = float(text)
    if not math.isfinite(value):
        raise _TooLarge(cell)  # "1e400"
    return (-value if negative else value), percent


_DATE_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%d-%b-%Y", "%d-%B-%Y", "%m/%d/%Y", "%Y-%m-%d",
                 "%d %b %Y", "%d %B %Y")


def _date(text: str | None) -> dt.date | None:
    """A preamble date in any issuer's spelling; None for '-', blank or unreadable."""
    text = _text(text)
    if text.casefold() in _MISSING:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------- parsing


def _fail(source: str, problem: str, argument: str = "path") -> InputError:
    return InputError(f"{argument}: {source} {problem}", argument)


def _empty_template(source: str) -> InputError:
    return _fail(
        source,
        "has no holdings (an empty template, as issuers publish on non-trading days); "
        "download the file for a trading day",
    )


def _find_header(rows: list[list[str]]) -> tuple[_Layout, int, dict[str, int]] | None:
    """The first row that is an issuer header: its layout, index and column map."""
    for index, row in enumerate(rows):
        keys = [_key(c) for c in row]
        for layout in _LAYOUTS:
            if layout.title_cell is not None and keys and (
                not keys[0] or layout.title_cell.match(keys[0])
            ):
                keys[0] = "name"  # Janus: the title (or nothing) heads the name column
            if layout.required <= set(keys):
                columns: dict[str, int] = {}
                for col, key in enumerate(keys):
                    columns.setdefault(key, col)
                return layout, index, columns
    return None


def _is_blank(row: Sequence[str]) -> bool:
    return not any(row)


def _cell(row: Sequence[str], col: int | None) -> str:
    return row[col] if col is not None and col < len(row) else ""


def _classify(
    ticker: str, name: str, asset_class: str, sector: str, strike: str, underlying: str,
    market_value: float | None, notional: float | None,
) -> str | None:
    """Why a row is cash or a derivative (the reason), or None for a holding."""
    asset = asset_class.casefold()
    for word, reason in (("future", "futures"), ("swap", "swap"), ("option", "option"),
                         ("forward", "forward"), ("money market", "money market"),
                         ("cash", "cash"), ("derivative", "derivative"),
                         ("currency", "cash")):
        if word in asset:
            return reason
    if re.search(r"\bfx\b", asset):
        return "fx forward"
    if "cash" in sector.casefold() or "derivative" in sector.casefold():
        return "cash or derivative"
    if _text(strike).casefold() not in _MISSING:
        return "option"
    if _text(underlying).casefold() not in _MISSING:
        return "derivative"
    if market_value == 0 and notional:
        return "derivative (zero market value)"
    if ticker in _NO_TICKER:
        label = name.casefold()
        if "money market" in label or "money mkt" in label:
            return "money market"
        if any(w in label for w in ("cash", "dollar", "currency", "euro")):
            return "cash"
        return "no ticker"
    if normalise_ticker(ticker) in _CURRENCIES and not asset.startswith("equit"):
        return "cash"
    return None


def _is_total(ticker: str, name: str | None, weight: float | None, above: list[float],
              last: bool) -> bool:
    """Whether a row is a total or subtotal line rather than a holding.

    ``Total``, ``Grand Total``, ``Subtotal`` (any case, in the ticker or the
    name cell) always are, and so is ``Sum`` in the name cell. ``SUM`` in the
    ticker cell is also a ticker (Summit Materials): it is a total only on the
    table's last row, with no name, after at least two rows, and with a weight
    that is missing or adds up the weights ``above`` it (to 0.5%, for rounding).
    """
    if _TOTAL_LABEL.match(ticker) or (name is not None and _TOTAL_LABEL.match(name)):
        return True
    if name is not None and _SUM_LABEL.match(name):
        return True
    if _SUM_LABEL.match(ticker) and name is None and last and len(above) >= 2:
        running = math.fsum(above)
        return weight is None or abs(weight - running) <= 0.005 * abs(running)
    return False


def _said(percent_name: str, percent: bool) -> str:
    """How the caller stated the unit: ``percent=False`` in Python, ``weights "fraction"``."""
    if percent_name == "percent":
        return f"percent={percent}"
    return f'{percent_name} "{"percent" if percent else "fraction"}"'


def _resolve_percent(layout: _Layout, header_percent: bool | None,
                     percent: bool | None, source: str, percent_name: str) -> bool | None:
    """Whether unsigned weight cells are percent; None when nobody said (plain, no header).

    ``header_percent`` is what a plain header says: True for ``%``, False for a
    bare ``weight`` (fractions unless the caller says percent), None for no header.
    """
    if layout.percent is not None or header_percent:
        if percent is False:
            why = (f"{layout.title} weights are percent" if layout.percent
                   else "its weight header says percent ('%')")
            raise _fail(source, f"contradicts {_said(percent_name, False)}: {why}; "
                                f"omit {percent_name}", percent_name)
        return True
    if header_percent is False:
        return bool(percent)
    return percent


def _plain_start(rows: list[list[str]]) -> tuple[int, bool | None, bool] | None:
    """A plain table: (first data index, header says percent, has header), or None."""
    first = next((i for i, row in enumerate(rows) if not _is_blank(row)), None)
    if first is None:
        return None
    row = rows[first]
    if any(row[2:]) or not row[0]:
        return None
    try:
        value, _ = _parse_number(_cell(row, 1))
    except ValueError:
        value = None
    if value is not None:
        return first, None, False
    second = _key(_cell(row, 1))
    if "%" in second or "percent" in second or "pct" in second:
        return first + 1, True, True
    if "weight" in second:
        return first + 1, False, True
    return None


def parse_etf_table(
    rows: list[list[object]], source: str = "file", percent: bool | None = None, *,
    percent_name: str = "percent",
) -> EtfHoldings:
    """Parse the raw cells of an ETF holdings file (any of the four layouts).

    Parameters
    ----------
    rows : list of list of object
        Cell values (strings, numbers, dates, None) row by row, as read from a
        CSV or XLSX file.
    source : str, default "file"
        The file's name, used in error messages.
    percent : bool, optional
        Whether unsigned weights are percent (``7.5`` means 7.5%). Needed only
        for a plain two-column file with no header row; a plain header with
        ``%`` means percent and one reading ``weight`` means fractions. The
        issuer layouts are percent by layout; stating the opposite is an error.
    percent_name : str, default "percent"
        The name under which the caller's user gave ``percent``, for messages:
        ``"percent"`` speaks Python (``percent=False``); any other name is an
        option taking ``"percent"`` or ``"fraction"`` (``weights "fraction"``).

    Returns
    -------
    EtfHoldings
        Normalised tickers, weights renormalised to sum to one, dropped cash and
        derivative rows, and the original total.

    Raises
    ------
    InputError
        An unknown layout, an empty (non-trading-day) template, a bad number or
        ticker, a weight outside :data:`WEIGHT_RANGE` (naming the row), kept
        weights summing outside :data:`TOTAL_BAND`, a contradictory (argument
        ``percent_name``) or missing ``percent``.

    """
    table = [[_text(c) for c in row] for row in rows]
    found = _find_header(table)
    header_percent: bool | None = None
    fund: str | None = None
    as_of: dt.date | None = None
    if found is not None:
        layout, header_index, columns = found
        start = header_index + 1
        if layout.meta is not None:
            fund, as_of = layout.meta(table[:start])
    else:
        plain = _plain_start(table)
        if plain is None:
            if all(_is_blank(row) for row in table):
                raise _fail(source, "is empty; expected an ETF holdings file")
            raise _fail(source, f"is not a known holdings layout; expected one of: {_EXPECTED}")
        layout = _PLAIN
        start, header_percent, has_header = plain
        columns = {"ticker": 0, "weight": 1}
        if not has_header and percent is None:
            percent_cells = True
            for row in table[start:]:
                if _is_blank(row):
                    break
                percent_cells = percent_cells and _cell(row, 1).endswith("%")
            if not percent_cells:
                raise _fail(
                    source,
                    "has no header row, so its weights could be fractions or percent; add a "
                    "header 'ticker,weight %' (percent) or 'ticker,weight' (fractions), or "
                    f"pass {_said(percent_name, True)} or {_said(percent_name, False)}",
                )
    unsigned_percent = _resolve_percent(layout, header_percent, percent, source, percent_name)

    def col(name: str | None) -> int | None:
        return columns.get(name) if name is not None else None

    c_ticker, c_weight, c_name = col(layout.ticker), col(layout.weight), col(layout.name_col)
    c_mv, c_notional = col(layout.market_value), col(layout.notional)
    c_asset, c_sector = col(layout.asset_class), col(layout.sector)
    c_strike, c_underlying = col(layout.strike), col(layout.underlying)
    wide = layout is not _PLAIN

    def number(row: list[str], column: int | None, what: str, line: int) -> float | None:
        try:
            value, signed = _parse_number(_cell(row, column))
        except _TooLarge:
            raise _fail(source, f"row {line}: {what} {_cell(row, column)!r} is too large to be "
                                "a number") from None
        except ValueError:
            raise _fail(source, f"row {line}: {what} {_cell(row, column)!r} is not a number") \
                from None
        if value is None or what != "weight":
            return value
        if signed or unsigned_percent:
            return value / 100.0
        return value

    tickers: list[str] = []
    names: list[str | None] = []
    weights: list[float] = []
    dropped: list[DroppedRow] = []
    seen: dict[str, int] = {}
    merged: list[str] = []
    end = len(table)
    n_rows = 0
    above: list[float] = []  # weights of the rows so far (a "Sum" row adds them up)
    for index in range(start, len(table)):
        row, line = table[index], index + 1
        filled = sum(1 for c in row if c)
        if filled == 0 or (wide and filled == 1):
            end = index  # a blank row or a one-cell disclaimer ends the table
            break
        n_rows += 1
        raw_ticker = _cell(row, c_ticker).upper()
        name = _cell(row, c_name) or None
        weight = number(row, c_weight, "weight", line)
        following = table[index + 1] if index + 1 < len(table) else []
        last = sum(1 for c in following if c) <= (1 if wide else 0)
        if _is_total(_cell(row, c_ticker), name, weight, above, last):
            label = name if name and (_TOTAL_LABEL.match(name) or _SUM_LABEL.match(name)) \
                else _cell(row, c_ticker)
            dropped.append(DroppedRow(None, label, weight, _TOTAL_REASON, line))
            continue
        if weight is not None and not WEIGHT_RANGE[0] <= weight <= WEIGHT_RANGE[1]:
            raise _fail(source, f"row {line}: weight {_cell(row, c_weight)!r} is "
                                f"{_pct(weight)}, outside {_pct(WEIGHT_RANGE[0])} to "
                                f"{_pct(WEIGHT_RANGE[1])}")
        above.append(weight or 0.0)
        reason = _classify(
            raw_ticker, name or "", _cell(row, c_asset), _cell(row, c_sector),
            _cell(row, c_strike), _cell(row, c_underlying),
            number(row, c_mv, "market value", line), number(row, c_notional, "notional", line),
        )
        if reason is not None:
            ticker_out = None if raw_ticker in _NO_TICKER else normalise_ticker(raw_ticker)
            dropped.append(DroppedRow(ticker_out, name, weight, reason, line))
            continue
        ticker = normalise_ticker(raw_ticker)
        if not _TICKER.match(ticker):
            raise _fail(source, f"row {line}: {_cell(row, c_ticker)!r} is not a ticker")
        if weight is None:
            raise _fail(source, f"row {line}: {ticker} has no weight")
        if ticker in seen:  # several lots of one security: one line, weights added
            weights[seen[ticker]] += weight
            if ticker not in merged:
                merged.append(ticker)
            continue
        seen[ticker] = len(tickers)
        tickers.append(ticker)
        names.append(name)
        weights.append(weight)
    _check_after_end(table, end, c_ticker, c_weight, wide, source)
    if n_rows == 0:
        raise _empty_template(source)
    if not tickers:
        n_total = sum(1 for d in dropped if d.reason == _TOTAL_REASON)
        kinds = [_rows(n, kind) for n, kind in ((len(dropped) - n_total, "cash/derivative"),
                                                (n_total, "total")) if n]
        verb = "is" if len(dropped) == 1 else "are"
        raise _fail(source, f"has no holdings once its {' and '.join(kinds)} {verb} dropped")
    total = math.fsum(weights)  # each in WEIGHT_RANGE: no overflow
    if not TOTAL_BAND[0] <= total <= TOTAL_BAND[1]:
        n_cash = sum(1 for d in dropped if d.reason != _TOTAL_REASON)
        verb = "is" if n_cash == 1 else "are"
        cash = f" once its {_rows(n_cash, 'cash/derivative')} {verb} dropped" if n_cash else ""
        holdings = f"{len(tickers)} holding{'s' if len(tickers) != 1 else ''}"
        raise _fail(source, f"weights of its {holdings} sum to "
                            f"{_pct(total)}{cash}; they must sum to {_pct(TOTAL_BAND[0])} to "
                            f"{_pct(TOTAL_BAND[1])} (rows repeated, or weights in another unit?)")
    vector = _sum_to_one(np.asarray(weights, dtype=float) / total)
    vector.flags.writeable = False  # EtfHoldings is frozen
    return EtfHoldings(
        tickers=tuple(tickers),
        weights=vector,
        layout=layout.name,
        fund=fund,
        as_of=as_of,
        names=tuple(names),
        dropped=tuple(dropped),
        original_total=total,
        merged=tuple(merged),
    )


def _sum_to_one(vector: np.ndarray) -> np.ndarray:
    """Nudge one of the largest weights by a few ulps so that ``vector.sum() == 1.0``.

    ``vector`` is already ``w / w.sum()``; the nudge is of the order of 1e-16.
    NumPy's pairwise summation can step over 1.0 for a given element, so the
    next largest is tried; if none lands exactly (rare), w / w.sum() is returned as is.
    """
    for index in np.argsort(-np.abs(vector), kind="stable")[:32]:
        if float(vector.sum()) == 1.0:
            break
        before = vector[index]
        vector[index] += 1.0 - float(vector.sum())
        for _ in range(64):
            residue = 1.0 - float(vector.sum())
            if residue == 0.0:
                return vector
            vector[index] = np.nextafter(vector[index], math.copysign(math.inf, residue))
        vector[index] = before
    return vector


def _check_after_end(table: list[list[str]], end: int, c_ticker: int | None,
                     c_weight: int | None, wide: bool, source: str) -> None:
    """Refuse holdings that continue after the blank row ending the table."""
    for index in range(end + 1, len(table)):
        row = table[index]
        if sum(1 for c in row if c) < (3 if wide else 2):
            continue
        ticker = _cell(row, c_ticker)
        if _TOTAL_LABEL.match(ticker) or _SUM_LABEL.match(ticker):
            continue  # a total row under the table, not a holding
        try:
            weight, _ = _parse_number(_cell(row, c_weight))
        except ValueError:
            continue
        if ticker and weight is not None and _TICKER.match(normalise_ticker(ticker)):
            raise _fail(
                source,
                f"row {index + 1} looks like a holding but comes after row {end + 1}, "
                "where the table ended (a blank or one-cell row); remove that row",
            )


# --------------------------------------------------------------------------- files

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read_etf_file(path: str | os.PathLike[str], percent: bool | None = None, *,
                  percent_name: str = "percent") -> EtfHoldings:
    """Read an ETF issuer holdings file (CSV, TXT or XLSX) into tickers and weights.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv``/``.txt`` file (UTF-8 with or without BOM, UTF-16, or
        Windows-1252; comma or tab separated) or an ``.xlsx``/``.xlsm`` workbook
        (sheet ``holdings`` if there is one, else the active sheet). The layout
        is detected from the content, not the name.
    percent : bool, optional
        See :func:`parse_etf_table`; needed only for a plain file with no header.
    percent_name : str, default "percent"
        How the user named ``percent`` (see :func:`parse_etf_table`).

    Returns
    -------
    EtfHoldings
        The parsed holdings.

    Raises
    ------
    InputError
        An Excel error value (``#N/A``) instead of a path, a missing or
        unreadable file, a folder or a device, an ``.xls`` workbook, or any
        problem :func:`parse_etf_table` reports.

    """
    file = _regular_file(path)
    source = file.name
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise _fail(source, f"cannot be read ({exc.strerror or exc})") from None
    suffix = file.suffix.casefold()
    if data.startswith(_OLE_MAGIC) or suffix == ".xls":
        raise _fail(source, "is an old .xls workbook; open it in Excel and save it as .xlsx")
    if data.startswith(_ZIP_MAGIC) or suffix in (".xlsx", ".xlsm"):
        rows = _xlsx_rows(data, source)
    else:
        rows = _csv_rows(data, source)
    return parse_etf_table(rows, source=source, percent=percent, percent_name=percent_name)


# Cell error values as a worksheet hands them on (xlfuncs.excel.cells.EXCEL_ERRORS;
# the data layer does not import the Excel layer).
_EXCEL_ERRORS = frozenset(
    {"#N/A", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!", "#SPILL!",
     "#CALC!", "#GETTING_DATA", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!"}
)


def _regular_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path once it is known to name a regular file (else InputError)."""
    text = os.fspath(path)
    if isinstance(text, str) and text.strip().upper() in _EXCEL_ERRORS:
        raise InputError(f"path has {text.strip().upper()}; a file path is needed", "path")
    file = Path(path)
    try:
        mode = file.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"path: no such file {text}", "path") from None
    except OSError as exc:
        raise InputError(f"path: {text} cannot be read ({exc.strerror or exc})", "path") \
            from None
    except ValueError:  # an embedded NUL character
        raise InputError(f"path: {text!r} is not a valid file path", "path") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"path: {text} is a folder, not a file", "path")
    if not stat.S_ISREG(mode):
        raise InputError(f"path: {text} is not a regular file", "path")
    return file


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _csv_rows(data: bytes, source: str) -> list[list[object]]:
    text = _decode(data)
    sample = [line for line in text.splitlines()[:60] if line.strip(_BLANKS)]
    counts = {d: sum(line.count(d) for line in sample) for d in (",", "\t", ";")}
    if counts[";"] > max(counts[","], counts["\t"]):
        raise _fail(source, "is separated by ';' (a non-English Excel export); save it as "
                            "comma-separated CSV or .xlsx")
    delimiter = "\t" if counts["\t"] > counts[","] else ","
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise _fail(source, f"is not readable CSV ({exc})") from None


def _xlsx_rows(data: bytes, source: str) -> list[list[object]]:
    import openpyxl  # a heavy import, only when a workbook is read

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # any failure to open means the same thing to the user
        raise _fail(source, f"is not a readable .xlsx workbook ({exc})") from None
    try:
        by_name = {name.casefold(): name for name in book.sheetnames}
        sheet = book[by_name["holdings"]] if "holdings" in by_name else book.active
        if sheet is None:
            raise _fail(source, "has no worksheet")
        if hasattr(sheet, "reset_dimensions"):
            sheet.reset_dimensions()  # issuers' files may state a wrong (too small) range
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
