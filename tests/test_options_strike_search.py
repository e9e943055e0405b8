"""The fast strike-by-delta search returns exactly what scanning the whole grid returns."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.positions import MarketState
from options.strategies import (
    StrategyConfig,
    strategy_legs,
    strike_for_delta,
    strike_for_delta_grid,
)
from options.surface import SurfaceConfig

SURFACE = SurfaceConfig()


@settings(max_examples=300, deadline=None)
@given(
    option_type=st.sampled_from(["call", "put"]),
    target=st.floats(0.01, 0.99),
    spot=st.floats(20.0, 3000.0),
    atm_iv=st.floats(0.05, 0.9),
    rate=st.floats(-0.01, 0.08),
    dividend_yield=st.floats(0.0, 0.04),
    t_years=st.one_of(st.just(0.0), st.just(1 / 365), st.floats(0.001, 2.0)),
    spacing=st.sampled_from([0.5, 1.0, 5.0]),
)
def test_fast_search_equals_grid_scan(option_type, target, spot, atm_iv, rate, dividend_yield,
                                      t_years, spacing):
    market = MarketState(pd.Timestamp("2016-01-04"), spot, atm_iv, rate, dividend_yield)
    assert strike_for_delta(option_type, target, market, t_years, SURFACE, spacing) == (
        strike_for_delta_grid(option_type, target, market, t_years, SURFACE, spacing))


@settings(max_examples=200, deadline=None)
@given(
    option_type=st.sampled_from(["call", "put"]),
    target=st.floats(0.01, 0.99),
    spot=st.floats(50.0, 3000.0),
    atm_iv=st.floats(0.05, 0.9),
    t_years=st.floats(0.005, 1.0),
    band=st.floats(0.05, 0.5),
)
def test_search_inside_a_moneyness_band_stays_inside_it(option_type, target, spot, atm_iv,
                                                        t_years, band):
    """Inside the band the fast search still equals the grid scan, every strike it returns lies
    within |log(K/S)| <= band, and it is the unbanded answer whenever that one is inside."""
    market = MarketState(pd.Timestamp("2016-01-04"), spot, atm_iv, 0.02, 0.01)
    spacing = 1.0
    got = strike_for_delta(option_type, target, market, t_years, SURFACE, spacing, band)
    assert got == strike_for_delta_grid(option_type, target, market, t_years, SURFACE, spacing,
                                        band)
    assert abs(math.log(got / spot)) <= band + 1e-12
    free = strike_for_delta(option_type, target, market, t_years, SURFACE, spacing)
    if abs(math.log(free / spot)) <= band:
        assert got == free


def test_the_band_refuses_a_wing_it_cannot_reach():
    """The issue's case: far "16-delta" calls on an exploding wing lie beyond the default band
    (|log(K/S)| <= 0.25); the search returns the band's edge instead, and a condor whose wing
    lies beyond it is refused by ``strategy_legs`` (a year out, where the search grid of six
    standard deviations reaches past the band)."""
    market = MarketState(pd.Timestamp("2018-02-06"), 269.5, 0.26, 0.015, 0.0)
    edge = strike_for_delta("call", 1e-4, market, 1.0, SURFACE, 1.0, 0.25)
    assert edge == math.floor(269.5 * math.exp(0.25)) == 346
    cfg = StrategyConfig(condor_short_delta_abs=0.001)
    with pytest.raises(ValueError, match=r"strike (205|351) lies beyond the moneyness band"):
        strategy_legs("iron_condor", market, pd.Timestamp("2019-02-15"), cfg, SURFACE)
