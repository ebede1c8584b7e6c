"""The fund holdings API (SPEC 4.1): one POST, checked against the contract, as a snapshot.

``POST {base_url}/all-holdings/summary`` with ``{"fund", "start", "end"}`` answers
``{"start", "end", "trading_days", "holdings": [...]}``, one row per ticker held at
any time in the range. Only the ``active`` rows are kept; their weights are
``value / sum(value)`` over the active rows (shorts keep their negative value).

Retries (at most ``config.retries``, all within one deadline):

* connection failures, dropped connections and 429/502/503/504 answers are
  retried with exponential backoff (as urllib3's: none at first, then
  ``backoff * 2 ** (n - 1)``), honouring ``Retry-After`` in seconds or as an
  HTTP date (a ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` is not
  waited for: the 429 is reported at once rather than freezing Excel);
* the POST is retried although POST is not idempotent in general, because
  this one only reads;
* **500 is not retried**: the API answers 500 for an unknown fund, so asking
  again gives the same answer; it is reported as "the API failed or the fund
  is unknown", with the start of the body;
* a read timeout is not retried: a slow API is not helped by asking it again.

One deadline (``config.deadline``, 60 s by default) covers the whole fetch:
every attempt, the waits between them and the download of the answer. The read
timeout only bounds the gap between two bytes, so the sockets of the fetch are
shut down when the deadline passes, wherever the answer is; a wait that would
pass the deadline is not begun (the message says so). The answer is read in
chunks and refused beyond :data:`MAX_BODY` bytes once decompressed. Redirects are
not followed: a 3xx is reported with the address it names, for ``XLFUNCS_API_URL``.

Every failure is one of the :class:`~xlfuncs.errors.ApiError` subclasses, with a
one-line message; transport exceptions are translated in one place
(:meth:`HoldingsClient._exchange`). The bearer token is never in a message, a
repr, a log record or a snapshot: :class:`xlfuncs.redact.Redactor` goes over the
body and every decoded JSON value before anything is cut, described or parsed;
the token as sent becomes ``***``, and a body (or value) that quotes it in any
other spelling (JSON or percent escapes, HTML references, base64, upper case, or
cut short) is not shown at all.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import pandas as pd
import requests
import urllib3.poolmanager
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ReadTimeoutError

from xlfuncs import __version__
from xlfuncs.config import ENV_FUND, ENV_TIMEOUT, ENV_TOKEN, ENV_URL, Config, load_config
from xlfuncs.core import normalise_ticker
from xlfuncs.errors import (
    ApiConnectionError,
    ApiError,
    ApiResponseError,
    ApiStatusError,
    ApiTimeoutError,
    ConfigError,
    InputError,
)
from xlfuncs.redact import WITHHELD, Redactor

__all__ = [
    "ANALYTICS",
    "COLUMNS",
    "ENDPOINT",
    "FUNDS",
    "MAX_BODY",
    "MAX_RETRY_AFTER",
    "MAX_TEXT",
    "RETRY_STATUSES",
    "Holding",
    "HoldingsClient",
    "HoldingsSnapshot",
    "fetch_holdings",
    "last_business_day",
    "parse_summary",
]

log = logging.getLogger(__name__)

ENDPOINT = "/all-holdings/summary"
FUNDS = ("undergrad", "quant", "brigham_capital", "grad", "quant_paper")  # known in 2025
ANALYTICS = (
    "total_return",
    "volatility",
    "dividends",
    "dividends_per_share",
    "dividend_yield",
    "alpha",
    "beta",
)  # percent-scaled as the API sends them (12.5 means 12.5 %), null allowed
COLUMNS = ("ticker", "shares", "price", "value", "weight", *ANALYTICS)
RETRY_STATUSES = frozenset({429, 502, 503, 504})  # not 500: "unknown fund" is deterministic
MAX_RETRY_AFTER = 10.0  # seconds; a longer Retry-After is reported, not waited for
MAX_BODY = 50 * 2**20  # bytes of an answer, decompressed; a larger one is refused
MAX_TEXT = 256 * 2**10  # bytes of an answer quoted in messages; a larger one is not
BACKOFF_MAX = 120.0  # seconds, as urllib3's
_CHUNK = 64 * 2**10  # bytes read at a time

Progress = Callable[[str], object]


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class Holding:
    """One active position of a fund, as the API reports it, with its weight.

    Attributes
    ----------
    ticker : str
        The API's spelling (IBKR symbol, e.g. ``BRK B``); match it through
        :func:`xlfuncs.core.normalise_ticker`.
    shares, price, value : float
        Shares are negative for a short, and so is its value.
    weight : float
        ``value`` over the total value of the fund's active holdings.
    total_return, volatility, dividends, dividends_per_share, dividend_yield, alpha, beta
        Percent-scaled analytics over the range, ``None`` when the API sends null.
    active : bool
        Always true in a :class:`HoldingsSnapshot` (inactive rows are dropped).

    """

    ticker: str
    shares: float
    price: float
    value: float
    weight: float
    total_return: float | None = None
    volatility: float | None = None
    dividends: float | None = None
    dividends_per_share: float | None = None
    dividend_yield: float | None = None
    alpha: float | None = None
    beta: float | None = None
    active: bool = True


@dataclass(frozen=True)
class HoldingsSnapshot:
    """The active holdings of one fund over a date range, as fetched at one moment.

    Attributes
    ----------
    fund : str
        The fund asked for.
    start, end : datetime.date
        The range as the API answered it.
    trading_days : int
        Trading days in the range, per the API.
    fetched_at : datetime.datetime
        When the answer arrived (timezone-aware, UTC).
    rows : tuple of Holding
        The active holdings in API order; never empty, weights sum to 1.
    inactive : int
        How many inactive rows the API sent and were dropped.

    """

    fund: str
    start: date
    end: date
    trading_days: int
    fetched_at: datetime
    rows: tuple[Holding, ...]
    inactive: int = 0

    @property
    def tickers(self) -> tuple[str, ...]:
        """The tickers of :attr:`rows`, in order, as the API spells them."""
        return tuple(r.ticker for r in self.rows)

    @property
    def total_value(self) -> float:
        """The total value of the active holdings (the denominator of the weights)."""
        return math.fsum(r.value for r in self.rows)

    def to_frame(self) -> pd.DataFrame:
        """The rows as a table, one row per holding, in API order.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`COLUMNS`: ``ticker, shares, price, value, weight``
            then the percent-scaled analytics (NaN where the API sent null).

        """
        frame = pd.DataFrame(
            {c: [getattr(r, c) for r in self.rows] for c in COLUMNS}, columns=list(COLUMNS)
        )
        return frame.astype({c: float for c in COLUMNS[1:]})


def parse_summary(
    payload: object,
    *,
    fund: str,
    fetched_at: datetime | None = None,
    secrets: Iterable[str | None] = (),
) -> HoldingsSnapshot:
    """Check an ``/all-holdings/summary`` answer against the contract and keep the active rows.

    Parameters
    ----------
    payload : object
        The decoded JSON answer.
    fund : str
        The fund asked for (the answer does not repeat it).
    fetched_at : datetime.datetime, optional
        When the answer arrived (default now, UTC).
    secrets : iterable of str, optional
        Text that must not reach a message or the snapshot (the API token,
        should the API echo it): every string goes through
        :meth:`xlfuncs.redact.Redactor.value` first. :class:`HoldingsClient`
        does this already.

    Returns
    -------
    HoldingsSnapshot

    Raises
    ------
    ApiResponseError
        A field is missing or has the wrong type (the message names it and its
        row, e.g. ``holdings[3].shares is text 'abc', a number is needed``); a
        number is too large for a float; start is after end; an
        active ticker appears twice (compared through ``normalise_ticker``);
        there is no active row; the active rows are not worth more than 0.

    """
    payload = Redactor(secrets).value(payload)
    if not isinstance(payload, dict):
        raise ApiResponseError(
            f"the API answer is {_describe(payload)}, an object with holdings is needed"
        )
    if "holdings" not in payload:
        keys = ", ".join(sorted(str(k) for k in payload)) or "none"
        raise ApiResponseError(f"the API answer has no holdings field (its fields: {keys})")
    start = _date_field(payload, "start")
    end = _date_field(payload, "end")
    if start > end:
        raise ApiResponseError(f"the API answer's start {start} is after its end {end}")
    trading_days = _count_field(payload, "trading_days")
    raw = payload["holdings"]
    if not isinstance(raw, list):
        raise ApiResponseError(f"holdings is {_describe(raw)}, a list is needed")

    kept: list[dict[str, Any]] = []
    seen: dict[str, tuple[int, str]] = {}
    inactive = 0
    for i, row in enumerate(raw):
        where = f"holdings[{i}]"
        if not isinstance(row, dict):
            raise ApiResponseError(f"{where} is {_describe(row)}, an object is needed")
        active = row.get("active", _MISSING)
        if not isinstance(active, bool):
            raise ApiResponseError(
                f"{where}.active is {_describe(active)}, true or false is needed"
            )
        if not active:
            inactive += 1
            continue
        ticker = row.get("ticker", _MISSING)
        if not isinstance(ticker, str) or not ticker.strip():
            raise ApiResponseError(f"{where}.ticker is {_describe(ticker)}, a ticker is needed")
        ticker = ticker.strip()
        key = normalise_ticker(ticker)
        if key in seen:
            j, first = seen[key]
            raise ApiResponseError(
                f"{where}.ticker {ticker!r} repeats holdings[{j}].ticker {first!r}: "
                f"{key} is held twice"
            )
        seen[key] = (i, ticker)
        fields = {k: _number(row, k, where) for k in ("shares", "price", "value")}
        if fields["price"] < 0:
            raise ApiResponseError(f"{where}.price is {fields['price']!r}, it cannot be negative")
        fields.update({k: _number(row, k, where, optional=True) for k in ANALYTICS})
        kept.append({"ticker": ticker, **fields})

    if not kept:
        span = f"on {end}" if start == end else f"from {start} to {end}"
        raise ApiResponseError(f"the API returned no active holdings for fund {fund} {span}")
    total = math.fsum(r["value"] for r in kept)
    if not total > 0:
        raise ApiResponseError(
            f"the active holdings of fund {fund} are worth {total:,.2f} in total on {end}; "
            "weights need a positive total"
        )
    return HoldingsSnapshot(
        fund=fund,
        start=start,
        end=end,
        trading_days=trading_days,
        fetched_at=datetime.now(UTC) if fetched_at is None else fetched_at,
        rows=tuple(Holding(weight=r["value"] / total, **r) for r in kept),
        inactive=inactive,
    )


_MISSING: Any = object()


def _describe(value: object) -> str:
    """A value in words for a message: ``text 'abc'``, ``null``, ``a list``, ``12.5``."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"text {value[:40]!r}" if value.strip() else "blank text"
    if isinstance(value, int) and abs(value) >= 10**40:
        if value.bit_length() > 10_000:  # repr refuses more than 4300 digits
            return "a number with thousands of digits"
        return f"a number with {len(str(abs(value)))} digits"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _number(row: Mapping[str, object], key: str, where: str, *, optional: bool = False
            ) -> Any:
    value = row.get(key, _MISSING)
    if optional and (value is _MISSING or value is None):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        need = "a number or null" if optional else "a number"
        raise ApiResponseError(f"{where}.{key} is {_describe(value)}, {need} is needed")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the largest float
        raise ApiResponseError(f"{where}.{key} is too large") from None
    if not math.isfinite(number):
        if optional:
            return None
        raise ApiResponseError(f"{where}.{key} is {value!r}, a finite number is needed")
    return number


def _date_field(payload: Mapping[str, object], key: str) -> date:
    value = payload.get(key, _MISSING)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            try:
                return datetime.fromisoformat(value.strip()).date()
            except ValueError:
                pass
    raise ApiResponseError(f"{key} is {_describe(value)}, a date YYYY-MM-DD is needed")


def _count_field(payload: Mapping[str, object], key: str) -> int:
    value = payload.get(key, _MISSING)
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 2**53:
            raise ApiResponseError(f"{key} is too large")
        if value >= 0:
            return value
    elif isinstance(value, float) and math.isfinite(value) and value >= 0 and value.is_integer():
        return int(value)
    raise ApiResponseError(f"{key} is {_describe(value)}, a whole number is needed")


# --------------------------------------------------------------------------- dates


def last_business_day(today: date | None = None) -> date:
    """The last weekday strictly before ``today`` (holidays are not known here).

    Parameters
    ----------
    today : datetime.date, optional
        Default: today's local date.

    Returns
    -------
    datetime.date
        Friday for a Saturday, Sunday or Monday; else the day before.

    Examples
    --------
    >>> last_business_day(date(2025, 2, 17))  # a Monday
    datetime.date(2025, 2, 14)

    """
    day = date.today() if today is None else _as_date(today, "today")
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _as_date(value: object, name: str) -> date:
    """A date from a ``date``, a ``datetime`` (as Excel cells give) or ISO text."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InputError(f"{name} must be a date (YYYY-MM-DD), not {_describe(value)}", name)


def _span(start: date, end: date) -> str:
    return f"on {end}" if start == end else f"from {start} to {end}"


# --------------------------------------------------------------------------- transport


def _parse_int(text: str) -> int:
    """A JSON integer; one too long for ``int()`` (4300 digits) stays an enormous number."""
    try:
        return int(text)
    except ValueError:
        return -_ENORMOUS if text.startswith("-") else _ENORMOUS


_ENORMOUS = 10**4400  # stands for an integer too long to convert; "too large" in messages


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), ``None`` if unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, math.ceil(seconds * 100) / 100)  # a date in the past: at once


class _Deadline:
    """The time one fetch may take in all; when it is up, the sockets in use are shut down.

    A read timeout only bounds the gap between two bytes: an API that sends one
    byte every few seconds would never time out. A timer shuts the fetch's
    sockets down at the deadline, which ends any read at once, whether it waits
    for the headers or for the body.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._fired = False
        self._closed = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._token: Any = None

    def remaining(self) -> float:
        """Seconds left (0 when the deadline has passed)."""
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        """Whether the time is up (within a few milliseconds: a timeout set to the rest)."""
        return self._fired or self.remaining() <= 0.02

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (at once when it has passed)."""
        with self._lock:
            if self._closed:
                return
            if self._fired:
                _shutdown(sock)
            else:
                self._sockets.append(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._fired = True
            for sock in self._sockets:
                _shutdown(sock)

    def __enter__(self) -> _Deadline:
        self._token = _DEADLINE.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._closed = True
            self._sockets.clear()
        _DEADLINE.reset(self._token)


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("xlfuncs_api_deadline", default=None)


def _shutdown(sock: socket.socket) -> None:
    # the plain socket's shutdown, also for a TLS socket: a blocked read in another thread
    # then returns at once; closing the socket is left to its owner
    with contextlib.suppress(OSError, ValueError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedConnection:
    """A connection whose socket the current fetch's :class:`_Deadline` may shut down."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        """As urllib3's, once the socket is handed to the deadline of this fetch."""
        deadline = _DEADLINE.get()
        sock = getattr(self, "sock", None)
        if deadline is not None and sock is not None:
            deadline.watch(sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """requests' adapter on watched connections, without retries (``_exchange`` does them)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """As requests', with connections the deadline can shut down."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """As requests'; an HTTP proxy's connections are watched too (a SOCKS one's are not)."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` on every request; the repr hides the token.

    As ``session.auth`` it also stops requests from replacing the header with
    ``~/.netrc`` credentials. Redirects are not followed at all.
    """

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(token='***')"


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer, read in full (at most :data:`MAX_BODY`); :attr:`text` is scrubbed."""

    status: int
    headers: Mapping[str, str]
    content: bytes  # as sent (decompressed); parse it, then scrub the values
    encoding: str
    redactor: Redactor

    @functools.cached_property
    def text(self) -> str:
        """The body decoded and scrubbed, for messages and ApiError.body (made when needed).

        A body larger than :data:`MAX_TEXT` is not quoted at all: cutting it first
        could cut an echoed token, and going over all of it every way it may be
        encoded would take seconds.
        """
        if len(self.content) > MAX_TEXT:
            return f"(not shown: {len(self.content):,} bytes)"
        try:
            text = self.content.decode(self.encoding, errors="replace")
        except LookupError:  # a charset Python does not know
            text = self.content.decode("utf-8", errors="replace")
        return self.redactor.text(text)


class _TooLarge(Exception):
    """The answer passed :data:`MAX_BODY` bytes."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (args, ``reason``, cause, context)."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for inner in (*e.args, getattr(e, "reason", None), e.__cause__, e.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)


def _is_read_timeout(exc: BaseException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return False
    return isinstance(exc, requests.ReadTimeout) or any(
        isinstance(c, ReadTimeoutError) for c in _chain(exc)
    )


def _retryable(exc: requests.RequestException) -> bool:
    """Worth asking again: no connection, or a connection dropped before the end."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if _is_read_timeout(exc):
        return False  # a slow API is not helped by asking again
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not go away
    return isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError)


def _connection_reason(exc: BaseException) -> str:
    causes = list(_chain(exc))
    for kinds, words in (
        (ConnectionRefusedError, "connection refused"),
        (socket.gaierror, "host not found (check the URL)"),
        (ConnectionResetError, "the connection was closed without an answer"),
        (ConnectionAbortedError, "the connection was aborted"),
    ):
        if any(isinstance(c, kinds) for c in causes):
            return words
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS (https) handshake failed"
    for c in causes:
        if isinstance(c, OSError) and c.strerror:
            return str(c.strerror).lower()
    return "the connection failed"


def _validation_summary(text: str) -> str | None:
    """``loc: msg; ...`` from a FastAPI 422 body, or ``None`` when it is not one."""
    try:
        detail = json.loads(text)["detail"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(detail, str):
        return detail[:_EXCERPT_ITEM * 3]
    if not isinstance(detail, list) or not detail:
        return None
    parts = []
    for item in detail[:3]:
        if not isinstance(item, dict):
            parts.append(str(item)[:_EXCERPT_ITEM])
            continue
        loc = item.get("loc", [])
        loc = [str(x) for x in loc] if isinstance(loc, list) else [str(loc)]
        if loc and loc[0] == "body":
            loc = loc[1:]
        where = ".".join(loc)[:_EXCERPT_ITEM] or "body"
        parts.append(f"{where}: {str(item.get('msg', 'invalid'))[:_EXCERPT_ITEM]}")
    more = f" and {len(detail) - 3} more" if len(detail) > 3 else ""
    return "; ".join(parts) + more


_EXCERPT_ITEM = 100  # characters of one validation message


def _seconds(x: float) -> str:
    """Seconds for a message: whole from 10 s, else to a tenth (``3600``, ``2.5``)."""
    return f"{round(x)}" if x >= 10 else f"{round(x, 1):g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _range(start: date, end: date) -> str:
    return str(end) if start == end else f"{start} to {end}"


class HoldingsClient:
    """One HTTP session to the fund holdings API, with retries, timeouts and a deadline.

    Use it as a context manager (``with HoldingsClient(config) as api: ...``) so
    the connections are closed. One client per thread (a ``requests.Session``
    is not meant to be shared between threads).

    Parameters
    ----------
    config : Config
        Base URL, token, ``(connect, read)`` timeout, deadline, retries, backoff.

    """

    def __init__(self, config: Config):
        self.config = config
        adapter = _Adapter()  # no retries at this level: _exchange does them, within the deadline
        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(
            {"Accept": "application/json", "User-Agent": f"xlfuncs/{__version__}"}
        )
        if config.token:
            session.auth = _BearerAuth(config.token)
        self._session = session
        self._redactor = Redactor([config.token])

    def __enter__(self) -> HoldingsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        token = "'***'" if self.config.token else "None"
        return f"HoldingsClient(base_url={self.config.base_url!r}, token={token})"

    def close(self) -> None:
        """Close the session's connections."""
        self._session.close()

    # ----------------------------------------------------------------- public calls

    def fetch(
        self,
        fund: str | None = None,
        start: date | None = None,
        end: date | None = None,
        *,
        progress: Progress | None = None,
    ) -> HoldingsSnapshot:
        """Fetch and check the active holdings of ``fund`` (see :func:`fetch_holdings`).

        Parameters
        ----------
        fund : str, optional
            Default ``config.fund``.
        start, end : datetime.date, optional
            ``end`` defaults to :func:`last_business_day`, ``start`` to ``end``.
        progress : callable, optional
            Called with short status messages (for Excel's status bar).

        Returns
        -------
        HoldingsSnapshot

        """
        fund, start, end = self._arguments(fund, start, end)
        say = progress or (lambda _message: None)
        host = self.config.base_url.split("://", 1)[1]
        say(f"Fetching {fund} holdings {_span(start, end)} from {host}...")
        return self._snapshot(self._exchange(fund, start, end), fund, start, end, progress)

    def _snapshot(self, answer: _Answer, fund: str, start: date, end: date,
                  progress: Progress | None) -> HoldingsSnapshot:
        """The answer checked against the contract and the range asked for (any transport)."""
        say = progress or (lambda _message: None)
        payload = self._decode(answer)
        try:
            snapshot = parse_summary(payload, fund=fund)
            if (snapshot.start, snapshot.end) != (start, end):
                raise ApiResponseError(
                    f"the API answered for {_range(snapshot.start, snapshot.end)}, "
                    f"not for {_range(start, end)} as asked"
                )
        except ApiResponseError as exc:
            raise ApiResponseError(str(exc), status=answer.status, body=answer.text) from None
        log.info("%s: %d active holdings, %d inactive dropped, %s to %s", fund,
                 len(snapshot.rows), snapshot.inactive, snapshot.start, snapshot.end)
        say(f"{len(snapshot.rows)} {fund} holdings {_span(snapshot.start, snapshot.end)}"
            f" ({snapshot.inactive} inactive dropped)")
        return snapshot

    def summary(self, fund: str, start: date, end: date) -> Any:
        """The decoded JSON answer of ``/all-holdings/summary``, unchecked.

        Parameters
        ----------
        fund : str
            Fund name.
        start, end : datetime.date
            Date range.

        Returns
        -------
        object
            Whatever JSON the API sent with a 2xx status, the token (should the
            API echo it) replaced by ``***`` in every string.

        Raises
        ------
        ApiError
            A subclass: see :func:`fetch_holdings`.

        """
        fund, start, end = self._arguments(fund, start, end)
        return self._decode(self._exchange(fund, start, end))

    # ----------------------------------------------------------------- internals

    def _arguments(self, fund: object, start: object, end: object) -> tuple[str, date, date]:
        if fund is None:
            fund = self.config.fund
        if fund is None:
            raise ConfigError(
                f"no fund given: name one (e.g. 'undergrad') or set {ENV_FUND} "
                "or fund under [api] in the config file",
                "fund",
            )
        if not isinstance(fund, str) or not fund.strip():
            raise InputError(f"fund must be a fund name such as 'undergrad', not "
                             f"{_describe(fund)}", "fund")
        end_d = last_business_day() if end is None else _as_date(end, "end")
        start_d = end_d if start is None else _as_date(start, "start")
        if start_d > end_d:
            raise InputError(f"start {start_d} is after end {end_d}", "start")
        return fund.strip(), start_d, end_d

    def _exchange(self, fund: str, start: date, end: date) -> _Answer:
        """POST the request, retrying within the deadline; every failure becomes an ApiError."""
        url = self.config.base_url + ENDPOINT
        body = {"fund": fund, "start": start.isoformat(), "end": end.isoformat()}
        log.info("POST %s fund=%s start=%s end=%s", url, fund, start, end)
        began = time.perf_counter()
        attempts = 0
        try:
            with _Deadline(self.config.deadline) as deadline:
                while True:
                    if deadline.expired:
                        raise self._expired(attempts)
                    attempts += 1
                    try:
                        answer = self._attempt(url, body, deadline)
                    except requests.RequestException as exc:
                        if deadline.expired:
                            raise self._expired(attempts) from exc
                        error = self._transport_error(exc, attempts)
                        if not _retryable(exc) or attempts > self.config.retries:
                            raise error from exc
                        wait = self._backoff(attempts)
                        if wait and wait >= deadline.remaining():
                            raise type(error)(f"{error}; {self._no_time(attempts)}") from exc
                    except _TooLarge as exc:
                        raise ApiResponseError(
                            f"the answer of the API at {self.config.base_url} is larger than "
                            f"{MAX_BODY // 2**20} MB", status=exc.status) from None
                    except Exception as exc:  # a socket shut down at the deadline, untranslated
                        if deadline.expired:
                            raise self._expired(attempts) from exc
                        raise
                    else:
                        log.info("POST %s answered %d in %.2f s (%s)", url, answer.status,
                                 time.perf_counter() - began, _plural(attempts, "attempt"))
                        if 200 <= answer.status < 300:
                            return answer
                        wait = self._status_wait(answer, fund, attempts, deadline.remaining())
                    log.info("POST %s: attempt %d failed, retrying in %.2f s", url, attempts,
                             wait)
                    time.sleep(wait)
        except ApiError as error:
            log.info("POST %s failed after %.2f s: %s", url, time.perf_counter() - began, error)
            raise

    def _attempt(self, url: str, body: dict[str, str], deadline: _Deadline) -> _Answer:
        """One request, its answer read in chunks within the deadline and the size limit."""
        connect, read = self.config.timeout
        left = deadline.remaining()
        response = self._session.post(url, json=body, timeout=(min(connect, left),
                                                                min(read, left)),
                                      stream=True, allow_redirects=False)
        with contextlib.closing(response):
            status = response.status_code
            length = response.headers.get("Content-Length", "").strip()
            if length.isdigit() and int(length) > MAX_BODY:
                raise _TooLarge(status)
            chunks, size = [], 0
            for chunk in response.iter_content(_CHUNK):
                size += len(chunk)
                if size > MAX_BODY:
                    raise _TooLarge(status)
                chunks.append(chunk)
            content = b"".join(chunks)
            encoding = response.encoding or "utf-8"
            headers = response.headers
        return _Answer(status, headers, content, encoding, self._redactor)

    def _backoff(self, failures: int) -> float:
        """urllib3's backoff: none after the first failure, then backoff * 2 ** (n - 1)."""
        if failures <= 1:
            return 0.0
        return min(BACKOFF_MAX, self.config.backoff * 2 ** (failures - 1))

    def _status_wait(self, answer: _Answer, fund: str, attempts: int, remaining: float) -> float:
        """After an answer that is not 2xx: the wait before the next attempt, or its error.

        Shared by the requests and the browser transports: only 429/5xx are retried,
        at most ``retries`` times, never for longer than the deadline leaves.
        """
        retried = attempts - 1
        if answer.status not in RETRY_STATUSES or attempts > self.config.retries:
            raise self._status_error(answer, fund, retried)
        after = _retry_after(answer.headers.get("Retry-After"))
        if after is not None and after > MAX_RETRY_AFTER:
            raise self._status_error(answer, fund, retried)
        wait = self._backoff(attempts) if after is None else after
        if wait and wait >= remaining:
            note = (f", more than the {_seconds(remaining)} s left of the "
                    f"{self.config.deadline:g} s limit" if after is not None
                    else f"; {self._no_time(attempts)}")
            raise self._status_error(answer, fund, retried, note=note)
        return wait

    def _no_time(self, attempts: int) -> str:
        return (f"no time for another attempt within the {self.config.deadline:g} s limit "
                f"({_plural(attempts, 'attempt')})")

    def _expired(self, attempts: int) -> ApiTimeoutError:
        return ApiTimeoutError(
            f"the API at {self.config.base_url} did not answer within "
            f"{self.config.deadline:g} s ({_plural(attempts, 'attempt')})"
        )

    def _transport_error(self, exc: requests.RequestException, attempts: int) -> ApiError:
        # never str(exc) here: only our own words, so no header value can leak
        base = self.config.base_url
        connect, read = self.config.timeout
        if isinstance(exc, requests.ConnectTimeout):
            return ApiTimeoutError(
                f"cannot reach {base}: no connection within {connect:g} s "
                f"({_plural(attempts, 'attempt')})"
            )
        if _is_read_timeout(exc):
            return ApiTimeoutError(
                f"the API at {base} did not answer within {read:g} s (read timeout); "
                f"set {ENV_TIMEOUT} to wait longer"
            )
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):
            return ApiConnectionError(
                f"the API at {base} broke off its answer: the connection closed before the end"
            )
        if isinstance(exc, requests.ConnectionError):
            return ApiConnectionError(f"cannot reach {base}: {_connection_reason(exc)}")
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            return ApiResponseError(
                f"the API at {base} sent a compressed answer that cannot be decompressed"
            )
        if isinstance(exc, requests.exceptions.InvalidHeader):
            return ApiError(f"the request to {base} has an invalid header (is {ENV_TOKEN} "
                            "one word?)")
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.URLRequired):
            return ApiError(f"the address {base} is not a valid URL: check {ENV_URL}")
        return ApiError(f"the request to {base} failed ({type(exc).__name__})")

    def _status_error(self, answer: _Answer, fund: str, retried: int, *, note: str = ""
                      ) -> ApiStatusError:
        status = answer.status
        text = answer.text  # scrubbed before it is cut or summarised
        excerpt = ApiError.excerpt(text)
        after = f" after {retried} {'retry' if retried == 1 else 'retries'}" if retried else ""
        wait = _retry_after(answer.headers.get("Retry-After"))
        asks = f"; it asks to wait {_seconds(wait)} s" if wait and wait >= 0.05 else ""
        if 300 <= status < 400:
            message = self._redirect_message(answer)
            excerpt = ""
        elif status == 422:
            summary = _validation_summary(text) or excerpt
            message = f"the API rejected the request (422): {summary}"
            excerpt = ""
        elif status in (401, 403):
            if self.config.token:
                message = (f"the API refused the token ({status}): check {ENV_TOKEN} "
                           "or token under [api] in the config file")
            else:
                message = (f"the API needs a token ({status}): set {ENV_TOKEN} "
                           "or token under [api] in the config file")
        elif status == 404:
            message = (f"the API has no {ENDPOINT} (404): is the base URL "
                       f"{self.config.base_url} right? (set {ENV_URL})")
        elif status == 429:
            message = f"the API is rate limiting requests (429){after}{asks}"
        elif status == 500:
            known = "" if fund in FUNDS else f" (known funds: {', '.join(FUNDS)})"
            message = f"the API failed (500): a server error, or fund {fund!r} is unknown{known}"
        elif status in (502, 503, 504):
            message = f"the API is unavailable ({status}){after}{asks}"
        elif 400 <= status < 500:
            message = f"the API rejected the request ({status})"
        else:
            message = f"the API answered {status}{after}"
        message += note
        if excerpt:
            message += f"; body: {excerpt}"
        # our own words too (a redirect's address): a message never quotes the token
        message = self._redactor.text(message, f"the API answered {status}; {WITHHELD}")
        return ApiStatusError(message, status=status, body=text)

    def _redirect_message(self, answer: _Answer) -> str:
        """Where a 3xx points, without query or credentials, and what to set."""
        status = answer.status
        location = answer.headers.get("Location", "").strip()
        if not location:
            return (f"the API answered {status} (a redirect) without saying where to: "
                    f"check {ENV_URL}")
        try:
            parts = urlsplit(urljoin(self.config.base_url + ENDPOINT, location))
            host = parts.netloc.rpartition("@")[2]
            target = urlunsplit((parts.scheme, host, parts.path, "", ""))
        except ValueError:
            return (f"the API redirected ({status}) to an address that is not a URL: "
                    f"check {ENV_URL}")
        base = target[: -len(ENDPOINT)] if target.endswith(ENDPOINT) else ""
        if len(target) > 120:
            target = target[:117] + "..."
        hint = f" ({base})" if base and len(base) <= 120 else ""
        return (f"the API redirected to {target} ({status}): set {ENV_URL} to the address "
                f"it names{hint}")

    def _decode(self, answer: _Answer) -> Any:
        """The JSON of a 2xx answer, the token (should the API echo it) scrubbed from it."""
        try:
            payload = self._redactor.value(json.loads(answer.content, parse_int=_parse_int))
        except (ValueError, RecursionError):  # not JSON, or nested beyond any reason
            raise ApiResponseError(
                f"the API answered {answer.status} but not with JSON: "
                f"{ApiError.excerpt(answer.text) or 'an empty body'}",
                status=answer.status,
                body=answer.text,
            ) from None
        return payload


def fetch_holdings(
    fund: str | None = None,
    start: date | None = None,
    end: date | None = None,
    *,
    config: Config | None = None,
    client: HoldingsClient | None = None,
    progress: Progress | None = None,
) -> HoldingsSnapshot:
    """The active holdings of a fund over a date range, from the fund API.

    Parameters
    ----------
    fund : str, optional
        ``undergrad``, ``quant``, ``brigham_capital``, ``grad``, ``quant_paper``...
        Default: the configured fund (``XLFUNCS_FUND``).
    start, end : datetime.date, optional
        The range (a ``datetime`` or ISO text is accepted). ``end`` defaults to
        :func:`last_business_day`, ``start`` to ``end``.
    config : Config, optional
        Default :func:`xlfuncs.config.load_config`. Not with ``client``.
    client : HoldingsClient, optional
        An open client to reuse (it is not closed).
    progress : callable, optional
        Called with short status messages (for Excel's status bar).

    Returns
    -------
    HoldingsSnapshot
        Active rows only, in API order, weights summing to 1.

    Raises
    ------
    ConfigError
        No base URL configured, or no fund given nor configured.
    InputError
        A date is malformed, or ``start`` is after ``end``.
    ApiConnectionError
        The API cannot be reached ("cannot reach URL: connection refused").
    ApiTimeoutError
        No connection, or no answer within the read timeout.
    ApiStatusError
        An HTTP error: 422 (the validation messages), 401/403 (token missing
        or refused), 500 (API failure or unknown fund), 429 and 502/503/504
        after the retries.
    ApiResponseError
        The answer breaks the contract (the message names the field and row),
        has no active holdings, a repeated ticker or a non-positive total.

    """
    if client is not None:
        if config is not None:
            raise TypeError("fetch_holdings: pass config or client, not both")
        return client.fetch(fund, start, end, progress=progress)
    with HoldingsClient(load_config() if config is None else config) as own:
        return own.fetch(fund, start, end, progress=progress)
