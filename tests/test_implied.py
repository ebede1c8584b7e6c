"""The implied-correlation core: exactness against an independent conic solve, invariants."""

from __future__ import annotations

import re
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest
from errors_check import raises_exactly
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xlfuncs.core import (
    _implied,
    average_implied_correlation,
    implied_correlation,
    index_vol,
    index_vol_range,
)
from xlfuncs.data.samples import sector_example
from xlfuncs.errors import InfeasibleError, InputError


@pytest.fixture(scope="module")
def sector():
    ex = sector_example()
    return ex.weights.to_numpy(), ex.vols.to_numpy(), ex.corr.to_numpy(), ex.index_vol


def reference_nearest(w, v, s, g):
    """Independent solve of the same SDP with cvxpy + Clarabel at tight tolerances."""
    n = len(w)
    a = w * v
    c = cp.Variable((n, n), symmetric=True)
    prob = cp.Problem(
        cp.Minimize(cp.sum_squares(c - g)),
        [cp.diag(c) == 1, c >> 0, a @ c @ a == s**2],
    )
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status in ("optimal", "optimal_inaccurate")
    return c.value


def test_sector_example_matches_clarabel_entry_by_entry(sector):
    w, v, g, s = sector
    res = implied_correlation(w, v, s, g)
    ref = reference_nearest(w, v, s, g)
    assert np.abs(res.corr - ref).max() < 1e-6
    assert res.min_eigenvalue >= -1e-10
    assert np.linalg.eigvalsh(res.corr).min() >= -1e-10
    assert np.array_equal(np.diag(res.corr), np.ones(len(w)))
    assert np.array_equal(res.corr, res.corr.T)
    a = w * v
    assert abs(np.sqrt(a @ res.corr @ a) - s) / s < 1e-10
    assert res.achieved_index_vol == pytest.approx(s, rel=1e-12)


def test_sector_example_correlations_rise(sector):
    """SPEC 5: the historical correlations imply about 0.085 < 0.116, so they must rise."""
    w, v, g, s = sector
    assert index_vol(w, v, g) == pytest.approx(0.0848, abs=5e-4)
    res = implied_correlation(w, v, s, g)
    off = ~np.eye(len(w), dtype=bool)
    assert res.corr[off].mean() > g[off].mean()


def test_covariance_is_v_c_v(sector):
    w, v, g, s = sector
    res = implied_correlation(w, v, s, g)
    np.testing.assert_allclose(res.cov, np.diag(v) @ res.corr @ np.diag(v), rtol=0, atol=1e-16)
    np.testing.assert_allclose(np.sqrt(np.diag(res.cov)), v, rtol=1e-15)
    # The index variance of the covariance is the squared index vol.
    assert w @ res.cov @ w == pytest.approx(s**2, rel=1e-12)


def test_diagnostics_are_reported(sector):
    w, v, g, s = sector
    res = implied_correlation(w, v, s, g)
    d = res.diagnostics()
    assert d["method"] == "nearest"
    assert d["iterations"] == res.iterations >= 1
    assert d["objective_frobenius"] == pytest.approx(np.linalg.norm(res.corr - g), rel=1e-12)
    assert d["residual"] < 1e-12
    assert d["seconds"] > 0


def test_shift_method_closed_form(sector):
    w, v, g, s = sector
    res = implied_correlation(w, v, s, g, method="shift")
    a = w * v
    alpha = (s**2 - a @ g @ a) / (a @ g @ a - a.sum() ** 2)
    expected = (1 + alpha) * g - alpha
    np.fill_diagonal(expected, 1.0)
    assert res.alpha == pytest.approx(alpha, rel=1e-12)
    np.testing.assert_allclose(res.corr, expected, atol=1e-14)
    assert np.sqrt(a @ res.corr @ a) == pytest.approx(s, rel=1e-12)
    # The nearest solution is closer to the benchmark than the shift.
    assert implied_correlation(w, v, s, g).objective < res.objective


def test_shift_reports_leaving_the_psd_range():
    g = np.array([[1.0, 0.9, -0.5], [0.9, 1.0, -0.3], [-0.5, -0.3, 1.0]])
    g = (g + g.T) / 2
    w = np.array([0.3, 0.3, 0.4])
    v = np.array([0.2, 0.2, 0.2])
    # a low target pushes alpha > 0, above 1/(1'G^-1 1 - 1)
    lo, hi = index_vol_range(w, v)
    s = 0.02
    assert lo < s < hi
    with pytest.raises(InfeasibleError, match="shift gives an invalid correlation matrix"):
        implied_correlation(w, v, s, g, method="shift")
    res = implied_correlation(w, v, s, g)  # nearest still works
    assert res.min_eigenvalue > -1e-10


def test_average_implied_correlation_formula(sector):
    w, v, _, s = sector
    a = w * v
    expected = (s**2 - (a**2).sum()) / (a.sum() ** 2 - (a**2).sum())
    assert average_implied_correlation(w, v, s) == pytest.approx(expected, rel=1e-14)
    # The equicorrelation matrix with that rho reproduces the index vol.
    rho = average_implied_correlation(w, v, s)
    c = np.full((len(w), len(w)), rho)
    np.fill_diagonal(c, 1.0)
    assert index_vol(w, v, c) == pytest.approx(s, rel=1e-12)


def test_index_vol_outside_range_names_the_range(sector):
    w, v, g, _ = sector
    lo, hi = index_vol_range(w, v)
    assert lo == 0.0
    assert hi == pytest.approx((w * v).sum())
    with pytest.raises(InfeasibleError, match=r"index_vol 0\.4 is above the 0\.1559 reached"):
        implied_correlation(w, v, 0.4, g)
    # a dominant asset makes the bottom of the range positive
    w2 = np.array([0.8, 0.1, 0.1])
    v2 = np.array([0.3, 0.2, 0.2])
    lo2, _ = index_vol_range(w2, v2)
    assert lo2 == pytest.approx(0.24 - 0.04)
    with pytest.raises(InfeasibleError, match=r"below the lowest reachable index vol 0\.2"):
        implied_correlation(w2, v2, 0.15, np.eye(3))


def test_benchmark_need_not_be_psd():
    rng = np.random.default_rng(7)
    n = 30
    g = np.corrcoef(rng.normal(size=(40, n)), rowvar=False)
    e = rng.uniform(-0.15, 0.15, (n, n))
    g = np.clip(g + (e + e.T) / 2, -1, 1)
    np.fill_diagonal(g, 1.0)
    assert np.linalg.eigvalsh(g).min() < -0.05
    w = rng.dirichlet(np.ones(n))
    v = rng.uniform(0.1, 0.5, n)
    s = 0.6 * index_vol_range(w, v)[1]
    res = implied_correlation(w, v, s, g)
    ref = reference_nearest(w, v, s, g)
    assert np.abs(res.corr - ref).max() < 1e-6
    assert res.min_eigenvalue >= -1e-10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vols": [0.1, 0.2]}, "weights has 3 values but vols has 2"),
        ({"vols": [0.1, 0.0, 0.2]}, r"vols must be positive \(value 2 is 0\)"),
        ({"vols": [0.1, -0.2, 0.2]}, "vols must be positive"),
        ({"vols": [0.1, np.nan, 0.2]}, "vols has a non-finite value at position 2"),
        ({"corr": np.eye(2)}, "corr is 2x2 but weights has 3 values"),
        ({"corr": np.ones((3, 2))}, r"corr must be square \(it is 3x2\)"),
        ({"corr": [[1, 0.2, 0], [0.3, 1, 0], [0, 0, 1]]}, "corr is not symmetric"),
        ({"corr": [[1, 1.2, 0], [1.2, 1, 0], [0, 0, 1]]}, r"outside \[-1, 1\]"),
        ({"corr": [[0.9, 0, 0], [0, 1, 0], [0, 0, 1]]}, "corr diagonal must be 1"),
        ({"index_vol": -0.1}, "index_vol must be positive"),
        ({"index_vol": "abc"}, "index_vol must be a number"),
        ({"weights": [0, 0, 0]}, "weights are all zero"),
        ({"method": "slsqp"}, "method must be one of nearest, shift"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, message):
    args = {
        "weights": [0.5, 0.3, 0.2],
        "vols": [0.2, 0.25, 0.3],
        "index_vol": 0.2,
        "corr": np.eye(3),
    } | kwargs
    with pytest.raises(InputError, match=message):
        implied_correlation(**args)


# --------------------------------------------------------------------------- properties


@st.composite
def feasible_cases(draw):
    n = draw(st.integers(2, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    t = draw(st.integers(2, 3 * n))  # few observations: rank-deficient benchmarks too
    g = np.corrcoef(rng.normal(size=(t + 1, n)) + rng.normal() * rng.normal(size=(t + 1, 1)),
                    rowvar=False)
    if draw(st.booleans()):  # an indefinite benchmark
        e = rng.uniform(-0.2, 0.2, (n, n))
        g = np.clip(g + (e + e.T) / 2, -1, 1)
    np.fill_diagonal(g, 1.0)
    w = rng.dirichlet(np.ones(n))
    v = rng.uniform(0.05, 0.8, n)
    lo, hi = index_vol_range(w, v)
    frac = draw(st.floats(0.05, 0.95))
    s = lo + frac * (hi - lo)
    return w, v, s, g, rng


def random_feasible_point(w, v, s, rng):
    """A correlation matrix that meets the index constraint: mix a random one with I or 11'."""
    n = len(w)
    x = rng.normal(size=(n, n + 2))
    r = x @ x.T
    d = np.sqrt(np.diag(r))
    r = r / d[:, None] / d[None, :]
    a = w * v
    for e in (np.ones((n, n)), np.eye(n)):
        vr, ve = a @ r @ a, a @ e @ a
        t = (s**2 - vr) / (ve - vr)
        if 0 <= t <= 1:
            f = (1 - t) * r + t * e
            np.fill_diagonal(f, 1.0)
            return f
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feasible_cases())
def test_nearest_invariants(case):
    w, v, s, g, rng = case
    res = implied_correlation(w, v, s, g)
    c = res.corr
    a = w * v
    assert np.linalg.eigvalsh(c).min() >= -1e-10
    assert np.array_equal(np.diag(c), np.ones(len(w)))
    assert np.array_equal(c, c.T)
    assert abs(np.sqrt(a @ c @ a) - s) / s < 1e-10
    obj = np.linalg.norm(c - g)
    # no worse than the shift method, when that is valid
    try:
        shift = implied_correlation(w, v, s, g, method="shift")
    except (InfeasibleError, InputError):
        pass  # shift is undefined or leaves the valid matrices here
    else:
        assert obj <= shift.objective + 1e-9
    # no worse than another feasible point
    f = random_feasible_point(w, v, s, rng)
    if f is not None:
        assert obj <= np.linalg.norm(f - g) + 1e-9
        # variational inequality of the projection onto the feasible set
        assert np.sum((c - g) * (f - c)) >= -1e-8


@settings(max_examples=15, deadline=None)
@given(feasible_cases())
def test_nearest_matches_conic_solver(case):
    w, v, s, g, _ = case
    lo, hi = index_vol_range(w, v)
    # the conic reference is itself inaccurate next to the edges of the range: draw again
    # (returning would count the example as passed having checked nothing)
    assume(lo + 0.1 * (hi - lo) < s < hi - 0.1 * (hi - lo))
    res = implied_correlation(w, v, s, g)
    ref = reference_nearest(w, v, s, g)
    assert np.linalg.norm(res.corr - g) <= np.linalg.norm(ref - g) + 1e-7
    assert np.abs(res.corr - ref).max() < 1e-5


def test_larger_rank_deficient_case_converges():
    rng = np.random.default_rng(3)
    n, t = 150, 40
    f = rng.normal(size=(t, 3))
    r = f @ rng.normal(0.5, 0.3, (3, n)) + rng.normal(size=(t, n))
    g = np.corrcoef(r, rowvar=False)
    w = rng.lognormal(0, 1, n)
    w /= w.sum()
    v = rng.uniform(0.15, 0.6, n)
    s = 1.2 * index_vol(w, v, g)
    res = implied_correlation(w, v, s, g)
    assert res.iterations < 20
    assert res.min_eigenvalue >= -1e-10
    assert abs(res.achieved_index_vol - s) / s < 1e-10
    # Optimality of a projection onto a convex set: <C - G, F - C> >= 0 for every
    # feasible F. Checked on random feasible points (an independent certificate).
    for _ in range(20):
        f = random_feasible_point(w, v, s, rng)
        assert f is not None
        assert np.sum((res.corr - g) * (f - res.corr)) >= -1e-8


@pytest.mark.parametrize("n_positive", [0, 3, 12, 15, 16, 27, 30])
def test_jacobian_operator_matches_the_dense_hessian(n_positive):
    """The CorNewton3 operator (through the smaller eigenspace, either side) and its diagonal."""
    rng = np.random.default_rng(7)
    n = 30
    lam = np.sort(np.concatenate([-rng.uniform(0.01, 2.0, n - n_positive),
                                  rng.uniform(0.01, 2.0, n_positive)]))
    p, _ = np.linalg.qr(rng.normal(size=(n, n)))
    ah = rng.normal(size=n)
    ah /= np.linalg.norm(ah)
    dense = _implied._dense_hessian(lam, p, ah)
    jac = _implied._Jacobian(lam, p, ah)
    assert jac.k == min(n_positive, n - n_positive)
    assert jac.complement == (n_positive > n // 2)
    columns = np.column_stack([jac.apply(e) for e in np.eye(n + 1)])
    np.testing.assert_allclose(columns, dense, rtol=0, atol=1e-13)
    np.testing.assert_allclose(jac.diagonal(), np.diag(dense), rtol=0, atol=1e-13)
    # float32 factors give a float32 product (no silent promotion)
    jac32 = _implied._Jacobian(lam.astype(np.float32), p.astype(np.float32),
                               ah.astype(np.float32))
    out = jac32.apply(np.ones(n + 1, dtype=np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, dense @ np.ones(n + 1), rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def mixed_case():
    """n = 320 (mixed precision), a rank-deficient 252-day sample correlation."""
    rng = np.random.default_rng(11)
    n, t = 320, 252
    f = rng.normal(size=(t, 4))
    r = f @ rng.normal(0.5, 0.4, (4, n)) + 1.5 * rng.normal(size=(t, n))
    g = np.corrcoef(r, rowvar=False)
    w = rng.lognormal(0, 1, n)
    w /= w.sum()
    v = rng.uniform(0.15, 0.6, n)
    s = 1.2 * index_vol(w, v, g)
    assert n >= _implied.MIXED_PRECISION_FROM
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_implied, "MIXED_PRECISION_FROM", 10**9)
        double = implied_correlation(w, v, s, g)
    return w, v, s, g, double


@pytest.mark.parametrize("handoff", [None, 1e3, 0.0])
def test_mixed_precision_agrees_with_double(mixed_case, monkeypatch, handoff):
    """Single-precision global phase, any hand-over point: the double-precision answer."""
    w, v, s, g, double = mixed_case
    if handoff is not None:  # 1e3: hand over after the first step; 0: never
        monkeypatch.setattr(_implied, "HANDOFF_LEVEL", handoff)
    res = implied_correlation(w, v, s, g)
    assert np.abs(res.corr - double.corr).max() < 1e-9
    assert abs(res.objective - double.objective) <= 1e-9 * double.objective
    assert res.min_eigenvalue >= -1e-10
    assert np.array_equal(np.diag(res.corr), np.ones(len(w)))
    assert abs(res.achieved_index_vol - s) / s < 1e-10
    rng = np.random.default_rng(5)
    for _ in range(5):
        f = random_feasible_point(w, v, s, rng)
        assert np.sum((res.corr - g) * (f - res.corr)) >= -1e-8


def test_mixed_precision_spends_few_double_eigendecompositions(mixed_case, monkeypatch):
    """The cost model behind the speed: eight evaluations of the dual, three in double.

    A regression here (a float32 array silently promoted, a hand-over too late)
    shows as more double-precision eigendecompositions long before it shows in a
    benchmark on a noisy machine.
    """
    w, v, s, g, double = mixed_case
    counts = {np.dtype(np.float32): 0, np.dtype(np.float64): 0}
    evaluate = _implied._Dual.evaluate

    def counting(self, y):
        counts[self.g.dtype] += 1
        return evaluate(self, y)

    monkeypatch.setattr(_implied._Dual, "evaluate", counting)
    res = implied_correlation(w, v, s, g)
    assert counts[np.dtype(np.float64)] <= 3
    # the single-precision step that lands at the float32 floor is evaluated in double
    assert counts[np.dtype(np.float32)] + counts[np.dtype(np.float64)] <= 8
    assert np.abs(res.corr - double.corr).max() < 1e-9


# --------------------------------------------------------------------------- extreme sizes

# The problem only depends on a = w * v and s up to a common factor: every size
# of a from 1e-150 to 1e150 (as weights or as vols) has the same answer, and
# weights go further (vols beyond 1e154 are refused: their squares, the
# covariance, overflow).
SCALES = [1e-150, 1e-100, 1e-30, 1.0, 1e30, 1e100, 1e150]
WEIGHT_SCALES = [1e-250, 1e-200, 1e200, 1e250]


@pytest.fixture(scope="module")
def scaled_case(sector):
    w, v, g, s = sector
    return w, v, g, s, implied_correlation(w, v, s, g).corr


@pytest.mark.parametrize(
    ("where", "scale"),
    [("weights", x) for x in SCALES + WEIGHT_SCALES] + [("vols", x) for x in SCALES],
)
@pytest.mark.parametrize("method", ["nearest", "shift"])
def test_scaling_weights_or_vols_gives_the_same_correlation(scaled_case, scale, where, method):
    w, v, g, s, _ = scaled_case
    ref = implied_correlation(w, v, s, g, method).corr
    ws, vs = (w * scale, v) if where == "weights" else (w, v * scale)
    res = implied_correlation(ws, vs, s * scale, g, method)
    np.testing.assert_allclose(res.corr, ref, rtol=0, atol=1e-9)
    assert res.achieved_index_vol == pytest.approx(s * scale, rel=1e-9)
    assert res.residual < 1e-9
    assert np.isfinite(res.cov).all()
    assert index_vol(ws, vs, res.corr) == pytest.approx(s * scale, rel=1e-9)
    lo, hi = index_vol_range(ws, vs)
    assert lo == 0.0
    assert hi == pytest.approx(float((w * v).sum()) * scale, rel=1e-12)
    rho = average_implied_correlation(ws, vs, s * scale)
    assert rho == pytest.approx(average_implied_correlation(w, v, s), rel=1e-9)


@pytest.mark.parametrize("scale", SCALES + WEIGHT_SCALES)
def test_scaled_range_message_gives_the_scaled_range(sector, scale):
    w, v, g, _ = sector
    hi = float((w * v).sum()) * scale
    with pytest.raises(InfeasibleError, match=re.escape(f"above the {hi:.4g} reached")):
        implied_correlation(w * scale, v, 3 * hi, g)


def test_reported_extreme_magnitudes():
    c = [[1, 0.1], [0.1, 1]]
    res = implied_correlation([1e-200, 1e-200], [0.2, 0.3], 4e-201, c)
    ref = implied_correlation([1.0, 1.0], [0.2, 0.3], 0.4, c)
    np.testing.assert_allclose(res.corr, ref.corr, atol=1e-12)
    assert average_implied_correlation([1e200, 1e200], [0.2, 0.3], 3e199) == pytest.approx(
        average_implied_correlation([1, 1], [0.2, 0.3], 0.3), rel=1e-12)
    vol = index_vol([1e200, 1e200], [0.2, 0.3], c)
    assert vol == pytest.approx(1e200 * np.sqrt(0.04 + 0.09 + 2 * 0.1 * 0.06), rel=1e-12)
    # a'Ca overflowed and the benchmark came back unchanged
    big = implied_correlation([1e200, 1e200], [0.2, 0.3], 4e199, c)
    np.testing.assert_allclose(big.corr, ref.corr, atol=1e-12)
    assert big.corr[0, 1] == pytest.approx(0.25, abs=1e-12)  # 0.04 + 0.09 + 0.12 c = 0.16


def test_index_vol_too_large_to_represent():
    with pytest.raises(InputError, match="too large"):
        index_vol([1e300, 1e300], [1e10, 1e10], np.eye(2))


def test_vols_whose_square_overflows_are_refused():
    with pytest.raises(InputError, match="vols"):
        implied_correlation([1e-200, 1e-200], [1e200, 2e200], 2e0, np.eye(2))


# --------------------------------------------------------------------------- one asset


def test_one_asset_matching_index_vol_gives_unit_matrix():
    res = implied_correlation([1.0], [0.2], 0.2, [[1.0]])
    assert res.corr.tolist() == [[1.0]]
    assert res.cov == pytest.approx(np.array([[0.04]]))
    assert res.achieved_index_vol == pytest.approx(0.2)
    assert implied_correlation([-0.5], [0.4], 0.2 * (1 + 1e-10), [[1.0]]).corr.tolist() == [[1.0]]
    assert implied_correlation([1.0], [0.2], 0.2, [[1.0]], method="shift").corr.tolist() == [[1.0]]


def test_one_asset_other_index_vol_is_explained():
    with pytest.raises(InfeasibleError) as info:
        implied_correlation([1.0], [0.2], 0.25, [[1.0]])
    assert str(info.value) == ("index_vol 0.25 cannot be reached with one asset: the index vol "
                               "is then weight x vol = 0.2")
    assert info.value.argument == "index_vol"


def test_one_asset_average_correlation_is_undefined():
    with pytest.raises(InputError, match="at least two assets"):
        average_implied_correlation([1.0], [0.2], 0.2)
    with pytest.raises(InputError, match="at least two assets"):
        average_implied_correlation([1.0, 0.0], [0.2, 0.3], 0.2)


# --------------------------------------------------------------------------- negative weights


def test_average_correlation_range_with_a_negative_weight():
    w, v = [0.7, -0.3, 0.6], [0.2, 0.3, 0.25]
    a = np.array(w) * np.array(v)
    at_one = abs(a.sum())  # rho = 1
    at_low = np.sqrt((a @ a) - 0.5 * (a.sum() ** 2 - a @ a))  # rho = -1/2
    lo, hi = sorted((at_one, at_low))
    with pytest.raises(InfeasibleError) as info:
        average_implied_correlation(w, v, 0.1)
    assert str(info.value) == (
        f"index_vol 0.1 is outside the {lo:.4g} to {hi:.4g} an equal correlation can give")
    assert lo < hi
    for s, rho in ((lo, 1.0), (hi, -0.5)):
        assert average_implied_correlation(w, v, s) == pytest.approx(rho, abs=1e-12)


def test_average_correlation_with_cancelling_cross_terms():
    # (sum a)^2 == sum a^2: the index vol does not depend on the correlation
    with pytest.raises(InputError, match="cross terms cancel"):
        average_implied_correlation([1.0, 1.0, -0.5], [0.2, 0.2, 0.2], 0.3)


def test_only_one_weighted_asset():
    g = np.array([[1.0, 0.3, 0.9], [0.3, 1.0, 0.9], [0.9, 0.9, 1.0]])  # indefinite
    assert np.linalg.eigvalsh(g).min() < 0
    with pytest.raises(InfeasibleError, match=r"index_vol 0\.12 cannot be reached with only one "
                       r"asset weighted: the index vol is then weight x vol = 0\.1"):
        implied_correlation([0.5, 0.0, 0.0], [0.2, 0.3, 0.2], 0.12, g)
    # the index vol then says nothing about correlations: the nearest correlation matrix
    res = implied_correlation([0.5, 0.0, 0.0], [0.2, 0.3, 0.2], 0.1, g)
    ref = reference_nearest(np.array([0.5, 0, 0]), np.array([0.2, 0.3, 0.2]), 0.1, g)
    assert np.abs(res.corr - ref).max() < 1e-6
    assert res.min_eigenvalue > -1e-10
    with pytest.raises(InputError, match='use method "nearest"'):
        implied_correlation([0.5, 0.0, 0.0], [0.2, 0.3, 0.2], 0.1, g, method="shift")


def test_index_vol_at_the_ends_of_its_range():
    with pytest.raises(InfeasibleError, match=r"index_vol 0\.2 is the top of its range, reached "
                       "only with all correlations at 1"):
        implied_correlation([0.5, 0.5], [0.2, 0.2], 0.2, np.eye(2))
    # a positive bottom is reached by one matrix; with an unweighted asset it is refused
    with pytest.raises(InfeasibleError, match=r"at the bottom of its range \(0\.2\)"):
        implied_correlation([0.8, 0.1, 0.1, 0.0], [0.3, 0.2, 0.2, 0.2], 0.2, np.eye(4))


def test_positive_bottom_of_the_range_is_the_one_singular_matrix():
    """At s = 2 max(a) - sum(a) > 0 the only feasible matrix is u u' (u = +1, -1, ..., -1)."""
    res = implied_correlation([0.8, 0.1, 0.1], [0.3, 0.2, 0.2], 0.2, np.eye(3))
    u = np.array([1.0, -1.0, -1.0])
    np.testing.assert_allclose(res.corr, np.outer(u, u), rtol=0, atol=1e-9)
    assert res.achieved_index_vol == pytest.approx(0.2, rel=1e-10)


def _solve_near_bottom(w, v, s, g, max_iterations):
    """Solve, and check the constraints, the iteration count and optimality."""
    res = implied_correlation(w, v, s, g)
    a = w * v
    assert res.iterations <= max_iterations
    assert np.linalg.eigvalsh(res.corr).min() >= -1e-10
    assert np.array_equal(np.diag(res.corr), np.ones(len(w)))
    assert abs(np.sqrt(a @ res.corr @ a) - s) / s < 1e-10
    f = random_feasible_point(w, v, s, np.random.default_rng(2))
    if f is not None:
        assert np.sum((res.corr - g) * (f - res.corr)) >= -1e-8
    return res


@pytest.fixture(scope="module")
def dominant_case():
    rng = np.random.default_rng(1)
    n = 8
    w = np.concatenate([[0.7], 0.3 * rng.dirichlet(np.ones(n - 1))])
    v = rng.uniform(0.1, 0.4, n)
    g = np.corrcoef(rng.normal(size=(40, n)), rowvar=False)
    return w, v, g


@pytest.mark.parametrize("frac", [0.1, 1e-3, 1e-6, 1e-9, 0.0])
def test_dominant_weight_converges_down_to_the_bottom(dominant_case, frac):
    w, v, g = dominant_case
    lo, hi = index_vol_range(w, v)
    assert lo > 0.1
    res = _solve_near_bottom(w, v, lo + frac * (hi - lo), g, max_iterations=20)
    # the bottom is approached by u u': correlation -1 to the dominant asset, +1 otherwise
    u = -np.ones(len(w))
    u[0] = 1.0
    dist = np.abs(res.corr - np.outer(u, u)).max()
    assert dist < 1e-8 if frac == 0.0 else dist > 0


@pytest.mark.parametrize(("n_small", "frac"),
                         [(3, 1e-3), (3, 1e-4), (3, 1e-5), (23, 1e-3), (23, 1e-4)])
def test_positive_bottom_with_small_weights_converges(n_small, frac):
    """Weights of 1e-3 to 1e-6 next to a dominant one: the diagonal rows need scaling too.

    10 assets (dense Newton systems) and 30 (conjugate gradients).
    """
    rng = np.random.default_rng(1)
    w = np.concatenate([[0.6, 0.12, 0.1, 0.08, 0.05, 0.03, 0.01],
                        np.geomspace(1e-3, 1e-5 if n_small == 3 else 1e-6, n_small)])
    v = rng.uniform(0.1, 0.4, w.size)
    g = np.corrcoef(rng.normal(size=(30 if n_small == 3 else 60, w.size)), rowvar=False)
    lo, hi = index_vol_range(w, v)
    assert lo > 0.039
    _solve_near_bottom(w, v, lo + frac * (hi - lo), g, max_iterations=60)


def test_index_row_held_to_its_rounding_level_at_a_millionth_of_the_top():
    """A random 20-asset case at s = 1e-6 hi: the index row's stopping level.

    Held to 1e-11 relative, or to a floor that ignored ||X|| (~1e6 here), it
    ended in ConvergenceError; the floor is the rounding of evaluating a'Ca.
    """
    rng = np.random.default_rng(2)
    n = int(rng.integers(3, 24))
    t = int(rng.integers(2, 3 * n))
    g = np.corrcoef(rng.normal(size=(t + 1, n)) + rng.normal() * rng.normal(size=(t + 1, 1)),
                    rowvar=False)
    if rng.random() < 0.5:
        e = rng.uniform(-0.2, 0.2, (n, n))
        g = np.clip(g + (e + e.T) / 2, -1, 1)
    np.fill_diagonal(g, 1.0)
    w = rng.dirichlet(np.ones(n) * rng.choice([0.2, 1, 5]))
    if rng.random() < 0.2:
        w[rng.integers(n)] = -0.3 * rng.random()
    v = rng.uniform(0.05, 0.8, n)
    lo, hi = index_vol_range(w, v)
    assert (n, lo) == (20, 0.0)
    s = 1e-6 * hi
    res = implied_correlation(w, v, s, g)
    a = w * v
    assert np.linalg.eigvalsh(res.corr).min() >= -1e-10
    eps = np.finfo(float).eps
    assert abs(np.sqrt(a @ res.corr @ a) - s) / s <= 4 * eps * (hi / s) ** 2


def _synthetic(n, seed=3, t=252):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(t, 4))
    r = f @ rng.normal(0.5, 0.4, (4, n)) + 1.5 * rng.normal(size=(t, n))
    w = rng.lognormal(0, 1, n)
    return w / w.sum(), rng.uniform(0.15, 0.6, n), np.corrcoef(r, rowvar=False)


# The README's accuracy statement, measured on these cases: index vol from half
# its top down to 1e-6 of it (the bottom of the range is 0 in all of them).
SWEEP = [0.5, 0.1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
README_CASES = [(11, f) for f in SWEEP] + [(30, f) for f in SWEEP] + [
    (100, f) for f in SWEEP] + [(320, 1e-3), (320, 1e-6)]


def _readme_bounds():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("Measured accuracy"):]
    eig = float(re.search(r"min eigenvalue ≥ \u2212(\S+) ", section)[1])
    factor = float(re.search(r"relative (\S+)·eps·\(hi/s\)²", section)[1])
    iters = int(re.search(r"at most (\d+) at 10⁻⁶·hi", section)[1])
    return eig, factor, iters


@pytest.fixture(scope="module")
def readme_measurements(sector):
    w11, v11, g11, _ = sector
    inputs = {11: (w11, v11, g11)} | {n: _synthetic(n) for n in (30, 100, 320)}
    out = []
    for n, frac in README_CASES:
        w, v, g = inputs[n]
        lo, hi = index_vol_range(w, v)
        assert lo == 0.0
        s = frac * hi
        res = implied_correlation(w, v, s, g)
        a = w * v
        out.append((n, frac, hi / s, res, abs(np.sqrt(a @ res.corr @ a) - s) / s,
                    np.linalg.eigvalsh(res.corr).min()))
    return out


def test_sector_case_converges_down_to_a_millionth_of_the_top(readme_measurements):
    """Issue 16: s = 1e-4 (the range is 0 to 0.1559) ended in ConvergenceError."""
    for n, frac, _, res, rel, min_eig in readme_measurements:
        assert min_eig >= -1e-10, (n, frac)
        assert np.array_equal(np.diag(res.corr), np.ones(n))
        assert res.iterations <= 50, (n, frac)
        if frac >= 1e-3:  # SPEC 3.1: 1e-10, where a'Ca can be computed that well
            assert rel < 1e-10, (n, frac)


def test_sector_case_at_the_index_vol_of_the_issue(sector):
    w, v, g, _ = sector
    res = implied_correlation(w, v, 1e-4, g)
    a = w * v
    assert abs(np.sqrt(a @ res.corr @ a) - 1e-4) / 1e-4 < 1e-8
    assert res.iterations <= 30
    # nearer the bottom the answer changes continuously: s 1% higher, a nearby matrix
    near = implied_correlation(w, v, 1.01e-4, g)
    assert 0 < np.abs(near.corr - res.corr).max() < 1e-2


def test_readme_accuracy_statement_holds(readme_measurements):
    eig_bound, factor, max_iters = _readme_bounds()
    eps = np.finfo(float).eps
    for n, frac, ratio, res, rel, min_eig in readme_measurements:
        assert min_eig >= -eig_bound, (n, frac)
        assert rel <= max(factor * eps * ratio**2, 1e-15), (n, frac)
        assert res.iterations <= max_iters, (n, frac)


def test_index_vol_of_singular_and_indefinite_corr():
    assert index_vol([1.0, 1.0], [0.1, 0.1], [[1.0, -1.0], [-1.0, 1.0]]) == 0.0
    indefinite = np.full((3, 3), -0.9)
    np.fill_diagonal(indefinite, 1.0)
    with pytest.raises(InputError, match="corr gives a negative index variance"):
        index_vol([1.0, 1.0, 1.0], [0.1, 0.1, 0.1], indefinite)


@pytest.mark.parametrize(
    ("weights", "vols", "s", "message"),
    [
        ([1.98, 9.66, 88.36], [0.15, 0.13, 0.19], 0.116, "weights sum to 100: index weights"),
        ([0.2, 0.3, 0.5], [15.0, 12.7, 19.0], 0.116, r"vols look like percent \(12\.7 and up\)"),
    ],
)
def test_check_units_refuses_percent_typed_as_numbers(weights, vols, s, message):
    from xlfuncs.core import check_units

    with pytest.raises(InputError, match=message):
        check_units(weights, vols, s)


def test_check_units_accepts_what_analysts_type(sector):
    from xlfuncs.core import check_units

    w, v, _, s = sector
    check_units(w, v, s)
    check_units(w * 0.6, v, s)  # a part of the index
    check_units(w, v * 100, s * 100)  # both in percent
    check_units([0.7, -0.3, 0.6], [0.2, 0.3, 0.25])  # a long-short basket


def test_average_correlation_stays_a_correlation_at_the_ends():
    """Issue 16: ([0.6, 0.6, -0.2], [0.2]*3, 0.2) gave 1.0000000000000016."""
    from xlfuncs import udfs

    assert udfs.IMPLIED_AVG_CORR([0.6, 0.6, -0.2], [0.2, 0.2, 0.2], 0.2) == 1.0
    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(2, 15))
        w, v = rng.dirichlet(np.ones(n)), rng.uniform(0.05, 0.6, n)
        a = w * v
        for rho in (1.0, -1.0 / (n - 1)):
            s = np.sqrt(a @ a + rho * (a.sum() ** 2 - a @ a))
            got = average_implied_correlation(w, v, s)
            assert -1.0 / (n - 1) <= got <= 1.0
            assert got == pytest.approx(rho, abs=1e-12)
    with pytest.raises(InfeasibleError, match=r"index_vol 0\.21 is outside the .* to 0\.2 an"):
        average_implied_correlation([0.6, 0.6, -0.2], [0.2, 0.2, 0.2], 0.21)


# --------------------------------------------------------------------------- every error,
# by its text and the argument it names

W3, V3 = [0.5, 0.3, 0.2], [0.2, 0.3, 0.25]  # weights x vols a = (0.1, 0.09, 0.05)
G3 = np.array([[1, 0.3, 0.2], [0.3, 1, 0.4], [0.2, 0.4, 1.0]])


def with_entry(c, i, j, value, both=False):
    c = np.array(c, dtype=float)
    c[i, j] = value
    if both:
        c[j, i] = value
    return c


IMPLIED_INPUT_ERRORS = [
    (([[0.5, 0.3], [0.2, 0.1]], V3, 0.2, G3), {}, "weights",
     "weights must be a single row or column of numbers"),
    ((["x", 0.3, 0.2], V3, 0.2, G3), {}, "weights", "weights must be numbers"),
    (([0.5, np.nan, 0.2], V3, 0.2, G3), {}, "weights",
     "weights has a non-finite value at position 2"),
    ((W3, V3, "abc", G3), {}, "index_vol", "index_vol must be a number"),
    ((W3, V3, float("nan"), G3), {}, "index_vol", "index_vol must be a finite number"),
    ((W3, V3, -0.1, G3), {}, "index_vol", "index_vol must be positive (it is -0.1)"),
    ((W3, V3, 0.2, [["a"]]), {}, "corr", "corr must be a matrix of numbers"),
    ((W3, V3, 0.2, G3[:2]), {}, "corr", "corr must be square (it is 2x3)"),
    ((W3, V3, 0.2, G3[:2, :2]), {}, "corr", "corr is 2x2 but weights has 3 values"),
    ((W3, V3, 0.2, with_entry(G3, 1, 2, np.nan)), {}, "corr",
     "corr has a non-finite value at row 2, column 3"),
    ((W3, V3, 0.2, with_entry(G3, 1, 1, 0.9)), {}, "corr",
     "corr diagonal must be 1 (row 2, column 2 is 0.9)"),
    ((W3, V3, 0.2, with_entry(G3, 1, 2, 0.5)), {}, "corr",
     "corr is not symmetric (row 2, column 3 is 0.5 but row 3, column 2 is 0.4)"),
    ((W3, V3, 0.2, with_entry(G3, 1, 2, 1.5, both=True)), {}, "corr",
     "corr has 1.5 at row 2, column 3, outside [-1, 1]"),
    ((W3, V3[:2], 0.2, G3), {}, "weights", "weights has 3 values but vols has 2"),
    ((W3, [0.2, -0.1, 0.2], 0.2, G3), {}, "vols", "vols must be positive (value 2 is -0.1)"),
    (([0, 0, 0], V3, 0.2, G3), {}, "weights", "weights are all zero"),
    ((W3, V3, 0.2, G3), {"method": "magic"}, "method",
     "method must be one of nearest, shift (got 'magic')"),
    ((W3, V3, 0.2, G3), {"labels": ("A", "B")}, "labels", "labels has 2 entries but weights has 3"),
    ((W3, [1e200, 0.2, 0.2], 0.2, G3), {}, "vols", "vols has 1e+200, whose square (a variance) "
     "is out of range; give vols as fractions, e.g. 0.15 for 15%"),
    ((W3, V3, 0.2, np.ones((3, 3))), {"method": "shift"}, "corr",
     "corr already has every weighted correlation at 1; shift is undefined"),
    (([1.0, 0, 0], V3, 0.2, G3), {"method": "shift"}, "method",
     'with only one asset weighted the shift is undefined; use method "nearest"'),
]


@pytest.mark.parametrize(("args", "kwargs", "argument", "text"), IMPLIED_INPUT_ERRORS)
def test_every_input_error_by_its_text(args, kwargs, argument, text):
    raises_exactly(text, argument, implied_correlation, *args, **kwargs)


def test_every_other_error_by_its_text():
    a = np.array(W3) * np.array(V3)
    raises_exactly("weights sum to 100: index weights are fractions (0.0198 for 1.98%); divide "
                   "them by 100 or type them as percentages", "weights",
                   _implied.check_units, [50, 30, 20], V3, 0.2)
    raises_exactly("vols look like percent (20 and up) but index_vol 0.2 is a fraction: give "
                   "both in the same units (0.15 for 15%)", "vols",
                   _implied.check_units, W3, [20, 30, 25], 0.2)
    bad = np.array([[1, -0.9, -0.9], [-0.9, 1, -0.9], [-0.9, -0.9, 1]])
    var = (np.full(3, 0.2 / 3)) @ bad @ np.full(3, 0.2 / 3)
    raises_exactly(f"corr gives a negative index variance ({var:.3g}): it is not positive "
                   "semidefinite", "corr", index_vol, [1 / 3] * 3, [0.2] * 3, bad)
    raises_exactly("weights x vols are too large: the index vol overflows", "weights",
                   index_vol, [1e200, 1e200, 1], [1e200, 1e200, 1], G3)
    raises_exactly("weights must give weight to at least two assets", "weights",
                   average_implied_correlation, [1, 0, 0], V3, 0.2)
    raises_exactly("weights x vols make the index vol the same for every average correlation "
                   "(their cross terms cancel)", "weights",
                   average_implied_correlation, [1, 1, -0.5], [0.2] * 3, 0.2)
    # an equal correlation runs from -1/(n-1) to 1
    lo = np.sqrt(a @ a - 0.5 * (a.sum() ** 2 - a @ a))
    raises_exactly(f"index_vol 0.5 is outside the {lo:.4g} to {a.sum():.4g} an equal "
                   "correlation can give", "index_vol", average_implied_correlation, W3, V3, 0.5,
                   kind=InfeasibleError)
    raises_exactly(f"index_vol 0.5 is above the {a.sum():.4g} reached with all correlations "
                   "at 1", "index_vol", implied_correlation, W3, V3, 0.5, G3,
                   kind=InfeasibleError)
    raises_exactly("index_vol 0.3 cannot be reached with one asset: the index vol is then "
                   "weight x vol = 0.2", "index_vol", implied_correlation, [1.0], [0.2], 0.3,
                   [[1.0]], kind=InfeasibleError)
    indefinite = np.array([[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]])
    raises_exactly(f"shift gives an invalid correlation matrix: corr itself is not positive "
                   f"semidefinite (min eigenvalue {np.linalg.eigvalsh(indefinite)[0]:.3g}); use "
                   'method "nearest"', "method", implied_correlation, [1 / 3] * 3, [0.3] * 3, 0.2,
                   indefinite, method="shift", kind=InfeasibleError)
    # (1 + alpha) G - alpha 11' stays PSD up to alpha = 1 / (1'G^-1 1 - 1) (SPEC 3.1)
    g = np.array([[1, -0.4, 0], [-0.4, 1, 0], [0, 0, 1.0]])
    b = np.full(3, 0.1)
    alpha = (0.02**2 - b @ g @ b) / (b @ g @ b - b.sum() ** 2)
    amax = 1 / (np.ones(3) @ np.linalg.solve(g, np.ones(3)) - 1)
    raises_exactly(f"shift gives an invalid correlation matrix: alpha {alpha:.4g} is above the "
                   f'{amax:.4g} that keeps it positive semidefinite; use method "nearest"',
                   "method", implied_correlation, [1 / 3] * 3, [0.3] * 3, 0.02, g,
                   method="shift", kind=InfeasibleError)
