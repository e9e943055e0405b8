"""CBOE VIX method: a hand-checked strip, the zero-bid rule, the 30-day interpolation, a flat
smile and real SPX quotes against the published VIX closes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from options.chain_io import read_chain
from options.pricing import bs_price
from options.smile import ChainDataError, fit_smiles, market_ivs, parity_rate
from options.vix import (
    cboe_strip,
    chain_vix_index,
    smile_term_variance,
    term_variance,
    vix_from_terms,
)

SPX = Path(__file__).parent / "data" / "real_chains" / "spx_slice_2019-05-06_07.csv.gz"
NAN = np.nan


def test_hand_checked_strip_and_variance():
    strikes = np.array([90.0, 95.0, 100.0, 105.0, 110.0])
    call_mid = np.array([10.5, 6.0, 2.5, 0.8, 0.2])
    put_mid = np.array([0.5, 1.0, 2.5, 5.8, 10.2])
    bids = np.full(5, 0.1)
    t = 30 / 365
    fwd, k0, ks, qs, n_side = cboe_strip(strikes, call_mid, bids, put_mid, bids, 0.0, t)
    assert fwd == 100.0 and k0 == 100.0  # C - P = 0 at 100
    np.testing.assert_array_equal(ks, strikes)
    np.testing.assert_array_equal(qs, [0.5, 1.0, 2.5, 0.8, 0.2])
    assert n_side == {"put": 2, "call": 2}
    # by hand: dK = 5 everywhere; sum = 5 * (0.5/90^2 + 1/95^2 + 2.5/100^2 + 0.8/105^2
    # + 0.2/110^2) = 5 * 5.11623003e-4; sigma^2 = 2/T * sum - 0 = (730/30) * 2.558115015e-3
    assert term_variance(ks, qs, fwd, k0, 0.0, t) == pytest.approx(0.0622474654, rel=1e-9)


def test_strip_skips_a_zero_bid_and_stops_after_two():
    strikes = np.array([75.0, 80.0, 85.0, 90.0, 95.0, 100.0, 105.0, 110.0, 115.0, 120.0])
    call_mid = np.array([25.2, 20.3, 15.4, 10.5, 6.0, 2.5, 0.8, 0.2, 0.05, 0.05])
    put_mid = np.array([0.05, 0.05, 0.2, 0.5, 1.0, 2.5, 5.8, 10.2, 15.1, 20.0])
    put_bid = np.array([0.05, 0.0, 0.0, 0.1, 0.1, 2.4, 5.7, 10.1, 15.0, 19.9])
    call_bid = np.array([25.1, 20.2, 15.3, 10.4, 5.9, 2.4, 0.7, 0.0, 0.05, 0.05])
    _, k0, ks, _, n_side = cboe_strip(strikes, call_mid, call_bid, put_mid, put_bid, 0.0, 0.1)
    assert k0 == 100.0
    # puts: 95, 90 kept; 85 and 80 zero bids -> stop before 75. calls: 105 kept, 110 zero
    # bid skipped, 115 and 120 kept.
    np.testing.assert_array_equal(ks, [90.0, 95.0, 100.0, 105.0, 115.0, 120.0])
    assert n_side == {"put": 2, "call": 3}


def test_forward_uses_put_call_parity_at_the_closest_pair():
    strikes = np.array([95.0, 100.0, 105.0])
    call_mid = np.array([7.0, 3.6, 1.2])
    put_mid = np.array([1.5, 3.0, 5.9])
    fwd, k0, *_ = cboe_strip(strikes, call_mid, np.ones(3), put_mid, np.ones(3), 0.05, 0.5)
    assert fwd == pytest.approx(100.0 + np.exp(0.025) * 0.6)
    assert k0 == 100.0


def test_thirty_day_interpolation_by_hand():
    v1, v2 = 0.04, 0.0625
    got = vix_from_terms(v1, 25, v2, 32)
    t1, t2 = 25 / 365, 32 / 365
    want = np.sqrt((t1 * v1 * 2 / 7 + t2 * v2 * 5 / 7) * 365 / 30)
    assert got == pytest.approx(want, rel=1e-12)
    assert vix_from_terms(0.04, 30, None, None) == pytest.approx(0.2)


def _flat_chain(sigma: float, rate: float, q: float) -> pd.DataFrame:
    spot, date = 100.0, pd.Timestamp("2019-05-06")
    rows = []
    for dte in (23, 37):
        strikes = np.arange(30.0, 250.0, 0.5)
        t = dte / 365
        for typ in ("call", "put"):
            mid = bs_price(typ, spot, strikes, t, rate, sigma, q)
            bid = np.where(mid >= 0.01, np.round(mid * 0.99, 4), 0.0)
            rows.append(pd.DataFrame({
                "quote_date": date, "expiry": date + pd.Timedelta(days=dte),
                "option_type": typ, "strike": strikes, "bid_per_share": bid,
                "ask_per_share": 2 * mid - bid, "mid_per_share": mid, "volume": 1.0,
                "open_interest": 1.0, "underlying_price": spot, "zero_bid": bid <= 0,
                "iv_vendor": np.nan, "root": "X", "dte_days": dte}))
    return pd.concat(rows, ignore_index=True)


def test_flat_smile_gives_its_volatility():
    chain = _flat_chain(0.2, 0.02, 0.01)
    out = chain_vix_index(chain, 0.02)
    assert out["method"].iloc[0] == "listed"
    assert out["iv_index"].iloc[0] == pytest.approx(0.2, abs=0.002)


def test_real_spx_quotes_track_the_published_vix_close():
    chain = read_chain(SPX)
    out = chain_vix_index(chain, parity_rate(chain))
    published = {"2019-05-06": 0.1544, "2019-05-07": 0.2055}  # Cboe VIX daily closes
    for date, vix in published.items():
        got = out.loc[pd.Timestamp(date), "iv_index"]
        # the slice keeps every fifth strike and stops at 80% of spot: a small bias
        assert got == pytest.approx(vix, abs=0.006), date


def test_smile_method_agrees_with_listed_strikes_on_a_full_chain():
    # the fallback for sparse chains, checked where both can be computed
    chain = read_chain(SPX)
    rate = parity_rate(chain)
    listed = chain_vix_index(chain, rate)
    fits = fit_smiles(market_ivs(chain, rate))
    for date, row in listed.iterrows():
        v1 = smile_term_variance(fits[date], row["near_dte_days"], rate)
        v2 = smile_term_variance(fits[date], row["next_dte_days"], rate)
        smile = vix_from_terms(v1, row["near_dte_days"], v2, row["next_dte_days"])
        assert smile == pytest.approx(row["iv_index"], abs=0.006), date


def test_dates_without_an_index_are_skipped_with_the_reason_when_asked():
    chain = read_chain(SPX)
    day0 = chain["quote_date"].min()
    zero_dte = chain[chain["quote_date"] == day0].copy()
    zero_dte["quote_date"] = zero_dte["expiry"] = pd.Timestamp("2019-05-03")
    zero_dte["dte_days"] = 0
    both = pd.concat([zero_dte, chain], ignore_index=True)
    with pytest.raises(ChainDataError, match="no expiry of 7\\+ days on 2019-05-03"):
        chain_vix_index(both, 0.024)
    out = chain_vix_index(both, 0.024, skip_dates=True)
    first = out.loc[pd.Timestamp("2019-05-03")]
    assert np.isnan(first["iv_index"]) and first["method"] == "unavailable"
    assert "no expiry of 7+ days" in first["reason"]
    rest = out.drop(pd.Timestamp("2019-05-03"))
    pd.testing.assert_frame_equal(rest, chain_vix_index(chain, 0.024), check_dtype=False)
    assert (rest["reason"] == "").all()
