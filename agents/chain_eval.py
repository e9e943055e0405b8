"""Evaluation on real option quotes: the same policies on a chain's sessions, chain and model.

``evaluate.py --run RUN --quotes chain --chain FILE`` runs the trained agent and every baseline
over the sessions of an imported chain twice, through two environments that differ only in their
quote source: ``chain`` (fills at the real bid/ask, marks at real mids, listed strikes and
expiries; a held contract with no quote that day is marked from the day's fitted smile) and
``model`` (the run's surface and cost model on the same bars). The difference between the two
columns is what the model's prices add or hide.

Bars. Where the run's market frame covers every chain session (dates inside the embedded data),
it is the frame, with its features and the run's out-of-sample forecasts. Otherwise the bars are
made from the chain itself (close = the chain's underlying price, ``iv_index`` = the chain's own
CBOE-method index), which carries no features and no forecasts: policies that read the
observation (PPO, ``forecast_rule``) are then listed under ``skipped`` with the reason, never run
on filler values. The chain's underlying price must agree with the frame's on shared dates.

Scale. An index chain (SPX) trades at the index level, ten times the SPY-like underlying a run on
the embedded S&P 500 trades (``env.underlying_price_scale = 0.1``). On the chain, the environment
trades at the chain's level; the starting equity, the strike spacing and the wing width are
multiplied by the same factor, so position sizes relative to the account are those of the run.
The model's strike grid uses the chain's own strike spacing near the money.

Rate and dividend yield: where the frame has no rate, the box-spread rate of the chain's first
session; the dividend yield, from put-call parity on the first session. Both are held constant
over the sessions, so no price uses a quote from a later session.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from data import build_features
from envs.market import build_market_panel
from envs.observations import MARKET_FEATURES
from envs.spy_options_env import SpyOptionsEnv
from forecasters.panel import ForecastPanel
from options.chain_io import one_root_per_contract
from options.chain_market import ChainMarket, prepare_chain_market
from options.quotes_chain import ChainQuoteSource, chain_market_frame
from options.smile import chain_dividend_yield, implied_forwards, parity_rate

__all__ = ["OBSERVATION_POLICIES", "ChainSetup", "chain_env_config", "chain_report",
           "prepare_chain_setup"]

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


def _inputs_on(dates: pd.DatetimeIndex, frame, forecasts: ForecastPanel | None):
    """Features and forecasts on ``dates``, and why they are incomplete (or None)."""
    features = build_features(frame).reindex(dates)
    if forecasts is None:
        return features, None, "the bars come from the chain: no features or forecasts exist"
    fc = forecasts.reindex(dates)
    missing = [] if fc.complete().all() else ["out-of-sample forecasts"]
    if features[[c for c, _ in MARKET_FEATURES]].isna().any().any():
        missing.append("features")
    reason = None
    if missing:
        reason = (f"the run has no {' and '.join(missing)} for every chain session "
                  f"{dates[0].date()}..{dates[-1].date()} (forecasts cover "
                  f"{forecasts.dates.min().date()}..{forecasts.dates.max().date()})")
    return features, fc, reason


def prepare_chain_setup(cfg, run_frame: pd.DataFrame, run_forecasts: ForecastPanel,
                        chain: pd.DataFrame, *, exclude_zero_bid: bool = True,
                        min_volume: int = 0) -> ChainSetup:
    """Bars, inputs and the two environments for ``chain``'s sessions."""
    dates = pd.DatetimeIndex(sorted(chain["quote_date"].unique()))
    covered = dates.isin(run_frame.index).all()
    # Rate (where the frame has none) and dividend yield from the first session's quotes only,
    # then held constant: a whole-period estimate would price day one with later quotes.
    first_day = one_root_per_contract(chain[chain["quote_date"] == dates[0]])
    market = prepare_chain_market(chain, frame=run_frame if covered else None,
                                  rate=parity_rate(first_day))
    first_q = chain_dividend_yield(implied_forwards(first_day, market.rate))
    market = replace(market, dividend_yield=0.0 if first_q is None else first_q)
    if covered:
        frame, frame_source = run_frame, "run"
        features, fc, missing = _inputs_on(dates, frame, run_forecasts)
    else:
        frame = chain_market_frame(market.chain, market.rate)
        frame["iv_index"] = market.index_by_date.reindex(frame.index).to_numpy()
        frame_source = "chain"
        features, fc, missing = _inputs_on(dates, frame, None)
    if fc is None or missing:  # placeholders for policies that do not read the observation
        zeros = np.zeros((len(dates), len(run_forecasts.horizons),
                          len(run_forecasts.quantile_levels)))
        fc = ForecastPanel(dates, run_forecasts.horizons, run_forecasts.quantile_levels, zeros)
        features = features.fillna(0.0)
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
                              exclude_zero_bid=exclude_zero_bid, min_volume=min_volume)
    source.check_underlying()
    model_env = SpyOptionsEnv(panel, env_cfg, surface, cfg.options.costs,
                              cfg.options.margin, mode="eval", info_level="full")
    chain_env = SpyOptionsEnv(panel, env_cfg, surface, cfg.options.costs,
                              cfg.options.margin, mode="eval", quote_source=source,
                              info_level="full")
    return ChainSetup(market, frame, frame_source, missing, env_cfg, factor, model_env,
                      chain_env, source)


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
    lines += ["", "Smile marks: contracts held on a session with no quote of their own, marked "
              "from that session's fitted smile.", ""]
    return "\n".join(lines)
