"""The walk-forward engine: no look-ahead, accounting, statistics, configuration, CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly

from xlfuncs.cli import main
from xlfuncs.core import BacktestConfig, run_backtest
from xlfuncs.data.market import load_market
from xlfuncs.errors import InputError

END = "1996-12-31"


@pytest.fixture(scope="module")
def data():
    return load_market("sample:40").truncate(None, "1999-12-31", drop_unlisted=False)


def small(**kw) -> BacktestConfig:
    base = dict(tev=(0.03,), workers=1, min_history=36, min_obs=24, beta_window=36)
    base.update(kw)
    return BacktestConfig(**base)


@pytest.fixture(scope="module")
def full(data):
    return run_backtest(data, small())


def test_a_shorter_run_decides_exactly_the_same_weights(data, full):
    cut = run_backtest(data, small(end=END))
    last = cut.weights["date"].max()
    assert last <= pd.Timestamp(END)
    mine = full.weights[full.weights["date"] <= last].reset_index(drop=True)
    theirs = cut.weights.reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    np.testing.assert_array_equal(full.returns.loc[cut.returns.index].to_numpy(),
                                  cut.returns.to_numpy())


def test_later_data_cannot_change_earlier_decisions(data, full):
    """Scramble every return after a date: the weights decided up to it do not move."""
    date = pd.Timestamp("1995-06-30")
    scrambled = data.returns.copy()
    later = scrambled.index > date
    rng = np.random.default_rng(3)
    scrambled.loc[later] = scrambled.loc[later].to_numpy() * rng.uniform(-2, 2,
                                                                        scrambled.loc[later].shape)
    other = type(data)(scrambled.clip(lower=-0.9), data.caps, data.industries, data.factors,
                       data.rf, data.periods_per_year, data.benchmark, data.source)
    again = run_backtest(other, small())
    a = full.weights[full.weights["date"] <= date].reset_index(drop=True)
    b = again.weights[again.weights["date"] <= date].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_returns_follow_from_the_weights(data, full):
    """Weights decided at t earn t+1: recomputed here from weights.csv and the data."""
    name = full.strategies[0]
    w = full.weights[full.weights["strategy"] == name].pivot(index="date", columns="asset",
                                                             values="weight").fillna(0.0)
    r = data.returns.fillna(0.0)
    dates = list(data.dates)
    for t in w.index[:-1:7]:
        nxt = dates[dates.index(t) + 1]
        expected = float((w.loc[t] * r.loc[nxt, w.columns]).sum())
        assert full.returns.loc[nxt, name] == pytest.approx(expected, abs=1e-14)
    # the benchmark: cap weights at t over the same tradable assets earn t+1
    assert full.returns["benchmark"].notna().all()


def test_statistics_match_their_definitions(full):
    name = full.strategies[0]
    r = full.returns
    a = r[name] - r["benchmark"]
    te = a.std(ddof=1) * np.sqrt(12)
    assert full.stats.loc[name, "tracking_error"] == pytest.approx(te, rel=1e-12)
    assert full.stats.loc[name, "information_ratio"] == pytest.approx(
        a.mean() / a.std(ddof=1) * np.sqrt(12), rel=1e-12)
    wealth = (1 + r[name]).cumprod()
    dd = (wealth / np.maximum.accumulate(np.concatenate([[1.0], wealth.to_numpy()]))[1:] - 1)
    assert full.stats.loc[name, "max_drawdown"] == pytest.approx(dd.min(), rel=1e-12)
    # the ex-ante tracking error is the budget when the cap binds
    binding = full.ex_ante[full.ex_ante["te_binding"]]
    assert len(binding) and np.allclose(binding["tracking_error"], 0.03, rtol=1e-5)


def test_a_factor_benchmark_on_industry_portfolios():
    data = load_market("french12").truncate("1990-01", "1996-12")
    res = run_backtest(data, BacktestConfig(mode="gamma", gamma=(5.0,), tev=(), workers=1,
                                            min_history=36, min_obs=24, beta_window=36))
    mkt = data.factors["Mkt-RF"] + data.rf
    np.testing.assert_allclose(res.returns["benchmark"], mkt.reindex(res.returns.index),
                               rtol=0, atol=1e-15)
    assert set(res.weights["asset"]) <= set(data.returns.columns)
    assert res.failures.empty


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "momentum"}, "mode must be one of tev, gamma, sector"),
        ({"tev": "0.02,-0.04"}, "tev must be positive numbers"),
        ({"start": "2010-01-31", "end": "2005-01-31"}, "start 2010-01-31 is after end"),
        ({"model": "garch"}, "model must be sample"),
        ({"n_states": 7}, "n_states must be a whole number from 2 to 4"),
        ({"max_weight": 1.5}, "max_weight"),
        ({"colour": "red"}, "unknown setting 'colour'"),
        ({"cost": ","}, "cost must be one number"),
        ({"max_weight": "0.1, 0.2"}, "max_weight must be one number"),
        ({"start": 3.5}, "start must be a date"),
        ({"start": "soon", "end": "1996-12-31"}, "start must be a date"),
        ({"start": "1990-01-31", "end": "end of 1996"}, "end must be a date"),
        ({"model": "ewma:0"}, "model ewma half-life"),
        ({"model": "ewma:abc"}, "model"),
        ({"model": "regime:3"}, "model regime takes no parameter"),
        ({"tev": 5}, "tev budget 5 is 500% a year: write 0.05 or 5%"),
        ({"cost": 5}, "cost 5 is 500% of every amount traded"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_setting(settings, message):
    with pytest.raises(InputError) as info:
        BacktestConfig.from_mapping(settings)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_fails_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["backtest", "--tev", "-0.02", "--out", str(out), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xlfuncs: error: tev must be positive numbers") and "\n" not in err
    assert not out.exists()
    data = tmp_path / "crsp.csv"
    data.write_text("date,permno,prc\n2020-01-31,1,10\n")
    rc = main(["backtest", "--data", str(data), "--out", str(out), "--quiet"])
    assert rc == 2
    assert "ret" in capsys.readouterr().err and not out.exists()


def test_cli_writes_the_result_files(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["backtest", "--data", "sample:30", "--tev", "0.02,0.05", "--end", "1996-12-31",
               "--min-history", "36", "--workers", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"returns.csv", "weights.csv", "stats.csv", "cumulative.png", "ir_vs_tev.png",
            "rolling_te.png"} <= names
    returns = pd.read_csv(out / "returns.csv")
    assert list(returns.columns) == ["date", "benchmark", "rf", "tev=0.02", "tev=0.05"]
    assert returns["date"].max() <= "1996-12-31"
    stats = pd.read_csv(out / "stats.csv")
    assert list(stats.columns) == ["strategy", "ann_return", "ann_volatility", "sharpe",
                                   "tracking_error", "information_ratio", "max_drawdown",
                                   "turnover", "avg_holdings", "hit_rate", "ir_per_period"]
    notes = (out / "notes.txt").read_text().splitlines()  # the data, and what was assumed
    assert notes[0].startswith("synthetic universe of 30 stocks")
    assert notes[1:] and all(line.startswith("- ") for line in notes[1:])
    assert "  note: " in capsys.readouterr().out
    conventions = pd.read_csv(out / "conventions.csv")  # every statistic says how it is made
    assert list(conventions["statistic"]) == list(stats.columns[1:])
    assert conventions.set_index("statistic").loc["information_ratio", "convention"] == (
        "mean(a) / std(a, ddof=1) * sqrt(A), a = r - r_b")
    weights = pd.read_csv(out / "weights.csv")
    assert list(weights.columns) == ["date", "strategy", "asset", "weight"]
    sums = weights.groupby(["date", "strategy"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    assert (out / "cumulative.png").read_bytes().startswith(b"\x89PNG")


def test_regime_model_runs_without_look_ahead(data):
    cfg = dict(model="regime", n_states=2, start="1994-12-31")
    long = run_backtest(data, small(**cfg, end="1997-06-30"))
    short = run_backtest(data, small(**cfg, end="1996-06-30"))
    last = short.weights["date"].max()
    a = long.weights[long.weights["date"] <= last].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, short.weights.reset_index(drop=True), check_exact=True)
    assert len(short.weights["date"].unique()) >= 12
    assert set(long.failures["reason"].map(type)) <= {str}
    # the longer run decides more dates, and every date it decides or records as failed
    decided = set(long.weights["date"]) | set(long.failures["date"])
    assert len(decided) > len(set(short.weights["date"]) | set(short.failures["date"]))
    assert all(isinstance(r, str) and r for r in long.failures["reason"])


def test_sector_rotation_keeps_cap_weights_inside_industries(data):
    res = run_backtest(data, small(mode="sector", end="1995-12-31"))
    assert res.failures.empty
    last = res.weights[res.weights["date"] == res.weights["date"].max()].set_index("asset")
    date = last["date"].iloc[0]
    caps = data.caps.loc[date, last.index]
    industries = data.industries[last.index]
    for _, members in last.groupby(industries.to_numpy()):
        ratio = members["weight"] / caps[members.index]
        np.testing.assert_allclose(ratio, ratio.iloc[0], rtol=1e-6)


def test_cli_reads_a_toml_configuration(tmp_path, capsys):
    config = tmp_path / "settings.toml"
    config.write_text('[backtest]\ndata = "sample:25"\nmode = "gamma"\ngamma = [2, 20]\n'
                      'end = "1995-12-31"\nmin_history = 36\nworkers = 1\n')
    rc = main(["backtest", "--config", str(config), "--quiet", "--out", str(tmp_path / "o")])
    assert rc == 0, capsys.readouterr().err
    stats = pd.read_csv(tmp_path / "o" / "stats.csv")
    assert list(stats["strategy"]) == ["benchmark", "gamma=2", "gamma=20"]
    config.write_text('[backtest]\nmode = "tev"\ntev = [0.02]\nwindow = 12\n')
    assert main(["backtest", "--config", str(config), "--quiet"]) == 2
    assert "unknown setting 'window'" in capsys.readouterr().err


def test_a_start_after_the_data_says_so(data):
    with pytest.raises(InputError, match=r"start 2030-01-31 leaves nothing to run: the data "
                                         r"end on 1999-12-31"):
        run_backtest(data, small(start="2030-01-31"))


def test_every_rebalance_failing_is_an_error_with_the_first_reason(data, monkeypatch):
    from xlfuncs.core import _backtest
    from xlfuncs.errors import ConvergenceError, XlfuncsError

    def fail(self, i):
        raise XlfuncsError("the moments are not finite")

    monkeypatch.setattr(_backtest._Estimator, "__call__", fail)
    with pytest.raises(ConvergenceError, match=r"every rebalance failed \(\d+ of them\); the "
                                               r"first: tev=0.03, 1990-03-31: estimation failed: "
                                               r"the moments are not finite$"):
        run_backtest(data, small(end=END))


def test_charts_plot_each_strategy_against_its_own_budget(data, tmp_path):
    """Gamma mode plots against gamma even with TEV budgets set; a strategy with no row
    in the statistics does not shift the others."""
    from xlfuncs.report import chart_budgets

    result = run_backtest(data, small(mode="gamma", gamma=(2.0, 8.0), end=END))
    assert chart_budgets(result) == ("risk aversion gamma", [2.0, 8.0])
    result = run_backtest(data, small(tev=(0.02, 0.05), end=END))
    dropped = type(result)(**{**result.__dict__, "stats": result.stats.iloc[1:]})
    assert chart_budgets(dropped) == ("TEV budget (annual)", [0.05])


@pytest.mark.parametrize("text", ["01/02/2000", "31/12/2000", "2000-13-01"])
def test_dates_are_written_year_first(text):
    with pytest.raises(InputError, match="start must be a date written year first"):
        BacktestConfig(start=text)
    assert BacktestConfig(start="2000-02").start == "2000-02"


def test_a_sector_sweep_over_gammas_uses_the_gammas():
    config = BacktestConfig.from_mapping({"mode": "sector", "gamma": "2, 8"})
    assert list(config.specs(12)) == ["sector gamma=2", "sector gamma=8"]
    with pytest.raises(InputError, match="mode sector sweeps tev budgets or gamma values, not "
                                         "both: clear one"):
        BacktestConfig.from_mapping({"mode": "sector", "gamma": "2", "tev": "0.02"})
    default = BacktestConfig.from_mapping({"mode": "sector"}).specs(12)
    assert list(default) == ["sector tev=0.02", "sector tev=0.04", "sector tev=0.06"]


def test_a_delisted_holding_is_a_forced_sale_outside_the_turnover_limit():
    """S0047 (19% of the portfolio) has no data after 1995-01: selling it is not a choice.

    It used to count against the limit as the optimiser saw it, so every later date was
    infeasible and the book froze with the dead stock in it.
    """
    data = load_market("sample:60").truncate("1990-01", "1996-12")
    result = run_backtest(data, BacktestConfig(tev=(0.04,), min_history=48, turnover=0.05,
                                               workers=1))
    assert result.failures.empty
    weights = result.weights.pivot_table(index="date", columns="asset", values="weight",
                                         fill_value=0.0)
    before, after = weights.loc["1995-01-31"], weights.loc["1995-02-28"]
    assert before["S0047"] > 0.15 and after.get("S0047", 0.0) == 0.0
    # drift over February, then: forced = the dead weight, voluntary = the rest, within 5%
    r = data.returns.loc["1995-02-28"].reindex(before.index).fillna(0.0)
    drifted = before * (1 + r) / float((before * (1 + r)).sum())
    dead = float(drifted["S0047"])
    alive = drifted.drop("S0047") / (1.0 - dead)  # the proceeds spread pro rata
    voluntary = float(after.sub(alive, fill_value=0.0).abs().sum()) / 2
    assert voluntary <= 0.05 + 1e-6


def test_an_industry_change_is_not_known_before_it_happens(tmp_path):
    """Sector mode classifies at date t by the label of date t (SPEC 3.5: data up to t only)."""
    base = load_market("sample:30").truncate("1996-01", "2003-12")
    sic = {name: 1000 + 500 * k for k, name in enumerate(sorted(set(base.industries)))}
    long = base.returns.stack().rename("ret").reset_index()
    long.columns = ["date", "permno", "ret"]
    long["mktcap"] = base.caps.stack().reindex(
        pd.MultiIndex.from_frame(long[["date", "permno"]])).to_numpy()
    long["siccd"] = long["permno"].map(base.industries).map(sic)
    moved = base.caps.iloc[-1].idxmax()
    changed = long.copy()
    changed.loc[(changed.permno == moved) & (changed.date >= "2002-01-01"), "siccd"] = 7372
    long.to_csv(tmp_path / "a.csv", index=False)
    changed.to_csv(tmp_path / "b.csv", index=False)
    a, b = load_market(str(tmp_path / "a.csv")), load_market(str(tmp_path / "b.csv"))
    assert a.industry_history is None
    history = b.industry_history
    assert history.loc["2001-12-31", moved] == a.industries[moved]  # the old label until then
    assert history.loc["2002-01-31", moved] == b.industries[moved] != a.industries[moved]
    assert b.truncate(None, "2001-12").industry_history.shape[0] == 72
    config = BacktestConfig(mode="sector", tev=(0.04,), min_history=48, workers=1)
    ra, rb = run_backtest(a, config), run_backtest(b, config)
    cut = pd.Timestamp("2001-12-31")
    pd.testing.assert_frame_equal(ra.weights[ra.weights.date <= cut],
                                  rb.weights[rb.weights.date <= cut])
    later_a = ra.weights[ra.weights.date > cut].set_index(["date", "asset"]).weight
    later_b = rb.weights[rb.weights.date > cut].set_index(["date", "asset"]).weight
    assert not later_a.equals(later_b)  # and the change is used once it happened


def test_cli_allow_gaps_reads_a_missing_month_as_no_data(tmp_path, capsys):
    base = load_market("sample:12").truncate("1990-01", "1996-12")
    long = base.returns.stack().rename("ret").reset_index()
    long.columns = ["date", "permno", "ret"]
    long["mktcap"] = base.caps.stack().reindex(
        pd.MultiIndex.from_frame(long[["date", "permno"]])).to_numpy()
    first = long["permno"].iloc[0]
    gap = long[(long.permno == first)].index[20]  # a month inside its listed life
    long.drop(index=gap).to_csv(tmp_path / "gap.csv", index=False)
    argv = ["backtest", "--data", str(tmp_path / "gap.csv"), "--tev", "0.03", "--workers", "1",
            "--min-history", "36", "--quiet"]
    assert main(argv) == 2
    assert "xlfuncs backtest --allow-gaps reads it as missing" in capsys.readouterr().err
    assert main([*argv, "--allow-gaps"]) == 0
    assert "1 missing row(s) inside listed lives read as not available" in capsys.readouterr().out


def test_every_configuration_error_by_its_text():
    cases = [
        (dict(mode="sharpe"), "mode",
         "mode must be one of tev, gamma, sector, anchor (got 'sharpe')"),
        (dict(tev=(0.0,)), "tev", "tev budgets must be above 0"),
        (dict(tev=(4.0,)), "tev", "tev budget 4 is 400% a year: write 0.04 or 4% for 4 percent"),
        (dict(tev=()), "tev", "tev needs at least one budget for mode tev, e.g. 0.04"),
        (dict(mode="gamma", tev=()), "gamma",
         "gamma needs at least one value for mode gamma, e.g. 5"),
        (dict(mode="sector", tev=(), gamma=()), "tev",
         "mode sector needs tev budgets or gamma values"),
        (dict(model="garch"), "model",
         "model must be sample, ewma[:HALFLIFE] or regime (got 'garch')"),
        (dict(model="sample:5"), "model", "model sample takes no parameter (got 'sample:5')"),
        (dict(model="ewma:abc"), "model",
         'model ewma half-life must be a number of periods (got "abc")'),
        (dict(n_states=5), "n_states", "n_states must be a whole number from 2 to 4 (got 5)"),
        (dict(horizon=0), "horizon", "horizon must be a whole number from 1 to 120 (got 0)"),
        (dict(beta_window=5), "beta_window", "beta_window must be a whole number of at least 12 "
         "periods, or blank for an expanding window (got 5)"),
        (dict(start="31/01/2010"), "start",
         "start must be a date written year first, such as 2010-01-31 (got '31/01/2010')"),
        (dict(start="2011-01-31", end="2010-01-31"), "start",
         "start 2011-01-31 is after end 2010-01-31"),
        (dict(benchmark="spy"), "benchmark", "benchmark must be auto, caps or market (got 'spy')"),
        (dict(workers=0), "workers", "workers must be a whole number of at least 1 (got 0)"),
    ]
    for kwargs, argument, text in cases:
        raises_exactly(text, argument, BacktestConfig, **kwargs)
    known = ", ".join(sorted(f.name for f in dataclasses.fields(BacktestConfig)))
    for settings, argument, text in [
        ({"colour": "red"}, "colour", f"unknown setting 'colour' (known: {known})"),
        ({"max_weight": "0.1, 0.2"}, "max_weight", "max_weight must be one number (got "
         "'0.1, 0.2')"),
        ({"start": 2010}, "start", "start must be a date such as 2010-01-31 (got 2010)"),
        ({"mode": "sector", "tev": "0.02", "gamma": "5"}, "gamma",
         "mode sector sweeps tev budgets or gamma values, not both: clear one"),
        ({"tev": "abc"}, "tev", "tev must be numbers (got 'abc')"),
        ({"tev": "-0.02"}, "tev", "tev must be positive numbers (got -0.02)"),
    ]:
        raises_exactly(text, argument, BacktestConfig.from_mapping, settings)
    assert BacktestConfig.from_mapping({"tev": "2%; 4%"}).tev == (0.02, 0.04)


def test_every_data_error_of_a_run_by_its_text(data):
    no_caps = dataclasses.replace(data, caps=None, source="prices.csv",
                                  benchmark=pd.Series(0.0, index=data.dates))
    raises_exactly("mode sector needs market caps; prices.csv has none", "mode", run_backtest,
                   no_caps, small(mode="sector"))
    raises_exactly("benchmark caps needs market caps; prices.csv has none", "benchmark",
                   run_backtest, no_caps, small(benchmark="caps"))
    no_market = dataclasses.replace(data, factors=data.factors.rename(columns={"Mkt-RF": "X"}))
    raises_exactly("the benchmark is the market, but the factors have no Mkt-RF column",
                   "factors", run_backtest, no_market, small(benchmark="market"))
    raises_exactly(f"the data has {data.n_periods} periods: not enough for min_history 600 and "
                   "one period to earn", "min_history", run_backtest, data,
                   small(min_history=600))


def test_chart_titles_follow_the_sweep_and_the_te_chart_draws_each_budget(data):
    """The IR chart names what was swept; the rolling-TE chart has its axis label and budgets."""
    import matplotlib.pyplot as plt

    from xlfuncs.report import chart_figures

    tev = run_backtest(data, small(tev=(0.02, 0.05), end=END))
    gamma = run_backtest(data, small(mode="gamma", gamma=(2.0, 8.0), tev=(), end=END))
    try:
        charts = dict(chart_figures(tev))
        ir, te = charts["ir_vs_tev.png"].axes[0], charts["rolling_te.png"].axes[0]
        assert ir.get_title() == "Information ratio against the TEV budget"
        assert te.get_ylabel() == "tracking error (annualised)"
        levels = sorted(float(line.get_ydata()[0]) for line in te.get_lines()
                        if line.get_linestyle() == "--")
        assert levels == [0.02, 0.05]
        g = dict(chart_figures(gamma))
        assert g["ir_vs_tev.png"].axes[0].get_title() == "Information ratio against risk "\
            "aversion gamma"
        assert not [ln for ln in g["rolling_te.png"].axes[0].get_lines()
                    if ln.get_linestyle() == "--"]  # no budget in a gamma sweep
    finally:
        plt.close("all")


def test_the_run_time_covers_the_assembly_of_the_results(monkeypatch):
    """``seconds`` is the whole call: a slow assembly of the tables is counted."""
    import time

    from xlfuncs.core import SerialExecutor, _backtest

    real = _backtest._assemble

    def slow(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(_backtest, "_assemble", slow)
    small = load_market("sample:30")
    cfg = BacktestConfig(tev=(0.04,), min_history=60, start=str(small.dates[-6].date()))
    t0 = time.perf_counter()
    res = run_backtest(small, cfg, executor=SerialExecutor())
    elapsed = time.perf_counter() - t0
    assert 1.0 <= res.seconds <= elapsed
