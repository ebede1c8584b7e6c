"""Gaussian hidden Markov model: forward-backward passes and Baum-Welch EM.

The mathematics behind :mod:`xlfuncs.core._regime`, in numpy and scipy only
(no compiled extension, so it runs wherever numpy does, Pyodide included).

Model. ``S`` hidden states, start probabilities ``p0``, transition matrix
``A`` (``A[a, b]`` = probability of moving from *a* to *b*), and in state *s*
a Gaussian ``N(mu_s, Sigma_s)`` with a full ``k x k`` covariance. With the
emission densities ``b_t(s) = N(x_t; mu_s, Sigma_s)``:

* forward ``alpha_t = p0' diag(b_1) A diag(b_2) ... A diag(b_t)``, filtered
  probabilities ``alpha_t / sum(alpha_t)``, log-likelihood ``log sum(alpha_T)``;
* backward ``beta_t = A diag(b_{t+1}) ... A diag(b_T) 1``, smoothed
  probabilities ``gamma_t ∝ alpha_t * beta_t``;
* expected transitions ``xi_t(a, b) ∝ alpha_t(a) A[a, b] b_{t+1}(b) beta_{t+1}(b)``.

Both passes are products of the non-negative matrices
``M_t = A diag(b_t)``. They are computed as prefix (and suffix) products by a
parallel scan, ``log2 T`` batched matrix products instead of a Python loop of
``T`` steps; each partial product is divided by its largest entry and the log of
that scale carried, so nothing overflows. Products of non-negative matrices
have no cancellation, so every entry keeps its relative accuracy. When a
product underflows to zero (a row that only a state the chain cannot reach
explains) the same scan is redone in log space (log-sum-exp products).

EM (Baum 1970; Rabiner 1989) maximises the likelihood with an
inverse-Wishart-style floor on the covariances: the M-step is

* ``p0 = gamma_1``; ``A[a, :] ∝ sum_t xi_t(a, :)``;
* ``mu_s = sum_t gamma_t(s) x_t / n_s`` with ``n_s = sum_t gamma_t(s)``;
* ``Sigma_s = (floor * I + sum_t gamma_t(s) (x_t - mu_s)(x_t - mu_s)') / n_s``,

which is hmmlearn's ``GaussianHMM(covariance_type="full",
covars_prior=floor * I, covars_weight=1)`` update (the tests hold it to
hmmlearn). EM stops when the log-likelihood gains less than ``tol`` in one
iteration (a loss stops it too, as in hmmlearn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from xlfuncs.errors import ConvergenceError

__all__ = [
    "EmResult",
    "HmmParams",
    "Posteriors",
    "em",
    "forward_backward",
    "log_emissions",
]

_LOG_2PI = math.log(2.0 * math.pi)
_TINY = 1e-250  # a scale below this is treated as an underflow


@dataclass(frozen=True)
class HmmParams:
    """Parameters of a Gaussian HMM.

    Attributes
    ----------
    startprob : ndarray of shape (S,)
        Probabilities of the state at the first row.
    transmat : ndarray of shape (S, S)
        Rows are from-states and sum to 1.
    means : ndarray of shape (S, k)
        Per-state means.
    covs : ndarray of shape (S, k, k)
        Per-state covariances.

    """

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covs: np.ndarray


@dataclass(frozen=True)
class EmResult:
    """The outcome of :func:`em`.

    Attributes
    ----------
    params : HmmParams
        Parameters after the last M-step.
    history : list of float
        Log-likelihood of the parameters at the start of each iteration.
    converged : bool
        Whether the last gain was below ``tol`` (else ``n_iter`` ran out).

    """

    params: HmmParams
    history: list[float]
    converged: bool

    @property
    def n_iter(self) -> int:
        """EM iterations run."""
        return len(self.history)


def log_emissions(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Log densities ``log N(x_t; mu_s, Sigma_s)``.

    Parameters
    ----------
    x : ndarray of shape (T, k)
        Rows of observations.
    means : ndarray of shape (S, k)
        Per-state means.
    covs : ndarray of shape (S, k, k)
        Per-state covariances.

    Returns
    -------
    ndarray of shape (T, S)

    Raises
    ------
    ConvergenceError
        A covariance is not positive definite.

    """
    t_len, k = x.shape
    out = np.empty((t_len, means.shape[0]))
    for s in range(means.shape[0]):
        try:
            chol = np.linalg.cholesky(covs[s])
        except np.linalg.LinAlgError:
            raise ConvergenceError(f"regime model state {s} has a singular covariance",
                                   "factors") from None
        z = sla.solve_triangular(chol, (x - means[s]).T, lower=True, check_finite=False)
        out[:, s] = -0.5 * (k * _LOG_2PI + (z * z).sum(axis=0)) - np.log(np.diag(chol)).sum()
    return out


# --------------------------------------------------------------------------- scans


def _scan(m: np.ndarray, log_scale: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Prefix products ``m[0] @ ... @ m[t]`` (or suffix ``m[t] @ ... @ m[-1]``), scaled.

    Returns the products, each divided by its largest entry, and the logs of
    what was divided out plus ``log_scale`` summed over the factors. A product
    whose largest entry is 0 stays 0 (the caller checks).
    """
    p = m.copy()
    ls = log_scale.copy()
    t_len = len(p)
    d = 1
    while d < t_len:
        prod = p[:-d] @ p[d:]  # each window times the one after it
        big = prod.max(axis=(1, 2))
        safe = np.where(big > 0, big, 1.0)
        prod /= safe[:, None, None]
        with np.errstate(divide="ignore"):
            add = np.log(big)
        if reverse:
            ls[:-d] = ls[:-d] + ls[d:] + add
            p[:-d] = prod
        else:
            ls[d:] = ls[:-d] + ls[d:] + add
            p[d:] = prod
        d *= 2
    return p, ls


def _log_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(exp(a) @ exp(b))`` for stacks of matrices, by log-sum-exp."""
    return _lse(a[..., :, :, None] + b[..., None, :, :], axis=-2)


def _log_scan(m: np.ndarray, reverse: bool) -> np.ndarray:
    """Prefix (or suffix) products of ``exp(m)`` in log space."""
    p = m.copy()
    d = 1
    while d < len(p):
        if reverse:
            p[:-d] = _log_matmul(p[:-d], p[d:])
        else:
            p[d:] = _log_matmul(p[:-d], p[d:])
        d *= 2
    return p


def _lse(a: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    top = a.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis=axis) + np.log(np.exp(a - top).sum(axis=axis))


# --------------------------------------------------------------------------- passes


@dataclass(frozen=True)
class Posteriors:
    """Filtered and smoothed probabilities, expected transitions and the log-likelihood."""

    filtered: np.ndarray  # (T, S)
    smoothed: np.ndarray | None  # (T, S)
    xi_sum: np.ndarray | None  # (S, S): sum over t of the expected transitions
    log_likelihood: float


def forward_backward(log_b: np.ndarray, startprob: np.ndarray, transmat: np.ndarray,
                     smooth: bool = True) -> Posteriors:
    """Posterior state probabilities given the log emission densities.

    Parameters
    ----------
    log_b : ndarray of shape (T, S)
        ``log b_t(s)``, e.g. from :func:`log_emissions`.
    startprob : ndarray of shape (S,)
        Probabilities of the state at the first row.
    transmat : ndarray of shape (S, S)
        ``transmat[a, b]``: probability of moving from *a* to *b*.
    smooth : bool
        Also compute the smoothed probabilities and the expected transitions
        (the backward pass); the filtered ones need only the forward pass.

    Returns
    -------
    Posteriors
        Rows of ``filtered`` and ``smoothed`` sum to 1; row *t* of ``filtered``
        uses rows up to *t* only.

    Raises
    ------
    ConvergenceError
        The data have zero probability under the model.

    """
    out = _scaled_passes(log_b, startprob, transmat, smooth)
    return out if out is not None else _log_passes(log_b, startprob, transmat, smooth)


def _scaled_passes(log_b: np.ndarray, startprob: np.ndarray, transmat: np.ndarray,
                   smooth: bool) -> Posteriors | None:
    t_len, n_states = log_b.shape
    shift = log_b.max(axis=1)
    if not np.isfinite(shift).all():
        return None
    b = np.exp(log_b - shift[:, None])
    m = transmat[None, :, :] * b[:, None, :]
    m[0] = (startprob * b[0])[None, :]  # identical rows: any row of a prefix product is alpha
    fwd, fwd_ls = _scan(m, np.zeros(t_len), reverse=False)
    alpha = fwd[:, 0, :]
    norm = alpha.sum(axis=1)
    if not (norm > _TINY).all() or not np.isfinite(fwd_ls).all():
        return None
    filtered = alpha / norm[:, None]
    loglik = float(math.log(norm[-1]) + fwd_ls[-1] + shift.sum())
    if not smooth:
        return Posteriors(filtered, None, None, loglik)
    beta = np.ones((t_len, n_states))
    if t_len > 1:
        bwd, bwd_ls = _scan(m[1:], np.zeros(t_len - 1), reverse=True)
        beta[:-1] = bwd.sum(axis=2)
        if not np.isfinite(bwd_ls).all():
            return None
    beta /= beta.sum(axis=1, keepdims=True)
    post = filtered * beta
    psum = post.sum(axis=1, keepdims=True)
    if not (psum > _TINY).all():
        return None
    smoothed = post / psum
    xi_sum = np.zeros((n_states, n_states))
    if t_len > 1:
        xi = filtered[:-1, :, None] * transmat[None, :, :] * (b[1:] * beta[1:])[:, None, :]
        xsum = xi.sum(axis=(1, 2))
        if not (xsum > _TINY).all():
            return None
        xi_sum = (xi / xsum[:, None, None]).sum(axis=0)
    return Posteriors(filtered, smoothed, xi_sum, loglik)


def _log_passes(log_b: np.ndarray, startprob: np.ndarray, transmat: np.ndarray,
                smooth: bool) -> Posteriors:
    t_len, n_states = log_b.shape
    with np.errstate(divide="ignore"):
        log_a = np.log(transmat)
        log_p0 = np.log(startprob)
    m = log_a[None, :, :] + log_b[:, None, :]
    m[0] = (log_p0 + log_b[0])[None, :]
    log_alpha = _log_scan(m, reverse=False)[:, 0, :]
    norm = _lse(log_alpha, axis=1)
    bad = np.flatnonzero(~np.isfinite(norm))
    if bad.size:
        raise ConvergenceError(f"regime model gives row {bad[0] + 1} zero probability",
                               "factors")
    log_f = log_alpha - norm[:, None]
    filtered = np.exp(log_f)
    filtered /= filtered.sum(axis=1, keepdims=True)
    loglik = float(norm[-1])
    if not smooth:
        return Posteriors(filtered, None, None, loglik)
    log_beta = np.zeros((t_len, n_states))
    if t_len > 1:
        log_beta[:-1] = _lse(_log_scan(m[1:], reverse=True), axis=2)
    log_post = log_f + log_beta
    smoothed = np.exp(log_post - _lse(log_post, axis=1)[:, None])
    smoothed /= smoothed.sum(axis=1, keepdims=True)
    xi_sum = np.zeros((n_states, n_states))
    if t_len > 1:
        log_xi = (log_f[:-1, :, None] + log_a[None, :, :]
                  + (log_b[1:] + log_beta[1:])[:, None, :])
        log_xi -= _lse(log_xi, axis=(1, 2))[:, None, None]
        xi_sum = np.exp(log_xi).sum(axis=0)
    return Posteriors(filtered, smoothed, xi_sum, loglik)


# --------------------------------------------------------------------------- EM


def _m_step(x: np.ndarray, post: Posteriors, floor: float, old: HmmParams) -> HmmParams:
    gamma, xi_sum = post.smoothed, post.xi_sum
    if gamma is None or xi_sum is None:
        raise ValueError("the M-step needs the smoothed probabilities")
    k = x.shape[1]
    start = gamma[0] / gamma[0].sum()
    rows = xi_sum.sum(axis=1, keepdims=True)
    # A state the posteriors never leave keeps its old row (hmmlearn would leave it at 0).
    transmat = np.where(rows > 0, xi_sum / np.where(rows > 0, rows, 1.0), old.transmat)
    n_s = gamma.sum(axis=0)
    if not (n_s > 0).all():
        raise ConvergenceError("regime model fit failed: a state has no rows", "n_states")
    means = (gamma.T @ x) / n_s[:, None]
    covs = np.empty((len(n_s), k, k))
    for s in range(len(n_s)):
        dev = x - means[s]
        c = (dev * gamma[:, s:s + 1]).T @ dev
        c = 0.5 * (c + c.T)
        c[np.diag_indices(k)] += floor
        covs[s] = c / n_s[s]
    return HmmParams(start, transmat, means, covs)


def em(x: np.ndarray, init: HmmParams, floor: float, n_iter: int, tol: float) -> EmResult:
    """Baum-Welch EM from ``init`` (see the module docstring for the M-step).

    Parameters
    ----------
    x : ndarray of shape (T, k)
        Rows, oldest first, finite.
    init : HmmParams
        Starting parameters.
    floor : float
        Covariance floor (prior scale), per-period variance units.
    n_iter : int
        At most this many iterations.
    tol : float
        Stop when an iteration gains less than this in log-likelihood.

    Returns
    -------
    EmResult

    Raises
    ------
    ConvergenceError
        Parameters became degenerate (a singular covariance, non-finite values).

    """
    params = init
    history: list[float] = []
    converged = False
    for _ in range(n_iter):
        log_b = log_emissions(x, params.means, params.covs)
        post = forward_backward(log_b, params.startprob, params.transmat, smooth=True)
        history.append(post.log_likelihood)
        params = _m_step(x, post, floor, params)
        if not all(np.isfinite(a).all() for a in (params.means, params.covs, params.transmat,
                                                   params.startprob)):
            raise ConvergenceError("regime model fit gave non-finite parameters", "factors")
        if len(history) >= 2 and history[-1] - history[-2] < tol:
            converged = True
            break
    return EmResult(params, history, converged)
