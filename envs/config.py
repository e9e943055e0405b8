"""The ``env:`` section of an experiment config: strategies, sizing, exits, reward, episodes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from common.paths import user_cache_root
from options.strategies import StrategyConfig

__all__ = ["EnvConfig", "pricing_dividend_yield"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvConfig(_Section):
    """Environment settings. Money in USD, times in bars unless the name says otherwise."""

    starting_equity_usd: float = Field(100_000.0, gt=0)
    underlying_price_scale: float = Field(
        1.0, gt=0,
        description="multiply the frame's prices by this before trading (0.1 turns the S&P 500 "
                    "index into a SPY-like underlying with $1 strikes)")
    dividend_yield: float = Field(0.0, ge=0, description="continuous dividend yield, decimal")
    strategies: StrategyConfig = StrategyConfig()
    sizing: Literal["risk_fraction", "fixed_contracts"] = "risk_fraction"
    risk_per_trade_fraction: float = Field(
        0.02, gt=0, le=1, description="max loss (or margin, undefined risk) per trade / equity")
    fixed_contracts: int = Field(1, ge=1)
    max_contracts: int = Field(100, ge=1)
    undefined_risk_stress_move_fraction: float = Field(
        0.10, gt=0, lt=1,
        description="risk of an undefined-risk structure (short straddle/strangle) for sizing: "
                    "its loss at expiry if the underlying moved this fraction against it")
    max_open_positions: int = Field(1, ge=1, description="positions open at once")
    max_volume_share: float | None = Field(
        None, gt=0, le=1,
        description="chain quotes only: cap an order at this share of each leg's volume or "
                    "open interest that day")
    profit_target_fraction: float | None = Field(
        None, gt=0, description="close at this share of max profit (off by default)")
    stop_loss_multiple: float | None = Field(
        None, gt=0, description="close when the loss reaches this multiple of the credit")
    close_at_dte_days: int | None = Field(None, ge=0, description="close at N days to expiry")
    min_holding_bars: int = Field(
        0, ge=0,
        description="the policy may close a position only after holding it this many bars (its "
                    "close actions are masked until then; 0: any bar); the exits above, expiry "
                    "and labelled closes (a rule's exit, the risk manager's) still apply")
    reward: Literal["pnl", "differential_sharpe", "drawdown_penalty"] = "pnl"
    drawdown_penalty: float = Field(0.0, ge=0, description="weight of the drawdown increase")
    differential_sharpe_eta: float = Field(0.01, gt=0, lt=1)
    episode_length_bars: int = Field(252, ge=2, description="training episodes (random start)")
    ruin_equity_fraction: float = Field(0.5, ge=0, lt=1, description="terminate below this")
    observation_clip: float = Field(10.0, gt=0)
    table_cache_dir: str | None = Field(
        default_factory=lambda: str(user_cache_root() / "env_tables"),
        description="where envs.make_env stores the per-bar market tables, built once per "
                    "input (envs.table_cache; relative: from the config file's folder; null: "
                    "no cache)")


def pricing_dividend_yield(env_cfg: EnvConfig, surface_cfg) -> float:
    """The dividend yield to price with: the calibrated surface's where it has one
    (``SurfaceConfig.dividend_yield_annualized``), else ``EnvConfig.dividend_yield``."""
    calibrated = getattr(surface_cfg, "dividend_yield_annualized", None)
    return float(env_cfg.dividend_yield if calibrated is None else calibrated)
