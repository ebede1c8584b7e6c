"""Benchmark-relative optimiser (SPEC 3.4) against independent n x n computations."""

from __future__ import annotations

import math
import time

import cvxpy as cp
import numpy as np
import pytest
from errors_check import raises_exactly

from xlfuncs.core._optimise import (
    ActiveOptimiser,
    OptimiserSpec,
    sector_weights,
    tracking_error,
)
from xlfuncs.errors import ConvergenceError, InfeasibleError, InputError

PPY = 12


def make_inputs(seed: int = 0, n: int = 30, k: int = 3):
    """Per-period (monthly) moments: loadings F (k+1 x n), factor cov with a zero first row."""
    rng = np.random.default_rng(seed)
    alpha = rng.normal(0.0, 0.004, n)
    betas = rng.normal(1.0, 0.4, (k, n))
    betas[1:] = rng.normal(0.0, 0.5, (k - 1, n))
    f_mat = np.vstack([alpha, betas])
    a = rng.normal(0.0, 0.02, (k, k))
    sf = np.zeros((k + 1, k + 1))
    sf[1:, 1:] = a @ a.T / k + np.diag(rng.uniform(1e-4, 4e-4, k))
    mu = np.r_[1.0, rng.normal(0.004, 0.003, k)]
    e = rng.uniform(0.001, 0.006, n)
    caps = rng.lognormal(0.0, 1.0, n)
    return f_mat, sf, e, mu, caps


def full_cov(f_mat, sf, e):
    """The n x n covariance F' Sigma_f F + diag(e) (tests only, small n)."""
    return f_mat.T @ sf @ f_mat + np.diag(e)


def te_full(w, b, f_mat, sf, e):
    d = w - b
    return math.sqrt(d @ full_cov(f_mat, sf, e) @ d * PPY)


def direct(f_mat, sf, e, mu, b, *, tev=None, gamma=None, max_weight=None, w_map=None):
    """The same problem built independently on the n x n covariance; returns (w, objective)."""
    s = full_cov(f_mat, sf, e)
    a = f_mat.T @ mu  # expected active return mu' F (w - b) = a' (w - b)
    n = len(b)
    x = cp.Variable(w_map.shape[1] if w_map is not None else n)
    w = w_map @ x if w_map is not None else x
    d = w - b
    cons = [cp.sum(x) == 1, x >= 0]
    if max_weight is not None:
        cons.append(x <= max_weight)
    if tev is not None:
        cons.append(cp.quad_form(d, cp.psd_wrap(s)) <= tev**2 / PPY)
        obj = a @ d
    else:
        obj = a @ d - gamma * cp.quad_form(d, cp.psd_wrap(s))
    prob = cp.Problem(cp.Maximize(obj), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status == cp.OPTIMAL
    return np.asarray(w.value if w_map is None else w_map @ x.value), float(prob.value)


def corner(f_mat, mu, tradable=None):
    """The TE-free optimum: all in the asset with the highest expected return."""
    a = f_mat.T @ mu
    if tradable is not None:
        a = np.where(tradable, a, -np.inf)
    w = np.zeros(f_mat.shape[1])
    w[int(np.argmax(a))] = 1.0
    return w


@pytest.fixture(scope="module")
def inputs():
    return make_inputs()


# --------------------------------------------------------------------------- TEV cap


def test_tev_cap_binds_and_te_matches_full_covariance(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    free_te = te_full(corner(f_mat, mu), b, f_mat, sf, e)
    tev = 0.3 * free_te
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=tev), 30, 4)
    assert opt._prob.is_dpp()
    res = opt.solve(f_mat, sf, e, mu, benchmark=b, date="2024-01-31")
    assert res.ok and res.status == "optimal" and res.reason == ""
    te = te_full(res.weights, b, f_mat, sf, e)
    assert res.tracking_error == pytest.approx(te, rel=1e-12)
    assert te == pytest.approx(tev, rel=1e-6)
    assert res.te_binding
    assert tracking_error(res.weights, b, f_mat, sf, e, PPY) == pytest.approx(te, rel=1e-12)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert res.weights.min() >= 0.0
    assert res.active_return == pytest.approx(mu @ f_mat @ (res.weights - b), rel=1e-12)
    _, ref = direct(f_mat, sf, e, mu, b, tev=tev)
    assert res.active_return == pytest.approx(ref, rel=1e-6)
    assert res.iterations > 0 and res.solve_seconds > 0


def test_tev_cap_slack_when_the_free_optimum_is_inside(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    w_free = corner(f_mat, mu)
    free_te = te_full(w_free, b, f_mat, sf, e)
    res = ActiveOptimiser(OptimiserSpec("tev", tev=2 * free_te), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    assert res.ok and not res.te_binding
    np.testing.assert_allclose(res.weights, w_free, atol=1e-6)
    assert res.tracking_error == pytest.approx(free_te, rel=1e-5)
    assert res.tracking_error < 2 * free_te * 0.9


def test_tev_budget_is_annual_and_converted_once(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    weekly = OptimiserSpec("tev", tev=0.04, periods_per_year=52)
    assert weekly.te_budget == pytest.approx(0.04 / math.sqrt(52))
    res = ActiveOptimiser(weekly, 30, 4).solve(f_mat, sf / 4, e / 4, mu, benchmark=b)
    d = res.weights - b
    te2_week = d @ full_cov(f_mat, sf / 4, e / 4) @ d
    assert math.sqrt(te2_week * 52) == pytest.approx(0.04, rel=1e-6)
    assert res.tracking_error == pytest.approx(0.04, rel=1e-6)


# --------------------------------------------------------------------------- risk aversion


@pytest.mark.parametrize("gamma", [5.0, 50.0])
def test_gamma_mode_matches_a_direct_full_covariance_solve(inputs, gamma):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=gamma), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    w_ref, obj_ref = direct(f_mat, sf, e, mu, b, gamma=gamma)
    d = res.weights - b
    obj = res.active_return - gamma * d @ full_cov(f_mat, sf, e) @ d
    assert obj == pytest.approx(obj_ref, rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(res.weights, w_ref, atol=2e-5)
    assert res.tracking_error == pytest.approx(te_full(res.weights, b, f_mat, sf, e), rel=1e-12)
    assert not res.te_binding
    # KKT: on the support the gradient a - 2 gamma S d is one constant (the sum-to-1 multiplier)
    grad = f_mat.T @ mu - 2 * gamma * full_cov(f_mat, sf, e) @ d
    held = res.weights > 1e-4
    assert np.ptp(grad[held]) < 1e-6
    assert (grad[res.weights < 1e-9] <= grad[held].mean() + 1e-6).all()


def test_gamma_zero_is_the_te_free_optimum(inputs):
    f_mat, sf, e, mu, caps = inputs
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=0.0), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=caps / caps.sum())
    np.testing.assert_allclose(res.weights, corner(f_mat, mu), atol=1e-6)


# --------------------------------------------------------------------------- factor benchmark


def test_factor_benchmark(inputs):
    f_mat, sf, e, mu, _ = inputs
    x_mkt = np.array([0.0, 1.0, 0.0, 0.0])  # the market factor itself
    gamma = 20.0
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=gamma), 30, 4).solve(
        f_mat, sf, e, mu, benchmark_exposure=x_mkt)
    w = res.weights
    f = f_mat @ w - x_mkt
    te2 = f @ sf @ f + e @ (w * w)
    assert res.tracking_error == pytest.approx(math.sqrt(te2 * PPY), rel=1e-12)
    assert res.tracking_error == pytest.approx(
        tracking_error(w, None, f_mat, sf, e, PPY, benchmark_exposure=x_mkt), rel=1e-12)
    assert res.active_return == pytest.approx(mu @ f, rel=1e-12)
    # independent: the market as an extra "asset" with no residual, held at -1
    xv = cp.Variable(30)
    fx = f_mat @ xv - x_mkt
    prob = cp.Problem(cp.Maximize(mu @ fx - gamma * (cp.quad_form(fx, cp.psd_wrap(sf))
                                                     + e @ cp.square(xv))),
                      [cp.sum(xv) == 1, xv >= 0])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    # 1e-6 relative to the size of the objective's terms (Clarabel's absolute gap is 1e-10)
    scale = abs(mu @ f) + gamma * te2
    assert mu @ f - gamma * te2 == pytest.approx(prob.value, abs=1e-6 * scale)
    np.testing.assert_allclose(w, xv.value, atol=2e-5)

    tev = ActiveOptimiser(OptimiserSpec("tev", tev=0.04), 30, 4).solve(
        f_mat, sf, e, mu, benchmark_exposure=x_mkt)
    assert tev.ok and tev.tracking_error == pytest.approx(0.04, rel=1e-6)


# --------------------------------------------------------------------------- sector rotation


def test_sector_weights_map():
    caps = np.array([1.0, 3.0, 2.0, 2.0, 5.0])
    ind = np.array([0, 0, 1, 1, -1])
    w_map, u_b = sector_weights(caps, ind, 3)
    np.testing.assert_allclose(w_map, [[0.25, 0, 0], [0.75, 0, 0], [0, 0.5, 0], [0, 0.5, 0],
                                       [0, 0, 0]])
    np.testing.assert_allclose(u_b, [0.5, 0.5, 0.0])
    m01 = np.zeros((5, 3))
    m01[[0, 1], 0] = 1
    m01[[2, 3], 1] = 1
    w2, u2 = sector_weights(caps, m01, 3)
    np.testing.assert_array_equal(w_map, w2)
    np.testing.assert_array_equal(u_b, u2)
    # a code left empty (NaN) is no industry; caps are any positive scale, also as sheet
    # cells (an object array)
    w3, u3 = sector_weights((caps / 100).astype(object), np.array([0, 0, 1, 1, np.nan]), 3)
    np.testing.assert_allclose(w3, w_map, rtol=1e-15)
    np.testing.assert_allclose(u3, u_b, rtol=1e-15)


@pytest.mark.parametrize("risk", ["tev", "gamma"])
def test_sector_mode(inputs, risk):
    f_mat, sf, e, mu, caps = inputs
    k = 5
    ind = np.arange(30) % k
    kw = {"tev": 0.02} if risk == "tev" else {"gamma": 20.0}
    res = ActiveOptimiser(OptimiserSpec("sector", **kw), 30, 4, n_industries=k).solve(
        f_mat, sf, e, mu, caps=caps, industries=ind)
    assert res.ok
    u, w = res.industry_weights, res.weights
    assert u.shape == (k,) and u.sum() == pytest.approx(1.0, abs=1e-12) and u.min() >= 0
    w_map, u_b = sector_weights(caps, ind, k)
    np.testing.assert_allclose(w, w_map @ u, rtol=0, atol=1e-15)
    for j in range(k):  # cap weights inside every industry
        members = ind == j
        if u[j] > 1e-8:
            np.testing.assert_allclose(w[members] / w[members].sum(),
                                       caps[members] / caps[members].sum(), rtol=1e-12)
    b = caps / caps.sum()
    np.testing.assert_allclose(w_map @ u_b, b, rtol=1e-12)
    assert res.tracking_error == pytest.approx(te_full(w, b, f_mat, sf, e), rel=1e-12)
    w_ref, obj_ref = direct(f_mat, sf, e, mu, b, w_map=w_map, **kw)
    if risk == "tev":
        assert res.te_binding and res.tracking_error == pytest.approx(0.02, rel=1e-6)
        assert res.active_return == pytest.approx(obj_ref, rel=1e-6)
    else:
        d = w - b
        obj = res.active_return - 20.0 * d @ full_cov(f_mat, sf, e) @ d
        assert obj == pytest.approx(obj_ref, rel=1e-6, abs=1e-10)
        np.testing.assert_allclose(w, w_ref, atol=1e-5)


def test_sector_mode_with_an_explicit_benchmark_outside_industry_space(inputs):
    f_mat, sf, e, mu, caps = inputs
    ind = np.arange(30) % 4
    b = np.full(30, 1 / 30)  # equal weights: not cap weights inside industries
    res = ActiveOptimiser(OptimiserSpec("sector", gamma=10.0), 30, 4, 4).solve(
        f_mat, sf, e, mu, caps=caps, industries=ind, benchmark=b)
    w_map, _ = sector_weights(caps, ind, 4)
    w_ref, obj_ref = direct(f_mat, sf, e, mu, b, gamma=10.0, w_map=w_map)
    d = res.weights - b
    assert res.tracking_error == pytest.approx(te_full(res.weights, b, f_mat, sf, e), rel=1e-12)
    assert res.active_return - 10.0 * d @ full_cov(f_mat, sf, e) @ d == pytest.approx(
        obj_ref, rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(res.weights, w_ref, atol=1e-5)


def test_sector_mode_industry_without_tradable_stocks(inputs):
    f_mat, sf, e, mu, caps = inputs
    ind = np.arange(30) % 5
    tradable = ind != 2
    res = ActiveOptimiser(OptimiserSpec("sector", gamma=0.0), 30, 4, 5).solve(
        f_mat, sf, e, mu, caps=caps, industries=ind, tradable=tradable)
    assert res.ok and res.industry_weights[2] == 0.0
    assert (res.weights[~tradable] == 0).all()
    # with a TEV cap against all the caps: the untradable industry stays in the risk
    b = caps / caps.sum()
    capped = ActiveOptimiser(OptimiserSpec("sector", tev=0.03), 30, 4, 5).solve(
        f_mat, sf, e, mu, caps=caps, industries=ind, tradable=tradable, benchmark=b)
    assert capped.tracking_error == pytest.approx(te_full(capped.weights, b, f_mat, sf, e),
                                                  rel=1e-12)
    assert capped.te_binding and capped.tracking_error == pytest.approx(0.03, rel=1e-6)


# --------------------------------------------------------------------------- options


def test_max_weight(inputs):
    f_mat, sf, e, mu, _ = inputs
    b = np.full(30, 1 / 30)
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.08, max_weight=0.06), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    assert res.ok and res.weights.max() <= 0.06 + 1e-12
    assert np.isclose(res.weights, 0.06, atol=1e-7).sum() >= 2  # the cap is used
    _, ref = direct(f_mat, sf, e, mu, b, tev=0.08, max_weight=0.06)
    assert res.active_return == pytest.approx(ref, rel=1e-6)


def test_long_short(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, long_only=False, max_weight=0.2),
                          30, 4).solve(f_mat, sf, e, mu, benchmark=b)
    assert res.ok and res.weights.min() < -1e-4
    assert np.abs(res.weights).max() <= 0.2 + 1e-12
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert res.tracking_error == pytest.approx(0.05, rel=1e-6)


def test_turnover_limit_and_costs(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    prev = np.random.default_rng(3).dirichlet(np.ones(30))
    free = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b, prev_weights=prev)
    assert free.turnover > 0.3
    limited = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, turnover=0.15), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b, prev_weights=prev)
    assert limited.ok
    assert 0.5 * np.abs(limited.weights - prev).sum() == pytest.approx(limited.turnover)
    assert limited.turnover <= 0.15 + 1e-7
    assert limited.active_return < free.active_return
    costly = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, cost=0.002), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b, prev_weights=prev)
    assert costly.ok and costly.turnover < free.turnover - 0.05
    # no previous weights: no limit applies (the first build is from cash)
    first = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, turnover=0.15), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    assert first.ok and math.isnan(first.turnover)
    # a linear objective on the TE ellipsoid: the weights are as exact as sqrt(the gap)
    assert first.active_return == pytest.approx(free.active_return, rel=1e-7)
    np.testing.assert_allclose(first.weights, free.weights, atol=1e-4)


@pytest.mark.parametrize(("kw", "tev"), [({"max_weight": 0.06}, 0.05),
                                         ({"long_only": False, "max_weight": 0.2}, 0.3)])
def test_the_first_build_from_cash_has_no_turnover_limit(inputs, kw, tev):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    free = ActiveOptimiser(OptimiserSpec("tev", tev=tev, **kw), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    first = ActiveOptimiser(OptimiserSpec("tev", tev=tev, turnover=0.15, **kw), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    assert first.ok and 0.5 * np.abs(free.weights).sum() > 0.15  # a limit would bind
    assert first.active_return == pytest.approx(free.active_return, rel=1e-7)
    np.testing.assert_allclose(first.weights, free.weights, atol=1e-5)


def test_sector_mode_turnover_limit_against_a_direct_solve(inputs):
    f_mat, sf, e, mu, caps = inputs
    k = 5
    ind = np.arange(30) % k
    b = caps / caps.sum()
    w_map, _ = sector_weights(caps, ind, k)
    kw = {"caps": caps, "industries": ind, "prev_weights": b}
    free = ActiveOptimiser(OptimiserSpec("sector", tev=0.03), 30, 4, k).solve(
        f_mat, sf, e, mu, **kw)
    res = ActiveOptimiser(OptimiserSpec("sector", tev=0.03, turnover=0.1), 30, 4, k).solve(
        f_mat, sf, e, mu, **kw)
    assert free.turnover > 0.2 and res.ok
    assert res.turnover == pytest.approx(0.5 * np.abs(res.weights - b).sum(), rel=1e-12)
    assert res.turnover <= 0.1 + 1e-7
    u = cp.Variable(k)
    w = w_map @ u
    prob = cp.Problem(cp.Maximize(mu @ f_mat @ (w - b)), [
        cp.sum(u) == 1, u >= 0, cp.norm1(w - b) <= 2 * 0.1,
        cp.quad_form(w - b, cp.psd_wrap(full_cov(f_mat, sf, e))) <= 0.03**2 / PPY])
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == cp.OPTIMAL
    assert res.active_return == pytest.approx(prob.value, rel=1e-5)


def test_cost_is_deducted_in_the_objective(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    prev = b.copy()
    cost = 0.001
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=30.0, cost=cost), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b, prev_weights=prev)
    s = full_cov(f_mat, sf, e)
    x = cp.Variable(30)
    obj = (f_mat.T @ mu) @ (x - b) - 30.0 * cp.quad_form(x - b, cp.psd_wrap(s)) \
        - cost * cp.norm1(x - prev)
    prob = cp.Problem(cp.Maximize(obj), [cp.sum(x) == 1, x >= 0])
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    d = res.weights - b
    ours = res.active_return - 30.0 * d @ s @ d - cost * np.abs(res.weights - prev).sum()
    assert ours == pytest.approx(prob.value, rel=1e-6, abs=1e-10)


# --------------------------------------------------------------------------- re-use, masks


def test_resolving_the_compiled_problem_equals_a_fresh_build():
    spec = OptimiserSpec("tev", tev=0.04, max_weight=0.15, turnover=0.5, cost=0.0005)
    warm = ActiveOptimiser(spec, 30, 4)
    prev = None
    rng = np.random.default_rng(11)
    for date in range(4):
        f_mat, sf, e, mu, caps = make_inputs(seed=100 + date)
        tradable = np.ones(30, dtype=bool)
        tradable[rng.choice(30, 2, replace=False)] = False
        f_mat[:, ~tradable] = np.nan  # no estimates for unlisted assets
        e[~tradable] = np.nan
        kw = {"caps": caps, "tradable": tradable, "prev_weights": prev, "date": date}
        got = warm.solve(f_mat, sf, e, mu, **kw)
        fresh = ActiveOptimiser(spec, 30, 4).solve(f_mat, sf, e, mu, **kw)
        assert got.ok and fresh.ok
        np.testing.assert_allclose(got.weights, fresh.weights, rtol=0, atol=1e-12)
        assert got.tracking_error == pytest.approx(fresh.tracking_error, rel=1e-12)
        assert (got.weights[~tradable] == 0).all()
        assert got.date == date
        prev = got.weights


def test_unlisted_assets_get_zero_weight(inputs):
    f_mat, sf, e, mu, caps = inputs
    tradable = np.ones(30, dtype=bool)
    best = int(np.argmax(f_mat.T @ mu))
    tradable[[best, 3, 7]] = False
    f = f_mat.copy()
    f[:, ~tradable] = np.nan
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=0.0), 30, 4).solve(
        f, sf, e, mu, caps=caps, tradable=tradable)
    assert res.ok
    assert (res.weights[~tradable] == 0.0).all()
    np.testing.assert_allclose(res.weights, corner(f_mat, mu, tradable), atol=1e-6)


def test_a_zero_cap_leaves_the_asset_out_of_the_universe_and_the_benchmark(inputs):
    f_mat, sf, e, mu, caps = inputs
    best = int(np.argmax(f_mat.T @ mu))
    zero = caps.copy()
    zero[best] = 0.0
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=0.0), 30, 4).solve(
        f_mat, sf, e, mu, caps=zero)
    tradable = np.arange(30) != best
    np.testing.assert_allclose(res.weights, corner(f_mat, mu, tradable), atol=1e-6)
    assert res.weights[best] == 0.0
    b = zero / zero.sum()
    assert res.active_return == pytest.approx(mu @ f_mat @ (res.weights - b), rel=1e-12)


def test_benchmark_weight_on_an_unlisted_asset_stays_in_the_risk(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    tradable = np.ones(30, dtype=bool)
    tradable[0] = False
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=10.0), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b, tradable=tradable)
    assert res.weights[0] == 0.0
    assert res.tracking_error == pytest.approx(te_full(res.weights, b, f_mat, sf, e), rel=1e-12)


# --------------------------------------------------------------------------- failures


def test_max_weight_too_small_for_the_tradable_universe(inputs):
    f_mat, sf, e, mu, caps = inputs
    tradable = np.zeros(30, dtype=bool)
    tradable[:5] = True
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, max_weight=0.1), 30, 4).solve(
        f_mat, sf, e, mu, caps=caps, tradable=tradable, date="2020-03-31")
    assert res.status == "failed" and not res.ok
    assert res.reason == ("2020-03-31: max_weight too small for the tradable universe: 5 "
                          "tradable assets at 0.1 hold at most 0.5; raise max_weight to at least "
                          "0.2")
    assert isinstance(res.error, InfeasibleError) and res.error.argument == "max_weight"
    assert np.isnan(res.weights).all() and res.weights.shape == (30,)
    # exactly enough: every tradable asset at max_weight
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.5, max_weight=0.2), 30, 4).solve(
        f_mat, sf, e, mu, caps=caps, tradable=tradable)
    assert res.ok
    np.testing.assert_allclose(res.weights, np.where(tradable, 0.2, 0.0), rtol=0, atol=1e-8)


@pytest.mark.parametrize("limit", [0.2, 0.3])
def test_turnover_limit_unreachable(inputs, limit):
    f_mat, sf, e, mu, caps = inputs
    prev = np.zeros(30)
    prev[0], prev[1:] = 0.5, 0.5 / 29
    tradable = np.ones(30, dtype=bool)
    tradable[0] = False  # half the portfolio left the universe: at least 0.5 must be sold
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, turnover=limit), 30, 4).solve(
        f_mat, sf, e, mu, caps=caps, tradable=tradable, prev_weights=prev, date="2020-02-28")
    assert res.status == "failed"
    assert res.reason == (f"2020-02-28: turnover limit unreachable: {limit:g} one-way, but "
                          "selling what left "
                          "the universe and staying within the bounds needs at least 0.5; "
                          "raise turnover")
    assert isinstance(res.error, InfeasibleError) and res.error.argument == "turnover"


def test_tev_budget_unreachable(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    tradable = np.ones(30, dtype=bool)
    tradable[np.argsort(b)[-3:]] = False  # the three largest benchmark names cannot be held
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.001), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b, tradable=tradable, date="2021-06-30")
    assert res.status == "failed"
    assert res.reason.startswith("2021-06-30: the TEV budget 0.001 is unreachable")
    assert "raise tev" in res.reason
    assert res.error.argument == "tev"


def lowest_te(f_mat, sf, e, tradable, *, b=None, x_b=None, prev=None, turnover=None,
              w_map=None):
    """The lowest annual TE long-only weights on ``tradable`` allow, on the n x n covariance.

    Against benchmark weights ``b`` or a factor benchmark's exposure ``x_b``; with
    ``turnover`` the one-way trade from ``prev`` is limited too; with ``w_map`` the
    weights are ``w_map @ u`` for industry weights ``u``.
    """
    u = cp.Variable(len(e) if w_map is None else w_map.shape[1])
    w = u if w_map is None else w_map @ u
    if b is not None:
        risk = cp.quad_form(w - b, cp.psd_wrap(full_cov(f_mat, sf, e)))
    else:
        fx = f_mat @ w - x_b
        risk = cp.quad_form(fx, cp.psd_wrap(sf)) + e @ cp.square(w)
    cons = [cp.sum(u) == 1, u >= 0, w[~tradable] == 0]
    if turnover is not None:
        cons.append(cp.norm1(w - prev) <= 2 * turnover)
    prob = cp.Problem(cp.Minimize(risk), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-10)
    assert prob.status == cp.OPTIMAL
    return math.sqrt(prob.value * PPY)


@pytest.mark.parametrize("case", ["benchmark", "factor benchmark", "previous weights",
                                  "binding turnover", "turnover from cash", "sector"])
def test_an_unreachable_budget_names_the_lowest_te_the_constraints_allow(inputs, case):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    tradable = np.ones(30, dtype=bool)
    tradable[np.argsort(b)[-3:]] = False  # the three largest benchmark names cannot be held
    prev = np.full(30, 1 / 30) if case in ("previous weights", "binding turnover") else None
    turnover = 0.2 if "turnover" in case else None
    x_b = np.array([0.0, 1.0, 0.0, 0.0])
    kw = {"benchmark_exposure": x_b} if case == "factor benchmark" else {"benchmark": b}
    ref = {"x_b": x_b} if case == "factor benchmark" else {"b": b}
    mode, k, w_map = "tev", None, None
    if case == "sector":  # industries cap-weighted over their tradable stocks
        mode, k, ind = "sector", 4, np.arange(30) % 4
        kw |= {"caps": caps, "industries": ind}
        c = np.where(tradable, caps, 0.0)
        w_map = np.eye(k)[ind] * c[:, None]
        w_map /= w_map.sum(axis=0)
    need = lowest_te(f_mat, sf, e, tradable, prev=prev, w_map=w_map,
                     turnover=turnover if prev is not None else None, **ref)  # none from cash
    if case == "binding turnover":  # the limit raises the lowest TE
        assert need > 1.01 * lowest_te(f_mat, sf, e, tradable, b=b)
    tev = 0.7 * need
    res = ActiveOptimiser(OptimiserSpec(mode, tev=tev, turnover=turnover), 30, 4, k).solve(
        f_mat, sf, e, mu, tradable=tradable, prev_weights=prev, date="2021-06-30", **kw)
    assert res.status == "failed" and isinstance(res.error, InfeasibleError)
    assert res.error.argument == "tev"
    head = f"2021-06-30: the TEV budget {tev:.4g} is unreachable: the lowest tracking error the "
    tail = " a year; raise tev or relax max_weight/turnover"
    assert res.reason.startswith(head + "constraints allow is ") and res.reason.endswith(tail)
    said = float(res.reason[len(head + "constraints allow is "):-len(tail)])
    assert said == pytest.approx(need, rel=1e-3)  # printed to 4 digits


def test_limits_that_hold_with_an_unreachable_budget_are_not_blamed(inputs):
    f_mat, sf, e, mu, caps = inputs
    spec = OptimiserSpec("tev", tev=0.001, factor_bounds={"SMB": (0.05, 0.1)})
    opt = ActiveOptimiser(spec, 30, 4, factor_names=("Mkt-RF", "SMB", "HML"))
    # the SMB bound holds alone and the benchmark is within the budget, but not both
    res = opt.solve(f_mat, sf, e, mu, benchmark=caps / caps.sum(), date="2020-01-31")
    assert res.status == "failed" and isinstance(res.error, InfeasibleError)
    assert res.reason == ("2020-01-31: the constraints cannot all hold (solver says infeasible); "
                          "relax tev, max_weight or turnover")
    assert res.error.argument == "tev"


def test_a_failed_date_carries_no_figures(inputs):
    f_mat, sf, e, mu, caps = inputs
    t0 = time.perf_counter()
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), 30, 4).solve(
        f_mat, sf, e, mu, caps=caps, tradable=np.zeros(30, dtype=bool), date="2020-05-29")
    assert res.status == "failed" and res.date == "2020-05-29"
    assert np.isnan(res.weights).all() and res.weights.shape == (30,)
    assert math.isnan(res.tracking_error) and math.isnan(res.active_return)
    assert math.isnan(res.turnover) and res.te_binding is False
    assert 0 <= res.solve_seconds <= time.perf_counter() - t0
    assert res.industry_weights is None and res.solver_status == "not solved"
    assert res.reason == "2020-05-29: there are no tradable assets; check the tradable mask"
    assert type(res.error) is InfeasibleError and res.error.argument == "tradable"
    k = 3
    sector = ActiveOptimiser(OptimiserSpec("sector", gamma=1.0), 30, 4, k).solve(
        f_mat, sf, e, mu, caps=caps, industries=np.arange(30) % k,
        tradable=np.zeros(30, dtype=bool))
    assert sector.reason == ("there are no industries with tradable stocks; check the tradable "
                             "mask")
    assert sector.industry_weights.shape == (k,) and np.isnan(sector.industry_weights).all()
    assert sector.date is None


def test_no_tradable_asset(inputs):
    f_mat, sf, e, mu, caps = inputs
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=1.0), 30, 4).solve(
        f_mat, sf, e, mu, caps=caps, tradable=np.zeros(30, dtype=bool))
    assert res.status == "failed" and "no tradable assets" in res.reason


def test_solver_error_becomes_a_failed_result(inputs, monkeypatch):
    # a cost keeps the problem with the interior-point solver (see test_activeqp.py)
    f_mat, sf, e, mu, caps = inputs
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, cost=1e-4), 30, 4)

    def boom(*args, **kwargs):
        raise cp.error.SolverError("Solver 'CLARABEL' failed.")

    monkeypatch.setattr(opt._prob, "solve", boom)
    res = opt.solve(f_mat, sf, e, mu, caps=caps, date="2022-01-31")
    assert res.status == "failed" and res.solver_status == "solver_error"
    assert isinstance(res.error, ConvergenceError) and res.iterations == 0
    assert res.reason == ("2022-01-31: the solver failed (Solver 'CLARABEL' failed.); check the "
                          "inputs' scale (per-period moments)")

    def silent(*args, **kwargs):
        raise cp.error.SolverError("")

    monkeypatch.setattr(opt._prob, "solve", silent)  # no message: the exception's kind
    res = opt.solve(f_mat, sf, e, mu, caps=caps)
    assert res.reason == ("the solver failed (SolverError); check the inputs' scale "
                          "(per-period moments)")


def test_optimal_inaccurate_is_accepted_only_when_verified(inputs, monkeypatch):
    # a cost keeps the problem away from the exact active-set solver: the
    # interior-point answer is what is checked
    f_mat, sf, e, mu, caps = inputs
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, cost=1e-4), 30, 4)
    real = opt._prob.solve

    def inaccurate(shift):
        def solve(*args, **kwargs):
            real(*args, **kwargs)
            opt._prob._status = cp.OPTIMAL_INACCURATE
            if shift:  # move the answer away from the benchmark: TE over the budget
                opt._x.value = 0.5 * opt._x.value + 0.5 * corner(f_mat, mu)
        return solve

    monkeypatch.setattr(opt._prob, "solve", inaccurate(False))
    ok = opt.solve(f_mat, sf, e, mu, caps=caps)
    assert ok.ok and ok.solver_status == "optimal_inaccurate"
    monkeypatch.setattr(opt._prob, "solve", inaccurate(True))
    bad = opt.solve(f_mat, sf, e, mu, caps=caps, date="d1")
    assert bad.status == "failed" and "exceeds the budget" in bad.reason
    assert isinstance(bad.error, ConvergenceError)


@pytest.mark.parametrize(("status", "text"), [
    (cp.USER_LIMIT, "the solver stopped with status user_limit; check the inputs' scale "
                    "(per-period moments)"),
    (cp.UNBOUNDED, "the problem is unbounded; add max_weight"),
])
def test_a_solver_status_without_an_answer_fails_the_date(inputs, monkeypatch, status, text):
    f_mat, sf, e, mu, caps = inputs
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), 30, 4, exact=False)
    real = opt._prob.solve

    def stopped(*args, **kwargs):
        real(*args, **kwargs)
        opt._prob._status = status

    monkeypatch.setattr(opt._prob, "solve", stopped)
    t0 = time.perf_counter()
    res = opt.solve(f_mat, sf, e, mu, caps=caps, date="2023-01-31")
    assert res.status == "failed" and type(res.error) is ConvergenceError
    assert res.reason == f"2023-01-31: {text}" and res.solver_status == status
    assert res.iterations > 0 and 0 < res.solve_seconds <= time.perf_counter() - t0


def answer_changed_to(opt, change):
    """Let ``opt`` solve for real, then report the answer ``change(x)`` as optimal_inaccurate."""
    real = opt._prob.solve

    def solve(*args, **kwargs):
        real(*args, **kwargs)
        opt._prob._status = cp.OPTIMAL_INACCURATE
        opt._x.value = change(opt._x.value.copy())
    return solve


def industry_active(w, b, ind):
    return np.array([w[ind == j].sum() - b[ind == j].sum() for j in range(ind.max() + 1)])


def moved(x, src, dst, amount):
    x[src] -= amount
    x[dst] += amount
    return x


@pytest.mark.parametrize("case", ["sum", "bound", "budget", "industry", "factor", "turnover"])
def test_an_answer_outside_the_constraints_is_refused_naming_what_it_breaks(
        inputs, monkeypatch, case):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    ind = np.arange(30) % 5
    spec, k = {"sum": (OptimiserSpec("tev", tev=0.05), None),
               "bound": (OptimiserSpec("tev", tev=0.08, max_weight=0.06), None),
               "budget": (OptimiserSpec("tev", tev=0.05), None),
               "industry": (OptimiserSpec("gamma", gamma=5.0, industry_limit=0.01), 5),
               "factor": (OptimiserSpec("gamma", gamma=5.0, factor_bounds={"HML": (-0.02, 0.02)}),
                          None),
               "turnover": (OptimiserSpec("gamma", gamma=5.0, turnover=0.05), None)}[case]
    opt = ActiveOptimiser(spec, 30, 4, k, factor_names=("Mkt-RF", "SMB", "HML"), exact=False)
    kw = {"benchmark": b} | ({"industries": ind} if k else {})
    if case == "turnover":
        kw["prev_weights"] = b
    x = opt.solve(f_mat, sf, e, mu, **kw).weights
    top, low = int(np.argmax(x)), int(np.argmin(x))
    if case == "sum":
        change, text = (lambda v: v * 1.01), f"weights sum to {1.01 * x.sum():.8g}, not 1"
    elif case == "bound":
        assert x[top] == pytest.approx(0.06, abs=1e-8)
        change = lambda v: moved(v, low, top, 1e-3)  # noqa: E731
        text = "a weight is 0.001 outside its bounds"
    elif case == "budget":  # 10% of the way to the TE-free optimum: over the budget, not 2x
        change = lambda v: 0.9 * v + 0.1 * corner(f_mat, mu)  # noqa: E731
        w = 0.9 * x + 0.1 * corner(f_mat, mu)
        te = te_full(w / w.sum(), b, f_mat, sf, e) / math.sqrt(PPY)
        assert 0.05 / math.sqrt(PPY) < te < 2 * 0.05 / math.sqrt(PPY)
        text = f"tracking error {te:.6g} per period exceeds the budget {0.05 / math.sqrt(PPY):.6g}"
    elif case == "factor":  # 0.05 from the highest-HML holding to the lowest-HML asset
        hml = f_mat[3]
        held = np.flatnonzero(x > 0.05)
        src, dst = int(held[np.argmax(hml[held])]), int(np.argmin(hml))
        change = lambda v: moved(v, src, dst, 0.05)  # noqa: E731
        after = hml @ (moved(x.copy(), src, dst, 0.05) - b)
        assert abs(hml @ (x - b)) <= 0.02 + 1e-7 and after < -0.02 - 1e-3  # below the floor
        text = f"a factor exposure is {-0.02 - after:.3g} outside its bounds"
    elif case == "turnover":  # 0.01 more traded: the benchmark's largest name sold further
        src, dst = int(np.argmax(b)), int(np.argmax(x - b))
        assert x[src] < b[src] and 0.5 * np.abs(x - b).sum() == pytest.approx(0.05, abs=1e-7)
        change = lambda v: moved(v, src, dst, 0.01)  # noqa: E731
        to = 0.5 * np.abs(moved(x.copy(), src, dst, 0.01) - b).sum()
        text = f"one-way turnover {to:.6g} exceeds the limit 0.05"
    else:  # 0.02 from an industry's largest holding to another industry's
        src = max(np.flatnonzero(ind == 0), key=lambda i: x[i])
        dst = int(np.flatnonzero(ind == 1)[0])
        change = lambda v: moved(v, src, dst, 0.02)  # noqa: E731
        assert np.abs(industry_active(x, b, ind)).max() <= 0.01 + 1e-9
        after = np.abs(industry_active(moved(x.copy(), src, dst, 0.02), b, ind)).max()
        text = f"an industry weight is {after - 0.01:.3g} outside its limit"
    monkeypatch.setattr(opt._prob, "solve", answer_changed_to(opt, change))
    res = opt.solve(f_mat, sf, e, mu, date="2023-03-31", **kw)
    assert res.status == "failed" and isinstance(res.error, ConvergenceError)
    assert res.reason == (f"2023-03-31: the solver's answer (optimal_inaccurate) fails the checks: "
                          f"{text}; loosen the constraints or check the inputs' scale")


def test_a_long_short_answer_within_the_tolerances_is_not_rescaled(inputs, monkeypatch):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, long_only=False, max_weight=0.2), 30, 4,
                          exact=False)
    x = opt.solve(f_mat, sf, e, mu, benchmark=b).weights
    # a rescale could push a weight at -max_weight past its bound: long-short is only clipped
    monkeypatch.setattr(opt._prob, "solve", answer_changed_to(opt, lambda v: v * (1 + 3e-7)))
    res = opt.solve(f_mat, sf, e, mu, benchmark=b)
    assert res.ok
    np.testing.assert_allclose(res.weights, np.clip(x * (1 + 3e-7), -0.2, 0.2), rtol=1e-13,
                               atol=0)


@pytest.mark.parametrize("scale", [1 - 3e-7, 1 + 3e-7])
def test_an_answer_within_the_tolerances_is_cleaned_to_sum_to_one(inputs, monkeypatch, scale):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.08, max_weight=0.06), 30, 4, exact=False)
    x = opt.solve(f_mat, sf, e, mu, benchmark=b).weights
    zero = int(np.argmin(x))
    assert x[zero] < 1e-9

    def off(v):  # every weight scaled, one a hair below 0 (all within 1e-6 of the bounds)
        v = v * scale
        v[zero] = -3e-7
        return v

    monkeypatch.setattr(opt._prob, "solve", answer_changed_to(opt, off))
    res = opt.solve(f_mat, sf, e, mu, benchmark=b)
    assert res.ok and res.solver_status == "optimal_inaccurate"
    want = x * scale
    want[zero] = 0.0
    want = np.minimum(want, 0.06)
    np.testing.assert_allclose(res.weights, want / want.sum(), rtol=1e-13, atol=0)
    assert res.weights[zero] == 0.0 and res.weights.sum() == pytest.approx(1.0, abs=1e-15)


# --------------------------------------------------------------------------- bad specs, inputs


@pytest.mark.parametrize(
    ("kwargs", "argument", "text"),
    [
        ({"mode": "sharpe", "tev": 0.05}, "mode", 'mode must be one of tev, gamma, sector (got '
         '"sharpe")'),
        ({"mode": "tev"}, "tev",
         "mode tev needs tev, the annual tracking-error budget (e.g. 0.05)"),
        ({"mode": "tev", "tev": -0.01}, "tev", "tev must be a positive annual tracking error, "
         "e.g. 0.05 (got -0.01)"),
        ({"mode": "tev", "tev": 0.0}, "tev", "tev must be a positive annual tracking error, e.g. "
         "0.05 (got 0)"),
        ({"mode": "gamma", "gamma": -1.0}, "gamma", "gamma must be >= 0 (got -1)"),
        ({"mode": "gamma"}, "gamma", "mode gamma needs gamma, the risk aversion (e.g. 10)"),
        ({"mode": "tev", "tev": 0.05, "gamma": 1.0}, "gamma", "gamma applies to mode gamma or "
         "sector, not to mode tev"),
        ({"mode": "gamma", "gamma": 1.0, "tev": 0.05}, "tev", "tev applies to mode tev or "
         "sector, not to mode gamma"),
        ({"mode": "sector"}, "tev", "mode sector needs exactly one of tev (TEV cap) or gamma "
         "(risk aversion)"),
        ({"mode": "sector", "tev": 0.05, "gamma": 1.0}, "tev", "mode sector needs exactly one of "
         "tev (TEV cap) or gamma (risk aversion)"),
        ({"mode": "tev", "tev": 0.05, "periods_per_year": 0}, "periods_per_year",
         "periods_per_year must be positive, e.g. 12 for monthly (got 0)"),
        ({"mode": "tev", "tev": 0.05, "max_weight": 1.5}, "max_weight",
         "max_weight must be in (0, 1] (got 1.5)"),
        ({"mode": "tev", "tev": 0.05, "turnover": -0.1}, "turnover",
         "turnover must be a positive one-way fraction, e.g. 0.2 (got -0.1)"),
        ({"mode": "tev", "tev": 0.05, "cost": -0.001}, "cost",
         "cost must be >= 0 per unit traded (got -0.001)"),
        ({"mode": "tev", "tev": 0.05, "cost": 10}, "cost", "cost 10 is 1000% of every amount "
         "traded: write 0.001 (or 0.1%) for 10 basis points"),
        ({"mode": "tev", "tev": float("nan")}, "tev", "tev must be a finite number (got nan)"),
        ({"mode": "tev", "tev": "abc"}, "tev", "tev must be a number (got 'abc')"),
        ({"mode": "tev", "tev": True}, "tev", "tev must be a number (got True)"),
        ({"mode": "tev", "tev": 0.05, "periods_per_year": "monthly"}, "periods_per_year",
         "periods_per_year must be a number (got 'monthly')"),
        ({"mode": "tev", "tev": 0.05, "max_weight": "abc"}, "max_weight",
         "max_weight must be a number (got 'abc')"),
        ({"mode": "tev", "tev": 0.05, "cost": "abc"}, "cost", "cost must be a number (got 'abc')"),
        ({"mode": "tev", "tev": 0.05, "long_only": False}, "max_weight",
         "long_only FALSE needs max_weight, the largest absolute weight of one position"),
        ({"mode": "tev", "tev": 0.05, "long_only": "yes"}, "long_only",
         "long_only must be TRUE or FALSE (got 'yes')"),
    ],
)
def test_bad_spec_raises_one_line_input_error(kwargs, argument, text):
    raises_exactly(text, argument, OptimiserSpec, **kwargs)


def test_max_weight_of_exactly_one_over_the_industries_holds_each_at_it(inputs):
    f_mat, sf, e, mu, caps = inputs
    res = ActiveOptimiser(OptimiserSpec("sector", tev=0.5, max_weight=0.2), 30, 4, 5).solve(
        f_mat, sf, e, mu, caps=caps, industries=np.arange(30) % 5)
    assert res.ok
    np.testing.assert_allclose(res.industry_weights, 0.2, rtol=0, atol=1e-8)


def test_one_asset_and_the_alpha_row_alone_is_a_problem_too():
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=1.0), 1, 1).solve(
        np.array([[0.01]]), np.zeros((1, 1)), np.array([0.002]), np.array([1.0]),
        benchmark=np.array([1.0]))
    assert res.ok and res.weights.tolist() == [1.0]
    assert res.tracking_error == 0.0 and res.active_return == 0.0


def test_inputs_as_sheet_cells_give_the_same_answer(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), 30, 4)
    ref = opt.solve(f_mat, sf, e, mu, benchmark=b)
    cells = [np.asarray(v).astype(object) for v in (f_mat, sf, e, mu, b)]
    got = opt.solve(*cells[:4], benchmark=cells[4])
    np.testing.assert_array_equal(got.weights, ref.weights)
    assert got.tracking_error == ref.tracking_error


def test_max_weight_infeasible_for_the_universe_size():
    with pytest.raises(InputError, match=r"max_weight 0.01 is infeasible for 50 assets") as info:
        ActiveOptimiser(OptimiserSpec("tev", tev=0.05, max_weight=0.01), 50, 4)
    assert info.value.argument == "max_weight"
    with pytest.raises(InputError, match="n_industries"):
        ActiveOptimiser(OptimiserSpec("sector", tev=0.05), 50, 4)


def test_bad_inputs_raise(inputs):
    f_mat, sf, e, mu, caps = inputs
    spec = OptimiserSpec("tev", tev=0.05)
    for args, argument, text in [
        (("x", 30, 4), "spec", "spec must be an OptimiserSpec"),
        ((spec, 0, 4), "n_assets", "n_assets must be a positive integer (got 0)"),
        ((spec, 30, 2.5), "n_loadings", "n_loadings must be a positive integer (got 2.5)"),
        ((OptimiserSpec("sector", tev=0.05), 30, 4), "n_industries",
         "mode sector and industry limits need n_industries, a positive integer (got None)"),
        ((spec, 30, 4, 3), "n_industries",
         "n_industries applies to mode sector or industry limits only"),
        ((OptimiserSpec("sector", tev=0.05, max_weight=0.2), 30, 4, 3), "max_weight",
         "max_weight 0.2 is infeasible for 3 industries: weights summing to 1 need max_weight "
         ">= 1/3 = 0.3333"),
    ]:
        raises_exactly(text, argument, ActiveOptimiser, *args)
    opt = ActiveOptimiser(spec, 30, 4)
    sec = ActiveOptimiser(OptimiserSpec("sector", tev=0.05), 30, 4, 3)
    bad = f_mat.copy()
    bad[1, 4] = np.nan
    nan_cov, asym, neg = sf.copy(), sf.copy(), sf.copy()
    nan_cov[1, 1] = np.nan
    asym[1, 2] += 0.1
    neg[1, 1] = -1.0
    inf_mu, neg_e, nan_prev = mu.copy(), e.copy(), np.zeros(30)
    inf_mu[1] = np.inf
    neg_e[3] = -1.0
    nan_prev[0] = np.nan
    neg_caps = caps.copy()
    neg_caps[2] = -1.0
    off = np.zeros(30)
    off[3] = 1.0  # the benchmark holds asset 3, which cannot be traded
    untradable = np.arange(30) != 3
    nan_e, nan_f = e.copy(), f_mat.copy()
    nan_e[3] = np.nan
    nan_f[1, 3] = np.nan
    codes = "industries must be integer codes 0..2 (-1 for none)"
    for solver, args, kwargs, argument, text in [
        (opt, (f_mat.T, sf, e, mu), {"caps": caps}, "loadings",
         "loadings must be 4 x 30 (loadings x assets; got 30 x 4)"),
        (opt, (bad, sf, e, mu), {"caps": caps}, "loadings",
         "loadings has a non-finite value for tradable asset 4 (0-based)"),
        (opt, (f_mat, sf[:3, :3], e, mu), {"caps": caps}, "factor_cov",
         "factor_cov must be 4 x 4 (got 3 x 3)"),
        (opt, (f_mat, nan_cov, e, mu), {"caps": caps}, "factor_cov",
         "factor_cov has a non-finite value at row 2, column 2"),
        (opt, (f_mat, asym, e, mu), {"caps": caps}, "factor_cov", "factor_cov is not symmetric"),
        (opt, (f_mat, neg, e, mu), {"caps": caps}, "factor_cov",
         f"factor_cov is not positive semidefinite (eigenvalue {np.linalg.eigvalsh(neg)[0]:.3g})"),
        (opt, (f_mat, sf, e, mu[:3]), {"caps": caps}, "factor_mean",
         "factor_mean must have 4 values (got shape (3,))"),
        (opt, (f_mat, sf, e, ["a"] * 4), {"caps": caps}, "factor_mean",
         "factor_mean must be numbers"),
        (opt, (f_mat, sf, e, inf_mu), {"caps": caps}, "factor_mean",
         "factor_mean has a non-finite value"),
        (opt, (f_mat, sf, e, mu), {"caps": caps, "tradable": np.ones(3)}, "tradable",
         "tradable must be 30 booleans (got shape (3,))"),
        (opt, (f_mat, sf, neg_e, mu), {"caps": caps}, "resid_var",
         "resid_var has a negative variance"),
        (opt, (f_mat, sf, e, mu), {"benchmark": caps / caps.sum(),
                                   "benchmark_exposure": np.zeros(4)}, "benchmark",
         "give benchmark (weights) or benchmark_exposure (a factor benchmark), not both"),
        (opt, (f_mat, sf, e, mu), {"benchmark_exposure": np.r_[np.nan, 0.0, 0.0, 0.0]},
         "benchmark_exposure", "benchmark_exposure has a non-finite value"),
        (opt, (f_mat, sf, e, mu), {}, "benchmark", "give benchmark weights, benchmark_exposure "
         "(a factor benchmark) or caps (cap-weighted benchmark)"),
        (opt, (f_mat, sf, e, mu), {"caps": caps, "prev_weights": nan_prev}, "prev_weights",
         "prev_weights has a non-finite value"),
        (opt, (f_mat, sf, e, mu), {"caps": neg_caps}, "caps", "caps must be >= 0 (asset 2 has -1)"),
        (opt, (f_mat, sf, nan_e, mu), {"benchmark": off, "tradable": untradable}, "resid_var",
         "resid_var has a non-finite value for a benchmark asset"),
        (opt, (nan_f, sf, e, mu), {"benchmark": off, "tradable": untradable}, "loadings",
         "loadings has a non-finite value for a benchmark asset"),
        (sec, (f_mat, sf, e, mu), {}, "caps", "mode sector needs caps and industries"),
        (ActiveOptimiser(OptimiserSpec("tev", tev=0.05, industry_limit=0.1), 30, 4, 3),
         (f_mat, sf, e, mu), {"caps": caps}, "industries", "industry limits need industries"),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.arange(30) % 3 + 0.5},
         "industries", codes),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.arange(30) % 4}, "industries",
         codes),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.array(["a"] * 30,
                                                                         dtype=object)},
         "industries", codes),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.arange(29) % 3}, "industries",
         "industries must have 30 codes (got shape (29,))"),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.ones((30, 2))}, "industries",
         "industries must be 30 x 3 (got 30 x 2)"),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.full((30, 3), 2.0)},
         "industries", "industries must be a 0/1 map with at most one 1 per stock"),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.full((30, 3), 0.25)},
         "industries", "industries must be a 0/1 map with at most one 1 per stock"),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.eye(3)[np.arange(30) % 3]
                                   + np.eye(3)[(np.arange(30) + 1) % 3]},
         "industries", "industries must be a 0/1 map with at most one 1 per stock"),
        (sec, (f_mat, sf, e, mu), {"caps": caps, "industries": np.arange(30) % 3 - 2},
         "industries", codes),
        (opt, (f_mat, sf, e, mu), {"caps": caps[:29]}, "caps",
         "caps must have 30 values (got shape (29,))"),
    ]:
        raises_exactly(text, argument, solver.solve, *args, **kwargs)


def test_tiny_negative_eigenvalues_are_clipped(inputs):
    f_mat, sf, e, mu, caps = inputs
    lam, vec = np.linalg.eigh(sf)
    lam[0] = -1e-14  # the constant's zero eigenvalue, computed
    noisy = vec @ np.diag(lam) @ vec.T
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), 30, 4).solve(
        f_mat, noisy, e, mu, caps=caps)
    assert res.ok and res.tracking_error == pytest.approx(0.05, rel=1e-6)


@pytest.mark.parametrize(("lowest", "ok"), [(-5e-12, True), (-1e-9, False)])
def test_a_negative_eigenvalue_is_clipped_only_within_1e_8_of_the_largest(inputs, lowest, ok):
    f_mat, _, e, mu, caps = inputs
    vec = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    noisy = np.zeros((4, 4))  # the constant's row and column stay 0: eigenvalues 0, lowest,
    noisy[1:, 1:] = vec @ np.diag([lowest, 1e-4, 1e-3]) @ vec.T  # 1e-4 and the largest 1e-3
    noisy = 0.5 * (noisy + noisy.T)
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), 30, 4)
    if ok:
        res = opt.solve(f_mat, noisy, e, mu, caps=caps)
        assert res.ok and res.tracking_error == pytest.approx(0.05, rel=1e-6)
    else:
        low = np.linalg.eigvalsh(noisy)[0]
        raises_exactly(f"factor_cov is not positive semidefinite (eigenvalue {low:.3g})",
                       "factor_cov", opt.solve, f_mat, noisy, e, mu, caps=caps)


def test_a_factor_covariance_is_symmetric_to_1e_8_of_its_largest_entry(inputs):
    f_mat, sf, e, mu, caps = inputs
    scale = np.abs(sf).max()
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), 30, 4)
    rounded, skewed = sf.copy(), sf.copy()
    rounded[1, 2] += 1e-10 * scale  # rounding: accepted
    skewed[1, 2] += 1e-6 * scale
    assert opt.solve(f_mat, rounded, e, mu, caps=caps).ok
    raises_exactly("factor_cov is not symmetric", "factor_cov", opt.solve, f_mat, skewed, e, mu,
                   caps=caps)


def test_settings_are_stored_as_numbers_and_a_failure_reports_no_iterations(inputs):
    f_mat, sf, e, mu, caps = inputs
    spec = OptimiserSpec("tev", tev="0.05", max_weight="0.25", turnover=1, periods_per_year="52")
    assert (spec.tev, spec.max_weight, spec.turnover) == (0.05, 0.25, 1.0)
    assert spec.periods_per_year == 52.0 and spec.te_budget == pytest.approx(0.05 / math.sqrt(52))
    assert all(type(v) is float for v in (spec.tev, spec.max_weight, spec.turnover,
                                          spec.periods_per_year))
    res = ActiveOptimiser(OptimiserSpec("gamma", gamma=1.0), 30, 4).solve(
        f_mat, sf, e, mu, caps=caps, tradable=np.zeros(30, dtype=bool))
    assert res.status == "failed" and res.iterations == 0
    raises_exactly("give exactly one of b (benchmark weights) or benchmark_exposure", "b",
                   tracking_error, np.full(30, 1 / 30), caps / caps.sum(), f_mat, sf, e, 12,
                   benchmark_exposure=np.zeros(4))
    raises_exactly("caps must have a positive total over the stocks with an industry", "caps",
                   sector_weights, np.zeros(30), np.arange(30) % 3, 3)


def test_a_dates_inputs_are_checked_once_and_never_taken_stale(inputs, monkeypatch):
    """The strategies of a sweep solve one date after another: its inputs are checked once.

    A read-only array passed again is known by identity; anything else is compared by
    value, so numbers changed in place (even behind a read-only view) are seen.
    """
    f_mat, sf, e, mu, caps = inputs
    calls = []
    real = ActiveOptimiser._inputs
    monkeypatch.setattr(ActiveOptimiser, "_inputs",
                        lambda self, *a: calls.append(1) or real(self, *a))
    spec = OptimiserSpec("tev", tev=0.04)
    b = caps / caps.sum()

    def fresh(loadings):
        return ActiveOptimiser(spec, 30, 4).solve(loadings, sf, e, mu, benchmark=b).weights

    frozen = f_mat.copy()
    frozen.flags.writeable = False
    opt = ActiveOptimiser(spec, 30, 4)
    first = opt.solve(frozen, sf, e, mu, benchmark=b).weights
    assert len(calls) == 1
    np.testing.assert_array_equal(opt.solve(frozen, sf, e, mu, benchmark=b).weights, first)
    np.testing.assert_array_equal(opt.solve(frozen.copy(), sf, e, mu, benchmark=b).weights,
                                  first)
    assert len(calls) == 1  # the same object, then an equal copy: checked once

    moved = f_mat.copy()
    opt.solve(moved, sf, e, mu, benchmark=b)
    moved[0] *= -1.0  # other alphas, written into the same array
    np.testing.assert_array_equal(opt.solve(moved, sf, e, mu, benchmark=b).weights,
                                  fresh(moved.copy()))
    later = f_mat.copy()  # writeable when first passed, read-only after a change
    opt.solve(later, sf, e, mu, benchmark=b)
    later[0] *= -1.0
    later.flags.writeable = False
    np.testing.assert_array_equal(opt.solve(later, sf, e, mu, benchmark=b).weights,
                                  fresh(later.copy()))
    base = f_mat.copy()
    view = base[:]
    view.flags.writeable = False
    opt.solve(view, sf, e, mu, benchmark=b)
    base[0] *= -1.0  # behind the read-only view
    after = opt.solve(view, sf, e, mu, benchmark=b).weights
    np.testing.assert_array_equal(after, fresh(base.copy()))
    assert np.abs(after - first).max() > 1e-3
