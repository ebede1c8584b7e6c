"""``xlfuncs holdings`` against the real loopback API; the API token never leaks anywhere."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from fund_api import FundApi, Reply, sample_holdings

from xlfuncs.cli import main
from xlfuncs.data.holdings import last_business_day
from xlfuncs.excel.build import HOLDINGS_COLUMNS
from xlfuncs.excel.sheets import OpenpyxlBook, read_name
from xlfuncs.macros import refresh_holdings

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "workbooks" / "BetaNeutral.xlsm"
DAY = "2025-02-18"
TOKEN = "xlf_tok-7Q2w9Zk4Lm0pNB-not-for-logs"
ENV = ("XLFUNCS_API_URL", "XLFUNCS_API_TOKEN", "XLFUNCS_FUND", "XLFUNCS_TIMEOUT",
       "XLFUNCS_CONFIG")


@pytest.fixture(autouse=True)
def fast_env(tmp_path, monkeypatch) -> Path:
    """No settings from the machine; short timeouts, one retry, no backoff (a config file)."""
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "appdata"))
    config = tmp_path / "xlfuncs.toml"
    config.write_text("[api]\ntimeout = [0.5, 0.5]\nretries = 1\nbackoff = 0\n")
    monkeypatch.setenv("XLFUNCS_CONFIG", str(config))
    return config


@pytest.fixture
def workbook(tmp_path: Path) -> Path:
    path = tmp_path / "BetaNeutral.xlsm"
    shutil.copyfile(SOURCE, path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["holdings", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def expected_frame(rows: list[dict]) -> pd.DataFrame:
    active = [r for r in rows if r["active"]]
    total = sum(r["value"] for r in active)
    frame = pd.DataFrame([{c: r.get(c) for c in HOLDINGS_COLUMNS} for r in active])
    frame["weight"] = [r["value"] / total for r in active]
    return frame.astype({c: float for c in HOLDINGS_COLUMNS[1:]})


# --------------------------------------------------------------------------- success


def test_csv_and_summary(fund_api, tmp_path, capsys):
    out = tmp_path / "holdings.csv"
    code, stdout, err = run(capsys, "--fund", "quant", "--date", DAY, "--base-url",
                            fund_api.url, "--out", str(out))
    assert (code, err) == (0, "")
    assert fund_api.requests[-1].json == {"fund": "quant", "start": DAY, "end": DAY}
    frame = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(frame.columns) == list(HOLDINGS_COLUMNS)
    pd.testing.assert_frame_equal(frame, expected_frame(fund_api.holdings), check_exact=False,
                                  rtol=1e-12)
    lines = stdout.splitlines()
    assert lines[0] == "fund quant: 20 holdings on 2025-02-18 (2 inactive dropped)"
    assert lines[1].startswith("range 2025-02-18 to 2025-02-18, 1 trading day; fetched ")
    total = sum(r["value"] for r in fund_api.holdings if r["active"])
    assert lines[2] == f"total value {total:,.2f}"
    assert lines[3] == "top 10 holdings by weight:"
    biggest = max((r for r in fund_api.holdings if r["active"]), key=lambda r: abs(r["value"]))
    assert lines[5].split()[0] == biggest["ticker"].split()[0]
    assert lines[-1] == f"wrote 20 holdings to {out}"


def test_xlsx_and_a_range(fund_api, tmp_path, capsys):
    out = tmp_path / "holdings.xlsx"
    code, stdout, _ = run(capsys, "--fund", "grad", "--start", "2025-02-03", "--date", DAY,
                          "--base-url", fund_api.url, "--out", str(out))
    assert code == 0
    assert fund_api.requests[-1].json == {"fund": "grad", "start": "2025-02-03", "end": DAY}
    assert "range 2025-02-03 to 2025-02-18, 12 trading days" in stdout
    ws = openpyxl.load_workbook(out).active
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == list(HOLDINGS_COLUMNS)
    want = expected_frame(fund_api.holdings)
    assert [r[0] for r in rows[1:]] == list(want["ticker"])
    assert [r[4] for r in rows[1:]] == pytest.approx(list(want["weight"]))
    assert not list(tmp_path.glob(".holdings.xlsx.*"))  # no temporary file left


def test_workbook_refresh_is_the_macro(fund_api, workbook, tmp_path, capsys):
    out = tmp_path / "h.csv"
    code, stdout, err = run(capsys, "--fund", "quant", "--date", DAY, "--base-url",
                            fund_api.url, "--workbook", str(workbook), "--out", str(out))
    assert (code, err) == (0, ""), err
    assert f"refreshed Holdings!A17:L37 in {workbook.name}" in stdout
    book = OpenpyxlBook(workbook)
    assert read_name(book, "Fund") == [["quant"]]
    assert read_name(book, "HoldingsDate")[0][0].date() == date(2025, 2, 18)
    assert read_name(book, "HoldingsStatus") == [
        ["OK: 20 holdings of fund quant on 2025-02-18 (2 inactive dropped)"]]
    table = read_name(book, "Holdings")
    frame = pd.read_csv(out)
    assert [r[0] for r in table[1:]] == list(frame["ticker"])
    assert [r[4] for r in table[1:]] == pytest.approx(list(frame["weight"]))
    assert fund_api.hits == 1
    with zipfile.ZipFile(workbook) as z:
        assert z.read("xl/worksheets/sheet1.xml").count(b'cm="1"') == 7
        assert "xl/metadata.xml" in z.namelist()


def test_workbook_cells_are_used_without_fund_and_date(fund_api, workbook, capsys):
    code, _, err = run(capsys, "--base-url", fund_api.url, "--workbook", str(workbook))
    assert (code, err) == (0, "")
    day = last_business_day().isoformat()
    assert fund_api.requests[-1].json == {"fund": "undergrad", "start": day, "end": day}


def test_base_url_overrides_the_environment(fund_api, refused_url, monkeypatch, capsys):
    monkeypatch.setenv("XLFUNCS_API_URL", refused_url)
    assert run(capsys, "--fund", "quant", "--date", DAY, "--base-url", fund_api.url)[0] == 0
    monkeypatch.setenv("XLFUNCS_API_URL", fund_api.url)
    assert run(capsys, "--fund", "quant", "--date", DAY)[0] == 0
    assert fund_api.hits == 2


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(("script", "message"), [
    (["500"], "the API failed (500): a server error, or fund 'quant' is unknown; body: "
     "Internal Server Error"),
    (["invalid-json"], "the API answered 200 but not with JSON"),
    (["no-holdings"], "the API answer has no holdings field"),
    (["empty"], "the API returned no active holdings for fund quant on 2025-02-18"),
    (["ok:delay=2"], "did not answer within 0.5 s (read timeout)"),
    (["429:retry-after=1", "429:retry-after=1"], "the API is rate limiting requests (429)"),
], ids=["500", "invalid-json", "no-holdings", "empty", "slow", "429"])
@pytest.mark.parametrize("target", ["csv", "xlsx", "workbook"])
def test_a_failure_leaves_the_files_as_they_were(fund_api, workbook, tmp_path, capsys, script,
                                                 message, target):
    out = tmp_path / f"old.{'xlsx' if target == 'xlsx' else 'csv'}"
    out.write_bytes(b"ticker,weight\nOLD,1.0\n")
    before_out, before_book = out.read_bytes(), workbook.read_bytes()
    fund_api.script(script)
    args = ["--fund", "quant", "--date", DAY, "--base-url", fund_api.url, "--out", str(out)]
    if target == "workbook":
        args += ["--workbook", str(workbook)]
    code, stdout, err = run(capsys, *args)
    assert code == 2
    assert stdout == ""
    assert err.startswith("xlfuncs: error: ") and message in err
    assert err.count("\n") == 1
    assert out.read_bytes() == before_out
    assert workbook.read_bytes() == before_book
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["BetaNeutral.xlsm", out.name, "xlfuncs.toml"])  # no temporary file left


def test_connection_refused(refused_url, workbook, capsys):
    before = workbook.read_bytes()
    code, _, err = run(capsys, "--fund", "quant", "--base-url", refused_url, "--workbook",
                       str(workbook))
    assert code == 2
    assert err == f"xlfuncs: error: cannot reach {refused_url}: connection refused\n"
    assert workbook.read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--date", "18/02/2025"], "--date must be a date YYYY-MM-DD, not '18/02/2025'"),
    (["--start", "2025-2-3"], "--start must be a date YYYY-MM-DD, not '2025-2-3'"),
    (["--out", "holdings.txt"], "--out must name a .csv or .xlsx file, not holdings.txt"),
    (["--base-url", "ftp://example.edu"], "--base-url: base_url must be an http:// or "
     "https:// URL"),
    (["--workbook", "missing.xlsm"], "no such workbook missing.xlsm"),
    (["--workbook", "BOOK", "--start", DAY], "--start does not go with --workbook"),
    (["--start", "2025-02-19", "--date", DAY], "--start 2025-02-19 is after --date 2025-02-18"),
    (["--date", "2999-01-04"], "--date 2999-01-04 is in the future"),
])
def test_bad_arguments_fail_before_any_request(fund_api, workbook, capsys, args, message):
    args = [str(workbook) if a == "BOOK" else a for a in args]
    if "--base-url" not in args:
        args += ["--base-url", fund_api.url]
    code, _, err = run(capsys, "--fund", "quant", *args)
    assert code == 2
    assert err.startswith(f"xlfuncs: error: {message}"), err
    assert err.count("\n") == 1
    assert fund_api.hits == 0


def test_missing_config(capsys):
    code, _, err = run(capsys, "--fund", "quant")
    assert code == 2
    assert err.startswith("xlfuncs: error: no fund API URL is configured: set the "
                          "XLFUNCS_API_URL environment variable")


def test_a_failure_is_one_line_on_stderr_in_a_real_process(fund_api, workbook, fast_env):
    fund_api.script(["500"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "xlfuncs.cli", "holdings", "--fund", "quant", "--base-url",
         fund_api.url, "--workbook", str(workbook)],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("xlfuncs: error: the API failed (500): a server error, or fund "
                           "'quant' is unknown; body: Internal Server Error\n")


# --------------------------------------------------------------------------- secrets


def test_the_token_never_leaks(workbook, tmp_path, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    outputs = []
    with FundApi(token=TOKEN, holdings=sample_holdings(8, seed=5)) as api:
        monkeypatch.setenv("XLFUNCS_API_URL", api.url)
        monkeypatch.setenv("XLFUNCS_API_TOKEN", TOKEN)
        today = date(2025, 2, 19)

        # the macro: a success, an API that echoes the token, a wrong token, a crash
        assert refresh_holdings(OpenpyxlBook(workbook), today=today).ok
        api.script([Reply(status=500, body=f"token {TOKEN} is not allowed here")])
        echoed = refresh_holdings(OpenpyxlBook(workbook), today=today)
        assert not echoed.ok and "token *** is not allowed" in echoed.status
        with monkeypatch.context() as m:
            m.setattr("xlfuncs.macros.fetch_holdings",
                      lambda *a, **k: (_ for _ in ()).throw(RuntimeError(f"boom {TOKEN}")))
            crashed = refresh_holdings(OpenpyxlBook(workbook), today=today)
        assert crashed.status == ("Refresh failed: unexpected RuntimeError: boom *** "
                                  "(details in the log)")
        api.token = "another-token"
        refused = refresh_holdings(OpenpyxlBook(workbook), today=today)
        assert "the API refused the token (401)" in refused.status
        api.token = TOKEN

        # the command: success and failure, with a workbook and tables
        csv, xlsx = tmp_path / "h.csv", tmp_path / "h.xlsx"
        outputs.append(run(capsys, "--fund", "quant", "--date", DAY, "--workbook",
                           str(workbook), "--out", str(csv)))
        outputs.append(run(capsys, "--fund", "quant", "--date", DAY, "--out", str(xlsx)))
        api.script([Reply(status=500, body=f"echo {TOKEN}"), "422"])
        outputs.append(run(capsys, "--fund", "quant", "--workbook", str(workbook)))
        outputs.append(run(capsys, "--fund", "quant", "--out", str(csv)))
        assert [o[0] for o in outputs] == [0, 0, 2, 2]
        # the token was really sent
        assert sum(r.headers.get("authorization") == f"Bearer {TOKEN}"
                   for r in api.requests) >= 6

    secret = TOKEN.encode()
    with zipfile.ZipFile(workbook) as z:
        for name in z.namelist():
            assert secret not in z.read(name), name
    assert secret not in csv.read_bytes()
    with zipfile.ZipFile(xlsx) as z:
        assert all(secret not in z.read(name) for name in z.namelist())
    for _, out, err in outputs:
        assert TOKEN not in out and TOKEN not in err
    assert "Traceback" in caplog.text  # the crash was logged in full ...
    assert TOKEN not in caplog.text  # ... without the token
    for record in caplog.records:
        assert TOKEN not in record.getMessage()



def test_a_token_echoed_json_escaped_reaches_neither_stderr_nor_the_log(workbook, monkeypatch,
                                                                         capsys, caplog):
    """Issue 16.3: ``{"detail":"\\u0078\\u006c..."}`` spelling the token reached stderr."""
    from fund_api import leaks, token_spellings

    caplog.set_level(logging.DEBUG)
    before = workbook.read_bytes()
    with FundApi(token=TOKEN) as api:
        monkeypatch.setenv("XLFUNCS_API_URL", api.url)
        monkeypatch.setenv("XLFUNCS_API_TOKEN", TOKEN)
        spellings = token_spellings(TOKEN)
        outputs = []
        for form in ("json-lower", "base64", "percent-lower"):
            body = f'{{"detail":"{spellings[form]}"}}'
            api.script([Reply(status=500, body=body), Reply(status=500, body=body)])
            outputs.append(run(capsys, "--fund", "quant", "--date", DAY))
            outputs.append(run(capsys, "--fund", "quant", "--date", DAY, "--workbook",
                               str(workbook)))
    assert [o[0] for o in outputs] == [2] * 6
    assert outputs[0][2] == ("xlfuncs: error: the API failed (500): a server error, or fund "
                             "'quant' is unknown; body: (not shown: it quotes the API token)\n")
    assert workbook.read_bytes() == before
    for _, out, err in outputs:
        for secret in (TOKEN, *spellings.values()):
            assert not leaks(secret, out + err + caplog.text)


# --------------------------------------------------------------------------- unwritable files


@pytest.fixture
def excel_holds(monkeypatch):
    """Files Excel holds open on Windows: they cannot be opened for writing nor replaced."""
    import builtins
    import errno

    held: set[str] = set()
    real_open, real_replace = builtins.open, os.replace

    def fake_open(file, mode="r", *a, **k):
        if (isinstance(file, str | os.PathLike) and os.path.abspath(file) in held
                and any(c in mode for c in "wa+")):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, mode, *a, **k)

    def fake_replace(src, dst, **kw):
        if os.path.abspath(dst) in held:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(src), None,
                                  os.fspath(dst))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "replace", fake_replace)
    return lambda path: held.add(os.path.abspath(path))


@pytest.mark.parametrize("target", ["xlsx", "workbook"])
def test_a_file_open_in_excel_is_found_before_fetching(fund_api, workbook, tmp_path, capsys,
                                                       excel_holds, target):
    out = tmp_path / "h.xlsx"
    out.write_bytes(b"old")
    held = workbook if target == "workbook" else out
    excel_holds(held)
    before = held.read_bytes()
    args = ["--fund", "quant", "--date", DAY, "--base-url", fund_api.url]
    args += ["--workbook", str(workbook)] if target == "workbook" else ["--out", str(out)]
    code, stdout, err = run(capsys, *args)
    assert code == 2 and stdout == ""
    assert err == (f"xlfuncs: error: cannot write {held}: permission denied; if it is open in "
                   "Excel, close it in Excel first\n")
    assert fund_api.hits == 0
    assert held.read_bytes() == before


def test_a_workbook_locked_after_fetching(fund_api, workbook, capsys, monkeypatch):
    """Excel opens the workbook while the API answers: the save fails, one line, file unchanged."""
    import errno

    before = workbook.read_bytes()
    real_replace = os.replace

    def fake_replace(src, dst, **kw):
        if os.path.abspath(dst) == os.path.abspath(workbook):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(src), None,
                                  os.fspath(dst))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", fake_replace)
    code, _, err = run(capsys, "--fund", "quant", "--date", DAY, "--base-url", fund_api.url,
                       "--workbook", str(workbook))
    assert code == 2
    assert err.startswith(f"xlfuncs: error: cannot write {workbook}: permission denied")
    assert "close it in Excel first" in err and err.count("\n") == 1
    assert workbook.read_bytes() == before
    assert not [p for p in workbook.parent.iterdir() if p.name.startswith(".")]


def test_out_is_a_folder_or_under_a_file(fund_api, tmp_path, capsys):
    folder = tmp_path / "h.csv"
    folder.mkdir()
    code, _, err = run(capsys, "--fund", "quant", "--date", DAY, "--base-url", fund_api.url,
                       "--out", str(folder))
    assert code == 2 and "is a folder" in err and err.count("\n") == 1
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run(capsys, "--fund", "quant", "--date", DAY, "--base-url", fund_api.url,
                       "--out", str(afile / "h.csv"))
    assert code == 2 and f"{afile} is a file, not a folder" in err and err.count("\n") == 1
    assert fund_api.hits == 0

