"""The backtest's model settings: the factor set, regime-aware betas, the benchmark's statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly

from xlfuncs.cli import main
from xlfuncs.core import BacktestConfig, _backtest, fit_regime, run_backtest
from xlfuncs.data.market import load_market
from xlfuncs.report import write_results

END = "1996-12-31"


@pytest.fixture(scope="module")
def data():
    return load_market("sample:30", end=END)


def small(**kw) -> BacktestConfig:
    base = dict(tev=(0.03,), workers=1, min_history=36, min_obs=24, beta_window=36, end=END)
    base.update(kw)
    return BacktestConfig(**base)


def ols(y: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares of y on [1, x] by numpy's lstsq; coefficients and residual variance.

    The residual variance is ``sum w e^2 / sum w * n_eff / (n_eff - m)`` with Kish's
    ``n_eff = (sum w)^2 / sum w^2`` (``RSS / (n - m)`` for equal weights).
    """
    ok = np.isfinite(y)
    y, x, w = y[ok], x[ok], w[ok]
    z = np.column_stack([np.ones(len(y)), x])
    root = np.sqrt(w)
    coef = np.linalg.lstsq(z * root[:, None], y * root, rcond=None)[0]
    e = y - z @ coef
    n_eff = w.sum() ** 2 / (w * w).sum()
    return coef, float((w * e * e).sum() / w.sum() * n_eff / (n_eff - z.shape[1]))


# --------------------------------------------------------------------------- factor set


def test_a_factor_set_runs_as_data_with_only_those_factors(data):
    chosen = run_backtest(data, small(factor_set=" smb ; mkt - rf"))
    only = dataclasses.replace(data, factors=data.factors[["SMB", "Mkt-RF"]])
    ref = run_backtest(only, small())
    pd.testing.assert_frame_equal(chosen.weights, ref.weights, check_exact=True)
    pd.testing.assert_frame_equal(chosen.returns, ref.returns, check_exact=True)
    every = run_backtest(data, small())
    assert not every.weights["weight"].equals(chosen.weights["weight"])
    # the active exposures name the model's factors, in the order given
    factors = [c for c in chosen.exposures.columns if c not in ("date", "strategy")
               and not c.startswith("industry: ")]
    assert factors == ["SMB", "Mkt-RF"]
    assert chosen.notes[-1] == "model factors: SMB, Mkt-RF (factor_set, of Mkt-RF, SMB, HML, Mom)"
    assert every.notes[-1] == "model factors: Mkt-RF, SMB, HML, Mom (every factor of the file)"


def test_the_loadings_of_a_factor_set_are_least_squares_on_those_factors(data):
    cfg = small(factor_set="Mkt-RF, HML")
    chosen = dataclasses.replace(data, factors=data.factors[["Mkt-RF", "HML"]])
    i = 50
    est = _backtest._Estimator(chosen, cfg)(i)
    excess = data.returns.sub(data.rf, axis=0).iloc[i + 1 - 36:i + 1]
    x = data.factors[["Mkt-RF", "HML"]].iloc[i + 1 - 36:i + 1].to_numpy()
    assert est.factors == ("Mkt-RF", "HML")
    for j, asset in enumerate(chosen.returns.columns[est.columns]):
        coef, resid = ols(excess[asset].to_numpy(), x, np.ones(len(x)))
        np.testing.assert_allclose(est.loadings[:, j], coef, rtol=1e-9, atol=1e-12)
        assert est.resid_var[j] == pytest.approx(resid, rel=1e-9)


@pytest.mark.parametrize(("factor_set", "message"), [
    ("Mkt-RF, Mom2", "factor_set: no factor 'Mom2'; the factors are Mkt-RF, SMB, HML, Mom"),
    ("Mkt-RF; RF", "factor_set: RF is the risk-free rate, never a model factor"),
    ("SMB, smb", "factor_set names 'smb' twice"),
    (3, "factor_set must be factor names such as Mkt-RF, SMB, HML (got 3)"),
    (["SMB", 2.0], "factor_set must be factor names such as Mkt-RF, SMB, HML (got 2.0)"),
])
def test_a_wrong_factor_set_is_one_line_listing_the_factors(data, factor_set, message):
    # some are refused by the settings, the others against the data's factors
    raises_exactly(message, "factor_set",
                   lambda: run_backtest(data, small(factor_set=factor_set)))


def test_a_market_benchmark_still_needs_the_market_factor():
    data = load_market("french12").truncate("1990-01", "1996-12")
    raises_exactly("the benchmark is the market, but the factors have no Mkt-RF column",
                   "factors", run_backtest, data,
                   small(factor_set="SMB, HML", benchmark="market"))


def test_the_cli_and_its_config_take_the_factor_set(tmp_path, capsys):
    toml = tmp_path / "bt.toml"
    toml.write_text('[backtest]\ndata = "sample:30"\nend = "1996-12-31"\nmin_history = 36\n'
                    'factor_set = ["Mkt-RF", "HML"]\nworkers = 1\n', encoding="utf-8")
    out = tmp_path / "run"
    assert main(["backtest", "--config", str(toml), "--out", str(out), "--quiet"]) == 0
    notes = (out / "notes.txt").read_text(encoding="utf-8")
    assert "- model factors: Mkt-RF, HML (factor_set, of Mkt-RF, SMB, HML, Mom)\n" in notes
    capsys.readouterr()
    assert main(["backtest", "--config", str(toml), "--factor-set", "Mkt-RF, Value",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "factor_set: no factor 'Value'; the factors are Mkt-RF, SMB, HML, Mom" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- benchmark row


def test_the_benchmark_row_equals_its_statistics_from_returns_csv(data, tmp_path):
    result = run_backtest(data, small(tev=(0.02, 0.05)))
    write_results(result, tmp_path)
    stats = pd.read_csv(tmp_path / "stats.csv").set_index("strategy")
    returns = pd.read_csv(tmp_path / "returns.csv", index_col="date")
    assert list(stats.index) == ["benchmark", "tev=0.02", "tev=0.05"]
    r, rf = returns["benchmark"].to_numpy(), returns["rf"].to_numpy()
    a = 12.0
    wealth = np.cumprod(1 + r)
    drawdown = wealth / np.maximum.accumulate(np.maximum(wealth, 1.0)) - 1
    row = stats.loc["benchmark"]
    assert row["ann_return"] == pytest.approx(wealth[-1] ** (a / len(r)) - 1, rel=1e-12)
    assert row["ann_volatility"] == pytest.approx(np.std(r, ddof=1) * np.sqrt(a), rel=1e-12)
    assert row["sharpe"] == pytest.approx(np.mean(r - rf) / np.std(r - rf, ddof=1)
                                          * np.sqrt(a), rel=1e-12)
    assert row["max_drawdown"] == pytest.approx(min(drawdown.min(), 0.0), rel=1e-12)
    # against itself the active figures mean nothing, and it does not trade: blank
    assert row[["tracking_error", "information_ratio", "turnover", "avg_holdings",
                "hit_rate", "ir_per_period"]].isna().all()
    # the strategies' rows are the result's own statistics
    pd.testing.assert_frame_equal(stats.iloc[1:], result.stats, check_names=False,
                                  check_exact=False, rtol=1e-12)


# --------------------------------------------------------------------------- regime betas


def test_betas_regime_needs_the_regime_model():
    for betas, message in (("regime", "betas regime needs model regime: the states weighting "
                                      "the betas are that model's"),
                           ("gls", "betas must be ols or regime (got 'gls')")):
        raises_exactly(message, "betas", small, betas=betas)


def test_regime_betas_are_the_forecast_mixture_of_per_state_wls(data, monkeypatch):
    """At each date with a fresh fit, the loadings equal numpy WLS with that fit's probabilities."""
    monkeypatch.setattr(_backtest, "REGIME_CHUNK", 4)
    cfg = small(model="regime", betas="regime", horizon=2, start="1992-06-30")
    ols_run = run_backtest(data, small(model="regime", start="1992-06-30", horizon=2))
    result = run_backtest(data, cfg)
    dates = _backtest._rebalance_dates(data, cfg)
    job = _backtest._Job(data, cfg, tuple(dates))
    excess = data.returns.sub(data.rf, axis=0)
    checked = 0
    for chunk in _backtest._chunks(dates, cfg, 1)[:3]:
        i = chunk[0]  # the fit is made afresh here, on the factor rows up to i
        est = _backtest._estimate_chunk(job, chunk)[0]
        assert not isinstance(est, str), est
        fit = fit_regime(data.factors.iloc[:i + 1].to_numpy(), 2, 0)
        pi = fit.filtered[-1] @ np.linalg.matrix_power(fit.transmat, 2)
        probs = fit.filtered[-36:]
        x = data.factors.iloc[i + 1 - 36:i + 1].to_numpy()
        assets = data.returns.columns[est.columns]
        for j, asset in enumerate(assets):
            y = excess[asset].iloc[i + 1 - 36:i + 1].to_numpy()
            per_state = [ols(y, x, probs[:, s]) for s in range(2)]
            coef = sum(pi[s] * per_state[s][0] for s in range(2))
            resid = sum(pi[s] * per_state[s][1] for s in range(2))
            np.testing.assert_allclose(est.loadings[:, j], coef, rtol=1e-8, atol=1e-12)
            assert est.resid_var[j] == pytest.approx(resid, rel=1e-8)
        # and the run used them: its active exposures are F (w - b) with these loadings
        date = data.dates[i]
        w = result.weights[result.weights["date"] == date].set_index("asset")["weight"]
        active = w.reindex(assets).fillna(0.0).to_numpy() - est.benchmark
        expo = result.exposures[result.exposures["date"] == date].iloc[0]
        np.testing.assert_allclose(expo[list(est.factors)].to_numpy(dtype=float),
                                   est.loadings[1:] @ active, rtol=1e-8, atol=1e-9)
        checked += 1
    assert checked == 3
    assert not np.allclose(ols_run.exposures["SMB"], result.exposures["SMB"])


def test_regime_betas_use_no_data_after_the_date(data):
    """A run cut earlier decides exactly the same weights, with regime betas and a factor set."""
    cfg = dict(model="regime", betas="regime", factor_set="Mkt-RF, SMB, HML",
               start="1993-12-31")
    long = run_backtest(data, small(**cfg))
    short = run_backtest(data, small(**cfg, end="1995-06-30"))
    last = short.weights["date"].max()
    assert last >= pd.Timestamp("1995-05-31")
    a = long.weights[long.weights["date"] <= last].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, short.weights.reset_index(drop=True), check_exact=True)
