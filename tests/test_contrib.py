"""Risk contributions, risk budgets and factor exposures (SPEC 3.6), core and worksheet."""

from __future__ import annotations

import datetime as dt

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from xlfuncs import core, udfs
from xlfuncs.errors import InfeasibleError, InputError
from xlfuncs.excel.cells import ERROR_PREFIX


def random_cov(n, seed, t=None):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(t or n + 40, n)) * rng.uniform(0.5, 3.0, n)
    return np.cov(a, rowvar=False) * 0.01


def vol(w, s):
    return float(np.sqrt(w @ s @ w))


# --------------------------------------------------------------------------- core


@pytest.mark.parametrize("active", [False, True])
def test_euler_sum_is_the_volatility(active):
    rng = np.random.default_rng(3)
    n = 60
    s = random_cov(n, 4)
    w = rng.dirichlet(np.ones(n))
    b = rng.dirichlet(np.ones(n)) if active else None
    res = core.risk_contributions(w, s, b)
    a = w - b if active else w
    total = vol(a, s)
    assert res.total == pytest.approx(total, rel=1e-14)
    assert abs(res.contributions.sum() - total) <= 1e-12 * total
    assert res.shares.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(res.weights, a)


def test_contribution_is_finite_difference_derivative_times_weight():
    rng = np.random.default_rng(5)
    n = 12
    s = random_cov(n, 6)
    w = rng.normal(size=n) / n + 1 / n
    b = rng.dirichlet(np.ones(n))
    res = core.risk_contributions(w, s, b)
    h = 1e-6
    fd = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        fd[i] = (vol(w + e - b, s) - vol(w - e - b, s)) / (2 * h)
    np.testing.assert_allclose(res.marginal, fd, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(res.contributions, fd * (w - b), rtol=1e-7, atol=1e-12)


def test_group_sums_are_member_sums():
    rng = np.random.default_rng(7)
    n = 30
    s = random_cov(n, 8)
    w = rng.dirichlet(np.ones(n))
    sectors = [f"S{k}" for k in rng.integers(0, 5, n)]
    res = core.risk_contributions(w, s, labels=[f"T{i}" for i in range(n)])
    by = res.by_group(sectors)
    frame = pd.DataFrame({"g": sectors, "w": w, "c": res.contributions})
    ref = frame.groupby("g", sort=False).sum()
    assert by.labels == tuple(ref.index)
    np.testing.assert_allclose(by.contributions, ref["c"], rtol=1e-13)
    np.testing.assert_allclose(by.weights, ref["w"], rtol=1e-13)
    np.testing.assert_allclose(by.marginal, ref["c"] / ref["w"], rtol=1e-13)
    assert by.contributions.sum() == pytest.approx(vol(w, s), rel=1e-12)


def test_zero_risk_is_reported():
    s = random_cov(4, 1)
    w = np.full(4, 0.25)
    with pytest.raises(InputError, match="tracking error is 0"):
        core.risk_contributions(w, s, w)


def shares_of(w, s):
    return w * (s @ w) / (w @ s @ w)


def scipy_budget(s, b, start):
    """Independent: root of y_i (S y)_i = b_i in log coordinates (scipy's hybrid method)."""
    def f(x):
        y = np.exp(x)
        return y * (s @ y) - b

    def jac(x):
        y = np.exp(x)
        return np.diag(y * (s @ y)) + y[:, None] * s * y[None, :]

    sol = optimize.root(f, np.log(start), jac=jac, method="hybr", tol=1e-12)
    assert np.abs(f(sol.x)).max() < 1e-13
    y = np.exp(sol.x)
    return y / y.sum()


def cvxpy_budget(s, b):
    """Independent: the log-barrier problem in cvxpy with Clarabel."""
    y = cp.Variable(len(b))
    prob = cp.Problem(cp.Minimize(0.5 * cp.quad_form(y, cp.psd_wrap(s)) - b @ cp.log(y)))
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return y.value


@pytest.mark.parametrize("n", [3, 25, 120])
def test_risk_budget_hits_its_budgets(n):
    rng = np.random.default_rng(n)
    s = random_cov(n, n + 1)
    b = rng.uniform(0.2, 3.0, n)
    res = core.risk_budget(s, b)
    b = b / b.sum()
    assert res.method == "newton"
    assert (res.weights > 0).all() and res.weights.sum() == pytest.approx(1, abs=1e-14)
    np.testing.assert_allclose(shares_of(res.weights, s), b, rtol=0, atol=1e-8)
    assert res.vol == pytest.approx(vol(res.weights, s), rel=1e-13)
    by_cvxpy = cvxpy_budget(s, b)
    np.testing.assert_allclose(res.weights, by_cvxpy / by_cvxpy.sum(), rtol=1e-6)
    # scipy's root finder, started from cvxpy's answer, takes it to full precision
    np.testing.assert_allclose(res.weights, scipy_budget(s, b, by_cvxpy), rtol=1e-10)


def test_risk_parity_is_the_default_and_inverse_vol_when_uncorrelated():
    v = np.array([0.1, 0.2, 0.4, 0.25])
    res = core.risk_budget(np.diag(v**2))
    np.testing.assert_allclose(res.weights, (1 / v) / (1 / v).sum(), rtol=1e-12)
    np.testing.assert_allclose(res.budgets, 0.25)


def test_bounded_risk_budget_holds_the_bounds():
    s = random_cov(10, 11, t=60)
    free = core.risk_budget(s)
    assert free.weights.max() > 0.12
    res = core.risk_budget(s, bounds=(0.05, 0.12))
    assert res.method == "clarabel"
    assert res.weights.max() <= 0.12 + 1e-9 and res.weights.min() >= 0.05 - 1e-9
    assert res.weights.sum() == pytest.approx(1, abs=1e-12)
    assert res.bounded  # names the assets held at a bound
    loose = core.risk_budget(s, bounds=(0.0, 0.9))
    np.testing.assert_allclose(loose.weights, free.weights, rtol=1e-14)
    with pytest.raises(InfeasibleError, match="bounds"):
        core.risk_budget(s, bounds=(0.0, 0.05))


def test_risk_budget_refuses_bad_budgets_and_singular_cov():
    s = random_cov(4, 2)
    with pytest.raises(InputError, match="budgets must be positive"):
        core.risk_budget(s, np.array([0.5, 0.5, 0.0, 0.1]))
    singular = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # a + b: no risk
    with pytest.raises(InputError, match="cov is singular"):
        core.risk_budget(singular)


def ols(r, f):
    z = np.column_stack([np.ones(len(f)), f])
    coef, rss, *_ = np.linalg.lstsq(z, r, rcond=None)
    return coef[1:], rss / (len(f) - z.shape[1])


@pytest.mark.parametrize("active", [False, True])
def test_exposures_are_least_squares_betas(active):
    rng = np.random.default_rng(11)
    t_len, n, k = 90, 15, 3
    f = rng.normal(size=(t_len, k)) * 0.04
    beta = rng.normal(1, 0.5, size=(k, n))
    r = f @ beta + rng.normal(size=(t_len, n)) * 0.03
    w = rng.dirichlet(np.ones(n))
    b = rng.dirichlet(np.ones(n)) if active else None
    res = core.factor_exposures(w, r, f, b, factor_names=["MKT", "SMB", "HML"])
    a = w - b if active else w
    betas, resid = ols(r, f)
    np.testing.assert_allclose(res.betas, betas, rtol=1e-10)
    np.testing.assert_allclose(res.exposures, betas @ a, rtol=1e-10)
    sf = np.cov(f, rowvar=False)
    x = betas @ a
    assert res.factor_variance == pytest.approx(x @ sf @ x, rel=1e-10)
    assert res.specific_variance == pytest.approx(resid @ (a * a), rel=1e-10)
    assert res.factor_contributions.sum() == pytest.approx(res.factor_variance, rel=1e-12)
    assert res.factors == ("MKT", "SMB", "HML") and res.active is active


def test_exposures_refuse_collinear_factors_and_short_history():
    rng = np.random.default_rng(2)
    f = rng.normal(size=(30, 2))
    r = rng.normal(size=(30, 3))
    with pytest.raises(InputError, match="collinear"):
        core.factor_exposures(np.ones(3) / 3, r, np.column_stack([f, f[:, 0]]))
    with pytest.raises(InputError, match="at least 5 periods"):
        core.factor_exposures(np.ones(3) / 3, r[:4], f[:4])


# --------------------------------------------------------------------------- worksheet


TICKERS = ["AAPL", "MSFT", "XOM", "JPM", "BRK.B"]
SECTORS = ["Tech", "Tech", "Energy", "Financials", "Financials"]


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(21)
    n = len(TICKERS)
    s = random_cov(n, 22)
    w = rng.dirichlet(np.ones(n))
    b = rng.dirichlet(np.ones(n))
    cov = [[None, *TICKERS]] + [[t, *map(float, row)] for t, row in zip(TICKERS, s,
                                                                        strict=True)]
    return {"s": s, "w": w, "b": b, "cov": cov,
            "weights": [["Ticker", "Weight"]] + [[t, float(x)] for t, x in zip(TICKERS, w,
                                                                            strict=True)],
            "bench": [[t, float(x)] for t, x in zip(TICKERS, b, strict=True)],
            "groups": [["Ticker", "Sector"]] + [[t, g] for t, g in zip(TICKERS, SECTORS,
                                                                       strict=True)]}


def is_error(x):
    return isinstance(x, str) and x.startswith(ERROR_PREFIX)


def test_risk_contrib_spills_the_decomposition(book):
    out = udfs.RISK_CONTRIB(book["weights"], book["cov"])
    assert out[0] == ["ticker", "weight", "marginal contribution", "contribution", "% of total"]
    assert [r[0] for r in out[1:-1]] == TICKERS
    s, w = book["s"], book["w"]
    sigma = vol(w, s)
    np.testing.assert_allclose([r[3] for r in out[1:-1]], w * (s @ w) / sigma, rtol=1e-13)
    assert out[-1][0] == "total" and out[-1][3] == pytest.approx(sigma, rel=1e-14)
    assert sum(r[3] for r in out[1:-1]) == pytest.approx(sigma, rel=1e-12)


def test_risk_contrib_aligns_by_ticker_not_position(book):
    """Weights in another order and spelling, a plain column with an unlabelled cov."""
    rev = [["BRK B", book["w"][4]]] + [[t, float(x)] for t, x in zip(TICKERS[:4],
                                                                      book["w"][:4],
                                                                      strict=True)]
    out = udfs.RISK_CONTRIB(rev, book["cov"])
    ref = udfs.RISK_CONTRIB(book["weights"], book["cov"])
    assert out[-1][3] == pytest.approx(ref[-1][3], rel=1e-14)
    plain = udfs.RISK_CONTRIB([float(x) for x in book["w"]], [r[1:] for r in book["cov"][1:]])
    assert plain[-1][3] == pytest.approx(ref[-1][3], rel=1e-14)
    assert plain[1][0] == "asset 1"


def test_risk_contrib_with_benchmark_and_groups(book):
    s, w, b = book["s"], book["w"], book["b"]
    out = udfs.RISK_CONTRIB(book["weights"], book["cov"], book["bench"], book["groups"])
    assert out[0][:2] == ["group", "active weight"]
    a = w - b
    te = vol(a, s)
    c = a * (s @ a) / te
    frame = pd.DataFrame({"g": SECTORS, "a": a, "c": c}).groupby("g", sort=False).sum()
    assert [r[0] for r in out[1:-1]] == list(frame.index)
    np.testing.assert_allclose([r[3] for r in out[1:-1]], frame["c"], rtol=1e-12)
    np.testing.assert_allclose([r[1] for r in out[1:-1]], frame["a"], rtol=1e-12, atol=1e-15)
    assert out[-1][3] == pytest.approx(te, rel=1e-14)


def test_benchmark_tickers_outside_the_weights_count_as_zero_weight(book):
    weights = book["weights"][:3]  # AAPL, MSFT only
    out = udfs.RISK_CONTRIB(weights, book["cov"], book["bench"])
    w = np.zeros(5)
    w[:2] = book["w"][:2]
    assert out[-1][3] == pytest.approx(vol(w - book["b"], book["s"]), rel=1e-13)


@pytest.mark.parametrize(("args", "message"), [
    (lambda b: (b["weights"], [r[:-1] for r in b["cov"]]), "square"),
    (lambda b: ([["AAPL", 0.5], ["TSLA", 0.5]], b["cov"]), "TSLA in weights but not in cov"),
    (lambda b: (b["weights"], b["cov"], [[0.5], [0.5]]), "benchmark needs two columns"),
    (lambda b: ([[0.2]] * 5, b["cov"], b["bench"]), "weights needs tickers"),
    (lambda b: (b["weights"], b["cov"], None, b["groups"][:3]), "groups has no group for XOM"),
    (lambda b: (b["weights"], b["cov"], None, [["AAPL", None], ["MSFT", "Tech"]]),
     "groups needs a group at row 1, column 2"),
    (lambda b: ([["AAPL", True], ["MSFT", 0.5]], b["cov"]), "weights has TRUE"),
    (lambda b: ([["AAPL", dt.datetime(2024, 1, 1)], ["MSFT", 0.5]], b["cov"]), "a date"),
    (lambda b: (b["weights"], [*b["cov"][:2], ["MSFT", 0.1, "#N/A", 0.1, 0.1, 0.1],
                                *b["cov"][3:]]), "cov has #N/A at row 3, column 3"),
    (lambda b: ([["AAPL", 0.0]], b["cov"]), "zero variance"),
])
def test_risk_contrib_bad_input_is_one_line(book, args, message):
    out = udfs.RISK_CONTRIB(*args(book))
    assert is_error(out) and message in out and "\n" not in out


def test_risk_budget_spills_weights_that_hit_the_budgets(book):
    budgets = [["ticker", "budget"], ["XOM", "10%"], ["AAPL", 0.3], ["MSFT", 0.2],
               ["JPM", 0.2], ["BRK.B", 0.2]]
    out = udfs.RISK_BUDGET(book["cov"], budgets)
    assert out[0] == ["ticker", "weight", "budget", "share of risk", "contribution"]
    assert [r[0] for r in out[1:-1]] == TICKERS
    w = np.array([r[1] for r in out[1:-1]])
    want = np.array([0.3, 0.2, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(shares_of(w, book["s"]), want, atol=1e-8)
    assert out[-1][4] == pytest.approx(vol(w, book["s"]), rel=1e-13)
    parity = udfs.RISK_BUDGET(book["cov"])
    np.testing.assert_allclose([r[3] for r in parity[1:-1]], 0.2, atol=1e-8)


def test_risk_budget_bounds_cells(book):
    out = udfs.RISK_BUDGET(book["cov"], None, [[None, "25%"]])
    w = np.array([r[1] for r in out[1:-1]])
    assert w.max() <= 0.25 + 1e-9 and w.sum() == pytest.approx(1, abs=1e-12)
    free = udfs.RISK_BUDGET(book["cov"], None, [[None, None]])
    assert free == udfs.RISK_BUDGET(book["cov"])


@pytest.mark.parametrize(("args", "message"), [
    ((None, [[0.1]]), "bounds 0 to 0.1 cannot hold for 5 weights"),
    (([[1.0], [0.0], [1.0], [1.0], [1.0]], None), "budgets must be positive"),
    (([[1.0], [1.0]], None), "has 5 assets but budgets has 2"),
    ((None, [[0.1, 0.2, 0.3]]), "bounds must be one or two cells"),
    ((None, [["max", 0.3]]), "bounds has text"),
])
def test_risk_budget_bad_input_is_one_line(book, args, message):
    out = udfs.RISK_BUDGET(book["cov"], *args)
    assert is_error(out) and message in out, out


@pytest.fixture(scope="module")
def history():
    rng = np.random.default_rng(31)
    t_len, k = 48, 2
    f = rng.normal(size=(t_len, k)) * 0.04
    r = f @ rng.normal(1, 0.4, size=(k, 5)) + rng.normal(size=(t_len, 5)) * 0.02
    dates = list(pd.date_range("2019-01-31", periods=t_len, freq="ME").to_pydatetime())
    returns = [["date", *TICKERS]] + [[d, *map(float, row)] for d, row in zip(dates, r,
                                                                             strict=True)]
    factors = [["date", "Mkt-RF", "SMB"]] + [[d, *map(float, row)]
                                             for d, row in zip(dates, f, strict=True)]
    return {"r": r, "f": f, "returns": returns, "factors": factors}


def test_factor_exposures_spills_betas_and_variance_split(book, history):
    out = udfs.FACTOR_EXPOSURES(book["weights"], history["returns"], history["factors"])
    assert out[0] == ["factor", "exposure", "variance", "% of variance"]
    assert [r[0] for r in out[1:]] == ["Mkt-RF", "SMB", "specific", "total"]
    betas, resid = ols(history["r"], history["f"])
    w = book["w"]
    np.testing.assert_allclose([r[1] for r in out[1:3]], betas @ w, rtol=1e-10)
    assert out[3][2] == pytest.approx(resid @ (w * w), rel=1e-10)
    x = betas @ w
    total = x @ np.cov(history["f"], rowvar=False) @ x + resid @ (w * w)
    assert out[4][2] == pytest.approx(total, rel=1e-10)


def test_factor_exposures_match_dates_not_rows(book, history):
    """Factors newest first and with extra months: matched on the dates."""
    extra = [[dt.datetime(2030, 1, 31), 0.01, 0.02]]
    factors = [history["factors"][0], *reversed(history["factors"][1:]), *extra]
    out = udfs.FACTOR_EXPOSURES(book["weights"], history["returns"], factors, book["bench"])
    betas, _ = ols(history["r"], history["f"])
    assert out[0][1] == "active exposure"
    np.testing.assert_allclose([r[1] for r in out[1:3]], betas @ (book["w"] - book["b"]),
                               rtol=1e-10)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda h: (h["returns"], h["factors"][:10]), None),
    (lambda h: ([r[1:] for r in h["returns"]], [r[1:] for r in h["factors"][:10]]),
     "returns has 48 periods but factors has 9"),
    (lambda h: (h["returns"], [[r[0], r[1], r[1]] for r in h["factors"]]), "twice"),
    (lambda h: (h["returns"], [["date", "a", "b"], *[[dt.datetime(1990, 1, 31), 0.1, 0.2]]]),
     "no dates in common"),
    (lambda h: ([[*r[:2], "n/a", *r[3:]] for r in h["returns"]], h["factors"]), "n/a"),
])
def test_factor_exposures_bad_input_is_one_line(book, history, mutate, message):
    out = udfs.FACTOR_EXPOSURES(book["weights"], *mutate(history))
    if message is None:  # nine common months are enough for two factors
        assert not is_error(out)
    else:
        assert is_error(out) and message in out, out


def test_lengths_that_do_not_match_are_one_readable_error():
    """A benchmark, labels or cov of another length: an InputError naming it, no traceback."""
    s = np.diag([0.04, 0.09, 0.01])
    w = np.array([0.5, 0.3, 0.2])
    with pytest.raises(InputError, match=r"benchmark must have 3 values, one per asset \(has 2\)"):
        core.risk_contributions(w, s, benchmark=[0.5, 0.5])
    with pytest.raises(InputError, match="labels has 2 names for 3 assets"):
        core.risk_contributions(w, s, labels=["A", "B"])
    asym = np.diag([0.04, 0.09, 0.01, 0.02])
    asym[3, 0] = 0.5
    with pytest.raises(InputError, match="weights has 3 values but cov has 4 assets"):
        core.risk_contributions(w, asym, labels=["A", "B", "C"])
