"""Market data for backtests (SPEC 4.3): Ken French files, CRSP-style panels, samples."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly
from hypothesis import given, settings
from hypothesis import strategies as st

from xlfuncs.core._market import MarketData, date_slice, infer_periods_per_year, period_ends
from xlfuncs.data.market import (
    CRSP_MISSING_RETURNS,
    SYNTHETIC_INDUSTRIES,
    french_factors,
    french_industries12,
    load_market,
    read_french,
    read_long,
    sic_division,
    synthetic_truth,
    synthetic_universe,
)
from xlfuncs.errors import InputError

FIX = Path(__file__).parent / "fixtures" / "market"
FF = FIX / "F-F_Research_Data_Factors_2023.CSV"
MOM = FIX / "F-F_Momentum_Factor_2023.CSV"
CRSP = FIX / "crsp_monthly_2023.csv"

MONTHS_2023 = pd.DatetimeIndex(pd.date_range("2023-01-31", periods=12, freq="ME"))


def _raises(match: str):
    return pytest.raises(InputError, match=match)


def _crsp_text() -> str:
    return CRSP.read_text()


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- Ken French files


def test_read_french_monthly_block_percent_to_fraction():
    f = read_french(FF)
    assert list(f.columns) == ["Mkt-RF", "SMB", "HML", "RF"]
    assert f.shape == (12, 4)  # the annual block and the footer are not read
    assert f.index.equals(MONTHS_2023)
    assert f.index.name == "date"
    # exact: percent text divided by 100 gives the float nearest to the decimal fraction
    assert f.loc["2023-01-31", "Mkt-RF"] == 0.0664
    assert f.loc["2023-03-31", "HML"] == -0.0885
    assert f.loc["2023-12-31", "RF"] == 0.0043
    assert f.loc["2023-04-30", "HML"] == -0.0004
    assert f.attrs["layout"] == "french"
    assert f.attrs["percent"] is True
    assert f.attrs["periods_per_year"] == 12
    assert not (f.abs() > 1).to_numpy().any()


def test_read_french_momentum_header_with_spaces_and_preamble_commas():
    m = read_french(MOM)
    assert list(m.columns) == ["Mom"]
    assert m.shape == (12, 1)
    assert m.iloc[0, 0] == -0.1586


def test_read_french_text_daily_and_percent_override():
    text = "Daily file\n\n,Mkt-RF,RF\n20230103,  -0.71, 0.017\n20230104,   0.67, 0.017\n" \
           "20230105,  -1.12, 0.017\n\nCopyright 2024 Kenneth R. French\n"
    d = read_french(text)
    assert list(d.index) == [pd.Timestamp("2023-01-03"), pd.Timestamp("2023-01-04"),
                             pd.Timestamp("2023-01-05")]
    assert d.attrs["periods_per_year"] == 252
    assert d.iloc[0, 0] == -0.0071
    assert d.iloc[0, 1] == 0.00017
    raw = read_french(text, percent=False)
    assert raw.iloc[0, 0] == -0.71


def test_read_french_plain_csv_is_fractions_and_month_ends():
    text = "date,Mkt-RF,RF\n2023-01-01,0.0664,0.0035\n2023-02-01,-0.0259,0.0034\n"
    p = read_french(text)
    assert p.attrs["layout"] == "plain"
    assert list(p.index) == list(MONTHS_2023[:2])  # first-of-month dates -> month ends
    assert p.iloc[0, 0] == 0.0664
    pct = read_french("date,Mkt-RF,RF\n202301,6.64,0.35\n202302,-2.59,0.34\n", percent=True)
    assert pct.iloc[0, 0] == 0.0664
    assert list(pct.index) == list(MONTHS_2023[:2])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("202302,   -2.59", "202302,  -99.99"),
         r"^factors line 6 \(202302\), column Mkt-RF: -99.99 is Ken French's missing-value code$"),
        (("202302,   -2.59", "202302,  -999"), r"line 6 \(202302\), column Mkt-RF: -999 is Ken"),
        (("202303,    2.51", "202303,    abc"),
         r'^factors line 7 \(202303\), column Mkt-RF: "abc" is not a number$'),
        (("202303,    2.51", "202303,        "), r"line 7 \(202303\), column Mkt-RF: is blank$"),
        (("202304,", "2023O4,"), r'^factors line 8: "2023O4" is not a date$'),
        (("202304,", "202313,"), r'^factors line 8: "202313" is not a date$'),
        (("202304,", "202302,"),
         r"^factors line 8: date 202302 comes before 202303 \(dates must be unique and"),
        (("202304,", "202303,"), r"line 8: date 202303 repeats 202303"),
        (("202305,    0.35,    1.61,   -7.72,    0.36", "202305,    0.35,    1.61"),
         r"line 9 \(202305\), column HML: is blank"),
        ((",Mkt-RF,SMB,HML,RF\r\n202301", ",Mkt-RF,SMB,SMB,RF\r\n202301"),
         r"header \(line 4\) has the column 'SMB' twice"),
    ],
)
def test_read_french_errors_name_line_and_column(edit, message):
    text = FF.read_bytes().decode()
    old, new = edit
    assert old in text
    with _raises(message):
        read_french(text.replace(old, new, 1))


def test_read_french_extra_cells_and_empty_inputs(tmp_path):
    with _raises(r"line 5 has 6 cells, the header has 5"):
        read_french(FF.read_text().replace("202301,    6.64", "202301,  1,  6.64", 1))
    with _raises(r"^factors file is empty$"):
        read_french(_write(tmp_path, "\n\n"))
    with _raises(r"header \(line 1\) but no data rows"):
        read_french("date,Mkt-RF,RF\n\n202301,1,2\n")
    with _raises(r"^factors file not found: "):
        read_french(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- bundled data


def test_bundled_factors_shape_range_units():
    f = french_factors()
    assert list(f.columns) == ["Mkt-RF", "SMB", "HML", "Mom", "RF"]
    assert f.shape == (819, 5)
    assert f.index[0] == pd.Timestamp("1949-01-31")
    assert f.index[-1] == pd.Timestamp("2017-03-31")
    assert f.index.equals(pd.date_range("1949-01-31", "2017-03-31", freq="ME"))
    assert f.loc["1949-01-31", "Mkt-RF"] == 0.0023
    assert f.loc["2017-03-31", "HML"] == -0.0332
    # fractions, not percent: monthly market excess returns stay within +-30%
    assert f["Mkt-RF"].abs().max() < 0.3
    assert 0.004 < f["Mkt-RF"].mean() < 0.009
    assert (f["RF"] >= 0).all() and f["RF"].max() < 0.02
    # 4 decimals are exact (the source is percent with 2 decimals)
    assert np.allclose(f.to_numpy() * 1e4, np.round(f.to_numpy() * 1e4), atol=1e-9)
    assert french_factors() is not french_factors()  # callers get copies


def test_bundled_industries_shape_and_consistency_with_market():
    i = french_industries12()
    assert list(i.columns) == ["NoDur", "Durbl", "Manuf", "Enrgy", "Chems", "BusEq", "Telcm",
                               "Utils", "Shops", "Hlth", "Money", "Other"]
    assert i.shape == (819, 12)
    assert i.index.equals(french_factors().index)
    market = french_factors()["Mkt-RF"] + french_factors()["RF"]
    # an equal mix of the industries tracks the market closely
    assert np.corrcoef(i.mean(axis=1), market)[0, 1] > 0.95


def test_samples_readme_documents_bundled_files():
    from xlfuncs.data.samples import sample_path

    readme = sample_path("README.md").read_text()
    for needle in ("ff_factors_monthly.csv", "ff_industries12_monthly.csv", "NCSA",
                   "Ken French", "linearmodels", "fractions"):
        assert needle in readme


# --------------------------------------------------------------------------- SIC divisions


@pytest.mark.parametrize(
    ("code", "division"),
    [
        (100, "Agriculture"), (999, "Agriculture"), (1000, "Mining"), (1499, "Mining"),
        (1500, "Construction"), (1799, "Construction"), (1800, "Nonclassifiable"),
        (2000, "Manufacturing"), (3999, "Manufacturing"),
        (4000, "Transportation & utilities"), (4999, "Transportation & utilities"),
        (5000, "Wholesale"), (5199, "Wholesale"), (5200, "Retail"), (5999, "Retail"),
        (6000, "Finance"), (6799, "Finance"), (6800, "Nonclassifiable"),
        (7000, "Services"), (8999, "Services"), (9000, "Nonclassifiable"),
        (9100, "Public administration"), (9729, "Public administration"),
        (9730, "Nonclassifiable"), (9900, "Nonclassifiable"), (9999, "Nonclassifiable"),
        (0, "Nonclassifiable"), (99, "Nonclassifiable"), (float("nan"), "Nonclassifiable"),
    ],
)
def test_sic_divisions(code, division):
    assert sic_division(code)[0] == division


# --------------------------------------------------------------------------- long panels


def test_read_long_crsp_fixture():
    p = read_long(CRSP)
    assert p.periods_per_year == 12
    assert p.returns.index.equals(MONTHS_2023[:6])  # 2023-04-28 -> 2023-04-30
    assert list(p.returns.columns) == ["10001", "10002", "10003", "10004", "10005"]
    r, c = p.returns, p.caps
    assert r.loc["2023-01-31", "10001"] == 0.05
    assert r.loc["2023-06-30", "10004"] == 0.050033
    # first month of 10002 is code C, not listed before
    assert np.isnan(r.loc["2023-02-28", "10002"])
    assert np.isnan(r.loc["2023-01-31", "10002"]) and np.isnan(c.loc["2023-01-31", "10002"])
    assert c.loc["2023-02-28", "10002"] == 10.0 * 5000
    # |prc| x shrout with a negative (bid-ask average) price
    assert c.loc["2023-02-28", "10001"] == 24.5 * 1000
    assert c.loc["2023-04-30", "10001"] == 26.5 * 1010
    # 10004: code B with a blank price -> return and cap missing
    assert np.isnan(r.loc["2023-04-30", "10004"]) and np.isnan(c.loc["2023-04-30", "10004"])
    # 10003 delisted after April: NaN afterwards, not a gap
    assert r["10003"].notna().tolist() == [True, True, True, True, False, False]
    assert p.industries.to_dict() == {
        "10001": "Transportation & utilities", "10002": "Manufacturing", "10003": "Finance",
        "10004": "Services", "10005": "Nonclassifiable"}
    notes = " | ".join(p.notes)
    assert "2 missing return(s) read as not available (B: 1, C: 1)" in notes
    assert "1 negative price(s) (CRSP bid-ask averages): |prc| used" in notes
    assert "1 market cap(s) not available" in notes


def test_read_long_other_layouts(tmp_path):
    text = ("date,ticker,ret,mktcap,sector\n"
            "20230131,AAA,0.01,100,Tech\n20230228,AAA,0.02,102,Tech\n"
            "20230131,BBB,-0.01,50,Energy\n20230228,BBB,NA,,Energy\n")
    p = read_long(_write(tmp_path, text))
    assert list(p.returns.columns) == ["AAA", "BBB"]
    assert p.returns.index.equals(MONTHS_2023[:2])
    assert p.caps.loc["2023-01-31", "BBB"] == 50
    assert np.isnan(p.caps.loc["2023-02-28", "BBB"])
    assert p.industries.to_dict() == {"AAA": "Tech", "BBB": "Energy"}
    frame = pd.read_csv(CRSP)
    q = read_long(frame, id_col="TICKER", industry_col="SICCD")
    assert list(q.returns.columns) == ["AAA", "BBB", "CCC", "DDD", "EEE"]
    assert q.industries["BBB"] == "Manufacturing"
    typed = frame.assign(date=pd.to_datetime(frame["date"]))  # as from Parquet
    assert typed["PERMNO"].dtype.kind == "i"
    pd.testing.assert_frame_equal(read_long(typed).returns, read_long(CRSP).returns)
    bom = _write(tmp_path, "\ufeff" + CRSP.read_text(), "bom.csv")  # as Excel saves it
    assert list(read_long(bom).returns.columns) == ["10001", "10002", "10003", "10004", "10005"]
    bare = read_long(frame[["PERMNO", "date", "RET"]])
    assert bare.caps is None
    assert set(bare.industries) == {"Nonclassifiable"}
    assert any("no market caps" in n for n in bare.notes)


def test_read_long_most_recent_label_and_window(tmp_path):
    text = ("date,permno,ret,mktcap,siccd\n"
            "2023-01-31,1,0.01,10,2000\n2023-02-28,1,0.01,10,2000\n2023-03-31,1,0.01,10,6000\n"
            "2023-04-28,1,abc,10,6000\n")
    with _raises(r'^data row 5, column ret: "abc" is not a number$'):
        read_long(_write(tmp_path, text))
    # rows after `end` are neither read nor checked: the bad April row is outside
    p = read_long(_write(tmp_path, text), end="2023-03")
    assert p.returns.index[-1] == pd.Timestamp("2023-03-31")
    assert p.industries["1"] == "Finance"
    assert any("changed siccd" in n for n in p.notes)
    q = read_long(_write(tmp_path, text), end="2023-02-28")
    assert q.industries["1"] == "Manufacturing"  # never learns the later label


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("PERMNO,date,TICKER,SICCD,PRC,SHROUT,RET", "PERMNO,day,TICKER,SICCD,PRC,SHROUT,RETURN"),
         r"^data is missing the column\(s\) date, ret; needs date, permno or ticker, ret .*"
         r"found: PERMNO, day, TICKER, SICCD, PRC, SHROUT, RETURN$"),
        (("10003,2023-03-31,CCC,6021,30.40,2000,-0.200000",
          "10003,2023-03-31,CCC,6021,30.40,2000,-0.200000\n10003,2023-03-30,CCC,6021,30,2000,0"),
         r"^data has 2 rows for PERMNO 10003 in 2023-03 \(rows 15, 16\)$"),
        (("10002,2023-04-28,BBB,3571,9.90,5000,-0.100000\n", ""),
         r"^data has no row for PERMNO 10002 in 2023-04, inside its listed life \(2023-02 to "
         r"2023-06\); xlfuncs backtest --allow-gaps reads it as missing$"),
        (("10001,2023-03-31,AAA,4925,26.00,1000,0.061224", "10001,2023-03-31,AAA,4925,26,1000,x"),
         r'^data row 4, column RET: "x" is not a number$'),
        (("10001,2023-03-31,AAA,4925,26.00,1000,0.061224", "10001,2023-03-31,AAA,4925,26,1000,-1"),
         r"^data row 4, column RET: -1 is a loss of 100% or more; returns must be fractions > -1$"),
        (("10001,2023-03-31,AAA,4925,26.00,1000", "10001,2023-03-31,AAA,4925,26.0O,1000"),
         r'^data row 4, column PRC: "26.0O" is not a number$'),
        (("10001,2023-03-31,AAA,4925,26.00,1000", "10001,2023-03-31,AAA,4925,26.00,-5"),
         r"^data row 4, column SHROUT: shares outstanding -5 is negative$"),
        (("10001,2023-03-31,AAA,4925", "10001,2023-03-31,AAA,49x5"),
         r'^data row 4, column SICCD: "49x5" is not a number$'),
        (("10001,2023-03-31,", "10001,2023-13-31,"),
         r'^data row 4, column date: "2023-13-31" is not a date$'),
        (("10001,2023-03-31,", "10001,,"), r"^data row 4, column date: is blank$"),
        (("10001,2023-03-31,", ",2023-03-31,"), r"^data row 4, column PERMNO: the id is blank$"),
        ((",SHROUT,RET", ",SHARES,RET"),
         r"^data has prc but no shrout: market cap needs both \(\|prc\| x shrout\) or a mktcap"),
    ],
)
def test_read_long_errors(tmp_path, edit, message):
    text = _crsp_text()
    old, new = edit
    assert old in text
    with _raises(message):
        read_long(_write(tmp_path, text.replace(old, new, 1)))


def test_read_long_gaps_allowed_become_nan(tmp_path):
    text = _crsp_text().replace("10002,2023-04-28,BBB,3571,9.90,5000,-0.100000\n", "")
    p = read_long(_write(tmp_path, text), allow_gaps=True)
    assert np.isnan(p.returns.loc["2023-04-30", "10002"])
    assert p.returns.loc["2023-05-31", "10002"] == 0.1
    assert any("1 missing row(s) inside listed lives" in n for n in p.notes)


def test_read_long_month_without_rows_is_a_gap(tmp_path):
    text = "\n".join(line for line in _crsp_text().splitlines() if ",2023-03-31," not in line)
    with _raises(r"^data has no rows between 2023-02 and 2023-04 \(a gap in the dates; "):
        read_long(_write(tmp_path, text))
    p = read_long(_write(tmp_path, text), allow_gaps=True)
    assert p.returns.index.equals(MONTHS_2023[:6])
    assert p.returns.loc["2023-03-31"].isna().all()


def test_read_long_label_blank_for_an_asset_is_an_error(tmp_path):
    text = ("date,ticker,ret,sector\n2023-01-31,AAA,0.01,Tech\n2023-02-28,AAA,0.01,Tech\n"
            "2023-01-31,BBB,0.01,\n2023-02-28,BBB,0.02,\n")
    with _raises(r"^data column sector is blank in every row of ticker BBB$"):
        read_long(_write(tmp_path, text))


def test_read_long_sources(tmp_path, monkeypatch):
    with _raises(r"^data file not found: "):
        read_long(tmp_path / "missing.csv")
    parquet = tmp_path / "data.parquet"
    parquet.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    with _raises(r"^data: reading Parquet needs pyarrow \(pip install pyarrow\), or save the "
                 r"data as CSV$"):
        read_long(parquet)


def test_read_long_numeric_and_dot_missing_codes(tmp_path):
    text = ("date,permno,ret\n2023-01-31,1,0.01\n2023-02-28,1,-99\n2023-03-31,1,.\n"
            "2023-04-28,1,-66.0\n2023-05-31,1,\n2023-06-30,1,0.02\n")
    p = read_long(_write(tmp_path, text))
    assert p.returns["1"].notna().tolist() == [True, False, False, False, False, True]
    assert "4 missing return(s) read as not available (blank: 1, -66: 1, -99: 1, .: 1)" in p.notes
    numeric = pd.DataFrame({"date": MONTHS_2023[:3], "permno": [7, 7, 7],
                            "ret": [0.01, -99.0, 0.02]})
    q = read_long(numeric)
    assert list(q.returns.columns) == ["7"]
    assert np.isnan(q.returns.iloc[1, 0])
    assert "1 missing return(s) read as not available (-99: 1)" in q.notes


def test_read_long_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(CRSP)
    frame["date"] = pd.to_datetime(frame["date"])
    path = tmp_path / "crsp.parquet"
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(read_long(path).returns, read_long(CRSP).returns)


def test_crsp_missing_codes_documented():
    assert set("ABCDE.") <= set(CRSP_MISSING_RETURNS)
    assert {"-44", "-55", "-66", "-77", "-88", "-99"} <= set(CRSP_MISSING_RETURNS)


# --------------------------------------------------------------------------- load_market


def test_load_market_user_data_with_french_files():
    m = load_market(str(CRSP), factors=[FF, MOM])
    assert isinstance(m, MarketData)
    assert m.dates.equals(MONTHS_2023[:6])
    assert list(m.factors.columns) == ["Mkt-RF", "SMB", "HML", "Mom"]
    assert m.factors.loc["2023-01-31", "Mom"] == -0.1586
    assert m.rf.loc["2023-06-30"] == 0.004
    assert np.allclose(m.benchmark, m.factors["Mkt-RF"] + m.rf)
    assert m.caps is not None and m.n_assets == 5
    assert m.periods_per_year == 12
    assert any("6 factor period(s) outside the common dates dropped (2023-07 .. 2023-12)" in n
               for n in m.notes)
    assert "crsp_monthly_2023.csv" in m.source


def test_load_market_end_cuts_every_input():
    m = load_market(CRSP, factors=[FF, MOM], start="2023-02", end="2023-04")
    assert m.dates.equals(MONTHS_2023[1:4])
    assert m.factors.index.equals(m.dates) and m.rf.index.equals(m.dates)
    assert m.benchmark.index[-1] == pd.Timestamp("2023-04-30")


def test_load_market_errors(tmp_path):
    with _raises(r"^the data \(2023-01-31 to 2023-06-30\) and the factors \(1949-01 to 2017-03\)"
                 r" have no dates in common; pass factors= a Ken French file covering the data$"):
        load_market(CRSP)
    quarterly = "x\n\n,Mkt-RF,RF\n202303,1,0\n202306,1,0\n202309,1,0\n"
    with _raises(r"^factors are quarterly but the data are monthly: use factors of the data's "
                 r"frequency or a higher one \(daily factors are compounded\)$"):
        load_market(CRSP, factors=_write(tmp_path, quarterly, "quarterly.csv"))
    with _raises(r"^factors have no RF column \(the risk-free rate\); found: Mom$"):
        load_market(CRSP, factors=MOM)
    with _raises(r'^source must be "sample", "sample:N", "french12" or a path'):
        load_market(tmp_path / "missing.csv")
    for bad in ("sample:abc", "sample:0", "sample:100000"):
        with _raises(r"^sample size must be a whole number from 1 to 10000"):
            load_market(bad)


def test_load_market_factor_gap_is_an_error(tmp_path):
    plain = "date,Mkt-RF,RF\n" + "".join(
        f"{d:%Y-%m-%d},0.01,0.001\n" for d in MONTHS_2023 if d.month != 3)
    with _raises(r"^the data and the factors share no dates between 2023-02 and 2023-04; each "
                 r"period needs its factor returns$"):
        load_market(CRSP, factors=_write(tmp_path, plain, "f.csv"))


def test_load_market_french12():
    m = load_market("french12")
    assert m.returns.shape == (819, 12)
    assert m.caps is None
    assert m.industries.to_dict() == {c: c for c in m.returns.columns}
    assert np.allclose(m.benchmark, m.factors["Mkt-RF"] + m.rf)
    assert m.benchmark.loc["1949-01-31"] == pytest.approx(0.0033)
    cut = load_market("french12", start="2000", end="2009")
    assert cut.dates[0] == pd.Timestamp("2000-01-31")
    assert cut.dates[-1] == pd.Timestamp("2009-12-31")


def test_load_market_sample_sizes():
    m = load_market("sample:50")
    assert m.returns.shape == (360, 50)
    assert load_market("sample").n_assets == 500
    assert m.dates[0] == pd.Timestamp("1987-04-30") and m.dates[-1] == pd.Timestamp("2017-03-31")


# --------------------------------------------------------------------------- MarketData


def _small(**over) -> dict:
    idx = pd.DatetimeIndex(MONTHS_2023[:4])
    kw = dict(
        returns=pd.DataFrame({"A": [0.01, 0.02, np.nan, 0.0], "B": [np.nan, 0.01, -0.02, 0.03]},
                             index=idx),
        caps=pd.DataFrame({"A": [10.0, 10.2, np.nan, 10.4], "B": [5.0, 5.0, 4.9, 5.1]},
                          index=idx),
        industries=pd.Series({"B": "Energy", "A": "Tech"}),
        factors=pd.DataFrame({"Mkt-RF": [0.01, -0.02, 0.03, 0.0]}, index=idx),
        rf=pd.Series([0.001] * 4, index=idx),
        periods_per_year=12,
    )
    kw.update(over)
    return kw


def test_market_data_valid_and_properties():
    m = MarketData(**_small())
    assert (m.n_assets, m.n_periods) == (2, 4)
    assert m.dates.equals(MONTHS_2023[:4])
    assert list(m.industries.index) == ["A", "B"]  # reordered to the columns
    with pytest.raises(AttributeError):
        m.periods_per_year = 52  # frozen


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda k: k["returns"].iloc[::-1], r"^returns dates are not sorted"),
        (lambda k: k["returns"].set_axis(MONTHS_2023[[0, 1, 1, 2]]),
         r"^returns have the date 2023-02-28 twice$"),
        (lambda k: k["returns"].assign(A=[0.01, -1.0, 0.0, 0.0]),
         r"^returns of A on 2023-02-28 is -1; returns must be finite and > -1$"),
        (lambda k: k["returns"].assign(A=[0.01, np.inf, 0.0, 0.0]), r"^returns of A on"),
        (lambda k: k["returns"].reset_index(drop=True), r"^returns must be indexed by dates"),
        (lambda k: k["returns"].assign(A=["x", "y", "z", "w"]),
         r"^returns column 'A' must hold numbers"),
    ],
)
def test_market_data_rejects_bad_returns(change, message):
    kw = _small()
    kw["returns"] = change(kw)
    with _raises(message):
        MarketData(**kw)


def test_market_data_rejects_each_bad_input():
    idx = MONTHS_2023[:4]
    cases = [
        (dict(caps=_small()["caps"].assign(B=[5.0, -1.0, 4.9, 5.1])),
         r"^caps of B on 2023-02-28 is -1; caps must be finite and >= 0$"),
        (dict(caps=_small()["caps"].iloc[:3]), r"^caps has 3 dates, returns have 4"),
        (dict(caps=_small()["caps"][["B", "A"]]), r"^caps columns must be the returns columns"),
        (dict(industries=pd.Series({"A": "Tech"})),
         r"^industries has no label for 1 asset\(s\), first B$"),
        (dict(industries=pd.Series({"A": "Tech", "B": " "})),
         r"^industries label of B is blank or not text$"),
        (dict(factors=pd.DataFrame({"Mkt-RF": [0.01, np.nan, 0.0, 0.0]}, index=idx)),
         r"^factors Mkt-RF on 2023-02-28 is blank or not finite$"),
        (dict(factors=pd.DataFrame({"Mkt-RF": [0.0] * 4}, index=MONTHS_2023[1:5])),
         r"^factors dates differ from the returns dates \(first at 2023-01-31\)"),
        (dict(factors=pd.DataFrame(index=idx, dtype=float)), r"^factors have no columns$"),
        (dict(rf=pd.Series([0.001, 0.001, np.nan, 0.001], index=idx)),
         r"^rf on 2023-03-31 is blank or not finite$"),
        (dict(caps=None), r"^benchmark is required when there are no market caps$"),
        (dict(benchmark=pd.Series([0.0, -1.5, 0.0, 0.0], index=idx)),
         r"^benchmark on 2023-02-28 is blank, not finite or <= -1$"),
        (dict(periods_per_year=0), r"^periods_per_year must be a positive whole number"),
        (dict(periods_per_year=12.0), r"^periods_per_year must be a positive whole number"),
    ]
    for over, message in cases:
        with _raises(message):
            MarketData(**_small(**over))
    ok = MarketData(**_small(caps=None, benchmark=pd.Series([0.0] * 4, index=idx)))
    assert ok.caps is None


def test_truncate_and_window_bounds():
    m = MarketData(**_small())
    w = m.window("2023-02")
    assert w.dates.equals(MONTHS_2023[:2])
    assert w.factors.index.equals(w.dates) and w.rf.index.equals(w.dates)
    assert w.caps.index.equals(w.dates)
    t = m.truncate("2023-03-31", None)
    assert list(t.returns.columns) == ["A", "B"]
    assert t.dates.equals(MONTHS_2023[2:4])
    ints = MarketData(**_small(caps=_small()["caps"].fillna(0).astype(int)))
    assert ints.caps.loc["2023-01-31", "A"] == 10
    only_b = MarketData(**_small()).truncate("2023-03-31", "2023-03-31")
    assert list(only_b.returns.columns) == ["B"]  # A has no return nor cap in March
    assert list(only_b.industries.index) == ["B"]
    assert any("1 asset(s) not listed" in n for n in only_b.notes)
    with _raises(r"^no periods between start=None and end=2022-12-31"):
        m.window("2022-12-31")
    with _raises(r"^start \(2023-03\) is after end \(2023-02\)$"):
        m.truncate("2023-03", "2023-02")
    with _raises(r'^end is not a date: "soon"$'):
        m.window("soon")


@pytest.fixture(scope="module")
def universe() -> MarketData:
    return synthetic_universe(300, seed=11)


@settings(max_examples=50, deadline=None)
@given(k=st.integers(min_value=0, max_value=359))
def test_window_never_leaks_after_end(universe, k):
    end = universe.dates[k]
    w = universe.window(end)
    assert w.dates[-1] == end and w.dates.max() <= end
    for frame in (w.returns, w.caps, w.factors):
        assert frame.index.max() <= end
    assert w.rf.index.max() <= end and w.benchmark.index.max() <= end
    # no asset that lists after `end` is visible, and what is visible is unchanged
    full = universe.returns.loc[:end]
    listed = full.notna().any() | universe.caps.loc[:end].notna().any()
    assert list(w.returns.columns) == list(full.columns[listed.to_numpy()])
    assert np.array_equal(w.returns.to_numpy(), full.loc[:, listed.to_numpy()].to_numpy(),
                          equal_nan=True)
    assert list(w.industries.index) == list(w.returns.columns)


def test_window_by_string_keeps_the_whole_month(universe):
    w = universe.window("2000-06")
    assert w.dates[-1] == pd.Timestamp("2000-06-30")
    w2 = universe.window("2000-06-15")
    assert w2.dates[-1] == pd.Timestamp("2000-05-31")


def test_load_sample_with_end_equals_window():
    full = load_market("sample:120")
    cut = load_market("sample:120", end="2001-12")
    pd.testing.assert_frame_equal(cut.returns, full.window("2001-12").returns)
    assert cut.dates[-1] == pd.Timestamp("2001-12-31")


# --------------------------------------------------------------------------- synthetic universe


def test_synthetic_is_deterministic_and_shaped():
    a = synthetic_universe(200, seed=3)
    b = synthetic_universe(200, seed=3)
    c = synthetic_universe(200, seed=4)
    pd.testing.assert_frame_equal(a.returns, b.returns)
    pd.testing.assert_frame_equal(a.caps, b.caps)
    pd.testing.assert_series_equal(a.industries, b.industries)
    assert not a.returns.equals(c.returns)
    assert a.returns.shape == (360, 200)
    assert a.periods_per_year == 12
    assert a.factors.index.equals(a.dates)
    assert list(a.factors.columns) == ["Mkt-RF", "SMB", "HML", "Mom"]
    assert a.returns.columns[0] == "S0001"


def test_synthetic_structure(universe):
    m = universe
    r, c = m.returns.to_numpy(), m.caps.to_numpy()
    assert np.array_equal(np.isnan(r), np.isnan(c))  # listed iff both present
    assert (c[~np.isnan(c)] > 0).all()
    assert (r[~np.isnan(r)] > -1).all()
    # staggered listing: some list late, some delist early, each life is one block
    listed = ~np.isnan(r)
    assert (~listed[0]).sum() > 30 and (~listed[-1]).sum() > 30
    starts = listed.argmax(axis=0)
    ends = len(listed) - 1 - listed[::-1].argmax(axis=0)
    assert (listed.sum(axis=0) == ends - starts + 1).all()
    counts = m.industries.value_counts()
    assert len(counts) == len(SYNTHETIC_INDUSTRIES)
    assert counts.max() >= 4 * counts.min()  # uneven sizes
    assert np.allclose(m.benchmark, m.factors["Mkt-RF"] + m.rf)
    cap_ret = c[1:] / c[:-1] - 1  # caps grow with the price return (less 2% a year)
    both = ~np.isnan(cap_ret) & ~np.isnan(r[1:])
    assert np.allclose(cap_ret[both], np.maximum(r[1:][both] - 0.02 / 12, -0.95))


def test_synthetic_regression_recovers_loadings():
    m = synthetic_universe(400, seed=5)
    truth = synthetic_truth(400, seed=5)
    names = list(m.factors.columns)
    X = np.column_stack([np.ones(m.n_periods), m.factors.to_numpy()])
    excess = m.returns.sub(m.rf, axis=0)
    z_scores, est = [], {}
    for asset in m.returns.columns:
        y = excess[asset].to_numpy()
        ok = ~np.isnan(y)
        if ok.sum() < 60:
            continue
        Xa, ya = X[ok], y[ok]
        coef, *_ = np.linalg.lstsq(Xa, ya, rcond=None)
        resid = ya - Xa @ coef
        s2 = resid @ resid / (len(ya) - Xa.shape[1])
        se = np.sqrt(np.diag(s2 * np.linalg.inv(Xa.T @ Xa)))
        true = np.r_[0.0, truth.loc[asset, names].to_numpy(dtype=float)]
        z_scores.append((coef - true) / se)
        est[asset] = coef[1]
        # residual vol recovers the idiosyncratic vol (clipping is rare)
        assert np.sqrt(s2) == pytest.approx(truth.loc[asset, "idio_vol"], rel=0.25)
    z = np.array(z_scores)
    assert len(z) > 250
    # errors are as OLS says: about 5% beyond 1.96 SE, almost none beyond 4 SE
    assert 0.02 < (np.abs(z) > 1.96).mean() < 0.09
    assert (np.abs(z) > 4).mean() < 0.002
    assert np.abs(z.mean(axis=0)).max() < 0.2  # no bias, zero alpha
    # across stocks the estimated market betas line up with the true ones: slope 1 (the
    # estimation error, SE ~0.2 per stock, only adds noise), correlation ~0.84 expected
    b_hat = pd.Series(est)
    b_true = truth.loc[b_hat.index, "Mkt-RF"].to_numpy(dtype=float)
    slope = np.polyfit(b_true, b_hat.to_numpy(), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.15)
    assert np.corrcoef(b_hat, b_true)[0, 1] > 0.7


def test_synthetic_3000_shape_and_listing():
    m = synthetic_universe(3000)
    assert m.returns.shape == (360, 3000)
    listed = m.returns.notna()
    assert listed.any().all()  # every stock trades at some point
    assert (listed.sum(axis=1) > 1000).all()  # and a broad universe every month
    assert m.caps is not None and (m.caps.notna() == listed).all().all()


def test_synthetic_full_history_and_errors():
    m = synthetic_universe(20, n_periods=None)
    assert m.n_periods == 819
    with _raises(r"^n must be a whole number from 1 to 10000"):
        synthetic_universe(0)
    with _raises(r"^n_periods must be at least 48"):
        synthetic_universe(10, n_periods=12)


# --------------------------------------------------------------------------- calendar helpers


def test_infer_periods_per_year_and_period_ends():
    assert infer_periods_per_year(pd.date_range("2020-01-01", periods=10, freq="B")) == 252
    assert infer_periods_per_year(pd.date_range("2020-01-03", periods=10, freq="W-FRI")) == 52
    assert infer_periods_per_year(pd.date_range("2020-01-31", periods=10, freq="ME")) == 12
    assert infer_periods_per_year(pd.date_range("2020-03-31", periods=5, freq="QE")) == 4
    assert infer_periods_per_year(pd.date_range("2020-12-31", periods=5, freq="YE")) == 1
    with _raises(r"^dates needs at least 2 dates"):
        infer_periods_per_year(pd.DatetimeIndex(["2020-01-31"]))
    with _raises(r"^dates are 182 days apart \(median\)"):
        infer_periods_per_year(pd.DatetimeIndex(["2020-01-01", "2020-07-01", "2020-12-30"]))
    crsp = pd.DatetimeIndex(["2023-03-30", "2023-04-28"])
    assert list(period_ends(crsp, 12)) == [pd.Timestamp("2023-03-31"), pd.Timestamp("2023-04-30")]
    assert list(period_ends(crsp, 252)) == list(crsp)


def test_an_excel_workbook_is_named_not_read_as_csv(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["date", "permno", "ret", "mktcap"])
    book.active.append(["2023-01-31", 1, 0.01, 100.0])
    path = tmp_path / "long.xlsx"
    book.save(path)
    renamed = tmp_path / "long.csv"  # the content counts, not the name
    renamed.write_bytes(path.read_bytes())
    for source in (path, renamed):
        with _raises(rf"^data: {source.name} is an Excel workbook; export the sheet as CSV$"):
            read_long(source)
        with _raises(rf"^factors: {source.name} is an Excel workbook; export the sheet as CSV$"):
            read_french(source, name="factors")
        with _raises(rf"{source.name} is an Excel workbook; export the sheet as CSV$"):
            load_market(source)


def test_crsp_delisting_returns_are_compounded_and_noted(tmp_path):
    """DLRET: the delisting month's return, (1 + ret)(1 + dlret) - 1, or dlret alone."""
    path = tmp_path / "dlret.csv"
    path.write_text(
        "PERMNO,date,SICCD,PRC,SHROUT,RET,DLRET\n"
        "10001,2010-01-29,3571,10,1000,0.05,\n"
        "10001,2010-02-26,3571,11,1000,0.10,\n"
        "10001,2010-03-31,3571,1,1000,-0.30,-0.90\n"
        "10002,2010-01-29,6021,20,500,0.01,\n"
        "10002,2010-02-26,6021,21,500,C,-0.5\n")
    panels = read_long(path)
    assert panels.returns.loc["2010-03-31", "10001"] == pytest.approx(0.7 * 0.1 - 1)
    assert panels.returns.loc["2010-02-28", "10002"] == -0.5
    assert panels.notes[0] == "2 delisting return(s) (DLRET) compounded into RET (1 where RET " \
                              "was missing)"


def test_a_plain_factor_file_in_percent_is_refused(tmp_path):
    path = tmp_path / "ff.csv"
    path.write_text("Date,Mkt-RF,SMB,HML,RF\n200912,2.75,5.90,0.09,0.01\n"
                    "201001,-3.36,0.40,0.43,0.00\n")
    with pytest.raises(InputError, match=r"factors ff\.csv line 2 \(200912\), column Mkt-RF: "
                                         r"2\.75 would be a return of 275%"):
        read_french(path)
    assert read_french(path, percent=True)["Mkt-RF"].iloc[0] == 0.0275


def test_a_label_that_appears_later_is_not_used_before(tmp_path):
    """SIC 0 (none) in January and February, 4911 from March: unclassified until March."""
    path = tmp_path / "sic.csv"
    path.write_text(
        "PERMNO,date,SICCD,PRC,SHROUT,RET\n"
        "10001,2010-01-29,0,10,1000,0.05\n10001,2010-02-26,0,11,1000,0.10\n"
        "10001,2010-03-31,4911,11,1000,0.01\n10002,2010-01-29,6021,20,500,0.01\n"
        "10002,2010-02-26,6021,21,500,0.05\n10002,2010-03-31,6021,22,500,0.0476\n")
    panels = read_long(path)
    assert list(panels.industry_history["10001"]) == ["Nonclassifiable", "Nonclassifiable",
                                                      "Transportation & utilities"]
    assert set(panels.industry_history["10002"]) == {"Finance"}
    assert panels.industries["10001"] == "Transportation & utilities"  # the latest, for reports


def test_factor_files_of_different_frequencies_are_refused(tmp_path):
    """A daily file joined to a monthly one kept month-end days as if they were months."""
    pd.DataFrame({"Date": ["201003", "201004", "201005", "201006"],
                  "Mkt-RF": [0.01, 0.02, -0.01, 0.0], "RF": [0.0] * 4}).to_csv(
        tmp_path / "m.csv", index=False)
    days = pd.bdate_range("2010-03-01", "2010-06-30")
    pd.DataFrame({"Date": days.strftime("%Y%m%d"), "Mom": 0.0001}).to_csv(
        tmp_path / "d.csv", index=False)
    with pytest.raises(InputError, match=r"factors files have different frequencies: m\.csv has "
                                         r"12 periods a year, d\.csv 252"):
        load_market("sample:5", factors=[tmp_path / "m.csv", tmp_path / "d.csv"])


def test_every_other_market_data_error_by_its_text():
    idx = MONTHS_2023[:4]
    r = _small()["returns"]
    nat = pd.DatetimeIndex([idx[0], pd.NaT, idx[2], idx[3]])
    cases = [
        (dict(returns=np.zeros((4, 2))), "returns",
         "returns must be a pandas DataFrame (got ndarray)"),
        (dict(returns=r.set_axis(["A", 1], axis=1)), "returns",
         "returns column names must be text (got 1)"),
        (dict(returns=r.set_axis(["A", "A"], axis=1)), "returns",
         "returns has the column 'A' twice"),
        (dict(returns=r.iloc[:0]), "returns", "returns have no periods"),
        (dict(returns=r.iloc[:, :0]), "returns", "returns have no assets"),
        (dict(returns=r.set_axis(nat)), "returns", "returns have a blank date"),
        (dict(caps=_small()["caps"].set_axis(MONTHS_2023[1:5])), "caps",
         "caps dates differ from the returns dates (first at 2023-01-31); they must share one "
         "index"),
        (dict(caps=_small()["caps"].assign(B=[5.0, np.inf, 4.9, 5.1])), "caps",
         "caps of B on 2023-02-28 is inf; caps must be finite and >= 0"),
        (dict(rf=[0.001] * 4), "rf", "rf must be a pandas Series (got list)"),
        (dict(rf=pd.Series([True] * 4, index=idx)), "rf", "rf must hold numbers (dtype bool)"),
        (dict(industries={"A": "Tech", "B": "Energy"}), "industries",
         "industries must be a pandas Series (got dict)"),
        (dict(industries=pd.Series(["Tech", "Energy", "X"], index=["A", "B", "A"])),
         "industries", "industries lists A twice"),
        (dict(industry_history=pd.DataFrame(index=idx[:2])), "industry_history",
         "industry_history must be a table with the dates of returns"),
        (dict(periods_per_year=True), "periods_per_year",
         "periods_per_year must be a positive whole number (got True)"),
    ]
    for over, argument, text in cases:
        raises_exactly(text, argument, MarketData, **_small(**over))
    raises_exactly("dates needs at least 2 dates to tell the frequency (has 1)", "dates",
                   infer_periods_per_year, [pd.Timestamp("2020-01-31")] * 3)
    raises_exactly("dates are 15 days apart (median); expected daily, weekly, monthly, quarterly "
                   "or annual dates", "dates", infer_periods_per_year,
                   pd.date_range("2020-01-01", periods=5, freq="15D"))
    m = MarketData(**_small())
    raises_exactly('start is not a date: "abc"', "start", m.truncate, "abc", None)
    raises_exactly("start (2023-04-30) is after end (2023-01-31)", "start", m.truncate,
                   "2023-04-30", "2023-01-31")
    gone = _small()
    gone["returns"], gone["caps"] = gone["returns"] * np.nan, gone["caps"] * np.nan
    raises_exactly("no asset is listed between start=2023-01-31 and end=2023-02-28", "end",
                   MarketData(**gone).truncate, "2023-01-31", "2023-02-28")
    with _raises(r"^cannot cut the dates at start=2023-01-15, end=2023-02-15: ") as info:
        date_slice(pd.DatetimeIndex(["2023-02-28", "2023-01-31"]), "2023-01-15", "2023-02-15")
    assert info.value.argument == "end"
