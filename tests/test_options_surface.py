"""Volatility surface: SSVI against an independent formula, its no-arbitrage conditions, scalar
twin and level bounds (the ATM series and its implied-vol proxies: tests/test_options_iv_proxy.py)."""

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
    atm_total_variance,
    iv_at,
    iv_at_scalar,
    ssvi_shape,
)

CFG = SurfaceConfig()
T_REF = CFG.term_reference_dte_days / 365.0


def test_config_rejects_unknown_keys_and_bad_bounds():
    with pytest.raises(ValidationError, match="put_skew_slope"):
        SurfaceConfig(put_skew_slope=0.3)
    with pytest.raises(ValidationError, match="iv_floor_annualized"):
        SurfaceConfig(iv_floor_annualized=0.5, iv_cap_annualized=0.4)
    with pytest.raises(ValidationError, match="ssvi_rho"):
        SurfaceConfig(ssvi_rho=-1.0)


def test_atm_at_reference_horizon_is_the_index():
    assert iv_at(0.17, 100.0, 100.0, T_REF, CFG) == pytest.approx(0.17, abs=1e-14)
    cal = SurfaceConfig(**SHAPED)
    for level in (0.055, 0.09, 0.6):  # 0.055: below sigma_min (0.065 here)
        assert iv_at(level, 50.0, 50.0, T_REF, cal) == pytest.approx(level, rel=1e-12)


SHAPED = {"long_run_iv_annualized": 0.16, "term_mean_reversion_per_year": 4.5,
          "ssvi_rho": -0.65, "ssvi_rho_per_log_level": -0.3, "ssvi_eta": 0.9,
          "ssvi_eta_per_log_level": -0.4, "ssvi_gamma": 0.45}


def reference_iv(atm, spot, strike, t, cfg: SurfaceConfig) -> float:
    """Gatheral-Jacquier SSVI written out independently: Heston expected variance
    integrated for theta, then eq. (4.1) with the power-law phi (slow, scalar)."""
    long_run = cfg.long_run_iv_annualized ** 2
    kap = cfg.term_mean_reversion_per_year
    t_ref = cfg.term_reference_dte_days / 365.0

    def integral_of_decay(tt):  # int_0^tt e^{-kap s} ds
        return (1.0 - math.exp(-kap * tt)) / kap

    # instantaneous variance v0 with int_0^T_ref v(s) ds = atm^2 T_ref
    v0 = long_run + (atm * atm * t_ref - long_run * t_ref) / integral_of_decay(t_ref)
    assert v0 >= 0.0  # levels used here are above sigma_min
    theta = long_run * t + (v0 - long_run) * integral_of_decay(t)
    x = math.log(atm / cfg.shape_reference_iv_annualized)
    rho = math.tanh(math.atanh(cfg.ssvi_rho) + cfg.ssvi_rho_per_log_level * x)
    eta = cfg.ssvi_eta * math.exp(cfg.ssvi_eta_per_log_level * x)
    g = cfg.ssvi_gamma
    phi = eta / (theta ** g * (1.0 + theta) ** (1.0 - g))
    k = math.log(strike / spot)
    w = theta / 2.0 * (1.0 + rho * phi * k + math.sqrt((phi * k + rho) ** 2 + 1.0 - rho ** 2))
    return math.sqrt(w / t)


@pytest.mark.parametrize("atm", [0.09, 0.15, 0.3, 0.65])
@pytest.mark.parametrize("t", [1 / 365, 9 / 365, 45 / 365, 1.0])
def test_iv_matches_an_independent_ssvi(atm, t):
    cfg = SurfaceConfig(**SHAPED)
    for strike in (40.0, 80.0, 97.0, 100.0, 104.0, 130.0, 250.0):
        assert iv_at(atm, 100.0, strike, t, cfg) == pytest.approx(
            reference_iv(atm, 100.0, strike, t, cfg), rel=1e-10)


def test_put_skew_and_a_smile_on_the_call_side():
    strikes = np.array([80.0, 90.0, 100.0, 110.0, 150.0])
    iv = iv_at(0.2, 100.0, strikes, T_REF, CFG)
    assert iv[0] > iv[1] > iv[2] > iv[3]  # a smirk over puts and near calls
    assert iv[4] > iv[3]  # the SSVI call wing turns up far out (linear total variance)
    # ATM skew of SSVI: d sigma / dk = rho * theta * phi / (2 sqrt(theta T)) at k = 0
    theta = float(atm_total_variance(0.2, T_REF, CFG))
    phi = CFG.ssvi_eta / math.sqrt(theta * (1 + theta))
    h = 1e-5
    skew = (iv_at(0.2, 100.0, 100.0 * math.exp(h), T_REF, CFG)
            - iv_at(0.2, 100.0, 100.0 * math.exp(-h), T_REF, CFG)) / (2 * h)
    assert skew == pytest.approx(CFG.ssvi_rho * theta * phi / (2 * math.sqrt(theta * T_REF)),
                                 rel=1e-6)


def test_term_structure_mean_reverts():
    low = atm_term_iv(0.11, np.array([T_REF, 1.0]), CFG)
    high = atm_term_iv(0.45, np.array([T_REF, 1.0]), CFG)
    assert low[1] > low[0] and high[1] < high[0]


@settings(max_examples=200, deadline=None)
@given(level=st.floats(0.0, 3.0), long_run=st.floats(0.05, 0.6), kappa=st.floats(0.0, 20.0))
def test_atm_total_variance_never_falls_with_maturity(level, long_run, kappa):
    # no calendar arbitrage at the money for any level, below sigma_min included
    cfg = SurfaceConfig(long_run_iv_annualized=long_run, term_mean_reversion_per_year=kappa)
    t = np.linspace(0.0, 3.0, 601)
    theta = atm_total_variance(level, t, cfg)
    assert np.all(np.diff(theta) >= -1e-15) and theta[0] == 0.0


@pytest.mark.parametrize("params", [{}, SHAPED])
def test_closed_form_no_arbitrage_conditions_hold_on_the_index_domain(params):
    cfg = SurfaceConfig(**params)
    index = np.linspace(9.0, 80.0, 200)
    rho, eta = ssvi_shape(cfg.index_to_atm_ratio * index / 100.0, cfg)
    assert np.all(eta * (1 + np.abs(rho)) <= 2.0) and cfg.ssvi_gamma <= 0.5
    # Lee: total variance grows at most 2|k| in both wings (here below |k|)
    for level in (0.08, 0.3, 0.7):
        for t in (1 / 365, 0.1, 1.0):
            k = np.array([-50.0, -40.0, 40.0, 50.0])
            w = iv_at(level, 1.0, np.exp(k), t, cfg) ** 2 * t
            slopes = np.abs(np.diff(w)[[0, 2]] / 10.0)
            assert np.all(slopes < 1.0)


def test_level_bounds_clip_the_input_level_only():
    cfg = SurfaceConfig(iv_floor_annualized=0.08, iv_cap_annualized=0.9)
    assert iv_at(0.05, 100.0, 100.0, T_REF, cfg) == pytest.approx(0.08, rel=1e-12)
    assert iv_at(1.5, 100.0, 100.0, T_REF, cfg) == pytest.approx(0.9, rel=1e-12)
    # no clip on strikes' vols: a deep put's vol at one day is far above the cap
    assert iv_at(0.6, 100.0, 40.0, 1 / 365, cfg) > 0.9


@settings(max_examples=300, deadline=None)
@given(
    atm=st.floats(0.0, 1.5),
    spot=st.floats(10.0, 5000.0),
    log_m=st.floats(-1.5, 1.5),
    t=st.floats(0.0, 3.0),
)
def test_scalar_twin_matches(atm, spot, log_m, t):
    strike = spot * math.exp(log_m)
    for cfg in (CFG, SurfaceConfig(**SHAPED)):
        assert iv_at_scalar(atm, spot, strike, t, cfg) == pytest.approx(
            iv_at(atm, spot, strike, t, cfg), rel=1e-12, abs=1e-12
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


def test_copy_with_update_does_not_keep_stale_params():
    cfg = SurfaceConfig()
    before = iv_at(0.2, 100.0, 90.0, T_REF, cfg)  # caches cfg.params
    steeper = cfg.model_copy(update={"ssvi_eta": 1.1})
    assert steeper.params.eta == 1.1
    assert iv_at(0.2, 100.0, 90.0, T_REF, steeper) > before


def test_iv_at_rejects_bad_input():
    with pytest.raises(ValueError, match="spot"):
        iv_at(0.2, -1.0, 100.0, 0.1, CFG)
    with pytest.raises(ValueError, match="t_years"):
        iv_at(0.2, 100.0, 100.0, -0.1, CFG)
