"""Crisis-window and regime statistics of a backtest (SPEC 3.6), recomputed from its files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlfuncs.cli import main
from xlfuncs.core import BacktestConfig, filtered_probs, fit_regime
from xlfuncs.core._attribution import (
    DEFAULT_WINDOWS,
    REGIME_REFIT,
    parse_windows,
    regime_states,
    regime_stats,
)
from xlfuncs.data.market import load_market
from xlfuncs.errors import InputError

A = 12


def stats_of(r, b):
    """The SPEC 3.5 statistics written out in numpy."""
    r, b = np.asarray(r, float), np.asarray(b, float)
    a = r - b
    with np.errstate(invalid="ignore", divide="ignore"):  # a = 0 for the benchmark
        ir = a.mean() / a.std(ddof=1) * np.sqrt(A)
    wealth = np.cumprod(1 + r)
    peak = np.maximum.accumulate(np.r_[1.0, wealth])[1:]
    return {"total_return": wealth[-1] - 1,
            "ann_return": wealth[-1] ** (A / len(r)) - 1,
            "ann_volatility": r.std(ddof=1) * np.sqrt(A),
            "tracking_error": a.std(ddof=1) * np.sqrt(A),
            "information_ratio": ir,
            "max_drawdown": min((wealth / peak - 1).min(), 0.0)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("crisis")
    rc = main(["backtest", "--data", "sample:25", "--tev", "0.03,0.06", "--end", "2010-12-31",
               "--workers", "1", "--windows", "dot-com=2000-03:2002-10; GFC=2007-10:2009-03; "
               "before the data=1970:1975", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_window_statistics_equal_a_recomputation_from_returns_csv(run):
    returns = pd.read_csv(run / "returns.csv", index_col="date", parse_dates=True)
    table = pd.read_csv(run / "windows.csv", parse_dates=["start", "end"])
    assert list(table["window"].unique()) == ["dot-com", "GFC"]  # 1970-75 is not reached
    assert set(table["strategy"]) == {"benchmark", "tev=0.03", "tev=0.06"}
    for name, first, last in (("dot-com", "2000-03-01", "2002-10-31"),
                              ("GFC", "2007-10-01", "2009-03-31")):
        inside = returns.loc[first:last]
        for strategy in ("tev=0.03", "tev=0.06", "benchmark"):
            row = table[(table["window"] == name) & (table["strategy"] == strategy)].iloc[0]
            assert row["periods"] == len(inside)
            assert row["start"] == inside.index[0] and row["end"] == inside.index[-1]
            ref = stats_of(inside[strategy], inside["benchmark"])
            for key in ("total_return", "ann_return", "ann_volatility", "max_drawdown"):
                assert row[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
            if strategy == "benchmark":
                assert np.isnan(row["tracking_error"]) and np.isnan(row["information_ratio"])
            else:
                assert row["tracking_error"] == pytest.approx(ref["tracking_error"], rel=1e-9)
                assert row["information_ratio"] == pytest.approx(ref["information_ratio"],
                                                                 rel=1e-9)


def classify(factors: pd.DataFrame, first: pd.Timestamp, n_states: int = 2) -> pd.Series:
    """Each date's regime written out: refit every REGIME_REFIT dates from ``first`` on the
    rows up to that date (warm from the last fit), then the state of highest filtered
    probability from the rows up to the date, numbered by market variance, calmest first."""
    start = factors.index.get_loc(first)
    fit, out = None, {}
    for p in range(start, len(factors)):
        if (p - start) % REGIME_REFIT == 0:
            fit = fit_regime(factors.iloc[: p + 1], n_states, 0, init=fit)
            calm_first = list(np.argsort(fit.covs[:, 0, 0]))
        gamma = filtered_probs(fit, factors.iloc[: p + 1])[-1]
        out[factors.index[p]] = calm_first.index(int(gamma.argmax()))
    return pd.Series(out)


def by_decision(returns: pd.DataFrame, factors: pd.DataFrame) -> pd.Series:
    """The regime of each period earned, from its decision date (the factor row before it)."""
    decisions = [factors.index[factors.index < d][-1] for d in returns.index]
    states = classify(factors.loc[:decisions[-1]], decisions[0])
    return pd.Series(states.loc[decisions].to_numpy(), index=returns.index)


def test_regimes_classify_each_period_by_the_filtered_state_at_its_decision(run):
    returns = pd.read_csv(run / "returns.csv", index_col="date", parse_dates=True)
    table = pd.read_csv(run / "regimes.csv", parse_dates=["start", "end"])
    factors = load_market("sample:25", end="2010-12-31").factors
    groups = by_decision(returns, factors)
    labels = ("regime 1 of 2 (calmest)", "regime 2 of 2 (most volatile)")
    assert list(table["window"].unique()) == list(labels)
    for s, label in enumerate(labels):
        inside = returns[groups.to_numpy() == s]
        assert len(inside) > 30
        for strategy in ("benchmark", "tev=0.03", "tev=0.06"):
            row = table[(table["window"] == label) & (table["strategy"] == strategy)].iloc[0]
            assert row["periods"] == len(inside)
            assert (row["start"], row["end"]) == (inside.index[0], inside.index[-1])
            ref = stats_of(inside[strategy], inside["benchmark"])
            keys = ["total_return", "ann_return", "ann_volatility", "max_drawdown"]
            if strategy != "benchmark":
                keys += ["tracking_error", "information_ratio"]
            for key in keys:
                assert row[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), (label, key)


def test_truncating_the_factors_leaves_every_earlier_regime_unchanged():
    factors = load_market("sample:25", end="2010-12-31").factors
    first = factors.index[59]
    full = regime_states(factors, first)
    assert full.index[0] == first and full.index[-1] == factors.index[-1]
    assert set(full) == {0, 1}
    # the first date, either side of a refit, a refit date itself, far on
    for p in (59, 70, 71, 72, 83, 150, 151):
        t = factors.index[p]
        pd.testing.assert_series_equal(regime_states(factors.loc[:t], first), full.loc[:t])


def test_later_factor_rows_do_not_change_earlier_regimes():
    data = load_market("sample:25", end="2010-12-31")
    idx = data.factors.index
    returns = pd.DataFrame({"benchmark": 0.01, "rf": 0.0, "s": 0.012},
                           index=idx[idx > "1995-01-31"])
    rng = np.random.default_rng(0)
    returns["s"] += rng.normal(0, 0.01, len(returns))
    full = regime_stats(returns, data.factors, A)
    short = regime_stats(returns.loc[:"2003-12-31"], data.factors.loc[:"2003-12-31"], A)
    cut = regime_stats(returns.loc[:"2003-12-31"], data.factors, A)  # more factor rows
    pd.testing.assert_frame_equal(short, cut)
    assert not full.equals(short)


def test_windows_text_and_defaults():
    assert parse_windows("") == DEFAULT_WINDOWS
    assert parse_windows("GFC=2007-10:2009-03") == (("GFC", "2007-10-01", "2009-03-31"),)
    assert parse_windows({"Y2K": ("1999", "2000")}) == (("Y2K", "1999-01-01", "2000-12-31"),)
    assert BacktestConfig(windows="Covid=2020-02-01:2020-04").windows == (
        ("Covid", "2020-02-01", "2020-04-30"),)
    for text, message in (("GFC 2008", "NAME=START:END"), ("x=2009:2008", "ends before"),
                          ("x=08/2008:2009", "year first")):
        with pytest.raises(InputError, match=message):
            parse_windows(text)


def named_grid(wb, name: str) -> list[list]:
    sheet, ref = wb.defined_names[name].attr_text.split("!")
    return [[c.value for c in r] for r in wb[sheet.strip("'")][ref.replace("$", "")]]


def sheet_run(tmp_path, cells: dict, drop: tuple[str, ...] = ()):
    import openpyxl
    from test_backtest_macro import prepared

    from xlfuncs import macros
    from xlfuncs.excel.sheets import OpenpyxlBook

    path = prepared(tmp_path, **cells)
    if drop:
        book = OpenpyxlBook(path)
        for name in drop:  # as in a workbook built before the name existed
            book.clear(book.name_range(name))
            del book.workbook.defined_names[name]
        book.save()
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok, run.status
    return run, path, openpyxl.load_workbook(path)


def test_the_sheet_shows_the_crisis_and_regime_tables_and_the_exposure_chart(tmp_path):
    import zipfile

    from openpyxl.utils.cell import column_index_from_string, get_column_letter

    from xlfuncs.excel.backtest_macro import CHART_ROWS
    from xlfuncs.excel.sheets import _image_cell
    from xlfuncs.report import save_exposure_chart

    run, path, wb = sheet_run(tmp_path, {"BtData": "sample:25", "BtEnd": "2010-12-31",
                                         "BtTev": "0.03", "BtWindows": "GFC=2007-10:2009-03"})
    grid = named_grid(wb, "BtCrisis")
    assert grid[0][:3] == ["window", "strategy", "start"]
    labels = [(g[0], g[1]) for g in grid[1:]]
    assert labels == [("GFC", "benchmark"), ("GFC", "tev=0.03")]
    r = run.result.returns.loc["2007-10-01":"2009-03-31"]
    te = grid[2][grid[0].index("tracking_error")]
    assert te == pytest.approx(stats_of(r["tev=0.03"], r["benchmark"])["tracking_error"],
                               rel=1e-12)
    # the regimes beside the windows, on the same rows, as the CLI's regimes.csv
    assert wb.defined_names["BtRegimes"].attr_text == "'BtCrisis'!$M$3:$W$7"
    grid = named_grid(wb, "BtRegimes")
    assert grid[0][0] == "regime" and grid[0][1:] == named_grid(wb, "BtCrisis")[0][1:]
    returns = run.result.returns
    groups = by_decision(returns, load_market("sample:25", end="2010-12-31").factors)
    rows = {(g[0], g[1]): dict(zip(grid[0], g, strict=True)) for g in grid[1:]}
    assert list(rows) == [(f"regime {s + 1} of 2 ({tag})", name)
                          for s, tag in enumerate(("calmest", "most volatile"))
                          for name in ("benchmark", "tev=0.03")]
    for (label, name), row in rows.items():
        inside = returns[groups.to_numpy() == int(label[7]) - 1]
        assert row["periods"] == len(inside)
        assert row["start"] == inside.index[0].to_pydatetime()
        ref = stats_of(inside[name], inside["benchmark"])
        for key in ("total_return", "ann_volatility", "max_drawdown",
                    *(("tracking_error", "information_ratio") if name != "benchmark" else ())):
            assert row[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), (label, key)
        if name == "benchmark":
            assert row["tracking_error"] is None
    ws = wb["BtCrisis"]
    assert [c.number_format for c in ws["M4:W4"][0]] == [c.number_format for c in ws["A4:K4"][0]]
    # four charts stacked right of the parameters, the fourth the active exposures
    data_row = int(wb.defined_names["BtData"].attr_text.split("$")[-1])
    stats_last = wb.defined_names["BtStats"].attr_text.split(":")[1].split("$")[1]
    col = get_column_letter(column_index_from_string(stats_last) + 2)
    cells = sorted((_image_cell(im) for im in wb["Backtest"]._images),
                   key=lambda c: int(c.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")))
    assert cells == [f"{col}{data_row + k * CHART_ROWS}" for k in range(4)]
    media = [zipfile.ZipFile(path).read(n) for n in zipfile.ZipFile(path).namelist()
             if n.startswith("xl/media/")]
    assert save_exposure_chart(run.result, tmp_path).read_bytes() in media


def test_a_workbook_without_a_regime_table_gets_one_beside_the_crisis_windows(tmp_path):
    _, _, wb = sheet_run(tmp_path, {"BtData": "sample:25", "BtEnd": "1996-12-31",
                                    "BtTev": "0.03"}, drop=("BtRegimes",))
    assert wb.defined_names["BtRegimes"].attr_text == "'BtCrisis'!$M$3:$W$7"
    assert [g[:2] for g in named_grid(wb, "BtRegimes")] == [
        ["regime", "strategy"], ["regime 1 of 2 (calmest)", "benchmark"],
        ["regime 1 of 2 (calmest)", "tev=0.03"], ["regime 2 of 2 (most volatile)", "benchmark"],
        ["regime 2 of 2 (most volatile)", "tev=0.03"]]


def test_regimes_the_model_cannot_fit_are_said_on_the_sheet():
    from xlfuncs.core import run_backtest
    from xlfuncs.excel.backtest_macro import _crisis_grids

    data = load_market("sample:25", end="1996-12-31")
    result = run_backtest(data, BacktestConfig(tev=(0.03,), min_history=36, end="1996-12-31",
                                               workers=1))
    windows, regimes = _crisis_grids(result, data.factors)
    assert regimes[0] == ["regime", *windows[0][1:]]
    assert regimes[1][0].startswith("no regime statistics: regime model is degenerate")
    assert regimes[1][1:] == [None] * 10 and len(regimes) == 2


def test_too_short_a_history_for_regimes_is_said_not_hidden(tmp_path):
    out = tmp_path / "short"
    rc = main(["backtest", "--data", "sample:25", "--tev", "0.03", "--end", "1996-12-31",
               "--min-history", "36", "--workers", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    assert not (out / "regimes.csv").exists() and (out / "windows.csv").exists()
    notes = (out / "notes.txt").read_text(encoding="utf-8")
    assert "- no regime statistics: regime model is degenerate" in notes


def test_exposures_csv_equals_a_recomputation_from_weights_csv(tmp_path):
    from test_limits import active_from_files

    out = tmp_path / "expo"
    rc = main(["backtest", "--data", "sample:25", "--tev", "0.04", "--end", "1996-12-31",
               "--min-history", "36", "--workers", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    weights = pd.read_csv(out / "weights.csv", parse_dates=["date"])
    expo = pd.read_csv(out / "exposures.csv", parse_dates=["date"]).set_index(
        ["date", "strategy"])
    data = load_market("sample:25").truncate(None, "1996-12-31")
    checked = active_from_files(data, weights)
    assert len(checked) == len(expo) > 20
    for date, strategy, ind, factors in checked:
        row = expo.loc[(pd.Timestamp(date), strategy)]
        for name, value in factors.items():
            assert row[name] == pytest.approx(value, abs=1e-9), (date, name)
        for name, value in ind.items():
            assert row[f"industry: {name}"] == pytest.approx(value, abs=1e-9), (date, name)
    risk = pd.read_csv(out / "risk.csv")
    np.testing.assert_allclose(risk["factor_share"] + risk["specific_share"], 1.0, rtol=1e-12)
    assert (risk["top1_share"] >= risk["top2_share"]).all()
    assert (out / "active_exposures.png").read_bytes().startswith(b"\x89PNG")


def test_risk_split_and_contributions_match_the_full_covariance():
    from xlfuncs.core._attribution import active_risk

    rng = np.random.default_rng(4)
    n, k = 12, 3
    f_mat = np.vstack([rng.normal(0, 0.003, n), rng.normal(1, 0.4, (k, n))])
    sf = np.zeros((k + 1, k + 1))
    x = rng.normal(size=(60, k)) * 0.04
    sf[1:, 1:] = np.cov(x, rowvar=False)
    e = rng.uniform(0.001, 0.004, n)
    w, b = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    ind = np.arange(n) % 4
    expo, risk = active_risk(f_mat, sf, e, w, b, None, [f"S{i}" for i in range(n)],
                             ["MKT", "SMB", "HML"], ind, ["A", "B", "C", "D"], 12, top=n)
    s = f_mat.T @ sf @ f_mat + np.diag(e)  # the n x n covariance, tests only
    a = w - b
    te = np.sqrt(a @ s @ a)
    assert risk["tracking_error"] == pytest.approx(te * np.sqrt(12), rel=1e-12)
    fa = f_mat @ a
    assert risk["factor_share"] == pytest.approx(fa @ sf @ fa / te**2, rel=1e-12)
    contrib = a * (s @ a) / te
    shares = sorted(contrib / te, reverse=True)
    assert [risk[f"top{r}_share"] for r in range(1, n + 1)] == pytest.approx(shares, rel=1e-10)
    assert sum(shares) == pytest.approx(1.0, rel=1e-12)
    assert [expo[f] for f in ("MKT", "SMB", "HML")] == pytest.approx(list(fa[1:]), rel=1e-12)
    assert expo["industry: B"] == pytest.approx(a[ind == 1].sum(), rel=1e-12)


@pytest.mark.parametrize(("value", "text"), [
    ("GFC=2008-13:2009-03", "GFC has '2008-13', which is not a date"),
    ("GFC=2008-02-30:2009", "GFC has '2008-02-30', which is not a date"),
    ([("GFC", "2008-01")], r"must be NAME=START:END items, or \(name, start, end\) triples"),
    (5, r"must be NAME=START:END items, or \(name, start, end\) triples"),
])
def test_windows_that_are_not_dates_are_one_readable_error(value, text):
    with pytest.raises(InputError, match=text):
        parse_windows(value)
