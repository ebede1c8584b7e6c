"""xlfuncs worksheet functions: put ``xlfuncs.udfs`` in xlwings' UDF_MODULES.

Each function parses its cells, calls the core, and spills a 2-D result, or
returns one text cell ``#xlfuncs! <reason>`` naming the argument at fault.
No mathematics here: it all lives in :mod:`xlfuncs.core`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# scikit-learn's first import takes a second or more (several on a laptop whose virus
# scanner reads every file), most of it scipy.stats. Importing the Ledoit-Wolf estimator
# (SPEC 3.3) here pays it once, when xlwings loads the worksheet functions, rather than
# inside the first HIST_COV/HIST_CORR(..., "ledoit-wolf") of a recalculation.
import sklearn.covariance  # noqa: F401

from xlfuncs import core
from xlfuncs.core import align_all
from xlfuncs.errors import InputError
from xlfuncs.excel import cells
from xlfuncs.excel.functions import worksheet_function

__all__ = [
    "BETA_NEUTRAL",
    "ETF_BETAS",
    "ETF_HOLDINGS",
    "HIST_CORR",
    "HIST_COV",
    "IMPLIED_AVG_CORR",
    "IMPLIED_CORR",
    "IMPLIED_COV",
    "INDEX_VOL",
    "PORTFOLIO_BETA",
    "RETURNS",
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
