"""Mode anchor: gamma chosen at each rebalance so that the ex-ante TE equals the target.

The tracking error is recomputed here from weights.csv with loadings, factor
covariance and residual variances fitted in numpy (OLS on [1, factors] over the
loadings window, sample factor covariance up to the date), not the engine's.
"""

from __future__ import annotations

import math

import factor_reference
import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly
from test_backtest_macro import prepared

from xlfuncs import macros
from xlfuncs.cli import main
from xlfuncs.core import BacktestConfig, ProcessExecutor, run_backtest
from xlfuncs.core._anchor import GAMMA_MAX, GAMMA_MIN, anchor_gamma
from xlfuncs.core._optimise import ActiveOptimiser, OptimiserSpec
from xlfuncs.data.market import load_market
from xlfuncs.excel.sheets import OpenpyxlBook
from xlfuncs.report import write_results

END = "1993-12-31"
TARGETS = (0.03, 0.06)
WINDOW, MIN_OBS = 60, 36  # the command line's loadings window and minimum returns


@pytest.fixture(scope="module")
def data():
    return load_market("sample:30").truncate(None, END)


@pytest.fixture(scope="module")
def anchored(data):
    return run_backtest(data, BacktestConfig(mode="anchor", tev=TARGETS, min_history=36,
                                             workers=1, end=END))


@pytest.fixture(scope="module")
def run(anchored, tmp_path_factory):
    out = tmp_path_factory.mktemp("anchor")
    write_results(anchored, out)
    return out


def model_at(data, date):
    """The independent model at ``date`` with the command line's window and minimum."""
    return factor_reference.model_at(data, date, WINDOW, MIN_OBS)


def test_the_ex_ante_te_equals_the_target_at_every_date(run, data):
    path = pd.read_csv(run / "gamma.csv", parse_dates=["date"])
    weights = pd.read_csv(run / "weights.csv", parse_dates=["date"])
    assert list(path.columns[:4]) == ["date", "strategy", "gamma", "tracking_error"]
    assert sorted(path["strategy"].unique()) == ["anchor tev=0.03", "anchor tev=0.06"]
    n_dates = weights["date"].nunique()
    assert len(path) == 2 * n_dates and n_dates > 20
    assert path["reached"].all()
    for (date, name), grp in weights.groupby(["date", "strategy"]):
        assets, f_mat, sigma, e, _, b = model_at(data, date)
        w = grp.set_index("asset")["weight"].reindex(assets).fillna(0.0).to_numpy()
        a = w - b
        fa = f_mat @ a
        te = math.sqrt((fa @ sigma @ fa + e @ (a * a)) * 12)
        target = float(name.split("=")[1])
        assert te == pytest.approx(target, rel=1e-6), (date, name)
        row = path[(path["date"] == date) & (path["strategy"] == name)].iloc[0]
        assert row["tracking_error"] == pytest.approx(te, rel=1e-8)
        assert row["target"] == target


def test_the_gamma_written_reproduces_the_weights(run, data):
    """The plain gamma problem at gamma.csv's gamma gives weights.csv's weights."""
    path = pd.read_csv(run / "gamma.csv", parse_dates=["date"])
    weights = pd.read_csv(run / "weights.csv", parse_dates=["date"])
    for _, row in path.iloc[::9].iterrows():
        assets, f_mat, sigma, e, mu, b = model_at(data, row["date"])
        opt = ActiveOptimiser(OptimiserSpec("gamma", gamma=row["gamma"]), len(assets),
                              f_mat.shape[0])
        res = opt.solve(f_mat, sigma, e, mu, benchmark=b)
        grp = weights[(weights["date"] == row["date"]) & (weights["strategy"] == row["strategy"])]
        w = grp.set_index("asset")["weight"].reindex(assets).fillna(0.0).to_numpy()
        np.testing.assert_allclose(res.weights, w, atol=1e-7)
        assert res.tracking_error == pytest.approx(row["target"], rel=1e-6)


def test_the_gamma_chart_and_the_ir_chart_name_what_they_show(run, anchored, data):
    import matplotlib.pyplot as plt

    from xlfuncs.report import GAMMA_CHART, chart_figures

    for name in ("gamma.png", "ir_vs_tev.png", "rolling_te.png", "cumulative.png"):
        assert (run / name).stat().st_size > 1000
        assert (run / name).read_bytes().startswith(b"\x89PNG")
    notes = (run / "notes.txt").read_text(encoding="utf-8")
    assert "not reached" not in notes
    result = anchored
    gamma = run_backtest(data, BacktestConfig(mode="gamma", gamma=(2.0, 20.0), tev=(),
                                              min_history=36, workers=1, end="1991-12-31"))
    try:
        charts = dict(chart_figures(result))
        ax = charts[GAMMA_CHART].axes[0]
        assert ax.get_title() == "Risk aversion gamma at each rebalance, anchored to the TE target"
        assert ax.get_ylabel() == "gamma (log scale)" and ax.get_yscale() == "log"
        for line, name in zip(ax.get_lines(), result.strategies, strict=True):
            path = result.gamma_path[result.gamma_path["strategy"] == name]
            np.testing.assert_array_equal(line.get_ydata(), path["gamma"].to_numpy())
        ir, vs_te = charts["ir_vs_tev.png"].axes
        assert ir.get_title() == "Information ratio against the TE target"
        assert ir.get_xlabel() == "TE target (annual)"
        assert vs_te.get_xlabel() == "realised tracking error (annualised)"
        np.testing.assert_array_equal(vs_te.get_lines()[0].get_xdata(),
                                      result.stats["tracking_error"].to_numpy())
        np.testing.assert_array_equal(vs_te.get_lines()[0].get_ydata(),
                                      result.stats["information_ratio"].to_numpy())
        te = charts["rolling_te.png"].axes[0]  # each target drawn dashed
        levels = sorted(float(ln.get_ydata()[0]) for ln in te.get_lines()
                        if ln.get_linestyle() == "--")
        assert levels == list(TARGETS)
        g = dict(chart_figures(gamma))
        assert GAMMA_CHART not in g  # a plain gamma sweep has no gamma path
        ir, vs_te = g["ir_vs_tev.png"].axes
        assert ir.get_title() == "Information ratio against risk aversion gamma"
        assert vs_te.get_title() == "against the realised tracking error"
        np.testing.assert_array_equal(vs_te.get_lines()[0].get_xdata(),
                                      gamma.stats["tracking_error"].to_numpy())
    finally:
        plt.close("all")


def test_solves_count_the_optimiser_solves_of_each_date(anchored, data):
    """One exact TEV-cap solve where it binds; the search's solves plus that first try."""
    path = anchored.gamma_path
    assert len(path) > 10 and (path["solves"] == 1).all()  # weight bounds only: exact
    high = run_backtest(data, BacktestConfig(mode="anchor", tev=(0.9,), min_history=36,
                                             workers=1, end="1991-06-30"))
    assert (high.gamma_path["solves"] >= 2).all()  # the cap does not bind: a search


def test_serial_and_two_processes_give_the_same_path(data):
    config = BacktestConfig(mode="anchor", tev=TARGETS, min_history=36, workers=1,
                            end="1991-06-30")
    serial = run_backtest(data, config)
    with ProcessExecutor(2) as pool:
        parallel = run_backtest(data, config, executor=pool)
    pd.testing.assert_frame_equal(serial.gamma_path, parallel.gamma_path, check_exact=True)
    pd.testing.assert_frame_equal(serial.weights, parallel.weights, check_exact=True)
    pd.testing.assert_frame_equal(serial.returns, parallel.returns, check_exact=True)


def test_a_target_out_of_reach_keeps_the_end_of_the_range_and_says_so(data):
    """Above the maximum-return portfolio's TE: the smallest gamma; below the least the
    constraints allow (max_weight under the largest benchmark weight): the largest."""
    high = run_backtest(data, BacktestConfig(mode="anchor", tev=(0.9,), min_history=36,
                                             workers=1, end="1991-12-31"))
    path = high.gamma_path
    assert len(path) > 5 and not path["reached"].any()
    assert (path["gamma"] == GAMMA_MIN).all() and (path["tracking_error"] < 0.9).all()
    assert any(n.startswith("anchor tev=0.9: the tracking-error target was not reached on "
                            f"{len(path)} of {len(path)} rebalances") and
               "is above the maximum-return portfolio's" in n for n in high.notes)
    low = run_backtest(data, BacktestConfig(mode="anchor", tev=(0.0001,), max_weight=0.06,
                                            min_history=36, workers=1, end="1991-12-31"))
    path = low.gamma_path
    assert not path["reached"].any() and (path["gamma"] == GAMMA_MAX).all()
    assert (path["tracking_error"] > 0.0001).all()
    assert any("is below the least the constraints allow" in n for n in low.notes)
    assert low.failures.empty  # the portfolio is kept: a note, not a failed date


def test_the_search_finds_the_same_gamma_from_any_start():
    from test_optimise import make_inputs

    f_mat, sf, e, mu, caps = make_inputs()
    b = caps / caps.sum()
    opt = ActiveOptimiser(OptimiserSpec("gamma", gamma=1.0), len(b), f_mat.shape[0])

    def solve(g):
        opt.spec = OptimiserSpec("gamma", gamma=g)
        return opt.solve(f_mat, sf, e, mu, benchmark=b)

    found = [anchor_gamma(solve, 0.05, start) for start in (1e-3, 1.0, 1e5)]
    for got in found:
        assert got.reached and got.reason == ""
        assert got.result.tracking_error == pytest.approx(0.05, rel=1e-8)
        assert got.solves <= 14
    assert found[0].gamma == pytest.approx(found[2].gamma, rel=1e-6)
    assert found[1].gamma == pytest.approx(found[2].gamma, rel=1e-6)
    raises_exactly("the tracking-error target must be above 0 (got 0.0)", "tev",
                   anchor_gamma, solve, 0.0)


@pytest.mark.parametrize(("settings", "message"), [
    ({"mode": "anchor", "tev": ()},
     "tev needs at least one tracking-error target for mode anchor, e.g. 0.06"),
    ({"mode": "anchor", "tev": (0.0,)}, "tev budgets must be above 0"),
    ({"mode": "anchor", "tev": "-0.02"}, "tev must be positive numbers (got -0.02)"),
])
def test_bad_targets_are_one_error_naming_tev(settings, message):
    raises_exactly(message, "tev", BacktestConfig, **settings)


def test_bad_targets_on_the_command_line_and_the_sheet(tmp_path, capsys):
    assert main(["backtest", "--mode", "anchor", "--tev", "0", "--out", str(tmp_path / "o")]) \
        != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["xlfuncs: error: tev budgets must be above 0"]
    assert main(["backtest", "--mode", "anchor", "--gamma", "5"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["xlfuncs: error: --gamma needs --mode gamma or sector: mode anchor chooses "
                   "gamma at each date from the --tev targets"]
    assert main(["backtest", "--mode", "anchor"]) != 0  # never the default budgets
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["xlfuncs: error: tev needs at least one tracking-error target for mode "
                   "anchor, e.g. 0.06"]
    path = prepared(tmp_path, BtMode="anchor", BtTev=None)
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.status == ("Run failed: BtTev: tev needs at least one tracking-error target for "
                          "mode anchor, e.g. 0.06")
    path = prepared(tmp_path, BtMode="anchor", BtTev="0")
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.status == "Run failed: BtTev: tev budgets must be above 0"


def test_the_sheet_places_the_gamma_chart_with_the_others_and_notes_a_missed_target(tmp_path):
    import openpyxl

    path = prepared(tmp_path, BtMode="anchor", BtTev="0.04, 0.9", BtEnd="1993-06-30")
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok, run.status
    assert run.status.startswith("OK: 2 strategies")
    wb = openpyxl.load_workbook(path)
    ws = wb["Backtest"]
    assert len(ws._images) == 5  # cumulative, IR, rolling TE, the gamma path, the exposures
    source = ws[wb.defined_names["BtSource"].attr_text.split("!")[1].replace("$", "")].value
    n = len(run.result.gamma_path) // 2
    assert (f"anchor tev=0.9: the tracking-error target was not reached on {n} of {n} "
            "rebalances") in source
    assert "anchor tev=0.04" not in source
