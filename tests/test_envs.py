"""Tests of the options-trading environment (``envs``).

Checkers, accounting invariants over random rollouts, known-answer episodes on hand-made frames,
invalid actions and masks, automatic exits, no look-ahead and seeded determinism. The environment
is built directly from the embedded data, its causal features and a causal forecast panel made
here (quantiles of a normal with the day's implied vol), so no forecaster runs.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import astuple
from functools import cache

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sb3_contrib.common.maskable.utils import is_masking_supported
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import data
import envs
from common.units import CONTRACT_MULTIPLIER
from envs import (
    ACTION_NAMES,
    STRATEGIES,
    EnvConfig,
    SpyOptionsEnv,
    action_for_strategy,
    build_market_panel,
)
from envs.spy_options_env import PORTFOLIO_OBS_NAMES
from envs.step_info import StepInfo
from options.calendar import expiry_close_ns, timestamp_close_ns
from options.costs import CostConfig, bid_ask_per_share
from options.pricing import bs_price
from options.surface import atm_iv_series, iv_at
from tests.env_data import (
    SCALE,
    SURFACE,
    embedded_inputs,
    embedded_panel,
    forecast_panel,
    typed,
)

COSTS = CostConfig()
FULL_INFO_FIELDS = (  # StepInfo properties a full info answers
    "date",
    "equity_usd",
    "cash_usd",
    "margin_used_usd",
    "position",
    "fills",
    "costs",
    "realized_pnl_usd",
    "unrealized_pnl_usd",
    "portfolio",
    "refused_opens",
)
N_ACTIONS = len(ACTION_NAMES)
HOLD, CLOSE = 0, 1
OPEN_ACTIONS = tuple(action_for_strategy(name) for name in STRATEGIES)
NS_PER_YEAR = 365.0 * 86_400 * 10**9


def sessions(start: str, count: int) -> pd.DatetimeIndex:
    """The first ``count`` sessions from ``start`` (the embedded data's NYSE days, so that
    expiries fall on sessions)."""
    days = embedded_inputs()[0].index
    days = days[days >= pd.Timestamp(start)][:count]
    assert len(days) == count
    return days


HISTORY_BARS = 80  # warm-up before the segment so that every feature exists at its first bar


def handmade_frame(
    segment_closes, iv_annualized: float = 0.20, rate: float = 0.01, start: str = "2016-01-04"
) -> pd.DataFrame:
    """A market frame: 80 bars of gentle oscillation around 200, then ``segment_closes``."""
    k = np.arange(HISTORY_BARS)
    closes = np.concatenate([200.0 * (1 + 0.003 * np.sin(k)), np.asarray(segment_closes, float)])
    index = sessions(start, len(closes))
    frame = pd.DataFrame(
        {
            "open": closes,
            "high": closes * 1.002,
            "low": closes * 0.998,
            "close": closes,
            "volume": 1e6,
            "iv_index": iv_annualized,
            "rate": rate,
        },
        index=index,
    )
    frame.attrs.update(source="test", symbol="TEST", interval="1d")
    return frame


def handmade_env(segment_closes, env_config: EnvConfig, **frame_kwargs) -> SpyOptionsEnv:
    frame = handmade_frame(segment_closes, **frame_kwargs)
    panel = build_market_panel(
        frame,
        data.build_features(frame),
        typed(forecast_panel(frame)),
        frame.index[HISTORY_BARS],
        frame.index[-1],
        SURFACE,
    )
    assert panel.dates[0] == frame.index[HISTORY_BARS]  # the segment starts where we think
    return SpyOptionsEnv(panel, env_config, mode="eval", info_level="full")


# --------------------------------------------------------------------------- independent checks
def leg_mid_per_share(leg, date, spot, atm_iv, rate) -> float:
    """Model mid of one leg, priced here with the vectorised BSM and surface functions."""
    # Both times are session closes from exchange_calendars (13:00 on early-close days).
    t_years = max((expiry_close_ns(leg.expiry) - timestamp_close_ns(pd.Timestamp(date)))
                  / NS_PER_YEAR, 0.0)
    iv = iv_at(atm_iv, spot, leg.strike, t_years, SURFACE)
    return float(bs_price(leg.option_type, spot, leg.strike, t_years, rate, iv, 0.0))


def leg_bid_ask(leg, mid, date, spot, atm_iv):
    """The cost model's bid/ask of one leg at its bar's ATM vol, moneyness and time left."""
    t_years = max((expiry_close_ns(leg.expiry) - timestamp_close_ns(pd.Timestamp(date)))
                  / NS_PER_YEAR, 0.0)
    return bid_ask_per_share(mid, COSTS, atm_iv_annualized=atm_iv,
                             log_moneyness=np.log(leg.strike / spot),
                             dte_days=t_years * 365.0)


def marked_value_usd(positions, date, spot, atm_iv, rate) -> float:
    return sum(
        leg_mid_per_share(leg, date, spot, atm_iv, rate)
        * leg.quantity_contracts
        * CONTRACT_MULTIPLIER
        for position in positions
        for leg in position.legs
    )


class MarketLookup:
    """Spot, ATM vol and rate by date, straight from the frame (not from the env's panel)."""

    def __init__(self, frame: pd.DataFrame, price_scale: float):
        self.close = frame["close"] * price_scale
        self.atm = atm_iv_series(frame, SURFACE)
        self.rate = frame["rate"].fillna(0.0)

    def __call__(self, date):
        return float(self.close.loc[date]), float(self.atm.loc[date]), float(self.rate.loc[date])


def is_full_info(info) -> bool:
    """Every full-info property reads (a missing entry raises KeyError)."""
    return isinstance(info, StepInfo) and all(
        getattr(info, name) is not None for name in FULL_INFO_FIELDS)


def finite_numbers(info) -> bool:
    numbers = [
        info.equity_usd,
        info.cash_usd,
        info.margin_used_usd,
        info.realized_pnl_usd,
        info.unrealized_pnl_usd,
        *astuple(info.costs),
    ]
    return all(math.isfinite(float(x)) for x in numbers)


def policy_action(env, rng, p_invalid: float = 0.0, p_close: float = 0.05,
                  open_actions=OPEN_ACTIONS) -> int:
    """Masked random policy that keeps a position open most of the time, sometimes invalid."""
    mask = env.action_masks()
    if rng.random() < p_invalid:
        invalid = np.flatnonzero(~mask).tolist()
        if invalid:
            return int(rng.choice(invalid))
    opens = [a for a in open_actions if mask[a]]
    if mask[CLOSE] and rng.random() < p_close:
        return CLOSE
    if opens and (not mask[CLOSE] or rng.random() < 0.1):
        return int(rng.choice(opens))
    return HOLD


def check_step(env, lookup, prev, action, mask, obs, reward, info):
    """Per-step invariants (``prev`` is the previous step's info)."""
    start = env.start_equity
    assert is_full_info(info)
    assert obs.dtype == np.float32 and np.isfinite(obs).all()
    assert env.observation_space.contains(obs)
    assert math.isfinite(reward) and finite_numbers(info)
    # Equity = cash + open legs marked at mid (re-priced here) = start + realised + unrealised.
    spot, atm_iv, rate = lookup(info.date)
    marked = marked_value_usd(info.position, info.date, spot, atm_iv, rate)
    assert info.equity_usd == pytest.approx(info.cash_usd + marked, rel=0, abs=1e-6)
    assert info.equity_usd == pytest.approx(
        start + info.realized_pnl_usd + info.unrealized_pnl_usd, rel=0, abs=1e-6
    )
    # Reward (pnl) = change of equity / starting equity.
    assert reward * start == pytest.approx(info.equity_usd - prev.equity_usd, rel=0, abs=1e-6)
    # Fills: each pays its commission once, buys at the ask and sells at the bid, settles at
    # intrinsic; the cash moves by exactly the fills' flows.
    fills = info.fills
    flows = 0.0
    for fill in fills:
        qty = fill.quantity_contracts
        if fill.kind == "settle":
            assert fill.commission_usd == 0.0
            assert fill.premium_per_share == pytest.approx(
                float(fill.leg.intrinsic_per_share(spot)), abs=1e-12
            )
        else:
            assert fill.commission_usd == pytest.approx(
                COSTS.commission_per_contract_usd * abs(qty), abs=1e-12
            )
            f_spot, f_atm_iv, _ = lookup(fill.date)
            bid, ask = leg_bid_ask(fill.leg, fill.mid_per_share, fill.date, f_spot, f_atm_iv)
            assert fill.premium_per_share == pytest.approx(ask if qty > 0 else bid, abs=1e-12)
        flows += -fill.premium_per_share * qty * CONTRACT_MULTIPLIER - fill.commission_usd
    assert info.cash_usd - prev.cash_usd == pytest.approx(flows, rel=0, abs=1e-6)
    assert info.costs.commission_usd == pytest.approx(
        sum(f.commission_usd for f in fills), rel=0, abs=1e-9
    )
    assert info.costs.total_commission_usd == pytest.approx(
        prev.costs.total_commission_usd + info.costs.commission_usd, abs=1e-9
    )
    # Invalid actions are no-ops reported in info, and exactly the masked ones.
    is_valid = 0 <= action < N_ACTIONS and bool(mask[action])
    if is_valid:
        assert info.invalid_action is None
    else:
        assert info.invalid_action
        auto_exits = (
            env.cfg.profit_target_fraction,
            env.cfg.stop_loss_multiple,
            env.cfg.close_at_dte_days,
        )
        # A calendar whose front leg settles sells its back leg on that bar (a "close" fill
        # next to a "settle" fill): part of the expiry, not the agent's doing.
        calendar_expiry = any(f.kind == "settle" for f in fills)
        automatic = any(x is not None for x in auto_exits) or calendar_expiry
        agent_kinds = ("open",) if automatic else ("open", "close")
        assert not [f for f in fills if f.kind in agent_kinds]
    # The observation's one-hot shows the open structures (a calendar whose front leg has
    # settled is still the calendar trade; its remaining legs are a "custom" Position).
    names = env.observation_names
    assert len(info.portfolio.positions) == len(info.position)
    for k, strategy in enumerate(STRATEGIES):
        flag = obs[names.index(f"position_is_{strategy}")]
        held = any(p.strategy == strategy for p in info.portfolio.positions)
        assert flag == (1.0 if held else 0.0), (strategy, k)


def check_episode(env, infos, rewards):
    start = env.start_equity
    final = infos[-1].equity_usd
    assert sum(rewards) * start == pytest.approx(final - start, rel=0, abs=1e-6)
    ledger = env.trade_ledger()
    assert ledger["pnl_usd"].sum() == pytest.approx(final - start, rel=0, abs=1e-6)
    assert ledger["commission_usd"].sum() == pytest.approx(
        infos[-1].costs.total_commission_usd, abs=1e-6
    )
    defined = ledger[ledger["max_loss_usd"].notna()]
    worst = -(defined["max_loss_usd"] + defined["commission_usd"] + defined["spread_cost_usd"])
    assert (defined["pnl_usd"] >= worst - 1e-6).all(), defined[defined["pnl_usd"] < worst - 1e-6]


def rollout(env, lookup, rng, steps: int, p_invalid: float, seed=None, options=None,
            open_actions=OPEN_ACTIONS):
    obs, info = env.reset(seed=seed, options=options)
    assert env.observation_space.contains(obs) and is_full_info(info)
    assert info.equity_usd == env.start_equity
    infos, rewards = [info], []
    for _ in range(steps):
        mask = env.action_masks().copy()
        action = policy_action(env, rng, p_invalid, open_actions=open_actions)
        obs, reward, terminated, truncated, info = env.step(action)
        check_step(env, lookup, infos[-1], action, mask, obs, reward, info)
        infos.append(info)
        rewards.append(reward)
        if terminated or truncated:
            break
    check_episode(env, infos, rewards)
    return infos, rewards


# --------------------------------------------------------------------------- checkers
def test_gymnasium_and_sb3_checkers_pass_without_warnings():
    panel = embedded_panel("2016-01-01", "2016-12-31")
    env = gym.make(
        envs.ENV_ID, panel=panel, env_config=EnvConfig(underlying_price_scale=SCALE), mode="train"
    )
    assert isinstance(env.unwrapped, SpyOptionsEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
        obs, info = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(HOLD)
    assert env.observation_space.contains(obs)
    assert env.unwrapped.action_masks().shape == (N_ACTIONS,)
    assert is_masking_supported(DummyVecEnv([lambda: env]))  # what MaskablePPO looks for


def test_spaces_match_names():
    env = SpyOptionsEnv(
        embedded_panel("2016-01-01", "2016-12-31"), EnvConfig(underlying_price_scale=SCALE), info_level="full")
    assert env.action_space.n == N_ACTIONS == 2 + len(STRATEGIES)
    assert env.observation_space.shape == (len(env.observation_names),)
    assert env.observation_names[-len(PORTFOLIO_OBS_NAMES) :] == PORTFOLIO_OBS_NAMES


# --------------------------------------------------------------------------- accounting invariants
ROLLOUT_BARS = 150  # five 30-day expiry cycles per example: opens, exits and expiries all occur


@cache
def rollout_env(max_open_positions: int, sizing: str, auto_exits: bool) -> SpyOptionsEnv:
    """One env per configuration, shared by the hypothesis examples (its caches stay warm)."""
    panel = embedded_panel("2014-01-01", "2018-12-31")
    exits = {"profit_target_fraction": 0.5, "stop_loss_multiple": 1.5, "close_at_dte_days": 7}
    cfg = EnvConfig(
        underlying_price_scale=SCALE,
        max_open_positions=max_open_positions,
        sizing=sizing,
        fixed_contracts=3,
        episode_length_bars=ROLLOUT_BARS,
        **(exits if auto_exits else {}),
    )
    return SpyOptionsEnv(panel, cfg, mode="train", info_level="full")


@cache
def embedded_lookup() -> MarketLookup:
    return MarketLookup(embedded_inputs()[0], SCALE)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    p_invalid=st.sampled_from([0.0, 0.05, 0.3]),
    max_open_positions=st.sampled_from([1, 2]),
    sizing=st.sampled_from(["risk_fraction", "fixed_contracts"]),
    auto_exits=st.booleans(),
)
def test_accounting_invariants_over_random_rollouts(
    seed, p_invalid, max_open_positions, sizing, auto_exits
):
    env = rollout_env(max_open_positions, sizing, auto_exits)
    rng = np.random.default_rng(seed)
    infos, _ = rollout(env, embedded_lookup(), rng, steps=ROLLOUT_BARS, p_invalid=p_invalid,
                       seed=seed)
    assert len(infos) > ROLLOUT_BARS  # no early ruin with these sizes: the rollout really ran
    assert env.trade_ledger().shape[0] > 0


def test_accounting_invariants_with_ruin_and_undefined_risk():
    """Big size, short premium only: terminations, stop-outs and naked margin get exercised."""
    panel = embedded_panel("2014-01-01", "2018-12-31")
    cfg = EnvConfig(
        underlying_price_scale=SCALE,
        risk_per_trade_fraction=1.0,
        max_contracts=400,
        ruin_equity_fraction=0.9,
        episode_length_bars=300,
    )
    env = SpyOptionsEnv(panel, cfg, mode="train", info_level="full")
    rng = np.random.default_rng(3)
    short_premium = tuple(action_for_strategy(name) for name in (
        "bull_put_spread", "bear_call_spread", "iron_condor", "iron_butterfly", "short_straddle",
        "short_strangle"))
    infos, _ = rollout(env, embedded_lookup(), rng, steps=300, p_invalid=0.1, seed=11,
                       open_actions=short_premium)
    assert infos[-1].equity_usd <= 0.9 * env.start_equity  # terminated on ruin
    assert env.trade_ledger()["max_loss_usd"].isna().any()  # a naked (margined) trade ran


# --------------------------------------------------------------------------- known answers
FLAT_BARS = 45  # past the ~30-day expiry


def run_to_end(env, first_action: int):
    obs, info = env.reset()
    infos, rewards = [info], []
    action = first_action
    while True:
        obs, reward, terminated, truncated, info = env.step(action)
        infos.append(info)
        rewards.append(reward)
        action = HOLD
        if terminated or truncated:
            return infos, rewards


def expected_entry(fills, date, spot, atm_iv, rate):
    """Entry cash flow recomputed here: fill at our bid/ask around our mid, commission each."""
    flow = 0.0
    for fill in fills:
        mid = leg_mid_per_share(fill.leg, date, spot, atm_iv, rate)
        assert fill.mid_per_share == pytest.approx(mid, rel=1e-10, abs=1e-12)
        bid, ask = leg_bid_ask(fill.leg, mid, date, spot, atm_iv)
        qty = fill.quantity_contracts
        premium = ask if qty > 0 else bid
        flow += -premium * qty * CONTRACT_MULTIPLIER - 0.65 * abs(qty)
    return flow


def test_iron_condor_held_to_expiry_on_flat_prices_earns_its_credit_minus_costs():
    env = handmade_env([200.0] * FLAT_BARS, EnvConfig(sizing="fixed_contracts", fixed_contracts=3))
    infos, rewards = run_to_end(env, action_for_strategy("iron_condor"))
    entry = infos[1].fills
    assert len(entry) == 4 and all(f.kind == "open" for f in entry)
    assert {abs(f.quantity_contracts) for f in entry} == {3}
    legs = sorted((f.leg for f in entry), key=lambda leg: leg.strike)
    assert legs[1].strike < 200.0 < legs[2].strike  # short strikes out of the money
    entry_flow = expected_entry(entry, env.panel.dates[0], 200.0, 0.20, 0.01)
    assert entry_flow > 0  # a credit even after commissions
    final = infos[-1].equity_usd
    assert final - env.start_equity == pytest.approx(entry_flow, rel=0, abs=1e-9)
    assert sum(rewards) * env.start_equity == pytest.approx(entry_flow, abs=1e-6)
    ledger = env.trade_ledger()
    assert len(ledger) == 1
    row = ledger.iloc[0]
    assert row["exit_reason"] == "expiry" and row["exit_cash_flow_usd"] == 0.0
    assert row["pnl_usd"] == pytest.approx(entry_flow, abs=1e-9)
    assert row["commission_usd"] == pytest.approx(0.65 * 3 * 4)
    settle = [f for i in infos for f in i["fills"] if f.kind == "settle"]
    assert len(settle) == 4 and all(f.premium_per_share == 0.0 for f in settle)
    assert settle[0].date == legs[0].expiry
    assert infos[-1].position == () and infos[-1].cash_usd == final


def test_long_straddle_through_a_large_move_earns_the_payoff():
    closes = [200.0] * 8 + [240.0] * (FLAT_BARS - 8)
    env = handmade_env(closes, EnvConfig())  # risk-fraction sizing
    infos, rewards = run_to_end(env, action_for_strategy("long_straddle"))
    entry = infos[1].fills
    contracts = entry[0].quantity_contracts
    assert {f.leg.strike for f in entry} == {200.0} and contracts >= 1
    assert {f.quantity_contracts for f in entry} == {contracts}
    debit_per_contract = sum(f.premium_per_share for f in entry) * CONTRACT_MULTIPLIER
    assert contracts == int(0.02 * env.start_equity // debit_per_contract)  # risk budget
    entry_flow = expected_entry(entry, env.panel.dates[0], 200.0, 0.20, 0.01)
    payoff = (240.0 - 200.0) * CONTRACT_MULTIPLIER * contracts  # the call's intrinsic
    final = infos[-1].equity_usd
    assert final - env.start_equity == pytest.approx(payoff + entry_flow, rel=0, abs=1e-9)
    assert sum(rewards) * env.start_equity == pytest.approx(payoff + entry_flow, abs=1e-6)
    settle = {f.leg.option_type: f for i in infos for f in i["fills"] if f.kind == "settle"}
    assert settle["call"].premium_per_share == 40.0 and settle["put"].premium_per_share == 0.0
    assert env.trade_ledger().iloc[0]["exit_reason"] == "expiry"


# --------------------------------------------------------------------------- invalid actions
def twin_steps(env_config: EnvConfig, setup_actions, action):
    """Step ``action`` and, on an identical twin, hold; return both results."""
    panel = embedded_panel("2016-01-01", "2016-12-31")
    a = SpyOptionsEnv(panel, env_config, mode="eval", info_level="full")
    b = SpyOptionsEnv(panel, env_config, mode="eval", info_level="full")
    for env in (a, b):
        env.reset()
        for setup in setup_actions:
            _, _, _, _, info = env.step(setup)
            assert info.invalid_action is None
    mask = a.action_masks().copy()
    return mask, a.step(action), b.step(HOLD)


@pytest.mark.parametrize(
    ("setup_actions", "action", "max_open"),
    [
        ((), CLOSE, 1),  # close with nothing open
        ((action_for_strategy("iron_condor"),), action_for_strategy("bull_put_spread"), 1),
        ((action_for_strategy("iron_condor"),), action_for_strategy("iron_condor"), 1),
        ((OPEN_ACTIONS[0], OPEN_ACTIONS[1]), OPEN_ACTIONS[2], 2),  # both slots taken
    ],
)
def test_invalid_action_is_a_recorded_no_op(setup_actions, action, max_open):
    cfg = EnvConfig(underlying_price_scale=SCALE, max_open_positions=max_open)
    mask, stepped, held = twin_steps(cfg, setup_actions, action)
    obs, reward, term, trunc, info = stepped
    obs_h, reward_h, term_h, trunc_h, info_h = held
    if 0 <= action < N_ACTIONS:
        assert not mask[action]
    assert isinstance(info.invalid_action, str) and info.invalid_action
    assert info_h.invalid_action is None
    np.testing.assert_array_equal(obs, obs_h)
    assert (reward, term, trunc) == (reward_h, term_h, trunc_h)
    for name in (
        "equity_usd",
        "cash_usd",
        "margin_used_usd",
        "realized_pnl_usd",
        "unrealized_pnl_usd",
        "fills",
        "position",
    ):
        assert getattr(info, name) == getattr(info_h, name), name


@pytest.mark.parametrize("action", [N_ACTIONS, -1, 10**6, np.int64(N_ACTIONS + 3)])
def test_out_of_range_actions_are_a_clear_error(action):
    env = SpyOptionsEnv(embedded_panel("2016-01-01", "2016-12-31"),
                        EnvConfig(underlying_price_scale=SCALE), mode="eval")
    env.reset()
    with pytest.raises(ValueError, match="outside 0..14"):
        env.step(action)


@pytest.mark.parametrize("action", [2.5, True, "a", None, np.float64(2.0)])
def test_non_integer_actions_are_refused(action):
    env = SpyOptionsEnv(embedded_panel("2016-01-01", "2016-12-31"),
                        EnvConfig(underlying_price_scale=SCALE), mode="eval")
    env.reset()
    with pytest.raises(TypeError, match="action must be an integer"):
        env.step(action)


def test_reset_options_and_step_before_reset_are_checked():
    env = SpyOptionsEnv(embedded_panel("2016-01-01", "2016-12-31"),
                        EnvConfig(underlying_price_scale=SCALE), mode="eval")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"start": 3})
    with pytest.raises(TypeError, match="must be a dict"):
        env.reset(options=[("start_index", 3)])
    env.reset(options={"start_index": 3, "length_bars": 5})
    assert env.panel.dates[3] == env.equity_curve().index[0]


def test_action_masks_agree_with_what_step_accepts():
    panel = embedded_panel("2016-01-01", "2016-12-31")
    cfg = EnvConfig(underlying_price_scale=SCALE, max_open_positions=2, risk_per_trade_fraction=0.3)
    env = SpyOptionsEnv(panel, cfg, mode="eval", info_level="full")
    env.reset()
    rng = np.random.default_rng(5)
    seen_masks = set()
    for step in range(60):
        if step % 6 == 0:
            mask = env.action_masks().copy()
            seen_masks.add(tuple(mask))
            assert mask[HOLD] and mask[CLOSE] == bool(env.positions)
            for action in range(env.action_space.n):
                # The tables are a cache of pure functions of the bar: the probes share it.
                probe = copy.deepcopy(env, {id(env.panel): env.panel,
                                            id(env.tables): env.tables})
                info = probe.step(action)[4]
                valid = mask[action]
                assert (info.invalid_action is None) == valid, (step, action, mask)
        env.step(policy_action(env, rng, p_close=0.2))
    assert len(seen_masks) >= 3  # the probes saw flat, partly and fully used states


# --------------------------------------------------------------------------- automatic exits
def test_automatic_exits_are_off_by_default():
    cfg = EnvConfig()
    assert cfg.profit_target_fraction is None
    assert cfg.stop_loss_multiple is None
    assert cfg.close_at_dte_days is None


def exit_rows(env_config: EnvConfig, closes, strategy: str):
    env = handmade_env(closes, env_config)
    infos, _ = run_to_end(env, action_for_strategy(strategy))
    return env, infos, env.trade_ledger()


FIXED = {"sizing": "fixed_contracts", "fixed_contracts": 2}
JUMP_UP = [200.0] * 8 + [240.0] * (FLAT_BARS - 8)


@pytest.mark.parametrize(
    ("closes", "strategy"),
    [
        ([200.0] * FLAT_BARS, "iron_condor"),
        (JUMP_UP, "bear_call_spread"),
    ],
)
def test_default_config_holds_to_expiry(closes, strategy):
    _, _, ledger = exit_rows(EnvConfig(**FIXED), closes, strategy)
    assert ledger["exit_reason"].tolist() == ["expiry"]


@pytest.mark.parametrize("dte_days", [3, 5, 10])
def test_close_at_dte_exit_fires_at_the_configured_days(dte_days):
    env, infos, ledger = exit_rows(
        EnvConfig(close_at_dte_days=dte_days, **FIXED), [200.0] * FLAT_BARS, "iron_condor"
    )
    assert ledger["exit_reason"].tolist() == ["dte_exit"]
    row = ledger.iloc[0]
    expiry = infos[1].position[0].legs[0].expiry
    close_date = row["close_date"]
    assert (expiry - close_date).days <= dte_days  # calendar days to expiry
    previous = env.panel.dates[env.panel.dates.get_loc(close_date) - 1]
    assert (expiry - previous).days > dte_days  # not a bar earlier than it had to
    assert row["commission_usd"] == pytest.approx(0.65 * 2 * 4 * 2)  # entry and exit


def test_profit_target_exit_fires_at_the_share_of_max_profit():
    cfg = EnvConfig(profit_target_fraction=0.5, **FIXED)
    env, infos, ledger = exit_rows(cfg, [200.0] * FLAT_BARS, "iron_condor")
    assert ledger["exit_reason"].tolist() == ["profit_target"]
    row = ledger.iloc[0]
    exit_step = next(k for k, i in enumerate(infos) if i["trades_closed"] == 1)
    assert row["pnl_usd"] + row["commission_usd"] / 2 >= 0.5 * row["max_profit_usd"] - 1e-9
    before = infos[exit_step - 1].position_summary
    assert before["pnl_if_closed_usd"] < 0.5 * before["max_profit_usd"]
    assert row["close_date"] < infos[1].position[0].legs[0].expiry


def test_stop_loss_exit_fires_at_the_multiple_of_the_credit():
    env, infos, ledger = exit_rows(
        EnvConfig(stop_loss_multiple=1.0, **FIXED), JUMP_UP, "bear_call_spread"
    )
    assert ledger["exit_reason"].tolist() == ["stop_loss"]
    row = ledger.iloc[0]
    assert row["close_date"] == env.panel.dates[8]  # the bar of the jump
    credit = row["entry_cash_flow_usd"]
    assert credit > 0
    assert -(row["pnl_usd"] + row["commission_usd"] / 2) >= credit - 1e-9


# --------------------------------------------------------------------------- no look-ahead
def test_changing_data_after_t_changes_no_observation_at_or_before_t():
    frame, features, forecasts = embedded_inputs()
    cutoff = pd.Timestamp("2016-07-15")
    later = frame.index > cutoff
    changed = frame.copy()
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= 1.25
    changed.loc[later, "iv_index"] *= 1.6
    changed.loc[later, "rate"] += 0.02
    changed.loc[later, "volume"] *= 3.0
    changed_forecasts = forecast_panel(changed)
    changed_forecasts.loc[changed_forecasts.index > cutoff] += 0.01
    start, end = "2016-01-01", "2016-12-31"
    base = SpyOptionsEnv(
        embedded_panel(start, end), EnvConfig(underlying_price_scale=SCALE), mode="eval", info_level="full")
    panel = build_market_panel(
        changed,
        data.build_features(changed),
        typed(changed_forecasts),
        start,
        end,
        SURFACE,
        price_scale=SCALE,
    )
    other = SpyOptionsEnv(panel, EnvConfig(underlying_price_scale=SCALE), mode="eval", info_level="full")
    rng = np.random.default_rng(1)
    obs_a, info_a = base.reset()
    obs_b, info_b = other.reset()
    compared = 0
    while info_a.date <= cutoff:
        np.testing.assert_array_equal(obs_a, obs_b, err_msg=str(info_a.date))
        assert info_a.equity_usd == info_b.equity_usd
        np.testing.assert_array_equal(base.action_masks(), other.action_masks())
        action = policy_action(base, rng, p_close=0.1)
        obs_a, reward_a, _, _, info_a = base.step(action)
        obs_b, reward_b, _, _, info_b = other.step(action)
        if info_a.date <= cutoff:
            assert reward_a == reward_b
        compared += 1
    assert compared > 100 and base.trade_ledger().shape[0] >= 2
    assert not np.array_equal(obs_a, obs_b)  # the change after t does reach the agent


# --------------------------------------------------------------------------- determinism
def trajectory(env, seed, actions_rng_seed=7, steps=150):
    rng = np.random.default_rng(actions_rng_seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, info.equity_usd, info.cash_usd, info.date)]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(policy_action(env, rng, 0.05))
        out.append((obs, reward, info.equity_usd, info.cash_usd, info.date))
        if terminated or truncated:
            break
    return out


def test_same_seed_and_actions_give_the_same_trajectory():
    panel = embedded_panel("2014-01-01", "2018-12-31")
    cfg = EnvConfig(underlying_price_scale=SCALE, episode_length_bars=150)
    first = trajectory(SpyOptionsEnv(panel, cfg, mode="train", info_level="full"), seed=42)
    env = SpyOptionsEnv(panel, cfg, mode="train", info_level="full")
    trajectory(env, seed=5)  # a different episode before, on the same instance
    second = trajectory(env, seed=42)
    assert len(first) == len(second) > 100
    for (o1, r1, e1, c1, d1), (o2, r2, e2, c2, d2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, e1, c1, d1) == (r2, e2, c2, d2)
    assert first[-1][2] != first[0][2]  # the trajectory traded


def test_train_reset_seed_reproduces_the_start_and_varies_with_the_seed():
    panel = embedded_panel("2014-01-01", "2018-12-31")
    env = SpyOptionsEnv(panel, EnvConfig(underlying_price_scale=SCALE), mode="train", info_level="full")
    starts = {}
    for seed in (0, 1, 2, 3):
        obs, info = env.reset(seed=seed)
        env.step(HOLD)
        obs2, info2 = env.reset(seed=seed)
        assert info.date == info2.date
        np.testing.assert_array_equal(obs, obs2)
        starts[seed] = info.date
    assert len(set(starts.values())) > 1
    eval_env = SpyOptionsEnv(panel, EnvConfig(underlying_price_scale=SCALE), mode="eval", info_level="full")
    assert eval_env.reset(seed=0)[1]["date"] == eval_env.reset(seed=9)[1]["date"] == panel.dates[0]


# --------------------------------------------------------------------------- ledgers, shapings
def test_equity_curve_and_trade_ledger_write_to_csv(tmp_path):
    env = SpyOptionsEnv(
        embedded_panel("2016-01-01", "2016-12-31"),
        EnvConfig(underlying_price_scale=SCALE, episode_length_bars=120), info_level="full")
    infos, _ = rollout(env, embedded_lookup(), np.random.default_rng(2), 120, 0.0, seed=4)
    curve = env.equity_curve()
    assert len(curve) == len(infos)
    np.testing.assert_allclose(curve["equity_usd"], [i["equity"] for i in infos], rtol=0, atol=0)
    assert list(curve.index) == [i["date"] for i in infos]
    for name, table in (("equity.csv", curve), ("trades.csv", env.trade_ledger())):
        table.to_csv(tmp_path / name)
        back = pd.read_csv(tmp_path / name, index_col=0)
        assert back.shape == table.shape and len(back) > 0


def test_drawdown_penalty_reward_subtracts_the_drawdown_increase():
    panel = embedded_panel("2016-01-01", "2016-12-31")
    weight = 2.0
    pnl_env = SpyOptionsEnv(panel, EnvConfig(underlying_price_scale=SCALE), mode="eval", info_level="full")
    dd_env = SpyOptionsEnv(
        panel,
        EnvConfig(underlying_price_scale=SCALE, reward="drawdown_penalty", drawdown_penalty=weight),
        mode="eval", info_level="full")
    sharpe_env = SpyOptionsEnv(
        panel, EnvConfig(underlying_price_scale=SCALE, reward="differential_sharpe"), mode="eval", info_level="full")
    rng = np.random.default_rng(8)
    _, info = pnl_env.reset()
    dd_env.reset()
    sharpe_env.reset()
    peak = equity = info.equity_usd
    penalised = 0
    for _ in range(150):
        action = policy_action(pnl_env, rng, p_close=0.1)
        _, r_pnl, _, _, info = pnl_env.step(action)
        _, r_dd, _, _, info_dd = dd_env.step(action)
        _, r_sharpe, _, _, _ = sharpe_env.step(action)
        assert info_dd.equity_usd == info.equity_usd  # shaping never changes the accounting
        dd_before = 1 - equity / peak
        equity = info.equity_usd
        peak = max(peak, equity)
        increase = max(0.0, (1 - equity / peak) - dd_before)
        assert r_dd == pytest.approx(r_pnl - weight * increase, rel=0, abs=1e-12)
        penalised += increase > 0
        assert math.isfinite(r_sharpe)
    assert penalised > 0


def test_dates_without_forecasts_are_outside_the_tradable_segment():
    frame, features, forecasts = embedded_inputs()
    late = forecasts.loc["2016-03-01":]
    panel = build_market_panel(frame, features, typed(late), "2016-01-01", "2016-12-31", SURFACE, SCALE)
    assert panel.dates[0] == late.index[0]
    holed = late.drop(pd.Timestamp("2016-06-15"))
    with pytest.raises(ValueError, match="2016-06-15"):
        build_market_panel(frame, features, typed(holed), "2016-01-01", "2016-12-31", SURFACE, SCALE)


def test_stepping_after_the_episode_ended_is_a_clear_error():
    env = SpyOptionsEnv(embedded_panel("2015-01-01", "2015-02-27"),
                        EnvConfig(underlying_price_scale=SCALE), mode="eval", info_level="full")
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        done = terminated or truncated
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
