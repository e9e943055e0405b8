"""Import of a user's OHLCV file (daily or intraday bars)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import MarketDataError
from data.validation import OHLCV_COLUMNS, validate_market_frame

__all__ = ["COLUMN_ALIASES", "load_csv", "normalise_columns"]

# Lower-cased, stripped header -> contract column. With ``prefer_adjusted`` the bar is scaled by
# adj close / close (split- and dividend-adjusted); by default the traded prices are used.
COLUMN_ALIASES: dict[str, str] = {
    "date": "date", "datetime": "date", "timestamp": "date", "time": "date", "index": "date",
    "open": "open", "o": "open",
    "high": "high", "h": "high",
    "low": "low", "l": "low",
    "close": "close", "c": "close", "last": "close", "price": "close",
    "adj close": "adj_close", "adj_close": "adj_close", "adjclose": "adj_close",
    "adjusted close": "adj_close",
    "volume": "volume", "vol": "volume", "v": "volume",
    "iv": "iv_index", "vix": "iv_index", "iv_index": "iv_index", "implied_volatility": "iv_index",
    "rate": "rate", "risk_free_rate": "rate",
}


def normalise_columns(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rename known aliases (case-insensitive) to contract names; error on ambiguous headers."""
    renamed: dict[str, str] = {}
    seen: dict[str, str] = {}
    for column in frame.columns:
        key = COLUMN_ALIASES.get(str(column).strip().lower())
        if key is None:
            continue
        if key in seen:
            raise MarketDataError(
                f"{source}: columns '{seen[key]}' and '{column}' both map to '{key}'; keep one"
            )
        seen[key] = str(column)
        renamed[column] = key
    return frame.rename(columns=renamed)


def load_csv(path: str | os.PathLike, prefer_adjusted: bool = False,
             iv_in_points: bool | None = None) -> pd.DataFrame:
    """Read a CSV of bars into a validated market frame.

    The file needs a date/time column and open, high, low, close, volume columns (any case;
    aliases such as ``Adj Close``, ``Date``, ``Timestamp``). An optional ``iv``/``vix`` column
    becomes ``iv_index``; values above 3 are taken as points (VIX style) and divided by 100
    unless ``iv_in_points`` says otherwise.
    """
    path = Path(path)
    source = f"csv file {path}"
    if not path.is_file():
        raise MarketDataError(f"{source}: no such file")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"{source}: could not parse as CSV ({exc})") from exc
    frame = normalise_columns(raw, source)
    if "date" not in frame.columns:
        raise MarketDataError(
            f"{source}: no date column; expected one of 'date', 'datetime', 'timestamp' "
            f"(found {list(raw.columns)})"
        )
    missing = [c for c in OHLCV_COLUMNS if c not in frame.columns]
    if missing:
        raise MarketDataError(
            f"{source}: missing column(s) {missing}; expected open, high, low, close, volume "
            f"(found {list(raw.columns)})"
        )
    stamps = pd.to_datetime(frame["date"], errors="coerce", utc=False, format="mixed")
    bad = stamps.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MarketDataError(
            f"{source}: column 'date' has {int(bad.sum())} unparseable value(s), first at row "
            f"{first + 2} ({frame['date'].iloc[first]!r})"
        )
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("America/New_York").dt.tz_localize(None)
    if prefer_adjusted and "adj_close" in frame.columns:
        # Scale the whole bar by adj/close so high >= close >= low still holds after adjusting.
        factor = pd.to_numeric(frame["adj_close"], errors="coerce") / pd.to_numeric(
            frame["close"], errors="coerce")
        for column in ("open", "high", "low", "close"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce") * factor
    keep = [c for c in (*OHLCV_COLUMNS, "iv_index", "rate") if c in frame.columns]
    out = frame[keep].copy()
    for column in keep:
        numeric = pd.to_numeric(out[column], errors="coerce")
        bad = numeric.isna().to_numpy() & out[column].notna().to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise MarketDataError(
                f"{source}: column '{column}' has {int(bad.sum())} non-numeric value(s), first "
                f"at {stamps.iloc[first]}"
            )
        out[column] = numeric.astype("float64")
    out.index = pd.DatetimeIndex(stamps, name="date")
    if "iv_index" in out.columns:
        points = iv_in_points if iv_in_points is not None else bool(out["iv_index"].max() > 3)
        if points:
            out["iv_index"] = out["iv_index"] / 100.0
    intraday = bool((out.index != out.index.normalize()).any())
    out.attrs.update(source="csv", symbol=path.stem.upper(), interval="intraday" if intraday
                     else "1d", path=str(path))
    return validate_market_frame(out, source=source)
