"""Benchmark the core's HMM EM against hmmlearn on the bundled monthly factors.

Both fit a full-covariance Gaussian HMM with the same covariance floor and
tolerance to the bundled Fama-French factors (Mkt-RF, SMB, HML, Mom), on the
full sample and on the first 480 rows (what an expanding-window backtest sees
mid-way), for 2 and 3 states:

* ``same start``: EM only, both from one and the same starting point (one
  hmmlearn EM step from its k-means start): equal iteration counts, so the
  ratio is the cost of one EM iteration.
* ``cold``: what a user call costs, k-means initialisation included:
  ``fit_regime(..., n_init=1)`` (hmmlearn's own initialisation, then our EM)
  against ``GaussianHMM.fit``; and ``fit_regime`` with its default starts.

Times are wall-clock seconds, best of ``--repeat`` runs, BLAS on one thread.
``ratio`` is ours / hmmlearn's (below 1: ours is faster). ``|dlogL|`` is the
relative difference of the final log-likelihoods.

Run from the repository root (hmmlearn is in the test extra, below Python 3.14)::

    .venv/bin/python bench/regime.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from hmmlearn.hmm import GaussianHMM
from threadpoolctl import threadpool_limits

from xlfuncs.core import _hmm
from xlfuncs.core._regime import DEFAULT_STARTS, fit_regime
from xlfuncs.data.samples import sample_path


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def reference(s: int, k: int, floor: float, **kw) -> GaussianHMM:
    model = GaussianHMM(n_components=s, covariance_type="full", min_covar=floor,
                        covars_prior=floor * np.eye(k), covars_weight=1, tol=1e-4, **kw)
    model.startprob_ = np.full(s, 1 / s)
    model.transmat_ = np.full((s, s), 0.1 / (s - 1)) + np.eye(s) * (0.9 - 0.1 / (s - 1))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frame = pd.read_csv(sample_path("ff_factors_monthly.csv"))
    full = frame[["Mkt-RF", "SMB", "HML", "Mom"]].to_numpy(dtype=float)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"best of {args.repeat}, one BLAS thread")
    header = (f"{'rows':>5} {'S':>2} {'case':<22} {'ours s':>8} {'its':>4} "
              f"{'hmmlearn s':>10} {'its':>4} {'ratio':>6} {'|dlogL|':>8}")
    print(header)
    print("-" * len(header))
    with threadpool_limits(1):
        for rows in (480, len(full)):
            x = full[:rows]
            k = x.shape[1]
            floor = 1e-3 * x.var(axis=0, ddof=1).mean()
            for s in (2, 3):
                one = reference(s, k, floor, random_state=0, n_iter=1, init_params="mc")
                one.fit(x)
                p = _hmm.HmmParams(one.startprob_, one.transmat_, one.means_, one.covars_)

                def theirs_same(p=p, s=s, floor=floor, x=x, k=k):
                    m = reference(s, k, floor, n_iter=500, init_params="")
                    m.startprob_, m.transmat_ = p.startprob, p.transmat
                    m.means_, m.covars_ = p.means, p.covs
                    return m.fit(x)

                t_ours, res = best_of(args.repeat, lambda p=p, x=x, floor=floor:
                                      _hmm.em(x, p, floor, 500, 1e-4))
                t_them, model = best_of(args.repeat, theirs_same)
                d = abs(res.history[-1] - model.monitor_.history[-1]) / abs(res.history[-1])
                print(f"{rows:>5} {s:>2} {'same start, EM only':<22} {t_ours:>8.3f} "
                      f"{res.n_iter:>4} {t_them:>10.3f} {model.monitor_.iter:>4} "
                      f"{t_ours / t_them:>6.2f} {d:>8.1e}")

                t_ours, fit = best_of(args.repeat, lambda x=x, s=s:
                                      fit_regime(x, s, seed=0, n_init=1))
                t_them, model = best_of(args.repeat, lambda x=x, s=s, floor=floor, k=k: reference(
                    s, k, floor, random_state=0, n_iter=500, init_params="mc").fit(x))
                ll_them = model.score(x)
                d = abs(fit.log_likelihood - ll_them) / abs(ll_them)
                print(f"{rows:>5} {s:>2} {'cold, 1 start':<22} {t_ours:>8.3f} {fit.n_iter:>4} "
                      f"{t_them:>10.3f} {model.monitor_.iter:>4} {t_ours / t_them:>6.2f} "
                      f"{d:>8.1e}")
                t_ours, fit = best_of(args.repeat, lambda x=x, s=s: fit_regime(x, s, seed=0))
                d = (fit.log_likelihood - ll_them) / abs(ll_them)
                print(f"{rows:>5} {s:>2} {f'cold, {DEFAULT_STARTS} starts (best)':<22} "
                      f"{t_ours:>8.3f} {fit.n_iter:>4} {t_them:>10.3f} {model.monitor_.iter:>4} "
                      f"{t_ours / t_them:>6.2f} {d:>+8.1e}")


if __name__ == "__main__":
    main()
