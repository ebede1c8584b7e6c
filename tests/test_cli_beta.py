"""The xlfuncs command line: beta-neutral and etf-holdings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlfuncs import core
from xlfuncs.cli import main
from xlfuncs.core import Labelled
from xlfuncs.data.samples import sample_path

FIXTURES = Path(__file__).parent / "fixtures" / "etf"


@pytest.fixture
def files(tmp_path):
    out = {}
    for name in ("sample_holdings.csv", "sample_etf_weights.csv", "sp500_prices_2022.csv"):
        out[name] = tmp_path / name
        out[name].write_text(sample_path(name).read_text())
    return out


def sample_cov() -> pd.DataFrame:
    with sample_path("sp500_prices_2022.csv").open() as fh:
        prices = pd.read_csv(fh, index_col=0)
    r = core.simple_returns(prices.to_numpy())
    cov = core.covariance(r, "sample", 252)
    return pd.DataFrame(cov, index=prices.columns, columns=prices.columns)


def test_hedge_from_prices(files, tmp_path, capsys):
    out = tmp_path / "hedged.csv"
    rc = main(["beta-neutral", "--holdings", str(files["sample_holdings.csv"]),
               "--etf", str(files["sample_etf_weights.csv"]),
               "--prices", str(files["sp500_prices_2022.csv"]), "--periods-per-year", "252",
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "after" in text and "layout: plain" in text
    got = pd.read_csv(out)
    assert list(got.columns) == ["ticker", "current weight", "new weight"]
    assert got["ticker"].iloc[-1] == core.HEDGE_TICKER
    cov = sample_cov()
    etf = pd.read_csv(files["sample_etf_weights.csv"])
    after = core.portfolio_beta(
        Labelled(got["new weight"].to_numpy(), tuple(got["ticker"])),
        Labelled(etf["weight"].to_numpy(), tuple(etf["ticker"])),
        Labelled(cov.to_numpy(), tuple(cov.index)),
    )
    assert abs(after) < 1e-10
    # the printed tracking error: the hedge's ETF basket traded asset by asset, annualised
    # as the covariance from 252 daily prices is
    printed = re.search(r"tracking error of the change: (\d+\.\d{6}) \((\d+\.\d{2})%\) a year "
                        r"\(252 periods per year\)", text)
    assert printed, text
    wf = (etf.set_index("ticker")["weight"] / etf["weight"].sum()).reindex(cov.index).fillna(0)
    d = wf * got["new weight"].iloc[-1]
    te = float(np.sqrt(d @ cov @ d))
    assert float(printed.group(1)) == pytest.approx(te, abs=5e-7)
    assert float(printed.group(2)) == pytest.approx(100 * te, abs=5e-3)


def test_reweight_from_a_cov_file_in_another_order(files, tmp_path, capsys):
    cov = sample_cov()
    order = list(reversed(cov.index))
    cov_file = tmp_path / "cov.csv"
    cov.loc[order, order].to_csv(cov_file)
    out = tmp_path / "reweighted.csv"
    rc = main(["beta-neutral", "--holdings", str(files["sample_holdings.csv"]),
               "--etf", str(files["sample_etf_weights.csv"]), "--cov", str(cov_file),
               "--method", "reweight", "--long-only", "--target", "0.5", "--out", str(out)])
    assert rc == 0
    got = pd.read_csv(out)
    assert (got["new weight"] >= 0).all()
    assert got["new weight"].sum() == pytest.approx(1.0, abs=1e-12)
    etf = pd.read_csv(files["sample_etf_weights.csv"])
    wf = etf.set_index("ticker")["weight"].reindex(cov.index).fillna(0.0)
    beta = (cov @ wf) / float(wf @ cov @ wf)
    assert float(beta[got["ticker"]].to_numpy() @ got["new weight"]) == pytest.approx(0.5,
                                                                                    abs=1e-10)
    assert "reachable beta" in capsys.readouterr().out


def test_unreachable_target_fails_and_keeps_the_old_output(files, tmp_path, capsys):
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    rc = main(["beta-neutral", "--holdings", str(files["sample_holdings.csv"]),
               "--etf", str(files["sample_etf_weights.csv"]),
               "--prices", str(files["sp500_prices_2022.csv"]),
               "--method", "reweight", "--long-only", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xlfuncs: error: target_beta 0 cannot be reached with long_only")
    assert "\n" not in err
    assert out.read_text() == "precious\n"


def test_missing_ticker_in_holdings_is_named(files, tmp_path, capsys):
    holdings = tmp_path / "h.csv"
    holdings.write_text("ticker,weight\nAAPL,0.5\nNVDA,0.5\n")
    rc = main(["beta-neutral", "--holdings", str(holdings),
               "--etf", str(files["sample_etf_weights.csv"]),
               "--prices", str(files["sp500_prices_2022.csv"])])
    assert rc == 2
    assert "cov has no row for NVDA (in holdings)" in capsys.readouterr().err


def test_etf_holdings_ishares(tmp_path, capsys):
    out = tmp_path / "aiq.csv"
    rc = main(["etf-holdings", str(FIXTURES / "ishares_aiq.csv"), "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "as of: 2026-10-05" in text and "dropped 3 cash/derivative rows" in text
    got = pd.read_csv(out)
    assert list(got.columns[:2]) == ["ticker", "weight"]
    assert got["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    assert "USD" not in set(got["ticker"])
    assert not np.isnan(got["weight"]).any()


def test_etf_holdings_unknown_layout(capsys):
    rc = main(["etf-holdings", str(FIXTURES / "unknown_layout.csv")])
    assert rc == 2
    assert "not a known holdings layout" in capsys.readouterr().err


def test_a_missing_holdings_file_is_named_once(files, capsys):
    rc = main(["beta-neutral", "--holdings", "nope.csv", "--etf",
               str(files["sample_etf_weights.csv"]), "--cov", "nope-cov.csv"])
    assert rc == 2
    assert capsys.readouterr().err.strip() == "xlfuncs: error: holdings: no such file nope.csv"
