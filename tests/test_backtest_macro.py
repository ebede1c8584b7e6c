"""Run backtest on a workbook file, through the same sheet interface the ribbon button uses."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from readable import unreadable

from xlfuncs import macros
from xlfuncs.core import BacktestConfig, run_backtest
from xlfuncs.data.market import load_market
from xlfuncs.excel.sheets import OpenpyxlBook, write_cell

WORKBOOK = Path(__file__).resolve().parents[1] / "workbooks" / "Backtest.xlsm"


def prepared(tmp_path: Path, **cells) -> Path:
    path = tmp_path / "Backtest.xlsm"
    shutil.copy(WORKBOOK, path)
    book = OpenpyxlBook(path)
    settings = {"BtData": "sample:30", "BtEnd": "1996-12-31", "BtTev": "0.02, 0.05"}
    settings.update(cells)
    for name, value in settings.items():
        write_cell(book, name, value)
    book.save()
    return path


def snapshot(path: Path) -> tuple[dict, dict, int]:
    wb = openpyxl.load_workbook(path)
    cells = {(ws.title, c.coordinate): c.value for ws in wb.worksheets
             for row in ws.iter_rows() for c in row if c.value is not None}
    names = {n: d.attr_text for n, d in wb.defined_names.items()}
    return cells, names, sum(len(ws._images) for ws in wb.worksheets)


def test_a_run_writes_statistics_returns_and_charts(tmp_path):
    path = prepared(tmp_path)
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok, run.status
    assert run.status.startswith("OK: 2 strategies")
    # the same run straight from the core gives the same numbers
    data = load_market("sample:30", end="1996-12-31")
    ref = run_backtest(data, BacktestConfig(tev=(0.02, 0.05), end="1996-12-31"))
    wb = openpyxl.load_workbook(path)
    ws = wb["Backtest"]
    _, ref_range = wb.defined_names["BtStats"].attr_text.split("!")
    rows = [[c.value for c in r] for r in ws[ref_range.replace("$", "")]]
    assert rows[0][:3] == ["Strategy", "Annual return", "Annual volatility"]
    assert [r[0] for r in rows[1:]] == ["benchmark", "tev=0.02", "tev=0.05"]
    np.testing.assert_allclose([r[4] for r in rows[2:]],
                               ref.stats["tracking_error"].to_numpy(), rtol=1e-12)
    # the benchmark's own row: its return, volatility, Sharpe, drawdown; no active figures
    np.testing.assert_allclose(rows[1][1:4], ref.benchmark_stats[
        ["ann_return", "ann_volatility", "sharpe"]].to_numpy(), rtol=1e-12)
    assert rows[1][6] == pytest.approx(ref.benchmark_stats["max_drawdown"], rel=1e-12)
    assert rows[1][4] is None and rows[1][5] is None
    returns = wb["BtReturns"]
    _, rref = wb.defined_names["BtReturns"].attr_text.split("!")
    grid = [[c.value for c in r] for r in returns[rref.replace("$", "")]]
    assert grid[0] == ["date", "benchmark", "rf", "tev=0.02", "tev=0.05"]
    assert len(grid) == len(ref.returns) + 1
    np.testing.assert_allclose([g[3] for g in grid[1:]], ref.returns["tev=0.02"], rtol=1e-12)
    assert len(ws._images) == 4  # the three charts and the active exposures
    assert ws[wb.defined_names["BtStatus"].attr_text.split("!")[1].replace("$", "")].value \
        == run.status


def test_a_shorter_result_clears_the_longer_one(tmp_path):
    path = prepared(tmp_path, BtTev="0.02, 0.04, 0.06")
    assert macros.run_backtest(OpenpyxlBook(path)).ok
    book = OpenpyxlBook(path)
    write_cell(book, "BtTev", "0.03")
    book.save()
    assert macros.run_backtest(OpenpyxlBook(path)).ok
    wb = openpyxl.load_workbook(path)
    ws = wb["Backtest"]
    ref = wb.defined_names["BtStats"].attr_text.split("!")[1].replace("$", "")
    rows = [[c.value for c in r] for r in ws[ref]]
    assert [r[0] for r in rows[1:]] == ["benchmark", "tev=0.03"]
    below = ws.cell(ws[ref][-1][0].row + 1, 1).value
    assert below is None  # the old second and third rows are gone
    assert len(ws._images) == 4  # the charts were replaced, not added


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ({"BtTev": "0.02, -0.04"}, "Run failed: BtTev: tev must be positive numbers"),
        ({"BtMode": "momentum"}, "Run failed: BtMode: mode must be one of tev, gamma, sector"),
        ({"BtData": "no_such_file.csv"}, 'Run failed: BtData: source must be "sample", '),
        ({"BtData": "."}, "Run failed: BtData: source is a folder, not a file"),
        ({"BtModel": "ewma:0"}, "Run failed: BtModel: model ewma half-life"),
        ({"BtStart": "soon"}, "Run failed: BtStart: start must be a date written year first"),
        ({"BtTev": 5.0}, "Run failed: BtTev: tev budget 5 is 500% a year"),
        ({"BtCost": 5.0}, "Run failed: BtCost: cost 5 is 500% of every amount traded"),
        ({"BtStart": "2030-01-31", "BtEnd": None},
         "Run failed: BtStart: start 2030-01-31 leaves nothing to run"),
        ({"BtStart": "2010-01-31", "BtEnd": "2005-01-31"}, "Run failed: BtStart: start"),
        ({"BtFactorSet": "Mkt-RF, Quality"}, "Run failed: BtFactorSet: factor_set: no factor "
         "'Quality'; the factors are Mkt-RF, SMB, HML, Mom"),
        ({"BtBetas": "regime"}, "Run failed: BtBetas: betas regime needs model regime"),
    ],
)
def test_a_failed_run_changes_only_the_status(tmp_path, cells, message):
    path = prepared(tmp_path, **cells)
    before_cells, before_names, before_images = snapshot(path)
    run = macros.run_backtest(OpenpyxlBook(path))
    assert not run.ok and run.status.startswith(message), run.status
    after_cells, after_names, after_images = snapshot(path)
    changed = {k for k in before_cells.keys() | after_cells.keys()
               if before_cells.get(k) != after_cells.get(k)}
    status_cell = before_names["BtStatus"].split("!")[1].replace("$", "")
    assert changed == {("Backtest", status_cell)}
    assert after_cells[("Backtest", status_cell)] == run.status
    assert after_names == before_names and after_images == before_images


def test_every_row_of_a_longer_result_is_formatted(tmp_path):
    """Five strategies, hundreds of periods: the template formats 3 and 1 rows."""
    path = prepared(tmp_path, BtData="Sample:30", BtTev="1%, 2%, 3%, 4%, 5%")
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok and run.status.startswith("OK: 5 strategies"), run.status
    wb = openpyxl.load_workbook(path)
    for name, expect in (("BtStats", ["General", "0.00%", "0.00%", "0.00", "0.00%", "0.00",
                                      "0.00%", "0.00%", "0.0", "0.0%", "0.000"]),
                         ("BtReturns", ["yyyy-mm-dd", *["0.00%"] * 7])):
        sheet, ref = wb.defined_names[name].attr_text.split("!")
        rows = wb[sheet.strip("'")][ref.replace("$", "")]
        assert len(rows) > (5 if name == "BtStats" else 50)
        for row in rows[1:]:
            assert [c.number_format for c in row] == expect, (name, row[0].coordinate)
    assert [c.value for c in rows[0]][:3] == ["date", "benchmark", "rf"]
    # the statistics under their plain-English headers: every header and number whole
    assert unreadable(path, "BtStats") == []


def test_one_strategy_is_one_strategy(tmp_path):
    path = prepared(tmp_path, BtTev="0.03")
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok and run.status.startswith("OK: 1 strategy, "), run.status


def test_the_regime_model_runs_from_the_sheet_as_from_the_core(tmp_path):
    """BtModel = regime: the core's HMM (no hmmlearn at run time) behind the ribbon button."""
    path = prepared(tmp_path, BtModel="regime", BtTev="0.03", BtStart="1994-12-31")
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok, run.status
    data = load_market("sample:30", end="1996-12-31")
    ref = run_backtest(data, BacktestConfig(tev=(0.03,), model="regime", start="1994-12-31",
                                            end="1996-12-31"))
    wb = openpyxl.load_workbook(path)
    _, rref = wb.defined_names["BtReturns"].attr_text.split("!")
    grid = [[c.value for c in r] for r in wb["BtReturns"][rref.replace("$", "")]]
    assert grid[0] == ["date", "benchmark", "rf", "tev=0.03"]
    assert len(grid) == len(ref.returns) + 1 > 20
    np.testing.assert_allclose([g[3] for g in grid[1:]], ref.returns["tev=0.03"], rtol=1e-9)


def test_the_factor_set_cell_chooses_the_model_factors(tmp_path):
    path = prepared(tmp_path, BtTev="0.03", BtFactorSet="hml; Mkt-RF")
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok, run.status
    data = load_market("sample:30", end="1996-12-31")
    only = dataclasses.replace(data, factors=data.factors[["HML", "Mkt-RF"]])
    ref = run_backtest(only, BacktestConfig(tev=(0.03,), end="1996-12-31"))
    np.testing.assert_array_equal(run.result.weights["weight"], ref.weights["weight"])
    wb = openpyxl.load_workbook(path)
    cell = wb.defined_names["BtSource"].attr_text.split("!")[1].replace("$", "")
    source = wb["Backtest"][cell].value
    assert source.endswith("; model factors: HML, Mkt-RF (factor_set, of Mkt-RF, SMB, HML, Mom)")
    assert source.count("cut to") == 1
