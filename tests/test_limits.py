"""Policy limits in the optimiser and the backtest (SPEC 3.6): industry and factor limits."""

from __future__ import annotations

import re

import cvxpy as cp
import factor_reference
import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly

from xlfuncs.cli import main
from xlfuncs.core import BacktestConfig, run_backtest
from xlfuncs.core._optimise import ActiveOptimiser, OptimiserSpec, sector_weights
from xlfuncs.data.market import load_market
from xlfuncs.errors import InfeasibleError, InputError

PPY = 12
FACTORS = ("Mkt-RF", "SMB", "HML")


def make_inputs(seed=0, n=30, k=3):
    rng = np.random.default_rng(seed)
    f_mat = np.vstack([rng.normal(0.0, 0.004, n), rng.normal(1.0, 0.4, n),
                       rng.normal(0.0, 0.5, (k - 1, n))])
    a = rng.normal(0.0, 0.02, (k, k))
    sf = np.zeros((k + 1, k + 1))
    sf[1:, 1:] = a @ a.T / k + np.diag(rng.uniform(1e-4, 4e-4, k))
    mu = np.r_[1.0, rng.normal(0.004, 0.003, k)]
    return f_mat, sf, rng.uniform(0.001, 0.006, n), mu, rng.lognormal(0.0, 1.0, n)


@pytest.fixture(scope="module")
def inputs():
    return make_inputs()


def direct(f_mat, sf, e, mu, b, tev, extra):
    """The problem on the n x n covariance, with the limits written out independently."""
    s = f_mat.T @ sf @ f_mat + np.diag(e)
    w = cp.Variable(len(b))
    cons = [cp.sum(w) == 1, w >= 0, cp.quad_form(w - b, cp.psd_wrap(s)) <= tev**2 / PPY,
            *extra(w)]
    prob = cp.Problem(cp.Maximize(mu @ f_mat @ (w - b)), cons)
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status == cp.OPTIMAL
    return float(prob.value)


def industry_weights(w, ind, k):
    return np.array([w[ind == j].sum() for j in range(k)])


def test_industry_limit_in_stock_mode(inputs):
    f_mat, sf, e, mu, caps = inputs
    k, limit = 5, 0.01
    ind = np.arange(30) % k
    b = caps / caps.sum()
    free = ActiveOptimiser(OptimiserSpec("tev", tev=0.04), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    assert np.abs(industry_weights(free.weights - b, ind, k)).max() > 2 * limit  # it binds
    spec = OptimiserSpec("tev", tev=0.04, industry_limit=limit)
    res = ActiveOptimiser(spec, 30, 4, k).solve(f_mat, sf, e, mu, benchmark=b, industries=ind)
    assert res.ok
    active = industry_weights(res.weights - b, ind, k)
    assert np.abs(active).max() <= limit + 1e-7
    onehot = np.eye(k)[ind]
    ref = direct(f_mat, sf, e, mu, b, 0.04,
                 lambda w: [cp.abs(onehot.T @ (w - b)) <= limit])
    assert res.active_return == pytest.approx(ref, rel=1e-5)
    assert res.active_return < free.active_return


def test_per_industry_limits_by_name(inputs):
    f_mat, sf, e, mu, caps = inputs
    ind = np.arange(30) % 3
    names = ("Energy", "Finance", "Tech")
    b = caps / caps.sum()
    spec = OptimiserSpec("tev", tev=0.05, industry_limit=0.2, industry_limits={"tech": 0.0})
    res = ActiveOptimiser(spec, 30, 4, 3).solve(f_mat, sf, e, mu, benchmark=b, industries=ind,
                                                industry_names=names)
    active = industry_weights(res.weights - b, ind, 3)
    assert abs(active[2]) <= 1e-7 and np.abs(active).max() <= 0.2 + 1e-7


def test_industry_limit_in_sector_mode(inputs):
    f_mat, sf, e, mu, caps = inputs
    k = 4
    ind = np.arange(30) % k
    spec = OptimiserSpec("sector", tev=0.05, industry_limit=0.02)
    res = ActiveOptimiser(spec, 30, 4, k).solve(f_mat, sf, e, mu, caps=caps, industries=ind)
    _, u_b = sector_weights(caps, ind, k)
    assert res.ok and np.abs(res.industry_weights - u_b).max() <= 0.02 + 1e-7
    assert np.abs(industry_weights(res.weights, ind, k) - u_b).max() <= 0.02 + 1e-7


def test_factor_bounds_and_neutrality(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    spec = OptimiserSpec("tev", tev=0.05, factor_bounds={"smb": (-0.05, 0.05),
                                                         "Mkt-RF": (-0.02, 0.0)})
    res = ActiveOptimiser(spec, 30, 4, factor_names=FACTORS).solve(f_mat, sf, e, mu,
                                                                    benchmark=b)
    f = f_mat @ (res.weights - b)
    assert -0.02 - 1e-7 <= f[1] <= 1e-7 and abs(f[2]) <= 0.05 + 1e-7
    ref = direct(f_mat, sf, e, mu, b, 0.05, lambda w: [
        f_mat[1] @ (w - b) >= -0.02, f_mat[1] @ (w - b) <= 0,
        cp.abs(f_mat[2] @ (w - b)) <= 0.05])
    assert res.active_return == pytest.approx(ref, rel=1e-5)
    neutral = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, factor_neutral=True), 30, 4).solve(
        f_mat, sf, e, mu, benchmark=b)
    np.testing.assert_allclose(f_mat[1:] @ (neutral.weights - b), 0.0, atol=1e-7)


def test_infeasible_limits_are_named_with_the_date(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    spec = OptimiserSpec("tev", tev=0.05, factor_bounds={"HML": (5.0, 6.0)})
    opt = ActiveOptimiser(spec, 30, 4, factor_names=FACTORS)
    with pytest.raises(InputError, match=r"2001-01-31: factor_bounds: the active exposure to HML "
                                         r"cannot be within 5 to 6 \(the weight bounds allow "):
        opt.solve(f_mat, sf, e, mu, benchmark=b, date=pd.Timestamp("2001-01-31"))
    # an industry whose stocks are not tradable cannot come within 1% of its benchmark weight
    ind = np.arange(30) % 3
    tradable = ind != 1
    spec = OptimiserSpec("tev", tev=0.05, industry_limit=0.01)
    u_b = b[ind == 1].sum()
    raises_exactly(f"industry_limit admits no portfolio within the weight bounds: Finance has no "
                   f"tradable stock but {u_b:.4g} of the benchmark; raise it", "industry_limit",
                   ActiveOptimiser(spec, 30, 4, 3).solve, f_mat, sf, e, mu, benchmark=b,
                   industries=ind, tradable=tradable, industry_names=("Energy", "Finance", "Tech"))
    # without names the industry is numbered from 1
    raises_exactly(f"industry_limit admits no portfolio within the weight bounds: industry 2 has "
                   f"no tradable stock but {u_b:.4g} of the benchmark; raise it", "industry_limit",
                   ActiveOptimiser(spec, 30, 4, 3).solve, f_mat, sf, e, mu, benchmark=b,
                   industries=ind, tradable=tradable)


def test_an_industry_beyond_the_weight_bounds_is_named_by_its_setting(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    ind = np.arange(30) % 3
    tradable = ~((ind == 0) & (np.arange(30) > 6))  # Energy keeps 3 stocks, at most 0.3 at 0.1
    assert b[ind == 0].sum() > 0.3 + 0.05
    text = "{} admits no portfolio within the weight bounds; raise it"
    for kw, setting in (({"industry_limit": 0.05}, "industry_limit"),
                        ({"industry_limits": {"energy": 0.05}}, "industry_limits")):
        spec = OptimiserSpec("tev", tev=0.05, max_weight=0.1, **kw)
        raises_exactly(text.format(setting), setting, ActiveOptimiser(spec, 30, 4, 3).solve,
                       f_mat, sf, e, mu, benchmark=b, industries=ind, tradable=tradable,
                       industry_names=("Energy", "Finance", "Tech"))
    # sector mode: three industries at most 0.34 each cannot all be within 0.01 of the caps'
    spec = OptimiserSpec("sector", tev=0.05, industry_limit=0.01, max_weight=0.34)
    raises_exactly(text.format("industry_limit"), "industry_limit",
                   ActiveOptimiser(spec, 30, 4, 3).solve, f_mat, sf, e, mu, caps=caps,
                   industries=ind)


def test_an_unreachable_factor_bound_is_named_with_the_reachable_range(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    # long-only weights summing to 1 reach the exposures of single assets, and no further
    spec = OptimiserSpec("tev", tev=0.05, factor_bounds={"SMB": (-0.05, 0.05), "HML": (5.0, 6.0)})
    hml = f_mat[3] - f_mat[3] @ b
    raises_exactly(f"factor_bounds: the active exposure to HML cannot be within 5 to 6 (the weight "
                   f"bounds allow {hml.min():.4g} to {hml.max():.4g})", "factor_bounds",
                   ActiveOptimiser(spec, 30, 4, factor_names=FACTORS).solve, f_mat, sf, e, mu,
                   benchmark=b)
    # two tradable assets cannot be neutral to every factor; unnamed factors are numbered
    tradable = np.zeros(30, dtype=bool)
    tradable[:2] = True
    mkt = f_mat[1, :2] - f_mat[1] @ b  # the untradable part of the benchmark stays in it
    raises_exactly(f"factor_neutral: the active exposure to factor 1 cannot be within 0 to 0 (the "
                   f"weight bounds allow {mkt.min():.4g} to {mkt.max():.4g})", "factor_neutral",
                   ActiveOptimiser(OptimiserSpec("tev", tev=0.05, factor_neutral=True), 30,
                                   4).solve, f_mat, sf, e, mu, benchmark=b, tradable=tradable)


def test_limits_that_hold_alone_but_not_together_are_named_together(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    ind = np.arange(30) % 3
    smb = f_mat[2] - f_mat[2] @ b  # active SMB exposure of all weight in one asset
    # industries held at the benchmark's weights reach at most the best stock per industry
    within = sum(b[ind == j].sum() * smb[ind == j].max() for j in range(3))
    assert within < smb.max() - 0.05
    spec = OptimiserSpec("tev", tev=0.05, industry_limit=0.0,
                         factor_bounds={"SMB": ((within + smb.max()) / 2, smb.max())})
    raises_exactly("1999-12-31: the industry and factor limits together admit no portfolio; "
                   "loosen one", "industry_limit",
                   ActiveOptimiser(spec, 30, 4, 3, factor_names=FACTORS).solve, f_mat, sf, e,
                   mu, benchmark=b, industries=ind, date=pd.Timestamp("1999-12-31"))
    # two factor bounds that each hold alone: the best SMB and the best HML are other stocks
    hml = f_mat[3] - f_mat[3] @ b
    spec = OptimiserSpec("tev", tev=0.05, factor_bounds={"SMB": (0.9 * smb.max(), 10),
                                                         "HML": (0.9 * hml.max(), 10)})
    assert np.argmax(smb) != np.argmax(hml) and hml[np.argmax(smb)] < 0.9 * hml.max()
    raises_exactly("the industry and factor limits together admit no portfolio; loosen one",
                   "factor_bounds", ActiveOptimiser(spec, 30, 4, factor_names=FACTORS).solve,
                   f_mat, sf, e, mu, benchmark=b)
    # a bound out of reach alone is named with the range of the weight bounds alone
    spec = OptimiserSpec("tev", tev=0.05, industry_limit=0.0, factor_bounds={"SMB": (5, 6)})
    raises_exactly(f"factor_bounds: the active exposure to SMB cannot be within 5 to 6 (the weight "
                   f"bounds allow {smb.min():.4g} to {smb.max():.4g})", "factor_bounds",
                   ActiveOptimiser(spec, 30, 4, 3, factor_names=FACTORS).solve, f_mat, sf, e,
                   mu, benchmark=b, industries=ind)


def test_a_limit_that_fails_on_a_later_date_fails_that_date_only(inputs):
    f_mat, sf, e, mu, caps = inputs
    b = caps / caps.sum()
    ind = np.arange(30) % 3
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=0.05, industry_limit=0.01), 30, 4, 3)
    assert opt.solve(f_mat, sf, e, mu, benchmark=b, industries=ind).ok
    res = opt.solve(f_mat, sf, e, mu, benchmark=b, industries=ind, tradable=ind != 1,
                    date=pd.Timestamp("2001-02-28"))
    assert res.status == "failed" and type(res.error) is InfeasibleError
    assert res.reason == (f"2001-02-28: industry_limit admits no portfolio within the weight "
                          f"bounds: industry 2 has no tradable stock but {b[ind == 1].sum():.4g} "
                          "of the benchmark; raise it")
    assert res.error.argument == "industry_limit"
    assert opt.solve(f_mat, sf, e, mu, benchmark=b, industries=ind).ok


def test_industry_limits_against_a_factor_benchmark_are_around_the_caps(inputs):
    f_mat, sf, e, mu, caps = inputs
    k, limit = 5, 0.02
    ind = np.arange(30) % 4  # the fifth industry has no stock
    tradable = np.ones(30, dtype=bool)
    tradable[[0, 5]] = False
    x_mkt = np.array([0.0, 1.0, 0.0, 0.0])
    c = np.where(tradable, caps, 0.0)
    u_caps = industry_weights(c / c.sum(), ind, k)
    kw = {"benchmark_exposure": x_mkt, "caps": caps, "tradable": tradable}
    free = ActiveOptimiser(OptimiserSpec("tev", tev=0.04), 30, 4).solve(f_mat, sf, e, mu, **kw)
    assert np.abs(industry_weights(free.weights, ind, k) - u_caps).max() > 2 * limit
    spec = OptimiserSpec("tev", tev=0.04, industry_limit=limit)
    res = ActiveOptimiser(spec, 30, 4, k).solve(f_mat, sf, e, mu, industries=ind, **kw)
    assert res.ok
    away = industry_weights(res.weights, ind, k) - u_caps
    assert np.abs(away).max() == pytest.approx(limit, abs=1e-7)  # it binds
    onehot = np.eye(k)[ind]
    w = cp.Variable(30)
    fx = f_mat @ w - x_mkt
    prob = cp.Problem(cp.Maximize(mu @ fx), [
        cp.sum(w) == 1, w >= 0, w[~tradable] == 0, cp.abs(onehot.T @ w - u_caps) <= limit,
        cp.quad_form(fx, cp.psd_wrap(sf)) + e @ cp.square(w) <= 0.04**2 / PPY])
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == cp.OPTIMAL
    assert res.active_return == pytest.approx(prob.value, rel=1e-5)
    raises_exactly("industry limits need benchmark weights or market caps", "industry_limit",
                   ActiveOptimiser(spec, 30, 4, k).solve, f_mat, sf, e, mu, industries=ind,
                   benchmark_exposure=x_mkt)


def test_industry_limits_by_name_leave_the_other_industries_free(inputs):
    f_mat, sf, e, mu, caps = inputs
    ind = np.arange(30) % 3
    names = ("Energy", "Finance", "Tech", "Utilities")  # Utilities has no stock
    b = caps / caps.sum()
    spec = OptimiserSpec("tev", tev=0.05, industry_limits={"finance": 0.0})
    opt = ActiveOptimiser(spec, 30, 4, 4)
    res = opt.solve(f_mat, sf, e, mu, benchmark=b, industries=ind, industry_names=names)
    active = industry_weights(res.weights - b, np.eye(4)[ind].argmax(axis=1), 4)
    assert abs(active[1]) <= 1e-7 and np.abs(active).max() > 0.05
    onehot = np.eye(3)[ind]
    ref = direct(f_mat, sf, e, mu, b, 0.05, lambda w: [onehot[:, 1] @ (w - b) == 0])
    assert res.active_return == pytest.approx(ref, rel=1e-5)
    # a name gone on a later date is no longer limited (the first date checked the names)
    later = opt.solve(f_mat, sf, e, mu, benchmark=b, industries=ind,
                      industry_names=("Energy", "Banks", "Tech", "Utilities"))
    assert later.ok and abs(industry_weights(later.weights - b, ind, 3)[1]) > 1e-3
    raises_exactly("industry_limits names Mining, which is not an industry on the first date (they "
                   "are Energy, Finance, Tech, Utilities)", "industry_limits",
                   ActiveOptimiser(OptimiserSpec("tev", tev=0.05, industry_limits={"Mining": 0.1}),
                                   30, 4, 4).solve, f_mat, sf, e, mu, benchmark=b,
                   industries=ind, industry_names=names)
    raises_exactly("industry_limits names industries, but the industries have no names",
                   "industry_limits", ActiveOptimiser(spec, 30, 4, 4).solve, f_mat, sf, e, mu,
                   benchmark=b, industries=ind)


def test_a_limit_of_a_whole_portfolio_is_accepted_and_a_limit_must_be_a_number():
    assert OptimiserSpec("tev", tev=0.05, industry_limit=1).industry_limit == 1.0
    typed = OptimiserSpec("tev", tev=0.05, industry_limit="0.05").industry_limit
    assert type(typed) is float and typed == 0.05
    assert OptimiserSpec("tev", tev=0.05, industry_limits={"Tech": 1}).industry_limits == (
        ("Tech", 1.0),)
    raises_exactly("industry_limit must be a number (got 'abc')", "industry_limit",
                   OptimiserSpec, "tev", tev=0.05, industry_limit="abc")
    raises_exactly("industry_limit must be an active weight from 0 to 1, e.g. 0.05 (got 1.5)",
                   "industry_limit", OptimiserSpec, "tev", tev=0.05, industry_limit=1.5)
    raises_exactly("industry_limits for Tech must be an active weight from 0 to 1, e.g. 0.05 "
                   "(got -0.1)", "industry_limits", OptimiserSpec, "tev", tev=0.05,
                   industry_limits={"Tech": -0.1})


@pytest.mark.parametrize(("kwargs", "argument", "text"), [
    ({"industry_limit": 1.5}, "industry_limit",
     "industry_limit must be an active weight from 0 to 1, e.g. 0.05 (got 1.5)"),
    ({"industry_limits": {"Tech": -0.1}}, "industry_limits",
     "industry_limits for Tech must be an active weight from 0 to 1, e.g. 0.05 (got -0.1)"),
    ({"industry_limits": [("Tech", "abc")]}, "industry_limits",
     "industry_limits must be a number (got 'abc')"),
    ({"factor_bounds": {"SMB": (0.2, -0.2)}}, "factor_bounds",
     "factor_bounds for SMB: lo 0.2 is above hi -0.2"),
    ({"factor_bounds": {"SMB": (0.2,)}}, "factor_bounds",
     "factor_bounds for SMB must be two numbers, lo and hi"),
    ({"factor_bounds": [("SMB", "x", 1)]}, "factor_bounds",
     "factor_bounds must be a number (got 'x')"),
    ({"factor_bounds": [("SMB", 0, "y")]}, "factor_bounds",
     "factor_bounds must be a number (got 'y')"),
    ({"factor_bounds": {"SMB": (0, 1)}, "factor_neutral": True}, "factor_bounds",
     "factor_neutral holds every factor exposure at 0: clear factor_bounds, or factor_neutral"),
    ({"factor_neutral": "yes"}, "factor_neutral",
     "factor_neutral must be TRUE or FALSE (got 'yes')"),
])
def test_bad_limits_are_one_line(kwargs, argument, text):
    raises_exactly(text, argument, OptimiserSpec, "tev", tev=0.05, **kwargs)


def test_limits_are_stored_as_named_numbers():
    spec = OptimiserSpec("tev", tev=0.05, industry_limits=[(" Tech ", "0.1"), ("Energy", 0)],
                         factor_bounds=[("SMB", -0.1, 0.1), (" HML ", [0, "0.2"])],
                         factor_neutral=np.bool_(False))
    assert spec.industry_limits == (("Tech", 0.1), ("Energy", 0.0))
    assert spec.factor_bounds == (("SMB", -0.1, 0.1), ("HML", 0.0, 0.2))
    assert spec.factor_neutral is False and spec.industry_limited and spec.factor_limited
    assert OptimiserSpec("tev", tev=0.05, factor_bounds={"SMB": [(-0.1, 0.1)]}).factor_bounds == (
        ("SMB", -0.1, 0.1),)
    plain = OptimiserSpec("tev", tev=0.05, industry_limits=None, factor_bounds=None)
    assert plain.industry_limits == () and plain.factor_bounds == ()
    assert not plain.industry_limited and not plain.factor_limited
    neutral = OptimiserSpec("tev", tev=0.05, factor_neutral=np.bool_(True))
    assert neutral.factor_neutral is True and neutral.factor_limited


def test_factor_bounds_need_factor_names():
    raises_exactly("factor_bounds needs the names of the 3 factors", "factor_bounds",
                   ActiveOptimiser, OptimiserSpec("tev", tev=0.05, factor_bounds={"SMB": (0, 1)}),
                   5, 4, factor_names=("Mkt-RF", "SMB"))
    raises_exactly("factor_bounds names Value, which is not a factor (the factors: Mkt-RF, SMB, "
                   "HML)", "factor_bounds", ActiveOptimiser,
                   OptimiserSpec("tev", tev=0.05, factor_bounds={"Value": (0, 1)}), 5, 4,
                   factor_names=FACTORS)


# --------------------------------------------------------------------------- backtest


def test_config_reads_limits_as_text():
    cfg = BacktestConfig.from_mapping({"industry_limit": "5%", "industry_limits":
                                       "Energy=2%; Finance=0.03",
                                       "factor_bounds": "SMB=-0.2:0.2; HML=-10%:0",
                                       "factor_neutral": "false"})
    assert cfg.industry_limit == 0.05
    assert cfg.industry_limits == (("Energy", 0.02), ("Finance", 0.03))
    assert cfg.factor_bounds == (("SMB", -0.2, 0.2), ("HML", -0.1, 0.0))
    assert cfg.factor_neutral is False
    spec = next(iter(cfg.specs(12).values()))
    assert spec.industry_limit == 0.05 and spec.factor_bounds == cfg.factor_bounds
    with pytest.raises(InputError, match="factor_bounds for SMB must be LO:HI"):
        BacktestConfig(factor_bounds="SMB=0.2")
    with pytest.raises(InputError, match="NAME=VALUE"):
        BacktestConfig(industry_limits="0.05")


def active_from_files(data, weights, window=60, min_obs=36):
    """Active industry weights and factor exposures at each rebalance, recomputed in numpy.

    The benchmark is cap-weighted over the assets tradable at the date (a return and a cap
    that date, and min_obs returns in the loadings window); loadings are OLS betas of
    excess returns on [1, factors] over the window.
    """
    out = []
    for (date, strat), grp in weights.groupby(["date", "strategy"]):
        assets, loadings, _, _, _, bench = factor_reference.model_at(data, date, window,
                                                                     min_obs)
        b = pd.Series(bench, index=assets)
        w = grp.set_index("asset")["weight"].reindex(assets).fillna(0.0)
        assert set(grp["asset"]) <= set(assets)
        a = w - b
        expo = loadings[1:] @ a.to_numpy()
        ind = a.groupby(data.industries.reindex(assets)).sum()
        out.append((date, strat, ind, pd.Series(expo, index=data.factors.columns)))
    return out


@pytest.fixture(scope="module")
def limited_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("limits")
    rc = main(["backtest", "--data", "sample:30", "--tev", "0.05", "--end", "1996-12-31",
               "--min-history", "36", "--workers", "1", "--industry-limit", "0.03",
               "--factor-bounds", "SMB=-0.1:0.1; HML=-0.05:0.05", "--out", str(out),
               "--quiet"])
    assert rc == 0
    return out


def test_limits_hold_at_every_rebalance_in_weights_csv(limited_run):
    data = load_market("sample:30").truncate(None, "1996-12-31")
    weights = pd.read_csv(limited_run / "weights.csv", parse_dates=["date"])
    assert weights["date"].nunique() > 20
    checked = active_from_files(data, weights)
    assert len(checked) == weights.groupby(["date", "strategy"]).ngroups
    worst_ind = max(ind.abs().max() for _, _, ind, _ in checked)
    assert worst_ind <= 0.03 + 1e-6
    assert max(abs(e["SMB"]) for *_, e in checked) <= 0.1 + 1e-6
    assert max(abs(e["HML"]) for *_, e in checked) <= 0.05 + 1e-6
    assert worst_ind > 0.03 - 1e-4  # the limit binds somewhere: the check is not vacuous


def test_an_impossible_limit_stops_the_run_before_it_starts(capsys):
    data = load_market("sample:30").truncate(None, "1996-12-31")
    with pytest.raises(InputError, match=r"^\d{4}-\d\d-\d\d: factor_bounds: the active exposure "
                                         r"to Mkt-RF cannot be within 2 to 3") as err:
        run_backtest(data, BacktestConfig(tev=(0.05,), min_history=36, workers=1,
                                          factor_bounds="Mkt-RF=2:3"))
    assert err.value.argument == "factor_bounds"
    rc = main(["backtest", "--data", "sample:30", "--end", "1996-12-31", "--min-history", "36",
               "--workers", "1", "--tev", "0.05", "--industry-limits", "Nowhere=0.1",
               "--quiet"])
    assert rc == 2
    assert "industry_limits names Nowhere, which is not an industry" in capsys.readouterr().err


# --------------------------------------------------------------------------- the sheet


def sheet_with(tmp_path, **cells):
    import shutil
    from pathlib import Path

    from xlfuncs.excel.sheets import OpenpyxlBook, write_cell

    path = tmp_path / "Backtest.xlsm"
    shutil.copy(Path(__file__).resolve().parents[1] / "workbooks" / "Backtest.xlsm", path)
    book = OpenpyxlBook(path)
    for name, value in {"BtData": "sample:30", "BtEnd": "1996-12-31", "BtTev": "0.05",
                        **cells}.items():
        write_cell(book, name, value)
    book.save()
    return OpenpyxlBook(path)


def test_the_sheet_limit_cells_reach_the_optimiser(tmp_path):
    from xlfuncs import macros

    run = macros.run_backtest(sheet_with(tmp_path, BtIndustryLimit=0.03,
                                         BtFactorBounds="SMB=-0.1:0.1", BtFactorNeutral=None))
    assert run.ok, run.status
    data = load_market("sample:30", end="1996-12-31")
    ref = run_backtest(data, BacktestConfig(tev=(0.05,), end="1996-12-31", industry_limit=0.03,
                                            factor_bounds="SMB=-0.1:0.1"))
    free = run_backtest(data, BacktestConfig(tev=(0.05,), end="1996-12-31"))
    pd.testing.assert_frame_equal(run.result.stats, ref.stats)
    assert not np.allclose(ref.stats["tracking_error"], free.stats["tracking_error"])


def test_an_impossible_limit_on_the_sheet_is_named_in_the_status(tmp_path):
    from xlfuncs import macros

    run = macros.run_backtest(sheet_with(tmp_path, BtFactorNeutral=True, BtMaxWeight=0.05))
    assert not run.ok
    assert run.status.startswith("Run failed: BtFactorNeutral: ")
    assert re.search(r"^Run failed: BtFactorNeutral: \d{4}-\d\d-\d\d: factor_neutral: the "
                     r"active exposure to (SMB|HML|Mom|Mkt-RF) cannot be within 0 to 0 \(the "
                     r"weight bounds allow -?[0-9.]+ to -?[0-9.]+\)$", run.status), run.status


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"industry_limits": "Tech=0.03"},
     "industry_limits must be (industry, limit) pairs or a mapping (got 'Tech=0.03')"),
    ({"industry_limits": 0.05},
     "industry_limits must be (industry, limit) pairs or a mapping (got 0.05)"),
    ({"industry_limits": [("Tech",)]}, "industry_limits must be (industry, limit) pairs (got "
     "('Tech',))"),
    ({"industry_limits": ["Tech"]}, "industry_limits must be (industry, limit) pairs (got "
     "'Tech')"),
    ({"industry_limits": [3]}, "industry_limits must be (industry, limit) pairs (got 3)"),
    ({"factor_bounds": "SMB"},
     "factor_bounds must be (factor, lo, hi) items or a mapping (got 'SMB')"),
    ({"factor_bounds": [3]}, "factor_bounds must be (factor, lo, hi) items or a mapping (got [3])"),
    ({"factor_bounds": ["SMB"]},
     "factor_bounds must be (factor, lo, hi) items or a mapping (got ['SMB'])"),
    ({"factor_bounds": [("SMB",)]},
     "factor_bounds must be (factor, lo, hi) items or a mapping (got [('SMB',)])"),
    ({"factor_bounds": 0.05}, "factor_bounds must be (factor, lo, hi) items or a mapping (got "
     "0.05)"),
])
def test_limits_of_the_wrong_shape_are_one_readable_error(kwargs, text):
    raises_exactly(text, next(iter(kwargs)), OptimiserSpec, "tev", tev=0.04, **kwargs)


@pytest.mark.parametrize("name", ["industry_limits", "factor_bounds"])
def test_a_lone_number_in_a_limit_cell_is_one_readable_error(name):
    with pytest.raises(InputError, match=rf"{name} must be NAME=(VALUE|LO:HI) items"):
        BacktestConfig.from_mapping({name: 0.05})
