"""The backtest's model settings: the factor set, regime-aware betas, the benchmark's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xlfuncs.core import BacktestConfig, run_backtest
from xlfuncs.data.market import load_market
from xlfuncs.report import write_results

END = "1996-12-31"


@pytest.fixture(scope="module")
def data():
    return load_market("sample:30", end=END)


def small(**kw) -> BacktestConfig:
    base = dict(tev=(0.03,), workers=1, min_history=36, min_obs=24, beta_window=36, end=END)
    base.update(kw)
    return BacktestConfig(**base)


# --------------------------------------------------------------------------- benchmark row


def test_the_benchmark_row_equals_its_statistics_from_returns_csv(data, tmp_path):
    result = run_backtest(data, small(tev=(0.02, 0.05)))
    write_results(result, tmp_path)
    stats = pd.read_csv(tmp_path / "stats.csv").set_index("strategy")
    returns = pd.read_csv(tmp_path / "returns.csv", index_col="date")
    assert list(stats.index) == ["benchmark", "tev=0.02", "tev=0.05"]
    r, rf = returns["benchmark"].to_numpy(), returns["rf"].to_numpy()
    a = 12.0
    wealth = np.cumprod(1 + r)
    drawdown = wealth / np.maximum.accumulate(np.maximum(wealth, 1.0)) - 1
    row = stats.loc["benchmark"]
    assert row["ann_return"] == pytest.approx(wealth[-1] ** (a / len(r)) - 1, rel=1e-12)
    assert row["ann_volatility"] == pytest.approx(np.std(r, ddof=1) * np.sqrt(a), rel=1e-12)
    assert row["sharpe"] == pytest.approx(np.mean(r - rf) / np.std(r - rf, ddof=1)
                                          * np.sqrt(a), rel=1e-12)
    assert row["max_drawdown"] == pytest.approx(min(drawdown.min(), 0.0), rel=1e-12)
    # against itself the active figures mean nothing, and it does not trade: blank
    assert row[["tracking_error", "information_ratio", "turnover", "avg_holdings",
                "hit_rate", "ir_per_period"]].isna().all()
    # the strategies' rows are the result's own statistics
    pd.testing.assert_frame_equal(stats.iloc[1:], result.stats, check_names=False,
                                  check_exact=False, rtol=1e-12)
