"""The fund holdings client against a real loopback API: contract, fault matrix, secrets."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
import zlib
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from fund_api import (  # noqa: F401  (the fixtures fund_api and refused_url)
    FUNDS,
    PATH,
    FundApi,
    Reply,
    fund_api_fixture,
    leaks,
    refused_url_fixture,
    sample_holdings,
    stalled_port,
    token_spellings,
)

from xlfuncs.config import Config
from xlfuncs.core import normalise_ticker
from xlfuncs.data.holdings import (
    COLUMNS,
    MAX_BODY,
    HoldingsClient,
    HoldingsSnapshot,
    fetch_holdings,
    last_business_day,
    parse_summary,
)
from xlfuncs.errors import (
    ApiConnectionError,
    ApiError,
    ApiResponseError,
    ApiStatusError,
    ApiTimeoutError,
    ConfigError,
    InputError,
    XlfuncsError,
)

DAY = date(2025, 2, 18)
TOKEN = "s3cr3t-T0KEN.abc_123"


def config(api: FundApi | str, **overrides) -> Config:
    """Fast settings for tests: short timeouts, no backoff sleep."""
    url = api if isinstance(api, str) else api.url
    settings = {"base_url": url, "fund": "quant", "timeout": (0.5, 0.5), "retries": 3,
                "backoff": 0.0}
    settings.update(overrides)
    return Config(**settings)


def fetch(api: FundApi, fund: str = "quant", **overrides) -> HoldingsSnapshot:
    return fetch_holdings(fund, DAY, DAY, config=config(api, **overrides))


def fails(api: FundApi, error: type[Exception], fund: str = "quant", **overrides) -> Exception:
    with pytest.raises(error) as info:
        fetch(api, fund, **overrides)
    return info.value


def row(ticker: str, value: float, *, active: bool = True, shares: float = 10.0,
        price: float | None = None, **extra) -> dict:
    r = {"ticker": ticker, "active": active, "shares": shares,
         "price": value / shares if price is None and shares else (price or 0.0),
         "value": value, "total_return": 1.0, "volatility": 20.0, "dividends": 0.0,
         "dividends_per_share": 0.0, "dividend_yield": 0.0, "alpha": 0.1, "beta": 1.0}
    r.update(extra)
    return r


# --------------------------------------------------------------------------- the contract


def test_snapshot_from_the_api(fund_api):
    snap = fetch_holdings("quant", date(2025, 2, 10), DAY, config=config(fund_api))
    sent = fund_api.requests
    assert len(sent) == 1
    assert sent[0].method == "POST" and sent[0].path == PATH
    assert sent[0].json == {"fund": "quant", "start": "2025-02-10", "end": "2025-02-18"}
    assert sent[0].headers["content-type"] == "application/json"
    assert "authorization" not in sent[0].headers

    served = fund_api.holdings
    active = [r for r in served if r["active"]]
    assert snap.fund == "quant"
    assert (snap.start, snap.end, snap.trading_days) == (date(2025, 2, 10), DAY, 7)
    assert snap.fetched_at.tzinfo is not None and snap.fetched_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - snap.fetched_at).total_seconds()) < 60
    assert snap.tickers == tuple(r["ticker"] for r in active)  # API order, API spelling
    assert "BRK B" in snap.tickers
    assert snap.inactive == len(served) - len(active) >= 1
    assert all(h.active for h in snap.rows)
    total = math.fsum(r["value"] for r in active)
    assert snap.total_value == pytest.approx(total)
    for h, r in zip(snap.rows, active, strict=True):
        assert (h.shares, h.price, h.value) == (r["shares"], r["price"], r["value"])
        assert h.weight == pytest.approx(r["value"] / total)
        assert (h.alpha, h.beta, h.total_return) == (r["alpha"], r["beta"], r["total_return"])
    assert math.fsum(h.weight for h in snap.rows) == pytest.approx(1.0, abs=1e-12)


def test_shorts_are_kept_with_negative_weight(fund_api):
    snap = fetch(fund_api)
    shorts = [h for h in snap.rows if h.shares < 0]
    assert len(shorts) == 1
    assert shorts[0].value < 0 and shorts[0].weight < 0
    assert math.fsum(h.weight for h in snap.rows) == pytest.approx(1.0)


def test_weights_use_active_rows_only(fund_api):
    # an inactive row that still carries a value must not enter the denominator
    fund_api.holdings = [
        row("AAPL", 600.0),
        row("OLD", 9999.0, active=False),
        row("BRK B", 500.0),
        row("TSLA", -100.0, shares=-2.0),
    ]
    snap = fetch(fund_api)
    assert snap.tickers == ("AAPL", "BRK B", "TSLA")
    assert snap.inactive == 1
    assert [h.weight for h in snap.rows] == pytest.approx([0.6, 0.5, -0.1])


def test_to_frame(fund_api):
    fund_api.holdings = [row("AAPL", 300.0, alpha=None, beta=None), row("BRK B", 100.0)]
    frame = fetch(fund_api).to_frame()
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["ticker"]) == ["AAPL", "BRK B"]
    assert list(frame["weight"]) == pytest.approx([0.75, 0.25])
    assert math.isnan(frame.loc[0, "alpha"]) and frame.loc[1, "beta"] == 1.0
    assert all(frame[c].dtype == float for c in COLUMNS[1:])


def test_defaults_end_last_business_day_start_end_and_fund_from_config(fund_api):
    snap = fetch_holdings(config=config(fund_api, fund="grad"))
    expected = last_business_day().isoformat()
    assert fund_api.requests[0].json == {"fund": "grad", "start": expected, "end": expected}
    assert snap.fund == "grad"


@pytest.mark.parametrize(("today", "expected"), [
    (date(2025, 2, 17), date(2025, 2, 14)),  # Monday -> Friday
    (date(2025, 2, 16), date(2025, 2, 14)),  # Sunday
    (date(2025, 2, 15), date(2025, 2, 14)),  # Saturday
    (date(2025, 2, 19), date(2025, 2, 18)),  # Wednesday -> Tuesday
    (datetime(2025, 2, 18, 9, 30), date(2025, 2, 17)),
])
def test_last_business_day(today, expected):
    assert last_business_day(today) == expected


def test_dates_as_datetime_or_text(fund_api):
    fetch_holdings("quant", datetime(2025, 2, 3, 0, 0), "2025-02-18", config=config(fund_api))
    assert fund_api.requests[0].json["start"] == "2025-02-03"
    assert fund_api.requests[0].json["end"] == "2025-02-18"


def test_bad_arguments_are_refused_before_any_request(fund_api):
    cfg = config(fund_api, fund=None)
    with pytest.raises(ConfigError, match=r"no fund given.*XLFUNCS_FUND"):
        fetch_holdings(start=DAY, end=DAY, config=cfg)
    with pytest.raises(InputError, match="start 2025-02-19 is after end 2025-02-18"):
        fetch_holdings("quant", date(2025, 2, 19), DAY, config=cfg)
    with pytest.raises(InputError, match=r"end must be a date \(YYYY-MM-DD\), not text '18/02'"):
        fetch_holdings("quant", DAY, "18/02", config=cfg)
    with pytest.raises(InputError, match="fund must be a fund name"):
        fetch_holdings("  ", DAY, DAY, config=cfg)
    with HoldingsClient(cfg) as client, pytest.raises(TypeError, match="not both"):
        fetch_holdings("quant", DAY, DAY, config=cfg, client=client)
    assert fund_api.hits == 0


def test_progress_messages(fund_api):
    said = []
    fetch_holdings("quant", DAY, DAY, config=config(fund_api), progress=said.append)
    assert said[0] == f"Fetching quant holdings on 2025-02-18 from {fund_api.url[7:]}..."
    assert said[-1] == "20 quant holdings on 2025-02-18 (2 inactive dropped)"


def test_one_client_many_calls(fund_api):
    with HoldingsClient(config(fund_api)) as client:
        a = fetch_holdings("quant", DAY, DAY, client=client)
        b = fetch_holdings("grad", DAY, DAY, client=client)
        raw = client.summary("undergrad", DAY, DAY)
    assert a.tickers == b.tickers
    assert raw["end"] == "2025-02-18" and len(raw["holdings"]) == len(fund_api.holdings)
    assert [r.json["fund"] for r in fund_api.requests] == ["quant", "grad", "undergrad"]


def test_500_holdings(fund_api):
    fund_api.holdings = sample_holdings(500, seed=7)
    began = time.perf_counter()
    snap = fetch(fund_api)
    elapsed = time.perf_counter() - began
    assert len(snap.rows) == 500 and snap.inactive == 50
    assert len({normalise_ticker(t) for t in snap.tickers}) == 500
    assert math.fsum(h.weight for h in snap.rows) == pytest.approx(1.0)
    assert len(snap.to_frame()) == 500
    assert elapsed < 2.0


def test_sample_holdings_is_deterministic():
    assert sample_holdings(30, seed=3) == sample_holdings(30, seed=3)
    assert sample_holdings(30, seed=3) != sample_holdings(30, seed=4)
    rows = sample_holdings(30, seed=3)
    assert sum(r["active"] for r in rows) == 30 and len(rows) == 33
    assert any(r["ticker"] == "BRK B" and r["active"] for r in rows)
    assert sum(r["shares"] < 0 for r in rows) == 1
    assert sum(r["value"] for r in rows if r["active"]) > 0


# --------------------------------------------------------------------------- the server itself


def test_server_validates_like_fastapi(fund_api):
    url = fund_api.url + PATH
    r = requests.post(url, json={"fund": "quant", "start": "2025-02"}, timeout=5)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "start"], ["body", "end"]]
    assert detail[1]["msg"] == "Field required"
    r = requests.post(url, data=b"{not json", timeout=5,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = requests.post(url, json={"fund": "nope", "start": "2025-02-18", "end": "2025-02-18"},
                      timeout=5)
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    assert requests.get(url, timeout=5).status_code == 405
    assert requests.post(fund_api.url + "/other", json={}, timeout=5).status_code == 404
    assert fund_api.hits == 5


def test_script_mini_language():
    assert Reply.parse("429:retry-after=1") == Reply(status=429, headers={"Retry-After": "1"})
    assert Reply.parse("ok:delay=1.5").delay == 1.5
    assert Reply.parse("drop").drop
    with pytest.raises(ValueError, match="unknown step"):
        Reply.parse("teapot")
    with pytest.raises(ValueError, match="unknown option"):
        Reply.parse("500:colour=red")


# --------------------------------------------------------------------------- HTTP errors


def test_500_unknown_fund_is_not_retried(fund_api):
    exc = fails(fund_api, ApiStatusError, fund="nope")
    assert exc.status == 500 and exc.body == "Internal Server Error"
    assert str(exc) == (
        "the API failed (500): a server error, or fund 'nope' is unknown "
        f"(known funds: {', '.join(FUNDS)}); body: Internal Server Error"
    )
    assert fund_api.hits == 1


def test_500_for_a_known_fund_is_not_retried(fund_api):
    fund_api.script(["500", "ok"])
    exc = fails(fund_api, ApiStatusError)
    assert str(exc) == ("the API failed (500): a server error, or fund 'quant' is unknown; "
                        "body: Internal Server Error")
    assert fund_api.hits == 1


def test_502_503_then_success(fund_api):
    fund_api.script(["502", "503", "ok"])
    snap = fetch(fund_api)
    assert len(snap.rows) == 20
    assert fund_api.hits == 3
    assert all(r.json == fund_api.requests[0].json for r in fund_api.requests)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_unavailable_after_the_retries(fund_api, status):
    fund_api.script([str(status)] * 4)
    exc = fails(fund_api, ApiStatusError)
    assert exc.status == status
    assert str(exc).startswith(f"the API is unavailable ({status}) after 3 retries; body: ")
    assert fund_api.hits == 4


def test_retries_zero(fund_api):
    fund_api.script(["503", "ok"])
    exc = fails(fund_api, ApiStatusError, retries=0)
    assert str(exc) == 'the API is unavailable (503); body: {"detail":"Service Unavailable"}'
    assert fund_api.hits == 1


def test_backoff_between_retries(fund_api):
    fund_api.script(["503", "503", "ok"])
    fetch(fund_api, backoff=0.1)
    first, second = fund_api.gaps()
    assert first < 0.1  # urllib3: the first retry is immediate
    assert 0.18 <= second < 1.0  # then backoff * 2


def test_422_summarises_the_validation_errors(fund_api):
    fund_api.script(["422"])
    exc = fails(fund_api, ApiStatusError)
    assert exc.status == 422
    assert str(exc) == ("the API rejected the request (422): start: Input should be a valid "
                        "date or datetime, input is too short; fund: Field required")
    assert json.loads(exc.body)["detail"][1]["type"] == "missing"
    assert fund_api.hits == 1


def test_422_with_many_errors_and_with_text(fund_api):
    detail = [{"loc": ["body", f"f{i}"], "msg": "bad", "type": "x"} for i in range(5)]
    fund_api.script([Reply(status=422, json={"detail": detail}),
                     Reply(status=422, body="nope", headers={"Content-Type": "text/plain"})])
    exc = fails(fund_api, ApiStatusError)
    assert str(exc) == ("the API rejected the request (422): f0: bad; f1: bad; f2: bad "
                        "and 2 more")
    assert str(fails(fund_api, ApiStatusError)) == "the API rejected the request (422): nope"


def test_429_retry_after_is_honoured(fund_api):
    fund_api.script(["429:retry-after=1", "ok"])
    began = time.perf_counter()
    snap = fetch(fund_api)
    assert len(snap.rows) == 20
    assert fund_api.hits == 2
    assert fund_api.gaps()[0] >= 0.95
    assert time.perf_counter() - began < 3


def test_503_retry_after_is_honoured(fund_api):
    fund_api.script(["503:retry-after=1", "ok"])
    fetch(fund_api)
    assert fund_api.hits == 2 and fund_api.gaps()[0] >= 0.95


def test_429_after_the_retries(fund_api):
    fund_api.script(["429"] * 4)
    exc = fails(fund_api, ApiStatusError)
    assert exc.status == 429
    assert str(exc) == ('the API is rate limiting requests (429) after 3 retries; '
                        'body: {"detail":"Too Many Requests"}')
    assert fund_api.hits == 4


def test_a_long_retry_after_is_reported_not_waited_for(fund_api):
    fund_api.script(["429:retry-after=3600"])
    began = time.perf_counter()
    exc = fails(fund_api, ApiStatusError)
    assert time.perf_counter() - began < 1
    assert str(exc).startswith("the API is rate limiting requests (429); it asks to wait 3600 s")
    assert fund_api.hits == 1


def test_an_unreadable_retry_after_falls_back_to_backoff(fund_api):
    fund_api.script(["503:retry-after=soon", "ok"])
    fetch(fund_api)
    assert fund_api.hits == 2


def test_401_without_a_token():
    with FundApi(token=TOKEN) as api:
        exc = fails(api, ApiStatusError)
        assert exc.status == 401
        assert str(exc) == ("the API needs a token (401): set XLFUNCS_API_TOKEN or token "
                            'under [api] in the config file; body: {"detail":"Not authenticated"}')
        assert api.hits == 1


def test_404_names_the_base_url(fund_api):
    exc = fails(fund_api, ApiStatusError, base_url=fund_api.url + "/v2")
    assert str(exc).startswith(
        f"the API has no /all-holdings/summary (404): is the base URL {fund_api.url}/v2 right?"
    )


# --------------------------------------------------------------------------- transport errors


def test_connection_refused(refused_url):
    with pytest.raises(ApiConnectionError) as info:
        fetch_holdings("quant", DAY, DAY, config=config(refused_url))
    assert str(info.value) == f"cannot reach {refused_url}: connection refused"
    assert info.value.status is None and info.value.body is None


@pytest.mark.skipif(sys.platform == "win32", reason="Windows refuses, not drops, on a full backlog")
def test_connect_timeout_is_retried_then_reported():
    with stalled_port() as url:
        began = time.perf_counter()
        with pytest.raises(ApiTimeoutError) as info:
            fetch_holdings("quant", DAY, DAY, config=config(url, timeout=(0.2, 0.5), retries=1))
        elapsed = time.perf_counter() - began
    assert str(info.value) == f"cannot reach {url}: no connection within 0.2 s (2 attempts)"
    assert 0.35 < elapsed < 2


def test_a_slow_answer_times_out_and_is_not_retried(fund_api):
    fund_api.script(["ok:delay=2"])
    began = time.perf_counter()
    exc = fails(fund_api, ApiTimeoutError, timeout=(0.5, 0.3))
    elapsed = time.perf_counter() - began
    assert str(exc) == (f"the API at {fund_api.url} did not answer within 0.3 s "
                        "(read timeout); set XLFUNCS_TIMEOUT to wait longer")
    assert fund_api.hits == 1
    assert 0.25 < elapsed < 1.5


def test_a_dropped_connection_is_retried(fund_api):
    fund_api.script(["drop", "ok"])
    assert len(fetch(fund_api).rows) == 20
    assert fund_api.hits == 2


def test_dropped_every_time(fund_api):
    fund_api.script(["drop"] * 4)
    exc = fails(fund_api, ApiConnectionError)
    assert str(exc) == f"cannot reach {fund_api.url}: the connection was closed without an answer"
    assert fund_api.hits == 4


def test_every_error_is_an_xlfuncs_error_on_one_line(fund_api, refused_url):
    fund_api.script(["500", "422", "invalid-json", "empty", "ok:delay=1"])
    errors = [fails(fund_api, XlfuncsError) for _ in range(5)]
    with pytest.raises(XlfuncsError) as info:
        fetch_holdings("quant", DAY, DAY, config=config(refused_url))
    for exc in [*errors, info.value]:
        assert isinstance(exc, ApiError)
        assert "\n" not in str(exc) and len(str(exc)) < 400


# --------------------------------------------------------------------------- broken answers


def test_invalid_json(fund_api):
    fund_api.script(["invalid-json"])
    exc = fails(fund_api, ApiResponseError)
    assert str(exc).startswith('the API answered 200 but not with JSON: {"start": "2025-02-18"')
    assert exc.status == 200 and exc.body.startswith('{"start"')


def test_a_long_body_is_cut_in_the_message_not_on_the_attribute(fund_api):
    page = "<html>" + "x" * 5000 + "</html>"
    fund_api.script([Reply(body=page, headers={"Content-Type": "text/html"})])
    exc = fails(fund_api, ApiResponseError)
    assert exc.body == page
    assert str(exc).endswith("...") and len(str(exc)) < 260


def test_missing_holdings(fund_api):
    fund_api.script(["no-holdings"])
    exc = fails(fund_api, ApiResponseError)
    assert str(exc) == ("the API answer has no holdings field "
                        "(its fields: end, start, trading_days)")
    assert exc.status == 200 and "trading_days" in exc.body


def test_empty_list_is_an_error_not_an_empty_sheet(fund_api):
    fund_api.script(["empty"])
    exc = fails(fund_api, ApiResponseError)
    assert str(exc) == "the API returned no active holdings for fund quant on 2025-02-18"


def test_only_inactive_rows_is_an_error(fund_api):
    fund_api.holdings = [row("AAPL", 0.0, active=False), row("MSFT", 0.0, active=False)]
    with pytest.raises(ApiResponseError, match=r"^the API returned no active holdings for fund "
                                               r"quant from 2025-02-10 to 2025-02-18$"):
        fetch_holdings("quant", date(2025, 2, 10), DAY, config=config(fund_api))


def test_duplicate_tickers(fund_api):
    fund_api.holdings = [row("AAPL", 100.0), row("BRK B", 100.0), row("MSFT", 100.0),
                         row("BRK.B", 50.0)]
    exc = fails(fund_api, ApiResponseError)
    assert str(exc) == ("holdings[3].ticker 'BRK.B' repeats holdings[1].ticker 'BRK B': "
                        "BRK.B is held twice")


def test_a_duplicate_among_inactive_rows_is_fine(fund_api):
    fund_api.holdings = [row("BRK B", 100.0), row("BRK.B", 0.0, active=False)]
    assert fetch(fund_api).tickers == ("BRK B",)


@pytest.mark.parametrize("values", [[100.0, -100.0], [-10.0, 5.0]])
def test_non_positive_total(fund_api, values):
    fund_api.holdings = [row(t, v, shares=math.copysign(10.0, v))
                         for t, v in zip(("AAPL", "TSLA"), values, strict=True)]
    total = sum(values)
    with pytest.raises(ApiResponseError, match=(
        rf"^the active holdings of fund quant are worth {total:,.2f} in total on 2025-02-18; "
        "weights need a positive total$")):
        fetch(fund_api)


def _rows_with(index: int, **change) -> list[dict]:
    rows = sample_holdings(6, seed=1, inactive=0)
    rows[index] = {**rows[index], **change}
    return rows


@pytest.mark.parametrize(("rows", "message"), [
    (_rows_with(3, shares="abc"), "holdings[3].shares is text 'abc', a number is needed"),
    (_rows_with(2, price=None), "holdings[2].price is null, a number is needed"),
    (_rows_with(0, value=True), "holdings[0].value is true, a number is needed"),
    (_rows_with(4, active="yes"), "holdings[4].active is text 'yes', true or false is needed"),
    (_rows_with(1, ticker=5), "holdings[1].ticker is 5, a ticker is needed"),
    (_rows_with(1, ticker="  "), "holdings[1].ticker is blank text, a ticker is needed"),
    (_rows_with(5, beta="1.2"), "holdings[5].beta is text '1.2', a number or null is needed"),
    (_rows_with(5, price=-3.0), "holdings[5].price is -3.0, it cannot be negative"),
    ([*sample_holdings(2, seed=1, inactive=0), ["AAPL", 1]],
     "holdings[2] is a list, an object is needed"),
])
def test_wrong_field_types_name_the_field_and_row(fund_api, rows, message):
    fund_api.holdings = rows
    exc = fails(fund_api, ApiResponseError)
    assert str(exc) == message
    assert exc.status == 200 and exc.body is not None


def test_missing_analytics_are_null(fund_api):
    rows = sample_holdings(3, seed=1, inactive=0)
    del rows[0]["alpha"]
    fund_api.holdings = rows
    assert fetch(fund_api).rows[0].alpha is None


def test_inactive_rows_need_not_be_complete(fund_api):
    fund_api.holdings = [row("AAPL", 100.0), {"ticker": "OLD", "active": False, "price": None}]
    snap = fetch(fund_api)
    assert snap.tickers == ("AAPL",) and snap.inactive == 1


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: [a], "the API answer is a list, an object with holdings is needed"),
    (lambda a: {**a, "holdings": {"AAPL": 1}}, "holdings is an object, a list is needed"),
    (lambda a: {**a, "start": "18/02/2025"},
     "start is text '18/02/2025', a date YYYY-MM-DD is needed"),
    (lambda a: {k: v for k, v in a.items() if k != "end"},
     "end is missing, a date YYYY-MM-DD is needed"),
    (lambda a: {**a, "trading_days": 1.5}, "trading_days is 1.5, a whole number is needed"),
])
def test_wrong_top_level_fields(fund_api, change, message):
    fund_api.script([Reply(transform=change)])
    assert str(fails(fund_api, ApiResponseError)) == message


def test_parse_summary_directly():
    answer = {"start": "2025-02-18", "end": "2025-02-18T00:00:00", "trading_days": 1.0,
              "holdings": [row("AAPL", 100.0)]}
    when = datetime(2025, 2, 18, 21, 0, tzinfo=UTC)
    snap = parse_summary(answer, fund="quant", fetched_at=when)
    assert snap.end == DAY and snap.trading_days == 1 and snap.fetched_at == when
    assert snap.rows[0].weight == 1.0


# --------------------------------------------------------------------------- the token


def test_the_token_is_sent_as_a_bearer_header():
    with FundApi(token=TOKEN) as api:
        snap = fetch(api, token=TOKEN)
        assert len(snap.rows) == 20
        assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def _all_text(exc: BaseException) -> str:
    """Message and repr of an exception and of everything it chains to."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [str(exc), repr(exc), str(getattr(exc, "body", ""))]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def test_the_token_never_leaks(caplog, refused_url):
    caplog.set_level(logging.DEBUG)  # our logger and urllib3's
    seen: list[BaseException] = []
    with FundApi(token="a-different-token") as api:
        cfg = config(api, token=TOKEN)
        assert TOKEN not in repr(cfg) and TOKEN not in str(cfg) and "'***'" in repr(cfg)
        with HoldingsClient(cfg) as client:
            assert TOKEN not in repr(client)
            assert TOKEN not in repr(client._session.auth)
            api.script([
                "ok",  # refused: wrong token -> 401
                "500",
                "422",
                "429:retry-after=3600",
                "invalid-json",
                "ok:delay=1",
                # an API that echoes the request (headers included) back
                Reply(status=500, body=f"bad header Authorization: Bearer {TOKEN}"),
                Reply(body=f"<html>Bearer {TOKEN}</html>"),
            ])
            for _ in range(8):
                with pytest.raises(ApiError) as info:
                    fetch_holdings("quant", DAY, DAY, client=client)
                seen.append(info.value)
            assert api.hits == 8
            assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in api.requests)
        with pytest.raises(ApiConnectionError) as info:
            fetch_holdings("quant", DAY, DAY, config=config(refused_url, token=TOKEN))
        seen.append(info.value)
    assert str(seen[0]).startswith("the API refused the token (401): check XLFUNCS_API_TOKEN")
    assert "***" in str(seen[6]) and "***" in seen[7].body
    for exc in seen:
        assert TOKEN not in _all_text(exc), exc
    assert caplog.records, "expected log records"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)
    assert TOKEN not in caplog.text


# --------------------------------------------------------------------------- one deadline per fetch


def test_an_answer_dripping_one_byte_at_a_time_ends_at_the_deadline(fund_api):
    # each byte comes well within the read timeout, so only the deadline can end it
    fund_api.script(["ok:drip=0.1"])
    began = time.perf_counter()
    exc = fails(fund_api, ApiTimeoutError, timeout=(0.5, 0.5), deadline=1)
    elapsed = time.perf_counter() - began
    assert str(exc) == f"the API at {fund_api.url} did not answer within 1 s (1 attempt)"
    assert fund_api.hits == 1
    assert 0.9 < elapsed < 2.5


def test_dripping_headers_end_at_the_deadline_too(fund_api):
    fund_api.script(["ok:drip-all=0.1"])
    began = time.perf_counter()
    exc = fails(fund_api, ApiTimeoutError, timeout=(0.5, 0.5), deadline=1)
    assert str(exc) == f"the API at {fund_api.url} did not answer within 1 s (1 attempt)"
    assert time.perf_counter() - began < 2.5


def test_every_attempt_counts_against_one_deadline(fund_api):
    # each attempt is dropped after 0.4 s (under the 0.5 s read timeout): without a
    # deadline four attempts would take 1.6 s
    fund_api.script(["drop:delay=0.4"] * 4)
    began = time.perf_counter()
    exc = fails(fund_api, ApiTimeoutError, deadline=1)
    elapsed = time.perf_counter() - began
    assert re.fullmatch(rf"the API at {re.escape(fund_api.url)} did not answer within 1 s "
                        r"\([23] attempts\)", str(exc)), str(exc)
    assert fund_api.hits <= 3
    assert elapsed < 2.0


def test_a_retry_after_past_the_deadline_is_not_waited_for(fund_api):
    fund_api.script(["503:retry-after=2", "ok"])
    began = time.perf_counter()
    exc = fails(fund_api, ApiStatusError, deadline=1)
    assert time.perf_counter() - began < 0.8
    assert re.fullmatch(r"the API is unavailable \(503\); it asks to wait 2 s, more than the "
                        r"[01](\.\d)? s left of the 1 s limit; body: "
                        r'\{"detail":"Service Unavailable"\}', str(exc)), str(exc)
    assert fund_api.hits == 1


def test_a_backoff_past_the_deadline_is_not_begun(fund_api):
    fund_api.script(["503", "503", "ok"])  # waits: none, then 2 s
    began = time.perf_counter()
    exc = fails(fund_api, ApiStatusError, backoff=1.0, deadline=1.5)
    assert time.perf_counter() - began < 1.0
    assert str(exc) == ("the API is unavailable (503) after 1 retry; no time for another "
                        "attempt within the 1.5 s limit (2 attempts); body: "
                        '{"detail":"Service Unavailable"}')
    assert fund_api.hits == 2


def test_dropped_connections_stop_at_the_deadline(refused_url, fund_api):
    fund_api.script(["drop"] * 3)
    exc = fails(fund_api, ApiConnectionError, backoff=1.0, deadline=1.5)
    assert str(exc) == (f"cannot reach {fund_api.url}: the connection was closed without an "
                        "answer; no time for another attempt within the 1.5 s limit "
                        "(2 attempts)")
    assert fund_api.hits == 2


def test_retry_after_as_an_http_date(fund_api):
    past = "Sun, 06 Nov 1994 08:49:37 GMT"  # in the past: retry at once
    fund_api.script([Reply(status=503, headers={"Retry-After": past}), "ok"])
    assert len(fetch(fund_api).rows) == 20
    assert fund_api.hits == 2 and fund_api.gaps()[0] < 0.5

    soon = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    fund_api.script([Reply(status=429, headers={"Retry-After": soon})])
    exc = fails(fund_api, ApiStatusError)
    assert re.fullmatch(r"the API is rate limiting requests \(429\); it asks to wait "
                        r"3[56]\d\d s; body: .*", str(exc)), str(exc)


def test_a_negative_retry_after_is_no_wait(fund_api):
    fund_api.script(["429:retry-after=-5"] * 4)
    exc = fails(fund_api, ApiStatusError)
    assert str(exc) == ('the API is rate limiting requests (429) after 3 retries; '
                        'body: {"detail":"Too Many Requests"}')
    assert fund_api.hits == 4


# --------------------------------------------------------------------------- size, encodings


def test_a_gzip_answer_is_read(fund_api):
    fund_api.script(["ok:gzip"])
    assert len(fetch(fund_api).rows) == 20


def test_a_decompression_bomb_is_refused_at_the_size_limit(fund_api):
    # 60 MB of zeros in ~60 KB of gzip: read in chunks, refused past MAX_BODY
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"0" * 2**20
    bomb = b"".join(packer.compress(zeros) for _ in range(60)) + packer.flush()
    assert len(bomb) < 2**20 < MAX_BODY < 60 * 2**20
    fund_api.script([Reply(body=bomb, headers={"Content-Encoding": "gzip"})])
    exc = fails(fund_api, ApiResponseError)
    assert str(exc) == f"the answer of the API at {fund_api.url} is larger than 50 MB"
    assert exc.status == 200
    assert fund_api.hits == 1


def test_a_body_that_is_not_really_gzip(fund_api):
    fund_api.script([Reply(body=b'{"start": 1}', headers={"Content-Encoding": "gzip"})])
    exc = fails(fund_api, ApiResponseError)
    assert str(exc) == (f"the API at {fund_api.url} sent a compressed answer that cannot be "
                        "decompressed")


def test_an_answer_cut_short_is_retried_then_named_in_words(fund_api):
    fund_api.script(["ok:cut", "ok"])
    assert len(fetch(fund_api).rows) == 20
    fund_api.script(["ok:cut"] * 4)
    exc = fails(fund_api, ApiConnectionError)
    assert str(exc) == (f"the API at {fund_api.url} broke off its answer: the connection "
                        "closed before the end")
    assert "Error" not in str(exc)


# --------------------------------------------------------------------------- redirects


def test_a_redirect_to_another_host_is_reported_not_followed(fund_api):
    with FundApi(holdings=[row("EVIL", 1.0)]) as other:
        for status in (301, 302, 307, 308):
            fund_api.script([Reply(status=status, headers={"Location": other.url + PATH})])
            exc = fails(fund_api, ApiStatusError)
            assert str(exc) == (f"the API redirected to {other.url}{PATH} ({status}): set "
                                f"XLFUNCS_API_URL to the address it names ({other.url})")
            assert exc.status == status
        assert other.hits == 0
    assert fund_api.hits == 4


def test_a_redirect_with_a_token_is_not_followed_nor_blamed_on_the_token():
    with FundApi(token=TOKEN) as api, FundApi(token=TOKEN) as other:
        api.script([Reply(status=307, headers={"Location": f"{other.url}{PATH}?t={TOKEN}"})])
        exc = fails(api, ApiStatusError, token=TOKEN)
        assert str(exc).startswith(f"the API redirected to {other.url}{PATH} (307)")
        assert "401" not in str(exc) and TOKEN not in _all_text(exc)
        assert other.hits == 0


def test_a_redirect_loop_and_relative_and_missing_locations(fund_api):
    fund_api.script([Reply(status=301, headers={"Location": fund_api.url + PATH}),
                     Reply(status=302, headers={"Location": "/v2" + PATH}),
                     Reply(status=303)])
    assert str(fails(fund_api, ApiStatusError)).startswith(
        f"the API redirected to {fund_api.url}{PATH} (301)")
    assert str(fails(fund_api, ApiStatusError)) == (
        f"the API redirected to {fund_api.url}/v2{PATH} (302): set XLFUNCS_API_URL to the "
        f"address it names ({fund_api.url}/v2)")
    assert str(fails(fund_api, ApiStatusError)) == (
        "the API answered 303 (a redirect) without saying where to: check XLFUNCS_API_URL")
    assert fund_api.hits == 3


# --------------------------------------------------------------------------- numbers, dates


def _huge_shares_body(digits: int) -> bytes:
    rows = [row("AAPL", 100.0)]
    text = json.dumps({"start": DAY.isoformat(), "end": DAY.isoformat(), "trading_days": 1,
                       "holdings": rows})
    return text.replace('"shares": 10.0', '"shares": ' + "9" * digits).encode()


@pytest.mark.parametrize(("reply", "message"), [
    (Reply(holdings=[row("AAPL", 100.0, shares=10**400, price=1.0)]),
     "holdings[0].shares is too large"),
    (Reply(holdings=[row("AAPL", 100.0, beta=-(10**400))]), "holdings[0].beta is too large"),
    (Reply(transform=lambda a: {**a, "trading_days": 10**400}), "trading_days is too large"),
    (Reply(body=_huge_shares_body(5000)), "holdings[0].shares is too large"),
    (Reply(transform=lambda a: {**a, "trading_days": -(10**400)}),
     "trading_days is a number with 401 digits, a whole number is needed"),
])
def test_huge_numbers_are_too_large_not_a_crash(fund_api, reply, message):
    fund_api.script([reply])
    assert str(fails(fund_api, ApiResponseError)) == message


def test_the_answer_must_be_for_the_dates_asked(fund_api):
    fund_api.script([Reply(transform=lambda a: {**a, "start": "2025-02-17", "end": "2025-02-17"}),
                     Reply(transform=lambda a: {**a, "start": a["end"], "end": a["start"]})])
    assert str(fails(fund_api, ApiResponseError)) == (
        "the API answered for 2025-02-17, not for 2025-02-18 as asked")
    with pytest.raises(ApiResponseError) as info:
        fetch_holdings("quant", date(2025, 2, 10), DAY, config=config(fund_api))
    assert str(info.value) == "the API answer's start 2025-02-18 is after its end 2025-02-10"


# --------------------------------------------------------------------------- a token echoed back

# long, with a slash and a quote: a JSON encoder may escape both
LONG_TOKEN = "eyJ" + "Zk9/q" * 40 + 'x"Y' + "w7+Lp" * 20


def _no_piece_of(token: str, text: str, size: int = 8) -> bool:
    return not any(token[i:i + size] in text for i in range(len(token) - size + 1))


def _failures(client: HoldingsClient, n: int) -> list[ApiError]:
    """The errors of ``n`` fetches that must each fail."""
    errors = []
    for _ in range(n):
        with pytest.raises(ApiError) as info:
            client.fetch("quant", DAY, DAY)
        errors.append(info.value)
    return errors


def test_a_long_token_echoed_back_leaves_no_piece_in_any_message(caplog):
    caplog.set_level(logging.DEBUG)
    escaped = json.dumps(LONG_TOKEN)[1:-1].replace("/", "\\/")
    pad = "x" * 150  # the excerpt is cut at 200 characters: inside the token
    with FundApi(token=LONG_TOKEN) as api:
        api.script([
            Reply(status=500, body=f"{pad} Authorization: {{authorization}}", echo=True),
            Reply(status=502, body=f'{{"detail": "{pad} {escaped}"}}'),
            Reply(status=422, echo=True, json={"detail": [
                {"loc": ["body", "fund"], "msg": f"{pad} got {{authorization}}"}]}),
            "echo",
            Reply(echo=True, holdings=[row("AAPL", 100.0, shares="{authorization}", price=1.0)]),
            Reply(echo=True, body=f"<html>{pad} {{authorization}}"),
            Reply(echo=True, transform=lambda a: {**a, "start": "{authorization}"}),
        ])
        with HoldingsClient(config(api, token=LONG_TOKEN, retries=0)) as client:
            errors = _failures(client, 7)
            # a token in a field the contract accepts reaches neither the snapshot nor a cell
            api.script([Reply(echo=True, holdings=[row("{authorization}", 100.0)])])
            snap = client.fetch("quant", DAY, DAY)
            raw = client.summary("quant", DAY, DAY)
        assert all(r.headers["authorization"] == f"Bearer {LONG_TOKEN}" for r in api.requests)
    assert snap.tickers == ("Bearer ***",)
    assert str(errors[4]) == "holdings[0].shares is text 'Bearer ***', a number is needed"
    assert str(errors[6]) == "start is text 'Bearer ***', a date YYYY-MM-DD is needed"
    assert "Bearer ***" in str(errors[0]) and "***" in str(errors[1])
    assert json.dumps(raw).count(LONG_TOKEN[:8]) == 0
    for exc in errors:
        assert _no_piece_of(LONG_TOKEN, _all_text(exc)), exc
    assert _no_piece_of(LONG_TOKEN, caplog.text)
    assert _no_piece_of(LONG_TOKEN, "\n".join(repr(r.args) for r in caplog.records))


def test_parse_summary_scrubs_the_secrets_it_is_given():
    answer = {"start": "2025-02-18", "end": "2025-02-18", "trading_days": 1,
              "holdings": [row("AAPL", 100.0, price=f"Bearer {LONG_TOKEN}")]}
    with pytest.raises(ApiResponseError) as info:
        parse_summary(answer, fund="quant", secrets=[LONG_TOKEN])
    assert str(info.value) == "holdings[0].price is text 'Bearer ***', a number is needed"


# --------------------------------------------------------------- a token in another spelling

ECHO_TOKEN = "xlf_Tok-7Q2w/9Zk+4Lm0pNB.q~"
SPELLINGS = token_spellings(ECHO_TOKEN)


def _leak_free(spelling: str, *texts: str) -> bool:
    """No piece of the token, nor of the spelling that carried it, in any of ``texts``."""
    text = "\n".join(texts)
    return not leaks(ECHO_TOKEN, text) and not leaks(spelling, text)


@pytest.mark.parametrize("form", list(SPELLINGS))
def test_a_token_echoed_in_any_spelling_is_not_shown(form, caplog):
    """Issue 16.3: a 500 body ``{"detail":"\\u0053\\u0065..."}`` reached every message."""
    caplog.set_level(logging.DEBUG)
    spelling = SPELLINGS[form]
    pad = "y" * 150  # the excerpt is cut at 200 characters: inside the spelling
    with FundApi(token=ECHO_TOKEN) as api:
        api.script([
            Reply(status=500, body=f'{{"detail":"{spelling}"}}'),
            Reply(status=500, body=f"{pad} {spelling}"),
            Reply(status=422, body=json.dumps({"detail": [
                {"loc": ["body", "fund"], "msg": f"bad {spelling}"}]}).replace("\\\\", "\\")),
            Reply(status=200, body=f"<html>{spelling}</html>"),
        ])
        with HoldingsClient(config(api, token=ECHO_TOKEN, retries=0)) as client:
            errors = _failures(client, 4)
    assert str(errors[0]) == ("the API failed (500): a server error, or fund 'quant' is "
                              "unknown; body: (not shown: it quotes the API token)")
    assert str(errors[3]) == ("the API answered 200 but not with JSON: (not shown: it quotes "
                              "the API token)")
    for exc in errors:
        assert _leak_free(spelling, _all_text(exc)), exc
    assert _leak_free(spelling, caplog.text, *(repr(r.args) for r in caplog.records))


@pytest.mark.parametrize("form", list(SPELLINGS))
def test_a_token_in_any_spelling_in_a_field_reaches_no_snapshot_nor_message(form):
    spelling = SPELLINGS[form]
    answer = json.dumps({"start": str(DAY), "end": str(DAY), "trading_days": 1,
                         "holdings": [row(f"X {spelling}", 100.0), row("AAPL", 50.0)]})
    if "json" in form:  # the escapes as the API wrote them: the client decodes them
        answer = answer.replace("\\\\", "\\")
    with FundApi(token=ECHO_TOKEN) as api:
        api.script([Reply(body=answer), Reply(holdings=[row("AAPL", 100.0, price=spelling)])])
        with HoldingsClient(config(api, token=ECHO_TOKEN, retries=0)) as client:
            snap = client.fetch("quant", DAY, DAY)
            with pytest.raises(ApiResponseError) as info:
                client.fetch("quant", DAY, DAY)
    assert snap.tickers[1] == "AAPL" and snap.tickers[0] in ("***", "X ***")
    assert _leak_free(spelling, repr(snap), snap.to_frame().to_csv())
    assert str(info.value) in ("holdings[0].price is text '***', a number is needed",
                               "holdings[0].price is text '*** ', a number is needed")
    assert _leak_free(spelling, _all_text(info.value))


def test_a_body_too_large_to_go_over_is_not_quoted(fund_api):
    from xlfuncs.data.holdings import MAX_TEXT

    body = "Internal Server Error " + "z" * MAX_TEXT
    fund_api.script([Reply(status=500, body=body), Reply(status=500, body=body[:MAX_TEXT])])
    exc = fails(fund_api, ApiStatusError, retries=0)
    assert str(exc).endswith(f"; body: (not shown: {len(body):,} bytes)")
    assert str(fails(fund_api, ApiStatusError, retries=0)).endswith("zzz...")
