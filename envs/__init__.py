"""The Gymnasium options-trading environment (``SpyOptions-v0``)."""

from gymnasium.envs.registration import register, registry

from envs.actions import ACTION_NAMES, STRATEGIES, action_for_strategy
from envs.config import EnvConfig
from envs.factory import EnvInputs, load_env_inputs, make_env
from envs.market import MarketPanel, build_market_panel
from envs.spy_options_env import SpyOptionsEnv

ENV_ID = "SpyOptions-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.spy_options_env:SpyOptionsEnv")

__all__ = [
    "ACTION_NAMES",
    "ENV_ID",
    "STRATEGIES",
    "EnvConfig",
    "EnvInputs",
    "MarketPanel",
    "SpyOptionsEnv",
    "action_for_strategy",
    "build_market_panel",
    "load_env_inputs",
    "make_env",
]
