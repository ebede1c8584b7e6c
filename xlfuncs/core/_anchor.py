"""Risk aversion anchored to a tracking-error target (the backtest's ``anchor`` mode).

The gamma problem ``max mu_f' f - gamma * TE^2`` has a solution ``w(gamma)``
whose ex-ante tracking error ``TE(gamma)`` falls as ``gamma`` grows: from the
maximum-return portfolio's as ``gamma -> 0`` to the least tracking error the
constraints allow as ``gamma -> oo``. Where the constraints do not bind,
``w - b`` is proportional to ``1 / gamma``, so ``TE(gamma) * gamma`` is
constant; in between it bends, but stays continuous and monotone (the problem
is strictly convex when every residual variance is positive).

:func:`anchor_gamma` finds the ``gamma`` whose solution has the annual
target's tracking error. It works on ``h(x) = log TE(e^x) - log target``,
which is close to ``-s x + c`` with ``s`` near 1 (about 0.5 where the
long-only bounds bind): from a starting gamma and slope (the previous
date's) it steps by that line a little past the root, then by the secant
of its trials, until the sign of ``h`` changes, and refines with Brent's
method (:func:`scipy.optimize.brentq`) on ``x = log gamma``. Every trial is
a solve of the optimiser's problem; the answer is the trial closest to
the target, so its gamma reproduces its weights exactly. Clarabel at the
optimiser's tolerances gives TE(gamma) smooth enough to meet ``RTOL``
(1e-8; the promise is 1e-6), in about 5-6 solves per date from the previous
date's gamma. A target outside ``TE(GAMMA_MAX) .. TE(GAMMA_MIN)`` is not
reached: the nearest end of the range is kept and the result says so.

The backtest searches only where it must: where the active-set solver takes the
problem, one exact solve of the TEV cap at the target gives the weights and
their gamma, ``1 / (2 t)`` (``xlfuncs.core._backtest``, ``_Strategy._anchored``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from xlfuncs.core._optimise import OptimResult
from xlfuncs.errors import InputError

__all__ = ["GAMMA_MAX", "GAMMA_MIN", "Anchored", "anchor_gamma"]

#: The range searched for gamma (on the per-period active variance). At GAMMA_MIN the
#: risk term is ~1e-10 of a monthly objective (the maximum-return portfolio); at
#: GAMMA_MAX the solution is the least tracking error the constraints allow.
GAMMA_MIN = 1e-6
GAMMA_MAX = 1e8
#: The search stops when the tracking error is this close to the target (relative).
RTOL = 1e-8
_MAX_SOLVES = 60


@dataclass(frozen=True, eq=False)
class Anchored:
    """The solution whose tracking error meets the target, and how it was found.

    Attributes
    ----------
    result : OptimResult
        The optimiser's answer at ``gamma`` (a failed one when a solve failed).
    gamma : float
        The risk aversion used (NaN when a solve failed).
    reached : bool
        The annualised ex-ante tracking error equals the target within
        ``1e-6`` relative.
    solves : int
        Optimiser solves spent on this date.
    slope : float
        ``-d log TE / d log gamma`` across the last bracket (the next date's
        first step), or the one given when there was none.
    reason : str
        ``""`` when reached; else why not (the target beyond the range, with
        the tracking error at the end of it).

    """

    result: OptimResult
    gamma: float
    reached: bool
    solves: int
    reason: str = ""
    slope: float = 1.0


class _Found(Exception):
    """Raised inside the root finder when a trial meets the target (stops it early)."""


class _Failed(Exception):
    """A trial solve failed: the date fails with its reason."""

    def __init__(self, result: OptimResult):
        super().__init__(result.reason)
        self.result = result


def anchor_gamma(solve: Callable[[float], OptimResult], target: float,
                 start: float = 1.0, slope: float = 1.0) -> Anchored:
    """The gamma whose solution's annual ex-ante tracking error equals ``target``.

    Parameters
    ----------
    solve : callable
        ``solve(gamma)``: the gamma problem solved at that risk aversion (the
        compiled problem re-filled), an :class:`OptimResult` whose
        ``tracking_error`` is annualised.
    target : float
        Annual tracking-error target (0.06 = 6% a year), above 0.
    start : float
        Where the search starts (the previous rebalance's gamma); clipped to
        ``[GAMMA_MIN, GAMMA_MAX]``.
    slope : float
        ``-d log TE / d log gamma`` expected near the root (1 where no
        constraint binds; the previous rebalance's :attr:`Anchored.slope`).

    Returns
    -------
    Anchored
        A failed solve ends the search: its result is returned with
        ``gamma`` NaN.

    Raises
    ------
    InputError
        ``target`` not a positive finite number.

    """
    from scipy.optimize import brentq

    if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
        raise InputError(f"the tracking-error target must be above 0 (got {target!r})", "tev")
    tried: dict[float, tuple[float, OptimResult]] = {}  # log gamma -> (h, result)

    lo, hi = math.log(GAMMA_MIN), math.log(GAMMA_MAX)

    def gamma_of(x: float) -> float:  # the ends exactly as they are written
        return GAMMA_MIN if x == lo else GAMMA_MAX if x == hi else math.exp(x)

    def h(x: float) -> float:
        if x not in tried:
            res = solve(gamma_of(x))
            if not res.ok:
                raise _Failed(res)
            te = max(res.tracking_error, 1e-300)  # the benchmark itself: TE 0
            tried[x] = (math.log(te / target), res)
            if abs(tried[x][0]) <= RTOL:
                raise _Found
        return tried[x][0]

    x = min(max(math.log(start) if start > 0 else 0.0, lo), hi)
    bracketed = found = False
    try:
        hx = h(x)
        reach = 1.02 / slope  # a step a little past the root the slope predicts, then wider
        while True:
            nxt = min(max(x + hx * reach, lo), hi)
            if nxt == x:  # at an end of the range, still on the same side
                break
            hn = h(nxt)
            if (hn > 0) != (hx > 0):
                bracketed = True
                brentq(h, min(x, nxt), max(x, nxt), xtol=1e-12, maxiter=_MAX_SOLVES,
                       disp=False)
                break
            # still on the same side: the secant of the two trials, a little further
            local = (hx - hn) / (nxt - x)
            reach = max(1.1 / local if local > 0 else 0.0, reach * 2)
            x, hx = nxt, hn
    except _Found:
        found = True
    except _Failed as failed:
        return Anchored(failed.result, math.nan, False, len(tried) + 1, failed.result.reason)
    # bracketed (or met): the trial nearest the target; else the end of the range reached
    best = min(tried, key=lambda k: abs(tried[k][0])) if bracketed or found else x
    err, res = tried[best]
    gamma = gamma_of(best)
    reached = abs(math.expm1(err)) <= 1e-6
    below = [k for k in tried if tried[k][0] < 0]
    above = [k for k in tried if tried[k][0] > 0]
    if below and above:  # across the nearest trials on either side of the target
        a, b = min(below), max(above)
        slope = min(max((tried[b][0] - tried[a][0]) / (b - a) * -1.0, 0.05), 20.0)
    reason = ""
    if not reached and bracketed:  # the solver's accuracy, not the range
        reason = (f"the tracking error came within {abs(math.expm1(err)):.2g} of the target "
                  f"{target:.4g} (relative), not 1e-6 (gamma {gamma:.3g})")
    elif not reached:
        side = ("above the maximum-return portfolio's" if err < 0
                else "below the least the constraints allow,")
        reason = (f"the target {target:.4g} is {side} {res.tracking_error:.4g} "
                  f"(gamma {gamma:.3g})")
    return Anchored(res, gamma, reached, len(tried), reason, slope)
