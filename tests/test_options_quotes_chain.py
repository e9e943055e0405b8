"""The chain quote source: listed contracts at real quotes, smile marks for the rest, clear
errors for bars without a chain and for a chain whose underlying disagrees with the bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.units import CONTRACT_MULTIPLIER
from options.calendar import timestamp_close_ns
from options.chain_io import read_chain
from options.chain_market import UnderlyingMismatchError, prepare_chain_market
from options.pricing import bs_price
from options.quotes_chain import (
    ChainQuoteSource,
    MarketBars,
    NoChainForBarError,
    chain_market_frame,
    check_underlying,
)
from options.smile import market_ivs
from options.surface import SurfaceConfig, iv_at
from options.vix import chain_vix_index

DATA = Path(__file__).parent / "data" / "real_chains"
SPY = DATA / "spy_slice_2021-03-01_05.csv"
SPX = DATA / "spx_slice_2019-05-06_07.csv.gz"
RATE, DIV = 0.01, 0.015


def bars_for(chain: pd.DataFrame, rate: float = RATE, div: float = DIV, extra_dates=()):
    spot = chain.groupby("quote_date")["underlying_price"].first()
    for d in extra_dates:
        spot.loc[pd.Timestamp(d)] = spot.iloc[-1]
    spot = spot.sort_index()
    dates = pd.DatetimeIndex(spot.index)
    return MarketBars(dates=dates, close_ns=np.array([timestamp_close_ns(d) for d in dates]),
                      spot=spot.to_numpy(float), atm_iv=np.full(len(dates), 0.2),
                      rate=np.full(len(dates), rate), dividend_yield=div)


def model_chain() -> pd.DataFrame:
    """A dense chain priced by the default model surface (the `model` source's own mids)."""
    cfg = SurfaceConfig()
    rows = []
    dates = pd.bdate_range("2018-03-05", periods=3)
    for i, d in enumerate(dates):
        s = 270.0 + i
        for expiry in dates[0] + pd.to_timedelta([11, 25, 39, 60], unit="D"):
            dte = (expiry - d).days
            strikes = np.arange(230.0, 311.0, 1.0)
            iv = iv_at(0.16, s, strikes, dte / 365, cfg)
            for typ in ("call", "put"):
                mid = bs_price(typ, s, strikes, dte / 365, RATE, iv, DIV)
                rows.append(pd.DataFrame({
                    "quote_date": d, "expiry": expiry, "option_type": typ,
                    "strike": strikes, "bid_per_share": mid, "ask_per_share": mid,
                    "mid_per_share": mid, "volume": 5.0, "open_interest": 50.0,
                    "underlying_price": s, "zero_bid": mid <= 0, "iv_vendor": np.nan,
                    "root": "SPY", "dte_days": dte}))
    return pd.concat(rows, ignore_index=True)


def test_chain_of_model_quotes_gives_the_model_back():
    chain = model_chain()
    src = ChainQuoteSource(bars_for(chain), chain)
    expiry = src.expiries(1)[1]
    strikes = np.array([[255.0, 262.0], [268.0, 280.0]])
    got = src.quote(np.array([[1], [2]]), "put", strikes, expiry)
    assert got.mid_per_share.shape == (2, 2)
    for b in (1, 2):
        row = chain[(chain["quote_date"] == src.bars.dates[b]) & (chain["expiry"] == expiry)
                    & (chain["option_type"] == "put")].set_index("strike")["mid_per_share"]
        np.testing.assert_allclose(got.mid_per_share[b - 1], row.loc[strikes[b - 1]].to_numpy(),
                                   rtol=0, atol=1e-12)
        t = (expiry - src.bars.dates[b]).days / 365
        want_iv = iv_at(0.16, src.bars.spot[b], strikes[b - 1], t, SurfaceConfig())
        np.testing.assert_allclose(got.iv_annualized[b - 1], want_iv, atol=1e-7)
    assert not got.from_smile.any() and src.smile_marks == 0
    assert np.all(got.delta < 0) and np.all(got.gamma > 0) and np.all(got.vega_per_vol_point > 0)


def test_unlisted_contract_is_marked_from_the_smile_and_counted():
    chain = model_chain()
    src = ChainQuoteSource(bars_for(chain), chain)
    expiry = src.expiries(0)[2]
    got = src.quote(0, "put", np.array([260.5, 261.0]), expiry)
    np.testing.assert_array_equal(got.from_smile, [True, False])
    assert src.smile_marks == 1
    t = (expiry - src.bars.dates[0]).days / 365
    model_iv = iv_at(0.16, src.bars.spot[0], 260.5, t, SurfaceConfig())
    # SSVI cannot take the model's kinked linear wings exactly: within one vol point
    assert got.iv_annualized[0] == pytest.approx(model_iv, abs=0.01)
    assert got.bid_per_share[0] <= got.mid_per_share[0] <= got.ask_per_share[0]


def test_bar_without_chain_is_an_error_naming_the_date():
    chain = read_chain(SPY)
    src = ChainQuoteSource(bars_for(chain, extra_dates=["2021-03-08"]), chain)
    with pytest.raises(NoChainForBarError, match="2021-03-08"):
        src.expiries(5)
    with pytest.raises(NoChainForBarError, match="2021-03-08"):
        src.quote([0, 5], "put", 370.0, pd.Timestamp("2021-04-16"))


def test_known_answer_vertical_on_real_quotes():
    # 2021-04-16 370/380 put spread sold on 2021-03-01 (file rows): credit at the real bid of
    # the short and ask of the long; marked next day at the real mids
    chain = read_chain(SPY)
    src = ChainQuoteSource(bars_for(chain, rate=0.0005, div=0.013), chain)
    expiry = pd.Timestamp("2021-04-16")
    assert pd.Timestamp("2021-04-16") in src.expiries(0)
    np.testing.assert_array_equal(src.strikes(0, expiry, "put"), [370, 375, 380, 385, 390])
    q = src.quote(0, "put", np.array([380.0, 370.0]), expiry)
    assert q.bid_per_share[0] - q.ask_per_share[1] == pytest.approx(7.51 - 5.47)
    m = src.quote(1, "put", np.array([380.0, 370.0]), expiry)
    assert m.mid_per_share[0] - m.mid_per_share[1] == pytest.approx(8.725 - 6.30)
    assert src.volume(0, "put", 370.0, expiry) == (27595.0, 38626.0)
    assert src.volume(0, "put", 371.0, expiry) == (0.0, 0.0)


def test_selection_lists_only_valid_two_sided_quotes_and_filters_low_volume():
    chain = read_chain(SPX)
    bars = bars_for(chain, rate=0.026, div=0.02)
    expiry = pd.Timestamp("2019-06-03")
    everything = ChainQuoteSource(bars, chain).strikes(0, expiry, "call")
    bid_only = ChainQuoteSource(bars, chain, exclude_zero_bid=True).strikes(0, expiry, "call")
    liquid = ChainQuoteSource(bars, chain, min_volume=1).strikes(0, expiry, "call")
    day = chain[(chain["quote_date"] == bars.dates[0]) & (chain["expiry"] == expiry)
                & (chain["option_type"] == "call")]
    valid = day[day["valid_quote"]]
    assert day["zero_bid"].any()  # the slice has bid-less calls on that expiry ...
    assert len(everything) == len(valid) < len(day)  # ... and they are never listed
    np.testing.assert_array_equal(bid_only, everything)
    assert len(liquid) == int((valid["volume"] >= 1).sum()) < len(everything)


def test_check_underlying_stops_on_a_mismatch():
    chain = read_chain(SPX)
    bars = bars_for(chain)
    assert check_underlying(pd.Series(bars.spot, index=bars.dates), chain, 0.5) == 2
    scaled = pd.Series(bars.spot * 0.1, index=bars.dates)
    with pytest.raises(UnderlyingMismatchError, match=r"underlying_price.*2 of 2.*2019-05-06"):
        check_underlying(scaled, chain, 1.0)


def test_chain_market_frame():
    chain = read_chain(SPX)
    frame = chain_market_frame(chain, 0.026)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "iv_index", "rate"]
    assert frame.index.is_monotonic_increasing and len(frame) == 2
    assert (frame["close"] == chain.groupby("quote_date")["underlying_price"].first()).all()
    want = chain_vix_index(chain, 0.026)["iv_index"]
    np.testing.assert_allclose(frame["iv_index"].to_numpy(), want.to_numpy())
    assert frame.attrs["interval"] == "1d"


def test_market_ivs_match_vendor_ivs_on_real_quotes():
    chain = read_chain(SPY)
    ivs = market_ivs(chain, 0.0005)
    ok = ivs["iv_market"].notna() & ivs["iv_vendor"].notna()
    gap = (ivs.loc[ok, "iv_market"] - ivs.loc[ok, "iv_vendor"]).abs()
    assert ok.sum() > 30 and gap.median() < 0.01


def test_index_frame_stands_in_for_spy_at_one_tenth_and_supplies_the_index():
    chain = read_chain(SPY)
    spot = chain.groupby("quote_date")["underlying_price"].first()
    frame = pd.DataFrame({"close": spot * 10.03, "iv_index": 0.21, "rate": 0.001})
    frame.attrs["symbol"] = "^GSPC"
    cm = prepare_chain_market(chain, frame=frame, fit_all_smiles=False)
    assert set(cm.index_source) == {"frame"} and cm.rate == 0.001
    np.testing.assert_allclose(cm.index_by_date.to_numpy(), 0.21)
    frame.attrs["symbol"] = "SPY"  # same numbers read as SPY prices: 10x off
    with pytest.raises(UnderlyingMismatchError, match="2021-03-01"):
        prepare_chain_market(chain, frame=frame, fit_all_smiles=False)


def test_smiles_index_and_quotes_before_t_do_not_change_when_the_chain_is_cut_at_t():
    chain = read_chain(SPY)
    cut = pd.Timestamp("2021-03-03")
    short = chain[chain["quote_date"] <= cut]
    full_frame = chain_market_frame(chain, 0.0005)
    short_frame = chain_market_frame(short, 0.0005)
    pd.testing.assert_frame_equal(full_frame.loc[:cut], short_frame)
    full_src = ChainQuoteSource(bars_for(chain), chain)
    short_src = ChainQuoteSource(bars_for(short), short)
    expiry = pd.Timestamp("2021-04-16")
    for bar in range(3):
        a = full_src.quote(bar, "put", np.array([362.5, 370.0]), expiry)
        b = short_src.quote(bar, "put", np.array([362.5, 370.0]), expiry)
        np.testing.assert_array_equal(a.mid_per_share, b.mid_per_share)
        np.testing.assert_array_equal(a.iv_annualized, b.iv_annualized)


def test_position_greeks_are_the_chains_and_reading_them_is_not_a_mark():
    from options.positions import Fill, Leg, Position
    from options.quotes import position_greeks

    chain = model_chain()
    src = ChainQuoteSource(bars_for(chain), chain)
    expiry = src.expiries(1)[1]
    date = src.bars.dates[1]
    legs = (Leg("put", 262.0, expiry, -3), Leg("put", 260.5, expiry, 3))  # 260.5: not listed
    position = Position("bull_put_spread", legs, date, tuple(
        Fill(leg, date, leg.quantity_contracts, 1.0, 1.0, 0.0, "open") for leg in legs))
    got = position_greeks(src, 1, position)
    assert src.smile_marks == 0
    want = np.zeros(4)
    for leg in legs:
        q = src.quote(1, "put", np.array([leg.strike]), expiry)
        want += CONTRACT_MULTIPLIER * leg.quantity_contracts * np.array(
            [q.delta[0], q.gamma[0], q.theta_per_day[0], q.vega_per_vol_point[0]])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert src.smile_marks == 1  # the quote of the unlisted strike above
