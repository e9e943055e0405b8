"""Spread model and commissions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from options.costs import (
    CostConfig,
    bid_ask_per_share,
    bid_ask_per_share_scalar,
    commission_usd,
    fill_premium_per_share_scalar,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.01, 0.05, 0.10]))
def test_quotes_bracket_mid_on_tick_grid(seed, tick):
    cfg = CostConfig(tick_size=tick)
    mid = np.random.default_rng(seed).exponential(5.0, 200)
    bid, ask = bid_ask_per_share(mid, cfg)
    assert np.all(bid <= mid + 1e-12) and np.all(ask >= mid - 1e-12)
    assert np.all(bid >= 0) and np.all(ask >= tick - 1e-12)
    np.testing.assert_allclose(bid / tick, np.round(bid / tick), atol=1e-9)
    np.testing.assert_allclose(ask / tick, np.round(ask / tick), atol=1e-9)
    spread = cfg.spread_floor_per_share + cfg.spread_fraction_of_premium * mid
    assert np.all(ask - bid >= np.minimum(spread, ask) - 1e-9)
    for i in range(0, 200, 10):
        assert bid_ask_per_share_scalar(float(mid[i]), cfg) == (bid[i], ask[i])


def test_known_quotes():
    cfg = CostConfig()
    assert bid_ask_per_share_scalar(3.2, cfg) == (3.17, 3.23)
    assert bid_ask_per_share_scalar(0.0, cfg) == (0.0, 0.01)
    assert fill_premium_per_share_scalar(3.2, 2, cfg) == 3.23
    assert fill_premium_per_share_scalar(3.2, -2, cfg) == 3.17


def test_commission_per_contract():
    cfg = CostConfig()
    assert commission_usd(-3, cfg) == pytest.approx(1.95)
    np.testing.assert_allclose(commission_usd(np.array([1, -2]), cfg), [0.65, 1.30])


def test_config_rejects_unknown_keys():
    with pytest.raises(ValidationError, match="commission_usd"):
        CostConfig(commission_usd=1.0)
    with pytest.raises(ValidationError, match="tick_size"):
        CostConfig(tick_size=0.0)
