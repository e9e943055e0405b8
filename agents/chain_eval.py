"""Evaluation on real option quotes: the same policies on a chain's sessions, chain and model.

``evaluate.py --run RUN --quotes chain --chain FILE`` runs the trained agent and every baseline
over the sessions of an imported chain twice, through two environments that differ only in their
quote source: ``chain`` (fills at the real bid/ask, marks at real mids, listed strikes and
expiries; a held contract with no quote that day is marked from the day's fitted smile) and
``model`` (the run's surface and cost model on the same bars). The difference between the two
columns is what the model's prices add or hide.

Bars. Where the run's market frame covers every chain session (dates inside the embedded data),
it is the frame, with its features and the run's out-of-sample forecasts. A session without a
forecast or a feature is a hold for the policies that read the observation (PPO,
``forecast_rule``: :class:`HoldOnBars`), listed in ``chain_run.json`` and the report, never the
end of the run. Otherwise the bars are made from the chain itself (close = the chain's underlying
price, ``iv_index`` = the chain's own CBOE-method index, where a date has none the previous
session's), which carries no features and no forecasts: policies that read the observation are
then listed under ``skipped`` with the reason, never run on filler values. The chain's
underlying price must agree with the frame's on shared dates.

Scale. An index chain (SPX) trades at the index level, ten times the SPY-like underlying a run on
the embedded S&P 500 trades (``env.underlying_price_scale = 0.1``). On the chain, the environment
trades at the chain's level; the starting equity, the strike spacing, the wing width, and the
cost model's spread floor and tick (:func:`chain_cost_config`) are multiplied by the same
factor, so position sizes relative to the account and model costs are those of the run.
The model's strike grid uses the chain's own strike spacing near the money.

Rate and dividend yield: where the frame has no rate, the box-spread rate of the chain's first
session, else the frame's last rate before it (logged); the dividend yield, from put-call parity
on the first session, else the run's configured ``env.dividend_yield`` (logged). Both are held
constant over the sessions, so no price uses a quote from a later session.

Dates without their own smile or chain index (:mod:`options.chain_market`), the chain reader's
set-aside rows (:class:`options.chain_io.ChainReadReport`) and the hold bars are all in
:func:`chain_details`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from data import build_features
from envs.actions import ACTION_HOLD
from envs.market import build_market_panel
from envs.observations import MARKET_FEATURES
from envs.spy_options_env import SpyOptionsEnv
from envs.step_info import StepInfo
from forecasters.panel import ForecastPanel
from options.chain_io import chain_read_report, one_root_per_contract
from options.chain_market import ChainMarket, prepare_chain_market
from options.quotes_chain import ChainQuoteSource, chain_market_frame
from options.smile import chain_dividend_yield, implied_forwards, parity_rate

__all__ = ["OBSERVATION_POLICIES", "ChainSetup", "HoldOnBars", "chain_cost_config",
           "chain_details", "chain_env_config", "chain_report", "prepare_chain_setup"]

log = logging.getLogger(__name__)

OBSERVATION_POLICIES = ("forecast_rule",)
"""Baselines that read forecasts or features from the observation (PPO reads it all)."""
_NEAR_MONEY = 0.05


@dataclass
class ChainSetup:
    """Everything the two environments over a chain's sessions share."""

    market: ChainMarket
    frame: pd.DataFrame
    frame_source: str  # "run" or "chain"
    missing_inputs: str | None  # why observation-reading policies cannot run, or None
    env_cfg: object  # the run's EnvConfig at the chain's level
    level_factor: float
    model_env: SpyOptionsEnv
    chain_env: SpyOptionsEnv
    chain_source: ChainQuoteSource
    hold_dates: dict = field(default_factory=dict)  # date -> why observation readers hold
    notes: list = field(default_factory=list)       # rate / dividend fallbacks, in words

    def hold_on_missing(self, policy):
        """``policy`` holding on the bars without forecasts or features (as is if none)."""
        return HoldOnBars(policy, self.hold_dates) if self.hold_dates else policy

    def hold_if_reads_observation(self, name: str, policy):
        """A baseline, holding on those bars where it reads the observation."""
        return self.hold_on_missing(policy) if name in OBSERVATION_POLICIES else policy


class HoldOnBars:
    """A policy that holds on the given dates and otherwise acts as ``policy`` does (the
    environment's ``info`` must carry ``date``: ``info_level="full"``)."""

    def __init__(self, policy, dates):
        self.policy = policy
        self.name = getattr(policy, "name", type(policy).__name__)
        self.dates = frozenset(pd.Timestamp(d) for d in dates)
        self.held = 0

    def act(self, observation, info, action_mask):
        if pd.Timestamp(StepInfo.of(info).date) in self.dates:
            self.held += 1
            skip_bar = getattr(self.policy, "skip_bar", None)  # PPO's decision clock moves on
            if skip_bar is not None:
                skip_bar()
            return ACTION_HOLD
        return self.policy.act(observation, info, action_mask)

    def reset(self, seed=None):
        self.held = 0
        self.policy.reset(seed)

    def __getattr__(self, name):
        if name == "policy":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.policy, name)


def _strike_spacing(chain: pd.DataFrame) -> float:
    """The chain's typical strike interval near the money on its first session."""
    first = chain[chain["quote_date"] == chain["quote_date"].min()]
    spot = float(first["underlying_price"].iloc[0])
    near = first[(first["strike"] / spot - 1.0).abs() <= _NEAR_MONEY]
    strikes = np.unique(near["strike"].to_numpy(float))
    steps = np.diff(strikes)
    if len(steps) == 0:
        raise ValueError("the chain lists fewer than two strikes near the money on "
                         f"{first['quote_date'].iloc[0].date()}")
    return float(np.median(steps))


def chain_env_config(env_cfg, level_factor: float, strike_spacing: float):
    """The run's environment config at the chain's price level (see the module docstring)."""
    strategies = env_cfg.strategies.model_copy(update={
        "strike_spacing": strike_spacing,
        "wing_width_strike_units": max(env_cfg.strategies.wing_width_strike_units * level_factor,
                                       strike_spacing)})
    return env_cfg.model_copy(update={
        "underlying_price_scale": 1.0,
        "starting_equity_usd": env_cfg.starting_equity_usd * level_factor,
        "strategies": strategies})


def chain_cost_config(costs, level_factor: float):
    """The run's cost model at the chain's price level (``level_factor``: 10 for options on
    the S&P 500 index, whose model quotes are SPY-scale quotes times 10; 1 otherwise): the
    spread floor and the tick scale with it; the fraction of premium, the shape and the
    commission per contract do not."""
    return costs.model_copy(update={
        "spread_floor_per_share": costs.spread_floor_per_share * level_factor,
        "tick_size": costs.tick_size * level_factor})


def _inputs_on(dates: pd.DatetimeIndex, frame, forecasts: ForecastPanel | None):
    """Features and forecasts on ``dates`` and ``{date: what is missing}``."""
    features = build_features(frame).reindex(dates)
    if forecasts is None:
        return features, None, dict.fromkeys(dates, "the bars come from the chain: no features "
                                                    "or forecasts exist")
    fc = forecasts.reindex(dates)
    no_fc = ~fc.complete()
    no_feat = features[[c for c, _ in MARKET_FEATURES]].isna().any(axis=1).to_numpy()
    missing = {}
    for i, d in enumerate(dates):
        what = [w for w, bad in (("forecast", no_fc[i]), ("features", no_feat[i])) if bad]
        if what:
            missing[d] = f"no {' and '.join(what)} for this session"
    return features, fc, missing


def _placeholders(dates, fc: ForecastPanel | None, features: pd.DataFrame,
                  run_forecasts: ForecastPanel) -> tuple[ForecastPanel, pd.DataFrame]:
    """Zeros where forecasts or features are missing (only for policies that do not read
    them, or on bars where those that do hold)."""
    shape = (len(dates), len(run_forecasts.horizons), len(run_forecasts.quantile_levels))
    values = np.zeros(shape) if fc is None else np.nan_to_num(fc.values, nan=0.0)
    panel = ForecastPanel(dates, run_forecasts.horizons, run_forecasts.quantile_levels, values)
    return panel, features.fillna(0.0)


def _first_rate(run_frame: pd.DataFrame, first_day: pd.DataFrame, start: pd.Timestamp,
                notes: list) -> float | None:
    """Box-spread rate of the first session, else the frame's last rate before it."""
    rate = parity_rate(first_day)
    if rate is not None or "rate" not in run_frame.columns:
        return rate
    before = run_frame["rate"].loc[:start - pd.Timedelta(days=1)].dropna()
    if len(before):
        notes.append(f"rate: the first session has too few put-call pairs at 30+ days; the "
                     f"market frame's last rate before it ({before.index[-1].date()}: "
                     f"{float(before.iloc[-1]):.4f}) is used")
        log.warning("%s", notes[-1])
        return float(before.iloc[-1])
    return None


def prepare_chain_setup(cfg, run_frame: pd.DataFrame, run_forecasts: ForecastPanel,
                        chain: pd.DataFrame, *, exclude_zero_bid: bool = True,
                        min_volume: int = 0) -> ChainSetup:
    """Bars, inputs and the two environments for ``chain``'s sessions."""
    dates = pd.DatetimeIndex(sorted(chain["quote_date"].unique()))
    covered = dates.isin(run_frame.index).all()
    notes: list[str] = []
    # Rate (where the frame has none) and dividend yield from the first session's quotes only,
    # then held constant: a whole-period estimate would price day one with later quotes.
    first_day = one_root_per_contract(chain[chain["quote_date"] == dates[0]])
    market = prepare_chain_market(chain, frame=run_frame if covered else None,
                                  rate=_first_rate(run_frame, first_day, dates[0], notes),
                                  default_dividend_yield=cfg.env.dividend_yield,
                                  exercise=cfg.options.exercise)
    first_q = chain_dividend_yield(implied_forwards(first_day, market.rate))
    if first_q is None:
        first_q = cfg.env.dividend_yield
        notes.append(f"dividend yield: the first session has no expiry of 30+ days with a "
                     f"put-call pair; the configured env.dividend_yield {first_q:.4f} is used")
        log.warning("%s", notes[-1])
    market = replace(market, dividend_yield=float(first_q))
    if covered:
        frame, frame_source = run_frame, "run"
        features, fc, hold = _inputs_on(dates, frame, run_forecasts)
    else:
        frame = chain_market_frame(market.chain, market.rate)
        frame["iv_index"] = market.index_by_date.reindex(frame.index).to_numpy()
        frame_source = "chain"
        features, fc, hold = _inputs_on(dates, frame, None)
    missing = None
    if len(hold) == len(dates):
        missing = next(iter(hold.values())) if fc is None else (
            f"the run has no forecasts or features on any chain session {dates[0].date()}.."
            f"{dates[-1].date()} (forecasts cover {run_forecasts.dates.min().date()}.."
            f"{run_forecasts.dates.max().date()})")
    elif hold:
        log.warning("%d chain session(s) without forecasts or features: observation-reading "
                    "policies hold there (%s)", len(hold),
                    ", ".join(str(d.date()) for d in list(hold)[:10]))
    fc, features = _placeholders(dates, fc, features, run_forecasts)
    factor = 1.0 / cfg.env.underlying_price_scale
    env_cfg = chain_env_config(cfg.env, factor, _strike_spacing(market.chain))
    env_cfg = env_cfg.model_copy(update={"dividend_yield": market.dividend_yield})
    # Both sources price with the chain's own put-call-parity dividend yield on its sessions.
    surface = cfg.options.surface.model_copy(
        update={"dividend_yield_annualized": market.dividend_yield})
    panel = build_market_panel(frame, features, fc, dates[0], dates[-1], surface,
                               price_scale=1.0)
    if len(panel) != len(dates):
        raise ValueError(f"{len(dates) - len(panel)} chain session(s) have no tradable bar")
    bars = panel.market_bars(env_cfg.dividend_yield)
    source = ChainQuoteSource(bars, market.chain, market.fits or None,
                              exclude_zero_bid=exclude_zero_bid, min_volume=min_volume,
                              exercise=cfg.options.exercise)
    source.check_underlying()
    costs = chain_cost_config(cfg.options.costs, 1.0 / market.model_scale)
    model_env = SpyOptionsEnv(panel, env_cfg, surface, costs,
                              cfg.options.margin, mode="eval", info_level="full",
                              exercise=cfg.options.exercise)
    chain_env = SpyOptionsEnv(panel, env_cfg, surface, costs,
                              cfg.options.margin, mode="eval", quote_source=source,
                              info_level="full", exercise=cfg.options.exercise)
    return ChainSetup(market, frame, frame_source, missing, env_cfg, factor, model_env,
                      chain_env, source, hold_dates={} if missing else hold, notes=notes)


def chain_details(setup: ChainSetup, chain: pd.DataFrame) -> dict:
    """What the run set aside or filled in, for ``chain_run.json`` and the report: the
    reader's set-aside rows per reason, dates without their own smile or chain index, the
    hold bars of observation-reading policies, and rate/dividend fallbacks."""
    report = chain_read_report(chain)
    m = setup.market
    smile = {**m.smile_fallbacks, **setup.chain_source.smile_fallbacks}
    return {
        "read_report": None if report is None else report.to_dict(),
        "index_source_counts": {k: int(v) for k, v in m.index_source.value_counts().items()},
        "index_fallback_dates": {str(d.date()): f"{m.index_source[d]}"
                                 + (f" ({m.index_fallbacks[d]})" if d in m.index_fallbacks
                                    else "")
                                 for d in m.index_source.index
                                 if m.index_source[d] not in ("frame", "chain_vix")},
        "smile_fallback_dates": {str(pd.Timestamp(d).date()): why
                                 for d, why in sorted(smile.items())},
        "hold_bars": {str(d.date()): why for d, why in setup.hold_dates.items()},
        "dividend_yield_source": m.dividend_yield_source,
        "notes": list(setup.notes),
    }


_REPORT_METRICS = (("total_return_pct", "return %", "{:.2f}"), ("sharpe", "Sharpe", "{:.2f}"),
                   ("max_drawdown_pct", "max DD %", "{:.2f}"), ("trades", "trades", "{:.0f}"),
                   ("win_rate", "win rate", "{:.2f}"), ("total_costs_usd", "costs $", "{:,.0f}"))


def _fmt(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return fmt.format(value)


def chain_report(name: str, metrics: dict, details: dict) -> str:
    """Markdown: each policy on real quotes next to model quotes over the same sessions."""
    lines = [f"# {name}: real quotes against model quotes", "",
             f"Sessions {details['start']}..{details['end']} ({details['sessions']} bars, bars "
             f"from the {details['frame']} frame), chain file(s): "
             f"{', '.join(details['chain_files'])}. Prices at {details['level_factor']:g} x the "
             f"run's underlying: starting equity {details['starting_equity_usd']:,.0f} USD, "
             f"strike spacing {details['strike_spacing']:g}, wings {details['wing_width']:g}; "
             f"dividend yield {details['dividend_yield']:.4f} (put-call parity on the first session), rate "
             f"{details['rate']:.4f}.", "",
             "| policy | " + " | ".join(f"{label} chain | {label} model"
                                      for _, label, _ in _REPORT_METRICS) + " | smile marks |",
             "|---|" + "---:|" * (2 * len(_REPORT_METRICS) + 1)]
    for policy, by_kind in metrics.items():
        if policy == "skipped":
            continue
        cells = []
        for key, _, fmt in _REPORT_METRICS:
            cells += [_fmt(by_kind["chain"].get(key), fmt), _fmt(by_kind["model"].get(key), fmt)]
        lines.append(f"| {policy} | " + " | ".join(cells)
                     + f" | {details['smile_marks'].get(policy, 0)} |")
    if metrics.get("skipped"):
        lines += ["", "Skipped:", ""]
        lines += [f"- `{policy}`: {why}" for policy, why in metrics["skipped"].items()]
    lines += ["", "Smile marks: contracts on a session with no valid two-sided quote of their "
              "own (none, zero, one-sided or crossed), priced from that session's fitted smile "
              "widened by the median relative spread (fallback prices, never an opening fill).",
              ""]
    lines += _fallback_lines(details)
    return "\n".join(lines)


def _fallback_lines(details: dict) -> list[str]:
    lines = []
    report = details.get("read_report")
    if report:
        parts = ", ".join(f"{k} {v}" for k, v in report["set_aside"].items())
        lines += [f"Chain rows read {report['n_rows_read']}, kept {report['n_rows_kept']}; set "
                  f"aside as fill prices: {parts}"
                  + (f" (non-session dates {', '.join(report['non_session_dates'])})"
                     if report["non_session_dates"] else "") + ".", ""]
    for key, title in (("hold_bars", "Sessions where observation-reading policies hold"),
                       ("smile_fallback_dates", "Sessions without their own smile"),
                       ("index_fallback_dates", "Sessions without their own volatility index")):
        items = details.get(key) or {}
        if items:
            lines += [f"{title} ({len(items)}):", ""]
            lines += [f"- {d}: {why}" for d, why in items.items()] + [""]
    for note in details.get("notes") or []:
        lines += [f"Note: {note}", ""]
    return lines
