"""What every RunPython macro shares: the one-line failure text and the room check.

:mod:`xlfuncs.macros` (Refresh holdings) and :mod:`xlfuncs.excel.backtest_macro`
(Run backtest) both import from here, so neither imports the other's private
helpers and the two never import in a circle.
"""

from __future__ import annotations

from typing import Any

from xlfuncs.errors import InputError, XlfuncsError
from xlfuncs.excel.sheets import Area, Book, subtract
from xlfuncs.redact import Redactor

__all__ = ["MAX_STATUS", "check_room", "describe", "failure_reason", "one_line", "redact"]

MAX_STATUS = 250  # characters a status cell shows without widening


def describe(value: Any) -> str:
    """A cell's value for a message: ``TRUE``, ``the text 'abc'``, ``the number 3``."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, float) and value.is_integer():
        return f"the number {int(value)}"
    if isinstance(value, int | float):
        return f"the number {value:g}"
    return type(value).__name__


def check_room(book: Book, old: Area, new: Area, table: str) -> None:
    """A table growing from ``old`` to ``new`` may cover only blank cells and no other name.

    Parameters
    ----------
    book : Book
        The workbook.
    old, new : Area
        Where the table named ``table`` is, and where it is about to be.
    table : str
        The table's workbook name (``Holdings``, ``BtStats``), for the message.

    Raises
    ------
    InputError
        ``new`` would cover another name, a formula or a filled cell.

    """
    if new.height > old.height or new.width > old.width:
        for name, area in book.names().items():
            if name != table and area.overlaps(new) and not area.overlaps(old):
                raise InputError(f"the new {table} table ({new.address}) would overwrite "
                                 f"the name {name} ({area.address}); move it out of the way",
                                 table)
    for part in subtract(new, old):
        for i, (row, formulas) in enumerate(zip(book.read(part), book.formulas(part),
                                                strict=True)):
            for j, (value, formula) in enumerate(zip(row, formulas, strict=True)):
                blank = value is None or (isinstance(value, str) and not value.strip())
                if formula is not None or not blank:
                    what = "a formula" if formula is not None else describe(value)
                    raise InputError(
                        f"the new {table} table ({new.address}) would overwrite "
                        f"{part.cell(i, j).address} ({what}); move or clear it", table)


def failure_reason(exc: BaseException) -> str:
    """Why a macro failed: our own error's message, or an unexpected one named as such."""
    if isinstance(exc, XlfuncsError):
        return str(exc)
    text = str(exc)
    detail = f": {text}" if text else ""
    return f"unexpected {type(exc).__name__}{detail} (details in the log)"


def one_line(text: str, secrets: set[str]) -> str:
    """``text`` on one line of at most :data:`MAX_STATUS` characters, every secret masked."""
    line = " ".join(redact(str(text), secrets).split())
    return line if len(line) <= MAX_STATUS else line[: MAX_STATUS - 1] + "…"


def redact(text: str, secrets: set[str]) -> str:
    """``text`` with each secret masked in every spelling (:class:`xlfuncs.redact.Redactor`)."""
    return Redactor(secrets).text(text)
