"""The exact active-set solver of the factor-form problem, against cvxpy and its own KKT."""

from __future__ import annotations

import math
import warnings

import cvxpy as cp
import numpy as np
import pytest

from xlfuncs.core._activeqp import FREE, KKT_TOL, LOWER, UPPER, ActiveQP
from xlfuncs.core._optimise import ActiveOptimiser, OptimiserSpec

A = 12  # periods a year


def _problem(seed: int, n: int = 120, m: int = 5):
    """A date's inputs shaped like the backtest's: alpha row, 4 factors, cap benchmark."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(m, n))
    F[0] *= 0.002  # per-period alphas
    F[1] = 1.0 + 0.3 * rng.normal(size=n)  # market betas
    root = rng.normal(size=(m - 1, m - 1)) * 0.02
    S = np.zeros((m, m))
    S[1:, 1:] = root @ root.T
    lam, vec = np.linalg.eigh(S)
    R = np.sqrt(np.clip(lam, 0, None))[:, None] * vec.T
    e = rng.uniform(0.03, 0.12, n) ** 2
    mu = np.r_[1.0, rng.normal(0.005, 0.003, m - 1)]
    caps = rng.lognormal(0, 1.5, n)
    return F, S, R, e, mu, caps / caps.sum()


def _reference(F, R, e, mu, b, lb, ub, *, te=None, gamma=None):
    """The same problem in cvxpy, solved by Clarabel at tight tolerances."""
    x = cp.Variable(len(b))
    a = x - b
    parts = cp.hstack([R @ F @ a, cp.multiply(np.sqrt(e), a)])
    cons = [cp.sum(x) == 1, x >= lb, x <= ub]
    if te is not None:
        prob = cp.Problem(cp.Maximize(mu @ F @ a), [*cons, cp.norm(parts, 2) <= te])
    else:
        prob = cp.Problem(cp.Maximize(mu @ F @ a - gamma * cp.sum_squares(parts)), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-10)
    assert prob.status == cp.OPTIMAL
    return x.value


def _kkt_ok(F, R, e, mu, b, lb, ub, w, t):
    """Optimality of ``w`` for ``min 1/2 a'Qa - t g'a`` from the dense Q, independently."""
    a = w - b
    Q = (R @ F).T @ (R @ F) + np.diag(e)
    grad = Q @ a - t * (F.T @ mu)  # + nu - lam_lo + lam_hi = 0
    free = (w > lb + 1e-10) & (w < ub - 1e-10)
    low, high = w <= lb + 1e-10, w >= ub - 1e-10
    scale = 1e-10 * max(1.0, np.abs(grad).max())
    if free.any():
        nu = -float(np.mean(grad[free]))
        assert np.abs(grad[free] + nu).max() < scale
    else:  # every asset at a bound: some budget multiplier must fit both sides
        nu = -float(grad[low].min(initial=np.inf))
        assert nu <= -float(grad[high].max(initial=-np.inf)) + scale
    lam = grad + nu
    assert (lam[low] >= -scale).all()  # at the lower bound: raising it would not gain
    assert (lam[high] <= scale).all()
    assert abs(w.sum() - 1) < 1e-12 and (w >= lb - 1e-12).all() and (w <= ub + 1e-12).all()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tev", [0.01, 0.04, 0.1])
def test_te_cap_is_the_exact_optimum(seed, tev):
    F, _, R, e, mu, b = _problem(seed)
    lb, ub = np.zeros_like(b), np.ones_like(b)
    qp = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b)
    te = tev / math.sqrt(A)
    # from the interior-point answer's bound set (as the optimiser does on a first date)
    ref = _reference(F, R, e, mu, b, lb, ub, te=te)
    sol = qp.at_te(te, qp.state_near(ref - b))
    assert sol is not None and sol.binding
    w = b + sol.a
    got_te = math.sqrt(sol.a @ (R @ F).T @ (R @ F) @ sol.a + e @ sol.a**2)
    assert got_te == pytest.approx(te, rel=1e-12)
    assert (mu @ F @ sol.a) >= (mu @ F @ (ref - b)) - 1e-12  # never worse than Clarabel
    assert np.abs(w - ref).max() < 1e-5
    _kkt_ok(F, R, e, mu, b, lb, ub, w, sol.t)
    # and from nothing at all: every asset free
    cold = qp.at_te(te)  # (where it gives up the optimiser uses Clarabel; not on these)
    assert cold is not None
    assert np.abs(cold.a - sol.a).max() < 1e-12


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma", [2.0, 20.0, 200.0])
def test_risk_aversion_is_the_exact_optimum(seed, gamma):
    F, _, R, e, mu, b = _problem(seed)
    lb, ub = np.zeros_like(b), np.full_like(b, 0.05)
    qp = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b)
    ref = _reference(F, R, e, mu, b, lb, ub, gamma=gamma)
    sol = qp.at_t(0.5 / gamma, qp.state_near(ref - b))
    assert sol is not None
    w = b + sol.a
    assert np.abs(w - ref).max() < 1e-5  # Clarabel's own accuracy; the KKT check is exact
    _kkt_ok(F, R, e, mu, b, lb, ub, w, 0.5 / gamma)
    assert (sol.state[w >= ub - 1e-12] == UPPER).all()  # the cap at 5% is used


def test_a_warm_start_from_another_date_gives_the_same_answer():
    F, _, R, e, mu, b = _problem(1)
    F2, _, _, e2, _, _ = _problem(2)
    lb, ub = np.zeros_like(b), np.ones_like(b)
    te = 0.05 / math.sqrt(A)
    day1 = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b)
    first = day1.at_te(te, day1.state_near(_reference(F, R, e, mu, b, lb, ub, te=te) - b))
    # a nearby date: loadings and residuals move a little
    Fn, en = 0.9 * F + 0.1 * F2, 0.9 * e + 0.1 * e2
    day2 = ActiveQP(R @ Fn, en, Fn.T @ mu, lb - b, ub - b)
    ref = _reference(Fn, R, en, mu, b, lb, ub, te=te)
    warm = day2.at_te(te, first.state, first.t)
    crossover = day2.at_te(te, day2.state_near(ref - b))
    assert warm is not None and crossover is not None
    assert np.abs(warm.a - crossover.a).max() < 1e-13
    assert warm.iterations < 20


def test_sweeps_aimed_at_the_target_find_the_searchs_answer_with_fewer_solves(monkeypatch):
    solves = {"aimed": 0, "searched": 0}
    search_only = lambda self, target, state: None  # noqa: E731
    for seed in range(6):
        F, _, R, e, mu, b = _problem(seed, n=300)
        F2, _, _, e2, _, _ = _problem(seed + 10, n=300)
        lb, ub = np.zeros_like(b), np.full_like(b, 0.04)
        te = 0.05 / math.sqrt(A)
        first = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b).at_te(te)
        Fn, en = 0.85 * F + 0.15 * F2, 0.85 * e + 0.15 * e2  # next month
        day2 = ActiveQP(R @ Fn, en, Fn.T @ mu, lb - b, ub - b)
        aimed = day2.at_te(te, first.state, first.t)
        with monkeypatch.context() as patch:
            patch.setattr(ActiveQP, "_aimed", search_only)
            searched = day2.at_te(te, first.state, first.t)
        assert aimed is not None and searched is not None and aimed.binding
        assert (aimed.state != first.state).sum() > 0  # the free set did change
        np.testing.assert_array_equal(aimed.a, searched.a)  # the same piece at the same root
        assert aimed.t == searched.t
        _kkt_ok(Fn, R, en, mu, b, lb, ub, b + aimed.a, aimed.t)
        assert aimed.iterations <= searched.iterations
        solves["aimed"] += aimed.iterations
        solves["searched"] += searched.iterations
    assert solves["aimed"] < solves["searched"]


def test_a_budget_above_the_frontier_is_not_binding():
    F, _, R, e, mu, b = _problem(3, n=40)
    lb, ub = np.zeros_like(b), np.ones_like(b)
    qp = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b)
    best = int(np.argmax(F.T @ mu))  # the linear program's answer: all in the best asset
    corner = -b.copy()
    corner[best] += 1.0
    te_corner = math.sqrt(corner @ (R @ F).T @ (R @ F) @ corner + e @ corner**2)
    start = np.full(len(b), LOWER, dtype=np.int8)
    start[best] = FREE
    sol = qp.at_te(2.0 * te_corner, start, 1.0)
    assert sol is not None and not sol.binding and math.isinf(sol.t)
    assert np.abs(sol.a - corner).max() < 1e-12


def test_a_budget_below_the_least_risk_the_bounds_allow_is_not_answered():
    F, _, R, e, mu, b = _problem(4, n=40)
    ub = np.full_like(b, 0.5 * b.max())  # the largest benchmark weight cannot be held
    lb = np.zeros_like(b)
    qp = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b)
    low = qp.at_t(0.0)
    assert low is not None
    least = math.sqrt(low.a @ (R @ F).T @ (R @ F) @ low.a + e @ low.a**2)
    assert least > 0
    assert qp.at_te(0.5 * least) is None


def test_bad_problems_are_refused():
    F, _, R, e, mu, b = _problem(0, n=10)
    with pytest.raises(ValueError, match="disagree"):
        ActiveQP(R @ F, e[:-1], F.T @ mu, -b, 1 - b)
    with pytest.raises(ValueError, match="e > 0"):
        ActiveQP(R @ F, np.where(np.arange(10) == 3, 0.0, e), F.T @ mu, -b, 1 - b)
    qp = ActiveQP(R @ F, e, F.T @ mu, -b, 1 - b)
    with pytest.raises(ValueError, match="t must be"):
        qp.at_t(-1.0)
    with pytest.raises(ValueError, match="te must be"):
        qp.at_te(0.0)


def test_the_optimiser_answers_exactly_and_starts_from_its_last_answer():
    F, S, R, e, mu, b = _problem(5)
    spec = OptimiserSpec("tev", tev=0.04)
    opt = ActiveOptimiser(spec, len(b), F.shape[0])
    first = opt.solve(F, S, e, mu, benchmark=b)
    assert first.solver_status == "exact" and first.warm is not None
    assert first.tracking_error == pytest.approx(0.04, rel=1e-12)
    F2 = F.copy()
    F2[0] = 0.95 * F[0] + 0.05 * _problem(6)[0][0]  # next month's alphas
    second = opt.solve(F2, S, e, mu, benchmark=b, warm=first.warm)
    ref = _reference(F2, R, e, mu, b, np.zeros_like(b), np.ones_like(b),
                     te=0.04 / math.sqrt(A))
    assert second.solver_status == "exact"
    assert np.abs(second.weights - ref).max() < 1e-5
    assert second.tracking_error == pytest.approx(0.04, rel=1e-12)
    _kkt_ok(F2, R, e, mu, b, np.zeros_like(b), np.ones_like(b), second.weights,
            second.warm[1])


def test_a_rough_interior_point_answer_is_made_exact():
    # the crossover the optimiser uses where the active-set search does not answer
    # alone: the free set of an interior-point answer stopped early, then exact
    F, _, R, e, mu, b = _problem(7)
    lb, ub = np.zeros_like(b), np.ones_like(b)
    te = 0.05 / math.sqrt(A)
    x = cp.Variable(len(b))
    a = x - b
    parts = cp.hstack([R @ F @ a, cp.multiply(np.sqrt(e), a)])
    rough = cp.Problem(cp.Maximize(mu @ F @ a), [cp.sum(x) == 1, x >= 0,
                                                 cp.norm(parts, 2) <= te])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rough.solve(solver=cp.CLARABEL, max_iter=8)
    qp = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b)
    sol = qp.at_te(te, qp.state_near(x.value - b))
    ref = _reference(F, R, e, mu, b, lb, ub, te=te)
    assert sol is not None and sol.binding
    assert np.abs(x.value - ref).max() > 1e-4  # the rough answer was rough
    assert np.abs(b + sol.a - ref).max() < 1e-5
    _kkt_ok(F, R, e, mu, b, lb, ub, b + sol.a, sol.t)


def test_a_first_date_needs_no_interior_point_solve(monkeypatch):
    # from the benchmark (t = 0) the path is walked and jumped to the budget
    F, S, R, e, mu, b = _problem(10)
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05), len(b), F.shape[0])
    monkeypatch.setattr(opt, "_clarabel", None)  # any call would fail
    res = opt.solve(F, S, e, mu, benchmark=b)
    ref = _reference(F, R, e, mu, b, np.zeros_like(b), np.ones_like(b),
                     te=0.05 / math.sqrt(A))
    assert res.ok and res.solver_status == "exact"
    assert np.abs(res.weights - ref).max() < 1e-5
    gamma = OptimiserSpec("gamma", gamma=20.0)
    opt = ActiveOptimiser(gamma, len(b), F.shape[0])
    monkeypatch.setattr(opt, "_clarabel", None)
    res = opt.solve(F, S, e, mu, benchmark=b)
    ref = _reference(F, R, e, mu, b, np.zeros_like(b), np.ones_like(b), gamma=20.0)
    assert res.ok and res.solver_status == "exact"
    assert np.abs(res.weights - ref).max() < 1e-5


def test_problems_the_active_set_solver_does_not_take_go_to_clarabel():
    F, S, _, e, mu, b = _problem(8)
    for spec in (OptimiserSpec("tev", tev=0.04, turnover=0.2),
                 OptimiserSpec("tev", tev=0.04, cost=0.001)):
        res = ActiveOptimiser(spec, len(b), F.shape[0]).solve(F, S, e, mu, benchmark=b,
                                                             prev_weights=b)
        assert res.ok and res.solver_status == "optimal" and res.warm is None
    exposure = np.zeros(F.shape[0])
    exposure[1] = 1.0  # the market as the benchmark: no benchmark weights
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.04), len(b), F.shape[0]).solve(
        F, S, e, mu, benchmark_exposure=exposure)
    assert res.ok and res.solver_status == "optimal"
    assert KKT_TOL == 1e-9


def test_walking_the_path_piece_by_piece_stays_optimal_and_te_rises():
    # the homotopy the TE search falls back on: from the benchmark (t = 0), each
    # crossing gives the next piece's free set, optimal on the whole piece
    F, _, R, e, mu, b = _problem(9, n=30)
    lb, ub = np.zeros_like(b), np.full_like(b, 0.2)
    qp = ActiveQP(R @ F, e, F.T @ mu, lb - b, ub - b)
    state, t, last_te, pieces = qp.start_state(), 0.0, -1.0, 0
    while pieces < 200:
        piece = qp._piece(state)
        _, _, hi, j = qp._events(piece, state, t)
        mid = t + 1.0 if math.isinf(hi) else 0.5 * (t + hi)
        sol = qp._answer(piece, state, mid, False)
        assert sol is not None
        _kkt_ok(F, R, e, mu, b, lb, ub, b + sol.a, mid)
        te = math.sqrt(sol.a @ (R @ F).T @ (R @ F) @ sol.a + e @ sol.a**2)
        assert te >= last_te - 1e-15
        last_te, pieces = te, pieces + 1
        if j < 0:
            break
        state, t = qp._cross(piece, state, j, True), hi
    assert 10 < pieces < 200 and j < 0
    # the end: the highest expected active return within the bounds, a linear program
    x = cp.Variable(len(b))
    cp.Problem(cp.Maximize((F.T @ mu) @ x), [cp.sum(x) == 1, x >= lb, x <= ub]).solve(
        solver=cp.CLARABEL)
    assert np.abs(b + sol.a - x.value).max() < 1e-6


def test_exact_false_sends_every_date_to_clarabel_and_agrees():
    F, S, _, e, mu, b = _problem(11)
    spec = OptimiserSpec("tev", tev=0.04)
    exact = ActiveOptimiser(spec, len(b), F.shape[0]).solve(F, S, e, mu, benchmark=b)
    ipm = ActiveOptimiser(spec, len(b), F.shape[0], exact=False).solve(F, S, e, mu, benchmark=b)
    assert exact.solver_status == "exact" and ipm.solver_status == "optimal"
    assert np.abs(exact.weights - ipm.weights).max() < 5e-5  # Clarabel's own accuracy
    assert exact.active_return >= ipm.active_return - 1e-12


def test_a_stock_without_residual_risk_goes_to_clarabel():
    # the active-set form needs e > 0 for every asset that can move
    F, S, R, e, mu, b = _problem(12)
    e = e.copy()
    e[3] = 0.0
    res = ActiveOptimiser(OptimiserSpec("tev", tev=0.04), len(b), F.shape[0]).solve(
        F, S, e, mu, benchmark=b)
    assert res.ok and res.solver_status == "optimal" and res.warm is None
    ref = _reference(F, R, e, mu, b, np.zeros_like(b), np.ones_like(b), te=0.04 / math.sqrt(A))
    assert np.abs(res.weights - ref).max() < 5e-5
