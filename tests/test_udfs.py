"""Worksheet functions called with exactly what xlwings hands a UDF on Windows."""

from __future__ import annotations

import datetime as dt
import inspect
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlfuncs import core, udfs
from xlfuncs.data.samples import sector_example
from xlfuncs.excel.cells import ERROR_PREFIX
from xlfuncs.excel.functions import REGISTRY


@pytest.fixture(scope="module")
def sheet():
    """The sector example as cell ranges (2-D lists, as declared with ndim=2)."""
    ex = sector_example()
    tickers = list(ex.tickers)
    weights = [[float(x)] for x in ex.weights]
    vols = [[float(x)] for x in ex.vols]
    corr = [[None, *tickers]] + [
        [t, *map(float, row)] for t, row in zip(tickers, ex.corr.to_numpy(), strict=True)
    ]
    return {"tickers": tickers, "weights": weights, "vols": vols, "corr": corr, "s": 0.116,
            "ex": ex}


def is_error(x):
    return isinstance(x, str) and x.startswith(ERROR_PREFIX)


def body(spilled):
    return np.array([row[1:] for row in spilled[1:]], dtype=float)


def test_registry_lists_every_public_udf():
    assert set(udfs.__all__) <= set(REGISTRY)
    for name in udfs.__all__:
        fn = REGISTRY[name]
        assert fn.doc and len(fn.doc) <= 255
        assert all(a.doc and len(a.doc) <= 255 for a in fn.args)
        # xlwings reads the signature through the guard
        params = list(inspect.signature(getattr(udfs, name)).parameters)
        assert params == [a.name for a in fn.args]
        assert not any(p.annotation is not inspect.Parameter.empty
                       for p in inspect.signature(getattr(udfs, name)).parameters.values())


def test_implied_corr_labelled_spill(sheet):
    out = udfs.IMPLIED_CORR(sheet["weights"], sheet["vols"], sheet["s"], sheet["corr"])
    assert out[0] == ["", *sheet["tickers"]]
    assert [r[0] for r in out[1:]] == sheet["tickers"]
    ex = sheet["ex"]
    ref = core.implied_correlation(ex.weights, ex.vols, 0.116, ex.corr.to_numpy()).corr
    np.testing.assert_allclose(body(out), ref, atol=1e-14)
    assert all(isinstance(x, float) for row in out[1:] for x in row[1:])


def test_implied_cov_unlabelled_is_plain_matrix(sheet):
    plain = [row[1:] for row in sheet["corr"][1:]]
    out = udfs.IMPLIED_COV(sheet["weights"], sheet["vols"], sheet["s"], plain)
    m = np.array(out)
    assert m.shape == (11, 11)
    v = np.array(sheet["vols"]).ravel()
    np.testing.assert_allclose(np.sqrt(np.diag(m)), v, rtol=1e-14)
    w = np.array(sheet["weights"]).ravel()
    assert np.sqrt(w @ m @ w) == pytest.approx(0.116, rel=1e-12)


def test_rows_columns_and_1d_lists_are_equivalent(sheet):
    col = udfs.IMPLIED_CORR(sheet["weights"], sheet["vols"], sheet["s"], sheet["corr"])
    row_w = [[x[0] for x in sheet["weights"]]]
    flat_v = [x[0] for x in sheet["vols"]]
    other = udfs.IMPLIED_CORR(row_w, flat_v, [[0.116]], sheet["corr"])
    np.testing.assert_array_equal(body(col), body(other))


def test_labels_align_not_positions(sheet):
    """Labelled weights in reverse order, corr with columns shuffled: same answer."""
    tickers = sheet["tickers"]
    rev = list(range(11))[::-1]
    weights = [["ticker", "weight"]] + [[tickers[i], sheet["weights"][i][0]] for i in rev]
    vols = [[tickers[i], sheet["vols"][i][0]] for i in rev]
    perm = np.random.default_rng(0).permutation(11)
    corr = [[None, *[tickers[j] for j in perm]]] + [
        [tickers[i], *[sheet["corr"][i + 1][j + 1] for j in perm]] for i in range(11)
    ]
    base = udfs.IMPLIED_CORR(sheet["weights"], sheet["vols"], 0.116, sheet["corr"])
    out = udfs.IMPLIED_CORR(weights, vols, 0.116, corr)
    assert out[0][1:] == [tickers[i] for i in rev]  # weights are the first labelled input
    order = [tickers.index(t) for t in out[0][1:]]
    np.testing.assert_allclose(body(out), body(base)[np.ix_(order, order)], atol=1e-13)


def test_percent_text_and_header_cells_are_understood(sheet):
    weights = [["SPY weight"]] + [[f"{x[0] * 100:.2f}%"] for x in sheet["weights"]]
    out = udfs.INDEX_VOL(weights, sheet["vols"], sheet["corr"])
    assert out == pytest.approx(udfs.INDEX_VOL(sheet["weights"], sheet["vols"], sheet["corr"]))
    assert out == pytest.approx(0.0848, abs=5e-4)


def test_trailing_blank_rows_are_ignored(sheet):
    weights = sheet["weights"] + [[None], [None]]
    vols = sheet["vols"] + [[None], [None]]
    assert not is_error(udfs.IMPLIED_AVG_CORR(weights, vols, 0.116))


def test_shift_method_and_avg_corr(sheet):
    out = udfs.IMPLIED_CORR(sheet["weights"], sheet["vols"], 0.116, sheet["corr"], "Shift")
    assert not is_error(out)
    assert udfs.IMPLIED_AVG_CORR(sheet["weights"], sheet["vols"], 0.116) == pytest.approx(
        0.44135, abs=1e-5)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.update(vols=a["vols"][:-1]), "weights has 11 values but vols has 10 values"),
        (lambda a: a["vols"].__setitem__(3, [None]), "vols has a blank at row 4"),
        (lambda a: a["vols"].__setitem__(3, [0.0]), "vols must be positive"),
        (lambda a: a["vols"].__setitem__(3, [-0.1]), "vols must be positive"),
        (lambda a: a["vols"].__setitem__(2, ["n/a"]), 'vols has text "n/a" at row 3'),
        (lambda a: a["vols"].__setitem__(2, ["#N/A"]), "vols has #N/A at row 3"),
        (lambda a: a["vols"].__setitem__(2, [-2146826246]), "vols has #N/A at row 3"),
        (lambda a: a["vols"].__setitem__(2, [True]), "vols has TRUE at row 3"),
        (lambda a: a["vols"].__setitem__(2, [dt.datetime(2025, 2, 18)]), "vols has a date"),
        (lambda a: a["corr"][3].__setitem__(5, 0.9), r"corr is not symmetric \(XLE/XLI"),
        (lambda a: a["corr"][3].__setitem__(5, None), "corr has a blank at row 4, column 6"),
        (lambda a: a["corr"][3].__setitem__(5, float("nan")),
         "corr has a non-finite number at row 4, column 6"),
        (lambda a: a["corr"][3].__setitem__(5, -2146826246), "corr has #N/A at row 4, column 6"),
        (lambda a: a["corr"][3].__setitem__(5, False), "corr has FALSE at row 4, column 6"),
        (lambda a: a.update(corr=[r[:-1] for r in a["corr"]]), "corr must be square"),
        (lambda a: a["corr"][2].__setitem__(2, 0.5), "corr diagonal must be 1"),
        (lambda a: a.update(s=0.4), r"index_vol 0\.4 is above the 0\.1559 reached"),
        (lambda a: a.update(s=None), "index_vol has a blank"),
        (lambda a: a.update(s="abc"), 'index_vol has text "abc"'),
        (lambda a: a.update(s=[[0.1, 0.2]]), "index_vol must be a single cell"),
        (lambda a: a["corr"][0].__setitem__(1, "XXX"), "XLB in corr rows but not in corr columns"),
        (lambda a: a.update(method="slsqp"), 'method must be one of nearest, shift'),
        (lambda a: a.update(weights=[[0.1, 0.2, 0.3]] * 3), "weights must be a single row"),
    ],
)
def test_bad_input_gives_one_readable_error(sheet, mutate, message):
    args = {
        "weights": [r[:] for r in sheet["weights"]],
        "vols": [r[:] for r in sheet["vols"]],
        "s": sheet["s"],
        "corr": [r[:] for r in sheet["corr"]],
        "method": None,
    }
    mutate(args)
    out = udfs.IMPLIED_CORR(args["weights"], args["vols"], args["s"], args["corr"],
                            args["method"])
    assert is_error(out), out
    assert "\n" not in out and len(out) < 250
    assert re.search(message, out), out


def test_labels_that_do_not_match_are_reported(sheet):
    weights = [[t, w[0]] for t, w in zip(sheet["tickers"], sheet["weights"], strict=True)]
    weights[0][0] = "SPY"
    out = udfs.IMPLIED_CORR(weights, sheet["vols"], 0.116, sheet["corr"])
    assert is_error(out) and "SPY" in out and "corr" in out


def test_unlabelled_argument_with_conflicting_orders_is_refused(sheet):
    tickers = sheet["tickers"]
    weights = [[t, w[0]] for t, w in zip(tickers, sheet["weights"], strict=True)][::-1]
    out = udfs.IMPLIED_CORR(weights, sheet["vols"], 0.116, sheet["corr"])
    assert is_error(out) and "vols has no tickers" in out


# --------------------------------------------------------------------------- returns, hist


@pytest.fixture(scope="module")
def prices():
    rng = np.random.default_rng(11)
    p = 100 * np.cumprod(1 + rng.normal(0.0005, 0.01, (60, 4)), axis=0)
    dates = [dt.datetime(2025, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    table = [["date", "AAA", "BBB", "CCC", "DDD"]] + [
        [d, *map(float, row)] for d, row in zip(dates, p, strict=True)
    ]
    return p, dates, table


def test_returns_keeps_header_and_dates(prices):
    p, dates, table = prices
    out = udfs.RETURNS(table)
    assert out[0] == ["date", "AAA", "BBB", "CCC", "DDD"]
    assert [r[0] for r in out[1:]] == dates[1:]
    np.testing.assert_allclose(np.array([r[1:] for r in out[1:]]), p[1:] / p[:-1] - 1,
                               rtol=1e-15)


def test_hist_cov_and_corr(prices):
    p, _, table = prices
    rets = udfs.RETURNS(table)
    r = p[1:] / p[:-1] - 1
    cov = udfs.HIST_COV(rets, None, 252)
    np.testing.assert_allclose(body(cov), np.cov(r, rowvar=False) * 252, rtol=1e-12)
    corr = udfs.HIST_CORR(rets)
    np.testing.assert_allclose(body(corr), np.corrcoef(r, rowvar=False), atol=1e-14)
    assert cov[0] == ["", "AAA", "BBB", "CCC", "DDD"]
    # numbers only: an unlabelled result
    plain = udfs.HIST_COV([row[1:] for row in rets[1:]], "sample")
    np.testing.assert_allclose(np.array(plain), np.cov(r, rowvar=False), rtol=1e-12)


def test_hist_methods(prices):
    _, _, table = prices
    rets = udfs.RETURNS(table)
    for method in ("ewma", "ewma:20", "ledoit-wolf", "LW"):
        out = udfs.HIST_COV(rets, method)
        assert not is_error(out), out
        m = body(out)
        assert np.allclose(m, m.T) and np.linalg.eigvalsh(m).min() > 0
    assert "method must be one of" in udfs.HIST_COV(rets, "garch")
    assert "periods_per_year" in udfs.HIST_COV(rets, None, -5)
    assert "prices must be positive" in udfs.RETURNS([[1.0], [0.0], [2.0]])
    assert "at least 2 rows" in udfs.HIST_CORR([[0.01, 0.02]])


def test_hist_corr_feeds_implied_corr(prices):
    """The spilled output of one function is a valid input of the next."""
    _, _, table = prices
    corr = udfs.HIST_CORR(udfs.RETURNS(table))
    weights = [["AAA", 0.4], ["BBB", 0.3], ["CCC", 0.2], ["DDD", 0.1]]
    vols = [["DDD", 0.3], ["CCC", 0.25], ["BBB", 0.2], ["AAA", 0.15]]
    hist = udfs.INDEX_VOL(weights, vols, corr)
    out = udfs.IMPLIED_CORR(weights, vols, hist * 1.1, corr)
    assert not is_error(out), out
    assert udfs.INDEX_VOL(weights, vols, out) == pytest.approx(hist * 1.1, rel=1e-12)


# --------------------------------------------------------------------------- row order


def test_returns_of_newest_first_prices_are_in_date_order():
    """The issue's case: it gave -0.0909 and -0.5, returns computed backwards in time."""
    d = dt.datetime
    out = udfs.RETURNS([["date", "A"], [d(2024, 1, 3), 110.0], [d(2024, 1, 2), 100.0],
                        [d(2024, 1, 1), 50.0]])
    assert out[0] == ["date", "A"]
    assert [r[0] for r in out[1:]] == [d(2024, 1, 2), d(2024, 1, 3)]
    assert [r[1] for r in out[1:]] == pytest.approx([100 / 50 - 1, 110 / 100 - 1], rel=1e-15)


def _rows(table, order):
    return [table[0], *(table[1:][i] for i in order)]


@pytest.mark.parametrize("method", [None, "ewma:1", "ewma", "ledoit-wolf"])
def test_hist_estimates_of_dated_returns_ignore_row_order(prices, method):
    _, _, table = prices
    rets = udfs.RETURNS(table)
    n = len(rets) - 1
    newest_first = _rows(rets, range(n - 1, -1, -1))
    shuffled = _rows(rets, np.random.default_rng(5).permutation(n))
    for func in (udfs.HIST_COV, udfs.HIST_CORR):
        want = func(rets, method)
        assert not is_error(want), want
        assert func(newest_first, method) == want
        assert func(shuffled, method) == want
    # prices in any order give the same returns
    assert udfs.RETURNS(_rows(table, range(len(table) - 2, -1, -1))) == rets


def test_ewma_weighs_the_latest_date_most(prices):
    """Checked against pandas' exponentially weighted covariance of the date-ordered returns."""
    p, dates, _ = prices
    r = p[1:] / p[:-1] - 1
    newest_first = [["date", "A", "B", "C", "D"],
                    *([d, *map(float, row)] for d, row in zip(dates[:0:-1], r[::-1],
                                                               strict=True))]
    want = pd.DataFrame(r).ewm(halflife=3).cov().loc[len(r) - 1].to_numpy()
    np.testing.assert_allclose(body(udfs.HIST_COV(newest_first, "ewma:3")), want, rtol=1e-12)


def test_without_dates_the_rows_are_taken_in_the_users_order(prices):
    """No date column: the last row is the latest (EWMA); sample and shrinkage ignore order."""
    p, _, _ = prices
    r = p[1:] / p[:-1] - 1
    table = [["A", "B", "C", "D"], *r.tolist()]
    flipped = [table[0], *r[::-1].tolist()]
    want = pd.DataFrame(r[::-1]).ewm(halflife=3).cov().loc[len(r) - 1].to_numpy()
    np.testing.assert_allclose(body(udfs.HIST_COV(flipped, "ewma:3")), want, rtol=1e-12)
    assert not np.allclose(body(udfs.HIST_COV(table, "ewma:3")), want, rtol=1e-3)
    for method in ("sample", "ledoit-wolf"):
        np.testing.assert_allclose(body(udfs.HIST_COV(flipped, method)),
                                   body(udfs.HIST_COV(table, method)), rtol=1e-12)


def test_a_date_given_twice_is_reported_by_every_table_function(prices):
    _, dates, table = prices
    twice = [row.copy() for row in table]
    twice[9][0] = dates[3]  # row 10 of the range repeats the date of row 5
    for func, name in ((udfs.RETURNS, "prices"), (udfs.HIST_COV, "returns"),
                       (udfs.HIST_CORR, "returns")):
        out = func(twice)
        assert out == (f"{ERROR_PREFIX} {name} has the date {dates[3]:%Y-%m-%d} twice "
                       "(rows 5 and 10 of column 1); give each date once")


# A fresh Python, as Excel's UDF server starts: the module is loaded, then recalculated.
FIRST_LEDOIT_WOLF = """
import sys
import xlfuncs.udfs as u
before = set(sys.modules)
out = u.HIST_COV([["A", "B"], [0.01, 0.02], [0.02, -0.01], [-0.01, 0.03]], "ledoit-wolf")
assert isinstance(out, list), out
print(sorted(set(sys.modules) - before))
"""


def test_the_first_ledoit_wolf_call_imports_nothing():
    """scikit-learn comes with the worksheet functions, not with the first call (1-6 s)."""
    done = subprocess.run([sys.executable, "-c", FIRST_LEDOIT_WOLF], capture_output=True,
                          text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- fuzz


def random_cell(rng):
    kind = rng.integers(0, 12)
    return [
        None,
        float(rng.normal()),
        float(rng.uniform(0, 1)),
        "#N/A",
        "abc",
        True,
        dt.datetime(2024, 1, 1),
        float("nan"),
        float("inf"),
        f"{rng.uniform(0, 100):.1f}%",
        -2146826281,
        "",
    ][kind]


EXCEL_EPOCH = dt.datetime(1899, 12, 30)
DATE_FORMS = ("datetime", "serial", "iso", "us")


def date_cells(stamps, form):
    """Dates as xlwings hands them: datetime, General-formatted serial, or text."""
    return {
        "datetime": list(stamps),
        "serial": [float((s - EXCEL_EPOCH).days) for s in stamps],
        "iso": [f"{s:%Y-%m-%d}" for s in stamps],
        "us": [f"{s.month}/{s.day}/{s.year}" for s in stamps],
    }[form]


def random_dated_table(rng):
    """Prices with a date column: oldest or newest first, shuffled, a date twice, or noise."""
    n, m = int(rng.integers(2, 9)), int(rng.integers(1, 4))
    days = np.sort(rng.choice(60, n, replace=False))
    stamps = [dt.datetime(2023, 12, 28) + dt.timedelta(days=int(d)) for d in days]
    dates = date_cells(stamps, DATE_FORMS[rng.integers(len(DATE_FORMS))])
    order = rng.integers(0, 3)
    if order == 1:
        dates = dates[::-1]
    elif order == 2:
        dates = [dates[i] for i in rng.permutation(n)]
    if rng.random() < 0.3:
        dates[rng.integers(n)] = dates[rng.integers(n)]
    table = [["date", *(f"T{j}" for j in range(m))],
             *([d, *map(float, rng.uniform(50, 150, m))] for d in dates)]
    if rng.random() < 0.2:
        table[rng.integers(1, n + 1)][rng.integers(0, m + 1)] = random_cell(rng)
    return table


def random_arg(rng):
    kind = rng.integers(0, 7)
    if kind == 6:
        return random_dated_table(rng)
    if kind == 0:
        return random_cell(rng)
    if kind == 1:
        return [random_cell(rng) for _ in range(rng.integers(0, 6))]
    rows, cols = rng.integers(1, 7), rng.integers(1, 7)
    cells = [[random_cell(rng) for _ in range(cols)] for _ in range(rows)]
    if kind == 2 and rows > 1 and cols > 1:  # a plausible labelled matrix with noise
        cells[0] = [None] + [f"T{j}" for j in range(1, cols)]
        for i in range(1, rows):
            cells[i][0] = f"T{i}"
    if kind == 3:  # mostly numbers, one bad cell
        cells = [[float(rng.uniform(-1, 1)) for _ in range(cols)] for _ in range(rows)]
        cells[rng.integers(rows)][rng.integers(cols)] = random_cell(rng)
    if kind == 4:
        return []
    return cells


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_fuzz_never_raises(name):
    fn = REGISTRY[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(600):
        n_args = int(rng.integers(fn.min_args, fn.max_args + 1))
        args = [random_arg(rng) for _ in range(n_args)]
        out = fn.func(*args)
        if isinstance(out, str):
            assert out.startswith(ERROR_PREFIX), (args, out)
            assert "\n" not in out and "Traceback" not in out
            assert "failed unexpectedly" not in out, (args, out)
        else:
            assert isinstance(out, float | list), (args, out)
            if isinstance(out, float):
                assert np.isfinite(out)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 12), form=st.sampled_from(DATE_FORMS), data=st.data())
def test_any_row_order_of_dated_prices_gives_the_date_ordered_results(n, form, data):
    rng = np.random.default_rng(n)
    stamps = [dt.datetime(2024, 2, 26) + dt.timedelta(days=int(d))
              for d in np.sort(rng.choice(30, n, replace=False))]
    prices = rng.uniform(50, 150, (n, 3))
    dates = date_cells(stamps, form)
    ordered = [["date", "A", "B", "C"], *([d, *map(float, p)] for d, p in zip(dates, prices,
                                                                             strict=True))]
    order = data.draw(st.permutations(range(n)))
    table = _rows(ordered, order)
    rets = udfs.RETURNS(table)
    assert rets == udfs.RETURNS(ordered)
    np.testing.assert_allclose(np.array([r[1:] for r in rets[1:]]), prices[1:] / prices[:-1] - 1,
                               rtol=1e-15)
    shuffled_returns = _rows(rets, [k for k in order if k < n - 1])
    for method in ("ewma:1", "ledoit-wolf"):
        assert udfs.HIST_COV(shuffled_returns, method) == udfs.HIST_COV(rets, method)
    # a date given twice, wherever it is, is reported with both rows as the user sees them
    i, j = data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
    twice = [row.copy() for row in table]
    twice[j + 1][0] = twice[i + 1][0]
    out = udfs.RETURNS(twice)
    assert is_error(out) and "prices has the date" in out
    assert f"twice (rows {min(i, j) + 2} and {max(i, j) + 2} of column 1" in out


# --------------------------------------------------------------------------- cell parsing


COV2 = [["", "A", "B"], ["A", 0.04, 0.01], ["B", 0.01, 0.04]]
ETF2 = [["ticker", "weight"], ["A", 0.5], ["B", 0.5]]
MONTH_ENDS = [dt.datetime(2024, 1, 31), dt.datetime(2024, 2, 29), dt.datetime(2024, 3, 31)]
RETS = [[0.01, 0.02], [-0.01, 0.0], [0.02, 0.01]]


def test_percent_text_under_a_percent_header_is_not_divided_again():
    holdings = [["ticker", "weight %"], ["A", "50%"], ["B", "50%"]]
    assert udfs.PORTFOLIO_BETA(holdings, ETF2, COV2) == pytest.approx(1.0, rel=1e-14)
    holdings = [["ticker", "weight %"], ["A", 50.0], ["B", 50.0]]
    assert udfs.PORTFOLIO_BETA(holdings, ETF2, COV2) == pytest.approx(1.0, rel=1e-14)


def test_percent_header_over_percent_formatted_weights_is_reported():
    holdings = [["ticker", "weight %"], ["A", 0.5], ["B", 0.5]]
    out = udfs.PORTFOLIO_BETA(holdings, ETF2, COV2)
    assert is_error(out) and out.startswith(f"{ERROR_PREFIX} holdings ")
    assert "type 50 for 50%" in out and "remove the % from the header" in out


def test_percent_header_on_vectors():
    corr = [[1, 0.1], [0.1, 1]]
    assert udfs.INDEX_VOL([["weight %"], [50.0], [50.0]], [[0.2], [0.3]], corr) == (
        pytest.approx(0.0355 ** 0.5, rel=1e-14))
    assert udfs.INDEX_VOL([[0.5], [0.5]], [["vol %"], [20.0], ["30%"]], corr) == (
        pytest.approx(0.0355 ** 0.5, rel=1e-14))
    out = udfs.INDEX_VOL([["weight %"], [0.5], [0.5]], [[0.2], [0.3]], corr)
    assert is_error(out) and "weights is in percent" in out
    out = udfs.IMPLIED_AVG_CORR([[0.5], [0.5]], [["vol %"], [0.2], [0.3]], 0.2)
    assert is_error(out) and "vols has 0.2 at row 2" in out


def test_decimal_comma_is_not_a_thousands_separator():
    out = udfs.INDEX_VOL([[0.5], ["0,5"]], [[0.2], [0.3]], [[1, 0.1], [0.1, 1]])
    assert is_error(out) and 'weights has text "0,5" at row 2; a number is needed' in out


def test_several_weight_columns_are_reported():
    holdings = [["ticker", "Portfolio weight", "Benchmark weight", "Active weight"],
                ["A", 0.6, 0.5, 0.1], ["B", 0.4, 0.5, -0.1]]
    out = udfs.PORTFOLIO_BETA(holdings, ETF2, COV2)
    assert is_error(out) and "holdings has several weight columns" in out
    assert "Portfolio weight" in out and "Active weight" in out


def test_a_date_column_of_numbers_is_the_index():
    out = udfs.HIST_COV([["date", "A", "B"], *([m, *r] for m, r in zip(
        [202401.0, 202402.0, 202403.0], RETS, strict=True))])
    assert out[0] == ["", "A", "B"]
    np.testing.assert_allclose(body(out), np.cov(np.array(RETS), rowvar=False), rtol=1e-14)
    out = udfs.RETURNS([["date", "A"], [45293.0, 100.0], [45294.0, 101.0], [45295.0, 99.99]])
    assert out[0] == ["date", "A"] and [r[0] for r in out[1:]] == [45294.0, 45295.0]
    assert [r[1] for r in out[1:]] == pytest.approx([0.01, -0.01], rel=1e-12)


def test_numeric_asset_ids_in_the_header_are_labels_and_flow_on():
    table = [["date", 10107.0, 14593.0], *([m, *r] for m, r in zip(MONTH_ENDS, RETS,
                                                                   strict=True))]
    cov = udfs.HIST_COV(table)
    assert cov[0] == ["", "10107", "14593"]
    np.testing.assert_allclose(body(cov), np.cov(np.array(RETS), rowvar=False), rtol=1e-14)
    betas = udfs.ETF_BETAS([["14593", 0.5], ["10107", 0.5]], cov)
    assert not is_error(betas), betas
    assert [r[0] for r in betas[1:]] == ["10107", "14593"]
    out = udfs.HIST_CORR([["10107", "14593"], *RETS])
    assert out[0] == ["", "10107", "14593"]


def test_one_holding_without_header_and_two_transposed():
    assert udfs.ETF_BETAS([["A", 1.0]], COV2)[1:] == [["A", 1.0], ["B", 0.25]]
    assert udfs.PORTFOLIO_BETA([["A", "B"], [0.5, 0.5]], ETF2, COV2) == pytest.approx(1.0)


def test_bad_cells_in_a_date_index_are_named():
    d1, d2, d3 = MONTH_ENDS
    out = udfs.RETURNS([["date", "A"], [d1, 100.0], [None, 101.0], [d3, 102.0]])
    assert is_error(out) and "prices has a blank at row 3, column 1 where a date" in out
    out = udfs.RETURNS([["date", "A"], [d1, 100.0], ["#N/A", 101.0], [d3, 102.0]])
    assert is_error(out) and "prices has #N/A at row 3, column 1" in out
    out = udfs.RETURNS([["date", "A"], [d1, 100.0], [d2, 101.0], [d3, 102.0],
                        ["Average", 101.0]])
    assert is_error(out) and 'prices has text "Average" at row 5, column 1' in out


def test_leading_blank_rows_and_columns_are_trimmed():
    table = [["date", "A", "B"], *([m, *r] for m, r in zip(MONTH_ENDS, RETS, strict=True))]
    padded = [[None] * 4] + [[None, *row] for row in table]
    assert udfs.HIST_COV(padded) == udfs.HIST_COV(table)
    padded[3][3] = "x"
    out = udfs.HIST_COV(padded)
    assert is_error(out) and 'returns has text "x" at row 4, column 4' in out


def test_accounting_and_currency_text():
    holdings = [["ticker", "weight"], ["A", "$1.5"], ["B", "(0.5)"]]
    assert udfs.PORTFOLIO_BETA(holdings, ETF2, COV2) == pytest.approx(
        1.5 * 1.0 - 0.5 * 1.0)


def test_numeric_text_tickers_in_holdings():
    cov = [["", "7203", "0700"], ["7203", 0.04, 0.01], ["0700", 0.01, 0.04]]
    etf = [["ticker", "weight"], ["7203", 0.5], ["0700", 0.5]]
    assert udfs.PORTFOLIO_BETA([["ticker", "weight"], ["7203", 1.0]], etf, cov) == (
        pytest.approx(1.0))


def test_numbers_out_of_range_are_reported():
    out = udfs.HIST_COV([[0.01, 1e300], [0.02, 0.01], [0.0, 0.0]])
    assert is_error(out) and "returns has the number 1e+300 at row 1, column 2" in out
    assert "out of range" in out
    # text that a float rounds to 0 is as out of range as the subnormal number typed
    for tiny in ("1e-400", 5e-324):
        out = udfs.HIST_COV([["A", "B"], [0.01, 0.02], [tiny, 0.01], [0.0, 0.03]])
        assert is_error(out) and "returns has the number" in out
        assert "at row 3, column 1, out of range" in out
    out = udfs.INDEX_VOL([[0.5], [1e-200]], [[0.2], [0.3]], [[1, 0.1], [0.1, 1]])
    assert is_error(out) and "weights has the number 1e-200 at row 2, out of range" in out
    out = udfs.PORTFOLIO_BETA(ETF2, ETF2, [["", "A", "B"], ["A", 0.04, 1e101],
                                           ["B", 1e101, 0.04]])
    assert is_error(out) and "cov has the number 1e+101 at row 2, column 3" in out


def test_percent_typed_as_plain_numbers_is_reported(sheet):
    weights = [[x[0] * 100] for x in sheet["weights"]]  # 1.98 ... 10.84, no header
    for out in (udfs.IMPLIED_CORR(weights, sheet["vols"], 0.116, sheet["corr"]),
                udfs.IMPLIED_AVG_CORR(weights, sheet["vols"], 0.116),
                udfs.INDEX_VOL(weights, sheet["vols"], sheet["corr"])):
        assert out == ("#xlfuncs! weights sum to 100: index weights are fractions (0.0198 for "
                       "1.98%); divide them by 100 or type them as percentages")
    vols = [[x[0] * 100] for x in sheet["vols"]]
    out = udfs.IMPLIED_COV(sheet["weights"], vols, 0.116, sheet["corr"])
    assert out.startswith("#xlfuncs! vols look like percent (11.7 and up) but index_vol 0.116")
    # both in percent is consistent: the same correlations
    same = udfs.IMPLIED_CORR(sheet["weights"], vols, 11.6, sheet["corr"])
    ref = udfs.IMPLIED_CORR(sheet["weights"], sheet["vols"], 0.116, sheet["corr"])
    assert same[0] == ref[0] and [r[0] for r in same] == [r[0] for r in ref]  # the labels
    np.testing.assert_allclose([r[1:] for r in same[1:]], [r[1:] for r in ref[1:]], atol=1e-9)


@pytest.mark.parametrize("path", ["#N/A", -2146826246, [["#REF!"]]])
def test_etf_holdings_path_holding_an_error(path):
    out = udfs.ETF_HOLDINGS(path)
    assert re.fullmatch(r"#xlfuncs! path has #(N/A|REF!); a file path is needed", out), out


def test_a_wider_labelled_corr_gives_the_weights_assets():
    """A historical corr of a wider universe: the weights' tickers are taken from it."""
    big = [["", "A", "B", "C"], ["A", 1.0, 0.1, 0.2], ["B", 0.1, 1.0, 0.3], ["C", 0.2, 0.3, 1.0]]
    small = [["", "C", "A"], ["C", 1.0, 0.2], ["A", 0.2, 1.0]]
    w, v = [["C", 0.5], ["A", 0.5]], [["A", 0.3], ["C", 0.2]]
    assert udfs.INDEX_VOL(w, v, big) == udfs.INDEX_VOL(w, v, small)
    assert udfs.IMPLIED_CORR(w, v, 0.2, big) == udfs.IMPLIED_CORR(w, v, 0.2, small)
    assert udfs.IMPLIED_CORR([["A", 0.5], ["D", 0.5]], [[0.2], [0.3]], 0.2, big) == (
        "#xlfuncs! D in weights but not in corr")
    # without tickers on the weights, a size mismatch is still an error, not a guess
    assert udfs.IMPLIED_CORR([[0.5], [0.5]], [[0.2], [0.3]], 0.2, big) == (
        "#xlfuncs! weights has 2 values but corr has 3 assets")


def test_max_weight_typed_as_a_percentage_is_reported():
    h = [["ticker", "weight"], ["A", 0.5], ["B", 0.5]]
    e = [["ticker", "weight"], ["A", 0.3], ["C", 0.7]]
    c = [["", "A", "B", "C"], ["A", 0.04, 0.01, 0.01], ["B", 0.01, 0.05, 0.0],
         ["C", 0.01, 0.0, 0.02]]
    assert udfs.BETA_NEUTRAL(h, e, c, 0.2, "reweight", True, 10.0) == (
        "#xlfuncs! max_weight 10 is 1000% of the portfolio: write 0.1 or 10% for 10 percent")
