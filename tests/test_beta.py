"""Betas and beta-neutral rebalancing: core against independent computations, UDFs, bad input."""

from __future__ import annotations

import re

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly
from hypothesis import given
from hypothesis import strategies as st

from xlfuncs import udfs
from xlfuncs.core import (
    HEDGE_TICKER,
    Labelled,
    beta_neutral,
    etf_betas,
    normalise_ticker,
    portfolio_beta,
)
from xlfuncs.errors import InfeasibleError, InputError
from xlfuncs.excel.cells import ERROR_PREFIX


def make_problem(seed: int, n: int = 15, n_held: int = 10, n_etf: int = 8, long_only=True):
    """Factor-model covariance over n assets; holdings and ETF overlap partly; orders differ."""
    rng = np.random.default_rng(seed)
    tickers = [f"S{i:02d}" for i in range(n)]
    f = rng.normal(0.8, 0.4, (n, 3)) * 0.12
    cov = f @ f.T + np.diag(rng.uniform(0.01, 0.06, n))
    cov = pd.DataFrame(cov, index=tickers, columns=tickers)
    held = list(rng.choice(tickers, n_held, replace=False))
    etf = list(rng.choice(tickers, n_etf, replace=False))
    w = rng.dirichlet(np.ones(n_held)) if long_only else rng.normal(0.1, 0.1, n_held)
    wf = rng.dirichlet(np.ones(n_etf))
    holdings = pd.Series(w, index=held)
    etf_w = pd.Series(wf, index=etf)
    order = list(rng.permutation(tickers))  # the covariance in yet another order
    return holdings, etf_w, cov.loc[order, order]


def labelled(series: pd.Series) -> Labelled:
    return Labelled(series.to_numpy(dtype=float), tuple(series.index))


def labelled_cov(cov: pd.DataFrame) -> Labelled:
    return Labelled(cov.to_numpy(dtype=float), tuple(cov.index))


def reference_betas(etf_w: pd.Series, cov: pd.DataFrame) -> pd.Series:
    """beta_i = (Sigma w_f)_i / (w_f' Sigma w_f) with pandas alignment, independent of xlfuncs."""
    wf = (etf_w / etf_w.sum()).reindex(cov.index).fillna(0.0)
    sw = cov @ wf
    return sw / float(wf @ sw)


def reference_qp(holdings, etf_w, cov, target, long_only=False, max_weight=None):
    """The reweight QP solved directly with cvxpy + Clarabel at tight tolerances."""
    beta = reference_betas(etf_w, cov)[holdings.index].to_numpy()
    sigma = cov.loc[holdings.index, holdings.index].to_numpy()
    w = holdings.to_numpy()
    x = cp.Variable(len(w))
    cons = [beta @ x == target, cp.sum(x) == w.sum()]
    if long_only:
        cons.append(x >= 0)
    if max_weight is not None:
        cons.append(x <= max_weight)
        if not long_only:
            cons.append(x >= -max_weight)
    prob = cp.Problem(cp.Minimize(cp.quad_form(x - w, sigma)), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert prob.status == cp.OPTIMAL
    d = x.value - w
    return x.value, float(d @ sigma @ d)


# --------------------------------------------------------------------------- betas


def test_betas_match_independent_formula_in_any_order():
    holdings, etf_w, cov = make_problem(1)
    got = etf_betas(labelled(etf_w), labelled_cov(cov))
    ref = reference_betas(etf_w, cov)
    assert got.labels == tuple(cov.index)
    np.testing.assert_allclose(got.values, ref[list(got.labels)].to_numpy(), rtol=1e-13)
    # the ETF itself has beta 1: weights . betas = 1
    assert float(ref[etf_w.index] @ (etf_w / etf_w.sum())) == pytest.approx(1.0, abs=1e-13)
    pb = portfolio_beta(labelled(holdings), labelled(etf_w), labelled_cov(cov))
    assert pb == pytest.approx(float(ref[holdings.index] @ holdings), rel=1e-13)


def test_etf_weights_scale_does_not_matter():
    holdings, etf_w, cov = make_problem(2)
    a = portfolio_beta(labelled(holdings), labelled(etf_w), labelled_cov(cov))
    b = portfolio_beta(labelled(holdings), labelled(etf_w * 100), labelled_cov(cov))
    assert a == pytest.approx(b, rel=1e-14)


# --------------------------------------------------------------------------- hedge


@given(seed=st.integers(0, 10_000), target=st.floats(-1.5, 1.5))
def test_hedge_reaches_target_exactly(seed, target):
    holdings, etf_w, cov = make_problem(seed, long_only=False)
    res = beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), target, "hedge")
    assert res.tickers[-1] == HEDGE_TICKER
    np.testing.assert_array_equal(res.new[:-1], holdings.to_numpy())  # holdings untouched
    after = portfolio_beta(Labelled(res.new, res.tickers), labelled(etf_w), labelled_cov(cov))
    assert abs(after - target) <= 1e-10
    assert abs(res.beta_after - target) <= 1e-10
    # the hedge line is -(beta_p - target) in the ETF
    beta_p = float(reference_betas(etf_w, cov)[holdings.index] @ holdings)
    assert res.new[-1] == pytest.approx(-(beta_p - target), abs=1e-12)


def test_hedge_on_its_own_output_resizes_the_hedge_line():
    holdings, etf_w, cov = make_problem(3)
    first = beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), 0.0)
    again = beta_neutral(Labelled(first.new, first.tickers), labelled(etf_w), labelled_cov(cov),
                         0.25)
    assert again.tickers == first.tickers  # no second hedge line
    assert again.beta_before == pytest.approx(0.0, abs=1e-12)
    assert again.new[-1] == pytest.approx(first.new[-1] + 0.25, abs=1e-12)


# --------------------------------------------------------------------------- reweight


def reference_range(holdings, etf_w, cov, long_only, max_weight):
    """Lowest and highest reachable portfolio beta, by scipy's LP (independent of xlfuncs)."""
    from scipy.optimize import linprog

    beta = reference_betas(etf_w, cov)[holdings.index].to_numpy()
    lo = 0.0 if long_only else (-max_weight if max_weight is not None else None)
    bounds = [(lo, max_weight)] * len(beta)
    ends = [linprog(s * beta, A_eq=np.ones((1, len(beta))), b_eq=[holdings.sum()],
                    bounds=bounds).fun * s for s in (1, -1)]
    return ends[0], ends[1]


@pytest.mark.parametrize(
    ("seed", "where", "long_only", "max_weight"),
    [(4, None, False, None), (5, 0.3, False, 0.4), (6, 0.2, True, None), (7, 0.5, True, 0.2),
     (8, 0.9, True, 0.25), (9, 0.05, False, 0.3), (22, 0.999, True, 0.15)],
)
def test_reweight_matches_independent_qp(seed, where, long_only, max_weight):
    holdings, etf_w, cov = make_problem(seed, long_only=long_only or seed % 2 == 0)
    if where is None:
        target = 0.0
    else:
        lo, hi = reference_range(holdings, etf_w, cov, long_only, max_weight)
        target = lo + where * (hi - lo)
    res = beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), target,
                       "reweight", long_only, max_weight)
    x_ref, tv_ref = reference_qp(holdings, etf_w, cov, target, long_only, max_weight)
    assert abs(res.beta_after - target) <= 1e-8
    after = portfolio_beta(Labelled(res.new, res.tickers), labelled(etf_w), labelled_cov(cov))
    assert abs(after - target) <= 1e-8
    assert res.new.sum() == pytest.approx(holdings.sum(), abs=1e-12)
    assert abs(res.tracking_variance - tv_ref) <= 1e-8
    assert res.tickers == tuple(holdings.index)
    np.testing.assert_allclose(res.new, x_ref, atol=1e-5)
    if long_only:
        assert (res.new >= 0).all()
    if max_weight is not None:
        assert (np.abs(res.new) <= max_weight + 1e-15).all()


def test_reweight_larger_problem_uses_the_fast_path():
    holdings, etf_w, cov = make_problem(10, n=120, n_held=80, n_etf=40)
    res = beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), 0.8,
                       "reweight", True, 0.05)
    _, tv_ref = reference_qp(holdings, etf_w, cov, 0.8, True, 0.05)
    assert res.solver in ("exact", "active-set", "clarabel+polish")
    assert abs(res.tracking_variance - tv_ref) <= 1e-8
    assert abs(res.beta_after - 0.8) <= 1e-12


def test_unreachable_long_only_target_names_the_range():
    holdings, etf_w, cov = make_problem(11)
    beta = reference_betas(etf_w, cov)[holdings.index]
    total = holdings.sum()
    lo, hi = total * beta.min(), total * beta.max()  # all in the lowest / highest beta name
    with pytest.raises(InfeasibleError) as info:
        beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), 0.0, "reweight",
                     long_only=True)
    msg = str(info.value)
    assert f"from {lo:.4g} to {hi:.4g}" in msg
    assert "long_only" in msg and "target_beta 0" in msg


def test_max_weight_too_small_for_the_total():
    holdings, etf_w, cov = make_problem(12)
    with pytest.raises(InfeasibleError, match=r"cannot hold the holdings' total weight 1"):
        beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), 0.5, "reweight",
                     True, 0.05)


def test_same_beta_everywhere_cannot_be_reweighted():
    tick = ("A", "B")
    cov = Labelled(np.array([[0.04, 0.0], [0.0, 0.04]]), tick)
    # an ETF of equal weights: both assets have beta 1
    with pytest.raises(InfeasibleError, match="same beta"):
        beta_neutral(Labelled(np.array([0.5, 0.5]), tick), Labelled(np.array([1.0, 1.0]), tick),
                     cov, 0.0, "reweight")


# --------------------------------------------------------------------------- labels


def test_share_class_spellings_are_one_ticker():
    cov = Labelled(np.array([[0.04, 0.01], [0.01, 0.09]]), ("BRK.B", "NVDA"))
    hold = Labelled(np.array([0.6, 0.4]), ("BRK B", "NVDA US"))
    etf = Labelled(np.array([0.3, 0.7]), ("NVDA", "BRK/B"))
    res = beta_neutral(hold, etf, cov)
    assert res.tickers[:2] == ("BRK B", "NVDA US")  # the holdings' own spelling comes back
    assert abs(res.beta_after) < 1e-12
    assert normalise_ticker("brk-b") == "BRK.B"


def test_ticker_missing_from_cov_is_named():
    holdings, etf_w, cov = make_problem(13)
    etf_w.index = [*etf_w.index[:-1], "ZZZ"]
    with pytest.raises(InputError, match=r"cov has no row for ZZZ \(in etf_weights\)"):
        portfolio_beta(labelled(holdings), labelled(etf_w), labelled_cov(cov))


def test_unlabelled_cov_is_refused():
    holdings, etf_w, cov = make_problem(14)
    with pytest.raises(InputError, match="cov needs tickers"):
        portfolio_beta(labelled(holdings), labelled(etf_w), Labelled(cov.to_numpy()))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.iloc.__setitem__((0, 1), c.iloc[0, 1] + 0.01), "cov is not symmetric"),
        (lambda c: c.iloc.__setitem__((2, 2), -0.01), "negative variance"),
        (lambda c: c.__setitem__(c.columns[3], np.nan), "non-finite"),
    ],
)
def test_bad_cov(mutate, message):
    holdings, etf_w, cov = make_problem(15)
    cov = cov.copy()
    mutate(cov)
    with pytest.raises(InputError, match=message):
        beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov))


def test_non_psd_cov_is_refused():
    tick = ("A", "B", "C")
    c = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]) * 0.04
    with pytest.raises(InputError, match="not positive semidefinite"):
        beta_neutral(Labelled(np.array([0.5, 0.3, 0.2]), tick),
                     Labelled(np.array([0.2, 0.3, 0.5]), tick), Labelled(c, tick))


def test_negative_weight_with_long_only_is_refused():
    holdings, etf_w, cov = make_problem(16)
    holdings.iloc[2] = -0.05
    with pytest.raises(InputError, match=rf"negative weight for {holdings.index[2]}"):
        beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), 0.5, "reweight",
                     long_only=True)


# --------------------------------------------------------------------------- worksheet functions


def cov_cells(cov: pd.DataFrame) -> list[list[object]]:
    return [[None, *cov.columns]] + [[t, *map(float, row)] for t, row in zip(
        cov.index, cov.to_numpy(), strict=True)]


def pairs(series: pd.Series, header=("ticker", "weight")) -> list[list[object]]:
    return [list(header)] + [[t, float(v)] for t, v in series.items()]


def is_error(x):
    return isinstance(x, str) and x.startswith(ERROR_PREFIX)


def test_beta_neutral_udf_spills_table_and_portfolio_beta_reads_it():
    holdings, etf_w, cov = make_problem(17)
    out = udfs.BETA_NEUTRAL(pairs(holdings), pairs(etf_w), cov_cells(cov))
    assert out[0] == ["ticker", "current weight", "new weight"]
    assert [r[0] for r in out[1:]] == [*holdings.index, HEDGE_TICKER]
    assert udfs.PORTFOLIO_BETA(out, pairs(etf_w), cov_cells(cov)) == pytest.approx(0, abs=1e-12)
    before = udfs.PORTFOLIO_BETA(pairs(holdings), pairs(etf_w), cov_cells(cov))
    assert before == pytest.approx(-out[-1][2], abs=1e-12)


def test_beta_neutral_udf_reweight_with_excel_values():
    holdings, etf_w, cov = make_problem(18)
    # percent header, TRUE as text, max weight typed as 40%, blank target
    hold = pairs(holdings * 100, ("Ticker", "Weight (%)"))
    out = udfs.BETA_NEUTRAL(hold, pairs(etf_w), cov_cells(cov), None, "Reweight", True, "40%")
    assert is_error(out) and "cannot be reached with long_only and max_weight 0.4" in out
    out = udfs.BETA_NEUTRAL(hold, pairs(etf_w), cov_cells(cov), 0.9, "reweight", "TRUE", "40%")
    x_ref, _ = reference_qp(holdings, etf_w, cov, 0.9, True, 0.4)
    np.testing.assert_allclose([r[2] for r in out[1:]], x_ref, atol=1e-5)
    assert [r[1] for r in out[1:]] == pytest.approx(list(holdings.to_numpy()), abs=1e-15)


def test_etf_betas_udf():
    _, etf_w, cov = make_problem(19)
    out = udfs.ETF_BETAS(pairs(etf_w), cov_cells(cov))
    ref = reference_betas(etf_w, cov)
    assert out[0] == ["ticker", "beta"]
    assert {r[0]: r[1] for r in out[1:]} == pytest.approx(ref.to_dict(), rel=1e-12)


MUTATIONS = {
    "blank weight": ("holdings", lambda h, e, c: h[3].__setitem__(1, None), "holdings has a blank"),
    "text weight": ("holdings", lambda h, e, c: h[2].__setitem__(1, "abc"), 'text "abc"'),
    "duplicate ticker": ("holdings", lambda h, e, c: h[2].__setitem__(0, h[1][0]), "twice"),
    "blank ticker": ("holdings", lambda h, e, c: h[2].__setitem__(0, None), "needs a ticker"),
    "N/A in etf": ("etf_weights", lambda h, e, c: e[1].__setitem__(1, "#N/A"), "#N/A"),
    "cov asym": ("cov", lambda h, e, c: c[1].__setitem__(2, c[1][2] + 0.5), "not symmetric"),
    "cov text": ("cov", lambda h, e, c: c[4].__setitem__(4, "x"), "cov has text"),
    "cov ragged": ("cov", lambda h, e, c: c.pop(), "must be square"),
    "one column": ("holdings", lambda h, e, c: [r.pop() for r in h], "ticker"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_bad_cells_give_one_readable_error(case):
    arg, mutate, message = MUTATIONS[case]
    holdings, etf_w, cov = make_problem(20)
    h, e, c = pairs(holdings), pairs(etf_w), cov_cells(cov)
    mutate(h, e, c)
    for fn in (udfs.BETA_NEUTRAL, udfs.PORTFOLIO_BETA):
        out = fn(h, e, c)
        assert is_error(out), out
        assert message in out, out
        assert "\n" not in out
    assert arg in udfs.BETA_NEUTRAL(h, e, c)


def test_fuzz_beta_udfs_from_valid_inputs():
    """Random single-cell corruptions of valid inputs: a result or one error line, never a crash."""
    rng = np.random.default_rng(7)
    junk = [None, "", "abc", "#N/A", True, -1.0, 1e300, float("nan"), "12%", -2146826246, "BRK B"]
    holdings, etf_w, cov = make_problem(21)
    for _ in range(300):
        args = [pairs(holdings), pairs(etf_w), cov_cells(cov)]
        k = int(rng.integers(3))
        grid = args[k]
        i, j = int(rng.integers(len(grid))), int(rng.integers(len(grid[0])))
        grid[i][j] = junk[int(rng.integers(len(junk)))]
        extra = [rng.choice([None, 0.0, 0.5, "x"]), rng.choice([None, "hedge", "reweight", "bad"]),
                 rng.choice([None, True, False, "maybe"]), rng.choice([None, 0.3, -1.0, "5%"])]
        out = udfs.BETA_NEUTRAL(*args, *extra)
        if isinstance(out, str):
            assert out.startswith(ERROR_PREFIX) and "unexpectedly" not in out, (args, out)
            assert re.search(r"holdings|etf_weights|cov|target_beta|method|long_only|max_weight",
                             out), out
        else:
            assert out[0][0] == "ticker" and all(np.isfinite(r[2]) for r in out[1:])


def change_variance(etf_w: pd.Series, cov: pd.DataFrame, hedge_change: float,
                    asset_change: pd.Series | None = None) -> float:
    """Variance of a change of holdings, traded asset by asset: the ETF line as its basket."""
    d = (etf_w / etf_w.sum()).reindex(cov.index).fillna(0.0) * hedge_change
    if asset_change is not None:
        d = d.add(asset_change.reindex(cov.index).fillna(0.0))
    return float(d @ cov @ d)


@pytest.mark.parametrize(("seed", "target", "long_only"),
                         [(11, 0.0, True), (12, 0.4, True), (13, -0.3, False), (14, 2.5, False)])
def test_hedge_tracking_variance_is_that_of_the_etf_basket_traded(seed, target, long_only):
    holdings, etf_w, cov = make_problem(seed, long_only=long_only)
    res = beta_neutral(labelled(holdings), labelled(etf_w), labelled_cov(cov), target)
    beta_p = float(reference_betas(etf_w, cov).reindex(holdings.index) @ holdings)
    assert res.new[-1] == pytest.approx(target - beta_p, rel=1e-12)
    expected = change_variance(etf_w, cov, res.new[-1])
    assert res.tracking_variance == pytest.approx(expected, rel=1e-10)
    assert res.tracking_error == pytest.approx(np.sqrt(expected), rel=1e-10)
    # an existing hedge line is resized: only the change counts
    with_hedge = pd.concat([holdings, pd.Series({HEDGE_TICKER: -0.25})])
    again = beta_neutral(labelled(with_hedge), labelled(etf_w), labelled_cov(cov), target)
    change = again.new[-1] - again.current[-1]
    assert change == pytest.approx(target - (beta_p - 0.25), rel=1e-12)
    assert again.tracking_variance == pytest.approx(change_variance(etf_w, cov, change),
                                                    rel=1e-10)


# --------------------------------------------------------------------------- every error,
# by its text and the argument it names

T3 = ("AAA", "BBB", "CCC")
C3 = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.02], [0.0, 0.02, 0.16]])
H3 = Labelled(np.array([0.5, 0.3, 0.2]), T3)
E3 = Labelled(np.array([0.2, 0.3, 0.5]), T3)


def changed(c: np.ndarray, i: int, j: int, value: float) -> Labelled:
    c = c.copy()
    c[i, j] = value
    return Labelled(c, T3)


def two(w, tickers=("AAA", "BBB")) -> Labelled:
    return Labelled(np.array(w, dtype=float), tickers)


HEDGE_ONLY = "applies to method reweight; hedge keeps every holding as it is"
INPUT_ERRORS = [
    ((H3, E3, Labelled(C3)), {}, "cov", "cov needs tickers (in its first row and column, e.g. "
     "from HIST_COV with a header) so assets are matched by ticker"),
    ((two([0.5, 0.5], ("AAA", "aaa")), E3, Labelled(C3, T3)), {}, "holdings",
     "holdings has the ticker AAA twice"),
    ((two([0.5, np.nan]), E3, Labelled(C3, T3)), {}, "holdings",
     "holdings has a non-finite weight for BBB"),
    ((H3, E3, Labelled(C3[:, :2], T3)), {}, "cov", "cov must be square (it is 3x2)"),
    ((H3, E3, changed(C3, 1, 2, np.inf)), {}, "cov", "cov has a non-finite value at BBB/CCC"),
    ((H3, E3, changed(C3, 0, 2, 0.005)), {}, "cov",
     "cov is not symmetric (AAA/CCC is 0.005 but CCC/AAA is 0)"),
    ((H3, E3, changed(C3, 2, 2, -0.01)), {}, "cov", "cov has a negative variance for CCC (-0.01)"),
    ((H3, two([0.5, 0.5], ("AAA", HEDGE_TICKER)), Labelled(C3, T3)), {}, "etf_weights",
     "etf_weights cannot hold the ETF (hedge) line"),
    ((H3, two([0.5, -0.5]), Labelled(C3, T3)), {}, "etf_weights",
     "etf_weights must add up to a positive total (they add up to 0)"),
    ((two([0.5, 0.5], ("AAA", "ZZZ")), E3, Labelled(C3, T3)), {}, "cov",
     "cov has no row for ZZZ (in holdings)"),
    ((two([0.5, 0.5]), Labelled(np.array([0.5, 0.3, 0.2]), ("XXX", "YYY", "CCC")),
      Labelled(C3, T3)), {}, "cov", "cov has no row for XXX (in etf_weights) and 1 more"),
    ((H3, Labelled(np.array([1.0]), ("AAA",)), Labelled(C3 * (np.arange(3) > 0)[:, None]
                                                        * (np.arange(3) > 0), T3)), {}, "cov",
     "cov gives the ETF zero variance (w' cov w = 0); its betas are undefined"),
    ((H3, E3, Labelled(C3, T3)), {"method": "neutral"}, "method",
     'method must be one of hedge, reweight (got "neutral")'),
    ((H3, E3, Labelled(C3, T3)), {"target_beta": float("nan")}, "target_beta",
     "target_beta must be a finite number"),
    ((H3, E3, Labelled(C3, T3)), {"long_only": True}, "long_only", f"long_only {HEDGE_ONLY}"),
    ((H3, E3, Labelled(C3, T3)), {"max_weight": 0.5}, "max_weight", f"max_weight {HEDGE_ONLY}"),
    ((H3, E3, Labelled(C3, T3)), {"method": "reweight", "max_weight": -0.1}, "max_weight",
     "max_weight must be a positive number (got -0.1)"),
    ((H3, E3, Labelled(C3, T3)), {"method": "reweight", "max_weight": 40}, "max_weight",
     "max_weight 40 is 4000% of the portfolio: write 0.4 or 40% for 40 percent"),
    ((Labelled(np.array([0.5, 0.7, -0.2]), T3), E3, Labelled(C3, T3)),
     {"method": "reweight", "long_only": True}, "holdings",
     "holdings has a negative weight for CCC (-0.2) but long_only is TRUE"),
]


@pytest.mark.parametrize(("args", "kwargs", "argument", "text"), INPUT_ERRORS)
def test_every_input_error_by_its_text(args, kwargs, argument, text):
    raises_exactly(text, argument, beta_neutral, *args, **kwargs)


def test_non_psd_error_names_the_eigenvalue_and_the_asset():
    c = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]) * 0.04
    vals, vecs = np.linalg.eigh(c)
    worst = T3[int(np.abs(vecs[:, 0]).argmax())]
    raises_exactly(f"cov is not positive semidefinite (eigenvalue {vals[0]:.3g}, mostly {worst}); "
                   "estimate it from one returns table, e.g. HIST_COV with ledoit-wolf", "cov",
                   beta_neutral, H3, E3, Labelled(c, T3))


def lp_range(b: np.ndarray, total: float, lo: float | None, hi: float | None):
    """Lowest and highest beta'x with sum x = total inside [lo, hi]: two LPs with scipy."""
    from scipy.optimize import linprog

    ends = [linprog(s * b, A_eq=np.ones((1, len(b))), b_eq=[total], bounds=[(lo, hi)] * len(b),
                    method="highs").fun for s in (1.0, -1.0)]
    return ends[0], -ends[1]


def test_every_infeasible_target_by_its_text():
    b = ((C3 @ E3.values) / (E3.values @ C3 @ E3.values))
    cov = Labelled(C3, T3)
    raises_exactly("long_only and max_weight 0.2 cannot hold the holdings' total weight 1 "
                   "(3 positions can sum to 0 to 0.6)", "max_weight", beta_neutral, H3, E3, cov,
                   0.5, "reweight", True, 0.2, kind=InfeasibleError)
    lo, hi = lp_range(b, 1.0, 0.0, None)
    assert (lo, hi) == pytest.approx((b.min(), b.max()), rel=1e-9)
    raises_exactly(f"target_beta -0.5 cannot be reached with long_only: the holdings' beta can "
                   f"range from {lo:.4g} to {hi:.4g}", "target_beta", beta_neutral, H3, E3, cov,
                   -0.5, "reweight", True, kind=InfeasibleError)
    lo, hi = lp_range(b, 1.0, -0.6, 0.6)
    raises_exactly(f"target_beta 5 cannot be reached with max_weight 0.6: the holdings' beta can "
                   f"range from {lo:.4g} to {hi:.4g}", "target_beta", beta_neutral, H3, E3, cov,
                   5.0, "reweight", False, 0.6, kind=InfeasibleError)
    raises_exactly("every holding has the same beta (1), so reweighting keeps the portfolio beta "
                   "at 1; use method hedge to reach target_beta 0", "target_beta", beta_neutral,
                   two([0.5, 0.5]), two([1.0, 1.0]), Labelled(np.eye(2) * 0.04, ("AAA", "BBB")),
                   0.0, "reweight", kind=InfeasibleError)


@pytest.mark.parametrize(("seed", "long_only", "cap"), [(31, True, 0.3), (32, False, 0.25)])
def test_clarabel_fallback_and_its_polish_reach_the_active_set_optimum(seed, long_only, cap):
    """The reweight's fallback (used when the active set does not settle), on its own."""
    from scipy.optimize import minimize

    from xlfuncs.core import _beta

    rng = np.random.default_rng(seed)
    n = 12
    f = rng.normal(0.8, 0.4, (n, 3)) * 0.12
    s = f @ f.T + np.diag(rng.uniform(0.01, 0.06, n))
    sn = s / np.diag(s).mean()
    b = rng.normal(1.0, 0.3, n)
    w = rng.dirichlet(np.ones(n)) if long_only else rng.normal(1 / n, 0.1, n)
    a = np.vstack([b, np.ones(n)])
    lb = np.zeros(n) if long_only else np.full(n, -cap)
    ub = np.full(n, cap)
    lo, hi = lp_range(b, w.sum(), lb[0], cap)
    rhs = np.array([lo + 0.2 * (hi - lo), w.sum()])  # a target the bounds bend the answer for
    x_cl = _beta._clarabel(sn, a, rhs, w, lb, ub)
    x_po = _beta._polish(sn, a, rhs, w, x_cl, lb, ub)
    start = _beta._kkt(sn, a, rhs, w, np.zeros(n, dtype=bool), np.empty(0))[0]
    x_as = _beta._active_set(sn, a, rhs, w, lb, ub, start)
    assert x_po is not None and x_as is not None
    assert ((np.abs(x_as - lb) < 1e-12) | (np.abs(x_as - ub) < 1e-12)).sum() >= 2  # bounds bind
    assert np.abs(x_po - x_as).max() < 1e-10
    assert np.abs(x_cl - x_as).max() < 1e-5
    assert (x_cl >= lb).all() and (x_cl <= ub).all()
    # and an independent general-purpose solver agrees
    ref = minimize(lambda x: (x - w) @ sn @ (x - w), w, jac=lambda x: 2 * sn @ (x - w),
                   constraints=[{"type": "eq", "fun": lambda x: a @ x - rhs, "jac": lambda x: a}],
                   bounds=list(zip(lb, ub, strict=True)), method="SLSQP",
                   options={"ftol": 1e-14, "maxiter": 500})
    assert np.abs(ref.x - x_po).max() < 1e-6
    # a point off the optimum is not "polished" into one
    assert _beta._polish(sn, a, rhs, w, np.clip(w, lb, ub), lb, ub) is None


def test_result_fields_and_the_edges_of_the_settings():
    cov = Labelled(C3, T3)
    hedged = beta_neutral(H3, E3, cov, 0.25)
    assert (hedged.method, hedged.solver, hedged.reachable) == ("hedge", "exact", None)
    assert hedged.current[-1] == 0.0 and hedged.tickers[-1] == HEDGE_TICKER  # a new line
    assert 0.0 <= hedged.seconds < 60.0
    assert hedged.table()[-1] == [HEDGE_TICKER, 0.0, float(hedged.new[-1])]
    # an unbounded reweight is the exact solve of its KKT system
    free = beta_neutral(H3, E3, cov, 0.8, "reweight")
    assert (free.method, free.solver) == ("reweight", "exact")
    # max_weight = 1 (100%) is a weight, not a percentage; 0 is refused
    capped = beta_neutral(H3, E3, cov, 0.8, "reweight", max_weight=1.0)
    np.testing.assert_allclose(capped.new, free.new, rtol=0, atol=1e-15)
    raises_exactly("max_weight must be a positive number (got 0)", "max_weight", beta_neutral,
                   H3, E3, cov, 0.8, "reweight", max_weight=0.0)
    raises_exactly("max_weight 1.5 is 150% of the portfolio: write 0.015 or 1.5% for 1.5 "
                   "percent", "max_weight", beta_neutral, H3, E3, cov, 0.8, "reweight",
                   max_weight=1.5)
    # a zero weight is long
    zero = beta_neutral(Labelled(np.array([0.6, 0.4, 0.0]), T3), E3, cov, 0.9, "reweight",
                        long_only=True)
    assert (zero.new >= 0).all() and zero.beta_after == pytest.approx(0.9, abs=1e-12)
    # holdings summing to 0.8: the beta every mix of same-beta assets keeps is 0.8
    raises_exactly("every holding has the same beta (1), so reweighting keeps the portfolio beta "
                   "at 0.8; use method hedge to reach target_beta 0", "target_beta", beta_neutral,
                   two([0.5, 0.3]), two([1.0, 1.0]), Labelled(np.eye(2) * 0.04, ("AAA", "BBB")),
                   0.0, "reweight", kind=InfeasibleError)


def test_an_upper_bound_alone_is_kept_by_the_active_set():
    """Long-short with a cap that only the largest position hits: the exact solve breaks it."""
    cov = Labelled(C3, T3)
    b = (C3 @ E3.values) / (E3.values @ C3 @ E3.values)
    free = beta_neutral(H3, E3, cov, 1.3, "reweight")
    cap = float(np.sort(free.new)[-1]) - 0.05
    assert cap > 0 and (free.new > -cap).all()  # only the top breaks the cap
    res = beta_neutral(H3, E3, cov, 1.3, "reweight", max_weight=cap)
    assert res.solver == "active-set"
    assert res.new.max() <= cap + 1e-15 and res.new.sum() == pytest.approx(1.0, abs=1e-14)
    assert b @ res.new == pytest.approx(1.3, abs=1e-12)
    # the capped position sits at the cap; the rest is the exact solve of the other two
    x_ref, _ = reference_qp(pd.Series(H3.values, T3), pd.Series(E3.values, T3),
                            pd.DataFrame(C3, T3, T3), 1.3, False, cap)
    np.testing.assert_allclose(res.new, x_ref, atol=1e-6)


def test_a_target_at_the_end_of_the_range_is_the_lps_vertex():
    """At the top of the reachable range only one portfolio is feasible (the LP's optimum):
    the exact and active-set solves are singular there, and Clarabel's answer is it."""
    from scipy.optimize import linprog

    b = (C3 @ E3.values) / (E3.values @ C3 @ E3.values)
    lp = linprog(-b, A_eq=np.ones((1, 3)), b_eq=[1.0], bounds=[(-0.6, 0.6)] * 3, method="highs")
    top = float(b @ lp.x)
    res = beta_neutral(H3, E3, Labelled(C3, T3), top, "reweight", max_weight=0.6)
    assert res.solver == "clarabel"
    np.testing.assert_allclose(res.new, lp.x, atol=1e-7)
    assert res.beta_after == pytest.approx(top, abs=1e-9)
    assert res.new.sum() == pytest.approx(1.0, abs=1e-9)
    d = res.new - H3.values
    assert res.tracking_variance == pytest.approx(d @ C3 @ d, rel=1e-12)


def test_inputs_as_cells_and_an_existing_hedge_line_in_a_reweight():
    cov = Labelled(C3, T3)
    ref = beta_neutral(H3, E3, cov, 0.8, "reweight")
    as_cells = beta_neutral(Labelled(H3.values.astype(object), T3),
                            Labelled(E3.values.astype(object), T3),
                            Labelled(C3.astype(object), T3), 0.8, "reweight")
    np.testing.assert_array_equal(as_cells.new, ref.new)
    assert 0.0 <= ref.seconds < 60.0
    unlabelled = "needs tickers (ticker and weight columns) so assets are matched by ticker"
    raises_exactly(f"holdings {unlabelled}", "holdings", beta_neutral, Labelled(H3.values), E3,
                   cov)
    raises_exactly(f"etf_weights {unlabelled}", "etf_weights", beta_neutral, H3,
                   Labelled(E3.values), cov)
    # a covariance in large units with rounding-level asymmetry is symmetric enough
    big = C3 * 1e6
    big[0, 1] += 1e-4
    np.testing.assert_allclose(beta_neutral(H3, E3, Labelled(big, T3), 0.8, "reweight").new,
                               ref.new, rtol=1e-9)
    # an existing hedge line is one more position: the ETF basket, with beta 1
    held = Labelled(np.array([0.5, 0.3, 0.2, -0.3]), (*T3, HEDGE_TICKER))
    res = beta_neutral(held, E3, cov, 0.2, "reweight")
    wf = E3.values / E3.values.sum()
    b = (C3 @ wf) / (wf @ C3 @ wf)
    assert b @ res.new[:3] + res.new[3] == pytest.approx(0.2, abs=1e-12)
    assert res.new.sum() == pytest.approx(0.7, abs=1e-14)
    change = res.new[:3] - held.values[:3] + (res.new[3] - held.values[3]) * wf
    assert res.tracking_variance == pytest.approx(change @ C3 @ change, rel=1e-10)
