"""Option-implied correlation and covariance (SPEC section 3.1).

Given index weights ``w``, constituent implied vols ``v``, the index implied vol
``s`` and a benchmark correlation ``C_B``, find a correlation matrix ``C`` with
``a' C a = s**2`` where ``a = v * w``.

``method="nearest"`` solves

    minimise ||C - C_B||_F  subject to  diag(C) = 1,  C PSD,  a'Ca = s^2

exactly, with a semismooth Newton method on the dual (Qi & Sun 2006, with one
extra multiplier for the index constraint, CorNewton3-style splitting of the
generalised Jacobian into the smaller of the positive and negative
eigenspaces). ``method="shift"`` is Buss & Vilkov's (2012) parametric shift of
all correlations towards one.

Near the bottom of the index vol's range the optimum approaches the boundary of
the PSD cone with ``a`` in its null space, and the index multiplier ``z`` grows
like ``1 / s`` (the dual has no Slater point at the bottom itself). The
regularisation of the Newton systems is relative to each row's diagonal entry,
so it does not swamp the index row (whose entry shrinks like ``1 / |z|^3``),
and the iteration stops at the rounding level of the eigendecomposition
(``eps ||X||``, which grows with ``|z|``) and of ``a'Ca``. Newton's steps in
``z`` then grow it by about half per iteration, so the iteration count grows like
``log(hi / s)``; the accuracy reached is stated, as measured, in the README.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from xlfuncs.core._covcheck import check_symmetric
from xlfuncs.core._lstsq import threadpools
from xlfuncs.errors import ConvergenceError, InfeasibleError, InputError

__all__ = [
    "ImpliedCorrelation",
    "average_implied_correlation",
    "check_units",
    "implied_correlation",
    "index_vol",
    "index_vol_range",
]

METHODS = ("nearest", "shift")

# BLAS threads during a solve. The Newton method is a chain of mid-sized
# eigendecompositions and matrix products; on the 2-core machines we measure on,
# one OpenBLAS thread is faster (n=500: 0.45 s vs 0.8-0.9 s) and far steadier
# under load than two. None leaves the BLAS library's own setting.
BLAS_THREADS: int | None = 1

# Symmetry and unit-diagonal tolerance on a user's correlation matrix: values
# typed or pasted with 6 decimals are symmetric to the last digit, computed
# ones to rounding; anything larger is a real asymmetry.
_SYM_TOL = 1e-8
_PSD_TOL = 1e-10
# Rounding allowance, relative to (sum |a|)^2, on an index variance: a PSD but
# singular corr can give -1e-17 instead of 0.
_ROUNDING = 64 * float(np.finfo(float).eps)


@dataclass(frozen=True)
class ImpliedCorrelation:
    """An implied correlation matrix with its diagnostics.

    Attributes
    ----------
    corr : ndarray of shape (n_assets, n_assets)
        The implied correlation matrix: symmetric, unit diagonal, PSD.
    cov : ndarray of shape (n_assets, n_assets)
        The implied covariance ``V C V`` with ``V = diag(vols)``, in the units of
        ``vols`` squared (annualised variance when vols are annualised).
    method : str
        ``"nearest"`` or ``"shift"``.
    index_vol : float
        The target index vol ``s``.
    achieved_index_vol : float
        ``sqrt(a' C a)`` of the returned matrix.
    objective : float
        ``||C - C_B||_F``, distance to the benchmark correlation.
    min_eigenvalue : float
        Smallest eigenvalue of ``corr``, computed when first asked for (it costs
        an eigendecomposition, which a worksheet cell does not need).
    iterations : int
        Newton iterations (0 for ``shift``).
    residual : float
        Largest violation of the linear constraints (unit diagonal, relative
        index variance) of the returned matrix.
    seconds : float
        Wall-clock time of the solve.
    alpha : float or None
        The shift parameter (``shift`` only).
    labels : tuple of str or None
        Asset labels, when the inputs carried them.

    """

    corr: np.ndarray
    cov: np.ndarray
    method: str
    index_vol: float
    achieved_index_vol: float
    objective: float
    iterations: int
    residual: float
    seconds: float
    alpha: float | None = None
    labels: tuple[str, ...] | None = None

    @functools.cached_property
    def min_eigenvalue(self) -> float:
        """Smallest eigenvalue of ``corr``."""
        with _blas_threads():
            return float(scipy.linalg.eigvalsh(self.corr, subset_by_index=[0, 0])[0])

    def diagnostics(self) -> dict[str, float | int | str]:
        """Return the diagnostics as an ordered name → value mapping."""
        out: dict[str, float | int | str] = {
            "method": self.method,
            "n_assets": int(self.corr.shape[0]),
            "index_vol_target": self.index_vol,
            "index_vol_achieved": self.achieved_index_vol,
            "index_vol_rel_error": abs(self.achieved_index_vol - self.index_vol) / self.index_vol,
            "objective_frobenius": self.objective,
            "min_eigenvalue": self.min_eigenvalue,
            "iterations": self.iterations,
            "residual": self.residual,
            "seconds": self.seconds,
        }
        if self.alpha is not None:
            out["alpha"] = self.alpha
        return out


# --------------------------------------------------------------------------- validation


def _where(i: int, j: int, labels: Sequence[str] | None) -> str:
    if labels is not None:
        return f"{labels[i]}/{labels[j]}"
    return f"row {i + 1}, column {j + 1}"


def _as_vector(x: object, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers", name) from None
    if arr.size and max(arr.shape, default=1) == arr.size:
        arr = arr.reshape(-1)  # a scalar, a row or a column
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a single row or column of numbers", name)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(f"{name} has a non-finite value at position {bad[0] + 1}", name)
    return arr


def _check_scalar(x: object, name: str) -> float:
    try:
        val = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number", name) from None
    if not np.isfinite(val):
        raise InputError(f"{name} must be a finite number", name)
    return val


def validate_correlation(
    corr: object, n: int | None = None, labels: Sequence[str] | None = None, name: str = "corr"
) -> np.ndarray:
    """Check that ``corr`` is a square, symmetric, unit-diagonal matrix in [-1, 1].

    It need not be positive semidefinite. Returns a symmetrised float copy with
    an exact unit diagonal.

    Raises
    ------
    InputError
        Naming the first offending entry.

    """
    try:
        c = np.array(corr, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a matrix of numbers", name) from None
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.size == 0:
        raise InputError(f"{name} must be square (it is {'x'.join(map(str, c.shape))})", name)
    if n is not None and c.shape[0] != n:
        raise InputError(f"{name} is {c.shape[0]}x{c.shape[0]} but weights has {n} values", name)
    bad = np.argwhere(~np.isfinite(c))
    if bad.size:
        i, j = bad[0]
        raise InputError(f"{name} has a non-finite value at {_where(i, j, labels)}", name)
    d = np.abs(np.diag(c) - 1.0)
    if d.max() > _SYM_TOL:
        i = int(d.argmax())
        raise InputError(
            f"{name} diagonal must be 1 ({_where(i, i, labels)} is {c[i, i]:.6g})", name
        )
    check_symmetric(c, name, lambda i, j: _where(i, j, labels), _SYM_TOL)
    out = np.abs(c) - 1.0
    if out.max() > _SYM_TOL:
        i, j = np.unravel_index(int(out.argmax()), out.shape)
        raise InputError(
            f"{name} has {c[i, j]:.6g} at {_where(i, j, labels)}, outside [-1, 1]", name
        )
    c = 0.5 * (c + c.T)
    np.clip(c, -1.0, 1.0, out=c)
    np.fill_diagonal(c, 1.0)
    return c


def _validate_wv(weights: object, vols: object) -> tuple[np.ndarray, np.ndarray]:
    w = _as_vector(weights, "weights")
    v = _as_vector(vols, "vols")
    if w.size != v.size:
        raise InputError(f"weights has {w.size} values but vols has {v.size}", "weights")
    bad = np.flatnonzero(v <= 0)
    if bad.size:
        raise InputError(
            f"vols must be positive (value {bad[0] + 1} is {v[bad[0]]:.6g})", "vols"
        )
    if not np.any(w != 0):
        raise InputError("weights are all zero", "weights")
    return w, v


def _validate_index_vol(index_vol: object) -> float:
    s = _check_scalar(index_vol, "index_vol")
    if s <= 0:
        raise InputError(f"index_vol must be positive (it is {s:.6g})", "index_vol")
    return s


def _scaled(w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, int]:
    """``a = w * v`` as ``(ah, e)`` with ``a = ah * 2**e`` and ``max |ah|`` in [1/2, 1).

    The problem is invariant to scaling ``a`` and ``s`` together, so everything
    is computed with ``ah`` and ``s * 2**-e``: no product or sum of squares can
    overflow or underflow, whatever the size of the weights and vols. Powers of
    two scale exactly.
    """
    ew = math.frexp(float(np.abs(w).max()))[1]
    ev = math.frexp(float(v.max()))[1]
    b = np.ldexp(w, -ew) * np.ldexp(v, -ev)
    eb = math.frexp(float(np.abs(b).max()))[1]
    return np.ldexp(b, -eb), ew + ev + eb


def _ldexp(x: float, e: int) -> float:
    """``x * 2**e``, ``inf`` when it overflows (0 when it underflows)."""
    try:
        return math.ldexp(x, e)
    except OverflowError:
        return math.copysign(math.inf, x)


def check_units(weights: object, vols: object, index_vol: object = None) -> None:
    """Refuse inputs typed in percent where fractions are meant, as an analyst would.

    The mathematics is scale-free (only ``w * v`` and ``s`` up to a common
    factor matter), so a percent typed as a number gives a valid but wrong
    answer: weights summing to 100 make the index vol 100 times too large, and
    vols of 15.0 against an index vol of 0.116 demand strongly negative
    correlations. The worksheet functions and the CLI call this check; the core
    functions themselves accept any scale.

    Raises
    ------
    InputError
        Index weights that sum to more than 1.5 (they are fractions of the
        index, summing to at most 1), or every vol above 1 (100%) with an index
        vol below 1.

    """
    w, v = _validate_wv(weights, vols)
    total = float(w.sum())
    if total > 1.5:
        raise InputError(f"weights sum to {total:.4g}: index weights are fractions (0.0198 for "
                         "1.98%); divide them by 100 or type them as percentages", "weights")
    if index_vol is not None:
        s = _validate_index_vol(index_vol)
        if float(v.min()) > 1.0 and s < 1.0:
            raise InputError(f"vols look like percent ({float(v.min()):.4g} and up) but index_vol "
                             f"{s:.4g} is a fraction: give both in the same units (0.15 for 15%)",
                             "vols")


# --------------------------------------------------------------------------- simple pieces


def index_vol_range(weights: object, vols: object) -> tuple[float, float]:
    """Range of index vols reachable with some correlation matrix.

    For ``a = |v * w|`` the index variance ``a'Ca`` over all correlation matrices
    fills ``[max(0, 2 max(a) - sum(a))**2, sum(a)**2]``.

    Returns
    -------
    (low, high) : tuple of float
        In the units of ``vols``.

    """
    w, v = _validate_wv(weights, vols)
    ah, e = _scaled(w, v)
    lo, hi = _range(ah)
    return _ldexp(lo, e), _ldexp(hi, e)


def _range(ah: np.ndarray) -> tuple[float, float]:
    b = np.abs(ah)
    total = float(b.sum())
    return max(0.0, 2.0 * float(b.max()) - total), total


def index_vol(weights: object, vols: object, corr: object) -> float:
    """Index vol implied by a correlation matrix: ``sqrt(w' V C V w)``.

    Parameters
    ----------
    weights : array-like of shape (n_assets,)
        Index weights.
    vols : array-like of shape (n_assets,)
        Constituent vols, strictly positive.
    corr : array-like of shape (n_assets, n_assets)
        Symmetric, unit diagonal; need not be PSD (a negative index variance is an
        error).

    """
    w, v = _validate_wv(weights, vols)
    c = validate_correlation(corr, w.size)
    ah, e = _scaled(w, v)
    var = float(ah @ c @ ah)
    if var < -_ROUNDING * float(np.abs(ah).sum()) ** 2:
        raise InputError(
            f"corr gives a negative index variance ({_ldexp(var, 2 * e):.3g}): it is not "
            "positive semidefinite",
            "corr",
        )
    vol = _ldexp(math.sqrt(max(var, 0.0)), e)
    if math.isinf(vol):
        raise InputError("weights x vols are too large: the index vol overflows", "weights")
    return vol


def average_implied_correlation(weights: object, vols: object, index_vol: object) -> float:
    """CBOE-style implied correlation: the one equicorrelation that gives the index vol.

    ``rho = (s^2 - sum a_i^2) / ((sum a_i)^2 - sum a_i^2)`` with ``a = v * w``.

    Raises
    ------
    InfeasibleError
        When ``rho`` is outside ``[-1/(n-1), 1]`` (no valid equicorrelation
        matrix), naming the index-vol range that one can reach (its ends are
        the vols at ``rho = 1`` and ``rho = -1/(n-1)``, in either order: with a
        negative weight the index vol can fall as ``rho`` rises).
    InputError
        Fewer than two weighted assets, or weights whose cross terms cancel so
        that no correlation changes the index vol.

    """
    w, v = _validate_wv(weights, vols)
    s = _validate_index_vol(index_vol)
    ah, e = _scaled(w, v)
    if np.count_nonzero(ah) < 2:
        raise InputError("weights must give weight to at least two assets", "weights")
    sh = _ldexp(s, -e)
    sq = float(ah @ ah)
    top = float(ah.sum()) ** 2
    cross = top - sq  # 2 sum_(i<j) a_i a_j, the part of the variance rho multiplies
    if abs(cross) <= 1e-12 * (float(np.abs(ah).sum()) ** 2 - sq):
        raise InputError(
            "weights x vols make the index vol the same for every average correlation "
            "(their cross terms cancel)",
            "weights",
        )
    rho = (sh * sh - sq) / cross if math.isfinite(sh * sh) else math.copysign(math.inf, cross)
    n = ah.size
    lo_rho = -1.0 / (n - 1)
    if rho > 1 + 1e-12 or rho < lo_rho - 1e-12:
        # The index variance sq + rho * cross is linear in rho: its ends are at
        # rho = -1/(n-1) and rho = 1, in either order (a negative weight can
        # make it fall as rho rises).
        ends = sorted(math.sqrt(max(sq + r * cross, 0.0)) for r in (lo_rho, 1.0))
        lo, hi = (_ldexp(x, e) for x in ends)
        raise InfeasibleError(
            f"index_vol {s:.4g} is outside the {lo:.4g} to {hi:.4g} an equal correlation can give",
            "index_vol",
        )
    # Inside the range (to the rounding allowed above) rho is a correlation:
    # rounding must not give 1.0000000000000016.
    return min(max(float(rho), lo_rho), 1.0)


def _range_message(s: float, lo: float, hi: float) -> str:
    if s > hi * (1.0 + 1e-9):
        return (
            f"index_vol {s:.4g} is above the {hi:.4g} reached with all correlations at 1"
        )
    if s >= 0.5 * (lo + hi):
        return (
            f"index_vol {s:.4g} is the top of its range, reached only with all "
            "correlations at 1; give a lower index_vol"
        )
    if s < lo * (1.0 - 1e-9):
        return f"index_vol {s:.4g} is below the lowest reachable index vol {lo:.4g}"
    return (
        f"index_vol {s:.4g} is at the bottom of its range ({lo:.4g}), reached only with "
        "a singular correlation matrix; give a higher index_vol"
    )


# --------------------------------------------------------------------------- shift


def _shift(g: np.ndarray, a: np.ndarray, s: float) -> tuple[np.ndarray, float]:
    """Buss & Vilkov: ``C = (1 + alpha) C_B - alpha 11'`` matching ``a'Ca = s^2``."""
    vb = float(a @ g @ a)
    top = float(a.sum()) ** 2
    if np.isclose(vb, top, rtol=1e-14, atol=0.0):
        raise InputError("corr already has every weighted correlation at 1; shift is undefined",
                         "corr")
    alpha = (s * s - vb) / (vb - top)
    if alpha < -1.0 - 1e-12:
        raise InfeasibleError(
            f"index_vol {s:.4g} needs shift alpha {alpha:.4g} below -1 (correlations above 1)",
            "index_vol",
        )
    c = (1.0 + alpha) * g - alpha
    np.fill_diagonal(c, 1.0)
    lam_min = float(scipy.linalg.eigvalsh(c, subset_by_index=[0, 0])[0])
    if lam_min < -_PSD_TOL:
        g_min = float(scipy.linalg.eigvalsh(g, subset_by_index=[0, 0])[0])
        if g_min < -_PSD_TOL:
            why = f"corr itself is not positive semidefinite (min eigenvalue {g_min:.3g})"
        else:
            amax = _shift_alpha_max(g)
            why = f"alpha {alpha:.4g} is above the {amax:.4g} that keeps it positive semidefinite"
        raise InfeasibleError(
            f"shift gives an invalid correlation matrix: {why}; use method \"nearest\"",
            "method",
        )
    return c, float(alpha)


def _shift_alpha_max(g: np.ndarray) -> float:
    """Largest alpha with ``(1 + alpha) G - alpha 11'`` PSD, for a PSD ``G``.

    It is ``1 / (1'G^+1 - 1)`` when ``1`` lies in the range of ``G``, 0 otherwise.
    """
    lam, p = np.linalg.eigh(g)
    keep = lam > 1e-12 * max(1.0, lam[-1])
    one = np.ones(g.shape[0])
    proj = p[:, keep].T @ one
    if np.linalg.norm(one - p[:, keep] @ proj) > 1e-8 * np.sqrt(g.shape[0]):
        return 0.0
    q = float(proj @ (proj / lam[keep]))
    return float(1.0 / (q - 1.0)) if q > 1.0 + 1e-15 else float("inf")


# --------------------------------------------------------------------------- nearest (Newton)


class _Jacobian:
    """Generalised Jacobian of the dual gradient at ``X = P diag(lam) P'``.

    The operator is ``V h = A(W(A* h))`` with ``A(C) = (diag C, <M, C>)``,
    ``A*(h) = Diag(h[:n]) + h[n] M``, ``M = ah ah'`` and ``W`` the Jacobian of
    the projection onto the PSD cone, ``W(H) = P (Omega o P'HP) P'``. ``W`` acts
    through the smaller of the positive and non-positive eigenspaces S
    (CorNewton3): only the rows of ``Omega`` that belong to S are needed, so
    one product costs two ``(|S| x n) (n x n)``-sized matrix products,
    ``4 n^2 |S|`` flops. ``lam`` must be in ascending order (as ``eigh``
    returns it), so S is a leading or trailing block of columns and ``P`` is
    used as it is, without a reordered copy.
    """

    def __init__(self, lam: np.ndarray, p: np.ndarray, ah: np.ndarray):
        n = lam.size
        r = int(np.count_nonzero(lam > 0))  # the positive block is lam[n - r:]
        self.complement = r > n // 2
        self.p = p
        self.q = p.T @ ah
        self.ah2 = ah * ah
        lp, ln = lam[n - r :], lam[: n - r]
        tau = lp[:, None] / (lp[:, None] - ln[None, :])  # (r, n - r), in [0, 1]
        if self.complement:  # S: the n - r non-positive columns, first
            k = n - r
            self.s_cols, self.o_cols = slice(0, k), slice(k, n)
            t = (1.0 - tau).T
        else:  # S: the r positive columns, last
            k = r
            self.s_cols, self.o_cols = slice(n - k, n), slice(0, n - k)
            t = tau
        self.k = k
        self.ps = p[:, self.s_cols]
        self.qs = self.q[self.s_cols]
        # Rows of Omega for S in the column order of P; the cross block is
        # doubled (it appears twice in W(H)).
        self.omega = np.empty((k, n), dtype=p.dtype)
        self.omega[:, self.s_cols] = 1.0
        self.omega[:, self.o_cols] = 2.0 * t

    def apply(self, h: np.ndarray) -> np.ndarray:
        hd, hz = h[:-1], h[-1]
        out = np.empty_like(h)  # stays in the precision of the factors
        if self.k == 0:
            out[:] = 0.0
        else:
            b = (hd[:, None] * self.ps).T  # P_S' Diag(h)
            zmat = self.omega * (b @ self.p + hz * np.outer(self.qs, self.q))
            out[:-1] = np.einsum("ij,ij->i", self.ps @ zmat, self.p)
            out[-1] = self.qs @ zmat @ self.q
        if self.complement:
            out[:-1] = hd + hz * self.ah2 - out[:-1]
            out[-1] = self.ah2 @ hd + hz - out[-1]
        return out

    def diagonal(self) -> np.ndarray:
        """Diagonal of the operator, for a Jacobi preconditioner.

        With ``Omega`` one on the S block, ``V[i, i]`` is
        ``(sum_S P_ik^2)^2 + sum_(k in S, l in O) P_ik^2 2t_kl P_il^2``.
        """
        p2s = self.ps * self.ps
        p2o = self.p[:, self.o_cols] ** 2
        q2 = self.q * self.q
        q2s, q2o = q2[self.s_cols], q2[self.o_cols]
        t2 = self.omega[:, self.o_cols]
        out = np.empty(self.p.shape[0] + 1, dtype=self.p.dtype)
        out[:-1] = p2s.sum(axis=1) ** 2 + np.einsum("ij,ij->i", p2s @ t2, p2o)
        out[-1] = q2s.sum() ** 2 + q2s @ t2 @ q2o
        if self.complement:
            out = 1.0 - out
        return out


@contextlib.contextmanager
def _blas_threads() -> Iterator[None]:
    pools = threadpools()
    if BLAS_THREADS is None or pools is None:
        yield
        return
    with pools.limit(limits=BLAS_THREADS, user_api="blas"):
        yield


# Up to this size the generalised Hessian is formed explicitly (n^4 flops, a
# few BLAS calls) and the Newton system solved directly: cheaper than the
# Python overhead of conjugate gradients on small problems.
DENSE_HESSIAN_MAX = 24


def _dense_hessian(lam: np.ndarray, p: np.ndarray, ah: np.ndarray) -> np.ndarray:
    """The operator of :class:`_Jacobian` as an explicit ``(n+1) x (n+1)`` matrix.

    ``V[i, j] = sum_kl R_i[k, l] Omega[k, l] R_j[k, l]`` where ``R_i = P' E_i P``
    is ``outer(P[i], P[i])`` for a diagonal entry and ``outer(q, q)``,
    ``q = P' ah``, for the index row.
    """
    n = lam.size
    pos = lam > 0
    omega = np.zeros((n, n))
    omega[np.ix_(pos, pos)] = 1.0
    lp, ln = lam[pos], lam[~pos]
    tau = lp[:, None] / (lp[:, None] - ln[None, :])
    omega[np.ix_(pos, ~pos)] = tau
    omega[np.ix_(~pos, pos)] = tau.T
    q = p.T @ ah
    rows = np.concatenate([p[:, :, None] * p[:, None, :], (q[:, None] * q[None, :])[None]])
    flat = rows.reshape(n + 1, n * n)
    return (flat * omega.reshape(-1)) @ flat.T


# The index row of the Newton system is rescaled when its diagonal entry falls
# below one (below INDEX_SCALE_BELOW its row is first recomputed from the
# positive eigenspace, as the CorNewton3 complement loses it to cancellation).
# Near the bottom of the index vol's range the index multiplier z grows like
# 1 / s and that entry shrinks like 1 / |z|^3: unscaled, the regularisation
# (up to 1e-6) swamped it and Newton stalled (no convergence in 200 iterations
# for the sector example at s = 1e-4).
INDEX_SCALE_BELOW = 1e-2


def _index_scale(hzz: float) -> float:
    """Scale of the index multiplier that gives its row a unit diagonal entry."""
    return 1.0 / math.sqrt(max(hzz, 1e-300)) if hzz < 1.0 else 1.0


def _index_column(lam: np.ndarray, p: np.ndarray, ah: np.ndarray) -> np.ndarray:
    """Index column ``V e_z = A(W(M))`` of the Jacobian, from the positive eigenspace.

    ``W(M) = P_+ q_+ q_+' P_+' + P_+ T P_-' + P_- T' P_+'`` with ``q = P' ah``
    and ``T = tau o (q_+ q_-')``: every term is small when ``ah`` lies almost in
    the negative eigenspace, so the small entries keep their relative accuracy.
    Costs ``O(n r (n - r))`` for ``r`` positive eigenvalues.
    """
    n = lam.size
    r = int(np.count_nonzero(lam > 0))
    pp, pn = p[:, n - r :], p[:, : n - r]
    lp, ln = lam[n - r :], lam[: n - r]
    q = p.T @ ah
    qp, qn = q[n - r :], q[: n - r]
    t = lp[:, None] / (lp[:, None] - ln[None, :]) * qp[:, None] * qn[None, :]
    u = pp @ qp
    cross = np.einsum("ij,ij->i", pp @ t, pn)
    out = np.empty(n + 1)
    out[:-1] = u * u + 2.0 * cross
    out[-1] = float(qp @ qp) ** 2 + 2.0 * float(qp @ t @ qn)
    return out


class _IndexScaled:
    """The Jacobian with its index row and column exact and scaled by ``sz``.

    ``apply`` computes ``S V S h`` with ``S = diag(1, ..., 1, sz)``: the diagonal
    block from the CorNewton3 operator, the index column ``col`` from
    :func:`_index_column`.
    """

    def __init__(self, jac: _Jacobian, col: np.ndarray, sz: float):
        self.jac = jac
        self.sz = sz
        dt = jac.p.dtype
        self.col_d = (col[:-1] * sz).astype(dt)  # scaled off-diagonal part
        self.col_z = dt.type(col[-1] * sz * sz)

    def apply(self, h: np.ndarray) -> np.ndarray:
        hz = h[-1]
        h0 = h.copy()
        h0[-1] = 0.0
        out = self.jac.apply(h0)
        out[:-1] += self.col_d * hz
        out[-1] = self.col_d @ h[:-1] + self.col_z * hz
        return out


def _eig(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # x is symmetric, so its transpose is the same matrix in Fortran order (no copy).
    return scipy.linalg.eigh(x.T, check_finite=False, driver="evd", overwrite_a=True)


def _pcg(
    op: _Jacobian | _IndexScaled,
    rhs: np.ndarray,
    precond: np.ndarray,
    eps: float | np.ndarray,
    tol: float,
    max_iter: int,
) -> tuple[np.ndarray, int]:
    """Preconditioned conjugate gradients on ``(V + Diag(eps)) x = rhs``."""
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = r / precond
    p = z.copy()
    rz = r @ z
    for k in range(1, max_iter + 1):
        vp = op.apply(p) + eps * p
        pvp = p @ vp
        if pvp <= 0:
            break
        step = rz / pvp
        x += step * p
        r -= step * vp
        if np.linalg.norm(r) <= tol:
            return x, k
        z = r / precond
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, max_iter


# Size from which Newton's method runs in mixed precision. The global phase
# runs in single precision: float32 eigendecompositions and products cost about
# half, and the early iterations need no more than a few digits. It ends where
# float32 rounding stops the progress (a gradient norm of a few 1e-5), and the
# last iterations, which give the answer its accuracy, evaluate the dual in
# double precision; their Newton systems, which only need a few digits, are
# still solved with the eigenvectors rounded to float32.
MIXED_PRECISION_FROM = 300
# The single-precision phase hands over to double precision once its next step
# is predicted to bring the (scaled) gradient norm below HANDOFF_LEVEL; it stops
# on its own at SINGLE_TOL. Both are per sqrt(n + 1), like the tolerance.
HANDOFF_LEVEL = 1e-4
SINGLE_TOL = 1e-5


@dataclass
class _DualState:
    y: np.ndarray
    theta: float
    grad: np.ndarray
    lam: np.ndarray
    p: np.ndarray

    @property
    def gnorm(self) -> float:
        return float(np.linalg.norm(self.grad))


class _Dual:
    """The dual function theta(y) = 1/2 ||proj_psd(G + A*y)||^2 - b'y, in one precision.

    ``jac_dtype`` is the precision of the Newton systems (by default that of the
    dual itself).
    """

    def __init__(
        self,
        g: np.ndarray,
        ah: np.ndarray,
        b: np.ndarray,
        dtype: type,
        jac_dtype: type | None = None,
    ):
        self.g = g.astype(dtype)
        self.m = np.outer(ah, ah).astype(dtype)
        self.ah = ah.astype(dtype)
        self.b = b
        self.n = g.shape[0]
        self.eps = float(np.finfo(dtype).eps)
        self.index_floor = 2.0 * self.eps * float(np.abs(ah).sum()) ** 2
        self.jac_dtype = np.dtype(jac_dtype or dtype)

    def evaluate(self, y: np.ndarray) -> _DualState:
        x = self.g + self.m * self.m.dtype.type(y[-1])
        x[np.diag_indices(self.n)] += y[:-1].astype(x.dtype)
        lam, p = _eig(x)
        pos = lam > 0
        pp = p[:, pos]
        lp = lam[pos]
        qp = pp.T @ self.ah
        grad = np.concatenate([(pp * pp) @ lp, [qp * qp @ lp]]).astype(float) - self.b
        theta = 0.5 * float(lp.astype(float) @ lp.astype(float)) - float(self.b @ y)
        return _DualState(y, theta, grad, lam, p)

    def converged(
        self, st: _DualState, tol: float, index_tol: float, slack: float = 1.0, floor: bool = True
    ) -> bool:
        """Whether ``st`` meets the tolerances, or the rounding level if that is higher.

        The eigendecomposition of ``X`` is accurate to ``eps ||X||``, so the
        gradient cannot get below a few times that; near the bottom of the
        index vol's range the index multiplier, and so ``||X||``, grows like
        ``1 / s``. The index row's residual, ``ah'C ah - c``, is held to
        ``2 eps (sum |ah|)^2`` at least, the rounding error of evaluating
        ``ah'C ah`` itself (relative to ``c``: ``2 eps (hi / s)^2``); ``slack``
        widens that to at most twice.
        """
        root = math.sqrt(self.n + 1) if floor else 0.0
        g_floor = 10.0 * self.eps * root * float(np.abs(st.lam).max())
        index_floor = self.index_floor * min(slack, 2.0) if floor else 0.0
        return (st.gnorm <= slack * max(tol, g_floor)
                and abs(st.grad[-1]) <= max(slack * index_tol, index_floor))

    def direction(self, st: _DualState, tol: float) -> np.ndarray:
        """Inexact Newton direction at ``st``: ``(V + reg D) d = -grad``.

        ``D`` is the diagonal of ``V`` capped at one: the regularisation is
        relative to each row, so that no row whose entries are small (the index
        row near the bottom of the range) is swamped by it.
        """
        n = self.n
        gnorm = st.gnorm
        reg = min(1e-6, 0.1 * gnorm)
        if n <= DENSE_HESSIAN_MAX:
            # Every row scaled to a unit diagonal (none is scaled up): near the
            # bottom of the range the index row, and with small weights next to a
            # dominant one some diagonal rows too, would be swamped by reg.
            hess = _dense_hessian(st.lam, st.p, self.ah)
            sv = 1.0 / np.sqrt(np.clip(np.diag(hess), 1e-300, 1.0))
            hess *= sv[:, None] * sv[None, :]
            hess[np.diag_indices(n + 1)] += reg
            d = scipy.linalg.solve(hess, -st.grad * sv, assume_a="pos", check_finite=False)
            return d * sv
        dt = self.jac_dtype
        jac = _Jacobian(st.lam.astype(dt, copy=False), st.p.astype(dt, copy=False),
                        self.ah.astype(dt, copy=False))
        diag = jac.diagonal()
        op: _Jacobian | _IndexScaled = jac
        if diag[-1] < INDEX_SCALE_BELOW:
            col = _index_column(st.lam, st.p, self.ah.astype(float))
            sz = _index_scale(col[-1])
            op = _IndexScaled(jac, col, sz)
            diag[-1] = 1.0 if sz > 1.0 else col[-1]
        # The regularisation relative to each diagonal entry (at most reg), as
        # the dense path's scaling does; entries at the rounding level of the
        # complement's 1 - x are not trusted below it.
        rel = np.clip(diag, 1e3 * float(np.finfo(dt).eps), 1.0) * reg
        precond = np.maximum(diag, 1e-8) + rel
        forcing = min(1e-2, gnorm**0.5)
        if dt == np.float32:
            forcing = max(forcing, 1e-5)  # as far as float32 conjugate gradients go
        cg_tol = max(forcing * gnorm, 0.1 * tol)
        if isinstance(op, _IndexScaled):
            rhs = -st.grad
            rhs[-1] *= op.sz
            d, _ = _pcg(op, rhs.astype(dt), precond, rel, cg_tol, max_iter=min(n + 1, 300))
            d = d.astype(float)
            d[-1] *= op.sz
            return d
        d, _ = _pcg(jac, -st.grad.astype(dt), precond, rel, cg_tol, max_iter=min(n + 1, 300))
        return d.astype(float)

    def newton(
        self,
        st: _DualState,
        tol: float,
        max_iter: int,
        index_tol: float = np.inf,
        max_backtracks: int = 40,
        handoff: float | None = None,
    ) -> tuple[_DualState, int, np.ndarray | None]:
        """Semismooth Newton-CG with an Armijo line search from ``st``.

        Stops when ``||grad|| <= tol`` and the index row's residual is at most
        ``index_tol`` (a relative accuracy for a small index variance). With a
        ``handoff`` level, it stops instead as soon as the next full Newton step
        is predicted (from the last contraction) to bring ``||grad||`` below
        that level, and returns that step, untaken, for the caller to evaluate
        in a higher precision; otherwise the step returned is None.
        """
        it = 0
        prev = None
        # A single-precision phase hands over at its rounding level, with its step.
        while (not self.converged(st, tol, index_tol, floor=handoff is None)
               and it < max_iter):
            gnorm = st.gnorm
            d = self.direction(st, tol)
            slope = float(st.grad @ d)
            if slope >= 0:  # not a descent direction: fall back to steepest descent
                d = -st.grad
                slope = -gnorm**2
            elif handoff is not None and (
                (prev is not None and gnorm * gnorm / prev <= handoff)
                or self.converged(st, tol, index_tol)
            ):
                return st, it, d
            it += 1
            # Near the optimum the predicted decrease of theta falls below its
            # rounding error; there, a step that shrinks the residual is accepted.
            roundoff = 1e3 * self.eps * (1.0 + abs(st.theta))
            step = 1.0
            for _ in range(max_backtracks):
                new = self.evaluate(st.y + step * d)
                if new.theta <= st.theta + 1e-4 * step * slope:
                    break
                if -step * slope < roundoff and new.gnorm < gnorm:
                    break
                step *= 0.5
            else:
                break  # no progress possible in this precision
            prev = gnorm
            st = new
        return st, it, None


def _nearest(
    g: np.ndarray, a: np.ndarray, s: float, tol: float, max_iter: int
) -> tuple[np.ndarray, int]:
    """Semismooth Newton on the dual of the nearest correlation problem with index row."""
    n = g.shape[0]
    na = float(np.linalg.norm(a))
    ah = a / na
    c_idx = (s / na) ** 2
    b = np.concatenate([np.ones(n), [c_idx]])
    # Start from the multipliers that meet the constraints when the PSD
    # condition is dropped (C = G + Diag(y) + zM): a close guess when G is
    # nearly PSD, and it saves two or three Newton steps.
    ah2 = ah * ah
    z0 = (c_idx - float(ah @ g @ ah)) / max(1.0 - float(ah2 @ ah2), 1e-12)
    y = np.concatenate([-z0 * ah2, [z0]])
    it = 0
    mixed = n >= MIXED_PRECISION_FROM
    dual = _Dual(g, ah, b, np.float64, jac_dtype=np.float32 if mixed else None)
    if mixed:
        root = np.sqrt(n + 1)
        single = _Dual(g, ah, b, np.float32)
        st32, it, step = single.newton(
            single.evaluate(y),
            SINGLE_TOL * root,
            max_iter,
            max_backtracks=6,
            handoff=HANDOFF_LEVEL * root,
        )
        st = None
        if step is not None:  # the last single-precision step, evaluated in double
            st = dual.evaluate(st32.y + step)
            it += 1
            if st.gnorm > st32.gnorm:  # a bad prediction: start from the last good point
                st = None
        if st is None:
            st = dual.evaluate(st32.y)
    else:
        st = dual.evaluate(y)
    index_tol = 1e-11 * c_idx
    st, it64, _ = dual.newton(st, tol, max_iter - it, index_tol=index_tol)
    it += it64
    if not dual.converged(st, tol, index_tol, slack=1e3):
        raise ConvergenceError(
            f"nearest implied correlation did not converge (residual {st.gnorm:.2g} after "
            f"{it} iterations); index_vol may be too close to the edge of its range",
            "index_vol",
        )
    pos = st.lam > 0
    c = (st.p[:, pos] * st.lam[pos]) @ st.p[:, pos].T
    return c, it


def _polish(c: np.ndarray, a: np.ndarray, s: float) -> np.ndarray:
    """Exact unit diagonal, then the index variance exactly, staying in the PSD cone.

    Rescaling ``D^-1/2 C D^-1/2`` keeps ``C`` PSD; a convex combination with a
    correlation matrix on the other side of the index constraint (all
    correlations +-1, or the identity) then meets ``a'Ca = s^2`` exactly. Both
    changes are of the order of the Newton residual.
    """
    d = np.sqrt(np.clip(np.diag(c), 1e-300, None))
    c = c / d[:, None] / d[None, :]
    c = 0.5 * (c + c.T)
    np.fill_diagonal(c, 1.0)
    target = s * s
    var = float(a @ c @ a)
    sign = np.where(a >= 0, 1.0, -1.0)
    absa = np.abs(a)
    if var < target:
        e = np.outer(sign, sign)  # a'Ea = (sum |a|)^2, the top of the range
    else:
        k = int(absa.argmax())
        if 2 * absa[k] > absa.sum():
            u = -sign.copy()
            u[k] = sign[k]
            e = np.outer(u, u)  # the bottom of the range
        elif float(a @ a) < target:
            e = np.eye(a.size)
        else:
            return c
    ev = float(a @ e @ a)
    if ev == var:
        return c
    t = (var - target) / (var - ev)
    if 0.0 < t < 1e-6:
        c = (1.0 - t) * c + t * e
        np.fill_diagonal(c, 1.0)
    return c


# --------------------------------------------------------------------------- entry point


def _check_one_asset(sh: float, ah: float, s: float, e: int, n: int, method: str) -> None:
    """With one weighted asset the only reachable index vol is ``|w v| = ah * 2**e``."""
    which = "one asset" if n == 1 else "only one asset weighted"
    if abs(sh - ah) > 1e-9 * ah:
        raise InfeasibleError(
            f"index_vol {s:.4g} cannot be reached with {which}: the index vol is then "
            f"weight x vol = {_ldexp(ah, e):.4g}",
            "index_vol",
        )
    if n > 1 and method == "shift":
        raise InputError(f'with {which} the shift is undefined; use method "nearest"', "method")


def implied_correlation(
    weights: object,
    vols: object,
    index_vol: object,
    corr: object,
    method: str = "nearest",
    *,
    labels: Sequence[str] | None = None,
    tol: float = 1e-11,
    max_iter: int = 200,
) -> ImpliedCorrelation:
    """Option-implied correlation matrix of an index's constituents.

    Parameters
    ----------
    weights : array-like of shape (n_assets,)
        Index weights (fractions; their sum need not be 1).
    vols : array-like of shape (n_assets,)
        Constituent implied vols, strictly positive, in the units of ``index_vol``
        (e.g. annualised, 0.15 for 15%).
    index_vol : float
        The index's implied vol, same units.
    corr : array-like of shape (n_assets, n_assets)
        Benchmark correlation ``C_B`` (usually historical): symmetric, unit
        diagonal, entries in [-1, 1]; need not be PSD.
    method : {"nearest", "shift"}
        ``nearest``: the correlation closest to ``corr`` in Frobenius norm that
        reproduces ``index_vol`` (exact, PSD). ``shift``: Buss & Vilkov's shift.
    labels : sequence of str, optional
        Asset labels, used in messages and carried on the result.
    tol : float
        Newton stopping tolerance on the dual gradient norm (scaled constraints).
    max_iter : int
        Newton iteration limit.

    Returns
    -------
    ImpliedCorrelation

    Raises
    ------
    InputError
        Malformed inputs (the message names the argument).
    InfeasibleError
        ``index_vol`` outside the reachable range (the message gives the range),
        or ``shift`` leaving the valid correlation matrices. A positive bottom
        of the range (one dominant weight) is reachable with ``nearest`` when
        every asset is weighted (the one singular matrix there); with an
        unweighted asset it is refused. With one asset (or
        only one with a nonzero weight) the only reachable index vol is
        ``|w v|``, to a relative 1e-9; the answer is then ``[[1]]`` (or the
        nearest correlation matrix to ``corr``).

    Notes
    -----
    The problem is invariant to scaling ``a = v * w`` and ``index_vol``
    together; it is solved for ``a / 2**e`` with ``max |a / 2**e|`` near one, so
    any size of weights and vols gives the same correlation matrix.

    """
    t0 = time.perf_counter()
    method_name = str(method).strip().lower() if method is not None else "nearest"
    if method_name not in METHODS:
        raise InputError(
            f"method must be one of {', '.join(METHODS)} (got {method!r})", "method"
        )
    w, v = _validate_wv(weights, vols)
    s = _validate_index_vol(index_vol)
    if labels is not None and len(labels) != w.size:
        raise InputError(f"labels has {len(labels)} entries but weights has {w.size}", "labels")
    g = validate_correlation(corr, w.size, labels)
    big, small = float(v.max()), float(v.min())
    if not math.isfinite(big * big) or small * small == 0.0:
        bad = big if not math.isfinite(big * big) else small
        raise InputError(
            f"vols has {bad:.4g}, whose square (a variance) is out of range; "
            "give vols as fractions, e.g. 0.15 for 15%",
            "vols",
        )
    # Work with a / 2**e and s / 2**e (max |a / 2**e| near 1): the answer is
    # the same and nothing overflows or underflows.
    ah, e = _scaled(w, v)
    sh = _ldexp(s, -e)
    alpha = None
    iterations = 0
    weighted = np.flatnonzero(ah)
    if weighted.size == 1:  # the index is one asset: its vol is |w v|, whatever corr
        _check_one_asset(sh, abs(float(ah[weighted[0]])), s, e, w.size, method_name)
    if w.size == 1:
        c = np.ones((1, 1))
    else:
        lo, hi = _range(ah)
        margin = 1e-9 * hi
        # A positive bottom of the range is reachable, by one singular matrix
        # when every asset is weighted (correlation -1 between the dominant
        # asset and each other one), and Newton's method finds it; with an
        # unweighted asset the rest of that matrix is a degenerate problem.
        bottom = lo * (1.0 - 1e-12) if (
            lo > 0 and method_name == "nearest" and weighted.size == w.size
        ) else lo + margin
        if weighted.size > 1 and not (bottom <= sh < hi - margin):
            raise InfeasibleError(_range_message(s, _ldexp(lo, e), _ldexp(hi, e)), "index_vol")
        with _blas_threads():
            if method_name == "shift":
                c, alpha = _shift(g, ah, sh)
            else:
                c, iterations = _nearest(g, ah, sh, tol * np.sqrt(w.size + 1), max_iter)
                c = _polish(c, ah, sh)
    achieved_h = math.sqrt(max(float(ah @ c @ ah), 0.0))
    achieved = _ldexp(achieved_h, e)
    residual = max(
        float(np.abs(np.diag(c) - 1.0).max()), abs(achieved_h**2 - sh * sh) / (sh * sh)
    )
    cov = c * v[:, None] * v[None, :]
    return ImpliedCorrelation(
        corr=c,
        cov=cov,
        method=method_name,
        index_vol=s,
        achieved_index_vol=achieved,
        objective=float(np.linalg.norm(c - g)),
        iterations=iterations,
        residual=residual,
        seconds=time.perf_counter() - t0,
        alpha=alpha,
        labels=tuple(labels) if labels is not None else None,
    )
