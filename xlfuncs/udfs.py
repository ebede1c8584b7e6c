"""xlfuncs worksheet functions: put ``xlfuncs.udfs`` in xlwings' UDF_MODULES.

Each function parses its cells, calls the core, and spills a 2-D result, or
returns one text cell ``#xlfuncs! <reason>`` naming the argument at fault.
No mathematics here: it all lives in :mod:`xlfuncs.core`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# scikit-learn's first import takes a second or more (several on a laptop whose virus
# scanner reads every file), most of it scipy.stats. Importing the Ledoit-Wolf estimator
# (SPEC 3.3) here pays it once, when xlwings loads the worksheet functions, rather than
# inside the first HIST_COV/HIST_CORR(..., "ledoit-wolf") of a recalculation.
import sklearn.covariance  # noqa: F401

from xlfuncs import core
from xlfuncs.core import Labelled, align, align_all, normalise_ticker
from xlfuncs.errors import InputError
from xlfuncs.excel import cells
from xlfuncs.excel.functions import worksheet_function

__all__ = [
    "BETA_NEUTRAL",
    "ETF_BETAS",
    "ETF_HOLDINGS",
    "FACTOR_EXPOSURES",
    "HIST_CORR",
    "HIST_COV",
    "IMPLIED_AVG_CORR",
    "IMPLIED_CORR",
    "IMPLIED_COV",
    "INDEX_VOL",
    "PORTFOLIO_BETA",
    "RETURNS",
    "RISK_BUDGET",
    "RISK_CONTRIB",
]

_W = "Index weights: a row or column (or ticker and weight columns), e.g. 0.0198 for 1.98%."
_V = "Implied vols of the constituents, same order or tickers, annualised, e.g. 0.15 for 15%."
_S = "The index's implied vol, same units as vols, e.g. 0.116."
_C = ("Benchmark (e.g. historical) correlation matrix; tickers in its first row and column "
      "align it with weights and vols.")
_M = '"nearest" (default): closest correlation to corr; "shift": Buss-Vilkov shift.'
_R = ("Returns table: periods in rows, assets in columns; optional header row and date "
      "column. With dates, rows are taken in date order (each date once); without, oldest "
      "first.")
_RM = ('"sample" (default), "ewma" (half-life 60 periods, or "ewma:30"; the latest period '
       'weighs most), or "ledoit-wolf".')


def _implied(weights: Any, vols: Any, index_vol: Any, corr: Any, method: Any):
    labels, arr = align_all(
        wider=("corr",),
        weights=cells.vector(weights, "weights", "weight"),
        vols=cells.vector(vols, "vols", "vol"),
        corr=cells.labelled_matrix(corr, "corr"),
    )
    s = cells.scalar(index_vol, "index_vol")
    m = cells.choice(method, "method", ("nearest", "shift"), "nearest")
    core.check_units(arr["weights"], arr["vols"], s)
    res = core.implied_correlation(arr["weights"], arr["vols"], s, arr["corr"], m, labels=labels)
    return res, labels


@worksheet_function(ranges=("weights", "vols", "corr"), weights=_W, vols=_V, index_vol=_S,
                    corr=_C, method=_M)
def IMPLIED_CORR(weights, vols, index_vol, corr, method=None):
    """Implied correlation matrix: closest to corr that reproduces the index vol.

    Spills an n x n matrix (with ticker labels when corr or weights carry them).
    """
    res, labels = _implied(weights, vols, index_vol, corr, method)
    return cells.spill_matrix(res.corr, labels)


@worksheet_function(ranges=("weights", "vols", "corr"), weights=_W, vols=_V, index_vol=_S,
                    corr=_C, method=_M)
def IMPLIED_COV(weights, vols, index_vol, corr, method=None):
    """Implied covariance matrix V*C*V: implied vols with the implied correlation.

    Spills an n x n matrix (with ticker labels when corr or weights carry them).
    """
    res, labels = _implied(weights, vols, index_vol, corr, method)
    return cells.spill_matrix(res.cov, labels)


@worksheet_function(ranges=("weights", "vols"), weights=_W, vols=_V, index_vol=_S)
def IMPLIED_AVG_CORR(weights, vols, index_vol):
    """The one average (equi-)correlation that reproduces the index vol (CBOE style)."""
    _, arr = align_all(weights=cells.vector(weights, "weights", "weight"),
                      vols=cells.vector(vols, "vols", "vol"))
    s = cells.scalar(index_vol, "index_vol")
    core.check_units(arr["weights"], arr["vols"], s)
    return core.average_implied_correlation(arr["weights"], arr["vols"], s)


@worksheet_function(ranges=("weights", "vols", "corr"), weights=_W, vols=_V, corr=_C)
def INDEX_VOL(weights, vols, corr):
    """Index vol implied by a correlation matrix: sqrt(w'VCVw)."""
    _, arr = align_all(
        wider=("corr",),
        weights=cells.vector(weights, "weights", "weight"),
        vols=cells.vector(vols, "vols", "vol"),
        corr=cells.labelled_matrix(corr, "corr"),
    )
    core.check_units(arr["weights"], arr["vols"])
    return core.index_vol(arr["weights"], arr["vols"], arr["corr"])


@worksheet_function(ranges=("returns",), returns=_R, method=_RM)
def HIST_CORR(returns, method=None):
    """Correlation matrix of a returns table (sample, EWMA or Ledoit-Wolf).

    Spills an n x n matrix, labelled when the table has a header row.
    """
    tab = cells.table(returns, "returns")
    rm = core.parse_risk_method(cells.choice_text(method, "method"), "method")
    corr = core.correlation(tab.values, rm, tab.columns)
    return cells.spill_matrix(corr, tab.columns)


@worksheet_function(
    ranges=("returns",),
    returns=_R,
    method=_RM,
    periods_per_year="Annualisation: 252 daily, 52 weekly, 12 monthly; blank = 1 (per period).",
)
def HIST_COV(returns, method=None, periods_per_year=None):
    """Covariance matrix of a returns table, optionally annualised.

    Spills an n x n matrix, labelled when the table has a header row.
    """
    tab = cells.table(returns, "returns")
    rm = core.parse_risk_method(cells.choice_text(method, "method"), "method")
    ppy = cells.optional_scalar(periods_per_year, "periods_per_year", 1.0)
    cov = core.covariance(tab.values, rm, ppy, tab.columns)
    return cells.spill_matrix(cov, tab.columns)


@worksheet_function(
    ranges=("prices",),
    prices="Price table: periods in rows, assets in columns; optional header row and date "
    "column. With dates, rows are taken in date order (each date once); without, oldest first.",
)
def RETURNS(prices):
    """Simple returns p[t]/p[t-1] - 1 of a price table, in date order; keeps header and dates.

    Newest-first prices (as many downloads come) give the same returns, oldest first.
    """
    tab = cells.table(prices, "prices")
    r = core.simple_returns(tab.values, tab.columns)
    body: list[list[Any]] = r.tolist()
    if tab.index is not None:
        body = [[d, *row] for d, row in zip(tab.index[1:], body, strict=True)]
    if tab.columns is not None:
        header = ["date", *tab.columns] if tab.index is not None else list(tab.columns)
        body = [header, *body]
    return body


_H = ("Holdings: ticker and weight columns (header optional; a wider table needs a header "
      "with a weight column). Weights as fractions of the portfolio, shorts negative.")
_EW = "ETF constituents: ticker and weight columns, e.g. from ETF_HOLDINGS; scaled to sum to 1."
_CV = ("Covariance matrix with tickers in its first row and column (e.g. HIST_COV of a returns "
       "table with a header), covering the holdings and the ETF's constituents.")


def _beta_inputs(holdings: Any, etf_weights: Any, cov: Any):
    return (cells.holdings(holdings, "holdings"), cells.holdings(etf_weights, "etf_weights"),
            cells.labelled_matrix(cov, "cov"))


@worksheet_function(ranges=("etf_weights", "cov"), etf_weights=_EW, cov=_CV)
def ETF_BETAS(etf_weights, cov):
    """Beta of every asset in cov to the ETF: (cov w)_i / (w' cov w).

    Spills a ticker | beta table in the order of cov.
    """
    betas = core.etf_betas(cells.holdings(etf_weights, "etf_weights"),
                           cells.labelled_matrix(cov, "cov"))
    return [["ticker", "beta"], *([t, float(b)] for t, b in zip(betas.labels or (),
                                                              betas.values, strict=True))]


@worksheet_function(ranges=("holdings", "etf_weights", "cov"), holdings=_H, etf_weights=_EW,
                    cov=_CV)
def PORTFOLIO_BETA(holdings, etf_weights, cov):
    """Beta of the portfolio to the ETF; works on the output of BETA_NEUTRAL too."""
    return core.portfolio_beta(*_beta_inputs(holdings, etf_weights, cov))


@worksheet_function(
    ranges=("holdings", "etf_weights", "cov"),
    holdings=_H,
    etf_weights=_EW,
    cov=_CV,
    target_beta="The portfolio beta wanted; blank = 0 (beta-neutral).",
    method='"hedge" (default): keep holdings, add an ETF line; "reweight": closest holdings '
    "in risk terms.",
    long_only="reweight only: TRUE keeps every new weight >= 0. Blank = FALSE.",
    max_weight="reweight only: largest weight per holding, e.g. 10%. Blank = no limit.",
)
def BETA_NEUTRAL(holdings, etf_weights, cov, target_beta=None, method=None, long_only=None,
                 max_weight=None):
    """Holdings re-weighted to a target beta to the ETF (0 = beta-neutral).

    Spills ticker | current weight | new weight; hedge adds an "ETF (hedge)" line.
    """
    h, e, c = _beta_inputs(holdings, etf_weights, cov)
    res = core.beta_neutral(
        h, e, c,
        target_beta=cells.optional_scalar(target_beta, "target_beta", 0.0),
        method=cells.choice(method, "method", core.BETA_METHODS, "hedge"),
        long_only=cells.flag(long_only, "long_only"),
        max_weight=cells.optional_scalar(max_weight, "max_weight", None),
    )
    return res.table()


_EXCEL_ROWS = 1_048_576  # rows of a worksheet: a longer spill cannot be shown


@worksheet_function(
    path="Full path of the issuer's holdings download (iShares .csv, SSGA .xlsx, Janus "
    'Henderson .csv) or a ticker,weight .csv; quotes from "Copy as path" are fine.',
    weights='Plain files only, when the header does not say: "percent" or "fraction".',
)
def ETF_HOLDINGS(path, weights=None):
    """ETF constituents from an issuer's holdings file: spills ticker | weight (sums to 1).

    Cash and derivative rows are dropped; weights are renormalised to 100% when the
    holdings sum to 90%-110% (else an error), each in -100% to 100%.
    """
    from xlfuncs.data.etf_files import read_etf_file

    if isinstance(path, list | tuple) and len(path) == 1:  # a one-cell range
        path = path[0][0] if isinstance(path[0], list | tuple) and len(path[0]) == 1 else path
    error = cells.error_name(path)
    if error is not None:
        raise InputError(f"path has {error}; a file path is needed", "path")
    if not isinstance(path, str) or not path.strip().strip('"'):
        raise InputError("path must be the file's full path, as text", "path")
    file = Path(path.strip().strip('"')).expanduser()
    unit = cells.choice(weights, "weights", ("percent", "fraction"), "")
    etf = read_etf_file(file, percent={"percent": True, "fraction": False}.get(unit),
                        percent_name="weights")
    if len(etf.tickers) + 1 > _EXCEL_ROWS:  # the header row too
        raise InputError(f"path: {file.name} has {len(etf.tickers):,} holdings; with the header "
                         f"they need more than Excel's {_EXCEL_ROWS:,} rows", "path")
    return [["ticker", "weight"], *([t, float(w)] for t, w in zip(etf.tickers, etf.weights,
                                                                strict=True))]


# --------------------------------------------------------------------------- risk views

_PW = ("Portfolio weights: ticker and weight columns (header optional), or one row or column "
       "in the order of cov. Fractions, shorts negative.")
_BM = ("Optional benchmark: ticker and weight columns. Given, the active weights (weights - "
       "benchmark) and the tracking error are decomposed.")
_RCV = ("Covariance matrix (e.g. HIST_COV, annualised for annual figures); tickers in its "
        "first row and column match it with the weights.")


def _given(value: Any) -> bool:
    return value is not None and not cells.omitted(value)


def _with_benchmark(w: Labelled, b: Labelled | None, against: str,
                    against_labels: tuple[str, ...] | None
                    ) -> tuple[tuple[str, ...] | None, np.ndarray, np.ndarray | None, list[int]]:
    """Weights (and benchmark) over one universe, and its positions in ``against``.

    Without a benchmark the universe is the weights' tickers (or their order,
    unlabelled); with one it is the weights' tickers then the benchmark's
    others, each missing weight 0. ``against`` (cov or returns) must list
    every ticker of the universe, and may list more.
    """
    if b is None:
        if w.labels is None:
            return None, w.values, None, []
        idx = align(w.labels, against_labels or (), "weights", against, allow_extra=True)
        return w.labels, w.values, None, idx
    if w.labels is None:
        raise InputError("weights needs tickers (ticker and weight columns) to be matched "
                         "with benchmark", "weights")
    keys = {normalise_ticker(t): t for t in w.labels}
    for t in b.labels or ():
        keys.setdefault(normalise_ticker(t), t)
    labels = tuple(keys.values())
    pos = {k: i for i, k in enumerate(keys)}
    wv, bv = np.zeros(len(labels)), np.zeros(len(labels))
    for vec, item in ((wv, w), (bv, b)):
        for t, x in zip(item.labels or (), item.values, strict=True):
            vec[pos[normalise_ticker(t)]] = x
    idx = align(labels, against_labels or (), "weights and benchmark", against, allow_extra=True)
    return labels, wv, bv, idx


def _labelled_or_fail(item_labels: tuple[str, ...] | None, name: str, what: str) -> None:
    if item_labels is None:
        raise InputError(f"{name} needs tickers ({what}) to be matched with the weights", name)


@worksheet_function(
    ranges=("weights", "cov", "benchmark", "groups"),
    weights=_PW,
    cov=_RCV,
    benchmark=_BM,
    groups="Optional ticker and sector columns: contributions are summed by sector.",
)
def RISK_CONTRIB(weights, cov, benchmark=None, groups=None):
    """Risk contributions: Euler split of vol sqrt(w'Cw) (or tracking error vs benchmark).

    Spills ticker (or group) | weight | marginal contribution | contribution | % of total, and
    a total row; contributions sum to the vol exactly.
    """
    w = cells.weights(weights, "weights")
    c = cells.labelled_matrix(cov, "cov")
    b = cells.holdings(benchmark, "benchmark") if _given(benchmark) else None
    if b is None and (w.labels is None or c.labels is None):
        labels, arr = align_all(wider=("cov",), weights=w, cov=c)
        wv, s, bv = arr["weights"], arr["cov"], None
    else:
        _labelled_or_fail(c.labels, "cov", "in its first row and column")
        labels, wv, bv, idx = _with_benchmark(w, b, "cov", c.labels)
        s = c.values[np.ix_(idx, idx)]
    res = core.risk_contributions(wv, s, bv, labels)
    first = "ticker"
    if _given(groups):
        if labels is None:
            raise InputError("groups needs weights with tickers (ticker and weight columns)",
                             "groups")
        tickers, names = cells.groups(groups, "groups")
        of = {normalise_ticker(t): g for t, g in zip(tickers, names, strict=True)}
        missing = [t for t in labels if normalise_ticker(t) not in of]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise InputError(f"groups has no group for {missing[0]}{more}", "groups")
        res = res.by_group([of[normalise_ticker(t)] for t in labels])
        first = "group"
    rows: list[list[Any]] = [[first, "active weight" if res.active else "weight",
                              "marginal contribution", "contribution", "% of total"]]
    for lab, x, m, ci, p in zip(res.labels, res.weights, res.marginal, res.contributions,
                                res.shares, strict=True):
        rows.append([lab, float(x), float(m) if np.isfinite(m) else "", float(ci), float(p)])
    rows.append(["total", float(res.weights.sum()), "", res.total, float(res.shares.sum())])
    return rows


def _bounds(value: Any) -> tuple[float | None, float | None] | None:
    if not _given(value):
        return None
    flat = [c for r in cells.grid(value, "bounds") for c in r]
    if len(flat) > 2:
        raise InputError("bounds must be one or two cells: smallest and largest weight",
                         "bounds")
    vals = [None if cells.omitted(c) else cells.number(c, "bounds") for c in flat]
    return (None, vals[0]) if len(vals) == 1 else (vals[0], vals[1])


@worksheet_function(
    ranges=("cov", "budgets", "bounds"),
    cov=_RCV,
    budgets="Optional shares of risk per asset (> 0, scaled to sum to 1), as a row or column "
    "or ticker and budget columns; blank = equal (risk parity).",
    bounds="Optional smallest and largest weight of every asset: two cells (either may be "
    "blank), or one cell = largest. E.g. 0%, 15%.",
)
def RISK_BUDGET(cov, budgets=None, bounds=None):
    """Long-only risk-budget weights (risk parity by default): each asset's share of risk.

    Spills ticker | weight | budget | share of risk | contribution, and a total row whose
    contribution is the vol.
    """
    c = cells.labelled_matrix(cov, "cov")
    if _given(budgets):
        labels, arr = align_all(cov=c, budgets=cells.weights(budgets, "budgets"))
        s, bud = arr["cov"], arr["budgets"]
    else:
        labels, s, bud = c.labels, c.values, None
    res = core.risk_budget(s, bud, _bounds(bounds), labels)
    rows: list[list[Any]] = [["ticker", "weight", "budget", "share of risk", "contribution"]]
    for row in zip(res.labels, res.weights, res.budgets, res.shares, res.contributions,
                   strict=True):
        rows.append([row[0], *map(float, row[1:])])
    rows.append(["total", float(res.weights.sum()), float(res.budgets.sum()),
                 float(res.shares.sum()), res.vol])
    return rows


def _date_rows(ret: cells.Table, fac: cells.Table) -> tuple[np.ndarray, np.ndarray]:
    """Rows of returns and factors for the same periods: common dates, else row by row."""
    if ret.index is not None and fac.index is not None:
        def key(d: Any) -> Any:
            return d.date() if hasattr(d, "date") and callable(d.date) else d
        at = {key(d): i for i, d in enumerate(fac.index)}
        pairs = [(i, at[key(d)]) for i, d in enumerate(ret.index) if key(d) in at]
        if not pairs:
            raise InputError("returns and factors have no dates in common", "factors")
        ri, fi = zip(*pairs, strict=True)
        return ret.values[list(ri)], fac.values[list(fi)]
    if len(ret.values) != len(fac.values):
        raise InputError(f"returns has {len(ret.values)} periods but factors has "
                         f"{len(fac.values)}; add dates to both to match them", "factors")
    return ret.values, fac.values


@worksheet_function(
    ranges=("weights", "returns", "factors", "benchmark"),
    weights=_PW,
    returns=_R + " A header of tickers matches the weights.",
    factors="Factor returns table: periods in rows, factors in columns, header of names; dates "
    "match it with returns. Same units as returns.",
    benchmark=_BM,
)
def FACTOR_EXPOSURES(weights, returns, factors, benchmark=None):
    """Factor betas of the portfolio (or active vs benchmark) from OLS per asset.

    Spills factor | exposure | variance | % of variance, then specific and total rows:
    the factor/specific split of variance per period.
    """
    w = cells.weights(weights, "weights")
    ret = cells.table(returns, "returns")
    fac = cells.table(factors, "factors")
    b = cells.holdings(benchmark, "benchmark") if _given(benchmark) else None
    r, f = _date_rows(ret, fac)
    if w.labels is not None or b is not None:
        _labelled_or_fail(ret.columns, "returns", "a header row")
        labels, wv, bv, idx = _with_benchmark(w, b, "returns", ret.columns)
        r = r[:, idx]
    else:
        labels, wv, bv = ret.columns, w.values, None
    res = core.factor_exposures(wv, r, f, bv, labels, fac.columns)
    total = res.total_variance
    rows: list[list[Any]] = [["factor", "active exposure" if res.active else "exposure",
                              "variance", "% of variance"]]
    for name, x, v, share in zip(res.factors, res.exposures, res.factor_contributions,
                                 res.factor_shares, strict=True):
        rows.append([name, float(x), float(v), float(share)])
    rows.append(["specific", "", res.specific_variance, res.specific_share])
    rows.append(["total", "", total, 1.0])
    return rows
