"""Volatility surface: shape, scalar twin, no vertical arbitrage, and causal ATM series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from options.pricing import bs_price
from options.surface import (
    SurfaceConfig,
    atm_iv_series,
    atm_term_iv,
    iv_at,
    iv_at_scalar,
    realized_vol_series,
)

CFG = SurfaceConfig()
T_REF = CFG.term_reference_dte_days / 365.0


@pytest.fixture(scope="module")
def real_frame() -> pd.DataFrame:
    """S&P 500 closes 1999-2018 with VIX/100 as iv_index where it exists (2014-2018)."""
    from arch.data import sp500, vix

    sp = sp500.load()
    frame = pd.DataFrame({"close": sp["Adj Close"].astype(float)})
    frame["iv_index"] = (vix.load()["vix"] / 100.0).reindex(frame.index)
    return frame


def test_config_rejects_unknown_keys_and_bad_bounds():
    with pytest.raises(ValidationError, match="put_skew_slope"):
        SurfaceConfig(put_skew_slope=0.3)
    with pytest.raises(ValidationError, match="iv_floor_annualized"):
        SurfaceConfig(iv_floor_annualized=0.5, iv_cap_annualized=0.4)


def test_atm_at_reference_horizon_is_the_index():
    assert iv_at(0.17, 100.0, 100.0, T_REF, CFG) == pytest.approx(0.17, abs=1e-14)


def test_put_skew_and_flatter_call_wing():
    strikes = np.array([80.0, 90.0, 100.0, 110.0, 120.0])
    iv = iv_at(0.2, 100.0, strikes, T_REF, CFG)
    assert np.all(np.diff(iv) < 0)  # a smirk: vol falls with strike
    put_rise = iv[1] - iv[2]
    call_fall = iv[2] - iv[3]
    assert call_fall == pytest.approx(
        CFG.call_wing_slope_ratio * put_rise * math.log(1.1) / -math.log(0.9), rel=1e-9
    )
    # a 10% OTM one-month put sits several vol points over ATM
    assert 0.04 < put_rise < 0.10


def test_skew_slope_scales_with_inverse_sqrt_time():
    t1, t2 = 0.1, 0.4
    k = 98.0
    excess = [iv_at(0.2, 100.0, k, t, CFG) - float(atm_term_iv(0.2, t, CFG)) for t in (t1, t2)]
    assert excess[0] / excess[1] == pytest.approx(math.sqrt(t2 / t1), rel=1e-9)


def test_term_structure_mean_reverts():
    low = atm_term_iv(0.11, np.array([T_REF, 1.0]), CFG)
    high = atm_term_iv(0.45, np.array([T_REF, 1.0]), CFG)
    assert low[1] > low[0] and high[1] < high[0]


def test_floor_and_cap():
    cfg = SurfaceConfig(iv_floor_annualized=0.08, iv_cap_annualized=0.9)
    iv = iv_at(0.05, 100.0, np.array([1.0, 100.0, 1000.0]), 0.01, cfg)
    assert iv.min() >= 0.08 and iv.max() <= 0.9
    assert iv[0] == 0.9 and iv[2] == 0.08


@settings(max_examples=300, deadline=None)
@given(
    atm=st.floats(0.05, 1.5),
    spot=st.floats(10.0, 5000.0),
    log_m=st.floats(-1.5, 1.5),
    t=st.floats(0.0, 3.0),
)
def test_scalar_twin_matches(atm, spot, log_m, t):
    strike = spot * math.exp(log_m)
    assert iv_at_scalar(atm, spot, strike, t, CFG) == pytest.approx(
        iv_at(atm, spot, strike, t, CFG), abs=1e-12
    )


@pytest.mark.parametrize("atm", [0.1, 0.2, 0.6])
@pytest.mark.parametrize("t", [2 / 365, 30 / 365, 1.0])
def test_no_vertical_spread_arbitrage_with_defaults(atm, t):
    spot, rate = 200.0, 0.02
    strikes = np.arange(40.0, 400.0, 0.5)
    iv = iv_at(atm, spot, strikes, t, CFG)
    calls = bs_price("call", spot, strikes, t, rate, iv)
    puts = bs_price("put", spot, strikes, t, rate, iv)
    slope_calls = np.diff(calls) / 0.5
    slope_puts = np.diff(puts) / 0.5
    # call spreads worth between 0 and the discounted width; same for put spreads
    assert np.all(slope_calls <= 1e-12) and np.all(slope_calls >= -math.exp(-rate * t) - 1e-9)
    assert np.all(slope_puts >= -1e-12) and np.all(slope_puts <= math.exp(-rate * t) + 1e-9)


def test_iv_at_rejects_bad_input():
    with pytest.raises(ValueError, match="spot"):
        iv_at(0.2, -1.0, 100.0, 0.1, CFG)
    with pytest.raises(ValueError, match="t_years"):
        iv_at(0.2, 100.0, 100.0, -0.1, CFG)


# --------------------------------------------------------------------------- ATM series
def test_iv_index_used_where_present_and_fallback_ratio_before_overlap():
    idx = pd.bdate_range("2010-01-01", periods=120)
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx))))
    iv_index = np.full(len(idx), np.nan)
    iv_index[80:] = 0.25
    frame = pd.DataFrame({"close": close, "iv_index": iv_index}, index=idx)
    out = atm_iv_series(frame)
    rv = realized_vol_series(frame["close"], 21, 252)
    assert out.iloc[:21].isna().all()  # no index, no full realised window yet
    np.testing.assert_allclose(out.iloc[21:80], rv.iloc[21:80] * 1.2, rtol=1e-12)
    np.testing.assert_array_equal(out.iloc[80:], 0.25)


def test_calibrated_ratio_is_geometric_mean_of_prior_overlap():
    idx = pd.bdate_range("2010-01-01", periods=200)
    rng = np.random.default_rng(2)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx))))
    rv = realized_vol_series(pd.Series(close, index=idx), 21, 252)
    iv_index = pd.Series(np.nan, index=idx)
    iv_index.iloc[30:120] = 1.5 * rv.iloc[30:120] * np.exp(rng.normal(0, 0.1, 90))
    frame = pd.DataFrame({"close": close, "iv_index": iv_index}, index=idx)
    cfg = SurfaceConfig(min_calibration_overlap_bars=60)
    out = atm_iv_series(frame, cfg)
    ratio = math.exp(np.mean(np.log(iv_index.iloc[30:120] / rv.iloc[30:120])))
    np.testing.assert_allclose(out.iloc[120:], rv.iloc[120:] * ratio, rtol=1e-10)


def test_atm_series_is_causal_by_truncation(real_frame):
    # Hide VIX in 2017-2018 so those dates use the calibrated proxy; then cutting the frame
    # at any date must not change any value up to that date.
    frame = real_frame.copy()
    frame.loc["2017-01-01":, "iv_index"] = np.nan
    full = atm_iv_series(frame)
    for cut in ("2003-06-30", "2014-02-14", "2014-06-02", "2016-12-30", "2017-03-15", "2018-06-29"):
        part = atm_iv_series(frame.loc[:cut])
        pd.testing.assert_series_equal(part, full.loc[:cut])
    # and changing the future (VIX and prices after a date) leaves the past alone
    shocked = frame.copy()
    shocked.loc["2016-06-01":, "iv_index"] *= 3.0
    shocked.loc["2016-06-01":, "close"] *= 0.5
    pd.testing.assert_series_equal(
        atm_iv_series(shocked).loc[:"2016-05-31"], full.loc[:"2016-05-31"]
    )


def test_proxy_tracks_vix_out_of_sample(real_frame):
    frame = real_frame.copy()
    truth = frame.loc["2017-01-01":, "iv_index"].copy()
    frame.loc["2017-01-01":, "iv_index"] = np.nan
    proxy = atm_iv_series(frame).loc["2017-01-01":]
    ok = truth.notna()
    assert np.corrcoef(proxy[ok], truth[ok])[0, 1] > 0.7
    assert (proxy[ok] - truth[ok]).abs().mean() < 0.06


def test_frame_without_iv_index_uses_the_proxy_everywhere():
    idx = pd.bdate_range("2001-01-01", periods=60)
    close = np.linspace(100, 110, 60) * (1 + 0.01 * np.sin(np.arange(60)))
    out = atm_iv_series(pd.DataFrame({"close": close}, index=idx))
    assert out.iloc[21:].notna().all() and out.name == "atm_iv_annualized"
    with pytest.raises(ValueError, match="close"):
        atm_iv_series(pd.DataFrame({"open": close}, index=idx))
