"""Market data for factor-model backtests: Ken French files, CRSP-style panels, samples.

Three kinds of input become one :class:`~xlfuncs.core._market.MarketData`
(SPEC 4.3):

=============== ===============================================================
input           read by
=============== ===============================================================
factor returns  :func:`read_french`: a Ken French data-library CSV (preamble,
                a header row with a blank first cell, ``YYYYMM`` or
                ``YYYYMMDD`` dates, values in percent, then the annual block
                and the copyright footer, which are ignored) or a plain CSV
                whose first column holds the dates (values in fractions unless
                ``percent=True``)
single names    :func:`read_long`: a long CSV or Parquet file as exported from
                CRSP/WRDS: ``date``, ``permno`` or ``ticker``, ``ret``,
                ``mktcap`` or ``prc`` and ``shrout``, and ``siccd`` or a
                ``sector``/``gics``/``industry`` label
bundled samples :func:`french_factors`, :func:`french_industries12`
                (real Ken French monthly data, 1949-01 to 2017-03, as shipped
                by linearmodels) and :func:`synthetic_universe` (a seeded
                universe of up to thousands of stocks driven by those factors)
=============== ===============================================================

:func:`load_market` puts them together: ``"sample"``, ``"sample:3000"``,
``"french12"`` or a path, aligned on the dates they share and cut to
``[start, end]``. What was dropped, filled or assumed is listed in
``MarketData.notes``; anything that cannot be read raises
:class:`~xlfuncs.errors.InputError` with one line naming the input, the row
and the column.

Monthly dates are calendar month ends everywhere (CRSP's last trading day
2001-03-30 and Ken French's ``200103`` both become 2001-03-31). Returns are
simple returns in fractions.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

from xlfuncs.core._frequency import (
    compound_factors,
    compound_panels,
    frequency_name,
    frequency_ppy,
)
from xlfuncs.core._market import MarketData, date_slice, infer_periods_per_year, period_ends
from xlfuncs.data.samples import sample_path
from xlfuncs.errors import InputError

__all__ = [
    "CRSP_MISSING_RETURNS",
    "DEFAULT_SEED",
    "FACTOR_FILE",
    "INDUSTRY12_FILE",
    "SIC_DIVISIONS",
    "SYNTHETIC_INDUSTRIES",
    "LongPanels",
    "french_factors",
    "french_industries12",
    "load_market",
    "read_french",
    "read_long",
    "sic_division",
    "synthetic_truth",
    "synthetic_universe",
]

FACTOR_FILE = "ff_factors_monthly.csv"
INDUSTRY12_FILE = "ff_industries12_monthly.csv"
DEFAULT_SEED = 20170331
MAX_SAMPLE = 10_000

#: SIC divisions: (first code, last code, name); codes in no range are ``Nonclassifiable``.
SIC_DIVISIONS: tuple[tuple[int, int, str], ...] = (
    (100, 999, "Agriculture"),
    (1000, 1499, "Mining"),
    (1500, 1799, "Construction"),
    (2000, 3999, "Manufacturing"),
    (4000, 4999, "Transportation & utilities"),
    (5000, 5199, "Wholesale"),
    (5200, 5999, "Retail"),
    (6000, 6799, "Finance"),
    (7000, 8999, "Services"),
    (9100, 9729, "Public administration"),
    (9900, 9999, "Nonclassifiable"),
)
NONCLASSIFIABLE = "Nonclassifiable"

#: CRSP missing-return codes: the letters of WRDS/SAS exports and CRSP's numeric codes.
CRSP_MISSING_RETURNS: dict[str, str] = {
    ".": "no valid price",
    "A": "out of range",
    "B": "off-exchange",
    "C": "no valid previous price",
    "D": "no delisting information",
    "E": "no valid comparison for an excess return",
    "-44": "no valid comparison for an excess return",
    "-55": "no delisting information",
    "-66": "no valid previous price (more than 10 periods between prices)",
    "-77": "off-exchange",
    "-88": "out of range",
    "-99": "no valid price",
}
_NUMERIC_MISSING = {-44.0, -55.0, -66.0, -77.0, -88.0, -99.0}
_NA_TEXT = {"", "NA", "N/A", "NAN", "#N/A", "NULL", "NONE"}
_FRENCH_MISSING = (Decimal("-99.99"), Decimal("-999"))
_MARKET_ALIASES = {"mkt-rf", "mktrf", "mkt_rf", "mkt - rf"}


# --------------------------------------------------------------------------- helpers



def _missing(path: Path, name: str) -> InputError:
    """Why ``path`` cannot be read as a file: missing, a folder, or not a regular file."""
    if path.is_dir():
        return InputError(f"{name} is a folder, not a file: {path}", name)
    if path.exists():
        return InputError(f"{name} is not a regular file: {path}", name)
    return InputError(f"{name} file not found: {path}", name)


ZIP_MAGIC = b"PK\x03\x04"  # .xlsx, .xlsm (and any zip)
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls


def refuse_workbook(head: bytes, label: str, name: str) -> None:
    """Refuse an Excel workbook (by its first bytes) where a CSV file is expected."""
    if head.startswith(ZIP_MAGIC):
        raise InputError(f"{name}: {label} is an Excel workbook; export the sheet as CSV", name)
    if head.startswith(OLE_MAGIC):
        raise InputError(f"{name}: {label} is an old Excel .xls workbook; export the sheet as "
                         "CSV", name)


def _read_source_text(source: object, name: str) -> tuple[str, str]:
    """Text of a path, a resource handle, a file object, bytes or CSV text; and a label."""
    if isinstance(source, bytes):
        return source.decode("utf-8-sig", errors="replace"), "<text>"
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        return source, "<text>"
    if hasattr(source, "read") and not hasattr(source, "read_bytes"):
        raw = source.read()
        return (raw.decode("utf-8-sig", errors="replace") if isinstance(raw, bytes) else raw,
                getattr(source, "name", "<file>"))
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise _missing(path, name)
    elif not hasattr(source, "read_bytes"):
        raise InputError(f"{name} must be a file path or CSV text (got {type(source).__name__})",
                         name)
    raw = source.read_bytes() if not isinstance(source, str) else Path(source).read_bytes()
    label = str(getattr(source, "name", source))
    refuse_workbook(raw[:8], Path(label).name, name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text, label


def _cell_number(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


_YYYYMM = re.compile(r"\d{6}")
_YYYYMMDD = re.compile(r"\d{8}")


def _parse_date_texts(texts: pd.Series) -> pd.Series:
    """Dates of text cells: YYYYMM (month end), YYYYMMDD, ISO, MM/DD/YYYY, DDMONYYYY; NaT if not."""
    codes, uniques = pd.factorize(pd.Series(texts, dtype=object).fillna("").astype(str).str.strip())
    uniq = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    out = pd.Series(pd.NaT, index=uniq.index, dtype="datetime64[ns]")
    six = uniq.str.fullmatch(r"\d{6}")
    if six.any():
        out[six] = (pd.to_datetime(uniq[six], format="%Y%m", errors="coerce")
                    + pd.offsets.MonthEnd(0)).to_numpy()
    eight = uniq.str.fullmatch(r"\d{8}")
    if eight.any():
        out[eight] = pd.to_datetime(uniq[eight], format="%Y%m%d", errors="coerce").to_numpy()
    for fmt in ("ISO8601", "%m/%d/%Y", "%d%b%Y"):
        todo = out.isna() & ~six & ~eight & (uniq != "")
        if not todo.any():
            break
        out[todo] = pd.to_datetime(uniq[todo], format=fmt, errors="coerce").to_numpy()
    parsed = np.append(out.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns"))
    return pd.Series(parsed[codes], index=texts.index)


def _calendar_gap(dates: pd.DatetimeIndex, ppy: int) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First jump of more than one period in sorted month/quarter/year ends (None if none)."""
    step = {12: 1, 4: 3, 1: 12}.get(ppy)
    if step is None or len(dates) < 2:
        return None
    months = dates.year * 12 + dates.month
    jumps = np.flatnonzero(np.diff(np.asarray(months)) != step)
    if not jumps.size:
        return None
    i = int(jumps[0])
    return dates[i], dates[i + 1]


def _refuse_weekend_weeks(dates: pd.DatetimeIndex, ppy: int, name: str) -> None:
    """Refuse a weekly file that dates a week on a Saturday or Sunday.

    Weeks are labelled by their Friday (the week Saturday to Friday), so a week
    stamped on the weekend that ends it would meet the next week's factors.
    """
    if ppy != 52:
        return
    weekend = np.flatnonzero(np.asarray(dates.day_of_week) >= 5)
    if weekend.size:
        day = dates[int(weekend[0])]
        raise InputError(f"{name}: weekly dates must be the week's last trading day, Monday "
                         f"to Friday; {day:%Y-%m-%d} is a {day:%A}", name)


def _period_label(ts: pd.Timestamp, ppy: int) -> str:
    return f"{ts:%Y-%m}" if ppy in (12, 4) else f"{ts:%Y-%m-%d}"


# --------------------------------------------------------------------------- Ken French


def read_french(source: object, *, percent: bool | None = None,
                name: str = "factors") -> pd.DataFrame:
    """Read a Ken French data-library CSV (or a plain CSV of dated returns).

    A Ken French file is recognised by its header row, whose first cell is
    blank (``,Mkt-RF,SMB,HML,RF``), followed by rows dated ``YYYYMM`` (monthly)
    or ``YYYYMMDD`` (daily, weekly). The preamble before the header is skipped;
    the block ends at the first blank line or text row, so the annual block,
    any further blocks (equal-weighted returns, number of firms, ...) and the
    copyright footer are ignored. Otherwise the file is read as a plain CSV:
    the first row is the header, the first column holds the dates (``YYYYMM``,
    ``YYYYMMDD``, ``YYYY-MM-DD``, ``MM/DD/YYYY`` or ``30MAR2001``), and the
    table ends at the first blank line.

    Parameters
    ----------
    source : str, path, file object or bytes
        A path to the file, or the CSV text itself (a string with a line break).
    percent : bool, optional
        Whether the values are percent (2.96 for 2.96%). Default: True for the
        Ken French layout, False (fractions) for a plain CSV.
    name : str
        The input's name, used in messages.

    Returns
    -------
    DataFrame of shape (n_periods, n_columns)
        Returns in fractions (percent divided by 100, exactly: ``2.96`` becomes
        the float nearest to 0.0296), float64, indexed by a sorted, unique
        DatetimeIndex named ``date`` of period ends (monthly dates are calendar
        month ends). Column names as in the file, stripped. ``attrs`` holds
        ``layout`` (``"french"`` or ``"plain"``), ``percent``,
        ``periods_per_year`` (None with a single row) and ``source``.

    Raises
    ------
    InputError
        No header or no data row; a row with the wrong number of cells; a blank
        or non-numeric value; a Ken French missing-value code (-99.99 or -999);
        a date that cannot be read; dates repeated or out of order. The message
        names the line of the file and the column.

    """
    text, label = _read_source_text(source, name)
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    for cells in reader:
        rows.append((reader.line_num, [c.strip() for c in cells]))

    def blank(cells: list[str]) -> bool:
        return not any(cells)

    start = None
    for k, (_, cells) in enumerate(rows[:-1]):
        if len(cells) >= 2 and cells[0] == "" and any(cells[1:]):
            nxt = rows[k + 1][1]
            if nxt and (_YYYYMM.fullmatch(nxt[0]) or _YYYYMMDD.fullmatch(nxt[0])):
                start = k
                break
    layout = "french" if start is not None else "plain"
    if start is None:
        start = next((k for k, (_, cells) in enumerate(rows) if not blank(cells)), None)
        if start is None:
            raise InputError(f"{name} file is empty", name)
    header_line, header = rows[start]
    columns = header[1:]
    for j, col in enumerate(columns):
        if not col:
            raise InputError(f"{name} header (line {header_line}) has no name for column {j + 2}",
                             name)
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise InputError(f"{name} header (line {header_line}) has the column {dup!r} twice",
                         name)
    use_percent = (layout == "french") if percent is None else bool(percent)

    body: list[tuple[int, list[str]]] = []
    width = None
    for line, cells in rows[start + 1:]:
        if blank(cells):
            break
        first = cells[0]
        if layout == "french":
            if width is None:
                width = len(first)
            if not (first.isdigit() and len(first) == width):
                if first.isdigit() or not first or first[0] not in "+-.0123456789":
                    break  # annual years, another block's header or title, the footer
                raise InputError(f'{name} line {line}: "{first}" is not a date', name)
        body.append((line, cells))
    if not body:
        raise InputError(f"{name} has a header (line {header_line}) but no data rows", name)

    n_cols = len(columns)
    values = np.empty((len(body), n_cols), dtype=float)
    firsts = pd.Series([cells[0] for _, cells in body], dtype=object)
    parsed = _parse_date_texts(firsts)
    if layout == "french":  # only YYYYMM / YYYYMMDD
        parsed[~firsts.str.fullmatch(r"\d{6}|\d{8}")] = pd.NaT
    if parsed.isna().any():
        i = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f'{name} line {body[i][0]}: "{firsts[i]}" is not a date', name)
    for i, (line, cells) in enumerate(body):
        cells = cells + [""] * (n_cols + 1 - len(cells)) if len(cells) < n_cols + 1 else cells
        if len(cells) > n_cols + 1 and any(cells[n_cols + 1:]):
            raise InputError(f"{name} line {line} has {len(cells)} cells, the header has "
                             f"{n_cols + 1}", name)
        for j in range(n_cols):
            cell = cells[j + 1]
            number = _cell_number(cell)
            if number is None:
                what = "is blank" if not cell else f'"{cell}" is not a number'
                raise InputError(f"{name} line {line} ({cells[0]}), column {columns[j]}: {what}",
                                 name)
            if number in _FRENCH_MISSING:
                raise InputError(f"{name} line {line} ({cells[0]}), column {columns[j]}: {cell} "
                                 "is Ken French's missing-value code", name)
            values[i, j] = float(number.scaleb(-2)) if use_percent else float(number)

    if percent is None and not use_percent:
        # A plain file of factor returns in percent (a Ken French file without its
        # preamble) would read as returns of hundreds of percent a period: refuse
        # rather than guess. No factor loses or gains 100% in a period.
        big = np.abs(values) >= 1.0
        if big.any():
            i, j = (int(k[0]) for k in np.nonzero(big))
            raise InputError(f"{name} {Path(label).name} line {body[i][0]} ({body[i][1][0]}), "
                             f"column {columns[j]}: "
                             f"{values[i, j]:g} would be a return of {values[i, j]:.0%}: a "
                             "plain file must hold fractions; divide by 100, or use the Ken "
                             "French file as downloaded (read as percent)", name)
    index = pd.DatetimeIndex(parsed).as_unit("ns")
    ppy = infer_periods_per_year(index, name) if len(index) >= 2 else None
    if ppy is not None and layout == "plain":
        _refuse_weekend_weeks(index, ppy, name)
        index = period_ends(index, ppy)
    order = np.diff(index.asi8)
    if (order <= 0).any():
        i = int(np.flatnonzero(order <= 0)[0]) + 1
        what = "repeats" if order[i - 1] == 0 else "comes before"
        prev = body[i - 1][1][0]
        raise InputError(f"{name} line {body[i][0]}: date {body[i][1][0]} {what} {prev} "
                         "(dates must be unique and increasing)", name)
    frame = pd.DataFrame(values, index=index.rename("date"), columns=columns)
    frame.attrs.update(layout=layout, percent=use_percent, periods_per_year=ppy, source=label)
    return frame


@functools.cache
def _bundled(name: str) -> pd.DataFrame:
    return read_french(sample_path(name), name=name)


def french_factors() -> pd.DataFrame:
    """The bundled Ken French monthly factors, 1949-01 to 2017-03.

    Returns
    -------
    DataFrame of shape (819, 5)
        Columns ``Mkt-RF``, ``SMB``, ``HML``, ``Mom`` (excess returns) and
        ``RF`` (the one-month T-bill return), fractions, indexed by calendar
        month ends 1949-01-31 .. 2017-03-31. Source: Ken French data library,
        as shipped by linearmodels (see ``samples/README.md``).

    """
    return _bundled(FACTOR_FILE).copy()


def french_industries12() -> pd.DataFrame:
    """The bundled Ken French 12 industry portfolio returns, 1949-01 to 2017-03.

    Returns
    -------
    DataFrame of shape (819, 12)
        Total (not excess) monthly returns in fractions of ``NoDur``, ``Durbl``,
        ``Manuf``, ``Enrgy``, ``Chems``, ``BusEq``, ``Telcm``, ``Utils``,
        ``Shops``, ``Hlth``, ``Money``, ``Other``, indexed like
        :func:`french_factors`.

    """
    return _bundled(INDUSTRY12_FILE).copy()


def _factor_frame(factors: object, name: str = "factors") -> pd.DataFrame:
    """Factors and RF in one frame from None (bundled), a frame, a path or a list of them."""
    if factors is None:
        return french_factors()
    if isinstance(factors, pd.DataFrame):
        frame = factors.copy()
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise InputError(f"{name} must be indexed by dates", name)
        frame.attrs.setdefault("source", "a DataFrame")
        return frame
    if isinstance(factors, Sequence) and not isinstance(factors, str | bytes):
        frames = [_factor_frame(f, name) for f in factors]
        if not frames:
            raise InputError(f"{name} is an empty list", name)
        # a daily and a monthly file would join on the month-ends that are trading days
        freq = [(f.attrs.get("periods_per_year") or
                 (infer_periods_per_year(f.index, name) if len(f) >= 2 else None), f)
                for f in frames]
        known = [(p, f) for p, f in freq if p]
        if len({p for p, _ in known}) > 1:
            (p0, f0), (p1, f1) = known[0], next((p, f) for p, f in known if p != known[0][0])
            raise InputError(f"{name} files have different frequencies: "
                             f"{Path(str(f0.attrs.get('source', '?'))).name} has {p0} periods a "
                             f"year, {Path(str(f1.attrs.get('source', '?'))).name} {p1}; use files "
                             "of one frequency", name)
        out = frames[0]
        for extra in frames[1:]:
            clash = [c for c in extra.columns if c in out.columns]
            both = out.index.intersection(extra.index)
            for col in clash:
                if not np.allclose(out.loc[both, col], extra.loc[both, col], atol=1e-10):
                    raise InputError(f"{name} files disagree on the column {col}", name)
            out = out.join(extra.drop(columns=clash), how="inner")
        out.attrs["source"] = " + ".join(str(f.attrs.get("source", "?")) for f in frames)
        return out
    return read_french(factors, name=name)


def _split_rf(frame: pd.DataFrame, name: str = "factors") -> tuple[pd.DataFrame, pd.Series]:
    rename = {c: "Mkt-RF" for c in frame.columns if str(c).strip().lower() in _MARKET_ALIASES}
    frame = frame.rename(columns=rename)
    rf_cols = [c for c in frame.columns if str(c).strip().lower() == "rf"]
    if not rf_cols:
        raise InputError(f"{name} have no RF column (the risk-free rate); found: "
                         + ", ".join(map(str, frame.columns)), name)
    rf = frame[rf_cols[0]].astype(float).rename("RF")
    facs = frame.drop(columns=rf_cols).astype(float)
    if facs.shape[1] == 0:
        raise InputError(f"{name} have only the RF column; no factor returns", name)
    return facs, rf


# --------------------------------------------------------------------------- SIC


def sic_division(codes: object) -> np.ndarray:
    """SIC division names of SIC codes.

    Parameters
    ----------
    codes : int or array-like of numbers, shape (n,)
        Four-digit SIC codes (CRSP ``siccd``). Codes that fall in no division
        (0, missing, 1800-1999, 9000-9099, 9730-9899) are ``Nonclassifiable``.

    Returns
    -------
    ndarray of str, shape (n,)
        Names from :data:`SIC_DIVISIONS`: ``Agriculture`` (0100-0999),
        ``Mining`` (1000-1499), ``Construction`` (1500-1799),
        ``Manufacturing`` (2000-3999), ``Transportation & utilities``
        (4000-4999), ``Wholesale`` (5000-5199), ``Retail`` (5200-5999),
        ``Finance`` (6000-6799), ``Services`` (7000-8999), ``Public
        administration`` (9100-9729), ``Nonclassifiable`` (9900-9999).

    """
    c = np.atleast_1d(np.asarray(codes, dtype=float))
    lows = np.array([d[0] for d in SIC_DIVISIONS], dtype=float)
    highs = np.array([d[1] for d in SIC_DIVISIONS], dtype=float)
    names = np.array([d[2] for d in SIC_DIVISIONS] + [NONCLASSIFIABLE], dtype=object)
    k = np.searchsorted(lows, np.nan_to_num(c, nan=-1.0), side="right") - 1
    ok = (k >= 0) & (c <= highs[np.clip(k, 0, None)]) & np.isfinite(c)
    return names[np.where(ok, k, len(SIC_DIVISIONS))]


# --------------------------------------------------------------------------- long panels


@dataclass(frozen=True)
class LongPanels:
    """Wide panels read from a long CRSP-style file (see :func:`read_long`).

    Attributes
    ----------
    returns : DataFrame of shape (n_periods, n_assets)
        Simple returns in fractions earned during each period; NaN when the
        asset has no row (not listed) or a missing-return code.
    caps : DataFrame of shape (n_periods, n_assets) or None
        Market cap at the period end, in the file's units (CRSP ``|prc| x
        shrout``: thousands of dollars); None when the file has no cap columns.
    industries : Series of shape (n_assets,)
        Asset id -> industry label (the most recent one in the window).
    periods_per_year : int
        Inferred from the date spacing (12 monthly, 52 weekly, 252 daily), or
        the frequency the file was compounded to.
    source : str
        The file read.
    notes : tuple of str
        What was treated as missing, filled or assumed, one line each.
    industry_history : DataFrame of shape (n_periods, n_assets) or None
        Each date's label, when labels change (see :class:`MarketData`).
    prices, dollar_volume : DataFrame of shape (n_periods, n_assets) or None
        ``|prc|`` at the period end and the period's ``|prc| x vol`` (summed
        over its days), when the file has ``prc`` (and ``vol``).

    """

    returns: pd.DataFrame
    caps: pd.DataFrame | None
    industries: pd.Series
    periods_per_year: int
    source: str = ""
    notes: tuple[str, ...] = ()
    industry_history: pd.DataFrame | None = None
    prices: pd.DataFrame | None = None
    dollar_volume: pd.DataFrame | None = None


_COLUMN_NAMES = {
    "date": ("date",),
    "id": ("permno", "ticker"),
    "ret": ("ret",),
    "dlret": ("dlret",),
    "mktcap": ("mktcap",),
    "prc": ("prc",),
    "shrout": ("shrout",),
    "label": ("sector", "gics", "industry"),
    "sic": ("siccd", "sic", "hsiccd"),
    "vol": ("vol",),
}


class _Table:
    """The columns of a long table, read lazily (only the needed ones, ids and dates as text)."""

    def __init__(self, source: object, name: str):
        self.name = name
        self.frame: pd.DataFrame | None = None
        self.path: Path | None = None
        self.encoding = "utf-8-sig"
        if isinstance(source, pd.DataFrame):
            self.frame, self.label = source, "a DataFrame"
            self.columns = list(source.columns)
            return
        if not isinstance(source, str | Path):
            raise InputError(f"{name} must be a path to a CSV or Parquet file (got "
                             f"{type(source).__name__})", name)
        path = Path(source)
        if not path.is_file():
            raise _missing(path, name)
        self.path, self.label = path, str(path)
        if self.parquet:
            try:
                import pyarrow  # noqa: F401
            except ImportError as exc:
                raise InputError(f"{name}: reading Parquet needs pyarrow (pip install pyarrow), "
                                 "or save the data as CSV", name) from exc
            try:
                import pyarrow.parquet as pq

                self.columns = list(pq.read_schema(path).names)
            except (OSError, ValueError) as exc:
                raise self._unreadable("Parquet", exc) from exc
            return
        try:
            with path.open("rb") as fh:
                refuse_workbook(fh.read(8), path.name, name)
        except OSError as exc:
            raise self._unreadable("CSV", exc) from exc
        try:
            try:
                head = pd.read_csv(path, nrows=0, encoding=self.encoding)
            except UnicodeDecodeError:
                self.encoding = "latin-1"
                head = pd.read_csv(path, nrows=0, encoding=self.encoding)
        except pd.errors.EmptyDataError as exc:
            raise InputError(f"{name} file is empty: {path.name}", name) from exc
        except (pd.errors.ParserError, ValueError) as exc:
            raise self._unreadable("CSV", exc) from exc
        self.columns = list(head.columns)

    @property
    def parquet(self) -> bool:
        return self.path is not None and self.path.suffix.lower() in (".parquet", ".pq")

    def _unreadable(self, kind: str, exc: Exception) -> InputError:
        name = self.name
        where = self.path.name if self.path is not None else "the data"
        return InputError(f"{name}: cannot read {where} as {kind}: {exc}".splitlines()[0], name)

    def read(self, usecols: list[str], text_cols: list[str]) -> pd.DataFrame:
        """The columns ``usecols``; ``text_cols`` of a CSV are kept as text."""
        if self.frame is not None:
            return self.frame[usecols].reset_index(drop=True)
        assert self.path is not None
        try:
            if self.parquet:
                return pd.read_parquet(self.path, columns=usecols)
            return pd.read_csv(self.path, usecols=usecols,
                               dtype=dict.fromkeys(text_cols, "category"),
                               skipinitialspace=True, encoding=self.encoding, low_memory=False)
        except (pd.errors.ParserError, OSError, ValueError) as exc:
            raise self._unreadable("Parquet" if self.parquet else "CSV", exc) from exc


def _is_number(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _column_text(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per-row codes into the distinct stripped texts of a column; -1 for a blank cell.

    Numbers become their shortest text (integers without ``.0``): a PERMNO read
    as 10001.0 from Parquet is ``"10001"``.
    """
    if _is_number(col.dtype):
        codes, uniq = pd.factorize(np.asarray(col, dtype=float))
        texts = [str(int(x)) if float(x).is_integer() else format(x, ".15g") for x in uniq]
    else:
        codes, uniq = pd.factorize(col.astype(object))
        texts = [str(x).strip() for x in uniq]
    stripped = pd.Series(texts, dtype=object)
    blank = stripped.str.upper().isin(_NA_TEXT).to_numpy()
    codes2, uniq2 = pd.factorize(stripped.where(~blank, None))
    codes = np.append(codes2, -1)[codes]
    return codes, np.asarray(uniq2, dtype=object)


def _refuse_negative(values: np.ndarray, rows: np.ndarray, name: str, column: str,
                     what: str) -> None:
    """One line naming the first row and column whose ``what`` is below 0."""
    neg = np.flatnonzero(values < 0)
    if neg.size:
        i = int(neg[0])
        raise InputError(f"{name} row {rows[i]}, column {column}: {what} {values[i]:.6g} is "
                         "negative", name)


def _numbers(col: pd.Series, rows: np.ndarray, name: str, label: str,
             allowed: dict[str, str] | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """Floats of a column: blanks and allowed codes -> NaN (counted), other text -> error."""
    counts: dict[str, int] = {}
    if _is_number(col.dtype):
        values = np.array(col, dtype=float)
        if np.isinf(values).any():
            i = int(np.flatnonzero(np.isinf(values))[0])
            raise InputError(f'{name} row {rows[i]}, column {label}: "{values[i]}" is not a '
                             "number", name)
        n_blank = int(np.isnan(values).sum())
        if n_blank:
            counts["blank"] = n_blank
        if allowed:
            for code in sorted(_NUMERIC_MISSING):
                hit = values == code
                if hit.any():
                    counts[str(int(code))] = int(hit.sum())
                    values[hit] = np.nan
        return values, counts
    codes, uniq = pd.factorize(col)
    uval = np.array(pd.to_numeric(pd.Series(uniq, dtype=object), errors="coerce"), dtype=float)
    blank = np.zeros(len(uval), dtype=bool)
    coded = np.isin(uval, list(_NUMERIC_MISSING)) if allowed else np.zeros(len(uval), bool)
    labels = {int(j): str(int(uval[j])) for j in np.flatnonzero(coded)}
    for j in np.flatnonzero(np.isnan(uval) | np.isinf(uval)):  # text: few distinct values
        text = str(uniq[j]).strip()
        if text.upper() in _NA_TEXT:
            blank[j] = True
        elif allowed and text.upper() in allowed:
            coded[j] = True
            labels[int(j)] = text.upper()
        else:
            i = int(np.flatnonzero(codes == j)[0])
            raise InputError(f'{name} row {rows[i]}, column {label}: "{text}" is not a number',
                             name)
    per = np.bincount(codes[codes >= 0], minlength=len(uval))
    n_blank = int((codes == -1).sum() + per[blank].sum())
    if n_blank:
        counts["blank"] = n_blank
    for j in sorted(labels, key=lambda k: labels[k]):
        if per[j]:
            counts[labels[j]] = counts.get(labels[j], 0) + int(per[j])
    uval[blank | coded] = np.nan
    return np.append(uval, np.nan)[codes], counts


def _natural_order(ids: np.ndarray) -> np.ndarray:
    """Positions that sort the ids: numerically when all are digits, else as text."""
    if all(x.isdigit() for x in ids):
        return np.argsort(np.array([int(x) for x in ids]), kind="stable")
    return np.argsort(ids.astype(str), kind="stable")


def read_long(source: object, *, id_col: str | None = None, industry_col: str | None = None,
              start: object = None, end: object = None, allow_gaps: bool = False,
              name: str = "data", frequency: int | None = None) -> LongPanels:
    """Read long single-name data (one row per date and asset) into wide panels.

    Columns are matched by name, ignoring case and surrounding spaces:

    ========== ==============================================================
    column     meaning
    ========== ==============================================================
    date       the period end (CRSP's last trading day is fine: monthly dates
               become calendar month ends); ``YYYY-MM-DD``, ``YYYYMMDD``,
               ``YYYYMM``, ``MM/DD/YYYY`` or ``30MAR2001``
    permno     the asset id (or ``ticker``; ``permno`` wins when both exist;
               ``id_col`` picks another)
    ret        simple return in fractions earned during the period. CRSP's
               missing-return codes (letters ``A``-``E`` and ``.`` of WRDS
               exports, numbers -44 .. -99) and blanks are read as missing
               and counted in the notes; other text is an error
    mktcap     market cap at the period end; or ``prc`` and ``shrout``, giving
               ``|prc| x shrout`` (CRSP marks a bid-ask average with a
               negative price; a zero or blank price gives a missing cap)
    siccd      SIC code, mapped to its division (:func:`sic_division`); or a
               ``sector``, ``gics`` or ``industry`` label (used as is, and
               preferred to ``siccd``); ``industry_col`` picks another
    vol        optional: shares traded in the period; with ``prc`` it gives
               the dollar volume ``|prc| x vol`` of the liquidity filters
               (``prc`` alone gives the prices of ``min_price``)
    ========== ==============================================================

    ``date``, the id and ``ret`` are required. Without cap columns the caps
    are None (a benchmark is then needed); without an industry column every
    asset is ``Nonclassifiable``. Each asset gets its most recent industry in
    the window.

    Parameters
    ----------
    source : str, path or DataFrame
        A ``.csv`` (or ``.csv.gz``) file, a ``.parquet`` file (needs pyarrow),
        or a long DataFrame with those columns.
    id_col, industry_col : str, optional
        Column names overriding the defaults above.
    start, end : date-like or str, optional
        Keep only the rows dated within [start, end] (inclusive; a partial
        string such as ``"2010-06"`` covers its period). Rows outside are
        not checked beyond their date.
    allow_gaps : bool
        When False (default) an asset with no row for a period inside its
        listed life, or a period with no rows at all, is an error; when True
        those cells are NaN (counted in the notes).
    name : str
        The input's name, used in messages.
    frequency : int, optional
        Periods per year to compound to when the file is more frequent (12 or
        52; :func:`~xlfuncs.core._frequency.compound_panels`): daily returns
        are compounded, caps, prices and industries taken at each period's
        last trading day, dollar volumes summed. A stock's missing days are
        then not an error but counted in the notes.

    Returns
    -------
    LongPanels

    Raises
    ------
    InputError
        Missing columns (the message lists what is needed and what was found);
        a date, id, return or cap that cannot be read; a return <= -1; a
        negative cap or share count; two rows for the same asset and period;
        a gap. Rows are numbered as a spreadsheet shows the file (header = 1).

    """
    tab = _Table(source, name)
    lower: dict[str, str] = {}
    for c in tab.columns:
        lower.setdefault(str(c).strip().lower(), c)
    found = ", ".join(map(str, tab.columns))

    def find(key: str) -> str | None:
        return next((lower[a] for a in _COLUMN_NAMES[key] if a in lower), None)

    def given(col: str, what: str) -> str:
        if col.strip().lower() not in lower:
            raise InputError(f"{name} has no column {col!r} ({what}); found: {found}", name)
        return lower[col.strip().lower()]

    date_c, ret_c = find("date"), find("ret")
    id_c = given(id_col, "id_col") if id_col else find("id")
    missing = [k for k, c in (("date", date_c), ("permno or ticker", id_c), ("ret", ret_c))
               if c is None]
    if missing:
        raise InputError(f"{name} is missing the column(s) {', '.join(missing)}; needs date, "
                         "permno or ticker, ret (and mktcap or prc+shrout, siccd or sector); "
                         f"found: {found}", name)
    assert date_c is not None and id_c is not None and ret_c is not None
    mktcap_c, prc_c, shrout_c = find("mktcap"), find("prc"), find("shrout")
    if mktcap_c is None and (prc_c is None) != (shrout_c is None):
        have, lack = ("prc", "shrout") if prc_c is not None else ("shrout", "prc")
        raise InputError(f"{name} has {have} but no {lack}: market cap needs both "
                         "(|prc| x shrout) or a mktcap column", name)
    vol_c = find("vol")  # shares traded: |prc| x vol is the dollar volume of the filters
    price_c = prc_c  # prices for the liquidity filters, also beside a mktcap column
    if mktcap_c is not None:
        prc_c = shrout_c = None
    if industry_col:
        ind_c = given(industry_col, "industry_col")
        ind_is_sic = industry_col.strip().lower() in _COLUMN_NAMES["sic"]
    else:
        ind_c, ind_is_sic = find("label"), False
        if ind_c is None:
            ind_c = find("sic")
            ind_is_sic = ind_c is not None
    dlret_c = find("dlret")  # CRSP's delisting return, in the month a stock leaves
    usecols = [c for c in (date_c, id_c, ret_c, dlret_c, mktcap_c, price_c, shrout_c, ind_c,
                           vol_c) if c is not None]
    text_cols = [date_c, id_c] + ([ind_c] if ind_c is not None and not ind_is_sic else [])
    table = tab.read(list(dict.fromkeys(usecols)), text_cols)
    notes: list[str] = []
    rows_all = np.arange(len(table)) + 2
    if len(table) == 0:
        raise InputError(f"{name} has a header but no data rows", name)

    # dates -> period ends, then the window
    dcol = table[date_c]
    if pd.api.types.is_datetime64_any_dtype(dcol.dtype):
        when = pd.DatetimeIndex(dcol).tz_localize(None).as_unit("ns")
        bad = np.asarray(when.isna())
        raw = np.array([""] * len(when), dtype=object)
    else:
        dcodes, dtexts = _column_text(dcol)
        parsed = _parse_date_texts(pd.Series(dtexts, dtype=object)).to_numpy()
        when = pd.DatetimeIndex(np.append(parsed, np.datetime64("NaT", "ns"))[dcodes])
        bad = np.asarray(when.isna())
        raw = np.append(dtexts, "")[dcodes]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "is blank" if not raw[i] else f'"{raw[i]}" is not a date'
        raise InputError(f"{name} row {rows_all[i]}, column {date_c}: {what}", name)
    ppy = infer_periods_per_year(when.unique(), f"{name} dates")
    _refuse_weekend_weeks(when, ppy, name)
    ends = period_ends(when, ppy)
    if start is not None or end is not None:
        calendar = ends.unique().sort_values()
        kept = calendar[date_slice(calendar, start, end)]
        if len(kept) == 0:
            raise InputError(f"{name} has no rows between start={start} and end={end} (it covers "
                             f"{calendar[0]:%Y-%m-%d} to {calendar[-1]:%Y-%m-%d})", name)
        keep = np.asarray(ends.isin(kept))
        table = table.loc[keep].reset_index(drop=True)
        rows_all, ends = rows_all[keep], ends[keep]
    rows = rows_all

    id_codes, id_texts = _column_text(table[id_c])
    if (id_codes == -1).any():
        i = int(np.flatnonzero(id_codes == -1)[0])
        raise InputError(f"{name} row {rows[i]}, column {id_c}: the id is blank", name)
    order = _natural_order(id_texts)
    assets = id_texts[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    a = rank[id_codes]
    d_codes, _ = pd.factorize(ends)
    dup = pd.Series(d_codes.astype(np.int64) * len(assets) + a).duplicated(keep=False).to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        same = np.flatnonzero(dup & (d_codes == d_codes[first]) & (a == a[first]))
        raise InputError(f"{name} has {len(same)} rows for {id_c} {assets[a[first]]} in "
                         f"{_period_label(ends[first], ppy)} (rows "
                         f"{', '.join(str(rows[k]) for k in same[:3])})", name)

    ret, codes = _numbers(table[ret_c], rows, name, ret_c, CRSP_MISSING_RETURNS)
    low = ret <= -1
    if low.any():
        i = int(np.flatnonzero(low)[0])
        raise InputError(f"{name} row {rows[i]}, column {ret_c}: {ret[i]:.6g} is a loss of 100% "
                         "or more; returns must be fractions > -1", name)
    if dlret_c is not None:
        # The delisting month's return is (1 + ret)(1 + dlret) - 1, or dlret alone when
        # ret is missing (CRSP leaves it blank in the month a stock leaves).
        dl, _ = _numbers(table[dlret_c], rows, name, dlret_c, CRSP_MISSING_RETURNS)
        has = ~np.isnan(dl)
        low = has & (dl < -1)
        if low.any():
            i = int(np.flatnonzero(low)[0])
            raise InputError(f"{name} row {rows[i]}, column {dlret_c}: {dl[i]:.6g} is a loss of "
                             "more than 100%; returns must be fractions >= -1", name)
        if has.any():
            filled = has & np.isnan(ret)
            ret = np.where(has, np.where(np.isnan(ret), dl, (1 + ret) * (1 + dl) - 1), ret)
            ret = np.maximum(ret, -1 + 1e-12)  # a delisting for nothing: a loss of all but 1e-12
            notes.append(f"{int(has.sum())} delisting return(s) ({dlret_c}) compounded into "
                         f"{ret_c} ({int(filled.sum())} where {ret_c} was missing)")
    if codes:
        parts = ", ".join(f"{k}: {v}" for k, v in codes.items())
        notes.append(f"{sum(codes.values())} missing return(s) read as not available ({parts})")

    caps_v: np.ndarray | None = None
    prc: np.ndarray | None = None
    if mktcap_c is not None:
        caps_v, blanks = _numbers(table[mktcap_c], rows, name, mktcap_c)
        _refuse_negative(caps_v, rows, name, mktcap_c, "market cap")
        if blanks:
            notes.append(f"{blanks['blank']} blank market cap(s) read as not available")
    elif prc_c is not None and shrout_c is not None:
        prc, _ = _numbers(table[prc_c], rows, name, prc_c)
        shr, _ = _numbers(table[shrout_c], rows, name, shrout_c)
        _refuse_negative(shr, rows, name, shrout_c, "shares outstanding")
        n_neg = int((prc < 0).sum())
        if n_neg:
            notes.append(f"{n_neg} negative price(s) (CRSP bid-ask averages): |prc| used")
        caps_v = np.abs(prc) * shr
        caps_v[prc == 0] = np.nan
        n_missing = int(np.isnan(caps_v).sum())
        if n_missing:
            notes.append(f"{n_missing} market cap(s) not available (blank or zero prc/shrout)")
    else:
        notes.append(f"{name} has no market caps (no mktcap, prc or shrout column)")
    price_v = volume_v = None
    if price_c is not None:  # for the liquidity filters: |prc|, and |prc| x vol
        if prc is None:
            prc, _ = _numbers(table[price_c], rows, name, price_c)
        price_v = np.abs(prc)
        price_v[price_v == 0] = np.nan
        if vol_c is not None:
            vol, _ = _numbers(table[vol_c], rows, name, vol_c)
            _refuse_negative(vol, rows, name, vol_c, "volume")
            volume_v = price_v * vol

    # pivot to wide
    calendar = ends.unique().sort_values()
    gap = _calendar_gap(calendar, ppy)
    if gap is not None:
        if not allow_gaps:
            raise InputError(f"{name} has no rows between {_period_label(gap[0], ppy)} and "
                             f"{_period_label(gap[1], ppy)} (a gap in the dates; "
                             "xlfuncs backtest --allow-gaps reads it as missing)", name)
        full = period_ends(pd.date_range(calendar[0], calendar[-1],
                                         freq={12: "ME", 4: "QE", 1: "YE"}[ppy]), ppy)
        notes.append(f"{len(full) - len(calendar)} period(s) with no rows at all filled with "
                     "missing values")
        calendar = full
    t = calendar.get_indexer(ends)
    shape = (len(calendar), len(assets))
    present = np.zeros(shape, dtype=bool)
    present[t, a] = True
    ret_w = np.full(shape, np.nan)
    ret_w[t, a] = ret
    first = present.argmax(axis=0)
    last = shape[0] - 1 - present[::-1].argmax(axis=0)
    steps = np.arange(shape[0])[:, None]
    holes = (steps >= first) & (steps <= last) & ~present
    compounding = frequency is not None and frequency < ppy
    if holes.any() and not compounding:  # compounded: the periods' missing days are counted
        if not allow_gaps:
            j = int(np.flatnonzero(holes.any(axis=0))[0])
            i = int(np.flatnonzero(holes[:, j])[0])
            raise InputError(f"{name} has no row for {id_c} {assets[j]} in "
                             f"{_period_label(calendar[i], ppy)}, inside its listed life "
                             f"({_period_label(calendar[first[j]], ppy)} to "
                             f"{_period_label(calendar[last[j]], ppy)}); xlfuncs backtest "
                             "--allow-gaps reads it as missing", name)
        notes.append(f"{int(holes.sum())} missing row(s) inside listed lives read as not "
                     f"available ({int(holes.any(axis=0).sum())} asset(s))")
    columns = pd.Index(list(assets), dtype=object)
    returns = pd.DataFrame(ret_w, index=calendar.rename("date"), columns=columns)
    caps = None
    if caps_v is not None:
        caps_w = np.full(shape, np.nan)
        caps_w[t, a] = caps_v
        caps = pd.DataFrame(caps_w, index=returns.index, columns=columns)
    wide = {}
    for key, values in (("prices", price_v), ("dollar_volume", volume_v)):
        if values is not None:
            grid = np.full(shape, np.nan)
            grid[t, a] = values
            wide[key] = pd.DataFrame(grid, index=returns.index, columns=columns)

    # industries: the most recent label of each asset in the window
    if ind_c is None:
        industries = pd.Series(NONCLASSIFIABLE, index=columns, dtype=object)
        notes.append(f"{name} has no industry column (siccd, sector, gics, industry): every "
                     f"asset is {NONCLASSIFIABLE}")
    else:
        if ind_is_sic:
            sic, _ = _numbers(table[ind_c], rows, name, ind_c)
            division = sic_division(sic)
            division[np.isnan(sic) | (sic == 0)] = ""  # CRSP: 0 = no SIC code
            lab_codes, label_of = pd.factorize(division)
        else:
            lab_codes, label_of = _column_text(table[ind_c])
        label_of = np.append(np.asarray(label_of, dtype=object), "")
        lab_codes = np.where(lab_codes == -1, len(label_of) - 1, lab_codes)
        blank_code = np.flatnonzero(label_of == "")
        frame = pd.DataFrame({"a": a, "t": t, "c": lab_codes})
        frame = frame[~frame["c"].isin(blank_code)].sort_values(["a", "t"], kind="stable")
        last_code = frame.groupby("a", sort=True)["c"].last()
        changed = int((frame.groupby("a")["c"].nunique() > 1).sum())
        lab = np.full(len(assets), "", dtype=object)
        lab[last_code.index.to_numpy()] = label_of[last_code.to_numpy()]
        unlabelled = lab == ""
        if unlabelled.any():
            if not ind_is_sic:
                j = int(np.flatnonzero(unlabelled)[0])
                raise InputError(f"{name} column {ind_c} is blank in every row of {id_c} "
                                 f"{assets[j]}", name)
            lab[unlabelled] = NONCLASSIFIABLE
            notes.append(f"{int(unlabelled.sum())} asset(s) with no SIC code: "
                         f"{NONCLASSIFIABLE}")
        history = None
        labelled_from = frame.groupby("a", sort=True)["t"].min()
        late = int((labelled_from.to_numpy() > first[labelled_from.index.to_numpy()]).sum())
        if changed or late:
            # Each date keeps the label it had then, carried forward between rows; before
            # an asset's first label it is unclassified (a later label is not known yet).
            grid = np.full((len(returns.index), len(assets)), np.nan)
            grid[frame["t"].to_numpy(), frame["a"].to_numpy()] = frame["c"].to_numpy()
            codes = pd.DataFrame(grid).ffill().to_numpy()
            history = pd.DataFrame(
                np.where(np.isnan(codes), NONCLASSIFIABLE,
                         label_of[np.nan_to_num(codes, nan=0).astype(int)]),
                index=returns.index, columns=columns, dtype=object)
            parts = [f"{changed} asset(s) changed {ind_c}"] if changed else []
            parts += [f"{late} asset(s) had no {ind_c} at first"] if late else []
            notes.append(f"{' and '.join(parts)} in the window: each date uses the label it "
                         f"had then ({NONCLASSIFIABLE} before the first)")
        industries = pd.Series(lab, index=columns, dtype=object)
    panels = LongPanels(returns=returns, caps=caps, industries=industries.rename("industry"),
                        periods_per_year=ppy, source=tab.label, notes=tuple(notes),
                        industry_history=history if ind_c is not None else None,
                        prices=wide.get("prices"), dollar_volume=wide.get("dollar_volume"))
    return _compound(panels, frequency, allow_gaps, name) if compounding else panels


# --------------------------------------------------------------------------- compounding


def _compound(panels: LongPanels, ppy: int, allow_gaps: bool, name: str) -> LongPanels:
    """Daily (or weekly) panels compounded to ``ppy`` periods a year (core/_frequency.py)."""
    got = compound_panels(panels.returns, ppy, caps=panels.caps, prices=panels.prices,
                          dollar_volume=panels.dollar_volume,
                          industry_history=panels.industry_history)
    returns, frames = got.returns, [got.caps, got.prices, got.dollar_volume,
                                    got.industry_history]
    notes = [*panels.notes, f"{frequency_name(panels.periods_per_year)} data compounded to "
             f"{frequency_name(ppy)} periods ({len(panels.returns)} days, {len(returns)} periods)"]
    if got.gaps:
        notes.append(f"{got.gaps} stock-period(s) had missing days inside the stock's listed "
                     f"life: compounded over the days they have ({got.empty} with none at all "
                     "read as missing)")
    gap = _calendar_gap(returns.index, ppy) if ppy == 12 else None
    if gap is not None:
        if not allow_gaps:
            raise InputError(f"{name} has no rows between {_period_label(gap[0], ppy)} and "
                             f"{_period_label(gap[1], ppy)} (a gap in the dates; "
                             "xlfuncs backtest --allow-gaps reads it as missing)", name)
        full = pd.date_range(returns.index[0], returns.index[-1], freq="ME").as_unit("ns")
        notes.append(f"{len(full) - len(returns)} period(s) with no rows at all filled with "
                     "missing values")
        returns = returns.reindex(full)
        frames = [None if f is None else f.reindex(full) for f in frames]
    history = frames[3]
    if history is not None:
        history = history.ffill().fillna(NONCLASSIFIABLE)
    return replace(panels, returns=returns.rename_axis("date"), caps=frames[0], prices=frames[1],
                   dollar_volume=frames[2], industry_history=history, periods_per_year=ppy,
                   notes=tuple(notes))


# --------------------------------------------------------------------------- assembly


def _assemble(returns: pd.DataFrame, caps: pd.DataFrame | None, industries: pd.Series,
              ppy: int, factor_frame: pd.DataFrame, *, start: object, end: object,
              source: str, notes: Sequence[str],
              industry_history: pd.DataFrame | None = None,
              prices: pd.DataFrame | None = None,
              dollar_volume: pd.DataFrame | None = None) -> MarketData:
    """Align data and factors on their common dates and cut to [start, end].

    Factors more frequent than the data are compounded to the data's periods
    (:func:`~xlfuncs.core._frequency.compound_factors`: the market as a total
    return less the compounded RF); less frequent ones are an error.
    """
    notes = list(notes)
    facs, rf = _split_rf(factor_frame)
    f_ppy = infer_periods_per_year(facs.index, "factors") if len(facs) >= 2 else ppy
    if f_ppy > ppy and ppy in (12, 52):
        labels = period_ends(facs.index, ppy)
        facs, rf = compound_factors(facs, rf, labels,
                                    "Mkt-RF" if "Mkt-RF" in facs.columns else None)
        notes.append(f"{frequency_name(f_ppy)} factors and RF compounded to {frequency_name(ppy)}"
                     " periods (Mkt-RF as the compounded Mkt-RF + RF less the compounded RF)")
    elif f_ppy != ppy:
        higher = " or a higher one (daily factors are compounded)" if f_ppy < ppy else ""
        raise InputError(f"factors are {frequency_name(f_ppy)} but the data are "
                         f"{frequency_name(ppy)}: use factors of the data's frequency{higher}",
                         "factors")
    if f_ppy == ppy:  # a frame of weekly factors has not been read by a file reader here
        _refuse_weekend_weeks(facs.index, ppy, "factors")
    facs.index = period_ends(facs.index, ppy)
    rf.index = facs.index
    cut = date_slice(facs.index, start, end)
    facs, rf = facs.iloc[cut], rf.iloc[cut]
    common = returns.index.intersection(facs.index)
    if len(common) == 0:
        span = (f"{facs.index[0]:%Y-%m} to {facs.index[-1]:%Y-%m}" if len(facs)
                else "nothing in the window")
        raise InputError(f"the data ({returns.index[0]:%Y-%m-%d} to {returns.index[-1]:%Y-%m-%d})"
                         f" and the factors ({span}) have no dates in common; pass factors= a "
                         "Ken French file covering the data", "factors")
    gap = _calendar_gap(common, ppy)
    if gap is not None:
        raise InputError(f"the data and the factors share no dates between "
                         f"{_period_label(gap[0], ppy)} and {_period_label(gap[1], ppy)}; "
                         "each period needs its factor returns", "factors")
    for what, idx in (("data", returns.index), ("factor", facs.index)):
        dropped = idx.difference(common)
        if len(dropped):
            notes.append(f"{len(dropped)} {what} period(s) outside the common dates dropped "
                         f"({_period_label(dropped[0], ppy)} .. "
                         f"{_period_label(dropped[-1], ppy)})")
    returns = returns.loc[common]
    caps = None if caps is None else caps.loc[common]
    listed = returns.notna().any(axis=0).to_numpy()
    if caps is not None:
        listed = listed | caps.notna().any(axis=0).to_numpy()
    if not listed.all():
        if not listed.any():
            raise InputError("no asset has data on the dates shared with the factors", "data")
        notes.append(f"{int((~listed).sum())} asset(s) with no data on the common dates dropped")
        returns = returns.loc[:, listed]
        caps = None if caps is None else caps.loc[:, listed]
    prices, dollar_volume = (None if f is None else f.loc[common, returns.columns]
                             for f in (prices, dollar_volume))
    facs, rf = facs.loc[common], rf.loc[common]
    benchmark = (facs["Mkt-RF"] + rf).rename("market") if "Mkt-RF" in facs.columns else None
    history = (None if industry_history is None
               else industry_history.loc[common].reindex(columns=returns.columns))
    return MarketData(returns=returns, caps=caps, industries=industries.reindex(returns.columns),
                      factors=facs, rf=rf, periods_per_year=ppy, benchmark=benchmark,
                      source=source, notes=tuple(notes), industry_history=history,
                      prices=prices, dollar_volume=dollar_volume)


def _span(index: pd.DatetimeIndex) -> str:
    return f"{index[0]:%Y-%m} to {index[-1]:%Y-%m}"


def load_market(source: str | Path = "sample", *, factors: object = None, start: object = None,
                end: object = None, id_col: str | None = None,
                industry_col: str | None = None, allow_gaps: bool = False,
                seed: int = DEFAULT_SEED, frequency: object = None) -> MarketData:
    """Market data for a backtest, from a sample or the user's files.

    Parameters
    ----------
    source : str or path
        ``"sample"`` (the synthetic universe of 500 stocks, see
        :func:`synthetic_universe`), ``"sample:N"`` (N stocks, up to 10000),
        ``"french12"`` (the 12 Ken French industry portfolios as the assets:
        no caps, the benchmark is the market ``Mkt-RF + RF``, each portfolio
        is its own industry), or a path to long single-name data (CSV or
        Parquet, see :func:`read_long`).
    factors : str, path, DataFrame or list of them, optional
        Factor returns with an ``RF`` column: Ken French or plain CSV files
        (:func:`read_french`; several files are joined on their dates, e.g. the
        three factors and the momentum file), or a frame like
        :func:`french_factors`. Default: the bundled monthly factors.
    start, end : date-like or str, optional
        Every input is cut to [start, end] before anything else is done with
        it; a partial string covers its period (``end="2010-06"`` keeps June).
    id_col, industry_col, allow_gaps
        Passed to :func:`read_long` for a path.
    seed : int
        Seed of the synthetic universe.
    frequency : {"monthly", "weekly"}, optional
        The rebalance frequency: data and factors given more often (daily
        CRSP and Ken French files) are compounded to it (:func:`read_long`,
        :func:`~xlfuncs.core._frequency.compound_factors`). Blank: monthly
        for data more frequent than monthly, else the data's own frequency.

    Returns
    -------
    MarketData
        On the dates the data and the factors share; ``notes`` lists what was
        dropped or assumed, ``source`` describes the inputs.

    Raises
    ------
    InputError
        An unknown source, an unreadable file, factors less frequent than the
        data or with no dates in common with the data, a frequency the data
        are less frequent than.

    """
    target = frequency_ppy(frequency)
    text = str(source).strip()
    low = text.lower()
    if low == "sample" or low.startswith("sample:"):
        n_text = text.split(":", 1)[1].strip() if ":" in text else "500"
        if not n_text.isdigit() or not 1 <= int(n_text) <= MAX_SAMPLE:
            raise InputError(f"sample size must be a whole number from 1 to {MAX_SAMPLE} "
                             f'(got "{n_text}")', "source")
        universe = synthetic_universe(int(n_text), seed=seed, factors=factors)
        _check_frequency(universe.periods_per_year, target, frequency, text)
        if start is None and end is None:
            return universe
        return universe.truncate(start, end)
    factor_frame = _factor_frame(factors)
    if low == "french12":
        inds = french_industries12()
        if "Mkt-RF" not in _split_rf(factor_frame)[0].columns:
            raise InputError("french12 needs a Mkt-RF factor for its benchmark", "factors")
        inds = inds.iloc[date_slice(inds.index, start, end)]
        if len(inds) == 0:
            raise InputError(f"the 12 industry portfolios ({_span(french_industries12().index)}) "
                             f"have no periods between start={start} and end={end}", "end")
        _check_frequency(12, target, frequency, "french12")
        names = pd.Series(list(inds.columns), index=inds.columns, dtype=object)
        return _assemble(inds, None, names, 12, factor_frame, start=start, end=end,
                         source="Ken French 12 industry portfolios, monthly "
                                f"{_span(inds.index)} (bundled; via linearmodels)",
                         notes=())
    path = Path(text)
    if path.exists() and not path.is_file():
        raise _missing(path, "source")
    if not path.is_file():
        raise InputError(f'source must be "sample", "sample:N", "french12" or a path to a CSV or '
                         f"Parquet file (not found: {text})", "source")
    panels = read_long(path, id_col=id_col, industry_col=industry_col, start=start, end=end,
                       allow_gaps=allow_gaps, frequency=target or 12)
    _check_frequency(panels.periods_per_year, target, frequency, path.name)
    src = factor_frame.attrs.get("source", "factors")
    return _assemble(panels.returns, panels.caps, panels.industries, panels.periods_per_year,
                     factor_frame, start=start, end=end,
                     source=f"{panels.source} with factors from {src}", notes=panels.notes,
                     industry_history=panels.industry_history, prices=panels.prices,
                     dollar_volume=panels.dollar_volume)


def _check_frequency(ppy: int, target: int | None, frequency: object, what: str) -> None:
    """A rebalance frequency the data can be compounded to (not one finer than the data)."""
    if target is not None and target != ppy:
        raise InputError(f"frequency {str(frequency).strip().lower()}: {what} is "
                         f"{frequency_name(ppy)} data; data can only be compounded to a lower "
                         "frequency (leave frequency blank)", "frequency")


# --------------------------------------------------------------------------- synthetic

#: Industries of the synthetic universe: (name, relative size, market beta, HML, SMB, Mom).
SYNTHETIC_INDUSTRIES: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("Consumer Non-Durables", 7.0, 0.75, 0.15, -0.05, 0.00),
    ("Consumer Durables", 3.0, 1.20, 0.30, 0.20, -0.05),
    ("Manufacturing", 11.0, 1.05, 0.25, 0.10, 0.00),
    ("Energy", 5.0, 0.90, 0.45, 0.05, 0.05),
    ("Chemicals", 3.0, 0.95, 0.20, 0.00, 0.00),
    ("Business Equipment", 17.0, 1.30, -0.50, 0.25, 0.05),
    ("Telecom", 2.0, 0.85, -0.10, -0.10, -0.05),
    ("Utilities", 3.0, 0.55, 0.50, -0.15, 0.00),
    ("Retail", 9.0, 0.95, 0.05, 0.10, 0.00),
    ("Healthcare", 12.0, 0.85, -0.35, 0.10, 0.05),
    ("Finance", 20.0, 1.10, 0.55, 0.05, -0.05),
    ("Other", 8.0, 1.00, 0.10, 0.15, 0.00),
)
_LOADING_SD = {"Mkt-RF": 0.25, "SMB": 0.30, "HML": 0.30, "Mom": 0.15}
_MIN_LIFE = 24
_DIVIDEND_YIELD = 0.02  # a year: caps grow with the price return
_DELIST_CAP = 1.0  # $ millions: a stock whose cap falls below it delists


def _generate(n: int, seed: int, factors: object,
              n_periods: int | None) -> tuple[MarketData, pd.DataFrame]:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_SAMPLE:
        raise InputError(f"n must be a whole number from 1 to {MAX_SAMPLE} (got {n!r})", "n")
    frame = _factor_frame(factors)
    facs, rf = _split_rf(frame)
    ppy = infer_periods_per_year(facs.index, "factors")
    if n_periods is not None:
        if n_periods < 2 * _MIN_LIFE:
            raise InputError(f"n_periods must be at least {2 * _MIN_LIFE} (got {n_periods})",
                             "n_periods")
        facs, rf = facs.iloc[-n_periods:], rf.iloc[-n_periods:]
    T, k = facs.shape
    if T < 2 * _MIN_LIFE:
        raise InputError(f"factors have {T} periods; the synthetic universe needs at least "
                         f"{2 * _MIN_LIFE}", "factors")
    rng = np.random.default_rng(seed)
    names = [row[0] for row in SYNTHETIC_INDUSTRIES]
    sizes = np.array([row[1] for row in SYNTHETIC_INDUSTRIES])
    base = min(n, len(names))
    industry = np.concatenate([rng.permutation(len(names))[:base],
                               rng.choice(len(names), size=n - base, p=sizes / sizes.sum())])

    log_cap = rng.normal(np.log(800.0), 1.3, size=n)  # $ millions at listing
    z = (log_cap - log_cap.mean()) / (log_cap.std() or 1.0)
    means = {"Mkt-RF": 2, "HML": 3, "SMB": 4, "Mom": 5}
    loadings = np.empty((n, k))
    for j, col in enumerate(facs.columns):
        centre = (np.array([row[means[col]] for row in SYNTHETIC_INDUSTRIES])[industry]
                  if col in means else 0.0)
        if col == "SMB":
            centre = centre + 0.25 - 0.30 * z  # small caps load on SMB
        loadings[:, j] = centre + rng.normal(0.0, _LOADING_SD.get(col, 0.3), size=n)
    idio_annual = np.exp(rng.normal(np.log(0.28), 0.35, size=n)) * (1 + 0.2 * np.clip(-z, 0, 3))
    idio = idio_annual / np.sqrt(ppy)

    life = np.full(n, T - 1)
    first = np.zeros(n, dtype=int)
    late = rng.random(n) < 0.35
    first[late] = rng.integers(1, T - _MIN_LIFE + 1, size=int(late.sum()))
    early = (rng.random(n) < 0.25) & (first + _MIN_LIFE <= T - 1)
    life[early] = rng.integers(first[early] + _MIN_LIFE - 1, T - 1, size=int(early.sum()))

    noise = rng.standard_normal((T, n)) * idio
    R = rf.to_numpy()[:, None] + facs.to_numpy() @ loadings.T + noise
    floor = -0.95
    clipped = int((R < floor).sum())
    np.maximum(R, floor, out=R)
    t = np.arange(T)[:, None]
    alive = (t >= first) & (t <= life)
    # caps grow with the price return: the total return less a 2% a year dividend yield
    price = np.log1p(np.maximum(R - _DIVIDEND_YIELD / ppy, floor))
    growth = np.cumsum(np.where(alive, price, 0.0), axis=0)
    caps = np.exp(log_cap + growth - growth[first, np.arange(n)])
    tiny = alive & (caps < _DELIST_CAP) & (t > first)
    dropped = tiny.any(axis=0)
    life = np.where(dropped, tiny.argmax(axis=0), life)
    alive = (t >= first) & (t <= life)
    R[~alive] = np.nan
    caps[~alive] = np.nan

    width = max(4, len(str(n)))
    ids = pd.Index([f"S{i + 1:0{width}d}" for i in range(n)])
    dates = facs.index
    returns = pd.DataFrame(R, index=dates, columns=ids)
    caps_df = pd.DataFrame(caps, index=dates, columns=ids)
    labels = pd.Series(np.array(names, dtype=object)[industry], index=ids, dtype=object)
    notes = [f"synthetic: {int(late.sum())} stock(s) list after the start, {int(early.sum())} "
             f"delist before the end, {int(dropped.sum())} delist when their cap falls below "
             f"${_DELIST_CAP:g}m"]
    if clipped:
        notes.append(f"synthetic: {clipped} return(s) below {floor:.0%} clipped")
    bench = (facs["Mkt-RF"] + rf).rename("market") if "Mkt-RF" in facs.columns else None
    src = frame.attrs.get("source", "factors")
    market = MarketData(
        returns=returns, caps=caps_df, industries=labels, factors=facs, rf=rf,
        periods_per_year=int(ppy), benchmark=bench,
        source=(f"synthetic universe of {n} stocks (seed {seed}), {_span(dates)}, driven by "
                f"{', '.join(facs.columns)} from {Path(str(src)).name}"),
        notes=tuple(notes))
    truth = pd.DataFrame(loadings, index=ids, columns=list(facs.columns))
    truth["idio_vol"] = idio
    truth["industry"] = labels
    truth["first"] = dates[first]
    truth["last"] = dates[life]
    return market, truth


def synthetic_universe(n: int = 500, seed: int = DEFAULT_SEED, factors: object = None, *,
                       n_periods: int | None = 360) -> MarketData:
    """A seeded synthetic universe of single stocks driven by real factor returns.

    Each stock ``i`` earns ``r[t, i] = rf[t] + b[i] . f[t] + e[t, i]`` with
    ``e`` normal, independent, of per-period volatility ``idio_vol[i]``, and
    zero alpha. Loadings are drawn around industry means
    (:data:`SYNTHETIC_INDUSTRIES`: 12 industries of uneven size; small caps
    load more on SMB); idiosyncratic vol is lognormal around 28% a year,
    higher for small caps. Market caps (in $ millions) start lognormal
    (median 800) and compound with the price return (the return less a 2% a
    year dividend yield). About 35% of the stocks list after the first period
    and 25% delist before the last (living at least 24 periods), and a stock
    whose cap falls below $1m delists then; outside its life a stock is NaN. Returns below -95%
    are clipped (counted in the notes). Deterministic for a given ``seed``,
    ``n`` and factors; the same stock id differs between different ``n``.

    Parameters
    ----------
    n : int
        Number of stocks, 1 to 10000.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    factors : str, path, DataFrame or list, optional
        Factor returns with ``RF`` (see :func:`load_market`); default the
        bundled monthly Ken French factors.
    n_periods : int or None
        Use the last ``n_periods`` periods of the factors (default 360: 30
        years, 1987-04 to 2017-03 with the bundled data); None uses them all.

    Returns
    -------
    MarketData
        Returns and caps of shape (n_periods, n), industries, the factors and
        RF over the same dates, benchmark = the market (``Mkt-RF + RF``).

    """
    return _generate(n, seed, factors, n_periods)[0]


def synthetic_truth(n: int = 500, seed: int = DEFAULT_SEED, factors: object = None, *,
                    n_periods: int | None = 360) -> pd.DataFrame:
    """The parameters behind :func:`synthetic_universe` with the same arguments.

    Returns
    -------
    DataFrame of shape (n, n_factors + 4)
        Indexed by stock id: one loading column per factor, ``idio_vol``
        (per-period volatility of the noise, fraction), ``industry``, and the
        ``first`` and ``last`` listed period ends.

    """
    return _generate(n, seed, factors, n_periods)[1]
