"""A real loopback fund holdings API for tests: the SPEC 4.1 contract plus scripted faults.

:class:`FundApi` is a stdlib ``ThreadingHTTPServer`` on ``127.0.0.1`` (a free port),
serving ``POST /all-holdings/summary`` in a daemon thread:

* it validates the body like FastAPI (422 ``{"detail": [{"loc", "msg", "type"}]}``),
  answers 500 ``Internal Server Error`` for an unknown fund, 401 when it has a
  token and the request does not carry ``Authorization: Bearer <token>``;
* otherwise it serves ``{"start", "end", "trading_days", "holdings"}`` with
  :attr:`FundApi.holdings` (by default :func:`sample_holdings`);
* every request is recorded (:attr:`FundApi.requests`: method, path, headers,
  body, arrival time), so tests can count retries and check what was sent;
* faults are scripted: :meth:`FundApi.script` queues one step per coming
  request; when the queue is empty the contract answer is given. A step is a
  :class:`Reply` or a string::

      "ok"                  the contract answer        "ok:delay=1.5"  ... after 1.5 s
      "500" "502" "422"...  that status, a realistic body ("429:retry-after=1" adds
                            a Retry-After header; any step takes delay=SECONDS)
      "drop"                close the connection without answering
      "invalid-json"        200 with a truncated JSON body
      "no-holdings"         200, the contract answer without "holdings"
      "empty"               200, "holdings": []
      "echo"                400, the request's headers (Authorization too) in the body
      "301:location=URL"    a redirect (any step takes location=URL)
      "ok:drip=0.2"         the answer's body one byte every 0.2 s (a stalling API);
                            "ok:drip-all=0.2" drips the status line and headers too
      "ok:gzip"             the body gzip-compressed (Content-Encoding: gzip)
      "ok:cut"              half the body, then the connection is closed

  ``Reply(echo=True)`` replaces ``{authorization}`` in its body, JSON or holdings by
  the request's Authorization header (an API that quotes the token back).

  Wrong field types, shorts, duplicates, inactive rows or N holdings are served
  by setting :attr:`FundApi.holdings` or with ``Reply(holdings=[...])``.

:func:`closed_port` gives a URL on which connections are refused,
:func:`stalled_port` one on which connecting hangs (connect timeouts). The
``fund_api`` and ``refused_url`` fixtures are defined here (as the functions
``fund_api_fixture`` and ``refused_url_fixture``, so importing them into a test
module or ``conftest.py`` does not shadow a name). The server does not import xlfuncs.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import html
import itertools
import json
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = [
    "FUNDS",
    "PATH",
    "FundApi",
    "Recorded",
    "Reply",
    "closed_port",
    "fund_api_fixture",
    "leaks",
    "refused_url_fixture",
    "sample_holdings",
    "stalled_port",
    "token_spellings",
]

PATH = "/all-holdings/summary"
FUNDS = ("undergrad", "quant", "brigham_capital", "grad", "quant_paper")

# real symbols as IBKR writes them (share classes with a space)
_POOL = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "V", "UNH", "XOM",
    "JNJ", "PG", "MA", "HD", "CVX", "MRK", "ABBV", "PEP", "KO", "AVGO", "COST", "LLY",
    "WMT", "MCD", "CSCO", "ACN", "TMO", "ABT", "DHR", "NKE", "TXN", "NEE", "PM",
    "UPS", "RTX", "HON", "LOW", "INTC", "QCOM", "AMGN", "IBM", "CAT", "GS", "BA",
    "SBUX", "DE", "BLK", "GE", "MMM", "ADP", "GILD", "MDT", "ISRG", "LMT", "SPGI",
    "BF B", "LEN B", "HEI A", "MOG A", "UHAL B", "SPY", "IWM", "TLT", "GLD", "XLE",
)


# --------------------------------------------------------------------------- sample data


def sample_holdings(
    n: int = 20, seed: int = 0, *, inactive: int | None = None, shorts: int | None = None
) -> list[dict[str, Any]]:
    """A deterministic, realistic portfolio in the API's row format.

    Parameters
    ----------
    n : int
        Active holdings (``BRK B`` always among them when ``n >= 1``).
    seed : int
        Seed of the generator: the same arguments give the same rows.
    inactive : int, optional
        Inactive rows (sold during the range: 0 shares, 0 value) mixed in;
        default ``max(1, n // 10)`` (0 when ``n == 0``).
    shorts : int, optional
        Active rows with negative shares and value; default 1 when ``n >= 2``.
        Shorts are small, so the total value stays positive.

    """
    inactive = (max(1, n // 10) if n else 0) if inactive is None else inactive
    shorts = (1 if n >= 2 else 0) if shorts is None else shorts
    if shorts >= max(n, 1):
        raise ValueError("sample_holdings needs at least one long position")
    rng = random.Random(seed)
    tickers = _tickers(n + inactive, rng)
    active_tickers = tickers[:n]
    rows: list[dict[str, Any]] = []
    long_values = []
    for k, ticker in enumerate(active_tickers):
        price = round(rng.uniform(8, 900), 2)
        if k < n - shorts:
            shares = float(rng.randint(20, 3000))
            long_values.append(shares * price)
        else:  # a short of 2-8 % of an average long
            mean_long = sum(long_values) / len(long_values)
            shares = -float(max(1, round(rng.uniform(0.02, 0.08) * mean_long / price)))
        rows.append(_row(ticker, True, shares, price, rng))
    rows.extend(_row(t, False, 0.0, round(rng.uniform(8, 900), 2), rng)
                for t in tickers[n:])
    rng.shuffle(rows)
    return rows


def _tickers(count: int, rng: random.Random) -> list[str]:
    pool = [t for t in _POOL if t != "BRK B"]
    rng.shuffle(pool)
    chosen = (["BRK B"] if count else []) + pool[: max(0, count - 1)]
    taken = set(chosen)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while len(chosen) < count:  # made-up symbols beyond the pool (500-holding tests)
        t = "".join(rng.choice(letters) for _ in range(rng.randint(3, 4)))
        if t not in taken:
            taken.add(t)
            chosen.append(t)
    return chosen


def _row(ticker: str, active: bool, shares: float, price: float, rng: random.Random
         ) -> dict[str, Any]:
    dps = round(rng.choice((0.0, 0.0, rng.uniform(0.1, 4.0))), 4)
    new_listing = rng.random() < 0.08  # no history: alpha and beta are null
    return {
        "ticker": ticker,
        "active": active,
        "shares": shares,
        "price": price,
        "value": round(shares * price, 2),
        "total_return": round(rng.gauss(8, 18), 4),
        "volatility": round(rng.uniform(12, 65), 4),
        "dividends": round(abs(shares) * dps, 2),
        "dividends_per_share": dps,
        "dividend_yield": round(100 * dps / price, 4),
        "alpha": None if new_listing else round(rng.gauss(0, 5), 4),
        "beta": None if new_listing else round(rng.uniform(0.4, 1.8), 4),
    }


def trading_days(start: date, end: date) -> int:
    """Weekdays from ``start`` to ``end`` inclusive (what the fake API reports)."""
    days = (end - start).days + 1
    return sum((start + timedelta(d)).weekday() < 5 for d in range(max(days, 0)))


# --------------------------------------------------------------------------- echoed tokens


def token_spellings(token: str) -> dict[str, str]:
    """The token as an API might echo it back, escaped, encoded or cut (for leak tests).

    Built with the standard library only: JSON ``\\u`` escapes (lower, upper and
    mixed hex, or only part of the token), ``\\x`` escapes, percent-encoding
    (upper and lower hex, ``+`` for a space, and percent-encoded then
    JSON-escaped), HTML character references, base64 of the token and of
    ``user:token`` (standard and URL-safe, with and without padding), the token
    upper-cased, and its first 13 characters.
    """
    def each(fmt: str, text: str = token) -> str:
        return "".join(fmt % ord(c) for c in text)

    half = len(token) // 2
    b64, url64 = base64.b64encode, base64.urlsafe_b64encode
    return {
        "json-lower": each("\\u%04x"),
        "json-upper": each("\\u%04X"),
        "json-part": token[:half] + "".join(
            ("\\u%04X" if i % 2 else "\\u%04x") % ord(c) for i, c in enumerate(token[half:])),
        "hex-escapes": each("\\x%02x"),
        "percent-upper": each("%%%02X"),
        "percent-lower": each("%%%02x"),
        "percent-plus": "Bearer+" + each("%%%02x"),
        "percent-in-json": each("\\u0025%02X"),
        "html-decimal": each("&#%d;"),
        "html-hex": each("&#x%x;"),
        "base64": b64(token.encode()).decode(),
        "base64-url-unpadded": url64(token.encode()).decode().rstrip("="),
        "basic-auth": "Basic " + b64(f"analyst:{token}".encode()).decode(),
        "basic-auth-url": url64(f"ab:{token}".encode()).decode().rstrip("="),
        "basic-auth-shift": b64(f"abc:{token}".encode()).decode(),
        "upper-case": token.upper(),
        "cut": token[:13],
        "html-entities": html.escape(token, quote=True).replace("/", "&sol;"),
    }


def leaks(secret: str, text: str, size: int = 8) -> bool:
    """Whether ``text`` holds ``size`` or more consecutive characters of ``secret``."""
    if len(secret) <= size:
        return secret in text
    return any(secret[i:i + size] in text for i in range(len(secret) - size + 1))


# --------------------------------------------------------------------------- scripting

_CONTRACT: Any = object()  # "answer per contract"


@dataclass(frozen=True)
class Reply:
    """One scripted answer of :class:`FundApi`.

    With the defaults it is the contract answer. ``status`` other than 200
    without a body gives that status with a realistic body. ``json`` or
    ``body`` (raw, str or bytes) replaces the answer; ``holdings`` replaces the
    rows of a contract answer; ``transform`` edits the contract answer (a dict)
    before it is sent. ``delay`` waits first; ``drop`` closes the connection
    without answering. ``drip`` sends the body one byte at a time, that many
    seconds apart (with ``drip_headers`` the status line and headers too);
    ``gzip`` compresses the body; ``cut`` sends half of it and closes the
    connection; ``echo`` replaces ``{authorization}`` in the
    answer by the request's Authorization header.
    """

    status: int = 200
    json: Any = _CONTRACT
    body: bytes | str | None = None
    holdings: list[dict[str, Any]] | None = None
    transform: Callable[[dict[str, Any]], Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    drip: float = 0.0
    drip_headers: bool = False
    gzip: bool = False
    echo: bool = False
    cut: bool = False

    @classmethod
    def parse(cls, step: str | Reply) -> Reply:
        """A :class:`Reply` from the step mini-language (see the module docstring)."""
        if isinstance(step, Reply):
            return step
        name, _, params = step.strip().partition(":")
        options: dict[str, str | None] = {}
        for item in filter(None, (p.strip() for p in params.split(","))):
            key, sep, value = item.partition("=")
            if not sep and key.strip().lower() not in ("gzip", "cut"):
                raise ValueError(f"fund_api step {step!r}: {item!r} is not key=value")
            options[key.strip().lower()] = value.strip() if sep else None
        delay = float(options.pop("delay", None) or 0)
        headers: dict[str, str] = {}
        for option, header in (("retry-after", "Retry-After"), ("location", "Location")):
            if option in options:
                headers[header] = options.pop(option) or ""
        extra: dict[str, Any] = {}
        if "drip" in options:
            extra["drip"] = float(options.pop("drip") or 0)
        if "drip-all" in options:
            extra.update(drip=float(options.pop("drip-all") or 0), drip_headers=True)
        for flag in ("gzip", "cut"):
            if flag in options:
                options.pop(flag)
                extra[flag] = True
        if options:
            raise ValueError(f"fund_api step {step!r}: unknown option {next(iter(options))!r}")
        name = name.lower()
        if name == "ok":
            return cls(delay=delay, headers=headers, **extra)
        if name.isdigit():
            return cls(status=int(name), delay=delay, headers=headers, **extra)
        if name == "echo":
            return cls(status=400, json={"detail": "Bad Request",
                                         "headers": {"Authorization": "{authorization}"}},
                       echo=True, delay=delay, headers=headers, **extra)
        if name == "drop":
            return cls(drop=True, delay=delay)
        if name == "invalid-json":
            return cls(body=b'{"start": "2025-02-18", "holdings": [{"ticker": "AAPL", ',
                       delay=delay, headers=headers)
        if name == "no-holdings":
            return cls(transform=lambda a: {k: v for k, v in a.items() if k != "holdings"},
                       delay=delay, headers=headers)
        if name == "empty":
            return cls(holdings=[], delay=delay, headers=headers)
        raise ValueError(f"fund_api step {step!r}: unknown step {name!r}")


def _dumps(obj: Any) -> bytes:
    """JSON as FastAPI sends it (compact, UTF-8)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


_STATUS_BODIES: dict[int, tuple[str, bytes]] = {
    # what FastAPI/uvicorn or a proxy in front of it send
    401: ("application/json", b'{"detail":"Not authenticated"}'),
    403: ("application/json", b'{"detail":"Not authenticated"}'),
    404: ("application/json", b'{"detail":"Not Found"}'),
    422: ("application/json", _dumps({"detail": [
        {"type": "date_from_datetime_parsing", "loc": ["body", "start"],
         "msg": "Input should be a valid date or datetime, input is too short",
         "input": "2025-02"},
        {"type": "missing", "loc": ["body", "fund"], "msg": "Field required", "input": {}},
    ]})),
    429: ("application/json", b'{"detail":"Too Many Requests"}'),
    500: ("text/plain; charset=utf-8", b"Internal Server Error"),
    502: ("text/html", b"<html><head><title>502 Bad Gateway</title></head>"
                       b"<body><center><h1>502 Bad Gateway</h1></center></body></html>"),
    503: ("application/json", b'{"detail":"Service Unavailable"}'),
    504: ("text/html", b"<html><body><h1>504 Gateway Time-out</h1></body></html>"),
}


@dataclass(frozen=True)
class Recorded:
    """A request the server received (headers keyed in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        """The body decoded as JSON (``None`` when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# --------------------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def handle_error(self, request, client_address):  # a client gone mid-answer: ignore
        pass


class _Handler(BaseHTTPRequestHandler):
    api: FundApi  # set on the subclass made per server
    server_version = "fund-api-test/1.0"
    sys_version = ""

    def log_message(self, format, *args):  # quiet
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        rec = Recorded(self.command, self.path.split("?", 1)[0],
                       {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
        reply = self.api._take(rec)
        if reply.delay and self.api._closing.wait(reply.delay):
            return
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, headers, payload = self.api._answer(rec, reply)
        if reply.echo:  # quoted as JSON would quote it, unless the body is raw
            auth = rec.headers.get("authorization", "")
            auth = auth if reply.body is not None else json.dumps(auth)[1:-1]
            payload = payload.replace(b"{authorization}", auth.encode())
        if reply.gzip:
            payload = gzip.compress(payload)
            headers["Content-Encoding"] = "gzip"
        if reply.drip:
            self._drip(status, headers, payload, reply)
            return
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if reply.cut else payload)
        except OSError:  # the client timed out and left
            pass
        if reply.cut:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _drip(self, status: int, headers: Mapping[str, str], payload: bytes, reply: Reply
              ) -> None:
        """Send the answer a byte at a time, ``reply.drip`` seconds apart."""
        reason = self.responses.get(status, ("",))[0]
        lines = [f"{self.protocol_version} {status} {reason}",
                 *(f"{k}: {v}" for k, v in headers.items()),
                 f"Content-Length: {len(payload)}"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.close_connection = True
        data = head + payload if reply.drip_headers else payload
        try:
            if not reply.drip_headers:
                self.wfile.write(head)
            for i in range(len(data)):
                if self.api._closing.wait(reply.drip):
                    return
                self.wfile.write(data[i:i + 1])
        except OSError:  # the client gave up
            pass

    do_POST = do_GET = do_PUT = do_DELETE = _handle


class FundApi:
    """The fake fund holdings API (see the module docstring).

    Parameters
    ----------
    token : str, optional
        When set, requests must carry ``Authorization: Bearer <token>`` (else
        401). May be changed later through :attr:`token`.
    holdings : list of dict, optional
        The rows served; default ``sample_holdings(20, seed=0)``.
    funds : iterable of str
        The funds it knows (any other gets 500).

    """

    def __init__(self, *, token: str | None = None,
                 holdings: list[dict[str, Any]] | None = None,
                 funds: Iterable[str] = FUNDS):
        self.token = token
        self.holdings = sample_holdings(20, seed=0) if holdings is None else list(holdings)
        self.funds = set(funds)
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01},
                                        name="fund-api", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- control

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, steps: Iterable[str | Reply]) -> FundApi:
        """Queue one answer per coming request (then the contract answer again)."""
        replies = [Reply.parse(s) for s in steps]
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Scripted steps not used yet."""
        with self._lock:
            return len(self._queue)

    @property
    def hits(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests (retry delays)."""
        with self._lock:
            times = [r.time for r in self.requests]
        return [b - a for a, b in itertools.pairwise(times)]

    def reset(self) -> None:
        """Forget the recorded requests and the unused script."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    def close(self) -> None:
        """Stop serving (a delayed answer in progress is abandoned)."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FundApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- answering

    def _take(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            return self._queue.popleft() if self._queue else Reply()

    def _answer(self, rec: Recorded, reply: Reply) -> tuple[int, dict[str, str], bytes]:
        headers = dict(reply.headers)
        if reply.body is not None:
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
            headers.setdefault("Content-Type", "application/json")
            return reply.status, headers, body
        if reply.json is not _CONTRACT:
            headers.setdefault("Content-Type", "application/json")
            return reply.status, headers, _dumps(reply.json)
        if reply.status != 200:
            ctype, body = _STATUS_BODIES.get(reply.status, ("text/plain", b"error"))
            headers.setdefault("Content-Type", ctype)
            return reply.status, headers, body
        status, answer = self._contract(rec, reply)
        if status == 200 and reply.transform is not None:
            answer = reply.transform(answer)
        if isinstance(answer, bytes):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return status, headers, answer
        if status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        headers.setdefault("Content-Type", "application/json")
        return status, headers, _dumps(answer)

    def _contract(self, rec: Recorded, reply: Reply) -> tuple[int, Any]:
        """The API's own behaviour: routing, token, body validation, fund, answer."""
        if rec.path != PATH:
            return 404, {"detail": "Not Found"}
        if rec.method != "POST":
            return 405, {"detail": "Method Not Allowed"}
        if self.token is not None and rec.headers.get("authorization") != f"Bearer {self.token}":
            detail = "Not authenticated" if "authorization" not in rec.headers else "Invalid token"
            return 401, {"detail": detail}
        try:
            body = json.loads(rec.body)
        except ValueError as exc:
            pos = getattr(exc, "pos", 0)
            return 422, {"detail": [{"type": "json_invalid", "loc": ["body", pos],
                                     "msg": "JSON decode error", "input": {},
                                     "ctx": {"error": str(exc)}}]}
        if not isinstance(body, dict):
            return 422, {"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": body}]}
        errors = []
        values: dict[str, Any] = {}
        for key in ("fund", "start", "end"):
            if key not in body:
                errors.append({"type": "missing", "loc": ["body", key],
                               "msg": "Field required", "input": body})
                continue
            value = body[key]
            if key == "fund":
                if isinstance(value, str):
                    values[key] = value
                else:
                    errors.append({"type": "string_type", "loc": ["body", key],
                                   "msg": "Input should be a valid string", "input": value})
                continue
            try:
                values[key] = date.fromisoformat(value)
            except (TypeError, ValueError):
                errors.append({"type": "date_from_datetime_parsing", "loc": ["body", key],
                               "msg": "Input should be a valid date or datetime, "
                                      "invalid date format", "input": value})
        if errors:
            return 422, {"detail": errors}
        if values["fund"] not in self.funds:
            return 500, b"Internal Server Error"  # what the real API does today
        start, end = values["start"], values["end"]
        rows = self.holdings if reply.holdings is None else reply.holdings
        return 200, {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "trading_days": trading_days(start, end),
            "holdings": rows,
        }


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """A base URL on which connections are refused (a bound port nobody listens on)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: the kernel answers RST
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextlib.contextmanager
def stalled_port() -> Iterator[str]:
    """A base URL on which connecting hangs (for connect timeouts; Linux and macOS).

    A socket listens with a backlog of 0 and never accepts; a few connections
    fill the backlog, so the kernel drops the next SYN and ``connect`` waits.
    """
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)  # let the handshakes that fit complete
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        server.close()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(name="fund_api")
def fund_api_fixture() -> Iterator[FundApi]:
    """A fresh :class:`FundApi` per test (no token, the default sample portfolio)."""
    with FundApi() as api:
        yield api


@pytest.fixture(name="refused_url")
def refused_url_fixture() -> Iterator[str]:
    """A base URL that refuses connections."""
    with closed_port() as url:
        yield url
