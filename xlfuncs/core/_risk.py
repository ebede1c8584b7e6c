"""Risk estimates from returns: sample, EWMA and Ledoit-Wolf covariance (SPEC 3.3)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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


def parse_risk_method(text: str | None, name: str = "method") -> RiskMethod:
    """Read ``sample``, ``ewma``, ``ewma:30`` (half-life in periods) or ``ledoit-wolf``."""
    if text is None or not str(text).strip():
        return RiskMethod()
    raw = str(text).strip().lower()
    m = re.fullmatch(r"ewma\s*[:=\s]\s*([0-9.]+)", raw)
    if m:
        try:
            halflife = float(m.group(1))
        except ValueError:
            halflife = -1.0
        if not halflife > 0:
            raise InputError(f"{name} ewma half-life must be a positive number of periods", name)
        return RiskMethod("ewma", halflife)
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
        ``sample`` (ddof = 1); ``ewma`` with a half-life in periods (weights
        ``0.5 ** (age / halflife)``, weighted mean removed, bias-corrected by
        ``1 / (1 - sum w^2)``); ``ledoit-wolf`` (scikit-learn ``LedoitWolf``,
        which normalises by ``n_periods``).
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

    """
    rm = method if isinstance(method, RiskMethod) else parse_risk_method(method)
    if not (np.isfinite(periods_per_year) and periods_per_year > 0):
        raise InputError("periods_per_year must be a positive number", "periods_per_year")
    r = _check_returns(returns, columns, name)
    if rm.name == "sample":
        cov = np.cov(r, rowvar=False, ddof=1)
    elif rm.name == "ewma":
        w = _ewma_weights(r.shape[0], rm.halflife or DEFAULT_HALFLIFE)
        centred = r - w @ r
        cov = (centred * w[:, None]).T @ centred / (1.0 - float(w @ w))
    else:
        from sklearn.covariance import LedoitWolf

        cov = LedoitWolf(assume_centered=False).fit(r).covariance_
    cov = np.atleast_2d(cov) * periods_per_year
    return 0.5 * (cov + cov.T)


def cov_to_corr(cov: np.ndarray, columns: Sequence[str] | None = None,
                name: str = "returns") -> np.ndarray:
    """Correlation from a covariance matrix, exact unit diagonal."""
    d = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    zero = np.flatnonzero(d <= 1e-300)
    if zero.size:
        col = columns[zero[0]] if columns else f"column {zero[0] + 1}"
        raise InputError(f"{name} {col} has zero variance; its correlation is undefined", name)
    c = cov / d[:, None] / d[None, :]
    c = np.clip(0.5 * (c + c.T), -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    return c


def correlation(
    returns: object,
    method: RiskMethod | str | None = None,
    columns: Sequence[str] | None = None,
    name: str = "returns",
) -> np.ndarray:
    """Correlation of returns with the estimator of :func:`covariance`."""
    return cov_to_corr(covariance(returns, method, 1.0, columns, name), columns, name)
