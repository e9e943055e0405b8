"""The environment's discrete actions, derived from the structure specs.

``0`` hold, ``1`` close every open position, ``2..`` open one structure of
:data:`options.structures.STRUCTURE_NAMES` (in that order); with ``max_open_positions > 1``,
``close_slot_<k>`` actions follow the opening ones and close the k-th open position (oldest
first). Indices of hold, close and the opening actions never depend on the config.
"""

from __future__ import annotations

from options.structures import STRUCTURE_NAMES

__all__ = ["ACTION_CLOSE", "ACTION_HOLD", "ACTION_NAMES", "FIRST_OPEN_ACTION", "STRATEGIES",
           "action_for_strategy", "action_names"]

ACTION_HOLD = 0
ACTION_CLOSE = 1
FIRST_OPEN_ACTION = 2
STRATEGIES: tuple[str, ...] = STRUCTURE_NAMES
ACTION_NAMES: tuple[str, ...] = ("hold", "close", *(f"open_{name}" for name in STRATEGIES))


def action_names(max_open_positions: int = 1) -> tuple[str, ...]:
    """Every action's name for a portfolio of at most ``max_open_positions`` positions."""
    slots = () if max_open_positions <= 1 else tuple(
        f"close_slot_{k}" for k in range(max_open_positions))
    return (*ACTION_NAMES, *slots)


def action_for_strategy(strategy: str) -> int:
    """Action index that opens ``strategy``."""
    try:
        return FIRST_OPEN_ACTION + STRATEGIES.index(strategy)
    except ValueError:
        raise ValueError(f"unknown strategy '{strategy}'; expected one of {STRATEGIES}") from None
