"""What the xlwings Lite tests share: Pyodide's constraints, Office.js payloads, a browser fetch.

* :func:`install_guard` makes this process look like Pyodide to the code under
  test: ``multiprocessing``, process pools, ``subprocess``, ``hmmlearn``,
  ``win32com`` and every third-party module outside :data:`PYODIDE_MODULES`
  raise on import; starting a thread or a process raises (as Pyodide's
  ``can't start new thread``).
* :func:`office_js_book` is the book payload the xlwings Office.js client sends
  with a script call, made from a workbook file (cached values, names).
* :func:`browser_fetch` is ``pyodide.http.pyfetch`` as a browser runs it for the
  add-in's origin: it sends ``Origin: https://addin.xlwings.org`` and, like the
  browser, hides an answer without a matching ``Access-Control-Allow-Origin``
  (the fetch fails with ``OSError``). CORS preflight requests are not emulated.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

LITE_ORIGIN = "https://addin.xlwings.org"

# Top-level modules of Pyodide's own builds (numpy, scipy, pandas, scikit-learn,
# matplotlib, cvxpy-base, clarabel, openpyxl, requests and their dependencies) and of
# the pure-Python wheels the generated requirements.txt installs (xlwings, xlfuncs, tqdm).
PYODIDE_MODULES = frozenset({
    "numpy", "scipy", "pandas", "sklearn", "joblib", "threadpoolctl", "matplotlib",
    "mpl_toolkits", "PIL", "cycler", "kiwisolver", "fontTools", "pyparsing", "contourpy",
    "dateutil", "pytz", "tzdata", "six", "packaging", "cvxpy", "_cvxcore", "clarabel", "qdldl",
    "openpyxl", "et_xmlfile", "requests", "urllib3", "idna", "certifi",
    "charset_normalizer", "typing_extensions", "xlwings", "xlfuncs", "tqdm", "pyodide",
    "cloudpickle", "narwhals", "_distutils_hack", "lite_support", "lite_main",
})
# The same, as distribution names, for the requirements on sys_platform == "emscripten".
PYODIDE_DISTRIBUTIONS = frozenset({
    "numpy", "scipy", "pandas", "scikit-learn", "matplotlib", "cvxpy-base", "clarabel",
    "openpyxl", "requests", "tqdm", "xlwings",
})
BLOCKED = ("hmmlearn", "win32com", "win32api", "pywintypes", "pythoncom", "pyopenvba", "xlsxwriter",
           "dask", "distributed")


_ABSENT: set[str] = set(BLOCKED)  # with the installed modules Pyodide does not have


class _Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        top = name.partition(".")[0]
        if top in _ABSENT:
            raise ModuleNotFoundError(f"{name} is not available in Pyodide (xlwings Lite)",
                                      name=name)
        return None


def _no(what: str):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{what} is not available in Pyodide (xlwings Lite)")

    return refuse


def install_guard() -> None:
    """Make this process refuse what Pyodide cannot do (call before importing xlfuncs)."""
    import _thread
    import concurrent.futures
    import multiprocessing.pool
    import multiprocessing.process
    import os
    import pkgutil
    import subprocess
    import threading

    sys.meta_path.insert(0, _Guard())
    # installed but not in Pyodide: absent to an import, to importlib.util.find_spec and
    # to sys.modules (scikit-learn looks pyarrow up there: a None entry would be "loaded")
    for found in pkgutil.iter_modules():
        top = found.name
        if top in BLOCKED or (top not in sys.stdlib_module_names and "sysconfigdata" not in top
                              and top not in PYODIDE_MODULES and top not in sys.modules):
            _ABSENT.add(top)
    find_spec = importlib.util.find_spec

    def pyodide_find_spec(name: str, package: str | None = None) -> Any:
        return None if name.partition(".")[0] in _ABSENT else find_spec(name, package)

    importlib.util.find_spec = pyodide_find_spec
    threading.Thread.start = _no("starting a thread")  # type: ignore[method-assign]
    _thread.start_new_thread = _no("starting a thread")
    subprocess.Popen.__init__ = _no("starting a process")  # type: ignore[method-assign]
    multiprocessing.process.BaseProcess.start = _no("multiprocessing")  # type: ignore[method-assign]
    multiprocessing.pool.Pool.__init__ = _no("multiprocessing")  # type: ignore[method-assign]
    concurrent.futures.ProcessPoolExecutor.__init__ = _no("a process pool")  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = _no("a thread pool")  # type: ignore[method-assign]
    os.fork = _no("fork")
    for name in [m for m in sys.modules if m.partition(".")[0] in BLOCKED]:
        del sys.modules[name]


def office_js_book(path: str | Path, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload xlwings' Office.js client sends for a workbook (values, names).

    ``values`` sets named single cells (name -> value) before it is sent.
    """
    import xlwings
    from openpyxl import load_workbook
    from openpyxl.utils.cell import range_boundaries

    wb = load_workbook(path, data_only=True)
    names, cells = [], {}
    for name, item in wb.defined_names.items():
        dests = list(item.destinations) if "ANCHORARRAY" not in item.attr_text else []
        if len(dests) != 1:
            continue
        sheet, ref = dests[0]
        c1, r1, _, _ = range_boundaries(ref.replace("$", ""))
        names.append({"name": name, "sheet_index": wb.sheetnames.index(sheet),
                      "address": ref.replace("$", ""), "book_scope": True,
                      "scope_sheet_index": None, "scope_sheet_name": None})
        cells[name] = (sheet, r1, c1)
    for name, value in (values or {}).items():
        sheet, r, c = cells[name]
        wb[sheet].cell(r, c).value = value
    sheets = []
    for ws in wb.worksheets:
        rows = [["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else v)
                 for v in row] for row in ws.iter_rows(values_only=True)]
        sheets.append({"name": ws.title, "values": rows or [[""]], "pictures": [],
                       "tables": []})
    return {"client": "Office.js", "version": xlwings.__version__,
            "book": {"name": Path(path).name, "active_sheet_index": 0, "selection": "A1"},
            "sheets": sheets, "names": names}


class _Response:
    def __init__(self, status: int, headers: dict[str, str], content: bytes):
        self.status, self.headers, self._content = status, headers, content

    async def bytes(self) -> bytes:
        return self._content


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


async def browser_fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                        body: str | None = None, redirect: str = "follow") -> _Response:
    """``pyfetch`` as the browser runs it for the xlwings Lite add-in (see the module doc)."""
    request = urllib.request.Request(url, data=None if body is None else body.encode(),
                                     method=method,
                                     headers={**(headers or {}), "Origin": LITE_ORIGIN})
    try:
        answer = urllib.request.build_opener(_NoRedirect).open(request, timeout=10)
    except urllib.error.HTTPError as exc:
        answer = exc
    except (urllib.error.URLError, OSError):
        raise OSError("TypeError: Failed to fetch") from None
    with answer:
        allowed = answer.headers.get("Access-Control-Allow-Origin")
        content = answer.read()
        if allowed not in (LITE_ORIGIN, "*"):
            raise OSError("TypeError: Failed to fetch")  # the browser hides the answer
        return _Response(answer.status, dict(answer.headers), content)
