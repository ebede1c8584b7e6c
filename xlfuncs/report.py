"""Backtest results as files: CSV tables and PNG charts (matplotlib, no display needed).

The same files serve the command line (``xlfuncs backtest --out DIR``) and the
Backtest sheet, which shows the tables and the pictures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xlfuncs._files import atomic_write, write_csv
from xlfuncs.core import BacktestResult, Executor

__all__ = ["CHARTS", "EXPOSURE_CHART", "GAMMA_CHART", "STATS_COLUMNS", "STATS_HEADERS",
           "conventions_table", "crisis_format", "crisis_table", "exposure_figure",
           "save_charts", "save_exposure_chart", "stat_format", "stats_table",
           "write_results"]

STATS_COLUMNS = ("ann_return", "ann_volatility", "sharpe", "tracking_error", "information_ratio",
                 "max_drawdown", "turnover", "avg_holdings", "hit_rate", "ir_per_period")
# Number formats of the statistics in a sheet: ratios and counts as numbers,
# every other statistic a percentage.
STATS_FORMATS = {"strategy": "General", "sharpe": "0.00", "information_ratio": "0.00",
                 "avg_holdings": "0.0", "hit_rate": "0.0%", "ir_per_period": "0.000"}
#: What a sheet shows above each statistics column (the CSV files keep the short names).
STATS_HEADERS = {"strategy": "Strategy", "ann_return": "Annual return",
                 "ann_volatility": "Annual volatility", "sharpe": "Sharpe ratio",
                 "tracking_error": "Tracking error", "information_ratio": "Information ratio",
                 "max_drawdown": "Max drawdown", "turnover": "Turnover",
                 "avg_holdings": "Holdings (average)", "hit_rate": "Hit rate",
                 "ir_per_period": "IR per period"}
CHARTS = ("cumulative.png", "ir_vs_tev.png", "rolling_te.png")
GAMMA_CHART = "gamma.png"  # mode anchor: the gamma chosen at each rebalance
ROLLING = 12  # periods in the rolling tracking error


def stat_format(column: str) -> str:
    """The number format a statistics column shows in Excel."""
    return STATS_FORMATS.get(column, "0.00%")


def crisis_format(column: str) -> str:
    """The number format a column of the crisis and regime table shows in Excel."""
    fixed = {"start": "yyyy-mm-dd", "end": "yyyy-mm-dd", "window": "General", "regime": "General",
             "strategy": "General", "periods": "0"}
    return fixed.get(column, stat_format(column))


def conventions_table() -> pd.DataFrame:
    """``statistic, convention``: how each column of the statistics is defined."""
    from xlfuncs.core._metrics import CONVENTIONS

    return pd.DataFrame({"statistic": list(STATS_COLUMNS),
                         "convention": [CONVENTIONS[c] for c in STATS_COLUMNS]})


def stats_table(result: BacktestResult) -> pd.DataFrame:
    """``strategy`` plus the backtest statistics: the benchmark's own row, then one per strategy.

    The benchmark row has its return, volatility, Sharpe ratio and drawdown;
    its active and trading statistics are blank.
    """
    stats = result.stats.reindex(columns=list(STATS_COLUMNS))
    if len(result.benchmark_stats):
        bench = result.benchmark_stats.reindex(list(STATS_COLUMNS)).to_frame().T
        stats = pd.concat([bench, stats])
    stats.index.name = "strategy"
    return stats.reset_index()


def crisis_table(result: BacktestResult, factors: pd.DataFrame | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """Statistics inside the crisis windows, and per regime when ``factors`` are given.

    The regimes come from a hidden Markov model of ``factors`` fitted on an
    expanding window, refitted every
    :data:`~xlfuncs.core._attribution.REGIME_REFIT` periods (``n_states`` and
    ``seed`` of the run's settings), each period classified by the filtered
    probability at its decision date under the fit made by then
    (:func:`~xlfuncs.core._attribution.regime_stats`).

    Returns
    -------
    windows : DataFrame
    regimes : DataFrame or None
        None without ``factors``, or when the model cannot be fitted.
    why : str
        Why there are no regime statistics (``""`` when there are, or no factors).

    """
    return _crisis(result.returns, result.config, result.periods_per_year, factors)


def _crisis(returns: pd.DataFrame, cfg: Any, periods_per_year: float,
            factors: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """:func:`crisis_table` from what it reads of the result."""
    from xlfuncs.core._attribution import regime_stats, window_stats
    from xlfuncs.errors import XlfuncsError

    windows = window_stats(returns, cfg.windows, periods_per_year)
    regimes, why = None, ""
    if factors is not None:
        try:
            regimes = regime_stats(returns, factors, periods_per_year, cfg.n_states, cfg.seed)
        except XlfuncsError as exc:
            why = f"no regime statistics: {exc}"
    return windows, regimes, why


def _figure(panels: int = 1):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, panels, figsize=(8, 4.5), dpi=100)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> Path:
    """Write the figure as PNG (no software stamp, so reruns give the same bytes) and close it."""
    atomic_write(path, lambda p: fig.savefig(p, format="png", bbox_inches="tight",
                                             metadata={"Software": None}))
    plt.close(fig)
    return path


#: The IR chart's title for each x axis of :func:`chart_budgets`.
_TE_TARGET = "TE target (annual)"  # the axis labels
_TEV_BUDGET = "TEV budget (annual)"
_GAMMA = "risk aversion gamma"
_SWEPT = {_TE_TARGET: "the TE target", _TEV_BUDGET: "the TEV budget",
          _GAMMA: "risk aversion gamma"}


def chart_budgets(result: BacktestResult) -> tuple[str, list[float]]:
    """The x axis of the IR chart: its label, and each statistics row's TEV budget or gamma.

    By strategy name, as the run's settings define them: a strategy that never
    traded has no statistics row, and a gamma sweep ignores the TEV list.
    """
    anchors = result.config.anchors()
    if anchors:
        return _TE_TARGET, [anchors[name] for name in result.stats.index]
    specs = result.config.specs(result.periods_per_year)
    uses_tev = bool(result.config.tev) and result.config.mode != "gamma"
    values = [specs[name].tev if uses_tev else specs[name].gamma for name in result.stats.index]
    return (_TEV_BUDGET if uses_tev else _GAMMA), values


def save_charts(result: BacktestResult, out: Path) -> list[Path]:
    """Write the charts of :func:`chart_figures` as PNG files into ``out``."""
    import matplotlib.pyplot as plt

    return [_save(plt, fig, out / name) for name, fig in chart_figures(result)]


def chart_figures(result: BacktestResult) -> list[tuple[str, Any]]:
    """Cumulative log return against the benchmark, IR against the TEV budget, rolling TE.

    A gamma or anchor sweep's IR chart has a second panel, the IR against each
    strategy's realised tracking error; an anchored run adds the gamma path
    (:data:`GAMMA_CHART`).

    Returns
    -------
    list of (str, matplotlib.figure.Figure)
        Each chart's file name (:data:`CHARTS`, then :data:`GAMMA_CHART`) and its
        figure, in memory (xlwings Lite puts figures on the sheet without a file);
        the caller closes them.

    """
    r = result.returns
    strategies = result.strategies
    figures = []

    _, fig, ax = _figure()
    for name in ("benchmark", *strategies):
        # a strategy's line starts at its first return (a gap is not a zero return)
        ax.plot(r.index, np.log1p(r[name]).cumsum(), label=name,
                linewidth=2.2 if name == "benchmark" else 1.2,
                color="black" if name == "benchmark" else None)
    ax.set_title("Cumulative log return")
    ax.set_ylabel("log(wealth)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figures.append((CHARTS[0], fig))

    stats = result.stats
    label, budget = chart_budgets(result)
    realised = result.config.mode in ("gamma", "anchor")  # TE is an outcome: plot it too
    _, fig, axes = _figure(2 if realised else 1)
    ax = axes[0] if realised else axes
    ir = stats["information_ratio"].to_numpy()
    ax.plot(budget, ir, marker="o")
    ax.set_xlabel(label)
    ax.set_ylabel("information ratio (annualised)")
    ax.set_title(f"Information ratio against {_SWEPT[label]}")
    ax.grid(alpha=0.3)
    if realised:
        other = axes[1]
        other.plot(stats["tracking_error"].to_numpy(), ir, marker="o")
        for x, y, value in zip(stats["tracking_error"], ir, budget, strict=True):
            other.annotate(f"{value:g}", (x, y), textcoords="offset points", xytext=(4, 4),
                           fontsize=7)
        other.set_xlabel("realised tracking error (annualised)")
        other.set_title("against the realised tracking error")
        other.grid(alpha=0.3)
        fig.tight_layout()
    figures.append((CHARTS[1], fig))

    _, fig, ax = _figure()
    a = r[strategies].sub(r["benchmark"], axis=0)
    rolling = a.rolling(ROLLING).std(ddof=1) * np.sqrt(result.periods_per_year)
    specs = result.config.specs(result.periods_per_year)
    anchors = result.config.anchors()
    for name in strategies:
        (line,) = ax.plot(rolling.index, rolling[name], label=name)
        budget_te = anchors.get(name, specs[name].tev if name in specs else None)
        if budget_te is not None:  # the strategy's own budget, in its colour
            ax.axhline(budget_te, color=line.get_color(), linestyle="--", linewidth=0.9)
    ax.set_title(f"Rolling {ROLLING}-period tracking error (annualised); dashed: budgets")
    ax.set_ylabel("tracking error (annualised)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figures.append((CHARTS[2], fig))
    if len(result.gamma_path):
        figures.append((GAMMA_CHART, _gamma_figure(result)))
    return figures


def _gamma_figure(result: BacktestResult) -> Any:
    """Mode anchor: the gamma chosen at each rebalance (log scale); x: the target missed."""
    _, fig, ax = _figure()
    path = result.gamma_path
    for name in result.strategies:
        rows = path[path["strategy"] == name]
        (line,) = ax.plot(rows["date"], rows["gamma"], label=name, linewidth=1.2)
        missed = rows[~rows["reached"].astype(bool)]
        if len(missed):
            ax.plot(missed["date"], missed["gamma"], linestyle="none", marker="x",
                    color=line.get_color(), label=f"{name}: target not reached")
    ax.set_yscale("log")
    ax.set_title("Risk aversion gamma at each rebalance, anchored to the TE target")
    ax.set_ylabel("gamma (log scale)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


EXPOSURE_CHART = "active_exposures.png"


def exposure_figure(result: BacktestResult) -> Any:
    """Active factor exposures at each rebalance: a colour per factor, a line style per strategy.

    Returns
    -------
    matplotlib.figure.Figure
        In memory (see :func:`chart_figures`); the caller closes it.

    """
    plt, fig, ax = _figure()
    expo = result.exposures
    factors = [c for c in expo.columns if c not in ("date", "strategy")
               and not str(c).startswith("industry: ")]
    styles = ("-", "--", ":", "-.")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, name in enumerate(result.strategies):
        rows = expo[expo["strategy"] == name] if len(expo) else expo
        for k, factor in enumerate(factors):
            ax.plot(rows["date"], rows[factor], linestyle=styles[j % len(styles)],
                    color=colours[k % len(colours)], linewidth=1.0, label=f"{name}: {factor}")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_title("Active factor exposures at each rebalance")
    ax.set_ylabel("active beta")
    if factors:
        ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def save_exposure_chart(result: BacktestResult, out: Path) -> Path:
    """Write :func:`exposure_figure` as ``active_exposures.png`` into ``out``."""
    import matplotlib.pyplot as plt

    return _save(plt, exposure_figure(result), out / EXPOSURE_CHART)


def write_results(result: BacktestResult, out: str | Path,
                  factors: pd.DataFrame | None = None,
                  executor: Executor | None = None) -> list[Path]:
    """Write the result files and charts into the folder ``out``.

    ``returns.csv``, ``weights.csv``, ``stats.csv`` with ``conventions.csv``,
    ``windows.csv`` (the statistics inside each crisis window the data reach),
    ``regimes.csv`` (per regime of the ``factors``, when given), ``exposures.csv``
    and ``risk.csv`` (active exposures and the tracking error's split at each
    rebalance) with ``active_exposures.png``,
    ``notes.txt`` (the data and what its loader assumed), the charts,
    ``failures.csv``, ``gamma.csv`` (mode anchor: the gamma and ex-ante
    tracking error at each rebalance) and ``filters.csv`` (``date, filter,
    removed``: the stocks each liquidity filter removed at each rebalance).
    Every file is written to a temporary name and renamed when complete; a
    text cell of a CSV file never runs as a formula
    (:func:`~xlfuncs._files.write_csv`). ``failures.csv`` is written only when
    a date failed (an old one is removed); ``filters.csv`` only when a filter
    is set.

    With an ``executor`` that has local worker processes (the backtest's), the
    crisis and regime statistics (the regime model's fits) are made in another
    process while the other files are written and the charts drawn.
    """
    out = Path(out)
    crisis = (result.returns, result.config, result.periods_per_year, factors)
    if getattr(executor, "other_processes", 0):  # local processes: the files land here
        # the statistics' process is sent what they read (the returns), not the weights
        (windows, regimes, why), written = executor.map(
            _call, [(_crisis, crisis), (_write_files, (result, out))], None)
    else:
        (windows, regimes, why), written = _crisis(*crisis), _write_files(result, out)
    written.append(_csv(windows, out / "windows.csv"))
    if regimes is not None:
        written.append(_csv(regimes, out / "regimes.csv"))
    else:
        (out / "regimes.csv").unlink(missing_ok=True)
    notes = out / "notes.txt"  # what the loader dropped, filled or assumed
    lines = [*result.notes, *([why] if why else [])]
    atomic_write(notes, lambda p: Path(p).write_text(
        f"{result.source}\n" + "".join(f"- {n}\n" for n in lines), encoding="utf-8"))
    written.append(notes)
    return written


def _csv(frame: pd.DataFrame, path: Path, index: bool = False) -> Path:
    return write_csv(frame, path, index=index, date_format="%Y-%m-%d")


def _call(_: None, item: tuple[Callable[..., Any], tuple]) -> Any:
    """``fn(*args)`` for an executor's ``(fn, args)`` item."""
    fn, args = item
    return fn(*args)


def _write_files(result: BacktestResult, out: Path) -> list[Path]:
    """Every file of :func:`write_results` but the crisis and regime tables and the notes."""
    written = [_csv(result.returns, out / "returns.csv", index=True),
               _csv(result.weights, out / "weights.csv"),
               _csv(stats_table(result), out / "stats.csv"),
               _csv(conventions_table(), out / "conventions.csv"),
               _csv(result.exposures, out / "exposures.csv"),
               _csv(result.risk, out / "risk.csv")]
    if len(result.gamma_path):
        written.append(_csv(result.gamma_path, out / "gamma.csv"))
    else:
        for name in ("gamma.csv", GAMMA_CHART):  # an earlier anchored run's
            (out / name).unlink(missing_ok=True)
    written += save_charts(result, out)
    written.append(save_exposure_chart(result, out))
    for frame, name in ((result.failures, "failures.csv"), (result.filters, "filters.csv")):
        if len(frame):  # a date failed; a filter is set
            written.append(_csv(frame, out / name))
        else:
            (out / name).unlink(missing_ok=True)
    return written
