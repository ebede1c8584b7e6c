"""Risk estimates from returns: sample, EWMA and Ledoit-Wolf covariance (SPEC 3.3)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from xlfuncs.errors import InputError

__all__ = [
    "RISK_METHODS",
    "RiskMethod",
    "correlation",
    "cov_to_corr",
    "covariance",
    "parse_risk_method",
    "simple_returns",
]

RISK_METHODS = ("sample", "ewma", "ledoit-wolf")
DEFAULT_HALFLIFE = 60.0
_ALIASES = {
    "sample": "sample",
    "ewma": "ewma",
    "ledoit-wolf": "ledoit-wolf",
    "ledoit_wolf": "ledoit-wolf",
    "ledoitwolf": "ledoit-wolf",
    "lw": "ledoit-wolf",
    "shrinkage": "ledoit-wolf",
}


@dataclass(frozen=True)
class RiskMethod:
    """A covariance estimator: ``name`` in RISK_METHODS, ``halflife`` (periods) for EWMA."""

    name: str = "sample"
    halflife: float | None = None


def _halflife_problem(value: float) -> str | None:
    """Why ``value`` is not a usable EWMA half-life (in periods), or None."""
    if not math.isfinite(value):
        return f"must be a finite number of periods (got {value:g})"
    if value >= 1.0:
        return None
    text = f"must be at least 1 period (got {value:g})"
    if 0.0 < value < 1.0:  # perhaps a RiskMetrics decay factor lambda
        equivalent = math.log(0.5) / math.log(value)
        if equivalent >= 1.0:
            return (f"{text}; if {value:g} is a RiskMetrics lambda, its half-life is "
                    f"{equivalent:.3g}: use ewma:{equivalent:.3g}")
        return (f"{text}; as a RiskMetrics lambda it would be a half-life of "
                f"{equivalent:.2g} periods, also under 1")
    return text


def _check_halflife(value: float, name: str) -> float:
    problem = _halflife_problem(value)
    if problem is not None:
        raise InputError(f"{name} ewma half-life {problem}", name)
    return value


def parse_risk_method(text: str | None, name: str = "method") -> RiskMethod:
    """Read ``sample``, ``ewma``, ``ewma:30`` (half-life in periods) or ``ledoit-wolf``.

    The half-life must be at least one period; a RiskMetrics decay factor such
    as ``0.94`` is refused with its equivalent half-life ``ln 0.5 / ln 0.94``.
    """
    if text is None or not str(text).strip():
        return RiskMethod()
    raw = str(text).strip().lower()
    m = re.fullmatch(r"ewma\s*(?:[:=]|\s)\s*(\S+)", raw)
    if m:
        try:
            halflife = float(m.group(1))
        except ValueError:
            raise InputError(
                f'{name} ewma half-life must be a number of periods (got "{m.group(1)}")', name
            ) from None
        return RiskMethod("ewma", _check_halflife(halflife, name))
    key = _ALIASES.get(raw.replace(" ", ""))
    if key is None:
        raise InputError(
            f'{name} must be one of sample, ewma, ewma:HALFLIFE, ledoit-wolf (got "{text}")', name
        )
    return RiskMethod(key, DEFAULT_HALFLIFE if key == "ewma" else None)


def _check_returns(returns: object, columns: Sequence[str] | None, name: str) -> np.ndarray:
    r = np.asarray(returns, dtype=float)
    if r.ndim != 2:
        raise InputError(f"{name} must be a table (periods in rows, assets in columns)", name)
    if r.shape[0] < 2:
        raise InputError(f"{name} needs at least 2 rows of returns (has {r.shape[0]})", name)
    if not np.isfinite(r).all():
        i, j = np.argwhere(~np.isfinite(r))[0]
        raise InputError(f"{name} has a non-finite value in row {i + 1}, column {j + 1}", name)
    if (r <= -1).any():
        i, j = np.argwhere(r <= -1)[0]
        col = columns[j] if columns else f"column {j + 1}"
        raise InputError(f"{name} has a return of {r[i, j]:.4g} (≤ -100%) in {col}, row {i + 1}",
                         name)
    return r


def simple_returns(prices: object, columns: Sequence[str] | None = None,
                   name: str = "prices") -> np.ndarray:
    """Simple returns ``p[t] / p[t-1] - 1`` of a price table.

    Parameters
    ----------
    prices : array-like of shape (n_periods, n_assets)
        Strictly positive prices, oldest first.
    columns : sequence of str, optional
        Asset names, used in messages.
    name : str
        The argument's name, used in messages.

    Returns
    -------
    ndarray of shape (n_periods - 1, n_assets)

    """
    p = np.asarray(prices, dtype=float)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[0] < 2:
        raise InputError(f"{name} needs at least 2 rows of prices", name)
    bad = np.argwhere(~(p > 0) | ~np.isfinite(p))
    if bad.size:
        i, j = bad[0]
        col = columns[j] if columns else f"column {j + 1}"
        raise InputError(f"{name} has a price of {p[i, j]:.6g} in {col}, row {i + 1}; "
                         "prices must be positive", name)
    return p[1:] / p[:-1] - 1.0


def _ewma_weights(n_obs: int, halflife: float) -> np.ndarray:
    age = np.arange(n_obs - 1, -1, -1, dtype=float)
    w = 0.5 ** (age / halflife)
    return w / w.sum()


# A column whose standard deviation is at most this many machine epsilons times
# its root-mean-square varies only by rounding: its variance is zero. The mean
# of n equal numbers is off by a few eps, which an absolute test (1e-300) took
# for a variance of 1e-35.
_FLAT_EPS = 32.0


def _flat_columns(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Indices of columns of ``x`` with zero variance relative to their size.

    ``w`` are the observation weights of the estimator (summing to one). Each
    column of ``x`` is scaled so that its largest entry is at most 1 in size.
    """
    shifted = x - x[-1]  # exact zeros for a constant column (Sterbenz)
    mean = w @ shifted
    var = w @ (shifted - mean) ** 2
    mean_square = w @ (x * x)
    limit = (_FLAT_EPS * np.finfo(float).eps) ** 2 * mean_square
    return np.flatnonzero(var <= limit)


def _exponents(r: np.ndarray) -> np.ndarray:
    """Per column, the power of two just above its largest absolute entry."""
    top = np.abs(r).max(axis=0)
    return np.where(top > 0, np.frexp(top)[1], 0)


def _estimate(r: np.ndarray, rm: RiskMethod) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covariance of ``r * 2**-e`` (exponents ``e`` per column) and its zero-variance columns.

    The sample and EWMA estimators scale column by column (``cov_ij`` by
    ``2**(e_i + e_j)``), so each column is scaled to at most 1; Ledoit-Wolf is
    only invariant to one common scale, so every column gets the largest
    exponent. Scaling by a power of two is exact; it keeps the squares of very
    large or very small returns in range.
    """
    if rm.name not in RISK_METHODS:
        raise InputError(f'method must be one of {", ".join(RISK_METHODS)} (got "{rm.name}")',
                         "method")
    n_obs = r.shape[0]
    if rm.name == "ewma":
        halflife = _check_halflife(
            float(rm.halflife) if rm.halflife is not None else DEFAULT_HALFLIFE, "method"
        )
        w = _ewma_weights(n_obs, halflife)
    else:
        w = np.full(n_obs, 1.0 / n_obs)
    own = _exponents(r)
    x = np.ldexp(r, -own)
    flat = _flat_columns(x, w)
    if rm.name == "ledoit-wolf":
        exponents = np.full_like(own, own.max())
        x = np.ldexp(r, -exponents)
    else:
        exponents = own
    x = x - x[-1]  # the estimators are shift-invariant; constant columns become exact zeros
    if rm.name == "sample":
        cov = np.cov(x, rowvar=False, ddof=1)
    elif rm.name == "ewma":
        centred = x - w @ x
        cov = (centred * w[:, None]).T @ centred / (1.0 - float(w @ w))
    else:
        from sklearn.covariance import LedoitWolf

        cov = LedoitWolf(assume_centered=False).fit(x).covariance_
    cov = np.atleast_2d(cov)
    if rm.name != "ledoit-wolf" and flat.size:  # exactly zero, not rounding noise
        cov[flat, :] = 0.0
        cov[:, flat] = 0.0
    return 0.5 * (cov + cov.T), flat, exponents


def covariance(
    returns: object,
    method: RiskMethod | str | None = None,
    periods_per_year: float = 1.0,
    columns: Sequence[str] | None = None,
    name: str = "returns",
) -> np.ndarray:
    """Covariance of returns, scaled by ``periods_per_year``.

    Parameters
    ----------
    returns : array-like of shape (n_periods, n_assets)
        Periodic simple returns, oldest first.
    method : RiskMethod or str
        ``sample`` (ddof = 1); ``ewma`` with a half-life of at least one period
        (weights ``0.5 ** (age / halflife)``, weighted mean removed,
        bias-corrected by ``1 / (1 - sum w^2)``); ``ledoit-wolf`` (scikit-learn
        ``LedoitWolf``, which normalises by ``n_periods``).
    periods_per_year : float
        Annualisation factor (252 for daily, 52 weekly, 12 monthly; 1 leaves the
        per-period covariance).
    columns : sequence of str, optional
        Asset names, used in messages.
    name : str
        The argument's name, used in messages.

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        A column that varies only by rounding (standard deviation at most a few
        dozen machine epsilons times its root-mean-square) has exactly zero
        sample or EWMA variance and covariances.

    """
    rm = method if isinstance(method, RiskMethod) else parse_risk_method(method)
    if not (np.isfinite(periods_per_year) and periods_per_year > 0):
        raise InputError("periods_per_year must be a positive number", "periods_per_year")
    r = _check_returns(returns, columns, name)
    cov, _, exponents = _estimate(r, rm)
    with np.errstate(over="ignore"):
        cov = np.ldexp(cov, exponents[:, None] + exponents[None, :]) * periods_per_year
    if not np.isfinite(cov).all():
        raise InputError(
            f"{name} are too large: their covariance times periods_per_year overflows "
            "(returns are fractions, e.g. 0.01 for 1%)",
            name,
        )
    return cov


def cov_to_corr(cov: np.ndarray, columns: Sequence[str] | None = None,
                name: str = "returns") -> np.ndarray:
    """Correlation from a covariance matrix, exact unit diagonal."""
    d = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    zero = np.flatnonzero(d <= 1e-300)
    if zero.size:
        _zero_variance(zero[0], columns, name)
    c = cov / d[:, None] / d[None, :]
    c = np.clip(0.5 * (c + c.T), -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    return c


def _zero_variance(j: int, columns: Sequence[str] | None, name: str) -> NoReturn:
    col = columns[j] if columns else f"column {j + 1}"
    raise InputError(f"{name} {col} has zero variance; its correlation is undefined", name)


def correlation(
    returns: object,
    method: RiskMethod | str | None = None,
    columns: Sequence[str] | None = None,
    name: str = "returns",
) -> np.ndarray:
    """Correlation of returns with the estimator of :func:`covariance`.

    A column whose standard deviation is at most a few dozen machine epsilons
    times its root-mean-square (a constant column, whatever its level) has no
    correlation, for every method: an InputError names it.
    """
    rm = method if isinstance(method, RiskMethod) else parse_risk_method(method)
    r = _check_returns(returns, columns, name)
    cov, flat, _ = _estimate(r, rm)
    if flat.size:
        _zero_variance(int(flat[0]), columns, name)
    return cov_to_corr(cov, columns, name)
