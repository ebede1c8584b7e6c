"""The mathematics of xlfuncs: pure numpy/scipy/pandas/cvxpy, no xlwings, no requests."""

from xlfuncs.core._beta import (
    BETA_METHODS,
    HEDGE_TICKER,
    BetaNeutral,
    beta_neutral,
    etf_betas,
    portfolio_beta,
)
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
    "BETA_METHODS",
    "HEDGE_TICKER",
    "RISK_METHODS",
    "BetaNeutral",
    "ImpliedCorrelation",
    "Labelled",
    "RiskMethod",
    "align",
    "align_all",
    "average_implied_correlation",
    "beta_neutral",
    "correlation",
    "cov_to_corr",
    "covariance",
    "etf_betas",
    "implied_correlation",
    "index_vol",
    "index_vol_range",
    "normalise_ticker",
    "parse_risk_method",
    "portfolio_beta",
    "simple_returns",
    "validate_correlation",
]
