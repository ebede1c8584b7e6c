"""ETF issuer holdings files: the hand-built fixtures in tests/fixtures/etf and edge cases."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import math
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlfuncs.core import normalise_ticker
from xlfuncs.data import etf_files
from xlfuncs.data.etf_files import (
    DroppedRow,
    EtfHoldings,
    parse_etf_table,
    read_etf_file,
)
from xlfuncs.errors import InputError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "etf"

# The numbers written into the fixtures (percent, as in the files).
ISHARES_KEPT = {
    "NVDA": 12.34, "MSFT": 11.02, "AVGO": 10.15, "GOOGL": 9.48, "META": 9.10, "AMZN": 8.77,
    "BRK.B": 7.65, "TSM": 7.21, "PLTR": 6.80, "AMD": 6.55, "ORCL": 5.90, "SNOW": 4.90,
}
JANUS_KEPT = {
    "NVDA": 14.52, "MSFT": 13.11, "AVGO": 12.64, "TSM": 10.95, "GOOG": 9.40, "BRK.B": 8.20,
    "AMD": 7.88, "ANET": 7.62, "MRVL": 7.27, "VRT": 6.95,
}
PLAIN_PERCENT = {"AAPL": 22.5, "MSFT": 20.25, "NVDA": 18, "BRK.B": 12.5, "JPM": 15.75,
                 "XOM": 11}
PLAIN_FRACTION = {"AAPL": 0.30, "BRK.B": 0.25, "GOOGL": 0.20, "JNJ": 0.18, "BF.B": 0.05}


def _load_make_ssga():
    spec = importlib.util.spec_from_file_location("make_ssga", FIXTURES / "make_ssga.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_SSGA = _load_make_ssga()
SSGA_KEPT = {t: w for _, t, _, _, w, _, _ in MAKE_SSGA.HOLDINGS if t != "-"}


def _expected(percents: dict[str, float]) -> np.ndarray:
    values = np.array(list(percents.values()), dtype=float)
    return values / values.sum()


def _assert_holdings(h: EtfHoldings, kept: dict[str, float], scale: float = 100.0) -> None:
    assert h.tickers == tuple(kept)
    np.testing.assert_allclose(h.weights, _expected(kept), rtol=0, atol=1e-15)
    assert h.weights.sum() == 1.0
    assert h.original_total == pytest.approx(math.fsum(kept.values()) / scale, abs=1e-12)


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _error(func, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        func(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------- iShares


def test_ishares_fixture():
    h = read_etf_file(FIXTURES / "ishares_aiq.csv")
    assert h.layout == "ishares"
    _assert_holdings(h, ISHARES_KEPT)
    assert h.fund == "iShares AI Innovators ETF"
    assert h.as_of == dt.date(2026, 10, 5)
    assert h.names[0] == "NVIDIA CORP"
    assert h.names[6] == "BERKSHIRE HATHAWAY INC CLASS B"
    assert [(d.ticker, d.reason) for d in h.dropped] == [
        ("USD", "cash"), ("XTSLA", "money market"), ("NQZ6", "futures")]
    assert [d.weight for d in h.dropped] == pytest.approx([0.0011, 0.0002, 0.0])
    assert h.dropped[0].name == "USD CASH"
    assert h.dropped[2].row == 25


def test_ishares_report():
    lines = read_etf_file(FIXTURES / "ishares_aiq.csv").report()
    assert lines == [
        "layout: iShares CSV (iShares AI Innovators ETF)",
        "as of: 2026-10-05",
        "holdings: 12",
        "dropped 3 cash/derivative rows: USD (cash, 0.11%), XTSLA (money market, 0.02%), "
        "NQZ6 (futures, 0%)",
        "weights summed to 99.87%; renormalised to 100%",
    ]


def test_ishares_empty_template():
    err = _error(read_etf_file, FIXTURES / "ishares_empty.csv")
    assert str(err) == (
        "path: ishares_empty.csv has no holdings (an empty template, as issuers publish on "
        "non-trading days); download the file for a trading day")
    assert err.argument == "path"


def test_ishares_with_bom_and_windows_1252(tmp_path):
    text = (FIXTURES / "ishares_aiq.csv").read_text(encoding="utf-8")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert read_etf_file(bom).tickers == tuple(ISHARES_KEPT)
    legacy = _write(tmp_path / "legacy.csv",
                    text.replace("\u00a0", " ").replace("BlackRock", "BlackRock\u00ae"), "cp1252")
    h = read_etf_file(str(legacy))
    assert h.tickers == tuple(ISHARES_KEPT)
    assert h.fund == "iShares AI Innovators ETF"


def test_ishares_percent_false_contradicts_the_layout():
    err = _error(read_etf_file, FIXTURES / "ishares_aiq.csv", percent=False)
    assert err.argument == "percent"
    assert "iShares CSV weights are percent" in str(err)
    assert read_etf_file(FIXTURES / "ishares_aiq.csv", percent=True).tickers == tuple(ISHARES_KEPT)


def test_ishares_holdings_after_a_blank_row_are_refused(tmp_path):
    lines = (FIXTURES / "ishares_aiq.csv").read_text(encoding="utf-8").splitlines()
    lines.insert(15, "")  # a blank line in the middle of the holdings
    err = _error(read_etf_file, _write(tmp_path / "gap.csv", "\n".join(lines)))
    assert str(err) == ("path: gap.csv row 17 looks like a holding but comes after row 16, "
                        "where the table ended (a blank or one-cell row); remove that row")


# --------------------------------------------------------------------------- SSGA


def test_ssga_fixture():
    h = read_etf_file(FIXTURES / "ssga_xlk.xlsx")
    assert h.layout == "ssga"
    _assert_holdings(h, SSGA_KEPT)
    assert "BRK.B" in h.tickers
    assert h.as_of == dt.date(2026, 8, 20)
    assert h.fund == "Technology Select Sector SPDR\u00ae Fund (XLK)"
    assert h.names[1] == "MICROSOFT CORP"
    cash = [(i, row) for i, row in enumerate(MAKE_SSGA.HOLDINGS) if row[1] == "-"]
    first = len(MAKE_SSGA.PREAMBLE) + 2  # the file's row of HOLDINGS[0], after the header
    assert h.dropped == (
        DroppedRow(None, cash[0][1][0], cash[0][1][4] / 100, "cash", first + cash[0][0]),
        DroppedRow(None, cash[1][1][0], cash[1][1][4] / 100, "money market", first + cash[1][0]),
    )
    assert "US DOLLAR (cash, 0.0482%)" in h.report()[3]


def test_ssga_fixture_is_what_the_script_builds(tmp_path):
    first, second = MAKE_SSGA.build(), MAKE_SSGA.build()
    assert first == second  # deterministic
    rebuilt = tmp_path / "rebuilt.xlsx"
    assert MAKE_SSGA.main([str(rebuilt)]) == 0

    def cells(path):
        book = openpyxl.load_workbook(path, read_only=True)
        try:
            return [list(r) for r in book["holdings"].iter_rows(values_only=True)]
        finally:
            book.close()

    assert cells(rebuilt) == cells(FIXTURES / "ssga_xlk.xlsx")


def test_ssga_sheet_named_holdings_is_used_when_not_active(tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "Notes"
    book.active.append(["nothing to see"])
    sheet = book.create_sheet("Holdings")
    sheet.append(["Fund Name:", "Made Up SPDR Fund"])
    sheet.append(["Holdings:", dt.datetime(2026, 8, 20)])  # a real date cell
    sheet.append([])
    sheet.append(["Name", "Ticker", "Identifier", "SEDOL", "Weight", "Sector"])
    sheet.append(["ALPHA INC", "ALPH", "X1", "S1", "60", "Tech"])
    sheet.append(["BETA CORP CL B", "BETA/B", "X2", "S2", 40.0, "Tech"])
    path = tmp_path / "spdr.xlsm"
    book.save(path)
    h = read_etf_file(path)
    assert (h.layout, h.tickers, h.fund, h.as_of) == (
        "ssga", ("ALPH", "BETA.B"), "Made Up SPDR Fund", dt.date(2026, 8, 20))
    np.testing.assert_allclose(h.weights, [0.6, 0.4])


# --------------------------------------------------------------------------- Janus


def test_janus_fixture():
    h = read_etf_file(FIXTURES / "janus_ai.csv")
    assert h.layout == "janus"
    _assert_holdings(h, JANUS_KEPT)
    assert h.as_of == dt.date(2026, 10, 3)
    assert h.fund is None
    assert h.names[5] == "Berkshire Hathaway Inc - Class B"
    assert [(d.ticker, d.reason, d.weight) for d in h.dropped] == [
        ("NVDA US 11/20/26 C200", "option", pytest.approx(0.0021)),
        ("USD", "cash", pytest.approx(0.0125)),
    ]
    assert h.report()[-1] == "weights summed to 98.54%; renormalised to 100%"


def test_janus_title_row_variants_and_zero_value_derivatives():
    header = ["Full Portfolio Holdings (As of December 23, 2025)", "Ticker", "Cusip",
              "Underlying Security", "Strike Price", "Quantity", "Notional Value",
              "Market Value", "Weight %", "Current Market Value"]
    rows = [
        header,
        ["Alpha Inc", "ALPH US", "1", "-", "-", "1,000", "$5,000", "$5,000", "50.5", "-"],
        ["S&P 500 E-mini Dec 25", "ESZ5", "-", "-", "-", "2", "$600,000", "$0", "0.00", "-"],
        ["Beta Corp", "BETA US", "2", "-", "-", "1,000", "$4,900", "$4,900", "49.5%", "-"],
    ]
    h = parse_etf_table(rows, source="jh.csv")
    assert h.tickers == ("ALPH", "BETA")
    assert h.as_of == dt.date(2025, 12, 23)
    assert h.dropped == (
        DroppedRow("ESZ5", "S&P 500 E-mini Dec 25", 0.0, "derivative (zero market value)", 3),)
    assert h.original_total == pytest.approx(1.0)
    assert h.report()[-1] == "weights sum to 100%"


def test_janus_title_on_its_own_rows():
    rows = [
        ["Full Portfolio Holdings"],
        ["(As of 11/26/2025)"],
        ["", "Ticker", "Cusip", "Underlying Security", "Strike Price", "Quantity",
         "Notional Value", "Market Value", "Weight %", "Current Market Value"],
        ["Alpha Inc", "ALPH US", "1", "-", "-", "1,000", "$5,000", "$5,000", "60", "-"],
        ["Beta Corp", "BETA US", "2", "-", "-", "1,000", "$4,000", "$4,000", "40", "-"],
    ]
    h = parse_etf_table(rows)
    assert (h.layout, h.as_of, h.names) == ("janus", dt.date(2025, 11, 26),
                                            ("Alpha Inc", "Beta Corp"))


def test_ishares_swaps_fx_and_tickerless_rows_are_dropped():
    header = ["Ticker", "Name", "Sector", "Asset Class", "Market Value", "Weight (%)",
              "Notional Value"]
    rows = [
        header,
        ["AAA", "AAA CORP", "Industrials", "Equity", "900.00", "90.00", "900.00"],
        ["-", "ZZZ RIGHTS", "Industrials", "Equity", "10.00", "1.00", "10.00"],
        ["EUR", "EUR/USD FWD", "Cash and/or Derivatives", "FX", "1.00", "0.10", "1.00"],
        ["SWP1", "TRS ON INDEX", "Other", "Swaps", "5.00", "0.50", "500.00"],
        ["BBB", "BBB INC", "Energy", "Equity", "84.00", "8.40", "84.00"],
    ]
    h = parse_etf_table(rows)
    assert h.tickers == ("AAA", "BBB")
    assert [(d.ticker, d.reason) for d in h.dropped] == [
        (None, "no ticker"), ("EUR", "fx forward"), ("SWP1", "swap")]
    assert h.original_total == pytest.approx(0.984)
    with pytest.raises(ValueError):
        h.weights[0] = 0.5  # frozen


# --------------------------------------------------------------------------- plain


def test_plain_percent_fixture():
    h = read_etf_file(FIXTURES / "plain_percent.csv")
    assert (h.layout, h.fund, h.as_of, h.dropped) == ("plain", None, None, ())
    _assert_holdings(h, PLAIN_PERCENT)
    assert h.names == (None,) * 6
    assert list(h.to_frame().columns) == ["ticker", "weight"]


def test_plain_fraction_fixture():
    h = read_etf_file(FIXTURES / "plain_fraction.csv")
    _assert_holdings(h, PLAIN_FRACTION, scale=1.0)
    assert h.dropped == (DroppedRow("USD", None, 0.02, "cash", 5),)
    assert h.report()[-1] == "weights summed to 98%; renormalised to 100%"


def test_plain_percent_header_contradiction_and_fraction_header_override():
    err = _error(read_etf_file, FIXTURES / "plain_percent.csv", percent=False)
    assert str(err).startswith("percent: plain_percent.csv contradicts percent=False")
    err = _error(read_etf_file, FIXTURES / "plain_fraction.csv", percent=True)
    assert str(err) == (  # 0.98 read as percent: outside the band, not renormalised
        "path: plain_fraction.csv weights of its 5 holdings sum to 0.98% once its 1 "
        "cash/derivative row is dropped; they must sum to 90% to 110% (rows repeated, or "
        "weights in another unit?)")


def test_plain_without_header_needs_percent_stated():
    rows = [["AAPL", "60"], ["MSFT", "40"]]
    err = _error(parse_etf_table, rows, source="mine.csv")
    assert str(err) == (
        "path: mine.csv has no header row, so its weights could be fractions or percent; add "
        "a header 'ticker,weight %' (percent) or 'ticker,weight' (fractions), or pass "
        "percent=True or percent=False")
    assert parse_etf_table(rows, percent=True).original_total == pytest.approx(1.0)
    assert str(_error(parse_etf_table, rows, source="mine.csv", percent=False)) == (
        "path: mine.csv row 1: weight '60' is 6000%, outside -100% to 100%")
    signed = parse_etf_table([["AAPL", "60%"], ["MSFT", "40%"]])  # every cell says percent
    assert signed.original_total == pytest.approx(1.0)


def test_plain_tab_separated_txt(tmp_path):
    path = _write(tmp_path / "w.txt", "Symbol\tWeight (%)\nBRK/B\t55\nKO\t45\n")
    h = read_etf_file(path)
    assert h.tickers == ("BRK.B", "KO")
    np.testing.assert_allclose(h.weights, [0.55, 0.45])


def test_semicolon_csv_is_refused(tmp_path):
    err = _error(read_etf_file, _write(tmp_path / "eu.csv", "ticker;weight\nAAPL;0,6\nKO;0,4\n"))
    assert "separated by ';'" in str(err)


# --------------------------------------------------------------------------- errors


def test_unknown_layout():
    err = _error(read_etf_file, FIXTURES / "unknown_layout.csv")
    message = str(err)
    assert message.startswith("path: unknown_layout.csv is not a known holdings layout; "
                              "expected one of: ")
    for needed in ("iShares CSV (header Ticker, Name, Sector, Asset Class, Market Value, "
                   "Weight (%)", "SSGA (SPDR) XLSX (header Name, Ticker, Identifier, SEDOL, "
                   "Weight", "Janus Henderson (header 'Full Portfolio Holdings (As of "
                   "MM/DD/YYYY)', Ticker, Cusip", "Weight %", "plain two-column (two columns "
                   "ticker, weight"):
        assert needed in message
    assert "\n" not in message


def test_missing_file_xls_and_empty(tmp_path):
    missing = tmp_path / "nope.csv"
    assert str(_error(read_etf_file, missing)) == f"path: no such file {missing}"
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64)
    err = _error(read_etf_file, old)
    assert str(err) == ("path: old.xls is an old .xls workbook; open it in Excel and save it "
                        "as .xlsx")
    assert err.argument == "path"
    assert str(_error(read_etf_file, _write(tmp_path / "e.csv", "\n\n"))) == (
        "path: e.csv is empty; expected an ETF holdings file")
    broken = _write(tmp_path / "broken.xlsx", "not a zip")
    assert "broken.xlsx is not a readable .xlsx workbook" in str(_error(read_etf_file, broken))


def test_header_only_plain_file_is_an_empty_template():
    err = _error(parse_etf_table, [["ticker", "weight"]], source="p.csv")
    assert "p.csv has no holdings (an empty template" in str(err)


def test_duplicate_tickers_are_added_up_and_reported():
    rows = [["ticker", "weight"], ["BRK.B", "0.5"], ["AAPL", "0.25"], ["brk b", "0.25"]]
    got = parse_etf_table(rows, source="dup.csv")
    assert got.tickers == ("BRK.B", "AAPL")
    np.testing.assert_allclose(got.weights, [0.75, 0.25], rtol=0, atol=1e-15)
    assert got.merged == ("BRK.B",)
    assert "added up the rows of tickers listed more than once: BRK.B" in got.report()


def test_bad_numbers_name_the_row():
    rows = [["ticker", "weight %"], ["AAPL", "50"], ["MSFT", "fifty"]]
    assert str(_error(parse_etf_table, rows, source="x.csv")) == (
        "path: x.csv row 3: weight 'fifty' is not a number")
    decimal_comma = [["ticker", "weight %"], ["AAPL", "50,5"]]
    assert "row 2: weight '50,5' is not a number" in str(_error(parse_etf_table, decimal_comma))
    text = (FIXTURES / "ishares_aiq.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text.replace('"125,308,641.22"', '"12x"', 1))))
    err = _error(parse_etf_table, rows, source="i.csv")
    assert str(err) == "path: i.csv row 13: market value '12x' is not a number"


def test_missing_weight_and_bad_ticker_name_the_row():
    rows = [["ticker", "weight"], ["AAPL", "0.5"], ["MSFT", "-"]]
    assert str(_error(parse_etf_table, rows, source="w.csv")) == (
        "path: w.csv row 3: MSFT has no weight")
    rows = [["ticker", "weight"], ["AAPL;KO", "0.5"]]
    assert "row 2: 'AAPL;KO' is not a ticker" in str(_error(parse_etf_table, rows))


def test_only_cash_rows():
    rows = [["ticker", "weight"], ["USD", "0.5"], ["EUR", "0.5"]]
    assert str(_error(parse_etf_table, rows, source="c.csv")) == (
        "path: c.csv has no holdings once its 2 cash/derivative rows are dropped")


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1,234.56", (1234.56, False)),
        ("$1,234", (1234.0, False)),
        ("(1,234)", (-1234.0, False)),
        ("-$1,234.50", (-1234.5, False)),
        ("12.5%", (12.5, True)),
        ("(0.5%)", (-0.5, True)),
        ("-", (None, False)),
        ("", (None, False)),
        (None, (None, False)),
        (7, (7.0, False)),
        (0.25, (0.25, False)),
        (" 3.5\u00a0", (3.5, False)),
    ],
)
def test_number_formats(cell, expected):
    assert etf_files._parse_number(cell) == expected


@pytest.mark.parametrize("cell", ["abc", "1,2", "12,34.5", "(-3)", "1.2.3", "inf", True, "$"])
def test_number_formats_refused(cell):
    with pytest.raises(ValueError):
        etf_files._parse_number(cell)


def test_to_frame_with_names():
    frame = read_etf_file(FIXTURES / "janus_ai.csv").to_frame()
    assert list(frame.columns) == ["ticker", "weight", "name"]
    assert frame["weight"].sum() == pytest.approx(1.0, abs=1e-15)
    assert frame.loc[0, "name"] == "NVIDIA Corp"


# --------------------------------------------------------------------------- property

_ROOT = st.from_regex(r"[A-Z]{1,5}", fullmatch=True)


def _raw_ticker(root: str, sep: str | None, cls: str, us: bool, lower: bool) -> str:
    ticker = (root + sep + cls if sep is not None else root) + (" US" if us else "")
    return ticker.lower() if lower else ticker


_RAW_TICKER = st.builds(
    _raw_ticker,
    _ROOT,
    st.sampled_from([None, " ", ".", "-", "/"]),
    st.sampled_from("ABK"),
    st.booleans(),
    st.booleans(),
).filter(lambda t: normalise_ticker(t) not in etf_files._CURRENCIES | etf_files._NO_TICKER)
_WEIGHT = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False, allow_infinity=False)


@given(
    st.lists(st.tuples(_RAW_TICKER, _WEIGHT), min_size=1, max_size=25,
             unique_by=lambda tw: normalise_ticker(tw[0])),
    st.sampled_from(["weight", "weight %", None]),
    st.floats(min_value=0.91, max_value=1.09),  # inside the band after rounding
)
def test_random_plain_tables_round_trip(holdings, header, total):
    raw = [t for t, _ in holdings]
    drawn = np.array([w for _, w in holdings])
    scale = 100.0 if header == "weight %" else 1.0
    # weights of any sizes that sum to a total inside the band, each at most 100%
    weights = np.minimum(drawn / drawn.sum() * total, 1.0) * scale
    holdings = [(t, float(w)) for t, w in zip(raw, weights, strict=True)]
    rows = ([["ticker", header]] if header else []) + [[t, repr(w)] for t, w in holdings]
    h = parse_etf_table(rows, source="random.csv", percent=None if header else False)
    assert h.tickers == tuple(normalise_ticker(t) for t in raw)
    assert tuple(normalise_ticker(t) for t in h.tickers) == h.tickers  # idempotent
    assert abs(h.weights.sum() - 1.0) <= 1e-12
    np.testing.assert_allclose(h.weights, weights / weights.sum(), rtol=1e-12, atol=1e-15)
    assert h.original_total == pytest.approx(math.fsum(weights) / scale, rel=1e-12)
    # and through a CSV file's text
    text = "\n".join(",".join(r) for r in rows)
    assert etf_files._csv_rows(text.encode("utf-8"), "random.csv") == [list(r) for r in rows]


# --------------------------------------------------------------------------- total rows


@pytest.mark.parametrize("label", ["Total", "TOTAL", "total:", "Grand Total", "Subtotal",
                                   "Sub-total", "Totals", "sum"])
def test_plain_total_row_is_dropped_and_reported(tmp_path, label):
    path = _write(tmp_path / "t.csv", f"ticker,weight\nAAPL,0.6\nMSFT,0.4\n{label},1.0\n")
    h = read_etf_file(path)
    assert h.tickers == ("AAPL", "MSFT")
    np.testing.assert_allclose(h.weights, [0.6, 0.4], rtol=0, atol=1e-15)
    assert h.original_total == pytest.approx(1.0)
    assert [(d.reason, d.row, d.weight) for d in h.dropped] == [("total", 4, 1.0)]
    lines = h.report()
    assert "dropped: no cash or derivative rows" in lines
    assert f"dropped 1 total row: {label} (row 4, 100%)" in lines
    assert lines[-1] == "weights sum to 100%"


def test_total_row_in_the_name_column_and_subtotals():
    rows = [
        ["Ticker", "Name", "Sector", "Asset Class", "Market Value", "Weight (%)"],
        ["NVDA", "NVIDIA CORP", "IT", "Equity", "100", "60"],
        ["", "Subtotal", "", "", "100", "60"],
        ["MSFT", "MICROSOFT CORP", "IT", "Equity", "100", "40"],
        ["-", "Grand total", "", "", "200", "100"],
    ]
    h = parse_etf_table(rows, source="i.csv")
    assert h.tickers == ("NVDA", "MSFT")
    assert [d.reason for d in h.dropped] == ["total", "total"]
    assert h.dropped[1].ticker is None and h.dropped[1].name == "Grand total"
    assert "dropped 2 total rows: Subtotal (row 3, 60%), Grand total (row 5, 100%)" in h.report()


def test_total_after_the_blank_row_is_not_a_holding(tmp_path):
    path = _write(tmp_path / "t.csv", "ticker,weight\nAAPL,0.6\nMSFT,0.4\n\nTotal,1.0\n")
    assert read_etf_file(path).tickers == ("AAPL", "MSFT")


def test_holdings_named_like_totals_are_kept():
    # TotalEnergies' old name and a real ticker SUM with a real weight stay holdings.
    rows = [
        ["Ticker", "Name", "Sector", "Asset Class", "Market Value", "Weight (%)"],
        ["TTE", "TOTAL SE", "Energy", "Equity", "100", "30"],
        ["SUM", "SUMMIT MATERIALS INC", "Materials", "Equity", "100", "70"],
    ]
    assert parse_etf_table(rows).tickers == ("TTE", "SUM")
    plain = [["ticker", "weight"], ["SUM", "0.3"], ["AAPL", "0.7"]]
    assert parse_etf_table(plain).tickers == ("SUM", "AAPL")
    for rows in ([["ticker", "weight"], ["AAPL", "0.5"], ["SUM", "0.5"]],  # one row above
                 [["ticker", "weight"], ["AAPL", "0.5"], ["MSFT", "0.3"], ["SUM", "0.2"]]):
        assert parse_etf_table(rows).tickers[-1] == "SUM"
    # a Sum row of rounded percents still adds up the rows above it
    rows = [["ticker", "weight %"], ["AAPL", "33.33"], ["MSFT", "33.33"], ["KO", "33.33"],
            ["Sum", "100"]]
    assert parse_etf_table(rows).tickers == ("AAPL", "MSFT", "KO")


def test_only_total_rows():
    rows = [["ticker", "weight"], ["Total", "1.0"]]
    assert "has no holdings once its 1 total row is dropped" in str(
        _error(parse_etf_table, rows, source="c.csv"))


# --------------------------------------------------------------------------- huge numbers


@pytest.mark.parametrize("cell", ["1e400", "-1e400", "1e309%", "(1e999)"])
def test_text_numbers_must_be_finite(cell):
    with pytest.raises(ValueError):
        etf_files._parse_number(cell)


def test_infinite_weight_text_names_the_row():
    rows = [["ticker", "weight"], ["AAPL", "0.5"], ["MSFT", "1e400"]]
    assert str(_error(parse_etf_table, rows, source="x.csv")) == (
        "path: x.csv row 3: weight '1e400' is too large to be a number")


def test_an_absurd_weight_names_its_row():
    """Issue 16.4: one weight of 1e308 made that name 100% and the rest about 0."""
    rows = [["ticker", "weight"], ["AAPL", "0.5"], ["MSFT", "1e308"], ["KO", "0.5"]]
    assert str(_error(parse_etf_table, rows, source="x.csv")) == (
        "path: x.csv row 3: weight '1e308' is 1e+310%, outside -100% to 100%")
    rows = [["ticker", "weight %"], ["AAPL", "50"], ["MSFT", "-100.5"], ["KO", "150.5"]]
    assert str(_error(parse_etf_table, rows, source="p.csv")) == (
        "path: p.csv row 3: weight '-100.5' is -100.5%, outside -100% to 100%")
    cash = [["ticker", "weight"], ["AAPL", "1"], ["USD", "3e300"]]  # a dropped row too
    assert "row 3: weight '3e300' is 3e+302%" in str(_error(parse_etf_table, cash))
    # the bounds themselves are weights: one holding of 100%, a short of 100%
    np.testing.assert_array_equal(parse_etf_table([["ticker", "weight"], ["AAPL", "1"]]).weights,
                                  [1.0])
    rows = [["ticker", "weight"], ["AAPL", "1"], ["MSFT", "1"], ["KO", "-1"]]
    np.testing.assert_array_equal(parse_etf_table(rows).weights, [1.0, 1.0, -1.0])


@pytest.mark.parametrize(("weights", "total"), [
    (["0.985", "0.985"], "197%"),  # the case: every weight typed twice
    (["3e-320", "1e-320"], "0%"),
    (["0.5", "-0.5"], "0%"),
    (["0.5", "0.3999"], "89.99%"),
    (["0.6", "0.5001"], "110.01%"),
])
def test_a_total_outside_the_band_is_an_error_not_renormalised(weights, total):
    """Issue 16.4: a 197% total was renormalised without a word in the cell."""
    rows = [["ticker", "weight"], ["AAPL", weights[0]], ["MSFT", weights[1]]]
    assert str(_error(parse_etf_table, rows, source="t.csv")) == (
        f"path: t.csv weights of its 2 holdings sum to {total}; they must sum to 90% to "
        "110% (rows repeated, or weights in another unit?)")


@pytest.mark.parametrize(("weights", "total"), [(["0.5", "0.4"], 0.9), (["0.6", "0.5"], 1.1),
                                                (["0.98", "0.01"], 0.99)])
def test_a_total_inside_the_band_is_renormalised_and_reported(weights, total):
    rows = [["ticker", "weight"], ["AAPL", weights[0]], ["MSFT", weights[1]]]
    h = parse_etf_table(rows)
    values = np.array([float(w) for w in weights])
    np.testing.assert_allclose(h.weights, values / values.sum(), rtol=0, atol=1e-15)
    assert h.original_total == pytest.approx(total, abs=1e-15)
    assert h.report()[-1] == f"weights summed to {total:.0%}; renormalised to 100%"


def test_cash_heavy_and_truncated_files_are_refused():
    # a top-10 list (61% of the fund), and a fund that holds 15% cash: renormalising their
    # stocks would inflate the fund's beta by 64% and 18%
    h = [["Ticker", "Name", "Sector", "Asset Class", "Market Value", "Weight (%)"]]
    rows = [*h, ["NVDA", "NVIDIA", "IT", "Equity", "61", "61.0"]]
    assert "weights of its 1 holding sum to 61%; they must sum" in str(
        _error(parse_etf_table, rows))
    rows = [*h, ["NVDA", "NVIDIA", "IT", "Equity", "85", "85.0"],
            ["USD", "USD CASH", "Cash and/or Derivatives", "Cash", "15", "15.0"]]
    assert ("weights of its 1 holding sum to 85% once its 1 cash/derivative row is dropped"
            in str(_error(parse_etf_table, rows)))


def test_the_udf_and_the_command_refuse_a_total_outside_the_band(tmp_path, capsys):
    """Issue 16.4: the CLI printed a note but exited 0."""
    from xlfuncs import udfs
    from xlfuncs.cli import main

    path = _write(tmp_path / "twice.csv", "ticker,weight\nAAPL,0.6\nMSFT,0.37\nAAPL,0.6\n"
                                         "MSFT,0.37\n")
    message = ("twice.csv weights of its 2 holdings sum to 194%; they must sum to 90% to 110% "
               "(rows repeated, or weights in another unit?)")
    assert udfs.ETF_HOLDINGS(str(path)) == f"#xlfuncs! path: {message}"
    assert main(["etf-holdings", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"xlfuncs: error: {message}\n"


def test_the_udf_names_weights_not_percent(tmp_path):
    """Issue 16.4: a contradiction of weights was reported under percent, never typed."""
    from xlfuncs import udfs

    assert udfs.ETF_HOLDINGS(str(FIXTURES / "ishares_aiq.csv"), "fraction") == (
        '#xlfuncs! weights: ishares_aiq.csv contradicts weights "fraction": iShares CSV '
        "weights are percent; omit weights")
    assert udfs.ETF_HOLDINGS(str(FIXTURES / "plain_percent.csv"), "fraction") == (
        '#xlfuncs! weights: plain_percent.csv contradicts weights "fraction": its weight '
        "header says percent ('%'); omit weights")
    headerless = _write(tmp_path / "w.csv", "AAPL,60\nMSFT,40\n")
    out = udfs.ETF_HOLDINGS(str(headerless))
    assert out.endswith('or pass weights "percent" or weights "fraction"') and "=" not in out
    assert udfs.ETF_HOLDINGS(str(headerless), "percent")[1] == ["AAPL", 0.6]


def test_the_udf_refuses_more_rows_than_a_worksheet_has(tmp_path, monkeypatch):
    """Issue 16.4: 1,500,001 rows were returned for a 1.5M-row file (Excel has 1,048,576)."""
    from xlfuncs import udfs

    assert udfs._EXCEL_ROWS == 1_048_576  # Excel's sheet (reading a file that long takes 30 s)
    monkeypatch.setattr(udfs, "_EXCEL_ROWS", 4)  # a header and three holdings fit
    fits = _write(tmp_path / "three.csv", "ticker,weight\nAAPL,0.5\nMSFT,0.3\nKO,0.2\n")
    assert udfs.ETF_HOLDINGS(str(fits)) == [["ticker", "weight"], ["AAPL", 0.5],
                                            ["MSFT", 0.3], ["KO", 0.2]]
    four = _write(tmp_path / "four.csv", "ticker,weight\nAAPL,0.4\nMSFT,0.3\nKO,0.2\n"
                                         "USD,0.05\nPEP,0.1\n")
    assert udfs.ETF_HOLDINGS(str(four)) == (
        "#xlfuncs! path: four.csv has 4 holdings; with the header they need more than "
        "Excel's 4 rows")


# --------------------------------------------------------------------------- odd paths


def test_folder_and_special_file_paths(tmp_path):
    err = _error(read_etf_file, tmp_path)
    assert str(err) == f"path: {tmp_path} is a folder, not a file" and err.argument == "path"
    if Path("/dev/null").exists():
        assert str(_error(read_etf_file, "/dev/null")) == (
            "path: /dev/null is not a regular file")


@pytest.mark.parametrize("value", ["#N/A", " #n/a ", "#REF!", "#VALUE!", "#DIV/0!"])
def test_excel_error_as_path(value):
    err = _error(read_etf_file, value)
    assert str(err) == f"path has {value.strip().upper()}; a file path is needed"
    assert err.argument == "path"


def test_excel_error_through_the_udf():
    from xlfuncs import udfs

    out = udfs.ETF_HOLDINGS("#N/A")
    assert "path has #N/A; a file path is needed" in out and "no such file" not in out
