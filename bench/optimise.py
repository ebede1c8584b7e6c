"""Benchmark the TEV-cap optimiser: compiled-once re-solves vs building the problem every date.

The problem (SPEC 3.4, TEV cap) is

    maximise mu_f' f  subject to  f = F (w - b),  f' Sigma_f f + sum e (w - b)^2 <= TEV^2 / 12,
                                  sum w = 1,  w >= 0,  w = 0 outside the tradable mask

Three ways to solve a sequence of dates, on the same seeded synthetic inputs
(a new perturbation of the loadings and a few assets leaving the universe on
every date):

* ``warm``: :class:`xlfuncs.core.ActiveOptimiser`, built once with cvxpy
  Parameters (DPP): each date only fills the parameters and re-solves.
* ``fresh``: the research's pattern, the same factor-form problem built from
  constants in cvxpy and compiled on every date.
* ``n x n``: the covariance form ``(w - b)' (F' Sigma_f F + diag(e)) (w - b)``,
  built every date (only up to n = 1000: it is dense).

All use Clarabel. Times are wall-clock seconds per date (median over the
dates, best in brackets); the first solve of ``warm`` (cvxpy's compile) is
shown separately. ``|dTE|`` is the largest difference in annualised tracking
error between ``warm`` and ``fresh`` over the dates.

Run from the repository root::

    .venv/bin/python bench/optimise.py [--dates 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from importlib.metadata import version

import cvxpy as cp
import numpy as np
from threadpoolctl import threadpool_limits

from xlfuncs.core._optimise import SOLVER_OPTIONS, ActiveOptimiser, OptimiserSpec

SEED = 20260301
SIZES = (500, 1000, 3000)
LOADINGS = (6, 11)
DENSE_MAX_N = 1000
TEV = 0.05
PPY = 12

# Target, as set in the issue before the benchmark was written: do not tune it.
TARGET_N, TARGET_M, TARGET_SECONDS = 3000, 10, 0.3


@dataclass(frozen=True)
class Date:
    """One date's inputs (per-period moments)."""

    loadings: np.ndarray  # (m, n)
    factor_cov: np.ndarray  # (m, m)
    resid_var: np.ndarray  # (n,)
    factor_mean: np.ndarray  # (m,)
    benchmark: np.ndarray  # (n,) cap weights over the tradable assets
    tradable: np.ndarray  # (n,) bool


def dates(n: int, m: int, count: int, seed: int = SEED) -> list[Date]:
    """``count`` seeded dates: loadings drift, 1% of the universe changes each date."""
    rng = np.random.default_rng(seed + 7 * n + m)
    k = m - 1
    alpha = rng.normal(0.0, 0.003, n)
    betas = np.vstack([rng.normal(1.0, 0.3, (1, n)), rng.normal(0.0, 0.5, (k - 1, n))])
    a = rng.normal(0.0, 0.02, (k, k))
    sf = np.zeros((m, m))
    sf[1:, 1:] = a @ a.T / k + np.diag(rng.uniform(1e-4, 4e-4, k))
    mu = np.r_[1.0, rng.normal(0.004, 0.003, k)]
    e = rng.uniform(0.001, 0.01, n)
    caps = rng.lognormal(0.0, 1.5, n)
    tradable = rng.random(n) > 0.05
    out = []
    for _ in range(count):
        noise = rng.normal(0.0, 0.02, (m, n)) * np.r_[0.05, [1.0] * k][:, None]
        f_mat = np.vstack([alpha, betas]) + noise
        flip = rng.choice(n, max(n // 100, 1), replace=False)
        tradable = tradable.copy()
        tradable[flip] = ~tradable[flip]
        b = np.where(tradable, caps, 0.0)
        out.append(Date(f_mat, sf, e, mu, b / b.sum(), tradable))
    return out


def _root(sf: np.ndarray) -> np.ndarray:
    lam, vec = np.linalg.eigh(sf)
    return np.sqrt(np.clip(lam, 0.0, None))[:, None] * vec.T


def solve_fresh(d: Date) -> np.ndarray:
    """The research's pattern: the factor form from constants, compiled for this date."""
    n = len(d.benchmark)
    w = cp.Variable(n)
    f = cp.Variable(d.loadings.shape[0])
    root = _root(d.factor_cov)
    se = np.sqrt(d.resid_var)
    cons = [f == d.loadings @ (w - d.benchmark), cp.sum(w) == 1, w >= 0,
            w[np.flatnonzero(~d.tradable)] == 0,
            cp.norm(cp.hstack([root @ f, cp.multiply(se, w - d.benchmark)]), 2)
            <= TEV / np.sqrt(PPY)]
    prob = cp.Problem(cp.Maximize(d.factor_mean @ f), cons)
    prob.solve(solver=cp.CLARABEL, **SOLVER_OPTIONS)
    return np.asarray(w.value)


def solve_dense(d: Date) -> np.ndarray:
    """The n x n covariance form, built for this date."""
    n = len(d.benchmark)
    s = d.loadings.T @ d.factor_cov @ d.loadings + np.diag(d.resid_var)
    a = d.loadings.T @ d.factor_mean
    w = cp.Variable(n)
    cons = [cp.sum(w) == 1, w >= 0, w[np.flatnonzero(~d.tradable)] == 0,
            cp.quad_form(w - d.benchmark, cp.psd_wrap(s)) <= TEV**2 / PPY]
    prob = cp.Problem(cp.Maximize(a @ (w - d.benchmark)), cons)
    prob.solve(solver=cp.CLARABEL, **SOLVER_OPTIONS)
    return np.asarray(w.value)


def te(w: np.ndarray, d: Date) -> float:
    """Annualised tracking error in numpy."""
    x = w - d.benchmark
    f = d.loadings @ x
    return float(np.sqrt((f @ d.factor_cov @ f + d.resid_var @ (x * x)) * PPY))


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def run(n: int, m: int, count: int, dense: bool) -> dict[str, object]:
    """Time the three ways over ``count`` dates (plus one compile date for ``warm``)."""
    ds = dates(n, m, count + 1)
    opt = ActiveOptimiser(OptimiserSpec("tev", tev=TEV, periods_per_year=PPY), n, m)

    def warm(d: Date):
        return opt.solve(d.loadings, d.factor_cov, d.resid_var, d.factor_mean,
                         benchmark=d.benchmark, tradable=d.tradable)

    t_compile, _ = timed(warm, ds[0])
    t_warm, t_fresh, t_dense, dte = [], [], [], 0.0
    for d in ds[1:]:
        t, res = timed(warm, d)
        if not res.ok:
            raise SystemExit(f"warm solve failed at n={n}, m={m}: {res.reason}")
        t_warm.append(t)
        t, w_fresh = timed(solve_fresh, d)
        t_fresh.append(t)
        dte = max(dte, abs(res.tracking_error - te(w_fresh, d)))
        if dense and len(t_dense) < 2:
            t, _ = timed(solve_dense, d)
            t_dense.append(t)
    return {"compile": t_compile, "warm": t_warm, "fresh": t_fresh, "dense": t_dense,
            "dte": dte}


def fmt(ts: list[float]) -> str:
    if not ts:
        return f"{'-':>15}"
    return f"{statistics.median(ts):>7.3f} ({min(ts):5.3f})"


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit code 1 when the n = 3000, m = 10 target is missed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", type=int, default=5, help="dates timed per size (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"numpy {np.__version__}, cvxpy {version('cvxpy')}, clarabel {version('clarabel')}, "
          f"BLAS threads {args.threads}, {args.dates} dates, TEV {TEV} (annual), monthly moments")
    head = (f"{'n':>5} {'m':>3}  {'compile s':>9}  {'warm s (best)':>15}  "
            f"{'fresh s (best)':>15}  {'fresh/warm':>10}  {'n x n s (best)':>15}  "
            f"{'nxn/warm':>8}  {'|dTE|':>8}")
    print(head)
    print("-" * len(head))
    target = None
    with threadpool_limits(limits=args.threads, user_api="blas"):
        rows = [(n, m) for n in sizes for m in LOADINGS]
        if TARGET_N in sizes:
            rows.append((TARGET_N, TARGET_M))
        for n, m in rows:
            r = run(n, m, args.dates, dense=n <= DENSE_MAX_N)
            warm = statistics.median(r["warm"])
            fresh = statistics.median(r["fresh"])
            dense = f"{statistics.median(r['dense']) / warm:>7.0f}x" if r["dense"] else (
                f"{'-':>8}")
            print(f"{n:>5} {m:>3}  {r['compile']:>9.2f}  {fmt(r['warm'])}  {fmt(r['fresh'])}  "
                  f"{fresh / warm:>9.1f}x  {fmt(r['dense'])}  {dense}  {r['dte']:>8.1e}")
            if (n, m) == (TARGET_N, TARGET_M):
                target = (warm, min(r["warm"]))
    if target is not None:
        ok = target[0] < TARGET_SECONDS
        print(f"\ntarget: one TEV solve at n = {TARGET_N}, m = {TARGET_M} under "
              f"{TARGET_SECONDS} s (warm re-solve, median): {target[0]:.3f} s "
              f"(best {target[1]:.3f} s)  {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
