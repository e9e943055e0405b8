"""The replay record of an episode: how a training checkpoint snapshots an environment.

Used by ``agents.checkpoint.EpisodeRecorder`` (a wrapper) and by
``envs.vec_env.BatchedSpyVecEnv`` (one record per env), so that both write the same snapshot.
No import of stable-baselines3 or torch here: checkpoints are read by light processes too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

__all__ = ["ReplayRecord"]


class ReplayRecord:
    """What rebuilds an environment's current episode without pickling the environment: the
    RNG state before its ``reset``, the reset's seed and options, and the actions since.

    The environment snapshot of a checkpoint (``agents.checkpoint``) is :meth:`snapshot`; an
    environment with its own ``get_state() -> dict`` / ``set_state(dict)`` uses those instead.
    """

    def __init__(self) -> None:
        self.rng_before_reset: dict | None = None
        self.seed: int | None = None
        self.options: dict | None = None
        self.actions: list[int] = []

    def on_reset(self, env: gym.Env, seed: int | None, options: dict | None) -> None:
        """Call just before ``env.reset(seed=seed, options=options)``."""
        unwrapped = env.unwrapped
        self.rng_before_reset = (unwrapped.np_random.bit_generator.state
                                 if unwrapped._np_random is not None else None)
        self.seed, self.options = seed, options
        self.actions = []

    def snapshot(self, env: gym.Env) -> dict:
        """Plain-data snapshot of ``env``'s episode."""
        unwrapped = env.unwrapped
        if callable(getattr(unwrapped, "get_state", None)):
            return {"kind": "env", "state": unwrapped.get_state()}
        return {"kind": "replay", "rng_before_reset": self.rng_before_reset,
                "seed": self.seed, "options": self.options, "actions": list(self.actions),
                "rng_now": unwrapped.np_random.bit_generator.state}

    def restore(self, env: gym.Env, state: dict, reset: Callable[..., Any],
                step: Callable[[int], Any]) -> None:
        """Put ``env`` back into ``state`` (a :meth:`snapshot`): ``reset(seed=, options=)`` and
        ``step(action)`` are the caller's own, so that its bookkeeping is rebuilt too."""
        unwrapped = env.unwrapped
        if state["kind"] == "env":
            unwrapped.set_state(state["state"])
            return
        if state["seed"] is None and state["rng_before_reset"] is not None:
            unwrapped.np_random.bit_generator.state = state["rng_before_reset"]
        reset(seed=state["seed"], options=state["options"])
        self.rng_before_reset = state["rng_before_reset"]
        for action in state["actions"]:
            step(action)
        unwrapped.np_random.bit_generator.state = state["rng_now"]
