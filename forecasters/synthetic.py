"""Forecast panels for the synthetic markets of :mod:`data.synthetic` (no model is fitted).

Each panel is Gaussian in the log return: for horizon ``h`` bars the quantile ``q`` is
``median_h + z_q * sd_h`` with ``sd_h = next_bar_vol * sqrt(h / 252)`` (the true conditional
volatility known at the close of t; for ``vrp`` GARCH's mean reversion over the horizon is left
out) and ``median_h = -sd_h^2 / 2`` (the martingale drift), plus for the ``signal`` market the
planted direction's conditional mean:

    E[log(S[t+h]/S[t]) | signal] = signal * (2 p - 1) * sqrt(2 / pi) * sd_H * min(h, H) / H

(``p`` the hit rate, ``H`` the signal's horizon; a Gaussian H-bar return's mean absolute value
is ``sqrt(2/pi) sd_H``, and shorter horizons carry their share of it). The ``vrp`` and
``no_edge`` panels carry no direction: they are honest, uninformative forecasts of the spread.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from common.lazy import lazy_module
from data.calendar import TRADING_DAYS_PER_YEAR
from data.synthetic import SyntheticMarket
from forecasters.base import quantile_column
from forecasters.panel import ForecastPanel

stats = lazy_module("scipy.stats")  # 0.5 s to import; only synthetic panels use it

__all__ = ["SYNTHETIC_MODEL", "synthetic_forecast_panel"]

SYNTHETIC_MODEL = "ensemble"  # the model name the environment reads


def synthetic_forecast_panel(market: SyntheticMarket, horizons, quantile_levels
                             ) -> tuple[ForecastPanel, pd.DataFrame]:
    """The typed panel and its long form (``date, model, horizon, q<level>...``)."""
    horizons = tuple(int(h) for h in horizons)
    levels = tuple(float(q) for q in quantile_levels)
    spec = market.spec
    big_h = spec.signal_horizon_bars
    z = stats.norm.ppf(np.asarray(levels))
    n = len(market.frame)
    values = np.empty((n, len(horizons), len(levels)))
    signal_mean_sd = (2 * spec.signal_hit_rate - 1) * math.sqrt(2 / math.pi)
    sd_big = market.next_bar_vol_annualized * math.sqrt(big_h / TRADING_DAYS_PER_YEAR)
    for j, h in enumerate(horizons):
        sd_h = market.next_bar_vol_annualized * math.sqrt(h / TRADING_DAYS_PER_YEAR)
        median = -0.5 * sd_h ** 2 + market.signal * signal_mean_sd * sd_big * min(h, big_h) / big_h
        values[:, j, :] = median[:, None] + z[None, :] * sd_h[:, None]
    dates = pd.DatetimeIndex(market.frame.index, name="date")
    panel = ForecastPanel(dates, horizons, levels, values, SYNTHETIC_MODEL)
    long = pd.DataFrame({
        "date": np.repeat(dates.to_numpy(), len(horizons)),
        "model": SYNTHETIC_MODEL,
        "horizon": np.tile(np.asarray(horizons, dtype="int64"), n),
        **{quantile_column(q): values[:, :, k].reshape(-1) for k, q in enumerate(levels)},
    })
    return panel, long
