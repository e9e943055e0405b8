"""Strike selection on the model surface, and strategy legs from the structure specs.

The legs of every structure come from its spec in :mod:`options.structures` (the table there
is the one source); this module supplies the model's choices: the listed strike whose |delta| on
the skewed surface is nearest a target (:func:`strike_for_delta`, a bisection checked against the
grid scan :func:`strike_for_delta_grid`), the at-the-money strike, and the expiry nearest the
target days. :func:`build_position` opens the legs at bid/ask with commissions. The small
builders (``iron_condor(expiry, ...)`` etc.) make legs from given strikes, for tests and examples.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from options.calendar import ALL_EXPIRY_KINDS, dte_days, nearest_expiry, t_years_to_expiry
from options.costs import CostConfig
from options.positions import (
    STRATEGY_NAMES,
    Leg,
    MarketState,
    Position,
    open_position,
)
from options.pricing import bs_greeks, bs_greeks_scalar
from options.structures import STRUCTURES, build_structure_legs
from options.surface import SurfaceConfig, iv_at, iv_at_params

__all__ = [
    "StrategyConfig",
    "atm_strike",
    "bear_call_spread",
    "bear_put_spread",
    "build_position",
    "bull_call_spread",
    "bull_put_spread",
    "iron_butterfly",
    "iron_condor",
    "long_straddle",
    "long_strangle",
    "short_straddle",
    "short_strangle",
    "strategy_legs",
    "strike_for_delta",
    "strike_for_delta_grid",
    "within_band",
]


class StrategyConfig(BaseModel):
    """How strategies choose expiry and strikes; unknown keys are rejected.

    Defaults follow common retail practice for index premium selling and buying (e.g.
    tastytrade's 30-45 DTE, 16-30 delta short strikes; debit spreads bought at the money).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dte_days: float = Field(30.0, gt=0.0)
    """Target calendar days to expiry; the nearest listed expiry is used."""
    back_dte_days: float = Field(60.0, gt=0.0)
    """Target calendar days to the back expiry of a calendar spread (a later expiry than the
    front one)."""
    min_dte_days: int = Field(1, ge=0)
    expiry_kinds: tuple[str, ...] = ALL_EXPIRY_KINDS
    strike_spacing: float = Field(1.0, gt=0.0)
    """Listed strike interval: $1 for SPY, 5 points for the S&P 500 index."""
    wing_width_strike_units: float = Field(5.0, gt=0.0)
    """Distance between short and long strikes, in strike units (rounded to the spacing,
    at least one spacing)."""
    credit_short_delta_abs: float = Field(0.30, gt=0.0, lt=1.0)
    debit_long_delta_abs: float = Field(0.50, gt=0.0, lt=1.0)
    condor_short_delta_abs: float = Field(0.16, gt=0.0, lt=0.5)
    strangle_delta_abs: float = Field(0.20, gt=0.0, lt=0.5)
    max_abs_log_moneyness: float = Field(0.25, gt=0.0)
    """Moneyness band: a leg is chosen, and a structure opened, only with
    ``|log(strike / spot)| <= max_abs_log_moneyness`` (0.25: strikes within about -22%..+28% of
    spot), so that no order reaches the surface's unquoted far wings."""

    @field_validator("expiry_kinds")
    @classmethod
    def _known_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        bad = [k for k in kinds if k not in ALL_EXPIRY_KINDS]
        if bad or not kinds:
            raise ValueError(f"unknown expiry kinds {bad}; expected some of {ALL_EXPIRY_KINDS}")
        return kinds

    @model_validator(mode="after")
    def _width_vs_spacing(self) -> StrategyConfig:
        if self.wing_width_strike_units < self.strike_spacing:
            raise ValueError(
                f"wing_width_strike_units ({self.wing_width_strike_units}) must be at least "
                f"strike_spacing ({self.strike_spacing})"
            )
        return self

    @property
    def wing_width(self) -> float:
        """Wing width rounded to a whole number (>= 1) of strike spacings."""
        n = max(1, round(self.wing_width_strike_units / self.strike_spacing))
        return n * self.strike_spacing


def _on_grid(value: float, spacing: float) -> float:
    return float(np.round(np.round(value / spacing) * spacing, 10))


def atm_strike(spot: float, strike_spacing: float) -> float:
    """The listed strike nearest ``spot``."""
    return max(_on_grid(spot, strike_spacing), strike_spacing)


def within_band(strikes, spot, max_abs_log_moneyness: float | None):
    """Whether each strike lies in the moneyness band ``|log(strike / spot)| <= band`` (a tiny
    tolerance keeps a strike exactly on the edge inside); every strike when ``band`` is None."""
    k = np.asarray(strikes, dtype=float)
    if max_abs_log_moneyness is None:
        return np.ones(k.shape, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        moneyness = np.abs(np.log(k / np.asarray(spot, dtype=float)))
    return moneyness <= max_abs_log_moneyness + 1e-12


def _strike_grid_bounds(spot: float, atm_iv: float, t_years: float, surface_cfg: SurfaceConfig,
                        strike_spacing: float,
                        max_abs_log_moneyness: float | None = None) -> tuple[int, int]:
    """Grid indices (strike = index * spacing) searched: six standard deviations of spot, at
    least 20 strikes each side, cut to the moneyness band when one is given."""
    sd = max(atm_iv, surface_cfg.iv_floor_annualized) * math.sqrt(max(t_years, 1.0 / 365.0))
    lo = min(spot * math.exp(-6.0 * sd), spot - 20 * strike_spacing)
    hi = max(spot * math.exp(6.0 * sd), spot + 20 * strike_spacing)
    if max_abs_log_moneyness is not None:
        lo = max(lo, spot * math.exp(-max_abs_log_moneyness) * (1 - 1e-12))
        hi = min(hi, spot * math.exp(max_abs_log_moneyness) * (1 + 1e-12))
    first = int(max(math.ceil(lo / strike_spacing), 1.0))
    last = int(math.floor(hi / strike_spacing))
    if last < first:
        raise ValueError(f"no strike of spacing {strike_spacing:g} within the moneyness band "
                         f"|log(K/S)| <= {max_abs_log_moneyness:g} at spot {spot:g}")
    return first, last


def strike_for_delta_grid(option_type: str, target_delta_abs: float, market: MarketState,
                          t_years: float, surface_cfg: SurfaceConfig,
                          strike_spacing: float,
                          max_abs_log_moneyness: float | None = None) -> float:
    """Reference implementation of :func:`strike_for_delta`: |delta| of every grid strike,
    then the first strike nearest the target (slow, obvious; the tests compare the two)."""
    if not 0.0 < target_delta_abs < 1.0:
        raise ValueError(f"target_delta_abs must be in (0, 1), got {target_delta_abs}")
    first, last = _strike_grid_bounds(market.spot, market.atm_iv_annualized, t_years,
                                      surface_cfg, strike_spacing, max_abs_log_moneyness)
    strikes = np.round(np.arange(first, last + 1, dtype=float) * strike_spacing, 10)
    iv = iv_at(market.atm_iv_annualized, market.spot, strikes, t_years, surface_cfg)
    delta = bs_greeks(option_type, market.spot, strikes, t_years, market.rate, iv,
                      market.dividend_yield)["delta"]
    return float(strikes[int(np.argmin(np.abs(np.abs(delta) - target_delta_abs)))])


def strike_for_delta(option_type: str, target_delta_abs: float, market: MarketState,
                     t_years: float, surface_cfg: SurfaceConfig, strike_spacing: float,
                     max_abs_log_moneyness: float | None = None) -> float:
    """The listed strike whose ``|delta|`` (on the skewed surface) is nearest the target.

    Searches the strike grid within six standard deviations of spot (at least 20 strikes
    each side), inside the moneyness band ``|log(K/S)| <= max_abs_log_moneyness`` when one is
    given (the band's edge strike when the target lies beyond it); ties go to the lower strike. |delta| is monotone in the strike on this surface
    (non-increasing for calls, non-decreasing for puts), so a bisection for the crossing finds
    the same strike as scanning the grid (:func:`strike_for_delta_grid`) in about ten scalar
    evaluations instead of hundreds.
    """
    if not 0.0 < target_delta_abs < 1.0:
        raise ValueError(f"target_delta_abs must be in (0, 1), got {target_delta_abs}")
    if option_type not in ("call", "put"):
        raise ValueError(f"option_type must be 'call' or 'put', got {option_type!r}")
    is_call = option_type == "call"
    spot, atm, rate, q = (market.spot, market.atm_iv_annualized, market.rate,
                          market.dividend_yield)
    params = surface_cfg.params
    first, last = _strike_grid_bounds(spot, atm, t_years, surface_cfg, strike_spacing,
                                      max_abs_log_moneyness)

    def strike(n: int) -> float:
        return round(n * strike_spacing, 10)

    def excess(n: int) -> float:
        """|delta| minus the target, signed so that it is non-increasing in n."""
        k = strike(n)
        iv = iv_at_params(params, atm, spot, k, t_years)
        d = abs(bs_greeks_scalar(is_call, spot, k, t_years, rate, iv, q)[0]) - target_delta_abs
        return d if is_call else -d

    # Smallest n with excess(n) <= 0 (last + 1 when none).
    lo, hi = first, last + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if excess(mid) <= 0.0:
            hi = mid
        else:
            lo = mid + 1
    candidates = [n for n in (lo - 1, lo) if first <= n <= last]
    gaps = [abs(excess(n)) for n in candidates]
    best = candidates[int(np.argmin(gaps))]
    best_gap = min(gaps)
    # On an exact plateau (e.g. zero time: |delta| is 0 or 1) the grid scan takes the first.
    while best > first and abs(excess(best - 1)) == best_gap:
        best -= 1
    return strike(best)


# --------------------------------------------------------------------------- builders
def bull_put_spread(expiry, short_put_strike: float, width: float, contracts: int = 1):
    """Short put, long put ``width`` lower (credit)."""
    return (
        Leg("put", short_put_strike - width, expiry, contracts),
        Leg("put", short_put_strike, expiry, -contracts),
    )


def bear_call_spread(expiry, short_call_strike: float, width: float, contracts: int = 1):
    """Short call, long call ``width`` higher (credit)."""
    return (
        Leg("call", short_call_strike, expiry, -contracts),
        Leg("call", short_call_strike + width, expiry, contracts),
    )


def bull_call_spread(expiry, long_call_strike: float, width: float, contracts: int = 1):
    """Long call, short call ``width`` higher (debit)."""
    return (
        Leg("call", long_call_strike, expiry, contracts),
        Leg("call", long_call_strike + width, expiry, -contracts),
    )


def bear_put_spread(expiry, long_put_strike: float, width: float, contracts: int = 1):
    """Long put, short put ``width`` lower (debit)."""
    return (
        Leg("put", long_put_strike - width, expiry, -contracts),
        Leg("put", long_put_strike, expiry, contracts),
    )


def iron_condor(
    expiry, short_put_strike: float, short_call_strike: float, width: float, contracts: int = 1
):
    """Bull put spread below plus bear call spread above, equal wings (credit)."""
    return bull_put_spread(expiry, short_put_strike, width, contracts) + bear_call_spread(
        expiry, short_call_strike, width, contracts
    )


def iron_butterfly(expiry, center_strike: float, width: float, contracts: int = 1):
    """Short straddle at ``center_strike`` with long wings ``width`` out (credit)."""
    return iron_condor(expiry, center_strike, center_strike, width, contracts)


def long_straddle(expiry, strike: float, contracts: int = 1):
    return (Leg("put", strike, expiry, contracts), Leg("call", strike, expiry, contracts))


def short_straddle(expiry, strike: float, contracts: int = 1):
    return (Leg("put", strike, expiry, -contracts), Leg("call", strike, expiry, -contracts))


def long_strangle(expiry, put_strike: float, call_strike: float, contracts: int = 1):
    return (Leg("put", put_strike, expiry, contracts), Leg("call", call_strike, expiry, contracts))


def short_strangle(expiry, put_strike: float, call_strike: float, contracts: int = 1):
    return (
        Leg("put", put_strike, expiry, -contracts),
        Leg("call", call_strike, expiry, -contracts),
    )


def strategy_legs(
    strategy: str,
    market: MarketState,
    expiry,
    strategy_cfg: StrategyConfig,
    surface_cfg: SurfaceConfig,
    contracts: int = 1,
) -> tuple[Leg, ...]:
    """Legs of ``strategy`` (its spec in :mod:`options.structures`) with front expiry ``expiry``,
    strikes on the model surface's regular grid: by delta with :func:`strike_for_delta`, at the
    money with :func:`atm_strike`, wings of ``strategy_cfg.wing_width``. A calendar's back
    expiry is the listed one nearest ``strategy_cfg.back_dte_days`` after the front.

    Raises ValueError when the strikes cannot form the structure (e.g. a long put strike at or
    below zero, or a put strike above the call strike at tiny volatility).
    """
    spec = STRUCTURES.get(strategy)
    if spec is None:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGY_NAMES}")
    cfg = strategy_cfg
    expiries = {"front": pd.Timestamp(expiry).normalize()}
    if spec.is_calendar:
        front_dte = dte_days(market.as_of, expiries["front"])
        expiries["back"] = nearest_expiry(market.as_of, cfg.back_dte_days, cfg.expiry_kinds,
                                          min_dte_days=front_dte + 1)

    def selector(rule: str):
        t = t_years_to_expiry(market.as_of, expiries[rule])
        return lambda option_type, target: strike_for_delta(
            option_type, target, market, t, surface_cfg, cfg.strike_spacing,
            cfg.max_abs_log_moneyness)

    choices = build_structure_legs(
        spec, expiries=expiries, atm_strike=atm_strike(market.spot, cfg.strike_spacing),
        wing_width=cfg.wing_width, by_delta={r: selector(r) for r in expiries}, targets=cfg,
        contracts=contracts)
    if choices is None:
        raise ValueError(f"{strategy}: no valid strikes at spot {market.spot:g} for {expiry}")
    outside = [c.strike for c in choices
               if not within_band(c.strike, market.spot, cfg.max_abs_log_moneyness)]
    if outside:
        raise ValueError(f"{strategy}: strike {outside[0]:g} lies beyond the moneyness band "
                         f"|log(K/S)| <= {cfg.max_abs_log_moneyness:g} at spot {market.spot:g}")
    return tuple(Leg(c.option_type, c.strike, c.expiry, c.quantity_contracts) for c in choices)


def build_position(
    strategy: str,
    market: MarketState,
    *,
    contracts: int = 1,
    strategy_cfg: StrategyConfig | None = None,
    surface_cfg: SurfaceConfig | None = None,
    cost_cfg: CostConfig | None = None,
    expiry=None,
) -> Position:
    """Open one ``strategy`` position at ``market``.

    Args:
        strategy: one of :data:`STRATEGY_NAMES`.
        market: the market state at the decision time.
        contracts: contracts per leg (> 0; signs come from the strategy).
        strategy_cfg, surface_cfg, cost_cfg: configs (defaults when None).
        expiry: the expiry to use; by default the listed expiry nearest
            ``strategy_cfg.dte_days`` (:func:`nearest_expiry`). Callers that open often can
            precompute it.

    Returns:
        A :class:`Position` whose entry fills are at the ask for long legs and the bid for
        short legs, with commissions.
    """
    if isinstance(contracts, bool) or not isinstance(contracts, int | np.integer) or contracts <= 0:
        raise ValueError(f"contracts must be a positive integer, got {contracts!r}")
    strategy_cfg = strategy_cfg or StrategyConfig()
    surface_cfg = surface_cfg or SurfaceConfig()
    cost_cfg = cost_cfg or CostConfig()
    if expiry is None:
        expiry = nearest_expiry(
            market.as_of,
            strategy_cfg.dte_days,
            strategy_cfg.expiry_kinds,
            min_dte_days=strategy_cfg.min_dte_days,
        )
    legs = strategy_legs(strategy, market, expiry, strategy_cfg, surface_cfg, int(contracts))
    return open_position(strategy, legs, market, surface_cfg, cost_cfg)
