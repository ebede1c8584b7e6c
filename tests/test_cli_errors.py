"""The command line's failures: one readable line, exit code 2, never a traceback or a wrong result.

Each test is a case a reviewer reported (files that cannot be written, semicolon and
Excel files where CSV is expected, Windows paths, mixed-up risk inputs, Python wording
in messages, ...).
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from xlfuncs import cli, core
from xlfuncs.cli import main
from xlfuncs.data.samples import sample_path, sector_example

ROOT = Path(__file__).resolve().parents[1]
ETF = Path(__file__).parent / "fixtures" / "etf"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The error line, checked to be one ``xlfuncs: error:`` line without a traceback."""
    assert err.startswith("xlfuncs: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture
def sector(sector_files):
    return sector_files


def implied_args(inputs: Path, corr: Path) -> list[str]:
    return ["implied", "--weights", f"{inputs}:spy_weight", "--vols",
            f"{inputs}:implied_vol_30d", "--index-vol", "0.116", "--corr", str(corr)]


@pytest.fixture
def beta_files(tmp_path):
    out = {}
    for name in ("sample_holdings.csv", "sample_etf_weights.csv", "sp500_prices_2022.csv"):
        out[name] = tmp_path / name
        out[name].write_text(sample_path(name).read_text())
    return out


def beta_args(files, *more: str) -> list[str]:
    return ["beta-neutral", "--holdings", str(files["sample_holdings.csv"]),
            "--etf", str(files["sample_etf_weights.csv"]), *more]


# --------------------------------------------------------------------------- 1. writing


@pytest.fixture
def unwritable(monkeypatch):
    """Make folders under a root refuse writes, as a read-only mount or folder does (even as root).

    Returns a function ``(root, errno) -> root`` that arms it.
    """
    real_mkstemp, real_mkdir = tempfile.mkstemp, os.mkdir
    roots: dict[str, int] = {}

    def blocked(path) -> int | None:
        p = os.path.abspath(os.fspath(path))
        for root, code in roots.items():
            if p == root or p.startswith(root + os.sep):
                return code
        return None

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        code = blocked(dir or tempfile.gettempdir())
        if code is not None:
            raise OSError(code, os.strerror(code), os.path.join(dir, f"{prefix}xyz{suffix}"))
        return real_mkstemp(suffix=suffix, prefix=prefix, dir=dir, text=text)

    def mkdir(path, mode=0o777, *, dir_fd=None):
        code = blocked(os.path.dirname(os.path.abspath(os.fspath(path))))
        if code is not None:
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_mkdir(path, mode) if dir_fd is None else real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "mkdir", mkdir)

    def arm(root: Path, code: int = errno.EROFS) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        roots[os.path.abspath(root)] = code
        return root

    return arm


@pytest.fixture
def locked(monkeypatch):
    """Files that cannot be replaced or opened for writing, as when Excel holds them on Windows."""
    real_replace, real_open = os.replace, open
    paths: set[str] = set()

    def replace(src, dst, **kw):
        if os.path.abspath(os.fspath(dst)) in paths:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(src),
                                  None, os.fspath(dst))
        return real_replace(src, dst, **kw)

    def fake_open(file, mode="r", *a, **k):
        if (isinstance(file, str | os.PathLike) and os.path.abspath(os.fspath(file)) in paths
                and any(c in mode for c in "wa+")):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr("builtins.open", fake_open)

    def lock(path: Path) -> Path:
        paths.add(os.path.abspath(path))
        return path

    return lock


def test_implied_into_a_read_only_folder(sector, tmp_path, unwritable, capsys):
    ro = unwritable(tmp_path / "romnt")
    code, _, err = run(capsys, *implied_args(*sector), "--out", str(ro / "x.csv"))
    assert code == 2
    assert one_line(err) == f"xlfuncs: error: cannot write {ro / 'x.csv'}: read-only file system"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_really_read_only_folder(sector, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run(capsys, *implied_args(*sector), "--out", str(ro / "x.csv"))
    finally:
        ro.chmod(0o755)
    assert code == 2
    assert "cannot write" in one_line(err) and "permission denied" in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0
                    or shutil.which("chattr") is None,
                    reason="as root (CI): needs chattr to make a folder that refuses root")
def test_a_folder_that_refuses_root(sector, tmp_path, capsys):
    """The permission-denied path for real as root: an immutable folder and file (chattr +i)."""
    ro = tmp_path / "immutable"
    ro.mkdir()
    old = ro / "x.csv"
    old.write_text("old\n")
    if subprocess.run(["chattr", "+i", str(old), str(ro)], capture_output=True).returncode:
        pytest.skip("this file system has no immutable attribute")
    try:
        code, out, err = run(capsys, *implied_args(*sector), "--out", str(old))
        code_new, _, err_new = run(capsys, *implied_args(*sector), "--out", str(ro / "y.csv"))
        left = sorted(p.name for p in ro.iterdir())
    finally:
        subprocess.run(["chattr", "-i", str(ro), str(old)], check=True)
    assert (code, code_new) == (2, 2) and out == ""
    assert one_line(err) == (f"xlfuncs: error: cannot write {old}: operation not permitted "
                             "(the file is read-only)")
    new = ro / "y.csv"
    assert one_line(err_new) == f"xlfuncs: error: cannot write {new}: operation not permitted"
    assert old.read_text() == "old\n" and left == ["x.csv"]


def test_etf_holdings_out_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "adir"
    folder.mkdir()
    code, out, err = run(capsys, "etf-holdings", str(ETF / "plain_fraction.csv"), "--out",
                         str(folder))
    assert code == 2 and out == ""
    line = one_line(err)
    assert f"--out {folder}" in line and "is a folder" in line
    assert list(folder.iterdir()) == []


def test_out_under_a_file_cannot_be_created(sector, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    target = afile / "sub" / "x.csv"
    code, out, err = run(capsys, *implied_args(*sector), "--out", str(target))
    assert code == 2 and out == ""
    line = one_line(err)
    assert f"cannot write {target}" in line and f"{afile} is a file, not a folder" in line


def test_beta_neutral_out_locked_by_excel(beta_files, tmp_path, locked, capsys):
    out = tmp_path / "rebalanced.xlsx"
    out.write_bytes(b"old")
    locked(out)
    code, stdout, err = run(capsys, *beta_args(beta_files, "--prices",
                                               str(beta_files["sp500_prices_2022.csv"]),
                                               "--out", str(out)))
    assert code == 2 and stdout == ""  # checked before any work
    line = one_line(err)
    assert f"cannot write {out}: permission denied" in line and "close it in Excel first" in line
    assert out.read_bytes() == b"old"


def test_a_failure_while_writing_names_the_file(sector, tmp_path, monkeypatch, capsys):
    """A write that fails after the checks (disk full) is one line naming the file, not a tmp."""
    import xlfuncs._files as files

    real = files.os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    target = tmp_path / "x.csv"
    code, _, err = run(capsys, *implied_args(*sector), "--out", str(target))
    monkeypatch.setattr(files.os, "fsync", real)
    assert code == 2
    assert one_line(err) == f"xlfuncs: error: cannot write {target}: no space left on device"
    assert list(tmp_path.glob(".x.csv*")) == []


def test_backtest_out_is_a_file_fails_before_any_work(tmp_path, capsys):
    afile = tmp_path / "results"
    afile.write_text("not a folder")
    code, out, err = run(capsys, "backtest", "--data", "sample:20", "--out", str(afile),
                         "--quiet")
    assert code == 2 and out == ""
    assert "is a file, not a folder" in one_line(err) and str(afile) in err


def test_backtest_out_unwritable_fails_before_any_work(tmp_path, unwritable, capsys):
    ro = unwritable(tmp_path / "ro")
    code, out, err = run(capsys, "backtest", "--data", "sample:20", "--out",
                         str(ro / "results"), "--quiet")
    assert code == 2 and out == ""
    assert one_line(err).startswith(f"xlfuncs: error: cannot write {ro / 'results'}: "
                                    "read-only file system")


def test_backtest_out_with_a_results_file_open_in_excel(tmp_path, locked, capsys):
    out = tmp_path / "results"
    out.mkdir()
    locked(out / "stats.csv").write_text("old")
    code, stdout, err = run(capsys, "backtest", "--data", "sample:20", "--out", str(out),
                            "--quiet")
    assert code == 2 and stdout == ""
    assert "close it in Excel first" in one_line(err) and "stats.csv" in err


@pytest.mark.parametrize("blocker", ["file", "readonly"])
def test_demo_out_checked_before_any_work(tmp_path, unwritable, capsys, blocker):
    if blocker == "file":
        target = tmp_path / "demo"
        target.write_text("a file")
    else:
        target = unwritable(tmp_path / "ro", errno.EACCES) / "demo"
    code, out, err = run(capsys, "demo", "--out", str(target))
    assert code == 2
    assert out == ""  # nothing computed
    line = one_line(err)
    assert str(target) in line
    assert ("is a file, not a folder" in line if blocker == "file"
            else "permission denied" in line)


def test_demo_workbook_open_in_excel_is_found_before_any_work(tmp_path, locked, capsys):
    locked(tmp_path / "xlfuncs-demo.xlsx").write_bytes(b"PK old")
    code, out, err = run(capsys, "demo", "--out", str(tmp_path))
    assert code == 2 and out == ""
    assert "xlfuncs-demo.xlsx" in one_line(err) and "close it in Excel first" in err


def test_build_workbooks_into_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, out, err = run(capsys, "build-workbooks", "--out", str(afile))
    assert code == 2 and out == ""
    assert "is a file, not a folder" in one_line(err)


def test_build_workbooks_write_error_is_one_line(tmp_path, unwritable, capsys):
    ro = unwritable(tmp_path / "ro")
    code, _, err = run(capsys, "build-workbooks", "--out", str(ro))
    assert code == 2
    assert one_line(err).startswith(f"xlfuncs: error: cannot write {ro}")


def test_an_unexpected_oserror_is_one_line(monkeypatch, capsys):
    def boom(args):
        raise OSError(errno.EIO, "Input/output error", "somefile")

    monkeypatch.setattr(cli, "cmd_doctor", boom)
    code, _, err = run(capsys, "doctor")
    assert code == 2
    assert one_line(err) == "xlfuncs: error: somefile: input/output error"


def test_an_unexpected_error_is_one_line_unless_debugging(monkeypatch, capsys):
    def bug(args):
        raise RuntimeError("something\nmore")

    monkeypatch.setattr(cli, "cmd_doctor", bug)
    code, _, err = run(capsys, "doctor")
    assert code == 2
    line = one_line(err)
    assert "unexpected RuntimeError: something" in line and "XLFUNCS_DEBUG=1" in line
    monkeypatch.setenv("XLFUNCS_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["doctor"])


def test_a_negative_price_is_named_by_its_file_row(beta_files, tmp_path, capsys):
    lines = beta_files["sp500_prices_2022.csv"].read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[5].split(",")
    cells[2] = "-1"
    lines[5] = ",".join(cells)
    newest_first = tmp_path / "neg.csv"
    newest_first.write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n")
    code, _, err = run(capsys, *beta_args(beta_files, "--prices", str(newest_first)))
    assert code == 2
    row = len(lines) - 5  # data row of the edited line once the rows are reversed
    assert f"column {header[2]} has -1 in data row {row}; prices must be positive" in one_line(err)


@pytest.mark.parametrize(("argv", "message"), [
    (["implied", "--weights", "w.csv"], "implied: the following arguments are required: --vols, "
     "--index-vol, --corr (see xlfuncs implied --help)"),
    (["implied", "--weights", "w", "--vols", "v", "--corr", "c", "--index-vol", "abc"],
     "implied: argument --index-vol: invalid float value: 'abc'"),
    (["backtets"], "argument command: invalid choice: 'backtets'"),
])
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in one_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- 2. one column


def test_semicolon_corr(sector, tmp_path, capsys):
    inputs, corr = sector
    semi = tmp_path / "semi.csv"
    semi.write_text(corr.read_text().replace(",", ";"))
    code, _, err = run(capsys, *implied_args(inputs, semi))
    assert code == 2
    line = one_line(err)
    assert "corr" in line and "semi.csv" in line
    assert "semicolon" in line and "commas" in line


def test_semicolon_with_decimal_commas(sector, tmp_path, capsys):
    inputs, corr = sector
    semi = tmp_path / "semi.csv"
    semi.write_text(corr.read_text().replace(",", ";").replace(".", ","))
    code, _, err = run(capsys, *implied_args(inputs, semi))
    assert code == 2
    assert "semicolon" in one_line(err)


def test_single_number_corr(sector, tmp_path, capsys):
    inputs, _ = sector
    one = tmp_path / "one.csv"
    one.write_text("1\n")
    code, _, err = run(capsys, *implied_args(inputs, one))
    assert code == 2
    line = one_line(err)
    assert "one.csv" in line and "one column" in line


def test_semicolon_weights_column(sector, tmp_path, capsys):
    inputs, corr = sector
    semi = tmp_path / "semi_in.csv"
    semi.write_text(inputs.read_text().replace(",", ";"))
    code, _, err = run(capsys, "implied", "--weights", f"{semi}:spy_weight", "--vols",
                       f"{inputs}:implied_vol_30d", "--index-vol", "0.116", "--corr", str(corr))
    assert code == 2
    line = one_line(err)
    assert "weights" in line and "semicolon" in line and "columns: )" not in line


@pytest.mark.parametrize("flag", ["--prices", "--returns"])
def test_semicolon_and_one_column_risk_files(beta_files, tmp_path, capsys, flag):
    semi = tmp_path / "semi.csv"
    semi.write_text(beta_files["sp500_prices_2022.csv"].read_text().replace(",", ";"))
    code, _, err = run(capsys, *beta_args(beta_files, flag, str(semi)))
    assert code == 2
    assert "semicolon" in one_line(err)
    dates = tmp_path / "dates.csv"
    dates.write_text("date\n2022-01-03\n2022-01-04\n2022-01-05\n")
    code, _, err = run(capsys, *beta_args(beta_files, flag, str(dates)))
    assert code == 2
    assert "dates.csv" in one_line(err) and "no ticker columns" in err
    one = tmp_path / "one.csv"
    one.write_text("1\n")
    code, _, err = run(capsys, *beta_args(beta_files, flag, str(one)))
    assert code == 2
    assert "one.csv" in one_line(err)


def test_semicolon_holdings(beta_files, tmp_path, capsys):
    semi = tmp_path / "h.csv"
    semi.write_text(beta_files["sample_holdings.csv"].read_text().replace(",", ";"))
    code, _, err = run(capsys, "beta-neutral", "--holdings", str(semi), "--etf",
                       str(beta_files["sample_etf_weights.csv"]), "--prices",
                       str(beta_files["sp500_prices_2022.csv"]))
    assert code == 2
    assert "semicolon" in one_line(err)


# --------------------------------------------------------------------------- 3. FILE:COLUMN


def test_windows_path_with_a_column(sector, tmp_path, monkeypatch, capsys):
    """``C:\\Users\\me\\inputs.csv:spy_weight``: on Linux that is one file name, in cwd."""
    inputs, corr = sector
    monkeypatch.chdir(tmp_path)
    win = "C:\\Users\\me\\inputs.csv"
    Path(win).write_text(inputs.read_text())
    out = tmp_path / "a.csv"
    code, _, err = run(capsys, "implied", "--weights", f"{win}:spy_weight", "--vols",
                       f"{win}:implied_vol_30d", "--index-vol", "0.116", "--corr", str(corr),
                       "--out", str(out))
    assert (code, err) == (0, "")
    ex = sector_example()
    ref = core.implied_correlation(ex.weights, ex.vols, 0.116, ex.corr.to_numpy()).corr
    np.testing.assert_allclose(pd.read_csv(out, index_col=0).to_numpy(), ref, atol=1e-12)


def test_folder_with_a_colon(sector, tmp_path, capsys):
    inputs, corr = sector
    folder = tmp_path / "data:2025"
    folder.mkdir()
    moved = folder / "inputs.csv"
    moved.write_text(inputs.read_text())
    code, _, err = run(capsys, "implied", "--weights", f"{moved}:spy_weight", "--vols",
                       f"{moved}:implied_vol_30d", "--index-vol", "0.116", "--corr", str(corr))
    assert (code, err) == (0, "")
    code, _, err = run(capsys, "implied", "--weights", f"{moved}:nope", "--vols",
                       f"{moved}:implied_vol_30d", "--index-vol", "0.116", "--corr", str(corr))
    assert code == 2 and "has no column nope" in one_line(err)


def test_a_missing_windows_file_is_named_whole(sector, capsys):
    _, corr = sector
    code, _, err = run(capsys, "implied", "--weights", "C:\\Users\\me\\missing.csv",
                       "--vols", "C:\\Users\\me\\missing.csv", "--index-vol", "0.116",
                       "--corr", str(corr))
    assert code == 2
    assert one_line(err) == "xlfuncs: error: weights: no such file C:\\Users\\me\\missing.csv"


# --------------------------------------------------------------------------- 4. Excel files


def xlsx_copy(csv: Path, path: Path) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    for row in pd.read_csv(csv, header=None, dtype=str).itertuples(index=False):
        ws.append([None if pd.isna(v) else v for v in row])
    book.save(path)
    return path


def test_xlsx_where_csv_is_expected(sector, beta_files, tmp_path, capsys):
    inputs, corr = sector
    x = xlsx_copy(corr, tmp_path / "x.xlsx")
    code, _, err = run(capsys, *implied_args(inputs, x))
    assert code == 2
    assert one_line(err) == (f"xlfuncs: error: corr: {x} is an Excel workbook; export the "
                             "sheet as CSV")
    code, _, err = run(capsys, "implied", "--weights", f"{x}:spy_weight", "--vols",
                       f"{inputs}:implied_vol_30d", "--index-vol", "0.116", "--corr", str(corr))
    assert code == 2 and "x.xlsx is an Excel workbook" in one_line(err)
    prices = xlsx_copy(beta_files["sp500_prices_2022.csv"], tmp_path / "p.xlsx")
    code, _, err = run(capsys, *beta_args(beta_files, "--prices", str(prices)))
    assert code == 2 and "p.xlsx is an Excel workbook" in one_line(err)


def test_backtest_data_xlsx(tmp_path, capsys):
    long = tmp_path / "long.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["date", "permno", "ret", "mktcap"])
    book.active.append(["2020-01-31", 1, 0.01, 100])
    book.save(long)
    code, _, err = run(capsys, "backtest", "--data", str(long), "--quiet")
    assert code == 2
    assert "long.xlsx is an Excel workbook; export the sheet as CSV" in one_line(err)
    code, _, err = run(capsys, "backtest", "--factors", str(long), "--data", "french12",
                         "--quiet")
    assert code == 2
    assert "long.xlsx is an Excel workbook; export the sheet as CSV" in one_line(err)


def test_beta_neutral_reads_the_holdings_xlsx(beta_files, tmp_path, capsys):
    """The .xlsx that ``xlfuncs holdings --out h.xlsx`` writes works as --holdings."""
    from xlfuncs.excel.sheets import write_table_xlsx

    frame = pd.read_csv(beta_files["sample_holdings.csv"])
    frame.insert(1, "shares", 100.0)
    frame.insert(2, "price", 10.0)
    write_table_xlsx(frame, tmp_path / "h.xlsx")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    risk = ["--prices", str(beta_files["sp500_prices_2022.csv"])]
    assert main(beta_args(beta_files, *risk, "--out", str(a))) == 0
    code, _, err = run(capsys, "beta-neutral", "--holdings", str(tmp_path / "h.xlsx"), "--etf",
                       str(beta_files["sample_etf_weights.csv"]), *risk, "--out", str(b))
    assert (code, err) == (0, "")
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))


# --------------------------------------------------------------------------- 6. --out suffix


def test_xlsx_out_is_a_real_workbook(sector, beta_files, tmp_path, capsys):
    out = tmp_path / "etf.xlsx"
    assert main(["etf-holdings", str(ETF / "ishares_aiq.csv"), "--out", str(out)]) == 0
    rows = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    assert rows[0][:2] == ("ticker", "weight")
    assert sum(r[1] for r in rows[1:]) == pytest.approx(1.0, abs=1e-12)

    out = tmp_path / "implied.xlsx"
    assert main([*implied_args(*sector), "--out", str(out)]) == 0
    rows = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    ex = sector_example()
    assert list(rows[0][1:]) == list(ex.tickers)
    ref = core.implied_correlation(ex.weights, ex.vols, 0.116, ex.corr.to_numpy()).corr
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], float), ref, atol=1e-12)

    out = tmp_path / "rebalanced.xlsx"
    assert main(beta_args(beta_files, "--prices", str(beta_files["sp500_prices_2022.csv"]),
                          "--out", str(out))) == 0
    rows = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    assert rows[0] == ("ticker", "current weight", "new weight")
    assert rows[-1][0] == core.HEDGE_TICKER
    capsys.readouterr()


@pytest.mark.parametrize("command", ["etf", "implied", "beta"])
def test_other_out_suffixes_are_refused(sector, beta_files, tmp_path, capsys, command):
    out = tmp_path / "result.txt"
    out.write_text("keep")
    argv = {"etf": ["etf-holdings", str(ETF / "plain_fraction.csv")],
            "implied": implied_args(*sector),
            "beta": beta_args(beta_files, "--cov", str(tmp_path / "missing.csv"))}[command]
    code, stdout, err = run(capsys, *argv, "--out", str(out))
    assert code == 2 and stdout == ""
    assert one_line(err) == f"xlfuncs: error: --out must name a .csv or .xlsx file, not {out}"
    assert out.read_text() == "keep"


# --------------------------------------------------------------------------- 7. risk inputs


def test_prices_newest_first_are_sorted_by_date(beta_files, tmp_path, capsys):
    prices = beta_files["sp500_prices_2022.csv"]
    lines = prices.read_text().splitlines()
    newest_first = tmp_path / "rev.csv"
    newest_first.write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for risk, out in ((prices, a), (newest_first, b)):
        code, text, err = run(capsys, *beta_args(beta_files, "--prices", str(risk),
                                                 "--risk-method", "ewma:20",
                                                 "--method", "reweight", "--out", str(out)))
        assert (code, err) == (0, "")
    assert "sorted by date" in text
    pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b), check_exact=False, rtol=1e-12)


def test_prices_with_a_repeated_date(beta_files, tmp_path, capsys):
    lines = beta_files["sp500_prices_2022.csv"].read_text().splitlines()
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([*lines[:4], lines[3], *lines[4:]]) + "\n")
    code, _, err = run(capsys, *beta_args(beta_files, "--prices", str(twice)))
    assert code == 2
    day = lines[3].split(",")[0]
    assert f"date {day}" in one_line(err) and "twice" in err


def test_dates_that_cannot_be_ordered_are_refused(beta_files, tmp_path, capsys):
    ambiguous = tmp_path / "ambiguous.csv"  # 2 Jan, 1 Feb, 1 Mar, or 1 Feb, 2 Jan, 3 Jan?
    ambiguous.write_text("date,AAPL,MSFT\n01/02/2022,1,2\n02/01/2022,1.1,2.1\n"
                         "03/01/2022,1.2,2.0\n")
    code, _, err = run(capsys, *beta_args(beta_files, "--prices", str(ambiguous)))
    assert code == 2
    assert "month/day and as day/month" in one_line(err) and "YYYY-MM-DD" in err
    typo = tmp_path / "typo.csv"
    typo.write_text("date,AAPL,MSFT\n2022-01-03,1,2\n2022-01-04,1.1,2.1\n2022-13-05,1.2,2\n"
                    "2022-01-06,1.3,2.2\n")
    code, _, err = run(capsys, *beta_args(beta_files, "--returns", str(typo)))
    assert code == 2
    assert "typo.csv column date has '2022-13-05' in data row 3; a date is needed" in one_line(err)


def test_returns_given_prices(beta_files, capsys):
    code, _, err = run(capsys, *beta_args(beta_files, "--returns",
                                          str(beta_files["sp500_prices_2022.csv"])))
    assert code == 2
    assert "looks like prices: use --prices" in one_line(err)


# --------------------------------------------------------------------------- 8. lesser


def test_gamma_without_mode_gamma(capsys):
    code, out, err = run(capsys, "backtest", "--gamma", "1,5", "--quiet")
    assert code == 2 and out == ""
    assert one_line(err) == "xlfuncs: error: --gamma needs --mode gamma or sector"
    code, out, err = run(capsys, "backtest", "--mode", "gamma", "--tev", "0.02", "--quiet")
    assert code == 2 and out == ""
    assert "--tev" in one_line(err) and "--mode gamma" in err


def test_sector_gamma_sweeps_gamma():
    args = cli.build_parser().parse_args(["backtest", "--mode", "sector", "--gamma", "1,5"])
    table, *_ = cli.backtest_settings(args)
    config = core.BacktestConfig.from_mapping(table)
    assert list(config.specs(12)) == ["sector gamma=1", "sector gamma=5"]


def test_etf_errors_speak_the_command_line(tmp_path, capsys):
    headerless = tmp_path / "w.csv"
    headerless.write_text("AAPL,0.5\nMSFT,0.5\n")
    code, _, err = run(capsys, "etf-holdings", str(headerless))
    assert code == 2
    line = one_line(err)
    assert line.startswith("xlfuncs: error: w.csv has no header row")
    assert "--weights percent" in line and "--weights fraction" in line
    assert "percent=" not in line and "path:" not in line
    code, _, err = run(capsys, "etf-holdings", str(ETF / "ishares_aiq.csv"), "--weights",
                       "fraction")
    assert code == 2
    line = one_line(err)
    assert "--weights fraction" in line and "omit --weights" in line and "percent=" not in line
    code, _, err = run(capsys, "etf-holdings", str(tmp_path / "nope.csv"))
    assert one_line(err) == f"xlfuncs: error: no such file {tmp_path / 'nope.csv'}"


def test_beta_neutral_etf_errors(beta_files, tmp_path, capsys):
    headerless = tmp_path / "w.csv"
    headerless.write_text("AAPL,0.5\nMSFT,0.5\n")
    code, _, err = run(capsys, "beta-neutral", "--holdings",
                       str(beta_files["sample_holdings.csv"]), "--etf", str(headerless),
                       "--prices", str(beta_files["sp500_prices_2022.csv"]))
    assert code == 2
    line = one_line(err)
    assert line.startswith("xlfuncs: error: etf: w.csv has no header row")
    assert "percent=" not in line


def test_blanks_are_called_blanks(sector, beta_files, tmp_path, capsys):
    inputs, corr = sector
    rows = corr.read_text().splitlines()
    cells = rows[3].split(",")
    cells[5] = ""
    rows[3] = ",".join(cells)
    blank = tmp_path / "corr_blank.csv"
    blank.write_text("\n".join(rows) + "\n")
    code, _, err = run(capsys, *implied_args(inputs, blank))
    assert code == 2
    line = one_line(err)
    assert "a blank" in line and "nan" not in line.lower().replace("corr_blank", "")
    header = rows[0].split(",")
    assert f"row {cells[0]}, column {header[5]}" in line

    lines = beta_files["sp500_prices_2022.csv"].read_text().splitlines()
    cells = lines[4].split(",")
    cells[3] = ""
    lines[4] = ",".join(cells)
    prices = tmp_path / "prices_blank.csv"
    prices.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, *beta_args(beta_files, "--prices", str(prices)))
    assert code == 2
    line = one_line(err)
    assert "a blank" in line and "nan" not in line and "np.float64" not in line


def test_readme_implied_example_runs_from_the_repository(monkeypatch, capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    commands = []
    for block in blocks:
        joined = block.replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines()
                     if line.strip().startswith("xlfuncs implied") and "[" not in line]
    assert commands, "the README has no runnable xlfuncs implied example"
    monkeypatch.chdir(ROOT)
    for command in commands:
        argv = shlex.split(command.split("#")[0])[1:]
        assert main(argv) == 0, command
    assert "XLK" in capsys.readouterr().out


def test_implied_cov_is_printed_with_its_digits(sector, capsys):
    code, out, _ = run(capsys, *implied_args(*sector), "--output", "cov")
    assert code == 0
    assert "implied covariance" in out and "implied correlation" not in out
    ex = sector_example()
    ref = core.implied_correlation(ex.weights, ex.vols, 0.116, ex.corr.to_numpy()).cov
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["ticker"])
    printed = np.array([[float(v) for v in line.split()[1:]]
                        for line in lines[start + 1:start + 1 + len(ref)]])
    np.testing.assert_allclose(printed, ref, rtol=1e-4)


def test_beta_neutral_reachable_and_tracking_error_units(beta_files, tmp_path, capsys):
    prices = str(beta_files["sp500_prices_2022.csv"])
    code, out, _ = run(capsys, *beta_args(beta_files, "--prices", prices, "--method",
                                          "reweight", "--periods-per-year", "252"))
    assert code == 0
    assert "any beta is reachable" in out and "inf" not in out
    assert re.search(r"tracking error of the change: [\d.]+ \([\d.]+%\) a year", out)
    code, out, _ = run(capsys, *beta_args(beta_files, "--prices", prices))
    assert code == 0
    assert "per period of the prices" in out and "--periods-per-year" in out
    with sample_path("sp500_prices_2022.csv").open() as fh:
        frame = pd.read_csv(fh, index_col=0)
    cov = core.covariance(core.simple_returns(frame.to_numpy()), "sample", 252)
    cov_file = tmp_path / "cov.csv"
    pd.DataFrame(cov, index=frame.columns, columns=frame.columns).to_csv(cov_file)
    code, out, _ = run(capsys, *beta_args(beta_files, "--cov", str(cov_file)))
    assert code == 0
    assert "per period of the covariance" in out


def test_data_are_described_by_the_dates_used():
    """The demo's and the backtest's data line: the dates used, not the whole sample's span."""
    from xlfuncs.data.market import load_market

    data = load_market("sample:100", end="2002-12-31")
    text = cli._source_text(data)
    assert "2002-12" in text and "2017-03" not in text


def test_implied_weights_typed_in_percent_are_refused(capsys, sector, tmp_path):
    inputs, corr = sector
    frame = pd.read_csv(inputs)
    frame["spy_weight"] *= 100
    pct = tmp_path / "pct.csv"
    frame.to_csv(pct, index=False)
    code, out, err = run(capsys, *implied_args(pct, corr))
    assert code == 2 and out == ""
    assert one_line(err) == ("xlfuncs: error: weights sum to 100: index weights are fractions "
                             "(0.0198 for 1.98%); divide them by 100 or type them as "
                             "percentages")
