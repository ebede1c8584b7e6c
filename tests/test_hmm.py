"""The core's Gaussian HMM (xlfuncs.core._hmm): passes and EM against brute force.

Every posterior is checked against an enumeration of all state paths, which
shares no code or recursion with the scans under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from errors_check import raises_exactly
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from xlfuncs.core import _hmm
from xlfuncs.core._regime import fit_regime
from xlfuncs.errors import ConvergenceError


def random_model(rng: np.random.Generator, n_states: int) -> tuple[np.ndarray, np.ndarray]:
    """A start vector and a clearly non-symmetric transition matrix."""
    start = rng.dirichlet(np.ones(n_states))
    trans = rng.dirichlet(np.ones(n_states) * 0.7, size=n_states)
    assert np.abs(trans - trans.T).max() > 0.1
    return start, trans


def brute_force(log_b: np.ndarray, start: np.ndarray, trans: np.ndarray):
    """Log-likelihood, filtered, smoothed and summed transition posteriors by enumerating paths."""
    t_len, n = log_b.shape
    paths = np.array(list(itertools.product(range(n), repeat=t_len)))
    with np.errstate(divide="ignore"):
        lp = np.log(start)[paths[:, 0]] + log_b[0, paths[:, 0]]
        for t in range(1, t_len):
            lp = lp + np.log(trans)[paths[:, t - 1], paths[:, t]] + log_b[t, paths[:, t]]
    loglik = logsumexp(lp)
    w = np.exp(lp - loglik)
    smoothed = np.array([[w[paths[:, t] == s].sum() for s in range(n)] for t in range(t_len)])
    xi = np.zeros((n, n))
    for t in range(t_len - 1):
        for a in range(n):
            for b in range(n):
                xi[a, b] += w[(paths[:, t] == a) & (paths[:, t + 1] == b)].sum()
    filtered = np.empty((t_len, n))
    for t in range(t_len):  # the same enumeration on the first t + 1 rows
        filtered[t] = brute_force_last(log_b[: t + 1], start, trans)
    return loglik, filtered, smoothed, xi


def brute_force_last(log_b, start, trans):
    t_len, n = log_b.shape
    paths = np.array(list(itertools.product(range(n), repeat=t_len)))
    lp = np.log(start)[paths[:, 0]] + log_b[0, paths[:, 0]]
    for t in range(1, t_len):
        lp = lp + np.log(trans)[paths[:, t - 1], paths[:, t]] + log_b[t, paths[:, t]]
    w = np.exp(lp - logsumexp(lp))
    return np.array([w[paths[:, -1] == s].sum() for s in range(n)])


@pytest.mark.parametrize(("t_len", "n_states", "seed"), [(1, 3, 0), (2, 2, 1), (5, 3, 2),
                                                          (7, 2, 3), (6, 4, 4)])
@pytest.mark.parametrize("path", ["scaled", "log"])
def test_passes_equal_an_enumeration_of_all_paths(t_len, n_states, seed, path):
    rng = np.random.default_rng(seed)
    start, trans = random_model(rng, n_states) if n_states > 1 else (np.ones(1), np.ones((1, 1)))
    log_b = rng.normal(0.0, 8.0, (t_len, n_states)) - 50.0  # densities far from 1
    loglik, filtered, smoothed, xi = brute_force(log_b, start, trans)
    if path == "scaled":
        post = _hmm._scaled_passes(log_b, start, trans, True)
        assert post is not None
    else:
        post = _hmm._log_passes(log_b, start, trans, True)
    assert post.log_likelihood == pytest.approx(loglik, rel=1e-13)
    np.testing.assert_allclose(post.filtered, filtered, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(post.smoothed, smoothed, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(post.xi_sum, xi, rtol=1e-10, atol=1e-14)
    forward_only = _hmm.forward_backward(log_b, start, trans, smooth=False)
    assert forward_only.smoothed is None
    np.testing.assert_allclose(forward_only.filtered, filtered, rtol=1e-10, atol=1e-14)


def explicit_forward(log_b, start, trans):
    """Textbook scaled forward loop, one row at a time."""
    dens = np.exp(log_b - log_b.max(axis=1, keepdims=True))
    out = np.empty_like(dens)
    total = 0.0
    alpha = start * dens[0]
    for t in range(len(dens)):
        if t:
            alpha = (out[t - 1] @ trans) * dens[t]
        total += np.log(alpha.sum()) + log_b[t].max()
        out[t] = alpha / alpha.sum()
    return out, total


@pytest.mark.parametrize("t_len", [3, 64, 65, 777])
def test_both_scans_equal_a_row_by_row_loop_on_long_sequences(t_len):
    """Lengths on and off a power of two; a transposed matrix anywhere would show."""
    rng = np.random.default_rng(t_len)
    start, trans = random_model(rng, 3)
    log_b = rng.normal(0.0, 3.0, (t_len, 3))
    filtered, loglik = explicit_forward(log_b, start, trans)
    for post in (_hmm._scaled_passes(log_b, start, trans, True),
                 _hmm._log_passes(log_b, start, trans, True)):
        np.testing.assert_allclose(post.filtered, filtered, rtol=1e-9, atol=1e-13)
        assert post.log_likelihood == pytest.approx(loglik, rel=1e-12)
        np.testing.assert_allclose(post.smoothed[-1], filtered[-1], rtol=1e-9, atol=1e-13)
        assert post.xi_sum.sum() == pytest.approx(t_len - 1, rel=1e-12)
        np.testing.assert_allclose(post.xi_sum.sum(axis=1)[:], post.smoothed[:-1].sum(axis=0),
                                   rtol=1e-9)


def test_the_log_space_path_takes_over_when_scaling_underflows():
    """A row only an unreachable state explains: the scaled products underflow, logs do not."""
    means = np.array([[0.0, 0.0], [1.0, 1.0]])
    covs = np.array([np.eye(2) * 1e-4, np.eye(2)])
    x = np.array([[0.0, 0.0], [0.01, -0.01], [1.0, 1.0], [0.0, 0.01]])
    log_b = _hmm.log_emissions(x, means, covs)
    assert (log_b[2, 1] - log_b[2, 0]) > 800  # exp underflows
    start, trans = np.array([1.0, 0.0]), np.eye(2)
    assert _hmm._scaled_passes(log_b, start, trans, True) is None
    post = _hmm.forward_backward(log_b, start, trans)
    np.testing.assert_array_equal(post.filtered, np.tile([1.0, 0.0], (4, 1)))
    np.testing.assert_array_equal(post.smoothed, post.filtered)
    expected = multivariate_normal(means[0], covs[0]).logpdf(x).sum()
    assert post.log_likelihood == pytest.approx(expected, rel=1e-12)


def test_a_row_no_state_can_explain_is_an_error():
    log_b = np.array([[0.0, -np.inf], [-np.inf, 0.0]])
    raises_exactly("regime model gives row 2 zero probability", "factors",
                   _hmm.forward_backward, log_b, np.array([1.0, 0.0]), np.eye(2),
                   kind=ConvergenceError)


def test_log_emissions_are_gaussian_log_densities():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 3))
    means = rng.normal(size=(2, 3))
    a = rng.normal(size=(2, 3, 3))
    covs = a @ np.swapaxes(a, 1, 2) + 0.1 * np.eye(3)
    expected = np.column_stack([multivariate_normal(means[s], covs[s]).logpdf(x)
                                for s in range(2)])
    np.testing.assert_allclose(_hmm.log_emissions(x, means, covs), expected, rtol=1e-12)
    covs[1] = np.ones((3, 3))  # singular
    raises_exactly("regime model state 1 has a singular covariance", "factors",
                   _hmm.log_emissions, x, means, covs, kind=ConvergenceError)


def test_one_m_step_is_the_posterior_weighted_estimate():
    """The M-step from enumerated posteriors: weighted means and floored covariances."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 2))
    start, trans = random_model(rng, 2)
    params = _hmm.HmmParams(start, trans, rng.normal(size=(2, 2)), np.array([np.eye(2)] * 2))
    floor = 0.05
    res = _hmm.em(x, params, floor, n_iter=1, tol=1e-9)
    log_b = np.column_stack([multivariate_normal(params.means[s], params.covs[s]).logpdf(x)
                             for s in range(2)])
    loglik, _, gamma, xi = brute_force(log_b, start, trans)
    assert res.history == [pytest.approx(loglik, rel=1e-13)]
    got = res.params
    np.testing.assert_allclose(got.startprob, gamma[0], rtol=1e-10)
    np.testing.assert_allclose(got.transmat, xi / xi.sum(axis=1, keepdims=True), rtol=1e-10)
    for s in range(2):
        w = gamma[:, s]
        mu = (w[:, None] * x).sum(axis=0) / w.sum()
        np.testing.assert_allclose(got.means[s], mu, rtol=1e-10)
        scatter = sum(w[t] * np.outer(x[t] - mu, x[t] - mu) for t in range(len(x)))
        np.testing.assert_allclose(got.covs[s], (scatter + floor * np.eye(2)) / w.sum(),
                                   rtol=1e-10)


def test_em_never_lowers_the_likelihood_and_stops_at_tol():
    rng = np.random.default_rng(2)
    x = np.vstack([rng.normal(0.01, 0.03, (120, 2)), rng.normal(-0.02, 0.07, (60, 2))])
    start, trans = random_model(rng, 2)
    init = _hmm.HmmParams(start, trans, x[[0, -1]], np.array([np.cov(x.T)] * 2))
    res = _hmm.em(x, init, 1e-5, n_iter=500, tol=1e-6)
    assert res.converged and res.n_iter > 3
    gains = np.diff(res.history)
    assert gains.min() > -1e-8
    assert gains[-1] < 1e-6 and (gains[:-1] >= 1e-6).all()
    short = _hmm.em(x, init, 1e-5, n_iter=2, tol=1e-6)
    assert short.converged is False and short.n_iter == 2
    # from the optimum, the second iteration's gain is already below tol: two iterations
    again = _hmm.em(x, res.params, 1e-5, n_iter=500, tol=1e-6)
    assert again.converged is True and again.n_iter == 2


def test_more_cold_starts_never_end_lower():
    """Starts other than hmmlearn's k-means can only raise the likelihood kept."""
    rng = np.random.default_rng(21)
    x = np.vstack([rng.normal(0.01, 0.03, (150, 3)), rng.normal(-0.03, 0.08, (40, 3)),
                   rng.normal(0.0, 0.015, (110, 3))])
    one = fit_regime(x, 3, seed=4, n_init=1)
    many = fit_regime(x, 3, seed=4, n_init=6)
    assert one.n_starts == 1 and many.n_starts == 6 and 0 <= many.start < 6
    assert many.log_likelihood >= one.log_likelihood
    if many.start == 0:
        np.testing.assert_array_equal(many.means, one.means)
    again = fit_regime(x, 3, seed=4, n_init=6)
    np.testing.assert_array_equal(again.means, many.means)
    assert again.start == many.start


@pytest.mark.parametrize("path", ["scaled", "log"])
def test_forward_only_passes_give_the_likelihood(path):
    rng = np.random.default_rng(12)
    start, trans = random_model(rng, 3)
    log_b = rng.normal(0.0, 4.0, (6, 3)) - 20.0
    loglik, filtered, _, _ = brute_force(log_b, start, trans)
    passes = _hmm._scaled_passes if path == "scaled" else _hmm._log_passes
    post = passes(log_b, start, trans, False)
    assert post.smoothed is None and post.xi_sum is None
    assert post.log_likelihood == pytest.approx(loglik, rel=1e-13)
    np.testing.assert_allclose(post.filtered, filtered, rtol=1e-10, atol=1e-14)


def test_m_step_rows_with_little_or_no_weight():
    """A from-state with under one expected transition is still estimated; one with none keeps
    its old row; a state with no weight at all is an error."""
    x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [1.0, 3.0]])
    gamma = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.5, 0.45, 0.05], [0.3, 0.6, 0.1]])
    xi = np.array([[1.2, 0.9, 0.05], [0.05, 0.15, 0.1], [0.0, 0.0, 0.0]])  # rows: 2.15, .3, 0
    old = _hmm.HmmParams(np.full(3, 1 / 3), np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1],
                                                     [0.25, 0.25, 0.5]]),
                         np.zeros((3, 2)), np.array([np.eye(2)] * 3))
    post = _hmm.Posteriors(gamma, gamma, xi, 0.0)
    got = _hmm._m_step(x, post, 0.01, old)
    np.testing.assert_allclose(got.transmat[0], xi[0] / 2.15, rtol=1e-14)
    np.testing.assert_allclose(got.transmat[1], xi[1] / 0.3, rtol=1e-14)
    np.testing.assert_array_equal(got.transmat[2], old.transmat[2])
    np.testing.assert_allclose(got.startprob, gamma[0], rtol=1e-15)
    w = gamma[:, 2]  # a state with 0.15 rows of weight is still estimated
    np.testing.assert_allclose(got.means[2], (w[:, None] * x).sum(axis=0) / w.sum(), rtol=1e-13)
    empty = gamma.copy()
    empty[:, 1] += empty[:, 2]
    empty[:, 2] = 0.0
    raises_exactly("regime model fit failed: a state has no rows", "n_states", _hmm._m_step, x,
                   _hmm.Posteriors(empty, empty, xi, 0.0), 0.01, old, kind=ConvergenceError)
    with pytest.raises(ValueError, match=r"^the M-step needs the smoothed probabilities$"):
        _hmm._m_step(x, _hmm.Posteriors(gamma, None, xi, 0.0), 0.01, old)
