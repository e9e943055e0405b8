"""Spread model and commissions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common.errors import UserInputError
from options.costs import (
    CostConfig,
    bid_ask_per_share,
    bid_ask_per_share_scalar,
    commission_usd,
    fill_premium_per_share_scalar,
    load_cost_config,
    spread_width_per_share,
)

ROOT = Path(__file__).resolve().parent.parent


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


# --------------------------------------------------------------------------- width model
def test_width_is_the_reference_one_without_inputs_or_at_the_references():
    cfg = CostConfig()
    mid = np.array([0.3, 2.0, 8.0])
    plain = bid_ask_per_share(mid, cfg)
    at_ref = bid_ask_per_share(mid, cfg, atm_iv_annualized=cfg.spread_reference_atm_iv,
                               log_moneyness=0.0, dte_days=cfg.spread_reference_dte_days)
    np.testing.assert_array_equal(plain[0], at_ref[0])
    np.testing.assert_array_equal(plain[1], at_ref[1])
    np.testing.assert_allclose(spread_width_per_share(mid, cfg), 0.01 + 0.01 * mid)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.05, 20.0), st.floats(0.06, 0.5), st.floats(1.05, 4.0),
       st.floats(-0.3, 0.3), st.floats(1.0, 365.0))
def test_width_widens_with_the_volatility_level(mid, iv, up, log_m, dte):
    cfg = CostConfig()
    calm = spread_width_per_share(mid, cfg, iv, log_m, dte)
    stressed = spread_width_per_share(mid, cfg, iv * up, log_m, dte)
    assert stressed > calm
    assert stressed / calm == pytest.approx(up ** cfg.spread_vol_elasticity, rel=1e-9)
    b0, a0 = bid_ask_per_share(mid, cfg, atm_iv_annualized=iv, log_moneyness=log_m,
                               dte_days=dte)
    b1, a1 = bid_ask_per_share(mid, cfg, atm_iv_annualized=iv * up, log_moneyness=log_m,
                               dte_days=dte)
    assert a1 - b1 >= a0 - b0 - 1e-12  # after tick rounding, never narrower


def test_a_vix_of_37_widens_an_at_the_money_quote_by_the_fitted_elasticity():
    cfg = CostConfig()
    calm = spread_width_per_share(5.0, cfg, 0.10, 0.0, 30)
    stress = spread_width_per_share(5.0, cfg, 0.37 * 0.86, 0.0, 30)
    assert cfg.spread_vol_elasticity > 0.5  # fitted on the chains: widths follow vol
    assert stress / calm > 2.0


def test_defaults_are_the_shipped_calibration():
    doc = yaml.safe_load((ROOT / "configs" / "costs_chains.yaml").read_text())
    shipped = load_cost_config(ROOT / "configs" / "costs_chains.yaml")
    for key, value in doc["costs"].items():
        assert getattr(CostConfig(), key) == pytest.approx(value), key
        assert getattr(shipped, key) == pytest.approx(value), key
    assert len(doc["provenance"]["files"]) == 2
    assert all(len(f["sha256"]) == 64 for f in doc["provenance"]["files"])


def test_load_cost_config_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("costs:\n  spread_vol_elasticity: 99\n")
    with pytest.raises(UserInputError, match=r"c\.yaml': costs\.spread_vol_elasticity"):
        load_cost_config(bad)
    bad.write_text("- 1\n")
    with pytest.raises(UserInputError, match="'costs:' section"):
        load_cost_config(bad)
    with pytest.raises(UserInputError, match="cannot read"):
        load_cost_config(tmp_path / "missing.yaml")
