"""Per-date market arrays precomputed once per environment (never per step).

Everything in a row ``i`` is known at the close of ``dates[i]``: spot, the at-the-money implied
volatility (``options.surface.atm_iv_series``, causal), the rate, causal features and the
out-of-sample forecast made after that close. The observation's market block is assembled here as
one float32 matrix so that ``step`` copies a row instead of recomputing it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data import bars_per_year
from options.calendar import listed_expiries, timestamp_close_ns
from options.surface import SurfaceConfig, atm_iv_series

__all__ = ["MarketPanel", "build_market_panel", "parse_forecast_columns"]

_FORECAST_COLUMN = re.compile(r"^h(\d+)_q(\d\.\d+)$")
Z_875 = 1.1503493803760079  # standard normal 0.875 quantile: half-width of a 75% interval

# (observation name, feature column, scale): value / scale is what the agent sees.
MARKET_FEATURES = (
    ("ret_log_1b", "ret_log_1b", 0.01),
    ("ret_log_5b", "ret_log_5b", 0.02),
    ("ret_log_20b", "ret_log_20b", 0.05),
    ("rv_ann_20b", "rv_ann_20b", 0.20),
    ("rsi_14b", "rsi_14b", 100.0),
    ("adx_14b", "adx_14b", 100.0),
    ("macd_hist_pct", "macd_hist_pct", 1.0),
    ("bb_pctb_20b", "bb_pctb_20b", 1.0),
)


def parse_forecast_columns(columns) -> tuple[list[int], list[float]]:
    """Horizons and quantile levels of a wide forecast panel (columns ``h{h}_q{level:.3f}``)."""
    horizons, levels = set(), set()
    for column in columns:
        match = _FORECAST_COLUMN.match(str(column))
        if match is None:
            raise ValueError(f"forecast column '{column}' is not of the form h<bars>_q<level>")
        horizons.add(int(match.group(1)))
        levels.add(float(match.group(2)))
    return sorted(horizons), sorted(levels)


@dataclass(frozen=True)
class MarketPanel:
    """Arrays over the tradable dates of one segment (row i = the close of dates[i])."""

    dates: pd.DatetimeIndex
    close_ns: np.ndarray  # int64 ns of each bar's decision time (a daily bar = its 16:00 close)
    spot: np.ndarray
    atm_iv: np.ndarray
    rate: np.ndarray
    market_obs: np.ndarray  # float32 [n_dates, n_market_obs]
    market_obs_names: tuple[str, ...]
    forecast_median: np.ndarray  # [n_dates, n_horizons] median log return
    forecast_width_75: np.ndarray  # [n_dates, n_horizons] q0.875 - q0.125
    implied_move: np.ndarray  # [n_dates, n_horizons] atm_iv * sqrt(h / bars_per_year)
    horizons: tuple[int, ...]
    bars_per_year: float
    symbol: str

    def __len__(self) -> int:
        return len(self.dates)


def _monthly_expiry_days(dates: pd.DatetimeIndex) -> np.ndarray:
    """Calendar days from each date to the next monthly (third-Friday) expiry, inclusive."""
    span_days = int((dates[-1] - dates[0]).days) + 70
    expiries = listed_expiries(dates[0], span_days, kinds="monthly")
    day = dates.to_numpy().astype("datetime64[D]")
    exp_days = expiries.to_numpy().astype("datetime64[D]")
    nxt = np.searchsorted(exp_days, day, side="left")
    return (exp_days[nxt] - day).astype("int64").astype("float64")


def build_market_panel(frame: pd.DataFrame, features: pd.DataFrame, forecasts: pd.DataFrame,
                       start, end, surface: SurfaceConfig | None = None,
                       price_scale: float = 1.0) -> MarketPanel:
    """Assemble the tradable rows of ``[start, end]``.

    A row is tradable when it has a forecast, an ATM volatility and every market feature. The
    segment's first tradable date is the first such row; a row inside the segment after it that is
    not tradable is an error (the environment never skips bars silently).
    """
    surface = surface or SurfaceConfig()
    horizons, levels = parse_forecast_columns(forecasts.columns)
    for needed in (0.125, 0.5, 0.875):
        if not any(abs(level - needed) < 1e-9 for level in levels):
            raise ValueError(f"forecast panel lacks quantile level {needed}; has {levels}")
    atm = atm_iv_series(frame, surface)
    window = frame.loc[str(start):str(end)]
    if len(window) == 0:
        raise ValueError(f"segment {start}..{end} has no bars in the market frame "
                         f"({frame.index[0].date()}..{frame.index[-1].date()})")
    fc = forecasts.reindex(window.index)
    feats = features.reindex(window.index)
    needed_cols = [column for _, column, _ in MARKET_FEATURES]
    ok = fc.notna().all(axis=1) & atm.reindex(window.index).notna() & feats[needed_cols].notna().all(
        axis=1)
    if not ok.any():
        raise ValueError(
            f"segment {start}..{end}: no bar has a forecast, an ATM volatility and all features "
            f"(forecasts cover {forecasts.index.min()}..{forecasts.index.max()})")
    first = int(np.flatnonzero(ok.to_numpy())[0])
    bad = ~ok.to_numpy()[first:]
    if bad.any():
        where = window.index[first + int(np.flatnonzero(bad)[0])]
        raise ValueError(f"segment {start}..{end}: bar {where.date()} has no forecast/ATM vol/"
                         f"features after the segment's first tradable bar; refusing to skip it")
    window = window.iloc[first:]
    idx = window.index
    if len(idx) < 2:
        raise ValueError(f"segment {start}..{end}: fewer than 2 tradable bars")
    fc = fc.loc[idx]
    feats = feats.loc[idx]
    annual = bars_per_year(frame.index)
    atm_iv = atm.loc[idx].to_numpy(dtype="float64")

    def q(h: int, level: float) -> np.ndarray:
        return fc[f"h{h}_q{level:.3f}"].to_numpy(dtype="float64")

    implied = np.column_stack([atm_iv * math.sqrt(h / annual) for h in horizons])
    median = np.column_stack([q(h, 0.5) for h in horizons])
    width75 = np.column_stack([q(h, 0.875) - q(h, 0.125) for h in horizons])

    names: list[str] = []
    columns: list[np.ndarray] = []
    for j, h in enumerate(horizons):
        for level in levels:
            names.append(f"forecast_h{h}_q{level:.3f}_vs_implied_move")
            columns.append(q(h, level) / implied[:, j])
        names.append(f"forecast_width75_h{h}_vs_implied_width75")
        columns.append(width75[:, j] / (2 * Z_875 * implied[:, j]))
    for name, column, scale in MARKET_FEATURES:
        names.append(f"{name}_scaled")
        columns.append(feats[column].to_numpy(dtype="float64") / scale)
    rv20 = feats["rv_ann_20b"].to_numpy(dtype="float64")
    names += ["atm_iv_over_0.20", "atm_iv_change_5b_over_0.05", "atm_iv_minus_rv_20b_over_0.10",
              "days_to_monthly_expiry_over_30", "rate_over_0.05"]
    atm_prev = atm.shift(5).loc[idx].to_numpy(dtype="float64")
    columns += [
        atm_iv / 0.20,
        np.nan_to_num(atm_iv - atm_prev) / 0.05,
        (atm_iv - rv20) / 0.10,
        _monthly_expiry_days(idx) / 30.0,
        window["rate"].to_numpy(dtype="float64") / 0.05 if "rate" in window.columns
        else np.zeros(len(idx)),
    ]
    market_obs = np.column_stack(columns).astype(np.float32)
    if not np.isfinite(market_obs).all():
        bad_row = int(np.flatnonzero(~np.isfinite(market_obs).all(axis=1))[0])
        raise ValueError(f"non-finite market observation on {idx[bad_row].date()}")
    rate = (window["rate"].to_numpy(dtype="float64") if "rate" in window.columns
            else np.zeros(len(idx)))
    return MarketPanel(
        dates=idx,
        close_ns=np.array([timestamp_close_ns(ts) for ts in idx], dtype="int64"),
        spot=window["close"].to_numpy(dtype="float64") * price_scale,
        atm_iv=atm_iv,
        rate=np.nan_to_num(rate),
        market_obs=market_obs,
        market_obs_names=tuple(names),
        forecast_median=median,
        forecast_width_75=width75,
        implied_move=implied,
        horizons=tuple(horizons),
        bars_per_year=annual,
        symbol=str(frame.attrs.get("symbol", "")),
    )
