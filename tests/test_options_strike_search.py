"""The fast strike-by-delta search returns exactly what scanning the whole grid returns."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from options.positions import MarketState
from options.strategies import strike_for_delta, strike_for_delta_grid
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
