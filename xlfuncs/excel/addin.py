"""What the add-in's Setup buttons do: import the functions, run the doctor, show help.

These run inside Excel through ``RunPython`` (re-exported by :mod:`xlfuncs.macros`).
They act on the *active* workbook: a button of an add-in is called from the
add-in's own (hidden) workbook, which is never the one the analyst means.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

import xlfuncs.udfs  # noqa: F401  (registers the worksheet functions in REGISTRY)
from xlfuncs.errors import XlfuncsError
from xlfuncs.excel import vba
from xlfuncs.excel.functions import REGISTRY
from xlfuncs.excel.guide import SETUP
from xlfuncs.excel.sheets import alert_excel

__all__ = ["doctor", "help_text", "import_functions", "register_function_help", "show_help"]

log = logging.getLogger(__name__)

TITLE = "xlfuncs"
_STD_MODULE = 1  # vbext_ct_StdModule
_TRUST_HINT = ("Excel refused access to the workbook's VBA project. Turn on File > Options > "
               "Trust Center > Trust Center Settings > Macro Settings > 'Trust access to the "
               "VBA project object model', then click Import functions again.")


def _button(func: Callable[[], None]) -> Callable[[], None]:
    """The macro boundary of a ribbon button: a failure is one message box, never a traceback.

    RunPython shows an escaping exception as a traceback dialog; here the
    reason goes to a message box and the traceback to the log.
    """

    @functools.wraps(func)
    def run() -> None:
        try:
            func()
        except Exception as exc:
            reason = str(exc) if isinstance(exc, XlfuncsError) else (
                f"unexpected {type(exc).__name__}: {exc} (details in the log)")
            text = f"{func.__name__.replace('_', ' ').capitalize()} failed: {reason}"
            log.error("%s\n%s", text, "".join(traceback.format_exception(exc)))
            alert_excel(" ".join(text.split())[:1000])

    return run


def _alert(book: Any, text: str, mode: str = "info") -> None:
    try:
        book.app.alert(text, title=TITLE, mode=mode)
    except Exception:  # very old xlwings or no UI: the status bar still says it
        book.app.status_bar = " ".join(text.split())[:250]


def help_text() -> str:
    """Short help: the functions (from the registry), the buttons and the set-up steps."""
    lines = ["Worksheet functions (type = and the name; Ctrl+Shift+A shows the arguments):"]
    for fn in sorted(REGISTRY.values(), key=lambda f: f.name):
        args = ", ".join(a.name if not a.optional else f"[{a.name}]" for a in fn.args)
        lines.append(f"  {fn.name}({args})")
    lines += [
        "",
        "Buttons: Refresh holdings (Holdings sheet), Run backtest (Backtest sheet), "
        "Import functions (into the active workbook), Doctor (checks the set-up).",
        "Errors in cells start with #xlfuncs! and name the argument at fault.",
        "",
        "Set up:",
        *(f"  {step}" for step in SETUP),
        "Guide: the README of the xlfuncs repository.",
    ]
    return "\n".join(lines)


@_button
def show_help() -> None:
    """Ribbon button Help: a message box with the functions and the buttons."""
    import xlwings as xw

    _alert(xw.Book.caller(), help_text())


@_button
def doctor() -> None:
    """Ribbon button Doctor: run the checks and show the table."""
    import xlwings as xw

    from xlfuncs import doctor as checks

    book = xw.Book.caller()
    book.app.status_bar = "xlfuncs: checking the set-up..."
    try:
        found = checks.run_checks()
        _alert(book, checks.render(found),
               mode="critical" if any(c.status == checks.FAIL for c in found) else "info")
    finally:
        book.app.status_bar = False


def wrapper_modules() -> dict[str, str]:
    """The VBA modules Import functions writes: the wrappers and the Function Wizard help."""
    functions = list(REGISTRY.values())
    return {vba.WRAPPER_MODULE: vba.wrapper_module(functions),
            vba.HELP_MODULE: vba.help_module(functions)}


def register_function_help(app: Any, workbook_name: str) -> int:
    """Give the Insert Function dialog the functions' help, as xlwings' Import Functions does.

    Calls ``Application.MacroOptions`` for every registered function of the
    workbook with its description, the ``xlfuncs`` category and, from Excel
    2010 on, its argument descriptions (texts from the registry, as in the
    workbooks' ``RegisterFunctionHelp``).

    Parameters
    ----------
    app : Excel Application (COM)
        ``book.app.api`` of the workbook.
    workbook_name : str
        The workbook that holds the wrappers.

    Returns
    -------
    int
        How many functions got their help; a refusal of one function is logged
        and the others go on.

    """
    try:
        major = int(str(app.Version).replace(",", ".").split(".")[0])
    except (AttributeError, ValueError):
        major = 16
    done = 0
    for item in vba.function_help(REGISTRY.values()):
        options: dict[str, Any] = {"Description": item.description, "Category": vba.CATEGORY}
        if major >= 14 and item.arguments:  # ArgumentDescriptions came with Excel 2010
            options["ArgumentDescriptions"] = list(item.arguments)
        try:
            app.MacroOptions(f"'{workbook_name}'!{item.name}", **options)
        except Exception as exc:  # a COM refusal: the function works, without help
            log.warning("no Insert Function help for %s: %s", item.name, exc)
            continue
        done += 1
    return done


@_button
def import_functions() -> None:
    """Ribbon button Import functions: write the function wrappers into the active workbook.

    Windows only (classic xlwings runs no worksheet functions on macOS). Needs a
    macro-enabled workbook and "Trust access to the VBA project object model".
    Existing xlfuncs modules are replaced; the workbook gets a reference to the
    xlwings add-in, whose ``XLPy.CallUDF`` the wrappers call, and each function
    its Insert Function help (:func:`register_function_help`).
    """
    from xlfuncs.excel.sheets import XlwingsBook

    book = XlwingsBook.caller().book  # the active workbook when called from the add-in
    if not sys.platform.startswith("win"):
        _alert(book, "Worksheet functions run only in Excel on Windows (classic xlwings); "
               "on a Mac use the xlfuncs command line for the same numbers.")
        return
    if not str(book.name).lower().endswith((".xlsm", ".xlsb", ".xlam")):
        _alert(book, f"{book.name} cannot hold macros: save it as an Excel Macro-Enabled "
               "Workbook (.xlsm), then click Import functions again.", "critical")
        return
    try:
        project = book.api.VBProject
        components = project.VBComponents
    except Exception:
        _alert(book, _TRUST_HINT, "critical")
        return
    for name, source in wrapper_modules().items():
        body = source.split("\r\n", 1)[1]  # VBComponents set the name; drop Attribute VB_Name
        try:
            components.Remove(components.Item(name))
        except Exception:  # not there yet
            log.debug("no module %s to replace", name)
        module = components.Add(_STD_MODULE)
        module.Name = name
        module.CodeModule.AddFromString(body)
    refs = {project.References.Item(i).Name.lower() for i in range(1, project.References.Count + 1)}
    if "xlwings" not in refs:
        addin = next((b for b in book.app.books if str(b.name).lower() == "xlwings.xlam"), None)
        if addin is None:
            _alert(book, "The functions were imported, but the xlwings add-in is not loaded: "
                   "run xlwings addin install, restart Excel, then click Import functions "
                   "again.", "critical")
            return
        project.References.AddFromFile(addin.fullname)
    described = register_function_help(book.app.api, book.name)
    missing = (f" ({len(REGISTRY) - described} without Insert Function help: see the log)"
               if described < len(REGISTRY) else "")
    book.app.status_bar = f"xlfuncs: {len(REGISTRY)} functions imported into {book.name}{missing}"
