"""Benchmark ``xlfuncs backtest`` end to end on a daily CRSP-like file.

Data: a seeded synthetic daily file of ``--stocks`` stocks (default 500) over the
``--years`` years (default 20) that end with the bundled factors (2017-03), in CRSP's
long layout (``date`` as ``YYYYMMDD``, ``permno``, ``ret``, ``dlret``, ``prc``,
``shrout``, ``vol``, ``siccd``): a daily market excess return that compounds to each
month's Fama-French ``Mkt-RF`` plus noise, each stock ``rf + beta * market + noise``,
30% listing after the start and 20% delisting before the end (with a delisting
return), one row in a thousand missing.

Rows, each ``xlfuncs backtest`` run in a process of its own, as the ``xlfuncs``
command runs it (``python -m xlfuncs._launch``: the workers' fork server started
first), with the default settings (TEV 2%, 4%, 6%, sample moments, one worker
process per CPU, the bundled monthly factors), its wall time and peak memory
(``ru_maxrss`` of the child):

* ``daily``: the daily file, compounded to months by the command, ``--min-price 5``;
* ``monthly``: the same data compounded to months beforehand (plain pandas), the
  baseline of the ratio: what reading and compounding the daily file costs.

Run from the repository root (CPU-heavy: a few minutes)::

    .venv/bin/python bench/daily.py [--stocks 500] [--years 20] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from xlfuncs.data.market import french_factors


def daily_file(path: Path, n: int, years: int, seed: int = 18) -> int:
    """Write the synthetic daily CRSP-like CSV; returns its number of rows."""
    rng = np.random.default_rng(seed)
    monthly = french_factors().iloc[-12 * years:]
    days = pd.bdate_range(monthly.index[0] - pd.offsets.MonthBegin(1), monthly.index[-1])
    month = days + pd.offsets.MonthEnd(0)
    per_month = pd.Series(1, index=days).groupby(month).transform("size").to_numpy()
    m = monthly.reindex(month)
    market = ((1 + m["Mkt-RF"].to_numpy()) ** (1 / per_month) - 1
              + rng.normal(0, 0.008, len(days)))
    rf = (1 + m["RF"].to_numpy()) ** (1 / per_month) - 1
    T = len(days)
    first = np.where(rng.random(n) < 0.3, rng.integers(1, T // 2, n), 0)
    last = np.where(rng.random(n) < 0.2, rng.integers(T // 2, T - 1, n), T - 1)
    beta = rng.normal(1.0, 0.3, n)
    ret = rf[:, None] + market[:, None] * beta + rng.normal(0, 0.018, (T, n))
    ret = np.maximum(ret, -0.5)
    price = rng.uniform(2, 80, n) * np.cumprod(1 + ret, axis=0)
    t = np.arange(T)[:, None]
    alive = (t >= first) & (t <= last) & (rng.random((T, n)) > 0.001)
    rows, cols = np.nonzero(alive)
    frame = pd.DataFrame({
        "date": days.strftime("%Y%m%d").to_numpy()[rows], "permno": 10001 + cols,
        "ret": np.round(ret[rows, cols], 6), "dlret": np.nan,
        "prc": np.round(price[rows, cols], 4),
        "shrout": np.round(rng.uniform(5e3, 5e5, n))[cols],
        "vol": rng.integers(1_000, 2_000_000, len(rows)),
        "siccd": rng.choice([1311, 2834, 3674, 4911, 5411, 6021, 7372], n)[cols]})
    delisted = np.flatnonzero(last < T - 1)
    at = frame.index[np.isin(frame["permno"], 10001 + delisted)
                     & (frame["date"].to_numpy() == days.strftime("%Y%m%d").to_numpy()[
                         last[frame["permno"] - 10001]])]
    frame.loc[at, "dlret"] = np.round(rng.normal(-0.1, 0.1, len(at)).clip(-0.9, 0.5), 4)
    frame.to_csv(path, index=False)
    return len(frame)


def monthly_file(daily: Path, path: Path) -> int:
    """The same data compounded to months with plain pandas, as a monthly CRSP file."""
    d = pd.read_csv(daily, dtype={"date": str})
    r = np.where(d["dlret"].notna(), (1 + d["ret"]) * (1 + d["dlret"]) - 1, d["ret"])
    month = pd.to_datetime(d["date"], format="%Y%m%d") + pd.offsets.MonthEnd(0)
    keys = [d["permno"], month]
    g = d.groupby(keys)
    out = pd.DataFrame({"ret": (1 + pd.Series(r)).groupby(keys).prod(min_count=1) - 1,
                        "prc": g["prc"].last(), "shrout": g["shrout"].last(),
                        "siccd": g["siccd"].last()})
    out["vol"] = (d["prc"].abs() * d["vol"]).groupby(keys).sum() / out["prc"].abs()
    out = out.reset_index(names=["permno", "date"])
    out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False)
    return len(out)


def timed(args: list[str]) -> tuple[float, float, str]:
    """Run ``xlfuncs backtest ARGS`` in a child; its seconds, peak MB and last lines."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "xlfuncs._launch", "backtest", "--quiet", *args],
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode:
        raise SystemExit(done.stderr)
    # ru_maxrss of the children is the largest child so far: valid for the first run,
    # and for a later one only when it is larger (say so rather than guess)
    mb = peak / 1024 if peak > before else float("nan")
    return seconds, mb, done.stdout


def main() -> None:
    """Generate the files, time both runs, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, default=500)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--keep", help="folder for the generated files (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="xlfuncs-daily-"))
    folder.mkdir(parents=True, exist_ok=True)
    daily, monthly = folder / "crsp_daily.csv", folder / "crsp_monthly.csv"
    t0 = time.perf_counter()
    n_daily = daily_file(daily, args.stocks, args.years)
    n_monthly = monthly_file(daily, monthly)
    print(f"generated {n_daily} daily rows ({daily.stat().st_size / 1e6:.0f} MB) and "
          f"{n_monthly} monthly rows in {time.perf_counter() - t0:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    runs = [("daily", ["--data", str(daily), "--min-price", "5"]),
            ("monthly", ["--data", str(monthly), "--min-price", "5"])]
    rows = []
    for name, argv in runs:
        seconds, mb, out = timed(argv)
        engine = next((line for line in out.splitlines() if " periods in " in line), "")
        rows.append((name, seconds, mb, engine.strip()))
    base = rows[-1][1]
    print(f"\n{'run':<8} {'seconds':>8} {'ratio':>6} {'peak MB':>8}  engine")
    for name, seconds, mb, engine in rows:
        print(f"{name:<8} {seconds:8.1f} {seconds / base:6.2f} {mb:8.0f}  {engine}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
