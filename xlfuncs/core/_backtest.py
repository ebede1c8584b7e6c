"""Walk-forward backtest of benchmark-relative factor-model portfolios (SPEC 3.3-3.5).

At every rebalance date ``t`` the engine sees the data up to ``t`` only
(:meth:`MarketData.truncate`): it fits each asset's factor loadings and
residual variance, estimates the factor moments (sample, EWMA or the
regime-aware mixture), and solves the optimiser for every strategy of the
sweep. Weights decided at the close of ``t`` earn the returns of ``t + 1``;
between rebalances they drift. Realised returns enter only in the accounting,
never in an estimate: no look-ahead by construction, and a run that ends at
``T`` decides exactly the same weights up to ``T`` as a longer run.

Per date the problem is restricted to the assets tradable at ``t`` (listed,
with a market cap, and with enough history for the regression). A date whose
estimate or optimisation fails is recorded with its reason; the strategy
then holds its drifted weights (the benchmark on the first date) and the run
continues.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any, Protocol

import numpy as np
import pandas as pd

from xlfuncs.core._anchor import Anchored, anchor_gamma
from xlfuncs.core._attribution import active_risk, parse_windows
from xlfuncs.core._executor import Executor, check_scheduler, make_executor
from xlfuncs.core._factor import (
    FACTOR_MOMENT_METHODS,
    FactorTable,
    factor_moments,
    fit_factor_tables,
)
from xlfuncs.core._factorset import parse_factor_set, select_factor_set
from xlfuncs.core._frequency import FREQUENCIES, frequency_name, frequency_ppy
from xlfuncs.core._liquidity import (
    LIQUIDITY_FILTERS,
    check_filters,
    check_minimum,
    filter_note,
    filter_table,
    liquidity_filter,
)
from xlfuncs.core._loadings import LOADING_METHODS, regime_loadings
from xlfuncs.core._market import MarketData
from xlfuncs.core._metrics import performance_stats
from xlfuncs.core._optimise import ActiveOptimiser, OptimiserSpec, OptimResult
from xlfuncs.core._risk import parse_risk_method
from xlfuncs.errors import ConvergenceError, InputError, XlfuncsError

__all__ = ["BACKTEST_MODES", "BacktestConfig", "BacktestResult", "run_backtest"]

BACKTEST_MODES = ("tev", "gamma", "sector", "anchor")
_MARKET_NAMES = ("mkt-rf", "mktrf", "mkt", "market")
#: Keep each compiled optimiser and re-solve it when the next date has as many tradable
#: assets (False rebuilds the cvxpy problem every date, the research's pattern; for bench/).
REUSE_PROBLEMS = True
Progress = Callable[[int, int, str], None]


def _positive_list(value: object, name: str) -> tuple[float, ...]:
    items = [value] if isinstance(value, int | float | str) else list(value or ())
    out = []
    for item in items:
        for part in str(item).replace(";", ",").split(","):
            if not part.strip():
                continue
            try:
                x = float(part.strip().rstrip("%")) / (100.0 if part.strip().endswith("%") else 1)
            except ValueError:
                raise InputError(f"{name} must be numbers (got {part.strip()!r})", name) from None
            if not (math.isfinite(x) and x >= 0):
                raise InputError(f"{name} must be positive numbers (got {part.strip()})", name)
            out.append(x)
    return tuple(out)


def _named_values(value: object, name: str, pair: bool) -> tuple:
    """``NAME=VALUE`` items (``;`` or ``,`` between them) or a mapping, as a tuple of pairs.

    With ``pair`` each value is ``LO:HI`` (a two-item list in a mapping) and the
    items are ``(name, lo, hi)``; else one number, ``(name, value)``. ``%``
    after a number means percent.
    """
    if value is None or value == "" or value == ():
        return ()
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, str):
        items = []
        for part in re.split(r"[;,\n]", value):
            if not part.strip():
                continue
            key, eq, rhs = part.partition("=")
            if not eq or not key.strip():
                form = "NAME=LO:HI" if pair else "NAME=VALUE"
                raise InputError(f"{name} must be {form} items separated by ; (got "
                                 f"{part.strip()!r})", name)
            items.append((key.strip(), rhs.split(":") if pair else rhs))
    else:
        form = "NAME=LO:HI" if pair else "NAME=VALUE"
        try:
            items = [(item[0], item[1:] if pair else item[1])  # type: ignore[index]
                     for item in value]  # type: ignore[attr-defined]
        except (TypeError, IndexError, KeyError):  # a lone number, or items without a value
            raise InputError(f"{name} must be {form} items separated by ; (got {value!r})",
                             name) from None
    out = []
    for key, rhs in items:
        nums = list(rhs) if pair and not isinstance(rhs, str) else [rhs]
        if pair and len(nums) == 1 and isinstance(nums[0], list | tuple):
            nums = list(nums[0])
        vals = []
        for x in nums:
            text = str(x).strip()
            try:
                v = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
            except ValueError:
                raise InputError(f"{name} for {key} must be numbers (got {text!r})",
                                 name) from None
            vals.append(v)
        if pair and len(vals) != 2:
            raise InputError(f"{name} for {key} must be LO:HI, e.g. -0.2:0.2", name)
        out.append((str(key).strip(), *vals))
    return tuple(out)


# A date as text: 2010-01-31, 2010-01 (the month) or 2010 (the year); a time may follow.
_ISO_DATE = re.compile(r"\d{4}(-\d{1,2}(-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2})?)?)?)?")


@dataclass(frozen=True)
class BacktestConfig:
    """The settings of a backtest run; every one is checked before any work.

    Parameters
    ----------
    mode : {"tev", "gamma", "sector", "anchor"}
        TEV cap, risk aversion, sector rotation (industry weights, with the
        TEV list, or the gamma list when no TEV list is given), or risk
        aversion anchored to a tracking-error target: at each rebalance the
        gamma whose solution's ex-ante tracking error equals the target
        (:func:`~xlfuncs.core._anchor.anchor_gamma`), one strategy per TEV,
        named ``anchor tev=0.06``.
    tev : sequence of float
        Annual tracking-error budgets (targets in mode anchor), one strategy
        each (0.04 = 4% a year).
    gamma : sequence of float
        Risk aversions, one strategy each (``gamma`` mode).
    model : str
        Factor moments: ``sample``, ``ewma`` (``ewma:24`` for a half-life in
        periods) or ``regime`` (Gaussian HMM mixture).
    n_states, horizon : int
        Regime model: states (2-4) and forecast steps ahead.
    beta_window : int or None
        Periods of the rolling regression for loadings; None = expanding.
    moments_window : int or None
        Periods for sample/EWMA factor moments; None = expanding.
    min_history : int
        Periods of data before the first rebalance.
    min_obs : int
        The fewest returns in the regression window an asset needs to be traded.
    rebalance_every : int
        Periods between rebalances (1 = every month for monthly data).
    start, end : str or None
        First rebalance date; last date used (every input is cut there).
    max_weight, turnover, cost : optional
        Largest weight, one-way turnover limit per rebalance, proportional cost.
    benchmark : {"auto", "caps", "market"}
        ``caps``: cap-weighted over the tradable assets at each date;
        ``market``: the data's benchmark series (else Mkt-RF + RF), a factor
        benchmark for the optimiser. ``auto``: caps when the data has them.
    seed : int
        Seed of the regime model's initialisation.
    workers : int or None
        Local processes for a sweep (None: one per CPU; 1: no processes at all).
    scheduler : str or None
        A Dask scheduler address (``tcp://HOST:8786``): the sweep runs on that
        cluster instead of local processes.
    industry_limit : float or None
        Policy limit on every industry's active weight ``|u - u_b|`` (0.05).
    industry_limits : str or mapping
        Limits for named industries, ``"Tech=0.03; Energy=0.02"``, overriding
        ``industry_limit`` for them.
    factor_bounds : str or mapping
        Active factor exposure bounds, ``"SMB=-0.2:0.2; HML=-0.1:0.1"`` (or
        ``{"SMB": [-0.2, 0.2]}``).
    factor_neutral : bool
        Every active factor exposure held at 0.
    windows : str, mapping or sequence
        Crisis windows for the per-window statistics, ``"2008-09=2008-01:2009-12;
        ..."``; blank: 1973-74, 1987, 2000-02, 2008-09 and 2020
        (:func:`~xlfuncs.core._attribution.parse_windows`).
    factor_set : str or sequence of str
        The factors the model uses, by their names in the factor file,
        ``"Mkt-RF, SMB, HML"`` (case and spaces ignored); blank: every factor
        (:mod:`xlfuncs.core._factorset`).
    betas : {"ols", "regime"}
        Loadings by least squares on the window, or the forecast-probability
        mixture of per-state weighted least squares (needs ``model = regime``;
        :mod:`xlfuncs.core._loadings`).
    frequency : {"monthly", "weekly"} or None
        The rebalance frequency the data are compounded to when they are given
        more often (daily CRSP and Ken French files; the loader does it, see
        :func:`~xlfuncs.data.market.load_market`). None: monthly for daily or
        weekly data, else the data's own. The data a run gets must be at this frequency.
    min_price, min_dollar_volume, min_cap : float or None
        Liquidity filters on the tradable universe at each date, in the data's
        units (:mod:`~xlfuncs.core._liquidity`): price at the date, average
        dollar volume per period over ``volume_window`` periods, market cap.
    volume_window : int or None
        Periods of the dollar-volume average; None: a year (12 for monthly
        data, 52 for weekly).

    """

    mode: str = "tev"
    tev: tuple[float, ...] = (0.02, 0.04, 0.06)
    gamma: tuple[float, ...] = ()
    model: str = "sample"
    n_states: int = 2
    horizon: int = 1
    beta_window: int | None = 60
    moments_window: int | None = None
    min_history: int = 60
    min_obs: int = 36
    rebalance_every: int = 1
    start: str | None = None
    end: str | None = None
    max_weight: float | None = None
    turnover: float | None = None
    cost: float = 0.0
    benchmark: str = "auto"
    seed: int = 0
    workers: int | None = None
    scheduler: str | None = None
    industry_limit: float | None = None
    industry_limits: Any = ()
    factor_bounds: Any = ()
    factor_neutral: bool = False
    windows: Any = ()
    factor_set: Any = ()
    betas: str = "ols"
    frequency: str | None = None
    min_price: float | None = None
    min_dollar_volume: float | None = None
    volume_window: int | None = None
    min_cap: float | None = None

    def __post_init__(self) -> None:
        mode = str(self.mode).strip().lower()
        if mode not in BACKTEST_MODES:
            raise InputError(f"mode must be one of {', '.join(BACKTEST_MODES)} "
                             f"(got {self.mode!r})", "mode")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "tev", _positive_list(self.tev, "tev"))
        object.__setattr__(self, "gamma", _positive_list(self.gamma, "gamma"))
        if any(t <= 0 for t in self.tev):
            raise InputError("tev budgets must be above 0", "tev")
        if any(t > 1 for t in self.tev):  # a percentage typed as a number
            t = max(self.tev)
            raise InputError(f"tev budget {t:g} is {t:.0%} a year: write {t / 100:g} or "
                             f"{t:g}% for {t:g} percent", "tev")
        if mode == "tev" and not self.tev:
            raise InputError("tev needs at least one budget for mode tev, e.g. 0.04", "tev")
        if mode == "anchor" and not self.tev:
            raise InputError("tev needs at least one tracking-error target for mode anchor, "
                             "e.g. 0.06", "tev")
        if mode == "gamma" and not self.gamma:
            raise InputError("gamma needs at least one value for mode gamma, e.g. 5", "gamma")
        if mode == "sector" and not (self.tev or self.gamma):
            raise InputError("mode sector needs tev budgets or gamma values", "tev")
        model = str(self.model).strip().lower()
        if model.split(":")[0].strip() not in (*FACTOR_MOMENT_METHODS, "regime"):
            raise InputError(f"model must be sample, ewma[:HALFLIFE] or regime (got "
                             f"{self.model!r})", "model")
        if model.startswith("ewma"):
            parse_risk_method(model, "model")  # the half-life, as the estimator reads it
        elif ":" in model:
            raise InputError(f"model {model.split(':')[0]} takes no parameter (got "
                             f"{self.model!r})", "model")
        object.__setattr__(self, "model", model)
        for name, lo, hi in (("n_states", 2, 4), ("horizon", 1, 120), ("min_history", 12, 10_000),
                             ("min_obs", 12, 10_000), ("rebalance_every", 1, 120)):
            value = getattr(self, name)
            if not (isinstance(value, int | np.integer) and not isinstance(value, bool)
                    and lo <= value <= hi):
                raise InputError(f"{name} must be a whole number from {lo} to {hi} "
                                 f"(got {value!r})", name)
        for name in ("beta_window", "moments_window"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 12):
                raise InputError(f"{name} must be a whole number of at least 12 periods, or "
                                 f"blank for an expanding window (got {value!r})", name)
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                # Year first only: 01/02/2000 is 1 February to some and 2 January to others.
                iso = isinstance(value, str) and _ISO_DATE.fullmatch(value.strip())
                try:
                    if not iso:
                        raise ValueError(value)
                    pd.Timestamp(value.strip())
                except (ValueError, TypeError):
                    raise InputError(f"{name} must be a date written year first, such as "
                                     f"2010-01-31 (got {value!r})", name) from None
        if self.start is not None and self.end is not None and (
                pd.Timestamp(self.start) > pd.Timestamp(self.end)):
            raise InputError(f"start {self.start} is after end {self.end}", "start")
        bench = str(self.benchmark).strip().lower()
        if bench not in ("auto", "caps", "market"):
            raise InputError(f"benchmark must be auto, caps or market (got {self.benchmark!r})",
                             "benchmark")
        object.__setattr__(self, "benchmark", bench)
        if self.workers is not None and not (isinstance(self.workers, int) and self.workers >= 1):
            raise InputError(f"workers must be a whole number of at least 1 (got "
                             f"{self.workers!r})", "workers")
        if self.scheduler is not None:
            object.__setattr__(self, "scheduler", check_scheduler(self.scheduler))
        object.__setattr__(self, "industry_limits",
                           _named_values(self.industry_limits, "industry_limits", False))
        object.__setattr__(self, "factor_bounds",
                           _named_values(self.factor_bounds, "factor_bounds", True))
        neutral = self.factor_neutral
        if isinstance(neutral, str) and neutral.strip().lower() in ("true", "yes", "1",
                                                                    "false", "no", "0"):
            neutral = neutral.strip().lower() in ("true", "yes", "1")
        elif isinstance(neutral, int | float) and not isinstance(neutral, bool) and neutral in (0,
                                                                                              1):
            neutral = bool(neutral)
        object.__setattr__(self, "factor_neutral", neutral)
        object.__setattr__(self, "windows", parse_windows(self.windows))
        object.__setattr__(self, "factor_set", parse_factor_set(self.factor_set))
        betas = str(self.betas).strip().lower()
        if betas not in LOADING_METHODS:
            raise InputError(f"betas must be ols or regime (got {self.betas!r})", "betas")
        if betas == "regime" and model != "regime":
            raise InputError("betas regime needs model regime: the states weighting the "
                             "betas are that model's", "betas")
        object.__setattr__(self, "betas", betas)
        if frequency_ppy(self.frequency) is not None:
            object.__setattr__(self, "frequency", str(self.frequency).strip().lower())
        else:
            object.__setattr__(self, "frequency", None)
        for name in LIQUIDITY_FILTERS:
            object.__setattr__(self, name, check_minimum(getattr(self, name), name))
        window = self.volume_window
        if window is not None and not (isinstance(window, int | np.integer)
                                       and not isinstance(window, bool) and 1 <= window <= 10_000):
            raise InputError(f"volume_window must be a whole number of periods from 1 to 10000, "
                             f"or blank for a year (got {window!r})", "volume_window")
        self.specs(12)  # the optimiser's own checks (max_weight, turnover, cost), before any work

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BacktestConfig:
        """Settings from a mapping (TOML table, sheet cells); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).strip().lower().replace("-", "_").replace(" ", "_")
            if name not in known:
                raise InputError(f"unknown setting {key!r} (known: {', '.join(sorted(known))})",
                                 str(key))
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if name in ("n_states", "horizon", "min_history", "min_obs", "rebalance_every", "seed",
                        "workers", "beta_window", "moments_window", "volume_window"):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                elif isinstance(value, str) and value.strip().isdigit():
                    value = int(value.strip())
            if name in ("max_weight", "turnover", "cost", "industry_limit", *LIQUIDITY_FILTERS
                        ) and isinstance(value, str):
                numbers = _positive_list(value, name)
                if len(numbers) != 1:
                    raise InputError(f"{name} must be one number (got {value!r})", name)
                value = numbers[0]
            if name in ("start", "end") and not isinstance(value, str):
                if not isinstance(value, date):  # datetime is a date too
                    raise InputError(f"{name} must be a date such as 2010-01-31 (got "
                                     f"{value!r})", name)
                value = pd.Timestamp(value).date().isoformat()
            clean[name] = value
        if str(clean.get("mode", "")).strip().lower() == "anchor" and "tev" not in clean:
            # the targets are the analyst's choice, never the default budgets
            raise InputError("tev needs at least one tracking-error target for mode anchor, "
                             "e.g. 0.06", "tev")
        if str(clean.get("mode", "")).strip().lower() == "sector" and "gamma" in clean:
            # A sector sweep is over the TEV budgets or over the gammas given, never
            # over the default budgets while the gammas are ignored.
            if "tev" in clean:
                raise InputError("mode sector sweeps tev budgets or gamma values, not both: "
                                 "clear one", "gamma")
            clean["tev"] = ()
        return cls(**clean)

    def specs(self, periods_per_year: float) -> dict[str, OptimiserSpec]:
        """The strategies of the sweep: name -> optimiser settings."""
        common = dict(periods_per_year=periods_per_year, max_weight=self.max_weight,
                      turnover=self.turnover, cost=self.cost,
                      industry_limit=self.industry_limit, industry_limits=self.industry_limits,
                      factor_bounds=self.factor_bounds, factor_neutral=self.factor_neutral)
        out: dict[str, OptimiserSpec] = {}
        if self.mode == "gamma" or (self.mode == "sector" and not self.tev):
            for g in self.gamma:
                name = f"gamma={g:g}" if self.mode == "gamma" else f"sector gamma={g:g}"
                out[name] = OptimiserSpec(mode=self.mode, gamma=g, **common)
        elif self.mode == "anchor":  # the gamma problem; each date sets its gamma
            for name in self.anchors():
                out[name] = OptimiserSpec(mode="gamma", gamma=1.0, **common)
        else:
            for t in self.tev:
                name = f"tev={t:g}" if self.mode == "tev" else f"sector tev={t:g}"
                out[name] = OptimiserSpec(mode=self.mode, tev=t, **common)
        return out

    def anchors(self) -> dict[str, float]:
        """Mode anchor: strategy name -> annual tracking-error target (else empty)."""
        return {f"anchor tev={t:g}": t for t in self.tev} if self.mode == "anchor" else {}


@dataclass(frozen=True)
class BacktestResult:
    """What a run produced (all returns are simple, per period).

    Attributes
    ----------
    returns : DataFrame
        Index ``date`` (the period earned); columns ``benchmark``, ``rf``, then
        one per strategy, after costs.
    weights : DataFrame
        Long format ``date, strategy, asset, weight`` of every rebalance (the
        decided weights, above 1e-10).
    stats : DataFrame
        One row per strategy: ``ann_return, ann_volatility, sharpe,
        tracking_error, information_ratio, max_drawdown, turnover,
        avg_holdings`` (SPEC 3.5), plus ``hit_rate`` and ``ir_per_period``.
    ex_ante : DataFrame
        ``date, strategy, tracking_error, te_binding, active_return`` of every
        rebalance (the optimiser's own figures, annualised TE).
    failures : DataFrame
        ``date, strategy, reason`` of every date that failed (empty if none).
    config : BacktestConfig
    exposures : DataFrame
        ``date, strategy``, the active exposure to each factor, then
        ``industry: NAME`` the active weight of each industry, at every
        rebalance (:func:`~xlfuncs.core._attribution.active_risk`).
    risk : DataFrame
        ``date, strategy, tracking_error`` (ex ante, annualised),
        ``factor_share, specific_share`` of the active variance and the three
        largest contributors with their shares of the tracking error.
    filters : DataFrame
        ``date, filter, removed``: how many tradable stocks each liquidity
        filter removed at each rebalance date (empty without filters).
    gamma_path : DataFrame
        Mode anchor: ``date, strategy, gamma, tracking_error`` (ex ante,
        annualised), ``target, reached, solves`` at every rebalance; empty in
        the other modes.
    source : str
    seconds : float
    notes : tuple of str
        What the data loader dropped, filled or assumed (``MarketData.notes``),
        the factors the model used, then the dates where an anchored strategy did
        not reach its target.
    benchmark_stats : Series
        The benchmark's own ``ann_return, ann_volatility, sharpe, max_drawdown``
        over every period of ``returns`` (the conventions of ``stats``); its
        active and trading statistics are NaN (against itself they mean nothing).

    """

    returns: pd.DataFrame
    weights: pd.DataFrame
    stats: pd.DataFrame
    ex_ante: pd.DataFrame
    failures: pd.DataFrame
    config: BacktestConfig
    source: str = ""
    periods_per_year: int = 12
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    exposures: pd.DataFrame = field(default_factory=pd.DataFrame)
    risk: pd.DataFrame = field(default_factory=pd.DataFrame)
    benchmark_stats: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    filters: pd.DataFrame = field(default_factory=pd.DataFrame)
    gamma_path: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def strategies(self) -> list[str]:
        """Strategy names, in sweep order."""
        return [c for c in self.returns.columns if c not in ("benchmark", "rf")]


# --------------------------------------------------------------------------- one date


@dataclass
class _Estimate:
    """Everything the optimiser needs at one date, over the tradable assets."""

    date: pd.Timestamp
    columns: np.ndarray  # the tradable assets' positions among the data's columns
    loadings: np.ndarray  # (m, n)
    factor_cov: np.ndarray  # (m, m), zero row/column for the constant
    resid_var: np.ndarray  # (n,)
    factor_mean: np.ndarray  # (m,)
    benchmark: np.ndarray | None  # (n,) cap weights, or None with benchmark_exposure
    benchmark_exposure: np.ndarray | None
    caps: np.ndarray | None
    industries: np.ndarray  # (n,) codes 0..k-1
    n_industries: int
    industry_names: tuple[str, ...] = ()  # the k industries, for industry limits by name
    factors: tuple[str, ...] = ()  # the loadings' rows after the constant
    filtered: tuple[tuple[str, int], ...] = ()  # (liquidity filter, stocks it removed)

    def freeze(self) -> None:
        """Make the arrays read-only: the optimiser then knows a date's inputs by identity.

        A view is first copied (same layout), so that no writeable array lies beneath.
        """
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray) and value.flags.writeable:
                if value.base is not None:
                    value = value.copy(order="K")
                    setattr(self, name, value)
                value.flags.writeable = False


def _market_row(factors: Sequence[str]) -> int:
    for i, name in enumerate(factors):
        if str(name).strip().lower() in _MARKET_NAMES:
            return 1 + i
    raise InputError("the benchmark is the market, but the factors have no Mkt-RF column",
                     "factors")


def _uses_caps(data: MarketData, config: BacktestConfig) -> bool:
    if config.benchmark == "caps" and data.caps is None:
        raise InputError(f"benchmark caps needs market caps; {data.source or 'the data'} has "
                         "none", "benchmark")
    return config.benchmark == "caps" or (config.benchmark == "auto" and data.caps is not None)


def _market_returns(data: MarketData) -> pd.Series:
    """The benchmark series: the data's own, else the market factor plus the risk-free rate."""
    if data.benchmark is not None:
        return data.benchmark
    row = _market_row(tuple(data.factors.columns)) - 1
    return data.factors.iloc[:, row] + data.rf


class _Estimator:
    """Fits loadings and factor moments at each date, keeping the regime fit warm."""

    def __init__(self, data: MarketData, config: BacktestConfig):
        self.data = data
        self.config = config
        excess = data.returns.sub(data.rf, axis=0)
        self.excess = excess if config.betas == "regime" else None  # regime betas read it
        self.warm = None
        self.use_caps = _uses_caps(data, config)
        self.filters = {name: getattr(config, name) for name in LIQUIDITY_FILTERS}
        self.volume_window = config.volume_window or data.periods_per_year
        # The panels as arrays over the data's columns, read once: a date's estimate
        # then indexes them by position (pandas label lookups were most of its cost).
        self.names = [str(c) for c in data.returns.columns]
        self.position = {name: j for j, name in enumerate(self.names)}
        self.returns = data.returns.to_numpy(dtype=float)
        self.excess_values = excess.to_numpy(dtype=float)
        self.factor_table = FactorTable(data.factors.to_numpy(dtype=float), data.dates,
                                        tuple(str(c) for c in data.factors.columns))
        self.first = np.where(np.isnan(self.returns).all(axis=0), len(data.dates),
                              np.argmax(~np.isnan(self.returns), axis=0))  # first listed row
        self.caps = None if data.caps is None else data.caps.to_numpy(dtype=float)
        self.labels = (data.industries.to_numpy() if data.industry_history is None
                       else data.industry_history.reindex(columns=data.returns.columns)
                       .to_numpy())

    def __call__(self, i: int) -> _Estimate:
        data, cfg = self.data, self.config
        date = data.dates[i]
        upto = slice(0, i + 1)
        listed = np.flatnonzero(self.first <= i)  # columns with a return up to date i
        dates = data.dates[upto]
        model = fit_factor_tables(
            FactorTable(self.excess_values[upto][:, listed], dates,
                        tuple(self.names[j] for j in listed)),
            FactorTable(self.factor_table.values[upto], dates, self.factor_table.names),
            window=cfg.beta_window, min_obs=min(cfg.min_obs, cfg.beta_window or cfg.min_obs))
        model_cols = np.array([self.position[a] for a in model.assets], dtype=np.intp)
        factors = data.factors.iloc[upto]
        now = ~np.isnan(self.returns[i, model_cols])
        if self.caps is not None:
            cap_now = self.caps[i, model_cols]
            now &= np.isfinite(cap_now) & (cap_now > 0)
        filtered: tuple[tuple[str, int], ...] = ()
        if any(v is not None for v in self.filters.values()):
            tradable = np.flatnonzero(now)
            passed, filtered = liquidity_filter(data, i, [model.assets[j] for j in tradable],
                                                self.filters, self.volume_window)
            now[tradable[~passed]] = False
        keep = np.flatnonzero(now)
        if keep.size == 0:
            why = " after the liquidity filters" if filtered else ""
            raise InputError(f"no asset is tradable on {date.date()}{why}", "data")
        columns = model_cols[keep]
        method = cfg.model
        kwargs: dict[str, Any] = {"window": cfg.moments_window}
        if method == "regime":
            kwargs = {"n_states": cfg.n_states, "horizon": cfg.horizon, "seed": cfg.seed,
                      "warm_start": self.warm}
        try:
            moments = factor_moments(factors, method, **kwargs)
        except XlfuncsError:
            if method != "regime" or self.warm is None:
                raise
            kwargs["warm_start"] = None  # a warm start that fails: fit afresh once
            moments = factor_moments(factors, method, **kwargs)
        self.warm = moments.regime
        if cfg.betas == "regime":
            excess = self.excess.iloc[upto, listed]
            model = regime_loadings(model, excess, factors, moments, cfg.beta_window)
        k = len(moments.factors)
        sigma = np.zeros((k + 1, k + 1))
        sigma[1:, 1:] = moments.cov
        loadings = model.loadings[:, keep]
        # the labels of date t: a later change of industry is not known yet
        labels = (self.labels if self.labels.ndim == 1 else self.labels[i])[columns]
        names, codes = np.unique(labels.astype(str), return_inverse=True)
        caps = benchmark = exposure = None
        if self.caps is not None:
            caps = self.caps[i, columns]
        if self.use_caps:
            benchmark = caps / caps.sum()
        else:
            exposure = np.zeros(k + 1)
            exposure[_market_row(moments.factors)] = 1.0
        return _Estimate(date, columns, loadings, sigma, model.resid_var[keep],
                         moments.mean_with_constant, benchmark, exposure, caps, codes,
                         len(names), tuple(map(str, names)), tuple(map(str, moments.factors)),
                         filtered)


# --------------------------------------------------------------------------- the walk


#: A book's running state (what a walk handed on mid-way carries); every other field
#: is a record of the dates walked.
_RUNNING = ("weights", "cost_due", "gamma", "slope")


@dataclass
class _Book:
    """One strategy's record of the dates walked, and its running state (:data:`_RUNNING`)."""

    weights: np.ndarray | None = None  # current (drifted) weights over the data's columns
    returns: dict = field(default_factory=dict)
    decided: list | _Decisions = field(default_factory=list)  # (date, name, columns, weights)
    ex_ante: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    exposures: list = field(default_factory=list)  # (date, name, {factor/industry: active})
    risk: list = field(default_factory=list)  # (date, name, {TE split, top contributors})
    turnover: dict = field(default_factory=dict)
    holdings: dict = field(default_factory=dict)
    cost_due: float = 0.0  # cost of the last rebalance, paid from the next period's return
    gamma: float | None = None  # mode anchor: the last date's gamma (the next search's start)
    slope: float = 1.0  # and -d log TE / d log gamma near it (the first step's)
    gammas: list = field(default_factory=list)  # (date, name, gamma, TE, target, reached, solves)
    not_reached: list = field(default_factory=list)  # (date, why)

    def carried(self) -> _Book:
        """A new book with only the running state: where the walk goes on elsewhere."""
        return _Book(**{name: getattr(self, name) for name in _RUNNING})

    def extend(self, later: _Book) -> None:
        """Append ``later``: the same walk's book from where :meth:`carried` left off."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(later, f.name)
            if f.name in _RUNNING:  # the later one's
                setattr(self, f.name, theirs)
            elif isinstance(mine, _Decisions):
                setattr(self, f.name, mine.then(theirs))
            elif isinstance(mine, dict):
                mine.update(theirs)
            else:
                mine.extend(theirs)


@dataclass
class _Decisions:
    """A walk's decisions packed into a few arrays (they travel back from a worker)."""

    dates: list  # of each decision
    counts: np.ndarray  # its holdings
    columns: np.ndarray  # every holding's position among the data's columns, in order
    weights: np.ndarray

    @classmethod
    def pack(cls, rows: Sequence[tuple]) -> _Decisions:
        """From ``(date, name, columns held, weights)`` rows."""
        return cls([d for d, _, _, _ in rows], np.array([len(c) for _, _, c, _ in rows],
                                                        dtype=np.intp),
                   np.concatenate([c for _, _, c, _ in rows] or [np.zeros(0, np.intp)]),
                   np.concatenate([w for _, _, _, w in rows] or [np.zeros(0)]))

    def then(self, later: _Decisions) -> _Decisions:
        """These decisions and ``later`` ones."""
        return _Decisions(self.dates + later.dates, np.concatenate([self.counts, later.counts]),
                          np.concatenate([self.columns, later.columns]),
                          np.concatenate([self.weights, later.weights]))

    def __len__(self) -> int:
        return len(self.dates)


def _sum(x: np.ndarray) -> float:
    """The sum of the non-zero entries, in column order.

    Sums over the data's columns would group the same holdings differently when
    the data have other columns (a shorter run lists fewer stocks), and the last
    bits of a return would then depend on the end date.
    """
    return float(x[x != 0].sum())


def _previous_weights(held: np.ndarray, assets: np.ndarray) -> np.ndarray | None:
    """The holdings the optimiser starts from, over today's tradable assets.

    A holding that left the universe (delisted, or no longer enough history) is
    a forced sale: its weight is spread over the remaining holdings in
    proportion, so that the turnover limit and the trading cost in the
    objective bind only the trades the optimiser chooses. (The accounting still
    counts the forced trades as turnover.) None when nothing held is tradable:
    the portfolio is built afresh. ``held`` is over the data's columns,
    ``assets`` today's tradable columns.
    """
    prev = held[assets]
    total, before = float(prev.sum()), _sum(held)
    if total <= 1e-12:
        return None
    return prev * (before / total) if abs(total - before) > 1e-12 else prev


def _rebalance_dates(data: MarketData, config: BacktestConfig) -> list[int]:
    first = config.min_history - 1
    if config.start is not None:
        first = max(first, int(data.dates.searchsorted(pd.Timestamp(config.start))))
    last = data.n_periods - 2  # a decision needs a next period to earn
    return list(range(first, last + 1, config.rebalance_every))


# --------------------------------------------------------------------------- estimation stage

#: Rebalance dates per estimation task under the regime model. The HMM is fitted
#: afresh at the first date of each chunk and warm-started from the previous date
#: within it, so this (not the executor) fixes every fit: serial, process and Dask
#: runs give the same numbers. Chunks are counted from the first rebalance date, so
#: a shorter run shares the fits of a longer one (no look-ahead).
REGIME_CHUNK = 24

Estimated = _Estimate | str  # an estimate, or why the date failed


@dataclass(frozen=True)
class _Job:
    """What every task of a run reads: sent to each worker once."""

    data: MarketData
    config: BacktestConfig
    dates: tuple[int, ...]  # rebalance period indices
    estimates: Mapping[int, Estimated] | None = None  # filled for the decision stage


def _chunks(dates: Sequence[int], config: BacktestConfig, workers: int) -> list[tuple[int, ...]]:
    """Runs of consecutive rebalance dates, one estimation task each."""
    if config.model == "regime":
        size = REGIME_CHUNK
    else:  # no state carried between dates: the size only balances the work
        size = max(1, math.ceil(len(dates) / (8 * workers))) if workers > 1 else len(dates)
    return [tuple(dates[k:k + size]) for k in range(0, len(dates), max(size, 1))]


def _estimate_chunk(job: _Job, chunk: tuple[int, ...],
                    tick: Callable[[int], None] | None = None) -> list[Estimated]:
    """Estimates of a run of dates, in order; the regime fit starts cold at the first."""
    # a copy of this run's estimator: the panels shared, the regime warm start its own
    # (chunks may run side by side in threads of one process, as in a Dask worker)
    estimator = copy.copy(_estimator(job))
    estimator.warm = None
    out: list[Estimated] = []
    for i in chunk:
        try:
            out.append(estimator(i))
        except XlfuncsError as exc:
            out.append(f"{job.data.dates[i].date()}: estimation failed: {exc}")
        if tick is not None:
            tick(1)
    _hold(job, chunk, out)
    return out


#: The run under way in this process, as one tuple replaced whole (threads may share the
#: process): its job (weakly), the estimates this process holds for it by rebalance
#: date, and its estimator (the panels read as arrays once per run, not once per chunk).
#: A worker process walks with the estimates it computed itself (the same job object
#: serves both stages of a run), so they need not travel back to it; once it has walked
#: a group it holds them all, for strategies handed on to it mid-walk.
_HELD: list[tuple | None] = [None]


def _run_state(job: _Job) -> tuple:
    state = _HELD[0]
    if state is None or state[0]() is not job:  # a new run: the last one's go
        state = (weakref.ref(job, _forget), {}, [None])
        _HELD[0] = state
    return state


def _forget(ref: weakref.ref) -> None:
    """The run's job is gone (the run ended; a worker took the next run's): so is its state."""
    state = _HELD[0]
    if state is not None and state[0] is ref:
        _HELD[0] = None


def _estimator(job: _Job) -> _Estimator:
    kept = _run_state(job)[2]
    if kept[0] is None:
        kept[0] = _Estimator(job.data, job.config)
    return kept[0]


def _hold(job: _Job, chunk: tuple[int, ...], out: list[Estimated]) -> None:
    _run_state(job)[1].update(zip(chunk, out, strict=True))


def _held(job: _Job) -> dict[int, Estimated]:
    state = _HELD[0]
    return state[1] if state is not None and state[0]() is job else {}


class _Shipped(dict):
    """Estimates by date for a walk group, sent without those its process holds.

    In this process it is all of them. Pickled (for the one worker process), it
    leaves out ``skip``, the dates that process estimated: :func:`_walk_group` takes
    them from its :func:`_held` estimates. (A copy made with :mod:`copy` leaves
    them out too: copy the dict with ``dict(...)``.)
    """

    skip: frozenset[int] = frozenset()

    def __reduce__(self):
        return _Shipped, ({i: e for i, e in self.items() if i not in self.skip},)


def data_fingerprint(data: MarketData) -> str:
    """A hash of every number and label of ``data`` that an estimate reads."""
    h = hashlib.sha256()
    for frame in (data.returns, data.caps, data.factors, data.rf, data.industries,
                  data.industry_history, data.benchmark, data.prices, data.dollar_volume):
        if frame is None:
            h.update(b"none")
            continue
        values = frame.to_numpy()
        if values.dtype.kind == "f":  # numbers: their bytes (hashing them per row is slower)
            h.update(repr((values.shape, values.dtype.str)).encode())
            h.update(np.ascontiguousarray(values).tobytes())
            h.update(pd.util.hash_pandas_object(frame.index).to_numpy().tobytes())
        else:
            h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        if isinstance(frame, pd.DataFrame):
            h.update("\x1f".join(map(str, frame.columns)).encode())
    h.update(str(data.periods_per_year).encode())
    return h.hexdigest()


def _estimation_key(fingerprint: str, config: BacktestConfig, chunk: tuple[int, ...]) -> str:
    """Cache key of a chunk: the data's :func:`data_fingerprint`, the settings and the dates."""
    # The estimate's fields are part of the key: a changed estimate never reads an old file.
    settings = (tuple(f.name for f in fields(_Estimate)),
                config.model, config.n_states, config.horizon, config.seed, config.beta_window,
                config.moments_window, config.min_obs, config.benchmark, REGIME_CHUNK
                if config.model == "regime" else 0, chunk, config.factor_set, config.betas,
                tuple(getattr(config, name) for name in LIQUIDITY_FILTERS), config.volume_window)
    return hashlib.sha256((fingerprint + repr(settings)).encode()).hexdigest()


class EstimateCache(Protocol):
    """Where estimates are kept between runs: ``get`` a chunk's list or None, ``put`` it."""

    def get(self, key: str) -> list | None:
        """The stored estimates of a chunk, or None."""
        ...

    def put(self, key: str, value: list) -> None:
        """Store a chunk's estimates."""
        ...


class MemoryCache:
    """The estimates of the last few runs in this process (the default cache)."""

    def __init__(self, max_chunks: int = 256):
        self.max_chunks = max_chunks
        self._store: OrderedDict[str, list] = OrderedDict()

    def get(self, key: str) -> list | None:
        value = self._store.get(key)
        if value is not None:
            self._store.move_to_end(key)
        return value

    def put(self, key: str, value: list) -> None:
        self._store[key] = value
        self._store.move_to_end(key)
        while len(self._store) > self.max_chunks:
            self._store.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._store.clear()


MEMORY_CACHE = MemoryCache()


def _estimate_all(job: _Job, executor: Executor, caches: Sequence[EstimateCache],
                  tracker: _Progress) -> tuple[dict[int, Estimated], list[int]]:
    """Every rebalance date's estimate, and the dates computed (not found in a cache).

    A date not in a cache is computed, chunks of dates in parallel.
    """
    chunks = _chunks(job.dates, job.config, executor.workers)
    fingerprint = data_fingerprint(job.data)  # once: hashing the data is most of a key's cost
    keys = [_estimation_key(fingerprint, job.config, c) for c in chunks]
    found: dict[int, list[Estimated]] = {}
    for k, key in enumerate(keys):
        for cache in caches:
            got = cache.get(key)
            if got is not None and len(got) == len(chunks[k]):
                found[k] = got
                break
    todo = [k for k in range(len(chunks)) if k not in found]
    if found:
        tracker.estimated(sum(len(chunks[k]) for k in found))
    if executor.workers <= 1:  # here, in order: a tick per date
        results = [_estimate_chunk(job, chunks[k], tracker.estimated) for k in todo]
    else:  # a tick per date as the workers report it; the rest when a chunk is in
        stage = tracker.stage("estimating", [len(chunks[k]) for k in todo])
        results = executor.map(_estimate_chunk, [chunks[k] for k in todo], job,
                               stage.finished, stage.tick)
    for k, got in zip(todo, results, strict=True):
        found[k] = got
        for cache in caches:
            cache.put(keys[k], got)
    estimates = {i: e for k, chunk in enumerate(chunks)
                 for i, e in zip(chunk, found[k], strict=True)}
    return estimates, [i for k in todo for i in chunks[k]]


# --------------------------------------------------------------------------- decision stage


class _Strategy:
    """One strategy's walk: a decision at each rebalance date, drift and costs in between."""

    def __init__(self, config: BacktestConfig, name: str, spec: OptimiserSpec,
                 labels: np.ndarray, optimisers: dict | None = None):
        self.config, self.name, self.spec = config, name, spec
        self.labels = labels  # the data's asset names, by column
        self.n_columns = len(labels)
        self.book = _Book()
        # Compiled problems, shared by the strategies walked together: the TEV budget and
        # gamma are parameters of the compiled problem, so a sweep over them compiles each
        # universe size once, not once per strategy.
        self.optimisers: dict[tuple, ActiveOptimiser] = {} if optimisers is None else optimisers
        self.solved: frozenset[tuple] = frozenset()  # problems solved before a hand-over
        self.structure = repr(replace(spec, tev=None if spec.tev is None else 1.0,
                                      gamma=None if spec.gamma is None else 1.0))
        # the last exact answer's bound set over the data's columns, and its risk
        # parameter: where the next date's active-set solve starts (this strategy's
        # own, so any grouping of strategies gives the same answers)
        self.warm: tuple[np.ndarray, float] | None = None
        self.target = config.anchors().get(name)  # mode anchor: the annual TE target
        # mode anchor: the TE cap at the target, whose exact answer carries its gamma
        self.capped = (None if self.target is None
                       else replace(spec, mode="tev", tev=self.target, gamma=None))

    def __getstate__(self) -> dict:
        # handed to another process mid-walk: without what it shares with the strategies
        # walked beside it (the compiled problems, the labels: that walk gives its own),
        # and with the problems solved so far, whose limits were checked on their first date
        return {**self.__dict__, "optimisers": {}, "labels": None,
                "solved": self.solved | frozenset(self.optimisers)}

    def _optimiser(self, spec: OptimiserSpec, est: _Estimate, by_industry: bool
                   ) -> ActiveOptimiser:
        """The compiled problem of ``spec``'s structure for this date's universe size."""
        structure = self.structure if spec is self.spec else repr(replace(spec, tev=1.0))
        key = (structure, len(est.columns), est.n_industries)
        if key not in self.optimisers or not REUSE_PROBLEMS:
            self.optimisers[key] = ActiveOptimiser(
                spec, len(est.columns), est.loadings.shape[0],
                est.n_industries if by_industry else None, factor_names=est.factors)
            # solved in the walk's first part: checked there, as one walk checks it once
            self.optimisers[key].limits_checked = REUSE_PROBLEMS and key in self.solved
        return self.optimisers[key]

    def decide(self, date: pd.Timestamp, est: Estimated) -> None:
        """The decision at ``date`` from its estimate (or why the estimate failed)."""
        book, spec = self.book, self.spec
        if isinstance(est, str):
            book.failures.append((date, self.name, est))
            return
        cols = est.columns
        by_industry = spec.mode == "sector" or spec.industry_limited
        optimiser = self._optimiser(spec, est, by_industry)
        prev = None
        if book.weights is not None:
            prev = _previous_weights(book.weights, cols)
        warm = None
        if self.warm is not None:
            warm = (self.warm[0][cols], self.warm[1])

        def solve(spec: OptimiserSpec, optimiser: ActiveOptimiser = optimiser,
                  warm: tuple | None = None) -> OptimResult:
            optimiser.spec = spec  # this strategy's budget or gamma, filled at solve
            return optimiser.solve(
                est.loadings, est.factor_cov, est.resid_var, est.factor_mean,
                benchmark=est.benchmark, benchmark_exposure=est.benchmark_exposure,
                prev_weights=prev, caps=est.caps,
                industries=est.industries if by_industry else None,
                industry_names=est.industry_names, date=date, warm=warm)

        if self.target is None:
            res = solve(spec, warm=warm)
        else:
            res, got = self._anchored(solve, est, by_industry, warm)
            if res.ok:
                book.gamma, book.slope = got.gamma, got.slope
                book.gammas.append((date, self.name, got.gamma, res.tracking_error,
                                    self.target, got.reached, got.solves))
                if not got.reached:
                    book.not_reached.append((date, got.reason))
        self.warm = None
        if res.warm is not None:
            states = np.zeros(self.n_columns, dtype=np.int8)
            states[cols] = res.warm[0]
            self.warm = (states, res.warm[1])
        if not res.ok:
            book.failures.append((date, self.name, res.reason))
            if book.weights is None and est.benchmark is not None:
                book.weights = np.zeros(self.n_columns)
                book.weights[cols] = est.benchmark
            return
        kept = np.abs(res.weights) > 1e-10
        new = np.zeros(self.n_columns)
        new[cols[kept]] = res.weights[kept]
        if book.weights is not None:
            book.turnover[date] = _sum(np.abs(new - book.weights)) / 2.0
            traded = 2.0 * book.turnover[date]
        else:
            book.turnover[date] = math.nan
            traded = _sum(np.abs(new))
        book.holdings[date] = int((new > 1e-6).sum())
        book.weights = new
        book.decided.append((date, self.name, cols[kept], res.weights[kept]))
        book.ex_ante.append((date, self.name, res.tracking_error, res.te_binding,
                             res.active_return))
        expo, risk = active_risk(est.loadings, est.factor_cov, est.resid_var, res.weights,
                                 est.benchmark, est.benchmark_exposure, self.labels[cols],
                                 est.factors,
                                 est.industries, est.industry_names, spec.periods_per_year)
        book.exposures.append((date, self.name, expo))
        book.risk.append((date, self.name, risk))
        book.cost_due = self.config.cost * traded

    def _anchored(self, solve: Callable, est: _Estimate, by_industry: bool,
                  warm: tuple | None) -> tuple[OptimResult, Anchored]:
        """Mode anchor: the answer whose ex-ante TE is the target, and its gamma.

        The TEV cap at the target binds at the gamma problem's answer for
        ``gamma = 1 / (2 t)``, ``t`` the risk parameter of the exact active-set
        answer (the same optimality conditions), so one exact solve gives both;
        where that is not available (a problem the active-set solver does not
        take, or a target beyond the frontier) gamma is searched
        (:func:`~xlfuncs.core._anchor.anchor_gamma`).
        """
        capped = solve(self.capped, self._optimiser(self.capped, est, by_industry), warm)
        t = capped.warm[1] if capped.ok and capped.warm is not None else math.nan
        if capped.te_binding and 0.0 < t < math.inf:  # one optimiser solve
            return capped, Anchored(capped, 0.5 / t, True, 1, "", self.book.slope)
        book = self.book
        got = anchor_gamma(lambda g: solve(replace(self.spec, gamma=g)), self.target,
                           book.gamma or self.spec.gamma or 1.0, book.slope)
        return got.result, replace(got, solves=got.solves + 1)  # the TEV cap tried first

    def earn(self, date: pd.Timestamp, r: np.ndarray) -> None:
        """Earn one period's returns ``r`` (over the data's columns, dated ``date``) and drift.

        ``r`` is 0 where the data have no return (a holding delisted in the period).
        """
        book = self.book
        if book.weights is None:
            return
        gross = _sum(book.weights * r)
        book.returns[date] = gross - book.cost_due
        book.cost_due = 0.0
        total = _sum(book.weights) + gross
        book.weights = book.weights * (1.0 + r) / (total if total else 1.0)


#: A walk hands half its strategies to an idle process only with at least this many
#: rebalance dates left (a few dates cost more to send than they save).
HANDOFF_DATES = 4


def _walk(job: _Job, names: Sequence[str], tick: Callable[[int], None] | None = None,
          resume: tuple[int, list[_Strategy]] | None = None) -> dict[str, _Book]:
    """Walk the given strategies over every period, in lockstep, from the estimates.

    ``tick(n)``: n strategy-dates decided. ``resume``: ``(i, strategies)`` walked
    elsewhere up to period ``i``, to go on from there. Where ``tick`` can hand work on
    (a split map's report, :mod:`~xlfuncs.core._executor`: ``tick.wanted()``, a process
    is waiting), half of the strategies go on there from the rebalance date the walk
    has reached, before its decisions (``tick.give``, a :func:`_walk_group` item):
    with their running state, so their answers do not depend on where they were walked.
    """
    data, config, estimates = job.data, job.config, job.estimates
    if estimates is None:
        raise ValueError("the decision stage needs the estimates")
    compiled: dict = {}
    labels = np.array([str(c) for c in data.returns.columns], dtype=object)
    if resume is None:
        specs = config.specs(data.periods_per_year)
        walks = [_Strategy(config, name, specs[name], labels, compiled) for name in names]
        first = job.dates[0]
    else:
        first, walks = resume
        for walk in walks:
            walk.optimisers, walk.labels = compiled, labels
    handed: list[tuple[str, _Book]] = []  # the books of walks handed on, up to then
    rebalance = set(job.dates)
    # rebalance dates from each on: a hand-over is worth it with HANDOFF_DATES left
    after = {i: len(job.dates) - n for n, i in enumerate(job.dates)}
    wanted = getattr(tick, "wanted", None)
    # a holding delisted during the period has no return in the data: 0
    returns = data.returns.to_numpy(dtype=float)
    returns = np.where(np.isnan(returns), 0.0, returns)
    dates = data.dates  # each date read once a period, not once a strategy (Timestamps are made)
    for i in range(first, data.n_periods - 1):
        if i in rebalance:
            if (wanted is not None and len(walks) > 1 and after[i] >= HANDOFF_DATES
                    and wanted()):
                moved, walks = walks[len(walks) // 2:], walks[:len(walks) // 2]
                for walk in moved:  # only the running state goes with them
                    handed.append((walk.name, walk.book))
                    walk.book = walk.book.carried()
                tick.give((tuple(w.name for w in moved), None, False, (i, moved)))
            est, date = estimates[i], dates[i]
            if not isinstance(est, str):
                est.freeze()
            for walk in walks:
                walk.decide(date, est)
            if tick is not None:
                tick(len(walks))
        nxt, date = returns[i + 1], dates[i + 1]
        for walk in walks:
            walk.earn(date, nxt)
    books = {**{walk.name: walk.book for walk in walks}, **dict(handed)}
    for book in books.values():
        book.decided = _Decisions.pack(book.decided)
    return books


def _walk_group(job: _Job, group: tuple, tick: Callable[[int], None] | None = None
                ) -> tuple[dict[str, _Book] | None, pd.Series | tuple | None]:
    """A group's walk, and the benchmark's returns when ``group`` asks for them too.

    ``group`` is ``(names, estimates, with benchmark)``, or for strategies handed on
    mid-walk ``(names, None, False, (period, strategies))``: the estimates are those
    held here (:func:`_held`; a process that walked a group holds them all).

    ``(None, None)`` when the estimates left out of ``group`` (:class:`_Shipped`) are
    not held here either: the caller sends the group again with all of them; ``(None,
    group)`` when a walk handed on finds them missing: the caller walks it.

    The first group brings the benchmark back: a local executor hands the first item
    to a worker process, so the benchmark's drift is not added to this process's
    share (it also collects the results and assembles them).
    """
    names, estimates, with_benchmark, *resume = group
    held = _held(job)
    if estimates is None:  # a walk handed on: the estimates are held here
        if any(i not in held for i in job.dates):  # not in a new worker process
            return None, group
        estimates = held
    lacking = [i for i in job.dates if i not in estimates]
    if lacking:  # those this process estimated (see _Shipped)
        if any(i not in held for i in lacking):  # a new worker process: send them all
            return None, None
        estimates = {**estimates, **{i: held[i] for i in lacking}}
    _run_state(job)[1].update(estimates)  # held here now: for walks handed on to here
    job = replace(job, estimates=estimates)
    books = _walk(job, names, tick, *resume)
    return books, (_benchmark_returns(job, _uses_caps(job.data, job.config))
                   if with_benchmark else None)


def _decide_all(base: _Job, names: Sequence[str], estimates: dict[int, Estimated],
                computed: Sequence[int], executor: Executor, tracker: _Progress
                ) -> tuple[dict[str, _Book], pd.Series]:
    """Every strategy's walk, a group of strategies per worker, and the benchmark's returns.

    A group's strategies are walked together: they share compiled problems and a date's
    checked inputs. The estimates travel with the groups, so the workers that estimated
    (holding the data already) walk too; with one worker process, the dates it
    estimated itself stay out of its group (they are :func:`_held` there). With local
    worker processes, a process left without work takes half of the strategies a group
    still walks (:func:`_walk`); their parts are joined here (:func:`_joined`), and a
    part given to a process that lacks the estimates is walked here after the map.
    """
    groups = [tuple(names[j::executor.workers]) for j in range(executor.workers)]
    groups = [g for g in groups if g]
    shipped = _Shipped(estimates)
    others = getattr(executor, "other_processes", None)  # None: not local processes
    if others == 1:  # (before the next line: held here until then, this process's own)
        shipped.skip = frozenset(computed) - frozenset(_held(base))
    _run_state(base)[1].update(estimates)  # held here: walks handed on to this process
    stage = tracker.stage("optimising", [len(base.dates) * len(g) for g in groups])
    # hand-overs where the executor has processes to hand to (and takes the argument)
    split = {"split": True} if others else {}
    walked = executor.map(_walk_group, [(g, shipped, k == 0) for k, g in enumerate(groups)],
                          base, stage.finished, stage.tick, **split)
    for k in range(len(groups), len(walked)):  # walks handed on mid-way
        if walked[k][0] is None:  # to a worker process that did not walk a group
            walked[k] = _walk_group(base, walked[k][1])
    again = [k for k in range(len(groups)) if walked[k][0] is None]
    if again:  # a worker process that is not the one that estimated: all the estimates
        # (the first map has counted their units already: the bar waits at the end)
        redone = executor.map(_walk_group, [(groups[k], dict(estimates), k == 0)
                                            for k in again], base)
        for k, got in zip(again, redone, strict=True):
            walked[k] = got
    return _joined(got for got, _ in walked), walked[0][1]


def _joined(parts: Iterable[dict[str, _Book]]) -> dict[str, _Book]:
    """Books by strategy from walks' results.

    A walk handed on mid-way comes in parts, in the order they were walked (a part is
    listed after the walk that gave it) and joined here.
    """
    books: dict[str, _Book] = {}
    for got in parts:
        for name, book in got.items():
            if name in books:
                books[name].extend(book)
            else:
                books[name] = book
    return books


def _benchmark_returns(job: _Job, use_caps: bool) -> pd.Series:
    """The benchmark's returns: the given series, or the cap weights of each rebalance drifted."""
    data, estimates = job.data, job.estimates or {}
    out: dict[pd.Timestamp, float] = {}
    if not use_caps:
        market = _market_returns(data)
        for i in range(job.dates[0], data.n_periods - 1):
            out[data.dates[i + 1]] = float(market.iloc[i + 1])
        return pd.Series(out, dtype=float)
    rebalance = set(job.dates)
    columns = data.returns.columns
    returns = data.returns.to_numpy(dtype=float)
    bench_w: np.ndarray | None = None  # over the data's columns
    for i in range(job.dates[0], data.n_periods - 1):
        est = estimates.get(i) if i in rebalance else None
        if est is not None and not isinstance(est, str) and est.benchmark is not None:
            bench_w = np.zeros(len(columns))
            bench_w[est.columns] = est.benchmark
        if bench_w is not None:
            r = np.where(np.isnan(returns[i + 1]), 0.0, returns[i + 1])
            out[data.dates[i + 1]] = got = _sum(bench_w * r)
            bench_w = bench_w * (1.0 + r) / (1.0 + got)
    return pd.Series(out, dtype=float)


#: Work units of a date estimated, against 1 for a strategy-date decided: what the two
#: cost on the default universe (500 stocks, 240 rebalances of the default strategies,
#: one process) since the active-set solver's sweeps aim at the TE target: 2.1 ms a date
#: estimated and 0.67 ms a strategy-date under sample moments, 22 ms against 0.71 ms
#: under the regime model (its HMM fits).
ESTIMATE_UNITS = {"sample": 3, "ewma": 3, "regime": 31}


class _Progress:
    """``progress(done, total, text)`` in work units, so the bar follows the time.

    A date estimated counts :data:`ESTIMATE_UNITS` units of its model, a strategy-date
    decided one (``bench/progress.py`` measures when the bar reaches half).
    """

    def __init__(self, progress: Progress | None, n_dates: int, n_strategies: int,
                 model: str = "sample"):
        self.weight = ESTIMATE_UNITS.get(model.split(":")[0], ESTIMATE_UNITS["sample"])
        self.progress, self.total = progress, n_dates * (self.weight + n_strategies)
        self.done = 0

    def estimated(self, n: int) -> None:
        self._add(n, "estimating")

    def decided(self, n: int) -> None:
        self._add(n, "optimising")

    def stage(self, text: str, units: Sequence[int]) -> _Stage:
        """Progress of tasks run by an executor, ``units[k]`` for the k-th task."""
        return _Stage(self, text, list(units))

    def _add(self, n: int, text: str) -> None:
        if text == "estimating":
            n *= self.weight
        self.done = min(self.total, self.done + n)
        if self.progress is not None:
            self.progress(self.done, self.total, text)


class _Stage:
    """Units of executor tasks: as their workers report them, the rest when a task ends.

    An executor that relays no reports from its workers (Dask) still reaches the
    total, a task at a time; a report after its task's end is not counted twice.
    """

    def __init__(self, tracker: _Progress, text: str, units: list[int]):
        self.tracker, self.text, self.units = tracker, text, units
        self.counted = [0] * len(units)

    def tick(self, k: int, n: int) -> None:
        self._count(k, min(n, self.units[k] - self.counted[k]))

    def finished(self, k: int) -> None:
        self._count(k, self.units[k] - self.counted[k])

    def _count(self, k: int, n: int) -> None:
        if n > 0:
            self.counted[k] += n
            self.tracker._add(n, self.text)


def run_backtest(data: MarketData, config: BacktestConfig | None = None, *,
                 progress: Progress | None = None, executor: Executor | None = None,
                 cache: EstimateCache | None = None) -> BacktestResult:
    """Walk forward over ``data`` and run every strategy of ``config``.

    Two stages. Estimation: at every rebalance date the loadings, residual
    variances and factor moments from the data up to that date, computed once
    for all strategies, in chunks of dates that run in parallel. Decisions:
    each strategy's walk over the shared estimates (optimiser, drift, turnover,
    costs), strategies in parallel. Results do not depend on the executor.

    Parameters
    ----------
    data : MarketData
        The panels; cut at ``config.end`` first (every input).
    config : BacktestConfig, optional
        Settings (the defaults: TEV budgets 2%, 4%, 6%, sample moments).
    progress : callable, optional
        ``progress(done, total, text)`` as work finishes: ``total`` counts a
        unit per rebalance date estimated and per strategy and date decided.
    executor : Executor, optional
        Where the work runs; default from ``config.workers`` and
        ``config.scheduler`` (:func:`~xlfuncs.core._executor.make_executor`).
    cache : EstimateCache, optional
        A further cache of estimates (e.g. on disk) besides the in-memory one,
        so a second sweep over the same data and estimation settings only
        re-solves.

    Returns
    -------
    BacktestResult

    """
    t0 = time.perf_counter()
    config = config or BacktestConfig()
    if config.end is not None:
        data = data.truncate(None, config.end)
    data = select_factor_set(data, config.factor_set)
    if config.mode == "sector" and data.caps is None:
        raise InputError(f"mode sector needs market caps; {data.source or 'the data'} has none",
                         "mode")
    if config.start is not None and (data.n_periods < 2
                                     or pd.Timestamp(config.start) > data.dates[-2]):
        raise InputError(f"start {config.start} leaves nothing to run: the data end on "
                         f"{data.dates[-1]:%Y-%m-%d} and a rebalance needs one period after it",
                         "start")
    if config.frequency is not None and FREQUENCIES[config.frequency] != data.periods_per_year:
        raise InputError(f"frequency {config.frequency}: the data are "
                         f"{frequency_name(data.periods_per_year)}; load them with that frequency "
                         "(load_market compounds daily data) or leave frequency blank",
                         "frequency")
    check_filters(data, {name: getattr(config, name) for name in LIQUIDITY_FILTERS})
    specs = config.specs(data.periods_per_year)
    names = list(specs)
    use_caps = _uses_caps(data, config)
    if not use_caps:
        _market_row(tuple(data.factors.columns))  # a factor benchmark needs the market factor
    dates = _rebalance_dates(data, config)
    if not dates:
        raise InputError(f"the data has {data.n_periods} periods: not enough for min_history "
                         f"{config.min_history} and one period to earn", "min_history")
    own = executor is None
    if executor is None:
        executor = make_executor(config.workers, config.scheduler)
    caches: list[EstimateCache] = [MEMORY_CACHE] + ([cache] if cache is not None else [])
    tracker = _Progress(progress, len(dates), len(names), config.model)
    try:
        base = _Job(data, config, tuple(dates))
        estimates, computed = _estimate_all(base, executor, caches, tracker)
        job = replace(base, estimates=estimates)
        bench = None
        if executor.workers <= 1 or len(names) == 1:
            books = _walk(job, names, tracker.decided)
        else:
            books, bench = _decide_all(base, names, estimates, computed, executor, tracker)
    finally:
        if own:
            executor.close()
    if bench is None:
        bench = _benchmark_returns(job, use_caps)
    result = _assemble(data, config, names, books, bench)
    done = [(data.dates[i], e) for i, e in sorted((job.estimates or {}).items())
            if not isinstance(e, str)]
    filters = filter_table([(d, e.filtered) for d, e in done])
    note = filter_note(filters, [len(e.columns) for _, e in done])
    return replace(result, filters=filters, notes=result.notes + ((note,) if note else ()),
                   seconds=time.perf_counter() - t0)  # the whole call, assembly included


def _assemble(data: MarketData, config: BacktestConfig, names: Sequence[str],
              books: Mapping[str, _Book], bench: pd.Series) -> BacktestResult:
    """The run's tables (its ``seconds`` are set by the caller, once everything is done)."""
    index = bench.index
    columns = {"benchmark": bench.to_numpy(dtype=float),
               "rf": data.rf.reindex(index).to_numpy(dtype=float)}
    for name in names:
        # A strategy that never decided a portfolio only held its starting benchmark:
        # those are not its returns, and statistics of them would mislead.
        got = books[name].returns if books[name].decided else {}
        column = np.full(len(index), np.nan)
        at = index.get_indexer(_datetimes(got, index.dtype))
        column[at[at >= 0]] = np.fromiter(got.values(), float, len(got))[at >= 0]
        columns[name] = column
    returns = pd.DataFrame(columns, index=index)
    returns.index.name = "date"
    weights = _weights_frame(data, [(name, books[name].decided) for name in names])
    ex_ante = pd.DataFrame([row for name in names for row in books[name].ex_ante],
                           columns=["date", "strategy", "tracking_error", "te_binding",
                                    "active_return"])
    failures = pd.DataFrame([row for name in names for row in books[name].failures],
                            columns=["date", "strategy", "reason"])
    stats = {}
    for name in names:
        have = returns[name].notna().to_numpy()
        if not have.any():
            continue
        book = books[name]
        turnover = np.fromiter(book.turnover.values(), float, len(book.turnover))
        stats[name] = performance_stats(
            returns[name][have], returns["benchmark"][have], returns["rf"][have],
            data.periods_per_year, turnover=turnover[~np.isnan(turnover)],
            holdings=np.fromiter(book.holdings.values(), float, len(book.holdings)),
        ).as_dict()
    if not stats:  # nothing to report: say why instead of an empty result
        first = failures.iloc[0] if len(failures) else None
        why = f"; the first: {first['strategy']}, {first['reason']}" if first is not None else ""
        raise ConvergenceError(f"every rebalance failed ({len(failures)} of them){why}", "model")
    stats_frame = pd.DataFrame.from_dict(stats, orient="index")
    stats_frame.index.name = "strategy"
    per_date = {key: _rows_frame([row for name in names for row in getattr(books[name], key)],
                                 data.dates.dtype)
                for key in ("exposures", "risk")}
    gamma_path = pd.DataFrame([row for name in names for row in books[name].gammas],
                              columns=["date", "strategy", "gamma", "tracking_error", "target",
                                       "reached", "solves"])
    notes = [*data.notes, *_anchor_notes(names, books)]
    return BacktestResult(returns, weights, stats_frame, ex_ante, failures,
                          config, data.source, int(data.periods_per_year), 0.0,
                          tuple(notes), per_date["exposures"], per_date["risk"],
                          _benchmark_stats(returns, data.periods_per_year), gamma_path=gamma_path)


def _weights_frame(data: MarketData, packs: Sequence[tuple[str, _Decisions]]) -> pd.DataFrame:
    """One row per holding of every decision: date, strategy, asset, weight."""
    packs = [(name, pack) for name, pack in packs if len(pack)]
    if not packs:
        return pd.DataFrame({"date": pd.Series([], dtype=data.dates.dtype),
                             "strategy": pd.Series([], dtype=str),
                             "asset": pd.Series([], dtype=str), "weight": []})
    counts = np.concatenate([pack.counts for _, pack in packs])
    # labels taken from an index by position: no string is made or inferred per row
    strategies = pd.Index([name for name, _ in packs])
    which = np.repeat(np.arange(len(packs)), [len(pack) for _, pack in packs])
    return pd.DataFrame({
        "date": np.repeat(_datetimes([d for _, pack in packs for d in pack.dates],
                                     data.dates.dtype), counts),
        "strategy": strategies.take(np.repeat(which, counts)).array,
        "asset": data.returns.columns.take(np.concatenate([p.columns for _, p in packs])).array,
        "weight": np.concatenate([pack.weights for _, pack in packs]).astype(float),
    })


def _datetimes(dates: Iterable[pd.Timestamp], dtype: np.dtype) -> np.ndarray:
    """Timestamps as an array of ``dtype`` (numpy's own scalars: no per-item inference)."""
    return np.array([d.asm8 for d in dates], dtype=dtype)


def _rows_frame(rows: Sequence[tuple[pd.Timestamp, str, dict]], dtype: np.dtype
                ) -> pd.DataFrame:
    """``date``, ``strategy`` and each row's named values (NaN where a row has no value).

    The values' columns in the order their names first appear.
    """
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame([row for _, _, row in rows])
    frame.insert(0, "strategy", [s for _, s, _ in rows])
    frame.insert(0, "date", _datetimes([d for d, _, _ in rows], dtype))
    return frame


#: The statistics of the benchmark's own row: the rest compare it with itself, or count trades.
BENCHMARK_STATS = ("ann_return", "ann_volatility", "sharpe", "max_drawdown")


def _benchmark_stats(returns: pd.DataFrame, periods_per_year: float) -> pd.Series:
    """The benchmark's :data:`BENCHMARK_STATS` over every period; the other statistics NaN."""
    bench = returns["benchmark"]
    row = performance_stats(bench, bench, returns["rf"], periods_per_year).as_dict()
    return pd.Series({k: v if k in BENCHMARK_STATS else math.nan for k, v in row.items()},
                     name="benchmark", dtype=float)


def _anchor_notes(names: Sequence[str], books: Mapping[str, _Book]) -> list[str]:
    """A line per anchored strategy that missed its target on some dates (the first named)."""
    out = []
    for name in names:
        missed, book = books[name].not_reached, books[name]
        if missed:
            first, why = missed[0]
            out.append(f"{name}: the tracking-error target was not reached on {len(missed)} "
                       f"of {len(book.gammas)} rebalances (the gamma path's column reached); the "
                       f"first, {first:%Y-%m-%d}: {why}")
    return out
