"""``gym.make("SpyOptions-v1", config=..., segment=...)``: resolve the config, then build the env.

``envs`` registers the id with this module's :func:`make_registered` as a string entry point,
which Gymnasium imports at ``gym.make`` time; ``envs`` itself never imports ``config``.
"""

from __future__ import annotations

from config import ExperimentConfig, load_config
from envs import factory

__all__ = ["make_registered"]


def make_registered(config=None, segment: str = "train", *, panel=None, **kwargs):
    """``config=`` (a YAML path, dict or ``ExperimentConfig``) and ``segment=`` build the
    environment as :func:`envs.make_env` does; ``panel=`` (a prepared
    :class:`envs.market.MarketPanel`) plus the ``SpyOptionsEnv`` keyword arguments build it
    directly."""
    if config is not None and not isinstance(config, ExperimentConfig):
        config = load_config(config)
    return factory.make_registered(config, segment, panel=panel, **kwargs)
