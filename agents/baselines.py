"""Rule-based baselines: each a few readable lines, parameters from ``BaselinesConfig``."""

from __future__ import annotations

import numpy as np

from agents.config import BaselinesConfig
from common.codecs import parse_wide_column
from common.errors import UserInputError
from envs.actions import ACTION_CLOSE, ACTION_HOLD, action_for_strategy
from envs.observations import (
    ObservationIndex,
    forecast_quantile_obs_name,
    forecast_width_obs_name,
)
from envs.step_info import StepInfo

__all__ = [
    "BASELINES",
    "BuyAndHoldPolicy",
    "CashPolicy",
    "ForecastRulePolicy",
    "IronCondorPolicy",
    "RandomPolicy",
    "ShortPutSpreadPolicy",
    "make_baseline",
]


class _Rule:
    name = "rule"
    close_reason: str | None = None
    """The rule behind the close the last ``act`` ordered (the ledger's ``exit_reason``), or
    None; evaluation hands it to the environment (``env.label_close``)."""

    def __init__(self, observation_names, cfg: BaselinesConfig | None = None) -> None:
        self.cfg = cfg or BaselinesConfig()
        self.obs = ObservationIndex(observation_names)

    def reset(self, seed: int | None = None) -> None:
        return None

    @staticmethod
    def _open_if_valid(strategy: str, mask: np.ndarray) -> int:
        action = action_for_strategy(strategy)
        return action if mask[action] else ACTION_HOLD


class CashPolicy(_Rule):
    """Never trade."""

    name = "cash"

    def act(self, observation, info, action_mask) -> int:
        return ACTION_HOLD


class BuyAndHoldPolicy(CashPolicy):
    """Buy-and-hold of the underlying, as a reference curve.

    The environment trades options only, so this policy holds cash in it; evaluation replaces
    its equity with ``starting equity * spot[t] / spot[0]`` over the same bars
    (``reference_curve = "underlying"``), with no costs and no dividends (a price index).
    """

    name = "buy_and_hold"
    reference_curve = "underlying"


def _open_positions(info) -> tuple:
    """The open positions (``envs.portfolio.PositionView``) from a full ``info``."""
    try:
        return StepInfo.of(info).portfolio.positions
    except KeyError:
        raise KeyError("rule-based policies need the full info (info_level='full', the "
                       "evaluation default) with its 'portfolio' view") from None


class ShortPutSpreadPolicy(_Rule):
    """CBOE PUT-index-like: always short a put spread; hold each to expiry, then sell again."""

    name = "short_put_spread"

    def act(self, observation, info, action_mask) -> int:
        if _open_positions(info):
            return ACTION_HOLD
        return self._open_if_valid("bull_put_spread", action_mask)


class IronCondorPolicy(_Rule):
    """Always-on iron condor, closed at a share of max profit or at N days to expiry."""

    name = "iron_condor"

    def act(self, observation, info, action_mask) -> int:
        self.close_reason = None
        positions = _open_positions(info)
        if not positions:
            return self._open_if_valid("iron_condor", action_mask)
        pos = positions[0]
        take = self.cfg.condor_profit_take_fraction * (pos.max_profit_usd or np.inf)
        if pos.pnl_if_closed_usd >= take:
            self.close_reason = "profit_target"
        elif round(pos.dte_days) <= self.cfg.condor_close_dte_days:
            self.close_reason = "dte_exit"
        return ACTION_HOLD if self.close_reason is None else ACTION_CLOSE


class ForecastRulePolicy(_Rule):
    """Trade the forecast: direction -> credit spread, interval vs implied move -> volatility.

    Bull put spread when the median forecast is above ``forecast_up_threshold`` implied standard
    deviations, bear call when below minus that; otherwise an iron condor when the forecast 75%
    interval is narrower than ``interval_ratio_narrow`` times the option-implied one, a long
    straddle when wider than ``interval_ratio_wide`` times it. Positions are held to expiry.
    """

    name = "forecast_rule"

    def __init__(self, observation_names, cfg: BaselinesConfig | None = None) -> None:
        super().__init__(observation_names, cfg)
        h = self.cfg.forecast_horizon_bars
        if forecast_quantile_obs_name(h, 0.5) not in self.obs:
            available = sorted({parsed[0] for name in self.obs.names
                                if (parsed := parse_wide_column(name.removeprefix("forecast_")
                                                                .removesuffix("_vs_implied_move")))
                                and parsed[1] == 0.5})
            raise UserInputError(
                f"baselines.forecast_horizon_bars {h} is not a forecast horizon of this run; "
                f"expected one of {available} (bars of the data's interval)")

    def act(self, observation, info, action_mask) -> int:
        if _open_positions(info):
            return ACTION_HOLD
        h = self.cfg.forecast_horizon_bars
        median = self.obs.value(observation, forecast_quantile_obs_name(h, 0.5))
        width = self.obs.value(observation, forecast_width_obs_name(h))
        if median > self.cfg.forecast_up_threshold:
            return self._open_if_valid("bull_put_spread", action_mask)
        if median < -self.cfg.forecast_up_threshold:
            return self._open_if_valid("bear_call_spread", action_mask)
        if width < self.cfg.interval_ratio_narrow:
            return self._open_if_valid("iron_condor", action_mask)
        if width > self.cfg.interval_ratio_wide:
            return self._open_if_valid("long_straddle", action_mask)
        return ACTION_HOLD


class RandomPolicy(_Rule):
    """Uniform among the valid actions (seeded)."""

    name = "random"

    def __init__(self, observation_names, cfg: BaselinesConfig | None = None,
                 seed: int = 0) -> None:
        super().__init__(observation_names, cfg)
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation, info, action_mask) -> int:
        return int(self.rng.choice(np.flatnonzero(action_mask)))


BASELINES = {
    policy.name: policy
    for policy in (CashPolicy, BuyAndHoldPolicy, ShortPutSpreadPolicy, IronCondorPolicy,
                   ForecastRulePolicy, RandomPolicy)
}


def make_baseline(name: str, observation_names, cfg: BaselinesConfig | None = None,
                  seed: int = 0):
    """Build the baseline registered under ``name``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline '{name}'; expected one of {sorted(BASELINES)}")
    if name == "random":
        return RandomPolicy(observation_names, cfg, seed=seed)
    return BASELINES[name](observation_names, cfg)
