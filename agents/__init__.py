"""Policies behind one interface: PPO/MaskablePPO and rule-based baselines.

The names below load their module on first use (PEP 562): ``from agents.config import ...``,
which every command's config loading does, then costs the config module alone, not the
evaluation, statistics (SciPy) and PPO modules a command may never touch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BASELINES": "agents.baselines",
    "AgentConfig": "agents.config",
    "BaselinesConfig": "agents.config",
    "EpisodeResult": "agents.evaluation",
    "PPOPolicy": "agents.ppo",
    "Policy": "agents.base",
    "build_model": "agents.ppo",
    "deflated_sharpe_ratio": "agents.statistics",
    "load_model": "agents.ppo",
    "make_baseline": "agents.baselines",
    "performance_metrics": "agents.evaluation",
    "run_episode": "agents.evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
