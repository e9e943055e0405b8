"""The observation table: one list of (name, function, scale) entries per block.

A value seen by the agent is ``function(context) / scale``, clipped to ``observation_clip``. Names
and values come from the same entry, so they cannot drift apart; the class docstring of
:class:`envs.spy_options_env.SpyOptionsEnv` renders the same table. Scales are fixed constants
(nothing is fitted), chosen so that typical values are of order 1.

* Market block (:func:`market_entries`), computed once per segment as a matrix: forecast
  quantiles in units of the option-implied move, forecast-to-implied width ratios, causal market
  features, implied volatility, calendar and rate.
* Portfolio block (:data:`PORTFOLIO_ENTRIES`), computed each step from the simulator. With several
  positions open it aggregates: greeks, margin and unrealised P&L are sums over positions; the
  one-hot ``position_is_*`` marks every structure held; days to expiry is the nearest one;
  ``unrealized_pnl_over_risk`` is the summed unrealised P&L over the summed risk.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.codecs import wide_column
from common.units import PERCENT_PER_UNIT
from options.calendar import NS_PER_DAY
from options.structures import STRUCTURE_NAMES

__all__ = ["DAYS_TO_EXPIRY_OBS", "PORTFOLIO_ENTRIES", "Z_875", "MarketContext", "ObsEntry",
           "ObservationIndex", "forecast_quantile_obs_name", "forecast_width_obs_name",
           "market_entries", "portfolio_values", "write_open_portfolio_values"]

Z_875 = 1.1503493803760079  # standard normal 0.875 quantile: half-width of a 75% interval


@dataclass(frozen=True)
class ObsEntry:
    """One observation: its name, how it is computed, the scale it is divided by, its unit."""

    name: str
    value: Callable
    scale: float
    unit: str


def forecast_quantile_obs_name(horizon_bars: int, level: float) -> str:
    """Name of the observation of one forecast quantile over the implied move
    (``forecast_h5_q0.500_vs_implied_move``)."""
    return f"forecast_{wide_column(horizon_bars, level)}_vs_implied_move"


def forecast_width_obs_name(horizon_bars: int) -> str:
    """Name of the observation of the forecast 75% width over the implied one."""
    return f"forecast_width75_h{horizon_bars}_vs_implied_width75"


DAYS_TO_EXPIRY_OBS = "days_to_monthly_expiry_over_30"  # a property of the date, not the market


class ObservationIndex:
    """Where each named observation sits in the observation vector: read values by name."""

    def __init__(self, observation_names) -> None:
        self.names = tuple(observation_names)
        self._slot = {name: i for i, name in enumerate(self.names)}

    def slot(self, name: str) -> int:
        """The position of ``name`` (KeyError naming the missing observation)."""
        try:
            return self._slot[name]
        except KeyError:
            raise KeyError(f"no observation named {name!r} (this env has {len(self.names)}; "
                           "forecast names depend on the configured horizons and levels)") from None

    def value(self, observation, name: str) -> float:
        """The value of the observation ``name`` in ``observation``."""
        return observation[self.slot(name)]

    def __contains__(self, name: str) -> bool:
        return name in self._slot


@dataclass(frozen=True)
class MarketContext:
    """Arrays over a segment's tradable bars that market entries read (all known at each bar)."""

    forecast: Callable[[int, float], np.ndarray]  # (horizon, level) -> quantile per bar
    implied_move: dict[int, np.ndarray]  # horizon -> atm_iv * sqrt(h / bars_per_year)
    features: pd.DataFrame
    atm_iv: np.ndarray
    atm_iv_5_bars_before: np.ndarray
    days_to_monthly_expiry: np.ndarray
    rate: np.ndarray


# (observation name, feature column, scale): value / scale is what the agent sees.
MARKET_FEATURES = (
    ("ret_log_1b", 0.01), ("ret_log_5b", 0.02), ("ret_log_20b", 0.05), ("rv_ann_20b", 0.20),
    ("rsi_14b", 100.0), ("adx_14b", 100.0), ("macd_hist_pct", 1.0), ("bb_pctb_20b", 1.0),
)


def market_entries(horizons, levels) -> list[ObsEntry]:
    """The market block for these forecast horizons (bars) and quantile levels."""
    entries: list[ObsEntry] = []
    for h in horizons:
        for level in levels:
            entries.append(ObsEntry(
                forecast_quantile_obs_name(h, level),
                lambda c, h=h, level=level: c.forecast(h, level) / c.implied_move[h], 1.0,
                "implied sd"))
        entries.append(ObsEntry(
            forecast_width_obs_name(h),
            lambda c, h=h: (c.forecast(h, 0.875) - c.forecast(h, 0.125))
            / (2 * Z_875 * c.implied_move[h]), 1.0, "ratio"))
    for column, scale in MARKET_FEATURES:
        entries.append(ObsEntry(f"{column}_scaled",
                                lambda c, column=column: c.features[column].to_numpy(float),
                                scale, "scaled"))
    entries += [
        ObsEntry("atm_iv_over_0.20", lambda c: c.atm_iv, 0.20, "vol"),
        ObsEntry("atm_iv_change_5b_over_0.05",
                 lambda c: np.nan_to_num(c.atm_iv - c.atm_iv_5_bars_before), 0.05, "vol"),
        ObsEntry("atm_iv_minus_rv_20b_over_0.10",
                 lambda c: c.atm_iv - c.features["rv_ann_20b"].to_numpy(float), 0.10, "vol"),
        ObsEntry(DAYS_TO_EXPIRY_OBS, lambda c: c.days_to_monthly_expiry, 30.0, "days"),
        ObsEntry("rate_over_0.05", lambda c: c.rate, 0.05, "decimal"),
    ]
    return entries


class PortfolioContext:
    """What portfolio entries read at one bar (sums over positions computed once)."""

    __slots__ = ("equity_safe", "held", "max_open_positions", "now_ns", "sim", "spot")

    def __init__(self, sim, spot: float, equity_safe: float, now_ns: int,
                 max_open_positions: int) -> None:
        self.sim = sim  # envs.portfolio.PortfolioSimulator
        self.spot = spot
        self.equity_safe = equity_safe
        self.now_ns = now_ns
        self.max_open_positions = max_open_positions
        self.held = {p.unit.strategy for p in sim.positions}


def _min_dte_days(c: PortfolioContext) -> float:
    best = math.inf
    for pos in c.sim.positions:
        path = pos.unit.path
        k = c.sim.bar - pos.unit.entry_bar
        best = min(best, (path.first_expiry_ns[k] - c.now_ns) / NS_PER_DAY)
    return max(best, 0.0) if best < math.inf else 0.0


def _unrealized_over_risk(c: PortfolioContext) -> float:
    risk = sum(p.risk_usd for p in c.sim.positions)
    return c.sim.unrealized_pnl() / risk if risk > 0 else 0.0


def _holds(strategy: str) -> Callable:
    return lambda c: 1.0 if strategy in c.held else 0.0


PORTFOLIO_ENTRIES: tuple[ObsEntry, ...] = (
    ObsEntry("cash_over_start_minus_1", lambda c: c.sim.cash / c.sim.start_equity - 1.0, 1.0,
             "fraction"),
    ObsEntry("equity_over_start_minus_1", lambda c: c.sim.equity / c.sim.start_equity - 1.0, 1.0,
             "fraction"),
    *(ObsEntry(f"position_is_{name}", _holds(name), 1.0, "0/1") for name in STRUCTURE_NAMES),
    ObsEntry("open_positions_over_max", lambda c: len(c.sim.positions), 1.0, "fraction"),
    ObsEntry("position_dte_days_over_60", _min_dte_days, 60.0, "days"),
    ObsEntry("unrealized_pnl_over_risk", _unrealized_over_risk, 1.0, "fraction"),
    ObsEntry("position_dollar_delta_over_equity",
             lambda c: c.sim.greeks[0] * c.spot / c.equity_safe, 1.0, "fraction"),
    ObsEntry("position_dollar_gamma_1pct_over_equity_x100",
             lambda c: 0.5 * c.sim.greeks[1] * (0.01 * c.spot) ** 2 / c.equity_safe * PERCENT_PER_UNIT, 1.0,
             "% of equity"),
    ObsEntry("position_theta_usd_per_day_over_equity_x100",
             lambda c: c.sim.greeks[2] / c.equity_safe * PERCENT_PER_UNIT, 1.0, "% of equity"),
    ObsEntry("position_vega_usd_per_vol_point_over_equity_x100",
             lambda c: c.sim.greeks[3] / c.equity_safe * PERCENT_PER_UNIT, 1.0, "% of equity"),
    ObsEntry("margin_used_over_equity", lambda c: c.sim.margin_used / c.equity_safe, 1.0,
             "fraction"),
)
_SLOTS = {e.name: k for k, e in enumerate(PORTFOLIO_ENTRIES)}
_SCALES = {e.name: e.scale for e in PORTFOLIO_ENTRIES}
_CASH = _SLOTS["cash_over_start_minus_1"]
_EQUITY = _SLOTS["equity_over_start_minus_1"]
_HELD_SLOT = {name: _SLOTS[f"position_is_{name}"] for name in STRUCTURE_NAMES}
_OPEN_SLOT = _SLOTS["open_positions_over_max"]
_DTE_SLOT = _SLOTS["position_dte_days_over_60"]
_PNL_RISK_SLOT = _SLOTS["unrealized_pnl_over_risk"]
_DELTA_SLOT = _SLOTS["position_dollar_delta_over_equity"]
_GAMMA_SLOT = _SLOTS["position_dollar_gamma_1pct_over_equity_x100"]
_THETA_SLOT = _SLOTS["position_theta_usd_per_day_over_equity_x100"]
_VEGA_SLOT = _SLOTS["position_vega_usd_per_vol_point_over_equity_x100"]
_MARGIN_SLOT = _SLOTS["margin_used_over_equity"]
_DTE_SCALE = _SCALES["position_dte_days_over_60"]
_INF = math.inf
# The fast path divides by the scale of the days-to-expiry entry only: every other is 1.
assert all(scale == 1.0 for name, scale in _SCALES.items() if name != "position_dte_days_over_60")


def portfolio_values(c: PortfolioContext, clip: float) -> list[float]:
    """The portfolio block at one bar, scaled and clipped (zeros when flat, but cash/equity)."""
    if not c.sim.positions:
        out = [0.0] * len(PORTFOLIO_ENTRIES)
        out[_CASH] = c.sim.cash / c.sim.start_equity - 1.0
        out[_EQUITY] = c.sim.equity / c.sim.start_equity - 1.0
    else:
        out = [e.value(c) / e.scale for e in PORTFOLIO_ENTRIES]
        out[_OPEN_SLOT] /= c.max_open_positions
    return [clip if v > clip else (-clip if v < -clip else v) for v in out]


def write_open_portfolio_values(obs: np.ndarray, offset: int, sim, spot: float,
                                spot_1pct_squared: float, equity_safe: float, now_ns: int,
                                max_open_positions: int, clip: float) -> None:
    """Write :func:`portfolio_values` of a portfolio with open positions into ``obs[offset:]``,
    whose entries are zeros but where it writes: the same floats bit for bit
    (``tests/test_env_tables.py`` checks the step's observation against the table); an entry at
    a time (no list of every entry, no conversion of one). ``spot_1pct_squared`` is
    ``(0.01 * spot) ** 2`` and ``now_ns`` the bar's close."""
    start = sim.start_equity
    v = sim.cash / start - 1.0
    obs[offset + _CASH] = clip if v > clip else (-clip if v < -clip else v)
    v = sim.equity / start - 1.0
    obs[offset + _EQUITY] = clip if v > clip else (-clip if v < -clip else v)
    held = 1.0 if clip >= 1.0 else clip
    bar = sim.bar
    best = _INF
    risk = 0
    unrealized = 0
    positions = sim.positions
    for pos in positions:
        unit = pos.unit
        path = unit.path
        k = bar - unit.entry_bar
        obs[offset + _HELD_SLOT[unit.strategy]] = held
        days = (path.first_expiry_ns[k] - now_ns) / NS_PER_DAY  # as _min_dte_days
        if days < best:  # min(best, days)
            best = days
        risk += pos.risk_usd
        unrealized += (pos.entry_cash_flow_usd + pos.exit_cash_flow_usd
                       + path.mid_usd[k] * pos.contracts)
    delta, gamma, theta, vega = sim.greeks
    v = len(positions) / 1.0 / max_open_positions
    obs[offset + _OPEN_SLOT] = clip if v > clip else (-clip if v < -clip else v)
    v = ((0.0 if best < 0.0 else best) if best < _INF else 0.0) / _DTE_SCALE  # max(best, 0.0)
    obs[offset + _DTE_SLOT] = clip if v > clip else (-clip if v < -clip else v)
    v = unrealized / risk if risk > 0 else 0.0
    obs[offset + _PNL_RISK_SLOT] = clip if v > clip else (-clip if v < -clip else v)
    v = delta * spot / equity_safe
    obs[offset + _DELTA_SLOT] = clip if v > clip else (-clip if v < -clip else v)
    v = 0.5 * gamma * spot_1pct_squared / equity_safe * PERCENT_PER_UNIT
    obs[offset + _GAMMA_SLOT] = clip if v > clip else (-clip if v < -clip else v)
    v = theta / equity_safe * PERCENT_PER_UNIT
    obs[offset + _THETA_SLOT] = clip if v > clip else (-clip if v < -clip else v)
    v = vega / equity_safe * PERCENT_PER_UNIT
    obs[offset + _VEGA_SLOT] = clip if v > clip else (-clip if v < -clip else v)
    v = sim.margin_used / equity_safe
    obs[offset + _MARGIN_SLOT] = clip if v > clip else (-clip if v < -clip else v)
