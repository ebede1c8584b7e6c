"""Weighted least squares of many assets on the same factors, at once.

Shared by the factor model (:mod:`xlfuncs.core._factor`) and the regime
betas (:mod:`xlfuncs.core._regime`); ``one_thread`` keeps BLAS on one thread
for the small matrices both use.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["WlsFit", "one_thread", "threadpools", "wls"]

_SINGULAR = 1e-10  # smallest eigenvalue / largest of a standardised normal matrix


@functools.cache
def threadpools() -> Any:
    """Threadpoolctl's controller of BLAS/OpenMP threads, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # not installed on Pyodide (xlwings Lite), where BLAS has no threads
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """BLAS and OpenMP on one thread: the matrices are small, extra threads only cost."""
    pools = threadpools()
    if pools is None:
        yield
        return
    with pools.limit(limits=1):
        yield


@dataclass(frozen=True)
class WlsFit:
    """Coefficients of :func:`wls`, one column per asset."""

    coef: np.ndarray  # (m, n): intercept row, then k slope rows; NaN where not ok
    resid_var: np.ndarray  # (n,)
    n_obs: np.ndarray  # (n,) rows with a return
    ok: np.ndarray  # (n,) bool


def wls(y: np.ndarray, x: np.ndarray, w: np.ndarray | None, min_obs: int) -> WlsFit:
    """Least squares of each column of ``y`` (NaN = missing) on ``[1, x]``, weights ``w``.

    Normal equations per asset, all assets at once: ``G_i = sum_t w_t m_ti z_t z_t'``
    with the regressors ``z = [1, (x - mean) / sd]`` standardised over the rows
    (exact: the fit is mapped back to ``x``), so ``G_i`` is well conditioned.
    Residual variance ``sum w e^2 / sum w * n_eff / (n_eff - m)`` with Kish's
    ``n_eff = (sum w)^2 / sum w^2``; without weights that is ``RSS / (n - m)``.
    """
    t_len, n = y.shape
    k = x.shape[1]
    m = k + 1
    mask = np.isfinite(y)
    maskf = mask.astype(float)
    y0 = np.where(mask, y, 0.0)
    n_obs = mask.sum(axis=0)
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = np.empty((t_len, m))
    z[:, 0] = 1.0
    z[:, 1:] = (x - mu) / sd
    zw = z if w is None else z * w[:, None]
    outer = (zw[:, :, None] * z[:, None, :]).reshape(t_len, m * m)
    gram = (outer.T @ maskf).T.reshape(n, m, m)
    rhs = (zw.T @ y0).T  # (n, m); y0 is 0 where missing
    if w is None:
        sw = n_obs.astype(float)
        n_eff = sw
    else:
        sw = w @ maskf
        sw2 = (w * w) @ maskf
        with np.errstate(divide="ignore", invalid="ignore"):
            n_eff = np.where(sw2 > 0, sw * sw / sw2, 0.0)
    ok = (n_obs >= min_obs) & (n_eff > m)
    idx = np.flatnonzero(ok)
    coef_z = np.zeros((n, m))
    if idx.size:
        g = gram[idx]
        d = np.sqrt(np.einsum("nii->ni", g))
        g_norm = g / d[:, :, None] / d[:, None, :]
        try:
            pivots = np.einsum("nii->ni", np.linalg.cholesky(g_norm)) ** 2
            good = pivots.min(axis=1) > _SINGULAR
        except np.linalg.LinAlgError:
            eig = np.linalg.eigvalsh(g_norm)
            good = eig[:, 0] > _SINGULAR * eig[:, -1]
        ok[idx[~good]] = False
        idx = idx[good]
        coef_z[idx] = np.linalg.solve(gram[idx], rhs[idx][:, :, None])[:, :, 0]
    resid = y0 - z @ coef_z.T
    resid[~mask] = 0.0
    sq = resid * resid
    rss = sq.sum(axis=0) if w is None else w @ sq
    with np.errstate(divide="ignore", invalid="ignore"):
        resid_var = np.where(ok, rss / sw * n_eff / (n_eff - m), np.nan)
    slopes = coef_z[:, 1:] / sd  # (n, k)
    intercept = coef_z[:, 0] - slopes @ mu
    coef = np.column_stack([intercept, slopes]).T
    coef[:, ~ok] = np.nan
    return WlsFit(coef, resid_var, n_obs, ok)
