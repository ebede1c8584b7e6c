"""An exact active-set solver for the factor-form active-risk problem of one date.

With active weights ``a = w - b``, the risk ``TE^2 = a' Q a`` where
``Q = G' G + diag(e)`` (``G = R F``: the loadings under a root of the factor
covariance, ``m x n`` with ``m`` small) and the expected active return
``g' a`` (``g = F' mu``), the risk-aversion problem of SPEC 3.4 is, for
``t = 1 / (2 gamma)``,

    minimise  1/2 a' Q a - t g' a   s.t.  sum(a) = 0,  l <= a <= u      (P_t)

(``l = lb - b``, ``u = ub - b``). ``Q`` is positive definite, so the answer
``a(t)`` is unique, and it is piecewise affine in ``t``: on each piece the
assets at a bound stay there and the others ("free") solve the equality-
constrained problem, whose only coupling is through ``G a`` and the budget
multiplier, an ``(m + 1) x (m + 1)`` system (the Woodbury form of ``Q``). The
TEV-cap problem (maximise ``g' a`` s.t. ``TE <= tau``) is solved, whenever the
cap binds, by ``a(t)`` at the ``t`` with ``TE(t) = tau`` (its multiplier is
``1 / (2 t)``); ``TE(t)`` grows with ``t`` and is quadratic on each piece.

:meth:`ActiveQP.at_t` finds the free set at a given ``t`` by primal-dual
active-set iterations (every asset whose bound or multiplier is violated
changes side at once). :meth:`ActiveQP.at_te`, given a start near the answer
(the last date's free set), runs the same sweeps with ``t`` moved each time to
the current piece's TE root; otherwise, or where those aimed sweeps do not
settle, it searches ``t`` with a safeguarded Newton step that is exact once the
piece is found (the root of the piece's quadratic). Where the sweeps at a given
``t`` do not settle (a cold start, a long jump), the path itself is walked a
piece at a time from the last optimal point (from ``t = 0``, the benchmark, on
a first date), a jump tried again every few pieces. Each costs O(n m^2) per
iteration, a few iterations from a good start, against an interior-point solve
of the whole cone problem.
Every answer is rebuilt from scratch for its free set and checked against
the optimality conditions to ``1e-9``; None means "not found here", and the
caller falls back to a general solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dposv

__all__ = ["ActiveQP", "QPSolution"]

FREE, LOWER, UPPER = 0, -1, 1
# Optimality is accepted when bounds, multipliers and the budget hold to this
# (weight units).
KKT_TOL = 1e-9
_MAX_SWEEPS = 25  # active-set iterations at one t (or aimed at a TE target)
_MAX_STEPS = 60  # Newton steps of the search for the t of a TE target
_MAX_WALK = 4  # and pieces walked, at most this many per asset
_WALK_JUMP = 16  # while walking, a Newton step is tried again every this many pieces


@dataclass(frozen=True)
class QPSolution:
    """One answer: the active weights, the free set, ``t`` and the work done."""

    a: np.ndarray  # (n,) active weights
    state: np.ndarray  # (n,) int8: FREE, LOWER or UPPER
    t: float  # 1 / (2 gamma); inf for the end of the frontier
    binding: bool  # a TE target: the cap binds
    iterations: int  # linear solves


@dataclass(slots=True)
class _Piece:
    """The affine solution for one free set: ``y(t) = t y1 + y0``, ``a~(t) = t alpha + beta``."""

    y1: np.ndarray
    y0: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    ef: np.ndarray  # the residual variances of the free assets (0 for the others)
    fixed_a: np.ndarray  # the weights of the assets at a bound (0 for the free ones)
    e: np.ndarray

    @property
    def te2(self) -> tuple[float, float, float]:
        """``TE^2(t) = c2 t^2 + c1 t + c0`` on the piece (``G a = z``, the first ``m`` of ``y``)."""
        m = len(self.y1) - 1
        z1, z0 = self.y1[:m], self.y0[:m]
        ea = self.ef * self.alpha
        eb = self.ef * self.beta
        return (float(z1 @ z1 + ea @ self.alpha), float(2.0 * (z1 @ z0 + ea @ self.beta)),
                float(z0 @ z0 + eb @ self.beta + (self.e * self.fixed_a) @ self.fixed_a))


class ActiveQP:
    """Problem ``P_t`` of one date, for any ``t`` or TE target.

    Parameters
    ----------
    G : ndarray of shape (m, n)
        ``R F``, so that the factor risk of ``a`` is ``||G a||^2``.
    e : ndarray of shape (n,)
        Residual variances; > 0 wherever ``lower < upper``.
    g : ndarray of shape (n,)
        Expected active return per unit of active weight, ``F' mu``.
    lower, upper : ndarray of shape (n,)
        Bounds of the active weights, ``lower <= upper`` (equal: a fixed
        asset). ``sum`` of the answer is 0.

    """

    def __init__(self, G: np.ndarray, e: np.ndarray, g: np.ndarray, lower: np.ndarray,
                 upper: np.ndarray):
        self.G = np.asarray(G, dtype=float)
        m, n = self.G.shape
        self.e = np.asarray(e, dtype=float)
        self.g = np.asarray(g, dtype=float)
        self.lower = np.asarray(lower, dtype=float)
        self.upper = np.asarray(upper, dtype=float)
        if not (self.e.shape == self.g.shape == self.lower.shape == self.upper.shape == (n,)):
            raise ValueError("G, e, g, lower and upper disagree on the number of assets")
        self.fixed = self.lower >= self.upper
        safe_e = np.where(self.fixed, 1.0, self.e)
        if (self.lower > self.upper).any() or not (safe_e > 0).all():
            raise ValueError("ActiveQP needs lower <= upper and e > 0 for every asset that "
                             "can move")
        self.m, self.n = m, n
        self.HTg = np.empty((n, m + 2))  # [H' | g]: K and H g in one product
        self.HTg[:, :m] = self.G.T
        self.HTg[:, m] = 1.0
        self.HTg[:, m + 1] = self.g
        self.HT = self.HTg[:, :m + 1]
        self.H = self.HT.T  # G, then the budget row
        self.Hs = self.H / safe_e
        self.inv_e = 1.0 / safe_e
        # an asset violates its side at raw weights beyond these (a fixed one never leaves)
        self.below = self.lower - KKT_TOL
        self.above = self.upper + KKT_TOL
        self.leaves_lower = np.where(self.fixed, np.inf, self.lower + KKT_TOL)
        self.leaves_upper = np.where(self.fixed, -np.inf, self.upper - KKT_TOL)
        self._eye = np.zeros((m + 1, m + 1))
        self._eye[np.arange(m), np.arange(m)] = 1.0  # K = [[I + sum G G'/e, .], [., .]]
        self.solves = 0

    # ------------------------------------------------------------------ pieces

    def start_state(self) -> np.ndarray:
        """Every asset free except the fixed ones (held at their lower bound)."""
        return np.where(self.fixed, LOWER, FREE).astype(np.int8)

    def state_near(self, a: np.ndarray, tol: float = 1e-7) -> np.ndarray:
        """The free set an approximate answer ``a`` suggests (within ``tol`` of a bound)."""
        a = np.asarray(a, dtype=float)
        state = np.where(a <= self.lower + tol, LOWER,
                         np.where(a >= self.upper - tol, UPPER, FREE)).astype(np.int8)
        state[self.fixed] = LOWER
        return state

    def _bound_values(self, state: np.ndarray) -> np.ndarray:
        return np.where(state == LOWER, self.lower, np.where(state == UPPER, self.upper, 0.0))

    def _piece(self, state: np.ndarray) -> _Piece | None:
        """The affine solution of the free set ``state == FREE``, from scratch."""
        is_free = state == FREE
        if not is_free.any():
            return None
        self.solves += 1
        free = is_free.astype(float)
        both = (self.Hs * free) @ self.HTg  # [K - I | H_free g / e]
        K = both[:, :-1] + self._eye
        fixed_a = self._bound_values(state)
        rhs = np.empty((self.m + 1, 2))
        rhs[:, 0] = both[:, -1]
        rhs[:, 1] = self.H @ fixed_a
        _, y, info = dposv(K, rhs)  # K is positive definite when an asset is free
        if info != 0:  # numerically not: the general solve
            try:
                y = np.linalg.solve(K, rhs)
            except np.linalg.LinAlgError:
                return None
        p = self.HT @ y
        alpha = (self.g - p[:, 0]) * self.inv_e
        beta = p[:, 1] * -self.inv_e
        return _Piece(y[:, 0], y[:, 1], alpha, beta, self.e * free, fixed_a, self.e)

    def _events(self, piece: _Piece, state: np.ndarray, t: float
                ) -> tuple[float, int, float, int]:
        """Where ``state`` stops being optimal around ``t``: ``(lo, i_lo, hi, i_hi)``.

        Going up in ``t``, a free asset falls to its lower bound or rises to its
        upper one, or an asset at a bound sees its unconstrained weight come back
        inside; going down, the reverse. ``i`` is the asset (-1: none, and then
        ``lo = 0`` or ``hi = inf``).
        """
        alpha, beta = piece.alpha, piece.beta
        free, movable = state == FREE, ~self.fixed
        low, high = (state == LOWER) & movable, (state == UPPER) & movable
        # a slope at rounding level is no slope (one free asset, held by the budget)
        tiny = 1e-12 * float(np.abs(alpha[movable]).max(initial=0.0))
        up, down = alpha > tiny, alpha < -tiny
        with np.errstate(divide="ignore", invalid="ignore"):
            to_l = (self.lower - beta) / alpha
            to_u = (self.upper - beta) / alpha
        ahead = np.where((free & down) | (low & up), to_l,
                         np.where((free & up) | (high & down), to_u, np.inf))
        behind = np.where((free & up) | (low & down), to_l,
                          np.where((free & down) | (high & up), to_u, -np.inf))
        # an event a rounding error behind t (two assets reaching a bound together) is at t
        slack = 1e-9 * max(1.0, abs(t))
        ahead = np.where(np.isnan(ahead) | (ahead < t - slack), np.inf, np.maximum(ahead, t))
        behind = np.where(np.isnan(behind) | (behind > t + slack), -np.inf,
                          np.minimum(behind, t))
        i_hi, i_lo = int(np.argmin(ahead)), int(np.argmax(behind))
        hi, lo = float(ahead[i_hi]), float(behind[i_lo])
        return (max(lo, 0.0), i_lo if lo > -np.inf else -1,
                hi, i_hi if hi < np.inf else -1)

    def _cross(self, piece: _Piece, state: np.ndarray, j: int, forward: bool) -> np.ndarray:
        """The free set of the next piece along the path: asset ``j`` changes side."""
        new = state.copy()
        if state[j] != FREE:
            new[j] = FREE
        else:
            falls = (piece.alpha[j] < 0) == forward
            new[j] = LOWER if falls else UPPER
        return new

    # ------------------------------------------------------------------ one t

    def _settle(self, t: float, state: np.ndarray) -> tuple[np.ndarray, _Piece] | None:
        """The optimal free set at ``t`` by primal-dual active-set sweeps from ``state``."""
        state = state.copy()
        state[self.fixed] = LOWER
        seen: set[bytes] = set()
        for _ in range(_MAX_SWEEPS):
            piece = self._piece(state)
            if piece is None:  # nothing free (or a singular system): the caller falls back
                return None
            new = self._moved(state, piece.alpha * t + piece.beta if math.isfinite(t)
                              else piece.beta)
            if np.array_equal(new, state):
                return state, piece
            key = new.tobytes()
            if key in seen:  # a cycle: give up here
                return None
            seen.add(key)
            state = new
        return None

    def _answer(self, piece: _Piece, state: np.ndarray, t: float, binding: bool
                ) -> QPSolution | None:
        """The weights of ``piece`` at ``t``, checked against the optimality conditions."""
        finite = math.isfinite(t)
        if not finite and np.abs(piece.alpha[state == FREE]).max(initial=0.0) > KKT_TOL:
            return None  # the end of the frontier must be a flat piece
        raw = piece.alpha * t + piece.beta if finite else piece.beta
        free = state == FREE
        a = np.where(free, raw, piece.fixed_a)
        z = (piece.y1 * t + piece.y0)[: self.m] if finite else piece.y0[: self.m]
        tol = KKT_TOL
        if finite:  # no asset leaves its side at t: bounds and multipliers hold
            held = np.array_equal(self._moved(state, raw), state)
        else:  # at the end of the frontier the slopes decide, and the bounds
            movable = ~self.fixed
            held = (bool((piece.alpha[(state == LOWER) & movable] <= tol).all())
                    and bool((piece.alpha[(state == UPPER) & movable] >= -tol).all())
                    and bool((a[free] >= self.lower[free] - tol).all())
                    and bool((a[free] <= self.upper[free] + tol).all()))
        ok = (held and abs(float(a.sum())) <= tol
              and float(np.abs(self.G @ a - z).max(initial=0.0))
              <= tol * (1.0 + float(np.abs(z).max(initial=0.0))))
        if not ok:
            return None
        return QPSolution(np.clip(a, self.lower, self.upper), state, t, binding, self.solves)

    def at_t(self, t: float, state: np.ndarray | None = None) -> QPSolution | None:
        """The answer of ``P_t`` (``t = 1 / (2 gamma)``), from the free set ``state``.

        Without ``state``, or when the active-set sweeps do not settle from it,
        the path is walked from the benchmark (``t = 0``) with a jump to ``t``
        tried every few pieces.
        """
        if not t >= 0:
            raise ValueError("t must be >= 0")
        self.solves = 0
        if state is not None:
            got = self._settle(t, state)
            if got is not None:
                return self._answer(got[1], got[0], t, False)
        origin = self._origin()
        if origin is None:
            return None if state is not None else self._settled(t, self.start_state())
        piece, state = origin
        here = 0.0
        for walked in range(1, _MAX_WALK * self.n + 1):
            _, _, hi, j = self._events(piece, state, here)
            if t <= hi:
                return self._answer(piece, state, t, False)
            if j < 0:
                return None
            state, here = self._cross(piece, state, j, True), hi
            if walked % _WALK_JUMP == 0:
                got = self._settle(t, state)
                if got is not None:
                    return self._answer(got[1], got[0], t, False)
            piece = self._piece(state)
            if piece is None:
                return None
        return None

    def _settled(self, t: float, state: np.ndarray) -> QPSolution | None:
        got = self._settle(t, state)
        return None if got is None else self._answer(got[1], got[0], t, False)

    # ------------------------------------------------------------------ a TE target

    def _origin(self) -> tuple[_Piece, np.ndarray] | None:
        """The free set at ``t = 0``, where the answer is the benchmark (``a = 0``).

        None when the benchmark breaks a bound (e.g. a weight above
        ``max_weight``): the path then does not start at 0.
        """
        movable = ~self.fixed
        if ((self.lower[movable] > 0).any() or (self.upper[movable] < 0).any()
                or self.lower[self.fixed].any()):
            return None
        state = np.where(self.lower == 0, LOWER,
                         np.where(self.upper == 0, UPPER, FREE)).astype(np.int8)
        piece = self._piece(state)
        return None if piece is None else (piece, state)

    def _aimed(self, target: float, state: np.ndarray) -> QPSolution | None:
        """The binding TE-cap answer by sweeps that move ``t`` to each piece's root.

        Each sweep takes the ``t`` at which the current free set's TE^2 reaches
        ``target`` and moves every asset whose bound or multiplier is violated
        there. From a nearby date's free set this usually ends in two pieces;
        the answer is the same (the optimal free set's piece at its root) as the
        search of :meth:`at_te` finds. None when it does not settle (a cycle, a
        root that is not a positive number): the caller searches from the start.
        """
        state = state.copy()
        state[self.fixed] = LOWER
        seen: set[bytes] = set()
        for _ in range(_MAX_SWEEPS):
            piece = self._piece(state)
            if piece is None:
                return None
            c2, c1, c0 = piece.te2
            t = _rising_root(c2, c1, c0 - target)
            if not (t > 0 and math.isfinite(t)):
                return None
            raw = piece.alpha * t + piece.beta
            new = self._moved(state, raw)
            if np.array_equal(new, state):  # the bounds and multipliers hold at t
                return self._answer(piece, state, t, True)
            key = new.tobytes()
            if key in seen:
                return None
            seen.add(key)
            state = new
        return None

    def _moved(self, state: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """``state`` with every asset whose bound or multiplier ``raw`` violates moved."""
        free = state == FREE
        new = state.copy()
        new[free & (raw < self.below)] = LOWER
        new[free & (raw > self.above)] = UPPER
        new[(state == LOWER) & (raw > self.leaves_lower)] = FREE
        new[(state == UPPER) & (raw < self.leaves_upper)] = FREE
        return new

    def at_te(self, te: float, state: np.ndarray | None = None, t: float | None = None
              ) -> QPSolution | None:
        """The TEV-cap answer for ``TE <= te`` (same units as ``sqrt(e)``).

        The cap binds unless even the end of the frontier (the highest expected
        active return within the bounds) has less tracking error; then that end
        is the answer, with ``binding`` False. ``state`` and ``t`` are a start
        (e.g. the previous date's): from ``state`` the sweeps first aim at the
        target (:meth:`_aimed`, which needs no ``t``); where they do not settle,
        the search starts from ``state`` and ``t``. Without them the search
        starts from the benchmark (``t = 0``). Newton steps on the piece's quadratic jump ahead;
        where the active-set sweeps cannot settle a jump, the path is walked a
        piece at a time from the last optimal point, with a jump tried again
        every few pieces. None when the target is below the least tracking
        error the bounds allow, or the search fails.
        """
        if not te > 0:
            raise ValueError("te must be > 0")
        self.solves = 0
        target = te * te
        if state is not None:  # a start near the answer: sweeps that aim at the target
            got = self._aimed(target, state)
            if got is not None:
                return got
        valid = None  # the last optimal (piece, state, t)
        if state is None:
            origin = self._origin()
            state = self.start_state() if origin is None else origin[1]
            if origin is not None:
                valid = (origin[0], origin[1], 0.0)
        if t is None or not (t > 0 and math.isfinite(t)):
            first = valid[0] if valid is not None else self._piece(state)
            if first is None:
                return None
            c2, c1, c0 = first.te2
            t = _rising_root(c2, c1, c0 - target)
            t = t if math.isfinite(t) and t > 0 else 1.0
        below, above = 0.0, math.inf  # TE(below) <= te < TE(above)
        walking, since = False, 0  # walking the path; pieces walked since the last jump
        for _ in range(_MAX_STEPS + _MAX_WALK * self.n):
            if walking:  # the state is optimal at t by construction
                piece = self._piece(state)
                if piece is None:
                    return None
            else:  # a jump: the sweeps settle the free set at t
                got = self._settle(t, state)
                if got is None:
                    if valid is None:
                        return None
                    (piece, state, t), walking, since = valid, True, 0
                else:
                    state, piece = got
            valid = (piece, state, t)
            c2, c1, c0 = piece.te2
            now = c2 * t * t + c1 * t + c0
            lo, i_lo, hi, i_hi = self._events(piece, state, t)
            if hi == math.inf and abs(c2) * t * t + abs(c1) * t <= 1e-10 * max(c0, 1e-300):
                if now <= target:  # the flat end of the frontier is within the cap
                    return self._answer(piece, state, math.inf, False)
            root = _rising_root(c2, c1, c0 - target)
            if lo <= root <= hi:
                return self._answer(piece, state, root, True)
            if now <= target:
                below = max(below, t)
            else:
                above = min(above, t)
            if walking and since < _WALK_JUMP:  # cross to the next piece towards the target
                since += 1
                forward = now < target
                j, t = (i_hi, hi) if forward else (i_lo, lo)
                if j < 0:
                    return None
                state = self._cross(piece, state, j, forward)
                continue
            walking = False  # jump again (from a walk: after a few pieces)
            if below < root < above:
                step = root  # a Newton step: exact once the piece is the right one
            elif math.isfinite(above):
                step = 0.5 * (below + above)
            else:
                step = 2.0 * max(t, hi if math.isfinite(hi) else t)
            if step == t:
                return None
            t = step
        return None


def _rising_root(c2: float, c1: float, c0: float) -> float:
    """The larger root of ``c2 t^2 + c1 t + c0`` (inf: none, or a line that never rises)."""
    if c2 > 0:
        disc = c1 * c1 - 4.0 * c2 * c0
        if disc < 0:
            return math.inf
        s = math.sqrt(disc)
        return (-c1 + s) / (2.0 * c2) if c1 <= 0 else (-2.0 * c0) / (c1 + s)
    if c1 > 0:
        return -c0 / c1
    return math.inf
