"""The environment's inputs built from the embedded data, without a forecaster: its causal
features and a causal forecast panel (quantiles of a normal with the day's implied vol). Shared
by test_envs.py and test_structures.py; each is computed once per process (``functools.cache``)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
from scipy.stats import norm

import data
from envs import build_market_panel
from forecasters.panel import ForecastPanel
from options.surface import SurfaceConfig

SCALE = 0.1  # S&P 500 index -> SPY-like underlying
SURFACE = SurfaceConfig()
HORIZONS = (1, 2, 3, 4, 5)
LEVELS = (0.05, 0.125, 0.5, 0.875, 0.95)


def forecast_panel(frame: pd.DataFrame) -> pd.DataFrame:
    """Causal wide forecast panel: normal quantiles scaled by the day's implied vol."""
    iv = frame["iv_index"].ffill()
    columns = {
        f"h{h}_q{level:.3f}": norm.ppf(level) * iv * math.sqrt(h / 252)
        for h in HORIZONS
        for level in LEVELS
    }
    return pd.DataFrame(columns, index=frame.index).dropna()


def typed(wide: pd.DataFrame) -> ForecastPanel:
    """The wide test panel as the typed object the environment takes."""
    values = np.stack([np.column_stack([wide[f"h{h}_q{level:.3f}"] for level in LEVELS])
                       for h in HORIZONS], axis=1)
    return ForecastPanel(pd.DatetimeIndex(wide.index), HORIZONS, LEVELS, values)


@cache
def embedded_inputs():
    frame = data.load_market("embedded")
    return frame, data.build_features(frame), forecast_panel(frame)


@cache
def embedded_panel(start: str, end: str):
    frame, features, forecasts = embedded_inputs()
    return build_market_panel(frame, features, typed(forecasts), start, end, SURFACE,
                              price_scale=SCALE)
