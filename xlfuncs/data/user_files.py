"""The user's own data files: CSV files and the first sheet of a workbook, read into labelled data.

The ``xlfuncs`` command reads its inputs here (``--weights``, ``--corr``,
``--holdings``, ``--returns``...), and so can a macro: a vector with optional
tickers (:func:`read_vector`), a square matrix (:func:`read_matrix`), a holdings
table by the same rules as the holdings cells in Excel (:func:`read_holdings`),
and a covariance estimated from a returns or prices table
(:func:`read_returns_cov`). Every error is one :class:`~xlfuncs.errors.InputError`
line naming the argument (``weights``, ``corr``...) and the file. A CSV file
that xlfuncs wrote reads back as it was: a ticker such as ``-5``, which the
writer kept from running as a formula by writing ``'-5``, is ``-5`` again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xlfuncs import core
from xlfuncs._files import csv_text, file_error_reason
from xlfuncs.core import Labelled, align
from xlfuncs.data.market import ZIP_MAGIC, refuse_workbook
from xlfuncs.errors import InputError
from xlfuncs.excel import cells

__all__ = ["read_grid", "read_holdings", "read_matrix", "read_returns_cov", "read_vector",
           "read_xlsx_grid", "split_spec"]

_SEMICOLONS = "looks semicolon-separated: save it as CSV with commas"
_NA = {"keep_default_na": False, "na_values": [""]}  # only an empty cell is missing


def _existing_file(path: str, name: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{name}: {path} is a folder, not a file", name)
    if not p.is_file():
        raise InputError(f"{name}: no such file {path}", name)
    return p


def _head(path: str, name: str) -> bytes:
    """The first bytes of a file (for telling a workbook or semicolons from a CSV file)."""
    try:
        with Path(path).open("rb") as fh:
            return fh.read(64 * 1024)
    except OSError as exc:
        raise InputError(f"{name}: cannot read {path}: {file_error_reason(exc)}", name) from None


def _check_text_csv(head: bytes, path: str, name: str) -> None:
    """Refuse an Excel workbook, UTF-16 text or a semicolon-separated file where CSV is read."""
    refuse_workbook(head, path, name)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{name}: {path} is UTF-16 text (Excel's Unicode Text); save it as "
                         "CSV UTF-8 (comma-separated)", name)
    header = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    if header.count(b";") > header.count(b","):
        raise InputError(f"{name}: {path} {_SEMICOLONS}", name)


def _semicolon_hint(cells: Sequence[object]) -> str:
    return f"; it {_SEMICOLONS}" if any(";" in str(c) for c in cells) else ""


def _read_csv(path: str, name: str, **kwargs) -> pd.DataFrame:
    p = _existing_file(path, name)
    _check_text_csv(_head(path, name), path, name)
    try:
        try:
            return pd.read_csv(p, **kwargs)
        except UnicodeDecodeError:  # Excel's "CSV (Comma delimited)" is Windows-1252
            return pd.read_csv(p, encoding="cp1252", **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name}: {path} is not a readable CSV file ({first})", name) from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read {path}: {file_error_reason(exc)}", name) from None


def _label(value: object) -> str:
    """A ticker from a file, as it was before :func:`~xlfuncs._files.write_csv` made it safe."""
    return csv_text(str(value).strip()).strip()


def _what(value: object) -> str:
    """A cell's content for a message: ``a blank`` or the text as it is in the file."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) \
            or not str(value).strip():
        return "a blank"
    return repr(str(value).strip())


def _numeric(series: pd.Series, name: str, path: str) -> np.ndarray:
    vals = pd.to_numeric(series, errors="coerce")
    bad = vals.isna()  # a blank, or text that is not a number
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{name}: {path} column {series.name} has {_what(series.iloc[i])} in data row "
            f"{i + 1}; a number is needed",
            name,
        )
    return vals.to_numpy(dtype=float)


def split_spec(spec: str) -> tuple[str, str]:
    r"""``FILE[:COLUMN]`` as (file, column): a whole spec that names a file is the file.

    Otherwise the split is at the last colon, so ``C:\data\in.csv:weight`` works; a
    "column" with a slash in it, or a lone drive letter before it, is part of the path.
    """
    if Path(spec).is_file():
        return spec, ""
    path, sep, column = spec.rpartition(":")
    if not sep or not path or len(path) == 1 or any(c in column for c in "/\\"):
        return spec, ""
    return path, column


def read_vector(spec: str, name: str, preferred: Sequence[str]) -> Labelled:
    """Read ``FILE[:COLUMN]``: a CSV with an optional ticker column and numeric columns.

    Without ``:COLUMN`` the only numeric column is used, or the first whose name
    is in ``preferred``.
    """
    path, column = split_spec(spec)
    df = _read_csv(path, name, **_NA)
    if df.empty:
        raise InputError(f"{name}: {path} has no rows", name)
    labels = None
    first = df.columns[0]
    if not pd.api.types.is_numeric_dtype(df[first]) and pd.to_numeric(
        df[first], errors="coerce"
    ).isna().all():
        labels = tuple(_label(t) for t in df[first])
        df = df.drop(columns=first)
    if column:
        if column not in df.columns:
            raise InputError(f"{name}: {path} has no column {column} "
                             f"(columns: {', '.join(map(str, df.columns))})"
                             f"{_semicolon_hint([first, *df.columns])}", name)
        chosen = column
    elif len(df.columns) == 1:
        chosen = df.columns[0]
    elif len(df.columns) == 0:
        raise InputError(f"{name}: {path} has no column of numbers"
                         f"{_semicolon_hint([first])}", name)
    else:
        lowered = {str(c).lower(): c for c in df.columns}
        chosen = next((lowered[p] for p in preferred if p in lowered), None)
        if chosen is None:
            raise InputError(
                f"{name}: {path} has several columns ({', '.join(map(str, df.columns))}); "
                f"say which with {path}:COLUMN",
                name,
            )
    if labels is not None and len({core.normalise_ticker(t) for t in labels}) != len(labels):
        raise InputError(f"{name}: {path} lists a ticker twice", name)
    return Labelled(_numeric(df[chosen], name, path), labels)


def read_matrix(path: str, name: str) -> Labelled:
    """Read a square matrix CSV: labelled (tickers in the header and first column) or not."""
    df = _read_csv(path, name, header=None, dtype=str, **_NA)
    if df.shape[1] < 2:
        raise InputError(f"{name}: {path} has only one column; a matrix needs one column per "
                         f"asset{_semicolon_hint(df.iloc[0])}", name)
    first_row = df.iloc[0, 1:]
    labelled = pd.to_numeric(first_row.str.strip(), errors="coerce").isna().all()
    if labelled:
        col_labels = [_label(c) for c in df.iloc[0, 1:]]
        row_labels = [_label(c) for c in df.iloc[1:, 0]]
        body = df.iloc[1:, 1:]
        if body.empty:
            raise InputError(f"{name}: {path} has a header row but no rows of numbers", name)
    else:
        body = df
        col_labels = row_labels = None
    text = body.apply(lambda col: col.str.strip())
    vals = text.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = np.argwhere(np.isnan(vals))
    if len(bad):
        i, j = (int(k) for k in bad[0])
        where = (f"row {row_labels[i]}, column {col_labels[j]}" if row_labels is not None
                 else f"line {i + 1}, column {j + 1}")
        raise InputError(f"{name}: {path} has {_what(text.iat[i, j])} in {where}; a number "
                         "is needed", name)
    if vals.shape[0] != vals.shape[1]:
        raise InputError(f"{name}: {path} is {vals.shape[0]}x{vals.shape[1]}, not square", name)
    if row_labels is None:
        return Labelled(vals)
    idx = align(row_labels, col_labels, f"{name} rows", f"{name} columns")
    return Labelled(vals[:, idx], tuple(row_labels))


def read_grid(path: str, name: str) -> list[list[object]]:
    """A CSV file as a grid of cells (blank cells as None), for the cell parsers."""
    p = _existing_file(path, name)
    _check_text_csv(_head(path, name), path, name)
    try:
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:  # Excel's "CSV (Comma delimited)" is Windows-1252
            text = p.read_text(encoding="cp1252")
        rows = [[csv_text(c) if c.strip() else None for c in row]
                for row in csv.reader(io.StringIO(text, newline=""))]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{name}: {path} is not a readable CSV file ({exc})", name) from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read {path}: {file_error_reason(exc)}", name) from None
    if not rows:
        raise InputError(f"{name}: {path} is empty", name)
    return rows


def read_xlsx_grid(path: str, name: str) -> list[list[object]]:
    """The first sheet of a workbook as a grid of cells (blank cells as None)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # any failure to open means the same to the user
        raise InputError(f"{name}: {path} is not a readable .xlsx workbook "
                         f"({type(exc).__name__})", name) from None
    try:
        sheet = book.worksheets[0]
        rows = [[None if isinstance(v, str) and not v.strip() else v for v in row]
                for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    rows = [row for row in rows if any(v is not None for v in row)]
    if not rows:
        raise InputError(f"{name}: the first sheet of {path} is empty", name)
    width = max(len(row) for row in rows)
    return [row + [None] * (width - len(row)) for row in rows]


def read_holdings(path: str, name: str) -> Labelled:
    """Ticker and weight columns from a CSV file or the first sheet of a workbook.

    The same rules as the holdings cells in Excel, so the ``.xlsx`` that
    ``xlfuncs holdings --out`` writes works as it is.
    """
    _existing_file(path, name)
    if _head(path, name).startswith(ZIP_MAGIC):  # an .xlsx, read as a workbook
        grid = read_xlsx_grid(path, name)
    else:
        grid = read_grid(path, name)  # its errors name the file already
    try:
        return cells.holdings(grid, name)
    except InputError as exc:
        raise InputError(f"{Path(path).name}: {exc}", name) from None


_DATE_FORMATS = ("ISO8601", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y%m%d")


def _dates(column: pd.Series, name: str, path: str) -> pd.DatetimeIndex | None:
    """The date column read in one format, or None when it holds no dates at all.

    Raises when most cells are dates but one is not, and when the dates read as
    month/day and as day/month would be in a different order.
    """
    text = column.astype(str).str.strip()
    readings = []
    best = None
    for fmt in _DATE_FORMATS:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if parsed.notna().all():
            readings.append(pd.DatetimeIndex(parsed))
        elif best is None or parsed.notna().sum() > best.notna().sum():
            best = parsed
    if not readings:
        if best is not None and best.notna().sum() > len(text) / 2:
            i = int(np.flatnonzero(best.isna().to_numpy())[0])
            raise InputError(f"{name}: {path} column {column.name} has {_what(column.iloc[i])} "
                             f"in data row {i + 1}; a date is needed", name)
        return None
    orders = {tuple(np.argsort(d.to_numpy(), kind="stable")) for d in readings}
    if len(orders) > 1:
        raise InputError(f"{name}: {path} has dates that read as month/day and as day/month; "
                         "write them as YYYY-MM-DD", name)
    return readings[0]


def read_returns_cov(path: str, method: str | None, periods_per_year: float,
                     prices: bool = False, say: Callable[[str], object] | None = None
                     ) -> Labelled:
    """Covariance with tickers from a returns (or prices) CSV: a date column, then tickers.

    The rows are put in date order (``say`` is told when they were not);
    a returns file whose every value is above 1 is refused as prices.
    """
    name = "prices" if prices else "returns"
    df = _read_csv(path, name, **_NA)
    if df.empty:
        raise InputError(f"{name}: {path} has no rows{_semicolon_hint(df.columns)}", name)
    first = df.columns[0]
    dates = None
    if not pd.api.types.is_numeric_dtype(df[first]) or str(first).strip().lower() == "date":
        dates = _dates(df[first], name, path)
        df = df.drop(columns=first)
    if df.shape[1] == 0:
        raise InputError(f"{name}: {path} has no ticker columns; it needs a date column, then "
                         f"one column per ticker{_semicolon_hint([first])}", name)
    cols = tuple(_label(c) for c in df.columns)
    vals = np.column_stack([_numeric(df[c], name, path) for c in df.columns])
    if prices:  # checked here, where the rows are still numbered as in the file
        bad = np.argwhere(~(vals > 0) | ~np.isfinite(vals))
        if bad.size:
            i, j = (int(k) for k in bad[0])
            raise InputError(f"prices: {path} column {cols[j]} has {vals[i, j]:.6g} in data row "
                             f"{i + 1}; prices must be positive", name)
    if dates is not None:
        repeated = dates.duplicated()
        if repeated.any():
            i = int(np.flatnonzero(repeated)[0])
            j = int(np.flatnonzero(dates == dates[i])[0])
            raise InputError(f"{name}: {path} has the date {dates[i]:%Y-%m-%d} twice (data rows "
                             f"{j + 1} and {i + 1}); each date once", name)
        if not dates.is_monotonic_increasing:
            newest_first = dates.is_monotonic_decreasing
            vals = vals[np.argsort(dates.to_numpy(), kind="stable")]
            if say is not None:
                say(f"{name}: sorted by date (the file lists the newest first)" if newest_first
                    else f"{name}: sorted by date (the rows were not in date order)")
    if not prices and (vals > 1).all():
        raise InputError(f"returns: {path} looks like prices: use --prices (every value is "
                         "above 1, a return of over 100% per period)", "returns")
    if prices:
        vals = core.simple_returns(vals, cols)
    cov = core.covariance(vals, method, periods_per_year, cols)
    return Labelled(cov, cols)
