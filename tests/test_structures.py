"""Structure specs, quote sources, settlement timing and the observation table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from envs.actions import STRATEGIES, action_for_strategy
from envs.config import EnvConfig
from envs.market import bar_close_ns
from envs.observations import PORTFOLIO_ENTRIES, market_entries
from envs.portfolio import UnitTables
from envs.spy_options_env import SpyOptionsEnv
from options.calendar import expiry_close_ns, timestamp_close_ns
from options.costs import CostConfig
from options.positions import Leg, MarginConfig, Position
from options.quotes import MarketBars, ModelQuoteSource, settleable_expiries
from options.strategies import StrategyConfig
from options.structures import STRUCTURE_NAMES, STRUCTURES, check_structure
from options.surface import SurfaceConfig
from tests.env_data import SCALE, embedded_panel

SPACING_CFG = StrategyConfig(strike_spacing=1.0, wing_width_strike_units=5.0, dte_days=30.0,
                             back_dte_days=60.0)


def one_bar(day: str = "2016-06-01", spot: float = 200.0, atm_iv: float = 0.2) -> MarketBars:
    dates = pd.DatetimeIndex([pd.Timestamp(day)])
    return MarketBars(dates, np.array([timestamp_close_ns(dates[0])], dtype="int64"),
                      np.array([spot]), np.array([atm_iv]), np.array([0.01]), 0.0)


def unit_of(strategy: str):
    source = ModelQuoteSource(one_bar(), SurfaceConfig(), CostConfig(), strike_spacing=1.0)
    tables = UnitTables(source, SPACING_CFG, CostConfig(), MarginConfig(), 0.10)
    return tables.unit(0, strategy)


def test_every_action_derives_from_one_spec():
    assert STRATEGIES == STRUCTURE_NAMES == tuple(STRUCTURES)
    assert {"iron_butterfly", "call_butterfly", "put_butterfly", "calendar_spread"} <= set(
        STRUCTURE_NAMES)
    assert [action_for_strategy(s) for s in STRATEGIES] == list(range(2, 2 + len(STRATEGIES)))


@pytest.mark.parametrize(("strategy", "expected"), [
    # (right, signed ratio, strike) by hand: spot 200 -> at-the-money strike 200, wing 5.
    ("iron_butterfly", {("put", -1, 200.0), ("call", -1, 200.0), ("put", 1, 195.0),
                        ("call", 1, 205.0)}),
    ("call_butterfly", {("call", -2, 200.0), ("call", 1, 195.0), ("call", 1, 205.0)}),
    ("put_butterfly", {("put", -2, 200.0), ("put", 1, 195.0), ("put", 1, 205.0)}),
    ("long_straddle", {("put", 1, 200.0), ("call", 1, 200.0)}),
])
def test_at_the_money_structures_have_the_hand_computed_legs(strategy, expected):
    unit = unit_of(strategy)
    assert {(leg.option_type, leg.quantity_contracts, leg.strike) for leg in unit.legs} == expected
    assert len({leg.expiry for leg in unit.legs}) == 1


def test_butterfly_payoff_and_risk_by_hand():
    unit = unit_of("call_butterfly")
    pos = Position("call_butterfly", unit.legs, "2016-06-01", tuple(
        __import__("options.positions", fromlist=["Fill"]).Fill(
            leg, "2016-06-01", leg.quantity_contracts, 1.0 if leg.quantity_contracts > 0 else 0.5,
            0.75, 0.0, "open") for leg in unit.legs))
    # Payoff at expiry: 0 outside the wings, 5 points (500 USD) at the body.
    assert pos.payoff_at_expiry_usd(np.array([190.0, 195.0, 200.0, 205.0, 210.0])).tolist() == [
        0.0, 0.0, 500.0, 0.0, 0.0]
    # Debit 1.0 + 1.0 - 2 x 0.5 = 1.0 per share: max loss 100 USD, max profit 400 USD.
    assert pos.max_loss_usd == pytest.approx(100.0)
    assert pos.max_profit_usd == pytest.approx(400.0)
    assert unit.max_loss_usd == pytest.approx(-unit.entry_cash_usd)  # the debit, model quotes


def test_calendar_spread_uses_two_expiries_and_risks_its_debit():
    unit = unit_of("calendar_spread")
    (short,) = [leg for leg in unit.legs if leg.quantity_contracts < 0]
    (long,) = [leg for leg in unit.legs if leg.quantity_contracts > 0]
    assert short.option_type == long.option_type == "call"
    assert short.strike == long.strike == 200.0
    front_dte = (short.expiry - pd.Timestamp("2016-06-01")).days
    back_dte = (long.expiry - pd.Timestamp("2016-06-01")).days
    assert abs(front_dte - 30) <= 3 and abs(back_dte - 60) <= 3 and back_dte > front_dte
    assert unit.entry_cash_usd < 0  # a debit: the back month is worth more
    assert unit.max_loss_usd == pytest.approx(-unit.entry_cash_usd)
    assert unit.risk_usd == unit.max_loss_usd


def test_naked_structures_are_sized_by_the_stress_loss():
    unit = unit_of("short_straddle")
    assert unit.max_loss_usd is None
    credit = unit.entry_cash_usd
    # A 10% move either way: the straddle pays 20 points (2000 USD) less its credit.
    assert unit.risk_usd == pytest.approx(0.10 * 200.0 * 100 - credit)
    assert unit.margin_usd > unit.risk_usd  # Reg-T margin of a naked straddle is larger


@pytest.mark.parametrize("strategy", STRUCTURE_NAMES)
def test_a_built_structure_passes_its_own_rules_and_flipping_it_fails(strategy):
    unit = unit_of(strategy)
    assert unit is not None
    check_structure(strategy, unit.legs)
    flipped = tuple(Leg(x.option_type, x.strike, x.expiry, -x.quantity_contracts)
                    for x in unit.legs)
    with pytest.raises(ValueError):
        check_structure(strategy, flipped)
    doubled = tuple(Leg(x.option_type, x.strike, x.expiry, 2 * x.quantity_contracts)
                    for x in unit.legs)
    check_structure(strategy, doubled)  # any common multiple is the same structure


def test_every_opening_action_is_valid_on_some_bar_with_default_sizing():
    env = SpyOptionsEnv(embedded_panel("2016-01-01", "2016-12-31"),
                        EnvConfig(underlying_price_scale=SCALE), mode="eval")
    env.reset()
    seen = np.zeros(env.action_space.n, dtype=bool)
    for _ in range(60):
        seen |= env.action_masks()
        env.step(0)
    never = [env.action_names[a] for a in range(2, 2 + len(STRATEGIES)) if not seen[a]]
    assert never == []


# --------------------------------------------------------------------------- time
def test_expiries_without_a_bar_at_their_close_are_never_offered():
    days = pd.DatetimeIndex(["2016-06-13", "2016-06-14", "2016-06-15", "2016-06-16",
                             "2016-06-20"])  # 2016-06-17 (a monthly expiry) is missing
    bars = MarketBars(days, np.array([timestamp_close_ns(d) for d in days], dtype="int64"),
                      np.full(5, 200.0), np.full(5, 0.2), np.full(5, 0.01))
    listed = pd.DatetimeIndex(["2016-06-15", "2016-06-17", "2016-07-15"])
    kept = settleable_expiries(listed, bars)
    assert list(kept) == [pd.Timestamp("2016-06-15"), pd.Timestamp("2016-07-15")]


def test_early_close_sessions_expire_at_13_00():
    for day in ("2015-12-24", "2018-07-03"):
        hours = (expiry_close_ns(pd.Timestamp(day)) - pd.Timestamp(day).value) / 3.6e12
        assert hours == 13.0
    assert (expiry_close_ns(pd.Timestamp("2018-07-05"))
            - pd.Timestamp("2018-07-05").value) / 3.6e12 == 16.0


def test_intraday_bars_stamped_at_their_start_end_one_interval_later():
    stamps = pd.date_range("2016-06-17 09:30", "2016-06-17 15:55", freq="5min")
    ends = bar_close_ns(stamps, "start")
    assert ends[-1] == expiry_close_ns(pd.Timestamp("2016-06-17"))  # the last bar ends at 16:00
    assert (bar_close_ns(stamps, "end") == stamps.as_unit("ns").asi8).all()
    with pytest.raises(ValueError, match="bar_stamp"):
        bar_close_ns(stamps, "middle")


def test_an_expiry_settles_on_the_session_s_last_intraday_bar():
    stamps = pd.date_range("2016-06-17 09:30", "2016-06-17 15:55", freq="5min")
    closes = bar_close_ns(stamps, "start")
    bars = MarketBars(stamps, closes, np.full(len(stamps), 200.0), np.full(len(stamps), 0.2),
                      np.full(len(stamps), 0.01))
    settle_bar = bars.bar_of_close(expiry_close_ns(pd.Timestamp("2016-06-17")))
    assert settle_bar == len(stamps) - 1


# --------------------------------------------------------------------------- observations
def test_observation_table_has_one_value_and_scale_per_unique_name():
    entries = [*market_entries((1, 5), (0.125, 0.5, 0.875)), *PORTFOLIO_ENTRIES]
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    for entry in entries:
        assert callable(entry.value) and entry.scale > 0 and entry.unit
    assert {f"position_is_{s}" for s in STRUCTURE_NAMES} <= set(names)


def test_portfolio_block_aggregates_over_several_positions():
    cfg = EnvConfig(underlying_price_scale=SCALE, max_open_positions=2)
    env = SpyOptionsEnv(embedded_panel("2016-01-01", "2016-12-31"), cfg, mode="eval")
    env.reset()
    env.step(action_for_strategy("bull_put_spread"))
    obs, _, _, _, info = env.step(action_for_strategy("bear_call_spread"))
    names = env.observation_names
    value = dict(zip(names, obs.tolist(), strict=True))
    assert value["position_is_bull_put_spread"] == value["position_is_bear_call_spread"] == 1.0
    assert value["open_positions_over_max"] == 1.0
    view = info.portfolio
    assert len(view.positions) == 2
    assert view.delta_shares == pytest.approx(info.delta_shares)
    risk = sum(p.risk_usd for p in view.positions)
    unrealized = sum(p.unrealized_pnl_usd for p in view.positions)
    assert value["unrealized_pnl_over_risk"] == pytest.approx(unrealized / risk, abs=1e-6)
    # close one slot: the other stays
    _, _, _, _, info = env.step(env.action_names.index("close_slot_0"))
    assert [p.strategy for p in info.portfolio.positions] == ["bear_call_spread"]
