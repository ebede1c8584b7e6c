"""Cell values in, numbers out; errors out as one short text.

Worksheet functions receive exactly what xlwings hands a UDF on Windows:
floats, ``None`` for blank cells, ``str`` (error cells as ``"#N/A"`` with
``err_to_str``), ``bool``, ``datetime``, and lists (1-D for a single row or
column, list of lists for a 2-D range). This module turns those into arrays
with optional labels, or raises :class:`~xlfuncs.errors.InputError` with a
message that names the argument and the cell at fault. It never does
mathematics.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xlfuncs.core import Labelled, align, normalise_ticker
from xlfuncs.errors import InputError, XlfuncsError

__all__ = [
    "ERROR_PREFIX",
    "Table",
    "choice",
    "error_text",
    "flag",
    "grid",
    "holdings",
    "labelled_matrix",
    "scalar",
    "table",
    "udf",
    "vector",
]

log = logging.getLogger(__name__)

ERROR_PREFIX = "#xlfuncs!"
# Excel truncates nothing, but a cell shows about this much without widening.
_MAX_MESSAGE = 250

EXCEL_ERRORS = frozenset(
    {"#N/A", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!", "#SPILL!",
     "#CALC!", "#GETTING_DATA", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!"}
)
# pywin32 hands cell errors to a UDF as these integers when err_to_str is off.
COM_ERRORS = {
    -2146826281: "#DIV/0!",
    -2146826246: "#N/A",
    -2146826259: "#NAME?",
    -2146826288: "#NULL!",
    -2146826252: "#NUM!",
    -2146826265: "#REF!",
    -2146826273: "#VALUE!",
}


def error_text(message: str) -> str:
    """Format one error message for a cell: ``#xlfuncs! <message>`` on one line."""
    line = " ".join(str(message).split())
    text = f"{ERROR_PREFIX} {line}"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def udf(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make a worksheet function return one error text instead of raising.

    The wrapper keeps the signature (xlwings reads it through ``__wrapped__``)
    and the docstring (the Function Wizard help).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except XlfuncsError as exc:
            return error_text(str(exc))
        except MemoryError:
            return error_text(f"{func.__name__}: not enough memory for inputs this large")
        except Exception as exc:  # a bug of ours: say so briefly, log the traceback
            log.exception("%s failed", func.__name__)
            return error_text(f"{func.__name__} failed unexpectedly ({type(exc).__name__}: {exc})")

    return wrapper


# --------------------------------------------------------------------------- cells


def _address(row: int, col: int) -> str:
    """Position of a cell inside the argument's range, 1-based."""
    return f"row {row + 1}, column {col + 1}"


def _is_blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and cell.strip() == "")


def _error_name(cell: Any) -> str | None:
    if isinstance(cell, str) and cell.strip().upper() in EXCEL_ERRORS:
        return cell.strip().upper()
    if isinstance(cell, int) and not isinstance(cell, bool) and cell in COM_ERRORS:
        return COM_ERRORS[cell]
    return None


def _parse_number(cell: Any) -> float | None:
    """The number a cell holds, or None when it holds no number."""
    if isinstance(cell, bool) or _error_name(cell) is not None:
        return None
    if isinstance(cell, int | float | np.integer | np.floating):
        return float(cell)
    if isinstance(cell, str):
        text = cell.strip().replace(",", "")
        scale = 1.0
        if text.endswith("%"):
            text, scale = text[:-1].strip(), 0.01
        try:
            return float(text) * scale
        except ValueError:
            return None
    return None


def _describe(cell: Any) -> str:
    if _is_blank(cell):
        return "a blank"
    err = _error_name(cell)
    if err is not None:
        return err
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, dt.datetime | dt.date):
        return "a date"
    if isinstance(cell, int | float | np.integer | np.floating):
        return f"the number {cell:g}"
    text = str(cell).strip()
    return f'text "{text[:20]}"' if len(text) <= 20 else f'text "{text[:17]}..."'


def number(cell: Any, name: str, where: str | None = None) -> float:
    """One finite number from a cell, or an InputError naming ``name`` and ``where``."""
    val = _parse_number(cell)
    at = f" at {where}" if where else ""
    if val is None:
        raise InputError(f"{name} has {_describe(cell)}{at}; a number is needed", name)
    if not math.isfinite(val):
        raise InputError(f"{name} has a non-finite number{at}", name)
    return val


def grid(value: Any, name: str) -> list[list[Any]]:
    """Any UDF argument as a rectangular list of rows, trailing blank rows/columns trimmed.

    A 1-D list is a column (xlwings hands both a row and a column as 1-D; for
    vectors the orientation does not matter).
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        rows = [[value]]
    elif len(value) and all(isinstance(r, list | tuple) for r in value):
        width = max(len(r) for r in value)
        rows = [list(r) + [None] * (width - len(r)) for r in value]
    elif any(isinstance(r, list | tuple) for r in value):
        raise InputError(f"{name} must be a range of cells", name)
    else:
        rows = [[v] for v in value]
    while rows and all(_is_blank(c) for c in rows[-1]):
        rows.pop()
    if not rows:
        raise InputError(f"{name} is empty", name)
    width = len(rows[0])
    while width and all(_is_blank(r[width - 1]) for r in rows):
        width -= 1
    return [r[:width] for r in rows]


def _label(cell: Any) -> str | None:
    """A ticker-like label: non-blank text that is neither a number nor an error."""
    if isinstance(cell, str) and cell.strip() and _error_name(cell) is None:
        if _parse_number(cell) is None:
            return cell.strip()
    return None


def _check_unique(labels: Sequence[str], name: str) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for lab in labels:
        key = normalise_ticker(lab)
        if key in seen:
            same = "" if seen[key] == lab else f" (as {seen[key]} and {lab})"
            raise InputError(f"{name} has the ticker {key} twice{same}", name)
        seen[key] = lab
    return tuple(labels)


def vector(value: Any, name: str) -> Labelled:
    """A row or column of numbers, optionally with a header cell or a label row/column.

    Accepted forms: one row or one column (a leading text cell is a header and
    is skipped); two columns ``ticker | number`` or two rows, with or without a
    header row/column.
    """
    rows = grid(value, name)
    n_rows, n_cols = len(rows), len(rows[0])
    if n_rows == 1 or n_cols == 1:
        cells = rows[0] if n_rows == 1 else [r[0] for r in rows]
        if len(cells) > 1 and _label(cells[0]) is not None:
            cells = cells[1:]  # a header such as "weight"
        skip = (n_cols if n_rows == 1 else n_rows) - len(cells)
        kind = "column" if n_rows == 1 and n_cols > 1 else "row"

        def where(i: int) -> str:
            return f"{kind} {i + skip + 1}"

        vals = np.array([number(c, name, where(i)) for i, c in enumerate(cells)])
        return Labelled(vals)
    if n_cols == 2 or n_rows == 2:
        pairs = [(r[0], r[1]) for r in rows] if n_cols == 2 else list(zip(*rows, strict=True))
        coords = (lambda i, j: _address(i, j)) if n_cols == 2 else (lambda i, j: _address(j, i))
        start = 0
        if _label(pairs[0][0]) is not None and _label(pairs[0][1]) is not None:
            start = 1  # header: "ticker", "weight"
        labels, vals = [], []
        for i in range(start, len(pairs)):
            lab, val = pairs[i]
            if _label(lab) is None:
                raise InputError(
                    f"{name} needs a ticker at {coords(i, 0)} (found {_describe(lab)})", name
                )
            labels.append(_label(lab))
            vals.append(number(val, name, coords(i, 1)))
        if not vals:
            raise InputError(f"{name} has a header but no values", name)
        return Labelled(np.array(vals), _check_unique(labels, name))
    raise InputError(
        f"{name} must be a single row or column, or ticker and value columns "
        f"(it is {n_rows}x{n_cols})",
        name,
    )


_TICKER_HEADERS = ("ticker", "symbol", "ticker symbol", "asset", "security")


def _weight_column(header: list[str | None]) -> int | None:
    """The column headed ``weight`` (or ``weight %``), else the last one mentioning weight."""
    texts = [(h or "").strip().lower() for h in header]
    for j, t in enumerate(texts):
        if t.replace("(%)", "").replace("%", "").strip() == "weight":
            return j
    hits = [j for j, t in enumerate(texts) if "weight" in t]
    return hits[-1] if hits else None


def holdings(value: Any, name: str) -> Labelled:
    """Ticker and weight columns, as analysts keep holdings or ETF weights.

    Accepted forms: two columns ``ticker | weight`` (or two rows), with or
    without a header row; or a wider table with a header row, where the
    ``ticker`` (or ``symbol``) column and the ``weight`` column are found by
    name (else the first column and the last column mentioning weight, such as
    ``new weight`` in the output of BETA_NEUTRAL). A ``%`` in the weight header
    means percent. Fully blank rows are skipped.
    """
    rows = grid(value, name)
    header = rows[0]
    if len(header) < 2:
        raise InputError(f"{name} needs two columns: ticker and weight", name)
    is_header = len(rows) > 1 and all(_is_blank(c) or _label(c) is not None for c in header)
    as_rows = (len(rows) == 2 and len(header) > 2
               and _weight_column([_label(c) for c in header]) is None)
    if not is_header or as_rows:
        if len(header) == 2 or len(rows) == 2:
            item = vector(value, name)
            if item.labels is None:
                raise InputError(f"{name} needs a ticker column beside the weights", name)
            return item
        raise InputError(
            f"{name} has {len(header)} columns and no header row; give ticker and weight "
            "columns, or a header naming them",
            name,
        )
    labels = [_label(c) for c in header]
    lower = [(lab or "").lower() for lab in labels]
    t_col = next((j for j, t in enumerate(lower) if t in _TICKER_HEADERS), 0)
    w_col = _weight_column(labels) if len(header) > 2 else 1
    if w_col is None:
        found = ", ".join(lab for lab in labels if lab)
        raise InputError(f"{name} needs a column headed weight (found {found})", name)
    if w_col == t_col:
        raise InputError(f"{name} needs separate ticker and weight columns", name)
    scale = 0.01 if "%" in (labels[w_col] or "") else 1.0
    tickers, vals = [], []
    for i, row in enumerate(rows[1:], start=1):
        tick, val = row[t_col], row[w_col]
        if _is_blank(tick) and _is_blank(val):
            continue
        if _label(tick) is None:
            raise InputError(
                f"{name} needs a ticker at {_address(i, t_col)} (found {_describe(tick)})", name
            )
        tickers.append(_label(tick))
        vals.append(number(val, name, _address(i, w_col)) * scale)
    if not vals:
        raise InputError(f"{name} has a header but no rows", name)
    return Labelled(np.array(vals), _check_unique(tickers, name))


def labelled_matrix(value: Any, name: str) -> Labelled:
    """A square matrix, labelled (tickers in the first row and column) or not.

    When both a label row and a label column are present they must hold the same
    tickers; the columns are reordered to the rows' order (labels decide, never
    position).
    """
    rows = grid(value, name)
    n_rows, n_cols = len(rows), len(rows[0])
    top = [_label(c) for c in rows[0][1:]]
    left = [_label(r[0]) for r in rows[1:]]
    corner_ok = _is_blank(rows[0][0]) or _label(rows[0][0]) is not None
    has_top = n_cols > 1 and corner_ok and all(t is not None for t in top)
    has_left = n_rows > 1 and corner_ok and all(t is not None for t in left)
    if has_top and has_left:
        body = [r[1:] for r in rows[1:]]
        col_labels = _check_unique([t for t in top if t], name)
        row_labels = _check_unique([t for t in left if t], name)
        vals = _numbers(body, name, 1, 1)
        _square(vals, name)
        idx = align(row_labels, col_labels, f"{name} rows", f"{name} columns")
        return Labelled(vals[:, idx], row_labels)
    if has_top and not has_left and _label(rows[0][0]) is not None:
        # a header row only (first cell is a label too)
        labels = _check_unique([_label(c) or "" for c in rows[0]], name)
        vals = _numbers(rows[1:], name, 1, 0)
        _square(vals, name)
        return Labelled(vals, labels)
    if has_left and not has_top and _label(rows[0][0]) is not None:
        labels = _check_unique([_label(r[0]) or "" for r in rows], name)
        vals = _numbers([r[1:] for r in rows], name, 0, 1)
        _square(vals, name)
        return Labelled(vals, labels)
    vals = _numbers(rows, name, 0, 0)
    _square(vals, name)
    return Labelled(vals)


def _numbers(rows: list[list[Any]], name: str, r0: int, c0: int) -> np.ndarray:
    if not rows or not rows[0]:
        raise InputError(f"{name} has no numbers", name)
    # What xlwings hands over for a range of numbers is floats only: convert
    # those in one go (a 500 x 500 matrix in milliseconds, not a second); any
    # other cell takes the cell-by-cell path, which names the first bad one.
    if {type(c) for c in itertools.chain.from_iterable(rows)} == {float}:
        out = np.array(rows, dtype=float)
        if np.isfinite(out).all():
            return out
    out = np.empty((len(rows), len(rows[0])))
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            out[i, j] = number(cell, name, _address(i + r0, j + c0))
    return out


def _square(vals: np.ndarray, name: str) -> None:
    if vals.shape[0] != vals.shape[1]:
        raise InputError(f"{name} must be square (it is {vals.shape[0]}x{vals.shape[1]})", name)


@dataclass(frozen=True)
class Table:
    """A table of numbers with optional row labels (dates or names) and column labels."""

    values: np.ndarray
    columns: tuple[str, ...] | None
    index: tuple[Any, ...] | None


def table(value: Any, name: str) -> Table:
    """A data table: optional header row of labels, optional first column of dates/labels."""
    rows = grid(value, name)
    columns = None
    first_is_header = any(_label(c) is not None for c in rows[0][1:]) or (
        len(rows[0]) == 1 and _label(rows[0][0]) is not None
    )
    if first_is_header:
        header = rows[0]
        rows = rows[1:]
        if not rows:
            raise InputError(f"{name} has a header but no data rows", name)
    index = None
    first_col = [r[0] for r in rows]
    if len(rows[0]) > 1 and all(
        isinstance(c, dt.datetime | dt.date) or _label(c) is not None for c in first_col
    ):
        index = tuple(first_col)
        body = [r[1:] for r in rows]
        c0 = 1
    else:
        body = rows
        c0 = 0
    if first_is_header:
        labels = header[c0:]
        for j, lab in enumerate(labels):
            if _label(lab) is None:
                raise InputError(
                    f"{name} header needs a label at {_address(0, j + c0)} "
                    f"(found {_describe(lab)})",
                    name,
                )
        columns = _check_unique([_label(c) or "" for c in labels], name)
    vals = _numbers(body, name, 1 if first_is_header else 0, c0)
    return Table(vals, columns, index)


def scalar(value: Any, name: str) -> float:
    """One number from a single cell (or a 1-cell range)."""
    if isinstance(value, list | tuple | np.ndarray):
        rows = grid(value, name)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise InputError(f"{name} must be a single cell", name)
        value = rows[0][0]
    return number(value, name)


def optional_scalar(value: Any, name: str, default: Any) -> Any:
    """Like :func:`scalar`, but a missing argument or blank cell gives ``default``."""
    if isinstance(value, list | tuple) and all(_is_blank(c) for c in np.ravel(value)):
        return default
    if _is_blank(value):
        return default
    return scalar(value, name)


def choice(value: Any, name: str, options: Sequence[str], default: str) -> str:
    """A keyword argument such as a method name; blank or missing gives ``default``."""
    if isinstance(value, list | tuple):
        rows = grid(value, name)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise InputError(f"{name} must be a single cell", name)
        value = rows[0][0]
    if _is_blank(value):
        return default
    if not isinstance(value, str) or _error_name(value) is not None:
        raise InputError(f"{name} must be one of {', '.join(options)} (got {_describe(value)})",
                         name)
    key = value.strip().lower()
    if key not in options:
        raise InputError(f'{name} must be one of {", ".join(options)} (got "{value.strip()}")',
                         name)
    return key


def _one_cell(value: Any, name: str) -> Any:
    """The value of a single-cell argument (a 1x1 range arrives as a list); blank is None."""
    if isinstance(value, list | tuple):
        rows = grid(value, name) if any(not _is_blank(c) for c in np.ravel(value)) else [[None]]
        if len(rows) != 1 or len(rows[0]) != 1:
            raise InputError(f"{name} must be a single cell", name)
        return rows[0][0]
    return value


_TRUE = ("true", "yes", "y", "1")
_FALSE = ("false", "no", "n", "0")


def flag(value: Any, name: str, default: bool = False) -> bool:
    """A TRUE/FALSE option: a boolean cell, 1/0, or the text true/false/yes/no; blank = default."""
    value = _one_cell(value, name)
    if _is_blank(value):
        return default
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise InputError(f"{name} must be TRUE or FALSE (got {_describe(value)})", name)


def spill_matrix(values: np.ndarray, labels: Sequence[str] | None) -> list[list[Any]]:
    """A matrix as a 2-D list for spilling, with a label row and column when labelled."""
    body = np.asarray(values, dtype=float).tolist()
    if labels is None:
        return body
    return [["", *labels]] + [[lab, *row] for lab, row in zip(labels, body, strict=True)]


def choice_text(value: Any, name: str) -> str | None:
    """Free text of a single-cell option (e.g. ``"ewma:30"``), or None when blank."""
    value = _one_cell(value, name)
    if _is_blank(value):
        return None
    if not isinstance(value, str) or _error_name(value) is not None:
        raise InputError(f"{name} must be text (got {_describe(value)})", name)
    return value.strip()
