"""The environment's fast paths equal the slow obvious ones bit for bit.

* Per-bar structure tables built in blocks, with one quote call per (expiry, right) for all
  bars and legs, equal the tables built lazily one unit and one leg at a time.
* The portfolio observation computed without a context object equals the observation table's.
* The mask's sizing pass equals ``can_open(unit, contracts_for(unit))`` unit by unit.
* The vectorised settleable-expiry filter equals the per-expiry reference.
"""

from __future__ import annotations

import math
from dataclasses import fields
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import data
from envs import EnvConfig, SpyOptionsEnv, build_market_panel
from envs.actions import FIRST_OPEN_ACTION, STRATEGIES
from envs.market import bar_close_ns
from envs.observations import PortfolioContext, portfolio_values
from envs.portfolio import TABLE_BLOCK_BARS
from forecasters.panel import ForecastPanel
from options.calendar import expiry_close_ns, listed_expiries
from options.quotes import MarketBars, ModelQuoteSource, settleable_expiries
from options.strategies import StrategyConfig
from options.structures import STRUCTURES
from options.surface import SurfaceConfig

SCALE = 0.1
HORIZONS = (1, 2, 3, 4, 5)
LEVELS = (0.05, 0.125, 0.5, 0.875, 0.95)


@cache
def panel():
    frame = data.load_market("embedded")
    iv = frame["iv_index"].ffill().dropna()
    values = np.stack([np.outer(iv.to_numpy() * math.sqrt(h / 252), norm.ppf(LEVELS))
                       for h in HORIZONS], axis=1)
    forecasts = ForecastPanel(pd.DatetimeIndex(iv.index), HORIZONS, LEVELS, values)
    return build_market_panel(frame, data.build_features(frame), forecasts, "2016-01-01",
                              "2016-08-31", SurfaceConfig(), price_scale=SCALE)


def make_env(**env_kwargs) -> SpyOptionsEnv:
    """A training env on 2016 (a narrow moneyness band, so that some structures are refused)."""
    env_kwargs.setdefault("strategies", StrategyConfig(max_abs_log_moneyness=0.04))
    return SpyOptionsEnv(panel(), EnvConfig(underlying_price_scale=SCALE, **env_kwargs),
                         mode="train")


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, list | tuple) and a and isinstance(a[0], float):
        return np.asarray(a).tobytes() == np.asarray(b).tobytes()
    return a == b


def test_batched_tables_equal_the_lazy_ones_bit_for_bit():
    batched, lazy = make_env().tables, make_env().tables
    assert batched.batched and lazy.batched  # model quotes are elementwise
    lazy.batched = False  # one quote call per grid, unit and leg, as built before batching
    bars = range(0, 30)
    batched.build_bars(bars)
    compared = missing = 0
    for bar in bars:
        for strategy in STRUCTURES:
            lazy_unit = lazy.unit(bar, strategy)
            assert (bar, strategy) in batched._units  # built up front
            unit = batched.unit(bar, strategy)
            assert (unit is None) == (lazy_unit is None), (bar, strategy)
            if unit is None:
                missing += 1
                assert batched.why_missing(bar, strategy) == lazy.why_missing(bar, strategy)
                continue
            assert unit.path is not None  # paths built with the block
            lazy.path(lazy_unit)
            for f in fields(unit):
                if f.name != "path":
                    assert _same(getattr(unit, f.name), getattr(lazy_unit, f.name)), f.name
            for f in fields(unit.path):
                assert _same(getattr(unit.path, f.name), getattr(lazy_unit.path, f.name)), \
                    (bar, strategy, f.name)
            compared += 1
    assert compared > 200 and missing > 0  # both kinds of outcome were compared


def test_a_block_is_built_once_when_one_of_its_bars_is_first_needed():
    env = make_env()
    env.reset(seed=0, options={"start_index": 3, "length_bars": 5})
    env.action_masks()
    tables = env.tables
    block = range(0, min(TABLE_BLOCK_BARS, len(panel())))
    assert all((bar, s) in tables._units for bar in block for s in STRUCTURES)
    built = dict(tables._units)
    tables.ensure_bar(block[-1])
    assert tables._units == built  # nothing rebuilt


def test_a_source_without_elementwise_quotes_stays_lazy():
    class OneByOne(ModelQuoteSource):
        elementwise_quotes = False

    p = panel()
    env = SpyOptionsEnv(p, EnvConfig(underlying_price_scale=SCALE), mode="train",
                        quote_source=OneByOne(p.market_bars(), SurfaceConfig(),
                                              expiry_kinds=EnvConfig().strategies.expiry_kinds,
                                              max_dte_days=400))
    env.reset(seed=0, options={"start_index": 3, "length_bars": 5})
    env.action_masks()
    assert {bar for bar, _ in env.tables._units} == {3}


@pytest.mark.parametrize("env_kwargs", [
    {"max_open_positions": 3},
    {"max_open_positions": 2, "sizing": "fixed_contracts", "fixed_contracts": 3},
    {"max_open_positions": 1, "observation_clip": 0.5},
])
def test_fast_observation_and_mask_equal_the_tables(env_kwargs):
    env = make_env(**env_kwargs)
    rng = np.random.default_rng(3)
    env.reset(seed=5)
    cfg = env.cfg
    several = 0
    for _ in range(250):
        sim = env.sim
        i = sim.bar
        equity = sim.equity
        safe = equity if equity > 1e-9 else 1e-9
        table = portfolio_values(PortfolioContext(sim, env._spot[i], safe, env._close_ns[i],
                                                  cfg.max_open_positions), env._clip)
        # the step's observation: the clipped market row, then the table's portfolio block
        obs = env._get_obs()
        assert obs[:env._n_market].tobytes() == np.clip(
            env.panel.market_obs[i], -env._clip, env._clip).astype(np.float32).tobytes()
        assert obs[env._n_market:].tobytes() == np.asarray(table, np.float32).tobytes()
        several += len(sim.positions) > 1
        units = [u for s in STRATEGIES if (u := env.tables.unit(i, s)) is not None]
        expected = [sim.can_open(u, env._contracts(u)) for u in units]
        assert sim.openable(units, cfg.sizing, cfg.risk_per_trade_fraction,
                            cfg.fixed_contracts, cfg.max_contracts) == expected
        if cfg.sizing == "risk_fraction" and units:
            risk = np.array([u.risk_usd for u in units])
            margin = np.array([u.margin_usd for u in units])
            candidates = list(zip(range(len(units)), risk.tolist(), margin.tolist(),
                                  strict=True))
            assert sim.openable_by_budget(candidates, cfg.risk_per_trade_fraction,
                                          cfg.max_contracts) == np.flatnonzero(expected).tolist()
            # NumPy's arithmetic on the arrays (what the mask computed before issue 22)
            equity, free = sim.equity, sim.equity - sim.margin_used
            contracts = np.minimum(np.minimum((cfg.risk_per_trade_fraction * equity) // risk,
                                              free // margin), cfg.max_contracts)
            assert ((contracts >= 1) & (margin * contracts <= free)).tolist() == expected
        mask = env.action_masks()
        if len(sim.positions) < cfg.max_open_positions and i < env._end:
            expected = [u is not None and sim.can_open(u, env._contracts(u))
                        for u in (env.tables.unit(i, s) for s in STRATEGIES)]
            assert mask[FIRST_OPEN_ACTION:FIRST_OPEN_ACTION + len(STRATEGIES)].tolist() \
                == expected
        valid = np.flatnonzero(mask)
        action = int(valid[rng.integers(len(valid))]) if rng.random() < 0.3 else 0
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    if cfg.max_open_positions > 1:
        assert several > 10  # aggregation over several positions was exercised


@pytest.mark.parametrize("start", ["2014-01-03", "2016-11-23", "2018-12-20"])
def test_settleable_expiries_fast_path_equals_the_reference(start):
    rng = np.random.default_rng(0)
    listed = listed_expiries(pd.Timestamp(start), 400, None, min_dte_days=0)
    dates = pd.bdate_range(start, periods=300)
    dates = dates[rng.random(len(dates)) < 0.7]  # gaps: some expiry closes are no bar
    n = len(dates)
    bars = MarketBars(dates, bar_close_ns(dates), np.ones(n), np.full(n, 0.2), np.zeros(n))
    last = int(bars.close_ns[-1])
    reference = pd.DatetimeIndex([e for e in listed if (c := expiry_close_ns(e)) > last
                                  or bars.bar_of_close(c) is not None])
    fast = settleable_expiries(listed, bars)
    assert fast.equals(reference) and fast.dtype == reference.dtype
    assert 0 < len(fast) < len(listed)


def _numpy_risk_usd(legs, price_per_share):
    """The NumPy form of a one-expiry structure's maximum loss and profit (what Position
    computed before it took options.positions.expiry_risk_per_share's Python floats)."""
    units = math.gcd(*(abs(leg.quantity_contracts) for leg in legs))
    weights = [leg.quantity_contracts / units for leg in legs]
    points = np.array(sorted({0.0} | {leg.strike for leg in legs}))
    payoff = np.zeros_like(points)
    for leg, w in zip(legs, weights, strict=True):
        payoff += w * (np.maximum(points - leg.strike, 0.0) if leg.is_call
                       else np.maximum(leg.strike - points, 0.0))
    premium = sum(p * leg.quantity_contracts / units
                  for p, leg in zip(price_per_share, legs, strict=True))
    pnl = payoff - premium
    slope_up = sum(w for leg, w in zip(legs, weights, strict=True) if leg.is_call)
    loss = None if slope_up < -1e-12 else max(0.0, -float(pnl.min())) * units * 100
    profit = None if slope_up > 1e-12 else float(pnl.max()) * units * 100
    return loss, profit


def test_unit_risk_in_python_floats_equals_the_numpy_form_and_the_position():
    """UnitTables prices a unit's maximum loss, maximum profit and stress payoff without
    building a Position, in Python floats; the NumPy form of the same arithmetic and the
    Position opened at the same prices give the same floats."""
    from envs.portfolio import _expiry_risk_usd
    from options.positions import Fill, Position, payoff_at_expiry_usd

    tables = make_env(strategies=StrategyConfig()).tables
    tables.build_bars(range(0, 20))
    rng = np.random.default_rng(0)
    compared = 0
    for (bar, strategy), unit in tables._units.items():
        if unit is None or STRUCTURES[strategy].is_calendar:
            continue
        date = tables.bars.dates[bar]
        # the unit's entry prices, and prices moved so that some maxima land near zero
        for scale in (1.0, rng.uniform(0.0, 3.0)):
            price = [float(p * scale) for p in np.where(
                [leg.quantity_contracts > 0 for leg in unit.legs], unit.leg_ask, unit.leg_bid)]
            probe = Position(strategy, unit.legs, date, tuple(
                Fill(leg, date, leg.quantity_contracts, p, p, 0.0, "open")
                for leg, p in zip(unit.legs, price, strict=True)))
            loss, profit = _expiry_risk_usd(unit.legs, price)
            for reference in (_numpy_risk_usd(unit.legs, price),
                              (probe.max_loss_usd, probe.max_profit_usd)):
                assert (loss is None) == (reference[0] is None)
                assert (profit is None) == (reference[1] is None)
                assert loss is None or np.float64(loss).tobytes() == np.float64(
                    reference[0]).tobytes()
                assert profit is None or np.float64(profit).tobytes() == np.float64(
                    reference[1]).tobytes()
            moves = tables.bars.spot[bar] * np.array([0.9, 1.1])
            by_hand = sum(leg.quantity_contracts * 100 * (
                np.maximum(moves - leg.strike, 0.0) if leg.is_call
                else np.maximum(leg.strike - moves, 0.0)) for leg in unit.legs)
            assert _same(payoff_at_expiry_usd(unit.legs, moves), np.asarray(by_hand, float))
            compared += 1
    assert compared > 100


def test_sums_in_numpy_order_equal_numpy_bit_for_bit():
    """The bulk table code sums a few legs in Python or row by row in NumPy's own order; on
    values with cancellations and signed zeros the results equal NumPy's sums bit for bit."""
    from envs.portfolio import _PAIRWISE_SUM_LEGS, _sum_floats, _sum_legs

    rng = np.random.default_rng(1)
    values = np.array([1e16, -1e16, 1.0, -1.0, 0.0, -0.0, 3.3, 1e-3, 2.5e-17])
    for n_legs in range(1, _PAIRWISE_SUM_LEGS + 3):
        for _ in range(300):
            a = rng.choice(values, size=n_legs) * rng.choice([1.0, 1.1, -1.0], size=n_legs)
            assert np.float64(_sum_floats(a.tolist())).tobytes() == a.sum().tobytes()
        if n_legs >= _PAIRWISE_SUM_LEGS:
            continue  # such units are assembled one by one
        for n_bars in (1, 2, 9, 70):
            per_leg = rng.choice(values, size=(n_legs, n_bars)) * rng.choice(
                [1.0, 1.1, -1.0], size=(n_legs, n_bars))
            assert _sum_legs(per_leg).tobytes() == per_leg.sum(axis=0).tobytes()


def test_quoting_each_distinct_contract_once_equals_the_full_call():
    from envs.portfolio import _quote_each_once

    tables = make_env().tables
    source = tables.source
    expiry = tables.grids.expiries(5)["front"]
    bars = np.array([5, 6, 5, 7, 6, 5])
    strikes = np.array([210.0, 211.0, 210.0, 210.0, 205.0, 211.0])
    once = _quote_each_once(source, bars, "put", strikes, expiry)
    full = source.quote(bars, "put", strikes, expiry)
    for f in fields(full):
        assert _same(getattr(once, f.name), getattr(full, f.name)), f.name


def test_openable_by_budget_equals_numpy_arithmetic_on_edge_values():
    """The mask's float loop equals NumPy's ``minimum``/``//`` on arrays, NaN, infinities,
    negative equity and quotients at integer boundaries included."""
    from types import SimpleNamespace

    from envs.portfolio import PortfolioSimulator

    rng = np.random.default_rng(22)
    risk = np.concatenate([10.0 ** rng.uniform(-3, 6, 200), [1.0, 2.0, 1000.0, 2000.0, 0.1]])
    margin = np.concatenate([10.0 ** rng.uniform(-3, 6, 200), [1.0, 1000.0, 0.3, 3e5, 1e-300]])
    equities = [100_000.0, 50_000.0, 1000.0, 0.0, -0.0, -5000.0, 1e308, math.inf, -math.inf,
                math.nan, *(10.0 ** rng.uniform(-2, 8, 40)).tolist()]
    for equity in equities:
        for margin_used in (0.0, 0.5 * equity if math.isfinite(equity) else 0.0, math.nan,
                            math.inf):
            for fraction, max_contracts in ((0.02, 100), (1.0, 1), (0.3, 7)):
                sim = SimpleNamespace(equity=equity, margin_used=margin_used)
                free = equity - margin_used
                with np.errstate(all="ignore"):
                    contracts = np.minimum(np.minimum((fraction * equity) // risk,
                                                      free // margin), max_contracts)
                    expected = ((contracts >= 1) & (margin * contracts <= free)).tolist()
                candidates = list(zip(range(len(risk)), risk.tolist(), margin.tolist(),
                                      strict=True))
                got = PortfolioSimulator.openable_by_budget(sim, candidates, fraction,
                                                            max_contracts)
                assert got == np.flatnonzero(expected).tolist(), (equity, margin_used, fraction,
                                                                  max_contracts)
