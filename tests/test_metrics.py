"""Backtest metrics (SPEC 3.5) against empyrical-reloaded and hand examples."""

from __future__ import annotations

import math

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly
from hypothesis import given
from hypothesis import strategies as st

from xlfuncs.core._metrics import (
    CONVENTIONS,
    PerformanceStats,
    drifted_weights,
    one_way_turnover,
    performance_stats,
    portfolio_returns,
    turnover_series,
)
from xlfuncs.errors import InputError

A = 12
FIELDS = ["ann_return", "ann_volatility", "sharpe", "tracking_error", "information_ratio",
          "max_drawdown", "turnover", "avg_holdings", "hit_rate", "ir_per_period"]


def monthly(seed: int, t: int = 120):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2010-01-31", periods=t, freq="ME")
    rb = pd.Series(rng.normal(0.007, 0.045, t), index=idx)
    r = pd.Series(rb.to_numpy() + rng.normal(0.001, 0.015, t), index=idx)
    rf = pd.Series(rng.uniform(0.0, 0.004, t), index=idx)
    return r, rb, rf


def test_fields_and_conventions():
    r, rb, rf = monthly(0)
    stats = performance_stats(r, rb, rf, A)
    assert list(stats.as_dict()) == FIELDS
    assert set(CONVENTIONS) == set(FIELDS)
    assert stats.table()[0] == ["metric", "value", "convention"]
    assert "geometric" in CONVENTIONS["ann_return"] and "ddof=1" in CONVENTIONS["sharpe"]
    assert math.isnan(stats.turnover) and math.isnan(stats.avg_holdings)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_empyrical(seed):
    r, rb, rf = monthly(seed)
    s = performance_stats(r, rb, rf, A)
    a = r - rb
    tol = {"rel": 1e-10, "abs": 1e-12}
    assert s.ann_return == pytest.approx(ep.annual_return(r, annualization=A), **tol)
    assert s.ann_volatility == pytest.approx(ep.annual_volatility(r, annualization=A), **tol)
    # empyrical: mean(r - rf) / std(r - rf, ddof=1) * sqrt(A), the same convention
    assert s.sharpe == pytest.approx(ep.sharpe_ratio(r, risk_free=rf, annualization=A), **tol)
    assert s.max_drawdown == pytest.approx(ep.max_drawdown(r), **tol)
    assert s.tracking_error == pytest.approx(ep.annual_volatility(a, annualization=A), **tol)
    # empyrical's excess_sharpe is the per-period IR; its sharpe_ratio against the
    # benchmark "risk-free" is the annualised one
    assert s.ir_per_period == pytest.approx(ep.excess_sharpe(r, rb), **tol)
    assert s.information_ratio == pytest.approx(
        ep.sharpe_ratio(r, risk_free=rb, annualization=A), **tol)
    assert s.hit_rate == pytest.approx(ep.batting_average(r, rb)["batting average"], **tol)


def test_against_empyrical_with_a_constant_risk_free_rate_and_weekly_data():
    r, rb, _ = monthly(4, t=260)
    s = performance_stats(r, rb, 0.0005, 52)
    assert s.sharpe == pytest.approx(ep.sharpe_ratio(r, risk_free=0.0005, annualization=52),
                                     rel=1e-10)
    assert s.ann_return == pytest.approx(ep.annual_return(r, annualization=52), rel=1e-10)


def test_by_hand():
    idx = pd.date_range("2020-01-31", periods=4, freq="ME")
    r = pd.Series([0.10, -0.20, 0.05, 0.10], index=idx)
    rb = pd.Series([0.05, -0.10, 0.05, 0.00], index=idx)
    s = performance_stats(r, rb, 0.0, 12)
    wealth = [1.1, 0.88, 0.924, 1.0164]
    assert s.ann_return == pytest.approx(1.0164 ** (12 / 4) - 1, rel=1e-13)
    # peak 1.1 after the first month, trough 0.88: -20%
    assert s.max_drawdown == pytest.approx(0.88 / 1.1 - 1, rel=1e-13)
    assert wealth[-1] == pytest.approx(np.prod(1 + r))
    a = np.array([0.05, -0.10, 0.0, 0.10])
    assert s.hit_rate == 0.5  # a > 0 strictly: the tie does not count
    assert s.ir_per_period == pytest.approx(a.mean() / a.std(ddof=1))
    assert s.information_ratio == pytest.approx(a.mean() / a.std(ddof=1) * math.sqrt(12))


def test_drawdown_counts_a_fall_from_the_start():
    r = pd.Series([-0.1, -0.1, 0.05])
    s = performance_stats(r, r * 0, 0.0, 12)
    assert s.max_drawdown == pytest.approx(0.81 - 1)  # from W_0 = 1, not from the first close
    up = performance_stats(pd.Series([0.01, 0.02]), pd.Series([0.0, 0.0]), 0.0, 12)
    assert up.max_drawdown == 0.0


def test_turnover_and_holdings_inputs():
    r, rb, rf = monthly(0, t=6)
    w = pd.DataFrame([[0.5, 0.5, 0.0], [0.3, 0.3, 0.4], [1.0, 0.0, 0.0],
                      [0.5, 0.5, 0.0], [0.5, 0.5, 1e-7], [0.2, 0.2, 0.6]], index=r.index)
    s = performance_stats(r, rb, rf, A, turnover=[0.1, 0.3], holdings=w)
    assert s.turnover == pytest.approx(0.2)
    assert s.avg_holdings == pytest.approx((2 + 3 + 1 + 2 + 2 + 3) / 6)
    s2 = performance_stats(r, rb, rf, A, holdings=pd.Series([10, 20, 30]))
    assert s2.avg_holdings == 20


def test_constant_active_return_gives_nan_ratios():
    r = pd.Series([0.01, 0.02, 0.03])
    s = performance_stats(r, r.copy(), 0.0, 12)
    assert s.tracking_error == 0.0
    assert math.isnan(s.information_ratio) and math.isnan(s.ir_per_period)
    assert s.hit_rate == 0.0
    flat = performance_stats(pd.Series([0.01, 0.01]), r.iloc[:2], 0.01, 12)
    assert flat.ann_volatility == 0.0 and math.isnan(flat.sharpe)


def test_bad_inputs():
    r, rb, rf = monthly(0, t=12)
    with pytest.raises(InputError, match="benchmark's dates differ") as info:
        performance_stats(r, rb.shift(1, freq="ME"), rf, A)
    assert info.value.argument == "benchmark"
    with pytest.raises(InputError, match="rf has 11 periods"):
        performance_stats(r, rb, rf.iloc[1:], A)
    bad = r.copy()
    bad.iloc[3] = np.nan
    with pytest.raises(InputError, match="returns has a missing"):
        performance_stats(bad, rb, rf, A)
    with pytest.raises(InputError, match="at least 2 periods"):
        performance_stats(r.iloc[:1], rb.iloc[:1], rf.iloc[:1], A)
    with pytest.raises(InputError, match="periods_per_year"):
        performance_stats(r, rb, rf, 0)


# --------------------------------------------------------------------------- accounting


def test_drift_and_turnover_by_hand():
    w = np.array([0.5, 0.3, 0.2])
    r = np.array([0.10, -0.10, 0.0])
    # values 0.55, 0.27, 0.20 of a portfolio worth 1.02
    drifted = drifted_weights(w, r)
    np.testing.assert_allclose(drifted, [0.55 / 1.02, 0.27 / 1.02, 0.20 / 1.02], rtol=1e-15)
    new = np.array([0.4, 0.4, 0.2])
    expected = 0.5 * (abs(0.4 - 0.55 / 1.02) + abs(0.4 - 0.27 / 1.02) + abs(0.2 - 0.2 / 1.02))
    assert one_way_turnover(new, drifted) == pytest.approx(expected, rel=1e-14)
    # rebalancing back to the same target weights still trades the drift
    assert one_way_turnover(w, drifted) == pytest.approx(0.04 / 1.02, rel=1e-14)
    assert one_way_turnover(new, None) == pytest.approx(0.5)  # built from cash
    # an asset not held may have no return (e.g. delisted)
    np.testing.assert_allclose(drifted_weights([0.5, 0.5, 0.0], [0.0, 0.0, np.nan]),
                               [0.5, 0.5, 0.0])
    with pytest.raises(InputError, match="held asset 2"):
        drifted_weights(w, [0.0, 0.0, np.nan])


def test_portfolio_returns_use_the_previous_weights():
    idx = pd.date_range("2021-01-31", periods=3, freq="ME")
    w = pd.DataFrame([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], index=idx, columns=["A", "B"])
    ret = pd.DataFrame([[0.5, 0.5], [0.10, -0.05], [0.02, np.nan]], index=idx,
                       columns=["A", "B"])
    # weights decided at the close of Jan earn February: all in A -> +10%; March: all in B,
    # whose March return is missing
    with pytest.raises(InputError, match="held asset B at 2021-03-31"):
        portfolio_returns(w, ret)
    ret.iloc[2, 1] = 0.03
    got = portfolio_returns(w, ret)
    assert list(got.index) == list(idx[1:])
    np.testing.assert_allclose(got.to_numpy(), [0.10, 0.03], rtol=1e-15)
    to = turnover_series(w, ret)
    # Feb: held all A (drift keeps it all A), moved to all B: one-way 1.0
    # Mar: all B drifted is all B, moved to half/half: 0.5
    np.testing.assert_allclose(to.to_numpy(), [1.0, 0.5], rtol=1e-15)


@given(st.lists(st.floats(-0.5, 0.5), min_size=2, max_size=40))
def test_drawdown_and_return_match_empyrical(values):
    r = pd.Series(values)
    s = performance_stats(r, r * 0.5, 0.0, 12)
    assert s.max_drawdown == pytest.approx(ep.max_drawdown(r), rel=1e-10, abs=1e-12)
    assert s.ann_return == pytest.approx(ep.annual_return(r, annualization=12), rel=1e-10,
                                         abs=1e-12)
    assert -1.0 <= s.max_drawdown <= 0.0


def test_stats_is_frozen():
    r, rb, rf = monthly(0, t=12)
    s = performance_stats(r, rb, rf, A)
    assert isinstance(s, PerformanceStats)
    with pytest.raises(AttributeError):
        s.sharpe = 1.0  # type: ignore[misc]


# --------------------------------------------------------------------------- drift with
# several assets, shorts and returns: checked against holdings of shares at prices


def by_shares(w, r, value=1000.0, prices=None):
    """Weights after a period, from share counts bought at one set of prices."""
    w = np.asarray(w, dtype=float)
    p0 = np.linspace(20.0, 80.0, len(w)) if prices is None else np.asarray(prices, dtype=float)
    shares = w * value / p0  # negative for a short
    p1 = p0 * (1.0 + np.nan_to_num(np.asarray(r, dtype=float)))
    held = shares * p1
    return held / held.sum()


def test_drift_keeps_shorts_and_uses_every_return():
    # 130/30: the short loses when its asset falls (issue 17: shorts were dropped)
    w, r = np.array([1.3, -0.3]), np.array([0.0, -0.10])
    got = drifted_weights(w, r)
    np.testing.assert_allclose(got, by_shares(w, r), rtol=1e-14)
    np.testing.assert_allclose(got, [1.3 / 1.03, -0.27 / 1.03], rtol=1e-14)
    rng = np.random.default_rng(17)
    for _ in range(20):
        w = rng.normal(0.2, 0.5, 6)
        w /= w.sum()
        r = rng.normal(0.01, 0.08, 6)
        np.testing.assert_allclose(drifted_weights(w, r), by_shares(w, r), rtol=1e-12)


def test_turnover_series_drifts_with_the_period_that_the_weights_earned():
    """Several assets, a short, non-zero returns: every period's trade, share by share."""
    rng = np.random.default_rng(5)
    idx = pd.date_range("2022-01-31", periods=6, freq="ME")
    cols = ["A", "B", "C", "D"]
    w = rng.normal(0.25, 0.3, (6, 4))
    w[:, 3] = -np.abs(w[:, 3])  # always short D
    w /= w.sum(axis=1, keepdims=True)
    ret = rng.normal(0.01, 0.06, (6, 4))
    got = turnover_series(pd.DataFrame(w, idx, cols), pd.DataFrame(ret, idx, cols))
    value, prices = 1000.0, np.array([10.0, 20.0, 30.0, 40.0])
    expected = []
    for j in range(1, 6):
        shares = w[j - 1] * value / prices  # the book decided at date j-1
        prices = prices * (1.0 + ret[j])  # ... earns period j
        value = float(shares @ prices)
        target = w[j] * value / prices
        expected.append(0.5 * float(np.abs((target - shares) * prices).sum()) / value)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12)
    assert list(got.index) == list(idx[1:])
    # the two-asset example: a fixed 50/50 mix after A gains 10% and B nothing
    two = pd.DataFrame([[0.5, 0.5]] * 3, columns=["A", "B"])
    r2 = pd.DataFrame([[0.0, 0.0], [0.10, 0.0], [0.0, 0.0]], columns=["A", "B"])
    np.testing.assert_allclose(turnover_series(two, r2).to_numpy(), [0.025 / 1.05, 0.0],
                               rtol=1e-14)


# --------------------------------------------------------------------------- every error,
# by its text and the argument it names


def test_every_input_error_by_its_text():
    r, rb, rf = monthly(0, t=4)
    dates = [str(d) for d in r.index]
    raises_exactly("periods_per_year must be positive, e.g. 12 for monthly", "periods_per_year",
                   performance_stats, r, rb, rf, 0.0)
    raises_exactly("returns needs at least 2 periods (has 1)", "returns",
                   performance_stats, r.iloc[:1], rb.iloc[:1], rf.iloc[:1], A)
    raises_exactly("benchmark must be one column of returns (it has 2)", "benchmark",
                   performance_stats, r, pd.concat([rb, rb], axis=1), rf, A)
    raises_exactly("rf must be numbers", "rf", performance_stats, r, rb, ["a", "b", "c", "d"], A)
    raises_exactly("benchmark must be a single series of returns", "benchmark",
                   performance_stats, r, rb.to_numpy().reshape(2, 2), rf, A)
    raises_exactly("rf has 3 periods but returns has 4", "rf", performance_stats, r, rb,
                   rf.iloc[1:], A)
    raises_exactly(f"benchmark's dates differ from returns' (first at position 0: "
                   f"{r.index[0] - pd.offsets.MonthEnd()} vs {dates[0]})", "benchmark",
                   performance_stats, r, rb.shift(-1, freq="ME"), rf, A)
    # a plain array beside dated returns takes their dates, so the error names the date
    gap = rb.to_numpy().copy()
    gap[2] = np.nan
    raises_exactly(f"benchmark has a missing or non-finite value at {dates[2]}", "benchmark",
                   performance_stats, r, gap, rf, A)
    raises_exactly("turnover has a missing or non-finite value", "turnover",
                   performance_stats, r, rb, rf, A, turnover=[0.1, np.inf])
    raises_exactly("holdings has a missing or non-finite value", "holdings",
                   performance_stats, r, rb, rf, A, holdings=[3.0, np.nan])
    w = np.array([0.5, 0.5])
    raises_exactly("w and r must be two vectors of one length (got (2,) and (3,))", "r",
                   drifted_weights, w, [0.1, 0.1, 0.1])
    raises_exactly("w has a missing or non-finite weight", "w",
                   drifted_weights, [0.5, np.nan], [0.1, 0.1])
    raises_exactly("r has no return for held asset 1 (0-based)", "r",
                   drifted_weights, w, [0.1, np.nan])
    raises_exactly("the portfolio's value fell to 0 of its start; weights cannot drift", "r",
                   drifted_weights, w, [-1.0, -1.0])
    raises_exactly("w_new and w_prev_drifted differ in shape ((2,) vs (3,))", "w_prev_drifted",
                   one_way_turnover, w, [0.2, 0.3, 0.5])
    frame = pd.DataFrame([[0.5, 0.5], [0.4, 0.6]], index=r.index[:2], columns=["A", "B"])
    raises_exactly("weights and returns must be DataFrames (dates x assets)", "weights",
                   turnover_series, frame, frame.to_numpy())
    raises_exactly("weights and returns must be DataFrames (dates x assets)", "weights",
                   portfolio_returns, frame.to_numpy(), frame)
    raises_exactly("weights and returns must have the same dates and assets (reindex one to "
                   "the other)", "returns", turnover_series, frame, frame[["B", "A"]])
    raises_exactly("weights needs at least 2 dates", "weights",
                   turnover_series, frame.iloc[:1], frame.iloc[:1])
    ret = frame.copy()
    ret.iloc[1, 0] = np.nan
    raises_exactly(f"returns has no value for held asset A at {dates[1]}", "returns",
                   portfolio_returns, frame, ret)


def test_edges_of_the_metrics():
    idx = pd.date_range("2020-01-31", periods=5, freq="ME")
    # a levered book that loses more than everything: the annual return is -100%, not NaN
    lost = performance_stats(pd.Series([0.1, 0.1, 0.1, 0.1, -1.5], idx), pd.Series(0.0, idx),
                             0.0, 12)
    assert lost.ann_return == -1.0
    # annual data (A = 1) are allowed
    yearly = performance_stats(pd.Series([0.1, -0.05, 0.2], idx[:3]), pd.Series(0.0, idx[:3]),
                               0.0, 1)
    assert yearly.ann_return == pytest.approx((1.1 * 0.95 * 1.2) ** (1 / 3) - 1, rel=1e-14)
    # a constant series whose floating-point std is not exactly 0 still has no volatility
    flat = np.full(12, 0.07)
    assert np.std(flat, ddof=1) > 0
    s = performance_stats(pd.Series(flat), pd.Series(flat * 0.5), 0.0, 12)
    assert s.ann_volatility == 0.0 and math.isnan(s.sharpe)
    # a position of exactly 1e-6 is not a holding; object columns (cells from a sheet) count
    assert performance_stats(pd.Series(flat), pd.Series(flat), 0.0, 12,
                             holdings=[[0.5, 1e-6], [0.5, 2e-6]]).avg_holdings == 1.5
    obj = performance_stats(pd.Series(flat), pd.Series(flat), 0.0, 12,
                            turnover=pd.Series([0.1, 0.3], dtype=object))
    assert obj.turnover == pytest.approx(0.2, rel=1e-15)
    assert performance_stats(pd.Series(flat), pd.Series(flat), 0.0, 12, turnover=[0.3]
                             ).turnover == 0.3
    assert math.isnan(performance_stats(pd.Series(flat), pd.Series(flat), 0.0, 12,
                                        turnover=[]).turnover)
    # a risk-free rate per period as a plain list beside dated returns
    r = pd.Series([0.02, -0.01, 0.03], idx[:3])
    listed = performance_stats(r, r * 0, [0.001, 0.002, 0.003], 12)
    ex = r.to_numpy() - [0.001, 0.002, 0.003]
    assert listed.sharpe == pytest.approx(ex.mean() / ex.std(ddof=1) * math.sqrt(12), rel=1e-13)
    rows = s.table()
    assert rows[1] == ["ann_return", s.ann_return, CONVENTIONS["ann_return"]]
    assert [row[0] for row in rows[1:]] == FIELDS


def test_two_dates_and_names_of_the_series():
    idx = pd.date_range("2021-01-31", periods=2, freq="ME")
    w = pd.DataFrame([[0.6, 0.4], [0.5, 0.5]], index=idx, columns=["A", "B"], dtype=object)
    ret = pd.DataFrame([[0.0, 0.0], [0.1, -0.1]], index=idx, columns=["A", "B"], dtype=object)
    got = portfolio_returns(w, ret)
    assert got.name == "portfolio" and list(got.index) == [idx[1]]
    assert got.iloc[0] == pytest.approx(0.6 * 0.1 - 0.4 * 0.1, rel=1e-14)
    to = turnover_series(w, ret)
    assert to.name == "turnover" and list(to.index) == [idx[1]]
    assert to.iloc[0] == pytest.approx(abs(0.5 - 0.66 / 1.02), rel=1e-14)


def test_inputs_as_a_sheet_gives_them():
    """Plain lists, one-column frames, object columns and blank cells (None) are understood."""
    idx = pd.date_range("2020-01-31", periods=4, freq="ME")
    r, rb = [0.02, -0.01, 0.03, 0.01], [0.01, 0.0, 0.02, -0.01]
    ref = performance_stats(pd.Series(r, idx), pd.Series(rb, idx), 0.001, 12)
    for got in (performance_stats(r, rb, 0.001, 12),
                performance_stats(pd.Series(r, idx).to_frame("fund"), pd.Series(rb, idx), 0.001,
                                  12),
                performance_stats(pd.Series(r, idx, dtype=object), pd.Series(rb, idx), 0.001,
                                  12)):
        assert got.as_dict() == pytest.approx(ref.as_dict(), rel=1e-15, nan_ok=True)
    raises_exactly("rf has 3 periods but returns has 4", "rf", performance_stats,
                   pd.Series(r, idx), rb, [0.001] * 3, 12)
    blank = performance_stats(r, rb, 0.001, 12, holdings=[[0.5, None], [0.5, 0.5]])
    assert blank.avg_holdings == 1.5
    # an asset not held may have a blank return, and weights may be an object column
    np.testing.assert_allclose(drifted_weights(np.array([0.4, 0.6, 0.0], dtype=object),
                                               [0.1, -0.1, None]),
                               [0.44 / 0.98, 0.54 / 0.98, 0.0], rtol=1e-15)
    w = pd.DataFrame([[0.6, None], [None, 1.0], [0.5, 0.5]], index=idx[:3],
                     columns=["A", "B"], dtype=object)
    ret = pd.DataFrame([[0.0, 0.0], [0.1, 0.2], [0.05, -0.05]], index=idx[:3],
                       columns=["A", "B"])
    np.testing.assert_allclose(portfolio_returns(w, ret).to_numpy(), [0.06, -0.05],
                               rtol=1e-14)
    np.testing.assert_allclose(turnover_series(w, ret).to_numpy(), [1.0, 0.5], rtol=1e-14)
