"""The VBA side of the workbooks: UDF wrappers, Function Wizard help, the project file.

Excel calls a Python worksheet function through a VBA function of the same name
that hands its arguments to the xlwings COM server. xlwings' ribbon button
"Import Functions" writes those wrappers into a module named ``xlwings_udfs``;
this module writes the same wrappers from :data:`xlfuncs.excel.functions.REGISTRY`
without Excel, so the workbooks we ship have them from the start.

How the wrappers reach Python
-----------------------------
Each wrapper calls ``XLPy.CallUDF(module, function, args, workbook, caller)``
(the name is ``XLPy``, not ``Py``). ``XLPy`` is a public function of the
xlwings add-in's VBA project (named ``xlwings``) that activates the COM server.
The workbook embeds no xlwings VBA: its VBA project holds a *project
reference* to the add-in (see :data:`XLWINGS_ADDIN`), which is how the
workbook of ``xlwings quickstart`` (xlwings' ``quickstart.xlsm``) reaches the
add-in too. That file's reference names its author's own path to
``xlwings.xlam`` and works on other machines, because Excel resolves a project
reference to an open project of that file name first, here the add-in loaded
from XLSTART where ``xlwings addin install`` puts it; the stored paths are
fallbacks. A workbook opened where the add-in is not installed shows the
reference as MISSING and its formulas fail, as quickstart workbooks do.

pyopenvba makes the VBA project from nothing and writes registered
(type-library) references, but has no call for a project reference, so
:func:`_add_project_reference` writes the REFERENCENAME and REFERENCEPROJECT
records of [MS-OVBA] 2.3.4.2.2 itself, laid out as in ``quickstart.xlsm``, and
hands them to pyopenvba's reference storage hooks, which re-parse and validate
the dir stream. The tests read the reference back with pyopenvba.

Everything here is plain text generation plus one call into pyopenvba; no
xlwings code is copied.
"""

from __future__ import annotations

import re
import struct
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import xlsxwriter
from pyopenvba import ExcelFile
from pyopenvba.vba import encoding_for_codepage

from xlfuncs.excel.functions import WIZARD_MAX, WorksheetFunction

__all__ = [
    "CATEGORY",
    "HELP_MODULE",
    "PYTHON_MODULE",
    "WRAPPER_MODULE",
    "XLWINGS_ADDIN",
    "FunctionHelp",
    "ProjectReference",
    "function_help",
    "help_module",
    "read_vba_sources",
    "vba_project_bin",
    "workbook_module",
    "wrapper_module",
]

#: The Python module xlwings imports to run the functions (the ``UDF_MODULES`` entry).
PYTHON_MODULE = "xlfuncs.udfs"
#: The wrapper module's name: the one "Import Functions" replaces, so re-importing
#: after a signature change swaps ours out instead of duplicating every function.
WRAPPER_MODULE = "xlwings_udfs"
#: The generated module that gives the Function Wizard its help texts.
HELP_MODULE = "xlfuncs_help"
#: Category of the functions in Excel's Insert Function dialog (as ``xw.func`` sets it).
CATEGORY = "xlfuncs"

_CRLF = "\r\n"
# VBA source lines are at most 1023 characters and a statement has at most 24
# line continuations.
_MAX_LINE = 1023
_MAX_CONTINUATIONS = 24
# The VBA project's code page (Windows-1252, what pyopenvba's template uses).
_ENCODING = "cp1252"
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}\Z")
# Words VBA reserves that a Python name could plausibly use (argument or function).
_VBA_RESERVED = frozenset(
    w.casefold()
    for w in (
        "And As Boolean ByRef Byte ByVal Call Case Const Currency Date Debug Declare Dim Do "
        "Double Each Else ElseIf Empty End Enum Eqv Erase Error Event Exit False For Friend "
        "Function Get Global GoSub GoTo If Imp Implements In Integer Is Let Lib Like Long "
        "LongLong LongPtr Loop LSet Me Mod New Next Not Nothing Null Object On Option "
        "Optional Or ParamArray Preserve Private Property Public RaiseEvent ReDim Rem Resume "
        "Return RSet Select Set Single Static Step Stop String Sub Then To True Type TypeOf "
        "Until Variant Wend While With WithEvents Xor"
    ).split()
)


@dataclass(frozen=True)
class ProjectReference:
    """A reference from a VBA project to another VBA project (an add-in).

    Parameters
    ----------
    name : str
        The referenced project's name (``Tools > References`` shows it).
    absolute_path : str
        Where the referenced file was when the reference was made; Excel
        first binds to an open project of the same file name.
    relative_path : str
        The same file relative to the referencing workbook's folder.
    major, minor : int
        The referenced project's PROJECTVERSION when the reference was made.

    """

    name: str
    absolute_path: str
    relative_path: str
    major: int
    minor: int


#: The xlwings add-in as ``xlwings addin install`` installs it (``XLSTART``). The
#: version is that of the xlwings 0.37 add-in; VBA does not require it to match:
#: xlwings' own quickstart workbook references an older one and binds to the
#: current add-in.
XLWINGS_ADDIN = ProjectReference(
    name="xlwings",
    absolute_path="C:\\Users\\Default\\AppData\\Roaming\\Microsoft\\Excel\\XLSTART\\xlwings.xlam",
    relative_path="xlwings.xlam",
    major=0x6B4FEF4C,
    minor=8,
)


# --------------------------------------------------------------------------- text helpers


def _identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name) or name.casefold() in _VBA_RESERVED:
        raise ValueError(f"{what} {name!r} is not a valid VBA identifier")
    return name


def _vba_string(text: str) -> str:
    """A VBA string literal of ``text``: one line, quotes doubled, code-page safe."""
    flat = " ".join(text.split())
    safe = flat.encode(_ENCODING, errors="replace").decode(_ENCODING)
    return '"' + safe.replace('"', '""') + '"'


def _lines(lines: Iterable[str]) -> str:
    out = []
    for line in lines:
        if len(line) > _MAX_LINE:
            raise ValueError(f"VBA line longer than {_MAX_LINE} characters: {line[:60]}...")
        out.append(line)
    return _CRLF.join(out) + _CRLF


def _header(name: str, purpose: str) -> list[str]:
    return [
        f'Attribute VB_Name = "{name}"',
        f"' {purpose}",
        "' Generated by xlfuncs.excel.vba from the xlfuncs function registry: do not edit,",
        "' rebuild the workbook instead (python -m xlfuncs.excel.build).",
    ]


# --------------------------------------------------------------------------- modules


def wrapper_module(
    functions: Iterable[WorksheetFunction],
    *,
    python_module: str = PYTHON_MODULE,
    workbook: str = "ThisWorkbook",
) -> str:
    """Source of the VBA module of worksheet-function wrappers.

    Each wrapper has the Python function's name and arguments (optional ones
    ``Optional``) and hands them to ``XLPy.CallUDF`` of the xlwings add-in,
    with the workbook and the calling range. Called from a cell, an error in
    the bridge becomes the cell's text (``Err.Description``); called from VBA it
    propagates. That is the behaviour of the wrappers "Import Functions" writes.

    Parameters
    ----------
    functions : iterable of WorksheetFunction
        The functions to wrap, usually ``REGISTRY.values()``.
    python_module : str
        Module that xlwings imports to find the functions.
    workbook : str
        VBA expression for the workbook handed to xlwings: ``ThisWorkbook`` in
        a workbook, ``ActiveWorkbook`` in an add-in.

    Returns
    -------
    str
        Module source with CRLF line ends, starting with ``Attribute VB_Name``.

    """
    lines = _header(WRAPPER_MODULE, f"Worksheet functions of {python_module}, run by xlwings.")
    lines += ["Option Explicit", ""]
    for f in functions:
        name = _identifier(f.name, "function name")
        params = ", ".join(
            ("Optional " if a.optional else "") + _identifier(a.name, f"{name} argument")
            for a in f.args
        )
        values = ", ".join(a.name for a in f.args)
        call = (
            f'XLPy.CallUDF("{python_module}", "{name}", Array({values}), '
            f"{workbook}, Application.Caller)"
        )
        lines += [
            f"Function {name}({params})",
            "    If TypeOf Application.Caller Is Range Then On Error GoTo failed",
            f"    {name} = {call}",
            "    Exit Function",
            "failed:",
            f"    {name} = Err.Description",
            "End Function",
            "",
        ]
    return _lines(lines)


@dataclass(frozen=True)
class FunctionHelp:
    """What ``Application.MacroOptions`` registers for one function.

    Parameters
    ----------
    name : str
        The function (and its VBA wrapper) name.
    description : str
        The Insert Function dialog's description.
    arguments : tuple of str
        One description per argument, in order.

    """

    name: str
    description: str
    arguments: tuple[str, ...]


def function_help(functions: Iterable[WorksheetFunction]) -> list[FunctionHelp]:
    """The Function Wizard help of each function, from the registry, checked for Excel.

    Parameters
    ----------
    functions : iterable of WorksheetFunction
        The functions, usually ``REGISTRY.values()``.

    Returns
    -------
    list of FunctionHelp
        One entry per function, in the given order.

    Raises
    ------
    ValueError
        When a name is not a VBA identifier, or a text is longer than the
        Function Wizard's 255 characters.

    """
    out = []
    for f in functions:
        name = _identifier(f.name, "function name")
        for text in (f.doc, *(a.doc for a in f.args)):
            if len(text) > WIZARD_MAX:
                raise ValueError(f"{name}: a help text is longer than {WIZARD_MAX} characters")
        out.append(FunctionHelp(name, f.doc, tuple(a.doc for a in f.args)))
    return out


def help_module(functions: Iterable[WorksheetFunction], *, category: str = CATEGORY) -> str:
    """Source of the module that registers the Function Wizard help and recalculates.

    ``RegisterFunctionHelp`` calls ``Application.MacroOptions`` for every
    function with its description, category and argument descriptions, as
    "Import Functions" does when it imports the wrappers.
    ``RecalculateFunctions`` marks every formula of the workbook that calls one
    of the functions as dirty and, unless calculation is manual, recalculates:
    the workbook is saved without a full recalculation at load (which would run
    before macros are enabled and show ``#NAME?``), so its first fresh results
    come from here. Both leave the workbook's saved state as they found it and
    ignore errors (a protected workbook, an Excel without argument
    descriptions). VBA's and Excel's names are qualified (``VBA.InStr``,
    ``Excel.xlCellTypeFormulas``): with the xlwings add-in's reference
    MISSING, VBA cannot resolve unqualified library names.

    Parameters
    ----------
    functions : iterable of WorksheetFunction
        The functions, usually ``REGISTRY.values()``.
    category : str
        Category shown in Excel's Insert Function dialog.

    Returns
    -------
    str
        Module source with CRLF line ends.

    Raises
    ------
    ValueError
        When a function has more arguments than one VBA statement can list
        (or see :func:`function_help`).

    """
    functions = list(functions)
    lines = _header(HELP_MODULE, "Function Wizard help of the functions in " + WRAPPER_MODULE
                    + ", and their recalculation.")
    lines += [
        "Option Explicit",
        "",
        "Public Sub RegisterFunctionHelp()",
        "    Dim wasSaved As Boolean",
        "    wasSaved = ThisWorkbook.Saved",
        "    On Error Resume Next",
    ]
    for item in function_help(functions):
        docs = [_vba_string(d) for d in item.arguments]
        if len(docs) + 1 > _MAX_CONTINUATIONS:
            raise ValueError(f"{item.name} has too many arguments for one VBA statement")
        lines.append(f'    Describe "{item.name}", {_vba_string(item.description)}, Array( _')
        lines += [f"        {d}, _" for d in docs[:-1]]
        lines.append(f"        {docs[-1]})" if docs else "        )")
    lines += [
        "    ThisWorkbook.Saved = wasSaved",
        "End Sub",
        "",
        "Private Sub Describe(ByVal fname As String, ByVal text As String, "
        "ByVal argDocs As Variant)",
        "    Dim target As String",
        '    target = "\'" & ThisWorkbook.Name & "\'!" & fname',
        "    If VBA.UBound(argDocs) >= VBA.LBound(argDocs) Then",
        f"        Application.MacroOptions Macro:=target, Description:=text, "
        f"Category:={_vba_string(category)}, ArgumentDescriptions:=argDocs",
        "    Else",
        f"        Application.MacroOptions Macro:=target, Description:=text, "
        f"Category:={_vba_string(category)}",
        "    End If",
        "End Sub",
        "",
        "Public Sub RecalculateFunctions()",
        "    Dim wasSaved As Boolean, sheet As Worksheet, formulas As Range, cell As Range",
        "    wasSaved = ThisWorkbook.Saved",
        "    On Error Resume Next",
        "    For Each sheet In ThisWorkbook.Worksheets",
        "        Set formulas = Nothing",
        "        Set formulas = sheet.UsedRange.SpecialCells(Excel.xlCellTypeFormulas)",
        "        If Not formulas Is Nothing Then",
        "            For Each cell In formulas.Cells",
        "                If CallsFunction(cell.Formula) Then cell.Dirty",
        "            Next cell",
        "        End If",
        "    Next sheet",
        "    If Application.Calculation <> Excel.xlCalculationManual Then Application.Calculate",
        "    ThisWorkbook.Saved = wasSaved",
        "End Sub",
        "",
        "Private Function CallsFunction(ByVal formulaText As String) As Boolean",
    ]
    for f in functions:
        lines.append(f'    If VBA.InStr(1, formulaText, "{f.name}(", VBA.vbTextCompare) > 0 Then '
                     "CallsFunction = True")
    lines += ["End Function"]
    return _lines(lines)


def workbook_module() -> str:
    """Body of the ``ThisWorkbook`` module: help and fresh results when the workbook opens.

    ``Workbook_Open`` runs once macros are enabled (at opening, or when the
    user clicks Enable Content): it calls ``RegisterFunctionHelp`` and
    ``RecalculateFunctions`` of :func:`help_module`. Errors are ignored, so
    nothing here stops the workbook from opening.

    Returns
    -------
    str
        Module body (no ``Attribute`` lines: the document module keeps its
        own) with CRLF line ends.

    """
    return _lines([
        "' Generated by xlfuncs.excel.vba: do not edit, rebuild the workbook instead",
        "' (python -m xlfuncs.excel.build).",
        "Option Explicit",
        "",
        "Private Sub Workbook_Open()",
        "    ' Help in the Insert Function dialog, then the xlfuncs formulas recalculated",
        "    ' through Python; a failure never stops the workbook from opening.",
        "    On Error Resume Next",
        f"    {HELP_MODULE}.RegisterFunctionHelp",
        f"    {HELP_MODULE}.RecalculateFunctions",
        "End Sub",
    ])


def read_vba_sources(folder: Path, names: Sequence[str]) -> dict[str, str]:
    """Hand-written standard modules, kept as ``<name>.bas`` text files.

    Parameters
    ----------
    folder : Path
        Folder of the ``.bas`` files (``workbooks/src/vba``).
    names : sequence of str
        Module names to read, in project order.

    Returns
    -------
    dict of str to str
        Module name to source, line ends normalised to CRLF.

    Raises
    ------
    ValueError
        When a file's ``Attribute VB_Name`` does not match its file name.

    """
    out: dict[str, str] = {}
    for name in names:
        text = (folder / f"{name}.bas").read_text(encoding=_ENCODING)
        lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
        if not lines or lines[0] != f'Attribute VB_Name = "{name}"':
            raise ValueError(f'{name}.bas must start with Attribute VB_Name = "{name}"')
        out[name] = _CRLF.join(lines) + _CRLF
    return out


# --------------------------------------------------------------------------- project


def _reference_block(ref: ProjectReference, encoding: str) -> bytes:
    """REFERENCENAME + REFERENCEPROJECT records ([MS-OVBA] 2.3.4.2.2.2 and .6)."""

    def record(rid: int, body: bytes) -> bytes:
        return struct.pack("<HI", rid, len(body)) + body

    def sized(text: str) -> bytes:
        data = text.encode(encoding)
        return struct.pack("<I", len(data)) + data

    name = record(0x0016, ref.name.encode(encoding)) + record(0x003E, ref.name.encode("utf-16-le"))
    body = (
        sized("*\\C" + ref.absolute_path)
        + sized("*\\C" + ref.relative_path)
        + struct.pack("<IH", ref.major, ref.minor)
    )
    return name + record(0x000E, body)


def _add_project_reference(book: ExcelFile, ref: ProjectReference) -> None:
    """Add a reference to another VBA project, after the project's other references.

    pyopenvba's public ``add_reference`` writes registered type libraries only;
    this writes the project-reference records through the same storage hooks
    (``_reference_data``/``_write_reference_data``), which re-parse and
    validate the dir stream.
    """
    if any(r.name.casefold() == ref.name.casefold() for r in book.references()):
        return
    project = book.vba_project()
    raw, code_page = book._reference_data()
    at = project.dir_modules_offset
    block = _reference_block(ref, encoding_for_codepage(code_page))
    book._write_reference_data(raw[:at] + block + raw[at:])


def _skeleton(path: Path, code_names: Sequence[tuple[str, str]]) -> None:
    """A macro-less workbook with the sheets' and the workbook's VBA code names."""
    book = xlsxwriter.Workbook(str(path), {"in_memory": True})
    book.set_vba_name("ThisWorkbook")
    for sheet_name, code_name in code_names:
        book.add_worksheet(sheet_name).set_vba_name(code_name)
    book.close()


def vba_project_bin(
    code_names: Sequence[tuple[str, str]],
    modules: Mapping[str, str],
    references: Sequence[ProjectReference] = (XLWINGS_ADDIN,),
    documents: Mapping[str, str] | None = None,
) -> bytes:
    """Build a ``vbaProject.bin`` for a workbook, from nothing, with pyopenvba.

    pyopenvba gives a macro-less workbook the project Excel would make for its
    first macro (``ThisWorkbook`` and one document module per sheet, named by
    the sheets' code names); the standard modules and the references are added
    to it, and the project storage is taken out of the saved file for
    XlsxWriter's ``add_vba_project``. The result depends only on the inputs.

    Parameters
    ----------
    code_names : sequence of (str, str)
        ``(sheet name, VBA code name)`` of every sheet, in order. The workbook's
        code name is ``ThisWorkbook``.
    modules : mapping of str to str
        Standard modules: name to source (with its ``Attribute VB_Name`` line).
    references : sequence of ProjectReference
        Other VBA projects the code calls (by default the xlwings add-in).
    documents : mapping of str to str, optional
        Code of document modules (``ThisWorkbook``, a sheet's code name): name
        to body, without ``Attribute`` lines (the module keeps Excel's).

    Returns
    -------
    bytes
        The compound file to embed as ``xl/vbaProject.bin``.

    """
    with tempfile.TemporaryDirectory(prefix="xlfuncs-vba-") as tmp:
        skeleton, out = Path(tmp) / "skeleton.xlsm", Path(tmp) / "project.xlsm"
        _skeleton(skeleton, code_names)
        with ExcelFile(skeleton) as book:
            project = book.add_vba_project()
            for name, source in modules.items():
                project.add_module(name, source)
            for name, body in (documents or {}).items():
                book.set_module(name, body)
            for ref in references:
                _add_project_reference(book, ref)
            book.save(out)
        with zipfile.ZipFile(out) as package:
            return package.read("xl/vbaProject.bin")
