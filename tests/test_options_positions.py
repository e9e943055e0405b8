"""Legs, positions and strategies: structure rules, expiry P&L by hand, risk, costs, margin."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.costs import CostConfig
from options.positions import (
    CONTRACT_MULTIPLIER,
    STRATEGY_NAMES,
    Fill,
    Leg,
    MarginConfig,
    MarketState,
    Position,
    check_structure,
    open_position,
    per_share_to_position,
    position_to_per_share,
)
from options.pricing import bs_greeks
from options.strategies import StrategyConfig, build_position, iron_condor
from options.surface import SurfaceConfig, iv_at

SURFACE = SurfaceConfig()
COSTS = CostConfig()
INDEX_CFG = StrategyConfig(strike_spacing=5.0, wing_width_strike_units=50.0)
EXP = pd.Timestamp("2016-07-15")
# The ten structures with hand-computed payoffs below (the butterflies and the calendar have
# theirs in tests/test_structures.py). The ratio butterflies are left out of the mid-mark
# property: at high implied vol the model surface prices a call butterfly slightly below zero
# (a static-arbitrage defect of the surface, about 1% of max loss, found by this property).
HAND_CHECKED = STRATEGY_NAMES[:10]
DEFINED_RISK = [s for s in HAND_CHECKED if s not in ("short_straddle", "short_strangle")]


@pytest.fixture(scope="module")
def real_market() -> MarketState:
    """The S&P 500 close and VIX on 2016-06-01 from the embedded data."""
    from arch.data import sp500, vix

    day = pd.Timestamp("2016-06-01")
    spot = float(sp500.load().loc[day, "Adj Close"])
    atm = float(vix.load().loc[day, "vix"]) / 100.0
    return MarketState(day, spot, atm, rate=0.003, dividend_yield=0.02)


def legs_by_role(position: Position):
    puts = sorted(
        (leg for leg in position.legs if leg.option_type == "put"), key=lambda leg: leg.strike
    )
    calls = sorted(
        (leg for leg in position.legs if leg.option_type == "call"), key=lambda leg: leg.strike
    )
    return [leg.strike for leg in puts], [leg.strike for leg in calls]


def hand_payoff_per_share(strategy: str, puts: list[float], calls: list[float], s: np.ndarray):
    """Expiry value per share of one structure, written out for each strategy."""

    def c(k):
        return np.maximum(s - k, 0.0)

    def p(k):
        return np.maximum(k - s, 0.0)

    if strategy == "bull_put_spread":
        return p(puts[0]) - p(puts[1])
    if strategy == "bear_call_spread":
        return -c(calls[0]) + c(calls[1])
    if strategy == "bull_call_spread":
        return c(calls[0]) - c(calls[1])
    if strategy == "bear_put_spread":
        return p(puts[1]) - p(puts[0])
    if strategy in ("iron_condor", "iron_butterfly"):
        return p(puts[0]) - p(puts[1]) - c(calls[0]) + c(calls[1])
    if strategy == "long_straddle":
        return np.abs(s - puts[0])
    if strategy == "short_straddle":
        return -np.abs(s - puts[0])
    if strategy == "long_strangle":
        return p(puts[0]) + c(calls[0])
    if strategy == "short_strangle":
        return -p(puts[0]) - c(calls[0])
    raise AssertionError(strategy)


# --------------------------------------------------------------------------- P&L at expiry
@pytest.mark.parametrize("strategy", HAND_CHECKED)
def test_pnl_at_expiry_matches_hand_payoff(real_market, strategy):
    contracts = 3
    pos = build_position(strategy, real_market, contracts=contracts, strategy_cfg=INDEX_CFG)
    puts, calls = legs_by_role(pos)
    entry_premium_usd = sum(
        f.premium_per_share * f.quantity_contracts * 100 for f in pos.entry_fills
    )
    grid = np.linspace(0.5 * real_market.spot, 1.5 * real_market.spot, 401)
    grid = np.concatenate([grid, puts, calls])
    expected = (
        100 * contracts * hand_payoff_per_share(strategy, puts, calls, grid) - entry_premium_usd
    )
    np.testing.assert_allclose(pos.pnl_at_expiry_usd(grid), expected, atol=1e-8)
    # settlement on the expiry close pays the same, with no commission or spread
    expiry = pos.expiries[0]
    for final in grid[::40]:
        fills, rest = pos.settle_expired(expiry, final)
        assert rest is None and len(fills) == len(pos.legs)
        assert all(f.kind == "settle" and f.commission_usd == 0.0 for f in fills)
        pnl = sum(f.cash_flow_usd for f in fills) - entry_premium_usd
        assert pnl == pytest.approx(
            100 * contracts * hand_payoff_per_share(strategy, puts, calls, np.array(final))
            - entry_premium_usd,
            abs=1e-8,
        )


@pytest.mark.parametrize("strategy", HAND_CHECKED)
def test_max_loss_and_profit_by_hand(real_market, strategy):
    pos = build_position(strategy, real_market, contracts=2, strategy_cfg=INDEX_CFG)
    net = sum(f.premium_per_share * np.sign(f.quantity_contracts) for f in pos.entry_fills)
    width = INDEX_CFG.wing_width
    credit, debit = -net, net
    expected = {
        "bull_put_spread": (width - credit, credit),
        "bear_call_spread": (width - credit, credit),
        "iron_condor": (width - credit, credit),
        "iron_butterfly": (width - credit, credit),
        "bull_call_spread": (debit, width - debit),
        "bear_put_spread": (debit, width - debit),
        "long_straddle": (debit, None),
        "long_strangle": (debit, None),
        "short_straddle": (None, credit),
        "short_strangle": (None, credit),
    }[strategy]
    for got, want in zip((pos.max_loss_per_share, pos.max_profit_per_share), expected, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            assert got == pytest.approx(want, abs=1e-9)
    if expected[0] is not None:
        assert pos.max_loss_usd == pytest.approx(expected[0] * 2 * CONTRACT_MULTIPLIER)
        assert pos.margin_requirement_usd(real_market, SURFACE) == pos.max_loss_usd
    assert pos.is_defined_risk == (expected[0] is not None)


@settings(max_examples=120, deadline=None)
@given(
    strategy=st.sampled_from(DEFINED_RISK),
    seed=st.integers(0, 2**32 - 1),
    entry_iv=st.floats(0.08, 0.8),
    path_vol=st.floats(0.05, 1.2),
    dte=st.sampled_from([3.0, 10.0, 30.0, 60.0]),
)
def test_max_loss_never_exceeded_along_random_paths(strategy, seed, entry_iv, path_vol, dte):
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2016-03-01")
    market = MarketState(start, 200.0, entry_iv, 0.01)
    # A wide moneyness band: the invariant holds wherever the strikes are (at 80% vol a
    # 16-delta wing lies beyond the default band, which build_position refuses).
    cfg = StrategyConfig(dte_days=dte, wing_width_strike_units=float(rng.integers(1, 15)),
                         max_abs_log_moneyness=3.0)
    pos = build_position(strategy, market, strategy_cfg=cfg)
    limit = pos.max_loss_usd
    assert limit is not None and limit >= 0
    expiry = pos.expiries[0]
    spot = market.spot
    days = pd.bdate_range(start + pd.Timedelta(days=1), expiry)
    for day in days:
        spot *= math.exp(rng.normal(0.0, path_vol / math.sqrt(252)))
        iv = float(np.clip(entry_iv * math.exp(rng.normal(0.0, 0.3)), 0.05, 1.5))
        now = MarketState(day, spot, iv, 0.01)
        pnl_mid = pos.value_usd(now, SURFACE) - pos.entry_premium_usd
        assert pnl_mid >= -limit - 1e-6
    fills, rest = pos.settle_expired(expiry, spot)
    assert rest is None
    assert sum(f.cash_flow_usd for f in fills) - pos.entry_premium_usd >= -limit - 1e-9


# --------------------------------------------------------------------------- costs
@pytest.mark.parametrize("strategy", HAND_CHECKED)
def test_costs_appear_exactly_once_per_fill(real_market, strategy):
    contracts = 2
    pos = build_position(strategy, real_market, contracts=contracts, strategy_cfg=INDEX_CFG)
    closing = pos.close(real_market, SURFACE, COSTS)
    fills = pos.entry_fills + closing
    assert len(fills) == 2 * len(pos.legs)
    for f in fills:
        assert f.commission_usd == pytest.approx(0.65 * contracts)
        assert f.spread_cost_usd >= 0
        # buying at the ask, selling at the bid
        assert (f.premium_per_share >= f.mid_per_share) == (f.quantity_contracts > 0) or (
            f.premium_per_share == f.mid_per_share
        )
    # a round trip at an unchanged market loses exactly spreads plus commissions
    cash = sum(f.cash_flow_usd for f in fills)
    costs = sum(f.spread_cost_usd + f.commission_usd for f in fills)
    assert cash == pytest.approx(-costs, abs=1e-9)
    assert pos.entry_cash_flow_usd == pytest.approx(
        -pos.entry_premium_usd - pos.entry_commission_usd
    )
    assert pos.entry_commission_usd == pytest.approx(0.65 * contracts * len(pos.legs))


# The accounting: the per-share <-> position conversion of options.positions, and the
# simulator's vectorised tables (envs/portfolio.py, the one accounting engine), which apply the
# same multiplier to whole arrays of legs and bars at once.
MULTIPLIER_READERS = {
    ("options/positions.py", "per_share_to_position"),
    ("options/positions.py", "position_to_per_share"),
    ("envs/portfolio.py", "_build"),
    ("envs/portfolio.py", "_assemble_path"),
    ("envs/portfolio.py", "_assemble_group"),  # _assemble_path of many units at once
    ("envs/portfolio.py", "_naked_margin_of"),
    ("envs/portfolio.py", "_assign"),  # early assignment of a short American leg
}
PRODUCTION = ("agents", "common", "dashboard", "data", "envs", "execution", "forecasters",
              "options", "train.py", "evaluate.py", "trade.py", "config.py")


def test_contract_multiplier_applied_only_in_the_accounting_and_no_literal_100():
    """Across the whole tree (not only options/): CONTRACT_MULTIPLIER is read only by the
    accounting, and no code multiplies or divides by a literal 100 (percent and vol-point
    conversions use common.units)."""
    root = Path(__file__).resolve().parents[1]
    files = []
    for name in PRODUCTION:
        files += [root / name] if name.endswith(".py") else sorted((root / name).rglob("*.py"))
    readers, literals = set(), []
    for path in files:
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Name) and node.id == "CONTRACT_MULTIPLIER":
                    readers.add((rel, getattr(func, "name", "<lambda>")))
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Div) and any(
                    isinstance(x, ast.Constant) and not isinstance(x.value, bool) and x.value == 100
                    for x in (node.left, node.right)
                ):
                    literals.append(f"{rel}:{node.lineno}")
    assert len(files) > 100
    assert readers == MULTIPLIER_READERS
    assert not literals, f"multiplies or divides by a literal 100: {sorted(set(literals))}"
    assert CONTRACT_MULTIPLIER == 100


def test_position_to_per_share_inverts_per_share_to_position():
    assert position_to_per_share(per_share_to_position(1.37, 3), 3) == pytest.approx(1.37)
    assert position_to_per_share(-215.0) == -2.15


# --------------------------------------------------------------------------- marks and greeks
def test_mark_greeks_are_leg_sums(real_market):
    pos = build_position("iron_condor", real_market, strategy_cfg=INDEX_CFG, contracts=2)
    mark = pos.mark(real_market, SURFACE, COSTS)
    t = (pos.expiries[0] - real_market.as_of).days / 365.0
    total = {"delta": 0.0, "gamma": 0.0, "theta_per_day": 0.0, "vega_per_vol_point": 0.0}
    for leg in pos.legs:
        iv = iv_at(real_market.atm_iv_annualized, real_market.spot, leg.strike, t, SURFACE)
        g = bs_greeks(
            leg.option_type,
            real_market.spot,
            leg.strike,
            t,
            real_market.rate,
            iv,
            real_market.dividend_yield,
        )
        for name in total:
            total[name] += g[name] * leg.quantity_contracts * 100
    assert mark.delta_shares == pytest.approx(total["delta"], abs=1e-9)
    assert mark.gamma_shares_per_usd == pytest.approx(total["gamma"], abs=1e-9)
    assert mark.theta_usd_per_day == pytest.approx(total["theta_per_day"], abs=1e-9)
    assert mark.vega_usd_per_vol_point == pytest.approx(total["vega_per_vol_point"], abs=1e-9)
    assert mark.value_mid_usd == pytest.approx(pos.value_usd(real_market, SURFACE), abs=1e-9)
    assert mark.value_liquidation_usd <= mark.value_mid_usd
    assert mark.theta_usd_per_day > 0 and mark.vega_usd_per_vol_point < 0  # short premium


def test_naked_margin_rule_by_hand(real_market):
    pos = build_position("short_strangle", real_market, strategy_cfg=INDEX_CFG)
    spot = real_market.spot
    (put_k,), (call_k,) = legs_by_role(pos)
    mids = dict(
        zip(
            [leg.option_type for leg in pos.legs],
            pos.leg_mids_per_share(real_market, SURFACE),
            strict=True,
        )
    )
    put_req = mids["put"] + max(0.2 * spot - max(spot - put_k, 0), 0.1 * put_k)
    call_req = mids["call"] + max(0.2 * spot - max(call_k - spot, 0), 0.1 * spot)
    expected = 100 * max(put_req + mids["call"], call_req + mids["put"])
    assert pos.margin_requirement_usd(real_market, SURFACE) == pytest.approx(expected)
    looser = MarginConfig(naked_underlying_fraction=0.15)
    assert pos.margin_requirement_usd(real_market, SURFACE, looser) < expected


def test_legs_with_different_expiries_settle_separately():
    market = MarketState(pd.Timestamp("2016-06-01"), 210.0, 0.15, 0.005)
    legs = (Leg("call", 210.0, "2016-06-17", 1), Leg("put", 200.0, "2016-07-15", -1))
    pos = open_position("custom", legs, market, SURFACE, COSTS)
    assert pos.max_loss_per_share is None  # not computed across expiries
    fills, rest = pos.settle_expired(pd.Timestamp("2016-06-16"), 215.0)
    assert fills == () and rest is pos
    fills, rest = pos.settle_expired(pd.Timestamp("2016-06-17"), 215.0)
    assert len(fills) == 1 and fills[0].leg == legs[0]
    assert fills[0].cash_flow_usd == pytest.approx(500.0)
    assert rest is not None and rest.legs == (legs[1],) and rest.strategy == "custom"
    fills, rest = rest.settle_expired(pd.Timestamp("2016-07-15"), 190.0)
    assert rest is None and fills[0].cash_flow_usd == pytest.approx(-1000.0)
    # intraday: not settled before the 16:00 close of the expiry date
    assert pos.settle_expired(pd.Timestamp("2016-06-17 11:00"), 215.0)[0] == ()


# --------------------------------------------------------------------------- structure rules
def test_condor_rules():
    good = iron_condor(EXP, 190.0, 220.0, 5.0)
    check_structure("iron_condor", good)
    unequal = (
        Leg("put", 180.0, EXP, 1),
        Leg("put", 190.0, EXP, -1),
        Leg("call", 220.0, EXP, -1),
        Leg("call", 225.0, EXP, 1),
    )
    with pytest.raises(ValueError, match="wings must be equal"):
        check_structure("iron_condor", unequal)
    crossed = iron_condor(EXP, 220.0, 190.0, 5.0)
    with pytest.raises(ValueError, match="strike order requires the call 190 to be above"):
        check_structure("iron_condor", crossed)
    with pytest.raises(ValueError, match="to be equal to"):
        check_structure("iron_butterfly", good)
    flipped = tuple(Leg(x.option_type, x.strike, x.expiry, -x.quantity_contracts) for x in good)
    with pytest.raises(ValueError, match="strike order"):
        check_structure("iron_condor", flipped)


def test_other_structure_rules():
    with pytest.raises(ValueError, match="one expiry"):
        check_structure(
            "long_straddle", (Leg("put", 200.0, EXP, 1), Leg("call", 200.0, "2016-08-19", 1))
        )
    with pytest.raises(ValueError, match="must have \\+1 x 1 contracts"):
        check_structure("long_straddle", (Leg("put", 200.0, EXP, 1), Leg("call", 200.0, EXP, 2)))
    with pytest.raises(ValueError, match="to be equal to"):
        check_structure("short_straddle", (Leg("put", 195.0, EXP, -1), Leg("call", 200.0, EXP, -1)))
    with pytest.raises(ValueError, match="call 200 to be above the put 205"):
        check_structure("long_strangle", (Leg("put", 205.0, EXP, 1), Leg("call", 200.0, EXP, 1)))
    with pytest.raises(ValueError, match="2 call"):
        check_structure("bear_call_spread", (Leg("put", 205.0, EXP, -1), Leg("put", 200.0, EXP, 1)))
    with pytest.raises(ValueError, match="strike order"):
        check_structure("bull_put_spread", (Leg("put", 195.0, EXP, -1), Leg("put", 200.0, EXP, 1)))
    with pytest.raises(ValueError, match="unknown strategy"):
        check_structure("jade_lizard", (Leg("put", 195.0, EXP, -1),))


def test_domain_objects_validate_at_construction():
    with pytest.raises(ValueError, match="option_type"):
        Leg("straddle", 100.0, EXP, 1)
    with pytest.raises(ValueError, match="strike"):
        Leg("call", -1.0, EXP, 1)
    with pytest.raises(ValueError, match="quantity_contracts"):
        Leg("call", 100.0, EXP, 0)
    with pytest.raises(ValueError, match="quantity_contracts"):
        Leg("call", 100.0, EXP, 1.5)
    leg = Leg("call", 100.0, "2016-07-15 00:00", 1)
    assert leg.expiry == EXP
    with pytest.raises(ValueError, match="premium_per_share"):
        Fill(leg, EXP, 1, -0.1, 0.0, 0.0, "open")
    with pytest.raises(ValueError, match="one fill per leg"):
        Position("custom", (leg,), EXP, ())
    with pytest.raises(ValueError, match="spot"):
        MarketState(EXP, 0.0, 0.2, 0.01)
    with pytest.raises(ValueError, match="contracts"):
        build_position("iron_condor", MarketState(EXP, 200.0, 0.2, 0.01), contracts=0)
    with pytest.raises(AttributeError):
        leg.strike = 5.0  # frozen


def test_builders_pick_sensible_strikes(real_market):
    for strategy in HAND_CHECKED:
        pos = build_position(strategy, real_market, strategy_cfg=INDEX_CFG)
        assert all(leg.strike % 5.0 == 0 for leg in pos.legs)
        dte = (pos.expiries[0] - real_market.as_of).days
        assert 25 <= dte <= 35
    bull_put = build_position("bull_put_spread", real_market, strategy_cfg=INDEX_CFG)
    short = next(leg for leg in bull_put.legs if leg.quantity_contracts < 0)
    t = (bull_put.expiries[0] - real_market.as_of).days / 365.0
    iv = iv_at(real_market.atm_iv_annualized, real_market.spot, short.strike, t, SURFACE)
    delta = bs_greeks(
        "put", real_market.spot, short.strike, t, real_market.rate, iv, real_market.dividend_yield
    )["delta"]
    assert abs(abs(delta) - 0.30) < 0.03
    assert bull_put.entry_premium_usd < 0  # a credit
