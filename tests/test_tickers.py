"""Ticker normalisation: one spelling per share class."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlfuncs.core import normalise_ticker


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BRK B", "BRK.B"), ("BRK.B", "BRK.B"), ("BRK-B", "BRK.B"), ("BRK/B", "BRK.B"),
        ("brk b", "BRK.B"), ("BRKB", "BRK.B"), ("BRK/B US", "BRK.B"), (" NVDA US ", "NVDA"),
        ("NVDA", "NVDA"), ("SAP GY", "SAP GY"), ("7203 JP", "7203 JP"), ("US", "US"),
        ("BF-B", "BF.B"), ("FOXA", "FOXA"), ("JPM-PC", "JPM-PC"), ("A", "A"),
    ],
)
def test_share_classes_and_suffixes(raw, expected):
    assert normalise_ticker(raw) == expected


@given(st.text(alphabet="ABSUXYZ0123 ./-", min_size=1, max_size=14))
def test_normalisation_is_idempotent(text):
    once = normalise_ticker(text)
    assert normalise_ticker(once) == once
