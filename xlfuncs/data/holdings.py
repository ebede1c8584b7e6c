"""The fund holdings API (SPEC 4.1): one POST, checked against the contract, as a snapshot.

``POST {base_url}/all-holdings/summary`` with ``{"fund", "start", "end"}`` answers
``{"start", "end", "trading_days", "holdings": [...]}``, one row per ticker held at
any time in the range. Only the ``active`` rows are kept; their weights are
``value / sum(value)`` over the active rows (shorts keep their negative value).

Retries (urllib3 ``Retry``, at most ``config.retries``):

* connection failures, dropped connections and 429/502/503/504 answers are
  retried with exponential backoff, honouring ``Retry-After`` (a
  ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` is not waited for: the
  429 is reported at once rather than freezing Excel);
* the POST is retried although POST is not idempotent in general, because
  this one only reads;
* **500 is not retried**: the API answers 500 for an unknown fund, so asking
  again gives the same answer; it is reported as "the API failed or the fund
  is unknown", with the start of the body;
* a read timeout is not retried: a slow API is not helped by asking it again,
  and Excel would wait ``retries + 1`` times the read timeout.

Every failure is one of the :class:`~xlfuncs.errors.ApiError` subclasses, with a
one-line message; transport exceptions are translated in one place
(:meth:`HoldingsClient._send`). The bearer token is never in a message, a repr
or a log record.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import InvalidHeader, MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

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

__all__ = [
    "ANALYTICS",
    "COLUMNS",
    "ENDPOINT",
    "FUNDS",
    "MAX_RETRY_AFTER",
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
    payload: object, *, fund: str, fetched_at: datetime | None = None
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

    Returns
    -------
    HoldingsSnapshot

    Raises
    ------
    ApiResponseError
        A field is missing or has the wrong type (the message names it and its
        row, e.g. ``holdings[3].shares is text 'abc', a number is needed``); an
        active ticker appears twice (compared through ``normalise_ticker``);
        there is no active row; the active rows are not worth more than 0.

    """
    if not isinstance(payload, dict):
        raise ApiResponseError(
            f"the API answer is {_describe(payload)}, an object with holdings is needed"
        )
    if "holdings" not in payload:
        keys = ", ".join(sorted(str(k) for k in payload)) or "none"
        raise ApiResponseError(f"the API answer has no holdings field (its fields: {keys})")
    start = _date_field(payload, "start")
    end = _date_field(payload, "end")
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
    number = float(value)
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
    if (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value >= 0
        and float(value).is_integer()
    ):
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


class _Retry(Retry):
    """urllib3 ``Retry`` that never retries a read timeout and skips a long ``Retry-After``."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):
        """As urllib3's, but a read timeout is raised and a long Retry-After ends the retries."""
        if isinstance(error, ReadTimeoutError):
            raise error  # a slow API is not helped by asking again
        if response is not None and self.respect_retry_after_header:
            wait = self.get_retry_after(response)
            if wait is not None and wait > MAX_RETRY_AFTER:
                # give up now; with raise_on_status=False the 429 itself is returned
                raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {wait:g} s"))
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def get_retry_after(self, response):
        """As urllib3's, but ``None`` for a Retry-After it cannot read."""
        try:
            return super().get_retry_after(response)
        except InvalidHeader:  # an unreadable Retry-After: use the backoff instead
            return None


class _BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` on every request; the repr hides the token.

    As ``session.auth`` it also stops requests from replacing the header with
    ``~/.netrc`` credentials, and requests drops it on a redirect to another host.
    """

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(token='***')"


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


def _retries_made(response: requests.Response) -> int:
    retry = getattr(response.raw, "retries", None)
    return len(getattr(retry, "history", ()) or ())


def _validation_summary(text: str) -> str | None:
    """``loc: msg; ...`` from a FastAPI 422 body, or ``None`` when it is not one."""
    try:
        detail = json.loads(text)["detail"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list) or not detail:
        return None
    parts = []
    for item in detail[:3]:
        if not isinstance(item, dict):
            parts.append(str(item)[:60])
            continue
        loc = item.get("loc", [])
        loc = [str(x) for x in loc] if isinstance(loc, list) else [str(loc)]
        if loc and loc[0] == "body":
            loc = loc[1:]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    more = f" and {len(detail) - 3} more" if len(detail) > 3 else ""
    return "; ".join(parts) + more


class HoldingsClient:
    """One HTTP session to the fund holdings API, with retries and timeouts.

    Use it as a context manager (``with HoldingsClient(config) as api: ...``) so
    the connections are closed. One client per thread (a ``requests.Session``
    is not meant to be shared between threads).

    Parameters
    ----------
    config : Config
        Base URL, token, ``(connect, read)`` timeout, retries, backoff.

    """

    def __init__(self, config: Config):
        self.config = config
        retry = _Retry(
            total=config.retries,
            backoff_factor=config.backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=Retry.DEFAULT_ALLOWED_METHODS | {"POST"},  # this POST only reads
            respect_retry_after_header=True,
            raise_on_status=False,  # the last answer is returned and reported below
        )
        adapter = HTTPAdapter(max_retries=retry)
        session = requests.Session()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(
            {"Accept": "application/json", "User-Agent": f"xlfuncs/{__version__}"}
        )
        if config.token:
            session.auth = _BearerAuth(config.token)
        self._session = session

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
        response = self._send(fund, start, end)
        payload = self._decode(response)
        try:
            snapshot = parse_summary(payload, fund=fund)
        except ApiResponseError as exc:
            raise self._scrub(
                ApiResponseError(str(exc), status=response.status_code, body=response.text)
            ) from None
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
            Whatever JSON the API sent with a 2xx status.

        Raises
        ------
        ApiError
            A subclass: see :func:`fetch_holdings`.

        """
        fund, start, end = self._arguments(fund, start, end)
        return self._decode(self._send(fund, start, end))

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

    def _send(self, fund: str, start: date, end: date) -> requests.Response:
        """POST the request; every transport failure and HTTP error becomes an ApiError here."""
        url = self.config.base_url + ENDPOINT
        body = {"fund": fund, "start": start.isoformat(), "end": end.isoformat()}
        log.info("POST %s fund=%s start=%s end=%s", url, fund, start, end)
        began = time.perf_counter()
        try:
            response = self._session.post(url, json=body, timeout=self.config.timeout)
        except requests.RequestException as exc:
            error = self._transport_error(exc)
            log.info("POST %s failed after %.2f s: %s", url, time.perf_counter() - began, error)
            raise error from exc
        retried = _retries_made(response)
        log.info("POST %s answered %d in %.2f s (%d retries)", url, response.status_code,
                 time.perf_counter() - began, retried)
        if not 200 <= response.status_code < 300:
            error = self._status_error(response, fund, retried)
            log.info("%s", error)
            raise error
        return response

    def _transport_error(self, exc: requests.RequestException) -> ApiError:
        base = self.config.base_url
        connect, read = self.config.timeout
        if isinstance(exc, requests.ConnectTimeout):
            return ApiTimeoutError(
                f"cannot reach {base}: no connection within {connect:g} s "
                f"({self.config.retries + 1} attempts)"
            )
        if isinstance(exc, requests.ReadTimeout) or any(
            isinstance(c, ReadTimeoutError) for c in _chain(exc)
        ):
            return ApiTimeoutError(
                f"the API at {base} did not answer within {read:g} s (read timeout); "
                f"set {ENV_TIMEOUT} to wait longer"
            )
        if isinstance(exc, requests.ConnectionError):
            return ApiConnectionError(f"cannot reach {base}: {_connection_reason(exc)}")
        if isinstance(exc, requests.exceptions.InvalidHeader):
            return ApiError(f"the request to {base} has an invalid header (is {ENV_TOKEN} "
                            "one word?)")
        # never str(exc) here: only the type, so no header value can leak
        return ApiError(f"the request to {base} failed: {type(exc).__name__}")

    def _status_error(self, response: requests.Response, fund: str, retried: int
                      ) -> ApiStatusError:
        status = response.status_code
        text = response.text
        excerpt = ApiError.excerpt(text)
        after = f" after {retried} {'retry' if retried == 1 else 'retries'}" if retried else ""
        if status == 422:
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
            wait = response.headers.get("Retry-After")
            message = f"the API is rate limiting requests (429){after}"
            if wait:
                message += f"; it asks to wait {wait.strip()} s"
        elif status == 500:
            known = "" if fund in FUNDS else f" (known funds: {', '.join(FUNDS)})"
            message = f"the API failed (500): a server error, or fund {fund!r} is unknown{known}"
        elif status in (502, 503, 504):
            message = f"the API is unavailable ({status}){after}"
        elif 400 <= status < 500:
            message = f"the API rejected the request ({status})"
        else:
            message = f"the API answered {status}{after}"
        if excerpt:
            message += f"; body: {excerpt}"
        return self._scrub(ApiStatusError(message, status=status, body=text))

    def _decode(self, response: requests.Response) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            raise self._scrub(
                ApiResponseError(
                    f"the API answered {response.status_code} but not with JSON: "
                    f"{ApiError.excerpt(response.text) or 'an empty body'}",
                    status=response.status_code,
                    body=response.text,
                )
            ) from None

    def _scrub(self, error: ApiError) -> ApiError:
        """``error`` with the token (should the API echo it) replaced by ``***``."""
        token = self.config.token
        if not token:
            return error
        message, body = str(error), error.body
        if token not in message and (body is None or token not in body):
            return error
        return type(error)(
            message.replace(token, "***"),
            status=error.status,
            body=None if body is None else body.replace(token, "***"),
        )


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
