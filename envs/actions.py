"""The environment's discrete actions, derived from the structure specs.

``0`` hold, ``1`` close every open position, ``2..`` open one structure of
:data:`options.structures.STRUCTURE_NAMES` (in that order); with ``max_open_positions > 1``,
``close_slot_<k>`` actions follow the opening ones and close the k-th open position (oldest
first). Indices of hold, close and the opening actions never depend on the config.

:func:`decode` turns an action index into a typed action (:class:`Hold`, :class:`CloseAll`,
:class:`CloseSlot`, :class:`Open`) and :func:`encode` is its inverse: the one place where the
layout above is read; the environment, the executor and the paper broker all go through them.
"""

from __future__ import annotations

from dataclasses import dataclass

from options.structures import STRUCTURE_NAMES

__all__ = ["ACTION_CLOSE", "ACTION_HOLD", "ACTION_NAMES", "FIRST_OPEN_ACTION", "STRATEGIES",
           "Action", "CloseAll", "CloseSlot", "Hold", "Open", "action_for_strategy",
           "action_names", "decode", "encode", "n_actions"]

ACTION_HOLD = 0
ACTION_CLOSE = 1
FIRST_OPEN_ACTION = 2
STRATEGIES: tuple[str, ...] = STRUCTURE_NAMES
ACTION_NAMES: tuple[str, ...] = ("hold", "close", *(f"open_{name}" for name in STRATEGIES))
_FIRST_SLOT_ACTION = FIRST_OPEN_ACTION + len(STRATEGIES)


@dataclass(frozen=True)
class Hold:
    """Do nothing this bar."""


@dataclass(frozen=True)
class CloseAll:
    """Close every open position at this bar's quotes."""


@dataclass(frozen=True)
class CloseSlot:
    """Close the ``slot``-th open position (0: the oldest)."""

    slot: int


@dataclass(frozen=True)
class Open:
    """Open one unit-sized structure ``strategy`` (sized by the risk budget)."""

    strategy: str


Action = Hold | CloseAll | CloseSlot | Open


def n_actions(max_open_positions: int = 1) -> int:
    """How many actions a portfolio of at most ``max_open_positions`` positions has."""
    return _FIRST_SLOT_ACTION + (max_open_positions if max_open_positions > 1 else 0)


def action_names(max_open_positions: int = 1) -> tuple[str, ...]:
    """Every action's name for a portfolio of at most ``max_open_positions`` positions."""
    slots = () if max_open_positions <= 1 else tuple(
        f"close_slot_{k}" for k in range(max_open_positions))
    return (*ACTION_NAMES, *slots)


def decode(action: int, max_open_positions: int = 1) -> Action:
    """The typed action of index ``action`` (ValueError outside ``0..n_actions - 1``)."""
    if not 0 <= action < n_actions(max_open_positions):
        raise ValueError(f"action {action} outside 0..{n_actions(max_open_positions) - 1}")
    if action == ACTION_HOLD:
        return Hold()
    if action == ACTION_CLOSE:
        return CloseAll()
    if action >= _FIRST_SLOT_ACTION:
        return CloseSlot(action - _FIRST_SLOT_ACTION)
    return Open(STRATEGIES[action - FIRST_OPEN_ACTION])


def encode(action: Action, max_open_positions: int = 1) -> int:
    """The index of a typed action (ValueError for a slot or structure that has none)."""
    if isinstance(action, Hold):
        return ACTION_HOLD
    if isinstance(action, CloseAll):
        return ACTION_CLOSE
    if isinstance(action, Open):
        return action_for_strategy(action.strategy)
    if isinstance(action, CloseSlot):
        if max_open_positions <= 1 or not 0 <= action.slot < max_open_positions:
            raise ValueError(f"close slot {action.slot} outside 0..{max_open_positions - 1} "
                             f"(max_open_positions {max_open_positions})")
        return _FIRST_SLOT_ACTION + action.slot
    raise TypeError(f"not an action: {action!r}")


def action_for_strategy(strategy: str) -> int:
    """Action index that opens ``strategy``."""
    try:
        return FIRST_OPEN_ACTION + STRATEGIES.index(strategy)
    except ValueError:
        raise ValueError(f"unknown strategy '{strategy}'; expected one of {STRATEGIES}") from None
