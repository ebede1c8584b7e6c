"""Regime-aware factor moments: a Gaussian hidden Markov model (SPEC section 3.3).

The factor returns ``f_t`` (``k`` factors) are modelled as a hidden Markov chain
of ``S`` states (2 to 4) with transition matrix ``P`` (``P[a, b]`` =
probability of moving from state *a* to *b*) and, in state *s*, a Gaussian
``N(mu_s, Sigma_s)`` with a full covariance. The fit is Baum-Welch EM in
numpy (:mod:`xlfuncs.core._hmm`; the research used hmmlearn's ``GaussianHMM``,
which has no wheels for current Python and is kept only as the tests'
reference), from several seeded k-means starts keeping the best likelihood,
on the rows it is given and nothing else: the initialisation sees the same
rows, so a fit is deterministic and never looks ahead. (The research's bug
was an HMM initialised on the full sample.)

Probabilities:

* **filtered** ``gamma_t = P(s_t | f_1..f_t)`` (forward pass), the only ones
  usable at date *t*;
* **smoothed** ``P(s_t | f_1..f_T)`` (forward-backward; what hmmlearn's
  ``predict_proba`` gives), which use the rows after *t* up to *T*. They equal the
  filtered ones at the last row only.

The forecast ``h`` steps ahead is ``pi = (P^h)' gamma_T`` and the moments of the
forecast mixture are ``mean = sum_s pi_s mu_s`` and
``cov = sum_s pi_s (Sigma_s + mu_s mu_s') - mean mean'`` (law of total variance).

States are labelled canonically: sorted by the mean of the first factor,
lowest first (with the market first, state 0 is the bear state).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from xlfuncs.core import _hmm
from xlfuncs.core._lstsq import one_thread, wls
from xlfuncs.errors import ConvergenceError, InputError

__all__ = [
    "RegimeBetas",
    "RegimeFit",
    "filtered_probs",
    "fit_regime",
    "forecast_probs",
    "mixture_moments",
    "regime_betas",
    "regime_min_rows",
    "smoothed_probs",
]

MIN_STATES, MAX_STATES = 2, 4
DEFAULT_STARTS, MAX_STARTS = 3, 20
_REL_COVAR_FLOOR = 1e-3  # default covariance floor, relative to the mean factor variance
_WARM_TRANS_FLOOR = 1e-6  # transition probabilities a warm start may not begin at 0
_PROB_TOL = 1e-8


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RegimeFit:
    """A Gaussian hidden Markov model fitted to factor returns.

    Attributes
    ----------
    means : ndarray of shape (S, k)
        Per-state mean factor returns, per period; states sorted by
        ``means[:, 0]``, lowest first.
    covs : ndarray of shape (S, k, k)
        Per-state factor covariances, per period.
    transmat : ndarray of shape (S, S)
        ``transmat[a, b]`` = probability of moving from state *a* to state *b*.
    startprob : ndarray of shape (S,)
        Probabilities of the state at the first row.
    filtered : ndarray of shape (T, S)
        Filtered probabilities ``P(s_t | rows 1..t)`` on the rows fitted.
    smoothed : ndarray of shape (T, S)
        Smoothed probabilities ``P(s_t | rows 1..T)`` on the rows fitted.
    log_likelihood : float
        Log-likelihood of the rows under the fitted model.
    n_obs : int
        Rows fitted (``T``).
    n_iter : int
        EM iterations run.
    seed : int
        Seed of the k-means initialisation.
    warm : bool
        Whether EM started from an earlier fit instead of k-means.
    min_covar : float
        Covariance floor used (see :func:`fit_regime`).
    seconds : float
        Wall-clock time of the fit (all starts).
    start : int
        Which cold start gave this fit (0 is hmmlearn's k-means); 0 when warm.
    n_starts : int
        EM runs made (cold starts tried; 1 when warm).

    """

    means: np.ndarray
    covs: np.ndarray
    transmat: np.ndarray
    startprob: np.ndarray
    filtered: np.ndarray
    smoothed: np.ndarray
    log_likelihood: float
    n_obs: int
    n_iter: int
    seed: int
    warm: bool
    min_covar: float
    seconds: float
    start: int = 0
    n_starts: int = 1

    @property
    def n_states(self) -> int:
        """Number of states ``S``."""
        return int(self.means.shape[0])

    @property
    def gamma_last(self) -> np.ndarray:
        """Filtered state probabilities at the last row fitted, shape (S,)."""
        return self.filtered[-1]

    @property
    def occupancy(self) -> np.ndarray:
        """Expected number of rows in each state, ``smoothed.sum(axis=0)``, shape (S,)."""
        return self.smoothed.sum(axis=0)


@dataclass(frozen=True)
class RegimeBetas:
    """Factor loadings as a forecast-probability mixture of per-state WLS loadings.

    Attributes
    ----------
    loadings : ndarray of shape (k + 1, n)
        ``sum_s pi_s F_s``: row 0 the intercepts, rows 1..k the betas.
    state_loadings : ndarray of shape (S, k + 1, n)
        ``F_s``, the weighted least-squares loadings of each state.
    state_resid_var : ndarray of shape (S, n)
        Residual variance per state and asset, per period.
    probs : ndarray of shape (S,)
        The mixing probabilities ``pi``.
    fallback : ndarray of shape (S, n), bool
        Where a state's weighted fit was singular or had too little weight on
        the asset's rows, and the unweighted (all-rows) fit was used instead.

    """

    loadings: np.ndarray
    state_loadings: np.ndarray
    state_resid_var: np.ndarray
    probs: np.ndarray
    fallback: np.ndarray

    @property
    def alpha(self) -> np.ndarray:
        """Mixture intercepts, shape (n,)."""
        return self.loadings[0]

    @property
    def betas(self) -> np.ndarray:
        """Mixture betas, shape (k, n)."""
        return self.loadings[1:]


# --------------------------------------------------------------------------- inputs


def _check_factors(factors: object, name: str = "factors") -> np.ndarray:
    # One memory layout, so the same numbers give the same bits whatever array they came in.
    x = np.ascontiguousarray(factors.to_numpy(dtype=float) if isinstance(factors, pd.DataFrame)
                             else factors, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"{name} must be a table (periods in rows, factors in columns)", name)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise InputError(f"{name} has a missing or non-finite value in row {i + 1}, "
                         f"column {j + 1}", name)
    return x


def _check_n_states(n_states: object) -> int:
    if (isinstance(n_states, bool) or not isinstance(n_states, int | np.integer)
            or not MIN_STATES <= n_states <= MAX_STATES):
        raise InputError(f"n_states must be a whole number from {MIN_STATES} to {MAX_STATES} "
                         f"(got {n_states})", "n_states")
    return int(n_states)


def regime_min_rows(n_states: int, n_factors: int) -> int:
    """Fewest rows :func:`fit_regime` accepts for ``n_states`` states and ``n_factors`` factors.

    Each state needs ``k + 1`` rows for a non-singular covariance, and there
    must be as many numbers as free parameters
    (``S - 1 + S (S - 1) + S k + S k (k + 1) / 2``).
    """
    s, k = n_states, n_factors
    n_params = s - 1 + s * (s - 1) + s * k + s * k * (k + 1) // 2
    return max(s * (k + 1), -(-n_params // k))


def _posteriors(fit_means: np.ndarray, fit_covs: np.ndarray, startprob: np.ndarray,
                transmat: np.ndarray, x: np.ndarray, smooth: bool) -> _hmm.Posteriors:
    with one_thread():
        log_b = _hmm.log_emissions(x, fit_means, fit_covs)
        return _hmm.forward_backward(log_b, startprob, transmat, smooth)


def _check_fit_rows(fit: RegimeFit, factors: object) -> np.ndarray:
    x = _check_factors(factors)
    if x.shape[1] != fit.means.shape[1]:
        raise InputError(f"factors has {x.shape[1]} columns but the regime model "
                         f"{fit.means.shape[1]}", "factors")
    if len(x) == 0:
        raise InputError("factors has no rows", "factors")
    return x


def filtered_probs(fit: RegimeFit, factors: object) -> np.ndarray:
    """Filtered state probabilities ``P(s_t | rows 1..t)`` by the forward recursion.

    Parameters
    ----------
    fit : RegimeFit
        The model (its start probabilities apply to the first row given).
    factors : array-like of shape (T, k)
        Factor returns per period, oldest first.

    Returns
    -------
    ndarray of shape (T, S)
        Row *t* uses rows up to *t* only; rows sum to 1.

    """
    x = _check_fit_rows(fit, factors)
    return _posteriors(fit.means, fit.covs, fit.startprob, fit.transmat, x, False).filtered


def smoothed_probs(fit: RegimeFit, factors: object) -> np.ndarray:
    """Smoothed state probabilities ``P(s_t | rows 1..T)`` by forward-backward.

    Equal to hmmlearn's ``predict_proba``. Row *t* uses the rows after *t*;
    only the last row equals the filtered one.

    Parameters
    ----------
    fit : RegimeFit
        The model.
    factors : array-like of shape (T, k)
        Factor returns per period, oldest first.

    Returns
    -------
    ndarray of shape (T, S)

    """
    x = _check_fit_rows(fit, factors)
    return _posteriors(fit.means, fit.covs, fit.startprob, fit.transmat, x, True).smoothed


# --------------------------------------------------------------------------- fitting


def fit_regime(
    factors: object,
    n_states: int,
    seed: int,
    *,
    n_iter: int = 500,
    tol: float = 1e-4,
    min_covar: float | None = None,
    init: RegimeFit | None = None,
    n_init: int = DEFAULT_STARTS,
) -> RegimeFit:
    """Fit a Gaussian HMM with full covariances to factor returns by EM.

    Parameters
    ----------
    factors : array-like of shape (T, k)
        Factor returns per period, oldest first, no missing values. Only
        these rows are used, for the initialisation too.
    n_states : int
        Number of states, 2 to 4.
    seed : int
        ``random_state`` of the k-means initialisation of the means.
    n_iter : int
        Maximum EM iterations (on the bundled monthly Fama-French factors,
        3 states need up to about 200 at ``tol = 1e-4``; typical is 20-60).
    tol : float
        EM stops when the (total, not per-row) log-likelihood gains less than this.
    min_covar : float, optional
        Covariance floor (per-period variance units): it is the inverse-Wishart
        prior scale, adding ``min_covar * I / n_s`` to a state's covariance
        estimated from ``n_s`` expected rows, and is added to the initial
        covariance. Default ``1e-3`` times the mean factor variance.
    init : RegimeFit, optional
        Warm start: EM begins at this fit's parameters (no k-means), e.g. the
        previous rebalance date's fit on a subset of these rows.
    n_init : int
        Cold starts (1 to 20): EM runs from this many k-means initialisations
        and the fit with the highest log-likelihood is kept; starts that do not
        converge or end degenerate are passed over. A warm start is one run.

    Returns
    -------
    RegimeFit
        States sorted by the first factor's mean, lowest first.

    Raises
    ------
    InputError
        Missing values, ``n_states`` outside 2..4, too few rows
        (:func:`regime_min_rows`), an ``init`` of another shape.
    ConvergenceError
        Every start failed: EM did not reach ``tol`` in ``n_iter`` iterations, or
        the fit is degenerate (non-finite, or a state expected on fewer than
        ``k + 1`` rows). The first start's reason is given.

    Notes
    -----
    Cold start: start probabilities uniform, transitions ``0.9`` on the
    diagonal and the rest spread evenly, means from k-means
    (``random_state=seed``, 10 k-means++ runs: hmmlearn's initialisation),
    every covariance the covariance of the rows plus the floor; the other
    starts differ only in their k-means clustering. The EM itself is
    :func:`xlfuncs.core._hmm.em`.

    """
    started = time.perf_counter()
    s = _check_n_states(n_states)
    x = _check_factors(factors)
    t_len, k = x.shape
    need = regime_min_rows(s, k)
    if t_len < need:
        raise InputError(f"factors needs at least {need} rows for {s} states and {k} factors "
                         f"(has {t_len})", "factors")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError("seed must be a non-negative whole number", "seed")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int | np.integer) or n_iter < 1:
        raise InputError("n_iter must be a positive whole number", "n_iter")
    if (isinstance(n_init, bool) or not isinstance(n_init, int | np.integer)
            or not 1 <= n_init <= MAX_STARTS):
        raise InputError(f"n_init must be a whole number from 1 to {MAX_STARTS}", "n_init")
    if not (math.isfinite(tol) and tol > 0):
        raise InputError("tol must be a positive number", "tol")
    variance = x.var(axis=0, ddof=1)
    flat = np.flatnonzero(np.ptp(x, axis=0) == 0)
    if flat.size:
        raise InputError(f"factors column {flat[0] + 1} is constant", "factors")
    if min_covar is None:
        floor = _REL_COVAR_FLOOR * float(variance.mean())
    elif math.isfinite(min_covar) and min_covar > 0:
        floor = float(min_covar)
    else:
        raise InputError("min_covar must be a positive number", "min_covar")
    if init is not None and init.means.shape != (s, k):
        raise InputError(f"init has {init.means.shape[0]} states and {init.means.shape[1]} "
                         f"factors, not {s} and {k}", "init")

    n_starts = 1 if init is not None else int(n_init)
    best: RegimeFit | None = None
    failure: ConvergenceError | None = None
    with one_thread():
        for start in range(n_starts):
            params = _warm_start(init) if init is not None else _cold_start(x, s, floor,
                                                                             int(seed), start)
            try:
                fit = _fit_from(x, params, floor, int(n_iter), float(tol))
            except ConvergenceError as exc:
                failure = failure or exc
                continue
            fit = replace(fit, seed=int(seed), warm=init is not None, start=start,
                          n_starts=n_starts)
            if best is None or fit.log_likelihood > best.log_likelihood:
                best = fit
    if best is None:
        raise failure  # type: ignore[misc]  # every start failed, so there is a failure
    return replace(best, seconds=time.perf_counter() - started)


def _warm_start(init: RegimeFit) -> _hmm.HmmParams:
    trans = np.maximum(init.transmat, _WARM_TRANS_FLOOR)
    start = np.maximum(init.startprob, _WARM_TRANS_FLOOR)
    return _hmm.HmmParams(start / start.sum(), trans / trans.sum(axis=1, keepdims=True),
                          init.means.copy(), init.covs.copy())


def _cold_start(x: np.ndarray, n_states: int, floor: float, seed: int,
                start: int) -> _hmm.HmmParams:
    """Uniform start, sticky transitions, k-means means, the rows' covariance plus the floor.

    Start 0 is k-means with ``random_state=seed`` and 10 k-means++ runs (what
    hmmlearn does, so the first start is hmmlearn's); start *r* > 0 is one
    k-means++ run from a seed derived from ``(seed, r)``, a different clustering.
    """
    from sklearn.cluster import KMeans

    if start == 0:
        km = KMeans(n_clusters=n_states, random_state=seed, n_init=10)
    else:
        derived = int(np.random.SeedSequence([seed, start]).generate_state(1)[0])
        km = KMeans(n_clusters=n_states, random_state=derived, n_init=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. fewer distinct rows than clusters
        means = km.fit(x).cluster_centers_
    k = x.shape[1]
    cov = np.atleast_2d(np.cov(x.T)) + floor * np.eye(k)
    off = 0.1 / (n_states - 1)
    return _hmm.HmmParams(np.full(n_states, 1.0 / n_states),
                          np.full((n_states, n_states), off) + np.eye(n_states) * (0.9 - off),
                          np.asarray(means, dtype=float), np.repeat(cov[None], n_states, axis=0))


def _fit_from(x: np.ndarray, params: _hmm.HmmParams, floor: float, n_iter: int,
              tol: float) -> RegimeFit:
    """EM from ``params``, states sorted, posteriors of the result, degeneracy checked."""
    k = x.shape[1]
    res = _hmm.em(x, params, floor, n_iter, tol)
    if not res.converged:
        history = res.history
        gain = history[-1] - history[-2] if len(history) >= 2 else float("nan")
        raise ConvergenceError(f"regime model did not converge in {n_iter} EM iterations "
                               f"(last gain {gain:.3g}); raise n_iter", "n_iter")
    p = res.params
    order = np.argsort(p.means[:, 0], kind="stable")
    means, covs = p.means[order], p.covs[order]
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    transmat = p.transmat[np.ix_(order, order)]
    startprob = p.startprob[order]
    post = _posteriors(means, covs, startprob, transmat, x, True)
    smoothed = post.smoothed
    occupancy = smoothed.sum(axis=0)
    thin = int(np.argmin(occupancy))
    if occupancy[thin] < k + 1:
        raise ConvergenceError(f"regime model is degenerate: state {thin} covers "
                               f"{math.floor(occupancy[thin] * 10) / 10:.1f} rows, "
                               f"fewer than {k + 1}; "
                               "use fewer states or more rows", "n_states")
    return RegimeFit(
        means=means, covs=covs, transmat=transmat, startprob=startprob,
        filtered=post.filtered, smoothed=smoothed, log_likelihood=post.log_likelihood,
        n_obs=len(x), n_iter=res.n_iter, seed=0, warm=False, min_covar=floor, seconds=0.0,
    )


# --------------------------------------------------------------------------- forecasts


def _check_probs(p: np.ndarray, n: int, name: str) -> np.ndarray:
    if p.shape[-1] != n:
        raise InputError(f"{name} must have {n} state probabilities (has {p.shape[-1]})", name)
    if not np.isfinite(p).all() or (p < -_PROB_TOL).any():
        raise InputError(f"{name} must be finite and non-negative", name)
    sums = np.ravel(p.sum(axis=-1))
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-6)
    if off.size:
        row = f" in row {off[0] + 1}" if p.ndim > 1 else ""
        raise InputError(f"{name} must sum to 1{row} (sums to {sums[off[0]]:.6g})", name)
    p = np.clip(p, 0.0, None)
    return p / p.sum(axis=-1, keepdims=True)


def forecast_probs(fit: RegimeFit | np.ndarray, gamma: np.ndarray, horizon: int) -> np.ndarray:
    """State probabilities ``horizon`` periods ahead, ``pi = (P^h)' gamma``.

    Parameters
    ----------
    fit : RegimeFit or ndarray of shape (S, S)
        The model, or its transition matrix ``P`` (rows = from-state, summing to 1).
    gamma : ndarray of shape (S,) or (T, S)
        Current state probabilities (e.g. :attr:`RegimeFit.gamma_last`), or one row each.
    horizon : int
        Periods ahead, >= 0 (0 returns ``gamma``).

    Returns
    -------
    ndarray of the shape of ``gamma``
        Each row sums to 1.

    """
    p = np.asarray(fit.transmat if isinstance(fit, RegimeFit) else fit, dtype=float)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise InputError("transmat must be square", "transmat")
    p = _check_probs(p, p.shape[0], "transmat")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 0:
        raise InputError("horizon must be a whole number of periods, 0 or more", "horizon")
    g = _check_probs(np.asarray(gamma, dtype=float), p.shape[0], "gamma")
    out = g @ np.linalg.matrix_power(p, int(horizon))
    return out / out.sum(axis=-1, keepdims=True)


def mixture_moments(probs: np.ndarray, means: np.ndarray,
                    covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a Gaussian mixture.

    Parameters
    ----------
    probs : ndarray of shape (S,)
        Mixing probabilities ``pi`` (sum to 1).
    means : ndarray of shape (S, k)
        Component means ``mu_s``.
    covs : ndarray of shape (S, k, k)
        Component covariances ``Sigma_s``.

    Returns
    -------
    mean : ndarray of shape (k,)
        ``sum_s pi_s mu_s``.
    cov : ndarray of shape (k, k)
        ``sum_s pi_s (Sigma_s + mu_s mu_s') - mean mean'``, computed as the
        equal ``sum_s pi_s Sigma_s + sum_s pi_s (mu_s - mean)(mu_s - mean)'``
        (no cancellation), symmetric.

    """
    mu = np.asarray(means, dtype=float)
    sig = np.asarray(covs, dtype=float)
    if mu.ndim != 2 or sig.shape != (mu.shape[0], mu.shape[1], mu.shape[1]):
        raise InputError("means must be (S, k) and covs (S, k, k)", "covs")
    pi = _check_probs(np.asarray(probs, dtype=float), mu.shape[0], "probs")
    if pi.ndim != 1:
        raise InputError("probs must be one vector of state probabilities", "probs")
    mean = pi @ mu
    dev = mu - mean
    cov = np.einsum("s,sij->ij", pi, sig) + (dev * pi[:, None]).T @ dev
    return mean, 0.5 * (cov + cov.T)


def regime_betas(
    excess_returns: object,
    factors: object,
    state_probs: np.ndarray,
    pi: np.ndarray,
) -> RegimeBetas:
    """Loadings as a ``pi``-weighted mixture of per-state weighted least squares.

    For each state *s*, regress every asset's excess returns on ``[1, f]``
    with observation weights ``state_probs[:, s]`` (the probability of being
    in *s* at each row); then ``F = sum_s pi_s F_s``.

    Parameters
    ----------
    excess_returns : array-like of shape (T,) or (T, n)
        Excess returns per period; NaN where an asset has no return.
    factors : array-like of shape (T, k)
        Factor returns on the same rows, no missing values.
    state_probs : ndarray of shape (T, S)
        State probabilities of the rows, using no row after the last one
        (e.g. :attr:`RegimeFit.smoothed` or :attr:`RegimeFit.filtered` of a
        fit on exactly these rows).
    pi : ndarray of shape (S,)
        Mixing probabilities, e.g. :func:`forecast_probs`.

    Returns
    -------
    RegimeBetas
        ``loadings`` of shape (k + 1, n) (``(k + 1, 1)`` for one asset).
        An asset/state whose weighted fit has fewer than ``k + 2`` effective
        rows or is singular uses the unweighted fit (flagged in ``fallback``);
        an asset with fewer than ``k + 2`` returns gets NaN.

    """
    y = np.asarray(excess_returns.to_numpy(dtype=float) if isinstance(excess_returns, pd.DataFrame)
                   else excess_returns, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    x = _check_factors(factors)
    w = np.asarray(state_probs, dtype=float)
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise InputError(f"excess_returns must have {x.shape[0]} rows like factors",
                         "excess_returns")
    if w.ndim != 2 or w.shape[0] != x.shape[0]:
        raise InputError(f"state_probs must be ({x.shape[0]}, S) like factors", "state_probs")
    if np.isinf(y).any():
        raise InputError("excess_returns has an infinite value", "excess_returns")
    w = _check_probs(w, w.shape[1], "state_probs")
    p = _check_probs(np.asarray(pi, dtype=float), w.shape[1], "pi")
    m = x.shape[1] + 1
    pooled = wls(y, x, None, m + 1)
    n_states, n = w.shape[1], y.shape[1]
    coefs = np.empty((n_states, m, n))
    resid = np.empty((n_states, n))
    fallback = np.zeros((n_states, n), dtype=bool)
    for s in range(n_states):
        fit = wls(y, x, w[:, s], m + 1)
        fallback[s] = ~fit.ok & pooled.ok
        coefs[s] = np.where(fit.ok, fit.coef, pooled.coef)
        resid[s] = np.where(fit.ok, fit.resid_var, pooled.resid_var)
    return RegimeBetas(np.einsum("s,smn->mn", p, coefs), coefs, resid, p, fallback)
