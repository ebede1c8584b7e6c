"""Regime model (SPEC 3.3): HMM fit, filtering, forecasts, mixture moments, regime betas."""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace
from decimal import ROUND_FLOOR, Decimal

import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly
from scipy.stats import multivariate_normal

from xlfuncs.core import _hmm
from xlfuncs.core._factor import factor_moments
from xlfuncs.core._regime import (
    RegimeFit,
    filtered_probs,
    fit_regime,
    forecast_probs,
    mixture_moments,
    regime_betas,
    regime_min_rows,
    smoothed_probs,
)
from xlfuncs.errors import ConvergenceError, InputError

# --------------------------------------------------------------------------- data

TRANSMAT = np.array([[0.95, 0.05], [0.10, 0.90]])  # state 0 calm (bull), state 1 stressed
MEANS = np.array([[0.010, 0.002, 0.001], [-0.020, -0.004, 0.004]])
VOLS = np.array([[0.035, 0.020, 0.020], [0.070, 0.035, 0.030]])
CORRS = np.array([np.eye(3) * 0.8 + 0.2, np.eye(3) * 0.4 + 0.6])
COVS = np.array([np.outer(v, v) * c for v, c in zip(VOLS, CORRS, strict=True)])


def two_regime(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded monthly-like factor returns from a known 2-state Gaussian HMM; returns (X, states)."""
    rng = np.random.default_rng(seed)
    states = np.empty(n_rows, dtype=int)
    states[0] = 0
    for t in range(1, n_rows):
        prev = states[t - 1]
        states[t] = prev if rng.random() < TRANSMAT[prev, prev] else 1 - prev
    chol = np.linalg.cholesky(COVS)
    x = MEANS[states] + np.einsum("tij,tj->ti", chol[states], rng.standard_normal((n_rows, 3)))
    return x, states


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return two_regime(300, seed=7)[0]


@pytest.fixture(scope="module")
def fit(data) -> RegimeFit:
    return fit_regime(data, 2, seed=0)


# --------------------------------------------------------------------------- fit


def test_fit_recovers_the_two_regimes():
    x, states = two_regime(1000, seed=11)
    fit = fit_regime(x, 2, seed=0)
    # Canonical labels: state 0 has the lowest first-factor mean, so it is the stressed state.
    assert fit.means[0, 0] < fit.means[1, 0]
    true_means, true_covs, true_p = MEANS[::-1], COVS[::-1], TRANSMAT[::-1, ::-1]
    counts = np.bincount(1 - states, minlength=2)  # rows per state in fitted labels
    for s in range(2):
        se = np.sqrt(np.diag(true_covs[s]) / counts[s])
        assert np.all(np.abs(fit.means[s] - true_means[s]) < 5 * se), s
        se_vol = np.sqrt(np.diag(true_covs[s])) / np.sqrt(2 * counts[s])  # s.e. of a volatility
        assert np.all(np.abs(np.sqrt(np.diag(fit.covs[s])) - np.sqrt(np.diag(true_covs[s])))
                      < 5 * se_vol), s
        se_p = np.sqrt(true_p[s, s] * (1 - true_p[s, s]) / counts[s])
        assert abs(fit.transmat[s, s] - true_p[s, s]) < 5 * se_p, s
    # The smoothed states agree with the truth on nearly every row.
    agree = np.mean(fit.smoothed.argmax(axis=1) == 1 - states)
    assert agree > 0.9
    assert np.isclose(fit.occupancy.sum(), len(x))


def test_fit_is_deterministic_for_a_seed(data):
    a = fit_regime(data, 3, seed=5)
    b = fit_regime(data, 3, seed=5)
    for name in ("means", "covs", "transmat", "startprob", "filtered", "smoothed"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.log_likelihood == b.log_likelihood


def test_fit_shapes_and_probabilities(fit, data):
    s, k = 2, data.shape[1]
    assert fit.means.shape == (s, k) and fit.covs.shape == (s, k, k)
    assert fit.transmat.shape == (s, s) and fit.startprob.shape == (s,)
    assert fit.filtered.shape == fit.smoothed.shape == (len(data), s)
    np.testing.assert_allclose(fit.transmat.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(fit.filtered.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(fit.smoothed.sum(axis=1), 1.0, atol=1e-12)
    for c in fit.covs:
        np.testing.assert_array_equal(c, c.T)
        assert np.linalg.eigvalsh(c).min() > 0
    assert fit.n_obs == len(data) and not fit.warm and fit.n_iter >= 1


def test_fit_uses_only_the_rows_it_is_given(data):
    """No look-ahead: the fit (k-means initialisation included) on rows < t ignores later rows."""
    t = 200
    changed = data.copy()
    changed[t:] = np.random.default_rng(0).normal(0.0, 0.2, changed[t:].shape)
    a = fit_regime(data[:t], 2, seed=3)
    b = fit_regime(changed[:t], 2, seed=3)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.filtered, b.filtered)


def test_warm_start_lands_on_the_cold_optimum(data):
    prev = fit_regime(data[:-1], 2, seed=0)
    cold = fit_regime(data, 2, seed=0)
    warm = fit_regime(data, 2, seed=0, init=prev)
    assert warm.warm and not cold.warm
    assert warm.n_iter <= cold.n_iter
    assert warm.log_likelihood >= cold.log_likelihood - 1e-3
    np.testing.assert_allclose(warm.means, cold.means, atol=1e-4)
    np.testing.assert_allclose(warm.transmat, cold.transmat, atol=1e-2)


# --------------------------------------------------------------------------- filtering


def test_smoothed_probs_are_the_fits_and_meet_the_filtered_at_the_last_row(fit, data):
    smoothed = smoothed_probs(fit, data)
    np.testing.assert_allclose(smoothed, fit.smoothed, atol=1e-12)
    np.testing.assert_allclose(smoothed[-1], fit.filtered[-1], atol=1e-12)
    # Earlier rows use later ones, so they differ from the filtered probabilities.
    assert np.abs(smoothed[:-1] - fit.filtered[:-1]).max() > 1e-2
    half = smoothed_probs(fit, data[:150])
    assert np.abs(half - smoothed[:150]).max() > 1e-3


def test_filtered_probs_by_an_explicit_forward_loop(fit, data):
    dens = np.column_stack([multivariate_normal(fit.means[s], fit.covs[s]).pdf(data)
                            for s in range(fit.n_states)])
    expected = np.empty_like(dens)
    alpha = fit.startprob * dens[0]
    expected[0] = alpha / alpha.sum()
    for t in range(1, len(data)):
        alpha = (expected[t - 1] @ fit.transmat) * dens[t]
        expected[t] = alpha / alpha.sum()
    np.testing.assert_allclose(filtered_probs(fit, data), expected, atol=1e-10)
    np.testing.assert_allclose(fit.filtered, expected, atol=1e-10)
    np.testing.assert_allclose(fit.gamma_last, expected[-1], atol=1e-10)


def test_filtered_row_t_uses_rows_up_to_t_only(fit, data):
    full = filtered_probs(fit, data)
    for t in (0, 1, 57, 150, len(data) - 1):
        np.testing.assert_allclose(filtered_probs(fit, data[: t + 1])[-1], full[t], atol=1e-12)


def test_filter_survives_rows_far_in_the_tails(fit, data):
    x = data.copy()
    x[100] = [1.5, -1.5, 1.5]  # dozens of standard deviations: densities underflow
    probs = filtered_probs(fit, x)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert probs[100].argmax() == 0  # the wide (stressed) state explains it


# --------------------------------------------------------------------------- forecasts


def test_forecast_probs_are_powers_of_the_transition_matrix(fit):
    gamma = fit.gamma_last
    g = gamma.copy()
    for h in range(6):
        pi = forecast_probs(fit, gamma, h)
        np.testing.assert_allclose(pi, g, atol=1e-14)
        assert pi.sum() == pytest.approx(1.0, abs=1e-14)
        g = g @ fit.transmat  # pi_h' = gamma' P^h, i.e. pi_h = (P^h)' gamma
    np.testing.assert_allclose(forecast_probs(fit.transmat, gamma, 3),
                               np.linalg.matrix_power(fit.transmat, 3).T @ gamma, atol=1e-14)


def test_forecast_probs_rows_and_the_stationary_limit(fit):
    rows = forecast_probs(fit, fit.filtered, 2)
    assert rows.shape == fit.filtered.shape
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rows[-1], forecast_probs(fit, fit.gamma_last, 2), atol=1e-15)
    vals, vecs = np.linalg.eig(fit.transmat.T)
    stationary = np.real(vecs[:, np.argmax(np.real(vals))])
    stationary /= stationary.sum()
    np.testing.assert_allclose(forecast_probs(fit, np.array([1.0, 0.0]), 2000), stationary,
                               atol=1e-10)


# --------------------------------------------------------------------------- mixture moments


def random_mixture(seed: int, n_states: int = 3, k: int = 4):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(n_states))
    means = rng.normal(0.0, 0.02, (n_states, k))
    covs = np.empty((n_states, k, k))
    for s in range(n_states):
        a = rng.normal(0.0, 0.03, (k, k))
        covs[s] = a @ a.T + np.diag(rng.uniform(1e-4, 1e-3, k))
    return probs, means, covs


def test_mixture_moments_equal_the_closed_form():
    probs, means, covs = random_mixture(1)
    mean, cov = mixture_moments(probs, means, covs)
    k = means.shape[1]
    exp_mean = np.zeros(k)
    second = np.zeros((k, k))
    for s in range(len(probs)):
        for i in range(k):
            exp_mean[i] += probs[s] * means[s, i]
            for j in range(k):
                second[i, j] += probs[s] * (covs[s, i, j] + means[s, i] * means[s, j])
    exp_cov = second - np.outer(exp_mean, exp_mean)
    np.testing.assert_allclose(mean, exp_mean, rtol=0, atol=1e-16)
    np.testing.assert_allclose(cov, exp_cov, rtol=1e-12, atol=1e-17)
    np.testing.assert_array_equal(cov, cov.T)


def test_mixture_moments_match_draws_from_the_mixture():
    """Law of total variance, checked on 400 000 draws (tolerance 5 Monte-Carlo s.e.)."""
    probs, means, covs = random_mixture(2)
    rng = np.random.default_rng(3)
    n = 400_000
    comp = rng.choice(len(probs), size=n, p=probs)
    chol = np.linalg.cholesky(covs)
    draws = means[comp] + np.einsum("nij,nj->ni", chol[comp], rng.standard_normal((n, 4)))
    mean, cov = mixture_moments(probs, means, covs)
    se_mean = draws.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * se_mean)
    dev = draws - draws.mean(axis=0)
    prods = dev[:, :, None] * dev[:, None, :]
    se_cov = prods.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(prods.mean(axis=0) - cov) < 5 * se_cov)


def test_mixture_of_one_state_is_that_state():
    probs, means, covs = random_mixture(4)
    one = np.zeros(len(probs))
    one[1] = 1.0
    mean, cov = mixture_moments(one, means, covs)
    np.testing.assert_allclose(mean, means[1], atol=1e-18)
    np.testing.assert_allclose(cov, covs[1], atol=1e-18)


def test_factor_moments_regime_is_the_forecast_mixture(data):
    dates = pd.date_range("2000-01-31", periods=len(data), freq="ME")
    frame = pd.DataFrame(data, index=dates, columns=["MKT", "SMB", "HML"])
    t = 240
    moments = factor_moments(frame, "regime", n_states=2, horizon=3, seed=0, asof=dates[t - 1])
    fit = fit_regime(data[:t], 2, seed=0)
    pi = forecast_probs(fit, fit.gamma_last, 3)
    mean, cov = mixture_moments(pi, fit.means, fit.covs)
    np.testing.assert_array_equal(moments.probs, pi)
    np.testing.assert_array_equal(moments.mean, mean)
    np.testing.assert_array_equal(moments.cov, cov)
    assert moments.method == "regime" and moments.horizon == 3 and moments.n_obs == t
    assert moments.end == dates[t - 1] and moments.factors == ("MKT", "SMB", "HML")
    # No look-ahead: rewriting every row after t changes nothing at t.
    frame2 = frame.copy()
    frame2.iloc[t:] = 0.5
    again = factor_moments(frame2, "regime", n_states=2, horizon=3, seed=0, asof=dates[t - 1])
    np.testing.assert_array_equal(again.mean, moments.mean)
    np.testing.assert_array_equal(again.cov, moments.cov)
    warm = factor_moments(frame, "regime", n_states=2, horizon=3, asof=dates[t],
                          warm_start=moments.regime)
    assert warm.regime is not None and warm.regime.warm and warm.n_obs == t + 1


# --------------------------------------------------------------------------- regime betas


def ols(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones(len(x)), x])
    return np.linalg.lstsq(design, y, rcond=None)[0]


def test_regime_betas_with_known_states_are_per_state_ols():
    x, states = two_regime(400, seed=5)
    rng = np.random.default_rng(9)
    true = np.array([[0.001, 1.4, 0.3, -0.2], [0.0, 0.8, 0.1, 0.4]])  # per true state
    y = np.einsum("tm,tm->t", np.column_stack([np.ones(len(x)), x]), true[states])
    y = y + rng.normal(0.0, 0.01, len(x))
    probs = np.eye(2)[states]
    pi = np.array([0.3, 0.7])
    res = regime_betas(y, x, probs, pi)
    for s in range(2):
        expected = ols(y[states == s], x[states == s])
        np.testing.assert_allclose(res.state_loadings[s][:, 0], expected, atol=1e-10)
    np.testing.assert_allclose(res.loadings, pi[0] * res.state_loadings[0]
                               + pi[1] * res.state_loadings[1], atol=1e-15)
    assert res.loadings.shape == (4, 1) and res.betas.shape == (3, 1)
    np.testing.assert_array_equal(res.alpha, res.loadings[0])
    # The state betas recover the truth within 5 standard errors of OLS.
    for s in range(2):
        design = np.column_stack([np.ones((states == s).sum()), x[states == s]])
        se = 0.01 * np.sqrt(np.diag(np.linalg.inv(design.T @ design)))
        assert np.all(np.abs(res.state_loadings[s][:, 0] - true[s]) < 5 * se)
    assert not res.fallback.any()


def test_regime_betas_weighted_by_probabilities_and_missing_returns(fit, data):
    rng = np.random.default_rng(2)
    y = data @ rng.normal(1.0, 0.3, (3, 5)) + rng.normal(0.0, 0.02, (len(data), 5))
    y[:40, 1] = np.nan
    y[rng.random(len(data)) < 0.1, 3] = np.nan
    res = regime_betas(pd.DataFrame(y), data, fit.smoothed, fit.gamma_last)
    for i in range(5):
        rows = np.isfinite(y[:, i])
        for s in range(2):
            w = np.sqrt(fit.smoothed[rows, s])
            design = np.column_stack([np.ones(rows.sum()), data[rows]]) * w[:, None]
            expected = np.linalg.lstsq(design, y[rows, i] * w, rcond=None)[0]
            np.testing.assert_allclose(res.state_loadings[s][:, i], expected, atol=1e-9)


def test_regime_betas_fall_back_when_a_state_has_no_weight_on_an_asset():
    x, states = two_regime(300, seed=8)
    rng = np.random.default_rng(1)
    y = np.column_stack([x @ [1.0, 0.5, 0.2], x @ [0.7, 0.1, 0.0]])
    y = y + rng.normal(0.0, 0.01, y.shape)
    y[states == 1, 1] = np.nan  # asset 1 only has returns in state 0
    res = regime_betas(y, x, np.eye(2)[states], np.array([0.5, 0.5]))
    assert res.fallback.tolist() == [[False, False], [False, True]]
    np.testing.assert_allclose(res.state_loadings[1][:, 1], ols(y[states == 0, 1],
                                                               x[states == 0]), atol=1e-10)


# --------------------------------------------------------------------------- bad input


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) < 160
    return text


def test_bad_inputs_give_one_readable_error(data):
    nan = data.copy()
    nan[10, 1] = np.nan
    with pytest.raises(InputError) as exc:
        fit_regime(nan, 2, 0)
    assert "factors" in one_line(exc) and "row 11" in str(exc.value)
    for bad in (1, 5, 2.5, True, "2"):
        with pytest.raises(InputError) as exc:
            fit_regime(data, bad, 0)
        assert "n_states" in one_line(exc) and "2 to 4" in str(exc.value)
    need = regime_min_rows(3, 3)
    with pytest.raises(InputError) as exc:
        fit_regime(data[: need - 1], 3, 0)
    assert f"at least {need} rows" in one_line(exc)
    const = data.copy()
    const[:, 2] = 0.01
    with pytest.raises(InputError, match="column 3 is constant"):
        fit_regime(const, 2, 0)
    with pytest.raises(InputError, match="init"):
        fit_regime(data, 3, 0, init=fit_regime(data, 2, 0))
    with pytest.raises(InputError, match="seed"):
        fit_regime(data, 2, -1)
    with pytest.raises(InputError, match="gamma must sum to 1"):
        forecast_probs(np.eye(2), np.array([0.5, 0.6]), 1)
    with pytest.raises(InputError, match="horizon"):
        forecast_probs(np.eye(2), np.array([0.5, 0.5]), -1)
    with pytest.raises(InputError, match="transmat"):
        forecast_probs(np.array([[0.5, 0.6], [0.5, 0.5]]), np.array([0.5, 0.5]), 1)
    with pytest.raises(InputError, match="probs"):
        mixture_moments(np.array([0.2, 0.2]), np.zeros((2, 3)), np.array([np.eye(3)] * 2))
    with pytest.raises(InputError, match="factors has 2 columns"):
        filtered_probs(fit_regime(data, 2, 0), data[:, :2])


def test_degenerate_or_unconverged_fits_raise_convergence_error(data):
    rng = np.random.default_rng(1)
    iid = rng.normal(0.0, 0.04, (24, 2))  # no regimes; four states must collapse
    with pytest.raises(ConvergenceError) as exc:
        fit_regime(iid, 4, seed=0)
    assert re.fullmatch(r"regime model is degenerate: state [0-3] covers \d+\.\d rows, fewer "
                        r"than 3; use fewer states or more rows", one_line(exc))
    assert exc.value.argument == "n_states"
    with pytest.raises(ConvergenceError) as exc:
        fit_regime(data, 2, seed=0, n_iter=2, tol=1e-12)
    assert "did not converge in 2 EM iterations" in one_line(exc)


def test_every_error_by_its_text(data, fit):
    nan = data.copy()
    nan[10, 1] = np.nan
    const = data.copy()
    const[:, 2] = 0.01
    table = "factors must be a table (periods in rows, factors in columns)"
    cases = [
        ((np.zeros((3, 0)), 2, 0), {}, table, "factors"),
        ((np.zeros((4, 2, 2)), 2, 0), {}, table, "factors"),
        ((nan, 2, 0), {}, "factors has a missing or non-finite value in row 11, column 2",
         "factors"),
        ((data, 5, 0), {}, "n_states must be a whole number from 2 to 4 (got 5)", "n_states"),
        ((data[:10], 3, 0), {}, f"factors needs at least {regime_min_rows(3, 3)} rows for 3 "
         "states and 3 factors (has 10)", "factors"),
        ((data, 2, -1), {}, "seed must be a non-negative whole number", "seed"),
        ((data, 2, 0), {"n_iter": 0}, "n_iter must be a positive whole number", "n_iter"),
        ((data, 2, 0), {"n_init": 0}, "n_init must be a whole number from 1 to 20", "n_init"),
        ((data, 2, 0), {"tol": 0.0}, "tol must be a positive number", "tol"),
        ((const, 2, 0), {}, "factors column 3 is constant", "factors"),
        ((data, 2, 0), {"min_covar": -1.0}, "min_covar must be a positive number", "min_covar"),
        ((data, 3, 0), {"init": fit}, "init has 2 states and 3 factors, not 3 and 3", "init"),
    ]
    for args, kwargs, text, argument in cases:
        raises_exactly(text, argument, fit_regime, *args, **kwargs)
    raises_exactly("factors has 2 columns but the regime model 3", "factors",
                   filtered_probs, fit, data[:, :2])
    raises_exactly("factors has no rows", "factors", smoothed_probs, fit, data[:0])
    half = np.array([0.5, 0.5])
    for gamma, text in [(np.array([0.5, 0.5, 0.0]), "gamma must have 2 state probabilities "
                         "(has 3)"),
                        (np.array([-0.5, 1.5]), "gamma must be finite and non-negative"),
                        (np.array([0.5, 0.6]), "gamma must sum to 1 (sums to 1.1)")]:
        raises_exactly(text, "gamma", forecast_probs, np.eye(2), gamma, 1)
    raises_exactly("transmat must be square", "transmat", forecast_probs, np.ones((2, 3)) / 3,
                   half, 1)
    raises_exactly("transmat must sum to 1 in row 2 (sums to 1.1)", "transmat", forecast_probs,
                   np.array([[0.5, 0.5], [0.5, 0.6]]), half, 1)
    raises_exactly("horizon must be a whole number of periods, 0 or more", "horizon",
                   forecast_probs, np.eye(2), half, -1)
    raises_exactly("means must be (S, k) and covs (S, k, k)", "covs", mixture_moments, half,
                   np.zeros((2, 3)), np.array([np.eye(2)] * 2))
    raises_exactly("probs must be one vector of state probabilities", "probs", mixture_moments,
                   np.array([[0.5, 0.5]]), np.zeros((2, 3)), np.array([np.eye(3)] * 2))
    y = data[:, :1] * 2.0
    raises_exactly("excess_returns must have 300 rows like factors", "excess_returns",
                   regime_betas, y[:-1], data, fit.smoothed, half)
    raises_exactly("state_probs must be (300, S) like factors", "state_probs",
                   regime_betas, y, data, fit.smoothed[:-1], half)
    inf = y.copy()
    inf[3, 0] = np.inf
    raises_exactly("excess_returns has an infinite value", "excess_returns",
                   regime_betas, inf, data, fit.smoothed, half)
    raises_exactly("pi must have 2 state probabilities (has 3)", "pi",
                   regime_betas, y, data, fit.smoothed, np.array([0.2, 0.3, 0.5]))
    with pytest.raises(ConvergenceError) as exc:
        fit_regime(data, 2, seed=0, n_iter=2, tol=1e-12)
    assert re.fullmatch(r"regime model did not converge in 2 EM iterations \(last gain "
                        r"[0-9.e+]+\); raise n_iter", str(exc.value))
    assert exc.value.argument == "n_iter"


@pytest.mark.parametrize("n_states", [2, 3, 4])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_min_rows_counts_the_free_parameters(n_states, k):
    """Start (S - 1), transitions (S(S - 1)), means (S k), full covariances (S k(k+1)/2)."""
    free = {"start": n_states - 1, "trans": n_states * (n_states - 1), "means": n_states * k,
            "covs": n_states * len(np.triu_indices(k)[0])}
    try:  # hmmlearn's own count, where it is installed
        from hmmlearn.hmm import GaussianHMM

        model = GaussianHMM(n_states, covariance_type="full")
        model.n_features = k
        free = model._get_n_fit_scalars_per_param()
    except ImportError:
        pass
    numbers = sum(free.values())
    expected = max(n_states * (k + 1), math.ceil(numbers / k))
    got = regime_min_rows(n_states, k)
    assert got == expected and type(got) is int  # it is printed in messages: 16, not 16.0


def test_fit_accepts_exactly_the_minimum_rows(data):
    need = regime_min_rows(2, 3)
    with pytest.raises(InputError, match=f"factors needs at least {need} rows"):
        fit_regime(data[:need - 1], 2, seed=0)
    try:
        got = fit_regime(data[:need], 2, seed=0)
    except ConvergenceError:
        return  # so few rows may not fit well; they are not refused as input
    assert got.n_obs == need and np.isfinite(got.log_likelihood)


def test_warm_start_from_its_own_optimum_stays_there(fit, data):
    again = fit_regime(data, 2, seed=0, init=fit)
    assert again.n_iter <= 2  # the first gain is already below tol
    assert again.log_likelihood == pytest.approx(fit.log_likelihood, abs=1e-3)


def test_probabilities_from_a_sheet_and_their_renormalisation(fit, data):
    p = fit.transmat
    gamma = np.array([0.25, 0.75 + 4e-7])  # within the tolerance of summing to 1
    got = forecast_probs(p.tolist(), np.array(gamma, dtype=object), 3)
    expected = (gamma / gamma.sum()) @ np.linalg.matrix_power(p, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    assert got.sum() == pytest.approx(1.0, abs=1e-15)
    tiny = forecast_probs(np.eye(2), np.array([1.0 + 1e-9, -1e-9]), 0)
    assert (tiny >= 0).all() and tiny.sum() == pytest.approx(1.0, abs=1e-15)
    raises_exactly("horizon must be a whole number of periods, 0 or more", "horizon",
                   forecast_probs, p, gamma, True)
    means = np.array([[0.01, 0.0], [-0.02, 0.01]], dtype=object)
    covs = np.array([np.eye(2) * 0.001, np.eye(2) * 0.004], dtype=object)
    mean, cov = mixture_moments(np.array([0.3, 0.7], dtype=object), means, covs)
    mu = np.array([[0.01, 0.0], [-0.02, 0.01]])
    m = 0.3 * mu[0] + 0.7 * mu[1]
    np.testing.assert_allclose(mean, m, rtol=1e-15)
    np.testing.assert_allclose(cov, 0.3 * (np.eye(2) * 0.001 + np.outer(mu[0], mu[0]))
                               + 0.7 * (np.eye(2) * 0.004 + np.outer(mu[1], mu[1]))
                               - np.outer(m, m), rtol=1e-12, atol=1e-18)
    raises_exactly("probs must have 2 state probabilities (has 3)", "probs", mixture_moments,
                   np.array([0.2, 0.3, 0.5]), mu, np.array([np.eye(2)] * 2))
    # probabilities off 1 by less than the tolerance are renormalised, not used as given
    off = np.array([0.3, 0.7 + 6e-7])
    mean_off, _ = mixture_moments(off, mu, np.array([np.eye(2)] * 2))
    np.testing.assert_allclose(mean_off, (off / off.sum()) @ mu, rtol=1e-14)


def test_regime_betas_fields_and_inputs_from_a_sheet(fit, data):
    rng = np.random.default_rng(4)
    y = data @ rng.normal(1.0, 0.3, (3, 2)) + rng.normal(0.0, 0.02, (len(data), 2))
    pi = np.array([0.4, 0.6])
    res = regime_betas(y, data, fit.smoothed, pi)
    as_cells = regime_betas(y.astype(object), data, fit.smoothed.astype(object),
                            pi.astype(object))
    np.testing.assert_allclose(as_cells.loadings, res.loadings, rtol=0, atol=0)
    np.testing.assert_array_equal(res.probs, pi)
    one = regime_betas(y, data[:, 0], fit.smoothed, pi)  # one factor as a plain vector
    np.testing.assert_array_equal(one.loadings, regime_betas(y, data[:, :1], fit.smoothed,
                                                             pi).loadings)
    assert one.loadings.shape == (2, 2)
    assert res.fallback.dtype == bool and not res.fallback.any()
    for s in range(2):
        for i in range(2):
            w = fit.smoothed[:, s]
            design = np.column_stack([np.ones(len(data)), data])
            resid = y[:, i] - design @ res.state_loadings[s][:, i]
            # weighted residual variance, degrees of freedom from the effective rows
            assert res.state_resid_var[s, i] > 0
            assert res.state_resid_var[s, i] == pytest.approx(
                (w * resid**2).sum() / w.sum(), rel=0.1)
    bad = fit.smoothed.copy()
    bad[5] = [0.5, 0.6]
    # the row at fault is named, with its own sum
    raises_exactly("state_probs must sum to 1 in row 6 (sums to 1.1)", "state_probs",
                   regime_betas, y, data, bad, pi)


# --------------------------------------------------------------------------- mutation-testing gaps


def test_fit_refuses_each_argument_at_its_boundary(data):
    short = data[:120]
    for seed in (True, 1.5, "1"):
        raises_exactly("seed must be a non-negative whole number", "seed", fit_regime, short, 2,
                       seed)
    for n_iter in (True, 2.0, -1):
        raises_exactly("n_iter must be a positive whole number", "n_iter", fit_regime, short, 2,
                       0, n_iter=n_iter)
    for n_init in (True, 21, 2.0):
        raises_exactly("n_init must be a whole number from 1 to 20", "n_init", fit_regime,
                       short, 2, 0, n_init=n_init)
    for tol in (-1e-4, math.nan, math.inf):
        raises_exactly("tol must be a positive number", "tol", fit_regime, short, 2, 0, tol=tol)
    for floor in (0.0, math.nan, math.inf):
        raises_exactly("min_covar must be a positive number", "min_covar", fit_regime, short, 2,
                       0, min_covar=floor)
    # the limits themselves are accepted: one EM iteration is allowed (it cannot converge:
    # there is no gain yet), 20 starts are, numpy integers are
    raises_exactly("regime model did not converge in 1 EM iterations (last gain nan); raise "
                   "n_iter", "n_iter", fit_regime, short, 2, 0, n_iter=1, kind=ConvergenceError)
    many = fit_regime(short, np.int64(2), np.int64(3), n_init=20)
    assert many.n_starts == 20 and 0 <= many.start < 20 and many.seed == 3


def test_fit_records_how_it_was_made(data):
    before = time.perf_counter()
    got = fit_regime(data, 2, seed=4, n_init=2)
    elapsed = time.perf_counter() - before
    assert got.seed == 4 and type(got.seed) is int and not got.warm
    assert got.n_starts == 2 and got.start in (0, 1) and got.n_obs == len(data)
    assert 0 < got.seconds <= elapsed
    # default floor: 1e-3 times the mean of the columns' sample variances
    col_var = [np.sum((c - c.mean()) ** 2) / (len(c) - 1) for c in data.T]
    assert got.min_covar == pytest.approx(1e-3 * sum(col_var) / len(col_var), rel=1e-12)
    assert fit_regime(data, 2, seed=0, min_covar=2e-5).min_covar == 2e-5
    warm = fit_regime(data, 2, seed=9, init=got)
    assert warm.warm and warm.seed == 9 and warm.start == 0 and warm.n_starts == 1
    # of two starts reaching the same likelihood (seed 1 here), the first is kept
    one = fit_regime(data, 2, seed=1, n_init=1)
    two = fit_regime(data, 2, seed=1, n_init=2)
    assert two.log_likelihood == one.log_likelihood and two.start == 0


def test_warm_start_begins_at_floored_renormalised_probabilities(fit, data):
    """Zeros in the earlier fit's probabilities become 1e-6, each row renormalised to 1."""
    trans = np.array([[1.0, 0.0], [0.3, 0.7]])  # one row floored, the other not
    start = np.array([1.0, 0.0])
    floored_t = np.array([[1.0, 1e-6], [0.3, 0.7]])
    floored_s = np.array([1.0, 1e-6])
    given = replace(fit, transmat=trans, startprob=start)
    # EM itself (xlfuncs.core._hmm) from those probabilities, by hand; tol so large that EM
    # stops after two iterations, so the start still shows in the result
    by_hand = _hmm.em(data, _hmm.HmmParams(floored_s / floored_s.sum(),
                                           floored_t / floored_t.sum(axis=1)[:, None],
                                           fit.means, fit.covs), fit.min_covar, 2, 1e10)
    got = fit_regime(data, 2, seed=0, init=given, tol=1e10)
    assert by_hand.converged and got.n_iter == 2
    order = np.argsort(by_hand.params.means[:, 0])
    np.testing.assert_allclose(got.means, by_hand.params.means[order], rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.transmat, by_hand.params.transmat[np.ix_(order, order)],
                               rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.covs, by_hand.params.covs[order], rtol=1e-12, atol=0)


def test_probabilities_at_the_tolerance_and_as_sheet_cells(fit, data):
    # a probability of exactly -1e-8 is rounding, clipped to 0 (below that it is refused)
    got = forecast_probs(np.eye(2), np.array([1.0 + 1e-8, -1e-8]), 0)
    np.testing.assert_array_equal(got, [1.0, 0.0])
    raises_exactly("gamma must be finite and non-negative", "gamma", forecast_probs, np.eye(2),
                   np.array([1.0 + 2e-8, -2e-8]), 0)
    # a transition matrix of sheet cells (an object array) is read as numbers
    cells = np.array(fit.transmat.tolist(), dtype=object)
    gamma = np.array([0.4, 0.6])
    expected = gamma @ fit.transmat @ fit.transmat
    np.testing.assert_allclose(forecast_probs(cells, gamma, 2), expected, rtol=1e-14)
    # factor returns as sheet cells too
    np.testing.assert_array_equal(filtered_probs(fit, data.astype(object)),
                                  filtered_probs(fit, data))


def test_regime_betas_need_k_plus_2_returns_per_fit():
    """k = 3 factors: an asset needs 5 returns; a state's fit 5 effective rows, else pooled."""
    x, _ = two_regime(40, seed=3)
    rng = np.random.default_rng(6)
    y = x @ np.array([[1.2, 0.8, 0.5], [0.3, -0.2, 0.1], [-0.4, 0.6, 0.2]]) + rng.normal(
        0.0, 0.01, (40, 3))
    y[5:, 1] = np.nan  # asset 1: exactly k + 2 = 5 returns
    y[4:, 2] = np.nan  # asset 2: 4 returns, too few
    probs = np.tile([0.5, 0.5], (40, 1))
    w0 = np.array([0.9, 0.8, 0.85, 0.95, 0.7])  # on asset 1's rows: state 0 ~4.95 rows,
    probs[:5] = np.column_stack([w0, 1 - w0])  # state 1 ~3.9 rows (falls back)
    res = regime_betas(y, x, probs, np.array([0.5, 0.5]))
    assert res.fallback.tolist() == [[False, False, False], [False, True, False]]
    assert np.isnan(res.state_loadings[:, :, 2]).all() and np.isnan(res.loadings[:, 2]).all()
    rows = slice(0, 5)
    sw = np.sqrt(w0)
    design = np.column_stack([np.ones(5), x[rows]])
    weighted = np.linalg.lstsq(design * sw[:, None], y[rows, 1] * sw, rcond=None)[0]
    np.testing.assert_allclose(res.state_loadings[0][:, 1], weighted, atol=1e-9)
    pooled = ols(y[rows, 1], x[rows])
    np.testing.assert_allclose(res.state_loadings[1][:, 1], pooled, atol=1e-9)
    # the pooled fit's residual variance, RSS / (n - k - 1), goes with its loadings
    rss = np.sum((y[rows, 1] - design @ pooled) ** 2)
    assert res.state_resid_var[1, 1] == pytest.approx(rss / (5 - 4), rel=1e-6)


def test_nullable_columns_from_pandas_read_their_missing_values_as_nan(fit, data):
    """Columns of pandas' nullable dtypes (e.g. read from a sheet) hold pd.NA, not NaN."""
    factors = pd.DataFrame({"MKT": pd.array(data[:, 0], dtype="Float64"),
                            "SMB": pd.array(data[:, 1], dtype="Float64"),
                            "HML": pd.array(data[:, 2], dtype="Float64")})
    factors.iloc[7, 1] = pd.NA
    raises_exactly("factors has a missing or non-finite value in row 8, column 2", "factors",
                   filtered_probs, fit, factors)
    rng = np.random.default_rng(5)
    y = data @ rng.normal(1.0, 0.3, (3, 2)) + rng.normal(0.0, 0.02, (len(data), 2))
    y[:30, 0] = np.nan
    frame = pd.DataFrame({"A": pd.array(y[:, 0], dtype="Float64"),
                          "B": pd.array(np.round(y[:, 1] * 1e4), dtype="Int64")})
    pi = np.array([0.4, 0.6])
    got = regime_betas(frame, data, fit.smoothed, pi)
    plain = np.column_stack([y[:, 0], np.round(y[:, 1] * 1e4)])
    np.testing.assert_array_equal(got.loadings, regime_betas(plain, data, fit.smoothed,
                                                             pi).loadings)


def thin_state_fit(n_far: int) -> tuple[np.ndarray, RegimeFit]:
    """60 rows of noise, ``n_far`` of them far out, and a 3-state start with a state there."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 0.04, (60, 2))
    x[:n_far] += 0.2
    means = np.array([[-0.01, 0.0], [0.01, 0.0], [0.2, 0.2]])
    covs = np.array([np.eye(2) * 0.0016] * 3)
    trans = np.full((3, 3), 0.05) + np.eye(3) * 0.85
    init = RegimeFit(means, covs, trans, np.full(3, 1 / 3), np.zeros((1, 3)), np.zeros((1, 3)),
                     0.0, 1, 1, 0, False, 1e-6, 0.0)
    return x, init


def test_a_thin_state_is_named_with_its_rows_rounded_down():
    """Two EM iterations (huge tol) from a start with a state on 3 far rows: k + 1 = 3 needed."""
    x, init = thin_state_fit(3)
    floor = 1e-3 * np.var(x, axis=0, ddof=1).mean()
    res = _hmm.em(x, _hmm.HmmParams(init.startprob, init.transmat, init.means, init.covs),
                  floor, 2, 1e10)
    p = res.params
    post = _hmm.forward_backward(_hmm.log_emissions(x, p.means, p.covs), p.startprob,
                                 p.transmat, True)
    occupancy = post.smoothed.sum(axis=0)[np.argsort(p.means[:, 0])]
    thin = int(np.argmin(occupancy))
    assert 2.9 < occupancy[thin] < 3  # shown as 2.9 (rounded down), not 3.0
    rows = Decimal(occupancy[thin]).quantize(Decimal("0.1"), rounding=ROUND_FLOOR)
    raises_exactly(f"regime model is degenerate: state {thin} covers {rows} rows, fewer than 3; "
                   "use fewer states or more rows", "n_states", fit_regime, x, 3, 0, init=init,
                   tol=1e10, kind=ConvergenceError)
    # a fourth far row: the state covers just under 4 rows, enough
    x4, init4 = thin_state_fit(4)
    got = fit_regime(x4, 3, 0, init=init4, tol=1e10)
    assert 3 < got.occupancy.min() < 4


def test_a_failed_start_is_passed_over_for_the_next():
    x = np.random.default_rng(2).normal(0.0, 0.04, (40, 2))  # no regimes; 4 states
    with pytest.raises(ConvergenceError):
        fit_regime(x, 4, seed=0, n_init=1)  # the first start ends degenerate
    got = fit_regime(x, 4, seed=0, n_init=2)
    assert got.start == 1 and got.n_starts == 2
    assert got.occupancy.min() >= 3 and np.isclose(got.occupancy.sum(), 40)
