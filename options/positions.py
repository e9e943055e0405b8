"""Legs, fills and positions: valuation, greeks, risk, margin and settlement.

Units: prices are per share; :func:`per_share_to_position` turns a per-share amount and a
signed quantity of contracts into a position amount and is the only place where
:data:`CONTRACT_MULTIPLIER` is applied. A leg's quantity is signed (+ long, - short); a
fill's quantity is signed by direction (+ bought, - sold).

Costs are reported apart from P&L: a :class:`Fill` carries its execution price (ask when
buying, bid when selling), the model mid, and its commission. ``max_loss_*`` and
``max_profit_*`` use the entry fill prices (so they include the spread paid on entry) and
exclude commissions.

Margin (:meth:`Position.margin_requirement_usd`):

- defined risk (the loss at expiry is bounded): the maximum loss, which for a debit
  structure is the debit paid;
- otherwise (short straddles and strangles): the Cboe/FINRA Rule 4210 naked short option
  rule, per short leg ``premium + max(naked_underlying_fraction * spot - out_of_the_money
  amount, naked_minimum_fraction * (spot for calls, strike for puts))`` with defaults 20% and
  10% (Cboe applies 15% to broad-based index options; set it in :class:`MarginConfig`). With
  short calls and short puts together the requirement is the larger side's plus the other
  side's premium. Long legs are paid in full and get no credit in this branch, which is
  conservative for custom positions.

Expiry: a leg is cash settled at intrinsic value on its expiry date's close
(:meth:`Position.settle_expired`); legs expiring on different dates settle separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, reduce
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from common.units import CONTRACT_MULTIPLIER
from options.calendar import NS_PER_DAY, expiry_close_ns, timestamp_close_ns
from options.costs import CostConfig, bid_ask_per_share_scalar, commission_usd
from options.pricing import DAYS_PER_YEAR, bs_price_greeks_scalar, bs_price_scalar
from options.structures import CUSTOM_STRATEGY, STRUCTURE_NAMES, check_structure
from options.surface import SurfaceConfig, iv_at_params

STRATEGY_NAMES: tuple[str, ...] = STRUCTURE_NAMES

__all__ = [
    "CONTRACT_MULTIPLIER",
    "CUSTOM_STRATEGY",
    "STRATEGY_NAMES",
    "Fill",
    "Leg",
    "MarginConfig",
    "MarketState",
    "Position",
    "PositionMark",
    "check_structure",
    "expiry_risk_per_share",
    "open_position",
    "payoff_at_expiry_usd",
    "per_share_to_position",
    "position_to_per_share",
    "structure_units",
]


OptionType = Literal["call", "put"]
FillKind = Literal["open", "close", "settle", "assign"]

_NS_PER_YEAR = DAYS_PER_YEAR * NS_PER_DAY


def per_share_to_position(value_per_share, quantity_contracts):
    """A per-share amount times a signed number of contracts times the contract multiplier.

    The only place the multiplier is applied: premiums and values in USD, and greeks in
    position units (delta in shares, theta in USD per day, ...).
    """
    return value_per_share * quantity_contracts * CONTRACT_MULTIPLIER


def position_to_per_share(value_usd, quantity_contracts=1):
    """The inverse of :func:`per_share_to_position`: a USD amount of ``quantity_contracts``
    contracts (default one unit) as a per-share amount."""
    return value_usd / (quantity_contracts * CONTRACT_MULTIPLIER)


def structure_units(legs) -> int:
    """Greatest common divisor of the legs' contract counts (1 for a 1-lot structure)."""
    return reduce(math.gcd, (abs(leg.quantity_contracts) for leg in legs))


def payoff_at_expiry_usd(legs, final_spot) -> np.ndarray:
    """Value in USD of ``legs`` at a common expiry for an array of final underlying prices."""
    s = np.asarray(final_spot, dtype=float)
    total = np.zeros_like(s)
    for leg in legs:
        total = total + per_share_to_position(leg.intrinsic_per_share(s), leg.quantity_contracts)
    return total


def expiry_risk_per_share(legs, premium_per_share: float) -> tuple[float | None, float | None]:
    """Largest loss (>= 0) and largest profit at a common expiry, per share of one structure
    unit of ``legs`` bought for ``premium_per_share`` per unit (+ debit, - credit); None where
    unbounded. The payoff is piecewise linear, so its extremes lie at 0 and the strikes.

    In Python floats (a table build calls this for every unit of every bar, where NumPy's
    per-call cost on a few points dominates); the operations and their order are those of the
    NumPy form, ``payoff += w * np.maximum(points - k, 0)`` and ``(payoff - premium).min()``,
    so the results are the same bit for bit (no NaN reaches ``max``, and the payoff starts at
    +0.0, so no -0.0 ties): ``tests/test_env_tables.py`` checks it against that form."""
    units = structure_units(legs)
    weights = [leg.quantity_contracts / units for leg in legs]
    points = sorted({0.0} | {leg.strike for leg in legs})
    payoff = [0.0] * len(points)
    for leg, w in zip(legs, weights, strict=True):
        k = leg.strike
        if leg.is_call:
            payoff = [v + w * max(x - k, 0.0) for v, x in zip(payoff, points, strict=True)]
        else:
            payoff = [v + w * max(k - x, 0.0) for v, x in zip(payoff, points, strict=True)]
    pnl = [v - premium_per_share for v in payoff]
    slope_up = sum(w for leg, w in zip(legs, weights, strict=True) if leg.is_call)
    max_loss = None if slope_up < -1e-12 else max(0.0, -min(pnl))
    max_profit = None if slope_up > 1e-12 else max(pnl)
    return max_loss, max_profit


def _timestamp(value, name: str) -> pd.Timestamp:
    if type(value) is pd.Timestamp and value.tzinfo is None:
        return value  # the common case, without the checks below
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a timestamp, got {value!r}") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{name} must be a timestamp, got NaT")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("America/New_York").tz_localize(None)
    return ts


def _finite(value, name: str, *, positive: bool = False, nonneg: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and x <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonneg and x < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return x


def _nonzero_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer number of contracts, got {value!r}")
    if value == 0:
        raise ValueError(f"{name} must be nonzero (+ long / bought, - short / sold), got 0")
    return int(value)


# --------------------------------------------------------------------------- domain objects
@dataclass(frozen=True, slots=True)
class MarketState:
    """What the market looks like at a decision time.

    Attributes:
        as_of: decision timestamp (midnight = that day's close, see :mod:`options.calendar`).
        spot: underlying price.
        atm_iv_annualized: reference-horizon ATM implied vol (see :func:`atm_iv_series`).
        rate: annualised risk-free rate (decimal).
        dividend_yield: annualised continuous dividend yield (decimal).
    """

    as_of: pd.Timestamp
    spot: float
    atm_iv_annualized: float
    rate: float
    dividend_yield: float = 0.0
    as_of_close_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "as_of", _timestamp(self.as_of, "as_of"))
        object.__setattr__(self, "spot", _finite(self.spot, "spot", positive=True))
        object.__setattr__(
            self,
            "atm_iv_annualized",
            _finite(self.atm_iv_annualized, "atm_iv_annualized", nonneg=True),
        )
        object.__setattr__(self, "rate", _finite(self.rate, "rate"))
        object.__setattr__(self, "dividend_yield", _finite(self.dividend_yield, "dividend_yield"))
        object.__setattr__(self, "as_of_close_ns", timestamp_close_ns(self.as_of))


@dataclass(frozen=True)
class Leg:
    """One option line of a position.

    Attributes:
        option_type: "call" or "put".
        strike: strike price (> 0).
        expiry: expiry date (normalised to midnight; expires at that day's close).
        quantity_contracts: signed contracts, + long, - short (nonzero).
    """

    option_type: OptionType
    strike: float
    expiry: pd.Timestamp
    quantity_contracts: int

    def __post_init__(self) -> None:
        if self.option_type not in ("call", "put"):
            raise ValueError(f"Leg.option_type must be 'call' or 'put', got {self.option_type!r}")
        object.__setattr__(self, "strike", _finite(self.strike, "Leg.strike", positive=True))
        object.__setattr__(self, "expiry", _timestamp(self.expiry, "Leg.expiry").normalize())
        object.__setattr__(
            self,
            "quantity_contracts",
            _nonzero_int(self.quantity_contracts, "Leg.quantity_contracts"),
        )

    @property
    def is_call(self) -> bool:
        return self.option_type == "call"

    def intrinsic_per_share(self, spot):
        """Intrinsic value per share at ``spot`` (float or array)."""
        if self.is_call:
            return np.maximum(np.asarray(spot, dtype=float) - self.strike, 0.0)
        return np.maximum(self.strike - np.asarray(spot, dtype=float), 0.0)


@dataclass(frozen=True)
class Fill:
    """One execution (or expiry settlement) of one leg.

    Attributes:
        leg: the leg traded (its own quantity is the position's, not the trade's).
        date: when it happened.
        quantity_contracts: signed trade size, + bought, - sold.
        premium_per_share: execution price (ask when buying, bid when selling, intrinsic at
            settlement).
        mid_per_share: model mid at the time (intrinsic at settlement).
        commission_usd: commission paid for this fill (0 at settlement).
        kind: "open", "close", "settle" or "assign" (a short American leg assigned early,
            at intrinsic).
        quote_source: where the price came from: ``"model"`` or ``"chain"`` (a valid quote of
            that source), ``"fallback"`` (no valid quote: the source's fallback price), or
            ``""`` where not recorded.
    """

    leg: Leg
    date: pd.Timestamp
    quantity_contracts: int
    premium_per_share: float
    mid_per_share: float
    commission_usd: float
    kind: FillKind
    quote_source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.leg, Leg):
            raise ValueError(f"Fill.leg must be a Leg, got {type(self.leg).__name__}")
        object.__setattr__(self, "date", _timestamp(self.date, "Fill.date"))
        object.__setattr__(
            self,
            "quantity_contracts",
            _nonzero_int(self.quantity_contracts, "Fill.quantity_contracts"),
        )
        object.__setattr__(
            self,
            "premium_per_share",
            _finite(self.premium_per_share, "Fill.premium_per_share", nonneg=True),
        )
        object.__setattr__(
            self, "mid_per_share", _finite(self.mid_per_share, "Fill.mid_per_share", nonneg=True)
        )
        object.__setattr__(
            self, "commission_usd", _finite(self.commission_usd, "Fill.commission_usd", nonneg=True)
        )
        if self.kind not in ("open", "close", "settle", "assign"):
            raise ValueError(f"Fill.kind must be 'open', 'close', 'settle' or 'assign', got "
                             f"{self.kind!r}")

    @property
    def premium_usd(self) -> float:
        """Premium paid (+) or received (-), at the execution price, in USD."""
        return per_share_to_position(self.premium_per_share, self.quantity_contracts)

    @property
    def cash_flow_usd(self) -> float:
        """Change of cash from this fill: minus the premium paid, minus commission."""
        return -self.premium_usd - self.commission_usd

    @property
    def spread_cost_usd(self) -> float:
        """Cost of trading away from mid (>= 0 for fills at bid/ask), in USD."""
        return per_share_to_position(
            self.premium_per_share - self.mid_per_share, self.quantity_contracts
        )


class PositionMark(NamedTuple):
    """A position valued at one market state (USD and position units)."""

    value_mid_usd: float
    value_liquidation_usd: float
    delta_shares: float
    gamma_shares_per_usd: float
    theta_usd_per_day: float
    vega_usd_per_vol_point: float


class MarginConfig(BaseModel):
    """Naked short option margin parameters (see the module docstring); unknown keys rejected.

    Defaults: 20% of the underlying less the out-of-the-money amount, at least 10% (of spot
    for calls, of the strike for puts), plus the premium: the Reg-T / FINRA Rule 4210(f)(2)
    and Cboe Rule 10.3 naked equity and ETF option rule.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    naked_underlying_fraction: float = Field(0.20, gt=0.0, le=1.0)
    naked_minimum_fraction: float = Field(0.10, ge=0.0, le=1.0)


# --------------------------------------------------------------------------- position
@dataclass(frozen=True)
class Position:
    """An open multi-leg option position.

    Attributes:
        strategy: one of :data:`STRATEGY_NAMES`, or ``"custom"``.
        legs: the legs (signed quantities).
        entry_date: when it was opened.
        entry_fills: one opening fill per leg, in leg order.

    Valuation methods take a :class:`MarketState` and use the scalar pricing path (a few
    microseconds per leg), so they can run every environment step.
    """

    strategy: str
    legs: tuple[Leg, ...]
    entry_date: pd.Timestamp
    entry_fills: tuple[Fill, ...]
    _leg_data: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        legs = tuple(self.legs)
        fills = tuple(self.entry_fills)
        if not legs:
            raise ValueError("Position.legs must hold at least one Leg")
        for i, leg in enumerate(legs):
            if not isinstance(leg, Leg):
                raise ValueError(f"Position.legs[{i}] must be a Leg, got {type(leg).__name__}")
        if len(fills) != len(legs):
            raise ValueError(
                f"Position.entry_fills must hold one fill per leg: {len(legs)} legs, "
                f"{len(fills)} fills"
            )
        for i, (leg, fill) in enumerate(zip(legs, fills, strict=True)):
            if (
                not isinstance(fill, Fill)
                or fill.leg != leg
                or fill.kind != "open"
                or (fill.quantity_contracts != leg.quantity_contracts)
            ):
                raise ValueError(
                    f"Position.entry_fills[{i}] must be the 'open' fill of legs[{i}] with the "
                    f"same quantity ({leg.quantity_contracts}), got {fill!r}"
                )
        object.__setattr__(self, "legs", legs)
        object.__setattr__(self, "entry_fills", fills)
        object.__setattr__(self, "entry_date", _timestamp(self.entry_date, "Position.entry_date"))
        check_structure(self.strategy, legs)
        # Per leg: (is_call, strike, expiry close in ns, contracts, position units per share).
        object.__setattr__(
            self,
            "_leg_data",
            tuple(
                (
                    leg.is_call,
                    leg.strike,
                    expiry_close_ns(leg.expiry),
                    leg.quantity_contracts,
                    per_share_to_position(1.0, leg.quantity_contracts),
                )
                for leg in legs
            ),
        )

    # ----------------------------------------------------------------- entry
    @property
    def expiries(self) -> tuple[pd.Timestamp, ...]:
        """Distinct expiry dates, earliest first."""
        return tuple(sorted({leg.expiry for leg in self.legs}))

    @property
    def entry_premium_usd(self) -> float:
        """Net premium paid at entry at fill prices (+ debit, - credit), excluding commission."""
        return sum(f.premium_usd for f in self.entry_fills)

    @property
    def entry_commission_usd(self) -> float:
        return sum(f.commission_usd for f in self.entry_fills)

    @property
    def entry_cash_flow_usd(self) -> float:
        """Change of cash at entry: minus net premium, minus commissions."""
        return sum(f.cash_flow_usd for f in self.entry_fills)

    @cached_property
    def structure_units(self) -> int:
        """Greatest common divisor of the legs' contract counts (1 for a 1-lot structure)."""
        return structure_units(self.legs)

    @property
    def entry_premium_per_share(self) -> float:
        """Net entry premium per share of one structure unit (+ debit, - credit)."""
        u = self.structure_units
        return sum(f.premium_per_share * f.quantity_contracts / u for f in self.entry_fills)

    # ----------------------------------------------------------------- payoff and risk
    def payoff_at_expiry_usd(self, final_spot):
        """Value of the legs at a common expiry for final underlying prices (vectorised)."""
        total = payoff_at_expiry_usd(self.legs, final_spot)
        return float(total) if total.ndim == 0 else total

    def pnl_at_expiry_usd(self, final_spot):
        """P&L at expiry excluding commissions: payoff minus the net entry premium."""
        return self.payoff_at_expiry_usd(final_spot) - self.entry_premium_usd

    @cached_property
    def _risk_per_share(self) -> tuple[float | None, float | None]:
        if len(self.expiries) != 1:
            return None, None
        return expiry_risk_per_share(self.legs, self.entry_premium_per_share)

    @property
    def max_loss_per_share(self) -> float | None:
        """Largest loss at expiry per share of one structure unit (>= 0); None if unbounded or
        if the legs expire on different dates."""
        return self._risk_per_share[0]

    @property
    def max_profit_per_share(self) -> float | None:
        """Largest profit at expiry per share of one structure unit; None if unbounded."""
        return self._risk_per_share[1]

    @property
    def max_loss_usd(self) -> float | None:
        loss = self.max_loss_per_share
        return None if loss is None else per_share_to_position(loss, self.structure_units)

    @property
    def max_profit_usd(self) -> float | None:
        profit = self.max_profit_per_share
        return None if profit is None else per_share_to_position(profit, self.structure_units)

    @property
    def is_defined_risk(self) -> bool:
        return self.max_loss_per_share is not None

    # ----------------------------------------------------------------- valuation
    def leg_mids_per_share(
        self, market: MarketState, surface_cfg: SurfaceConfig
    ) -> tuple[float, ...]:
        """Model mid per share of each leg (surface vol, BSM)."""
        spot, atm, rate, q = (
            market.spot,
            market.atm_iv_annualized,
            market.rate,
            market.dividend_yield,
        )
        params = surface_cfg.params
        now_ns = market.as_of_close_ns
        out = []
        for is_call, strike, expiry_ns, _, _ in self._leg_data:
            t = (expiry_ns - now_ns) / _NS_PER_YEAR if expiry_ns > now_ns else 0.0
            iv = iv_at_params(params, atm, spot, strike, t)
            out.append(bs_price_scalar(is_call, spot, strike, t, rate, iv, q))
        return tuple(out)

    def value_usd(self, market: MarketState, surface_cfg: SurfaceConfig) -> float:
        """Mark-to-model value at mid, in USD (long legs +, short legs -)."""
        mids = self.leg_mids_per_share(market, surface_cfg)
        return sum(m * d[4] for m, d in zip(mids, self._leg_data, strict=True))

    def mark(
        self, market: MarketState, surface_cfg: SurfaceConfig, cost_cfg: CostConfig
    ) -> PositionMark:
        """Value at mid and at liquidation (bid for long legs, ask for short legs, no
        commission) and greeks summed over legs, in one pass."""
        spot, atm, rate, q = (
            market.spot,
            market.atm_iv_annualized,
            market.rate,
            market.dividend_yield,
        )
        params = surface_cfg.params
        now_ns = market.as_of_close_ns
        mid_total = liq_total = delta = gamma = theta = vega = 0.0
        for is_call, strike, expiry_ns, qty, units in self._leg_data:
            t = (expiry_ns - now_ns) / _NS_PER_YEAR if expiry_ns > now_ns else 0.0
            iv = iv_at_params(params, atm, spot, strike, t)
            price, d, g, th, v = bs_price_greeks_scalar(is_call, spot, strike, t, rate, iv, q)
            bid, ask = bid_ask_per_share_scalar(price, cost_cfg)
            mid_total += price * units
            liq_total += (bid if qty > 0 else ask) * units
            delta += d * units
            gamma += g * units
            theta += th * units
            vega += v * units
        return PositionMark(mid_total, liq_total, delta, gamma, theta, vega)

    def liquidation_value_usd(
        self, market: MarketState, surface_cfg: SurfaceConfig, cost_cfg: CostConfig
    ) -> float:
        """What closing every leg now would bring in at bid/ask, before commissions."""
        return self.mark(market, surface_cfg, cost_cfg).value_liquidation_usd

    def greeks(self, market: MarketState, surface_cfg: SurfaceConfig) -> dict[str, float]:
        """Greeks summed over legs in position units: ``delta_shares``,
        ``gamma_shares_per_usd``, ``theta_usd_per_day``, ``vega_usd_per_vol_point``."""
        m = self.mark(market, surface_cfg, CostConfig())
        return {
            "delta_shares": m.delta_shares,
            "gamma_shares_per_usd": m.gamma_shares_per_usd,
            "theta_usd_per_day": m.theta_usd_per_day,
            "vega_usd_per_vol_point": m.vega_usd_per_vol_point,
        }

    def margin_requirement_usd(
        self,
        market: MarketState,
        surface_cfg: SurfaceConfig,
        margin_cfg: MarginConfig | None = None,
    ) -> float:
        """Margin to hold the position at ``market`` (see the module docstring)."""
        max_loss = self.max_loss_usd
        if max_loss is not None:
            return max_loss
        cfg = margin_cfg or MarginConfig()
        spot = market.spot
        mids = self.leg_mids_per_share(market, surface_cfg)
        side_req = {True: 0.0, False: 0.0}
        side_premium = {True: 0.0, False: 0.0}
        side_has_short = {True: False, False: False}
        for mid, (is_call, strike, _, qty, _) in zip(mids, self._leg_data, strict=True):
            if qty > 0:
                continue
            if is_call:
                otm = max(strike - spot, 0.0)
                floor = cfg.naked_minimum_fraction * spot
            else:
                otm = max(spot - strike, 0.0)
                floor = cfg.naked_minimum_fraction * strike
            per_share = mid + max(cfg.naked_underlying_fraction * spot - otm, floor)
            side_req[is_call] += per_share_to_position(per_share, -qty)
            side_premium[is_call] += per_share_to_position(mid, -qty)
            side_has_short[is_call] = True
        if side_has_short[True] and side_has_short[False]:
            return max(side_req[True] + side_premium[False], side_req[False] + side_premium[True])
        return side_req[True] + side_req[False]

    # ----------------------------------------------------------------- exits
    def close(
        self, market: MarketState, surface_cfg: SurfaceConfig, cost_cfg: CostConfig
    ) -> tuple[Fill, ...]:
        """Closing fills for every leg at bid/ask with commission (the position itself is
        immutable; the caller drops it)."""
        mids = self.leg_mids_per_share(market, surface_cfg)
        return market_fills(self.legs, mids, market, cost_cfg, "close")

    def settle_expired(
        self, as_of, settlement_spot: float
    ) -> tuple[tuple[Fill, ...], Position | None]:
        """Cash-settle the legs that have expired by ``as_of`` at intrinsic value.

        A leg settles once ``as_of`` reaches its expiry date's close (any timestamp on the
        expiry date at midnight, or 16:00 and later intraday). ``settlement_spot`` must be
        the underlying's close on that expiry date.

        Returns:
            ``(settlement fills, remaining position or None)``. The remaining position keeps
            the unexpired legs and their entry fills under strategy ``"custom"``.
        """
        spot = _finite(settlement_spot, "settlement_spot", positive=True)
        now_ns = timestamp_close_ns(as_of)
        date = _timestamp(as_of, "as_of")
        settled, kept_legs, kept_fills = [], [], []
        for leg, fill, (_, _, expiry_ns, _, _) in zip(
            self.legs, self.entry_fills, self._leg_data, strict=True
        ):
            if expiry_ns <= now_ns:
                value = float(leg.intrinsic_per_share(spot))
                settled.append(
                    Fill(leg, date, -leg.quantity_contracts, value, value, 0.0, "settle")
                )
            else:
                kept_legs.append(leg)
                kept_fills.append(fill)
        if not settled:
            return (), self
        if not kept_legs:
            return tuple(settled), None
        return tuple(settled), Position(
            CUSTOM_STRATEGY, tuple(kept_legs), self.entry_date, tuple(kept_fills)
        )


def open_position(
    strategy: str,
    legs: tuple[Leg, ...],
    market: MarketState,
    surface_cfg: SurfaceConfig,
    cost_cfg: CostConfig,
) -> Position:
    """Open ``legs`` at ``market``: buy at the ask, sell at the bid, pay commission per leg."""
    legs = tuple(legs)
    check_structure(strategy, legs)
    probe = Position(
        CUSTOM_STRATEGY,
        legs,
        market.as_of,
        tuple(
            Fill(leg, market.as_of, leg.quantity_contracts, 0.0, 0.0, 0.0, "open") for leg in legs
        ),
    )
    mids = probe.leg_mids_per_share(market, surface_cfg)
    fills = market_fills(legs, mids, market, cost_cfg, "open")
    return Position(strategy, legs, market.as_of, fills)


def market_fills(legs: tuple[Leg, ...], mids_per_share, market: MarketState,
                 cost_cfg: CostConfig, kind: FillKind) -> tuple[Fill, ...]:
    """Fills that open (trade each leg's quantity) or close (trade its opposite) ``legs`` at
    the market: buy at the ask, sell at the bid, commission per contract."""
    sign = 1 if kind == "open" else -1
    fills = []
    for leg, mid in zip(legs, mids_per_share, strict=True):
        qty = sign * leg.quantity_contracts
        bid, ask = bid_ask_per_share_scalar(mid, cost_cfg)
        fills.append(Fill(leg, market.as_of, qty, ask if qty > 0 else bid, mid,
                          commission_usd(qty, cost_cfg), kind))
    return tuple(fills)
