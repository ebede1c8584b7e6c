"""The Run backtest button: parameters from the Backtest sheet, results back onto it.

``RunPython "import xlfuncs.macros; xlfuncs.macros.run_backtest()"`` (the
ribbon button) reads the named parameter cells ``BtData`` ... ``BtBenchmark``, the
policy limits ``BtIndustryLimit`` ... ``BtFactorNeutral``, ``BtWindows``, the
model's ``BtFactorSet`` and ``BtBetas``, the data frequency and liquidity filters
``BtFrequency`` ... ``BtMinCap``,
checks every setting, loads the data and runs
:func:`xlfuncs.core.run_backtest` with progress in the status bar. Only then
does it write: the statistics table (``BtStats``), the returns table
(``BtReturns``), the crisis-window statistics (``BtCrisis``) and beside them the
per-regime statistics (``BtRegimes``), the charts (to the right of the
parameters: the three of :func:`xlfuncs.report.chart_figures`, the gamma path
in mode anchor, and the active exposures), and ``BtStatus``, ``BtRunAt``,
``BtSource``. A failure changes only
``BtStatus`` (``Run failed: <reason>``).
``xlfuncs backtest`` writes the same results to files; both use :mod:`xlfuncs.report`.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from xlfuncs.core import BacktestConfig, BacktestResult
from xlfuncs.core import run_backtest as run_engine
from xlfuncs.core._executor import Executor
from xlfuncs.errors import InputError, XlfuncsError
from xlfuncs.excel.macro_support import check_room, failure_reason, one_line
from xlfuncs.excel.sheets import (
    Area,
    Book,
    alert_excel,
    read_cell,
    single_cell,
    subtract,
    write_cell,
)

__all__ = ["PARAMETERS", "BacktestRun", "run_backtest"]

log = logging.getLogger(__name__)

#: Named parameter cells -> BacktestConfig settings (data and factors are the sources).
PARAMETERS = {
    "BtData": "data", "BtFactors": "factors", "BtMode": "mode", "BtTev": "tev",
    "BtGamma": "gamma", "BtModel": "model", "BtStart": "start", "BtEnd": "end",
    "BtMaxWeight": "max_weight", "BtTurnover": "turnover", "BtCost": "cost",
    "BtBenchmark": "benchmark", "BtScheduler": "scheduler", "BtIndustryLimit": "industry_limit",
    "BtIndustryLimits": "industry_limits", "BtFactorBounds": "factor_bounds",
    "BtFactorNeutral": "factor_neutral", "BtWindows": "windows",
    "BtFactorSet": "factor_set", "BtBetas": "betas",
    "BtFrequency": "frequency", "BtMinPrice": "min_price",
    "BtMinDollarVolume": "min_dollar_volume", "BtVolumeWindow": "volume_window",
    "BtMinCap": "min_cap",
}
STATUS, RUN_AT, SOURCE, STATS, RETURNS = "BtStatus", "BtRunAt", "BtSource", "BtStats", "BtReturns"
CRISIS, REGIMES = "BtCrisis", "BtRegimes"
FAILED = "Run failed: "
CHART_ROWS = 24  # rows between the charts stacked to the right of the parameters (a chart
                 # is about 430 px tall; a row 20 px)


@dataclass(frozen=True)
class BacktestRun:
    """What :func:`run_backtest` did: ``ok``, the status line, the result or the error."""

    ok: bool
    status: str
    result: BacktestResult | None = None
    error: BaseException | None = None


def _settings(book: Book) -> tuple[dict[str, Any], str, str | None]:
    """The settings from the parameter cells; errors name the cell."""
    values: dict[str, Any] = {}
    for name, key in PARAMETERS.items():
        value, _ = read_cell(book, name)
        if isinstance(value, str):
            value = value.strip() or None
        values[key] = value
    source = str(values.pop("data") or "sample")
    factors = values.pop("factors")
    return values, source, None if factors is None else str(factors)


def _in_cell(exc: InputError) -> InputError:
    """The error, led by the parameter cell of the setting it names (``BtStart: ...``)."""
    cell = next((c for c, k in PARAMETERS.items() if k == exc.argument), None)
    return exc if cell is None else InputError(f"{cell}: {exc}", cell)


def _resolve(path: str | None, book: Book) -> str | None:
    """A relative data path is relative to the workbook's folder."""
    if path is None or path.split(":")[0].strip().lower() in ("sample", "french12"):
        return path
    folder = getattr(book, "folder", None)
    p = Path(path).expanduser()
    return str(p if p.is_absolute() or folder is None else Path(folder) / p)


def _stats_grid(result: BacktestResult) -> list[list[Any]]:
    """The statistics under their plain-English headers."""
    from xlfuncs.report import STATS_HEADERS, stats_table

    table = stats_table(result)
    return [[STATS_HEADERS[c] for c in table.columns],
            *[[None if v != v else v for v in row]
              for row in table.itertuples(index=False, name=None)]]


def _returns_grid(result: BacktestResult) -> list[list[Any]]:
    r = result.returns
    rows = [[d.to_pydatetime(), *[None if v != v else float(v) for v in row]]
            for d, row in zip(r.index, r.itertuples(index=False, name=None), strict=True)]
    return [["date", *map(str, r.columns)], *rows]


def _crisis_grids(result: BacktestResult, factors: Any) -> tuple[list[list[Any]], ...]:
    """The crisis windows' statistics, and the regimes' (``regime`` heads the first column).

    Without regime statistics (too short a history for the model) the regimes'
    first row says why.
    """
    import pandas as pd

    from xlfuncs.report import crisis_table

    windows, regimes, why = crisis_table(result, factors)

    def cell(v: Any) -> Any:
        if isinstance(v, pd.Timestamp):
            return v.to_pydatetime()
        return None if isinstance(v, float) and v != v else v

    def grid(table: pd.DataFrame, first: str, empty: list[Any]) -> list[list[Any]]:
        rows = [[cell(v) for v in row] for row in table.itertuples(index=False, name=None)]
        return [[first, *table.columns[1:]], *(rows or [empty])]

    blank = [None] * len(windows.columns)
    return (grid(windows, "window", blank),
            grid(windows.iloc[:0] if regimes is None else regimes, "regime",
                 [why or None, *blank[1:]]))


def _regimes_area(book: Book, crisis: Area) -> Area:
    """Where the regimes' table is: its name, else (a workbook built before it) beside BtCrisis."""
    if REGIMES in book.names():
        return book.name_range(REGIMES)
    col = crisis.last_col + 2
    return Area(crisis.sheet, crisis.first_row, col, crisis.first_row, col)


def _formats(name: str, header: list[Any]) -> list[str]:
    """The number format of each column of a results table below its header."""
    from xlfuncs.report import STATS_COLUMNS, crisis_format, stat_format

    if name in (CRISIS, REGIMES):
        return [crisis_format(str(c)) for c in header]
    if name == STATS:
        return [stat_format(c) for c in ("strategy", *STATS_COLUMNS)]
    return ["yyyy-mm-dd", *["0.00%"] * (len(header) - 1)]


def _place(book: Book, name: str, grid: list[list[Any]],
           old: Area | None = None) -> tuple[Area, Area]:
    old = old or book.name_range(name)
    new = Area.block(old.sheet, old.first_row, old.first_col, len(grid), len(grid[0]))
    check_room(book, old, new, name)
    return old, new


def _close(figures: list[Any]) -> None:
    import matplotlib.pyplot as plt

    for fig in figures:
        plt.close(fig)


def run_backtest(book: Book | None = None, *, save: bool = True,
                 executor: Executor | None = None) -> BacktestRun:
    """Run the backtest set up on the Backtest sheet and write its results there.

    Parameters
    ----------
    book : Book, optional
        Default: the active workbook of the running RunPython macro.
    save : bool
        Save a workbook file at the end (a live workbook is never saved).
    executor : Executor, optional
        Where the sweep runs (default from the settings); xlwings Lite passes
        :class:`~xlfuncs.core._executor.SerialExecutor`: no processes or threads there.

    Returns
    -------
    BacktestRun
        Never raises: a failure is in ``error`` and in ``BtStatus``.

    """
    from xlfuncs.data.market import load_market
    from xlfuncs.report import (
        EXPOSURE_CHART,
        chart_figures,
        exposure_figure,
        save_charts,
        save_exposure_chart,
    )

    if book is None:
        try:
            from xlfuncs.excel.sheets import XlwingsBook

            book = XlwingsBook.caller()
        except Exception as exc:
            status = FAILED + one_line(f"no calling workbook ({exc})", set())
            log.error("run_backtest: %s", status)
            alert_excel(status)
            return BacktestRun(False, status, error=exc)
    wrote = False
    try:
        # read and check everything first
        for name in (STATUS, RUN_AT, SOURCE):
            single_cell(book, name)
        settings, source, factors = _settings(book)
        try:
            config = BacktestConfig.from_mapping(settings)
        except InputError as exc:
            raise _in_cell(exc) from None
        anchor = book.name_range("BtData")
        book.name_range(STATS)
        book.name_range(RETURNS)
        book.name_range(CRISIS)
        book.status("xlfuncs: loading the data...")
        try:
            data = load_market(_resolve(source, book) or "sample",
                               factors=_resolve(factors, book), end=config.end,
                               frequency=config.frequency)
        except InputError as exc:  # name the cell the analyst typed the source in
            if exc.argument == "frequency":
                raise _in_cell(exc) from None
            cell = "BtFactors" if exc.argument == "factors" else "BtData"
            raise InputError(f"{cell}: {exc}", cell) from None
        total = len(config.specs(data.periods_per_year))

        def progress(done: int, count: int, text: str) -> None:
            book.status(f"xlfuncs: backtest {done}/{count} {text} ({total} strategies)")

        try:
            result = run_engine(data, config, progress=progress, executor=executor)
        except InputError as exc:
            raise _in_cell(exc) from None
        stats, returns = _stats_grid(result), _returns_grid(result)
        crisis, regimes = _crisis_grids(result, data.factors)
        stats_old, stats_new = _place(book, STATS, stats)
        ret_old, ret_new = _place(book, RETURNS, returns)
        crisis_old, crisis_new = _place(book, CRISIS, crisis)
        reg_old, reg_new = _place(book, REGIMES, regimes, _regimes_area(book, crisis_old))
        # a book that takes figures (xlwings Lite, no files there) gets them in memory
        add_figure = getattr(book, "add_figure", None)
        with contextlib.ExitStack() as stack:
            if callable(add_figure):
                charts: list[tuple[str, Any]] = [*chart_figures(result),
                                                 (EXPOSURE_CHART, exposure_figure(result))]
                stack.callback(_close, [fig for _, fig in charts])
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="xlfuncs-charts-"))
                charts = [(p.name, p) for p in (*save_charts(result, Path(tmp)),
                                                save_exposure_chart(result, Path(tmp)))]
            failed = len(result.failures)
            status = (f"OK: {total} strateg{'y' if total == 1 else 'ies'}, "
                      f"{len(result.returns)} periods, "
                      f"{failed} failed rebalance{'s' if failed != 1 else ''}, "
                      f"{result.seconds:.0f} s")
            wrote = True
            for name, old, new, grid in ((STATS, stats_old, stats_new, stats),
                                         (RETURNS, ret_old, ret_new, returns),
                                         (CRISIS, crisis_old, crisis_new, crisis),
                                         (REGIMES, reg_old, reg_new, regimes)):
                book.write_block(new.sheet, new.first_row, new.first_col, grid)
                if new.height > 1:  # every row formatted, however many the run gives
                    for j, fmt in enumerate(_formats(name, grid[0])):
                        col = new.first_col + j
                        book.set_format(Area(new.sheet, new.first_row + 1, col, new.last_row,
                                             col), fmt)
                for leftover in subtract(old, new):
                    book.clear(leftover)
                book.set_name(name, new)
            col = stats_new.first_col + len(stats[0]) + 1
            for k, (file, chart) in enumerate(charts):
                at = Area(anchor.sheet, anchor.first_row + k * CHART_ROWS, col,
                          anchor.first_row + k * CHART_ROWS, col)
                name = f"xlfuncs_{Path(file).stem}"
                if callable(add_figure):
                    add_figure(at, chart, name)
                else:
                    book.add_picture(at, chart, name)
        write_cell(book, RUN_AT, datetime.now().replace(microsecond=0))
        # the data, what its loader dropped, filled or assumed, the model's factors, and
        # what the run noted
        write_cell(book, SOURCE, "; ".join([data.source, *result.notes]))  # data's notes first
        write_cell(book, STATUS, status)
        book.status(status)
        if save:
            book.save()
        return BacktestRun(True, status, result)
    except Exception as exc:  # the macro boundary: report, never raise into Excel
        status = FAILED + one_line(failure_reason(exc), set())
        if not isinstance(exc, XlfuncsError):
            log.error("run_backtest: %s\n%s", status, "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__)))
        try:
            book.status(status)
            write_cell(book, STATUS, status)
            if save and not wrote:
                book.save()
        except Exception as other:
            log.warning("run_backtest: cannot record the failure: %s", other)
        return BacktestRun(False, status, error=exc)
