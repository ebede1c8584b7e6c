"""Build the workbooks we ship (``workbooks/*.xlsm``) from a declared spec.

A workbook is data: a :class:`WorkbookSpec` holds sheets, and a sheet is a
list of blocks (a section heading, notes, an input table, a named input value,
a labelled input matrix, a formula that spills, a row of checks). The writer
lays the blocks out top to bottom, defines a workbook name for every named
input and result so the formulas read ``=IMPLIED_CORR(Weights, Vols, SpyVol,
HistCorr)``, and writes every xlfuncs formula with XlsxWriter's
``write_dynamic_array_formula`` so that Excel 365 spills it like a formula
typed by hand.

Each formula's result is computed while building, by calling the registered
Python function on the workbook's own data exactly as xlwings would pass it,
and stored as the cells' cached values: readers that do not calculate (file
previews, pandas and openpyxl) show numbers, and the tests compare them. An
error result stops the build. (LibreOffice, at least up to 7.4, drops the
cached results of every array formula when it opens an xlsx file, whatever its
Recalculation on File Load setting, and recalculates them: there the xlfuncs
cells show ``#VALUE!``, or ``#NAME?`` where they read a spill by its name.
Excel 365 stores a dynamic array as an array formula (``t="array"`` and ``cm``
metadata), so no file can spill in Excel and show the cached results there;
plain formulas keep theirs.)

The file is saved without a full recalculation at load (XlsxWriter's default):
Excel opens it showing the cached results, and ``ThisWorkbook``'s
``Workbook_Open`` registers the Function Wizard help and recalculates the
xlfuncs formulas once macros run.

The VBA project (the UDF wrappers generated from the registry, the Function
Wizard help, ``Workbook_Open`` and the hand-written modules in
``workbooks/src/vba``) is built
with pyopenvba (see :mod:`xlfuncs.excel.vba`) and embedded with
``add_vba_project``. Document properties carry a fixed date and XlsxWriter
writes fixed zip timestamps, so rebuilding gives byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import math
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_range_abs
from xlsxwriter.worksheet import Worksheet

import xlfuncs.udfs  # noqa: F401  (registers the worksheet functions in REGISTRY)
from xlfuncs.excel import vba
from xlfuncs.excel.cells import ERROR_PREFIX
from xlfuncs.excel.functions import REGISTRY
from xlfuncs.excel.guide import SETUP
from xlfuncs.report import STATS_COLUMNS, STATS_HEADERS, crisis_format, stat_format

__all__ = [
    "BUILD_DATE",
    "Band",
    "BandItem",
    "Call",
    "Checks",
    "ExcelFormula",
    "InputMatrix",
    "InputTable",
    "InputValue",
    "Notes",
    "Picture",
    "Ref",
    "Section",
    "SheetSpec",
    "Spill",
    "WorkbookSpec",
    "build_workbook",
    "build_workbooks",
    "display_text",
    "header_width",
    "main",
    "workbook_specs",
    "write_results_workbook",
]

#: Repository root (the builder runs from a source checkout: it needs workbooks/src).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where the built workbooks are kept in the repository.
WORKBOOKS_DIR = REPO_ROOT / "workbooks"
#: Hand-written VBA modules, one ``<name>.bas`` each.
VBA_SOURCE_DIR = WORKBOOKS_DIR / "src" / "vba"
#: Ribbon XML of the add-in.
RIBBON_SOURCE_DIR = WORKBOOKS_DIR / "src" / "ribbon"
#: Calculation engine of Excel 2019 and 365: a file saved by an older one is fully
#: recalculated at load.
EXCEL_CALC_ID = 191029
#: Creation date written into every file, so that rebuilding is reproducible.
BUILD_DATE = dt.datetime(2025, 2, 18, 0, 0, 0)

# Columns are 0-based in XlsxWriter.
_LABEL_COL = 0
# Excel's default column width, in characters.
_DEFAULT_WIDTH = 8.43

# --------------------------------------------------------------------------- the spec

Cell = float | str | None
Grid = list[list[Any]]


@dataclass(frozen=True)
class Ref:
    """A workbook name used as a formula argument, e.g. ``Ref("Weights")``."""

    name: str


Arg = Ref | str | float | bool


@dataclass(frozen=True)
class Call:
    """A call of a registered xlfuncs function.

    Parameters
    ----------
    function : str
        Name in :data:`~xlfuncs.excel.functions.REGISTRY`.
    args : tuple
        Arguments: :class:`Ref` for a workbook name, ``str`` for a text
        literal, ``float`` for a number.

    """

    function: str
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class ExcelFormula:
    """A formula of Excel built-in functions, with its value computed in Python.

    Parameters
    ----------
    text : str
        The formula without the leading ``=``, e.g. ``"SUM(Weights)"``.
    compute : callable
        Gets the names' grids (``{name: 2-D list}``) and returns the value.

    """

    text: str
    compute: Callable[[Mapping[str, Grid]], Any]


@dataclass(frozen=True)
class Section:
    """A bold heading row, an optional note row below it, after one blank row."""

    title: str
    note: str = ""


@dataclass(frozen=True)
class Notes:
    """Lines of text, one row each, under an optional heading."""

    lines: tuple[str, ...]
    heading: str = ""


@dataclass(frozen=True)
class Column:
    """One column of an input table; ``name`` names its values (without the header)."""

    header: str
    values: tuple[Cell, ...]
    num_format: str = ""
    name: str = ""
    is_input: bool = True


@dataclass(frozen=True)
class InputTable:
    """A header row and columns of equal length; an optional total row below."""

    columns: tuple[Column, ...]
    total_label: str = ""
    total: tuple[ExcelFormula | None, ...] = ()
    name: str = ""  # names the whole table, header row included
    # beside the table before it (same header row, one blank column between), so
    # that each grows downwards on its own
    beside: bool = False


@dataclass(frozen=True)
class InputValue:
    """One named input cell with a label in the first column."""

    label: str
    name: str
    value: float | str | bool | None
    num_format: str
    col: int = 2
    note: str = ""  # a hint written to the right of the value


@dataclass(frozen=True)
class InputMatrix:
    """A named square matrix with labels in its first row and column.

    The corner cell holds ``corner``, or is blank when that is empty.
    """

    name: str
    labels: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    num_format: str
    corner: str = ""


@dataclass(frozen=True)
class Spill:
    """A formula that spills; ``name`` names the whole spilled range."""

    formula: Call
    num_format: str
    name: str = ""


@dataclass(frozen=True)
class Check:
    """One row of :class:`Checks`: a label and a formula."""

    label: str
    formula: Call | ExcelFormula
    num_format: str


@dataclass(frozen=True)
class Checks:
    """Rows of label and single-value formula (value in column ``col``)."""

    rows: tuple[Check, ...]
    col: int = 4


@dataclass(frozen=True)
class BandItem:
    """One column group of a :class:`Band`: a title, checks, then a spilled result."""

    title: str
    spill: Spill
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Band:
    """Spilled results side by side, each under its title and its checks.

    A result whose size follows the data (holdings after a refresh) must have
    nothing below it, or Excel shows #SPILL!: a band is a sheet's last block and
    its results grow freely downwards. Items are computed in the order their
    names allow and laid out left to right as listed.
    """

    items: tuple[BandItem, ...]
    gap: int = 1


@dataclass(frozen=True)
class Picture:
    """A PNG picture (a chart) at the sheet's left edge, under an optional heading."""

    path: Path
    title: str = ""
    scale: float = 0.75


Block = Section | Notes | InputTable | InputValue | InputMatrix | Spill | Checks | Band | Picture


@dataclass(frozen=True)
class SheetSpec:
    """A worksheet: its name, VBA code name, title rows, blocks and layout."""

    name: str
    code_name: str
    title: str
    subtitle: str
    blocks: tuple[Block, ...]
    column_widths: tuple[tuple[int, int, float], ...] = ()
    freeze_rows: int = 2
    # widen columns to what their tables show: every header word and number readable
    fit_columns: bool = False


@dataclass(frozen=True)
class WorkbookSpec:
    """A workbook file: sheets, document properties and its VBA modules."""

    filename: str
    title: str
    subject: str
    sheets: tuple[SheetSpec, ...]
    vba_modules: tuple[str, ...] = ()
    keywords: str = "xlfuncs, xlwings"
    # sheets whose names others use are written first; tabs keep the order of ``sheets``
    write_order: tuple[str, ...] = ()
    ribbon: str = ""  # a customUI14 file in workbooks/src/ribbon (an add-in's ribbon tab)


# --------------------------------------------------------------------------- formulas


def formula_text(formula: Call | ExcelFormula) -> str:
    """The formula as Excel shows it, with the leading ``=``."""
    if isinstance(formula, ExcelFormula):
        return "=" + formula.text
    parts = []
    for a in formula.args:
        if isinstance(a, Ref):
            parts.append(a.name)
        elif isinstance(a, bool):
            parts.append("TRUE" if a else "FALSE")
        elif isinstance(a, str):
            parts.append('"' + a.replace('"', '""') + '"')
        else:
            text = repr(float(a))
            parts.append(text[:-2] if text.endswith(".0") else text)
    return f"={formula.function}({', '.join(parts)})"


def xlwings_value(grid: Grid, is_range: bool) -> Any:
    """What xlwings hands a UDF for a range holding ``grid``.

    A range argument (declared ``ndim=2``) arrives as a list of rows; any other
    argument as the value of a single cell, a 1-D list for one row or one
    column, or a list of rows.
    """
    if is_range:
        return [list(r) for r in grid]
    if len(grid) == 1 and len(grid[0]) == 1:
        return grid[0][0]
    if len(grid) == 1:
        return list(grid[0])
    if all(len(r) == 1 for r in grid):
        return [r[0] for r in grid]
    return [list(r) for r in grid]


def as_grid(result: Any) -> Grid:
    """A UDF result as the 2-D block of cells it fills (a 1-D list fills a row)."""
    if isinstance(result, list | tuple):
        if result and all(isinstance(r, list | tuple) for r in result):
            return [list(r) for r in result]
        return [list(result)]
    return [[result]]


def evaluate(formula: Call | ExcelFormula, names: Mapping[str, Grid]) -> Grid:
    """Compute a formula's cells on the workbook's data.

    Parameters
    ----------
    formula : Call or ExcelFormula
        The formula.
    names : mapping of str to 2-D list
        Cell values of the workbook names defined so far.

    Returns
    -------
    list of list
        The cells the formula fills.

    Raises
    ------
    ValueError
        When the function is unknown, an argument count is wrong, a name is not
        defined yet, or the result is an ``#xlfuncs!`` error.

    """
    if isinstance(formula, ExcelFormula):
        return as_grid(formula.compute(names))
    fn = REGISTRY.get(formula.function)
    if fn is None:
        raise ValueError(f"{formula.function} is not a registered xlfuncs function")
    if not fn.min_args <= len(formula.args) <= fn.max_args:
        raise ValueError(
            f"{formula_text(formula)}: {fn.name} takes {fn.min_args} to {fn.max_args} arguments"
        )
    values = []
    for spec, a in zip(fn.args, formula.args, strict=False):
        if isinstance(a, Ref):
            if a.name not in names:
                raise ValueError(f"{formula_text(formula)}: the name {a.name} is not defined above")
            values.append(xlwings_value(names[a.name], spec.is_range))
        else:
            values.append(a if isinstance(a, str | bool) else float(a))
    result = fn.func(*values)
    grid = as_grid(result)
    bad = [c for r in grid for c in r if isinstance(c, str) and c.startswith(ERROR_PREFIX)]
    if bad:
        raise ValueError(f"{formula_text(formula)} gives {bad[0]}")
    return grid


# --------------------------------------------------------------------------- the writer


def _stored(value: Any) -> Any:
    """A result as cached in the file: numbers to 10 significant digits.

    The cached values are for display; rounding keeps the file identical when a
    rebuild on another CPU differs in the last bits of a solver's result.
    """
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.10g}")
    return value


def _as_written(value: Any) -> Any:
    """A value as a reader gets it back: XlsxWriter writes numbers with 16 digits."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.16G}")
    return value


# Column widths are in characters of the default font; bold headers and the cell
# margins need a little more.
_BOLD = 1.1
_MARGIN = 1.5
_DECIMALS = re.compile(r"\.([0#]+)")


def display_text(value: Any, num_format: str = "") -> str:
    """The text a cell shows for ``value`` under ``num_format`` (for fitting widths).

    Covers the formats the workbooks use: ``0.00``, ``0.0%``, ``#,##0``,
    dates, and General (at most 11 characters, as Excel shows a number).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.date):
        return num_format or "yyyy-mm-dd"
    number = float(value)
    if not num_format or num_format == "General":
        return f"{number:.10g}"[:11]
    percent = "%" in num_format
    m = _DECIMALS.search(num_format)
    digits = len(m.group(1)) if m else 0
    group = "," if "," in num_format else ""
    return f"{number * 100 if percent else number:{group}.{digits}f}" + ("%" if percent else "")


def header_width(text: str, lines: int = 2) -> int:
    """Fewest characters a wrapped header needs to show in ``lines`` lines, words unbroken."""
    words = text.split()
    if not words:
        return 0
    width = max(len(w) for w in words)
    while True:
        used, line = 1, 0
        for w in words:
            if line and line + 1 + len(w) > width:
                used, line = used + 1, len(w)
            else:
                line += (1 if line else 0) + len(w)
        if used <= lines:
            return width
        width += 1


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height in pixels of a PNG file's bytes."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("a picture must be a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class _Styles:
    """XlsxWriter formats made on first use, in a fixed order (reproducible files)."""

    _BASE: Mapping[str, Mapping[str, Any]] = {
        "title": {"bold": True, "font_size": 14},
        "subtitle": {"italic": True, "font_color": "#595959"},
        "section": {"bold": True, "font_size": 12, "bottom": 1},
        "note": {"italic": True, "font_color": "#595959"},
        "text": {},
        "header": {"bold": True, "text_wrap": True, "valign": "bottom", "bottom": 1},
        "number_header": {
            "bold": True,
            "text_wrap": True,
            "valign": "bottom",
            "bottom": 1,
            "align": "right",
        },
        "label": {"bold": True},
        "input": {"font_color": "#0000FF"},
        "input_label": {"bold": True, "font_color": "#0000FF"},
        "column_label": {"bold": True, "align": "right"},
        "input_column_label": {"bold": True, "font_color": "#0000FF", "align": "right"},
        "result": {},
    }

    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self._book = book
        self._cache: dict[tuple[str, str], Format] = {}

    def __call__(self, kind: str, num_format: str = "") -> Format:
        key = (kind, num_format)
        if key not in self._cache:
            props = dict(self._BASE[kind])
            if num_format:
                props["num_format"] = num_format
            self._cache[key] = self._book.add_format(props)
        return self._cache[key]


def _kind(value: Any, i: int, j: int, base: str) -> str:
    """Style of a matrix cell: labels bold (right-aligned over columns), numbers plain."""
    if not isinstance(value, str):
        return base or "result"
    prefix = base + "_" if base else ""
    return prefix + ("column_label" if i == 0 and j > 0 else "label")


@dataclass
class _SheetWriter:
    """Lays out one sheet's blocks from top to bottom."""

    book: xlsxwriter.Workbook
    sheet: Worksheet
    spec: SheetSpec
    styles: _Styles
    names: dict[str, Grid]
    row: int = 0
    closed: bool = False  # after a Band nothing may be written below
    last_table: tuple[int, int] = (0, 0)  # the last input table's header row and its next column
    widths: dict[int, float] = field(default_factory=dict)  # what each column must show

    def _fit(self, col: int, text: str, bold: bool = False, wrap: bool = False) -> None:
        need = (header_width(text) if wrap else len(text)) * (_BOLD if bold else 1.0)
        self.widths[col] = max(self.widths.get(col, 0.0), need + _MARGIN)

    # ---- helpers

    def _define(self, name: str, first_row: int, first_col: int, grid: Grid,
                spill: bool = False) -> None:
        """Name a block of cells; a ``spill`` name follows its dynamic array's size.

        A spilled result grows and shrinks with its inputs (more holdings, more
        assets), so its name refers to the spill of its anchor cell (``A33#``,
        stored as ``_xlfn.ANCHORARRAY``), not to the cells it filled at build time.
        """
        if name in self.names:
            raise ValueError(f"the name {name} is defined twice")
        last_row, last_col = first_row + len(grid) - 1, first_col + len(grid[0]) - 1
        ref = xl_range_abs(first_row, first_col, last_row, last_col)
        if spill or (first_row == last_row and first_col == last_col):
            ref = ref.split(":")[0]
        target = f"'{self.spec.name}'!{ref}"
        self.book.define_name(name, f"=_xlfn.ANCHORARRAY({target})" if spill else f"={target}")
        self.names[name] = grid

    def _cell(self, row: int, col: int, value: Any, fmt: Format) -> None:
        if value is None:
            self.sheet.write_blank(row, col, None, fmt)
        elif isinstance(value, str):
            self.sheet.write_string(row, col, value, fmt)
        elif isinstance(value, bool):
            self.sheet.write_boolean(row, col, value, fmt)
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError(f"cannot store {value} in a cell")
            self.sheet.write_number(row, col, float(value), fmt)
        elif isinstance(value, dt.datetime | dt.date):
            self.sheet.write_datetime(row, col, value, fmt)
        else:
            raise TypeError(f"cannot store a {type(value).__name__} in a cell")

    def _formula(
        self, row: int, col: int, formula: Call | ExcelFormula, num_format: str, name: str = "",
        result: Grid | None = None,
    ) -> Grid:
        """Write a formula and its cached result cells; return the grid."""
        if result is None:
            result = evaluate(formula, self.names)
        grid = [[_stored(v) for v in r] for r in result]
        height, width = len(grid), len(grid[0])
        first = grid[0][0]
        first_style = self.styles("label" if isinstance(first, str) else "result", num_format)
        if isinstance(formula, ExcelFormula):
            if height != 1 or width != 1:
                raise ValueError(f"{formula_text(formula)} must give one value")
            # A plain formula: Excel does not add @ to built-ins over names and ranges.
            self.sheet.write_formula(row, col, formula_text(formula), first_style, first)
        else:
            self.sheet.write_dynamic_array_formula(
                row,
                col,
                row + height - 1,
                col + width - 1,
                formula_text(formula),
                first_style,
                "" if first is None else first,
            )
        for i, cells in enumerate(grid):
            for j, value in enumerate(cells):
                if i or j:
                    kind = _kind(value, i, j, "")
                    self._cell(row + i, col + j, value, self.styles(kind, num_format))
                self._fit(col + j, display_text(value, num_format), bold=isinstance(value, str))
        if name:
            self._define(name, row, col, grid, spill=not isinstance(formula, ExcelFormula))
        return grid

    # ---- blocks

    def title(self) -> None:
        self.sheet.write_string(0, _LABEL_COL, self.spec.title, self.styles("title"))
        self.sheet.write_string(1, _LABEL_COL, self.spec.subtitle, self.styles("subtitle"))
        self.row = 2

    def section(self, b: Section) -> None:
        self.row += 1
        self.sheet.write_string(self.row, _LABEL_COL, b.title, self.styles("section"))
        self.row += 1
        if b.note:
            self.sheet.write_string(self.row, _LABEL_COL, b.note, self.styles("note"))
            self.row += 1

    def notes(self, b: Notes) -> None:
        if b.heading:
            self.section(Section(b.heading))
        for line in b.lines:
            self.sheet.write_string(self.row, _LABEL_COL, line, self.styles("text"))
            self.row += 1

    def input_table(self, b: InputTable) -> None:
        length = {len(c.values) for c in b.columns}
        if len(length) != 1:
            raise ValueError("the columns of an input table must have the same length")
        n = length.pop()
        below = self.row
        head, left = self.last_table if b.beside else (self.row, _LABEL_COL)
        if b.beside:
            left += 1
        self.sheet.set_row(head, 30)  # room for two lines of a wrapped header
        for j, c in enumerate(b.columns):
            kind = "number_header" if c.num_format else "header"
            self.sheet.write_string(head, left + j, c.header, self.styles(kind))
            self._fit(left + j, c.header, bold=True, wrap=True)
        top = head + 1
        for j, c in enumerate(b.columns):
            kind = (("input" if c.num_format else "input_label") if c.is_input
                    else ("result" if c.num_format else "label"))
            for i, v in enumerate(c.values):
                self._cell(top + i, left + j, v, self.styles(kind, c.num_format))
                self._fit(left + j, display_text(v, c.num_format),
                          bold=kind in ("label", "input_label"))
            if c.name:
                self._define(c.name, top, left + j, [[_as_written(v)] for v in c.values])
        if b.name:
            grid = [[c.header for c in b.columns]]
            grid += [[_as_written(c.values[i]) for c in b.columns] for i in range(n)]
            self._define(b.name, top - 1, left, grid)
        self.row = max(below, top + n)
        self.last_table = (head, left + len(b.columns))
        if b.total_label:
            self.sheet.write_string(self.row, left, b.total_label, self.styles("label"))
            for j, (c, f) in enumerate(zip(b.columns, b.total, strict=False)):
                if f is not None:
                    self._formula(self.row, left + j, f, c.num_format)
            self.row += 1

    def input_value(self, b: InputValue) -> None:
        self.sheet.write_string(self.row, _LABEL_COL, b.label, self.styles("label"))
        self._cell(self.row, b.col, b.value, self.styles("input", b.num_format))
        if b.note:
            self.sheet.write_string(self.row, b.col + 1, b.note, self.styles("note"))
        self._define(b.name, self.row, b.col, [[_as_written(b.value)]])
        self.row += 1

    def input_matrix(self, b: InputMatrix) -> None:
        n = len(b.labels)
        if len(b.values) != n or any(len(r) != n for r in b.values):
            raise ValueError(f"{b.name} must be a square matrix with one label per row")
        grid: Grid = [[b.corner or None, *b.labels]]
        grid += [[lab, *row] for lab, row in zip(b.labels, b.values, strict=True)]
        for i, cells in enumerate(grid):
            for j, v in enumerate(cells):
                kind = _kind(v, i, j, "input")
                self._cell(self.row + i, _LABEL_COL + j, v, self.styles(kind, b.num_format))
                self._fit(_LABEL_COL + j, display_text(v, b.num_format), bold=isinstance(v, str))
        self._define(b.name, self.row, _LABEL_COL, [[_as_written(v) for v in r] for r in grid])
        self.row += len(grid)

    def spill(self, b: Spill) -> None:
        grid = self._formula(self.row, _LABEL_COL, b.formula, b.num_format, b.name)
        self.row += len(grid)

    def checks(self, b: Checks) -> None:
        for c in b.rows:
            self.sheet.write_string(self.row, _LABEL_COL, c.label, self.styles("text"))
            grid = self._formula(self.row, b.col, c.formula, c.num_format)
            if len(grid) != 1 or len(grid[0]) != 1:
                raise ValueError(f"{formula_text(c.formula)} must give one value for a check")
            self.row += 1

    def band(self, b: Band) -> None:
        pending = {i: item for i, item in enumerate(b.items)}
        results: dict[int, Grid] = {}
        while pending:  # evaluate in dependency order (an item may use another's name)
            known = {**self.names, **{b.items[i].spill.name: g for i, g in results.items()
                                       if b.items[i].spill.name}}
            ready = [i for i, item in pending.items()
                     if all(a.name in known for a in item.spill.formula.args if isinstance(a, Ref))]
            if not ready:
                first = next(iter(pending.values()))
                evaluate(first.spill.formula, known)  # raises: names one that is not defined
            for i in ready:
                results[i] = evaluate(pending.pop(i).spill.formula, known)
        top = self.row + 1
        first_spill_row = top + 2 + max(len(item.checks) for item in b.items)
        cols, col = [], _LABEL_COL
        for i, item in enumerate(b.items):  # the spills first: the checks may use their names
            self._formula(first_spill_row, col, item.spill.formula, item.spill.num_format,
                          item.spill.name, results[i])
            cols.append(col)
            col += len(results[i][0]) + b.gap
        for i, item in enumerate(b.items):
            col, width = cols[i], len(results[i][0])
            self.sheet.write_string(top, col, item.title, self.styles("section"))
            self.sheet.write_string(top + 1, col, formula_text(item.spill.formula),
                                    self.styles("note"))
            for k, check in enumerate(item.checks):
                self.sheet.write_string(top + 2 + k, col, check.label, self.styles("text"))
                value = self._formula(top + 2 + k, col + max(width, 2) - 1, check.formula,
                                      check.num_format)
                if len(value) != 1 or len(value[0]) != 1:
                    raise ValueError(f"{formula_text(check.formula)} must give one value")
        self.row = first_spill_row + max(len(g) for g in results.values())
        self.closed = True

    def picture(self, b: Picture) -> None:
        if b.title:
            self.section(Section(b.title))
        data = Path(b.path).read_bytes()
        _, height = _png_size(data)
        self.sheet.insert_image(self.row, _LABEL_COL, Path(b.path).name, {
            "image_data": io.BytesIO(data), "x_scale": b.scale, "y_scale": b.scale,
            "object_position": 1})
        self.row += math.ceil(height * b.scale / 20) + 1  # rows of 20 pixels

    def write(self) -> None:
        self.title()
        handlers: dict[type, Callable[[Any], None]] = {
            Section: self.section,
            Notes: self.notes,
            InputTable: self.input_table,
            InputValue: self.input_value,
            InputMatrix: self.input_matrix,
            Spill: self.spill,
            Checks: self.checks,
            Band: self.band,
            Picture: self.picture,
        }
        for block in self.spec.blocks:
            if self.closed:
                raise ValueError(f"{self.spec.name}: a Band must be the sheet's last block")
            handlers[type(block)](block)
        given: dict[int, float] = {}
        for first, last, width in self.spec.column_widths:
            self.sheet.set_column(first, last, width)
            given.update(dict.fromkeys(range(first, last + 1), width))
        if self.spec.fit_columns:
            for col, need in sorted(self.widths.items()):
                if need > given.get(col, _DEFAULT_WIDTH):
                    self.sheet.set_column(col, col, round(need, 1))
        if self.spec.freeze_rows:
            self.sheet.freeze_panes(self.spec.freeze_rows, 0)
        self.sheet.set_landscape()
        self.sheet.set_paper(9)  # A4
        self.sheet.fit_to_pages(1, 0)
        self.sheet.repeat_rows(0, max(self.spec.freeze_rows - 1, 0))


def _write_sheets(book: xlsxwriter.Workbook, specs: Sequence[SheetSpec],
                  write_order: Sequence[str] = (), code_names: bool = False) -> None:
    """Lay out every sheet; names are shared, so sheets others use are written first."""
    styles = _Styles(book)
    names: dict[str, Grid] = {}  # workbook names, shared by the sheets
    sheets = {}
    for sheet_spec in specs:
        sheets[sheet_spec.name] = book.add_worksheet(sheet_spec.name)
        if code_names:
            sheets[sheet_spec.name].set_vba_name(sheet_spec.code_name)
    by_name = {s.name: s for s in specs}
    order = [*write_order, *(s.name for s in specs if s.name not in write_order)]
    for sheet_name in order:
        _SheetWriter(book, sheets[sheet_name], by_name[sheet_name], styles, names).write()
    sheets[specs[0].name].activate()


def write_results_workbook(path: Path, title: str, sheets: Sequence[SheetSpec]) -> Path:
    """Write a workbook of results (values and pictures, no macros) laid out as ours are.

    The same blocks, formats and styles as the shipped workbooks; sheets with
    ``fit_columns`` get columns as wide as their tables need. The file is
    written whole or not at all.

    Parameters
    ----------
    path : Path
        The ``.xlsx`` file to write.
    title : str
        Document title.
    sheets : sequence of SheetSpec
        The sheets, in tab order; their blocks hold values (a formula block
        would be computed and stored as in a shipped workbook).

    Returns
    -------
    Path
        The file written.

    """
    from xlfuncs._files import atomic_write

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    book.set_properties({"title": title, "author": "xlfuncs",
                         "comments": "Written by xlfuncs from the results of a run."})
    _write_sheets(book, sheets)
    book.close()
    data = buffer.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def build_workbook(spec: WorkbookSpec, out_dir: Path, vba_dir: Path = VBA_SOURCE_DIR) -> Path:
    """Write one workbook.

    Parameters
    ----------
    spec : WorkbookSpec
        What to write.
    out_dir : Path
        Folder of the file (created when missing).
    vba_dir : Path
        Folder of the hand-written ``.bas`` modules the spec names.

    Returns
    -------
    Path
        The file written.

    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / spec.filename
    functions = list(REGISTRY.values())
    addin = spec.filename.lower().endswith(".xlam")  # xlwings hands an add-in ActiveWorkbook
    modules = {
        vba.WRAPPER_MODULE: vba.wrapper_module(
            functions, workbook="ActiveWorkbook" if addin else "ThisWorkbook"),
        vba.HELP_MODULE: vba.help_module(functions),
        **vba.read_vba_sources(vba_dir, spec.vba_modules),
    }
    project = vba.vba_project_bin([(s.name, s.code_name) for s in spec.sheets], modules,
                                  documents={"ThisWorkbook": vba.workbook_module()})

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    book.set_properties(
        {
            "title": spec.title,
            "subject": spec.subject,
            "author": "xlfuncs",
            "company": "",
            "keywords": spec.keywords,
            "comments": "Generated by xlfuncs.excel.build; rebuild instead of editing.",
            "created": BUILD_DATE,
        }
    )
    # No full recalculation at load (XlsxWriter's default): Excel would run it before
    # macros are enabled, without the VBA wrappers, and show #NAME? in every xlfuncs
    # cell; the cached results stay until Workbook_Open recalculates them. The
    # calcId is Excel 365's, as an older one makes Excel recalculate everything too.
    book.set_calc_mode("auto", calc_id=EXCEL_CALC_ID)
    book.calc_on_load = False
    book.set_vba_name("ThisWorkbook")
    book.add_vba_project(io.BytesIO(project), is_stream=True)  # type: ignore[arg-type]
    _write_sheets(book, spec.sheets, spec.write_order, code_names=True)
    book.close()
    data = buffer.getvalue()
    if spec.ribbon:
        data = with_ribbon(data, (RIBBON_SOURCE_DIR / spec.ribbon).read_text(encoding="utf-8"))
    if path.suffix == ".xlam":
        data = as_addin(data)
    path.write_bytes(data)
    return path


#: The relationship type of a ribbon customisation part (Office 2010 and later).
RIBBON_RELATIONSHIP = "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility"
RIBBON_PART = "customUI/customUI14.xml"
_ADDIN_CONTENT_TYPE = "application/vnd.ms-excel.addin.macroEnabled.main+xml"
_XLSM_CONTENT_TYPE = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"


def _rewrite_package(data: bytes, edit: Callable[[str, bytes], bytes],
                     extra: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """Copy a zip package part by part through ``edit``, adding ``extra`` parts at the end.

    Entries keep XlsxWriter's fixed timestamps, so the result stays reproducible.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(
        out, "w", zipfile.ZIP_DEFLATED
    ) as dst:
        for info in src.infolist():
            dst.writestr(info, edit(info.filename, src.read(info)))
        for name, body in extra:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, body)
    return out.getvalue()


def with_ribbon(data: bytes, ribbon_xml: str) -> bytes:
    """Add a ribbon tab (a ``customUI14.xml`` part and its package relationship)."""
    ET.fromstring(ribbon_xml)  # well-formed, or the build stops here
    rel = (f'<Relationship Id="rIdXlfuncsRibbon" Type="{RIBBON_RELATIONSHIP}" '
           f'Target="{RIBBON_PART}"/>')

    def edit(name: str, body: bytes) -> bytes:
        if name == "_rels/.rels":
            text = body.decode("utf-8")
            if "</Relationships>" not in text:
                raise ValueError("the package relationships have no closing tag")
            return text.replace("</Relationships>", rel + "</Relationships>").encode("utf-8")
        return body

    return _rewrite_package(data, edit, [(RIBBON_PART, ribbon_xml.encode("utf-8"))])


def as_addin(data: bytes) -> bytes:
    """Turn a macro-enabled workbook package into an add-in (``.xlam``) package."""

    def edit(name: str, body: bytes) -> bytes:
        if name == "[Content_Types].xml":
            text = body.decode("utf-8")
            if _XLSM_CONTENT_TYPE not in text:
                raise ValueError("the package is not a macro-enabled workbook")
            return text.replace(_XLSM_CONTENT_TYPE, _ADDIN_CONTENT_TYPE).encode("utf-8")
        return body

    return _rewrite_package(data, edit)


# --------------------------------------------------------------------------- the workbooks


def _sum(name: str) -> ExcelFormula:
    return ExcelFormula(f"SUM({name})", lambda names: sum(r[0] for r in names[name]))


def _same(name: str) -> ExcelFormula:
    return ExcelFormula(name, lambda names: names[name][0][0])


def implied_cov_sheet() -> SheetSpec:
    """The ImpliedCov sheet: the SPY sector example of SPEC section 5."""
    from xlfuncs.data.samples import sector_example

    ex = sector_example()
    tickers = tuple(ex.tickers)
    weights, vols, spy = Ref("Weights"), Ref("Vols"), Ref("SpyVol")
    hist, implied, shift = Ref("HistCorr"), Ref("ImpliedCorr"), Ref("ShiftCorr")
    nearest = Call("IMPLIED_CORR", (weights, vols, spy, hist))
    shifted = Call("IMPLIED_CORR", (weights, vols, spy, hist, "shift"))
    cov = Call("IMPLIED_COV", (weights, vols, spy, hist))
    pct, corr_fmt, cov_fmt = "0.0%", "0.000", "0.0000"

    blocks: tuple[Block, ...] = (
        Notes(
            heading="How to use",
            lines=(
                *SETUP,
                "Blue cells are inputs, named Weights, Vols, SpyVol and HistCorr. A result "
                "reading #xlfuncs! names the input at fault.",
            ),
        ),
        Section(
            "Inputs: SPY's 11 sector ETFs on 18 Feb 2025",
            "Weights (SPY weight) and Vols (30-day implied vol): one row per ticker.",
        ),
        InputTable(
            columns=(
                Column("Ticker", tickers, name="Tickers"),
                Column("SPY weight", tuple(float(x) for x in ex.weights), "0.00%", "Weights"),
                Column("30-day implied vol", tuple(float(x) for x in ex.vols), pct, "Vols"),
            ),
            total_label="Total",
            total=(None, _sum("Weights"), None),
        ),
        InputValue("SPY 30-day implied vol", "SpyVol", float(ex.index_vol), pct),
        Section(
            "Historical correlation (HistCorr): daily returns, 16 Jan to 18 Feb 2025",
            "Tickers in the first row and column: the functions match assets by ticker, "
            "never by position.",
        ),
        InputMatrix("HistCorr", tickers, tuple(map(tuple, ex.corr.to_numpy().tolist())), corr_fmt),
        Section(
            "Implied correlation (ImpliedCorr)",
            "The correlation matrix closest to HistCorr that reproduces SPY's implied vol: "
            f"{formula_text(nearest)}",
        ),
        Spill(nearest, corr_fmt, "ImpliedCorr"),
        Section(
            "Implied covariance",
            "Implied vols with the implied correlation, in annualised variance units: "
            f"{formula_text(cov)}",
        ),
        Spill(cov, cov_fmt),
        Section(
            "Checks: the index vol each correlation matrix implies",
            "The historical correlations imply a lower vol than SPY's, so the implied "
            "correlations are higher.",
        ),
        Checks(
            (
                Check("SPY 30-day implied vol (input)", _same("SpyVol"), pct),
                Check(
                    "Index vol implied by HistCorr", Call("INDEX_VOL", (weights, vols, hist)), pct
                ),
                Check(
                    "Index vol implied by ImpliedCorr",
                    Call("INDEX_VOL", (weights, vols, implied)),
                    pct,
                ),
                Check(
                    "Average implied correlation (CBOE style)",
                    Call("IMPLIED_AVG_CORR", (weights, vols, spy)),
                    corr_fmt,
                ),
            )
        ),
        Section(
            "Shift method (ShiftCorr): Buss & Vilkov",
            "HistCorr's correlations all moved towards 1 by the same fraction, keeping "
            f"its structure: {formula_text(shifted)}",
        ),
        Spill(shifted, corr_fmt, "ShiftCorr"),
        Checks(
            (
                Check(
                    "Index vol implied by ShiftCorr", Call("INDEX_VOL", (weights, vols, shift)), pct
                ),
            )
        ),
    )
    return SheetSpec(
        name="ImpliedCov",
        code_name="ImpliedCov",
        title="Option-implied correlation and covariance: SPY's sector ETFs",
        subtitle="Blue cells are inputs; every other number is an xlfuncs formula "
        "(IMPLIED_CORR, IMPLIED_COV, INDEX_VOL, IMPLIED_AVG_CORR).",
        blocks=blocks,
        column_widths=((0, 0, 12.0), (1, 30, 10.0)),
        freeze_rows=2,
    )


HOLDINGS_COLUMNS = (
    "ticker", "shares", "price", "value", "weight", "total_return", "volatility", "dividends",
    "dividends_per_share", "dividend_yield", "alpha", "beta",
)
_SAMPLE_NAV = 1_000_000.0  # the sample portfolio's value, dollars


def _sample_prices():
    import pandas as pd

    from xlfuncs.data.samples import sample_path

    with sample_path("sp500_prices_2022.csv").open() as fh:
        prices = pd.read_csv(fh, index_col="date", parse_dates=["date"])
    return prices.drop(columns=["SP500"])


def _sample_csv(name: str):
    import pandas as pd

    from xlfuncs.data.samples import sample_path

    with sample_path(name).open() as fh:
        return pd.read_csv(fh)


def holdings_sheet() -> SheetSpec:
    """The Holdings sheet: what Refresh holdings fills; shipped with sample holdings."""
    prices = _sample_prices()
    last = prices.iloc[-1]
    sample = _sample_csv("sample_holdings.csv")
    shares = [float(round(w * _SAMPLE_NAV / last[t])) for t, w in zip(
        sample["ticker"], sample["weight"], strict=True)]
    price = [float(last[t]) for t in sample["ticker"]]
    value = [round(n * p, 2) for n, p in zip(shares, price, strict=True)]
    total = math.fsum(value)
    weight = [round(v / total, 10) for v in value]  # 15 digits survive any spreadsheet
    blank = (None,) * len(value)
    formats = {"shares": "#,##0", "price": "#,##0.00", "value": "#,##0", "weight": "0.00%"}
    data = {"ticker": tuple(sample["ticker"]), "shares": tuple(shares), "price": tuple(price),
            "value": tuple(value), "weight": tuple(weight)}
    columns = tuple(
        Column(c, data.get(c, blank), formats.get(c, "0.00" if c != "ticker" else ""),
               is_input=False)
        for c in HOLDINGS_COLUMNS
    )
    blocks: tuple[Block, ...] = (
        Section("Which holdings", "Refresh holdings (xlfuncs ribbon) reads these two cells."),
        InputValue("Fund", "Fund", "undergrad", "", note="undergrad, quant, brigham_capital, "
                   "grad or quant_paper"),
        InputValue("Date", "HoldingsDate", None, "yyyy-mm-dd",
                   note="blank = the last business day"),
        Section("Last refresh"),
        InputValue("Status", "HoldingsStatus",
                   "Sample holdings (not the fund's): click Refresh holdings", "",
                   note=""),
        InputValue("Fetched at", "HoldingsFetchedAt", None, "yyyy-mm-dd hh:mm"),
        InputValue("Fund, dates", "HoldingsSource", "sample, 2022-12-28", ""),
        InputValue("Rows", "HoldingsRows", float(len(value)), "0"),
        Section("Holdings (named Holdings)",
                "Active positions only; weight = value / total value. BETA_NEUTRAL reads the "
                "ticker and weight columns."),
        InputTable(columns, name="Holdings"),
    )
    return SheetSpec(
        name="Holdings",
        code_name="HoldingsSheet",
        title="Fund holdings",
        subtitle="Filled by Refresh holdings from the fund's API; a failed refresh changes "
        "nothing but the status.",
        blocks=blocks,
        column_widths=((0, 0, 14.0), (1, 11, 12.0)),
    )


def returns_sheet() -> SheetSpec:
    """The Returns sheet: daily returns of 20 large US stocks in 2022 (skfolio's sample)."""
    from xlfuncs.core import simple_returns

    prices = _sample_prices()
    rets = simple_returns(prices.to_numpy(), tuple(prices.columns))
    dates = tuple(d.to_pydatetime() for d in prices.index[1:])
    columns = (
        Column("date", dates, "yyyy-mm-dd", is_input=True),
        *(Column(t, tuple(float(f"{x:.12g}") for x in rets[:, j]), "0.00%")
          for j, t in enumerate(prices.columns)),
    )
    return SheetSpec(
        name="Returns",
        code_name="ReturnsSheet",
        title="Daily returns, 2022: 20 large US stocks",
        subtitle="Adjusted close prices from skfolio's sample data set (BSD-3-Clause), "
        "for examples only. Named Returns, header row included.",
        blocks=(InputTable(columns, name="Returns"),),
        column_widths=((0, 0, 11.0), (1, 20, 8.0)),
        freeze_rows=3,
    )


def beta_neutral_sheet() -> SheetSpec:
    """The BetaNeutral sheet: holdings, a thematic ETF, HIST_COV, BETA_NEUTRAL."""
    etf = _sample_csv("sample_etf_weights.csv")
    hold, etf_w, cov = Ref("Holdings"), Ref("EtfWeights"), Ref("Cov")
    hist = Call("HIST_COV", (Ref("Returns"), "ledoit-wolf", 252.0))
    rebalance = Call("BETA_NEUTRAL", (hold, etf_w, cov, Ref("TargetBeta"), Ref("Method"),
                                      Ref("LongOnly"), Ref("MaxWeight")))
    reweight = Call("BETA_NEUTRAL", (hold, etf_w, cov, 0.4, "reweight", True))
    pct, num = "0.00%", "0.000"
    blocks: tuple[Block, ...] = (
        Notes(
            heading="How to use",
            lines=(
                "Holdings come from the Holdings sheet (Refresh holdings on the xlfuncs ribbon "
                "loads the fund's); EtfWeights are the ETF's constituents.",
                'To use an issuer\'s file: =ETF_HOLDINGS("C:\\Downloads\\holdings.csv") '
                "spills ticker and weight; name that range EtfWeights.",
                "Cov is estimated from the Returns sheet; assets are matched by ticker "
                "(BRK B = BRK.B = BRK-B), never by position.",
                "hedge keeps every holding and adds one ETF line; reweight changes the holdings "
                "as little as possible in risk terms. Errors read #xlfuncs! and name the input.",
            ),
        ),
        Section("The ETF (EtfWeights)",
                "A hypothetical AI-tilted ETF, XAI: made-up weights over names in the returns "
                "table. Scaled to sum to 1."),
        InputTable((Column("ticker", tuple(etf["ticker"])),
                    Column("weight", tuple(float(x) for x in etf["weight"]), pct)),
                   name="EtfWeights", total_label="Total",
                   total=(None, ExcelFormula(
                       "SUM(INDEX(EtfWeights,0,2))",
                       lambda names: sum(r[1] for r in names["EtfWeights"][1:])))),
        Section("Settings"),
        InputValue("Target beta", "TargetBeta", 0.0, "0.00", note="0 = beta-neutral"),
        InputValue("Method", "Method", "hedge", "", note="hedge or reweight"),
        InputValue("Long only", "LongOnly", False, "", note="reweight only"),
        InputValue("Max weight", "MaxWeight", None, pct, note="reweight only; blank = none"),
        Band((
            BandItem("Rebalanced holdings (Rebalanced)", Spill(rebalance, pct, "Rebalanced"), (
                Check("Beta before", Call("PORTFOLIO_BETA", (hold, etf_w, cov)), num),
                Check("Beta after", Call("PORTFOLIO_BETA", (Ref("Rebalanced"), etf_w, cov)),
                      num),
            )),
            BandItem("Long-only reweight to 0.4", Spill(reweight, pct, "Reweighted"), (
                Check("Beta after", Call("PORTFOLIO_BETA", (Ref("Reweighted"), etf_w, cov)),
                      num),
            )),
            BandItem("Betas to the ETF", Spill(Call("ETF_BETAS", (etf_w, cov)), num)),
            BandItem("Covariance (Cov): Ledoit-Wolf, annualised", Spill(hist, "0.0000", "Cov")),
        )),
    )
    return SheetSpec(
        name="BetaNeutral",
        code_name="BetaNeutral",
        title="Beta-neutral rebalancing against a thematic ETF",
        subtitle="Blue cells are inputs; every other number is an xlfuncs formula "
        "(BETA_NEUTRAL, PORTFOLIO_BETA, ETF_BETAS, HIST_COV).",
        blocks=blocks,
        column_widths=((0, 0, 14.0), (1, 22, 10.0)),
    )


#: The statistics columns the Backtest sheet shows.
BACKTEST_STATS = ("strategy", *STATS_COLUMNS)


def backtest_sheet() -> SheetSpec:
    """The Backtest sheet: parameters in named cells; Run backtest writes results below."""
    blank3 = (None, None, None)
    blocks: tuple[Block, ...] = (
        Notes(
            heading="How to use",
            lines=(
                "Set the parameters (blue), then click Run backtest on the xlfuncs ribbon tab. "
                "The status bar shows progress; a run takes from seconds to a few minutes.",
                "Data: sample (a synthetic universe of 500 stocks driven by the real "
                "Fama-French factors), sample:N, french12 (12 industry portfolios, market "
                "benchmark), or the path of a long CSV/Parquet file (date, permno or ticker, "
                "ret, mktcap or prc and shrout, siccd or sector).",
                "A failed run changes nothing but the status cell, which says why. The same run "
                "from a terminal: xlfuncs backtest --config settings.toml --out results.",
            ),
        ),
        Section("Parameters"),
        InputValue("Data", "BtData", "sample", "", note="sample, sample:N, french12 or a file"),
        InputValue("Factors file", "BtFactors", None, "",
                   note="blank = the bundled Fama-French factors"),
        InputValue("Mode", "BtMode", "tev", "",
                   note="tev, gamma, sector or anchor (gamma set each date to meet the TEV)"),
        InputValue("TEV budgets", "BtTev", "0.02, 0.04, 0.06", "",
                   note="annual tracking-error budgets (targets in mode anchor), one strategy "
                   "each"),
        InputValue("Gammas", "BtGamma", None, "", note="risk aversions (mode gamma)"),
        InputValue("Model", "BtModel", "sample", "",
                   note="factor moments: sample, ewma, ewma:24 or regime"),
        InputValue("Start", "BtStart", None, "yyyy-mm-dd",
                   note="first rebalance; blank = after 60 periods of history"),
        InputValue("End", "BtEnd", "2017-03-31", "yyyy-mm-dd",
                   note="last date used; every input is cut there"),
        InputValue("Max weight", "BtMaxWeight", None, "0.0%", note="blank = none"),
        InputValue("Turnover limit", "BtTurnover", None, "0.0%",
                   note="one-way, per rebalance; blank = none"),
        InputValue("Cost", "BtCost", 0.0, "0.00%", note="proportional, per unit traded"),
        InputValue("Benchmark", "BtBenchmark", "auto", "", note="auto, caps or market"),
        InputValue("Scheduler", "BtScheduler", None, "",
                   note="blank = this computer; tcp://HOST:8786 = a Dask cluster"),
        Section("Policy limits", "Checked at the first rebalance date: a limit no portfolio "
                "can meet stops the run and is named."),
        InputValue("Industry limit", "BtIndustryLimit", None, "0.0%",
                   note="|active weight| of every industry; blank = none"),
        InputValue("Industry limits", "BtIndustryLimits", None, "",
                   note="per industry, e.g. Energy=2%; Finance=3%"),
        InputValue("Factor bounds", "BtFactorBounds", None, "",
                   note="active exposure, e.g. SMB=-0.2:0.2; HML=-0.1:0.1"),
        InputValue("Factor neutral", "BtFactorNeutral", None, "",
                   note="TRUE: every active factor exposure 0"),
        InputValue("Crisis windows", "BtWindows", None, "",
                   note="e.g. GFC=2007-10:2009-03; blank = 1973-74, 1987, 2000-02, 2008-09, "
                   "2020 (sheet BtCrisis)"),
        InputValue("Factor set", "BtFactorSet", None, "",
                   note="factors the model uses, e.g. Mkt-RF, SMB, HML; blank = all"),
        InputValue("Betas", "BtBetas", "ols", "",
                   note="ols, or regime (per-state betas; needs model regime)"),
        Section("Frequency and liquidity", "Daily data are compounded to the rebalance "
                "frequency; the filters remove stocks from the universe at each date, judged on "
                "data up to that date (counts in Data used)."),
        InputValue("Frequency", "BtFrequency", None, "",
                   note="monthly or weekly; blank = monthly for daily data"),
        InputValue("Min price", "BtMinPrice", None, "0.00",
                   note="at the rebalance date (needs prc); blank = none"),
        InputValue("Min dollar volume", "BtMinDollarVolume", None, "#,##0",
                   note="average |prc| x vol per period; blank = none"),
        InputValue("Volume window", "BtVolumeWindow", None, "0",
                   note="periods of that average; blank = a year"),
        InputValue("Min market cap", "BtMinCap", None, "#,##0",
                   note="in the data's units (CRSP: $ thousands); blank = none"),
        Section("Last run"),
        InputValue("Status", "BtStatus", "Not run yet: click Run backtest on the xlfuncs tab",
                   ""),
        InputValue("Run at", "BtRunAt", None, "yyyy-mm-dd hh:mm"),
        InputValue("Data used", "BtSource", None, ""),
        Section("Statistics (BtStats)",
                "Annualised; tracking error and information ratio against the benchmark; "
                "turnover one-way per rebalance."),
        InputTable(tuple(Column(STATS_HEADERS[c], blank3,
                                "" if c == "strategy" else stat_format(c), is_input=False)
                         for c in BACKTEST_STATS), name="BtStats"),
    )  # the charts go to the right of the parameters (xlfuncs.excel.backtest_macro)
    return SheetSpec(
        name="Backtest",
        code_name="BacktestSheet",
        title="Factor-model backtest",
        subtitle="Benchmark-relative portfolios from a factor risk model, walked forward month "
        "by month; results, statistics and charts land here.",
        blocks=blocks,
        column_widths=((0, 0, 22.0), (1, 1, 4.0), (2, 2, 18.0), (3, 10, 12.0)),
        fit_columns=True,  # the statistics' headers, whole words
    )


def backtest_returns_sheet() -> SheetSpec:
    """The BtReturns sheet: the periodic returns of the last run."""
    return SheetSpec(
        name="BtReturns",
        code_name="BtReturnsSheet",
        title="Backtest returns",
        subtitle="Simple returns per period: date, benchmark, risk-free, one column per "
        "strategy (after costs). Written by Run backtest.",
        blocks=(InputTable((Column("date", (None,), "yyyy-mm-dd", is_input=False),
                            Column("benchmark", (None,), "0.00%", is_input=False),
                            Column("rf", (None,), "0.00%", is_input=False)),
                           name="BtReturns"),),
        column_widths=((0, 0, 12.0), (1, 12, 11.0)),
        freeze_rows=3,
    )


def backtest_crisis_sheet() -> SheetSpec:
    """The BtCrisis sheet: statistics inside the crisis windows and within each regime."""
    from xlfuncs.core._attribution import WINDOW_COLUMNS

    def table(first: str, name: str, beside: bool) -> InputTable:
        return InputTable(tuple(Column(c, (None,), crisis_format(c), is_input=False)
                                for c in (first, *WINDOW_COLUMNS[1:])), name=name, beside=beside)

    return SheetSpec(
        name="BtCrisis",
        code_name="BtCrisisSheet",
        title="Crisis windows and regimes",
        subtitle="Each strategy and the benchmark inside the crisis windows the data reach "
        "(BtWindows on the Backtest sheet) and, to the right, within each regime of the "
        "factor returns (a hidden Markov model refitted as the backtest goes, no look-ahead). "
        "Written by Run backtest.",
        blocks=(table("window", "BtCrisis", False), table("regime", "BtRegimes", True)),
        column_widths=((0, 0, 28.0), (1, 1, 14.0), (2, 10, 11.0), (11, 11, 3.0),
                       (12, 12, 28.0), (13, 13, 14.0), (14, 22, 11.0)),
        freeze_rows=3,
    )


def addin_sheet() -> SheetSpec:
    """The one (hidden) sheet of the add-in: what it is."""
    return SheetSpec(
        name="xlfuncs",
        code_name="AddinSheet",
        title="xlfuncs add-in",
        subtitle="Adds the xlfuncs tab to the ribbon; each button runs a function of "
        "xlfuncs.macros in Python through the xlwings add-in.",
        blocks=(
            Notes(
                heading="Buttons",
                lines=(
                    "Refresh holdings: the fund's holdings into the Holdings sheet of the "
                    "active workbook.",
                    "Run backtest: the Backtest sheet's parameters in, results and charts out.",
                    "Import functions: the xlfuncs worksheet functions into the active workbook.",
                    "Doctor: checks Python, xlfuncs, xlwings, the add-in and the configuration.",
                    "Help: the functions and the buttons in short.",
                ),
            ),
        ),
        freeze_rows=0,
    )


def workbook_specs() -> tuple[WorkbookSpec, ...]:
    """Every workbook the builder writes."""
    return (
        WorkbookSpec(
            filename="xlfuncs.xlam",
            title="xlfuncs add-in",
            subject="The xlfuncs ribbon tab: Refresh holdings, Run backtest, Import functions, "
            "Doctor, Help",
            sheets=(addin_sheet(),),
            vba_modules=("RibbonCallbacks",),
            ribbon="customUI14.xml",
        ),
        WorkbookSpec(
            filename="ImpliedCov.xlsm",
            title="Option-implied correlation and covariance",
            subject="SPY sector ETFs, 18 Feb 2025: IMPLIED_CORR, IMPLIED_COV, INDEX_VOL",
            sheets=(implied_cov_sheet(),),
        ),
        WorkbookSpec(
            filename="BetaNeutral.xlsm",
            title="Beta-neutral rebalancing",
            subject="Holdings re-weighted to a target beta to an ETF: BETA_NEUTRAL, "
            "PORTFOLIO_BETA, ETF_BETAS, HIST_COV",
            sheets=(beta_neutral_sheet(), holdings_sheet(), returns_sheet()),
            write_order=("Holdings", "Returns"),
        ),
        WorkbookSpec(
            filename="Backtest.xlsm",
            title="Factor-model backtest",
            subject="Walk-forward benchmark-relative optimisation: parameters in, results, "
            "statistics and charts out (Run backtest on the xlfuncs ribbon)",
            sheets=(backtest_sheet(), backtest_returns_sheet(), backtest_crisis_sheet()),
        ),
    )


def build_workbooks(out_dir: Path) -> list[Path]:
    """Write every workbook into ``out_dir``.

    Parameters
    ----------
    out_dir : Path
        Destination folder (created when missing).

    Returns
    -------
    list of Path
        The files written, in :func:`workbook_specs` order.

    """
    return [build_workbook(spec, Path(out_dir)) for spec in workbook_specs()]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xlfuncs.excel.build [OUT_DIR]``: build the workbooks.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 when a workbook cannot be built.

    """
    parser = argparse.ArgumentParser(
        prog="python -m xlfuncs.excel.build", description="Build the xlfuncs workbooks."
    )
    parser.add_argument(
        "out_dir",
        nargs="?",
        type=Path,
        default=WORKBOOKS_DIR,
        help=f"destination folder (default {WORKBOOKS_DIR})",
    )
    args = parser.parse_args(argv)
    try:
        paths = build_workbooks(args.out_dir)
    except (ValueError, OSError) as exc:
        print(f"xlfuncs: cannot build the workbooks: {exc}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
