"""Regime-aware loadings for the backtest (SPEC 3.3): a mixture of per-state WLS betas.

With ``betas = regime`` the loadings at a rebalance date ``t`` are
``F = sum_s pi_s F_s``, where ``F_s`` is each asset's weighted least-squares
regression of its excess returns on ``[1, f]`` over the regression window
(``beta_window`` rows up to ``t``), each row weighted by its **filtered**
probability of state *s*, ``P(s_u | f_1..f_u)``, and ``pi = (P^h)' gamma_t`` is
the forecast the factor moments use. Both come from the hidden Markov model
fitted at ``t`` on the factor rows up to ``t`` (the fit the regime factor
moments already made), so nothing after ``t`` enters.

Residual variances are mixed the same way, ``e_i = sum_s pi_s e_{s,i}``, with
``e_{s,i}`` the weighted residual variance of the state-*s* fit around its own
betas (:func:`~xlfuncs.core._regime.regime_betas`): the specific risk the
optimiser sees is that of the states it expects, as the factor covariance is.
(The spread of the betas across states is not added to the specific risk.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from xlfuncs.core._factor import FactorModel, FactorMoments
from xlfuncs.core._regime import regime_betas
from xlfuncs.errors import ConvergenceError, InputError

__all__ = ["LOADING_METHODS", "regime_loadings"]

LOADING_METHODS = ("ols", "regime")


def regime_loadings(model: FactorModel, excess: pd.DataFrame, factors: pd.DataFrame,
                    moments: FactorMoments, window: int | None) -> FactorModel:
    """The OLS ``model`` with its loadings and residual variances made regime-aware.

    Parameters
    ----------
    model : FactorModel
        The OLS fit on the same window (it chose the assets with enough returns).
    excess : DataFrame of shape (T, n_all)
        Excess returns per period, rows up to the rebalance date; the model's
        assets among its columns.
    factors : DataFrame of shape (T, k)
        The factor rows the regime model was fitted on (the same ``T`` rows).
    moments : FactorMoments
        Regime factor moments of the date: ``regime`` (the fit) and ``probs`` (``pi``).
    window : int or None
        The regression window, the last ``window`` rows; None for all.

    Returns
    -------
    FactorModel
        Same assets and factors; ``alpha``, ``betas`` and ``resid_var`` the
        ``pi``-weighted mixtures.

    """
    fit, pi = moments.regime, moments.probs
    if fit is None or pi is None:
        raise InputError("betas regime needs model regime", "betas")
    if fit.filtered.shape[0] != len(factors) or len(excess) != len(factors):
        raise InputError(f"the regime model was fitted on {fit.filtered.shape[0]} rows, the "
                         f"regression has {len(excess)}", "betas")
    rows = slice(0 if window is None else max(0, len(factors) - window), len(factors))
    y = excess[list(model.assets)].iloc[rows]
    got = regime_betas(y, factors.iloc[rows], fit.filtered[rows], pi)
    resid = got.probs @ got.state_resid_var
    if not (np.isfinite(got.loadings).all() and np.isfinite(resid).all()):
        bad = model.assets[int(np.flatnonzero(~np.isfinite(resid)
                                              | ~np.isfinite(got.loadings).all(axis=0))[0])]
        raise ConvergenceError(f"betas regime: no per-state fit for {bad}", "betas")
    return replace(model, alpha=got.alpha, betas=got.betas, resid_var=resid)
