"""Factor model and factor moments at one rebalance date (SPEC 3.3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly

from xlfuncs.core._factor import (
    factor_moments,
    fit_factor_model,
    per_period_budget,
    per_period_to_annual,
)
from xlfuncs.core._risk import covariance
from xlfuncs.errors import InputError

FACTORS = ("MKT", "SMB", "HML")


def make_data(n_rows: int = 240, n_assets: int = 50, seed: int = 0, noise=None, k: int = 3):
    """Seeded monthly factors and excess returns from known loadings: (Y, F, alpha, betas, vol)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2000-01-31", periods=n_rows, freq="ME")
    names = [f"F{j}" for j in range(k)] if k != 3 else list(FACTORS)
    f = pd.DataFrame(rng.normal(0.005, 0.04, (n_rows, k)), index=dates, columns=names)
    alpha = rng.normal(0.0, 0.003, n_assets)
    betas = rng.normal(1.0, 0.5, (k, n_assets))
    vol = rng.uniform(0.02, 0.08, n_assets) if noise is None else np.full(n_assets, noise)
    y = alpha + f.to_numpy() @ betas + rng.standard_normal((n_rows, n_assets)) * vol
    tickers = [f"A{i:04d}" for i in range(n_assets)]
    return pd.DataFrame(y, index=dates, columns=tickers), f, alpha, betas, vol


def lstsq_fit(y: pd.Series, f: pd.DataFrame, w: np.ndarray | None = None):
    """Coefficients [alpha, betas] and RSS / (n - m) of one asset on its non-missing rows."""
    ok = y.notna().to_numpy()
    design = np.column_stack([np.ones(ok.sum()), f.to_numpy()[ok]])
    target = y.to_numpy()[ok]
    if w is not None:
        root = np.sqrt(w[ok])
        design, target = design * root[:, None], target * root
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    return coef, resid @ resid / (ok.sum() - design.shape[1])


# --------------------------------------------------------------------------- estimates


def test_recovers_known_loadings_within_their_standard_errors():
    y, f, alpha, betas, vol = make_data(240, 400, seed=1)
    model = fit_factor_model(y, f)
    assert model.assets == tuple(y.columns) and model.dropped == ()
    design = np.column_stack([np.ones(len(f)), f.to_numpy()])
    unit_se = np.sqrt(np.diag(np.linalg.inv(design.T @ design)))  # times sigma_i
    z = (model.loadings - np.vstack([alpha, betas])) / (unit_se[:, None] * vol[None, :])
    assert np.abs(z).max() < 5.0  # 1600 estimates: |z| > 5 has probability ~1e-3 in all
    assert 0.9 < z.std() < 1.1  # the standard errors are right, not just generous
    assert np.abs(np.sqrt(model.resid_var) / vol - 1).max() < 0.3


def test_each_asset_is_ols_on_its_own_rows():
    y, f, *_ = make_data(120, 8, seed=2)
    y.iloc[:30, 1] = np.nan  # listed late
    y.iloc[90:, 2] = np.nan  # delisted
    y.iloc[::7, 3] = np.nan  # holes
    y.iloc[:100, 4] = np.nan  # 20 rows only
    model = fit_factor_model(y, f, min_obs=6)
    assert model.assets == tuple(y.columns)
    for i, name in enumerate(model.assets):
        coef, s2 = lstsq_fit(y[name], f)
        np.testing.assert_allclose(model.loadings[:, i], coef, rtol=1e-9, atol=1e-12)
        assert model.resid_var[i] == pytest.approx(s2, rel=1e-9)
        assert model.n_obs[i] == y[name].notna().sum()
    assert model.betas.shape == (3, 8) and model.alpha.shape == (8,)
    np.testing.assert_array_equal(model.loadings, np.vstack([model.alpha, model.betas]))


def test_residual_variance_is_unbiased():
    """4000 assets with noise variance s^2: the mean estimate is s^2 (ddof = k + 1), not RSS / T."""
    sigma, n_rows, n_assets = 0.05, 30, 4000
    y, f, *_ = make_data(n_rows, n_assets, seed=3, noise=sigma)
    model = fit_factor_model(y, f, min_obs=10)
    dof = n_rows - 4
    ratio = model.resid_var / sigma**2
    se = np.sqrt(2.0 / dof / n_assets)  # s.e. of the mean of chi2(dof) / dof
    assert abs(ratio.mean() - 1.0) < 4 * se
    assert abs(ratio.mean() * dof / n_rows - 1.0) > 10 * se  # ddof = 0 would be visibly biased


def test_assets_with_too_few_returns_are_reported_not_kept():
    y, f, *_ = make_data(60, 5, seed=4)
    y.iloc[:50, 0] = np.nan  # 10 returns
    y.iloc[:37, 2] = np.nan  # 23 returns
    y.iloc[:36, 3] = np.nan  # 24 returns: kept
    model = fit_factor_model(y, f)  # min_obs = 24
    assert model.dropped == ("A0000", "A0002")
    assert model.assets == ("A0001", "A0003", "A0004")
    assert model.n_obs.tolist() == [60, 24, 60]
    everything = fit_factor_model(y.iloc[:, [0]].iloc[:40], f)
    assert everything.assets == () and everything.dropped == ("A0000",)
    assert everything.betas.shape == (3, 0)


def test_rolling_window_uses_exactly_the_last_rows_up_to_asof():
    y, f, *_ = make_data(200, 6, seed=5)
    t, window = 150, 60
    asof = y.index[t]
    model = fit_factor_model(y, f, window=window, asof=asof)
    rows = slice(t - window + 1, t + 1)
    assert model.start == y.index[t - window + 1] and model.end == asof
    for i, name in enumerate(model.assets):
        coef, s2 = lstsq_fit(y[name].iloc[rows], f.iloc[rows])
        np.testing.assert_allclose(model.loadings[:, i], coef, rtol=1e-9, atol=1e-12)
        assert model.resid_var[i] == pytest.approx(s2, rel=1e-9)
    # Rows after t and rows before the window never matter; row t does.
    changed = y.copy()
    changed.iloc[t + 1:] = 9.0
    changed.iloc[: t - window + 1] = -0.5
    f2 = f.copy()
    f2.iloc[t + 1:] = np.nan  # even missing factors after t are fine
    f2.iloc[: t - window + 1] = 3.0
    same = fit_factor_model(changed, f2, window=window, asof=asof)
    np.testing.assert_array_equal(same.loadings, model.loadings)
    np.testing.assert_array_equal(same.resid_var, model.resid_var)
    changed.iloc[t] += 0.01
    assert not np.array_equal(fit_factor_model(changed, f2, window=window, asof=asof).loadings,
                              model.loadings)


def test_expanding_window_never_looks_ahead():
    y, f, *_ = make_data(200, 6, seed=6)
    for t in (40, 120, 199):
        asof = y.index[t]
        model = fit_factor_model(y, f, asof=asof)
        assert model.start == y.index[0] and model.end == asof
        truncated = fit_factor_model(y.iloc[: t + 1], f.iloc[: t + 1])
        np.testing.assert_allclose(model.loadings, truncated.loadings, rtol=1e-13, atol=1e-16)
        future = y.copy()
        future.iloc[t + 1:] = np.random.default_rng(t).normal(0, 1, future.iloc[t + 1:].shape)
        np.testing.assert_array_equal(fit_factor_model(future, f, asof=asof).loadings,
                                      model.loadings)
    # asof between dates: the rows dated on or before it.
    mid = y.index[99] + pd.Timedelta(days=3)
    np.testing.assert_allclose(fit_factor_model(y, f, asof=mid).loadings,
                               fit_factor_model(y.iloc[:100], f).loadings, rtol=1e-13, atol=1e-16)


def test_weighted_least_squares():
    y, f, *_ = make_data(120, 4, seed=7)
    y.iloc[:20, 1] = np.nan
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(y))
    model = fit_factor_model(y, f, weights=w)
    for i, name in enumerate(model.assets):
        coef, _ = lstsq_fit(y[name], f, w)
        np.testing.assert_allclose(model.loadings[:, i], coef, rtol=1e-9, atol=1e-12)
    scaled = fit_factor_model(y, f, weights=7.5 * w)  # scale-free, residual variance included
    np.testing.assert_allclose(scaled.loadings, model.loadings, rtol=1e-10)
    np.testing.assert_allclose(scaled.resid_var, model.resid_var, rtol=1e-10)
    # 0/1 weights are OLS on the selected rows, residual variance with ddof = k + 1.
    pick = np.zeros(len(y))
    pick[30:90] = 1.0
    sub = fit_factor_model(y, f, weights=pick)
    plain = fit_factor_model(y.iloc[30:90], f.iloc[30:90])
    np.testing.assert_allclose(sub.loadings, plain.loadings, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sub.resid_var, plain.resid_var, rtol=1e-9)
    series = fit_factor_model(y, f, weights=pd.Series(w, index=y.index)[::-1])
    np.testing.assert_allclose(series.loadings, model.loadings, rtol=1e-12)


def test_expected_excess_and_covariance_from_the_loadings():
    y, f, *_ = make_data(120, 5, seed=8)
    model = fit_factor_model(y, f)
    moments = factor_moments(f)
    mu = model.expected_excess(moments.mean)
    np.testing.assert_allclose(mu, model.loadings.T @ moments.mean_with_constant, atol=1e-16)
    cov = model.covariance(moments.cov)
    expected = model.betas.T @ moments.cov @ model.betas + np.diag(model.resid_var)
    np.testing.assert_allclose(cov, expected, rtol=1e-12)
    np.testing.assert_array_equal(cov, cov.T)
    with pytest.raises(InputError, match="factor_mean"):
        model.expected_excess(np.zeros(2))


def test_large_ragged_universe():
    """n = 3000 with staggered listings: every asset is either fitted or reported as dropped."""
    rng = np.random.default_rng(9)
    y, f, *_ = make_data(240, 3000, seed=9, k=5)
    starts = rng.integers(0, 230, 3000)
    y = y.mask(np.arange(240)[:, None] < starts[None, :])
    model = fit_factor_model(y, f)
    assert len(model.assets) + len(model.dropped) == 3000
    rows = 240 - starts
    assert set(model.dropped) == {y.columns[i] for i in np.flatnonzero(rows < 24)}
    np.testing.assert_array_equal(model.n_obs, rows[rows >= 24])


# --------------------------------------------------------------------------- factor moments


def test_sample_and_ewma_factor_moments():
    _, f, *_ = make_data(150, 1, seed=10)
    x = f.to_numpy()
    sample = factor_moments(f, "sample")
    np.testing.assert_allclose(sample.mean, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sample.cov, np.cov(x, rowvar=False), rtol=1e-12)
    assert sample.method == "sample" and sample.n_obs == 150 and sample.probs is None
    for spec, hl in (("ewma", 60.0), ("ewma:30", 30.0)):
        ewma = factor_moments(f, spec)
        w = 0.5 ** (np.arange(149, -1, -1) / hl)
        w /= w.sum()
        mean = w @ x
        centred = x - mean
        cov = (centred * w[:, None]).T @ centred / (1 - w @ w)
        np.testing.assert_allclose(ewma.mean, mean, rtol=1e-12)
        np.testing.assert_allclose(ewma.cov, cov, rtol=1e-12)
        assert ewma.halflife == hl and ewma.method == "ewma"
    np.testing.assert_allclose(factor_moments(f, "ewma", halflife=30).cov,
                               factor_moments(f, "ewma:30").cov, rtol=1e-15)
    lw = factor_moments(f, "ledoit-wolf")
    np.testing.assert_allclose(lw.cov, covariance(x, "ledoit-wolf"), rtol=1e-12)


def test_factor_moments_window_and_asof():
    _, f, *_ = make_data(150, 1, seed=11)
    t = 100
    m = factor_moments(f, "ewma:20", window=36, asof=f.index[t])
    rows = f.iloc[t - 35 : t + 1]
    np.testing.assert_allclose(m.cov, factor_moments(rows, "ewma:20").cov, rtol=1e-15)
    assert (m.start, m.end, m.n_obs) == (f.index[t - 35], f.index[t], 36)
    later = f.copy()
    later.iloc[t + 1:] = np.nan
    np.testing.assert_array_equal(factor_moments(later, "sample", asof=f.index[t]).cov,
                                  factor_moments(f, "sample", asof=f.index[t]).cov)


# --------------------------------------------------------------------------- units


def test_per_period_budget_is_the_one_unit_conversion():
    assert per_period_budget(0.05, 52) == pytest.approx(0.05**2 / 52, rel=1e-15)
    assert per_period_budget(0.05, 12) == pytest.approx(0.05**2 / 12, rel=1e-15)
    # The research's bug: a weekly variance against TEV^2 / 12 allows 52 / 12 times the risk.
    assert per_period_budget(0.05, 12) / per_period_budget(0.05, 52) == pytest.approx(52 / 12)
    # A weekly tracking variance at the budget annualises back to the annual TEV.
    _, annual_var = per_period_to_annual(0.0, per_period_budget(0.04, 52), 52)
    assert np.sqrt(annual_var) == pytest.approx(0.04, rel=1e-15)
    for tev, ppy in ((-0.01, 52), (np.nan, 52), (0.05, 0), (0.05, -12)):
        with pytest.raises(InputError):
            per_period_budget(tev, ppy)


# --------------------------------------------------------------------------- bad input


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 160
    return text


def test_bad_inputs_give_one_readable_error():
    y, f, *_ = make_data(60, 3, seed=12)
    day0 = y.index[0]
    dup_date = y.copy()
    dup_date.index = [day0, *y.index[:-1]]
    model = fit_factor_model(y, f)
    cases = [
        (lambda: fit_factor_model(y.to_numpy(), f), "excess_returns",
         "excess_returns must be a table with dates in its index (a DataFrame)"),
        (lambda: fit_factor_model(y.iloc[:, :0], f), "excess_returns",
         "excess_returns has no columns"),
        (lambda: fit_factor_model(dup_date, f), "excess_returns",
         f"excess_returns has the date {day0} twice"),
        (lambda: fit_factor_model(y, f.iloc[1:]), "factors", f"factors has no row for {day0}"),
        (lambda: fit_factor_model(y, f.iloc[::-1]), "factors",
         "factors must be sorted by date, oldest first"),
        (lambda: fit_factor_model(y, f, min_obs=4), "min_obs",
         "min_obs must be at least 5 for 3 factors (it is 4)"),
        (lambda: fit_factor_model(y, f, min_obs=4.5), "min_obs", "min_obs must be a whole number"),
        (lambda: fit_factor_model(y, f, window=0), "window",
         "window must be a positive whole number of rows or blank"),
        (lambda: fit_factor_model(y, f, asof=day0 - pd.Timedelta(days=1)), "excess_returns",
         f"excess_returns has no row dated on or before {day0 - pd.Timedelta(days=1)}"),
        (lambda: fit_factor_model(y, f, asof="abc"), "asof",
         "asof 'abc' cannot be compared with the dates of excess_returns"),
        (lambda: fit_factor_model(y, f, weights=np.ones(5)), "weights",
         "weights must have one value per row of excess_returns (60)"),
        (lambda: fit_factor_model(y, f, weights=pd.Series(1.0, index=y.index[1:])), "weights",
         f"weights has no value for {day0}"),
        (lambda: fit_factor_model(y, f, weights=-np.ones(60)), "weights",
         "weights must be finite and non-negative"),
        (lambda: fit_factor_model(y, f, weights=np.zeros(60)), "weights",
         "weights are all zero in the window"),
        (lambda: factor_moments(f, "garch"), "method", "method must be one of sample, ewma, "
         'ewma:HALFLIFE, ledoit-wolf, regime (got "garch")'),
        (lambda: factor_moments(f.iloc[:1]), "factors", "factors needs at least 2 rows (has 1)"),
        (lambda: factor_moments(f, "ewma", halflife=0), "halflife",
         "halflife must be a positive number of periods"),
        (lambda: factor_moments(f, "ewma", halflife="x"), "halflife",
         "halflife must be a positive number of periods"),
        (lambda: factor_moments(f, "regime", n_states=5), "n_states",
         "n_states must be a whole number from 2 to 4 (got 5)"),
        (lambda: per_period_budget(-0.1, 12), "tev",
         "tev must be a non-negative annual tracking error"),
        (lambda: per_period_budget(0.05, 0), "periods_per_year",
         "periods_per_year must be a positive number"),
        (lambda: per_period_to_annual(np.zeros(2), np.eye(2), 0), "periods_per_year",
         "periods_per_year must be a positive number"),
        (lambda: model.expected_excess(np.zeros(2)), "factor_mean",
         "factor_mean must have 3 values"),
        (lambda: model.covariance(np.eye(2)), "factor_cov", "factor_cov must be 3x3"),
    ]
    for call, argument, text in cases:
        raises_exactly(text, argument, call)
    nan = f.copy()
    nan.iloc[10, 1] = np.nan
    with pytest.raises(InputError) as exc:
        fit_factor_model(y, nan)
    assert "factors has a missing value for SMB on 2000-11-30" in one_line(exc)
    # A missing factor outside the window is no problem.
    fit_factor_model(y, nan, window=24)
    inf = y.copy()
    inf.iloc[3, 2] = np.inf
    with pytest.raises(InputError, match="infinite value for A0002"):
        fit_factor_model(inf, f)
    dup = y.copy()
    dup.columns = ["A", "B", "A"]
    with pytest.raises(InputError, match="column A twice"):
        fit_factor_model(dup, f)
