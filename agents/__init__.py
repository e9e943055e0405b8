"""Policies behind one interface: PPO/MaskablePPO and rule-based baselines."""

from agents.base import Policy
from agents.baselines import BASELINES, make_baseline
from agents.config import AgentConfig, BaselinesConfig
from agents.evaluation import (
    EpisodeResult,
    block_bootstrap_sharpe_diff,
    deflated_sharpe_ratio,
    performance_metrics,
    run_episode,
)
from agents.ppo import PPOPolicy, build_model, load_model

__all__ = [
    "BASELINES",
    "AgentConfig",
    "BaselinesConfig",
    "EpisodeResult",
    "PPOPolicy",
    "Policy",
    "block_bootstrap_sharpe_diff",
    "build_model",
    "deflated_sharpe_ratio",
    "load_model",
    "make_baseline",
    "performance_metrics",
    "run_episode",
]
