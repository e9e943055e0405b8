"""Rewards: small objects that turn equity changes into rewards and own their state.

Each has ``reset(start_equity_usd)`` and ``__call__(equity_before_usd, equity_after_usd) ->
float``. ``pnl`` (the default) is the change in equity over starting equity, so an episode's
rewards sum to its total return.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REWARDS", "DifferentialSharpeReward", "DrawdownPenaltyReward", "PnlReward",
           "make_reward"]


class PnlReward:
    """(equity[t+1] - equity[t]) / starting equity."""

    def reset(self, start_equity_usd: float) -> None:
        self.start = float(start_equity_usd)

    def step_return(self, before: float, after: float) -> float:
        return (after - before) / self.start

    def __call__(self, before: float, after: float) -> float:
        return float(self.step_return(before, after))


class DrawdownPenaltyReward(PnlReward):
    """The pnl reward minus ``weight`` times the increase of the drawdown from the running peak
    (drawdown as a fraction of the peak)."""

    def __init__(self, weight: float) -> None:
        self.weight = float(weight)

    def reset(self, start_equity_usd: float) -> None:
        super().reset(start_equity_usd)
        self.peak = self.start

    def __call__(self, before: float, after: float) -> float:
        dd_before = 1.0 - before / self.peak
        self.peak = max(self.peak, after)
        dd_after = 1.0 - after / self.peak
        return float(self.step_return(before, after) - self.weight * max(0.0, dd_after - dd_before))


class DifferentialSharpeReward(PnlReward):
    """Moody & Saffell's (2001) differential Sharpe ratio of the step returns, clipped to
    [-10, 10]; ``eta`` is the adaptation rate of its moving moments."""

    CLIP = 10.0

    def __init__(self, eta: float) -> None:
        self.eta = float(eta)

    def reset(self, start_equity_usd: float) -> None:
        super().reset(start_equity_usd)
        self.a = 0.0
        self.b = 0.0

    def __call__(self, before: float, after: float) -> float:
        r = self.step_return(before, after)
        a, b = self.a, self.b
        denom = (b - a * a) ** 1.5
        d = 0.0 if denom <= 1e-12 else (b * (r - a) - 0.5 * a * (r * r - b)) / denom
        self.a = a + self.eta * (r - a)
        self.b = b + self.eta * (r * r - b)
        return float(np.clip(d, -self.CLIP, self.CLIP))


REWARDS = ("pnl", "drawdown_penalty", "differential_sharpe")


def make_reward(kind: str, drawdown_penalty: float = 0.0, differential_sharpe_eta: float = 0.01):
    """The reward object named ``kind`` (one of :data:`REWARDS`)."""
    if kind == "pnl":
        return PnlReward()
    if kind == "drawdown_penalty":
        return DrawdownPenaltyReward(drawdown_penalty)
    if kind == "differential_sharpe":
        return DifferentialSharpeReward(differential_sharpe_eta)
    raise ValueError(f"unknown reward {kind!r}; expected one of {REWARDS}")
