"""The mathematics of xlfuncs: pure numpy/scipy/pandas/cvxpy, no xlwings, no requests."""

from xlfuncs.core._implied import (
    ImpliedCorrelation,
    average_implied_correlation,
    implied_correlation,
    index_vol,
    index_vol_range,
    validate_correlation,
)
from xlfuncs.core._labels import Labelled, align, align_all
from xlfuncs.core._risk import (
    RISK_METHODS,
    RiskMethod,
    correlation,
    cov_to_corr,
    covariance,
    parse_risk_method,
    simple_returns,
)
from xlfuncs.core._tickers import normalise_ticker

__all__ = [
    "RISK_METHODS",
    "ImpliedCorrelation",
    "Labelled",
    "RiskMethod",
    "align",
    "align_all",
    "average_implied_correlation",
    "correlation",
    "cov_to_corr",
    "covariance",
    "implied_correlation",
    "index_vol",
    "index_vol_range",
    "normalise_ticker",
    "parse_risk_method",
    "simple_returns",
    "validate_correlation",
]
