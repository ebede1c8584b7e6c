"""Risk estimates (xlfuncs.core._risk): zero variance, EWMA half-lives, overflow.

Other HIST_COV/HIST_CORR tests live in test_udfs.py and test_factor.py; these
are the edge cases of the estimators themselves.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from errors_check import raises_exactly

from xlfuncs import udfs
from xlfuncs.core import RiskMethod, correlation, covariance, parse_risk_method
from xlfuncs.core._risk import simple_returns
from xlfuncs.errors import InputError

METHODS = ("sample", "ewma", "ewma:2", "ledoit-wolf")
# A constant column whose mean is not exactly representable: np.mean gives
# 0.1 plus a rounding error, so an absolute zero test saw a variance of 1e-35.
CONSTANT = [["A", "B"], [0.1, 0.02], [0.1, -0.01], [0.1, 0.03]]


def _error(func, *args) -> InputError:
    with pytest.raises(InputError) as info:
        func(*args)
    return info.value


@pytest.mark.parametrize("method", [None, *METHODS])
def test_constant_column_has_zero_variance(method):
    out = udfs.HIST_CORR(CONSTANT, method)
    assert isinstance(out, str), out
    assert "returns A has zero variance; its correlation is undefined" in out


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("level", [0.1, 1e-200, 3e150, -0.3])
def test_constant_column_at_any_scale(method, level):
    rng = np.random.default_rng(3)
    r = np.column_stack([rng.normal(0, 0.01, 50), np.full(50, level)])
    r[:, 1] = np.maximum(r[:, 1], -0.5)  # keep returns above -100%
    err = _error(correlation, r, method, ["X", "Y"])
    assert str(err) == "returns Y has zero variance; its correlation is undefined"
    assert err.argument == "returns"


@pytest.mark.parametrize("method", ["sample", "ewma:5"])
def test_constant_column_gives_exactly_zero_covariance(method):
    r = np.array([[0.1, 0.02], [0.1, -0.01], [0.1, 0.03], [0.1, 0.0]])
    cov = covariance(r, method)
    assert cov[0, 0] == 0.0 and cov[0, 1] == 0.0 and cov[1, 0] == 0.0
    assert cov[1, 1] > 0


def test_rounding_level_variation_is_zero_variance():
    x = 0.1
    col = [x, math.nextafter(x, 1), x, math.nextafter(x, 0)]
    r = np.column_stack([col, [0.02, -0.01, 0.03, 0.0]])
    assert "has zero variance" in str(_error(correlation, r))


def test_small_but_real_variation_is_kept():
    # Returns of 1e-12 are tiny but not rounding noise: they have a correlation.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 2))
    x[:, 1] += x[:, 0]
    expected = np.corrcoef(x, rowvar=False)
    for scale in (1e-12, 1e-150):
        np.testing.assert_allclose(correlation(x * scale), expected, atol=1e-12)


def test_huge_returns_do_not_give_inf():
    r = [[1e200, 0.01], [3e200, 0.02], [2e200, -0.01]]
    err = _error(covariance, r)
    assert "too large" in str(err) and err.argument == "returns"
    assert np.isfinite(correlation(np.array(r) * 1e-50)).all()


def test_periods_per_year_overflow():
    r = [[10.0, 2.0], [30.0, -0.5], [20.0, 0.1]]  # variance 100: times 1e308 overflows
    assert "too large" in str(_error(covariance, r, "sample", 1e308))
    assert np.isfinite(covariance(r, "sample", 1e300)).all()


# --------------------------------------------------------------------------- row order


@pytest.mark.parametrize("method", ["sample", "ledoit-wolf"])
def test_sample_and_shrinkage_do_not_depend_on_row_order(method):
    rng = np.random.default_rng(8)
    r = rng.normal(0.0005, 0.01, (80, 5)) + rng.normal(0, 0.01, (80, 1))
    for perm in (np.arange(79, -1, -1), rng.permutation(80)):
        np.testing.assert_allclose(covariance(r[perm], method), covariance(r, method),
                                   rtol=1e-12)
        np.testing.assert_allclose(correlation(r[perm], method), correlation(r, method),
                                   rtol=1e-12)


@pytest.mark.parametrize("halflife", [1, 7, 60])
def test_ewma_weighs_the_last_row_most(halflife):
    """The core takes rows oldest first (HIST_COV puts dated rows in that order)."""
    rng = np.random.default_rng(9)
    r = rng.normal(0.0005, 0.01, (50, 3)) + rng.normal(0, 0.01, (50, 1))
    want = pd.DataFrame(r).ewm(halflife=halflife).cov().loc[49].to_numpy()
    np.testing.assert_allclose(covariance(r, f"ewma:{halflife}"), want, rtol=1e-12)


# --------------------------------------------------------------------------- EWMA half-life


TINY = [["A", "B"], [0.01, 0.02], [0.02, -0.01], [-0.01, 0.03], [0.0, 0.01]]


def test_tiny_halflife_is_refused_not_inf():
    out = udfs.HIST_COV(TINY, "ewma:0.001")
    assert isinstance(out, str) and "inf" not in out.replace("RiskMetrics", "")
    assert "ewma half-life must be at least 1 period (got 0.001)" in out


@pytest.mark.parametrize(("lam", "halflife"), [(0.94, "11.2"), (0.97, "22.8"), (0.5, "1")])
def test_lambda_gets_its_half_life(lam, halflife):
    err = _error(parse_risk_method, f"ewma:{lam}")
    text = str(err)
    assert f"(got {lam:g})" in text and "RiskMetrics lambda" in text
    assert f"ewma:{halflife}" in text
    assert math.log(0.5) / math.log(lam) == pytest.approx(float(halflife), rel=5e-3)
    assert err.argument == "method"
    # the suggestion is accepted as it is written
    assert parse_risk_method(f"ewma:{halflife}").halflife == float(halflife)


def test_lambda_below_one_half_says_it_is_too_short_either_way():
    text = str(_error(parse_risk_method, "ewma:0.001"))
    assert "RiskMetrics lambda" in text and "also under 1" in text


@pytest.mark.parametrize("spec", ["ewma:-5", "ewma:0", "ewma=-5", "ewma -0.5"])
def test_non_positive_halflife_gets_the_halflife_message(spec):
    text = str(_error(parse_risk_method, spec))
    assert "half-life must be at least 1 period" in text
    assert "must be one of" not in text


@pytest.mark.parametrize("spec", ["ewma:abc", "ewma:1e999", "ewma:nan", "ewma:inf"])
def test_unreadable_halflife(spec):
    text = str(_error(parse_risk_method, spec))
    assert "half-life" in text and "must be one of" not in text


def test_halflife_of_one_and_more_is_fine():
    assert parse_risk_method("ewma:1").halflife == 1.0
    assert parse_risk_method("EWMA: 30").halflife == 30.0
    assert parse_risk_method("ewma 1e3").halflife == 1000.0
    cov = covariance(np.array(TINY[1:]), "ewma:1")
    assert np.isfinite(cov).all() and np.linalg.eigvalsh(cov).min() > 0


def test_risk_method_object_is_checked_too():
    r = np.array(TINY[1:])
    assert "at least 1 period" in str(_error(covariance, r, RiskMethod("ewma", 0.001)))
    assert "must be one of" in str(_error(covariance, r, RiskMethod("garch")))


def test_generic_message_still_for_unknown_methods():
    assert "must be one of" in str(_error(parse_risk_method, "garch"))


def test_every_error_by_its_text():
    r = np.random.default_rng(0).normal(0, 0.01, (20, 3))
    half = "method ewma half-life must be at least 1 period (got {:g})"
    lam = math.log(0.5) / math.log(0.94)  # RiskMetrics' lambda as a half-life
    for text, message in [
        ("ewma:abc", 'method ewma half-life must be a number of periods (got "abc")'),
        ("garch", 'method must be one of sample, ewma, ewma:HALFLIFE, ledoit-wolf (got "garch")'),
        ("ewma:0.94", half.format(0.94) + f"; if 0.94 is a RiskMetrics lambda, its half-life is "
         f"{lam:.3g}: use ewma:{lam:.3g}"),
        ("ewma:0.3", half.format(0.3) + "; as a RiskMetrics lambda it would be a half-life of "
         f"{math.log(0.5) / math.log(0.3):.2g} periods, also under 1"),
        ("ewma:-2", half.format(-2)),
        ("ewma:inf", "method ewma half-life must be a finite number of periods (got inf)"),
    ]:
        raises_exactly(message, "method", parse_risk_method, text)
    table = "returns must be a table (periods in rows, assets in columns)"
    nan, total_loss = r.copy(), r.copy()
    nan[3, 1] = np.nan
    total_loss[4, 2] = -1.0
    flat = r.copy()
    flat[:, 1] = 0.01
    for args, kwargs, argument, message in [
        ((r[0],), {}, "returns", table),
        ((np.zeros((2, 2, 2)),), {}, "returns", table),
        ((r[:1],), {}, "returns", "returns needs at least 2 rows of returns (has 1)"),
        ((nan,), {}, "returns", "returns has a non-finite value in row 4, column 2"),
        ((total_loss,), {"columns": ["A", "B", "C"]}, "returns",
         "returns has a return of -1 (≤ -100%) in C, row 5"),
        ((total_loss,), {}, "returns", "returns has a return of -1 (≤ -100%) in column 3, row 5"),
        ((r, RiskMethod("garch")), {}, "method",
         'method must be one of sample, ewma, ledoit-wolf (got "garch")'),
        ((r, "sample", 0), {}, "periods_per_year", "periods_per_year must be a positive number"),
        ((np.abs(r) * 1e160, "sample", 12), {}, "returns", "returns are too large: their "
         "covariance times periods_per_year overflows (returns are fractions, e.g. 0.01 for 1%)"),
    ]:
        raises_exactly(message, argument, covariance, *args, **kwargs)
    raises_exactly("returns B has zero variance; its correlation is undefined", "returns",
                   correlation, flat, columns=["A", "B", "C"])
    raises_exactly("returns column 2 has zero variance; its correlation is undefined", "returns",
                   correlation, flat)
    raises_exactly("prices needs at least 2 rows of prices", "prices", simple_returns,
                   [[1.0, 2.0]])
    raises_exactly("prices has a price of 0 in B, row 2; prices must be positive", "prices",
                   simple_returns, [[1.0, 2.0], [1.1, 0.0]], columns=["A", "B"])
    raises_exactly("prices has a price of -3 in column 2, row 2; prices must be positive",
                   "prices", simple_returns, [[1.0, 2.0], [1.1, -3.0]])
