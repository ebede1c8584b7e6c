"""The xlfuncs command line on CSV files."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from readable import number_formats, unreadable

from xlfuncs import core
from xlfuncs.cli import main
from xlfuncs.data.samples import sector_example
from xlfuncs.report import CHARTS


@pytest.fixture
def files(sector_files):
    return sector_files


def test_implied_writes_the_matrix(files, tmp_path, capsys):
    inputs, corr = files
    out = tmp_path / "out" / "implied.csv"
    rc = main(["implied", "--weights", f"{inputs}:spy_weight", "--vols",
               f"{inputs}:implied_vol_30d", "--index-vol", "0.116", "--corr", str(corr),
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "iterations" in text and "min_eigenvalue" in text
    got = pd.read_csv(out, index_col=0)
    ex = sector_example()
    ref = core.implied_correlation(ex.weights, ex.vols, 0.116, ex.corr.to_numpy()).corr
    assert list(got.index) == list(ex.tickers)
    np.testing.assert_allclose(got.to_numpy(), ref, atol=1e-12)


def test_implied_cov_and_shift(files, capsys):
    inputs, corr = files
    rc = main(["implied", "--weights", str(inputs), "--vols", f"{inputs}:implied_vol_30d",
               "--index-vol", "0.116", "--corr", str(corr), "--method", "shift",
               "--output", "cov"])
    assert rc == 0
    assert "alpha" in capsys.readouterr().out


def test_reordered_corr_file_is_aligned_by_ticker(files, tmp_path):
    inputs, corr = files
    df = pd.read_csv(corr, index_col=0)
    order = list(df.index)[::-1]
    shuffled = tmp_path / "shuffled.csv"
    df.loc[order, order[3:] + order[:3]].to_csv(shuffled)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    common = ["--weights", str(inputs), "--vols", f"{inputs}:implied_vol_30d",
              "--index-vol", "0.116"]
    assert main(["implied", *common, "--corr", str(corr), "--out", str(a)]) == 0
    assert main(["implied", *common, "--corr", str(shuffled), "--out", str(b)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(a, index_col=0), pd.read_csv(b, index_col=0))


def test_errors_are_one_line_and_leave_out_file(files, tmp_path, capsys):
    inputs, corr = files
    out = tmp_path / "keep.csv"
    out.write_text("previous")
    rc = main(["implied", "--weights", str(inputs), "--vols", f"{inputs}:implied_vol_30d",
               "--index-vol", "0.5", "--corr", str(corr), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "above the 0.1559" in err
    assert out.read_text() == "previous"
    rc = main(["implied", "--weights", str(tmp_path / "missing.csv"), "--vols", str(inputs),
               "--index-vol", "0.1", "--corr", str(corr)])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    ambiguous = tmp_path / "ambiguous.csv"
    ambiguous.write_text("ticker,a,b\nXLB,1,2\n")
    rc = main(["implied", "--weights", str(ambiguous), "--vols", str(inputs),
               "--index-vol", "0.1", "--corr", str(corr)])
    assert rc == 2 and "several columns" in capsys.readouterr().err


def test_demo_runs_on_bundled_data(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "0.0848" in text and "implied correlation (nearest)" in text
    # the backtest line names the dates the run used, not the whole sample's span
    backtest = text.split("== 3.", 1)[1]
    assert "2002-12" in backtest and "2017-03" not in backtest
    corr = pd.read_csv(tmp_path / "implied_corr.csv", index_col=0).to_numpy()
    assert np.linalg.eigvalsh(corr).min() > -1e-10
    # the beta-neutral part: the rebalanced table reaches the target beta
    rebalanced = pd.read_csv(tmp_path / "beta_neutral.csv")
    assert (rebalanced["new weight"] >= 0).all()
    assert rebalanced["new weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert "beta 0.00e+00" in text
    # the backtest part and the results workbook, written through the sheet interface
    stats = pd.read_csv(tmp_path / "backtest" / "stats.csv")
    assert list(stats["strategy"]) == ["benchmark", "tev=0.02", "tev=0.05"]
    import openpyxl

    path = tmp_path / "xlfuncs-demo.xlsx"
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["ImpliedCorr", "ImpliedCov", "BetaNeutral", "Backtest"]
    tables = {"DemoImpliedCorr", "DemoImpliedCov", "DemoBetaNeutral", "DemoBacktest"}
    assert set(book.defined_names) == tables
    # every header and number shows whole at the widths the file gives
    for name in tables:
        assert unreadable(path, name) == [], name
    sheet, ref = book.defined_names["DemoBacktest"].attr_text.split("!")
    rows = [[c.value for c in row] for row in book[sheet.strip("'")][ref.replace("$", "")]]
    assert rows[0] == ["Strategy", "Annual return", "Annual volatility", "Sharpe ratio",
                       "Tracking error", "Information ratio", "Max drawdown", "Turnover",
                       "Holdings (average)", "Hit rate", "IR per period"]
    assert [r[0] for r in rows[1:]] == ["benchmark", "tev=0.02", "tev=0.05"]
    assert rows[1][4] is None  # the benchmark's tracking error against itself: blank
    assert rows[2][4] == pytest.approx(stats["tracking_error"][1], rel=1e-12)
    assert number_formats(path, "DemoBacktest") == [
        "General", "0.00%", "0.00%", "0.00", "0.00%", "0.00", "0.00%", "0.00%", "0.0", "0.0%",
        "0.000"]
    assert number_formats(path, "DemoBetaNeutral") == ["General", "0.00%", "0.00%"]
    assert set(number_formats(path, "DemoImpliedCorr")[1:]) == {"0.000"}
    assert set(number_formats(path, "DemoImpliedCov")[1:]) == {"0.0000"}
    # the covariance sheet holds the implied covariance, the charts are in the file
    cov = pd.read_csv(tmp_path / "implied_cov.csv", index_col=0)
    sheet, ref = book.defined_names["DemoImpliedCov"].attr_text.split("!")
    grid = [[c.value for c in row] for row in book[sheet.strip("'")][ref.replace("$", "")]]
    assert grid[0][1:] == list(cov.columns) and [r[0] for r in grid[1:]] == list(cov.index)
    np.testing.assert_allclose([r[1:] for r in grid[1:]], cov.to_numpy(), rtol=1e-12)
    assert len(book["Backtest"]._images) == 3
    with zipfile.ZipFile(path) as z:
        media = sorted(n for n in z.namelist() if n.startswith("xl/media/"))
        pictures = {z.read(n) for n in media}
    assert pictures == {(tmp_path / "backtest" / c).read_bytes() for c in CHARTS}
