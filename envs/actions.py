"""The environment's discrete actions."""

from __future__ import annotations

__all__ = ["ACTION_CLOSE", "ACTION_HOLD", "ACTION_NAMES", "STRATEGIES", "action_for_strategy"]

ACTION_HOLD = 0
ACTION_CLOSE = 1
# Opening actions, in this order after hold and close. Names are options' strategy names.
STRATEGIES = (
    "bull_put_spread",
    "bear_call_spread",
    "bull_call_spread",
    "bear_put_spread",
    "iron_condor",
    "long_straddle",
    "short_straddle",
    "long_strangle",
    "short_strangle",
)
ACTION_NAMES = ("hold", "close", *(f"open_{name}" for name in STRATEGIES))
FIRST_OPEN_ACTION = 2


def action_for_strategy(strategy: str) -> int:
    """Action index that opens ``strategy``."""
    try:
        return FIRST_OPEN_ACTION + STRATEGIES.index(strategy)
    except ValueError:
        raise ValueError(f"unknown strategy '{strategy}'; expected one of {STRATEGIES}") from None
