"""Benchmark-relative optimiser for one rebalance date (SPEC section 3.4).

Assets ``i = 1..n`` have loadings ``F`` (``m x n``; the first row is the
constant, i.e. the assets' alphas), the factors a covariance ``Sigma_f``
(``m x m``, zero first row and column) and means ``mu_f = [1, factor means]``,
and the assets residual variances ``e``. With benchmark weights ``b`` the
active exposure is ``f = F (w - b)``, the active risk

    TE^2 = f' Sigma_f f + sum_i e_i (w_i - b_i)^2

and the expected active return ``mu_f' f``. A benchmark that is itself a
factor (the market) is given by its exposure ``x_b`` instead (``f = F w - x_b``
and no residual term for it). All moments are per period; the TEV budget is
annual and converted once, ``TE^2 <= tev^2 / periods_per_year``.

The problem is always in the factor form, ``f`` a variable and the risk the
squared norm of ``[R f; sqrt(e) * (w - b)]`` with ``R' R = Sigma_f`` (never the
``n x n`` covariance). :class:`ActiveOptimiser` builds it once in cvxpy with
Parameters (DPP, so cvxpy compiles it once) for a fixed universe of ``n``
assets; every date fills the parameters and re-solves with Clarabel. Assets
enter and leave through the ``tradable`` mask: an asset outside it is held at
0 (an upper bound of 0, or, long-only without ``max_weight``, one row
``sum(w[excluded]) = 0`` with ``w >= 0``).

A date whose problem has no acceptable answer gives an :class:`OptimResult`
with ``status="failed"``, a one-line ``reason`` naming the date and a remedy,
and the error as :attr:`OptimResult.error`, so a walk-forward keeps going.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from xlfuncs.core._activeqp import ActiveQP, QPSolution
from xlfuncs.core._factor import per_period_budget
from xlfuncs.errors import ConvergenceError, InfeasibleError, InputError, XlfuncsError

__all__ = [
    "OPTIMISER_MODES",
    "ActiveOptimiser",
    "OptimResult",
    "OptimiserSpec",
    "sector_weights",
    "tracking_error",
]

OPTIMISER_MODES = ("tev", "gamma", "sector")

# Acceptance of a solution (after clipping to the bounds): the TE may exceed the
# budget by this much (relative); sum-to-one, bounds and the turnover limit hold
# to _FEAS_TOL (absolute, in weight units).
_TE_REL_TOL = 1e-6
_FEAS_TOL = 1e-6
# The TE cap counts as binding when the TE is within this (relative) of the budget.
_BINDING_REL_TOL = 1e-5
# Eigenvalues of the factor covariance below -_PSD_TOL * largest are an error;
# above it they are clipped to 0.
_PSD_TOL = 1e-8
_SYM_TOL = 1e-8
# Clarabel's gap tolerances: per-period objectives are ~1e-3, so the default
# absolute gap of 1e-8 would be ~1e-5 relative; these cost about one iteration.
SOLVER_OPTIONS: dict[str, float] = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-9}


# --------------------------------------------------------------------------- spec


def _number(value: object, name: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number (got {value})", name)
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number (got {value!r})", name) from None
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number (got {out})", name)
    return out


@dataclass(frozen=True)
class OptimiserSpec:
    """The settings of the optimiser, fixed for a whole backtest.

    Parameters
    ----------
    mode : {"tev", "gamma", "sector"}
        ``tev``: maximise the expected active return with the tracking error
        capped at ``tev``. ``gamma``: maximise ``mu_f' f - gamma * TE^2``.
        ``sector``: decide industry weights (stocks cap-weighted inside each
        industry), with the TEV cap when ``tev`` is given or risk aversion when
        ``gamma`` is.
    tev : float, optional
        Annual tracking-error budget as a fraction (0.05 = 5% a year); the
        per-period cap is ``tev / sqrt(periods_per_year)``.
    gamma : float, optional
        Risk aversion (>= 0) on the per-period active variance.
    periods_per_year : float
        Periods per year of the moments (12 for monthly, 52 weekly, 252 daily).
    max_weight : float, optional
        Largest weight of one asset (of one industry in ``sector`` mode), in
        (0, 1]; for long-short the largest absolute weight.
    turnover : float, optional
        Limit on one-way turnover ``sum |w - w_prev| / 2`` per rebalance, as a
        fraction (0.2 = 20%). Not applied when there are no previous weights.
    cost : float
        Proportional transaction cost per unit traded (0.001 = 10 bp),
        deducted from the per-period objective: ``- cost * sum |w - w_prev|``.
    long_only : bool
        ``w >= 0`` (the default). Long-short needs ``max_weight``.
    industry_limit : float, optional
        Policy limit on every industry's active weight, ``|u_j - u_b,j| <= L``
        (``u = M' w`` the industry weights, ``u_b`` the benchmark's, from its
        weights or, against a factor benchmark, from the caps).
    industry_limits : mapping of str to float, optional
        The same per industry, by name; overrides ``industry_limit`` for the
        industries it names.
    factor_bounds : mapping of str to (float, float), optional
        Active factor exposure bounds ``lo <= f_k <= hi`` by factor name
        (``f = F (w - b)``, per unit of the factor's return).
    factor_neutral : bool
        ``f_k = 0`` for every factor (not the alpha row); with
        ``factor_bounds`` the bounds are refused as contradictory.

    Raises
    ------
    InputError
        A one-line message naming the setting at fault.

    """

    mode: str = "tev"
    tev: float | None = None
    gamma: float | None = None
    periods_per_year: float = 12.0
    max_weight: float | None = None
    turnover: float | None = None
    cost: float = 0.0
    long_only: bool = True
    industry_limit: float | None = None
    industry_limits: Any = ()
    factor_bounds: Any = ()
    factor_neutral: bool = False

    def __post_init__(self) -> None:
        if self.mode not in OPTIMISER_MODES:
            raise InputError(
                f'mode must be one of {", ".join(OPTIMISER_MODES)} (got "{self.mode}")', "mode"
            )
        if self.mode == "tev" and self.tev is None:
            raise InputError("mode tev needs tev, the annual tracking-error budget (e.g. 0.05)",
                             "tev")
        if self.mode == "gamma" and self.gamma is None:
            raise InputError("mode gamma needs gamma, the risk aversion (e.g. 10)", "gamma")
        if self.mode == "sector" and (self.tev is None) == (self.gamma is None):
            raise InputError("mode sector needs exactly one of tev (TEV cap) or gamma "
                             "(risk aversion)", "tev")
        if self.mode == "tev" and self.gamma is not None:
            raise InputError("gamma applies to mode gamma or sector, not to mode tev", "gamma")
        if self.mode == "gamma" and self.tev is not None:
            raise InputError("tev applies to mode tev or sector, not to mode gamma", "tev")
        if self.tev is not None:
            tev = _number(self.tev, "tev")
            if tev <= 0:
                raise InputError(f"tev must be a positive annual tracking error, e.g. 0.05 "
                                 f"(got {tev:.4g})", "tev")
            object.__setattr__(self, "tev", tev)
        if self.gamma is not None:
            gamma = _number(self.gamma, "gamma")
            if gamma < 0:
                raise InputError(f"gamma must be >= 0 (got {gamma:.4g})", "gamma")
            object.__setattr__(self, "gamma", gamma)
        ppy = _number(self.periods_per_year, "periods_per_year")
        if ppy <= 0:
            raise InputError(f"periods_per_year must be positive, e.g. 12 for monthly "
                             f"(got {ppy:.4g})", "periods_per_year")
        object.__setattr__(self, "periods_per_year", ppy)
        if not isinstance(self.long_only, bool | np.bool_):
            raise InputError(f"long_only must be TRUE or FALSE (got {self.long_only!r})",
                             "long_only")
        object.__setattr__(self, "long_only", bool(self.long_only))
        if self.max_weight is not None:
            mw = _number(self.max_weight, "max_weight")
            if not 0 < mw <= 1:
                raise InputError(f"max_weight must be in (0, 1] (got {mw:.4g})", "max_weight")
            object.__setattr__(self, "max_weight", mw)
        elif not self.long_only:
            raise InputError("long_only FALSE needs max_weight, the largest absolute weight "
                             "of one position", "max_weight")
        if self.turnover is not None:
            to = _number(self.turnover, "turnover")
            if to <= 0:
                raise InputError(f"turnover must be a positive one-way fraction, e.g. 0.2 "
                                 f"(got {to:.4g})", "turnover")
            object.__setattr__(self, "turnover", to)
        cost = _number(self.cost, "cost")
        if cost < 0:
            raise InputError(f"cost must be >= 0 per unit traded (got {cost:.4g})", "cost")
        if cost >= 0.1:  # a percentage or basis points typed as a number
            raise InputError(f"cost {cost:g} is {cost:.0%} of every amount traded: write "
                             "0.001 (or 0.1%) for 10 basis points", "cost")
        object.__setattr__(self, "cost", cost)
        self._check_limits()

    def _check_limits(self) -> None:
        if self.industry_limit is not None:
            object.__setattr__(self, "industry_limit",
                               _limit(self.industry_limit, "industry_limit"))
        pairs = (self.industry_limits.items() if isinstance(self.industry_limits, Mapping)
                 else self.industry_limits or ())
        if isinstance(pairs, str) or not isinstance(pairs, Iterable):
            raise InputError(f"industry_limits must be (industry, limit) pairs or a mapping "
                             f"(got {self.industry_limits!r})", "industry_limits")
        limits = []
        for item in pairs:
            if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 2:
                raise InputError(f"industry_limits must be (industry, limit) pairs (got "
                                 f"{item!r})", "industry_limits")
            name, value = item
            limits.append((str(name).strip(), _limit(value, "industry_limits", f" for {name}")))
        object.__setattr__(self, "industry_limits", tuple(limits))
        raw = self.factor_bounds or ()
        if not isinstance(raw, Mapping) and not isinstance(raw, str) and isinstance(raw,
                                                                                   Iterable):
            raw = tuple(raw)
        if not isinstance(raw, Mapping) and (
                not isinstance(raw, tuple)
                or any(isinstance(b, str) or not isinstance(b, Sequence) or len(b) < 2
                       for b in raw)):
            raise InputError(f"factor_bounds must be (factor, lo, hi) items or a mapping (got "
                             f"{self.factor_bounds!r})", "factor_bounds")
        items = (raw.items() if isinstance(raw, Mapping) else ((b[0], b[1:]) for b in raw))
        bounds = []
        for name, pair in items:
            pair = tuple(pair[0]) if len(pair) == 1 and isinstance(pair[0], tuple | list) else pair
            if len(pair) != 2:
                raise InputError(f"factor_bounds for {name} must be two numbers, lo and hi",
                                 "factor_bounds")
            lo = _number(pair[0], "factor_bounds")
            hi = _number(pair[1], "factor_bounds")
            if lo > hi:
                raise InputError(f"factor_bounds for {name}: lo {lo:g} is above hi {hi:g}",
                                 "factor_bounds")
            bounds.append((str(name).strip(), lo, hi))
        object.__setattr__(self, "factor_bounds", tuple(bounds))
        if not isinstance(self.factor_neutral, bool | np.bool_):
            raise InputError(f"factor_neutral must be TRUE or FALSE (got "
                             f"{self.factor_neutral!r})", "factor_neutral")
        object.__setattr__(self, "factor_neutral", bool(self.factor_neutral))
        if self.factor_neutral and self.factor_bounds:
            raise InputError("factor_neutral holds every factor exposure at 0: clear "
                             "factor_bounds, or factor_neutral", "factor_bounds")

    @property
    def industry_limited(self) -> bool:
        """Industry limits apply (the optimiser then needs the industries in every mode)."""
        return self.industry_limit is not None or bool(self.industry_limits)

    @property
    def factor_limited(self) -> bool:
        """Factor exposure bounds (or factor neutrality) apply."""
        return self.factor_neutral or bool(self.factor_bounds)

    @property
    def risk(self) -> str:
        """``"tev"`` (TEV cap) or ``"gamma"`` (risk aversion), the sector mode's included."""
        return "tev" if self.tev is not None else "gamma"

    @property
    def te_budget(self) -> float | None:
        """Per-period tracking-error cap ``tev / sqrt(periods_per_year)`` (None for gamma).

        The annual budget goes through :func:`~xlfuncs.core.per_period_budget`, the
        package's one conversion of a budget to the data's period.
        """
        if self.tev is None:
            return None
        return math.sqrt(per_period_budget(self.tev, self.periods_per_year))


def _limit(value: object, name: str, which: str = "") -> float:
    x = _number(value, name)
    if not 0 <= x <= 1:
        raise InputError(f"{name}{which} must be an active weight from 0 to 1, e.g. 0.05 "
                         f"(got {x:g})", name)
    return x


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class OptimResult:
    """The answer for one rebalance date, or a placeholder carrying the failure.

    Attributes
    ----------
    weights : ndarray of shape (n_assets,)
        Stock weights (fractions summing to 1; 0 outside the tradable mask).
        All NaN when ``status == "failed"``.
    status : {"optimal", "failed"}
        ``optimal`` also covers a solver's ``optimal_inaccurate`` that passed
        the checks (TE within the budget, sum to 1, bounds, turnover).
    reason : str
        ``""`` when optimal; otherwise one line naming the date, what failed
        and a remedy.
    tracking_error : float
        Annualised ex-ante tracking error ``sqrt(TE^2 * periods_per_year)``,
        recomputed in numpy from ``weights`` (not the solver's objective).
    active_return : float
        Expected active return ``mu_f' f`` per period, recomputed in numpy.
    te_binding : bool
        The TEV cap holds with equality (TE within 1e-5 relative of the budget).
    solve_seconds : float
        Wall-clock time of :meth:`ActiveOptimiser.solve` (filling the
        parameters and the solver).
    iterations : int
        Interior-point iterations plus the active-set solver's linear solves
        (0 when no solver ran).
    date : object
        The date passed to ``solve`` (None when none was).
    turnover : float
        One-way turnover ``sum |w - w_prev| / 2`` (NaN without previous weights).
    industry_weights : ndarray of shape (n_industries,) or None
        The industry weights ``u`` (sector mode only).
    solver_status : str
        The solver's own status (``optimal``, ``optimal_inaccurate``,
        ``infeasible``, ``solver_error``, ``not solved`` ...); ``exact`` for
        an answer of the active-set solver (:mod:`xlfuncs.core._activeqp`).
    warm : tuple or None
        ``(state, t)``: which assets sit at a bound and the risk parameter of
        an exact answer, to start the next date's solve from
        (``solve(..., warm=...)``); None otherwise.
    error : XlfuncsError or None
        The failure as an exception (:class:`~xlfuncs.errors.InfeasibleError`
        or :class:`~xlfuncs.errors.ConvergenceError`), ready to raise.

    """

    weights: np.ndarray
    status: str
    reason: str
    tracking_error: float
    active_return: float
    te_binding: bool
    solve_seconds: float
    iterations: int
    date: Any = None
    turnover: float = math.nan
    industry_weights: np.ndarray | None = None
    solver_status: str = ""
    warm: tuple[np.ndarray, float] | None = field(default=None, repr=False, compare=False)
    error: XlfuncsError | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the weights are usable (``status == "optimal"``)."""
        return self.status == "optimal"


# --------------------------------------------------------------------------- numpy helpers


def factor_cov_root(factor_cov: np.ndarray, name: str = "factor_cov") -> np.ndarray:
    """``R`` with ``R' R = factor_cov`` from an eigendecomposition (tiny negatives clipped).

    Parameters
    ----------
    factor_cov : ndarray of shape (m, m)
        Symmetric positive semidefinite (per-period) factor covariance.
    name : str
        The argument's name in error messages.

    Returns
    -------
    ndarray of shape (m, m)
        ``diag(sqrt(lambda)) V'``; ``f' factor_cov f = ||R f||^2``.

    Raises
    ------
    InputError
        Not square, not finite, not symmetric, or an eigenvalue below
        ``-1e-8`` times the largest.

    """
    s = np.asarray(factor_cov, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise InputError(f"{name} must be square (it is {'x'.join(map(str, s.shape))})", name)
    if not np.isfinite(s).all():
        i, j = np.argwhere(~np.isfinite(s))[0]
        raise InputError(f"{name} has a non-finite value at row {i + 1}, column {j + 1}", name)
    scale = float(np.abs(s).max()) if s.size else 0.0
    if scale and np.abs(s - s.T).max() > _SYM_TOL * scale:
        raise InputError(f"{name} is not symmetric", name)
    lam, vec = np.linalg.eigh(0.5 * (s + s.T))
    top = float(lam[-1]) if lam.size else 0.0
    if lam.size and lam[0] < -_PSD_TOL * max(top, 1e-300):
        raise InputError(f"{name} is not positive semidefinite (eigenvalue {lam[0]:.3g})", name)
    return np.sqrt(np.clip(lam, 0.0, None))[:, None] * vec.T


def tracking_error(
    w: np.ndarray,
    b: np.ndarray | None,
    loadings: np.ndarray,
    factor_cov: np.ndarray,
    resid_var: np.ndarray,
    periods_per_year: float,
    *,
    benchmark_exposure: np.ndarray | None = None,
) -> float:
    """Annualised ex-ante tracking error of ``w`` against a benchmark, in numpy.

    ``TE^2 = f' Sigma_f f + sum_i e_i (w_i - b_i)^2`` per period with
    ``f = F (w - b)``, or ``f = F w - x_b`` and ``b = 0`` in the residual term
    for a factor benchmark; the result is ``sqrt(TE^2 * periods_per_year)``.

    Parameters
    ----------
    w : ndarray of shape (n,)
        Portfolio weights.
    b : ndarray of shape (n,) or None
        Benchmark weights; None with ``benchmark_exposure``.
    loadings : ndarray of shape (m, n)
        ``F``, first row the constant.
    factor_cov : ndarray of shape (m, m)
        Per-period factor covariance.
    resid_var : ndarray of shape (n,)
        Per-period residual variances.
    periods_per_year : float
        Periods per year of the moments.
    benchmark_exposure : ndarray of shape (m,), optional
        ``x_b``, the exposure of a factor benchmark (e.g. 1 on the market).

    Returns
    -------
    float
        Annualised tracking error (a fraction, 0.05 = 5% a year).

    """
    w = np.asarray(w, dtype=float)
    f_mat = np.asarray(loadings, dtype=float)
    e = np.asarray(resid_var, dtype=float)
    if (b is None) == (benchmark_exposure is None):
        raise InputError("give exactly one of b (benchmark weights) or benchmark_exposure", "b")
    if b is not None:
        d = w - np.asarray(b, dtype=float)
        f = f_mat @ d
    else:
        d = w
        f = f_mat @ w - np.asarray(benchmark_exposure, dtype=float)
    te2 = float(f @ np.asarray(factor_cov, dtype=float) @ f + e @ (d * d))
    return math.sqrt(max(te2, 0.0) * periods_per_year)


def sector_weights(
    caps: np.ndarray, industries: np.ndarray, n_industries: int
) -> tuple[np.ndarray, np.ndarray]:
    """The industry-to-stock map ``W`` and the benchmark industry weights ``u_b``.

    ``W = diag(c) M diag(c' M)^-1``: column ``j`` holds the cap weights of
    industry ``j``'s stocks (an industry without capitalisation has a zero
    column). ``u_b = M' c / sum(c)``.

    Parameters
    ----------
    caps : ndarray of shape (n,)
        Market caps ``c`` (>= 0; 0 for a stock outside the universe).
    industries : ndarray of shape (n,) or (n, k)
        Industry code in ``0..k-1`` per stock (-1 for none), or the 0/1 map ``M``.
    n_industries : int
        ``k``.

    Returns
    -------
    W : ndarray of shape (n, k)
    u_b : ndarray of shape (k,)

    """
    c = np.asarray(caps, dtype=float)
    code = _industry_codes(industries, len(c), n_industries)
    c = np.where(code >= 0, c, 0.0)
    total = float(c.sum())
    if not total > 0:
        raise InputError("caps must have a positive total over the stocks with an industry",
                         "caps")
    ind_cap = np.bincount(code[code >= 0], weights=c[code >= 0], minlength=n_industries)
    w_map = np.zeros((len(c), n_industries))
    rows = np.flatnonzero((code >= 0) & (c > 0))
    w_map[rows, code[rows]] = c[rows] / ind_cap[code[rows]]
    return w_map, ind_cap / total


def _industry_codes(industries: np.ndarray, n: int, k: int) -> np.ndarray:
    arr = np.asarray(industries)
    if arr.ndim == 2:
        if arr.shape != (n, k):
            raise InputError(f"industries must be {n} x {k} (got {arr.shape[0]} x "
                             f"{arr.shape[1]})", "industries")
        m01 = np.asarray(arr, dtype=float)
        if not np.isin(m01, (0.0, 1.0)).all() or (m01.sum(axis=1) > 1).any():
            raise InputError("industries must be a 0/1 map with at most one 1 per stock",
                             "industries")
        return np.where(m01.any(axis=1), m01.argmax(axis=1), -1)
    if arr.shape != (n,):
        raise InputError(f"industries must have {n} codes (got shape {arr.shape})", "industries")
    try:
        code = np.asarray(arr, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"industries must be integer codes 0..{k - 1} (-1 for none)",
                         "industries") from None
    code = np.where(np.isfinite(code), code, -1.0)
    if (code != np.round(code)).any() or (code < -1).any() or (code >= k).any():
        raise InputError(f"industries must be integer codes 0..{k - 1} (-1 for none)",
                         "industries")
    return code.astype(int)


def _vector(x: object, n: int, name: str, what: str = "values") -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers", name) from None
    if arr.shape != (n,):
        raise InputError(f"{name} must have {n} {what} (got shape {arr.shape})", name)
    return arr


def _caps(caps: object, n: int) -> np.ndarray:
    c = _vector(caps, n, "caps")
    neg = np.flatnonzero(c < 0)
    if neg.size:
        raise InputError(f"caps must be >= 0 (asset {neg[0]} has {c[neg[0]]:.4g})", "caps")
    return c


def _finite_on(arr: np.ndarray, mask: np.ndarray, name: str) -> None:
    """Raise when ``arr`` (shape (n,) or (m, n)) is not finite for an asset in ``mask``."""
    if np.isfinite(arr).all():
        return
    bad = (~np.isfinite(arr)).reshape(-1, arr.shape[-1]).any(axis=0) & mask
    if bad.any():
        raise InputError(f"{name} has a non-finite value for tradable asset "
                         f"{int(np.argmax(bad))} (0-based)", name)


# --------------------------------------------------------------------------- the optimiser


@dataclass
class _Inputs:
    """One date's numbers, ready for the parameters (stock or industry space)."""

    f_mat: np.ndarray  # (m, n) loadings, 0 outside the universe
    root: np.ndarray  # (m, m) R with R'R = factor_cov
    e: np.ndarray  # (n,) residual variances, 0 outside the universe
    mu: np.ndarray  # (m,)
    b: np.ndarray  # (n,) benchmark weights (0 for a factor benchmark)
    xb: np.ndarray  # (m,) benchmark exposure
    lb: np.ndarray  # (n,) or (k,) bounds of the decision variable
    ub: np.ndarray
    prev: np.ndarray | None  # (n,)
    factor_cov: np.ndarray
    n_free: int  # tradable assets (industries in sector mode)
    w_map: np.ndarray | None = None  # (n, k) sector mode
    ind_map: np.ndarray | None = None  # (n, k) 0/1 tradable members, industry limits
    ind_lo: np.ndarray | None = None  # (k,) u_b - L
    ind_hi: np.ndarray | None = None  # (k,) u_b + L
    ind_names: tuple[str, ...] = ()


class ActiveOptimiser:
    """The benchmark-relative problem compiled once, re-solved for every date.

    Parameters
    ----------
    spec : OptimiserSpec
        The settings.
    n_assets : int
        ``n``, the size of the universe over the whole backtest (assets not
        tradable on a date are masked out, not removed).
    n_loadings : int
        ``m``, rows of the loadings (the constant plus the factors).
    n_industries : int, optional
        ``k``, sector mode or industry limits.
    factor_names : sequence of str, optional
        The ``m - 1`` factors (the loadings' rows after the constant), which
        ``factor_bounds`` names.
    exact : bool
        True (default): problems of the active-set form (TEV cap or risk
        aversion with weight bounds) go to the exact solver of
        :mod:`xlfuncs.core._activeqp`; False: every date to Clarabel (to
        compare the two, or to check the interior-point path).

    Notes
    -----
    The problem is DPP: every product is a Parameter times a Variable
    (``F w``, ``R f``, ``sqrt(e) * w``), and products of inputs
    (``F b``, ``sqrt(e) * b``, ``sqrt(gamma) R``) are computed in numpy. cvxpy
    therefore compiles it once, and each :meth:`solve` only maps the parameter
    values into the solver's matrices.

    """

    def __init__(self, spec: OptimiserSpec, n_assets: int, n_loadings: int,
                 n_industries: int | None = None, factor_names: Sequence[str] | None = None,
                 exact: bool = True):
        if not isinstance(spec, OptimiserSpec):
            raise InputError("spec must be an OptimiserSpec", "spec")
        for val, name in ((n_assets, "n_assets"), (n_loadings, "n_loadings")):
            if isinstance(val, bool) or not isinstance(val, int | np.integer) or val < 1:
                raise InputError(f"{name} must be a positive integer (got {val!r})", name)
        if spec.mode == "sector" or spec.industry_limited:
            if (isinstance(n_industries, bool) or not isinstance(n_industries, int | np.integer)
                    or n_industries < 1):
                raise InputError(f"mode sector and industry limits need n_industries, a "
                                 f"positive integer (got {n_industries!r})", "n_industries")
        elif n_industries is not None:
            raise InputError("n_industries applies to mode sector or industry limits only",
                             "n_industries")
        self.spec = spec
        self.n = int(n_assets)
        self.m = int(n_loadings)
        self.k = int(n_industries) if spec.mode == "sector" else None
        self.k_ind = int(n_industries) if n_industries is not None else None
        self.factor_names = (tuple(map(str, factor_names)) if factor_names is not None
                             and len(factor_names) == self.m - 1 else None)
        self._factor_rows = self._rows_of(factor_names)
        # the policy limits are checked once, on the first date solved (a walk handed on
        # mid-way sets it for the problems its strategies have solved)
        self.limits_checked = False
        self.exact = bool(exact)
        # the last date's inputs (writeable ones copied) and their checked form: the
        # strategies of a sweep solve the same date one after another
        self._memo: tuple | None = None
        n_dec = self.k if self.k is not None else self.n
        what = "industries" if self.k is not None else "assets"
        if spec.max_weight is not None and spec.max_weight * n_dec < 1 - 1e-12:
            raise InputError(
                f"max_weight {spec.max_weight:.4g} is infeasible for {n_dec} {what}: weights "
                f"summing to 1 need max_weight >= 1/{n_dec} = {1 / n_dec:.4g}", "max_weight")
        self._cvx: tuple | None = None  # the cvxpy problem, built when first needed

    def _rows_of(self, factor_names: Sequence[str] | None
                 ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Rows of ``f`` with exposure bounds, and the bounds (factor_bounds, factor_neutral)."""
        spec = self.spec
        if spec.factor_neutral:
            rows = list(range(1, self.m))
            return rows, np.zeros(len(rows)), np.zeros(len(rows))
        if not spec.factor_bounds:
            return [], np.zeros(0), np.zeros(0)
        if factor_names is None or len(factor_names) != self.m - 1:
            raise InputError(f"factor_bounds needs the names of the {self.m - 1} factors",
                             "factor_bounds")
        at = {str(nm).strip().lower(): i + 1 for i, nm in enumerate(factor_names)}
        rows, lo, hi = [], [], []
        for name, a, b in spec.factor_bounds:
            if name.lower() not in at:
                raise InputError(f"factor_bounds names {name}, which is not a factor (the "
                                 f"factors: {', '.join(map(str, factor_names))})",
                                 "factor_bounds")
            rows.append(at[name.lower()])
            lo.append(a)
            hi.append(b)
        return rows, np.array(lo), np.array(hi)

    # ------------------------------------------------------------------ build

    @property
    def _prob(self) -> Any:
        """The compiled cvxpy problem, built on first use.

        Importing cvxpy takes about a second, and the active-set solver answers
        most dates without it.
        """
        if self._cvx is None:
            self._build()
        return self._cvx[0]

    @property
    def _p(self) -> dict[str, Any]:
        self._prob  # noqa: B018 - builds it
        return self._cvx[1]

    @property
    def _x(self) -> Any:
        self._prob  # noqa: B018 - builds it
        return self._cvx[2]

    def _build(self) -> None:
        import cvxpy as cp

        spec, n, m = self.spec, self.n, self.m
        sector = self.k is not None
        n_dec = self.k if sector else n
        p: dict[str, Any] = {
            "F": cp.Parameter((m, self.k if sector else n), name="loadings"),
            "xb": cp.Parameter(m, name="benchmark_exposure"),
            "R": cp.Parameter((m, m), name="factor_cov_root"),
            "mu": cp.Parameter(m, name="factor_mean"),
            "se": cp.Parameter(n_dec, nonneg=True, name="resid_sd"),
            "seb": cp.Parameter(n_dec, name="resid_sd_benchmark"),
        }
        x = cp.Variable(n_dec, name="u" if sector else "w")
        f = cp.Variable(m, name="active_exposure")
        cons = [f == p["F"] @ x - p["xb"], cp.sum(x) == 1]
        if spec.long_only and spec.max_weight is None:
            # x >= 0 and one row sum(x[excluded]) = 0 keep the excluded at 0: n fewer
            # rows than an upper bound per asset (~30% faster at n = 3000)
            p["excl"] = cp.Parameter(n_dec, nonneg=True, name="excluded")
            cons.append(p["excl"] @ x == 0)
        else:
            p["ub"] = cp.Parameter(n_dec, nonneg=True, name="upper")
            cons.append(x <= p["ub"])
        if spec.long_only:
            cons.append(x >= 0)
        else:
            p["lb"] = cp.Parameter(n_dec, nonpos=True, name="lower")
            cons.append(x >= p["lb"])
        resid = cp.multiply(p["se"], x) - p["seb"]
        parts = [p["R"] @ f, resid]
        if sector:
            # the part of the residual risk outside industry space (a constant)
            p["c0"] = cp.Parameter(1, nonneg=True, name="resid_const")
            parts.append(p["c0"])
        t = None
        if spec.turnover is not None or spec.cost > 0:
            p["prev"] = cp.Parameter(n, name="prev_weights")
            t = cp.Variable(n, name="trade")
            if sector:
                p["W"] = cp.Parameter((n, n_dec), name="industry_map")
                w_expr = p["W"] @ x
            else:
                w_expr = x
            cons += [t >= w_expr - p["prev"], t >= p["prev"] - w_expr]
            if spec.turnover is not None:
                p["tau"] = cp.Parameter(nonneg=True, name="turnover_limit")
                cons.append(cp.sum(t) <= 2 * p["tau"])
        if spec.industry_limited:
            p["ind_hi"] = cp.Parameter(self.k_ind, name="industry_upper")
            p["ind_lo"] = cp.Parameter(self.k_ind, name="industry_lower")
            if sector:
                agg = x
            else:
                p["M"] = cp.Parameter((n, self.k_ind), name="industry_members")
                agg = p["M"].T @ x
            cons += [agg <= p["ind_hi"], agg >= p["ind_lo"]]
        rows, f_lo, f_hi = self._factor_rows
        if rows:
            cons += [f[rows] >= f_lo, f[rows] <= f_hi]
        gain = p["mu"] @ f
        if spec.cost > 0:
            assert t is not None
            gain = gain - spec.cost * cp.sum(t)
        te_con = None
        if spec.risk == "tev":
            p["budget"] = cp.Parameter(nonneg=True, name="te_budget")
            te_con = cp.norm(cp.hstack(parts), 2) <= p["budget"]
            cons.append(te_con)
            objective = cp.Maximize(gain)
        else:  # sqrt(gamma) is folded into R, se and seb
            objective = cp.Maximize(gain - cp.sum_squares(cp.hstack(parts)))
        prob = cp.Problem(objective, cons)
        if not prob.is_dpp():  # pragma: no cover - a build bug, not a user error
            raise RuntimeError("the optimiser's problem is not DPP")
        self._cvx = (prob, p, x, f, te_con)

    # ------------------------------------------------------------------ inputs

    def _inputs(self, loadings, factor_cov, resid_var, factor_mean, benchmark,
                benchmark_exposure, tradable, caps, industries,
                industry_names=None) -> _Inputs:
        """The date's numbers, checked (everything but the previous weights)."""
        n, m, spec = self.n, self.m, self.spec
        f_mat = np.asarray(loadings, dtype=float)
        if f_mat.shape != (m, n):
            raise InputError(f"loadings must be {m} x {n} (loadings x assets; got "
                             f"{' x '.join(map(str, f_mat.shape))})", "loadings")
        sigma = np.asarray(factor_cov, dtype=float)
        if sigma.shape != (m, m):
            raise InputError(f"factor_cov must be {m} x {m} (got "
                             f"{' x '.join(map(str, sigma.shape))})", "factor_cov")
        root = factor_cov_root(sigma)
        mu = _vector(factor_mean, m, "factor_mean")
        if not np.isfinite(mu).all():
            raise InputError("factor_mean has a non-finite value", "factor_mean")
        e = _vector(resid_var, n, "resid_var")
        if tradable is None:
            mask = np.ones(n, dtype=bool)
        else:
            mask = np.asarray(tradable)
            if mask.shape != (n,) or mask.dtype.kind not in "bui":
                raise InputError(f"tradable must be {n} booleans (got shape {mask.shape})",
                                 "tradable")
            mask = mask.astype(bool)
        w_map = None
        if self.k is not None:
            if caps is None or industries is None:
                raise InputError("mode sector needs caps and industries", "caps")
            c = _caps(caps, n)
            code = _industry_codes(industries, n, self.k)
            mask = mask & (code >= 0) & np.isfinite(c) & (c > 0)
        elif caps is not None:
            c = _caps(caps, n)
            mask = mask & np.isfinite(c) & (c > 0)
        if spec.industry_limited and self.k is None:
            if industries is None:
                raise InputError("industry limits need industries", "industries")
            code = _industry_codes(industries, n, self.k_ind)
        _finite_on(f_mat, mask, "loadings")
        _finite_on(e, mask, "resid_var")
        if (e[mask] < 0).any():
            raise InputError("resid_var has a negative variance", "resid_var")
        f_mat = np.where(mask, f_mat, 0.0)
        e = np.where(mask, e, 0.0)

        if benchmark is not None and benchmark_exposure is not None:
            raise InputError("give benchmark (weights) or benchmark_exposure (a factor "
                             "benchmark), not both", "benchmark")
        if benchmark_exposure is not None:
            xb = _vector(benchmark_exposure, m, "benchmark_exposure")
            if not np.isfinite(xb).all():
                raise InputError("benchmark_exposure has a non-finite value",
                                 "benchmark_exposure")
            b = np.zeros(n)
        else:
            if benchmark is not None:
                b = _vector(benchmark, n, "benchmark")
                b = np.where(np.isfinite(b), b, 0.0)
            elif caps is not None:
                b = np.where(mask, c, 0.0)
                b = b / b.sum() if b.sum() > 0 else b
            else:
                raise InputError("give benchmark weights, benchmark_exposure (a factor "
                                 "benchmark) or caps (cap-weighted benchmark)", "benchmark")
            xb = f_mat @ b
            e_b = np.asarray(resid_var, dtype=float)
            if not np.isfinite(e_b[b != 0]).all():
                raise InputError("resid_var has a non-finite value for a benchmark asset",
                                 "resid_var")
            # a benchmark asset outside the universe keeps its risk (it cannot be held)
            off = (b != 0) & ~mask
            if off.any():
                f_raw = np.asarray(loadings, dtype=float)
                if not np.isfinite(f_raw[:, off]).all():
                    raise InputError("loadings has a non-finite value for a benchmark asset",
                                     "loadings")
                xb = xb + f_raw[:, off] @ b[off]
                e = e.copy()
                e[off] = e_b[off]

        bound = spec.max_weight if spec.max_weight is not None else 1.0
        if self.k is not None:
            if mask.any():
                w_map = sector_weights(np.where(mask, c, 0.0), code, self.k)[0]
            else:
                w_map = np.zeros((n, self.k))
            live = w_map.sum(axis=0) > 0
            ub = np.where(live, bound, 0.0)
            n_free = int(live.sum())
        else:
            ub = np.where(mask, bound, 0.0)
            n_free = int(mask.sum())
        lb = np.zeros_like(ub) if spec.long_only else -ub
        d = _Inputs(f_mat, root, e, mu, b, xb, lb, ub, None, sigma, n_free, w_map)
        if spec.industry_limited:
            self._industry_bounds(d, code, mask, c if caps is not None else None,
                                  industry_names)
        return d

    def _industry_bounds(self, d: _Inputs, code: np.ndarray, mask: np.ndarray,
                         caps: np.ndarray | None, names: Sequence[str] | None) -> None:
        """``u_b -+ L`` per industry, and the 0/1 map of the tradable members."""
        spec, k = self.spec, int(self.k_ind or 0)
        has = code >= 0
        ref = d.b
        if not (ref > 0).any():  # a factor benchmark: the industries of the caps
            if caps is None:
                raise InputError("industry limits need benchmark weights or market caps",
                                 "industry_limit")
            ref = np.where(mask & np.isfinite(caps), caps, 0.0)
            ref = ref / ref.sum()
        u_b = np.bincount(code[has], weights=ref[has], minlength=k)
        big = float(self.n) + 1.0
        lim = np.full(k, spec.industry_limit if spec.industry_limit is not None else big)
        labels = tuple(map(str, names)) if names is not None else ()
        if spec.industry_limits:
            if len(labels) != k:
                raise InputError("industry_limits names industries, but the industries have "
                                 "no names", "industry_limits")
            at = {lab.strip().lower(): j for j, lab in enumerate(labels)}
            for name, value in spec.industry_limits:
                if name.lower() in at:
                    lim[at[name.lower()]] = value
                elif not self.limits_checked:
                    raise InputError(f"industry_limits names {name}, which is not an industry "
                                     f"on the first date (they are {', '.join(labels)})",
                                     "industry_limits")
        d.ind_lo, d.ind_hi, d.ind_names = u_b - lim, u_b + lim, labels
        if self.k is None:
            members = np.zeros((self.n, k))
            rows = np.flatnonzero(has & mask)
            members[rows, code[rows]] = 1.0
            d.ind_map = members

    def _fill(self, d: _Inputs) -> None:
        p, spec = self._p, self.spec
        scale = math.sqrt(spec.gamma) if spec.risk == "gamma" else 1.0
        sd = np.sqrt(d.e)
        if d.w_map is not None:
            # residual risk in industry space: sum_j (sqrt(dd_j) u_j - h_j)^2 + c0^2
            wm = d.w_map
            dd = (d.e[:, None] * wm * wm).sum(axis=0)
            g = (d.e * d.b) @ wm
            sdd = np.sqrt(dd)
            h = np.divide(g, sdd, out=np.zeros_like(g), where=sdd > 0)
            c0 = math.sqrt(max(float(d.e @ (d.b * d.b)) - float(h @ h), 0.0))
            p["F"].value = d.f_mat @ wm
            p["se"].value = scale * sdd
            p["seb"].value = scale * h
            p["c0"].value = np.array([scale * c0])
            if "W" in p:
                p["W"].value = wm
        else:
            p["F"].value = d.f_mat
            p["se"].value = scale * sd
            p["seb"].value = scale * sd * d.b
        p["xb"].value = d.xb
        p["R"].value = scale * d.root
        p["mu"].value = d.mu
        if "ub" in p:
            p["ub"].value = d.ub
        else:
            p["excl"].value = (d.ub == 0).astype(float)
        if "lb" in p:
            p["lb"].value = d.lb
        if "prev" in p:
            p["prev"].value = d.prev if d.prev is not None else np.zeros(self.n)
        if "tau" in p:
            # without previous weights there is no limit: any feasible w has
            # one-way turnover from cash of at most sum |bounds| / 2 < tau
            p["tau"].value = (spec.turnover if d.prev is not None
                              else 0.5 * float(np.abs(d.ub).sum() + np.abs(d.lb).sum()) + 1.0)
        if "budget" in p:
            p["budget"].value = spec.te_budget
        if "ind_hi" in p:
            p["ind_hi"].value = d.ind_hi
            p["ind_lo"].value = d.ind_lo
        if "M" in p:
            p["M"].value = d.ind_map

    # ------------------------------------------------------------------ solve

    def solve(
        self,
        loadings: np.ndarray,
        factor_cov: np.ndarray,
        resid_var: np.ndarray,
        factor_mean: np.ndarray,
        *,
        benchmark: np.ndarray | None = None,
        benchmark_exposure: np.ndarray | None = None,
        tradable: np.ndarray | None = None,
        prev_weights: np.ndarray | None = None,
        caps: np.ndarray | None = None,
        industries: np.ndarray | None = None,
        industry_names: Sequence[str] | None = None,
        date: Any = None,
        warm: tuple[np.ndarray, float] | None = None,
    ) -> OptimResult:
        """Optimise the weights for one date.

        Parameters
        ----------
        loadings : ndarray of shape (m, n)
            ``F = vstack([alpha, betas])``: per-period alphas, then factor betas.
            Columns outside ``tradable`` may be NaN.
        factor_cov : ndarray of shape (m, m)
            Per-period factor covariance, zero first row and column.
        resid_var : ndarray of shape (n,)
            Per-period residual variances ``e``.
        factor_mean : ndarray of shape (m,)
            ``mu_f = [1, per-period factor means]``.
        benchmark : ndarray of shape (n,), optional
            Benchmark weights ``b``. Weight on an asset outside ``tradable``
            stays in the benchmark (its risk cannot be hedged by holding it).
        benchmark_exposure : ndarray of shape (m,), optional
            A factor benchmark's exposure ``x_b`` (e.g. 1 on the market row):
            ``f = F w - x_b``, no benchmark weights.
        tradable : ndarray of shape (n,) of bool, optional
            Assets that may be held on this date (default all). The others get
            weight 0.
        prev_weights : ndarray of shape (n,), optional
            The weights held going into the date (drifted); turnover and costs
            are measured from them. None: no turnover limit, costs from cash.
        caps : ndarray of shape (n,), optional
            Market caps. Sector mode: required, the within-industry weights and
            the default benchmark. Other modes: without ``benchmark`` and
            ``benchmark_exposure`` the benchmark is cap-weighted over the
            tradable assets. A NaN or 0 cap makes an asset untradable.
        industries : ndarray of shape (n,) or (n, k), optional
            Sector mode and industry limits: industry code per stock (-1 for
            none) or the 0/1 map.
        industry_names : sequence of str, optional
            The ``k`` industries' names, which ``industry_limits`` names.
        date : object, optional
            Named in the result and in failure reasons.
        warm : tuple, optional
            A previous answer's :attr:`OptimResult.warm`, the start of the
            exact solver (the positions are this date's assets).

        Returns
        -------
        OptimResult
            ``status="failed"`` (with reason and error) when no acceptable
            answer exists; never raises for an infeasible or failed problem.

        Raises
        ------
        InputError
            Malformed inputs (shapes, non-finite values for tradable assets,
            a factor covariance that is not PSD); on the first date solved,
            policy limits that admit no portfolio (naming the limit and the date).

        """
        t0 = time.perf_counter()
        given = (loadings, factor_cov, resid_var, factor_mean, benchmark, benchmark_exposure,
                 tradable, caps, industries, industry_names)
        if self._memo is not None and all(map(_unchanged, self._memo[0], given)):
            # the same date for another strategy of a sweep: the same checked numbers
            d, exact = self._memo[1], self._memo[2]
        else:
            d = self._inputs(*given)
            exact = self._exact_problem(d)
            # read-only arrays kept as they are, the others copied
            self._memo = (tuple(np.array(x) if isinstance(x, np.ndarray) and not _immutable(x)
                                else x for x in given), d, exact)
        prev = None
        if prev_weights is not None:
            prev = _vector(prev_weights, self.n, "prev_weights")
            if not np.isfinite(prev).all():
                raise InputError("prev_weights has a non-finite value", "prev_weights")
        d = replace(d, prev=prev)
        if not self.limits_checked and (self.spec.industry_limited or self.spec.factor_limited):
            problem = self._limit_problem(d, date)
            if problem is not None:
                raise problem
            self.limits_checked = True
        early = self._precheck(d, date)
        if early is not None:
            return self._failed(early, date, t0, "not solved", 0)
        # the active-set solver, from the last answer's bound set or (a first date) from
        # the benchmark; the interior-point solver where it does not answer
        sol = (self._exact_solve(exact, warm if warm is not None else (None, math.nan))
               if exact is not None else None)
        iters = 0
        if sol is None:
            got = self._clarabel(d, date, t0)
            if isinstance(got, OptimResult):
                return got
            raw, status, iters = got
            if exact is not None:
                # crossover: the interior-point answer tells which assets sit at a
                # bound; the active-set solver then finds the exact answer from there
                sol = self._exact_solve(exact, (exact.state_near(raw - d.b), math.nan))
        if sol is not None:
            raw, status, iters = d.b + sol.a, "exact", iters + sol.iterations
        x = self._clean(raw, d)
        w = d.w_map @ x if d.w_map is not None else x
        te_pp = self._te_per_period(w, d)
        problems = self._violations(raw, w, te_pp, d)
        if problems:
            err = ConvergenceError(
                f"{_when(date)}the solver's answer ({status}) fails the checks: "
                f"{problems[0]}; loosen the constraints or check the inputs' scale")
            return self._failed(err, date, t0, status, iters)
        budget = self.spec.te_budget
        binding = budget is not None and te_pp >= budget * (1 - _BINDING_REL_TOL)
        active = float(d.mu @ (d.f_mat @ w - d.xb))
        turnover = (0.5 * float(np.abs(w - d.prev).sum()) if d.prev is not None else math.nan)
        return OptimResult(
            weights=w, status="optimal", reason="",
            tracking_error=te_pp * math.sqrt(self.spec.periods_per_year),
            active_return=active, te_binding=bool(binding),
            solve_seconds=time.perf_counter() - t0, iterations=iters, date=date,
            turnover=turnover, industry_weights=x if d.w_map is not None else None,
            solver_status=status, warm=(sol.state, sol.t) if sol is not None else None)

    def _clarabel(self, d: _Inputs, date: Any, t0: float
                  ) -> tuple[np.ndarray, str, int] | OptimResult:
        """The interior-point solve of the compiled problem: the raw answer, or a failure."""
        import cvxpy as cp

        self._fill(d)
        try:
            # warm_start=False: cvxpy's compiled problem is reused, but Clarabel is set
            # up afresh, because its in-place update keeps the first date's
            # equilibration (stale once assets enter or leave); the answer is then
            # the same as a fresh build's, at ~15% more time.
            with warnings.catch_warnings():  # the status is recorded in the result
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                self._prob.solve(solver=cp.CLARABEL, warm_start=False, **SOLVER_OPTIONS)
        except cp.error.SolverError as exc:
            err = ConvergenceError(f"{_when(date)}the solver failed ({_first_line(exc)}); "
                                   "check the inputs' scale (per-period moments)")
            return self._failed(err, date, t0, "solver_error", 0)
        status = str(self._prob.status)
        stats = self._prob.solver_stats
        iters = int(stats.num_iters) if stats is not None and stats.num_iters else 0
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return self._failed(self._diagnose(d, date), date, t0, status, iters)
        if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
            err = ConvergenceError(f"{_when(date)}the problem is unbounded; add max_weight")
            return self._failed(err, date, t0, status, iters)
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or self._x.value is None:
            err = ConvergenceError(f"{_when(date)}the solver stopped with status {status}; "
                                   "check the inputs' scale (per-period moments)")
            return self._failed(err, date, t0, status, iters)
        return np.asarray(self._x.value, dtype=float), status, iters

    def _exact_problem(self, d: _Inputs) -> ActiveQP | None:
        """The date's problem for the active-set solver, when it has that form.

        That form: TEV cap or risk aversion over stock weights with benchmark
        weights inside the universe, bounds and the budget only (no turnover,
        cost or policy limits, which the interior-point solver handles).
        """
        spec = self.spec
        if (not self.exact or d.w_map is not None or spec.turnover is not None or spec.cost > 0
                or spec.industry_limited or spec.factor_limited):
            return None
        movable = d.ub > d.lb
        if not (d.e[movable] > 0).all() or (d.b[~movable] != 0).any():
            return None
        if not np.array_equal(d.xb, d.f_mat @ d.b):  # a factor benchmark
            return None
        return ActiveQP(d.root @ d.f_mat, d.e, d.f_mat.T @ d.mu, d.lb - d.b, d.ub - d.b)

    def _exact_solve(self, qp: ActiveQP, warm: tuple[np.ndarray | None, float]
                     ) -> QPSolution | None:
        state, t = warm
        if state is not None:
            state = np.asarray(state)
            if state.shape != (self.n,):
                return None
        if self.spec.risk == "tev":
            return qp.at_te(float(self.spec.te_budget), state, t)
        gamma = float(self.spec.gamma)
        return qp.at_t(0.5 / gamma, state) if gamma > 0 else None  # gamma 0: a linear program

    # ------------------------------------------------------------------ checks

    def _te_per_period(self, w: np.ndarray, d: _Inputs) -> float:
        dw = w - d.b
        f = d.f_mat @ w - d.xb
        return math.sqrt(max(float(f @ d.factor_cov @ f + d.e @ (dw * dw)), 0.0))

    def _clean(self, x: np.ndarray, d: _Inputs) -> np.ndarray:
        """Clip to the bounds (exact 0 outside the universe); rescale long-only to sum 1."""
        x = np.clip(x, d.lb, d.ub)
        x[d.ub == 0] = 0.0
        total = x.sum()
        if self.spec.long_only and total > 0:
            x = x / total
        return x

    def _violations(self, x: np.ndarray, w: np.ndarray, te_pp: float, d: _Inputs) -> list[str]:
        """What the solver's raw ``x`` and the cleaned ``w`` violate beyond the tolerances."""
        out = []
        if abs(x.sum() - 1) > _FEAS_TOL:
            out.append(f"weights sum to {x.sum():.8g}, not 1")
        over = max(float((x - d.ub).max()), float((d.lb - x).max()))
        if over > _FEAS_TOL:
            out.append(f"a weight is {over:.3g} outside its bounds")
        budget = self.spec.te_budget
        if budget is not None and te_pp > budget * (1 + _TE_REL_TOL):
            out.append(f"tracking error {te_pp:.6g} per period exceeds the budget {budget:.6g}")
        if d.ind_hi is not None and d.ind_lo is not None:
            u = x if d.ind_map is None else d.ind_map.T @ x
            out_ind = max(float((u - d.ind_hi).max()), float((d.ind_lo - u).max()))
            if out_ind > _FEAS_TOL:
                out.append(f"an industry weight is {out_ind:.3g} outside its limit")
        rows, f_lo, f_hi = self._factor_rows
        if rows:
            f = (d.f_mat @ w - d.xb)[rows]
            out_f = max(float((f - f_hi).max()), float((f_lo - f).max()))
            if out_f > _FEAS_TOL:
                out.append(f"a factor exposure is {out_f:.3g} outside its bounds")
        if self.spec.turnover is not None and d.prev is not None:
            to = 0.5 * float(np.abs(w - d.prev).sum())
            if to > self.spec.turnover + _FEAS_TOL:
                out.append(f"one-way turnover {to:.6g} exceeds the limit {self.spec.turnover:.4g}")
        return out

    def _precheck(self, d: _Inputs, date: Any) -> XlfuncsError | None:
        """Infeasibility that needs no solver: nothing tradable, max_weight too small."""
        what = "industries with tradable stocks" if self.k is not None else "tradable assets"
        if d.n_free == 0:
            return InfeasibleError(f"{_when(date)}there are no {what}; check the tradable mask",
                                   "tradable")
        mw = self.spec.max_weight
        if mw is not None and mw * d.n_free < 1 - 1e-12:
            return InfeasibleError(
                f"{_when(date)}max_weight too small for the tradable universe: {d.n_free} "
                f"{what} at {mw:.4g} hold at most {mw * d.n_free:.4g}; raise max_weight to at "
                f"least {1 / d.n_free:.4g}", "max_weight")
        return None

    def _diagnose(self, d: _Inputs, date: Any) -> XlfuncsError:
        """Why the solver found the date infeasible: turnover, then the TEV budget."""
        spec = self.spec
        try:
            if spec.industry_limited or spec.factor_limited:
                problem = self._limit_problem(d, date)
                if problem is not None:
                    return InfeasibleError(str(problem), problem.argument)
            if spec.turnover is not None and d.prev is not None:
                need = self._min_aux(d, "turnover")
                if need is not None and need > spec.turnover * (1 + 1e-7) + 1e-9:
                    return InfeasibleError(
                        f"{_when(date)}turnover limit unreachable: {spec.turnover:.4g} one-way, "
                        f"but selling what left the universe and staying within the bounds "
                        f"needs at least {need:.4g}; raise turnover", "turnover")
            if spec.te_budget is not None:
                need = self._min_aux(d, "te")
                if need is not None and need > spec.te_budget * (1 + 1e-7):
                    ann = need * math.sqrt(spec.periods_per_year)
                    return InfeasibleError(
                        f"{_when(date)}the TEV budget {spec.tev:.4g} is unreachable: the lowest "
                        f"tracking error the constraints allow is {ann:.4g} a year; raise tev "
                        f"or relax max_weight/turnover", "tev")
        except Exception:  # a diagnostic must not hide the failure itself
            pass
        return InfeasibleError(f"{_when(date)}the constraints cannot all hold (solver says "
                               "infeasible); relax tev, max_weight or turnover", "tev")

    def _limits_lp(self, d: _Inputs, industry: bool, rows: Sequence[int],
                   sense: int = 0, row: int = 0) -> float | None:
        """A linear program over the policy limits only (no risk): None when infeasible.

        With ``sense`` 0 a feasibility check (returns 0.0); with ``sense`` +1 or
        -1 the largest or smallest active exposure ``f[row]`` the bounds,
        budget and the industry limits (when ``industry``) allow.
        """
        import cvxpy as cp

        x = cp.Variable(len(d.ub))
        w = d.w_map @ x if d.w_map is not None else x
        cons = [cp.sum(x) == 1, x <= d.ub, x >= d.lb]
        if industry and d.ind_hi is not None:
            u = x if d.ind_map is None else d.ind_map.T @ x
            cons += [u <= d.ind_hi, u >= d.ind_lo]
        f = d.f_mat @ w - d.xb
        _, f_lo, f_hi = self._factor_rows
        all_rows = self._factor_rows[0]
        for r in rows:
            j = all_rows.index(r)
            cons += [f[r] >= f_lo[j], f[r] <= f_hi[j]]
        goal = cp.Minimize(0) if sense == 0 else cp.Maximize(sense * f[row])
        prob = cp.Problem(goal, cons)
        prob.solve(solver=cp.CLARABEL)
        if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return None
        return 0.0 if sense == 0 else float(sense * prob.value)

    def _limit_problem(self, d: _Inputs, date: Any) -> InputError | None:
        """Which policy limit admits no portfolio at this date (None: they all hold together).

        The limits are tried together, then the industry limits alone, then
        each factor bound alone; the first that fails alone is named, with the
        range the other constraints allow for a factor.
        """
        spec = self.spec
        rows = self._factor_rows[0]
        if self._limits_lp(d, True, rows) is not None:
            return None
        when = _when(date)
        if spec.industry_limited and self._limits_lp(d, True, []) is None:
            detail = ""
            if d.ind_map is not None and d.ind_lo is not None:
                empty = np.flatnonzero((d.ind_map.sum(axis=0) == 0) & (d.ind_lo > 1e-12))
                if empty.size:
                    j = int(empty[0])
                    name = d.ind_names[j] if d.ind_names else f"industry {j + 1}"
                    u_b = (d.ind_lo[j] + d.ind_hi[j]) / 2
                    detail = f": {name} has no tradable stock but {u_b:.4g} of the benchmark"
            setting = "industry_limits" if spec.industry_limits else "industry_limit"
            return InputError(f"{when}{setting} admits no portfolio within the weight bounds"
                              f"{detail}; raise it", setting)
        names = self.factor_names or tuple(f"factor {r}" for r in range(1, self.m))
        for r in rows:
            if self._limits_lp(d, False, [r]) is None:
                lo = self._limits_lp(d, False, [], -1, r)
                hi = self._limits_lp(d, False, [], +1, r)
                j = rows.index(r)
                setting = "factor_neutral" if spec.factor_neutral else "factor_bounds"
                reach = f" (the weight bounds allow {lo:.4g} to {hi:.4g})" if (
                    lo is not None and hi is not None) else ""
                return InputError(
                    f"{when}{setting}: the active exposure to {names[r - 1]} cannot be within "
                    f"{self._factor_rows[1][j]:g} to {self._factor_rows[2][j]:g}{reach}",
                    setting)
        setting = "industry_limit" if spec.industry_limited else "factor_bounds"
        return InputError(f"{when}the industry and factor limits together admit no portfolio; "
                          "loosen one", setting)

    def _min_aux(self, d: _Inputs, what: str) -> float | None:
        """Smallest one-way turnover (or per-period TE) the other constraints allow."""
        import cvxpy as cp

        spec = self.spec
        x = cp.Variable(len(d.ub))
        w = d.w_map @ x if d.w_map is not None else x
        cons = [cp.sum(x) == 1, x <= d.ub, x >= d.lb]
        trade = cp.sum(cp.abs(w - d.prev)) / 2 if d.prev is not None else None
        if what == "turnover":
            assert trade is not None
            objective = trade
        else:
            f = d.f_mat @ w - d.xb
            objective = cp.norm(cp.hstack([d.root @ f, cp.multiply(np.sqrt(d.e), w - d.b)]), 2)
            if trade is not None and spec.turnover is not None:
                cons.append(trade <= spec.turnover)
        prob = cp.Problem(cp.Minimize(objective), cons)
        prob.solve(solver=cp.CLARABEL, **SOLVER_OPTIONS)
        if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return None
        return float(prob.value)

    def _failed(self, err: XlfuncsError, date: Any, t0: float, solver_status: str,
                iters: int) -> OptimResult:
        nan = math.nan
        return OptimResult(
            weights=np.full(self.n, nan), status="failed", reason=str(err),
            tracking_error=nan, active_return=nan, te_binding=False,
            solve_seconds=time.perf_counter() - t0, iterations=iters, date=date,
            industry_weights=np.full(self.k, nan) if self.k is not None else None,
            solver_status=solver_status, error=err)


def _unchanged(kept: Any, given: Any) -> bool:
    """``given`` is the last call's input: that read-only array itself, or equal to it."""
    return (given is kept and isinstance(given, np.ndarray) and _immutable(given)) or _same(
        kept, given)


def _immutable(a: np.ndarray) -> bool:
    """No one can write to ``a``'s numbers: read-only down to the memory that holds them.

    (Its owner could make it writeable again; that is not done by accident.)
    """
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        a = a.base
    return a is None or isinstance(a, bytes)


def _same(kept: Any, given: Any) -> bool:
    """``given`` equals the kept input (arrays by value, the rest by ==)."""
    if isinstance(kept, np.ndarray) or isinstance(given, np.ndarray):
        return (isinstance(kept, np.ndarray) and isinstance(given, np.ndarray)
                and kept.dtype == given.dtype and np.array_equal(kept, given))
    try:
        return bool(kept == given) if kept is not None or given is not None else True
    except (TypeError, ValueError):
        return False


def _when(date: Any) -> str:
    if date is None:
        return ""
    text = date.date().isoformat() if hasattr(date, "date") and callable(date.date) else date
    return f"{text}: "


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
