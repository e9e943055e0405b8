"""The Gymnasium options-trading environment (``SpyOptions-v1``; ``SpyOptions-v0`` is an alias)."""

from gymnasium.envs.registration import register, registry

from envs.actions import ACTION_NAMES, STRATEGIES, action_for_strategy
from envs.config import EnvConfig
from envs.factory import EnvInputs, load_env_inputs, make_env
from envs.market import MarketPanel, build_market_panel
from envs.spy_options_env import SpyOptionsEnv

ENV_ID = "SpyOptions-v1"
LEGACY_ENV_ID = "SpyOptions-v0"  # alias of the current version (the v0 code is not kept)

for _env_id in (ENV_ID, LEGACY_ENV_ID):
    if _env_id not in registry:
        register(id=_env_id, entry_point="envs.factory:make_registered", disable_env_checker=True)

__all__ = [
    "ACTION_NAMES",
    "ENV_ID",
    "LEGACY_ENV_ID",
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
