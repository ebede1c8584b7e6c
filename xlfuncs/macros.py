"""Macros run from Excel's ribbon (xlwings ``RunPython``), and from files through the same code.

``RunPython "import xlfuncs.macros; xlfuncs.macros.refresh_holdings()"`` refreshes
the ``Holdings`` sheet of the calling workbook; ``xlfuncs holdings --workbook``
runs the same function on a file (:class:`~xlfuncs.excel.sheets.OpenpyxlBook`).

A macro reads and checks everything first and writes only once it has
succeeded. When it fails, the only change is its status cell (and the status
bar): ``Refresh failed: <reason>``. Every failure is caught here, at the macro
boundary, and logged; the API token is never written to a cell or a log.
This module does no mathematics and no HTTP: the holdings come from
:func:`xlfuncs.data.holdings.fetch_holdings`.
"""

from __future__ import annotations

import logging
import math
import os
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from xlfuncs.config import ENV_TOKEN, Config, load_config
from xlfuncs.data.holdings import HoldingsSnapshot, fetch_holdings, last_business_day
from xlfuncs.errors import InputError, XlfuncsError
from xlfuncs.excel.macro_support import check_room, describe, failure_reason, one_line, redact
from xlfuncs.excel.sheets import (
    Area,
    Book,
    alert_excel,
    read_cell,
    single_cell,
    subtract,
    write_cell,
)

__all__ = ["HOLDINGS_NAMES", "RefreshResult", "refresh_holdings", "refresh_holdings_async"]

# The add-in's Setup buttons live in xlfuncs.excel.addin; RunPython calls them here
# (``xlfuncs.macros.doctor()``). Imported on first use: that module loads the functions.
_ADDIN = ("doctor", "import_functions", "show_help")


def __getattr__(name: str) -> Any:
    """The add-in's other buttons (:mod:`xlfuncs.excel.addin`, the backtest), imported on use."""
    if name in _ADDIN:
        from xlfuncs.excel import addin

        return getattr(addin, name)
    if name == "run_backtest":
        from xlfuncs.excel.backtest_macro import run_backtest

        return run_backtest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

log = logging.getLogger(__name__)

# The workbook names the refresh reads and writes (see xlfuncs.excel.build.holdings_sheet).
FUND, DATE, TABLE = "Fund", "HoldingsDate", "Holdings"
STATUS, FETCHED_AT, SOURCE, ROWS = (
    "HoldingsStatus", "HoldingsFetchedAt", "HoldingsSource", "HoldingsRows",
)
HOLDINGS_NAMES = (FUND, DATE, TABLE, STATUS, FETCHED_AT, SOURCE, ROWS)
FAILED = "Refresh failed: "


@dataclass(frozen=True)
class RefreshResult:
    """What :func:`refresh_holdings` did.

    Attributes
    ----------
    ok : bool
        Whether the holdings were written.
    status : str
        The line written to ``HoldingsStatus`` and the status bar.
    fund : str, optional
        The fund asked for (``None`` when the failure came before).
    day : datetime.date, optional
        The date asked for.
    area : Area, optional
        Where ``Holdings`` now is (header row included), on success.
    snapshot : HoldingsSnapshot, optional
        The holdings written, on success.
    error : Exception, optional
        The failure (its message is the reason in :attr:`status`).

    """

    ok: bool
    status: str
    fund: str | None = None
    day: date | None = None
    area: Area | None = None
    snapshot: HoldingsSnapshot | None = None
    error: BaseException | None = None

    @property
    def reason(self) -> str:
        """The failure's one-line reason (``""`` on success)."""
        return self.status.removeprefix(FAILED) if not self.ok else ""


@dataclass(frozen=True)
class _Plan:
    """Everything read and checked before the fetch."""

    fund: str
    day: date
    config: Config
    table: Area


def refresh_holdings(
    book: Book | None = None,
    *,
    config: Config | None = None,
    today: date | None = None,
    save: bool = True,
) -> RefreshResult:
    """Fetch the fund's holdings and write them to the ``Holdings`` table.

    Reads the named cells ``Fund`` (blank: the configured fund) and
    ``HoldingsDate`` (a date, or ISO text; blank: the last business day), asks
    the fund API, then writes the table (header row and one row per active
    holding) as one block from the top-left cell of ``Holdings``, blanks what
    is left of a longer old table, makes ``Holdings`` refer to the new block
    and fills ``HoldingsFetchedAt``, ``HoldingsSource``, ``HoldingsRows`` and
    ``HoldingsStatus`` (``OK: N holdings of fund X on DATE (M inactive
    dropped)``). On any failure only ``HoldingsStatus`` changes, to
    ``Refresh failed: <reason>``.

    Parameters
    ----------
    book : Book, optional
        Default: the workbook calling the RunPython macro
        (``xlwings.Book.caller()``).
    config : Config, optional
        Default :func:`xlfuncs.config.load_config` (environment, user file).
    today : datetime.date, optional
        For the default date (default: today).
    save : bool
        Call ``book.save()`` at the end (a live workbook is never saved; a
        file is replaced atomically). With ``False`` the caller saves, or not.

    Returns
    -------
    RefreshResult
        Never raises: the failure is in ``error`` and ``status``.

    """
    secrets = _secrets(config)
    if book is None:
        try:
            from xlfuncs.excel.sheets import XlwingsBook

            book = XlwingsBook.caller()
        except Exception as exc:
            message = one_line(f"no calling workbook (run it from Excel, or pass book=): "
                                f"{type(exc).__name__}: {exc}", secrets)
            log.error("refresh_holdings: %s", message)
            alert_excel(FAILED + message)
            return RefreshResult(False, FAILED + message, error=exc)
    return _run_now(refresh_holdings_async(book, _fetch_now, config=config, today=today,
                                           save=save))


async def _fetch_now(*args: Any, **kwargs: Any) -> HoldingsSnapshot:
    """:func:`~xlfuncs.data.holdings.fetch_holdings`, as an awaitable that never waits."""
    return fetch_holdings(*args, **kwargs)


def _run_now(coroutine: Coroutine[Any, Any, RefreshResult]) -> RefreshResult:
    """The result of a coroutine whose awaits all finish at once, without an event loop.

    The ribbon's refresh (RunPython) must not start an event loop, which fails
    inside a running one; its fetch is synchronous, so the refresh never waits.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("refresh_holdings: the synchronous fetch waited")


async def refresh_holdings_async(
    book: Book,
    fetch: Callable[..., Awaitable[HoldingsSnapshot]],
    *,
    config: Config | None = None,
    today: date | None = None,
    save: bool = True,
) -> RefreshResult:
    """:func:`refresh_holdings` with an awaited fetch (xlwings Lite: the browser's fetch).

    The one implementation of the refresh: :func:`refresh_holdings` runs it with
    :func:`~xlfuncs.data.holdings.fetch_holdings`. Reads and checks everything,
    awaits the fetch, then writes; a failure changes only ``HoldingsStatus``.

    Parameters
    ----------
    book : Book
        The workbook (in Lite, :class:`~xlfuncs.excel.sheets.LiteBook`).
    fetch : callable
        ``await fetch(fund, start, end, config=..., progress=...)`` giving a
        :class:`~xlfuncs.data.holdings.HoldingsSnapshot`, e.g.
        :func:`xlfuncs.data.holdings_fetch.fetch_holdings_browser`.
    config, today, save
        As :func:`refresh_holdings`.

    Returns
    -------
    RefreshResult
        Never raises.

    """
    secrets = _secrets(config)
    plan: _Plan | None = None
    wrote = False
    try:
        plan = _read_inputs(book, config, today)
        secrets |= _secrets(plan.config)
        book.status(f"xlfuncs: fetching holdings of fund {plan.fund} for {plan.day}…")
        snapshot = await fetch(
            plan.fund, plan.day, plan.day, config=plan.config,
            progress=lambda text: book.status(f"xlfuncs: {one_line(text, secrets)}"),
        )
        grid = _table(snapshot)
        new = Area.block(plan.table.sheet, plan.table.first_row, plan.table.first_col,
                         len(grid), len(grid[0]))
        check_room(book, plan.table, new, TABLE)
        status = (f"OK: {len(snapshot.rows)} holdings of fund {snapshot.fund} on "
                  f"{snapshot.end} ({snapshot.inactive} inactive dropped)")
        wrote = True
        _write(book, plan.table, new, grid, snapshot, status)
        book.status(status)
        if save:
            book.save()
        log.info("refresh_holdings: %s (%s)", status, new.address)
        return RefreshResult(True, status, plan.fund, plan.day, new, snapshot)
    except Exception as exc:  # the macro boundary: report, never raise into Excel
        return _fail(book, exc, plan, secrets, wrote=wrote, save=save)


# --------------------------------------------------------------------------- reading


def _read_inputs(book: Book, config: Config | None, today: date | None) -> _Plan:
    """Read and check the inputs and the names the refresh will write (nothing written)."""
    for name in (STATUS, FETCHED_AT, SOURCE, ROWS):
        single_cell(book, name)
    table = book.name_range(TABLE)
    fund_value, fund_cell = read_cell(book, FUND)
    day_value, day_cell = read_cell(book, DATE)
    config = load_config() if config is None else config

    if isinstance(fund_value, str) and fund_value.strip():
        fund = fund_value.strip()
    elif fund_value is None or isinstance(fund_value, str):
        if config.fund is None:
            raise InputError(f"{FUND} ({fund_cell.address}) is blank: type a fund name such "
                             "as undergrad", FUND)
        fund = config.fund
    else:
        raise InputError(f"{FUND} ({fund_cell.address}) must be a fund name such as "
                         f"undergrad, not {describe(fund_value)}", FUND)

    day = _as_day(day_value, day_cell, today)
    limit = date.today() if today is None else today
    if day > limit:
        raise InputError(f"{DATE} ({day_cell.address}) is {day}, after today ({limit})", DATE)
    return _Plan(fund, day, config, table)


def _as_day(value: Any, cell: Area, today: date | None) -> date:
    """The holdings date from a cell: a date, a datetime, ISO text, or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return last_business_day(today)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            try:
                return datetime.fromisoformat(text).date()
            except ValueError:
                pass
    raise InputError(f"{DATE} ({cell.address}) must be a date (YYYY-MM-DD) or blank, not "
                     f"{describe(value)}", DATE)


# --------------------------------------------------------------------------- writing


def _table(snapshot: HoldingsSnapshot) -> list[list[Any]]:
    """Header row, then one row per holding; NaN (a null from the API) as a blank cell."""
    frame = snapshot.to_frame()
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return [[str(c) for c in frame.columns], *rows]


def _cell(value: Any) -> Any:
    if isinstance(value, str) or value is None:
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def _write(book: Book, old: Area, new: Area, grid: list[list[Any]],
           snapshot: HoldingsSnapshot, status: str) -> None:
    book.write_block(new.sheet, new.first_row, new.first_col, grid)
    if new.last_row > old.last_row and old.height > 1:
        # new rows look like the old table's last row (number formats)
        source = Area(old.sheet, old.last_row, new.first_col, old.last_row,
                      min(new.last_col, old.last_col))
        book.copy_format(source, Area(new.sheet, old.last_row + 1, source.first_col,
                                      new.last_row, source.last_col))
    for leftover in subtract(old, new):
        book.clear(leftover)
    book.set_name(TABLE, new)
    fetched = snapshot.fetched_at.astimezone().replace(tzinfo=None)  # local, naive for Excel
    days = snapshot.trading_days
    write_cell(book, FETCHED_AT, fetched)
    write_cell(book, SOURCE, f"{snapshot.fund}, {snapshot.start} to {snapshot.end}, "
                             f"{days} trading day{'' if days == 1 else 's'}")
    write_cell(book, ROWS, float(len(snapshot.rows)))
    write_cell(book, STATUS, status)


# --------------------------------------------------------------------------- failing


def _fail(book: Book, exc: BaseException, plan: _Plan | None, secrets: set[str], *,
          wrote: bool, save: bool) -> RefreshResult:
    """Report a failure: the status cell and bar only; log it (a traceback when unexpected)."""
    reason = one_line(failure_reason(exc), secrets)
    status = FAILED + reason
    if isinstance(exc, XlfuncsError):
        log.warning("refresh_holdings: %s", status)
    else:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("refresh_holdings: %s\n%s", status, redact(trace, secrets))
    try:
        book.status(status)
    except Exception as bar_exc:
        log.warning("refresh_holdings: cannot show the status: %s",
                    one_line(failure_reason(bar_exc), secrets))
    try:
        write_cell(book, STATUS, status)
        if save and not wrote:  # after a (partial) write a file is not saved: it stays as it was
            book.save()
    except Exception as status_exc:
        log.warning("refresh_holdings: cannot record the failure in %s: %s", STATUS,
                    one_line(failure_reason(status_exc), secrets))
    return RefreshResult(False, status, plan.fund if plan else None,
                         plan.day if plan else None, error=exc)


def _secrets(config: Config | None) -> set[str]:
    found = {os.environ.get(ENV_TOKEN, "").strip()}
    if config is not None and config.token:
        found.add(config.token)
    return {s for s in found if s}
