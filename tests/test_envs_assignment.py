"""American exercise in the simulator: early assignment of short legs (``options.exercise``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from envs.assignment import (
    REASON_CALL_EX_DIVIDEND,
    REASON_PUT_EARLY,
    AssignmentRules,
    assignment_rules,
    quarterly_ex_dates,
)
from envs.ledgers import trade_ledger
from envs.portfolio import ExitRules, PortfolioSimulator, StepResult, UnitTables
from options.calendar import timestamp_close_ns
from options.costs import CostConfig
from options.positions import MarginConfig
from options.quotes import MarketBars, ModelQuoteSource
from options.strategies import StrategyConfig
from options.surface import SurfaceConfig

CFG = StrategyConfig(strike_spacing=1.0, wing_width_strike_units=5.0, dte_days=30.0,
                     back_dte_days=60.0)
# Mon 2016-06-13 .. Fri 2016-06-17, the third Friday of June: SPY's ex-date that quarter.
WEEK = ["2016-06-13", "2016-06-14", "2016-06-15", "2016-06-16", "2016-06-17"]
COMMISSION = CostConfig().commission_per_contract_usd


def _bars(spots, rate: float, dividend_yield: float, days=WEEK) -> MarketBars:
    dates = pd.DatetimeIndex(pd.to_datetime(days))
    return MarketBars(dates, np.array([timestamp_close_ns(d) for d in dates], dtype="int64"),
                      np.array(spots, dtype=float), np.full(len(dates), 0.2),
                      np.full(len(dates), rate), dividend_yield)


def _episode(strategy: str, bars: MarketBars, exercise: str, history=None):
    """Open one unit of ``strategy`` at the first bar and hold it to the last bar."""
    source = ModelQuoteSource(bars, SurfaceConfig(), CostConfig(), strike_spacing=1.0)
    tables = UnitTables(source, CFG, CostConfig(), MarginConfig(), 0.10)
    rules = assignment_rules(exercise, bars.dividend_yield, history)
    sim = PortfolioSimulator(tables, CostConfig(), ExitRules(), 100_000.0, record_fills=True,
                             assignment=rules)
    unit = tables.unit(0, strategy)
    sim.open(unit, 1, StepResult())
    steps = []
    for _ in range(len(bars) - 1):
        result = StepResult()
        sim.advance(result)
        steps.append(result)
    return sim, unit, steps


def test_spy_ex_dates_are_the_quarterly_third_fridays():
    # SPY's ex-dates of 2021 (divCash of the shared bars file): 03-19, 06-18, 09-17, 12-17.
    assert list(quarterly_ex_dates("2021-01-01", "2021-12-31").strftime("%m-%d")) == [
        "03-19", "06-18", "09-17", "12-17"]


def test_short_call_deep_in_the_money_is_assigned_the_session_before_the_ex_date():
    """A bear call spread (short 205 call) when spot jumps to 230 on Thursday 06-16, the
    session before the ex-date: the dividend (4% yield: 230 * 0.04 / 4 = 2.30 per share)
    beats the short call's time value, so it is assigned at that close; the long 210 call is
    sold at its bid. Under European exercise the same position stays open."""
    bars = _bars([200.0, 200.0, 201.0, 230.0, 229.0], rate=0.01, dividend_yield=0.04)
    sim, unit, steps = _episode("bear_call_spread", bars, "american")
    short = next(j for j, leg in enumerate(unit.legs) if leg.quantity_contracts < 0)
    long_ = 1 - short
    assert unit.legs[short].strike == 205.0 and unit.legs[short].is_call
    assert not sim.positions and len(sim.closed) == 1
    pos = sim.closed[0]
    assert pos.exit_reason == REASON_CALL_EX_DIVIDEND and pos.close_bar == 3
    ledger = trade_ledger(sim, bars)
    assert ledger["exit_reason"].tolist() == [REASON_CALL_EX_DIVIDEND]
    assert ledger["close_date"].iloc[0] == pd.Timestamp("2016-06-16")
    # The assigned leg pays its intrinsic value (230 - 205) per share, without commission;
    # the other leg is sold at the bar's bid with commission.
    fills = {f.kind: f for f in steps[2].fills}
    assert fills["assign"].premium_per_share == pytest.approx(25.0)
    assert fills["assign"].commission_usd == 0.0
    bid = unit.path.leg_bid[long_, 3]
    assert fills["close"].premium_per_share == pytest.approx(bid)
    expected = (-25.0 + bid) * 100 - COMMISSION
    assert pos.exit_cash_flow_usd == pytest.approx(expected)
    assert sim.cash == pytest.approx(100_000.0 + pos.pnl_usd)

    european, _, _ = _episode("bear_call_spread", bars, "european")
    assert len(european.positions) == 1 and not european.closed


def test_short_call_is_not_assigned_away_from_the_ex_date_or_without_dividends():
    # The same jump a week earlier (ex-date not on the next session): no assignment.
    early = ["2016-06-06", "2016-06-07", "2016-06-08", "2016-06-09", "2016-06-10"]
    bars = _bars([200.0, 200.0, 201.0, 230.0, 229.0], 0.01, 0.04, days=early)
    sim, _, _ = _episode("bear_call_spread", bars, "american")
    assert len(sim.positions) == 1
    # No dividend (zero yield, no history): a call is never exercised early.
    bars = _bars([200.0, 200.0, 201.0, 230.0, 229.0], 0.01, 0.0)
    sim, _, _ = _episode("bear_call_spread", bars, "american")
    assert len(sim.positions) == 1


def test_dividend_history_sets_the_coming_ex_date_causally():
    """With a paid history, the coming ex-date is the last one plus three months: history
    ending 2016-03-17 (a Thursday) puts the next one on 06-17, so the short call is assigned on
    06-16; a history whose only ex-date is after the episode gives no dividend at all."""
    bars = _bars([200.0, 200.0, 201.0, 230.0, 229.0], rate=0.01, dividend_yield=0.0)
    paid = (pd.DatetimeIndex(["2016-03-17"]), np.array([2.5]))
    sim, _, _ = _episode("bear_call_spread", bars, "american", paid)
    assert [p.exit_reason for p in sim.closed] == [REASON_CALL_EX_DIVIDEND]
    future = (pd.DatetimeIndex(["2016-06-17"]), np.array([2.5]))
    sim, _, _ = _episode("bear_call_spread", bars, "american", future)
    assert len(sim.positions) == 1
    rules = AssignmentRules(0.0, future)
    assert rules.dividends(pd.Timestamp("2016-06-16"), 230.0)[0].size == 0


def test_deep_in_the_money_short_put_without_time_value_is_assigned_early():
    """A bull put spread (short 194 put) when spot falls to 150 at a 5% rate: the American put's
    time value is gone, so it is assigned at that bar at its intrinsic value 44. European: it
    stays open (its European value is below intrinsic)."""
    bars = _bars([200.0, 200.0, 150.0, 150.0, 150.0], rate=0.05, dividend_yield=0.0)
    sim, unit, steps = _episode("bull_put_spread", bars, "american")
    short = next(j for j, leg in enumerate(unit.legs) if leg.quantity_contracts < 0)
    assert unit.legs[short].strike == 194.0 and not unit.legs[short].is_call
    assert [(p.exit_reason, p.close_bar) for p in sim.closed] == [(REASON_PUT_EARLY, 2)]
    assign = [f for f in steps[1].fills if f.kind == "assign"]
    assert len(assign) == 1 and assign[0].premium_per_share == pytest.approx(44.0)
    assert trade_ledger(sim, bars)["exit_reason"].tolist() == [REASON_PUT_EARLY]
    european, _, _ = _episode("bull_put_spread", bars, "european")
    assert len(european.positions) == 1


def test_put_with_time_value_left_is_not_assigned():
    # A 2% fall leaves the short put near the money, with time value: kept.
    bars = _bars([200.0, 200.0, 196.0, 196.0, 196.0], rate=0.05, dividend_yield=0.0)
    sim, _, _ = _episode("bull_put_spread", bars, "american")
    assert len(sim.positions) == 1


def test_assignment_rules_follow_the_exercise_style():
    assert assignment_rules("european", 0.02) is None
    assert assignment_rules("american", 0.02) == AssignmentRules(0.02, None)
    with pytest.raises(ValueError, match="exercise"):
        assignment_rules("bermudan")


def test_config_exercise_reaches_the_simulator(tmp_path):
    """``options.exercise`` of the config decides whether make_env's simulator assigns."""
    from config import load_config
    from envs.factory import make_env
    from envs.spy_options_env import SpyOptionsEnv
    from tests.env_data import embedded_panel
    from tests.helpers import tiny_config

    base = SpyOptionsEnv(embedded_panel("2016-01-04", "2016-03-31"))
    assert base.sim.assignment is None  # the default: European
    for style, expected in (("american", AssignmentRules), ("european", type(None))):
        raw = tiny_config(tmp_path)
        raw["options"] = {"exercise": style}
        env = make_env(load_config(raw), "train", share_with=base)
        assert isinstance(env.sim.assignment, expected)


def test_the_next_session_comes_from_the_calendar_not_the_next_row():
    """The ex-date check needs the next session at the newest bar of a live run and across a
    gap in the data: the calendar gives it (Friday -> Monday, over the Good Friday holiday),
    the data's next row would not."""
    from envs.assignment import next_sessions

    dates = pd.DatetimeIndex(["2021-03-18", "2021-03-19", "2021-04-01",
                              "2021-04-01 15:55"])
    assert next_sessions(dates) == [pd.Timestamp("2021-03-19"), pd.Timestamp("2021-03-22"),
                                    pd.Timestamp("2021-04-05"), pd.Timestamp("2021-04-05")]
