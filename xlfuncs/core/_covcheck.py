"""Checks of a covariance matrix given by the user, shared by the betas and the risk views.

A covariance must be square, finite, symmetric (to 1e-8 of its largest
entry), with no negative variance and no eigenvalue below -1e-8 times the
largest variance. Messages name the argument and the tickers at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg as sla

from xlfuncs.errors import InputError

__all__ = ["check_covariance", "check_psd", "check_symmetric"]

_SYM_TOL = 1e-8  # relative to the largest |entry|
_PSD_TOL = 1e-8  # negative eigenvalues allowed, relative to the largest variance


def check_symmetric(m: np.ndarray, name: str, where: Callable[[int, int], str],
                    tol: float) -> None:
    """Raise naming the most asymmetric pair of ``m`` when it differs from ``m'`` by over ``tol``.

    ``where(i, j)`` names entry ``(i, j)`` for the message (tickers or a cell position).
    """
    asym = np.abs(m - m.T)
    if asym.size and asym.max() > tol:
        i, j = np.unravel_index(int(asym.argmax()), asym.shape)
        i, j = min(i, j), max(i, j)
        raise InputError(f"{name} is not symmetric ({where(i, j)} is {m[i, j]:.6g} but "
                         f"{where(j, i)} is {m[j, i]:.6g})", name)


def check_covariance(s: np.ndarray, labels: Sequence[str], name: str = "cov") -> np.ndarray:
    """Square, finite, symmetric, no negative variance: the symmetrised matrix, or an error.

    Parameters
    ----------
    s : ndarray of shape (n, n)
        The matrix as given.
    labels : sequence of str
        A name per asset, for the messages (tickers, or "asset 3").
    name : str
        The argument's name.

    Returns
    -------
    ndarray of shape (n, n)
        ``(s + s') / 2``.

    Raises
    ------
    InputError
        Naming the argument and the first entry at fault.

    """
    s = np.asarray(s, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise InputError(f"{name} must be square (it is {'x'.join(map(str, s.shape))})", name)
    bad = np.argwhere(~np.isfinite(s))
    if bad.size:
        i, j = bad[0]
        raise InputError(f"{name} has a non-finite value at {labels[i]}/{labels[j]}", name)
    scale = float(np.abs(s).max()) if s.size else 0.0
    scale = scale or 1.0
    check_symmetric(s, name, lambda i, j: f"{labels[i]}/{labels[j]}", _SYM_TOL * scale)
    neg = np.flatnonzero(np.diag(s) < 0)
    if neg.size:
        i = int(neg[0])
        raise InputError(f"{name} has a negative variance for {labels[i]} ({s[i, i]:.4g})", name)
    return 0.5 * (s + s.T)


def check_psd(s: np.ndarray, tickers: Sequence[str], name: str = "cov") -> None:
    """Raise when ``s`` has an eigenvalue below ``-1e-8 * max variance``.

    Parameters
    ----------
    s : ndarray of shape (n, n)
        A symmetric matrix.
    tickers : sequence of str
        A name per asset: the message names the asset the offending
        eigenvector loads on most.
    name : str
        The argument's name.

    Raises
    ------
    InputError
        When ``s`` is not positive semidefinite.

    """
    scale = float(np.diag(s).max()) if s.size else 0.0
    if scale <= 0:
        return
    jitter = _PSD_TOL * scale
    try:
        sla.cholesky(s + jitter * np.eye(len(s)), lower=True, check_finite=False)
        return
    except sla.LinAlgError:
        pass
    vals, vecs = np.linalg.eigh(s)
    if vals[0] >= -jitter:  # Cholesky is stricter than the eigenvalue test near 0
        return
    worst = tickers[int(np.abs(vecs[:, 0]).argmax())]
    raise InputError(
        f"{name} is not positive semidefinite (eigenvalue {vals[0]:.3g}, mostly {worst}); "
        "estimate it from one returns table, e.g. HIST_COV with ledoit-wolf",
        name,
    )
