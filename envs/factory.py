"""Build the environment from an experiment config: data, forecasts, panel, env.

The functions here take an already-loaded ``config.ExperimentConfig`` (``envs`` never imports
``config``, which imports every stage's config section); a YAML path or dict is resolved by the
CLI layer (``config.load_config``; ``cli.gym`` for ``gym.make(..., config=PATH)``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

import data
import forecasters
from envs.config import pricing_dividend_yield
from envs.market import build_market_panel
from envs.spy_options_env import SpyOptionsEnv
from envs.table_cache import TableCache, market_panel_key
from forecasters.panel import ForecastPanel

if TYPE_CHECKING:
    from config import ExperimentConfig

__all__ = ["EnvInputs", "load_env_inputs", "make_env", "make_registered"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvInputs:
    """What every environment of one experiment shares: market frame, features, forecasts."""

    frame: pd.DataFrame
    features: pd.DataFrame
    forecasts: ForecastPanel  # the ensemble's out-of-sample forecasts, typed
    panel_long: pd.DataFrame  # every model's out-of-sample forecasts (long format, as stored)


def load_env_inputs(cfg: ExperimentConfig, progress: bool = True, forecast_model: str = "ensemble",
                    panel_long: pd.DataFrame | None = None,
                    frame: pd.DataFrame | None = None) -> EnvInputs:
    """Load the market frame, its features and the out-of-sample forecast panel.

    The panel is ``panel_long`` when given (e.g. the one a run directory stored), else the
    cached panel for this config and data (computed on a miss). ``frame`` is the config's
    market frame when the caller loaded it already (``data.load_market`` of ``cfg.data``).
    """
    if frame is None:
        frame = data.load_market(cfg.data.source, **cfg.data.load_options())
    for name in ("train", "valid", "test"):
        seg = cfg.segments.get(name)
        if pd.Timestamp(seg.start) > frame.index[-1] or pd.Timestamp(seg.end) < frame.index[0]:
            raise ValueError(
                f"segments.{name} {seg.start}..{seg.end} lies outside the data "
                f"{frame.index[0].date()}..{frame.index[-1].date()}")
    features = data.build_features(frame)
    if panel_long is None:
        log.info("forecast panel: loading or computing (cache %s)", cfg.forecast.cache_dir)
        panel = forecasters.load_or_make_panel(frame, cfg.forecast, progress=progress)
    else:
        panel = panel_long
    return EnvInputs(frame, features, ForecastPanel.from_long(panel, forecast_model), panel)


def make_env(cfg: ExperimentConfig, segment: str = "train", mode: str | None = None,
             inputs: EnvInputs | None = None, quote_source=None, info_level: str | None = None,
             start=None, end=None, share_with: SpyOptionsEnv | None = None,
             last_bar_tradable: bool = False) -> SpyOptionsEnv:
    """``SpyOptionsEnv`` on one date segment of the experiment config ``cfg``.

    ``mode`` defaults to ``"train"`` (random starts, fixed length) on the train segment and to
    ``"eval"`` (the whole segment, deterministic) on the others. ``start``/``end`` override the
    segment's dates. ``quote_source`` is a callable ``(MarketBars) -> QuoteSource`` (default: the
    model quotes of the config's surface and costs). ``share_with`` (an env made by this function
    with the same arguments) shares its panel and per-bar structure tables, so that vectorised
    envs build each bar's structures once. This is also the entry point of
    ``gym.make("SpyOptions-v1", config=..., segment=...)``. ``last_bar_tradable`` (live
    trading) lets the segment be one bar and allows opening on its last bar.

    The segment's market panel and per-bar structure tables are loaded from the table cache
    ``env.table_cache_dir`` when an earlier process built them for the same inputs, and written
    there when built (:mod:`envs.table_cache`; ``null`` turns it off; not used with
    ``last_bar_tradable``, whose data gains a bar at every call).
    """
    mode = mode or ("train" if segment == "train" else "eval")
    if share_with is not None:
        return SpyOptionsEnv(share_with.panel, cfg.env, cfg.options.surface, cfg.options.costs,
                             cfg.options.margin, mode=mode, info_level=info_level,
                             unit_tables=share_with.tables, exercise=cfg.options.exercise)
    inputs = inputs or load_env_inputs(cfg)
    seg = cfg.segments.get(segment)
    # Live trading's newest bar is new at every call: nothing there would be read again.
    cache = (TableCache(cfg.env.table_cache_dir)
             if cfg.env.table_cache_dir and not last_bar_tradable else None)
    args = (inputs.frame, inputs.features, inputs.forecasts, start or seg.start,
            end or seg.end, cfg.options.surface, cfg.env.underlying_price_scale,
            1 if last_bar_tradable else 2)
    if cache is None:
        panel = build_market_panel(*args)
    else:
        panel = cache.market_panel(market_panel_key(*args), lambda: build_market_panel(*args))
    source = None
    if quote_source is not None:
        source = quote_source(panel.market_bars(pricing_dividend_yield(cfg.env,
                                                                       cfg.options.surface)))
    return SpyOptionsEnv(panel, cfg.env, cfg.options.surface, cfg.options.costs,
                         cfg.options.margin, mode=mode, quote_source=source,
                         info_level=info_level, last_bar_tradable=last_bar_tradable,
                         table_cache=cache, exercise=cfg.options.exercise)


def make_registered(config: ExperimentConfig | None = None, segment: str = "train", *,
                    panel=None, **kwargs):
    """What ``gym.make("SpyOptions-v1", ...)`` builds (through ``cli.gym.make_registered``, which
    resolves a YAML path or dict first): ``config=`` and ``segment=`` build the environment as
    :func:`make_env` does; ``panel=`` (a prepared :class:`envs.market.MarketPanel`) plus the
    ``SpyOptionsEnv`` keyword arguments build it directly."""
    if panel is not None:
        return SpyOptionsEnv(panel, **kwargs)
    if config is None:
        raise TypeError("gym.make('SpyOptions-v1') needs config=PATH (and segment=...) or panel=")
    return make_env(config, segment, **kwargs)
