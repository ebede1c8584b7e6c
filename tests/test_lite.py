"""The xlwings Lite edition: the generated files, as xlwings' Office.js machinery sees them.

The generated main.py runs in a subprocess (tests/lite_driver.py) that looks like
Pyodide (no threads, processes or modules outside Pyodide's list), through
xlwings' own ``custom_functions_meta``/``custom_functions_call``/``custom_scripts_call``
(``XLWINGS_ON_SERVER=true``; the Office.js part of xlwings needs the
``noncommercial`` key, which its PolyForm terms allow for these tests).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fund_api import FundApi, Reply, leaks
from lite_support import LITE_ORIGIN, PYODIDE_DISTRIBUTIONS, office_js_book
from packaging.requirements import Requirement

from xlfuncs import udfs
from xlfuncs.cli import main as cli
from xlfuncs.data.samples import sector_example
from xlfuncs.excel.functions import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
CORS = {"Access-Control-Allow-Origin": LITE_ORIGIN}
NA = {"type": "Error", "basicValue": "#N/A", "errorType": "NotAvailable"}


@pytest.fixture(scope="module")
def lite_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lite")
    assert cli(["lite", "--out", str(out)]) == 0
    return out


def run_lite(lite_dir: Path, job: dict, env: dict | None = None) -> dict:
    path = lite_dir / f"job-{os.getpid()}-{len(json.dumps(job)) % 9973}.json"
    path.write_text(json.dumps({"main": str(lite_dir / "main.py"), **job}, default=str))
    environ = {**os.environ, "XLWINGS_ON_SERVER": "true", "XLWINGS_LICENSE_KEY": "noncommercial",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "XLFUNCS_CONFIG": str(lite_dir / "none.toml"), **(env or {})}
    (lite_dir / "none.toml").write_text("")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "lite_driver.py"), str(path)],
                          capture_output=True, text=True, env=environ, timeout=600)
    assert "@@RESULT@@" in done.stdout, done.stderr[-3000:]
    return json.loads(done.stdout.split("@@RESULT@@", 1)[1])


def as_office(value):
    """A COM UDF's result as Office.js receives it: 2-D, blanks as "" (xlwings' officejs)."""
    if not isinstance(value, list):
        value = [[value]]
    elif value and not isinstance(value[0], list):
        value = [value]
    return [["" if v is None else (float(v) if isinstance(v, int | float) and
                                   not isinstance(v, bool) else v) for v in row]
            for row in value]


def column(values) -> list[list[float]]:
    return [[float(v)] for v in values]


def sector_cells():
    ex = sector_example()
    corr = [["", *ex.tickers]] + [[t, *map(float, ex.corr.loc[t])] for t in ex.tickers]
    weights = [[t, float(ex.weights[t])] for t in ex.tickers]
    return weights, column(ex.vols), ex.index_vol, corr


def test_lite_command_writes_main_and_requirements(lite_dir: Path):
    main_py = (lite_dir / "main.py").read_text()
    compile(main_py, "main.py", "exec")
    for name in REGISTRY:
        assert f"def {name}(" in main_py
    assert "async def refresh_holdings(book: xw.Book)" in main_py
    assert "async def run_backtest(book: xw.Book)" in main_py
    lines = [x for x in (lite_dir / "requirements.txt").read_text().splitlines()
             if x and not x.startswith("#")]
    assert lines == ["xlwings", "xlfuncs==0.1.0"]


def test_generator_handles_any_registry_contents():
    from xlfuncs.excel.functions import Argument, WorksheetFunction
    from xlfuncs.excel.lite import main_source

    def NEW_FUNC(x, k=3):
        return x

    entry = WorksheetFunction("NEW_FUNC", NEW_FUNC, "A new one.",
                              (Argument("x", "the x", False, True),
                               Argument("k", "the k", True, False)))
    text = main_source({"NEW_FUNC": entry})
    assert "def NEW_FUNC(x, k=3):" in text
    assert "@arg('x', ndim=2, err_to_str=True, doc='the x')" in text


def test_requirements_on_pyodide_are_pyodide_builds_or_pure_wheels():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = {"sys_platform": "emscripten", "platform_system": "Emscripten",
           "python_version": "3.12", "os_name": "posix", "implementation_name": "cpython"}
    on_pyodide = {Requirement(d).name for d in deps
                  if Requirement(d).marker is None or Requirement(d).marker.evaluate(env)}
    assert on_pyodide <= PYODIDE_DISTRIBUTIONS
    assert "cvxpy" not in on_pyodide and "cvxpy-base" in on_pyodide
    desktop = {"sys_platform": "win32", "platform_system": "Windows", "python_version": "3.12",
               "os_name": "nt", "implementation_name": "cpython"}
    on_windows = {Requirement(d).name for d in deps
                  if Requirement(d).marker is None or Requirement(d).marker.evaluate(desktop)}
    assert {"cvxpy", "pyopenvba", "xlsxwriter", "threadpoolctl"} <= on_windows


@pytest.fixture(scope="module")
def office(lite_dir: Path) -> dict:
    weights, vols, index_vol, corr = sector_cells()
    tickers = [w[0] for w in weights]
    cov = udfs.IMPLIED_COV(weights, vols, index_vol, corr)
    holdings = [["ticker", "weight"], ["XLK", 0.5], ["XLE", 0.3], ["XLU", 0.2]]
    cases = {
        "IMPLIED_COV": [weights, vols, [[index_vol]], corr],
        "IMPLIED_CORR": [weights, vols, [[index_vol]], corr, [["shift"]]],
        "BETA_NEUTRAL": [holdings, [[t, w] for t, w in weights[:6]], cov],
        "INDEX_VOL": [weights, [[v[0] for v in vols]], [[NA]]],
    }
    job = {"probe": True, "calls": [{"func_name": n, "args": a} for n, a in cases.items()]}
    result = run_lite(lite_dir, job)
    result["cases"] = cases
    result["tickers"] = tickers
    return result


def test_metadata_lists_every_function_with_help(office: dict):
    meta = {f["name"]: f for f in office["meta"]["functions"]}
    assert set(meta) == set(REGISTRY)
    for name, entry in REGISTRY.items():
        f = meta[name]
        assert f["description"] == entry.doc
        assert f["result"]["dimensionality"] == "matrix"
        assert [p["name"] for p in f["parameters"]] == [a.name for a in entry.args]
        assert [p["description"] for p in f["parameters"]] == [a.doc for a in entry.args]
        assert [p.get("optional", False) for p in f["parameters"]] == [a.optional
                                                                         for a in entry.args]


def as_com(name: str, args: list) -> list:
    """The same cells as classic xlwings hands them to the UDF: ranges 2-D, errors as text."""
    def cell(v):
        return v["basicValue"] if isinstance(v, dict) else v

    out = []
    for arg, value in zip(REGISTRY[name].args, args, strict=False):
        grid = [[cell(v) for v in row] for row in value]
        out.append(grid if arg.is_range else grid[0][0])
    return out


def test_office_js_calls_equal_the_com_udfs(office: dict):
    """Office.js-shaped arguments give exactly what the COM UDF gives for the same cells."""
    results = dict(zip(office["cases"], office["calls"], strict=True))
    for name, args in office["cases"].items():
        com = getattr(udfs, name)(*as_com(name, args))
        assert results[name] == as_office(com), name
    # real numbers, not two copies of one failure: the implied covariance has the
    # implied vols squared on its diagonal, labelled by ticker
    cov = results["IMPLIED_COV"]
    ex = sector_example()
    assert cov[0][1:] == list(ex.tickers)
    for i, t in enumerate(ex.tickers, start=1):
        assert cov[i][0] == t and math.isclose(cov[i][i], float(ex.vols[t]) ** 2, rel_tol=1e-9)
    assert results["INDEX_VOL"][0][0].startswith("#xlfuncs! corr")
    assert results["BETA_NEUTRAL"][-1][0] == "ETF (hedge)"


def test_import_guard_refuses_what_pyodide_cannot_do(office: dict):
    assert office["probe"] == {name: True for name in office["probe"]}
    assert set(office["probe"]) >= {"hmmlearn", "win32com.client", "thread pool",
                                    "process pool", "multiprocessing", "subprocess"}


def _status(actions: list[dict], row: int, col: int) -> list:
    return [a["values"][0][0] for a in actions if a["func"] == "setValues"
            and a["start_row"] == row - 1 and a["start_column"] == col - 1]


def test_backtest_script_runs_serially_under_the_guard(lite_dir: Path):
    book = office_js_book(ROOT / "workbooks" / "Backtest.xlsm",
                          {"BtData": "sample:40", "BtStart": "2015-01-31", "BtEnd": "2016-12-31"})
    [actions] = run_lite(lite_dir, {"scripts": [{"name": "run_backtest", "book": book}]})[
        "scripts"]
    import openpyxl
    from openpyxl.utils.cell import column_index_from_string, coordinate_from_string

    where = openpyxl.load_workbook(ROOT / "workbooks" / "Backtest.xlsm").defined_names["BtStatus"]
    col, row = coordinate_from_string(where.attr_text.split("!")[1].replace("$", ""))
    status = _status(actions, row, column_index_from_string(col))
    assert status and str(status[-1]).lstrip("'").startswith("OK: "), status
    assert sum(a["func"] == "addPicture" for a in actions) == 4  # with the active exposures


def refresh_in_lite(lite_dir: Path, api: FundApi, **env: str) -> list[dict]:
    book = office_js_book(ROOT / "workbooks" / "BetaNeutral.xlsm",
                          {"Fund": "undergrad", "HoldingsDate": "2025-02-18"})
    return run_lite(lite_dir, {"scripts": [{"name": "refresh_holdings", "book": book}]},
                    {"XLFUNCS_API_URL": api.url, **env})["scripts"][0]


def holdings_status(actions: list[dict]) -> str:
    [line] = [str(s).lstrip("'") for s in _status(actions, 10, 3)]  # Holdings!C10
    return line


def test_holdings_script_through_the_browser_fetch(lite_dir: Path):
    with FundApi() as api:
        api.script([Reply(status=503, headers=CORS), Reply(headers=CORS)])
        actions = refresh_in_lite(lite_dir, api)
        assert api.hits == 2  # the 503 was retried
        assert api.requests[0].headers.get("origin") == LITE_ORIGIN
        active = [h["ticker"] for h in api.holdings if h["active"]]
    assert holdings_status(actions).startswith(f"OK: {len(active)} holdings of fund undergrad")
    [table] = [a["values"] for a in actions if a["func"] == "setValues"
               and (a["start_row"], a["start_column"]) == (16, 0)]  # Holdings is A17:...
    assert table[0][0] == "'ticker"  # texts go in with the apostrophe that keeps them text
    assert [str(r[0]).lstrip("'") for r in table[1:]] == active


def test_holdings_script_cors_refusal_is_one_line_and_writes_nothing_else(lite_dir: Path):
    with FundApi() as api:  # the contract answer, without the CORS header
        actions = refresh_in_lite(lite_dir, api)
    line = holdings_status(actions)
    assert line.startswith("Refresh failed: the browser got no answer from " + api.url)
    assert line.endswith(f"must send the header Access-Control-Allow-Origin: {LITE_ORIGIN} "
                         "(or it is unreachable)")
    assert [a for a in actions if a["func"] == "setValues"] == [
        a for a in actions if a["func"] == "setValues" and (a["start_row"], a["start_column"])
        == (9, 2)]


def test_holdings_script_never_shows_the_token(lite_dir: Path):
    token = "s3cr3t-T0ken-4-lite-tests"
    echo = Reply(status=400, json={"detail": "Bad Request", "headers": {
        "Authorization": "{authorization}"}}, echo=True, headers=CORS)
    with FundApi(token=token) as api:
        api.script([echo])
        actions = refresh_in_lite(lite_dir, api, XLFUNCS_API_TOKEN=token)
        assert api.requests[0].headers.get("authorization") == f"Bearer {token}"
    line = holdings_status(actions)
    assert line.startswith("Refresh failed: the API rejected the request (400)")
    assert not leaks(token, json.dumps(actions))


def test_a_busy_api_with_no_time_left_is_named_as_busy_not_as_cors():
    """A 503 whose Retry-After outlasts the deadline is the API's answer, not a CORS refusal."""
    import asyncio

    from lite_support import browser_fetch

    from xlfuncs.config import Config
    from xlfuncs.data.holdings_fetch import fetch_holdings_browser
    from xlfuncs.errors import ApiStatusError

    with FundApi() as api:
        api.script([Reply(status=503, headers={**CORS, "Retry-After": "5"})])
        config = Config(base_url=api.url, deadline=2.0)
        with pytest.raises(ApiStatusError) as info:
            asyncio.run(fetch_holdings_browser("quant", config=config, fetch=browser_fetch))
        assert api.hits == 1
    text = str(info.value)
    assert "503" in text and "more than the" in text and "s left of the 2 s limit" in text
    assert "Access-Control-Allow-Origin" not in text
