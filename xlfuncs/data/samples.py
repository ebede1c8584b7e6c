"""The sample data that ships inside the package (so the demo and tests run offline)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

__all__ = ["SECTOR_INDEX_VOL", "SectorExample", "sample_path", "sector_example"]

SECTOR_INDEX_VOL = 0.116  # SPY 30-day implied vol, 18 Feb 2025 (SPEC section 5)


def sample_path(name: str):
    """Path-like handle of a bundled sample file (``importlib.resources``)."""
    return resources.files("xlfuncs.data") / "samples" / name


@dataclass(frozen=True)
class SectorExample:
    """The SPY sector example of SPEC section 5, in one consistent ticker order."""

    tickers: tuple[str, ...]
    weights: pd.Series
    vols: pd.Series
    corr: pd.DataFrame
    index_vol: float


def sector_example() -> SectorExample:
    """Load the bundled SPY sector example (weights, implied vols, historical correlation)."""
    with sample_path("sector_inputs_2025-02-18.csv").open() as fh:
        inputs = pd.read_csv(fh, index_col="ticker")
    with sample_path("sector_corr_2025-02-18.csv").open() as fh:
        corr = pd.read_csv(fh, index_col=0)
    tickers = tuple(inputs.index)
    corr = corr.loc[list(tickers), list(tickers)]
    return SectorExample(
        tickers=tickers,
        weights=inputs["spy_weight"].astype(float),
        vols=inputs["implied_vol_30d"].astype(float),
        corr=corr.astype(float),
        index_vol=SECTOR_INDEX_VOL,
    )
