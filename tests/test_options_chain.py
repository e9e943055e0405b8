"""Model chains, selection helpers and vendor CSV import."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from options.calendar import listed_expiries
from options.chain import (
    CHAIN_COLUMNS,
    ChainFileError,
    build_chain,
    read_chain_csv,
    select_expiry,
    select_strike_by_delta,
    select_strike_by_moneyness,
)
from options.positions import MarketState
from options.pricing import bs_price

MARKET = MarketState(pd.Timestamp("2016-06-01"), 209.73, 0.14, 0.003, 0.02)


@pytest.fixture(scope="module")
def chain() -> pd.DataFrame:
    return build_chain(MARKET, listed_expiries(MARKET.as_of, 60, min_dte_days=1))


def test_chain_shape_and_quotes(chain):
    assert list(chain.columns) == list(CHAIN_COLUMNS)
    n_exp = chain["expiration"].nunique()
    strikes = chain["strike"].unique()
    assert len(chain) == n_exp * len(strikes) * 2
    assert strikes.min() >= 0.8 * MARKET.spot and strikes.max() <= 1.2 * MARKET.spot
    np.testing.assert_allclose(np.diff(np.sort(strikes)), 1.0)
    assert (chain["bid"] <= chain["mid"]).all() and (chain["mid"] <= chain["ask"]).all()
    calls = chain["option_type"] == "call"
    assert chain.loc[calls, "delta"].between(0, 1).all()
    assert chain.loc[~calls, "delta"].between(-1, 0).all()
    row = chain.iloc[123]
    assert row["mid"] == pytest.approx(
        bs_price(
            row["option_type"],
            MARKET.spot,
            row["strike"],
            row["t_years"],
            MARKET.rate,
            row["implied_volatility"],
            MARKET.dividend_yield,
        )
    )


def test_chain_put_call_parity_at_mid(chain):
    calls = chain[chain["option_type"] == "call"].set_index(["expiration", "strike"])
    puts = chain[chain["option_type"] == "put"].set_index(["expiration", "strike"])
    gap = calls["mid"] - puts["mid"]
    t = calls["t_years"]
    strike = calls.index.get_level_values("strike")
    fwd = MARKET.spot * np.exp(-MARKET.dividend_yield * t) - strike * np.exp(-MARKET.rate * t)
    np.testing.assert_allclose(gap, fwd, atol=1e-10)


def test_n_strikes_each_side():
    out = build_chain(
        MARKET, [pd.Timestamp("2016-06-17")], strike_spacing=5.0, n_strikes_each_side=3
    )
    assert sorted(out["strike"].unique()) == [195.0, 200.0, 205.0, 210.0, 215.0, 220.0, 225.0]


def test_selection_helpers(chain):
    expiry = select_expiry(chain, 30)
    assert expiry == pd.Timestamp("2016-07-01")
    row = select_strike_by_delta(chain, expiry, "put", 0.30)
    assert abs(abs(row["delta"]) - 0.30) < 0.03 and row["strike"] < MARKET.spot
    row = select_strike_by_moneyness(chain, expiry, "call", 1.05)
    assert row["strike"] == round(1.05 * MARKET.spot)
    with pytest.raises(ValueError, match="no put quotes"):
        select_strike_by_delta(chain, pd.Timestamp("2016-06-02"), "put", 0.3)


# --------------------------------------------------------------------------- CSV import
def write(tmp_path, text: str, name: str = "chain.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """[QUOTE_DATE], [EXPIRE_DATE], Strike, TYPE, Bid, ASK, UNDERLYING_LAST, Volume
2016-06-01,2016-07-15,200,C,11.10,11.30,209.73,120
2016-06-01,2016-07-15,200,P,2.10,2.16,209.73,300
2016-06-01,2016-06-17,210,call,2.50,2.56,209.73,
"""


def test_read_chain_csv_normalises_columns_and_computes_iv(tmp_path):
    df = read_chain_csv(write(tmp_path, GOOD), rate=0.003)
    assert {
        "quote_date",
        "expiration",
        "strike",
        "option_type",
        "bid",
        "ask",
        "underlying_last",
        "volume",
        "mid",
        "dte_days",
        "implied_volatility",
    } <= set(df)
    assert set(df["option_type"]) == {"call", "put"}
    assert df["dte_days"].tolist() == [16, 44, 44]
    assert df["implied_volatility"].between(0.05, 0.5).all()
    row = df.iloc[1]
    assert bs_price(
        row["option_type"],
        209.73,
        row["strike"],
        row["dte_days"] / 365,
        0.003,
        row["implied_volatility"],
    ) == pytest.approx(row["mid"], abs=1e-9)
    assert math.isnan(df["volume"].iloc[0])  # the blank volume stays missing


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (
            "quote_date,expiration,strike,option_type,bid\n2016-06-01,2016-07-15,200,C,1\n",
            r"missing column\(s\) \['ask'\]",
        ),
        (
            "quote_date,expiration,strike,option_type,bid,ask\n2016-06-01,soon,200,C,1,1.1\n",
            r"column 'expiration' has unparseable or missing dates in 1 row\(s\); first at data row 1",
        ),
        (
            "quote_date,expiration,strike,option_type,bid,ask\n2016-06-01,2016-07-15,200,X,1,1.1\n",
            r"column 'option_type' is not call/put",
        ),
        (
            "quote_date,expiration,strike,option_type,bid,ask\n2016-06-01,2016-07-15,-5,C,1,1.1\n",
            r"column 'strike' is not > 0",
        ),
        (
            "quote_date,expiration,strike,option_type,bid,ask\n2016-06-01,2016-07-15,200,C,abc,1.1\n",
            r"column 'bid' is not a finite number",
        ),
    ],
)
def test_read_chain_csv_errors_name_file_column_count_and_row(tmp_path, body, pattern):
    path = write(tmp_path, body, "bad_chain.csv")
    with pytest.raises(ChainFileError, match=pattern) as info:
        read_chain_csv(path)
    assert "bad_chain.csv" in str(info.value)


def test_read_chain_csv_sets_aside_invalid_quotes_and_counts_them(tmp_path):
    path = write(tmp_path,
                 "quote_date,expiration,strike,option_type,bid,ask\n"
                 "2016-06-01,2016-07-15,200,C,1,1.1\n2016-06-01,2016-07-15,205,C,2,1.5\n"
                 "2016-06-01,2016-07-15,210,C,2,1.9\n2016-06-01,2016-05-15,200,P,1,1.1\n"
                 "2016-06-01,2016-07-15,215,C,0,0\n2016-06-01,2016-07-15,220,C,,0.05\n"
                 "2016-06-01,2016-07-15,225,C,0.05,\n", "chain.csv")
    df = read_chain_csv(path)
    report = df.attrs["read_report"]
    assert report["set_aside"] == {"zero_quote": 1, "one_sided_quote": 2, "crossed_quote": 2,
                                   "non_session_date": 0, "expiry_before_quote_date": 1}
    assert report["n_rows_read"] == 7 and report["n_rows_kept"] == len(df) == 3
    assert df["strike"].tolist() == [200.0, 215.0, 220.0]
    assert df["valid_quote"].tolist() == [True, False, False]
    assert (df["bid"] <= df["ask"]).all()


def test_read_chain_csv_truncated_gzip(tmp_path):
    import gzip
    path = tmp_path / "cut.csv.gz"
    whole = gzip.compress(b"quote_date,expiration,strike,option_type,bid,ask\n"
                          + b"2016-06-01,2016-07-15,200,C,1,1.1\n" * 500)
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ChainFileError, match=r"cut\.csv\.gz' is truncated"):
        read_chain_csv(path)


def test_read_chain_csv_missing_file(tmp_path):
    with pytest.raises(ChainFileError, match="does not exist"):
        read_chain_csv(tmp_path / "nope.csv")
