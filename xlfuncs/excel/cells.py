"""Cell values in, numbers out; errors out as one short text.

Worksheet functions receive exactly what xlwings hands a UDF on Windows:
floats, ``None`` for blank cells, ``str`` (error cells as ``"#N/A"`` with
``err_to_str``), ``bool``, ``datetime``, and lists (1-D for a single row or
column, list of lists for a 2-D range). This module turns those into arrays
with optional labels, or raises :class:`~xlfuncs.errors.InputError` with a
message that names the argument and the cell at fault. It never does
mathematics.

Rules in one place: a ``%`` header puts a column in percent, checked against
percent-formatted cells (:func:`_column_values`); number text takes commas only
as thousands separators (:func:`_text_decimal`); magnitudes above 1e100 or
below 1e-100 are refused, typed or written as text (:func:`number`); blank
edges of a range are trimmed but cells are named as the user selected them
(:func:`grid`); headers and date columns are recognised as in :func:`table`
and :func:`holdings`, and a table with dates is put in date order.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import numpy as np
import pandas as pd

from xlfuncs.core import Labelled, align, normalise_ticker
from xlfuncs.errors import InputError, XlfuncsError

__all__ = [
    "ERROR_PREFIX",
    "Quantity",
    "Table",
    "choice",
    "error_text",
    "flag",
    "grid",
    "groups",
    "holdings",
    "labelled_matrix",
    "omitted",
    "scalar",
    "table",
    "udf",
    "vector",
    "weights",
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

# Numbers beyond these magnitudes are reported rather than passed on: nothing
# downstream (squares, products of three) can overflow or underflow to zero.
_MAX_ABS = 1e100
_MIN_ABS = 1e-100

# Number text: plain digits, or thousands grouped by commas in the exact
# pattern 1,234,567.89 ("0,012" and "1,2" are not numbers: a decimal comma
# must never turn into a thousands separator).
_PLAIN_DIGITS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GROUPED_DIGITS = re.compile(r"[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]*)?")
_NUMBER_TEXT = re.compile(
    r"(?P<open>\()?\s*(?P<sign>[+-])?\s*(?P<cur>\$)?\s*(?P<sign2>[+-])?\s*"
    r"(?P<num>[0-9.,]+(?:[eE][+-]?[0-9]+)?)\s*(?P<pct>%)?\s*(?P<close>\))?"
)

Quantity = Literal["weight", "vol"]
"""What a column of numbers measures, for the check of a ``%`` header (see :func:`vector`)."""

# A "%" header over numbers this small is a clash with percent-formatted cells.
_SMALLEST_PERCENT_TOTAL_WEIGHT = 1.5
_SMALLEST_PERCENT_VOL = 1.5


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


def error_name(cell: Any) -> str | None:
    """The Excel error value a cell holds (``#N/A``, ...), or None."""
    return _error_name(cell)


def _is_typed_number(cell: Any) -> bool:
    """A number that arrived as a number (not text, not a boolean, not an error code)."""
    return (isinstance(cell, int | float | np.integer | np.floating)
            and not isinstance(cell, bool) and _error_name(cell) is None)


def _is_date(cell: Any) -> bool:
    return isinstance(cell, dt.datetime | dt.date)


def _text_decimal(text: str) -> Decimal | None:
    """The exact number written in a text cell, or None.

    Accepted: ``1234.5``, ``1,234.5`` (commas only as thousands separators in
    groups of three), ``1E-05``, ``-0.5``, ``(0.5)`` (accounting negative),
    ``$0.5``, ``-$1,234``, ``15%`` (0.15). Anything else (``0,012``, ``nan``,
    ``1_000``, ``--5``) is not a number. The value is exact, so ``1e-400`` is
    not 0 and ``1e400`` is not infinite: :func:`number` refuses both as out of
    range, as it refuses such numbers typed into a cell.
    """
    m = _NUMBER_TEXT.fullmatch(text.strip())
    if m is None:
        return None
    paren = m["open"] is not None
    signs = [s for s in (m["sign"], m["sign2"]) if s]
    if paren != (m["close"] is not None) or len(signs) > 1 or (paren and signs) or (
            m["cur"] and m["pct"]):
        return None
    digits = m["num"]
    if "," in digits:
        if _GROUPED_DIGITS.fullmatch(digits) is None:
            return None
        digits = digits.replace(",", "")
    elif _PLAIN_DIGITS.fullmatch(digits) is None:
        return None
    try:
        val = Decimal(digits)
    except InvalidOperation:  # an exponent of 10**18 or more: out of range whatever it is
        mantissa, _, power = digits.lower().partition("e")
        val = Decimal(f"{mantissa}e{'-' if power.startswith('-') else ''}999999")
    if m["pct"]:
        val = val.scaleb(-2)
    return -val if paren or signs == ["-"] else val


def _parse_text_number(text: str) -> float | None:
    """The number written in a text cell as a float (see :func:`_text_decimal`), or None."""
    val = _text_decimal(text)
    return None if val is None else float(val)


def _parse_number(cell: Any) -> float | None:
    """The number a cell holds, or None when it holds no number."""
    if isinstance(cell, bool) or _error_name(cell) is not None:
        return None
    if isinstance(cell, int | float | np.integer | np.floating):
        return float(cell)
    if isinstance(cell, str):
        return _parse_text_number(cell)
    return None


def _describe(cell: Any) -> str:
    if _is_blank(cell):
        return "a blank"
    err = _error_name(cell)
    if err is not None:
        return err
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if _is_date(cell):
        return "a date"
    if isinstance(cell, int | float | np.integer | np.floating):
        return f"the number {cell:g}"
    text = str(cell).strip()
    return f'text "{text[:20]}"' if len(text) <= 20 else f'text "{text[:17]}..."'


def number(cell: Any, name: str, where: str | None = None) -> float:
    """One finite number from a cell, or an InputError naming ``name`` and ``where``.

    A number whose magnitude is above 1e100, or below 1e-100 without being 0,
    is reported as out of range, whether it arrives as a number or as text:
    the text ``1e-400`` is judged by its written value, not by the 0 a float
    rounds it to (nor ``1e400`` by infinity).
    """
    exact = _text_decimal(cell) if isinstance(cell, str) else None
    val = _parse_number(cell) if exact is None else float(exact)
    at = f" at {where}" if where else ""
    if val is None:
        raise InputError(f"{name} has {_describe(cell)}{at}; a number is needed", name)
    if exact is None and not math.isfinite(val):
        raise InputError(f"{name} has a non-finite number{at}", name)
    # text is judged as the float it reads to, unless the float lost it (0 or inf)
    lost = exact is not None and (val == 0 or math.isinf(val))
    written = exact if lost else val
    if abs(written) > _MAX_ABS or 0 < abs(written) < _MIN_ABS:
        raise InputError(f"{name} has the number {written:.3g}{at}, out of range", name)
    return val


def _grid(value: Any, name: str) -> tuple[list[list[Any]], int, int]:
    """Rows of the argument with blank edges trimmed, and the first kept row and column.

    The offsets keep error messages in the coordinates of the range the user
    selected.
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
    top = 0
    while top < len(rows) and all(_is_blank(c) for c in rows[top]):
        top += 1
    rows = rows[top:]
    while rows and all(_is_blank(c) for c in rows[-1]):
        rows.pop()
    if not rows or not rows[0]:
        raise InputError(f"{name} is empty", name)
    width = len(rows[0])
    while width and all(_is_blank(r[width - 1]) for r in rows):
        width -= 1
    left = 0
    while left < width and all(_is_blank(r[left]) for r in rows):
        left += 1
    return [r[left:width] for r in rows], top, left


def grid(value: Any, name: str) -> list[list[Any]]:
    """Any UDF argument as a rectangular list of rows, blank edges trimmed.

    Leading and trailing blank rows and columns are dropped (a range selected
    one row too high or too wide). A 1-D list is a column (xlwings hands both a
    row and a column as 1-D; for vectors the orientation does not matter).
    """
    return _grid(value, name)[0]


def _label(cell: Any) -> str | None:
    """A ticker-like label: non-blank text that is neither a number nor an error."""
    if isinstance(cell, str) and cell.strip() and _error_name(cell) is None:
        if _parse_number(cell) is None:
            return cell.strip()
    return None


def _text(cell: Any) -> str | None:
    """Any non-blank text that is not an error, numeric-looking or not (``"10107"``)."""
    if isinstance(cell, str) and cell.strip() and _error_name(cell) is None:
        return cell.strip()
    return None


def _ticker(cell: Any) -> str | None:
    """A ticker in a ticker column: a label, or text of digits only (``"7203"``, ``"0700"``)."""
    text = _text(cell)
    if text is not None and (_label(text) is not None or (text.isascii() and text.isdigit())):
        return text
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


def _short(text: str) -> str:
    return text if len(text) <= 20 else text[:17] + "..."


def _column_values(cells: Sequence[tuple[Any, str]], name: str, header: Any,
                   quantity: Quantity | None) -> np.ndarray:
    """Numbers of one column (or row) of cells, each given with its address.

    Under a header containing ``%`` the column is in percent: a number cell
    (or number text without ``%``) is divided by 100; a text cell with its own
    ``%`` (``"50%"``) is explicit and read as written (0.5). A cell formatted
    as 50% in Excel arrives as 0.5, exactly like "0.5 percent", so the size is
    never used to guess: when the column holds only such bare numbers and they
    cannot be percent for ``quantity``, the clash is reported.

    ``quantity`` says which check applies: ``"weight"``, the absolute values
    sum to at most 1.5 (a total weight of at most 1.5%); ``"vol"``, a value of
    at most 1.5 in absolute value (no equity vol is under 1.5% a year). None
    checks nothing.
    """
    head = header.strip() if isinstance(header, str) else ""
    if "%" not in head:
        return np.array([number(c, name, at) for c, at in cells], dtype=float)
    vals: list[float] = []
    bare: list[tuple[float, str]] = []
    for cell, at in cells:
        x = number(cell, name, at)
        if isinstance(cell, str) and "%" in cell:
            vals.append(x)
        else:
            bare.append((x, at))
            vals.append(x / 100)
    fix = "under a % header, or remove the % from the header"
    if quantity == "weight" and len(bare) == len(vals):
        total = sum(abs(x) for x, _ in bare)
        if total <= _SMALLEST_PERCENT_TOTAL_WEIGHT:
            raise InputError(
                f'{name} is in percent by its header "{_short(head)}", so its weights total '
                f"{total:.3g}%; type 50 for 50% {fix}",
                name,
            )
    if quantity == "vol":
        for x, at in bare:
            if abs(x) <= _SMALLEST_PERCENT_VOL:
                raise InputError(
                    f'{name} has {x:g} at {at} under the header "{_short(head)}", a vol of '
                    f"{x:g}%; type 20 for 20% {fix}",
                    name,
                )
    return np.array(vals, dtype=float)


def _pairs(pairs: Sequence[tuple[Any, Any]], coords: Callable[[int, int], str], name: str,
           quantity: Quantity | None, skip_blank: bool) -> Labelled:
    """Ticker and value pairs, the first pair a header when both its cells are labels."""
    start, header = 0, None
    if _label(pairs[0][0]) is not None and _label(pairs[0][1]) is not None:
        start, header = 1, pairs[0][1]  # header: "ticker", "weight"
    labels: list[str] = []
    cells: list[tuple[Any, str]] = []
    for i in range(start, len(pairs)):
        lab, val = pairs[i]
        if skip_blank and _is_blank(lab) and _is_blank(val):
            continue
        tick = _ticker(lab)
        if tick is None:
            raise InputError(
                f"{name} needs a ticker at {coords(i, 0)} (found {_describe(lab)})", name
            )
        labels.append(tick)
        cells.append((val, coords(i, 1)))
    if not cells:
        raise InputError(f"{name} has a header but no values", name)
    return Labelled(_column_values(cells, name, header, quantity), _check_unique(labels, name))


def _by_columns(rows: list[list[Any]], r0: int, c0: int, name: str,
                quantity: Quantity | None, skip_blank: bool) -> Callable[[], Labelled]:
    """A reader of ``ticker | value`` columns (pairs along the rows)."""
    def read() -> Labelled:
        return _pairs([(r[0], r[1]) for r in rows], lambda i, j: _address(i + r0, j + c0),
                      name, quantity, skip_blank)
    return read


def _by_rows(rows: list[list[Any]], r0: int, c0: int, name: str,
             quantity: Quantity | None, skip_blank: bool) -> Callable[[], Labelled]:
    """A reader of a ticker row above a value row (pairs along the columns)."""
    def read() -> Labelled:
        return _pairs(list(zip(rows[0], rows[1], strict=True)),
                      lambda i, j: _address(j + r0, i + c0), name, quantity, skip_blank)
    return read


def _first_reading(readers: Sequence[Callable[[], Labelled]]) -> Labelled:
    """The first reader that understands the cells; else the first reader's error."""
    errors: list[InputError] = []
    for read in readers:
        try:
            return read()
        except InputError as exc:
            errors.append(exc)
    raise errors[0]


def vector(value: Any, name: str, quantity: Quantity | None = None) -> Labelled:
    """A row or column of numbers, optionally with a header cell or a label row/column.

    Accepted forms: one row or one column (a leading text cell is a header and
    is skipped); two columns ``ticker | number`` or two rows, with or without a
    header row/column (a 2x2 range is read as columns, else as rows when only
    that reading is valid). Tickers may be digits written as text (``"7203"``).

    A ``%`` in the header means percent (see :func:`_column_values`):
    numbers are divided by 100, texts such as ``"50%"`` are not. ``quantity``
    (``"weight"`` or ``"vol"``) selects the check that reports a ``%`` header
    over percent-formatted cells (None: no such check).
    """
    rows, r0, c0 = _grid(value, name)
    n_rows, n_cols = len(rows), len(rows[0])
    if n_rows == 1 or n_cols == 1:
        line = rows[0] if n_rows == 1 else [r[0] for r in rows]
        along_row = n_rows == 1 and n_cols > 1
        kind, off = ("column", c0) if along_row else ("row", r0)
        start, header = 0, None
        if len(line) > 1 and _label(line[0]) is not None:
            start, header = 1, line[0]  # a header such as "weight"
        cells = [(line[i], f"{kind} {i + off + 1}") for i in range(start, len(line))]
        return Labelled(_column_values(cells, name, header, quantity))
    if n_cols == 2 or n_rows == 2:
        readers = []
        if n_cols == 2:
            readers.append(_by_columns(rows, r0, c0, name, quantity, skip_blank=False))
        if n_rows == 2:
            readers.append(_by_rows(rows, r0, c0, name, quantity, skip_blank=False))
        return _first_reading(readers)
    raise InputError(
        f"{name} must be a single row or column, or ticker and value columns "
        f"(it is {n_rows}x{n_cols})",
        name,
    )


_TICKER_HEADERS = ("ticker", "symbol", "ticker symbol", "asset", "security")
# The header BETA_NEUTRAL spills: its "new weight" is the one to read back.
_BETA_NEUTRAL_WEIGHTS = ("current weight", "new weight")


def _words(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _weight_hits(labels: Sequence[str | None]) -> list[int]:
    """Columns whose header mentions weight."""
    return [j for j, lab in enumerate(labels) if "weight" in _words(lab)]


def _weight_column(labels: Sequence[str | None], name: str) -> int | None:
    """The weight column of a holdings header, None when no header mentions weight.

    A column named plainly ``weight`` (or ``weights``; case, spaces, ``%`` and
    brackets aside) wins; else the only column mentioning weight; else, for
    the ``current weight | new weight`` header BETA_NEUTRAL spills, ``new
    weight``. Any other choice between several weight columns is reported.
    """
    plain = [j for j, lab in enumerate(labels)
             if re.sub(r"[\s%()]", "", (lab or "").lower()) in ("weight", "weights")]
    if len(plain) == 1:
        return plain[0]
    hits = _weight_hits(labels)
    if len(hits) <= 1:
        return hits[0] if hits else None
    words = [_words(labels[j]) for j in hits]
    if sorted(words) == list(_BETA_NEUTRAL_WEIGHTS):
        return hits[words.index("new weight")]
    found = ", ".join(f'"{_short((labels[j] or "").strip())}"' for j in hits)
    raise InputError(f'{name} has several weight columns ({found}); head the one to use '
                     '"weight"', name)


def holdings(value: Any, name: str) -> Labelled:
    """Ticker and weight columns, as analysts keep holdings or ETF weights.

    Accepted forms:

    - two columns ``ticker | weight``, with or without a header row, down to
      a single line (one holding);
    - two rows (tickers above weights), with or without a header column;
    - a wider table with a header row, where the ``ticker`` (or ``symbol``,
      ``asset``, ``security``) column, else the first one, gives the tickers and
      the weight column is found by name (see :func:`_weight_column`).

    Tickers may be digits written as text (``"7203"``, ``"0700"``). A ``%`` in
    the weight header means percent, with the check for percent-formatted cells
    (see :func:`_column_values`). Fully blank rows are skipped.
    """
    rows, r0, c0 = _grid(value, name)
    n_rows, width = len(rows), len(rows[0])
    if width < 2:
        raise InputError(f"{name} needs two columns: ticker and weight", name)
    labels = [_label(c) for c in rows[0]]
    header_like = n_rows > 1 and all(_is_blank(c) or lab is not None
                                     for c, lab in zip(rows[0], labels, strict=True))
    if header_like and _weight_hits(labels):
        return _holdings_table(rows, r0, c0, name)
    if width == 2:
        readers = [_by_columns(rows, r0, c0, name, "weight", skip_blank=True)]
        if n_rows == 2:
            transposed = _by_rows(rows, r0, c0, name, "weight", skip_blank=True)
            # "ticker | A" above "weight | 0.5": a header column, read across
            first_down = _weight_hits([_label(rows[1][0])])
            readers.insert(0 if first_down else 1, transposed)
        return _first_reading(readers)
    if n_rows == 2 and not any(_label(c) is not None for c in rows[1][1:]):
        return _by_rows(rows, r0, c0, name, "weight", skip_blank=True)()
    if header_like:
        return _holdings_table(rows, r0, c0, name)
    raise InputError(
        f"{name} has {width} columns and no header row; give ticker and weight "
        "columns, or a header naming them",
        name,
    )


def _ticker_rows(rows: list[list[Any]], start: int, t_col: int, v_col: int, r0: int, c0: int,
                 name: str) -> Iterator[tuple[int, str, Any]]:
    """``(row, ticker, value)`` of each row from ``start`` with a ticker; blank rows skipped.

    A row whose ticker cell is not a ticker (but is not blank with its value) is an
    error naming the cell.
    """
    for i in range(start, len(rows)):
        tick, val = rows[i][t_col], rows[i][v_col]
        if _is_blank(tick) and _is_blank(val):
            continue
        t = _ticker(tick)
        if t is None:
            raise InputError(f"{name} needs a ticker at {_address(i + r0, t_col + c0)} "
                             f"(found {_describe(tick)})", name)
        yield i, t, val


def _holdings_table(rows: list[list[Any]], r0: int, c0: int, name: str) -> Labelled:
    """Holdings from a table with a header row naming its columns."""
    header = rows[0]
    labels = [_label(c) for c in header]
    t_col = next((j for j, lab in enumerate(labels) if _words(lab) in _TICKER_HEADERS), 0)
    w_col = _weight_column(labels, name)
    if w_col is None:
        if len(header) != 2:
            found = ", ".join(lab for lab in labels if lab)
            raise InputError(f"{name} needs a column headed weight (found {found})", name)
        w_col = 1 - t_col
    if w_col == t_col:
        raise InputError(f"{name} needs separate ticker and weight columns", name)
    tickers: list[str] = []
    cells: list[tuple[Any, str]] = []
    for i, t, val in _ticker_rows(rows, 1, t_col, w_col, r0, c0, name):
        tickers.append(t)
        cells.append((val, _address(i + r0, w_col + c0)))
    if not cells:
        raise InputError(f"{name} has a header but no rows", name)
    vals = _column_values(cells, name, header[w_col], "weight")
    return Labelled(vals, _check_unique(tickers, name))


def labelled_matrix(value: Any, name: str) -> Labelled:
    """A square matrix, labelled (tickers in the first row and column) or not.

    When both a label row and a label column are present they must hold the same
    tickers; the columns are reordered to the rows' order (labels decide, never
    position). When the matrix itself arrived as numbers, digits written as
    text in the label row and column are labels too (``"10107"``, as HIST_COV
    spills asset ids).
    """
    rows, r0, c0 = _grid(value, name)
    n_rows, n_cols = len(rows), len(rows[0])
    typed = any(_is_typed_number(c) for r in rows[1:] for c in r)
    lab = _ticker if typed else _label
    top = [lab(c) for c in rows[0][1:]]
    left = [lab(r[0]) for r in rows[1:]]
    corner_ok = _is_blank(rows[0][0]) or lab(rows[0][0]) is not None
    has_top = n_cols > 1 and corner_ok and all(t is not None for t in top)
    has_left = n_rows > 1 and corner_ok and all(t is not None for t in left)
    if has_top and has_left:
        body = [r[1:] for r in rows[1:]]
        col_labels = _check_unique([t for t in top if t], name)
        row_labels = _check_unique([t for t in left if t], name)
        vals = _numbers(body, name, r0 + 1, c0 + 1)
        _square(vals, name)
        idx = align(row_labels, col_labels, f"{name} rows", f"{name} columns")
        return Labelled(vals[:, idx], row_labels)
    if has_top and not has_left and lab(rows[0][0]) is not None:
        # a header row only (first cell is a label too)
        labels = _check_unique([lab(c) or "" for c in rows[0]], name)
        vals = _numbers(rows[1:], name, r0 + 1, c0)
        _square(vals, name)
        return Labelled(vals, labels)
    if has_left and not has_top and lab(rows[0][0]) is not None:
        labels = _check_unique([lab(r[0]) or "" for r in rows], name)
        vals = _numbers([r[1:] for r in rows], name, r0, c0 + 1)
        _square(vals, name)
        return Labelled(vals, labels)
    vals = _numbers(rows, name, r0, c0)
    _square(vals, name)
    return Labelled(vals)


def _numbers(rows: list[list[Any]], name: str, r0: int, c0: int) -> np.ndarray:
    """The numbers of a block of cells; ``r0``, ``c0`` place it in the argument's range."""
    if not rows or not rows[0]:
        raise InputError(f"{name} has no numbers", name)
    # What xlwings hands over for a range of numbers is floats only: convert
    # those in one go (a 500 x 500 matrix in milliseconds, not a second); any
    # other cell, and any non-finite or out-of-range number, takes the
    # cell-by-cell path, which names the first bad one.
    if {type(c) for c in itertools.chain.from_iterable(rows)} == {float}:
        out = np.array(rows, dtype=float)
        mag = np.abs(out)
        if mag.max() <= _MAX_ABS and not ((mag < _MIN_ABS) & (mag > 0)).any():
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
    """A table of numbers with optional row labels (dates or names) and column labels.

    Rows with dates are in date order, oldest first (see :func:`table`).
    """

    values: np.ndarray
    columns: tuple[str, ...] | None
    index: tuple[Any, ...] | None


_DATE_WORDS = frozenset({
    "date", "dates", "datetime", "timestamp", "time", "day", "days", "week", "weeks",
    "month", "months", "quarter", "quarters", "year", "years", "period", "periods",
    "yyyymm", "yyyymmdd", "yyyy", "asof",
})
# Words that may accompany a date word in a date column's header ("trade date",
# "date (month end)", "yyyy-mm", "as of date").
_DATE_FILLERS = frozenset({
    "trade", "end", "ending", "start", "as", "of", "observation", "obs", "close", "value",
    "valuation", "report", "reporting", "business", "calendar", "fiscal", "the", "mm", "dd",
    "yy", "q", "eom", "eod",
})


def _is_date_header(cell: Any) -> bool:
    """A header such as ``date``, ``Month``, ``Period``, ``yyyymm``, ``Trade date``."""
    text = _label(cell)
    if text is None:
        return False
    words = re.findall(r"[a-z0-9]+", text.lower())
    return (any(w in _DATE_WORDS for w in words)
            and all(w in _DATE_WORDS or w in _DATE_FILLERS for w in words))


def _index_kind(cell: Any) -> str | None:
    """``date``, ``number`` or ``text`` for a cell of a date column; None for a bad cell."""
    if _is_date(cell):
        return "date"
    if _is_blank(cell) or isinstance(cell, bool) or _error_name(cell) is not None:
        return None
    if _is_typed_number(cell):
        return "number" if math.isfinite(float(cell)) else None
    if isinstance(cell, str):
        return "number" if _parse_number(cell) is not None else "text"
    return None


def _is_date_column(col: Sequence[Any]) -> bool:
    """More dates than numbers: an index of dates, with perhaps a blank or a stray text."""
    kinds = [_index_kind(c) for c in col]
    return kinds.count("date") > kinds.count("number")


# Text dates that can be put in order: a whole column in one of these formats
# ("ISO8601" takes 2024, 2024-01, 2024-01-31 and times), or quarters (2024Q1,
# 2024-Q1, Q1 2024). Digits only (202401, 20240131) arrive as numbers.
_TEXT_DATE_FORMATS = ("ISO8601", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%d-%b-%Y",
                      "%d %b %Y", "%b %Y", "%B %Y", "%b-%Y", "%b-%y")
_QUARTER = re.compile(
    r"(?P<y>[0-9]{4})\s*-?\s*Q(?P<q>[1-4])|Q(?P<q2>[1-4])\s*-?\s*(?P<y2>[0-9]{4})", re.IGNORECASE
)


def _text_date_keys(texts: Sequence[str], name: str) -> tuple[list[Any] | None, int]:
    """Sort keys of text dates all written in one format, or None and the first text not read.

    Texts that read both as month/day and as day/month, in a different
    order, are refused: the order would be a guess.
    """
    texts = [t.strip() for t in texts]
    quarters = [_QUARTER.fullmatch(t) for t in texts]
    if all(quarters):
        return [(int(m["y"] or m["y2"]), int(m["q"] or m["q2"])) for m in quarters if m], -1
    series = pd.Series(texts, dtype=object)
    readings: list[pd.Series] = []
    most, first_unread = -1, 0
    for fmt in _TEXT_DATE_FORMATS:
        parsed = pd.to_datetime(series, format=fmt, errors="coerce")
        read = parsed.notna().to_numpy()
        if read.all():
            readings.append(parsed)
        elif read.sum() > most:
            most, first_unread = int(read.sum()), int(np.argmin(read))
    if not readings:
        return None, first_unread
    if len({tuple(np.argsort(r.to_numpy(), kind="stable")) for r in readings}) > 1:
        raise InputError(f"{name} has dates that read as month/day and as day/month; write "
                         "them as YYYY-MM-DD or as Excel dates", name)
    return list(readings[0]), -1


def _date_key(cell: Any) -> Any:
    """What orders a date or number cell of a date column (an Excel serial, yyyymm...)."""
    if isinstance(cell, dt.datetime):
        return cell.replace(tzinfo=None)
    if isinstance(cell, dt.date):
        return dt.datetime(cell.year, cell.month, cell.day)
    return _parse_number(cell)


def _date_index(col: Sequence[Any], name: str, r0: int, c0: int
                ) -> tuple[tuple[Any, ...], list[Any]]:
    """The cells of a date column and what orders them.

    The cells must be all of one kind: dates, else numbers, else texts; texts
    must all be dates in one of the formats :func:`_text_date_keys` reads.
    """
    kinds = [_index_kind(c) for c in col]
    want = "date" if "date" in kinds else "number" if "number" in kinds else "text"
    for i, (cell, kind) in enumerate(zip(col, kinds, strict=True)):
        if kind != want:
            raise InputError(f"{name} has {_describe(cell)} at {_address(i + r0, c0)} "
                             "where a date is expected", name)
    if want != "text":
        return tuple(col), [_date_key(c) for c in col]
    keys, bad = _text_date_keys(col, name)
    if keys is None:
        raise InputError(f"{name} has {_describe(col[bad])} at {_address(bad + r0, c0)} where a "
                         "date is expected (type Excel dates, or text as YYYY-MM-DD)", name)
    return tuple(col), keys


def _show_date(cell: Any) -> str:
    """A date cell as the user would recognise it in a message."""
    if isinstance(cell, dt.datetime):
        return f"{cell:%Y-%m-%d %H:%M}" if cell.time() != dt.time() else f"{cell:%Y-%m-%d}"
    if isinstance(cell, dt.date):
        return cell.isoformat()
    if _is_typed_number(cell):
        x = float(cell)
        return str(int(x)) if x.is_integer() else f"{x:g}"
    return _short(str(cell).strip())


def _date_order(index: Sequence[Any], keys: Sequence[Any], name: str, r0: int, c0: int
                ) -> list[int]:
    """The rows from the first date to the last; a date given twice is reported with its rows."""
    order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: equal dates keep rows
    for a, b in itertools.pairwise(order):
        if keys[a] == keys[b]:
            first, again = _show_date(index[a]), _show_date(index[b])
            also = "" if first == again else f", as {first} and {again}"
            raise InputError(f"{name} has the date {first} twice (rows {a + r0 + 1} and "
                             f"{b + r0 + 1} of column {c0 + 1}{also}); give each date once",
                             name)
    return order


def _column_label(cell: Any, ids: bool) -> str | None:
    """A column label: text (``"10107"`` too), or with ``ids`` a whole number (an asset id)."""
    text = _text(cell)
    if text is not None:
        return text
    if (ids and _is_typed_number(cell) and float(cell).is_integer()
            and abs(float(cell)) < 1e15):
        return str(int(cell))
    return None


def table(value: Any, name: str) -> Table:
    """A data table: optional header row of labels, optional first column of dates/labels.

    Row 0 is a header when its first cell is a date word (``date``, ``month``,
    ``period``, ``yyyymm``, ...), when it holds a label (non-numeric text) after
    its first cell, when it is all labels or digits written as text (asset ids
    such as ``"10107"``) above rows holding numbers or dates, or when its first
    cell is text and the column below holds dates; never when its first cell is
    a date. When a header's first cell is text, its whole numbers are asset ids
    and become text labels (10107 gives ``"10107"``); otherwise a number in a
    header is reported (a blank first date above numbers is not a header).

    The first column is an index, not an asset, when the header names it with a
    date word (whatever its cells: dates, yyyymm numbers, texts), when it holds
    more dates than numbers, or when it is all labels. The cells of a date
    index must be all dates (or, under a date word, all numbers such as Excel
    serials or yyyymm, or all texts written as dates in one format): a blank,
    an error or a stray text such as "Average" is reported.

    Rows with dates (an index of dates, numbers under a date word, or labels
    that are all text dates) are returned in date order, oldest first,
    whatever their order on the sheet (downloads often list the newest
    first); a date given twice is reported with its two rows. Without dates
    the rows keep the user's order.
    """
    rows, r0, c0 = _grid(value, name)
    first = rows[0]
    date_head = _is_date_header(first[0])
    below = rows[1:]
    is_header = not _is_date(first[0]) and (
        date_head
        or any(_label(c) is not None for c in first[1:])
        or (len(first) == 1 and _label(first[0]) is not None)
        or (bool(below) and all(_is_blank(c) or _ticker(c) is not None for c in first)
            and any(_is_typed_number(c) or _is_date(c) for r in below for c in r))
        or (bool(below) and _text(first[0]) is not None
            and _is_date_column([r[0] for r in below]))
    )
    if is_header:
        rows = below
        if not rows:
            raise InputError(f"{name} has a header but no data rows", name)
    hr = r0 + (1 if is_header else 0)
    col = [r[0] for r in rows]
    index, keys = None, None
    if date_head or (len(rows[0]) > 1 and _is_date_column(col)):
        if len(rows[0]) < 2:
            raise InputError(f"{name} has a date column but no data columns", name)
        index, keys = _date_index(col, name, hr, c0)
    elif len(rows[0]) > 1 and all(_label(c) is not None for c in col):
        index = tuple(col)
        keys, _ = _text_date_keys(col, name)  # labels that are all dates are dates
    ic = 0 if index is None else 1
    columns = None
    if is_header:
        labels = []
        ids = _text(first[0]) is not None
        for j, cell in enumerate(first[ic:], start=ic):
            lab = _column_label(cell, ids)
            if lab is None:
                raise InputError(
                    f"{name} header needs a label at {_address(r0, j + c0)} "
                    f"(found {_describe(cell)})",
                    name,
                )
            labels.append(lab)
        columns = _check_unique(labels, name)
    vals = _numbers([r[ic:] for r in rows], name, hr, c0 + ic)
    if index is not None and keys is not None:
        order = _date_order(index, keys, name, hr, c0)
        vals, index = vals[order], tuple(index[i] for i in order)
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


def omitted(value: Any) -> bool:
    """An optional range argument left out, or pointing at blank cells only."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return all(_is_blank(c) for c in itertools.chain.from_iterable(
            r if isinstance(r, list | tuple) else [r] for r in value))
    return _is_blank(value)


def weights(value: Any, name: str) -> Labelled:
    """Portfolio weights: one row or column (see :func:`vector`), else holdings columns.

    A single row or column gives unlabelled weights (aligned by position with
    an unlabelled covariance); one ticker beside one weight, ticker and weight
    columns, or a wider table with a header give weights by ticker (see
    :func:`holdings`).
    """
    rows = grid(value, name)
    one_holding = len(rows) == 1 and len(rows[0]) == 2 and _ticker(rows[0][0]) is not None
    if (len(rows) == 1 or len(rows[0]) == 1) and not one_holding:
        return vector(value, name, "weight")
    return holdings(value, name)


_GROUP_HEADERS = ("sector", "group", "industry", "gics", "gics sector", "sic")


def groups(value: Any, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A ticker -> group (sector) map from two columns ``ticker | sector``.

    A first row is a header when its first cell is a ticker header
    (``ticker``, ``symbol``, ...) or its second a group header (``sector``,
    ``industry``, ...). Groups are text, or whole numbers such as SIC codes
    (read as text); fully blank rows are skipped.

    Returns
    -------
    tickers, groups : tuple of str
        In the order of the rows; tickers unique.

    """
    rows, r0, c0 = _grid(value, name)
    if len(rows[0]) != 2:
        raise InputError(f"{name} needs two columns: ticker and group (it has "
                         f"{len(rows[0])})", name)
    start = 1 if (_words(_label(rows[0][0])) in _TICKER_HEADERS
                  or _words(_label(rows[0][1])) in _GROUP_HEADERS) else 0
    tickers: list[str] = []
    names: list[str] = []
    for i, t, grp in _ticker_rows(rows, start, 0, 1, r0, c0, name):
        g = _text(grp)
        if g is None and _is_typed_number(grp) and float(grp).is_integer():
            g = str(int(grp))
        if g is None:
            raise InputError(f"{name} needs a group at {_address(i + r0, c0 + 1)} (found "
                             f"{_describe(grp)})", name)
        tickers.append(t)
        names.append(g)
    if not tickers:
        raise InputError(f"{name} has a header but no rows", name)
    return _check_unique(tickers, name), tuple(names)
