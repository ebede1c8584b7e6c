"""The workbooks we ship: reproducible, well-formed formulas, right cached values, VBA, LibreOffice.

The formulas in the files are checked by reading them back with openpyxl and
parsing them here (openpyxl's tokenizer), independently of the builder's own
code: every function is an Excel built-in or a registered xlfuncs function
with a valid number of arguments, and every xlfuncs formula, evaluated on the
workbook's own cells as xlwings would hand them to Python, gives the values
cached in the file.
"""

from __future__ import annotations

import io
import math
import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from openpyxl.formula.tokenizer import Token, Tokenizer
from openpyxl.utils import FORMULAE, range_boundaries
from openpyxl.worksheet.formula import ArrayFormula
from pyopenvba import ExcelFile, check_file
from pyopenvba.apps.excel import ExcelApplication

from xlfuncs.excel import vba
from xlfuncs.excel.build import Call, Ref, build_workbooks, evaluate, main, workbook_specs
from xlfuncs.excel.cells import ERROR_PREFIX
from xlfuncs.excel.functions import REGISTRY, Argument, WorksheetFunction

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "workbooks"
NAMES = [spec.filename for spec in workbook_specs()]
# the add-in and the Backtest workbook hold no formulas (their results are written by macros)
SHEETS = [n for n in NAMES if n not in ("xlfuncs.xlam", "Backtest.xlsm")]
ADDIN = "xlfuncs.xlam"
# xlfuncs functions each workbook must show (the brief of each sheet).
MUST_CALL = {
    "ImpliedCov.xlsm": {"IMPLIED_CORR", "IMPLIED_COV", "INDEX_VOL", "IMPLIED_AVG_CORR"},
    "BetaNeutral.xlsm": {"BETA_NEUTRAL", "PORTFOLIO_BETA", "ETF_BETAS", "HIST_COV"},
}
_FUTURE_PREFIXES = ("_xlfn.", "_xlws.")
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("workbooks")
    return {p.name: p for p in build_workbooks(out)}


def committed(name: str) -> Path:
    path = COMMITTED / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run python -m xlfuncs.excel.build")
    return path


# --------------------------------------------------------------------------- formula parsing


@dataclass
class FunctionCall:
    """One function call in a formula: its name and the tokens of each argument."""

    name: str
    prefixed: bool  # written with _xlfn./_xlws. (an Excel "future" function)
    args: list[list[Token]] = field(default_factory=lambda: [[]])

    @property
    def nargs(self) -> int:
        return 0 if len(self.args) == 1 and not self.args[0] else len(self.args)


@dataclass
class _Frame:
    kind: str  # Token.FUNC, Token.PAREN or Token.ARRAY
    call: FunctionCall | None = None


def function_calls(formula: str) -> list[FunctionCall]:
    """Every function call in ``formula``, outermost first, with its argument tokens.

    Commas inside nested calls, parentheses, array constants and text do not
    split an argument; ``F()`` has no argument, ``F(,)`` has two.
    """
    calls: list[FunctionCall] = []
    stack: list[_Frame] = []
    for tok in Tokenizer(formula).items:
        if tok.type == Token.WSPACE:
            continue
        top = stack[-1] if stack else None
        if tok.subtype == Token.CLOSE:
            if top is None or top.kind != tok.type:
                raise ValueError(f"unbalanced {tok.value!r} in {formula}")
            stack.pop()
            continue
        if tok.type == Token.SEP and tok.subtype == Token.ARG and top and top.call:
            top.call.args.append([])
            continue
        if top and top.call:
            top.call.args[-1].append(tok)
        if tok.subtype == Token.OPEN:
            call = None
            if tok.type == Token.FUNC:
                name = tok.value[:-1].lstrip("@")
                prefixed = name.startswith(_FUTURE_PREFIXES)
                if prefixed:
                    name = name.split(".", 1)[1]
                call = FunctionCall(name.upper(), prefixed)
                calls.append(call)
            stack.append(_Frame(tok.type, call))
    if stack:
        raise ValueError(f"unclosed {stack[-1].kind} in {formula}")
    return calls


def test_function_calls_parser() -> None:
    calls = function_calls(
        '=IMPLIED_CORR(Weights, Vols, 0.1, "a,b", "x")+SUM({1,2;3,4}, F(), G(,))'
    )
    assert [(c.name, c.nargs) for c in calls] == [
        ("IMPLIED_CORR", 5),
        ("SUM", 3),
        ("F", 0),
        ("G", 2),
    ]
    assert [[t.value for t in a] for a in calls[0].args] == [
        ["Weights"],
        ["Vols"],
        ["0.1"],
        ['"a,b"'],
        ['"x"'],
    ]
    nested = function_calls("=ROUND(INDEX_VOL(A1:A3, B1:B3, (C1:E3)), 2)")
    assert [(c.name, c.nargs) for c in nested] == [("ROUND", 2), ("INDEX_VOL", 3)]
    future = function_calls("=_xlfn.ANCHORARRAY(A1)")
    assert (future[0].name, future[0].prefixed, future[0].nargs) == ("ANCHORARRAY", True, 1)
    with pytest.raises(ValueError):
        function_calls("=SUM(A1")


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class FormulaCell:
    sheet: str
    cell: str
    text: str
    ref: str  # the cells it fills: a spill range for an array formula
    array: bool = False  # an array formula (as Excel 365 writes a dynamic array)

    @property
    def where(self) -> str:
        return f"{self.sheet}!{self.cell}"


def formula_cells(book: openpyxl.Workbook) -> list[FormulaCell]:
    out = []
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, ArrayFormula):
                    out.append(FormulaCell(ws.title, c.coordinate, c.value.text, c.value.ref, True))
                elif c.data_type == "f":
                    out.append(FormulaCell(ws.title, c.coordinate, c.value, c.coordinate))
    return out


def cell_value(value: Any) -> Any:
    """A cell's value as xlwings hands it to Python: floats, None, str, bool."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def range_grid(values: openpyxl.Workbook, sheet: str, ref: str) -> list[list[Any]]:
    cells = values[sheet][ref.replace("$", "")]
    if not isinstance(cells, tuple):
        cells = ((cells,),)
    return [[cell_value(c.value) for c in row] for row in cells]


_SPILL_NAME = re.compile(r"_xlfn\.ANCHORARRAY\('?((?:[^']|'')+?)'?!\$([A-Z]+)\$(\d+)\)",
                         re.IGNORECASE)


def spill_name_target(formulas: openpyxl.Workbook, name: str) -> tuple[str, str] | None:
    """(sheet, spilled range) of a name that refers to a spill (``=A33#``), else None.

    The anchor must hold a dynamic-array formula: the spill is what it fills.
    """
    m = _SPILL_NAME.fullmatch(formulas.defined_names[name].attr_text)
    if m is None:
        return None
    sheet, anchor = m.group(1).replace("''", "'"), f"{m.group(2)}{m.group(3)}"
    cell = formulas[sheet][anchor].value
    assert isinstance(cell, ArrayFormula), f"name {name}: {sheet}!{anchor} does not spill"
    return sheet, cell.ref


def resolve_reference(values: openpyxl.Workbook, text: str, sheet: str,
                      formulas: openpyxl.Workbook | None = None) -> list[list[Any]]:
    """The cells of a workbook name (a range or a spill) or an A1 reference (``Sheet!A1:B2``).

    ``formulas``, the same file read with its formulas, resolves spill names.
    """
    if text in values.defined_names:
        spill = spill_name_target(formulas, text) if formulas is not None else None
        if spill is not None:
            return range_grid(values, *spill)
        dests = list(values.defined_names[text].destinations)
        assert len(dests) == 1, f"name {text} has {len(dests)} ranges"
        return range_grid(values, *dests[0])
    if "!" in text:
        sheet, text = text.rsplit("!", 1)
        sheet = sheet.strip("'").replace("''", "'")
    return range_grid(values, sheet, text)


def as_xlwings(grid: list[list[Any]], arg: Argument) -> Any:
    """What xlwings hands a UDF argument for a range holding ``grid``."""
    if arg.is_range:  # declared ndim=2
        return grid
    if len(grid) == 1 and len(grid[0]) == 1:
        return grid[0][0]
    if len(grid) == 1:
        return grid[0]
    if all(len(r) == 1 for r in grid):
        return [r[0] for r in grid]
    return grid


def argument_value(
    tokens: list[Token], arg: Argument, values: openpyxl.Workbook, sheet: str,
    formulas: openpyxl.Workbook | None = None,
) -> Any:
    assert len(tokens) == 1 and tokens[0].type == Token.OPERAND, (
        "the test evaluates only names, references and constants as arguments: "
        + "".join(t.value for t in tokens)
    )
    tok = tokens[0]
    if tok.subtype == Token.TEXT:
        return tok.value[1:-1].replace('""', '"')
    if tok.subtype == Token.NUMBER:
        return float(tok.value)
    if tok.subtype == Token.LOGICAL:
        return tok.value.upper() == "TRUE"
    assert tok.subtype == Token.RANGE, f"cannot evaluate {tok.value}"
    return as_xlwings(resolve_reference(values, tok.value, sheet, formulas), arg)


def result_grid(result: Any) -> list[list[Any]]:
    if isinstance(result, list | tuple):
        if result and all(isinstance(r, list | tuple) for r in result):
            return [list(r) for r in result]
        return [list(result)]
    return [[result]]


def same_cell(expected: Any, cached: Any) -> bool:
    if expected in (None, "") or cached in (None, ""):
        return expected in (None, "") and cached in (None, "")
    if isinstance(expected, str) or isinstance(cached, str):
        return expected == cached
    return math.isclose(float(expected), float(cached), rel_tol=1e-9, abs_tol=1e-9)


# --------------------------------------------------------------------------- the files


@pytest.mark.parametrize("name", NAMES)
def test_rebuild_is_byte_identical(rebuilt: dict[str, Path], name: str) -> None:
    old, new = committed(name).read_bytes(), rebuilt[name].read_bytes()
    if old == new:
        return
    with zipfile.ZipFile(committed(name)) as a, zipfile.ZipFile(rebuilt[name]) as b:
        parts = sorted(set(a.namelist()) | set(b.namelist()))
        differ = [
            p
            for p in parts
            if p not in a.namelist() or p not in b.namelist() or a.read(p) != b.read(p)
        ]
    pytest.fail(
        f"workbooks/{name} differs from a rebuild in {differ or 'zip layout'}: "
        "run python -m xlfuncs.excel.build and commit the result"
    )


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        (Call("INDEX_VOL", (Ref("W"), Ref("W"), "corr")), "#xlfuncs!"),
        (Call("INDEX_VOL", (Ref("W"), Ref("W"))), "takes 3 to 3 arguments"),
        (Call("NO_SUCH_FUNCTION", ()), "not a registered"),
        (Call("INDEX_VOL", (Ref("W"), Ref("W"), Ref("Undefined"))), "not defined"),
    ],
)
def test_builder_refuses_bad_formulas(formula: Call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(formula, {"W": [[0.5], [0.5]]})


def test_build_main_writes_every_workbook(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)


@pytest.mark.parametrize("name", SHEETS)
def test_formulas_call_known_functions_with_valid_arity(name: str) -> None:
    book = openpyxl.load_workbook(committed(name))
    cells = formula_cells(book)
    assert cells, f"{name} has no formulas"
    used = set()
    for fc in cells:
        for call in function_calls(fc.text):
            fn = None if call.prefixed else REGISTRY.get(call.name)
            if fn is None:
                assert call.prefixed or call.name in FORMULAE, (
                    f"{name} {fc.where}: {fc.text} calls {call.name}, which is neither an "
                    "Excel built-in nor an xlfuncs function"
                )
                continue
            used.add(call.name)
            assert fn.min_args <= call.nargs <= fn.max_args, (
                f"{name} {fc.where}: {fc.text} gives {call.name} {call.nargs} arguments "
                f"({fn.min_args} to {fn.max_args} allowed)"
            )
    assert MUST_CALL.get(name, set()) <= used
    for defined in book.defined_names.values():
        if spill_name_target(book, defined.name) is not None:
            continue  # the spill of a dynamic array (checked there)
        assert "(" not in defined.attr_text, f"name {defined.name} is a formula"
        assert len(list(defined.destinations)) == 1, f"name {defined.name} is not one range"


@pytest.mark.parametrize("name", SHEETS)
def test_xlfuncs_formulas_are_dynamic_arrays(name: str) -> None:
    """Excel 365 spills a formula only when the file marks it as a dynamic array."""
    with zipfile.ZipFile(committed(name)) as z:
        sheets = [n for n in z.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)]
        metadata = z.read("xl/metadata.xml").decode()
        marked = 0
        for part in sheets:
            root = ET.fromstring(z.read(part))
            for c in root.iterfind(".//m:c", _NS):
                f = c.find("m:f", _NS)
                if f is None or not any(
                    not call.prefixed and call.name in REGISTRY
                    for call in function_calls("=" + (f.text or ""))
                ):
                    continue
                where = f"{name} {part} {c.get('r')}: ={f.text}"
                assert f.get("t") == "array" and f.get("ref"), f"{where} is not an array formula"
                assert c.get("cm") is not None, f"{where} lacks the dynamic-array marking"
                marked += 1
    assert marked
    assert 'fDynamic="1"' in metadata


@pytest.mark.parametrize("name", SHEETS)
def test_xlfuncs_formulas_reproduce_cached_values(name: str) -> None:
    formulas = openpyxl.load_workbook(committed(name))
    values = openpyxl.load_workbook(committed(name), data_only=True)
    evaluated = 0
    for fc in formula_cells(formulas):
        calls = function_calls(fc.text)
        fn = REGISTRY.get(calls[0].name) if calls and not calls[0].prefixed else None
        if fn is None:
            continue
        assert len(calls) == 1 and fc.text.replace(" ", "").startswith(f"={fn.name}("), (
            f"{fc.where}: {fc.text} should be a single xlfuncs call"
        )
        call = calls[0]
        args = [
            argument_value(tokens, spec, values, fc.sheet, formulas)
            for tokens, spec in zip(call.args, fn.args, strict=False)
        ]
        grid = result_grid(fn.func(*args))
        errors = [c for r in grid for c in r if isinstance(c, str) and c.startswith(ERROR_PREFIX)]
        assert not errors, f"{name} {fc.where}: {fc.text} gives {errors[0]}"
        cached = range_grid(values, fc.sheet, fc.ref)
        assert (len(cached), len(cached[0])) == (len(grid), len(grid[0])), (
            f"{name} {fc.where}: {fc.text} fills {fc.ref} but gives "
            f"{len(grid)}x{len(grid[0])} values"
        )
        for i, row in enumerate(grid):
            for j, expected in enumerate(row):
                assert same_cell(expected, cached[i][j]), (
                    f"{name} {fc.where}: {fc.text}[{i}][{j}] is {expected!r} but the file "
                    f"caches {cached[i][j]!r}"
                )
        evaluated += 1
    assert evaluated >= len(MUST_CALL.get(name, ()))


def test_implied_cov_sheet_shows_the_index_vol_gap() -> None:
    """The check block shows SPY's 0.116 and the 0.085 the historical correlations imply."""
    values = openpyxl.load_workbook(committed("ImpliedCov.xlsm"), data_only=True)
    formulas = openpyxl.load_workbook(committed("ImpliedCov.xlsm"))
    found = {}
    for fc in formula_cells(formulas):
        if fc.text.replace(" ", "").startswith("=INDEX_VOL("):
            found[fc.text.split(",")[-1].strip(" )")] = values[fc.sheet][fc.cell].value
    assert found["HistCorr"] == pytest.approx(0.0848, abs=5e-4)
    assert found["ImpliedCorr"] == pytest.approx(0.116, abs=1e-9)
    assert found["ShiftCorr"] == pytest.approx(0.116, abs=1e-9)
    assert resolve_reference(values, "SpyVol", "ImpliedCov") == [[0.116]]


# --------------------------------------------------------------------------- VBA

_FUNCTION = re.compile(r"^Function (\w+)\(([^)]*)\)\s*$", re.M)
_CALL_UDF = re.compile(r"([\w.]+)\.CallUDF\(")
_WRAPPER_CALL = re.compile(
    r'^\s*(\w+) = XLPy\.CallUDF\("([^"]+)", "(\w+)", Array\(([^)]*)\), (\w+), '
    r"Application\.Caller\)\s*$",
    re.M,
)


@pytest.mark.parametrize("name", NAMES)
def test_vba_wraps_every_function_through_the_xlwings_addin(name: str) -> None:
    with ExcelFile(committed(name)) as book:
        modules = {m: book.get_module(m) for m in book.module_names()}
        refs = {r.name: r for r in book.references()}
    spec = next(s for s in workbook_specs() if s.filename == name)
    expected = {
        "ThisWorkbook",
        *(s.code_name for s in spec.sheets),
        vba.WRAPPER_MODULE,
        vba.HELP_MODULE,
        *spec.vba_modules,
    }
    assert set(modules) == expected  # nothing of xlwings' own VBA is embedded
    assert refs["xlwings"].kind == "project"
    assert refs["xlwings"].libid.endswith("\\xlwings.xlam")

    source = modules[vba.WRAPPER_MODULE]
    signatures = {m.group(1): m.group(2) for m in _FUNCTION.finditer(source)}
    assert set(signatures) == set(REGISTRY)
    for fname, fn in REGISTRY.items():
        params = [p.strip() for p in signatures[fname].split(",") if p.strip()]
        assert params == [("Optional " if a.optional else "") + a.name for a in fn.args]
    calls = _WRAPPER_CALL.findall(source)
    assert len(calls) == len(_CALL_UDF.findall(source)) == len(REGISTRY)
    # xlwings looks for embedded code in the workbook it is handed: the add-in's own
    # wrappers hand it the workbook the analyst is in, as xlwings does for add-ins
    workbook = "ActiveWorkbook" if name.endswith(".xlam") else "ThisWorkbook"
    for target, module, fname, args, book_arg in calls:
        assert book_arg == workbook
        assert target == fname and module == vba.PYTHON_MODULE == "xlfuncs.udfs"
        assert [a.strip() for a in args.split(",") if a.strip()] == [
            a.name for a in REGISTRY[fname].args
        ]
    for other, text in modules.items():
        if other != vba.WRAPPER_MODULE:
            assert "CallUDF" not in text, f"{other} calls Python directly"
    for fname in REGISTRY:
        assert f'Describe "{fname}",' in modules[vba.HELP_MODULE]


@pytest.mark.parametrize("name", NAMES)
def test_package_is_well_formed(name: str) -> None:
    """Zip CRCs, XML, relationships, content types and the VBA project all check out."""
    report = check_file(committed(name))
    assert report.complete and report.issues == ()
    with ExcelFile(committed(name)) as book:
        assert book.validate() == []


@pytest.mark.parametrize("name", NAMES)
def test_vba_modules_compile(name: str) -> None:
    """pyOpenVBA's interpreter compiles every standard module (syntax, block structure)."""
    with ExcelFile(committed(name)) as book:
        modules = {m: book.get_module(m) for m in book.module_names()}
    app = ExcelApplication()
    app.add_workbook()
    spec = next(w for w in workbook_specs() if w.filename == name)
    for module in (vba.WRAPPER_MODULE, vba.HELP_MODULE, *spec.vba_modules):
        body = modules[module].split("\r\n", 1)[1]  # without the Attribute VB_Name line
        app.add_module(body, name=module)
    workbook = [line for line in modules["ThisWorkbook"].split("\r\n")
                if not line.startswith("Attribute VB_")]
    app.add_module("\r\n".join(workbook), name="WorkbookEvents")


# --------------------------------------------------------------------------- VBA grammar

_VB_ATTRIBUTE = re.compile(r"^Attribute VB_\w+")


class _SyntaxErrors:
    """An ANTLR error listener that keeps every syntax error."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def syntaxError(self, recognizer, symbol, line, column, msg, e):
        self.errors.append(f"line {line}:{column} {msg}")

    def __getattr__(self, name: str):  # reportAmbiguity and the like: not errors
        return lambda *args: None


def vba_syntax_errors(source: str) -> list[str]:
    """Syntax errors of a module's code under the ANTLR VBA grammar (grammars-v4 vba.g4).

    The ``Attribute VB_`` header lines are dropped (the grammar's module
    header knows only some of them); the rest must parse as a procedural
    module's body, to the end of the text.
    """
    antlr4 = _import_antlr()
    from antlr4_vba.vbaLexer import vbaLexer
    from antlr4_vba.vbaParser import vbaParser

    lines = [line for line in source.split("\r\n") if not _VB_ATTRIBUTE.match(line)]
    listener = _SyntaxErrors()
    lexer = vbaLexer(antlr4.InputStream("\r\n" + "\r\n".join(lines)))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = vbaParser(antlr4.CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.proceduralModuleBody()
    rest = parser.getCurrentToken()
    if rest.type != antlr4.Token.EOF:
        listener.errors.append(f"line {rest.line}:{rest.column} cannot parse {rest.text!r}")
    return listener.errors


def _import_antlr():
    try:
        import antlr4
        import antlr4_vba  # noqa: F401
    except ImportError:
        pytest.fail("the VBA grammar checks need antlr4-vba: pip install -e '.[test]'")
    return antlr4


def test_vba_grammar_check_finds_errors() -> None:
    good = 'Attribute VB_Name = "M"\r\nOption Explicit\r\n\r\nSub A(x)\r\n    x = 1\r\nEnd Sub\r\n'
    assert vba_syntax_errors(good) == []
    assert vba_syntax_errors(good.replace("End Sub", "End Function"))
    assert vba_syntax_errors(good.replace("Sub A(x)", "Sub A(x"))
    assert vba_syntax_errors(good.replace("x = 1", 'MsgBox "open'))


@pytest.mark.parametrize("name", NAMES)
def test_every_vba_module_parses_under_the_vba_grammar(name: str) -> None:
    with ExcelFile(committed(name)) as book:
        modules = {m: book.get_module(m) for m in book.module_names()}
    assert "Workbook_Open" in modules["ThisWorkbook"]
    for module, source in modules.items():
        assert vba_syntax_errors(source) == [], f"{name} {module}"


def test_generated_vba_parses_for_any_registry() -> None:
    """What Import functions writes, for the registry and for functions the VBA must escape."""
    import xlfuncs.excel.addin as addin

    odd = [_fn("NO_ARGS"), _fn("TWO", ("a", False), ("b", True), doc='Say "hi".')]
    sources = [*addin.wrapper_modules().values(), vba.wrapper_module(odd), vba.help_module(odd),
               vba.workbook_module()]
    for source in sources:
        assert vba_syntax_errors(source) == []


# --------------------------------------------------------------------------- help and recalculation

_DESCRIBE = re.compile(r'^    Describe "(\w+)", ("(?:[^"]|"")*"), Array\((.*?)\)$', re.M | re.S)
_VBA_STRING = re.compile(r'"((?:[^"]|"")*)"')


def _vba_strings(text: str) -> list[str]:
    return [m.group(1).replace('""', '"') for m in _VBA_STRING.finditer(text)]


def _as_in_vba(text: str) -> str:
    return text.encode("cp1252", errors="replace").decode("cp1252")


def test_registry_help_fits_the_function_wizard() -> None:
    """255 characters per text, one line each, all in the VBA project's code page."""
    for fn in REGISTRY.values():
        for text in (fn.doc, *(a.doc for a in fn.args)):
            assert 0 < len(text) <= 255, (fn.name, text)
            assert text == _as_in_vba(" ".join(text.split())), (fn.name, text)


@pytest.mark.parametrize("name", NAMES)
def test_workbook_open_registers_the_help_of_every_function(name: str) -> None:
    modules = _vba_modules(name)
    body = [line.strip() for line in modules["ThisWorkbook"].split("\r\n")]
    start = body.index("Private Sub Workbook_Open()")
    sub = body[start:body.index("End Sub", start)]
    calls = [line for line in sub if line and not line.startswith("'")]
    # errors are ignored before anything runs: opening the workbook never stops here
    assert calls == ["Private Sub Workbook_Open()", "On Error Resume Next",
                     "xlfuncs_help.RegisterFunctionHelp", "xlfuncs_help.RecalculateFunctions"]

    source = modules[vba.HELP_MODULE].replace(" _\r\n", " ").replace("\r\n", "\n")
    described = {m.group(1): m for m in _DESCRIBE.finditer(source)}
    assert list(described) == list(REGISTRY)
    for fname, fn in REGISTRY.items():
        m = described[fname]
        assert _vba_strings(m.group(2)) == [_as_in_vba(fn.doc)]
        docs = _vba_strings(m.group(3))
        assert len(docs) == fn.max_args
        assert docs == [_as_in_vba(a.doc) for a in fn.args]
    assert re.search(r"Application\.MacroOptions Macro:=target, Description:=text, "
                     r'Category:="xlfuncs", ArgumentDescriptions:=argDocs', source)
    assert "target = \"'\" & ThisWorkbook.Name & \"'!\" & fname" in source
    # the recalculation dirties the formulas that call any registered function
    found = set(re.findall(r'VBA\.InStr\(1, formulaText, "(\w+)\(", VBA\.vbTextCompare\)',
                           source))
    assert found == set(REGISTRY)
    assert "cell.Dirty" in source and "Application.Calculate" in source


def test_help_texts_longer_than_the_wizard_are_refused() -> None:
    long = WorksheetFunction("F", lambda: None, "x" * 256, ())
    with pytest.raises(ValueError, match="longer than 255"):
        vba.help_module([long])


@pytest.mark.parametrize("name", NAMES)
def test_no_full_recalculation_at_load(name: str) -> None:
    """Excel keeps the stored results at opening; Workbook_Open recalculates them."""
    with zipfile.ZipFile(committed(name)) as z:
        root = ET.fromstring(z.read("xl/workbook.xml"))
    calc = root.find("m:calcPr", _NS)
    assert calc is not None
    assert calc.get("fullCalcOnLoad") in (None, "0")
    assert int(calc.get("calcId")) >= 191029  # an older engine's file is recalculated


@pytest.mark.parametrize("name", SHEETS)
def test_every_xlfuncs_formula_has_its_result_stored(name: str) -> None:
    with zipfile.ZipFile(committed(name)) as z:
        parts = [n for n in z.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)]
        cells = {}
        for part in parts:
            for c in ET.fromstring(z.read(part)).iterfind(".//m:c", _NS):
                cells[(part, c.get("r"))] = c
    checked = 0
    for (part, ref), c in cells.items():
        f = c.find("m:f", _NS)
        if f is None or not any(call.name in REGISTRY for call in function_calls("=" + f.text)):
            continue
        min_col, min_row, max_col, max_row = range_boundaries(f.get("ref"))
        spill = [f"{openpyxl.utils.get_column_letter(col)}{row}"
                 for row in range(min_row, max_row + 1) for col in range(min_col, max_col + 1)]
        empty = [at for at in spill if (part, at) not in cells
                 or not (cells[(part, at)].findtext("m:v", None, _NS) or "")]
        # only the blank corner of a labelled matrix (tickers across and down) is empty
        assert empty in ([], [ref]) and len(spill) - len(empty) >= 1, (
            f"{name} {ref}: ={f.text} has no stored result in {empty[:5]}")
        assert not empty or min(max_row - min_row, max_col - min_col) > 0
        checked += 1
    assert checked >= len(MUST_CALL[name])


# --------------------------------------------------------------------------- the add-in

_RUNPYTHON = re.compile(r'RunPython\s+"import (xlfuncs\.macros); xlfuncs\.macros\.(\w+)\(\)"')
_CALLBACK = re.compile(r"^Public Sub (\w+)\(control As IRibbonControl\)\r?$", re.MULTILINE)
_CUSTOMUI = "{http://schemas.microsoft.com/office/2009/07/customui}"


def _vba_modules(name: str) -> dict[str, str]:
    with ExcelFile(committed(name)) as book:
        return {m: book.get_module(m) for m in book.module_names()}


def test_addin_is_an_addin_package_with_the_xlfuncs_tab() -> None:
    with zipfile.ZipFile(committed(ADDIN)) as z:
        types = z.read("[Content_Types].xml").decode()
        assert "application/vnd.ms-excel.addin.macroEnabled.main+xml" in types
        rels = ET.fromstring(z.read("_rels/.rels"))
        targets = {r.get("Target"): r.get("Type") for r in rels}
        assert targets["customUI/customUI14.xml"].endswith("/ui/extensibility")
        ui = ET.fromstring(z.read("customUI/customUI14.xml"))
    tabs = ui.findall(f".//{_CUSTOMUI}tab")
    assert [t.get("label") for t in tabs] == ["xlfuncs"]
    labels = [b.get("label") for b in ui.iter(f"{_CUSTOMUI}button")]
    assert labels == ["Refresh holdings", "Run backtest", "Import functions", "Doctor", "Help"]


def test_every_ribbon_action_has_a_vba_callback() -> None:
    with zipfile.ZipFile(committed(ADDIN)) as z:
        ui = ET.fromstring(z.read("customUI/customUI14.xml"))
    actions = {b.get("onAction") for b in ui.iter(f"{_CUSTOMUI}button")}
    callbacks = set()
    for text in _vba_modules(ADDIN).values():
        callbacks |= set(_CALLBACK.findall(text))
    assert actions and actions <= callbacks, actions - callbacks


def test_every_ribbon_callback_checks_for_a_workbook_before_runpython() -> None:
    """xlwings' RunPython reads the active workbook's sheets: with none open it stops
    with run-time error 91. Each button says "open a workbook first" instead."""
    text = "\n".join(_vba_modules(ADDIN).values()).replace("\r\n", "\n")
    subs = re.findall(r"Public Sub (On\w+)\(control As IRibbonControl\)\n(.*?)End Sub", text,
                      re.S)
    assert len(subs) == 5
    for name, body in subs:
        lines = [line.strip() for line in body.strip().splitlines()]
        assert lines[0].startswith("If NoWorkbook(") and lines[0].endswith(") Then Exit Sub"), name
        assert lines[1].startswith('RunPython "'), name
    assert "NoWorkbook = ActiveWorkbook Is Nothing" in text


@pytest.mark.parametrize("name", NAMES)
def test_every_runpython_string_imports_a_macro(name: str) -> None:
    import importlib

    found = []
    for text in _vba_modules(name).values():
        for module, func in _RUNPYTHON.findall(text):
            target = getattr(importlib.import_module(module), func, None)
            assert callable(target), f"{name}: RunPython calls {module}.{func}, which is missing"
            found.append(func)
        assert text.count('RunPython "') == len(_RUNPYTHON.findall(text)), (
            f"{name}: a RunPython call the test cannot check"
        )
    if name == ADDIN:
        assert set(found) == {"refresh_holdings", "run_backtest", "import_functions",
                              "doctor", "show_help"}


class FakeExcel:
    """The part of Excel's Application object that registering help uses."""

    def __init__(self, version: str = "16.0", refuse: str = ""):
        self.Version, self.refuse = version, refuse
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def MacroOptions(self, macro: str, **options: Any) -> None:
        if self.refuse and macro.endswith("!" + self.refuse):
            raise RuntimeError("(-2146827284, 'Exception occurred.')")
        self.calls.append((macro, options))


def test_import_functions_registers_the_help_as_xlwings_does() -> None:
    from xlfuncs.excel.addin import register_function_help

    excel = FakeExcel()
    assert register_function_help(excel, "My Book.xlsm") == len(REGISTRY)
    assert [m for m, _ in excel.calls] == [f"'My Book.xlsm'!{n}" for n in REGISTRY]
    for (_, options), fn in zip(excel.calls, REGISTRY.values(), strict=True):
        assert options["Description"] == fn.doc and options["Category"] == "xlfuncs"
        assert options.get("ArgumentDescriptions", []) == [a.doc for a in fn.args]
    # Excel 2007 has no argument descriptions; one refused function leaves the others
    old = FakeExcel("12.0", refuse="INDEX_VOL")
    assert register_function_help(old, "b.xlsm") == len(REGISTRY) - 1
    assert all("ArgumentDescriptions" not in o for _, o in old.calls)
    assert "'b.xlsm'!INDEX_VOL" not in [m for m, _ in old.calls]


def _fn(name: str, *args: tuple[str, bool], doc: str = "Doc.") -> WorksheetFunction:
    return WorksheetFunction(
        name, lambda *a: None, doc, tuple(Argument(n, f'Help of "{n}".', o, False) for n, o in args)
    )


def test_wrapper_module_text() -> None:
    text = vba.wrapper_module([_fn("NO_ARGS"), _fn("TWO", ("a", False), ("b", True))])
    assert text.startswith('Attribute VB_Name = "xlwings_udfs"\r\n')
    assert "Function NO_ARGS()\r\n" in text
    assert 'NO_ARGS = XLPy.CallUDF("xlfuncs.udfs", "NO_ARGS", Array(), ' in text
    assert "Function TWO(a, Optional b)\r\n" in text
    assert "On Error GoTo failed" in text and "TWO = Err.Description" in text
    addin = vba.wrapper_module([_fn("TWO", ("a", False))], workbook="ActiveWorkbook")
    assert "Array(a), ActiveWorkbook, Application.Caller)" in addin
    helptext = vba.help_module([_fn("TWO", ("a", False), doc='Say "hi" \u03b2.')])
    assert 'Describe "TWO", "Say ""hi"" ?.", Array( _' in helptext
    assert '"Help of ""a"".")' in helptext
    app = ExcelApplication()
    app.add_workbook()
    app.add_module(text.split("\r\n", 1)[1], name="xlwings_udfs")
    app.add_module(vba.help_module([_fn("NO_ARGS")]).split("\r\n", 1)[1], name="xlfuncs_help")


@pytest.mark.parametrize("bad", [_fn("1X"), _fn("F", ("end", False)), _fn("F", ("a b", False))])
def test_wrapper_module_rejects_names_vba_cannot_use(bad: WorksheetFunction) -> None:
    with pytest.raises(ValueError, match="VBA identifier"):
        vba.wrapper_module([bad])


def test_read_vba_sources(tmp_path: Path) -> None:
    (tmp_path / "Macros.bas").write_text('Attribute VB_Name = "Macros"\nSub A()\nEnd Sub\n')
    assert vba.read_vba_sources(tmp_path, ["Macros"]) == {
        "Macros": 'Attribute VB_Name = "Macros"\r\nSub A()\r\nEnd Sub\r\n'
    }
    (tmp_path / "Wrong.bas").write_text('Attribute VB_Name = "Other"\n')
    with pytest.raises(ValueError, match="VB_Name"):
        vba.read_vba_sources(tmp_path, ["Wrong"])


# --------------------------------------------------------------------------- LibreOffice


def load_any(path: Path) -> openpyxl.Workbook:
    """openpyxl knows no add-in package: read an .xlam as the workbook it contains."""
    if path.suffix != ".xlam":
        return openpyxl.load_workbook(path)
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "[Content_Types].xml":
                body = body.replace(b"ms-excel.addin.macroEnabled", b"ms-excel.sheet.macroEnabled")
            dst.writestr(info, body)
    return openpyxl.load_workbook(out)


def _bounds(ref: str) -> dict[str, int]:
    min_col, min_row, max_col, max_row = range_boundaries(ref)
    return {"min_row": min_row, "max_row": max_row, "min_col": min_col, "max_col": max_col}


def _convert(soffice: str, src: Path, fmt: str, out: Path, profile: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    # LibreOffice does not recognise .xlam by its name; its filter reads the package
    infilter = ["--infilter=Calc MS Excel 2007 VBA XML"] if src.suffix == ".xlam" else []
    cmd = [
        soffice,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--norestore",
        *infilter,
        "--convert-to",
        fmt,
        "--outdir",
        str(out),
        str(src),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    target = out / f"{src.stem}.{fmt}"
    assert done.returncode == 0 and target.is_file(), (
        f"LibreOffice could not convert {src.name} to {fmt}: {done.stdout} {done.stderr}"
    )
    return target


@pytest.mark.parametrize("name", NAMES)
def test_libreoffice_opens_and_converts(soffice: str, name: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    pdf = _convert(soffice, committed(name), "pdf", tmp_path / "pdf", profile)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 5000
    assert data.count(b"/Type /Page") + data.count(b"/Type/Page") >= 1

    # Saved again by LibreOffice, the workbook still holds what we wrote: LibreOffice
    # read it as it is, without repairing it.
    again = _convert(soffice, committed(name), "xlsx", tmp_path / "xlsx", profile)
    ours = load_any(committed(name))
    theirs = openpyxl.load_workbook(again)
    assert theirs.sheetnames == ours.sheetnames
    assert set(theirs.defined_names) == set(ours.defined_names)
    for sheet in ours.sheetnames:
        mine, lo = ours[sheet], theirs[sheet]
        # Cells a formula fills are LibreOffice's own results (it recalculates array
        # formulas on opening, and cannot run xlfuncs); every other cell must survive.
        filled = {
            c.coordinate
            for fc in formula_cells(ours)
            if fc.sheet == sheet
            for row in mine.iter_rows(**_bounds(fc.ref))
            for c in row
        }
        for row in mine.iter_rows():
            for c in row:
                if c.value is not None and c.coordinate not in filled:
                    got = lo[c.coordinate].value
                    if isinstance(c.value, bool):  # LibreOffice saves a boolean as =TRUE()
                        got = {"=TRUE()": True, "=FALSE()": False}.get(got, got)
                    assert got == c.value, f"{sheet}!{c.coordinate}"
        texts = {fc.text.replace(" ", "") for fc in formula_cells(ours) if fc.sheet == sheet}
        kept = {  # LibreOffice writes the constant TRUE as the function TRUE()
            fc.text.replace(" ", "").replace("TRUE()", "TRUE").replace("FALSE()", "FALSE")
            for fc in formula_cells(theirs)
            if fc.sheet == sheet
        }
        assert texts <= kept


@pytest.fixture(scope="module")
def saved_by_libreoffice(soffice: str, tmp_path_factory: pytest.TempPathFactory
                         ) -> dict[str, tuple[openpyxl.Workbook, openpyxl.Workbook]]:
    """Each shipped workbook with formulas: its cached values, and as LibreOffice shows it.

    LibreOffice opens the file with a fresh profile (the default settings: never
    recalculate an Excel 2007+ file on load) and saves what it shows, its
    formulas' results included, as xlsx.
    """
    tmp = tmp_path_factory.mktemp("libreoffice")
    out = {}
    for name in SHEETS:
        again = _convert(soffice, committed(name), "xlsx", tmp / "xlsx", tmp / "profile")
        out[name] = (openpyxl.load_workbook(committed(name), data_only=True),
                     openpyxl.load_workbook(again, data_only=True))
    return out


def _shown(books: tuple[openpyxl.Workbook, openpyxl.Workbook], cells: list[FormulaCell]
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The values ``cells`` fill, as stored and as LibreOffice shows them."""
    ours, theirs = books
    stored, shown = {}, {}
    for fc in cells:
        for row in ours[fc.sheet].iter_rows(**_bounds(fc.ref)):
            for c in row:
                where = f"{fc.sheet}!{c.coordinate}"
                stored[where] = pytest.approx(c.value, rel=1e-12) if isinstance(
                    c.value, float) else c.value
                shown[where] = theirs[fc.sheet][c.coordinate].value
    return stored, shown


@pytest.mark.parametrize("name", SHEETS)
def test_libreoffice_shows_the_stored_results_of_plain_formulas(
        saved_by_libreoffice, name: str) -> None:
    """A formula that is not an array formula keeps its cached result in LibreOffice.

    LibreOffice does not recalculate it at load (its default for Excel files).
    """
    plain = [fc for fc in formula_cells(openpyxl.load_workbook(committed(name)))
             if not fc.array]
    assert plain, f"{name} has no plain formula to check"
    stored, shown = _shown(saved_by_libreoffice[name], plain)
    assert shown == stored


@pytest.mark.xfail(strict=True, reason=(
    "LibreOffice (7.4 here) drops the cached results of every array formula of an xlsx "
    "file on opening (its OOXML import keeps cached values of plain and shared formulas "
    "only) and recalculates them, whatever the Recalculation on File Load setting; it "
    "cannot run xlfuncs, so a spilled result shows #VALUE! (#NAME? in a file without the "
    "VBA wrappers, or where it reads a spill's name, _xlfn.ANCHORARRAY). Excel 365 stores "
    "a spilling formula as an array formula (t=\"array\" with cm metadata), so no file "
    "spills in Excel and shows the stored results in this LibreOffice."))
@pytest.mark.parametrize("name", SHEETS)
def test_libreoffice_shows_the_stored_spilled_results(saved_by_libreoffice, name: str) -> None:
    spilled = [fc for fc in formula_cells(openpyxl.load_workbook(committed(name))) if fc.array]
    stored, shown = _shown(saved_by_libreoffice[name], spilled)
    assert shown == stored


@pytest.mark.parametrize(("name", "spills"), [
    ("BetaNeutral.xlsm", {"Rebalanced", "Reweighted", "Cov"}),
    ("ImpliedCov.xlsm", {"ImpliedCorr", "ShiftCorr"}),
])
def test_names_of_results_follow_their_spill(name: str, spills: set[str]) -> None:
    """More holdings or assets make a result spill further: its name must grow with it."""
    book = openpyxl.load_workbook(committed(name))
    found = {n for n in book.defined_names if spill_name_target(book, n) is not None}
    assert found == spills  # and names of inputs and macro tables stay plain ranges


# --------------------------------------------------------------------------- user instructions

_INTERNAL_NAMES = re.compile(r"\bSPEC\b|\bSTYLE\.md\b|\bSPEC\.md\b|\bissue \d+\b")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _sheet_texts(name: str) -> list[str]:
    book = load_any(committed(name))
    return [c.value for ws in book.worksheets for row in ws.iter_rows() for c in row
            if isinstance(c.value, str)]


def test_setup_steps_agree_on_the_sheet_the_help_button_and_the_readme() -> None:
    from xlfuncs.excel.addin import help_text
    from xlfuncs.excel.guide import SETUP

    readme = _flat((REPO / "README.md").read_text(encoding="utf-8"))
    help_lines = [line.strip() for line in help_text().splitlines()]
    sheet = _sheet_texts("ImpliedCov.xlsm")
    assert len(SETUP) >= 4
    for step in SETUP:
        assert f"- {step}" in readme, f"the README's install section lacks: {step}"
        assert step in help_lines, f"the Help button lacks: {step}"
        assert step in sheet, f"ImpliedCov's How to use lacks: {step}"
    # the sheet lists them in order, under its How to use heading
    at = sheet.index("How to use")
    assert sheet[at + 1:at + 1 + len(SETUP)] == list(SETUP)
    # and nothing on the sheet still asks for the old by-hand set-up
    assert not [t for t in sheet if re.search(r"pip install|config create|RegisterFunctionHelp", t)]


def test_no_internal_document_names_in_what_users_read() -> None:
    from xlfuncs.cli import build_parser
    from xlfuncs.excel.addin import help_text

    texts = {"README.md": (REPO / "README.md").read_text(encoding="utf-8"),
             "Help button": help_text()}
    parser = build_parser()
    texts["xlfuncs --help"] = parser.format_help()
    for action in parser._subparsers._group_actions:  # every subcommand's --help
        for command, sub in action.choices.items():
            texts[f"xlfuncs {command} --help"] = sub.format_help()
    for name in NAMES:
        texts[name] = "\n".join(_sheet_texts(name))
    found = {where: _INTERNAL_NAMES.findall(text) for where, text in texts.items()}
    assert {where: names for where, names in found.items() if names} == {}
    assert len(texts) > 8


_STATS_HEADERS = ["Strategy", "Annual return", "Annual volatility", "Sharpe ratio",
                  "Tracking error", "Information ratio", "Max drawdown", "Turnover",
                  "Holdings (average)", "Hit rate", "IR per period"]


def test_backtest_statistics_headers_are_plain_english_and_whole_at_their_width() -> None:
    from readable import unreadable

    path = committed("Backtest.xlsm")
    book = openpyxl.load_workbook(path)
    sheet, ref = book.defined_names["BtStats"].attr_text.split("!")
    header = [c.value for c in book[sheet.strip("'")][ref.replace("$", "")][0]]
    assert header == _STATS_HEADERS
    assert unreadable(path, "BtStats") == []
