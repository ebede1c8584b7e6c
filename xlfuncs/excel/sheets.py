"""One small sheet interface for macros: a live workbook (xlwings) or a file (openpyxl).

A macro reads and writes a workbook only through :class:`Book`, by workbook
names (never by hard-coded addresses), so the same code runs

* in Excel, on ``xlwings.Book.caller()`` wrapped in :class:`XlwingsBook`;
* on a ``.xlsm``/``.xlsx`` file (the command line, the tests, the benchmark),
  through :class:`OpenpyxlBook`.

Cells hold ``None`` (blank), ``str``, ``float``, ``bool`` or ``datetime``;
rows and columns are numbered from 1, as in Excel. Writes are values, never
formulas: a text that starts with ``=`` is stored as text.

openpyxl and dynamic arrays
---------------------------
openpyxl 3.1 keeps the VBA project (``keep_vba=True``) and the array formulas
(``t="array"`` and their ``ref``), but when it saves it drops the
dynamic-array marking that Excel 365 and XlsxWriter write: the ``cm`` cell
attribute and the ``xl/metadata.xml`` part it points to. Excel would then open
the spilling formulas (``=BETA_NEUTRAL(Holdings, ...)``) as legacy ``{=...}``
array formulas of a fixed size. :meth:`OpenpyxlBook.save` therefore puts the
``cm`` attributes, the metadata part, its content type and its relationship
back, and refuses to save (the file is left untouched) when the saved package
would lose anything else that openpyxl does not keep: parts such as custom
XML, shapes, pictures, rich values, or a sheet's Excel 2010+ extensions.
openpyxl also drops the cached results of formulas; the file is marked for a
full recalculation when Excel opens it.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import os
import posixpath
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable
from xml.etree import ElementTree

from xlfuncs._files import atomic_write
from xlfuncs.errors import InputError

__all__ = [
    "Area",
    "Book",
    "LiteBook",
    "OpenpyxlBook",
    "XlwingsBook",
    "column_letter",
    "read_cell",
    "read_name",
    "restore_package",
    "single_cell",
    "subtract",
    "write_cell",
    "write_table_xlsx",
]

log = logging.getLogger(__name__)

Grid = list[list[Any]]


# --------------------------------------------------------------------------- addresses


def column_letter(col: int) -> str:
    """The letters of a column number: 1 is ``A``, 27 is ``AA``.

    Parameters
    ----------
    col : int
        Column number, from 1.

    Returns
    -------
    str

    """
    if col < 1:
        raise ValueError(f"column {col} is not >= 1")
    letters = ""
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


class Area(NamedTuple):
    """A rectangle of cells on one sheet (rows and columns from 1, bounds included).

    Attributes
    ----------
    sheet : str
        The sheet's name.
    first_row, first_col, last_row, last_col : int
        The corners.

    """

    sheet: str
    first_row: int
    first_col: int
    last_row: int
    last_col: int

    @classmethod
    def block(cls, sheet: str, row: int, col: int, height: int, width: int) -> Area:
        """The area of a ``height`` x ``width`` block whose top-left cell is (``row``, ``col``)."""
        return cls(sheet, row, col, row + height - 1, col + width - 1)

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.last_row - self.first_row + 1

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.last_col - self.first_col + 1

    @property
    def ref(self) -> str:
        """Absolute A1 reference without the sheet: ``$A$17:$L$29`` (``$C$6`` for one cell)."""
        first = f"${column_letter(self.first_col)}${self.first_row}"
        if self.height == 1 and self.width == 1:
            return first
        return f"{first}:${column_letter(self.last_col)}${self.last_row}"

    @property
    def address(self) -> str:
        """For messages: ``Holdings!A17:L29`` (``Holdings!C6`` for one cell)."""
        return f"{self.sheet}!{self.ref.replace('$', '')}"

    @property
    def refers_to(self) -> str:
        """What a workbook name refers to: ``='Holdings'!$A$17:$L$29``."""
        quoted = self.sheet.replace("'", "''")
        return f"='{quoted}'!{self.ref}"

    def cell(self, row: int, col: int) -> Area:
        """The one-cell area at offset (``row``, ``col``) from the top-left cell (0-based)."""
        r, c = self.first_row + row, self.first_col + col
        return Area(self.sheet, r, c, r, c)

    def overlaps(self, other: Area) -> bool:
        """Whether the two areas share a cell."""
        return (
            self.sheet == other.sheet
            and self.first_row <= other.last_row
            and other.first_row <= self.last_row
            and self.first_col <= other.last_col
            and other.first_col <= self.last_col
        )


def subtract(area: Area, other: Area) -> list[Area]:
    """The cells of ``area`` that are not in ``other``, as at most four rectangles.

    Parameters
    ----------
    area : Area
        The cells to keep.
    other : Area
        The cells to take away.

    Returns
    -------
    list of Area
        Above, below, left of and right of ``other`` (only those not empty);
        ``[area]`` when they do not overlap.

    """
    if not area.overlaps(other):
        return [area]
    s, r1, c1, r2, c2 = area
    parts = []
    if r1 < other.first_row:
        parts.append(Area(s, r1, c1, other.first_row - 1, c2))
    if r2 > other.last_row:
        parts.append(Area(s, other.last_row + 1, c1, r2, c2))
    top, bottom = max(r1, other.first_row), min(r2, other.last_row)
    if c1 < other.first_col:
        parts.append(Area(s, top, c1, bottom, other.first_col - 1))
    if c2 > other.last_col:
        parts.append(Area(s, top, other.last_col + 1, bottom, c2))
    return parts


# --------------------------------------------------------------------------- the interface


@runtime_checkable
class Book(Protocol):
    """What a macro may do to a workbook.

    Every method addresses cells by workbook names or by :class:`Area`; a
    name that is missing or does not refer to one rectangle raises
    :class:`~xlfuncs.errors.InputError` naming it.
    """

    @property
    def title(self) -> str:
        """The workbook's name, for messages (``BetaNeutral.xlsm``)."""
        ...

    def names(self) -> dict[str, Area]:
        """Every workbook-level name that refers to one rectangle of cells."""
        ...

    def name_range(self, name: str) -> Area:
        """The cells a workbook name refers to."""
        ...

    def read(self, area: Area) -> Grid:
        """The values of an area, row by row (formulas give their last result)."""
        ...

    def formulas(self, area: Area) -> Grid:
        """The formula text of each cell of an area, None where a cell holds none.

        A formula whose last result is blank is still content: a table must not
        grow over it.
        """
        ...

    def write_block(self, sheet: str, row: int, col: int, grid: Grid) -> None:
        """Write a rectangular grid of values with its top-left cell at (``row``, ``col``)."""
        ...

    def clear(self, area: Area) -> None:
        """Blank the values of an area (formats are kept)."""
        ...

    def copy_format(self, source: Area, target: Area) -> None:
        """Give each row of ``target`` the number formats of the one-row ``source``, by column."""
        ...

    def set_format(self, area: Area, num_format: str) -> None:
        """Give every cell of an area one number format."""
        ...

    def set_name(self, name: str, area: Area) -> None:
        """Make the workbook name refer to ``area`` (defining it when missing)."""
        ...

    def status(self, text: str) -> None:
        """Show a progress or result line (Excel's status bar)."""
        ...

    def add_picture(self, area: Area, path: str | os.PathLike, name: str) -> None:
        """Put a PNG with its top-left corner on ``area``; a picture of that name is replaced."""
        ...

    def save(self) -> None:
        """Commit the changes (a file is replaced atomically; a live workbook is not saved)."""
        ...


def read_name(book: Book, name: str) -> Grid:
    """The values of the cells a workbook name refers to, row by row.

    Parameters
    ----------
    book : Book
        The workbook.
    name : str
        A workbook name.

    Returns
    -------
    list of list

    """
    return book.read(book.name_range(name))


def read_cell(book: Book, name: str) -> tuple[Any, Area]:
    """The value of a named single cell, and where it is.

    Parameters
    ----------
    book : Book
        The workbook.
    name : str
        A workbook name that refers to one cell.

    Returns
    -------
    value : object
        ``None`` for a blank cell.
    area : Area
        The cell (its ``address`` names it in messages).

    Raises
    ------
    InputError
        The name is missing or refers to more than one cell.

    """
    area = single_cell(book, name)
    return book.read(area)[0][0], area


def single_cell(book: Book, name: str) -> Area:
    """The cell a workbook name refers to, or :class:`InputError` when it is not one cell."""
    area = book.name_range(name)
    if area.height != 1 or area.width != 1:
        raise InputError(f"the name {name} must refer to one cell, not {area.address}", name)
    return area


def write_cell(book: Book, name: str, value: Any) -> None:
    """Write one value into a named single cell.

    Parameters
    ----------
    book : Book
        The workbook.
    name : str
        A workbook name that refers to one cell.
    value : object
        ``None``, text, a number, a boolean or a datetime.

    """
    area = single_cell(book, name)
    book.write_block(area.sheet, area.first_row, area.first_col, [[value]])


# --------------------------------------------------------------------------- xlwings


def alert_excel(text: str, mode: str = "critical") -> bool:
    """Show ``text`` in a message box of the Excel that runs the macro, if there is one.

    For the failures that have no workbook to write a status into (a ribbon
    button clicked with no workbook open). Returns whether a box was shown.
    """
    try:
        import xlwings as xw

        try:
            app = xw.Book.caller().app
        except Exception:
            app = xw.apps.active
        app.alert(text, title="xlfuncs", mode=mode)
        return True
    except Exception:  # no Excel (a terminal, a test): the caller logs it
        return False


class XlwingsBook:
    """A live Excel workbook through xlwings (Windows or macOS with Excel).

    Parameters
    ----------
    book : xlwings.Book
        Usually ``xlwings.Book.caller()`` inside a RunPython macro (see
        :meth:`caller`); never at import time.

    Notes
    -----
    :meth:`save` does nothing: a macro changes the open workbook and the
    analyst decides whether to save it. Texts are written with a leading
    apostrophe so that Excel keeps them as text (a ticker such as ``TRUE``
    or ``1E5``, or one that starts with ``=``, is not turned into a value or
    a formula).

    """

    def __init__(self, book: Any):
        self.book = book

    @classmethod
    def caller(cls) -> XlwingsBook:
        """The workbook the running RunPython macro is for.

        ``xlwings.Book.caller()``; when that is an add-in (a ribbon button of
        ``xlfuncs.xlam``), the active workbook, which is the one the analyst means.

        Raises
        ------
        InputError
            Called from an add-in while no workbook is active.

        """
        import xlwings as xw

        book = xw.Book.caller()
        if str(book.name).lower().endswith(".xlam"):
            book = book.app.books.active
            if book is None:
                raise InputError("open a workbook first: no workbook is active",
                                 "workbook")
        return cls(book)

    @property
    def title(self) -> str:
        """The workbook's name."""
        return str(self.book.name)

    @property
    def folder(self) -> Path | None:
        """The folder of the workbook's file (None for a workbook never saved)."""
        full = Path(str(self.book.fullname))
        return full.parent if full.parent != Path() else None

    def names(self) -> dict[str, Area]:
        """Every workbook-level name that refers to one rectangle of cells."""
        found = {}
        for item in self.book.names:
            name = str(item.name)
            if "!" in name or name.startswith("_xlnm."):
                continue  # sheet-level names and Print_Titles
            try:
                found[name] = _xlwings_area(item.refers_to_range)
            except Exception:  # a constant, a formula or #REF!: not a range
                continue
        return found

    def name_range(self, name: str) -> Area:
        """The cells a workbook name refers to."""
        if not self.book.names.contains(name):
            raise InputError(f"the workbook {self.title} has no name {name}", name)
        item = self.book.names[name]
        try:
            rng = item.refers_to_range
        except Exception:
            raise InputError(f"the name {name} does not refer to cells "
                             f"({item.refers_to})", name) from None
        return _xlwings_area(rng)

    def _range(self, area: Area) -> Any:
        sheet = self.book.sheets[area.sheet]
        return sheet.range((area.first_row, area.first_col), (area.last_row, area.last_col))

    def read(self, area: Area) -> Grid:
        """The values of an area (dates as ``datetime``, blanks as ``None``)."""
        return self._range(area).options(ndim=2).value

    def formulas(self, area: Area) -> Grid:
        """The formula text of each cell of an area, None where a cell holds none."""
        text = self._range(area).formula
        rows = [[text]] if isinstance(text, str) else [list(r) for r in text]
        return [[f if isinstance(f, str) and f.startswith("=") else None for f in r]
                for r in rows]

    def write_block(self, sheet: str, row: int, col: int, grid: Grid) -> None:
        """Write values in one call (texts as text, non-finite numbers as blanks)."""
        if not grid or not grid[0]:
            return
        values = [[_xlwings_value(v) for v in r] for r in grid]
        self.book.sheets[sheet].range((row, col)).value = values

    def clear(self, area: Area) -> None:
        """Blank the values of an area (formats are kept)."""
        self._range(area).clear_contents()

    def copy_format(self, source: Area, target: Area) -> None:
        """Give each row of ``target`` the number formats of ``source``, column by column."""
        sheet = self.book.sheets[source.sheet]
        for col in range(target.first_col, target.last_col + 1):
            fmt = sheet.range((source.first_row, col)).number_format
            sheet.range((target.first_row, col), (target.last_row, col)).number_format = fmt

    def set_format(self, area: Area, num_format: str) -> None:
        """Give every cell of an area one number format."""
        self._range(area).number_format = num_format

    def set_name(self, name: str, area: Area) -> None:
        """Make the workbook name refer to ``area``."""
        if self.book.names.contains(name):
            self.book.names[name].refers_to = area.refers_to
        else:
            self.book.names.add(name, area.refers_to)

    def status(self, text: str) -> None:
        """Show the text in Excel's status bar."""
        self.book.app.status_bar = text

    def add_picture(self, area: Area, path: str | os.PathLike, name: str) -> None:
        """Insert (or update, by name) a picture anchored at the area's top-left cell."""
        sheet = self.book.sheets[area.sheet]
        anchor = sheet.range((area.first_row, area.first_col))
        names = [p.name for p in sheet.pictures]
        if name in names:
            sheet.pictures[name].update(str(path))
        else:
            sheet.pictures.add(str(path), name=name, anchor=anchor)

    def save(self) -> None:
        """Nothing: the analyst saves the open workbook."""


class LiteBook(XlwingsBook):
    """The workbook of an xlwings Lite script: the ``xw.Book`` Lite passes to the script.

    The same calls as :class:`XlwingsBook` (Lite's book is xlwings' own), except
    what Office.js cannot do synchronously or at all:

    * no status bar: :meth:`status` prints (Lite's output pane) and keeps the lines;
    * formulas are not sent with the book: :meth:`formulas` answers from the
      ``formulas`` given (what the script fetched with ``get_formula``), else from
      the values alone (a formula whose result is blank is then not seen);
    * number formats cannot be read: :meth:`copy_format` leaves new rows as they are;
    * no files: charts come as matplotlib figures (:meth:`add_figure`), and the
      workbook has no folder (relative data paths are not resolved).

    Writes are queued by xlwings and applied when the script returns.

    Parameters
    ----------
    book : xlwings.Book
        The book passed to the script.
    formulas : mapping, optional
        Sheet name -> formula texts of its used range from ``A1`` (row by row).

    """

    def __init__(self, book: Any, formulas: dict[str, Grid] | None = None):
        super().__init__(book)
        self.messages: list[str] = []
        self._formulas = formulas or {}

    @property
    def folder(self) -> Path | None:
        """None: a Lite workbook has no folder Python can read."""
        return None

    def formulas(self, area: Area) -> Grid:
        """The formula text of each cell (from the fetched formulas), None elsewhere."""
        known = self._formulas.get(area.sheet, [])
        out = []
        for r in range(area.first_row - 1, area.last_row):
            row = known[r] if r < len(known) else []
            out.append([
                f if c < len(row) and isinstance(f := row[c], str) and f.startswith("=")
                else None
                for c in range(area.first_col - 1, area.last_col)
            ])
        return out

    def write_block(self, sheet: str, row: int, col: int, grid: Grid) -> None:
        """Write values; the written cells hold no formula any more."""
        super().write_block(sheet, row, col, grid)
        known = self._formulas.get(sheet)
        if known:
            for r in range(row - 1, min(row - 1 + len(grid), len(known))):
                for c in range(col - 1, min(col - 1 + len(grid[0]), len(known[r]))):
                    known[r][c] = None

    def copy_format(self, source: Area, target: Area) -> None:
        """Nothing: Office.js cannot read a number format synchronously."""

    def status(self, text: str) -> None:
        """Print the line (xlwings Lite's output pane) and keep it in :attr:`messages`."""
        self.messages.append(text)
        print(text)

    def add_figure(self, area: Area, figure: Any, name: str) -> None:
        """Put a matplotlib figure on the sheet (a picture of that name is replaced)."""
        sheet = self.book.sheets[area.sheet]
        anchor = sheet.range((area.first_row, area.first_col))
        if name in [p.name for p in sheet.pictures]:
            sheet.pictures[name].delete()
        sheet.pictures.add(figure, name=name, anchor=anchor)


def _xlwings_area(rng: Any) -> Area:
    last = rng.last_cell
    return Area(str(rng.sheet.name), int(rng.row), int(rng.column), int(last.row),
                int(last.column))


def _xlwings_value(value: Any) -> Any:
    if isinstance(value, str):
        return "'" + value if value else None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- openpyxl


class OpenpyxlBook:
    """A workbook file (``.xlsm`` or ``.xlsx``) through openpyxl.

    The whole file is read once; changes stay in memory until :meth:`save`,
    which replaces the file atomically (a temporary file renamed over it), so
    a failure leaves the file as it was.

    Parameters
    ----------
    path : path-like
        The workbook.
    echo : callable, optional
        Called with each :meth:`status` line (default: the lines are only
        kept in :attr:`messages` and logged).

    Raises
    ------
    InputError
        The file does not exist or is not an Excel workbook.

    """

    def __init__(self, path: str | os.PathLike, *, echo: Callable[[str], object] | None = None):
        from openpyxl import load_workbook

        self.path = Path(path)
        self.messages: list[str] = []
        self._echo = echo
        try:
            self._original = self.path.read_bytes()
        except FileNotFoundError:
            raise InputError(f"no such workbook {self.path}", "workbook") from None
        except OSError as exc:
            raise InputError(f"cannot read the workbook {self.path}: {exc.strerror}",
                             "workbook") from None
        self._keep_vba = self.path.suffix.lower() in (".xlsm", ".xltm")
        try:
            self._wb = load_workbook(io.BytesIO(self._original), keep_vba=self._keep_vba)
        except (zipfile.BadZipFile, KeyError, ValueError, ElementTree.ParseError) as exc:
            raise InputError(f"{self.path.name} is not a readable Excel workbook "
                             f"({type(exc).__name__})", "workbook") from None
        self._values: Any = None  # the cached formula results, loaded when first needed
        self.folder = self.path.resolve().parent

    @property
    def title(self) -> str:
        """The file's name."""
        return self.path.name

    @property
    def workbook(self) -> Any:
        """The ``openpyxl.Workbook`` (for tests and tools; macros use the methods)."""
        return self._wb

    # ----------------------------------------------------------------- names

    def names(self) -> dict[str, Area]:
        """Every workbook-level name that refers to one rectangle of cells."""
        found = {}
        for name, defined in self._wb.defined_names.items():
            area = _openpyxl_area(defined)
            if area is not None:
                found[name] = area
        return found

    def name_range(self, name: str) -> Area:
        """The cells a workbook name refers to."""
        defined = self._wb.defined_names.get(name)
        if defined is None:
            raise InputError(f"the workbook {self.title} has no name {name}", name)
        area = _openpyxl_area(defined)
        if area is None or area.sheet not in self._wb.sheetnames:
            raise InputError(f"the name {name} does not refer to one range of cells "
                             f"({defined.attr_text})", name)
        return area

    def set_name(self, name: str, area: Area) -> None:
        """Make the workbook name refer to ``area`` (its other attributes are kept)."""
        from openpyxl.workbook.defined_name import DefinedName

        text = area.refers_to[1:]
        defined = self._wb.defined_names.get(name)
        if defined is None:
            self._wb.defined_names[name] = DefinedName(name, attr_text=text)
        else:
            defined.attr_text = text

    # ----------------------------------------------------------------- cells

    def _map(self, area: Area, value: Callable[[Any], Any]) -> Grid:
        """``value(cell)`` for each cell of an area, row by row (None for an empty cell).

        No cell is created by reading.
        """
        ws = self._sheet(area.sheet)
        return [[None if (cell := ws._cells.get((r, c))) is None else value(cell)
                 for c in range(area.first_col, area.last_col + 1)]
                for r in range(area.first_row, area.last_row + 1)]

    def read(self, area: Area) -> Grid:
        """The values of an area; a formula gives the result Excel last saved."""
        return self._map(area, self._value)

    def formulas(self, area: Area) -> Grid:
        """The formula text of each cell of an area, None where a cell holds none."""
        from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

        def formula(cell: Any) -> str | None:
            if isinstance(cell.value, ArrayFormula):
                return cell.value.text
            if isinstance(cell.value, DataTableFormula):
                return "=TABLE()"
            return cell.value if cell.data_type == "f" else None

        return self._map(area, formula)

    def _value(self, cell: Any) -> Any:
        from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

        value = cell.value
        if cell.data_type == "f" or isinstance(value, ArrayFormula | DataTableFormula):
            value = self._cached(cell.parent.title, cell.row, cell.column)
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def _cached(self, sheet: str, row: int, col: int) -> Any:
        if self._values is None:
            from openpyxl import load_workbook

            self._values = load_workbook(io.BytesIO(self._original), data_only=True)
        return self._values[sheet].cell(row, col).value

    def write_block(self, sheet: str, row: int, col: int, grid: Grid) -> None:
        """Write values (texts as text, non-finite numbers as blanks)."""
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        ws = self._sheet(sheet)
        for i, values in enumerate(grid):
            for j, value in enumerate(values):
                cell = ws.cell(row + i, col + j)
                if isinstance(value, float) and not math.isfinite(value):
                    value = None
                elif isinstance(value, str):
                    value = ILLEGAL_CHARACTERS_RE.sub("", value) or None
                cell.value = value
                if isinstance(value, str) and cell.data_type == "f":
                    cell.data_type = "s"  # "=..." from outside is text, not a formula

    def clear(self, area: Area) -> None:
        """Blank the values of an area (formats are kept)."""
        ws = self._sheet(area.sheet)
        for (r, c), cell in list(ws._cells.items()):
            if area.first_row <= r <= area.last_row and area.first_col <= c <= area.last_col:
                cell.value = None

    def copy_format(self, source: Area, target: Area) -> None:
        """Give each row of ``target`` the style of ``source``, column by column."""
        ws = self._sheet(source.sheet)
        for c in range(target.first_col, target.last_col + 1):
            src = ws._cells.get((source.first_row, c))
            if src is None or not src.has_style:
                continue
            for r in range(target.first_row, target.last_row + 1):
                ws.cell(r, c)._style = copy.copy(src._style)

    def set_format(self, area: Area, num_format: str) -> None:
        """Give every cell of an area one number format."""
        ws = self._sheet(area.sheet)
        for r in range(area.first_row, area.last_row + 1):
            for c in range(area.first_col, area.last_col + 1):
                ws.cell(r, c).number_format = num_format

    def add_picture(self, area: Area, path: str | os.PathLike, name: str) -> None:
        """Anchor a PNG at the area's top-left cell, replacing a picture anchored there.

        openpyxl keeps no picture names: a picture is identified by its anchor cell.
        """
        from openpyxl.drawing.image import Image

        ws = self._sheet(area.sheet)
        cell = f"{column_letter(area.first_col)}{area.first_row}"
        ws._images = [im for im in ws._images if _image_cell(im) != cell]
        image = Image(io.BytesIO(Path(path).read_bytes()))
        image.anchor = cell
        ws.add_image(image)

    def _sheet(self, name: str) -> Any:
        if name not in self._wb.sheetnames:
            raise InputError(f"the workbook {self.title} has no sheet {name}", "sheet")
        return self._wb[name]

    # ----------------------------------------------------------------- status, save

    def status(self, text: str) -> None:
        """Keep the line in :attr:`messages`, log it and echo it when asked to."""
        self.messages.append(text)
        log.info("%s: %s", self.title, text)
        if self._echo is not None:
            self._echo(text)

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the workbook atomically (default: over the file it was read from).

        The dynamic-array marking openpyxl drops is put back; a workbook that
        would lose something else is not written.

        Parameters
        ----------
        path : path-like, optional
            Where to write; default :attr:`path`.

        Raises
        ------
        InputError
            Saving through openpyxl would lose part of the workbook (the
            message says what); nothing is written.
        OSError
            The file cannot be written (nothing is replaced).

        """
        target = Path(path) if path is not None else self.path
        self._wb.calculation.fullCalcOnLoad = True  # openpyxl drops the cached results
        buffer = io.BytesIO()
        self._wb.save(buffer)
        data = restore_package(self._original, buffer.getvalue(), self.title)
        _write_atomic(target, data)


def _image_cell(image: Any) -> str | None:
    """The top-left cell (``H5``) an openpyxl image is anchored at."""
    anchor = image.anchor
    if isinstance(anchor, str):
        return anchor
    try:
        frm = anchor._from
        return f"{column_letter(frm.col + 1)}{frm.row + 1}"
    except AttributeError:
        return None


def _openpyxl_area(defined: Any) -> Area | None:
    from openpyxl.utils.cell import range_boundaries

    try:
        destinations = list(defined.destinations)
    except Exception:
        return None
    if len(destinations) != 1:
        return None
    sheet, ref = destinations[0]
    try:
        c1, r1, c2, r2 = range_boundaries(ref.replace("$", ""))
    except (ValueError, TypeError):
        return None
    if None in (c1, r1, c2, r2):  # whole rows or columns
        return None
    return Area(sheet, r1, c1, r2, c2)


def _write_atomic(target: Path, data: bytes) -> None:
    """``data`` into ``target`` through a temporary file renamed over it."""
    atomic_write(target, lambda tmp: tmp.write_bytes(data))


def write_table_xlsx(frame: Any, path: str | os.PathLike, sheet: str = "Holdings") -> None:
    """Write a table (header row, then rows) to a new ``.xlsx`` file, atomically.

    Parameters
    ----------
    frame : pandas.DataFrame
        Written without its index; NaN becomes a blank cell.
    path : path-like
        The file, replaced only once the new one is complete.
    sheet : str
        The sheet's name.

    """
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    ws = book.active
    ws.title = sheet
    columns = [str(c) for c in frame.columns]
    ws.append(columns)
    for row in frame.itertuples(index=False, name=None):
        ws.append([_plain(v) for v in row])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for col in ws.iter_cols():  # the header too: a ticker can be a column name
        for cell in col:
            if isinstance(cell.value, str) and cell.data_type == "f":
                cell.data_type = "s"
    buffer = io.BytesIO()
    book.save(buffer)
    _write_atomic(Path(path), buffer.getvalue())


def _plain(value: Any) -> Any:
    """A cell value from a pandas/numpy one: Python types, NaN as ``None``."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date | str | bool | int | float):
        return value
    return str(value)


# --------------------------------------------------------------------------- the package

_NS_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_NS_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_REL_SHEET_METADATA = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sheetMetadata"
)
_CT_SHEET_METADATA = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheetMetadata+xml"
)
# What openpyxl may drop without loss: Excel rebuilds the calculation chain,
# openpyxl writes texts inline, printer blobs and thumbnails are not content.
_MAY_DROP = frozenset({"calcChain", "sharedStrings", "printerSettings", "thumbnail"})
# Things inside parts that openpyxl drops silently, counted before and after.
_SHEET_MARKS = {
    "dynamic-array formulas": re.compile(rb"<c\b[^>]*\scm=\""),
    "cells with rich values (pictures in cells, data types)": re.compile(rb"<c\b[^>]*\svm=\""),
    "Excel 2010+ sheet features (extLst: data validation lists, conditional formats, "
    "sparklines)": re.compile(rb"<extLst\b"),
}
_DRAWING_MARKS = {
    "shapes or buttons": re.compile(rb"<(?:\w+:)?(?:sp|grpSp|cxnSp)\b"),
    "pictures": re.compile(rb"<(?:\w+:)?pic\b"),
    "charts": re.compile(rb"<(?:\w+:)?graphicFrame\b"),
}
_CELL_TAG = re.compile(r"<c\b[^>]*>")
_REF_ATTR = re.compile(r'\sr="([A-Z]+[0-9]+)"')
_CM_ATTR = re.compile(r'\scm="([0-9]+)"')


def restore_package(original: bytes, saved: bytes, title: str = "the workbook") -> bytes:
    """Put back into an openpyxl-saved package what openpyxl dropped from the original.

    Parameters
    ----------
    original : bytes
        The package (zip) as it was read.
    saved : bytes
        The package as openpyxl wrote it.
    title : str
        The workbook's name, for messages.

    Returns
    -------
    bytes
        ``saved`` with the ``cm`` attributes of the cells that still hold an
        array formula, and (when the original had one) the cell metadata part
        with its content type and relationship.

    Raises
    ------
    InputError
        The result would still lack something the original had: a part other
        than the calculation chain, shared strings, printer settings or
        thumbnail; a VBA project that differs; shapes, pictures, charts,
        rich values, a sheet's extensions, or a dynamic-array mark.

    """
    old = zipfile.ZipFile(io.BytesIO(original))
    new = zipfile.ZipFile(io.BytesIO(saved))
    parts: dict[str, bytes] = {info.filename: new.read(info.filename) for info in new.infolist()}

    old_sheets, new_sheets = _sheet_parts(old), _sheet_parts(new)
    marked = 0
    for sheet, old_part in old_sheets.items():
        marks = _cell_marks(old.read(old_part).decode("utf-8"))
        new_part = new_sheets.get(sheet)
        if marks and new_part is not None:
            xml, count = _mark_cells(parts[new_part].decode("utf-8"), marks)
            if count:
                parts[new_part] = xml.encode("utf-8")
                marked += count

    if marked:
        _restore_metadata(old, parts)

    lost = _losses(old, parts, old_sheets, new_sheets)
    if lost:
        raise InputError(
            f"{title} has {', '.join(lost)}, which saving the file through openpyxl would "
            "lose; the file was not changed (refresh it in Excel instead)",
            "workbook",
        )

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return out.getvalue()


def _rels_path(part: str) -> str:
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def _relationships(z: zipfile.ZipFile | dict[str, bytes], part: str) -> list[dict[str, str]]:
    """The relationships of ``part`` (``""`` for the package), targets resolved."""
    path = "_rels/.rels" if not part else _rels_path(part)
    data = _read(z, path)
    if data is None:
        return []
    base = posixpath.dirname(part)
    found = []
    for rel in ElementTree.fromstring(data).iter(f"{{{_NS_REL}}}Relationship"):
        target = rel.get("Target", "")
        if rel.get("TargetMode") != "External":
            target = (target.lstrip("/") if target.startswith("/")
                      else posixpath.normpath(posixpath.join(base, target)))
        found.append({"id": rel.get("Id", ""), "type": rel.get("Type", ""), "target": target,
                      "external": str(rel.get("TargetMode") == "External")})
    return found


def _read(z: zipfile.ZipFile | dict[str, bytes], name: str) -> bytes | None:
    if isinstance(z, dict):
        return z.get(name)
    try:
        return z.read(name)
    except KeyError:
        return None


def _workbook_part(z: zipfile.ZipFile | dict[str, bytes]) -> str:
    for rel in _relationships(z, ""):
        if rel["type"].endswith("/officeDocument"):
            return rel["target"]
    return "xl/workbook.xml"


def _sheet_parts(z: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> worksheet part path."""
    book = _workbook_part(z)
    targets = {r["id"]: r["target"] for r in _relationships(z, book)}
    data = _read(z, book)
    if data is None:
        return {}
    found = {}
    for sheet in ElementTree.fromstring(data).iter(f"{{{_NS_MAIN}}}sheet"):
        target = targets.get(sheet.get(f"{{{_NS_R}}}id", ""))
        if target is not None:
            found[sheet.get("name", "")] = target
    return found


def _cell_marks(xml: str) -> dict[str, str]:
    """Cell reference -> ``cm`` value of every cell that has one."""
    marks = {}
    for tag in _CELL_TAG.finditer(xml):
        cm = _CM_ATTR.search(tag.group(0))
        ref = _REF_ATTR.search(tag.group(0))
        if cm and ref:
            marks[ref.group(1)] = cm.group(1)
    return marks


def _mark_cells(xml: str, marks: dict[str, str]) -> tuple[str, int]:
    """Add ``cm`` to the cells in ``marks`` that hold an array formula and lack it."""
    count = 0

    def mark(match: re.Match[str]) -> str:
        nonlocal count
        tag = match.group(0)
        ref = _REF_ATTR.search(tag)
        if ref is None or ref.group(1) not in marks or _CM_ATTR.search(tag):
            return tag
        rest = xml[match.end(): match.end() + 200]
        if tag.endswith("/>") or not re.match(r"\s*<f\b[^>]*\bt=\"array\"", rest):
            return tag
        count += 1
        return f'{tag[:-1]} cm="{marks[ref.group(1)]}">'

    return _CELL_TAG.sub(mark, xml), count


def _restore_metadata(old: zipfile.ZipFile, parts: dict[str, bytes]) -> None:
    """Copy the original cell metadata part, with its relationship and content type."""
    old_book = _workbook_part(old)
    source = next((r["target"] for r in _relationships(old, old_book)
                   if r["type"] == _REL_SHEET_METADATA), None)
    if source is None:
        return
    new_book = _workbook_part(parts)
    if any(r["type"] == _REL_SHEET_METADATA for r in _relationships(parts, new_book)):
        return
    data = old.read(source)
    name = source
    while name in parts:  # never overwrite a part openpyxl wrote
        name = posixpath.join(posixpath.dirname(name), "xlfuncs_" + posixpath.basename(name))
    parts[name] = data

    rels_path = _rels_path(new_book)
    rels = parts[rels_path].decode("utf-8")
    ids = {r["id"] for r in _relationships(parts, new_book)}
    n = 1
    while f"rId{n}" in ids:
        n += 1
    rel = f'<Relationship Id="rId{n}" Type="{_REL_SHEET_METADATA}" Target="/{name}"/>'
    parts[rels_path] = rels.replace("</Relationships>", rel + "</Relationships>").encode()

    ctype = _content_type(old, source) or _CT_SHEET_METADATA
    types = parts["[Content_Types].xml"].decode("utf-8")
    override = f'<Override PartName="/{name}" ContentType="{ctype}"/>'
    parts["[Content_Types].xml"] = types.replace("</Types>", override + "</Types>").encode()


def _content_type(z: zipfile.ZipFile, part: str) -> str | None:
    data = _read(z, "[Content_Types].xml")
    if data is None:
        return None
    for item in ElementTree.fromstring(data).iter(f"{{{_NS_CT}}}Override"):
        if item.get("PartName", "").lstrip("/") == part:
            return item.get("ContentType")
    return None


def _rel_types(z: zipfile.ZipFile | dict[str, bytes]) -> Counter[str]:
    names = z.keys() if isinstance(z, dict) else z.namelist()
    counts: Counter[str] = Counter()
    for name in names:
        if not name.endswith(".rels"):
            continue
        data = _read(z, name)
        if not data:
            continue
        try:
            root = ElementTree.fromstring(data)
        except ElementTree.ParseError:
            continue
        for rel in root.iter(f"{{{_NS_REL}}}Relationship"):
            kind = rel.get("Type", "").rsplit("/", 1)[-1]
            if kind not in _MAY_DROP:
                counts[kind] += 1
    return counts


def _count_marks(chunks: Iterable[bytes], marks: dict[str, re.Pattern[bytes]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for data in chunks:
        for what, pattern in marks.items():
            counts[what] += len(pattern.findall(data))
    return counts


def _losses(old: zipfile.ZipFile, parts: dict[str, bytes], old_sheets: dict[str, str],
            new_sheets: dict[str, str]) -> list[str]:
    """What the new package lacks that the original had, in words."""
    lost = []
    before, after = _rel_types(old), _rel_types(parts)
    for kind, count in sorted(before.items()):
        if after[kind] < count:
            lost.append(f"{_feature(kind)} ({count - after[kind]} of {count})")
    for name in old.namelist():
        if name.lower().endswith("vbaproject.bin") and name in parts and (
                parts[name] != old.read(name)):
            lost.append("a VBA project openpyxl would rewrite")
    sheet_before = _count_marks((old.read(p) for p in old_sheets.values()), _SHEET_MARKS)
    sheet_after = _count_marks((parts[p] for p in new_sheets.values() if p in parts),
                               _SHEET_MARKS)
    drawing_before = _count_marks((old.read(n) for n in old.namelist()
                                   if n.startswith("xl/drawings/") and n.endswith(".xml")),
                                  _DRAWING_MARKS)
    drawing_after = _count_marks((d for n, d in parts.items()
                                  if n.startswith("xl/drawings/") and n.endswith(".xml")),
                                 _DRAWING_MARKS)
    for counts_before, counts_after in ((sheet_before, sheet_after),
                                        (drawing_before, drawing_after)):
        for what, count in counts_before.items():
            if counts_after[what] < count:
                lost.append(what)
    return lost


def _feature(kind: str) -> str:
    words = {
        "customXml": "custom XML parts (e.g. sensitivity labels)",
        "extensibility": "a custom ribbon",
        "drawing": "drawings (shapes, pictures or charts)",
        "vmlDrawing": "legacy drawings (comments or form controls)",
        "image": "pictures",
        "chart": "charts",
        "sheetMetadata": "dynamic-array metadata",
        "vbaProject": "a VBA project",
        "richValue": "rich values",
        "slicer": "slicers",
        "slicerCache": "slicers",
        "threadedComment": "threaded comments",
        "person": "threaded comment authors",
        "pivotTable": "pivot tables",
        "pivotCacheDefinition": "pivot tables",
        "queryTable": "queries",
        "connections": "data connections",
        "externalLink": "links to other workbooks",
        "ctrlProp": "form controls",
        "control": "ActiveX controls",
        "table": "tables",
        "comments": "comments",
    }
    return words.get(kind, f"{kind} parts")
