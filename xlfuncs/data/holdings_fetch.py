"""The fund holdings API from a browser (xlwings Lite): the same contract, over ``fetch``.

In xlwings Lite, Python runs in Pyodide inside Excel: there are no sockets and no
threads, so :class:`~xlfuncs.data.holdings.HoldingsClient` (requests on watched
sockets, a timer thread for the deadline) cannot run. :class:`BrowserHoldingsClient`
keeps its contract and reuses its checks and messages, with the browser's
``fetch`` (``pyodide.http.pyfetch``) as the transport:

* one deadline (``config.deadline``) over every attempt and wait; each attempt is
  also bounded by the read timeout (``asyncio.wait_for``: the browser has no
  connect/read split);
* the same retries: a failed fetch and 429/502/503/504 answers, with urllib3's
  backoff and ``Retry-After``; 500 and a timeout are not retried;
* answers over :data:`~xlfuncs.data.holdings.MAX_BODY` bytes are refused;
* the token is scrubbed from every message and value
  (:class:`xlfuncs.redact.Redactor`), and the answer is checked against the
  contract (:func:`~xlfuncs.data.holdings.parse_summary`) before the macro writes.

A browser refuses to hand over an answer that lacks the CORS header for the
add-in's origin, and tells the page only that the fetch failed: a failed fetch is
reported as one line that names the header the fund's API must send
(:data:`CORS_HEADER`). A ``fetch`` is any awaitable with ``pyfetch``'s signature
(the tests pass one that asks a loopback server as a browser would).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from xlfuncs import __version__
from xlfuncs.config import Config, load_config
from xlfuncs.data.holdings import (
    ENDPOINT,
    MAX_BODY,
    HoldingsClient,
    HoldingsSnapshot,
    Progress,
    _Answer,
)
from xlfuncs.errors import ApiConnectionError, ApiError, ApiResponseError, ApiTimeoutError

__all__ = ["LITE_ORIGIN", "BrowserHoldingsClient", "Fetch", "fetch_holdings_browser"]

log = logging.getLogger(__name__)

LITE_ORIGIN = "https://addin.xlwings.org"  # the origin of the xlwings Lite add-in
CORS_HEADER = f"Access-Control-Allow-Origin: {LITE_ORIGIN}"

Fetch = Callable[..., Awaitable[Any]]  # pyodide.http.pyfetch(url, **init) -> FetchResponse


def _pyfetch() -> Fetch:
    from pyodide.http import pyfetch  # only in Pyodide (xlwings Lite)

    return pyfetch


class _Failed(Exception):
    """The browser's fetch failed without an answer (network, CORS or a refused connection)."""


class BrowserHoldingsClient(HoldingsClient):
    """The fund API through the browser's ``fetch``; the contract of :class:`HoldingsClient`.

    Parameters
    ----------
    config : Config
        Base URL, token, timeouts, deadline, retries, backoff.
    fetch : callable, optional
        ``await fetch(url, method=..., headers=..., body=..., redirect=...)`` giving
        an object with ``status``, ``headers`` and ``await bytes()``, as
        ``pyodide.http.pyfetch`` (the default) does.

    """

    def __init__(self, config: Config, fetch: Fetch | None = None):
        super().__init__(config)
        self._fetch = fetch

    async def fetch_async(self, fund: str | None = None, start: date | None = None,
                          end: date | None = None, *,
                          progress: Progress | None = None) -> HoldingsSnapshot:
        """As :meth:`HoldingsClient.fetch`, awaiting the browser's fetch."""
        fund, start, end = self._arguments(fund, start, end)
        if progress is not None:
            progress(f"Fetching {fund} holdings for {end} from {self.config.base_url}...")
        answer = await self._exchange_async(fund, start, end)
        return self._snapshot(answer, fund, start, end, progress)

    async def _exchange_async(self, fund: str, start: date, end: date) -> _Answer:
        """POST with retries within the deadline; every failure becomes an ApiError."""
        url = self.config.base_url + ENDPOINT
        body = json.dumps({"fund": fund, "start": start.isoformat(), "end": end.isoformat()})
        end_at = time.monotonic() + self.config.deadline
        attempts = 0
        while True:
            left = end_at - time.monotonic()
            if left <= 0.02:
                raise self._expired(attempts)
            attempts += 1
            try:
                answer = await asyncio.wait_for(self._attempt_async(url, body),
                                                min(self.config.timeout[1], left))
            except TimeoutError:
                if end_at - time.monotonic() <= 0.02:
                    raise self._expired(attempts) from None
                raise ApiTimeoutError(
                    f"the API at {self.config.base_url} did not answer within "
                    f"{self.config.timeout[1]:g} s (read timeout)") from None
            except _Failed:
                if attempts > self.config.retries:
                    raise self._refused(attempts) from None
                wait = self._backoff(attempts)
            else:
                if 200 <= answer.status < 300:
                    return answer
                if answer.status == 0:  # an opaque redirect: the browser does not say where
                    raise ApiResponseError(
                        f"the API at {self.config.base_url} redirected elsewhere: set "
                        "XLFUNCS_API_URL to the address it moved to", status=0)
                wait = self._status_wait(answer, fund, attempts, end_at - time.monotonic())
            if wait and wait >= end_at - time.monotonic():  # a fetch that failed: no time left
                raise ApiTimeoutError(f"{self._refused(attempts)}; {self._no_time(attempts)}")
            log.info("POST %s: attempt %d failed, retrying in %.2f s", url, attempts, wait)
            await asyncio.sleep(wait)

    async def _attempt_async(self, url: str, body: str) -> _Answer:
        fetch = self._fetch or _pyfetch()
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "X-Client": f"xlfuncs/{__version__}"}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        try:
            response = await fetch(url, method="POST", headers=headers, body=body,
                                   redirect="manual")
        except (OSError, ConnectionError) as exc:  # pyfetch: OSError for a failed fetch
            raise _Failed() from exc
        response_headers = {str(k).title(): str(v) for k, v in dict(response.headers).items()}
        length = response_headers.get("Content-Length", "").strip()
        if length.isdigit() and int(length) > MAX_BODY:
            raise self._too_large(response.status)
        content = bytes(await response.bytes())
        if len(content) > MAX_BODY:
            raise self._too_large(response.status)
        return _Answer(int(response.status), response_headers, content, "utf-8",
                       self._redactor)

    def _too_large(self, status: int) -> ApiResponseError:
        return ApiResponseError(f"the answer of the API at {self.config.base_url} is larger "
                                f"than {MAX_BODY // 2**20} MB", status=status)

    def _refused(self, attempts: int) -> ApiError:
        """The one line for a fetch the browser failed: CORS, or no connection at all."""
        tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
        return ApiConnectionError(
            f"the browser got no answer from {self.config.base_url} ({tries}): the fund's API "
            f"must send the header {CORS_HEADER} (or it is unreachable)")


async def fetch_holdings_browser(
    fund: str | None = None,
    start: date | None = None,
    end: date | None = None,
    *,
    config: Config | None = None,
    fetch: Fetch | None = None,
    progress: Progress | None = None,
) -> HoldingsSnapshot:
    """The active holdings of a fund, fetched by the browser (xlwings Lite).

    As :func:`xlfuncs.data.holdings.fetch_holdings`, awaited; ``fetch`` defaults
    to ``pyodide.http.pyfetch``.

    Returns
    -------
    HoldingsSnapshot

    Raises
    ------
    ApiError
        A subclass, as :func:`~xlfuncs.data.holdings.fetch_holdings`; a failed
        fetch names the CORS header the API must send.

    """
    with BrowserHoldingsClient(load_config() if config is None else config, fetch) as client:
        return await client.fetch_async(fund, start, end, progress=progress)
