"""Validation of the market-frame contract (see ARCHITECTURE.md, Contracts between stages)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.errors import MarketDataError

__all__ = ["OHLCV_COLUMNS", "PRICE_COLUMNS", "validate_market_frame"]

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
