"""An independent numpy factor model at one date: what the backtest's estimate must equal.

Assets tradable at the date (a return and a cap above 0 that date, ``min_obs``
returns in the window), OLS of excess returns on ``[1, factors]`` per asset over the
last ``window`` rows, sample factor moments on every row up to the date, and the
cap-weighted benchmark over those assets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def model_at(data, date, window: int = 60, min_obs: int = 36):
    """Assets, loadings (constant first, m x n), factor covariance (zero first row),
    residual variances, factor means (1 first) and the cap-weighted benchmark."""
    ret, fac = data.returns, data.factors
    excess = ret.sub(data.rf, axis=0)
    i = ret.index.get_loc(pd.Timestamp(date))
    rows = slice(max(0, i - window + 1), i + 1)
    y, x = excess.iloc[rows], fac.iloc[rows].to_numpy()
    ok = (y.notna().sum() >= min_obs) & ret.iloc[i].notna() & (data.caps.iloc[i] > 0)
    assets = list(ret.columns[ok.to_numpy()])
    k = fac.shape[1]
    loadings, resid = [], []
    for asset in assets:
        m = y[asset].notna().to_numpy()
        z = np.column_stack([np.ones(m.sum()), x[m]])
        coef, *_ = np.linalg.lstsq(z, y[asset].to_numpy()[m], rcond=None)
        r = y[asset].to_numpy()[m] - z @ coef
        loadings.append(coef)
        resid.append(r @ r / (m.sum() - k - 1))
    sigma = np.zeros((k + 1, k + 1))
    sigma[1:, 1:] = np.cov(fac.iloc[:i + 1].to_numpy(), rowvar=False, ddof=1)
    mu = np.r_[1.0, fac.iloc[:i + 1].mean().to_numpy()]
    caps = data.caps.iloc[i][assets].to_numpy()
    return assets, np.array(loadings).T, sigma, np.array(resid), mu, caps / caps.sum()
