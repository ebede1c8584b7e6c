"""Betas to an ETF and beta-neutral rebalancing (SPEC section 3.2).

Assets are matched by ticker (:func:`~xlfuncs.core.normalise_ticker`), never
by position: the covariance must carry tickers, and the holdings and the ETF
weights may list theirs in any order. The asset universe is the union of the
holdings and the ETF's constituents.

With ``w_f`` the ETF weights (scaled to sum to 1) and ``Sigma`` the covariance
over the universe, the beta of asset *i* is ``(Sigma w_f)_i / (w_f' Sigma w_f)``
and a portfolio's beta is ``beta' w``. A hedge line (ticker
:data:`HEDGE_TICKER`) is a position in the ETF itself: beta 1, covariance
``Sigma w_f`` with the assets and variance ``w_f' Sigma w_f``. That lets the
output of :func:`beta_neutral` be fed back in as holdings.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from xlfuncs.core._covcheck import check_covariance, check_psd
from xlfuncs.core._labels import Labelled
from xlfuncs.core._tickers import normalise_ticker
from xlfuncs.errors import ConvergenceError, InfeasibleError, InputError

__all__ = [
    "BETA_METHODS",
    "HEDGE_TICKER",
    "BetaNeutral",
    "beta_neutral",
    "etf_betas",
    "portfolio_beta",
]

HEDGE_TICKER = "ETF (hedge)"
BETA_METHODS = ("hedge", "reweight")

_HEDGE_KEY = normalise_ticker(HEDGE_TICKER)
_RANGE_TOL = 1e-9  # slack on the reachable beta range
_SOLVER_TOL = 1e-10


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BetaNeutral:
    """Holdings re-weighted to a target beta, with what it cost in tracking risk.

    Attributes
    ----------
    tickers : tuple of str
        The holdings' tickers as given, then :data:`HEDGE_TICKER` for a hedge line.
    current, new : ndarray of shape (n_positions,)
        Weights before and after (fractions of the portfolio; the hedge line is
        a position in the ETF, usually negative).
    method : str
        ``"hedge"`` or ``"reweight"``.
    target_beta, beta_before, beta_after : float
        Portfolio betas to the ETF.
    tracking_variance : float
        ``(new - current)' Sigma (new - current)``, in the covariance's units
        (annualised when the covariance is).
    reachable : tuple of float or None
        The range of betas the bounds allow (``reweight`` only).
    solver : str
        How the answer was found (``exact``, ``clarabel+polish``, ``clarabel``).
    seconds : float
        Wall-clock time of the solve.

    """

    tickers: tuple[str, ...]
    current: np.ndarray
    new: np.ndarray
    method: str
    target_beta: float
    beta_before: float
    beta_after: float
    tracking_variance: float
    reachable: tuple[float, float] | None
    solver: str
    seconds: float

    @property
    def tracking_error(self) -> float:
        """Square root of :attr:`tracking_variance` (same time unit as the covariance)."""
        return math.sqrt(max(self.tracking_variance, 0.0))

    def table(self) -> list[list[object]]:
        """Header ``ticker, current weight, new weight`` and one row per position."""
        rows: list[list[object]] = [["ticker", "current weight", "new weight"]]
        for t, c, n in zip(self.tickers, self.current, self.new, strict=True):
            rows.append([t, float(c), float(n)])
        return rows


# --------------------------------------------------------------------------- inputs


def _keys(item: Labelled, name: str, what: str) -> list[str]:
    if item.labels is None:
        raise InputError(f"{name} needs tickers ({what}) so assets are matched by ticker", name)
    keys = [normalise_ticker(t) for t in item.labels]
    seen: dict[str, str] = {}
    for key, lab in zip(keys, item.labels, strict=True):
        if key in seen:
            raise InputError(f"{name} has the ticker {key} twice", name)
        seen[key] = lab
    vals = np.asarray(item.values, dtype=float)
    bad = np.flatnonzero(~np.isfinite(vals)) if vals.ndim == 1 else []
    if len(bad):
        raise InputError(f"{name} has a non-finite weight for {item.labels[bad[0]]}", name)
    return keys


def _check_cov(cov: Labelled) -> tuple[list[str], np.ndarray]:
    keys = _keys(cov, "cov", "in its first row and column, e.g. from HIST_COV with a header")
    return keys, check_covariance(cov.values, cov.labels or (), "cov")


@dataclass(frozen=True)
class _Universe:
    """The union of holdings and ETF constituents, with its covariance."""

    holdings_keys: list[str]  # holdings without the hedge line, as keys
    cov: np.ndarray  # over holdings (no hedge) then ETF-only assets
    etf: np.ndarray  # ETF weights over the same assets, sum 1
    etf_cov: np.ndarray  # Sigma w_f
    etf_var: float  # w_f' Sigma w_f

    @property
    def betas(self) -> np.ndarray:
        return self.etf_cov / self.etf_var


def _etf_weights(etf_weights: Labelled) -> tuple[list[str], np.ndarray]:
    keys = _keys(etf_weights, "etf_weights", "ticker and weight columns")
    if _HEDGE_KEY in keys:
        raise InputError(f"etf_weights cannot hold the {HEDGE_TICKER} line", "etf_weights")
    w = np.asarray(etf_weights.values, dtype=float)
    total = float(w.sum())
    if not total > 0:
        raise InputError(
            f"etf_weights must add up to a positive total (they add up to {total:.4g})",
            "etf_weights",
        )
    # an ETF is fully invested in what it holds: only relative weights matter
    return keys, w / total


def _universe(holding_keys: Sequence[str], etf_weights: Labelled, cov: Labelled) -> _Universe:
    etf_keys, wf = _etf_weights(etf_weights)
    cov_keys, s = _check_cov(cov)
    held = [k for k in holding_keys if k != _HEDGE_KEY]
    held_set = set(held)
    keys = held + [k for k in etf_keys if k not in held_set]
    pos = {k: i for i, k in enumerate(cov_keys)}
    missing = [k for k in keys if k not in pos]
    if missing:
        source = "holdings" if missing[0] in held_set else "etf_weights"
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"cov has no row for {missing[0]} (in {source}){more}", "cov")
    idx = [pos[k] for k in keys]
    sub = s[np.ix_(idx, idx)]
    check_psd(sub, keys)
    etf = np.zeros(len(keys))
    at = {k: i for i, k in enumerate(keys)}
    for k, v in zip(etf_keys, wf, strict=True):
        etf[at[k]] = v
    etf_cov = sub @ etf
    etf_var = float(etf @ etf_cov)
    if not etf_var > 1e-300:
        raise InputError("cov gives the ETF zero variance (w' cov w = 0); its betas are undefined",
                         "cov")
    return _Universe(held, sub, etf, etf_cov, etf_var)


@dataclass(frozen=True)
class _Positions:
    """Holdings (and a hedge line, if present) with their betas and covariance."""

    tickers: tuple[str, ...]
    weights: np.ndarray
    betas: np.ndarray
    cov: np.ndarray
    hedge: int | None  # index of the hedge line
    etf_var: float  # variance of the ETF (of a hedge line of weight 1)


def _positions(holdings: Labelled, etf_weights: Labelled, cov: Labelled) -> _Positions:
    keys = _keys(holdings, "holdings", "ticker and weight columns")
    uni = _universe(keys, etf_weights, cov)
    n_held = len(uni.holdings_keys)
    w = np.asarray(holdings.values, dtype=float)
    labels = holdings.labels or ()
    hedge_at = keys.index(_HEDGE_KEY) if _HEDGE_KEY in keys else None
    order = [i for i, k in enumerate(keys) if k != _HEDGE_KEY]
    s = uni.cov[:n_held, :n_held]
    b = uni.betas[:n_held]
    tickers = [labels[i] for i in order]
    weights = w[order]
    if hedge_at is not None:
        c = uni.etf_cov[:n_held]
        s = np.block([[s, c[:, None]], [c[None, :], np.array([[uni.etf_var]])]])
        b = np.append(b, 1.0)
        tickers.append(HEDGE_TICKER)
        weights = np.append(weights, w[hedge_at])
    return _Positions(tuple(tickers), weights, b, s,
                      len(tickers) - 1 if hedge_at is not None else None, uni.etf_var)


# --------------------------------------------------------------------------- betas


def etf_betas(etf_weights: Labelled, cov: Labelled) -> Labelled:
    """Beta of every asset in ``cov`` to the ETF: ``(Sigma w_f)_i / (w_f' Sigma w_f)``.

    Parameters
    ----------
    etf_weights : Labelled
        ETF constituent weights with tickers; scaled to sum to 1.
    cov : Labelled
        Covariance matrix with tickers, covering every ETF constituent.

    Returns
    -------
    Labelled
        Betas of shape (n_assets,) in the order of ``cov``'s tickers.

    """
    cov_keys, _ = _check_cov(cov)
    uni = _universe(cov_keys, etf_weights, cov)
    return Labelled(uni.betas[: len(cov_keys)], cov.labels)


def portfolio_beta(holdings: Labelled, etf_weights: Labelled, cov: Labelled) -> float:
    """Beta of a portfolio to the ETF, ``beta' w`` (a hedge line counts with beta 1)."""
    pos = _positions(holdings, etf_weights, cov)
    return float(pos.betas @ pos.weights)


# --------------------------------------------------------------------------- rebalancing


def beta_neutral(
    holdings: Labelled,
    etf_weights: Labelled,
    cov: Labelled,
    target_beta: float = 0.0,
    method: str = "hedge",
    long_only: bool = False,
    max_weight: float | None = None,
) -> BetaNeutral:
    """Bring the portfolio's beta to the ETF to ``target_beta``.

    Parameters
    ----------
    holdings : Labelled
        Current weights with tickers (fractions; shorts negative). A line with
        ticker :data:`HEDGE_TICKER` is an existing position in the ETF.
    etf_weights : Labelled
        ETF constituent weights with tickers.
    cov : Labelled
        Covariance with tickers, covering the holdings and the constituents.
    target_beta : float
        The beta wanted, usually 0.
    method : {"hedge", "reweight"}
        ``hedge`` keeps every holding and adds (or resizes) one position in the
        ETF of ``-(beta_p - target)``: exact and always feasible. ``reweight``
        solves ``min (x - w)' Sigma (x - w)`` subject to ``beta' x = target``
        and ``sum x = sum w``, with optional bounds.
    long_only : bool
        ``reweight`` only: every new weight ``>= 0``.
    max_weight : float, optional
        ``reweight`` only: every new weight ``<= max_weight`` (and
        ``>= -max_weight`` unless ``long_only``).

    Returns
    -------
    BetaNeutral

    Raises
    ------
    InputError
        Malformed inputs, naming the argument.
    InfeasibleError
        The bounds make the target unreachable; the message gives the
        reachable beta range.

    """
    t0 = time.perf_counter()
    if method not in BETA_METHODS:
        raise InputError(f'method must be one of {", ".join(BETA_METHODS)} (got "{method}")',
                         "method")
    if not math.isfinite(target_beta):
        raise InputError("target_beta must be a finite number", "target_beta")
    if method == "hedge" and (long_only or max_weight is not None):
        arg = "long_only" if long_only else "max_weight"
        raise InputError(f"{arg} applies to method reweight; hedge keeps every holding as it is",
                         arg)
    if max_weight is not None and not (math.isfinite(max_weight) and max_weight > 0):
        raise InputError(f"max_weight must be a positive number (got {max_weight:.4g})",
                         "max_weight")
    if max_weight is not None and max_weight > 1:  # a percentage typed as a number
        raise InputError(f"max_weight {max_weight:g} is {max_weight:.0%} of the portfolio: write "
                         f"{max_weight / 100:g} or {max_weight:g}% for {max_weight:g} percent",
                         "max_weight")
    pos = _positions(holdings, etf_weights, cov)
    w, b = pos.weights, pos.betas
    before = float(b @ w)
    if method == "hedge":
        new = w.copy()
        gap = before - target_beta
        if pos.hedge is None:
            tickers = (*pos.tickers, HEDGE_TICKER)
            w = np.append(w, 0.0)
            new = np.append(new, -gap)
        else:
            tickers = pos.tickers
            new[pos.hedge] -= gap
        after = float((b if pos.hedge is not None else np.append(b, 1.0)) @ new)
        return BetaNeutral(tickers, w, new, method, target_beta, before, after,
                           gap * gap * pos.etf_var, None, "exact", time.perf_counter() - t0)
    lb, ub = _bounds(pos, long_only, max_weight)
    reach = _reachable(b, float(w.sum()), lb, ub, long_only, max_weight)
    _check_target(target_beta, reach, b, long_only, max_weight)
    x, solver = _reweight(pos.cov, b, w, target_beta, lb, ub)
    d = x - w
    return BetaNeutral(pos.tickers, w, x, method, target_beta, before, float(b @ x),
                       float(d @ pos.cov @ d), reach, solver, time.perf_counter() - t0)


def _bounds(pos: _Positions, long_only: bool, max_weight: float | None
            ) -> tuple[np.ndarray | None, np.ndarray | None]:
    n = len(pos.weights)
    if long_only:
        neg = np.flatnonzero(pos.weights < 0)
        if neg.size:
            i = int(neg[0])
            raise InputError(
                f"holdings has a negative weight for {pos.tickers[i]} ({pos.weights[i]:.4g}) "
                "but long_only is TRUE",
                "holdings",
            )
    lb = np.zeros(n) if long_only else None
    ub = None
    if max_weight is not None:
        ub = np.full(n, max_weight)
        if lb is None:
            lb = np.full(n, -max_weight)
    return lb, ub


def _bounds_text(long_only: bool, max_weight: float | None) -> str:
    parts = (["long_only"] if long_only else []) + (
        [f"max_weight {max_weight:.4g}"] if max_weight is not None else []
    )
    return " and ".join(parts)


def _reachable(b: np.ndarray, total: float, lb: np.ndarray | None, ub: np.ndarray | None,
               long_only: bool, max_weight: float | None) -> tuple[float, float]:
    """Lowest and highest ``beta' x`` with ``sum x = total`` inside the bounds (two LPs)."""
    n = len(b)
    if lb is None and ub is None:
        if np.ptp(b) > 1e-12 * max(1.0, float(np.abs(b).max())):
            return (-math.inf, math.inf)
        return (total * float(b.mean()),) * 2
    from scipy.optimize import linprog

    bounds = [(None if lb is None else lb[i], None if ub is None else ub[i]) for i in range(n)]
    out = []
    for sign in (1.0, -1.0):
        res = linprog(sign * b, A_eq=np.ones((1, n)), b_eq=[total], bounds=bounds,
                      method="highs")
        if res.status == 2:
            lo = float(lb.sum()) if lb is not None else -math.inf
            hi = float(ub.sum()) if ub is not None else math.inf
            raise InfeasibleError(
                f"{_bounds_text(long_only, max_weight)} cannot hold the holdings' total weight "
                f"{total:.4g} ({n} positions can sum to {lo:.4g} to {hi:.4g})",
                "max_weight" if max_weight is not None else "long_only",
            )
        if res.status == 3:
            out.append(-sign * math.inf)
        elif res.status != 0:
            raise ConvergenceError(f"the beta-range LP failed ({res.message})")
        else:
            out.append(sign * float(res.fun))
    return out[0], out[1]


def _check_target(target: float, reach: tuple[float, float], b: np.ndarray, long_only: bool,
                  max_weight: float | None) -> None:
    lo, hi = reach
    slack = _RANGE_TOL * max(1.0, abs(lo), abs(hi))
    if lo - slack <= target <= hi + slack:
        return
    if lo == hi:
        raise InfeasibleError(
            f"every holding has the same beta ({b[0]:.4g}), so reweighting keeps the portfolio "
            f"beta at {lo:.4g}; use method hedge to reach target_beta {target:.4g}",
            "target_beta",
        )
    how = f" with {_bounds_text(long_only, max_weight)}" if (long_only or max_weight) else ""
    raise InfeasibleError(
        f"target_beta {target:.4g} cannot be reached{how}: the holdings' beta can range from "
        f"{lo:.4g} to {hi:.4g}",
        "target_beta",
    )


def _kkt(s: np.ndarray, a: np.ndarray, rhs: np.ndarray, w: np.ndarray,
         fixed: np.ndarray, x_fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Minimise ``(x-w)' s (x-w)`` s.t. ``a x = rhs`` with ``x[fixed] = x_fixed`` exactly.

    Cholesky of the free block and a 2x2 Schur complement for the equality
    multipliers (an LU of the whole KKT matrix when the block is singular), then
    one step of iterative refinement. Returns ``(x, lam)`` or None when the
    system is singular (e.g. too few free positions for the two equalities).
    """
    free = ~fixed
    nf, m = int(free.sum()), a.shape[0]
    if nf == 0:
        return None
    x = w.copy()
    x[fixed] = x_fixed
    d_fixed = x[fixed] - w[fixed]
    h = 2.0 * s[np.ix_(free, free)]
    a_f = a[:, free]
    r1 = -2.0 * s[np.ix_(free, fixed)] @ d_fixed
    r2 = rhs - a[:, fixed] @ x[fixed] - a_f @ w[free]
    k = np.block([[h, a_f.T], [a_f, np.zeros((m, m))]])
    r = np.concatenate([r1, r2])
    with warnings.catch_warnings():
        warnings.simplefilter("error", sla.LinAlgWarning)
        try:
            solve = _schur_solver(h, a_f)
        except (sla.LinAlgError, sla.LinAlgWarning, ValueError):
            try:
                lu = sla.lu_factor(k, check_finite=False)
            except (sla.LinAlgError, sla.LinAlgWarning, ValueError):
                return None

            def solve(rr: np.ndarray) -> np.ndarray:
                return sla.lu_solve(lu, rr, check_finite=False)

        sol = solve(r)
        sol += solve(r - k @ sol)  # one refinement step
    if not np.isfinite(sol).all():
        return None
    x[free] = w[free] + sol[:nf]
    return x, sol[nf:]


def _schur_solver(h: np.ndarray, a_f: np.ndarray):
    """Solver of ``[[h, a'], [a, 0]] z = r`` through a Cholesky of ``h``."""
    nf = h.shape[0]
    cho = sla.cho_factor(h, lower=True, check_finite=False)
    hi_at = sla.cho_solve(cho, a_f.T, check_finite=False)  # h^-1 a'
    schur = a_f @ hi_at
    if np.linalg.cond(schur) > 1e12:
        raise sla.LinAlgError("the equality constraints are dependent on the free set")
    schur_lu = sla.lu_factor(schur, check_finite=False)

    def solve(r: np.ndarray) -> np.ndarray:
        hr = sla.cho_solve(cho, r[:nf], check_finite=False)
        lam = sla.lu_solve(schur_lu, a_f @ hr - r[nf:], check_finite=False)
        return np.concatenate([hr - hi_at @ lam, lam])

    return solve


def _reweight(s: np.ndarray, b: np.ndarray, w: np.ndarray, target: float,
              lb: np.ndarray | None, ub: np.ndarray | None) -> tuple[np.ndarray, str]:
    """The reweight QP: exact KKT solve, active-set iterations, Clarabel as the fallback."""
    n = len(w)
    scale = float(np.diag(s).mean()) or 1.0
    sn = s / scale  # the minimiser does not depend on the objective's scale
    a = np.vstack([b, np.ones(n)])
    rhs = np.array([target, float(w.sum())])
    got = _kkt(sn, a, rhs, w, np.zeros(n, dtype=bool), np.empty(0))
    if got is not None and _feasible(got[0], a, rhs, lb, ub):
        return got[0], "exact"
    if got is not None:
        x = _active_set(sn, a, rhs, w, lb, ub, got[0])
        if x is not None:
            return x, "active-set"
    x = _clarabel(sn, a, rhs, w, lb, ub)
    polished = _polish(sn, a, rhs, w, x, lb, ub)
    if polished is not None:
        return polished, "clarabel+polish"
    return x, "clarabel"


def _active_set(s: np.ndarray, a: np.ndarray, rhs: np.ndarray, w: np.ndarray,
                lb: np.ndarray | None, ub: np.ndarray | None, x0: np.ndarray,
                max_iter: int = 40) -> np.ndarray | None:
    """Primal-dual active-set iterations (Hintermueller, Ito & Kunisch 2002) for the bounds.

    Each iteration fixes the positions guessed to sit at a bound and solves the
    rest exactly; the guess is updated from the bound multipliers and the
    violations. When the guess repeats, the KKT conditions hold exactly and the
    answer is the optimum to machine precision. None when it does not settle
    (the caller then uses Clarabel).
    """
    n = len(w)
    lo = lb if lb is not None else np.full(n, -np.inf)
    hi = ub if ub is not None else np.full(n, np.inf)
    c = 2.0 * float(np.diag(s).mean())
    x, g = x0, np.zeros(n)  # g: gradient of the Lagrangian = bound multipliers
    at_lo = np.zeros(n, dtype=bool)
    at_hi = np.zeros(n, dtype=bool)
    seen: set[bytes] = set()
    for _ in range(max_iter):
        with np.errstate(invalid="ignore"):
            new_lo = (g + c * (lo - x)) > 0
            new_hi = (-g + c * (x - hi)) > 0
        new_lo &= ~new_hi
        if seen and np.array_equal(new_lo, at_lo) and np.array_equal(new_hi, at_hi):
            return x if _feasible(x, a, rhs, lb, ub) else None
        key = new_lo.tobytes() + new_hi.tobytes()
        if key in seen:
            return None  # cycling
        seen.add(key)
        at_lo, at_hi = new_lo, new_hi
        fixed = at_lo | at_hi
        got = _kkt(s, a, rhs, w, fixed, np.where(at_lo, lo, hi)[fixed])
        if got is None:
            return None
        x, lam = got
        g = 2.0 * s @ (x - w) + a.T @ lam
        g[~fixed] = 0.0
    return None


def _feasible(x: np.ndarray, a: np.ndarray, rhs: np.ndarray,
              lb: np.ndarray | None, ub: np.ndarray | None, tol: float = 1e-12) -> bool:
    ok = np.abs(a @ x - rhs).max() <= 1e-12 * max(1.0, float(np.abs(rhs).max()))
    if lb is not None:
        ok = ok and bool((x >= lb - tol).all())
    if ub is not None:
        ok = ok and bool((x <= ub + tol).all())
    return bool(ok)


def _clarabel(sn: np.ndarray, a: np.ndarray, rhs: np.ndarray, w: np.ndarray,
              lb: np.ndarray | None, ub: np.ndarray | None) -> np.ndarray:
    import cvxpy as cp

    x = cp.Variable(len(w))
    cons = [a @ x == rhs]
    if lb is not None:
        cons.append(x >= lb)
    if ub is not None:
        cons.append(x <= ub)
    prob = cp.Problem(cp.Minimize(cp.quad_form(x - w, cp.psd_wrap(sn))), cons)
    try:
        prob.solve(solver=cp.CLARABEL, tol_gap_abs=_SOLVER_TOL, tol_gap_rel=_SOLVER_TOL,
                   tol_feas=_SOLVER_TOL, tol_ktratio=1e-8)
    except cp.error.SolverError as exc:
        raise ConvergenceError(f"the reweight QP failed in Clarabel ({exc})") from None
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
        raise ConvergenceError(f"the reweight QP ended with status {prob.status}")
    out = np.asarray(x.value, dtype=float)
    if lb is not None:
        out = np.maximum(out, lb)
    if ub is not None:
        out = np.minimum(out, ub)
    return out


def _polish(sn: np.ndarray, a: np.ndarray, rhs: np.ndarray, w: np.ndarray, x: np.ndarray,
            lb: np.ndarray | None, ub: np.ndarray | None) -> np.ndarray | None:
    """Solve the KKT system exactly on the active set Clarabel found; None if it disagrees.

    An interior-point answer is accurate to its tolerance; with the active bounds
    fixed the rest is a linear system, solved to machine precision. The result is
    kept only when it is feasible and the bound multipliers have the right signs
    (i.e. it is the optimum, not just a point near it).
    """
    tol = 1e-7
    at_lb = (x <= lb + tol) if lb is not None else np.zeros(len(x), dtype=bool)
    at_ub = (x >= ub - tol) if ub is not None else np.zeros(len(x), dtype=bool)
    fixed = at_lb | at_ub
    x_fixed = np.where(at_lb, lb if lb is not None else 0.0, ub if ub is not None else 0.0)[fixed]
    got = _kkt(sn, a, rhs, w, fixed, x_fixed)
    if got is None:
        return None
    xp, lam = got
    if not _feasible(xp, a, rhs, lb, ub):
        return None
    grad = 2.0 * sn @ (xp - w) + a.T @ lam  # multiplier of each active bound
    gtol = 1e-8 * max(1.0, float(np.abs(grad).max()))
    if (grad[at_lb] < -gtol).any() or (grad[at_ub] > gtol).any():
        return None
    obj = lambda v: float((v - w) @ sn @ (v - w))  # noqa: E731
    if obj(xp) > obj(x) + 1e-9 * max(1.0, obj(x)):
        return None
    return xp
