"""The SPY options-trading environment: a thin layer over the portfolio simulator."""

from __future__ import annotations

import numbers
from array import array

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from common.units import PERCENT_PER_UNIT
from envs.actions import (
    ACTION_CLOSE,
    ACTION_HOLD,
    FIRST_OPEN_ACTION,
    STRATEGIES,
    Action,
    CloseAll,
    CloseSlot,
    Hold,
    Open,
    action_names,
    decode,
)
from envs.assignment import assignment_rules
from envs.config import EnvConfig, pricing_dividend_yield
from envs.ledgers import trade_ledger
from envs.market import MarketPanel
from envs.observations import (
    PORTFOLIO_ENTRIES,
    write_open_portfolio_values,
)
from envs.portfolio import (
    ClosingTerms,
    ExitRules,
    OpeningTerms,
    PortfolioSimulator,
    PortfolioView,
    PositionView,
    StepResult,
    UnitTables,
    quote_is_valid,
)
from envs.rewards import make_reward
from envs.step_info import EpisodeStats, StepCosts, StepInfo
from envs.table_cache import TableCache
from options.calendar import NS_PER_DAY, expiry_close_ns
from options.costs import CostConfig
from options.positions import MarginConfig
from options.pricing import DAYS_PER_YEAR
from options.quotes import ModelQuoteSource, QuoteSource
from options.strategies import within_band
from options.surface import SurfaceConfig

__all__ = ["INFO_LEVELS", "PORTFOLIO_OBS_NAMES", "SpyOptionsEnv"]

PORTFOLIO_OBS_NAMES = tuple(e.name for e in PORTFOLIO_ENTRIES)
INFO_LEVELS = ("slim", "full")
_RESET_OPTIONS = ("start_index", "length_bars")
_MAX_DTE_DAYS = 400
_HOLD, _CLOSE_ALL, _CLOSE_SLOT, _OPEN = range(4)  # kinds of decoded action, for the step
_KIND = {Hold: _HOLD, CloseAll: _CLOSE_ALL, CloseSlot: _CLOSE_SLOT, Open: _OPEN}


class SpyOptionsEnv(gym.Env):
    """Trade SPY option structures at daily (or intraday) closes, one bar per step.

    ## Description
    At the close of bar t the agent sees out-of-sample quantile forecasts of the forward log
    return for several horizons, market features and its portfolio, and chooses to hold, close
    its positions, or open one of the option structures of ``options.structures`` (13 specs).
    Orders fill at bar t's quotes from a quote source (``model``: Black-Scholes-Merton on the
    calibrated surface with the cost model's bid/ask; ``chain``: real quotes) — buy at the ask,
    sell at the bid — plus a commission per contract per leg. The market then moves to t+1: legs
    whose expiry session closes at t+1 settle in cash at intrinsic value, positions are marked at
    mid, optional automatic exits fire at t+1's quotes, and the reward is the change in equity.
    The accounting lives in ``envs.portfolio.PortfolioSimulator``.

    ## Action Space
    ``Discrete(2 + 13)`` (plus ``max_open_positions`` close-slot actions when it is above 1):
    0 hold, 1 close every open position, 2.. open bull_put_spread, bear_call_spread,
    bull_call_spread, bear_put_spread, iron_condor, iron_butterfly, long_straddle, short_straddle,
    long_strangle, short_strangle, call_butterfly, put_butterfly, calendar_spread (strikes by
    target delta among listed strikes, expiry by target days among listed expiries with a bar at
    their close; size from the risk budget), then ``close_slot_<k>``. ``action_masks()`` marks
    the valid ones (computed once per step; calling it before ``reset()`` raises, as ``step()``
    does): close needs an open position; an open needs a structure that can pay (every leg
    inside the moneyness band ``strategies.max_abs_log_moneyness`` with a valid two-sided
    quote, and a positive maximum profit after the entry commission: see
    ``envs.portfolio``), a free slot, at least one contract within the risk budget (max loss, or
    the stress loss of an undefined-risk structure) and its margin within the free margin. An
    invalid action is a no-op whose reason is ``info.invalid_action``; the full ``info``
    gives the reason of every masked opening action in ``info.refused_opens``. A close
    ordered by a rule of the policy (not by the agent's own choice) is labelled with that
    rule in the ledger's ``exit_reason`` through :meth:`label_close`. Actions must be integers
    in range.

    ## Observation Space
    ``Box(-clip, clip, (n,), float32)``; names in ``observation_names``; each value is
    ``function / scale`` from one table (``envs.observations``):

    | Num | Observation | Unit | Min | Max |
    |---|---|---|---|---|
    | 0.. | ``forecast_h{h}_q{level}_vs_implied_move``: forecast quantile of log(S[t+h]/S[t]) / (ATM IV * sqrt(h/bars_per_year)) | implied sd | -clip | clip |
    | .. | ``forecast_width75_h{h}_vs_implied_width75``: forecast 75% width / option-implied 75% width | ratio | 0 | clip |
    | .. | ``ret_log_{1,5,20}b_scaled``, ``rv_ann_20b_scaled``, ``rsi_14b_scaled``, ``adx_14b_scaled``, ``macd_hist_pct_scaled``, ``bb_pctb_20b_scaled`` | scaled | -clip | clip |
    | .. | ``atm_iv_over_0.20``, ``atm_iv_change_5b_over_0.05``, ``atm_iv_minus_rv_20b_over_0.10`` | scaled vol | -clip | clip |
    | .. | ``days_to_monthly_expiry_over_30``, ``rate_over_0.05`` | scaled | 0 | clip |
    | .. | ``cash_over_start_minus_1``, ``equity_over_start_minus_1`` | fraction | -clip | clip |
    | .. | ``position_is_{structure}`` (13): structures held | 0/1 | 0 | 1 |
    | .. | ``open_positions_over_max`` | fraction | 0 | 1 |
    | .. | ``position_dte_days_over_60``: nearest expiry of the open positions | days/60 | 0 | clip |
    | .. | ``unrealized_pnl_over_risk``: summed unrealised P&L / summed risk | fraction | -clip | clip |
    | .. | ``position_dollar_delta_over_equity``: delta * spot / equity | fraction | -clip | clip |
    | .. | ``position_dollar_gamma_1pct_over_equity_x100`` | % of equity | -clip | clip |
    | .. | ``position_theta_usd_per_day_over_equity_x100``, ``position_vega_usd_per_vol_point_over_equity_x100`` | % of equity | -clip | clip |
    | .. | ``margin_used_over_equity`` | fraction | 0 | clip |

    ## Rewards
    ``pnl`` (default): (equity[t+1] - equity[t]) / starting equity, with equity = cash + mid
    value of open legs; commissions and the half-spread paid are inside equity, so inside the
    reward. The rewards of an episode sum to (final - starting equity) / starting equity.
    ``drawdown_penalty`` and ``differential_sharpe`` are options (``envs.rewards``).

    ## Starting State
    Cash = ``starting_equity_usd``, no position. Training episodes (``mode="train"``) start at a
    uniformly random bar of the segment (``self.np_random``) and last ``episode_length_bars``;
    evaluation episodes (``mode="eval"``) cover the whole segment from its first bar.
    ``reset(options={"start_index": i, "length_bars": n})`` fixes the window.

    ## Episode End
    Termination: equity at or below ``ruin_equity_fraction`` of the start. Truncation: the last
    bar of the episode window (an open position stays marked at mid; the ledger shows it as
    ``open_at_end``).

    ## Arguments
    ``SpyOptionsEnv(panel, env_config, surface_config, cost_config, margin_config, mode,
    quote_source=None, info_level=None, unit_tables=None, last_bar_tradable=False,
    table_cache=None, exercise="european")``; ``exercise`` (``options.exercise``):
    ``"american"`` assigns short legs early where a holder would exercise
    (:mod:`envs.assignment`: a short call the session before an ex-dividend date, a deep
    in-the-money short put without time value; the structure closes with exit reason
    ``assigned_call_ex_dividend`` / ``assigned_put_early``), ``"european"`` never does;
    ``table_cache`` (an :class:`envs.table_cache.TableCache`) loads the
    per-bar structure tables from disk where an earlier process stored them for the same inputs,
    and stores those it builds (``envs.make_env`` passes the config's ``env.table_cache_dir``);
    ``last_bar_tradable`` (live trading, evaluation mode only) allows structures to be opened on
    the segment's last bar, the newest one, whose successor is not known yet: the episode may
    then be that one bar, and the executor reads its observation and mask without stepping;
    ``unit_tables`` shares the
    per-bar structure tables of another env on the same panel (vectorised envs).
    ``reset`` and ``step`` return ``info`` as an :class:`envs.step_info.StepInfo` (a dict read
    through typed properties). ``info_level`` is ``"slim"`` (plain floats: the default in
    training) or ``"full"`` (adds fills, Position objects, a ``PortfolioView``, the cost totals
    as ``StepCosts``: the default in evaluation). Most users call ``envs.make_env(config, segment)``
    or ``gym.make("SpyOptions-v1", config=..., segment=...)``.

    ## Version History
    * v1 (since issue 20): the mask also refuses structures that cannot pay (moneyness band,
      invalid quotes, maximum profit <= 0); observations and rewards unchanged.
    * v1: portfolio simulator, observation table and rewards apart; 13 structure specs (iron
      butterfly, call and put butterflies, calendar spread added); undefined-risk structures
      sized by a stress loss; settlement at the expiry session's close (early closes); slim
      training ``info``; aggregated portfolio observation; quote sources.
    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(self, panel: MarketPanel, env_config: EnvConfig | None = None,
                 surface_config: SurfaceConfig | None = None,
                 cost_config: CostConfig | None = None,
                 margin_config: MarginConfig | None = None, mode: str = "train",
                 quote_source: QuoteSource | None = None, info_level: str | None = None,
                 unit_tables: UnitTables | None = None,
                 last_bar_tradable: bool = False, table_cache: TableCache | None = None,
                 exercise: str = "european") -> None:
        super().__init__()
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        info_level = info_level or ("slim" if mode == "train" else "full")
        if info_level not in INFO_LEVELS:
            raise ValueError(f"info_level must be one of {INFO_LEVELS}, got {info_level!r}")
        if last_bar_tradable and mode != "eval":
            raise ValueError("last_bar_tradable is for evaluation (live) environments only")
        self.last_bar_tradable = bool(last_bar_tradable)
        if len(panel) < (1 if last_bar_tradable else 2):
            raise ValueError("the environment needs at least 2 tradable bars")
        self.panel = panel
        self.cfg = cfg = env_config or EnvConfig()
        self.surface = surface_config or SurfaceConfig()
        self.costs = cost_config or CostConfig()
        self.margin_cfg = margin_config or MarginConfig()
        self.mode = mode
        self.info_level = info_level
        self.start_equity = float(cfg.starting_equity_usd)
        if unit_tables is not None:  # shared with another env on the same panel and config
            if unit_tables.bars.dates is not panel.dates and not unit_tables.bars.dates.equals(
                    panel.dates):
                raise ValueError("unit_tables were built on other bars than this panel's")
            self.quotes, self.tables = unit_tables.source, unit_tables
        else:
            self.quotes = quote_source or ModelQuoteSource(
                panel.market_bars(pricing_dividend_yield(cfg, self.surface)), self.surface,
                self.costs,
                strike_spacing=cfg.strategies.strike_spacing,
                expiry_kinds=cfg.strategies.expiry_kinds, max_dte_days=_MAX_DTE_DAYS)
            self.tables = UnitTables(self.quotes, cfg.strategies, self.costs, self.margin_cfg,
                                     cfg.undefined_risk_stress_move_fraction,
                                     cfg.max_volume_share)
            store = table_cache.unit_store(self.tables) if table_cache is not None else None
            if store is not None:
                self.tables.attach_store(store)
        self.sim = PortfolioSimulator(
            self.tables, self.costs,
            ExitRules(cfg.profit_target_fraction, cfg.stop_loss_multiple, cfg.close_at_dte_days),
            self.start_equity, record_fills=info_level == "full",
            assignment=assignment_rules(exercise, self.tables.bars.dividend_yield))
        self.exercise = exercise
        self.reward_fn = make_reward(cfg.reward, cfg.drawdown_penalty,
                                     cfg.differential_sharpe_eta)
        self.action_names = action_names(cfg.max_open_positions)
        self._actions = tuple(decode(a, cfg.max_open_positions)
                              for a in range(len(self.action_names)))
        self._first_slot_action = FIRST_OPEN_ACTION + len(STRATEGIES)
        self.observation_names = (*panel.market_obs_names, *PORTFOLIO_OBS_NAMES)
        clip = float(cfg.observation_clip)
        self._clip = clip
        self.observation_space = spaces.Box(-clip, clip, (len(self.observation_names),),
                                            np.float32)
        self.action_space = spaces.Discrete(len(self.action_names))
        self._n_market = panel.market_obs.shape[1]
        self._market_obs = np.clip(panel.market_obs, -clip, clip)
        # Per bar, the whole observation of a flat portfolio but its cash and equity entries
        # (zeros): a step copies its row and writes the portfolio block into it.
        self._obs_rows = np.zeros((len(panel), len(self.observation_names)), dtype=np.float32)
        self._obs_rows[:, :self._n_market] = self._market_obs
        self._obs_row_views = list(self._obs_rows)  # one view per bar: a step copies its own
        self._cash_slot = self._n_market + PORTFOLIO_OBS_NAMES.index("cash_over_start_minus_1")
        self._equity_slot = self._n_market + PORTFOLIO_OBS_NAMES.index(
            "equity_over_start_minus_1")
        self._n_actions = len(self.action_names)
        self._action_kind = tuple(_KIND[type(a)] for a in self._actions)
        self._ruin_equity = cfg.ruin_equity_fraction * self.start_equity
        self._max_open = cfg.max_open_positions
        self._min_hold = cfg.min_holding_bars
        # The mask's sizing from risks and margins alone (PortfolioSimulator.openable_by_budget).
        self._open_by_budget = (cfg.sizing == "risk_fraction"
                                and self.tables.max_volume_share is None)
        self._slim = info_level == "slim"
        self._result = StepResult()  # reused by slim steps (they record no fills)
        # The mask when no structure can be opened, per number of open positions (copied).
        self._closed_masks = []
        for n_open in range(cfg.max_open_positions + 1):
            mask = np.zeros(self._n_actions, dtype=bool)
            mask[ACTION_HOLD] = True
            mask[ACTION_CLOSE] = n_open > 0
            mask[self._first_slot_action:self._first_slot_action + n_open] = True
            self._closed_masks.append(mask)
        self._dates = list(panel.dates)
        self._spot = panel.spot.tolist()
        self._atm_iv = panel.atm_iv.tolist()
        self._close_ns = panel.close_ns.tolist()
        self._spot_1pct_squared = [(0.01 * spot) ** 2 for spot in self._spot]
        self._ready = False
        self._bar_units: dict[int, tuple] = {}
        self._close_label: str | None = None  # exit_reason of the next step's closes
        self._reset_state(0, len(panel) - 1)

    # ------------------------------------------------------------------ state
    def _reset_state(self, start: int, end: int) -> None:
        self._start, self._end = start, end
        self.sim.reset(start)
        self.reward_fn.reset(self.start_equity)
        self._mask: np.ndarray | None = None
        self._close_label = None
        self._equity_rows: list[tuple] = []
        self._record_equity(ACTION_HOLD)

    @property
    def _i(self) -> int:
        return self.sim.bar

    @property
    def equity(self) -> float:
        return self.sim.equity

    @property
    def cash(self) -> float:
        return self.sim.cash

    @property
    def margin_used(self) -> float:
        return self.sim.margin_used

    @property
    def positions(self):
        """The open positions (``envs.portfolio.OpenPosition``), oldest first."""
        return tuple(self.sim.positions)

    def _ended(self) -> bool:
        return self.sim.bar >= self._end or self.sim.equity <= self._ruin_equity

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        n = len(self.panel)
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"reset options must be a dict, got {type(options).__name__}")
        options = options or {}
        unknown = sorted(set(options) - set(_RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; expected some of "
                             f"{list(_RESET_OPTIONS)}")
        if self.mode == "eval":
            start, end = 0, n - 1
        else:
            length = min(self.cfg.episode_length_bars, n - 1)
            start = int(self.np_random.integers(0, n - length)) if n - length > 0 else 0
            end = start + length
        if "start_index" in options:
            start = _as_int(options["start_index"], "reset option start_index")
            end = min(n - 1, start + _as_int(options.get("length_bars", n),
                                             "reset option length_bars"))
        if not (0 <= start < end <= n - 1
                or self.last_bar_tradable and 0 <= start == end == n - 1):
            raise ValueError(f"episode window {start}..{end} outside 0..{n - 1}")
        self._reset_state(start, end)
        self._ready = True
        return self._get_obs(), self._get_info(StepResult(), None, ACTION_HOLD)

    def step(self, action):
        reward, terminated, truncated, info = self._transition(action)
        return self._get_obs(), reward, terminated, truncated, info

    def _transition(self, action) -> tuple[float, bool, bool, StepInfo]:
        """``step`` without the observation: (reward, terminated, truncated, info). The batched
        vectorised env (``envs.vec_env``) writes the observations of its envs in place."""
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        sim = self.sim
        if self._ended():
            raise RuntimeError("the episode has ended (terminated or truncated); call reset()")
        if type(action) is not int:
            action = _as_int(action, "action")
        if not 0 <= action < self._n_actions:
            raise ValueError(f"action {action} outside 0..{self._n_actions - 1}")
        mask = self._mask
        if mask is None:
            mask = self.action_masks()
        if self._slim:  # no fills recorded: one result object serves every step
            result = self._result
            result.commission_usd = result.spread_usd = 0.0
        else:
            result = StepResult()
        equity_before = sim.equity
        invalid = None
        kind = self._action_kind[action]
        if kind == _HOLD:
            pass
        elif not mask[action] and not (self._close_label is not None
                                       and self._closed_masks[len(sim.positions)][action]):
            # a labelled close (a rule's exit, the risk manager's) is not held by
            # min_holding_bars: only the policy's own closes are
            invalid = self._why_invalid(action)
        elif kind == _CLOSE_ALL:
            close_reason = self._close_label or "agent"
            for pos in list(sim.positions):
                sim.close(pos, close_reason, result)
        elif kind == _CLOSE_SLOT:
            sim.close(sim.positions[self._actions[action].slot], self._close_label or "agent",
                      result)
        else:
            unit = self.tables.unit(sim.bar, self._actions[action].strategy)
            # advance marks the portfolio at the next bar right after
            sim.open(unit, self._contracts(unit), result, mark=False)
        self._close_label = None  # a label holds for one step
        sim.advance(result)  # the market moves to the next bar
        self._mask = None
        equity = sim.equity
        reward = self.reward_fn(equity_before, equity)
        taken = action if invalid is None else ACTION_HOLD
        self._record_equity(taken)
        terminated = equity <= self._ruin_equity
        truncated = (not terminated) and sim.bar >= self._end
        info = self._get_info(result, invalid, taken)
        if terminated or truncated:
            info.end_episode(self._episode_stats())
        return reward, terminated, truncated, info

    # ------------------------------------------------------------------ public terms
    @property
    def bar(self) -> int:
        """The bar the portfolio stands at (index into ``panel``)."""
        return self.sim.bar

    def decode(self, action: int) -> Action:
        """The typed action of index ``action`` (:func:`envs.actions.decode`)."""
        action = _as_int(action, "action")
        if not 0 <= action < len(self._actions):
            raise ValueError(f"action {action} outside 0..{len(self._actions) - 1}")
        return self._actions[action]

    def opening_terms(self, strategy: str) -> OpeningTerms | None:
        """What ``open_<strategy>`` would trade at the current bar, sized by the config's
        risk budget; None when no structure is quotable or not one contract fits."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        unit = self.tables.unit(self.sim.bar, strategy)
        if unit is None:
            return None
        contracts = self._contracts(unit)
        return self.sim.opening_terms(unit, contracts) if contracts >= 1 else None

    def closing_terms(self, trade_id: int) -> ClosingTerms:
        """What closing the open position ``trade_id`` would trade at the current bar
        (KeyError when it is not open)."""
        return self.sim.closing_terms(trade_id)

    def position_view(self, trade_id: int) -> PositionView:
        """The open position ``trade_id`` marked at the current bar."""
        return self.sim.position_view(self.sim.position(trade_id))

    def portfolio_view(self) -> PortfolioView:
        """Cash, equity, margin, greeks and every open position at the current bar."""
        return self.sim.view()

    def warm_tables(self) -> None:
        """Build every bar's structures now (e.g. before worker processes fork and share
        them); a structure's price path is built when it is first opened."""
        for bar in range(len(self.panel) - 1):
            for strategy in STRATEGIES:
                self.tables.unit(bar, strategy)

    # ------------------------------------------------------------------ masks
    def _contracts(self, unit) -> int:
        cfg = self.cfg
        return self.sim.contracts_for(unit, cfg.sizing, cfg.risk_per_trade_fraction,
                                      cfg.fixed_contracts, cfg.max_contracts)

    def label_close(self, reason: str | None) -> None:
        """The ``exit_reason`` for positions the next ``step`` closes by action (a rule-based
        policy's rule, e.g. ``dte_exit``); ``None`` or no call: ``agent``. It holds for the next
        step only."""
        if reason is not None and not (isinstance(reason, str) and reason):
            raise ValueError(f"close label must be a non-empty string or None, got {reason!r}")
        self._close_label = reason

    def action_masks(self) -> np.ndarray:
        """Valid actions now (bool array, as sb3_contrib's MaskablePPO expects); computed once
        per step. Raises before ``reset()``, as ``step()`` does."""
        mask = self._mask
        if mask is not None:
            return mask
        if not self._ready:
            raise RuntimeError("call reset() before action_masks()")
        sim = self.sim
        n_open = len(sim.positions)
        mask = self._closed_masks[n_open].copy()
        if n_open and self._min_hold:
            self._mask_young_closes(mask)
        if n_open < self._max_open and (sim.bar < self._end or self.last_bar_tradable):
            actions, units, risk, margin = self._units_at(sim.bar)
            if units:
                cfg = self.cfg
                if self._open_by_budget:
                    openable = sim.openable_by_budget(zip(actions, risk, margin, strict=True),
                                                      cfg.risk_per_trade_fraction,
                                                      cfg.max_contracts)
                else:
                    fits = sim.openable(units, cfg.sizing, cfg.risk_per_trade_fraction,
                                        cfg.fixed_contracts, cfg.max_contracts)
                    openable = [a for a, ok in zip(actions, fits, strict=True) if ok]
                for action in openable:  # the closed mask is False there
                    mask[action] = True
        self._mask = mask
        return mask

    def _held_bars(self) -> list[int]:
        """Bars each open position has been held (oldest first, as the close slots)."""
        sim = self.sim
        return [sim.bar - pos.unit.entry_bar for pos in sim.positions]

    def _mask_young_closes(self, mask: np.ndarray) -> None:
        """``env.min_holding_bars``: no close of a position held fewer bars (close-all: of any)."""
        young = [held < self._min_hold for held in self._held_bars()]
        if any(young):
            mask[ACTION_CLOSE] = False
            if self._max_open > 1:
                for k, is_young in enumerate(young):
                    if is_young:
                        mask[self._first_slot_action + k] = False

    def _units_at(self, bar: int) -> tuple[array, list, array, array]:
        """The opening actions with a unit at ``bar``, those units and their risk and margin per
        contract (cached per bar; only the latest bar's where the tables keep a few blocks, so
        that dropped ones are freed). Actions, risks and margins are packed arrays: a mask
        reads them at a bar it meets for the first time in a while, where a few contiguous
        bytes are faster to reach than a float object per unit."""
        found = self._bar_units.get(bar)
        if found is None:
            self.tables.ensure_bar(bar)
            pairs = [(FIRST_OPEN_ACTION + k, unit) for k, strategy in enumerate(STRATEGIES)
                     if (unit := self.tables.unit(bar, strategy)) is not None]
            if self.tables.max_blocks is not None:
                self._bar_units.clear()
            units = [u for _, u in pairs]
            found = self._bar_units[bar] = (array("i", [a for a, _ in pairs]), units,
                                            array("d", [u.risk_usd for u in units]),
                                            array("d", [u.margin_usd for u in units]))
        return found

    def _why_invalid(self, action: int) -> str:
        name = self.action_names[action]
        decoded = self._actions[action]
        n_open = len(self.sim.positions)
        if not isinstance(decoded, Open):
            if self._closed_masks[n_open][action]:  # a position is there: held too briefly
                held = self._held_bars()
                k = decoded.slot if isinstance(decoded, CloseSlot) else held.index(min(held))
                return (f"{name}: position held {held[k]} of min_holding_bars "
                        f"{self._min_hold} bars")
            return f"{name}: no open position{' in that slot' if n_open else ''}"
        if n_open >= self.cfg.max_open_positions:
            return f"{name}: {n_open} position(s) open (max_open_positions)"
        if self.sim.bar >= self._end:
            return f"{name}: last bar of the episode"
        strategy = decoded.strategy
        unit = self.tables.unit(self.sim.bar, strategy)
        if unit is None:
            return f"{name}: {self.tables.why_missing(self.sim.bar, strategy)}"
        contracts = self._contracts(unit)
        if contracts < 1:
            return (f"{name}: risk per contract {unit.risk_usd:.2f} USD exceeds the budget "
                    f"({self.cfg.risk_per_trade_fraction:g} of equity)")
        return (f"{name}: margin {unit.margin_usd * contracts:.2f} USD for {contracts} "
                f"contract(s) exceeds the free margin {self.sim.equity - self.sim.margin_used:.2f}")

    # ------------------------------------------------------------------ observation / info
    def _get_obs(self) -> np.ndarray:
        obs = self._obs_row_views[self.sim.bar].copy()  # the market block, clipped at construction
        self._write_portfolio_obs(obs)
        return obs

    def _write_portfolio_obs(self, obs: np.ndarray) -> None:
        """Write the portfolio block into ``obs`` (one observation whose portfolio entries are
        zeros): :func:`envs.observations.portfolio_values`' values, an entry at a time."""
        sim = self.sim
        if sim.positions:
            i = sim.bar
            equity = sim.equity
            write_open_portfolio_values(obs, self._n_market, sim, self._spot[i],
                                        self._spot_1pct_squared[i],
                                        equity if equity > 1e-9 else 1e-9, self._close_ns[i],
                                        self._max_open, self._clip)
        else:  # a flat portfolio: cash and equity only
            clip = self._clip
            start = sim.start_equity
            v = sim.cash / start - 1.0
            obs[self._cash_slot] = clip if v > clip else (-clip if v < -clip else v)
            v = sim.equity / start - 1.0
            obs[self._equity_slot] = clip if v > clip else (-clip if v < -clip else v)

    def unrealized_pnl(self) -> float:
        """Mid value of open legs plus the cash flows that opened them (costs included)."""
        return self.sim.unrealized_pnl()

    def _get_info(self, result: StepResult, invalid: str | None, action: int) -> StepInfo:
        sim = self.sim
        i = sim.bar
        delta, gamma, theta, vega = sim.greeks
        info = StepInfo.slim(
            equity_usd=sim.equity, cash_usd=sim.cash, margin_used_usd=sim.margin_used,
            invalid_action=invalid, action=action, open_positions=len(sim.positions),
            delta_shares=delta, gamma_shares_per_usd=gamma, theta_usd_per_day=theta,
            vega_usd_per_vol_point=vega, commission_usd=result.commission_usd,
            spread_usd=result.spread_usd, realized_pnl_usd=sim.realized_pnl,
            spot=self._spot[i], atm_iv=self._atm_iv[i])
        if not self._slim:
            mask = self.action_masks()
            info.add_full(
                refused_opens={self.action_names[a]: self._why_invalid(a)
                               for a in range(FIRST_OPEN_ACTION, self._first_slot_action)
                               if not mask[a]},
                date=self._dates[i],
                position=sim.position_objects(),
                fills=tuple(result.fills),
                costs=StepCosts(result.commission_usd, result.spread_usd, sim.total_commission,
                                sim.total_spread_cost),
                unrealized_pnl_usd=sim.unrealized_pnl(),
                trades_closed=len(sim.closed),
                portfolio=sim.view(),
                position_summary=self.position_summary(),
            )
        return info

    def _record_equity(self, action: int) -> None:
        """One row of :meth:`equity_curve` (bar, equity, cash, margin, action, open positions,
        greeks, costs)."""
        sim = self.sim
        self._equity_rows.append((sim.bar, sim.equity, sim.cash, sim.margin_used, action,
                                  len(sim.positions), sim.greeks,
                                  sim.total_commission + sim.total_spread_cost))

    def _episode_stats(self) -> EpisodeStats:
        pnl = [t.pnl_usd for t in self.sim.closed]
        return EpisodeStats(
            return_pct=PERCENT_PER_UNIT * (self.sim.equity / self.start_equity - 1),
            trades=self.sim.trade_counter,
            win_rate=float(np.mean(np.asarray(pnl) > 0)) if pnl else float("nan"),
            costs_pct=PERCENT_PER_UNIT * (self.sim.total_commission + self.sim.total_spread_cost)
            / self.start_equity,
            bars=self.sim.bar - self._start,
        )

    # ------------------------------------------------------------------ ledgers
    def equity_curve(self) -> pd.DataFrame:
        """Equity, cash, margin, spot, the action taken, open positions, position greeks, ATM
        implied vol and cumulative costs, one row per bar of the episode."""
        dates, spot, atm_iv, names = self._dates, self._spot, self._atm_iv, self.action_names
        rows = [(dates[i], equity, cash, margin, spot[i], names[action], n_open, *greeks,
                 atm_iv[i], costs)
                for i, equity, cash, margin, action, n_open, greeks, costs in self._equity_rows]
        return pd.DataFrame(rows, columns=[
            "date", "equity_usd", "cash_usd", "margin_used_usd", "spot", "action",
            "open_positions", "delta_shares", "gamma_shares_per_usd", "theta_usd_per_day",
            "vega_usd_per_vol_point", "atm_iv", "costs_usd"]).set_index("date")

    def trade_ledger(self) -> pd.DataFrame:
        """Every trade of the episode (closed, expired, and those still open at the end)."""
        return trade_ledger(self.sim, self.panel)

    def quote_grid(self, bar: int, expiries) -> pd.DataFrame:
        """Quotes at ``bar`` of every listed strike inside the moneyness band, both rights, for
        ``expiries`` (those listed at the bar; others are skipped): one row per contract with
        ``expiry, t_years, option_type, strike, bid_per_share, ask_per_share, mid_per_share,
        valid`` (:func:`envs.portfolio.quote_is_valid`). ``attrs`` hold the bar's ``spot``,
        ``rate`` and ``dividend_yield``. For audits of the prices an order could reach."""
        bars = self.quotes.bars
        spot = float(bars.spot[bar])
        listed = set(self.quotes.expiries(bar))
        rows = []
        for expiry in sorted(pd.Timestamp(e) for e in expiries):
            if expiry not in listed:
                continue
            t_years = max(expiry_close_ns(expiry) - int(bars.close_ns[bar]), 0) / (
                DAYS_PER_YEAR * NS_PER_DAY)
            for option_type in ("call", "put"):
                strikes = self.quotes.strikes(bar, expiry, option_type)
                strikes = strikes[within_band(strikes, spot,
                                              self.cfg.strategies.max_abs_log_moneyness)]
                if not len(strikes):
                    continue
                q = self.quotes.quote(bar, option_type, strikes, expiry)
                rows.append(pd.DataFrame({
                    "expiry": expiry, "t_years": t_years, "option_type": option_type,
                    "strike": strikes, "bid_per_share": q.bid_per_share,
                    "ask_per_share": q.ask_per_share, "mid_per_share": q.mid_per_share,
                    "valid": quote_is_valid(q.bid_per_share, q.ask_per_share, q.from_smile)}))
        grid = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=[
            "expiry", "t_years", "option_type", "strike", "bid_per_share", "ask_per_share",
            "mid_per_share", "valid"])
        grid.attrs = {"spot": spot, "rate": float(bars.rate[bar]),
                      "dividend_yield": float(bars.dividend_yield)}
        return grid

    def position_summary(self) -> dict | None:
        """The first open position in words, for rule-based policies and logs."""
        if not self.sim.positions:
            return None
        view = self.sim.position_view(self.sim.positions[0])
        return {"strategy": view.strategy, "dte_days": round(view.dte_days),
                "pnl_if_closed_usd": view.pnl_if_closed_usd,
                "max_profit_usd": view.max_profit_usd, "max_loss_usd": view.max_loss_usd}


def _as_int(value, what: str) -> int:
    """An integer action or option; bools, floats, strings and None are refused."""
    kind = type(value)
    if kind is int or kind is np.int64:
        return int(value)
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        if isinstance(value, np.ndarray) and value.shape == () and np.issubdtype(
                value.dtype, np.integer):
            return int(value)
        raise TypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    return int(value)
