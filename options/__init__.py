"""Options engine: BSM pricing and greeks, volatility surface, expiry calendar, chains,
costs, legs and positions, strategies, margin and settlement.

Prices are per share; the contract multiplier is applied only in
:func:`options.positions.per_share_to_position`. Options are valued as European and cash
settled at intrinsic value on the expiry close; under ``options.exercise: american`` the
simulator also assigns short legs early (``envs/assignment.py``) and chain imports read
American implied vols (``options.american``).
"""

from options.calendar import (
    ALL_EXPIRY_KINDS,
    EXPIRY_KIND_LISTED_FROM,
    dte_days,
    listed_expiries,
    nearest_expiry,
    t_years_to_expiry,
)
from options.chain import (
    ChainFileError,
    build_chain,
    read_chain_csv,
    select_expiry,
    select_strike_by_delta,
    select_strike_by_moneyness,
)
from options.chain_io import CHAIN_FORMATS, TIDY_COLUMNS, read_chain, read_chains
from options.chain_market import ChainMarket, check_underlying, prepare_chain_market
from options.costs import (
    CostConfig,
    bid_ask_per_share,
    bid_ask_per_share_scalar,
    commission_usd,
)
from options.positions import (
    CONTRACT_MULTIPLIER,
    STRATEGY_NAMES,
    Fill,
    Leg,
    MarginConfig,
    MarketState,
    Position,
    PositionMark,
    check_structure,
    open_position,
    per_share_to_position,
)
from options.pricing import (
    DAYS_PER_YEAR,
    bs_greeks,
    bs_greeks_scalar,
    bs_price,
    bs_price_greeks_scalar,
    bs_price_scalar,
    implied_vol,
    implied_vol_vectorized,
    implied_vol_vectorized_with_reason,
)
from options.quotes_chain import ChainQuoteSource, chain_market_frame
from options.smile import SmileFit, fit_smiles, market_ivs
from options.strategies import (
    StrategyConfig,
    build_position,
    strategy_legs,
    strike_for_delta,
)
from options.surface import (
    SurfaceConfig,
    SurfaceParams,
    atm_iv_series,
    iv_at,
    iv_at_params,
    iv_at_scalar,
    load_surface_config,
    surface_params,
)
from options.vix import chain_vix_index

__all__ = [
    "ALL_EXPIRY_KINDS",
    "CONTRACT_MULTIPLIER",
    "DAYS_PER_YEAR",
    "EXPIRY_KIND_LISTED_FROM",
    "STRATEGY_NAMES",
    "ChainFileError",
    "CostConfig",
    "Fill",
    "Leg",
    "MarginConfig",
    "MarketState",
    "Position",
    "PositionMark",
    "StrategyConfig",
    "SurfaceConfig",
    "SurfaceParams",
    "atm_iv_series",
    "bid_ask_per_share",
    "bid_ask_per_share_scalar",
    "bs_greeks",
    "bs_greeks_scalar",
    "bs_price",
    "bs_price_greeks_scalar",
    "bs_price_scalar",
    "build_chain",
    "build_position",
    "check_structure",
    "commission_usd",
    "dte_days",
    "implied_vol",
    "implied_vol_vectorized",
    "implied_vol_vectorized_with_reason",
    "iv_at",
    "iv_at_params",
    "iv_at_scalar",
    "listed_expiries",
    "nearest_expiry",
    "open_position",
    "per_share_to_position",
    "read_chain_csv",
    "select_expiry",
    "select_strike_by_delta",
    "select_strike_by_moneyness",
    "strategy_legs",
    "strike_for_delta",
    "surface_params",
    "t_years_to_expiry",
    "CHAIN_FORMATS",
    "TIDY_COLUMNS",
    "read_chain",
    "read_chains",
    "ChainMarket",
    "check_underlying",
    "prepare_chain_market",
    "ChainQuoteSource",
    "chain_market_frame",
    "SmileFit",
    "fit_smiles",
    "market_ivs",
    "load_surface_config",
    "chain_vix_index",
]
