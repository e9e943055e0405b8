"""The ``agent:`` section (PPO hyper-parameters) and the ``baselines:`` section of a config."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_SEED", "AgentConfig", "BaselinesConfig"]

MAX_SEED = 2**32 - 1  # numpy's SeedSequence and gymnasium accept 0..2**32-1


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentConfig(_Section):
    """PPO (stable-baselines3) or MaskablePPO (sb3-contrib, default) hyper-parameters."""

    algo: Literal["maskable_ppo", "ppo"] = "maskable_ppo"
    learning_rate: float = Field(3e-4, gt=0)
    n_steps: int = Field(512, ge=8, description="rollout length per environment")
    batch_size: int = Field(128, ge=8)
    n_epochs: int = Field(10, ge=1)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, gt=0, le=1)
    clip_range: float = Field(0.2, gt=0)
    ent_coef: float = Field(0.01, ge=0)
    vf_coef: float = Field(0.5, ge=0)
    max_grad_norm: float = Field(0.5, gt=0)
    net_arch: list[int] = Field(default_factory=lambda: [64, 64])
    hold_logit_bias: float = Field(
        0.0, ge=0, le=20,
        description="added to the initial policy's logit of 'hold' (a prior toward cash: "
                    "trades cost money, so untrained states hold); 0 leaves SB3's init")
    vec_normalize: bool = Field(False, description="normalise observations/rewards (VecNormalize)")
    decision_every_bars: int = Field(
        1, ge=1, le=63,
        description="PPO decides every N bars and holds in between (action repeat; training "
                    "sums the N bars' rewards into one step); 1: every bar. Rule baselines "
                    "still act every bar")
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads per process")


class BaselinesConfig(_Section):
    """Parameters of the rule-based baselines (all evaluated through the same environment)."""

    names: list[str] = Field(
        default_factory=lambda: ["cash", "buy_and_hold", "short_put_spread", "iron_condor",
                                 "forecast_rule", "random"])
    forecast_horizon_bars: int = Field(5, ge=1, description="horizon the forecast rule reads")
    forecast_up_threshold: float = Field(
        0.25, ge=0, description="median forecast / implied move above which the view is 'up'")
    interval_ratio_narrow: float = Field(
        0.9, gt=0, description="forecast 75% width / implied 75% width below this: condor")
    interval_ratio_wide: float = Field(
        1.2, gt=0, description="forecast 75% width / implied 75% width above this: straddle")
    condor_profit_take_fraction: float = Field(0.5, gt=0, le=1)
    condor_close_dte_days: int = Field(21, ge=0)
