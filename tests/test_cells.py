"""The cell parser on its own: what xlwings hands a UDF in, numbers and labels or one error out."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from xlfuncs.errors import InputError
from xlfuncs.excel import cells

D1, D2, D3, D4 = (dt.datetime(2024, 1, d) for d in (2, 3, 4, 5))


def raises(message: str, func, *args, **kwargs) -> str:
    """Call ``func``; it must raise one short InputError matching ``message``."""
    with pytest.raises(InputError) as info:
        func(*args, **kwargs)
    text = str(info.value)
    assert re.search(message, text), text
    assert "\n" not in text and len(cells.error_text(text)) < 250
    return text


# --------------------------------------------------------------------------- number text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,234", 1234.0),
        ("12,345.67", 12345.67),
        ("-1,234,567", -1234567.0),
        ("1,234%", 12.34),
        ("0.012", 0.012),
        ("(0.5)", -0.5),
        ("( 1,234.5 )", -1234.5),
        ("(50%)", -0.5),
        ("$0.5", 0.5),
        ("$1,234", 1234.0),
        ("-$1,234.5", -1234.5),
        ("$-2", -2.0),
        ("($3)", -3.0),
        (" 15% ", 0.15),
        ("1.98%", 0.0198),
        ("1E-05", 1e-05),
        ("+2", 2.0),
        (".5", 0.5),
    ],
)
def test_number_text_is_read(text, value):
    assert cells._parse_number(text) == pytest.approx(value, rel=1e-15)
    assert cells.number(text, "x") == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize(
    "text",
    ["0,012", "1,2", "12,34", "1,2345", "01,234", "0,123", "1.234,56", ",123", "1,,234",
     "(-5)", "-(5)", "--5", "$$5", "5$", "$5%", "(5", "5)", "nan", "inf", "1_000", "abc", ""],
)
def test_text_that_is_not_a_number(text):
    assert cells._parse_number(text) is None
    raises("x has .* a number is needed", cells.number, text, "x", "row 2")


def test_decimal_comma_text_is_reported_not_read_as_thousands():
    raises(r'vols has text "0,012" at row 2; a number is needed',
           cells.vector, [[0.2], ["0,012"]], "vols")


@pytest.mark.parametrize("value", [1e101, -1e300, 1e-101, -5e-200])
def test_numbers_out_of_range_are_reported(value):
    raises(r"x has the number .* at row 1, column 2, out of range", cells.number, value, "x",
           "row 1, column 2")
    grid = [[0.1, 0.2], [0.3, 0.4]]
    grid[1][0] = value
    raises(r"cov has the number .* at row 2, column 1, out of range", cells._numbers, grid,
           "cov", 0, 0)


@pytest.mark.parametrize(
    ("text", "shown", "typed"),
    [
        ("1e-400", "1e-400", None),  # a float rounds it to 0: it was read as 0
        ("-1E-400", "-1e-400", None),
        ("1e-399%", "1e-401", None),
        ("5e-324", "4.94e-324", 5e-324),  # subnormal, typed or written
        ("1e-101", "1e-101", 1e-101),
        ("(2.5e-200)", "-2.5e-200", -2.5e-200),
        ("1e400", "1e+400", None),  # a float rounds it to inf: it was "non-finite"
        ("1e101", "1e+101", 1e101),
        ("2e99999999999999999999", "2e+999999", None),  # beyond even Decimal's exponents
        ("2e-99999999999999999999", "2e-999999", None),
    ],
)
def test_out_of_range_numbers_are_refused_typed_or_as_text(text, shown, typed):
    """One rule, whichever way a number arrives: judged by the value written."""
    raises(rf"x has the number {re.escape(shown)} at row 3, out of range", cells.number, text,
           "x", "row 3")
    if typed is not None:
        raises(r"x has the number .* at row 3, out of range", cells.number, typed, "x", "row 3")
    grid = [[0.1, 0.2], [0.3, text]]
    raises(rf"m has the number {re.escape(shown)} at row 2, column 2, out of range",
           cells._numbers, grid, "m", 0, 0)


@pytest.mark.parametrize(("text", "typed"), [("1.98%", 0.0198), ("15%", 0.15), ("0.1", 0.1),
                                             ("1e-100", 1e-100), ("-1e100", -1e100),
                                             ("0e-400", 0.0), ("(0.07%)", -0.0007)])
def test_number_text_reads_as_the_same_number_typed(text, typed):
    """Text is read to the nearest float, as Excel stores the typed number (15% is 0.15)."""
    assert cells.number(text, "x") == typed


def test_numbers_at_the_edge_of_the_range_and_zero_are_kept():
    grid = [[1e100, -1e-100], [0.0, -0.0]]
    np.testing.assert_array_equal(cells._numbers(grid, "x", 0, 0), np.array(grid))
    assert cells.number("1e100", "x") == 1e100


def test_fast_path_still_names_the_bad_float():
    n = 50
    grid = [[float(i * n + j) for j in range(n)] for i in range(n)]
    np.testing.assert_array_equal(cells._numbers(grid, "m", 0, 0), np.array(grid))
    grid[7][9] = float("nan")
    raises("m has a non-finite number at row 9, column 11", cells._numbers, grid, "m", 1, 1)


# --------------------------------------------------------------------------- grid


def test_leading_and_trailing_blanks_are_trimmed():
    value = [[None, None, None], [None, "a", 1.0], ["", "b", 2.0], [None, None, None]]
    rows, r0, c0 = cells._grid(value, "x")
    assert rows == [["a", 1.0], ["b", 2.0]] and (r0, c0) == (1, 1)
    assert cells.grid(value, "x") == rows
    raises("x is empty", cells.grid, [[None, ""], [None, None]], "x")


def test_errors_name_cells_of_the_range_as_selected():
    """A range selected one row and one column too wide still names the right cell."""
    value = [[None, None, None], [None, "", "A"], [None, "A", 1.0]]
    raises("corr has a blank at row 2, column 3", cells.labelled_matrix,
           [[None, None, None], [None, 1.0, None], [None, 0.5, 1.0]], "corr")
    assert cells.labelled_matrix(value, "corr").labels == ("A",)
    raises("vols has a blank at row 3", cells.vector, [None, 0.2, None, 0.3], "vols")
    raises('holdings has text "x" at row 3, column 3', cells.holdings,
           [[None, None, None], [None, "ticker", "weight"], [None, "A", "x"]], "holdings")


# --------------------------------------------------------------------------- percent headers


def test_holdings_percent_header_divides_numbers_but_not_percent_text():
    got = cells.holdings([["ticker", "weight %"], ["A", 50.0], ["B", 50.0]], "holdings")
    np.testing.assert_array_equal(got.values, [0.5, 0.5])
    got = cells.holdings([["ticker", "weight %"], ["A", "50%"], ["B", "50%"]], "holdings")
    np.testing.assert_array_equal(got.values, [0.5, 0.5])
    got = cells.holdings([["ticker", "Weight (%)"], ["A", "60%"], ["B", 40.0]], "holdings")
    np.testing.assert_array_equal(got.values, [0.6, 0.4])
    # a CSV hands text: "50" under a % header is 50 percent
    got = cells.holdings([["ticker", "weight %"], ["A", "50"], ["B", "50"]], "holdings")
    np.testing.assert_array_equal(got.values, [0.5, 0.5])
    # no % header: percent text is explicit, numbers are fractions
    got = cells.holdings([["ticker", "weight"], ["A", "50%"], ["B", 0.5]], "holdings")
    np.testing.assert_array_equal(got.values, [0.5, 0.5])


@pytest.mark.parametrize(
    "value",
    [
        [["ticker", "weight %"], ["A", 0.5], ["B", 0.5]],
        [["ticker", "weight %"], ["A", 0.75], ["B", -0.75]],  # 1.5% gross
        [["ticker", "name", "weight (%)"], ["A", "a", 0.3], ["B", "b", 0.7]],
        [["ticker", "weight %"], ["A", "0.5"], ["B", "0.5"]],
    ],
)
def test_holdings_percent_header_over_fractions_is_a_clash(value):
    raises(r'holdings is in percent by its header "weight \(?%\)?", so its weights total '
           r"[0-9.]+%; type 50 for 50% under a % header, or remove the % from the header",
           cells.holdings, value, "holdings")


def test_holdings_percent_header_above_the_clash_threshold_is_read():
    got = cells.holdings([["ticker", "weight %"], ["A", 1.0], ["B", 0.51]], "holdings")
    np.testing.assert_allclose(got.values, [0.01, 0.0051])


def test_vector_percent_header_weights_and_vols():
    got = cells.vector([["weight %"], [50.0], [50.0]], "weights", "weight")
    np.testing.assert_array_equal(got.values, [0.5, 0.5])
    got = cells.vector([["weight %", 60.0, "40%"]], "weights", "weight")
    np.testing.assert_array_equal(got.values, [0.6, 0.4])
    got = cells.vector([["ticker", "vol %"], ["A", 20.0], ["B", "30%"]], "vols", "vol")
    np.testing.assert_array_equal(got.values, [0.2, 0.3])
    assert got.labels == ("A", "B")
    got = cells.vector([["ticker", "A", "B"], ["vol %", 20.0, 30.0]], "vols", "vol")
    np.testing.assert_array_equal(got.values, [0.2, 0.3])
    raises(r'weights is in percent by its header "weight %", so its weights total 1%',
           cells.vector, [["weight %"], [0.5], [0.5]], "weights", "weight")
    raises(r'vols has 0.3 at row 3 under the header "vol %", a vol of 0.3%; type 20 for 20%',
           cells.vector, [["vol %"], [20.0], [0.3]], "vols", "vol")
    raises(r"vols has 0.2 at column 2 under", cells.vector, [["vol %", 0.2, 0.3]], "vols", "vol")


def test_vector_quantity_is_a_parameter():
    """The check follows ``quantity``, not the argument's name, when it is given."""
    cells_ = [["x %"], [0.5], [0.5]]
    raises("w is in percent", cells.vector, cells_, "w", quantity="weight")
    raises("w has 0.5 at row 2", cells.vector, cells_, "w", quantity="vol")
    np.testing.assert_array_equal(cells.vector(cells_, "w").values, [0.005, 0.005])
    np.testing.assert_array_equal(cells.vector([["x %"], [20.0], [30.0]], "w",
                                               quantity="vol").values, [0.2, 0.3])


# --------------------------------------------------------------------------- holdings shapes


def test_holdings_several_weight_columns_are_ambiguous():
    head = ["ticker", "Portfolio weight", "Benchmark weight", "Active weight"]
    value = [head, ["A", 0.6, 0.5, 0.1], ["B", 0.4, 0.5, -0.1]]
    raises(r'holdings has several weight columns \("Portfolio weight", "Benchmark weight", '
           r'"Active weight"\)', cells.holdings, value, "holdings")
    plain = [["Ticker", "Bench weight", " Weight % ", "Active weight"],
             ["A", 0.5, 60.0, 0.1], ["B", 0.5, 40.0, -0.1]]
    np.testing.assert_array_equal(cells.holdings(plain, "h").values, [0.6, 0.4])
    two_plain = [["ticker", "weight", "Weight"], ["A", 0.5, 0.5], ["B", 0.5, 0.5]]
    raises("several weight columns", cells.holdings, two_plain, "h")
    # the table BETA_NEUTRAL spills reads back as its new weights
    spilled = [["ticker", "current weight", "new weight"], ["A", 0.5, 0.7], ["B", 0.5, 0.3]]
    np.testing.assert_array_equal(cells.holdings(spilled, "h").values, [0.7, 0.3])


@pytest.mark.parametrize(
    ("value", "labels", "weights"),
    [
        ([["A", 1.0]], ("A",), [1.0]),  # one line, no header
        ([["A", "B"], [0.5, 0.5]], ("A", "B"), [0.5, 0.5]),  # transposed, 2 assets
        ([["A", "B", "C"], [0.3, 0.3, 0.4]], ("A", "B", "C"), [0.3, 0.3, 0.4]),
        ([["ticker", "A", "B"], ["weight", 0.5, 0.5]], ("A", "B"), [0.5, 0.5]),
        ([["ticker", "A"], ["weight", 1.0]], ("A",), [1.0]),
        ([["A", 0.5], ["B", 0.5]], ("A", "B"), [0.5, 0.5]),
        ([["ticker", "weight"], ["A", 1.0]], ("A",), [1.0]),
        ([["Name", "Wt"], ["A", 0.5], [None, None], ["B", 0.5]], ("A", "B"), [0.5, 0.5]),
        # numeric-looking text tickers
        ([["ticker", "weight"], ["7203", 0.5], ["0700", 0.5]], ("7203", "0700"), [0.5, 0.5]),
        ([["7203", 0.5], ["0700", 0.5]], ("7203", "0700"), [0.5, 0.5]),
        ([["7203", "0700"], [0.5, 0.5]], ("7203", "0700"), [0.5, 0.5]),
        ([["7203", "0.5"], ["0700", "0.5"]], ("7203", "0700"), [0.5, 0.5]),  # a CSV
        ([["7203", "0700", "9984"], [0.3, 0.3, 0.4]], ("7203", "0700", "9984"), [0.3, 0.3, 0.4]),
    ],
)
def test_holdings_shapes(value, labels, weights):
    got = cells.holdings(value, "holdings")
    assert got.labels == labels
    np.testing.assert_array_equal(got.values, weights)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([["ticker", "weight"], [0.5, 0.5]], "needs a ticker at row 2, column 1"),
        ([["A", 0.5], ["12%", 0.5]], r'needs a ticker at row 2, column 1 \(found text "12%"\)'),
        ([["A", 0.5], [7203.0, 0.5]], r"needs a ticker at row 2, column 1 \(found the number"),
        ([["Sym", "Name", "Wt"], ["A", "a", 0.5]], r"needs a column headed weight"),
        ([["A", "a", 0.5], ["B", "b", 0.5], ["C", "c", 0.5]], "has 3 columns and no header"),
        ([["A"], [0.5]], "needs two columns"),
        ([["ticker", "weight"]], "has a header but no values"),
    ],
)
def test_holdings_bad_shapes(value, message):
    raises("holdings " + message, cells.holdings, value, "holdings")


def test_vector_two_by_two_reads_columns_then_rows():
    got = cells.vector([["A", 0.5], ["B", 0.5]], "weights")
    assert got.labels == ("A", "B")
    got = cells.vector([["A", "B"], [0.4, 0.6]], "weights")
    assert got.labels == ("A", "B") and list(got.values) == [0.4, 0.6]
    raises("weights has a blank at row 2, column 2", cells.vector, [["A", 0.5], ["B", None]],
           "weights")


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("head", ["date", "Date", "MONTH", "period", "yyyymm", "Trade date",
                                  "Date (month end)", "yyyy-mm", "Day", "time"])
def test_a_date_word_makes_the_first_column_the_index(head):
    value = [[head, "A", "B"], [202401.0, 0.01, 0.02], [202402.0, -0.01, 0.0]]
    tab = cells.table(value, "returns")
    assert tab.columns == ("A", "B")
    assert tab.index == (202401.0, 202402.0)
    np.testing.assert_array_equal(tab.values, [[0.01, 0.02], [-0.01, 0.0]])


def test_an_asset_named_like_a_date_word_is_not_an_index():
    assert not cells._is_date_header("Time Warner")
    tab = cells.table([["Time Warner", "AT&T"], [0.01, 0.02], [0.02, 0.01]], "returns")
    assert tab.index is None and tab.columns == ("Time Warner", "AT&T")


def test_index_under_a_date_word_may_be_text_dates():
    tab = cells.table([["month", "A"], ["2024-01", 100.0], ["2024-02", 101.0]], "prices")
    assert tab.index == ("2024-01", "2024-02") and tab.columns == ("A",)


def test_numeric_ids_in_a_header_above_a_date_index_are_labels():
    value = [["date", 10107.0, 14593.0], [D1, 0.01, 0.02], [D2, -0.01, 0.0]]
    tab = cells.table(value, "returns")
    assert tab.columns == ("10107", "14593") and tab.index == (D1, D2)
    np.testing.assert_array_equal(tab.values, [[0.01, 0.02], [-0.01, 0.0]])
    tab = cells.table([["permno", 10107.0], [D1, 0.01], [D2, 0.02]], "returns")
    assert tab.columns == ("10107",)


def test_a_row_of_text_ids_above_numbers_is_a_header():
    tab = cells.table([["10107", "14593"], [0.01, 0.02], [-0.01, 0.0]], "returns")
    assert tab.columns == ("10107", "14593") and tab.index is None
    np.testing.assert_array_equal(tab.values, [[0.01, 0.02], [-0.01, 0.0]])
    tab = cells.table([[None, "10107", "14593"], [D1, 0.01, 0.02], [D2, -0.01, 0.0]], "r")
    assert tab.columns == ("10107", "14593") and tab.index == (D1, D2)
    # numbers stored as text, not ids: the row is data
    tab = cells.table([["0.01", "0.02"], [0.03, 0.04]], "returns")
    assert tab.columns is None
    np.testing.assert_array_equal(tab.values, [[0.01, 0.02], [0.03, 0.04]])


def test_a_first_row_without_its_date_is_not_a_header():
    raises("prices has a blank at row 1, column 1 where a date is expected", cells.table,
           [[None, 100.0, 250.0], [D2, 101.0, 251.0], [D3, 102.0, 252.0]], "prices")
    raises('prices has text "n/a" at row 1, column 3; a number is needed', cells.table,
           [[D1, 100.0, "n/a"], [D2, 101.0, 251.0]], "prices")


@pytest.mark.parametrize(
    ("bad", "found"),
    [(None, "a blank"), ("#N/A", "#N/A"), (-2146826246, "#N/A"), ("", "a blank"),
     ("Average", 'text "Average"'), (45293.0, "the number 45293"), (True, "TRUE")],
)
def test_bad_cells_in_a_date_index_are_named(bad, found):
    value = [["date", "A"], [D1, 100.0], [D2, 101.0], [bad, 102.0], [D4, 103.0]]
    raises(f"prices has {re.escape(found)} at row 4, column 1 where a date is expected",
           cells.table, value, "prices")
    no_header = [[D1, 100.0], [D2, 101.0], [D3, 101.0], [bad, 102.0]]
    if bad not in (None, ""):  # a trailing blank row is trimmed
        raises(f"prices has {re.escape(found)} at row 4, column 1 where a date is expected",
               cells.table, no_header, "prices")


def test_a_total_row_under_yyyymm_numbers_is_named():
    value = [["yyyymm", "A"], [202401.0, 0.01], [202402.0, 0.02], ["Average", 0.015]]
    raises('returns has text "Average" at row 4, column 1 where a date is expected',
           cells.table, value, "returns")


def test_a_stray_date_among_numbers_is_a_bad_number_not_an_index():
    raises("returns has a date at row 2, column 1; a number is needed", cells.table,
           [[0.01, 0.02], [D1, 0.03], [0.02, 0.01]], "returns")


def test_date_column_without_data():
    raises("prices has a date column but no data columns", cells.table,
           [["date"], [D1], [D2]], "prices")


# --------------------------------------------------------------------------- date order

VALUES = [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]]


def dated(dates, head="date", values=VALUES):
    """A table with a date column: ``dates`` beside the rows of ``values``."""
    return [[head, "A", "B"], *([d, *v] for d, v in zip(dates, values, strict=True))]


@pytest.mark.parametrize(
    ("head", "oldest_first"),
    [
        ("date", [D1, D2, D3, D4]),
        ("date", [dt.date(2024, 1, 2), D2, dt.date(2024, 1, 4), D4]),  # date and datetime
        ("", [D1, D2, D3, D4]),  # dates found without a date word
        ("date", [45292.0, 45293.0, 45294.0, 45295.0]),  # Excel serials, General format
        ("yyyymm", [202311.0, 202312.0, 202401.0, 202402.0]),
        ("month", ["202311", "202312", "202401", "202402"]),  # digits as text
        ("date", ["2023-12-29", "2024-01-02", "2024-01-10", "2024-02-01"]),
        ("", ["2023-12-29", "2024-01-02", "2024-01-10", "2024-02-01"]),  # labels, all dates
        ("date", ["12/29/2023", "1/2/2024", "1/10/2024", "2/1/2024"]),  # month first only
        ("date", ["29/12/2023", "02/01/2024", "10/01/2024", "01/02/2024"]),  # day first only
        ("date", ["29.12.2023", "02.01.2024", "10.01.2024", "01.02.2024"]),
        ("month", ["Nov 2023", "Dec 2023", "Jan 2024", "Feb 2024"]),
        ("month", ["Nov-23", "Dec-23", "Jan-24", "Feb-24"]),
        ("date", ["29-Dec-2023", "2-Jan-2024", "10-Jan-2024", "1-Feb-2024"]),
        ("quarter", ["2023Q3", "2023 Q4", "Q1 2024", "2024-Q2"]),
    ],
)
def test_rows_with_dates_come_out_in_date_order(head, oldest_first):
    """Newest first (as downloads come) or shuffled: the same table, oldest first."""
    want = cells.table(dated(oldest_first, head), "prices")
    assert want.index == tuple(oldest_first)
    np.testing.assert_array_equal(want.values, VALUES)
    for order in ([3, 2, 1, 0], [2, 0, 3, 1]):
        got = cells.table(dated([oldest_first[i] for i in order], head,
                                [VALUES[i] for i in order]), "prices")
        assert got.index == want.index and got.columns == ("A", "B")
        np.testing.assert_array_equal(got.values, want.values)


def test_rows_without_dates_keep_the_users_order():
    rows = [VALUES[i] for i in (3, 0, 2, 1)]
    tab = cells.table([["A", "B"], *rows], "returns")
    assert tab.index is None
    np.testing.assert_array_equal(tab.values, rows)
    tab = cells.table([["", "A", "B"], *([lab, *v] for lab, v in zip("zxwy", rows,
                                                                      strict=True))], "r")
    assert tab.index == ("z", "x", "w", "y")  # labels, not dates
    np.testing.assert_array_equal(tab.values, rows)


@pytest.mark.parametrize(
    ("dates", "shown", "rows"),
    [
        ([D3, D1, D2, D1], "2024-01-02", "rows 3 and 5"),
        ([D3, dt.date(2024, 1, 2), D2, D1], "2024-01-02", "rows 3 and 5"),
        ([D2, dt.datetime(2024, 1, 3, 16, 30), D4, D2], "2024-01-03", "rows 2 and 5"),
        ([45293.0, 45292.0, 45293.0, 45291.0], "45293", "rows 2 and 4"),
        (["2024-01-02", "2024-01-03", "2024-01-02", "2024-01-04"], "2024-01-02",
         "rows 2 and 4"),
        (["2024Q1", "2024Q2", "Q1 2024", "2024Q4"], "2024Q1", "rows 2 and 4"),
    ],
)
def test_a_date_given_twice_is_reported_with_its_rows(dates, shown, rows):
    raises(rf"prices has the date {shown} twice \({rows} of column 1(, as .*)?\); give each "
           "date once", cells.table, dated(dates), "prices")
    # rows and column as the user selected them, one blank row and column above and left
    padded = [[None] * 4] + [[None, *row] for row in dated(dates)]
    low, high = (int(n) + 1 for n in re.findall(r"[0-9]+", rows))
    raises(rf"prices has the date {shown} twice \(rows {low} and {high} of column 2",
           cells.table, padded, "prices")


def test_a_date_given_twice_in_two_forms_shows_both():
    text = raises("twice", cells.table, dated(["2024Q1", "Q1 2024", "2024Q2", "2024Q3"],
                                              "quarter"), "prices")
    assert "(rows 2 and 3 of column 1, as 2024Q1 and Q1 2024)" in text


def test_text_dates_that_cannot_be_ordered_are_reported():
    raises(r'prices has text "Jan" at row 2, column 1 where a date is expected \(type Excel '
           r"dates, or text as YYYY-MM-DD\)", cells.table,
           dated(["Jan", "Feb", "Mar", "Apr"], "month"), "prices")
    raises(r'prices has text "2024-13-01" at row 4, column 1 where a date is expected',
           cells.table, dated(["2024-01-01", "2024-01-02", "2024-13-01", "2024-01-04"]),
           "prices")
    # both day first and month first, in different orders: a guess either way
    raises("prices has dates that read as month/day and as day/month; write them as YYYY-MM-DD",
           cells.table, dated(["01/02/2024", "02/01/2024", "03/01/2024", "04/01/2024"]),
           "prices")


def test_blank_and_bad_dates_are_named_at_their_own_rows_in_a_newest_first_table():
    raises("prices has a blank at row 3, column 1 where a date is expected", cells.table,
           dated([D4, None, D2, D1]), "prices")
    raises('prices has text "n/a" at row 2, column 3', cells.table,
           [["date", "A", "B"], [D4, 1.0, "n/a"], [D3, 1.0, 2.0], [D2, 1.0, 2.0]], "prices")


def test_labelled_matrix_takes_digit_text_labels():
    value = [["", "10107", "14593"], ["14593", 0.01, 0.04], ["10107", 0.04, 0.01]]
    got = cells.labelled_matrix(value, "cov")
    assert got.labels == ("14593", "10107")
    np.testing.assert_array_equal(got.values, [[0.04, 0.01], [0.01, 0.04]])
    # a matrix of text numbers stays unlabelled
    got = cells.labelled_matrix([["1", "0.5"], ["0.5", "1"]], "corr")
    assert got.labels is None
