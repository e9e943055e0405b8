"""The Gymnasium options-trading environment ``SpyOptions-v1``.

Importing ``envs`` registers the id; plain Gymnasium code reaches it with
``gym.make("envs:SpyOptions-v1", config=..., segment=...)``, Gymnasium's module-prefixed id,
which imports ``envs`` first (Gymnasium 1.x has no plugin entry points); the id's entry point
``cli.gym:make_registered`` resolves a YAML path or dict (the CLI layer; ``envs`` does not import
``config``). There is no v0: the
first version's code is not kept, and an alias of v1 under its name would mislead.

The batched vectorised env of training, ``envs.vec_env.BatchedSpyVecEnv``, is imported from its
module: it needs stable-baselines3 (and so torch), which ``import envs`` does not load.
"""

from gymnasium.envs.registration import register, registry

from envs.actions import ACTION_NAMES, STRATEGIES, action_for_strategy
from envs.config import EnvConfig
from envs.factory import EnvInputs, load_env_inputs, make_env
from envs.market import MarketPanel, build_market_panel
from envs.spy_options_env import SpyOptionsEnv
from envs.step_info import StepInfo

ENV_ID = "SpyOptions-v1"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="cli.gym:make_registered", disable_env_checker=True)

__all__ = [
    "ACTION_NAMES",
    "ENV_ID",
    "STRATEGIES",
    "EnvConfig",
    "EnvInputs",
    "MarketPanel",
    "SpyOptionsEnv",
    "StepInfo",
    "action_for_strategy",
    "build_market_panel",
    "load_env_inputs",
    "make_env",
]
