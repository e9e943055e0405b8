"""Causal technical and volatility features of a market frame.

Every value at bar t is a function of bars <= t only (tests recompute on truncated frames).
Names carry their window in bars (``_20b``) and their unit: ``ret_log`` (log return, decimal),
``_ann`` (annualised decimal), ``_pct`` (percent of price), ``rsi``/``adx`` (0-100 index points).
Warm-up rows are NaN; nothing is back-filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from common.units import PERCENT_PER_UNIT
from data.calendar import bars_per_year

__all__ = ["FEATURE_WINDOWS_BARS", "build_features"]

FEATURE_WINDOWS_BARS = (1, 5, 10, 20, 60)
VOL_WINDOWS_BARS = (5, 20, 60)
PARKINSON_CONSTANT = 1.0 / (4.0 * np.log(2.0))
MACRO_COLUMNS = ("rate", "cpi_core_yoy", "credit_spread", "aaa_yield", "baa_yield",
                 # optional (data.gdp, data.sentiment_path): present only when configured
                 "gdp_growth_qoq_ann", "sentiment_score_mean", "sentiment_items_count")


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the feature frame (same index as ``frame``), all float64 columns."""
    close = frame["close"].to_numpy(dtype="float64")
    high = frame["high"].to_numpy(dtype="float64")
    low = frame["low"].to_numpy(dtype="float64")
    annual = bars_per_year(frame.index)
    log_close = pd.Series(np.log(close), index=frame.index)
    ret_1 = log_close.diff()
    out: dict[str, pd.Series | np.ndarray] = {}

    for window in FEATURE_WINDOWS_BARS:
        out[f"ret_log_{window}b"] = log_close.diff(window)
    for window in VOL_WINDOWS_BARS:
        out[f"rv_ann_{window}b"] = ret_1.rolling(window).std(ddof=1) * np.sqrt(annual)
    hl2 = pd.Series(np.log(high / low) ** 2, index=frame.index)
    for window in (5, 20):
        out[f"parkinson_vol_ann_{window}b"] = np.sqrt(
            PARKINSON_CONSTANT * hl2.rolling(window).mean() * annual
        )

    macd, macd_signal, macd_hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    out["macd_pct"] = macd / close * PERCENT_PER_UNIT
    out["macd_signal_pct"] = macd_signal / close * PERCENT_PER_UNIT
    out["macd_hist_pct"] = macd_hist / close * PERCENT_PER_UNIT
    out["rsi_14b"] = talib.RSI(close, timeperiod=14)
    out["atr_pct_14b"] = talib.ATR(high, low, close, timeperiod=14) / close * PERCENT_PER_UNIT
    out["adx_14b"] = talib.ADX(high, low, close, timeperiod=14)
    for window in (10, 50):
        out[f"ema_gap_pct_{window}b"] = (close / talib.EMA(close, timeperiod=window) - 1) * PERCENT_PER_UNIT
    upper, middle, lower = talib.BBANDS(close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)
    band = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        out["bb_pctb_20b"] = np.where(band > 0, (close - lower) / band, 0.5)
    out["bb_pctb_20b"][np.isnan(band)] = np.nan
    out["bb_width_pct_20b"] = band / middle * PERCENT_PER_UNIT

    if "iv_index" in frame.columns:
        iv = frame["iv_index"].astype("float64")
        out["iv_index"] = iv
        out["iv_change_1b"] = iv.diff()
        out["iv_change_5b"] = iv.diff(5)
        out["iv_minus_rv_20b"] = iv - out["rv_ann_20b"]
    for column in MACRO_COLUMNS:
        if column in frame.columns:
            out[column] = frame[column].astype("float64")
    out["day_of_week"] = frame.index.day_of_week.astype("float64")

    features = pd.DataFrame(
        {name: np.asarray(values, dtype="float64") for name, values in out.items()},
        index=frame.index,
    )
    features.attrs = dict(frame.attrs)
    return features
