"""Volatility surface: shape, scalar twin, no vertical arbitrage (the ATM series and its
implied-vol proxies: tests/test_options_iv_proxy.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from options.pricing import bs_price
from options.surface import (
    SurfaceConfig,
    atm_term_iv,
    iv_at,
    iv_at_scalar,
)

CFG = SurfaceConfig()
T_REF = CFG.term_reference_dte_days / 365.0


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
