"""Whether a table in a workbook file can be read at the widths and formats the file gives.

Read back from the file's XML and openpyxl, independently of the builder: the
column widths (``<cols>``, ranges included), each header's wrapping and row
height, and each value's text under its number format.
"""

from __future__ import annotations

import math
import re
import textwrap
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import get_column_letter, range_boundaries

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
DEFAULT_WIDTH = 8.43
BOLD = 1.1  # a bold character is about a tenth wider than the width unit
LINE_POINTS = 15.0  # one line of the default 11-point font


def column_widths(path: Path, sheet: str) -> dict[int, float]:
    """Width of every column with one (1-based), from the sheet's ``<cols>``."""
    book = openpyxl.load_workbook(path, read_only=True)
    index = book.sheetnames.index(sheet) + 1
    book.close()
    with zipfile.ZipFile(path) as z:
        root = ET.fromstring(z.read(f"xl/worksheets/sheet{index}.xml"))
    widths = {}
    for col in root.iterfind("m:cols/m:col", _NS):
        for c in range(int(col.get("min")), int(col.get("max")) + 1):
            widths[c] = float(col.get("width"))
    return widths


def shown(value: Any, num_format: str) -> str:
    """The text Excel shows for a number under the formats the workbooks use."""
    if isinstance(value, str):
        return value
    m = re.fullmatch(r"(#,##)?0(?:\.(0+))?(%?)", num_format)
    if m is None:
        return f"{value:.10g}"
    digits = len(m.group(2) or "")
    if m.group(3):
        return f"{value * 100:.{digits}f}%"
    return f"{value:{',' if m.group(1) else ''}.{digits}f}"


def unreadable(path: Path, name: str) -> list[str]:
    """Cells of the table named ``name`` (header row first) that do not show whole."""
    book = openpyxl.load_workbook(path)
    sheet_name, ref = book.defined_names[name].attr_text.split("!")
    sheet = book[sheet_name.strip("'")]
    widths = column_widths(path, sheet.title)
    min_col, min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
    problems = []
    for col in range(min_col, max_col + 1):
        width = widths.get(col, DEFAULT_WIDTH)
        letter = get_column_letter(col)
        header = sheet.cell(min_row, col)
        height = sheet.row_dimensions[min_row].height or LINE_POINTS
        chars = math.floor((width - 1) / BOLD)
        lines = (textwrap.wrap(str(header.value), chars, break_long_words=False)
                 if header.alignment.wrap_text else [str(header.value)])
        if max(map(len, lines)) > chars or len(lines) > height // LINE_POINTS:
            problems.append(f"{letter}{min_row} {header.value!r} at width {width}")
        for row in range(min_row + 1, max_row + 1):
            cell = sheet.cell(row, col)
            if cell.value is None:
                continue
            text = shown(cell.value, cell.number_format)
            factor = BOLD if cell.font.b else 1.0
            if len(text) * factor > width - 1:
                problems.append(f"{letter}{row} {text!r} at width {width}")
    return problems


def number_formats(path: Path, name: str) -> list[str]:
    """The number format of each column of a named table, read on its first data row."""
    book = openpyxl.load_workbook(path)
    sheet_name, ref = book.defined_names[name].attr_text.split("!")
    rows = book[sheet_name.strip("'")][ref.replace("$", "")]
    return [c.number_format for c in rows[1]]
