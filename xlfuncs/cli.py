"""The ``xlfuncs`` command: the same core as the Excel functions, without Excel."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xlfuncs import __version__, core
from xlfuncs._files import atomic_write
from xlfuncs.core import Labelled, align, align_all
from xlfuncs.errors import InputError, XlfuncsError

__all__ = ["main"]


# --------------------------------------------------------------------------- file input


def _read_csv(path: str, name: str, **kwargs) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{name}: no such file {path}", name)
    try:
        return pd.read_csv(p, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: {path} is not a readable CSV file ({exc})", name) from None


def _numeric(series: pd.Series, name: str, path: str) -> np.ndarray:
    vals = pd.to_numeric(series, errors="coerce")
    bad = vals.isna()  # a blank, or text that is not a number
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{name}: {path} column {series.name} has {series.iloc[i]!r} in data row {i + 1}; "
            "a number is needed",
            name,
        )
    return vals.to_numpy(dtype=float)


def read_vector(spec: str, name: str, preferred: Sequence[str]) -> Labelled:
    """Read ``FILE[:COLUMN]``: a CSV with an optional ticker column and numeric columns.

    Without ``:COLUMN`` the only numeric column is used, or the first whose name
    is in ``preferred``.
    """
    path, _, column = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    df = _read_csv(path, name)
    if df.empty:
        raise InputError(f"{name}: {path} has no rows", name)
    labels = None
    first = df.columns[0]
    if not pd.api.types.is_numeric_dtype(df[first]) and pd.to_numeric(
        df[first], errors="coerce"
    ).isna().all():
        labels = tuple(str(t).strip() for t in df[first])
        df = df.drop(columns=first)
    if column:
        if column not in df.columns:
            raise InputError(f"{name}: {path} has no column {column} "
                             f"(columns: {', '.join(map(str, df.columns))})", name)
        chosen = column
    elif len(df.columns) == 1:
        chosen = df.columns[0]
    else:
        lowered = {str(c).lower(): c for c in df.columns}
        chosen = next((lowered[p] for p in preferred if p in lowered), None)
        if chosen is None:
            raise InputError(
                f"{name}: {path} has several columns ({', '.join(map(str, df.columns))}); "
                f"say which with {path}:COLUMN",
                name,
            )
    if labels is not None and len({core.normalise_ticker(t) for t in labels}) != len(labels):
        raise InputError(f"{name}: {path} lists a ticker twice", name)
    return Labelled(_numeric(df[chosen], name, path), labels)


def read_matrix(path: str, name: str) -> Labelled:
    """Read a square matrix CSV: labelled (tickers in the header and first column) or not."""
    df = _read_csv(path, name, header=None)
    first_row = df.iloc[0, 1:]
    labelled = pd.to_numeric(first_row, errors="coerce").isna().all()
    if labelled:
        col_labels = [str(c).strip() for c in df.iloc[0, 1:]]
        row_labels = [str(c).strip() for c in df.iloc[1:, 0]]
        body = df.iloc[1:, 1:]
    else:
        body = df
        col_labels = row_labels = None
    vals = np.column_stack([_numeric(body[c], name, path) for c in body.columns])
    if vals.shape[0] != vals.shape[1]:
        raise InputError(f"{name}: {path} is {vals.shape[0]}x{vals.shape[1]}, not square", name)
    if row_labels is None:
        return Labelled(vals)
    idx = align(row_labels, col_labels, f"{name} rows", f"{name} columns")
    return Labelled(vals[:, idx], tuple(row_labels))


def read_grid(path: str, name: str) -> list[list[object]]:
    """A CSV file as a grid of cells (blank cells as None), for the cell parsers."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{name}: no such file {path}", name)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = [[c if c.strip() else None for c in row] for row in csv.reader(fh)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{name}: {path} is not a readable CSV file ({exc})", name) from None
    if not rows:
        raise InputError(f"{name}: {path} is empty", name)
    return rows


def read_holdings(path: str, name: str) -> Labelled:
    """Ticker and weight columns from a CSV (the same rules as the holdings cells in Excel)."""
    from xlfuncs.excel import cells

    grid = read_grid(path, name)  # its errors name the file already
    try:
        return cells.holdings(grid, name)
    except InputError as exc:
        raise InputError(f"{Path(path).name}: {exc}", name) from None


def read_returns_cov(path: str, method: str | None, periods_per_year: float,
                     prices: bool = False) -> Labelled:
    """Covariance with tickers from a returns (or prices) CSV: a date column, then tickers."""
    name = "prices" if prices else "returns"
    df = _read_csv(path, name)
    first = df.columns[0]
    if not pd.api.types.is_numeric_dtype(df[first]):
        df = df.drop(columns=first)  # dates
    cols = tuple(str(c).strip() for c in df.columns)
    vals = np.column_stack([_numeric(df[c], name, path) for c in df.columns])
    if prices:
        vals = core.simple_returns(vals, cols)
    cov = core.covariance(vals, method, periods_per_year, cols)
    return Labelled(cov, cols)


def write_table(df: pd.DataFrame, out: str, index: bool = True) -> None:
    """Write CSV atomically: a temporary file renamed over ``out`` only when complete."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: df.to_csv(tmp, index=index))


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
    labels, arr = align_all(
        weights=read_vector(args.weights, "weights", ("weight", "weights", "spy_weight")),
        vols=read_vector(args.vols, "vols", ("vol", "vols", "implied_vol", "implied_vol_30d")),
        corr=read_matrix(args.corr, "corr"),
    )
    res = core.implied_correlation(arr["weights"], arr["vols"], args.index_vol, arr["corr"],
                                   args.method, labels=labels)
    print(f"implied correlation ({res.method}), {res.corr.shape[0]} assets")
    _print_diagnostics(res)
    matrix = res.cov if args.output == "cov" else res.corr
    frame = _matrix_frame(matrix, labels)
    if args.out:
        write_table(frame, args.out)
        print(f"wrote {args.output} matrix to {args.out}")
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


def _demo_backtest() -> core.BacktestResult:
    from xlfuncs.data.market import load_market
    from xlfuncs.report import stats_table

    print("\n== 3. Factor-model backtest: 100 synthetic stocks, TEV budgets 2% and 5% ==")
    data = load_market("sample:100", end="2002-12-31")
    config = core.BacktestConfig(tev=(0.02, 0.05), end="2002-12-31")
    result = core.run_backtest(data, config)
    print(f"{data.source}\n{len(result.returns)} months, {result.seconds:.1f} s")
    print(stats_table(result).to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return result


def _demo_workbook(path: Path, corr: pd.DataFrame, rebalanced: pd.DataFrame,
                   result: core.BacktestResult) -> None:
    """The results as a workbook, written through the sheet interface the macros use."""
    import openpyxl

    from xlfuncs.excel.sheets import Area, OpenpyxlBook
    from xlfuncs.report import stats_table

    blank = openpyxl.Workbook()
    blank.active.title = "ImpliedCorr"
    for title in ("BetaNeutral", "Backtest"):
        blank.create_sheet(title)
    atomic_write(path, lambda tmp: blank.save(tmp))
    book = OpenpyxlBook(path)
    stats = stats_table(result)
    blocks = {
        "ImpliedCorr": [["", *corr.columns], *[[t, *map(float, row)] for t, row in
                                                zip(corr.index, corr.to_numpy(), strict=True)]],
        "BetaNeutral": [list(rebalanced.columns), *rebalanced.to_numpy().tolist()],
        "Backtest": [list(stats.columns), *stats.to_numpy().tolist()],
    }
    for sheet, grid in blocks.items():
        book.write_block(sheet, 1, 1, grid)
        book.set_name(f"Demo{sheet}", Area.block(sheet, 1, 1, len(grid), len(grid[0])))
    book.save()


def cmd_demo(args: argparse.Namespace) -> int:
    """``xlfuncs demo``: the main jobs on the bundled sample data, and a results workbook."""
    corr, cov = _demo_implied()
    rebalanced = _demo_beta_neutral()
    result = _demo_backtest()
    out = Path(args.out)
    write_table(corr, str(out / "implied_corr.csv"))
    write_table(cov, str(out / "implied_cov.csv"))
    write_table(rebalanced, str(out / "beta_neutral.csv"), index=False)
    from xlfuncs.report import write_results

    write_results(result, out / "backtest")
    _demo_workbook(out / "xlfuncs-demo.xlsx", corr, rebalanced, result)
    print(f"\nwrote implied_corr.csv, implied_cov.csv, beta_neutral.csv, backtest/ and "
          f"xlfuncs-demo.xlsx to {out.resolve()}")
    return 0


def cmd_beta_neutral(args: argparse.Namespace) -> int:
    """``xlfuncs beta-neutral``: rebalance holdings to a target beta to an ETF."""
    from xlfuncs.data.etf_files import read_etf_file

    holdings = read_holdings(args.holdings, "holdings")
    etf = read_etf_file(args.etf)
    etf_weights = Labelled(etf.weights, etf.tickers)
    if args.cov:
        cov = read_matrix(args.cov, "cov")
    else:
        cov = read_returns_cov(args.returns or args.prices, args.risk_method,
                               args.periods_per_year, prices=bool(args.prices))
    res = core.beta_neutral(holdings, etf_weights, cov, args.target, args.method,
                            args.long_only, args.max_weight)
    for line in etf.report():
        print(f"etf: {line}")
    print(f"beta to the ETF: {res.beta_before:.6f} before, {res.beta_after:.6f} after "
          f"(target {res.target_beta:g}, method {res.method}, {res.solver}, "
          f"{res.seconds * 1e3:.1f} ms)")
    print(f"tracking error of the change: {res.tracking_error:.6f} (units of the covariance)")
    if res.reachable is not None:
        print(f"reachable beta: {res.reachable[0]:.6g} to {res.reachable[1]:.6g}")
    table = res.table()
    frame = pd.DataFrame(table[1:], columns=table[0])
    if args.out:
        write_table(frame, args.out, index=False)
        print(f"wrote {len(frame)} rows to {args.out}")
    else:
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.6f}"))
    return 0


def cmd_etf_holdings(args: argparse.Namespace) -> int:
    """``xlfuncs etf-holdings``: read an issuer holdings file into ticker and weight."""
    from xlfuncs.data.etf_files import read_etf_file

    percent = {"percent": True, "fraction": False, None: None}[args.weights]
    etf = read_etf_file(args.file, percent=percent)
    for line in etf.report():
        print(line)
    frame = etf.to_frame()
    if args.out:
        write_table(frame, args.out, index=False)
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
    from xlfuncs.excel.sheets import OpenpyxlBook, write_cell, write_table_xlsx
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
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".xlsx"):
        raise InputError(f"--out must name a .csv or .xlsx file, not {args.out}", "out")
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

    if book is not None:  # the Refresh holdings macro, on the file
        if args.fund:
            write_cell(book, FUND, args.fund)
        if end is not None:
            write_cell(book, DATE, datetime(end.year, end.month, end.day))
        result = refresh_holdings(book, config=config, save=False)
        if not result.ok or result.snapshot is None:
            raise XlfuncsError(result.reason)
        snapshot = result.snapshot
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
        if Path(args.out).suffix.lower() == ".xlsx":
            write_table_xlsx(frame, args.out)
        else:
            write_table(frame, args.out, index=False)
        print(f"wrote {len(frame)} holdings to {args.out}")
    return 0


_BACKTEST_FLAGS = ("mode", "tev", "gamma", "model", "start", "end", "max_weight", "turnover",
                   "cost", "workers", "benchmark", "rebalance_every", "min_history")


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
    for flag in _BACKTEST_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            table[flag] = value
    data = args.data or data
    return table, data, args.factors or factors, args.out or out


def cmd_backtest(args: argparse.Namespace) -> int:
    """``xlfuncs backtest``: walk-forward factor-model backtest, results to a folder."""
    from xlfuncs.data.market import load_market
    from xlfuncs.report import stats_table, write_results

    table, source, factors, out = backtest_settings(args)
    config = core.BacktestConfig.from_mapping(table)  # every setting checked before any work
    data = load_market(source, factors=factors, end=config.end)
    print(f"data: {data.source}, {data.n_assets} assets, {data.n_periods} periods "
          f"({data.dates[0].date()} to {data.dates[-1].date()})")
    names = list(config.specs(data.periods_per_year))
    print(f"strategies: {', '.join(names)}; model {config.model}")
    bar = _progress_bar(args)
    try:
        result = core.run_backtest(data, config, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    stats = stats_table(result).set_index("strategy")
    print(f"\n{len(result.returns)} periods in {result.seconds:.1f} s")
    print(stats.to_string(float_format=lambda v: f"{v:.4f}"))
    if len(result.failures):
        print(f"\n{len(result.failures)} rebalance dates failed; the first: "
              f"{result.failures['reason'].iloc[0]}")
    if out:
        paths = write_results(result, out)
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
    return 1 if doctor.python_broken(checks) else 0


def cmd_build_workbooks(args: argparse.Namespace) -> int:
    """``xlfuncs build-workbooks``: regenerate the workbooks from their sources."""
    from xlfuncs.excel.build import WORKBOOKS_DIR, build_workbooks

    for path in build_workbooks(Path(args.out) if args.out else WORKBOOKS_DIR):
        print(f"built {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``xlfuncs`` command."""
    parser = argparse.ArgumentParser(
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
    p.add_argument("--out", help="write the matrix to this CSV file instead of printing it")
    p.set_defaults(func=cmd_implied)

    p = sub.add_parser("beta-neutral", help="rebalance holdings to a target beta to an ETF")
    p.add_argument("--holdings", required=True,
                   help="CSV with ticker and weight columns (e.g. from xlfuncs holdings)")
    p.add_argument("--etf", required=True,
                   help="the ETF's holdings: an issuer file (iShares, SSGA, Janus Henderson) or "
                   "a ticker,weight CSV")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cov", help="covariance CSV with tickers in the header and first column")
    src.add_argument("--returns", help="returns CSV: a date column, then one column per ticker")
    src.add_argument("--prices", help="prices CSV (oldest first): a date column, then tickers")
    p.add_argument("--risk-method", default=None,
                   help="with --returns/--prices: sample (default), ewma[:HALFLIFE], ledoit-wolf")
    p.add_argument("--periods-per-year", type=float, default=1.0,
                   help="with --returns/--prices: annualisation (252 daily); default 1")
    p.add_argument("--target", type=float, default=0.0, help="target beta (default 0)")
    p.add_argument("--method", choices=("hedge", "reweight"), default="hedge")
    p.add_argument("--long-only", action="store_true", help="reweight: no negative weights")
    p.add_argument("--max-weight", type=float, default=None,
                   help="reweight: largest weight per holding, as a fraction")
    p.add_argument("--out", help="write ticker, current weight, new weight to this CSV")
    p.set_defaults(func=cmd_beta_neutral)

    p = sub.add_parser("etf-holdings", help="read an ETF issuer's holdings file")
    p.add_argument("file", help="iShares CSV, SSGA XLSX, Janus Henderson CSV, or ticker,weight")
    p.add_argument("--weights", choices=("percent", "fraction"), default=None,
                   help="for a plain file whose header does not say: weights are in ...")
    p.add_argument("--out", help="write ticker,weight to this CSV")
    p.set_defaults(func=cmd_etf_holdings)

    p = sub.add_parser("holdings", help="a fund's holdings from the fund API (SPEC 4.1)")
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

    p = sub.add_parser("backtest", help="walk-forward factor-model backtest (SPEC 3.3-3.5)")
    p.add_argument("--config", help="TOML file with a [backtest] table of these settings")
    p.add_argument("--data", help="sample (default), sample:N (synthetic, N stocks), french12, "
                   "or a long CSV/Parquet file (date, permno/ticker, ret, mktcap or prc+shrout)")
    p.add_argument("--factors", help="factor returns (Ken French CSV); default the bundled ones")
    p.add_argument("--mode", help="tev (default), gamma or sector")
    p.add_argument("--tev", help="annual TEV budgets, e.g. 0.02,0.04,0.06")
    p.add_argument("--gamma", help="risk aversions, e.g. 1,5,20")
    p.add_argument("--model", help="factor moments: sample (default), ewma[:HALFLIFE], regime")
    p.add_argument("--start", help="first rebalance date, YYYY-MM-DD")
    p.add_argument("--end", help="last date: every input is cut there")
    p.add_argument("--max-weight", type=float, help="largest weight of one asset")
    p.add_argument("--turnover", type=float, help="one-way turnover limit per rebalance")
    p.add_argument("--cost", type=float, help="proportional cost per unit traded (0.001 = 10bp)")
    p.add_argument("--benchmark", help="auto (default), caps or market")
    p.add_argument("--rebalance-every", type=int, help="periods between rebalances (default 1)")
    p.add_argument("--min-history", type=int, help="periods before the first rebalance")
    p.add_argument("--workers", type=int, help="processes for the sweep (default: one per "
                   "strategy, at most the CPUs)")
    p.add_argument("--out", help="folder for returns.csv, weights.csv, stats.csv and the charts")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("doctor", help="check Python, xlwings, the add-ins and the configuration")
    p.add_argument("--api", action="store_true", help="also check that the fund API answers")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="run the main jobs on the bundled sample data")
    p.add_argument("--out", default="xlfuncs-demo",
                   help="folder for the results (default ./xlfuncs-demo)")
    p.set_defaults(func=cmd_demo)

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


if __name__ == "__main__":
    raise SystemExit(main())
