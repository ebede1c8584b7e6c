"""Refresh holdings (xlfuncs.macros) on a copy of BetaNeutral.xlsm, against the real loopback API.

Every failure must leave the workbook as it was except the status cell: all cell
values and number formats, every defined name, every formula with its
dynamic-array marking (``cm``) and the VBA project are compared before and after.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fund_api import Reply, sample_holdings
from openpyxl.worksheet.formula import ArrayFormula

from xlfuncs import udfs
from xlfuncs.config import Config
from xlfuncs.excel import sheets
from xlfuncs.excel.build import HOLDINGS_COLUMNS
from xlfuncs.excel.sheets import Area, OpenpyxlBook, read_name, write_cell
from xlfuncs.macros import RefreshResult, refresh_holdings

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "workbooks" / "BetaNeutral.xlsm"
TODAY = date(2025, 2, 19)  # HoldingsDate is blank in the workbook: the refresh asks for DAY
DAY = date(2025, 2, 18)
META = {("Holdings", "C10"), ("Holdings", "C11"), ("Holdings", "C12"), ("Holdings", "C13")}
STATUS_CELL = ("Holdings", "C10")
# the 20 stocks of the workbook's Returns sheet (so Cov knows them)
STOCKS = ("AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "LLY", "MRK",
          "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    path = tmp_path / "BetaNeutral.xlsm"
    shutil.copyfile(SOURCE, path)
    return path


def fast(url: str, **overrides: Any) -> Config:
    settings: dict[str, Any] = {"base_url": url, "timeout": (0.5, 0.5), "retries": 1,
                                "backoff": 0.0}
    settings.update(overrides)
    return Config(**settings)


def refresh(path: Path, config: Config | None, **kwargs: Any) -> tuple[RefreshResult, OpenpyxlBook]:
    book = OpenpyxlBook(path)
    kwargs.setdefault("today", TODAY)
    return refresh_holdings(book, config=config, **kwargs), book


def row(ticker: str, value: float, *, active: bool = True, shares: float = 10.0,
        price: float | None = None, **extra) -> dict:
    price = abs(value / shares) if price is None else price
    r = {"ticker": ticker, "active": active, "shares": shares, "price": price,
         "value": value, "total_return": 1.5, "volatility": 20.0, "dividends": 0.0,
         "dividends_per_share": 0.0, "dividend_yield": 0.0, "alpha": 0.25, "beta": 1.1}
    r.update(extra)
    return r


def set_inputs(path: Path, **cells: Any) -> None:
    """Type values into named cells of the file (as an analyst would, then save)."""
    book = OpenpyxlBook(path)
    for name, value in cells.items():
        write_cell(book, name, value)
    book.save()


@dataclass(frozen=True)
class State:
    """Everything a refresh could damage, in comparable form."""

    cells: dict[tuple[str, str], tuple[Any, str]]
    names: dict[str, str]
    formulas: dict[tuple[str, str], tuple[str, ...]]
    vba: bytes

    def changed_cells(self, other: State) -> set[tuple[str, str]]:
        keys = self.cells.keys() | other.cells.keys()
        return {k for k in keys if self.cells.get(k) != other.cells.get(k)}


_FORMULA = re.compile(r"<c\b([^>]*)>\s*<f\b([^>]*?)(?:/>|>([^<]*)</f>)")


def raw_formulas(path: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """(sheet, cell) -> (cm, t, ref, text) of every formula, from the package XML."""
    found = {}
    with zipfile.ZipFile(path) as z:
        for sheet, part in sheets._sheet_parts(z).items():
            xml = z.read(part).decode()
            for m in _FORMULA.finditer(xml):
                cell, f = m.group(1), m.group(2)

                def attr(text: str, key: str) -> str:
                    a = re.search(rf'\s{key}="([^"]*)"', text)
                    return a.group(1) if a else ""

                found[(sheet, attr(cell, "r"))] = (attr(cell, "cm"), attr(f, "t"),
                                                   attr(f, "ref"),
                                                   html.unescape(m.group(3) or ""))
    return found


def state(path: Path) -> State:
    wb = openpyxl.load_workbook(path, keep_vba=True)
    cells = {}
    for ws in wb.worksheets:
        for line in ws.iter_rows():
            for c in line:
                value = c.value
                if isinstance(value, ArrayFormula):
                    value = ("array", value.ref, value.text)
                if value is not None:
                    cells[(ws.title, c.coordinate)] = (value, c.number_format)
    names = {n: d.attr_text for n, d in wb.defined_names.items()}
    names.update({f"{ws.title}!Print_Titles": str(ws.print_title_rows) for ws in wb.worksheets})
    with zipfile.ZipFile(path) as z:
        vba = z.read("xl/vbaProject.bin")
    return State(cells, names, raw_formulas(path), vba)


@pytest.fixture(scope="module")
def pristine() -> State:
    return state(SOURCE)


def assert_only_status_changed(path: Path, before: State, result: RefreshResult,
                               book: OpenpyxlBook) -> None:
    after = state(path)
    assert not result.ok
    assert result.status.startswith("Refresh failed: ")
    assert "\n" not in result.status
    assert after.cells[STATUS_CELL][0] == result.status
    assert book.messages[-1] == result.status  # the status bar says the same
    assert before.changed_cells(after) == {STATUS_CELL}
    assert after.names == before.names
    assert after.formulas == before.formulas
    assert after.vba == before.vba


def block(path: Path, name: str = "Holdings") -> list[list[Any]]:
    return read_name(OpenpyxlBook(path), name)


def expected_rows(rows: list[dict]) -> list[list[Any]]:
    """The table the refresh should write, computed here from the served rows."""
    active = [r for r in rows if r["active"]]
    total = sum(r["value"] for r in active)
    out = []
    for r in active:
        cells = [r["ticker"], r["shares"], r["price"], r["value"], r["value"] / total]
        cells += [None if r[c] is None else float(r[c]) for c in HOLDINGS_COLUMNS[5:]]
        out.append(cells)
    return out


def assert_table(actual: list[list[Any]], expected: list[list[Any]]) -> None:
    assert actual[0] == list(HOLDINGS_COLUMNS)
    assert len(actual) - 1 == len(expected)
    for got, want in zip(actual[1:], expected, strict=True):
        assert got[0] == want[0]
        for g, w in zip(got[1:], want[1:], strict=True):
            assert g == (None if w is None else pytest.approx(w, rel=1e-12, abs=1e-15))


# --------------------------------------------------------------------------- success


def test_refresh_writes_the_table_names_and_status(workbook, fund_api, pristine):
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    status = "OK: 20 holdings of fund undergrad on 2025-02-18 (2 inactive dropped)"
    assert result.status == status
    assert result.area == Area("Holdings", 17, 1, 37, 12)
    assert fund_api.requests[-1].json == {"fund": "undergrad", "start": "2025-02-18",
                                          "end": "2025-02-18"}
    assert book.messages[0] == "xlfuncs: fetching holdings of fund undergrad for 2025-02-18…"
    assert book.messages[-1] == status

    after = state(workbook)
    assert after.names["Holdings"] == "'Holdings'!$A$17:$L$37"
    assert {k: v for k, v in after.names.items() if k != "Holdings"} == {
        k: v for k, v in pristine.names.items() if k != "Holdings"}
    assert_table(block(workbook), expected_rows(fund_api.holdings))
    book = OpenpyxlBook(workbook)
    assert read_name(book, "HoldingsStatus") == [[status]]
    assert read_name(book, "HoldingsRows") == [[20.0]]
    assert read_name(book, "HoldingsSource") == [
        ["undergrad, 2025-02-18 to 2025-02-18, 1 trading day"]]
    (fetched,), = read_name(book, "HoldingsFetchedAt")
    assert isinstance(fetched, datetime) and fetched.tzinfo is None
    assert abs((datetime.now() - fetched).total_seconds()) < 120  # local time
    # nothing else moved; the new rows look like the old ones
    table = {("Holdings", f"{openpyxl.utils.get_column_letter(c)}{r}")
             for r in range(17, 38) for c in range(1, 13)}
    assert pristine.changed_cells(after) <= table | META
    assert after.formulas == pristine.formulas
    ws = book.workbook["Holdings"]
    assert ws["E37"].number_format == ws["E29"].number_format == "0.00%"
    assert ws["B37"].number_format == ws["B29"].number_format


def test_a_shorter_table_clears_the_leftover_rows(workbook, fund_api):
    assert refresh(workbook, fast(fund_api.url))[0].ok  # 20 rows: A17:L37
    fund_api.holdings = sample_holdings(5, seed=3, inactive=0)
    result, _ = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    assert result.area == Area("Holdings", 17, 1, 22, 12)
    book = OpenpyxlBook(workbook)
    assert book.name_range("Holdings") == result.area
    assert_table(block(workbook), expected_rows(fund_api.holdings))
    leftovers = book.read(Area("Holdings", 23, 1, 40, 14))
    assert all(v is None for line in leftovers for v in line)
    assert read_name(book, "HoldingsStatus") == [
        ["OK: 5 holdings of fund undergrad on 2025-02-18 (0 inactive dropped)"]]


def test_a_table_shorter_than_the_sample_clears_its_rows(workbook, fund_api, pristine):
    fund_api.holdings = [row("AAPL", 600.0), row("MSFT", 400.0)]
    result, _ = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    after = state(workbook)
    assert after.names["Holdings"] == "'Holdings'!$A$17:$L$19"
    for r in range(20, 30):
        for c in "ABCDEFGHIJKL":
            assert ("Holdings", f"{c}{r}") not in after.cells
    assert block(workbook)[1][:5] == ["AAPL", 10.0, 60.0, 600.0, 0.6]


def test_dynamic_arrays_and_vba_survive_a_refresh_of_the_file(workbook, fund_api, pristine):
    assert refresh(workbook, fast(fund_api.url))[0].ok
    formulas = raw_formulas(workbook)
    spilling = {k: v for k, v in formulas.items() if k[0] == "BetaNeutral" and v[1] == "array"}
    assert len(spilling) == 7  # HIST_COV, 2 x BETA_NEUTRAL, 3 x PORTFOLIO_BETA, ETF_BETAS
    assert all(v[0] == "1" for v in spilling.values())  # cm="1": dynamic, not {=...}
    assert formulas == pristine.formulas
    with zipfile.ZipFile(workbook) as z, zipfile.ZipFile(SOURCE) as src:
        assert z.read("xl/metadata.xml") == src.read("xl/metadata.xml")
        types = z.read("[Content_Types].xml").decode()
        assert 'PartName="/xl/metadata.xml"' in types
        assert "sheet.macroEnabled.main+xml" in types
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
        assert "relationships/sheetMetadata" in rels and "relationships/vbaProject" in rels
        assert z.read("xl/vbaProject.bin") == src.read("xl/vbaProject.bin")
        assert 'fullCalcOnLoad="1"' in z.read("xl/workbook.xml").decode()
        sheet = z.read("xl/worksheets/sheet2.xml").decode()
        assert 'codeName="HoldingsSheet"' in sheet


def test_holdings_evaluate_with_the_worksheet_functions(workbook, fund_api):
    weights = [5.0 + (i * 7) % 11 for i in range(len(STOCKS))]
    fund_api.holdings = [row(t, 1000.0 * w) for t, w in zip(STOCKS, weights, strict=True)]
    fund_api.holdings.append(row("TSLA", 0.0, active=False, shares=0.0, price=200.0))
    result, _ = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    book = OpenpyxlBook(workbook)
    holdings = read_name(book, "Holdings")
    etf = read_name(book, "EtfWeights")
    cov = udfs.HIST_COV(read_name(book, "Returns"), "ledoit-wolf", 252.0)  # as Cov's formula
    assert isinstance(cov, list), cov
    before = udfs.PORTFOLIO_BETA(holdings, etf, cov)
    assert isinstance(before, float), before
    table = udfs.BETA_NEUTRAL(holdings, etf, cov)
    assert isinstance(table, list), table
    assert [r[0] for r in table[1:-1]] == list(STOCKS)
    total = sum(weights)
    for r, w in zip(table[1:-1], weights, strict=True):
        assert r[1] == pytest.approx(w / total)
    assert udfs.PORTFOLIO_BETA(table, etf, cov) == pytest.approx(0.0, abs=1e-9)
    reweighted = udfs.BETA_NEUTRAL(holdings, etf, cov, 0.4, "reweight", True)
    assert isinstance(reweighted, list), reweighted
    assert udfs.PORTFOLIO_BETA(reweighted, etf, cov) == pytest.approx(0.4, abs=1e-9)


def test_inactive_rows_and_shorts_are_handled(workbook, fund_api):
    fund_api.holdings = [
        row("AAPL", 700.0), row("OLD", 0.0, active=False, shares=0.0, price=3.0),
        row("MSFT", 500.0), row("TSLA", -200.0, shares=-4.0),
        row("GONE", 0.0, active=False, shares=0.0, price=9.0),
    ]
    result, _ = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    assert result.status == "OK: 3 holdings of fund undergrad on 2025-02-18 (2 inactive dropped)"
    table = block(workbook)
    assert [r[0] for r in table[1:]] == ["AAPL", "MSFT", "TSLA"]
    assert [r[4] for r in table[1:]] == pytest.approx([0.7, 0.5, -0.2])
    assert table[3][1] == -4.0


def test_nulls_are_blank_and_text_is_never_a_formula(workbook, fund_api):
    fund_api.holdings = [row("AAPL", 600.0, alpha=None, beta=None),
                         row('=HYPERLINK("http://evil.example","x")', 400.0)]
    result, _ = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    table = block(workbook)
    assert table[1][10:] == [None, None]
    assert table[2][0] == '=HYPERLINK("http://evil.example","x")'
    assert ("Holdings", "A19") not in raw_formulas(workbook)  # stored as text


def test_fund_and_date_cells(workbook, fund_api):
    set_inputs(workbook, Fund="  quant ", HoldingsDate="2025-02-14")
    result, _ = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    assert fund_api.requests[-1].json == {"fund": "quant", "start": "2025-02-14",
                                          "end": "2025-02-14"}
    set_inputs(workbook, Fund=None, HoldingsDate=datetime(2025, 2, 13))
    result, _ = refresh(workbook, fast(fund_api.url, fund="grad"))
    assert result.ok, result.status
    assert fund_api.requests[-1].json == {"fund": "grad", "start": "2025-02-13",
                                          "end": "2025-02-13"}
    assert result.status.endswith("of fund grad on 2025-02-13 (2 inactive dropped)")


def test_save_false_leaves_the_file_to_the_caller(workbook, fund_api):
    data = workbook.read_bytes()
    result, book = refresh(workbook, fast(fund_api.url), save=False)
    assert result.ok and workbook.read_bytes() == data
    book.save()
    assert OpenpyxlBook(workbook).name_range("Holdings") == result.area


# --------------------------------------------------------------------------- the fault matrix


def shares_text(rows: list[dict]) -> list[dict]:
    rows = [dict(r) for r in rows]
    rows[2]["shares"] = "abc"
    return rows


FAULTS = [
    # (id, script, config overrides, expected status)
    ("500", ["500"], {}, "Refresh failed: the API failed (500): a server error, or fund "
     "'undergrad' is unknown; body: Internal Server Error"),
    ("422", ["422"], {}, "Refresh failed: the API rejected the request (422): start: Input "
     "should be a valid date or datetime, input is too short; fund: Field required"),
    ("429", ["429:retry-after=1", "429:retry-after=1"], {},
     "Refresh failed: the API is rate limiting requests (429) after 1 retry; it asks to wait "
     "1 s; body: {\"detail\":\"Too Many Requests\"}"),
    ("slow", ["ok:delay=2"], {"timeout": (0.5, 0.3)},
     "Refresh failed: the API at {url} did not answer within 0.3 s (read timeout); set "
     "XLFUNCS_TIMEOUT to wait longer"),
    ("drop", ["drop", "drop"], {},
     "Refresh failed: cannot reach {url}: the connection was closed without an answer"),
    ("invalid-json", ["invalid-json"], {},
     "Refresh failed: the API answered 200 but not with JSON: {\"start\": \"2025-02-18\", "
     "\"holdings\": [{\"ticker\": \"AAPL\","),
    ("no-holdings", ["no-holdings"], {},
     "Refresh failed: the API answer has no holdings field (its fields: end, start, "
     "trading_days)"),
    ("wrong-type", [Reply(holdings=shares_text(sample_holdings(6, seed=1, inactive=0)))], {},
     "Refresh failed: holdings[2].shares is text 'abc', a number is needed"),
    ("active-not-bool", [Reply(holdings=[row("AAPL", 5.0, active="yes")])], {},
     "Refresh failed: holdings[0].active is text 'yes', true or false is needed"),
    ("holdings-not-list", [Reply(transform=lambda a: {**a, "holdings": {"AAPL": 1}})], {},
     "Refresh failed: holdings is an object, a list is needed"),
    ("empty", ["empty"], {},
     "Refresh failed: the API returned no active holdings for fund undergrad on 2025-02-18"),
    ("only-inactive", [Reply(holdings=[row("AAPL", 0.0, active=False, shares=0.0, price=1.0)])],
     {}, "Refresh failed: the API returned no active holdings for fund undergrad on 2025-02-18"),
    ("shorts-exceed-longs", [Reply(holdings=[row("AAPL", 100.0),
                                             row("TSLA", -300.0, shares=-3.0)])], {},
     "Refresh failed: the active holdings of fund undergrad are worth -200.00 in total on "
     "2025-02-18; weights need a positive total"),
    ("duplicate", [Reply(holdings=[row("BRK B", 100.0), row("AAPL", 50.0), row("BRK.B", 10.0)])],
     {}, "Refresh failed: holdings[2].ticker 'BRK.B' repeats holdings[0].ticker 'BRK B': BRK.B "
     "is held twice"),
    ("401", [Reply(status=401)], {}, "Refresh failed: the API needs a token (401): set "
     "XLFUNCS_API_TOKEN or token under [api] in the config file; body: "
     "{\"detail\":\"Not authenticated\"}"),
]


@pytest.mark.parametrize(("script", "overrides", "expected"),
                         [pytest.param(*f[1:], id=f[0]) for f in FAULTS])
def test_a_failed_refresh_changes_only_the_status(workbook, fund_api, pristine, script,
                                                  overrides, expected):
    fund_api.script(script)
    result, book = refresh(workbook, fast(fund_api.url, **overrides))
    assert result.status == expected.replace("{url}", fund_api.url)
    assert_only_status_changed(workbook, pristine, result, book)


def test_retry_after_is_honoured(workbook, fund_api, pristine):
    fund_api.script(["429:retry-after=1", "ok"])
    result, _ = refresh(workbook, fast(fund_api.url))
    assert result.ok, result.status
    assert fund_api.hits == 2 and fund_api.gaps()[0] >= 0.9


def test_a_dripping_api_ends_at_the_deadline_and_changes_only_the_status(workbook, fund_api,
                                                                         pristine):
    fund_api.script(["ok:drip=0.1"])  # a byte every 0.1 s: never a read timeout
    result, book = refresh(workbook, fast(fund_api.url, deadline=1))
    assert result.status == (f"Refresh failed: the API at {fund_api.url} did not answer "
                             "within 1 s (1 attempt)")
    assert_only_status_changed(workbook, pristine, result, book)


def test_no_piece_of_an_echoed_token_reaches_the_status_the_log_or_the_file(workbook, caplog):
    from fund_api import FundApi

    token = "eyJ" + "k3/Vq" * 50  # long: a body excerpt (200 characters) would cut it
    pad = "x" * 100
    with FundApi(token=token) as api, caplog.at_level(logging.DEBUG):
        api.script([Reply(status=500, body=f"{pad} Authorization: {{authorization}}",
                          echo=True)])
        failed, _ = refresh(workbook, fast(api.url, token=token))
        api.script([Reply(echo=True, holdings=[row("AAPL", 5.0, price="{authorization}")])])
        invalid, _ = refresh(workbook, fast(api.url, token=token))
    assert "Bearer ***" in failed.status
    assert invalid.status == ("Refresh failed: holdings[0].price is text 'Bearer ***', a number "
                              "is needed")
    with zipfile.ZipFile(workbook) as z:
        saved = "".join(z.read(n).decode("latin-1") for n in z.namelist())
    for text in (failed.status, invalid.status, caplog.text, saved):
        assert not any(token[i:i + 8] in text for i in range(len(token) - 7))



@pytest.mark.parametrize("form", ["json-lower", "percent-in-json", "basic-auth", "cut"])
def test_a_token_echoed_in_another_spelling_reaches_no_status_log_or_file(workbook, caplog,
                                                                          pristine, form):
    """Issue 16.3: a JSON-escaped echo reached the saved workbook's HoldingsStatus cell."""
    from fund_api import FundApi, leaks, token_spellings

    token = "xlf_Tok-7Q2w/9Zk+4Lm0pNB.q~"
    spelling = token_spellings(token)[form]
    with FundApi(token=token) as api, caplog.at_level(logging.DEBUG):
        api.script([Reply(status=500, body=f'{{"detail":"{spelling}"}}')])
        result, book = refresh(workbook, fast(api.url, token=token))
    assert result.status == ("Refresh failed: the API failed (500): a server error, or fund "
                             "'undergrad' is unknown; body: (not shown: it quotes the API token)")
    assert_only_status_changed(workbook, pristine, result, book)
    with zipfile.ZipFile(workbook) as z:
        saved = "".join(z.read(n).decode("latin-1") for n in z.namelist())
    for text in (result.status, caplog.text, saved, *book.messages):
        assert not leaks(token, text) and not leaks(spelling, text)


def test_connection_refused(workbook, refused_url, pristine):
    result, book = refresh(workbook, fast(refused_url))
    assert result.status == f"Refresh failed: cannot reach {refused_url}: connection refused"
    assert_only_status_changed(workbook, pristine, result, book)


def test_unknown_fund(workbook, fund_api):
    set_inputs(workbook, Fund="nosuch")
    before = state(workbook)
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.status.startswith("Refresh failed: the API failed (500): a server error, or "
                                    "fund 'nosuch' is unknown (known funds: undergrad, quant")
    assert_only_status_changed(workbook, before, result, book)


def test_missing_config(workbook, monkeypatch, tmp_path, pristine):
    for var in ("XLFUNCS_API_URL", "XLFUNCS_CONFIG", "XLFUNCS_API_TOKEN", "XLFUNCS_FUND",
                "XLFUNCS_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))
    result, book = refresh(workbook, None)
    assert result.status.startswith("Refresh failed: no fund API URL is configured: set the "
                                    "XLFUNCS_API_URL environment variable")
    assert_only_status_changed(workbook, pristine, result, book)


@pytest.mark.parametrize(("inputs", "expected"), [
    pytest.param({"HoldingsDate": "18/02/2025"}, "Refresh failed: HoldingsDate (Holdings!C7) "
                 "must be a date (YYYY-MM-DD) or blank, not the text '18/02/2025'", id="date-text"),
    pytest.param({"HoldingsDate": True}, "Refresh failed: HoldingsDate (Holdings!C7) must be "
                 "a date (YYYY-MM-DD) or blank, not TRUE", id="date-bool"),
    pytest.param({"HoldingsDate": datetime(2030, 1, 2)}, "Refresh failed: HoldingsDate "
                 "(Holdings!C7) is 2030-01-02, after today (2025-02-19)", id="date-future"),
    pytest.param({"Fund": None}, "Refresh failed: Fund (Holdings!C6) is blank: type a fund "
                 "name such as undergrad", id="fund-blank"),
    pytest.param({"Fund": 12.0}, "Refresh failed: Fund (Holdings!C6) must be a fund name such "
                 "as undergrad, not the number 12", id="fund-number"),
])
def test_bad_inputs_are_reported_before_any_request(workbook, fund_api, inputs, expected):
    set_inputs(workbook, **inputs)
    before = state(workbook)
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.status == expected
    assert fund_api.hits == 0
    assert_only_status_changed(workbook, before, result, book)


def test_no_room_below_the_table(workbook, fund_api):
    book = OpenpyxlBook(workbook)
    book.write_block("Holdings", 40, 2, [["my note"]])
    book.save()
    before = state(workbook)
    fund_api.holdings = sample_holdings(30, seed=2)
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.status == ("Refresh failed: the new Holdings table (Holdings!A17:L47) would "
                             "overwrite Holdings!B40 (the text 'my note'); move or clear it")
    assert_only_status_changed(workbook, before, result, book)


def test_a_formula_below_the_table_is_content_even_without_a_cached_result(workbook, fund_api):
    """A file saved by openpyxl keeps no formula results: the formula must still block."""
    ws_book = openpyxl.load_workbook(workbook, keep_vba=True)
    ws_book["Holdings"]["D41"] = "=SUM(D18:D37)"
    ws_book.save(workbook)
    before = state(workbook)
    fund_api.holdings = sample_holdings(30, seed=2)
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.status == ("Refresh failed: the new Holdings table (Holdings!A17:L47) would "
                             "overwrite Holdings!D41 (a formula); move or clear it")
    assert_only_status_changed(workbook, before, result, book)


def test_a_name_in_the_way(workbook, fund_api):
    book = OpenpyxlBook(workbook)
    book.set_name("Notes", Area("Holdings", 45, 3, 45, 3))
    book.save()
    before = state(workbook)
    fund_api.holdings = sample_holdings(30, seed=2)
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.status == ("Refresh failed: the new Holdings table (Holdings!A17:L47) would "
                             "overwrite the name Notes (Holdings!C45); move it out of the way")
    assert_only_status_changed(workbook, before, result, book)


def test_a_missing_name(workbook, fund_api):
    book = OpenpyxlBook(workbook)
    del book.workbook.defined_names["Holdings"]
    book.save()
    before = state(workbook)
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.status == "Refresh failed: the workbook BetaNeutral.xlsm has no name Holdings"
    assert_only_status_changed(workbook, before, result, book)


def test_without_a_status_cell_the_file_is_untouched(workbook, fund_api):
    book = OpenpyxlBook(workbook)
    del book.workbook.defined_names["HoldingsStatus"]
    book.save()
    data = workbook.read_bytes()
    result, book = refresh(workbook, fast(fund_api.url))
    assert result.status == ("Refresh failed: the workbook BetaNeutral.xlsm has no name "
                             "HoldingsStatus")
    assert book.messages[-1] == result.status  # the status bar still says it
    assert workbook.read_bytes() == data


def test_an_unexpected_error_is_caught_and_logged(workbook, fund_api, pristine, monkeypatch,
                                                  caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("xlfuncs.macros.fetch_holdings", boom)
    with caplog.at_level(logging.INFO):
        result, book = refresh(workbook, fast(fund_api.url))
    assert result.status == "Refresh failed: unexpected RuntimeError: boom (details in the log)"
    assert isinstance(result.error, RuntimeError)
    assert "Traceback" in caplog.text and "RuntimeError: boom" in caplog.text
    assert_only_status_changed(workbook, pristine, result, book)


def test_a_workbook_openpyxl_would_damage_is_not_saved(workbook, fund_api):
    # a custom XML part (as sensitivity labels add) that openpyxl drops on save
    patched = workbook.with_name("patched.xlsm")
    with zipfile.ZipFile(workbook) as src, zipfile.ZipFile(patched, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "_rels/.rels":
                data = data.replace(b"</Relationships>", (
                    b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/'
                    b'officeDocument/2006/relationships/customXml" '
                    b'Target="customXml/item1.xml"/></Relationships>'))
            dst.writestr(item, data)
        dst.writestr("customXml/item1.xml", b"<label xmlns='urn:x'>Confidential</label>")
    data = patched.read_bytes()
    result, _ = refresh(patched, fast(fund_api.url))
    assert not result.ok
    assert result.status == (
        "Refresh failed: patched.xlsm has custom XML parts (e.g. sensitivity labels) (1 of 1), "
        "which saving the file through openpyxl would lose; the file was not changed (refresh "
        "it in Excel instead)")
    assert patched.read_bytes() == data


def test_restore_package_keeps_the_marks_only_on_array_formulas():
    xml = ('<sheetData><row r="1"><c r="A1" s="1"><f t="array" ref="A1:B2">F()</f><v/></c>'
           '<c r="C1"><f>G()</f></c><c r="D1" cm="1"><f t="array" ref="D1">H()</f></c>'
           '<c r="E1"/></row></sheetData>')
    marks = {"A1": "1", "C1": "1", "D1": "1", "E1": "1"}
    out, count = sheets._mark_cells(xml, marks)
    assert count == 1
    assert '<c r="A1" s="1" cm="1"><f t="array"' in out
    assert '<c r="C1"><f>G()</f>' in out and '<c r="E1"/>' in out
    assert out.count('cm="1"') == 2


# --------------------------------------------------------------------------- a live workbook

# Excel cannot run here: a small stand-in for the part of xlwings' API that XlwingsBook
# uses, on the values of the real workbook, shows the same macro works through it.


class FakeRange:
    def __init__(self, sheet: FakeSheet, first: tuple[int, int], last: tuple[int, int] | None):
        self.sheet = sheet
        self.row, self.column = first
        self._last = last or first

    @property
    def last_cell(self) -> FakeRange:
        return FakeRange(self.sheet, self._last, None)

    def options(self, ndim: int | None = None) -> FakeRange:
        assert ndim == 2
        return self

    def _cells(self):
        return [[(r, c) for c in range(self.column, self._last[1] + 1)]
                for r in range(self.row, self._last[0] + 1)]

    @property
    def value(self) -> list[list[Any]]:
        return [[self.sheet.cells.get(k) for k in line] for line in self._cells()]

    @value.setter
    def value(self, grid: list[list[Any]]) -> None:
        for i, line in enumerate(grid):
            for j, v in enumerate(line):
                if isinstance(v, str):  # Excel keeps text typed with a leading apostrophe
                    assert v.startswith("'"), v
                    v = v[1:]
                self.sheet.cells[(self.row + i, self.column + j)] = v

    @property
    def formula(self) -> tuple[tuple[str, ...], ...] | str:
        """As Excel: the formula text, or a constant as text ("" for a blank)."""
        text = tuple(tuple(self.sheet.formulas.get(k, "" if self.sheet.cells.get(k) is None
                                                   else str(self.sheet.cells[k]))
                           for k in line) for line in self._cells())
        return text[0][0] if self._last == (self.row, self.column) else text

    def clear_contents(self) -> None:
        for line in self._cells():
            for k in line:
                self.sheet.cells.pop(k, None)

    @property
    def number_format(self) -> str:
        return self.sheet.formats.get((self.row, self.column), "General")

    @number_format.setter
    def number_format(self, fmt: str) -> None:
        for line in self._cells():
            for k in line:
                self.sheet.formats[k] = fmt


class FakeSheet:
    def __init__(self, name: str):
        self.name = name
        self.cells: dict[tuple[int, int], Any] = {}
        self.formats: dict[tuple[int, int], str] = {}
        self.formulas: dict[tuple[int, int], str] = {}

    def range(self, first, last=None) -> FakeRange:
        return FakeRange(self, first, last)


class FakeName:
    def __init__(self, book: FakeBook, name: str, refers_to: str):
        self.book, self.name, self.refers_to = book, name, refers_to

    @property
    def refers_to_range(self) -> FakeRange:
        m = re.fullmatch(r"='?([^'!]+)'?!\$([A-Z]+)\$(\d+)(?::\$([A-Z]+)\$(\d+))?", self.refers_to)
        if m is None:
            raise RuntimeError("not a range")
        col = openpyxl.utils.column_index_from_string
        first = (int(m.group(3)), col(m.group(2)))
        last = (int(m.group(5)), col(m.group(4))) if m.group(4) else None
        return self.book.sheets[m.group(1)].range(first, last)


class FakeNames:
    def __init__(self, book: FakeBook):
        self.book, self.items = book, {}

    def contains(self, name: str) -> bool:
        return name in self.items

    def __getitem__(self, name: str) -> FakeName:
        return self.items[name]

    def __iter__(self):
        return iter(list(self.items.values()))

    def add(self, name: str, refers_to: str) -> FakeName:
        self.items[name] = FakeName(self.book, name, refers_to)
        return self.items[name]


class FakeApp:
    def __init__(self):
        self.status_bar: Any = False
        self.bars: list[str] = []
        self.alerts: list[tuple[str, str]] = []
        self.books = type("Books", (), {"active": None})()

    def alert(self, prompt: str, title: str = "", mode: str = "info", **_: Any) -> None:
        self.alerts.append((prompt, mode))

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "status_bar" and isinstance(value, str):
            self.bars.append(value)
        object.__setattr__(self, key, value)


class FakeBook:
    def __init__(self, path: Path, name: str = "BetaNeutral.xlsm"):
        self.name, self.app, self.names = name, FakeApp(), FakeNames(self)
        wb = openpyxl.load_workbook(path, data_only=True)
        self.sheets = {ws.title: FakeSheet(ws.title) for ws in wb.worksheets}
        for ws in wb.worksheets:
            for line in ws.iter_rows():
                for c in line:
                    if c.value is not None:
                        self.sheets[ws.title].cells[(c.row, c.column)] = (
                            float(c.value) if isinstance(c.value, int) else c.value)
                    self.sheets[ws.title].formats[(c.row, c.column)] = c.number_format
        for name, defined in wb.defined_names.items():
            self.names.add(name, "=" + defined.attr_text)
        self.names.add("Holdings!Print_Titles", "='Holdings'!$1:$2")


def test_the_same_macro_runs_on_a_live_workbook(fund_api, monkeypatch):
    import xlwings

    live = FakeBook(SOURCE)
    before = {k: dict(s.cells) for k, s in live.sheets.items()}
    monkeypatch.setattr(xlwings.Book, "caller", classmethod(lambda cls: live))
    result = refresh_holdings(config=fast(fund_api.url), today=TODAY)  # Book.caller()
    assert result.ok, result.status
    assert live.names["Holdings"].refers_to == "='Holdings'!$A$17:$L$37"
    holdings = live.sheets["Holdings"]
    assert_table([[holdings.cells.get((r, c)) for c in range(1, 13)] for r in range(17, 38)],
                 expected_rows(fund_api.holdings))
    assert holdings.formats[(37, 5)] == "0.00%"
    assert holdings.cells[(10, 3)] == result.status
    assert live.app.bars[0] == "xlfuncs: fetching holdings of fund undergrad for 2025-02-18…"
    assert live.app.bars[-1] == result.status
    assert live.sheets["BetaNeutral"].cells == before["BetaNeutral"]

    fund_api.holdings = sample_holdings(3, seed=9, inactive=0)
    assert refresh_holdings(config=fast(fund_api.url), today=TODAY).ok
    assert live.names["Holdings"].refers_to == "='Holdings'!$A$17:$L$20"
    assert all((r, c) not in holdings.cells for r in range(21, 38) for c in range(1, 13))

    cells = dict(holdings.cells)
    fund_api.script(["500"])
    failed = refresh_holdings(config=fast(fund_api.url), today=TODAY)
    assert failed.status.startswith("Refresh failed: the API failed (500)")
    changed = {k for k in cells.keys() | holdings.cells.keys()
               if cells.get(k) != holdings.cells.get(k)}
    assert changed == {(10, 3)}
    assert live.app.bars[-1] == failed.status


def test_a_live_formula_with_a_blank_result_blocks_the_table(fund_api, monkeypatch):
    import xlwings

    live = FakeBook(SOURCE)
    live.sheets["Holdings"].formulas[(41, 4)] = '=IF(D18>1,"big","")'  # shows as blank
    monkeypatch.setattr(xlwings.Book, "caller", classmethod(lambda cls: live))
    fund_api.holdings = sample_holdings(30, seed=2)
    result = refresh_holdings(config=fast(fund_api.url), today=TODAY)
    assert result.status == ("Refresh failed: the new Holdings table (Holdings!A17:L47) would "
                             "overwrite Holdings!D41 (a formula); move or clear it")


def test_a_ribbon_button_refreshes_the_active_workbook(fund_api, monkeypatch):
    import xlwings

    addin, live = FakeBook(SOURCE, "xlfuncs.xlam"), FakeBook(SOURCE)
    addin.app.books.active = live
    monkeypatch.setattr(xlwings.Book, "caller", classmethod(lambda cls: addin))
    assert refresh_holdings(config=fast(fund_api.url), today=TODAY).ok
    assert live.names["Holdings"].refers_to == "='Holdings'!$A$17:$L$37"
    assert addin.names["Holdings"].refers_to == "='Holdings'!$A$17:$L$29"


def test_outside_excel_there_is_no_calling_workbook():
    result = refresh_holdings(config=fast("http://127.0.0.1:9"))
    assert not result.ok
    assert result.status.startswith("Refresh failed: no calling workbook (run it from Excel, "
                                    "or pass book=): ")


@pytest.mark.parametrize("button", ["refresh_holdings", "run_backtest", "import_functions"])
def test_a_button_clicked_with_no_workbook_open_says_so(monkeypatch, button):
    """No workbook to hold a status: a message box, and no exception reaches RunPython."""
    import xlwings

    from xlfuncs import macros

    addin = FakeBook(SOURCE, "xlfuncs.xlam")  # books.active is None
    monkeypatch.setattr(xlwings.Book, "caller", classmethod(lambda cls: addin))
    monkeypatch.setattr("sys.platform", "win32")
    getattr(macros, button)()
    assert len(addin.app.alerts) == 1
    text, mode = addin.app.alerts[0]
    assert "open a workbook first: no workbook is active" in text and "\n" not in text
    assert mode == "critical"


def test_an_unexpected_error_in_a_button_is_a_message_box(monkeypatch, caplog):
    import xlwings

    from xlfuncs import macros
    from xlfuncs.excel import addin as addin_module

    live = FakeBook(SOURCE)
    monkeypatch.setattr(xlwings.Book, "caller", classmethod(lambda cls: live))
    monkeypatch.setattr(addin_module, "help_text", lambda: 1 / 0)
    with caplog.at_level(logging.ERROR):
        macros.show_help()
    assert live.app.alerts == [("Show help failed: unexpected ZeroDivisionError: division by "
                                "zero (details in the log)", "critical")]
    assert "Traceback" in caplog.text
