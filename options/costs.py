"""Trading costs: a bid-ask spread model around the model mid, and commissions.

Spread model (per share)::

    spread = (spread_floor_per_share + spread_fraction_of_premium * mid)
             * (atm_iv / spread_reference_atm_iv) ** spread_vol_elasticity
             * exp(spread_moneyness_coef * |log(K / S)|)
             * (dte_days / spread_reference_dte_days) ** spread_dte_elasticity
    bid    = floor_to_tick(mid - spread / 2), never below 0
    ask    = ceil_to_tick(mid + spread / 2), at least one tick

The three factors make the width widen when markets do (a higher volatility level), and follow
moneyness and time to expiry; each is 1 where its input is not given (callers that pass only
the mid get the reference conditions). Their coefficients were fitted on the real chains of
``../shared/data/real_chains`` (:mod:`options.calibrate_costs`, file
``configs/costs_chains.yaml`` with its provenance).

Buying fills at the ask, selling at the bid (the architecture's "mid plus half the spread",
rounded outward to the tick). Commission is ``commission_per_contract_usd`` per contract per
leg on every open and close. Cash settlement at expiry pays intrinsic value with neither
spread nor commission (exercise and assignment fees are not modelled).
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.errors import UserInputError

__all__ = [
    "CostConfig",
    "bid_ask_per_share",
    "bid_ask_per_share_scalar",
    "commission_usd",
    "fill_premium_per_share_scalar",
    "load_cost_config",
    "spread_factor",
    "spread_width_per_share",
]

_TICK_EPS = 1e-9  # tolerance (in ticks) so that prices already on the grid stay put


class CostConfig(BaseModel):
    """Cost parameters; unknown keys are rejected.

    Defaults and their sources:

    - ``commission_per_contract_usd = 0.65``: the common US retail broker rate (e.g.
      Interactive Brokers' and Schwab's listed per-contract option commission).
    - ``spread_floor_per_share = 0.01`` and ``spread_fraction_of_premium = 0.01``: at SPY's
      scale a $1 option is quoted about 2-3 cents wide and an $8 at-the-money option about
      10 cents once rounded outward to the tick. That is wider than SPY's quoted spreads
      today (often a penny or two) and close to effective spreads in 2005-2012, a deliberately
      conservative default so that an agent cannot earn by churning.
    - ``tick_size = 0.01``: SPY trades in the penny program at $0.01 for all premiums
      (index options such as SPX use $0.05/$0.10: set it from the underlying).
    - ``spread_vol_elasticity``, ``spread_moneyness_coef``, ``spread_dte_elasticity`` and
      the references: the shape fitted jointly on the shared SPX 2019 chain (at SPY scale,
      1/10 of the index) and SPY 2021 file, each with its own level, by
      ``python -m options.calibrate_costs`` (``configs/costs_chains.yaml``: the command, the
      files' SHA-256 and the fit). The reference ATM vol is the median over the quotes
      fitted, so that at typical conditions the width is the floor-plus-fraction above. The
      floor and fraction are kept at their conservative values (the SPX fit's level is
      close: see the YAML).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    commission_per_contract_usd: float = Field(0.65, ge=0.0)
    spread_floor_per_share: float = Field(0.01, ge=0.0)
    spread_fraction_of_premium: float = Field(0.01, ge=0.0, lt=2.0)
    tick_size: float = Field(0.01, gt=0.0)
    spread_reference_atm_iv: float = Field(0.1435, gt=0.0)
    spread_vol_elasticity: float = Field(0.8729, ge=-5.0, le=5.0)
    spread_moneyness_coef: float = Field(-1.0955, ge=-50.0, le=50.0)
    spread_reference_dte_days: float = Field(30.0, gt=0.0)
    spread_dte_elasticity: float = Field(0.1513, ge=-2.0, le=2.0)

    @cached_property
    def ticks_per_unit(self) -> float:
        """1 / tick_size, snapped to an integer when it is one (0.01 -> 100), so that tick
        multiples come out as the nearest float (3 ticks -> exactly 0.03)."""
        inverse = 1.0 / self.tick_size
        nearest = round(inverse)
        return float(nearest) if abs(inverse - nearest) < 1e-9 * inverse else inverse


def spread_factor(cfg: CostConfig, atm_iv_annualized=None, log_moneyness=None,
                  dte_days=None):
    """The width multiplier of the volatility level, moneyness and days to expiry (module
    docstring; vectorised, broadcasts; 1 for each input that is None)."""
    factor = np.ones(())
    if atm_iv_annualized is not None:
        iv = np.maximum(np.asarray(atm_iv_annualized, dtype=float), 1e-6)
        factor = factor * (iv / cfg.spread_reference_atm_iv) ** cfg.spread_vol_elasticity
    if log_moneyness is not None:
        factor = factor * np.exp(cfg.spread_moneyness_coef
                                 * np.abs(np.asarray(log_moneyness, dtype=float)))
    if dte_days is not None:
        dte = np.maximum(np.asarray(dte_days, dtype=float), 1.0)
        factor = factor * (dte / cfg.spread_reference_dte_days) ** cfg.spread_dte_elasticity
    return factor


def spread_width_per_share(mid_per_share, cfg: CostConfig, atm_iv_annualized=None,
                           log_moneyness=None, dte_days=None) -> np.ndarray:
    """The model's bid-ask width per share before tick rounding (module docstring)."""
    mid = np.asarray(mid_per_share, dtype=float)
    return ((cfg.spread_floor_per_share + cfg.spread_fraction_of_premium * mid)
            * spread_factor(cfg, atm_iv_annualized, log_moneyness, dte_days))


def bid_ask_per_share(mid_per_share, cfg: CostConfig, *, atm_iv_annualized=None,
                      log_moneyness=None, dte_days=None) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask per share around model mids (vectorised); see the module docstring.
    Without the keyword inputs the width is the reference conditions' (factor 1)."""
    mid = np.asarray(mid_per_share, dtype=float)
    if not np.all(np.isfinite(mid)) or np.any(mid < 0):
        raise ValueError("mid_per_share must be finite and >= 0")
    half = 0.5 * spread_width_per_share(mid, cfg, atm_iv_annualized, log_moneyness, dte_days)
    per_unit = cfg.ticks_per_unit
    bid_ticks = np.maximum(np.floor((mid - half) * per_unit + _TICK_EPS), 0.0)
    ask_ticks = np.maximum(np.ceil((mid + half) * per_unit - _TICK_EPS), 1.0)
    return bid_ticks / per_unit, ask_ticks / per_unit


def bid_ask_per_share_scalar(mid_per_share: float, cfg: CostConfig) -> tuple[float, float]:
    """Scalar twin of :func:`bid_ask_per_share` at the reference conditions (identical
    results)."""
    half = 0.5 * (cfg.spread_floor_per_share + cfg.spread_fraction_of_premium * mid_per_share)
    per_unit = cfg.ticks_per_unit
    bid_ticks = math.floor((mid_per_share - half) * per_unit + _TICK_EPS)
    ask_ticks = math.ceil((mid_per_share + half) * per_unit - _TICK_EPS)
    return (
        (bid_ticks if bid_ticks > 0 else 0) / per_unit,
        (ask_ticks if ask_ticks > 1 else 1) / per_unit,
    )


def fill_premium_per_share_scalar(
    mid_per_share: float, quantity_contracts: int, cfg: CostConfig
) -> float:
    """Execution price per share: the ask when buying (quantity > 0), the bid when selling."""
    bid, ask = bid_ask_per_share_scalar(mid_per_share, cfg)
    return ask if quantity_contracts > 0 else bid


def commission_usd(quantity_contracts, cfg: CostConfig):
    """Commission in USD for a fill of ``quantity_contracts`` (signed; the sign is ignored).

    A float for an integer quantity, an array for an array of quantities.
    """
    if isinstance(quantity_contracts, int | np.integer):
        return cfg.commission_per_contract_usd * abs(int(quantity_contracts))
    return cfg.commission_per_contract_usd * np.abs(np.asarray(quantity_contracts))


def load_cost_config(path) -> CostConfig:
    """A :class:`CostConfig` from a YAML file whose ``costs:`` mapping holds its fields (e.g.
    ``configs/costs_chains.yaml``; other top-level keys such as ``provenance`` are ignored).
    A missing or malformed file raises :class:`UserInputError` naming it and the key."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserInputError(f"cost file '{path}': cannot read it as YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("costs"), dict):
        raise UserInputError(f"cost file '{path}': expected a mapping with a 'costs:' section "
                             f"of CostConfig fields")
    try:
        return CostConfig(**doc["costs"])
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(x) for x in first["loc"])
        raise UserInputError(f"cost file '{path}': costs.{key}: {first['msg']}") from None
