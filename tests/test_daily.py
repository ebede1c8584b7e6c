"""Issue 18, part A: daily CRSP and Ken French files compounded to months, liquidity filters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from errors_check import raises_exactly
from test_backtest_macro import prepared

from xlfuncs import macros
from xlfuncs.cli import main
from xlfuncs.core import BacktestConfig, MarketData, run_backtest
from xlfuncs.core._frequency import compound_panels
from xlfuncs.data.market import load_market
from xlfuncs.excel.sheets import OpenpyxlBook

DAYS = pd.bdate_range("2010-01-01", "2012-12-31")
N_STOCKS = 16
DELISTED, GAP, CODED, LATE, BIDASK, MOVER = 5, 7, 8, 3, 9, 11
DROPPED_DAY, CODED_DAY = pd.Timestamp("2011-02-10"), pd.Timestamp("2011-09-07")
DELIST_DAY = pd.Timestamp("2011-06-15")


def _daily_factors(rng: np.random.Generator) -> pd.DataFrame:
    """Daily factors in percent with two decimals, as Ken French publishes them."""
    values = np.column_stack([rng.normal(0.04, 1.0, len(DAYS)), rng.normal(0.0, 0.5, len(DAYS)),
                              rng.normal(0.0, 0.5, len(DAYS)), np.full(len(DAYS), 0.01)])
    return pd.DataFrame(np.round(values, 2), index=DAYS, columns=["Mkt-RF", "SMB", "HML", "RF"])


def _daily_crsp(rng: np.random.Generator, market: pd.Series) -> pd.DataFrame:
    """A CRSP-like daily file: a late listing, a delisting with dlret, a missing day, a code."""
    frames = []
    for k in range(N_STOCKS):
        days = DAYS[DAYS >= "2010-03-17"] if k == LATE else DAYS
        if k == DELISTED:
            days = days[days <= DELIST_DAY]
        if k == GAP:
            days = days[days != DROPPED_DAY]
        beta = 0.6 + 0.08 * k
        ret = beta * market.reindex(days).to_numpy() + rng.normal(0.0002, 0.012, len(days))
        prc = (3.0 + 2.0 * k) * np.cumprod(1 + ret)
        frame = pd.DataFrame({"date": days.strftime("%Y%m%d"), "permno": 10001 + k,
                              "ret": [repr(float(x)) for x in ret], "dlret": np.nan,
                              "prc": -prc if k == BIDASK else prc,
                              "shrout": np.where(days < "2011-07-01", 1000.0 + 50 * k, 1200.0),
                              "vol": rng.integers(2_000, 20_000, len(days)),
                              "siccd": 2000 + 1500 * (k % 4)})
        if k == MOVER:
            frame.loc[days >= "2011-10-01", "siccd"] = 7372
        if k == DELISTED:
            frame.loc[frame.index[-1], "dlret"] = -0.35
        if k == CODED:
            frame.loc[days == CODED_DAY, "ret"] = "C"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _monthly_by_hand(daily: pd.DataFrame) -> pd.DataFrame:
    """The same data compounded to months with plain pandas, as a monthly CRSP file."""
    d = daily.copy()
    r = pd.to_numeric(d["ret"], errors="coerce")
    d["r"] = np.where(d["dlret"].notna(), (1 + r) * (1 + d["dlret"]) - 1, r)
    d["month"] = pd.to_datetime(d["date"], format="%Y%m%d") + pd.offsets.MonthEnd(0)
    d["dv"] = d["prc"].abs() * d["vol"]
    g = d.groupby(["permno", "month"], sort=True)
    out = pd.DataFrame({"ret": (1 + d["r"]).groupby([d["permno"], d["month"]]).prod(min_count=1)
                        - 1,
                        "prc": g["prc"].last(), "shrout": g["shrout"].last(),
                        "siccd": g["siccd"].last()})
    out["vol"] = g["dv"].sum() / out["prc"].abs()  # |prc| x vol is the month's dollar volume
    out = out.reset_index().rename(columns={"month": "date"})
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    return out


def _monthly_factors_by_hand(daily_pct: pd.DataFrame) -> pd.DataFrame:
    """Mkt = Mkt-RF + RF and RF compounded separately; Mkt-RF = Mkt - RF; SMB, HML compounded."""
    f = daily_pct / 100.0
    month = f.index + pd.offsets.MonthEnd(0)
    comp = (1 + f).groupby(month).prod() - 1
    market = (1 + f["Mkt-RF"] + f["RF"]).groupby(month).prod() - 1
    comp["Mkt-RF"] = market - comp["RF"]
    comp.index.name = "date"
    return comp


def _french_text(pct: pd.DataFrame) -> str:
    lines = ["This file was created using the CRSP database.", "",
             "," + ",".join(pct.columns)]
    lines += [f"{d:%Y%m%d}," + ",".join(f"{v:.2f}" for v in row)
              for d, row in zip(pct.index, pct.to_numpy(), strict=True)]
    return "\n".join([*lines, "", "Copyright 2026 Kenneth R. French", ""])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("daily")
    rng = np.random.default_rng(18)
    pct = _daily_factors(rng)
    daily = _daily_crsp(rng, (pct["Mkt-RF"] + pct["RF"]) / 100)
    daily.to_csv(folder / "crsp_daily.csv", index=False)
    (folder / "ff_daily.csv").write_text(_french_text(pct))
    _monthly_by_hand(daily).to_csv(folder / "crsp_monthly.csv", index=False)
    _monthly_factors_by_hand(pct).to_csv(folder / "ff_monthly.csv")
    return folder


SETTINGS = "[backtest]\nmin_obs = 12\nbeta_window = 24\nmin_history = 18\n"


def test_daily_files_run_as_the_same_data_compounded_beforehand(files, tmp_path, capsys):
    """returns.csv of the daily files equals that of the monthly files compounded by hand."""
    common = ["backtest", "--tev", "0.03,0.05", "--workers", "1", "--quiet"]
    (tmp_path / "daily.toml").write_text(SETTINGS)
    (tmp_path / "monthly.toml").write_text(SETTINGS + 'frequency = "monthly"\nmin_price = 5\n'
                                           "min_dollar_volume = 2e6\nvolume_window = 3\n")
    assert main([*common, "--config", str(tmp_path / "daily.toml"),
                 "--data", str(files / "crsp_daily.csv"), "--factors", str(files / "ff_daily.csv"),
                 "--frequency", "monthly", "--min-price", "5", "--min-dollar-volume", "2e6",
                 "--volume-window", "3", "--out", str(tmp_path / "d")]) == 0
    printed = capsys.readouterr().out
    assert main([*common, "--config", str(tmp_path / "monthly.toml"),
                 "--data", str(files / "crsp_monthly.csv"),
                 "--factors", str(files / "ff_monthly.csv"), "--out", str(tmp_path / "m")]) == 0
    daily = pd.read_csv(tmp_path / "d" / "returns.csv", index_col="date")
    monthly = pd.read_csv(tmp_path / "m" / "returns.csv", index_col="date")
    assert list(daily.columns) == ["benchmark", "rf", "tev=0.03", "tev=0.05"]
    assert daily.index.equals(monthly.index) and len(daily) == 36 - 18
    np.testing.assert_allclose(daily.to_numpy(), monthly.to_numpy(), rtol=0, atol=1e-10)
    filters = pd.read_csv(tmp_path / "d" / "filters.csv")
    pd.testing.assert_frame_equal(filters, pd.read_csv(tmp_path / "m" / "filters.csv"))
    assert filters.groupby("filter")["removed"].min().min() > 0  # both filters did remove
    # the missing day and the coded return, each in its own month; not the listing or delisting
    note = ("2 stock-period(s) had missing days inside the stock's listed life: compounded over "
            "the days they have (0 with none at all read as missing)")
    assert note in printed
    notes = (tmp_path / "d" / "notes.txt").read_text()
    assert note in notes and f"daily data compounded to monthly periods ({len(DAYS)} days" in notes
    assert "daily factors and RF compounded to monthly periods" in notes


def test_daily_factors_compound_as_a_hand_computation(tmp_path):
    """Two days in January, one in February, in percent: Mkt-RF is Mkt compounded less RF's."""
    text = ("Daily factors\n\n,Mkt-RF,SMB,RF\n20230130,1.00,-0.50,0.02\n"
            "20230131,-2.00,0.40,0.02\n20230201,0.50,0.10,0.01\n\nCopyright\n")
    path = tmp_path / "ff_daily.csv"
    path.write_text(text)
    crsp = tmp_path / "crsp.csv"
    crsp.write_text("date,permno,ret,mktcap\n2023-01-31,1,0.01,100\n2023-02-28,1,0.02,101\n")
    data = load_market(str(crsp), factors=str(path))
    rf_jan = 1.0002 * 1.0002 - 1
    mkt_jan = (1 + 0.01 + 0.0002) * (1 - 0.02 + 0.0002) - 1
    assert data.rf.to_numpy() == pytest.approx([rf_jan, 0.0001], abs=1e-15)
    assert data.factors["Mkt-RF"].to_numpy() == pytest.approx([mkt_jan - rf_jan, 0.005],
                                                              abs=1e-15)
    assert data.factors["SMB"].to_numpy() == pytest.approx([0.995 * 1.004 - 1, 0.001], abs=1e-15)
    # not the daily excess returns compounded: that would be off by 2e-6 here
    assert abs((1.01 * 0.98 - 1) - (mkt_jan - rf_jan)) > 1e-6
    assert data.benchmark.to_numpy() == pytest.approx([mkt_jan, 0.0051], abs=1e-15)


def test_a_stock_with_no_return_in_a_month_is_missing_for_it():
    days = pd.bdate_range("2020-01-01", "2020-04-30")
    r = pd.DataFrame({"A": 0.01, "B": 0.002}, index=days)
    r.loc["2020-02", "A"] = np.nan  # the whole of February
    r.loc["2020-03-10", "B"] = np.nan  # one day of March
    caps = pd.DataFrame({"A": np.arange(len(days), dtype=float), "B": 7.0}, index=days)
    caps.loc["2020-04-30", "A"] = np.nan
    got = compound_panels(r, 12, caps=caps)
    n_days = pd.Series(days.month).value_counts().sort_index().to_numpy()
    assert np.isnan(got.returns["A"].iloc[1])
    np.testing.assert_allclose(got.returns["A"].iloc[[0, 2, 3]],
                               1.01 ** n_days[[0, 2, 3]] - 1, rtol=1e-13)
    np.testing.assert_allclose(got.returns["B"], 1.002 ** (n_days - [0, 0, 1, 0]) - 1, rtol=1e-13)
    assert (got.gaps, got.empty) == (2, 1)
    # the cap of the period's last day the stock has (April 30 is missing: April 29)
    assert got.caps["A"].iloc[3] == len(days) - 2


# --------------------------------------------------------------------------- liquidity filters

MIN_PRICE, MIN_DV, WINDOW, MIN_CAP = 8.0, 3.0e6, 6, 300.0


@pytest.fixture(scope="module")
def liquid():
    """The sample universe with prices and dollar volumes (some missing)."""
    base = load_market("sample:40").truncate(None, "1999-12-31", drop_unlisted=False)
    rng = np.random.default_rng(7)
    shape = base.returns.shape
    listed = base.returns.notna().to_numpy()
    prices = np.exp(rng.normal(np.log(12.0), 0.6, shape))
    volume = np.exp(rng.normal(np.log(4.0e6), 0.8, shape))
    prices[~listed | (rng.random(shape) < 0.03)] = np.nan
    volume[~listed | (rng.random(shape) < 0.05)] = np.nan
    frame = lambda v: pd.DataFrame(v, index=base.dates, columns=base.returns.columns)  # noqa: E731
    return MarketData(base.returns, base.caps, base.industries, base.factors, base.rf,
                      base.periods_per_year, base.benchmark, "sample with prices",
                      industry_history=None, prices=frame(prices), dollar_volume=frame(volume))


def _config(**kw) -> BacktestConfig:
    base = dict(tev=(0.03,), workers=1, min_history=36, min_obs=24, beta_window=36,
                min_price=MIN_PRICE, min_dollar_volume=MIN_DV, volume_window=WINDOW,
                min_cap=MIN_CAP)
    base.update(kw)
    return BacktestConfig(**base)


def _universe_by_hand(data: MarketData, i: int) -> tuple[pd.Index, dict[str, int]]:
    """The stocks tradable at period i after the filters, and each filter's count."""
    excess = data.returns.sub(data.rf, axis=0)
    history = excess.iloc[max(0, i - 35):i + 1].notna().sum() >= 24
    now = data.returns.iloc[i].notna() & (data.caps.iloc[i] > 0)
    tradable = history & now
    price_ok = data.prices.iloc[i] >= MIN_PRICE
    dv_ok = data.dollar_volume.iloc[max(0, i - WINDOW + 1):i + 1].mean() >= MIN_DV
    cap_ok = data.caps.iloc[i] >= MIN_CAP
    counts = {"min_price": int((tradable & ~price_ok).sum()),
              "min_dollar_volume": int((tradable & ~dv_ok).sum()),
              "min_cap": int((tradable & ~cap_ok).sum())}
    return data.returns.columns[tradable & price_ok & dv_ok & cap_ok], counts


@pytest.fixture(scope="module")
def filtered(liquid):
    return run_backtest(liquid, _config())


def test_every_filter_removes_exactly_the_stocks_it_should(liquid, filtered):
    result = filtered
    filters = result.filters
    dates = filters["date"].unique()
    assert len(dates) == liquid.n_periods - 36
    for date in dates:
        i = liquid.dates.get_loc(date)
        universe, counts = _universe_by_hand(liquid, i)
        got = filters[filters["date"] == date].set_index("filter")["removed"].to_dict()
        assert got == counts, date
        # the cap-weighted benchmark over exactly that universe earns the next period
        caps = liquid.caps.iloc[i][universe]
        nxt = liquid.returns.iloc[i + 1][universe].fillna(0.0)
        expected = float((caps * nxt).sum() / caps.sum())
        assert result.returns.loc[liquid.dates[i + 1], "benchmark"] == pytest.approx(
            expected, abs=1e-14)
    totals = filters.groupby("filter", sort=False)["removed"]
    assert all(totals.sum() > 0)
    note = next(n for n in result.notes if n.startswith("liquidity filters removed"))
    means = totals.mean()
    assert (f"min_price {means['min_price']:.1f} (at most {totals.max()['min_price']})"
            in note)


def test_the_filters_read_no_future_data(liquid, filtered):
    """Scramble every price and volume after a date: the universe up to it does not move."""
    date = pd.Timestamp("1995-06-30")
    rng = np.random.default_rng(11)
    later = liquid.dates > date
    prices, volume = liquid.prices.copy(), liquid.dollar_volume.copy()
    prices.loc[later] *= rng.uniform(0.1, 3.0, prices.loc[later].shape)
    volume.loc[later] *= rng.uniform(0.1, 3.0, volume.loc[later].shape)
    other = dataclasses.replace(liquid, prices=prices, dollar_volume=volume)
    a, b = filtered, run_backtest(other, _config())
    upto = a.filters["date"] <= date
    pd.testing.assert_frame_equal(a.filters[upto], b.filters[b.filters["date"] <= date])
    pd.testing.assert_frame_equal(a.weights[a.weights["date"] <= date].reset_index(drop=True),
                                  b.weights[b.weights["date"] <= date].reset_index(drop=True))
    assert not a.filters.equals(b.filters)  # and the later dates do read the later data


def test_filters_run_the_same_in_worker_processes(liquid):
    from xlfuncs.core import ProcessExecutor

    short = liquid.truncate(None, "1992-12-31")
    serial = run_backtest(short, _config(tev=(0.02, 0.04)))
    with ProcessExecutor(2) as executor:
        spread = run_backtest(short, _config(tev=(0.02, 0.04)), executor=executor)
    assert len(serial.filters) == 3 * (short.n_periods - 36)
    pd.testing.assert_frame_equal(serial.filters, spread.filters)
    pd.testing.assert_frame_equal(serial.returns, spread.returns)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("settings", "argument", "message"), [
    (dict(frequency="daily"), "frequency", "frequency must be monthly or weekly (got 'daily')"),
    (dict(min_price=-1.0), "min_price", "min_price must be a number of at least 0 (got -1.0)"),
    (dict(min_cap="lots"), "min_cap", "min_cap must be numbers (got 'lots')"),
    (dict(min_dollar_volume=float("nan")), "min_dollar_volume",
     "min_dollar_volume must be a number of at least 0 (got nan)"),
    (dict(volume_window=0), "volume_window", "volume_window must be a whole number of periods "
     "from 1 to 10000, or blank for a year (got 0)"),
])
def test_bad_settings_are_one_line_naming_the_setting(settings, argument, message):
    raises_exactly(message, argument, BacktestConfig.from_mapping, settings)


def test_a_filter_without_its_data_and_a_finer_frequency_are_errors():
    sample = load_market("sample:20")
    raises_exactly("min_price needs prices (a prc column); the data have none",
                   "min_price", run_backtest, sample, BacktestConfig(min_price=5.0))
    raises_exactly("frequency weekly: the data are monthly; load them with that frequency "
                   "(load_market compounds daily data) or leave frequency blank",
                   "frequency", run_backtest, sample, BacktestConfig(frequency="weekly"))
    raises_exactly("frequency weekly: sample is monthly data; data can only be compounded to a "
                   "lower frequency (leave frequency blank)", "frequency", load_market, "sample",
                   frequency="weekly")


@pytest.mark.parametrize(("flags", "message"), [
    (["--frequency", "daily"], "frequency must be monthly or weekly (got 'daily')"),
    (["--min-price", "-1"], "min_price must be a number of at least 0 (got -1.0)"),
    (["--min-dollar-volume", "1e6"], "min_dollar_volume needs volumes (prc and vol columns); "
     "the data have none"),
    (["--frequency", "weekly"], "frequency weekly: sample:20 is monthly data"),
])
def test_cli_bad_input_is_one_line(flags, message, capsys):
    assert main(["backtest", "--data", "sample:20", "--workers", "1", "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xlfuncs: error: {message}") and err.count("\n") == 1, err


def _sheet(tmp_path: Path, **cells) -> Path:
    return prepared(tmp_path, BtTev="0.03", **cells)


@pytest.mark.parametrize(("cells", "message"), [
    ({"BtFrequency": "daily"}, "Run failed: BtFrequency: frequency must be monthly or weekly"),
    ({"BtFrequency": "weekly"}, "Run failed: BtFrequency: frequency weekly: sample:30 is monthly"),
    ({"BtMinPrice": 5.0}, "Run failed: BtMinPrice: min_price needs prices (a prc column)"),
    ({"BtMinCap": -1.0}, "Run failed: BtMinCap: min_cap must be a number of at least 0"),
    ({"BtVolumeWindow": 2.5}, "Run failed: BtVolumeWindow: volume_window must be a whole number"),
])
def test_sheet_bad_input_names_the_cell(tmp_path, cells, message):
    run = macros.run_backtest(OpenpyxlBook(_sheet(tmp_path, **cells)))
    assert not run.ok and run.status.startswith(message), run.status


def test_sheet_filter_counts_in_the_data_used(tmp_path):
    path = _sheet(tmp_path, BtMinCap=500.0, BtFrequency="monthly")
    run = macros.run_backtest(OpenpyxlBook(path))
    assert run.ok, run.status
    ref = run_backtest(load_market("sample:30", end="1996-12-31"),
                       BacktestConfig(tev=(0.03,), end="1996-12-31", min_cap=500.0))
    pd.testing.assert_frame_equal(run.result.filters, ref.filters)
    wb = openpyxl.load_workbook(path)
    sheet, cell = wb.defined_names["BtSource"].attr_text.split("!")
    used = wb[sheet.strip("'")][cell.replace("$", "")].value
    assert next(n for n in ref.notes if n.startswith("liquidity filters")) in used


def test_the_readme_workflow_parses_and_the_help_shows_it():
    """The README's three commands on daily files are valid flags, and --help lists them."""
    import re
    import shlex

    from xlfuncs.cli import DAILY_WORKFLOW, build_parser

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("### Daily CRSP and Ken French files", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert len(commands) == 3
    help_text = " ".join(DAILY_WORKFLOW.replace("\\\n", " ").split())
    for argv in commands:
        assert argv[:2] == ["xlfuncs", "backtest"]
        args = build_parser().parse_args(argv[1:])
        assert " ".join(argv) in help_text
        if "--frequency" in argv:
            assert BacktestConfig.from_mapping({"frequency": args.frequency,
                                                "min_price": args.min_price}).min_price == 5.0


def test_weekly_periods_end_on_fridays_as_pandas_resamples_them(files):
    """frequency weekly: the daily files compounded to Saturday-to-Friday weeks, both of them."""
    data = load_market(str(files / "crsp_daily.csv"), factors=str(files / "ff_daily.csv"),
                       frequency="weekly")
    assert data.periods_per_year == 52 and (data.dates.day_of_week == 4).all()
    daily = pd.read_csv(files / "crsp_daily.csv", dtype={"date": str})
    one = daily[daily["permno"] == 10001 + GAP]
    r = pd.Series(one["ret"].astype(float).to_numpy(),
                  index=pd.to_datetime(one["date"], format="%Y%m%d"))
    weekly = (1 + r).resample("W-FRI").prod(min_count=1) - 1
    got = data.returns[str(10001 + GAP)]
    np.testing.assert_allclose(got.to_numpy(), weekly.reindex(got.index).to_numpy(), rtol=1e-13)
    rf = pd.Series(0.0001, index=pd.to_datetime(DAYS))
    np.testing.assert_allclose(data.rf.to_numpy(), ((1 + rf).resample("W-FRI").prod() - 1)
                               .reindex(data.dates).to_numpy(), rtol=1e-12)


def test_a_weekly_file_dated_by_each_weeks_last_trading_day_meets_daily_factors(files, tmp_path):
    """A holiday Friday dates its week on the Thursday: that week is kept, as the Friday's."""
    daily = pd.read_csv(files / "crsp_daily.csv", dtype={"date": str})
    daily = daily[daily["permno"] < 10001 + 4]
    day = pd.to_datetime(daily["date"], format="%Y%m%d")
    week = day + pd.offsets.Week(0, weekday=4)
    r = pd.to_numeric(daily["ret"], errors="coerce")
    g = daily.assign(week=week, r=r, day=day).groupby(["permno", "week"], sort=True)
    weekly = pd.DataFrame({"ret": g["r"].apply(lambda x: float(np.prod(1 + x) - 1)),
                           "prc": g["prc"].last(), "shrout": g["shrout"].last(),
                           "date": g["day"].max()}).reset_index()
    good_friday = pd.Timestamp("2011-04-22")
    weekly.loc[weekly["date"] == good_friday, "date"] = pd.Timestamp("2011-04-21")
    weekly["date"] = weekly["date"].dt.strftime("%Y-%m-%d")
    weekly[["date", "permno", "ret", "prc", "shrout"]].to_csv(tmp_path / "weekly.csv",
                                                              index=False)
    data = load_market(str(tmp_path / "weekly.csv"), factors=str(files / "ff_daily.csv"),
                       frequency="weekly")
    weeks = weekly.groupby("permno").size().iloc[0]
    assert data.periods_per_year == 52 and data.n_periods == weeks
    assert good_friday in data.dates and (data.dates.day_of_week == 4).all()
    assert not any("dropped" in note for note in data.notes), data.notes


@pytest.mark.parametrize("shift", [1, 2], ids=["saturday", "sunday"])
def test_a_weekly_file_dated_on_the_weekend_is_refused_in_one_line(files, tmp_path, shift):
    """A week stamped on the weekend that ends it would meet the next week's factors."""
    daily = pd.read_csv(files / "crsp_daily.csv", dtype={"date": str})
    daily = daily[daily["permno"] < 10001 + 3]
    day = pd.to_datetime(daily["date"], format="%Y%m%d")
    friday = day + pd.offsets.Week(0, weekday=4)
    weekly = (daily.assign(date=(friday + pd.Timedelta(days=shift)).dt.strftime("%Y-%m-%d"))
              .groupby(["permno", "date"], sort=True).last().reset_index())
    weekly[["date", "permno", "ret", "prc", "shrout"]].to_csv(tmp_path / "weekly.csv",
                                                              index=False)
    first = (friday.min() + pd.Timedelta(days=shift))
    raises_exactly(f"data: weekly dates must be the week's last trading day, Monday to "
                   f"Friday; {first:%Y-%m-%d} is a {first:%A}", "data", load_market,
                   str(tmp_path / "weekly.csv"), factors=str(files / "ff_daily.csv"),
                   frequency="weekly")


def test_weekly_factors_given_as_a_frame_dated_on_the_weekend_are_refused(files, tmp_path):
    """The same rule for factors passed as a DataFrame (no file reader sees them)."""
    daily = pd.read_csv(files / "crsp_daily.csv", dtype={"date": str})
    daily = daily[daily["permno"] < 10001 + 3]
    friday = pd.to_datetime(daily["date"], format="%Y%m%d") + pd.offsets.Week(0, weekday=4)
    weekly = (daily.assign(date=friday.dt.strftime("%Y-%m-%d"))
              .groupby(["permno", "date"], sort=True).last().reset_index())
    weekly[["date", "permno", "ret", "prc", "shrout"]].to_csv(tmp_path / "weekly.csv",
                                                              index=False)
    saturdays = pd.DatetimeIndex(sorted(friday.unique())) + pd.Timedelta(days=1)
    factors = pd.DataFrame({"Mkt-RF": 0.001, "SMB": 0.0, "HML": 0.0, "RF": 0.0005},
                           index=saturdays)
    raises_exactly(f"factors: weekly dates must be the week's last trading day, Monday to "
                   f"Friday; {saturdays[0]:%Y-%m-%d} is a Saturday", "factors", load_market,
                   str(tmp_path / "weekly.csv"), factors=factors, frequency="weekly")
    on_fridays = factors.set_axis(saturdays - pd.Timedelta(days=1))
    data = load_market(str(tmp_path / "weekly.csv"), factors=on_fridays, frequency="weekly")
    assert data.periods_per_year == 52 and (data.dates.day_of_week == 4).all()
