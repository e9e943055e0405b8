"""Validation of the market-frame contract (see ARCHITECTURE.md, Contracts between stages)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from data.errors import MarketDataError

__all__ = ["MAX_MISSING_EDGE_SESSIONS", "OHLCV_COLUMNS", "PRICE_COLUMNS", "check_segments_covered",
           "validate_market_frame"]

MAX_MISSING_EDGE_SESSIONS = 2  # weekdays a segment may reach past the data (holidays at an edge)

log = logging.getLogger(__name__)
PRICE_COLUMNS = ("open", "high", "low", "close")
OHLCV_COLUMNS = (*PRICE_COLUMNS, "volume")


def _fail(source: str, column: str, what: str, mask: np.ndarray, index: pd.Index) -> None:
    count = int(np.count_nonzero(mask))
    if count:
        first = index[np.flatnonzero(mask)[0]]
        raise MarketDataError(
            f"{source}: column '{column}' has {count} row(s) {what}, first at {first}"
        )


def validate_market_frame(frame: pd.DataFrame, source: str = "market frame") -> pd.DataFrame:
    """Check the market-frame contract and return ``frame`` unchanged.

    Raises :class:`MarketDataError` naming the source, the column, how many rows and the first
    offending timestamp. Nothing is dropped or repaired.
    """
    if not isinstance(frame, pd.DataFrame):
        raise MarketDataError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise MarketDataError(
            f"{source}: missing column(s) {missing}; expected {list(OHLCV_COLUMNS)} "
            f"(found {list(frame.columns)})"
        )
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise MarketDataError(
            f"{source}: index must be a DatetimeIndex of bar timestamps, got "
            f"{type(frame.index).__name__}"
        )
    if len(frame) == 0:
        raise MarketDataError(f"{source}: no rows")
    index = frame.index
    if index.hasnans:
        _fail(source, "timestamp", "with a missing timestamp", np.asarray(index.isna()), index)
    steps = np.asarray(index[1:] < index[:-1])
    _fail(source, "timestamp", "out of order (earlier than the row before)",
          np.r_[False, steps], index)
    _fail(source, "timestamp", "duplicated", np.asarray(index.duplicated()), index)

    values = {c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in OHLCV_COLUMNS}
    for column in PRICE_COLUMNS:
        _fail(source, column, "missing (NaN)", np.isnan(values[column]), index)
        _fail(source, column, "non-finite", np.isinf(values[column]), index)
        _fail(source, column, "non-positive", values[column] <= 0, index)
    _fail(source, "volume", "missing (NaN)", np.isnan(values["volume"]), index)
    _fail(source, "volume", "negative", values["volume"] < 0, index)
    _fail(source, "volume", "non-finite", np.isinf(values["volume"]), index)
    upper = np.maximum(values["open"], values["close"])
    lower = np.minimum(values["open"], values["close"])
    # A relative tolerance of 1e-9 absorbs float rounding in vendor files, nothing more.
    _fail(source, "high", "below max(open, close)", values["high"] < upper * (1 - 1e-9), index)
    _fail(source, "low", "above min(open, close)", values["low"] > lower * (1 + 1e-9), index)
    for column in ("iv_index", "rate"):
        if column in frame.columns:
            col = frame[column].to_numpy(dtype="float64", na_value=np.nan)
            _fail(source, column, "non-finite", np.isinf(col), index)
            if column == "iv_index":
                _fail(source, column, "non-positive (expected annualised decimal, e.g. 0.15)",
                      col <= 0, index)
                _fail(source, column, "above 5 (expected a decimal such as VIX/100, not points)",
                      col > 5, index)
    return frame


def check_segments_covered(index: pd.DatetimeIndex, segments: Mapping[str, tuple[dt.date, dt.date]],
                           clip: bool = False, source: str = "market data") -> None:
    """A date segment (train/valid/test) that reaches outside the data is an error naming it.

    With ``clip`` the part outside is only reported (the segment uses the bars that exist); a
    segment with no bar at all is an error either way. Up to ``MAX_MISSING_EDGE_SESSIONS``
    weekdays at an edge are allowed (a segment starting on New Year's Day).
    """
    first, last = index[0].date(), index[-1].date()
    for name, (start, end) in segments.items():
        before = int(np.busday_count(start, first)) if start < first else 0
        after = int(np.busday_count(last, end)) if end > last else 0
        inside = bool(((index.date >= start) & (index.date <= end)).any())
        if not inside and start >= first and end <= last:
            raise MarketDataError(
                f"segments.{name} {start}..{end} holds no bar of the data (no trading session "
                f"in it: a weekend or holiday?); widen it ({source})")
        if not inside:
            raise MarketDataError(
                f"segments.{name} {start}..{end} lies outside the data {first}..{last} "
                f"({source})")
        if before > MAX_MISSING_EDGE_SESSIONS or after > MAX_MISSING_EDGE_SESSIONS:
            message = (f"segments.{name} {start}..{end} lies partly outside the data "
                       f"{first}..{last} ({source})")
            if not clip:
                raise MarketDataError(f"{message}; move the segment inside the data or set "
                                      f"data.clip_segments: true to cut it to the data")
            log.warning("%s; cut to the data (data.clip_segments)", message)
