"""No structure that cannot pay is opened (issue 20 item 3), and closes are labelled honestly.

The environment runs on a hand-made quote source whose deltas, bids, asks and smile flags are
set strike by strike, so that each kind of structure that cannot pay is built on purpose: the
iron condor measured on the quick run (spot 269.5, -put 245 / -call 367 / +put 240 / +call 372,
maximum profit below zero), a debit spread whose debit exceeds its width, a wing beyond the
moneyness band, and legs without a valid two-sided quote (smile price, zero, crossed).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import data
from agents.baselines import IronCondorPolicy
from agents.config import BaselinesConfig
from agents.evaluation import run_episode
from envs import EnvConfig, SpyOptionsEnv, action_for_strategy, build_market_panel
from forecasters.panel import ForecastPanel
from options.quotes import LegQuotes
from options.strategies import StrategyConfig

SPOT = 269.5
WARMUP_BARS = 80
SEGMENT_BARS = 12
CONDOR = action_for_strategy("iron_condor")
BULL_CALL = action_for_strategy("bull_call_spread")
STRANGLE = action_for_strategy("short_strangle")
# |delta| anchors (strike, |delta|): the measured condor's short strikes are the 16-delta ones.
CALL_DELTA = ((150.0, 0.999), (269.0, 0.5), (367.0, 0.16), (450.0, 0.01))
PUT_DELTA = ((100.0, 0.001), (245.0, 0.16), (270.0, 0.5), (400.0, 0.999))


def _panel():
    dates = pd.bdate_range("2018-01-02", periods=WARMUP_BARS + SEGMENT_BARS)
    closes = SPOT * (1 + 0.002 * np.sin(np.arange(len(dates))))
    closes[WARMUP_BARS:] = SPOT
    frame = pd.DataFrame({"open": closes, "high": closes * 1.001, "low": closes * 0.999,
                          "close": closes, "volume": 1e6, "iv_index": 0.2, "rate": 0.01},
                         index=dates)
    frame.attrs.update(source="test", symbol="TEST", interval="1d")
    horizons, levels = (1, 2, 3, 4, 5), (0.05, 0.125, 0.5, 0.875, 0.95)
    values = np.array([[[norm.ppf(q) * 0.2 * math.sqrt(h / 252) for q in levels]
                        for h in horizons]] * len(dates))
    forecasts = ForecastPanel(dates, horizons, levels, values)
    return build_market_panel(frame, data.build_features(frame), forecasts,
                              dates[WARMUP_BARS], dates[-1])


class StubQuotes:
    """Quotes set by hand: |delta| interpolated between anchors, a smooth valid two-sided price
    elsewhere, and per-contract overrides ``{(option_type, strike): (bid, ask)}`` and smile
    flags ``{(option_type, strike)}``, from bar ``from_bar`` on (all bars by default)."""

    name = "chain"

    def __init__(self, bars, overrides=None, smile=(), from_bar: int = 0) -> None:
        self.bars = bars
        self.expiry = pd.Timestamp(bars.dates[-1]) + pd.offsets.Week(5, weekday=4)
        self.overrides = dict(overrides or {})
        self.smile = set(smile)
        self.from_bar = from_bar

    def expiries(self, bar):
        return pd.DatetimeIndex([self.expiry])

    def strikes(self, bar, expiry, option_type):
        return np.arange(150.0, 451.0)

    def volume(self, bar, option_type, strike, expiry):
        return math.inf, math.inf

    def quote(self, bar_idx, option_type, strikes, expiry):
        bar, k = np.broadcast_arrays(np.asarray(bar_idx), np.asarray(strikes, dtype=float))
        anchors = np.array(CALL_DELTA if option_type == "call" else PUT_DELTA)
        delta_abs = np.interp(k, anchors[:, 0], anchors[:, 1])
        intrinsic = np.maximum(SPOT - k, 0) if option_type == "call" else np.maximum(k - SPOT, 0)
        mid = intrinsic + 8.0 * np.exp(-np.abs(k - SPOT) / 25.0)
        bid, ask = mid - 0.05, mid + 0.05
        smile = np.zeros(k.shape, dtype=bool)
        late = bar >= self.from_bar
        for (right, strike), (b, a) in self.overrides.items():
            hit = late & (k == strike) & (right == option_type)
            bid, ask = np.where(hit, b, bid), np.where(hit, a, ask)
        for right, strike in self.smile:
            smile |= late & (k == strike) & (right == option_type)
        mid = 0.5 * (bid + ask)
        sign = 1.0 if option_type == "call" else -1.0
        zeros = np.zeros(k.shape)
        return LegQuotes(bid, ask, mid, zeros + 0.2, sign * delta_abs, zeros, zeros, zeros,
                         smile)


def stub_env(band: float = 0.25, **stub_kwargs) -> tuple[SpyOptionsEnv, StubQuotes]:
    panel = _panel()
    source = StubQuotes(panel.market_bars(), **stub_kwargs)
    cfg = EnvConfig(strategies=StrategyConfig(max_abs_log_moneyness=band),
                    risk_per_trade_fraction=0.05)
    env = SpyOptionsEnv(panel, cfg, mode="eval", quote_source=source, info_level="full")
    return env, source


# The measured condor's quotes: the far call wing priced above the nearer call (an exploded
# surface), so the "credit" is a debit and the maximum profit is negative.
MEASURED = {("put", 245.0): (0.50, 0.55), ("put", 240.0): (0.40, 0.45),
            ("call", 367.0): (0.60, 0.65), ("call", 372.0): (1.20, 1.30)}


def test_measured_condor_with_negative_max_profit_is_refused_with_the_reason():
    env, _ = stub_env(band=0.5, overrides=MEASURED)
    _, info = env.reset()
    unit = env.tables.unit(0, "iron_condor")
    assert unit is None
    why = info.refused_opens["open_iron_condor"]
    assert "cannot pay" in why and "maximum payoff" in why  # a net debit >= its payoff (0)
    assert not env.action_masks()[CONDOR]
    _, _, _, _, info = env.step(CONDOR)
    assert "cannot pay" in info.invalid_action and info.open_positions == 0
    assert env.trade_ledger().empty


def test_the_same_condor_with_an_honest_wing_opens_at_those_strikes():
    honest = {**MEASURED, ("call", 372.0): (0.30, 0.35)}
    env, _ = stub_env(band=0.5, overrides=honest)
    env.reset()
    assert env.action_masks()[CONDOR]
    env.step(CONDOR)
    (pos,) = env.positions
    assert sorted((leg.option_type, leg.strike) for leg in pos.unit.legs) == [
        ("call", 367.0), ("call", 372.0), ("put", 240.0), ("put", 245.0)]
    # Credit 0.50 + 0.60 - 0.45 - 0.35 = 0.30 per share, commission 4 x 0.65 per unit.
    assert pos.unit.max_profit_usd == pytest.approx(30.0)


def test_credit_structure_with_max_profit_below_its_commission_is_refused():
    # Credit 0.50 + 0.60 - 0.45 - 0.64 = 0.01 per share: 1 USD, below 4 x 0.65 of commission.
    thin = {**MEASURED, ("call", 372.0): (0.60, 0.64)}
    env, _ = stub_env(band=0.5, overrides=thin)
    _, info = env.reset()
    assert "a credit structure that cannot pay" in info.refused_opens["open_iron_condor"]


def test_debit_spread_paying_more_than_its_width_is_refused():
    # Long call 269 at 6.00, short call 274 at a bid of 0.50: debit 5.50 > the 5.00 width.
    env, _ = stub_env(overrides={("call", 269.0): (5.90, 6.00), ("call", 274.0): (0.50, 0.60)})
    _, info = env.reset()
    why = info.refused_opens["open_bull_call_spread"]
    assert "a debit structure that cannot pay" in why and "debit 550.00 USD" in why and "maximum payoff 500.00 USD" in why
    assert not env.action_masks()[BULL_CALL]


def test_delta_strikes_stay_inside_the_band_and_a_wing_beyond_it_is_refused():
    env, _ = stub_env()  # default band 0.25: the 16-delta call (367) lies beyond it
    _, info = env.reset()
    edge = math.floor(SPOT * math.exp(0.25))
    assert edge == 346
    why = info.refused_opens["open_iron_condor"]
    assert "beyond the moneyness band" in why and f"call {edge + 5}" in why
    # A structure without wings opens at the band's edge, never beyond it.
    assert env.action_masks()[STRANGLE]
    env.step(STRANGLE)
    legs = env.positions[0].unit.legs
    assert {(leg.option_type, leg.strike) for leg in legs} == {("call", 346.0), ("put", 248.0)}
    assert all(abs(math.log(leg.strike / SPOT)) <= 0.25 for leg in legs)


@pytest.mark.parametrize("quote, smile", [
    ((0.40, 0.45), True),  # priced by a fitted smile: no listed quote
    ((0.0, 0.0), False),  # bid 0 and ask 0
    ((0.50, 0.40), False),  # crossed
    ((0.40, math.nan), False),  # one-sided
])
def test_a_leg_without_a_valid_quote_refuses_the_structure(quote, smile):
    overrides = {**MEASURED, ("call", 372.0): (0.30, 0.35), ("put", 240.0): quote}
    env, _ = stub_env(band=0.5, overrides=overrides, smile=[("put", 240.0)] if smile else ())
    _, info = env.reset()
    why = info.refused_opens["open_iron_condor"]
    assert "put 240 expiring" in why and "no valid two-sided quote" in why
    assert not env.action_masks()[CONDOR]


def test_delta_selection_skips_strikes_without_a_valid_quote():
    env, _ = stub_env(band=0.5, overrides={("put", 245.0): (0.0, 0.0)})
    env.reset()
    env.step(CONDOR)
    short_put = env.positions[0].unit.legs[0]
    assert short_put.option_type == "put" and short_put.strike in (244.0, 246.0)


def test_closing_a_leg_without_a_valid_quote_is_a_fallback_fill_in_the_ledger():
    honest = {**MEASURED, ("call", 372.0): (0.30, 0.35)}
    env, source = stub_env(band=0.5, overrides=honest)
    source.smile = {("put", 240.0)}
    source.from_bar = 2  # the wing loses its listed quote two bars after the open
    env.reset()
    env.step(CONDOR)
    _, _, _, _, info = env.step(0)
    assert all(f.quote_source == "chain" for f in info.fills)
    _, _, _, _, info = env.step(1)  # close at bar 2
    sources = {(f.leg.strike, f.quote_source) for f in info.fills if f.kind == "close"}
    assert sources == {(245.0, "chain"), (240.0, "fallback"), (367.0, "chain"),
                       (372.0, "chain")}
    row = env.trade_ledger().iloc[0]
    assert row["quote_source"] == "fallback" and row["fallback_fills"] == 1
    assert row["invalid_quote_fills"] == 0 and row["exit_reason"] == "agent"


def test_action_masks_before_reset_raise_like_step():
    env, _ = stub_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.action_masks()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_a_baselines_rule_exit_is_labelled_with_its_rule():
    honest = {**MEASURED, ("call", 372.0): (0.30, 0.35)}
    env, _ = stub_env(band=0.5, overrides=honest)
    # Close at 100 days to expiry: the rule fires on the bar after the open.
    cfg = BaselinesConfig(condor_close_dte_days=100, condor_profit_take_fraction=1.0)
    result = run_episode(env, IronCondorPolicy(env.observation_names, cfg))
    reasons = result.trades["exit_reason"].tolist()
    assert reasons and set(reasons) <= {"dte_exit", "open_at_end"} and "dte_exit" in reasons
    env.label_close("nonsense_rule")  # a label holds for the next step only
    env.reset()
    env.step(CONDOR)
    env.step(1)
    assert env.trade_ledger()["exit_reason"].tolist() == ["agent"]
