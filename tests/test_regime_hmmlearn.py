"""The core's HMM against hmmlearn, the independent reference (SPEC 3.3).

hmmlearn is only in the test extra, and only below Python 3.14 (it publishes no
wheels beyond): elsewhere this module is skipped and tests/test_hmm.py's
brute-force checks stand alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlfuncs.core import _hmm
from xlfuncs.core._regime import (
    fit_regime,
    forecast_probs,
    mixture_moments,
    smoothed_probs,
)
from xlfuncs.data.samples import sample_path
from xlfuncs.errors import ConvergenceError

hmm = pytest.importorskip("hmmlearn.hmm")

FACTORS = ("Mkt-RF", "SMB", "HML", "Mom")


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    """The bundled monthly Fama-French factors, 1949 on, as decimals."""
    frame = pd.read_csv(sample_path("ff_factors_monthly.csv"))
    return frame[list(FACTORS)].to_numpy(dtype=float)


def reference(n_states: int, floor: float, **kwargs) -> hmm.GaussianHMM:
    k = len(FACTORS)
    return hmm.GaussianHMM(n_components=n_states, covariance_type="full", min_covar=floor,
                           covars_prior=floor * np.eye(k), covars_weight=1, **kwargs)


def set_params(model: hmm.GaussianHMM, p: _hmm.HmmParams) -> None:
    model.startprob_, model.transmat_ = p.startprob.copy(), p.transmat.copy()
    model.means_, model.covars_ = p.means.copy(), p.covs.copy()


def by_first_mean(means, covs, transmat=None):
    order = np.argsort(means[:, 0], kind="stable")
    out = [means[order], covs[order]]
    if transmat is not None:
        out.append(transmat[np.ix_(order, order)])
    return out


@pytest.fixture(scope="module")
def start(factors) -> tuple[_hmm.HmmParams, float]:
    """A non-trivial starting point: one hmmlearn EM step from its own k-means start."""
    floor = 1e-3 * factors.var(axis=0, ddof=1).mean()
    model = reference(3, floor, random_state=0, n_iter=1, init_params="mc")
    model.startprob_ = np.full(3, 1 / 3)
    model.transmat_ = np.full((3, 3), 0.05) + np.eye(3) * 0.85
    model.fit(factors)
    return _hmm.HmmParams(model.startprob_, model.transmat_, model.means_, model.covars_), floor


def test_likelihood_and_posteriors_equal_hmmlearn_at_the_same_parameters(factors, start):
    p, floor = start
    model = reference(3, floor)
    set_params(model, p)
    loglik, smoothed = model.score_samples(factors)
    post = _hmm.forward_backward(_hmm.log_emissions(factors, p.means, p.covs), p.startprob,
                                 p.transmat)
    assert post.log_likelihood == pytest.approx(loglik, rel=1e-12)
    np.testing.assert_allclose(post.smoothed, smoothed, atol=1e-10)
    # Filtered and smoothed agree at the last row only.
    np.testing.assert_allclose(post.filtered[-1], smoothed[-1], atol=1e-10)
    assert np.abs(post.filtered[:-1] - smoothed[:-1]).max() > 1e-2


def test_em_from_the_same_start_equals_hmmlearn(factors, start):
    p, floor = start
    model = reference(3, floor, n_iter=500, tol=1e-4, init_params="")
    set_params(model, p)
    model.fit(factors)
    ours = _hmm.em(factors, p, floor, 500, 1e-4)
    assert ours.converged and ours.n_iter == model.monitor_.iter
    assert ours.history[-1] == pytest.approx(model.monitor_.history[-1], rel=1e-6)
    np.testing.assert_allclose(ours.history, model.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(ours.params.means, model.means_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(ours.params.covs, model.covars_, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.params.transmat, model.transmat_, atol=1e-8)


# seed 2 with 3 states: k-means keeps a different clustering from 11 runs than from 10
@pytest.mark.parametrize(("n_states", "seed"), [(2, 7), (3, 7), (3, 2)])
def test_a_cold_fit_equals_hmmlearn_from_its_own_initialisation(factors, n_states, seed):
    """fit_regime's first start is hmmlearn's: same k-means, same EM, same states."""
    x = factors[:480]  # 1949-1988: an expanding window as the backtest sees it
    fit = fit_regime(x, n_states, seed=seed, n_init=1)
    s = n_states
    model = reference(s, fit.min_covar, random_state=seed, n_iter=500, tol=1e-4,
                      init_params="mc")
    model.startprob_ = np.full(s, 1 / s)
    model.transmat_ = np.full((s, s), 0.1 / (s - 1)) + np.eye(s) * (0.9 - 0.1 / (s - 1))
    model.fit(x)
    means, covs, transmat = by_first_mean(model.means_, model.covars_, model.transmat_)
    np.testing.assert_allclose(fit.means, means, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(fit.covs, covs, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(fit.transmat, transmat, atol=1e-7)
    assert fit.log_likelihood == pytest.approx(model.score(x), rel=1e-9)
    assert fit.n_iter == model.monitor_.iter
    # The forecast mixture the optimiser uses, from hmmlearn's model.
    order = np.argsort(model.means_[:, 0], kind="stable")
    gamma = model.predict_proba(x)[-1][order]
    pi = forecast_probs(transmat, gamma, 3)
    mean, cov = mixture_moments(pi, means, covs)
    our_mean, our_cov = mixture_moments(forecast_probs(fit, fit.gamma_last, 3), fit.means,
                                        fit.covs)
    np.testing.assert_allclose(our_mean, mean, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(our_cov, cov, rtol=1e-6, atol=1e-14)
    np.testing.assert_allclose(smoothed_probs(fit, x), model.predict_proba(x)[:, order],
                               atol=1e-7)


# two iterations: the gain starts from the uniform start probabilities' likelihood
@pytest.mark.parametrize("n_iter", [2, 3])
def test_the_unconverged_message_gives_hmmlearns_last_gain(factors, n_iter):
    """EM iterations from hmmlearn's start: the gain named is the last minus the one before."""
    x = factors[:480]
    s = 3
    floor = 1e-3 * np.var(x, axis=0, ddof=1).mean()
    model = reference(s, floor, random_state=7, n_iter=n_iter, tol=1e-300, init_params="mc")
    model.startprob_ = np.full(s, 1 / s)
    model.transmat_ = np.full((s, s), 0.1 / (s - 1)) + np.eye(s) * (0.9 - 0.1 / (s - 1))
    model.fit(x)
    history = model.monitor_.history
    assert len(history) == n_iter
    with pytest.raises(ConvergenceError) as exc:
        fit_regime(x, s, seed=7, n_init=1, n_iter=n_iter, tol=1e-12)
    assert str(exc.value) == (f"regime model did not converge in {n_iter} EM iterations (last "
                              f"gain {history[-1] - history[-2]:.3g}); raise n_iter")
