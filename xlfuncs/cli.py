"""The ``xlfuncs`` command: the same core as the Excel functions, without Excel."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from xlfuncs import __version__, core
from xlfuncs._files import file_error_reason, write_csv
from xlfuncs.core import Labelled, align_all
from xlfuncs.data.user_files import read_holdings, read_matrix, read_returns_cov, read_vector
from xlfuncs.errors import InputError, XlfuncsError

__all__ = ["main"]


# --------------------------------------------------------------------------- file output

_OUT_SUFFIXES = (".csv", ".xlsx")


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is a file (no folder can go there)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _write_error(exc: OSError, path: str | os.PathLike) -> XlfuncsError:
    """``cannot write PATH: REASON`` for an OSError raised while writing ``path``."""
    target = Path(exc.filename) if isinstance(exc.filename, str) and exc.filename else Path(path)
    blocker = _file_in_the_way(target)
    if blocker is not None and not isinstance(exc, PermissionError):
        reason = f"{blocker} is a file, not a folder"
    else:
        reason = file_error_reason(exc)
    if isinstance(exc, PermissionError) and target.is_file():
        if not os.access(target, os.W_OK):
            reason += " (the file is read-only)"
        elif os.access(target.parent, os.W_OK):  # then the file is held open by a program
            reason += "; if it is open in Excel, close it in Excel first"
    return XlfuncsError(f"cannot write {target}: {reason}", "out")


@contextmanager
def _writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into one line naming the file."""
    try:
        yield
    except OSError as exc:
        raise _write_error(exc, path) from None


def _probe_folder(folder: Path, shown: Path) -> None:
    """Check that ``folder`` can be created and written, leaving nothing behind."""
    created: list[Path] = []
    try:
        for missing in reversed([d for d in (folder, *folder.parents) if not d.exists()]):
            missing.mkdir()
            created.append(missing)
        fd, tmp = tempfile.mkstemp(prefix=".xlfuncs-check.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise XlfuncsError(f"cannot write {shown}: {file_error_reason(exc)}", "out") from None
    finally:
        for made in reversed(created):
            with suppress(OSError):
                made.rmdir()


def _check_file_target(target: Path) -> None:
    """Raise unless ``target`` can be written: no file in the way, a writable folder, not held."""
    if target.is_dir():
        raise XlfuncsError(f"cannot write {target}: it is a folder, not a file", "out")
    blocker = _file_in_the_way(target)
    if blocker is not None:
        raise XlfuncsError(f"cannot write {target}: {blocker} is a file, not a folder", "out")
    if target.is_file():
        try:  # Excel on Windows holds an open file: it cannot be opened for writing
            with open(target, "r+b"):
                pass
        except OSError as exc:
            raise _write_error(exc, target) from None


def check_out_file(path: str, flag: str = "--out") -> None:
    """Before any work: ``--out`` names a .csv or .xlsx file that can be written."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{flag} {path} is a folder; name a .csv or .xlsx file", "out")
    if target.suffix.lower() not in _OUT_SUFFIXES:
        raise InputError(f"{flag} must name a .csv or .xlsx file, not {path}", "out")
    _check_file_target(target)
    _probe_folder(target.parent, target)


def check_out_folder(path: str | os.PathLike, files: Sequence[str] = ()) -> Path:
    """Before any work: ``path`` is (or can become) a writable folder; ``files`` in it too."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise XlfuncsError(f"cannot write {folder}: it is a file, not a folder", "out")
    blocker = _file_in_the_way(folder)
    if blocker is not None:
        raise XlfuncsError(f"cannot write {folder}: {blocker} is a file, not a folder", "out")
    _probe_folder(folder, folder)
    for name in files:
        _check_file_target(folder / name)
    return folder


def write_table(df: pd.DataFrame, out: str, index: bool = True, sheet: str = "Sheet1") -> None:
    """Write CSV, or ``.xlsx`` for that suffix, atomically (a temporary file renamed).

    Neither runs a formula when opened: text beginning like one is written as text.
    """
    target = Path(out)
    with _writing(target):
        if target.suffix.lower() == ".xlsx":
            from xlfuncs.excel.sheets import write_table_xlsx

            write_table_xlsx(df.reset_index() if index else df, target, sheet=sheet)
        else:
            write_csv(df, target, index=index)


# --------------------------------------------------------------------------- printing


def _print_diagnostics(res: core.ImpliedCorrelation) -> None:
    d = res.diagnostics()
    width = max(len(k) for k in d)
    for key, val in d.items():
        shown = f"{val:.6g}" if isinstance(val, float) else str(val)
        if key == "seconds":
            shown = f"{val * 1e3:.2f} ms"
        print(f"  {key:<{width}}  {shown}")


def _matrix_frame(values: np.ndarray, labels: Sequence[str] | None) -> pd.DataFrame:
    labels = list(labels) if labels is not None else [str(i + 1) for i in range(len(values))]
    return pd.DataFrame(values, index=pd.Index(labels, name="ticker"), columns=labels)


# --------------------------------------------------------------------------- commands


def cmd_implied(args: argparse.Namespace) -> int:
    """``xlfuncs implied``: implied correlation/covariance from CSV files."""
    if args.out:
        check_out_file(args.out)
    labels, arr = align_all(
        wider=("corr",),
        weights=read_vector(args.weights, "weights", ("weight", "weights", "spy_weight")),
        vols=read_vector(args.vols, "vols", ("vol", "vols", "implied_vol", "implied_vol_30d")),
        corr=read_matrix(args.corr, "corr"),
    )
    core.check_units(arr["weights"], arr["vols"], args.index_vol)  # percent typed as numbers
    res = core.implied_correlation(arr["weights"], arr["vols"], args.index_vol, arr["corr"],
                                   args.method, labels=labels)
    what = "covariance" if args.output == "cov" else "correlation"
    print(f"implied {what} ({res.method}), {res.corr.shape[0]} assets"
          + (" (units of the vols squared)" if args.output == "cov" else ""))
    _print_diagnostics(res)
    matrix = res.cov if args.output == "cov" else res.corr
    frame = _matrix_frame(matrix, labels)
    if args.out:
        write_table(frame, args.out, sheet=f"Implied{args.output.capitalize()}")
        print(f"wrote the implied {what} matrix to {args.out}")
    elif args.output == "cov":  # covariances are small: significant digits, not decimals
        print(frame.to_string(float_format=lambda v: f"{v:.6g}"))
    else:
        print(frame.round(4).to_string())
    return 0


def _demo_implied() -> tuple[pd.DataFrame, pd.DataFrame]:
    from xlfuncs.data.samples import sector_example

    ex = sector_example()
    w, v, g = ex.weights.to_numpy(), ex.vols.to_numpy(), ex.corr.to_numpy()
    print("== 1. Option-implied correlation: SPY sector ETFs, 18 Feb 2025 ==")
    inputs = pd.DataFrame({"spy_weight": ex.weights, "implied_vol": ex.vols})
    print(inputs.to_string())
    hist_vol = core.index_vol(w, v, g)
    lo, hi = core.index_vol_range(w, v)
    avg = core.average_implied_correlation(w, v, ex.index_vol)
    print(f"\nSPY implied vol {ex.index_vol:.4f}; the historical correlations imply {hist_vol:.4f}")
    print(f"reachable index vol range {lo:.4f} to {hi:.4f}; CBOE-style average implied "
          f"correlation {avg:.4f}")
    for method in ("shift", "nearest"):
        res = core.implied_correlation(w, v, ex.index_vol, g, method, labels=ex.tickers)
        print(f"\n-- method {method} --")
        _print_diagnostics(res)
    corr = _matrix_frame(res.corr, ex.tickers)
    print("\nimplied correlation (nearest):")
    print(corr.round(3).to_string())
    print("\nchange from historical correlation:")
    print((corr - ex.corr.to_numpy()).round(3).to_string())
    return corr, _matrix_frame(res.cov, ex.tickers)


def _demo_beta_neutral() -> pd.DataFrame:
    from xlfuncs.data.samples import sample_path

    print("\n== 2. Beta-neutral rebalancing: sample holdings against a hypothetical AI ETF ==")
    holdings = read_holdings(str(sample_path("sample_holdings.csv")), "holdings")
    etf = read_holdings(str(sample_path("sample_etf_weights.csv")), "etf_weights")
    cov = read_returns_cov(str(sample_path("sp500_prices_2022.csv")), "ledoit-wolf", 252,
                           prices=True)
    hedge = core.beta_neutral(holdings, etf, cov)
    print(f"beta to the ETF {hedge.beta_before:.4f}; hedge: a position of "
          f"{hedge.new[-1]:.4f} in the ETF -> beta {hedge.beta_after:.2e}")
    reweight = core.beta_neutral(holdings, etf, cov, 0.4, "reweight", long_only=True)
    print(f"long-only reweight to beta 0.4 ({reweight.solver}, tracking error of the change "
          f"{reweight.tracking_error:.2%} a year; reachable {reweight.reachable[0]:.3f} to "
          f"{reweight.reachable[1]:.3f}):")
    table = pd.DataFrame(reweight.table()[1:], columns=reweight.table()[0])
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return table


def _source_text(data: core.MarketData) -> str:
    """Where the data came from, with the span actually used (cut by --end) in place of theirs."""
    span = f"{data.dates[0]:%Y-%m} to {data.dates[-1]:%Y-%m}"
    text, n = re.subn(r"\b\d{4}-\d{2} to \d{4}-\d{2}\b", span, data.source, count=1)
    return text if n else f"{data.source}, {span}"


def _demo_backtest() -> core.BacktestResult:
    from xlfuncs.data.market import load_market
    from xlfuncs.report import stats_table

    print("\n== 3. Factor-model backtest: 100 synthetic stocks, TEV budgets 2% and 5% ==")
    data = load_market("sample:100", end="2002-12-31")
    config = core.BacktestConfig(tev=(0.02, 0.05), end="2002-12-31")
    result = core.run_backtest(data, config)
    r = result.returns.index
    print(f"{_source_text(data)}\n{len(result.returns)} months, {r[0]:%Y-%m} to {r[-1]:%Y-%m}, "
          f"{result.seconds:.1f} s")
    print(stats_table(result).to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return result


def _demo_workbook(path: Path, corr: pd.DataFrame, cov: pd.DataFrame,
                   rebalanced: pd.DataFrame, result: core.BacktestResult,
                   charts: Sequence[Path]) -> None:
    """The results as a workbook laid out and formatted as the shipped ones, charts included."""
    from xlfuncs.excel.build import (
        Block,
        Column,
        InputTable,
        Notes,
        Picture,
        SheetSpec,
        write_results_workbook,
    )
    from xlfuncs.report import STATS_HEADERS, conventions_table, stat_format, stats_table

    def matrix(frame: pd.DataFrame, num_format: str, name: str) -> InputTable:
        return InputTable((Column("Ticker", tuple(map(str, frame.index)), is_input=False),
                           *(Column(str(t), tuple(map(float, frame[t])), num_format,
                                    is_input=False) for t in frame.columns)), name=name)

    def sheet(name: str, title: str, subtitle: str, *blocks: Block) -> SheetSpec:
        return SheetSpec(name=name, code_name=name, title=title, subtitle=subtitle,
                         blocks=blocks, freeze_rows=2, fit_columns=True)

    stats = stats_table(result)
    conventions = conventions_table()
    r = result.returns.index
    sheets = (
        sheet("ImpliedCorr", "Implied correlation: SPY's sector ETFs, 18 Feb 2025",
              "The correlation matrix closest to the historical one that reproduces SPY's "
              "30-day implied vol (method nearest).",
              matrix(corr, "0.000", "DemoImpliedCorr")),
        sheet("ImpliedCov", "Implied covariance: SPY's sector ETFs, 18 Feb 2025",
              "Implied vols with the implied correlation, annualised variance units.",
              matrix(cov, "0.0000", "DemoImpliedCov")),
        sheet("BetaNeutral", "Long-only reweight to a beta of 0.4 to the ETF",
              "The sample holdings changed as little as possible in risk terms.",
              InputTable((Column("Ticker", tuple(map(str, rebalanced["ticker"])),
                                 is_input=False),
                          Column("Current weight", tuple(map(float, rebalanced["current weight"])),
                                 "0.00%", is_input=False),
                          Column("New weight", tuple(map(float, rebalanced["new weight"])),
                                 "0.00%", is_input=False)), name="DemoBetaNeutral")),
        sheet("Backtest", "Factor-model backtest: 100 synthetic stocks",
              f"TEV budgets 2% and 5% a year, monthly from {r[0]:%Y-%m} to {r[-1]:%Y-%m} "
              f"({len(r)} months), against the cap-weighted benchmark.",
              InputTable(tuple(Column(STATS_HEADERS[c], tuple(
                  None if v != v else (v if c == "strategy" else float(v)) for v in stats[c]),
                  "" if c == "strategy" else stat_format(c), is_input=False)
                  for c in stats.columns), name="DemoBacktest"),
              Notes(tuple(f"{STATS_HEADERS[s]}: {text}" for s, text in zip(
                  conventions["statistic"], conventions["convention"], strict=True)),
                  heading="How the statistics are defined"),
              *(Picture(p, title) for p, title in zip(charts, (
                  "Cumulative log return", "Information ratio", "Rolling tracking error"),
                  strict=True))),
    )
    write_results_workbook(path, "xlfuncs demo results", sheets)


_DEMO_FILES = ("implied_corr.csv", "implied_cov.csv", "beta_neutral.csv", "xlfuncs-demo.xlsx")


def _backtest_files() -> tuple[str, ...]:
    """The files ``write_results`` writes into a backtest's folder."""
    from xlfuncs.report import CHARTS, EXPOSURE_CHART, GAMMA_CHART

    return ("returns.csv", "weights.csv", "stats.csv", "conventions.csv", "windows.csv",
            "regimes.csv", "exposures.csv", "risk.csv", "notes.txt", "failures.csv", *CHARTS,
            EXPOSURE_CHART, "filters.csv", "gamma.csv", GAMMA_CHART)


def cmd_demo(args: argparse.Namespace) -> int:
    """``xlfuncs demo``: the main jobs on the bundled sample data, and a results workbook."""
    from xlfuncs.report import CHARTS, write_results

    out = check_out_folder(args.out, [*_DEMO_FILES,
                                      *(f"backtest/{name}" for name in _backtest_files())])
    corr, cov = _demo_implied()
    rebalanced = _demo_beta_neutral()
    result = _demo_backtest()
    write_table(corr, str(out / "implied_corr.csv"))
    write_table(cov, str(out / "implied_cov.csv"))
    write_table(rebalanced, str(out / "beta_neutral.csv"), index=False)
    with _writing(out / "backtest"):
        write_results(result, out / "backtest")
    with _writing(out / "xlfuncs-demo.xlsx"):
        _demo_workbook(out / "xlfuncs-demo.xlsx", corr, cov, rebalanced, result,
                       [out / "backtest" / name for name in CHARTS])
    print(f"\nwrote implied_corr.csv, implied_cov.csv, beta_neutral.csv, backtest/ and "
          f"xlfuncs-demo.xlsx to {out.resolve()}")
    return 0


def _tracking_error_text(te: float, args: argparse.Namespace) -> str:
    """The tracking error of a rebalance with its time unit, which the risk input decides."""
    if args.cov:
        return (f"{te:.6f} per period of the covariance (a year if {Path(args.cov).name} is "
                "annualised)")
    if args.periods_per_year != 1:
        return f"{te:.6f} ({te:.2%}) a year ({args.periods_per_year:g} periods per year)"
    kind = "prices" if args.prices else "returns"
    return (f"{te:.6f} per period of the {kind} (give --periods-per-year, e.g. 252 for daily "
            "data, for a yearly figure)")


def _reachable_text(lo: float, hi: float) -> str:
    if np.isinf(lo) and np.isinf(hi):
        return "any beta is reachable"
    if np.isinf(hi):
        return f"{lo:.6g} or more"
    if np.isinf(lo):
        return f"{hi:.6g} or less"
    if lo == hi:
        return f"only {lo:.6g} (every holding has the same beta)"
    return f"{lo:.6g} to {hi:.6g}"


_ETF_ARGUMENT = re.compile(r"^(path|percent): ")


def _read_etf(path: str, percent: bool | None, prefix: str, weights_flag: bool = False):
    """An ETF holdings file, its errors worded for the command line (options, not arguments)."""
    from xlfuncs.data.etf_files import read_etf_file

    try:
        return read_etf_file(path, percent=percent)
    except InputError as exc:
        text = _ETF_ARGUMENT.sub("", str(exc))
        text = re.sub(r"^(.*?) contradicts percent=False: (.*); omit percent$",
                      r"--weights fraction contradicts \1: \2; omit --weights", text)
        if weights_flag:
            text = text.replace("pass percent=True or percent=False",
                                "pass --weights percent or --weights fraction")
        else:
            text = text.replace(", or pass percent=True or percent=False", "")
        raise InputError(prefix + text, exc.argument) from None


def cmd_beta_neutral(args: argparse.Namespace) -> int:
    """``xlfuncs beta-neutral``: rebalance holdings to a target beta to an ETF."""
    if args.out:
        check_out_file(args.out)
    holdings = read_holdings(args.holdings, "holdings")
    etf = _read_etf(args.etf, None, "etf: ")
    etf_weights = Labelled(etf.weights, etf.tickers)
    notes: list[str] = []
    if args.cov:
        cov = read_matrix(args.cov, "cov")
    else:
        cov = read_returns_cov(args.returns or args.prices, args.risk_method,
                               args.periods_per_year, prices=bool(args.prices), say=notes.append)
    res = core.beta_neutral(holdings, etf_weights, cov, args.target, args.method,
                            args.long_only, args.max_weight)
    for line in etf.report():
        print(f"etf: {line}")
    for note in notes:
        print(note)
    print(f"beta to the ETF: {res.beta_before:.6f} before, {res.beta_after:.6f} after "
          f"(target {res.target_beta:g}, method {res.method}, {res.solver}, "
          f"{res.seconds * 1e3:.1f} ms)")
    print(f"tracking error of the change: {_tracking_error_text(res.tracking_error, args)}")
    if res.reachable is not None:
        print(f"reachable beta: {_reachable_text(*res.reachable)}")
    table = res.table()
    frame = pd.DataFrame(table[1:], columns=table[0])
    if args.out:
        write_table(frame, args.out, index=False, sheet="BetaNeutral")
        print(f"wrote {len(frame)} rows to {args.out}")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.6f}"))
    return 0


def cmd_etf_holdings(args: argparse.Namespace) -> int:
    """``xlfuncs etf-holdings``: read an issuer holdings file into ticker and weight."""
    if args.out:
        check_out_file(args.out)
    percent = {"percent": True, "fraction": False, None: None}[args.weights]
    etf = _read_etf(args.file, percent, "", weights_flag=True)
    for line in etf.report():
        print(line)
    frame = etf.to_frame()
    if args.out:
        write_table(frame, args.out, index=False, sheet="ETF")
        print(f"wrote {len(frame)} holdings to {args.out}")
    else:
        print(frame.to_string(index=False))
    return 0


def cmd_holdings(args: argparse.Namespace) -> int:
    """``xlfuncs holdings``: a fund's holdings from the fund API, to a table or a workbook."""
    import logging
    from datetime import date, datetime

    from xlfuncs.config import ENV_URL, Config, load_config
    from xlfuncs.data.holdings import fetch_holdings
    from xlfuncs.errors import ConfigError
    from xlfuncs.excel.sheets import OpenpyxlBook, write_cell
    from xlfuncs.macros import DATE, FUND, refresh_holdings

    def day(text: str | None, flag: str) -> date | None:
        try:
            return None if text is None else date.fromisoformat(text.strip())
        except ValueError:
            raise InputError(f"{flag} must be a date YYYY-MM-DD, not {text!r}", flag) from None

    package_log = logging.getLogger("xlfuncs")
    if not package_log.handlers:  # no "last resort" log lines: an error is one stderr line
        package_log.addHandler(logging.NullHandler())
    end, start = day(args.date, "--date"), day(args.start, "--start")
    for when, flag in ((end, "--date"), (start, "--start")):
        if when is not None and when > date.today():
            raise InputError(f"{flag} {when} is in the future: the fund has no holdings yet",
                             flag)
    if start is not None and end is not None and start > end:
        raise InputError(f"--start {start} is after --date {end}", "start")
    if args.out:
        check_out_file(args.out)
    if args.workbook and args.start:
        raise InputError("--start does not go with --workbook: the Holdings sheet is for "
                         "one date (--date)", "start")
    if args.base_url:
        try:
            Config(base_url=args.base_url)
        except ConfigError as exc:
            raise ConfigError(f"--base-url: {exc}", "base_url") from None
        config = load_config({**os.environ, ENV_URL: args.base_url})
    else:
        config = load_config()
    book = OpenpyxlBook(args.workbook) if args.workbook else None  # read before fetching
    if book is not None:  # and found writable: not held open by Excel, in a writable folder
        _check_file_target(Path(args.workbook))
        _probe_folder(Path(args.workbook).parent, Path(args.workbook))

    if book is not None:  # the Refresh holdings macro, on the file
        if args.fund:
            write_cell(book, FUND, args.fund)
        if end is not None:
            write_cell(book, DATE, datetime(end.year, end.month, end.day))
        result = refresh_holdings(book, config=config, save=False)
        if not result.ok or result.snapshot is None:
            raise XlfuncsError(result.reason)
        snapshot = result.snapshot
        with _writing(args.workbook):
            book.save()  # atomic; the file is unchanged when anything above failed
    else:
        snapshot = fetch_holdings(args.fund, start, end, config=config)

    frame = snapshot.to_frame()
    span = "1 trading day" if snapshot.trading_days == 1 else (
        f"{snapshot.trading_days} trading days")
    print(f"fund {snapshot.fund}: {len(frame)} holdings on {snapshot.end} "
          f"({snapshot.inactive} inactive dropped)")
    print(f"range {snapshot.start} to {snapshot.end}, {span}; fetched "
          f"{snapshot.fetched_at.astimezone():%Y-%m-%d %H:%M:%S %Z}")
    print(f"total value {snapshot.total_value:,.2f}")
    top = frame.reindex(frame["weight"].abs().sort_values(ascending=False).index).head(10)
    print(f"top {len(top)} holdings by weight:")
    print(top[["ticker", "shares", "value", "weight"]].to_string(
        index=False, formatters={"shares": "{:,.0f}".format, "value": "{:,.2f}".format,
                                 "weight": "{:.2%}".format}))
    if book is not None:
        print(f"refreshed {result.area.address if result.area else 'Holdings'} in {book.title}")
    if args.out:
        write_table(frame, args.out, index=False, sheet="Holdings")
        print(f"wrote {len(frame)} holdings to {args.out}")
    return 0


_BACKTEST_FLAGS = ("mode", "tev", "gamma", "model", "start", "end", "max_weight", "turnover",
                   "cost", "workers", "scheduler", "benchmark", "rebalance_every", "min_history",
                   "industry_limit", "industry_limits", "factor_bounds", "factor_neutral",
                   "windows", "factor_set", "betas", "frequency", "min_price",
                   "min_dollar_volume", "volume_window", "min_cap")


#: The research's workflow on daily CRSP and Ken French files (README, backtest section).
DAILY_WORKFLOW = """\
daily CRSP and Ken French files, compounded to months, with liquidity filters:
  xlfuncs backtest --data crsp_daily.csv --factors F-F_Research_Data_Factors_daily.CSV \\
      --frequency monthly --min-price 5 --min-dollar-volume 1e6 --out tev
  xlfuncs backtest --data crsp_daily.csv --factors F-F_Research_Data_Factors_daily.CSV \\
      --frequency monthly --min-price 5 --min-dollar-volume 1e6 --mode gamma \\
      --gamma 1,5,20 --model regime --out gamma
  xlfuncs backtest --config research.toml --out results  # the same keys in [backtest]
"""


def backtest_settings(args: argparse.Namespace) -> tuple[dict, str, str | None, str | None]:
    """Settings of ``xlfuncs backtest``: the TOML file's ``[backtest]`` table, then the flags.

    Returns the settings for :class:`~xlfuncs.core.BacktestConfig`, the data
    source, the factors file and the output folder.
    """
    import tomllib

    table: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise InputError(f"config: no such file {args.config}", "config")
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"config: {path.name} is not valid TOML ({exc})", "config") from None
        table = dict(doc.get("backtest", doc))
    data = str(table.pop("data", "sample"))
    factors = table.pop("factors", None)
    out = table.pop("out", None)
    if getattr(args, "cache", None) is None and table.get("cache") is not None:
        args.cache = str(table["cache"])
    table.pop("cache", None)
    args.allow_gaps = bool(getattr(args, "allow_gaps", False) or table.pop("allow_gaps", False))
    for flag in _BACKTEST_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            table[flag] = value
    data = args.data or data
    _check_sweep(table, args)
    return table, data, args.factors or factors, args.out or out


def _check_sweep(table: dict, args: argparse.Namespace) -> None:
    """TEV budgets and gammas go with the modes that use them; a sector gamma sweep is one.

    ``BacktestConfig`` ignores gammas in mode tev, and TEV budgets in mode gamma
    (a sheet keeps both cells filled); on the command line a flag that does
    nothing is an error. (A sector sweep over gammas is ``from_mapping``'s.)
    """
    def norm(key: object) -> str:
        return str(key).strip().lower().replace("-", "_").replace(" ", "_")

    values = {norm(k): v for k, v in table.items()}

    def given(setting: str) -> bool:
        v = values.get(setting)
        return v is not None and not (isinstance(v, str) and not v.strip()) and v != []

    def named(setting: str) -> str:
        if getattr(args, setting, None) is not None or not args.config:
            return f"--{setting}"
        return f"{setting} in {Path(args.config).name}"

    mode = str(values.get("mode") or "tev").strip().lower()
    if given("gamma") and mode not in ("gamma", "sector"):
        raise InputError(f"{named('gamma')} needs --mode gamma or sector" + (
            ": mode anchor chooses gamma at each date from the --tev targets"
            if mode == "anchor" else ""), "gamma")
    if given("tev") and mode == "gamma":
        raise InputError(f"{named('tev')} does not go with --mode gamma: the sweep is over "
                         "--gamma", "tev")
    if mode == "sector" and given("gamma") and given("tev"):
        raise InputError(f"--mode sector takes {named('tev')} or {named('gamma')}, not both",
                         "gamma")


def cmd_backtest(args: argparse.Namespace) -> int:
    """``xlfuncs backtest``: walk-forward factor-model backtest, results to a folder."""
    table, source, factors, out = backtest_settings(args)
    config = core.BacktestConfig.from_mapping(table)  # every setting checked before any work
    if out:  # and the folder, before minutes of work
        check_out_folder(out, _backtest_files())
    # A Dask scheduler is reached now, before the data are read: one line if it cannot be.
    # Local worker processes' fork server starts now too, and gets ready while they load.
    executor = core.make_executor(config.workers, config.scheduler)
    try:
        return _run_backtest(args, config, source, factors, out, executor)
    finally:
        executor.close()


def _run_backtest(args: argparse.Namespace, config: core.BacktestConfig, source: str,
                  factors: str | None, out: str | None, executor: core.Executor) -> int:
    from xlfuncs.data.estimate_cache import DiskCache
    from xlfuncs.data.market import load_market
    from xlfuncs.report import stats_table, write_results

    data = load_market(source, factors=factors, end=config.end, allow_gaps=args.allow_gaps,
                       frequency=config.frequency)
    print(f"data: {_source_text(data)}, {data.n_assets} assets, {data.n_periods} periods "
          f"({data.dates[0].date()} to {data.dates[-1].date()})")
    for note in data.notes:  # what the loader dropped, filled or assumed
        print(f"  note: {note}")
    names = list(config.specs(data.periods_per_year))
    where = (f"; on the Dask cluster at {config.scheduler}" if config.scheduler else "")
    print(f"strategies: {', '.join(names)}; model {config.model}{where}")
    cache = DiskCache(args.cache) if getattr(args, "cache", None) else None
    bar = _progress_bar(args)
    try:
        result = core.run_backtest(data, config, progress=bar.update if bar else None,
                                   executor=executor, cache=cache)
    finally:
        if bar:
            bar.close()
    stats = stats_table(result).set_index("strategy")
    print(f"\n{len(result.returns)} periods in {result.seconds:.1f} s")
    print(stats.to_string(float_format=lambda v: f"{v:.4f}"))
    if len(result.failures):
        print(f"\n{len(result.failures)} rebalance dates failed; the first: "
              f"{result.failures['reason'].iloc[0]}")
    for note in result.notes[len(data.notes):]:  # the run's own (the data's come first)
        print(f"  note: {note}")
    if out:
        with _writing(out):
            paths = write_results(result, out, data.factors, executor)
        print(f"\nwrote {', '.join(p.name for p in paths)} to {out}")
    return 0


class _Bar:
    """A tqdm progress bar fed with ``(done, total, text)``."""

    def __init__(self) -> None:
        self._bar = None

    def update(self, done: int, total: int, text: str) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, unit="date" if text != "strategies" else "strategy",
                             file=sys.stderr, leave=False)
        self._bar.n = done
        self._bar.set_postfix_str(text, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _progress_bar(args: argparse.Namespace) -> _Bar | None:
    return None if args.quiet else _Bar()


def cmd_doctor(args: argparse.Namespace) -> int:
    """``xlfuncs doctor``: check the chain Python -> xlwings -> Excel, with fixes."""
    from xlfuncs import doctor

    checks = doctor.run_checks(api=args.api)
    print(doctor.render(checks))
    return doctor.exit_code(checks)


def cmd_lite(args: argparse.Namespace) -> int:
    """Write main.py and requirements.txt for the xlwings Lite editor."""
    from xlfuncs.excel.lite import write_lite

    for path in write_lite(args.out, args.wheel):
        print(path)
    return 0


def cmd_build_workbooks(args: argparse.Namespace) -> int:
    """``xlfuncs build-workbooks``: regenerate the workbooks from their sources."""
    from xlfuncs.excel.build import WORKBOOKS_DIR, build_workbooks

    out = check_out_folder(Path(args.out) if args.out else WORKBOOKS_DIR)
    with _writing(out):
        paths = build_workbooks(out)
    for path in paths:
        print(f"built {path}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        """Print ``xlfuncs: error: COMMAND: MESSAGE (see ... --help)`` and exit with code 2."""
        command = self.prog.removeprefix("xlfuncs").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"xlfuncs: error: {where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xlfuncs`` command."""
    parser = _Parser(
        prog="xlfuncs",
        description="xlfuncs: the fund's Excel functions and macros, from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"xlfuncs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("implied", help="option-implied correlation/covariance from CSV files")
    p.add_argument("--weights", required=True,
                   help="CSV of index weights: ticker column + weight column (FILE[:COLUMN])")
    p.add_argument("--vols", required=True,
                   help="CSV of implied vols: ticker column + vol column (FILE[:COLUMN])")
    p.add_argument("--index-vol", required=True, type=float, help="the index implied vol")
    p.add_argument("--corr", required=True,
                   help="CSV correlation matrix, labelled (tickers in header and first column)")
    p.add_argument("--method", choices=("nearest", "shift"), default="nearest")
    p.add_argument("--output", choices=("corr", "cov"), default="corr",
                   help="which matrix to write (default corr)")
    p.add_argument("--out", help="write the matrix to this .csv or .xlsx file instead of "
                   "printing it")
    p.set_defaults(func=cmd_implied)

    p = sub.add_parser("beta-neutral", help="rebalance holdings to a target beta to an ETF")
    p.add_argument("--holdings", required=True,
                   help="CSV or .xlsx (first sheet) with ticker and weight columns (e.g. "
                   "from xlfuncs holdings)")
    p.add_argument("--etf", required=True,
                   help="the ETF's holdings: an issuer file (iShares, SSGA, Janus Henderson) or "
                   "a ticker,weight CSV")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cov", help="covariance CSV with tickers in the header and first column")
    src.add_argument("--returns", help="returns CSV: a date column, then one column per ticker")
    src.add_argument("--prices", help="prices CSV: a date column (rows are put in date order), "
                     "then one column per ticker")
    p.add_argument("--risk-method", default=None,
                   help="with --returns/--prices: sample (default), ewma[:HALFLIFE], ledoit-wolf")
    p.add_argument("--periods-per-year", type=float, default=1.0,
                   help="with --returns/--prices: annualisation (252 daily); default 1")
    p.add_argument("--target", type=float, default=0.0, help="target beta (default 0)")
    p.add_argument("--method", choices=("hedge", "reweight"), default="hedge")
    p.add_argument("--long-only", action="store_true", help="reweight: no negative weights")
    p.add_argument("--max-weight", type=float, default=None,
                   help="reweight: largest weight per holding, as a fraction")
    p.add_argument("--out", help="write ticker, current weight, new weight to this .csv or "
                   ".xlsx file")
    p.set_defaults(func=cmd_beta_neutral)

    p = sub.add_parser("etf-holdings", help="read an ETF issuer's holdings file")
    p.add_argument("file", help="iShares CSV, SSGA XLSX, Janus Henderson CSV, or ticker,weight")
    p.add_argument("--weights", choices=("percent", "fraction"), default=None,
                   help="for a plain file whose header does not say: weights are in ...")
    p.add_argument("--out", help="write ticker,weight to this .csv or .xlsx file")
    p.set_defaults(func=cmd_etf_holdings)

    p = sub.add_parser("holdings", help="a fund's holdings from the fund API")
    p.add_argument("--fund", help="undergrad, quant, brigham_capital, grad or quant_paper "
                   "(default: XLFUNCS_FUND; with --workbook: its Fund cell)")
    p.add_argument("--date", help="holdings date YYYY-MM-DD (default: the last business day; "
                   "with --workbook: its HoldingsDate cell)")
    p.add_argument("--start", help="start of the range YYYY-MM-DD (default: --date)")
    p.add_argument("--base-url", help="the fund API (default: XLFUNCS_API_URL or the config "
                   "file)")
    p.add_argument("--out", help="write the table to this .csv or .xlsx file")
    p.add_argument("--workbook", help="refresh the Holdings sheet of this .xlsm/.xlsx file, as "
                   "the Refresh holdings macro does")
    p.set_defaults(func=cmd_holdings)

    p = sub.add_parser("backtest", help="walk-forward factor-model backtest",
                       epilog=DAILY_WORKFLOW, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="TOML file with a [backtest] table of these settings")
    p.add_argument("--data", help="sample (default), sample:N (synthetic, N stocks), french12, "
                   "or a long CSV/Parquet file (date, permno/ticker, ret, mktcap or prc+shrout)")
    p.add_argument("--factors", help="factor returns (Ken French CSV); default the bundled ones")
    p.add_argument("--allow-gaps", action="store_true",
                   help="read a month missing inside a stock's listed life as no data (a data "
                        "file's gaps are errors otherwise); allow_gaps = true in --config")
    p.add_argument("--mode", help="tev (default), gamma, sector or anchor (gamma chosen at each "
                   "rebalance so that the ex-ante TE equals each --tev)")
    p.add_argument("--tev", help="annual TEV budgets (targets with --mode anchor), e.g. "
                   "0.02,0.04,0.06")
    p.add_argument("--gamma", help="risk aversions, e.g. 1,5,20 (with --mode gamma or sector)")
    p.add_argument("--model", help="factor moments: sample (default), ewma[:HALFLIFE], regime")
    p.add_argument("--start", help="first rebalance date, YYYY-MM-DD")
    p.add_argument("--end", help="last date: every input is cut there")
    p.add_argument("--max-weight", type=float, help="largest weight of one asset")
    p.add_argument("--turnover", type=float, help="one-way turnover limit per rebalance")
    p.add_argument("--cost", type=float, help="proportional cost per unit traded (0.001 = 10bp)")
    p.add_argument("--industry-limit", type=float,
                   help="policy limit on every industry's active weight |u - u_b|, e.g. 0.05")
    p.add_argument("--industry-limits", help='limits for named industries, e.g. "Energy=0.02; '
                   'Finance=0.03" (override --industry-limit for them)')
    p.add_argument("--factor-bounds", help='active factor exposure bounds, e.g. "SMB=-0.2:0.2; '
                   'HML=-0.1:0.1"')
    p.add_argument("--factor-neutral", action="store_true", default=None,
                   help="hold every active factor exposure at 0")
    p.add_argument("--windows", help='crisis windows for windows.csv, e.g. "GFC=2007-10:2009-03; '
                   'Covid=2020-02:2020-04" (default 1973-74, 1987, 2000-02, 2008-09, 2020)')
    p.add_argument("--benchmark", help="auto (default), caps or market")
    p.add_argument("--rebalance-every", type=int, help="periods between rebalances (default 1)")
    p.add_argument("--min-history", type=int, help="periods before the first rebalance")
    p.add_argument("--workers", type=int, help="local processes for the sweep (default: one "
                   "per CPU; 1 = none)")
    p.add_argument("--scheduler", help="run the sweep on a Dask cluster: its scheduler's "
                   "address, e.g. tcp://10.0.0.5:8786 (needs xlfuncs[cluster])")
    p.add_argument("--cache", help="folder that keeps the estimates between runs, so another "
                   "sweep over the same data only re-solves")
    p.add_argument("--out", help="folder for returns.csv, weights.csv, stats.csv and the charts")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--factor-set", help='the factors the model uses, by their names in the '
                   'factor file, e.g. "Mkt-RF, SMB, HML" (default: every factor)')
    p.add_argument("--betas", help="loadings: ols (default) or regime (per-state weighted "
                   "least squares mixed by the forecast state probabilities; --model regime)")
    p.add_argument("--frequency", help="rebalance frequency, monthly or weekly: daily data and "
                   "factors (CRSP, Ken French) are compounded to it; default monthly for daily "
                   "or weekly data, else the data's own")
    p.add_argument("--min-price", type=float, help="liquidity filter: the smallest price at a "
                   "rebalance date (needs prc), e.g. 5")
    p.add_argument("--min-dollar-volume", type=float, help="liquidity filter: the smallest "
                   "average dollar volume (|prc| x vol) per period over --volume-window periods")
    p.add_argument("--volume-window", type=int, help="periods of that average (default a year: "
                   "12 monthly, 52 weekly)")
    p.add_argument("--min-cap", type=float, help="liquidity filter: the smallest market cap, in "
                   "the data's units (CRSP: $ thousands)")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("doctor", help="check Python, xlwings, the add-ins and the configuration")
    p.add_argument("--api", action="store_true", help="also check that the fund API answers")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="run the main jobs on the bundled sample data")
    p.add_argument("--out", default="xlfuncs-demo",
                   help="folder for the results (default ./xlfuncs-demo)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("lite", help="write main.py and requirements.txt for xlwings Lite "
                       "(Excel on a Mac or on the web)")
    p.add_argument("--out", default=".", help="folder for the two files (default: here)")
    p.add_argument("--wheel", help="URL of the xlfuncs wheel to install (default: xlfuncs from "
                   "the package index)")
    p.set_defaults(func=cmd_lite)

    p = sub.add_parser("build-workbooks",
                       help="regenerate workbooks/*.xlsm from the sources in the repository")
    p.add_argument("--out", help="destination folder (default: the repository's workbooks/)")
    p.set_defaults(func=cmd_build_workbooks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xlfuncs`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XlfuncsError as exc:
        print(f"xlfuncs: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xlfuncs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a program that stopped reading (| head)
        with suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a file the commands did not expect to fail: say which and why
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"xlfuncs: error: {where}{file_error_reason(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line, unless asked for the traceback
        if os.environ.get("XLFUNCS_DEBUG"):
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"xlfuncs: error: unexpected {type(exc).__name__}{': ' if text else ''}{text} "
              "(a bug in xlfuncs: please report it; set XLFUNCS_DEBUG=1 for the details)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
