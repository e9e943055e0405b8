"""Policies behind one interface: PPO/MaskablePPO and rule-based baselines."""

from agents.base import Policy
from agents.baselines import BASELINES, make_baseline
from agents.config import AgentConfig, BaselinesConfig
from agents.evaluation import (
    EpisodeResult,
    performance_metrics,
    run_episode,
)
from agents.ppo import PPOPolicy, build_model, load_model
from agents.statistics import deflated_sharpe_ratio

__all__ = [
    "BASELINES",
    "AgentConfig",
    "BaselinesConfig",
    "EpisodeResult",
    "PPOPolicy",
    "Policy",
    "build_model",
    "deflated_sharpe_ratio",
    "load_model",
    "make_baseline",
    "performance_metrics",
    "run_episode",
]
