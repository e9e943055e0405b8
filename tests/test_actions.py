"""The typed action decoder and the environment's public terms (issue 25, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from envs import SpyOptionsEnv
from envs.actions import (
    ACTION_CLOSE,
    ACTION_HOLD,
    STRATEGIES,
    CloseAll,
    CloseSlot,
    Hold,
    Open,
    action_for_strategy,
    action_names,
    decode,
    encode,
    n_actions,
)
from envs.config import EnvConfig
from tests.env_data import SCALE, embedded_panel


@given(st.integers(1, 5), st.data())
def test_decode_and_encode_are_inverse_and_follow_the_names(slots, data):
    action = data.draw(st.integers(0, n_actions(slots) - 1))
    decoded = decode(action, slots)
    assert encode(decoded, slots) == action
    name = action_names(slots)[action]
    expected = {Hold: "hold", CloseAll: "close"}.get(type(decoded))
    if isinstance(decoded, Open):
        expected = f"open_{decoded.strategy}"
    elif isinstance(decoded, CloseSlot):
        expected = f"close_slot_{decoded.slot}"
    assert name == expected


def test_decode_refuses_actions_out_of_range_and_encode_refuses_missing_slots():
    assert decode(ACTION_HOLD) == Hold() and decode(ACTION_CLOSE) == CloseAll()
    assert decode(action_for_strategy("iron_condor")) == Open("iron_condor")
    with pytest.raises(ValueError, match="outside 0..14"):
        decode(n_actions(1))
    with pytest.raises(ValueError, match="outside"):
        decode(-1)
    with pytest.raises(ValueError, match="close slot 0"):
        encode(CloseSlot(0), 1)
    with pytest.raises(ValueError, match="unknown strategy"):
        encode(Open("covered_call"))


def _env(**overrides) -> SpyOptionsEnv:
    cfg = EnvConfig(underlying_price_scale=SCALE, **overrides)
    env = SpyOptionsEnv(embedded_panel("2016-01-01", "2016-12-31"), cfg, mode="eval",
                        info_level="full")
    env.reset(seed=0)
    return env


def test_opening_terms_are_what_the_open_action_trades():
    env = _env()
    mask = env.action_masks()
    strategy = next(s for s in STRATEGIES if mask[action_for_strategy(s)])
    terms = env.opening_terms(strategy)
    assert terms.bar == env.bar == 0 and terms.strategy == strategy and terms.fits_margin
    cash_before = env.cash
    _, _, _, _, info = env.step(action_for_strategy(strategy))
    opens = [f for f in info.fills if f.kind == "open"]
    assert [(f.leg, f.quantity_contracts) for f in opens] == [
        (leg, leg.quantity_contracts) for leg in terms.legs]
    assert env.positions[0].contracts == terms.contracts
    commission = sum(f.commission_usd for f in opens)
    entry_cash = env.positions[0].entry_cash_flow_usd
    assert entry_cash == pytest.approx(terms.entry_cash_per_unit_usd * terms.contracts
                                       - commission, abs=1e-9)
    assert env.cash != cash_before
    with pytest.raises(ValueError, match="unknown strategy"):
        env.opening_terms("covered_call")


def test_closing_terms_and_views_describe_the_open_position():
    env = _env()
    env.step(action_for_strategy("bull_put_spread"))
    pos = env.positions[0]
    terms = env.closing_terms(pos.trade_id)
    assert terms.bar == env.bar == 1
    assert tuple(-leg.quantity_contracts for leg in terms.legs) == tuple(
        leg.quantity_contracts for leg in pos.legs())
    view = env.position_view(pos.trade_id)
    flows = pos.entry_cash_flow_usd + pos.exit_cash_flow_usd
    assert view.pnl_if_closed_usd == pytest.approx(
        flows + terms.liquidation_cash_per_unit_usd * pos.contracts)
    assert env.portfolio_view().positions == (view,)
    assert env.portfolio_view().equity_usd == env.equity
    with pytest.raises(KeyError, match="no open position"):
        env.closing_terms(pos.trade_id + 1)
    cash = env.cash
    _, _, _, _, info = env.step(ACTION_CLOSE)
    closes = [f for f in info.fills if f.kind == "close"]
    assert [(f.leg.option_type, f.leg.strike, f.leg.expiry, f.quantity_contracts)
            for f in closes] == [(leg.option_type, leg.strike, leg.expiry,
                                  leg.quantity_contracts) for leg in terms.legs]
    assert env.cash - cash == pytest.approx(
        terms.liquidation_cash_per_unit_usd * pos.contracts
        - sum(f.commission_usd for f in closes), abs=1e-9)


def test_env_decode_uses_the_config_slots():
    env = _env(max_open_positions=2)
    assert env.decode(len(env.action_names) - 1) == CloseSlot(1)
    with pytest.raises(ValueError, match="outside"):
        env.decode(len(env.action_names))
    assert np.array_equal(env.action_masks()[:2], [True, False])


def test_nothing_outside_envs_reads_the_simulator_or_tables_of_an_env():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\benv\.(sim|tables)\b")
    offenders = [f"{path.relative_to(root)}:{n}"
                 for path in root.rglob("*.py")
                 if not {"envs", "tests", ".venv", "bench"} & set(path.relative_to(root).parts)
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
