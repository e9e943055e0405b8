"""The SPY options-trading environment: the project's one accounting engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from envs.actions import ACTION_CLOSE, ACTION_HOLD, ACTION_NAMES, FIRST_OPEN_ACTION, STRATEGIES
from envs.config import EnvConfig
from envs.market import MarketPanel
from options.calendar import nearest_expiry, timestamp_close_ns
from options.costs import CostConfig
from options.positions import MarginConfig, MarketState, Position, PositionMark, open_position
from options.strategies import strategy_legs
from options.surface import SurfaceConfig

__all__ = ["PORTFOLIO_OBS_NAMES", "SpyOptionsEnv"]

PORTFOLIO_OBS_NAMES = (
    "cash_over_start_minus_1",
    "equity_over_start_minus_1",
    *(f"position_is_{name}" for name in STRATEGIES),
    "position_dte_days_over_60",
    "unrealized_pnl_over_max_loss",
    "position_dollar_delta_over_equity",
    "position_dollar_gamma_1pct_over_equity",
    "position_theta_usd_per_day_over_equity_x100",
    "position_vega_usd_per_vol_point_over_equity_x100",
    "margin_used_over_equity",
)
_NS_PER_DAY = 86_400 * 10**9


def _expiry_close_ns(position: Position) -> int:
    """The 16:00 close of the earliest expiry among the position's legs, in ns."""
    return min(timestamp_close_ns(leg.expiry) for leg in position.legs)


@dataclass
class _Trade:
    """One round trip, written to the trade ledger when it ends."""

    trade_id: int
    strategy: str
    position: Position
    open_date: pd.Timestamp
    contracts: int
    entry_cash_flow_usd: float  # premium and commission, signed as cash moves
    entry_commission_usd: float
    entry_spread_cost_usd: float
    max_loss_usd: float | None
    max_profit_usd: float | None
    risk_usd: float  # max loss, or the opening margin for undefined-risk structures
    expiry_ns: int  # the earliest expiry of the remaining legs (16:00 close), for settlement
    exit_cash_flow_usd: float = 0.0
    exit_commission_usd: float = 0.0
    exit_spread_cost_usd: float = 0.0
    close_date: pd.Timestamp | None = None
    exit_reason: str = ""
    fills: list = field(default_factory=list)

    @property
    def pnl_usd(self) -> float:
        return self.entry_cash_flow_usd + self.exit_cash_flow_usd

    def ledger_row(self) -> dict:
        legs = ";".join(f"{leg.quantity_contracts:+d} {leg.option_type} {leg.strike:g} "
                        f"{leg.expiry.date()}" for leg in self.position.legs)
        return {
            "trade_id": self.trade_id, "strategy": self.strategy, "legs": legs,
            "open_date": self.open_date, "close_date": self.close_date,
            "exit_reason": self.exit_reason, "contracts": self.contracts,
            "entry_cash_flow_usd": self.entry_cash_flow_usd,
            "exit_cash_flow_usd": self.exit_cash_flow_usd, "pnl_usd": self.pnl_usd,
            "commission_usd": self.entry_commission_usd + self.exit_commission_usd,
            "spread_cost_usd": self.entry_spread_cost_usd + self.exit_spread_cost_usd,
            "max_loss_usd": self.max_loss_usd, "max_profit_usd": self.max_profit_usd,
            "risk_usd": self.risk_usd,
        }


class SpyOptionsEnv(gym.Env):
    """Trade SPY option structures at daily (or intraday) closes, one bar per step.

    ## Description
    At the close of bar t the agent sees out-of-sample quantile forecasts of the forward log
    return for several horizons, market features and its portfolio, and chooses to hold, close
    its position, or open one of nine option structures. Orders fill at bar t's model quotes
    (Black-Scholes-Merton on the skewed surface of ``options.surface``; buy at the ask, sell at
    the bid) plus a commission per contract per leg. The market then moves to t+1: legs expiring
    by that close settle in cash at intrinsic value, the position is marked at mid, optional
    automatic exits fire at t+1's quotes, and the reward is the change in equity.

    ## Action Space
    ``Discrete(11)``: 0 hold, 1 close the open position(s), 2-10 open
    bull_put_spread, bear_call_spread, bull_call_spread, bear_put_spread, iron_condor,
    long_straddle, short_straddle, long_strangle, short_strangle (strikes by target delta and
    expiry by target days from ``EnvConfig.strategies``; size from the risk budget).
    ``action_masks()`` marks the valid ones: close needs an open position; an open needs a free
    slot (``max_open_positions``), at least one contract within the risk budget and enough free
    margin. An invalid action is a no-op reported in ``info["invalid_action"]``.

    ## Observation Space
    ``Box(-clip, clip, (n,), float32)``; names in ``observation_names``. All are scaled to order 1:

    | Num | Observation | Unit | Min | Max |
    |---|---|---|---|---|
    | 0.. | ``forecast_h{h}_q{level}_vs_implied_move``: forecast quantile of log(S[t+h]/S[t]) / (ATM IV * sqrt(h/bars_per_year)) | implied sd | -clip | clip |
    | .. | ``forecast_width75_h{h}_vs_implied_width75``: forecast 75% width / option-implied 75% width | ratio | 0 | clip |
    | .. | ``ret_log_{1,5,20}b_scaled``: log returns / (0.01, 0.02, 0.05) | scaled | -clip | clip |
    | .. | ``rv_ann_20b_scaled``: realised vol / 0.20 | scaled | 0 | clip |
    | .. | ``rsi_14b_scaled``, ``adx_14b_scaled``: / 100 | index/100 | 0 | 1 |
    | .. | ``macd_hist_pct_scaled``, ``bb_pctb_20b_scaled`` | % of price, band share | -clip | clip |
    | .. | ``atm_iv_over_0.20``, ``atm_iv_change_5b_over_0.05``, ``atm_iv_minus_rv_20b_over_0.10`` | scaled vol | -clip | clip |
    | .. | ``days_to_monthly_expiry_over_30``, ``rate_over_0.05`` | scaled | 0 | clip |
    | .. | ``cash_over_start_minus_1``, ``equity_over_start_minus_1`` | fraction | -clip | clip |
    | .. | ``position_is_{strategy}`` (9): one-hot of the open structure | 0/1 | 0 | 1 |
    | .. | ``position_dte_days_over_60`` | days/60 | 0 | clip |
    | .. | ``unrealized_pnl_over_max_loss`` (margin for undefined risk) | fraction | -clip | clip |
    | .. | ``position_dollar_delta_over_equity``: delta * spot / equity | fraction | -clip | clip |
    | .. | ``position_dollar_gamma_1pct_over_equity``: 0.5 * gamma * (0.01 spot)^2 / equity * 100 | fraction | -clip | clip |
    | .. | ``position_theta_usd_per_day_over_equity_x100``, ``position_vega_usd_per_vol_point_over_equity_x100`` | % of equity | -clip | clip |
    | .. | ``margin_used_over_equity`` | fraction | 0 | clip |

    ## Rewards
    ``pnl`` (default): (equity[t+1] - equity[t]) / starting equity, with equity = cash + mid
    value of open legs; commissions and the half-spread paid are inside equity, so inside the
    reward. The rewards of an episode sum to (final - starting equity) / starting equity.
    ``drawdown_penalty`` subtracts ``drawdown_penalty`` times the increase of the drawdown (as a
    fraction of the running peak); ``differential_sharpe`` is Moody & Saffell's differential
    Sharpe ratio of the step returns. Both are options, not the default.

    ## Starting State
    Cash = ``starting_equity_usd``, no position. Training episodes (``mode="train"``) start at a
    uniformly random bar of the segment (``self.np_random``) and last ``episode_length_bars``;
    evaluation episodes (``mode="eval"``) cover the whole segment from its first bar.

    ## Episode End
    Termination: equity at or below ``ruin_equity_fraction`` of the start. Truncation: the last
    bar of the episode window (an open position stays marked at mid; the ledger shows it as
    ``open_at_end``).

    ## Arguments
    ``SpyOptionsEnv(panel, env_config, surface_config, cost_config, margin_config, mode)``; most
    users call ``envs.make_env(config, segment)`` which builds the panel from the data and the
    out-of-sample forecasts.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(self, panel: MarketPanel, env_config: EnvConfig | None = None,
                 surface_config: SurfaceConfig | None = None,
                 cost_config: CostConfig | None = None,
                 margin_config: MarginConfig | None = None, mode: str = "train") -> None:
        super().__init__()
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        self.panel = panel
        self.cfg = env_config or EnvConfig()
        self.surface = surface_config or SurfaceConfig()
        self.costs = cost_config or CostConfig()
        self.margin_cfg = margin_config or MarginConfig()
        self.mode = mode
        self.start_equity = float(self.cfg.starting_equity_usd)
        n = len(panel)
        if n < 2:
            raise ValueError("the environment needs at least 2 tradable bars")
        self._states = [
            MarketState(date, float(panel.spot[i]), float(panel.atm_iv[i]), float(panel.rate[i]),
                        self.cfg.dividend_yield)
            for i, date in enumerate(panel.dates)
        ]
        self._dates = list(panel.dates)  # list indexing is far cheaper than a DatetimeIndex's
        self._close_ns = [int(v) for v in panel.close_ns]
        self._spot = [float(v) for v in panel.spot]
        self.observation_names = (*panel.market_obs_names, *PORTFOLIO_OBS_NAMES)
        self.action_names = ACTION_NAMES
        clip = float(self.cfg.observation_clip)
        self.observation_space = spaces.Box(-clip, clip, (len(self.observation_names),),
                                            np.float32)
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        self._n_market = panel.market_obs.shape[1]
        self._clip = clip
        self._market_obs = np.clip(panel.market_obs, -clip, clip)
        self._strategy_index = {name: k for k, name in enumerate(STRATEGIES)}
        self._unit_cache: dict[tuple[int, str], tuple[Position, float] | None] = {}
        self._expiry_cache: dict[int, pd.Timestamp] = {}
        self._reset_state(0, n - 1)

    # ------------------------------------------------------------------ state
    def _reset_state(self, start: int, end: int) -> None:
        self._start, self._end, self._i = start, end, start
        self.cash = self.start_equity
        self.positions: list[_Trade] = []
        self.realized_pnl = 0.0
        self.total_commission = 0.0
        self.total_spread_cost = 0.0
        self._trade_counter = 0
        self._closed: list[_Trade] = []
        self._marks: list[PositionMark] = []
        self._mask_cache: np.ndarray | None = None
        self._peak_equity = self.start_equity
        self._ds_a = 0.0
        self._ds_b = 0.0
        self._equity_rows: list[tuple] = []
        self._mark_positions()
        self._record_equity(ACTION_HOLD)

    def _mark_positions(self) -> None:
        state = self._states[self._i]
        self._marks = [t.position.mark(state, self.surface, self.costs) for t in self.positions]
        self.equity = self.cash + sum(m.value_mid_usd for m in self._marks)
        self.margin_used = sum(self._margin(t.position, state) for t in self.positions)

    def _margin(self, position: Position, state: MarketState) -> float:
        max_loss = position.max_loss_usd
        if max_loss is not None:
            return max_loss
        return position.margin_requirement_usd(state, self.surface, self.margin_cfg)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        n = len(self.panel)
        options = options or {}
        if self.mode == "eval":
            start, end = 0, n - 1
        else:
            length = min(self.cfg.episode_length_bars, n - 1)
            start = int(self.np_random.integers(0, n - length)) if n - length > 0 else 0
            end = start + length
        if "start_index" in options:
            start = int(options["start_index"])
            end = min(n - 1, start + int(options.get("length_bars", n)))
        if not 0 <= start < end <= n - 1:
            raise ValueError(f"episode window {start}..{end} outside 0..{n - 1}")
        self._reset_state(start, end)
        return self._get_obs(), self._get_info(fills=(), invalid=None, step_costs=(0.0, 0.0))

    def step(self, action):
        if self._i >= self._end or self.equity <= self.cfg.ruin_equity_fraction * self.start_equity:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset()")
        action = int(action)
        mask = self.action_masks()
        invalid = None
        fills: list = []
        commission_before, spread_before = self.total_commission, self.total_spread_cost
        equity_before = self.equity
        if not 0 <= action < len(ACTION_NAMES):
            invalid = f"action {action} outside 0..{len(ACTION_NAMES) - 1}"
        elif not mask[action]:
            invalid = self._why_invalid(action)
        elif action == ACTION_CLOSE:
            for trade in list(self.positions):
                fills += self._close(trade, "agent")
        elif action >= FIRST_OPEN_ACTION:
            fills += self._open(STRATEGIES[action - FIRST_OPEN_ACTION])
        # The market moves to the next bar.
        self._i += 1
        self._mask_cache = None
        fills += self._settle_expired()
        self._mark_positions()
        exits = self._auto_exits()
        if exits:
            fills += exits
            self._mark_positions()
        reward = self._reward(equity_before)
        self._record_equity(action if invalid is None else ACTION_HOLD)
        terminated = self.equity <= self.cfg.ruin_equity_fraction * self.start_equity
        truncated = (not terminated) and self._i >= self._end
        step_costs = (self.total_commission - commission_before,
                      self.total_spread_cost - spread_before)
        info = self._get_info(fills=tuple(fills), invalid=invalid, step_costs=step_costs)
        if terminated or truncated:
            info["episode_stats"] = self._episode_stats()
        return self._get_obs(), reward, bool(terminated), bool(truncated), info

    # ------------------------------------------------------------------ orders
    def _unit_position(self, i: int, strategy: str):
        """One-contract legs of ``strategy`` at bar i and their risk per contract (cached: it
        depends on the bar only, not on the portfolio)."""
        key = (i, strategy)
        if key not in self._unit_cache:
            state = self._states[i]
            try:
                legs = strategy_legs(strategy, state, self._expiry(i), self.cfg.strategies,
                                     self.surface, 1)
                unit = open_position(strategy, legs, state, self.surface, self.costs)
            except ValueError:
                self._unit_cache[key] = None
            else:
                risk = self._margin(unit, state)
                self._unit_cache[key] = (unit, risk) if risk > 0 else None
        return self._unit_cache[key]

    def _expiry(self, i: int) -> pd.Timestamp:
        """The listed expiry nearest the target days to expiry at bar i (cached per bar)."""
        if i not in self._expiry_cache:
            cfg = self.cfg.strategies
            self._expiry_cache[i] = nearest_expiry(self._dates[i], cfg.dte_days,
                                                   cfg.expiry_kinds,
                                                   min_dte_days=max(1, cfg.min_dte_days))
        return self._expiry_cache[i]

    def _contracts_for(self, risk_per_contract: float) -> int:
        if self.cfg.sizing == "fixed_contracts":
            contracts = self.cfg.fixed_contracts
        else:
            budget = self.cfg.risk_per_trade_fraction * self.equity
            contracts = int(budget // risk_per_contract)
        return min(contracts, self.cfg.max_contracts)

    def _open(self, strategy: str) -> list:
        unit, risk_per_contract = self._unit_position(self._i, strategy)
        contracts = self._contracts_for(risk_per_contract)
        state = self._states[self._i]
        legs = tuple(type(leg)(leg.option_type, leg.strike, leg.expiry,
                               leg.quantity_contracts * contracts) for leg in unit.legs)
        position = open_position(strategy, legs, state, self.surface, self.costs)
        entry_cash = sum(f.cash_flow_usd for f in position.entry_fills)
        commission = sum(f.commission_usd for f in position.entry_fills)
        spread = sum(f.spread_cost_usd for f in position.entry_fills)
        self.cash += entry_cash
        self.total_commission += commission
        self.total_spread_cost += spread
        self._trade_counter += 1
        trade = _Trade(self._trade_counter, strategy, position, state.as_of, contracts, entry_cash,
                       commission, spread, position.max_loss_usd, position.max_profit_usd,
                       risk_per_contract * contracts, _expiry_close_ns(position),
                       fills=list(position.entry_fills))
        self.positions.append(trade)
        return list(position.entry_fills)

    def _finish(self, trade: _Trade, fills) -> None:
        cash = sum(f.cash_flow_usd for f in fills)
        commission = sum(f.commission_usd for f in fills)
        spread = sum(f.spread_cost_usd for f in fills)
        self.cash += cash
        self.total_commission += commission
        self.total_spread_cost += spread
        trade.exit_cash_flow_usd += cash
        trade.exit_commission_usd += commission
        trade.exit_spread_cost_usd += spread
        trade.fills += list(fills)

    def _close(self, trade: _Trade, reason: str) -> list:
        state = self._states[self._i]
        fills = trade.position.close(state, self.surface, self.costs)
        self._finish(trade, fills)
        self._end_trade(trade, reason)
        return list(fills)

    def _end_trade(self, trade: _Trade, reason: str) -> None:
        trade.close_date = self._dates[self._i]
        trade.exit_reason = reason
        self.realized_pnl += trade.pnl_usd
        self.positions.remove(trade)
        self._closed.append(trade)

    def _settle_expired(self) -> list:
        out: list = []
        now_ns = self._close_ns[self._i]
        for trade in self.positions:
            if trade.expiry_ns <= now_ns:
                break
        else:
            return out
        date = self._dates[self._i]
        spot = self._spot[self._i]
        for trade in list(self.positions):
            fills, remaining = trade.position.settle_expired(date, spot)
            if not fills:
                continue
            self._finish(trade, fills)
            out += list(fills)
            if remaining is None:
                self._end_trade(trade, "expiry")
            else:
                trade.position = remaining
                trade.expiry_ns = _expiry_close_ns(remaining)
        return out

    def _auto_exits(self) -> list:
        cfg = self.cfg
        if not self.positions or (cfg.profit_target_fraction is None
                                  and cfg.stop_loss_multiple is None
                                  and cfg.close_at_dte_days is None):
            return []
        out: list = []
        now_ns = self._close_ns[self._i]
        for trade, mark in zip(list(self.positions), list(self._marks), strict=True):
            pnl_if_closed = (trade.entry_cash_flow_usd + mark.value_liquidation_usd)
            credit = max(trade.entry_cash_flow_usd, 0.0)
            reason = None
            if (cfg.profit_target_fraction is not None and trade.max_profit_usd
                    and pnl_if_closed >= cfg.profit_target_fraction * trade.max_profit_usd):
                reason = "profit_target"
            elif (cfg.stop_loss_multiple is not None and credit > 0
                  and -pnl_if_closed >= cfg.stop_loss_multiple * credit):
                reason = "stop_loss"
            elif (cfg.close_at_dte_days is not None
                  and (trade.expiry_ns - now_ns) / _NS_PER_DAY <= cfg.close_at_dte_days):
                reason = "dte_exit"
            if reason is not None:
                out += self._close(trade, reason)
        return out

    # ------------------------------------------------------------------ masks
    def action_masks(self) -> np.ndarray:
        """Valid actions now (bool array, as sb3_contrib's MaskablePPO expects)."""
        if self._mask_cache is not None:
            return self._mask_cache
        mask = np.zeros(len(ACTION_NAMES), dtype=bool)
        mask[ACTION_HOLD] = True
        mask[ACTION_CLOSE] = bool(self.positions)
        if len(self.positions) < self.cfg.max_open_positions and self._i < self._end:
            free_margin = self.equity - self.margin_used
            for k, strategy in enumerate(STRATEGIES):
                unit = self._unit_position(self._i, strategy)
                if unit is None:
                    continue
                contracts = self._contracts_for(unit[1])
                mask[FIRST_OPEN_ACTION + k] = contracts >= 1 and (
                    unit[1] * contracts <= free_margin)
        self._mask_cache = mask
        return mask

    def _why_invalid(self, action: int) -> str:
        name = ACTION_NAMES[action]
        if action == ACTION_CLOSE:
            return "close: no open position"
        if len(self.positions) >= self.cfg.max_open_positions:
            return f"{name}: {len(self.positions)} position(s) open (max_open_positions)"
        if self._i >= self._end:
            return f"{name}: last bar of the episode"
        unit = self._unit_position(self._i, STRATEGIES[action - FIRST_OPEN_ACTION])
        if unit is None:
            return f"{name}: no valid strikes/expiry at this bar"
        return f"{name}: risk per contract {unit[1]:.2f} USD exceeds the budget or free margin"

    # ------------------------------------------------------------------ reward
    def _reward(self, equity_before: float) -> float:
        step_return = (self.equity - equity_before) / self.start_equity
        kind = self.cfg.reward
        if kind == "pnl":
            return float(step_return)
        if kind == "drawdown_penalty":
            dd_before = 1.0 - equity_before / self._peak_equity
            self._peak_equity = max(self._peak_equity, self.equity)
            dd_after = 1.0 - self.equity / self._peak_equity
            return float(step_return - self.cfg.drawdown_penalty * max(0.0, dd_after - dd_before))
        # Differential Sharpe ratio (Moody & Saffell 2001) of the step returns.
        eta = self.cfg.differential_sharpe_eta
        a, b = self._ds_a, self._ds_b
        denom = (b - a * a) ** 1.5
        d = 0.0 if denom <= 1e-12 else (b * (step_return - a)
                                        - 0.5 * a * (step_return**2 - b)) / denom
        self._ds_a = a + eta * (step_return - a)
        self._ds_b = b + eta * (step_return**2 - b)
        return float(np.clip(d, -10.0, 10.0))

    # ------------------------------------------------------------------ observation / info
    def _get_obs(self) -> np.ndarray:
        i = self._i
        obs = np.empty(self.observation_space.shape[0], dtype=np.float32)
        obs[: self._n_market] = self._market_obs[i]  # clipped once at construction
        equity = self.equity
        start = self.start_equity
        port = [0.0] * len(PORTFOLIO_OBS_NAMES)
        port[0] = self.cash / start - 1.0
        port[1] = equity / start - 1.0
        if self.positions:
            spot = self._spot[i]
            delta = gamma = theta = vega = 0.0
            for trade, mark in zip(self.positions, self._marks, strict=True):
                k = self._strategy_index.get(trade.strategy)
                if k is not None:
                    port[2 + k] = 1.0
                delta += mark.delta_shares
                gamma += mark.gamma_shares_per_usd
                theta += mark.theta_usd_per_day
                vega += mark.vega_usd_per_vol_point
            first, first_mark = self.positions[0], self._marks[0]
            dte = (first.expiry_ns - self._close_ns[i]) / _NS_PER_DAY
            unrealized = (first.entry_cash_flow_usd + first.exit_cash_flow_usd
                          + first_mark.value_mid_usd)
            base = 2 + len(STRATEGIES)
            safe_equity = equity if equity > 1e-9 else 1e-9
            port[base] = (dte if dte > 0.0 else 0.0) / 60.0
            port[base + 1] = unrealized / first.risk_usd
            port[base + 2] = delta * spot / safe_equity
            port[base + 3] = 0.5 * gamma * (0.01 * spot) ** 2 / safe_equity * 100
            port[base + 4] = theta / safe_equity * 100
            port[base + 5] = vega / safe_equity * 100
            port[base + 6] = self.margin_used / safe_equity
        clip = self._clip
        obs[self._n_market:] = [clip if v > clip else (-clip if v < -clip else v) for v in port]
        return obs

    def unrealized_pnl(self) -> float:
        """Mid value of open legs plus the cash flows that opened them (costs included)."""
        return sum(t.entry_cash_flow_usd + t.exit_cash_flow_usd + m.value_mid_usd
                   for t, m in zip(self.positions, self._marks, strict=True))

    def _get_info(self, fills, invalid, step_costs) -> dict:
        return {
            "date": self._dates[self._i],
            "equity": self.equity,
            "cash": self.cash,
            "margin_used": self.margin_used,
            "position": tuple(t.position for t in self.positions),
            "fills": fills,
            "costs": {"commission_usd": step_costs[0], "spread_usd": step_costs[1],
                      "total_commission_usd": self.total_commission,
                      "total_spread_usd": self.total_spread_cost},
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl(),
            "invalid_action": invalid,
            "spot": self._spot[self._i],
            "trades_closed": len(self._closed),
            "position_summary": self.position_summary(),
        }

    def _record_equity(self, action: int) -> None:
        self._equity_rows.append((self._dates[self._i], self.equity, self.cash,
                                  self.margin_used, self._spot[self._i],
                                  ACTION_NAMES[action], len(self.positions)))

    def _episode_stats(self) -> dict:
        pnl = [t.pnl_usd for t in self._closed]
        return {
            "return_pct": 100 * (self.equity / self.start_equity - 1),
            "trades": self._trade_counter,
            "win_rate": float(np.mean(np.asarray(pnl) > 0)) if pnl else float("nan"),
            "costs_pct": 100 * (self.total_commission + self.total_spread_cost)
            / self.start_equity,
            "bars": self._i - self._start,
        }

    # ------------------------------------------------------------------ ledgers
    def equity_curve(self) -> pd.DataFrame:
        """Equity, cash, margin, spot and the action taken, one row per bar of the episode."""
        return pd.DataFrame(self._equity_rows, columns=[
            "date", "equity_usd", "cash_usd", "margin_used_usd", "spot", "action",
            "open_positions"]).set_index("date")

    def trade_ledger(self) -> pd.DataFrame:
        """Every trade of the episode (closed, expired, and those still open at the end)."""
        rows = [t.ledger_row() for t in self._closed]
        for trade, mark in zip(self.positions, self._marks, strict=True):
            row = trade.ledger_row()
            row.update(exit_reason="open_at_end",
                       pnl_usd=trade.entry_cash_flow_usd + trade.exit_cash_flow_usd
                       + mark.value_mid_usd)
            rows.append(row)
        columns = ["trade_id", "strategy", "legs", "open_date", "close_date", "exit_reason",
                   "contracts", "entry_cash_flow_usd", "exit_cash_flow_usd", "pnl_usd",
                   "commission_usd", "spread_cost_usd", "max_loss_usd", "max_profit_usd",
                   "risk_usd"]
        return pd.DataFrame(rows, columns=columns)

    def position_summary(self) -> dict | None:
        """The first open position in words, for rule-based policies and logs."""
        if not self.positions:
            return None
        trade, mark = self.positions[0], self._marks[0]
        return {
            "strategy": trade.strategy,
            "dte_days": round((trade.expiry_ns - self._close_ns[self._i]) / _NS_PER_DAY),
            "pnl_if_closed_usd": trade.entry_cash_flow_usd + mark.value_liquidation_usd,
            "max_profit_usd": trade.max_profit_usd,
            "max_loss_usd": trade.max_loss_usd,
        }
