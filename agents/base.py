"""The one policy interface evaluation uses for every agent and baseline."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Policy"]


@runtime_checkable
class Policy(Protocol):
    """Anything that maps what the environment shows to an action index."""

    name: str

    def act(self, observation: np.ndarray, info: dict, action_mask: np.ndarray) -> int:
        """Choose an action at the current bar (must respect ``action_mask``)."""
        ...

    def reset(self, seed: int | None = None) -> None:
        """Forget per-episode state (and reseed any randomness)."""
        ...
