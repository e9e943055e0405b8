"""Import of a user's OHLCV file (daily or intraday bars)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from common.units import VOL_POINTS_PER_UNIT
from data.errors import MarketDataError
from data.validation import OHLCV_COLUMNS, validate_market_frame

__all__ = ["COLUMN_ALIASES", "EXCHANGE_TIMEZONE", "load_csv", "normalise_columns", "parse_dates"]

EXCHANGE_TIMEZONE = "America/New_York"  # naive stamps in a market frame are exchange time
IV_POINTS_ABOVE = 3.0  # an iv/vix value above this is in points (VIX 15 = 0.15)
IV_DECIMAL_AT_MOST = 1.0  # ... and one at or below this is a decimal; both in one file: mixed
_MAX_ROWS_NAMED = 5
_YYYYMMDD = re.compile(r"^\d{8}$")
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})(\s.*)?$")
_AWARE = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})\s*$")

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


def _rows(mask: np.ndarray) -> str:
    """CSV line numbers (header is line 1) of the first few True entries of ``mask``."""
    lines = [str(i + 2) for i in np.flatnonzero(mask)[:_MAX_ROWS_NAMED]]
    more = int(mask.sum()) - len(lines)
    return ", ".join(lines) + (f" and {more} more" if more > 0 else "")


def _numeric_date_order(text: pd.Series, source: str) -> str | None:
    """``%d/%m/%Y``-style or ``%m/%d/%Y``-style for dates like 03/04/2020, decided by value."""
    parts = text.str.extract(_NUMERIC_DATE)
    if parts[0].isna().any():
        return None
    first, second = parts[0].astype(int), parts[1].astype(int)
    sep = re.search(r"[/.-]", text.iloc[0]).group(0)
    year = "%Y" if parts[2].str.len().max() == 4 else "%y"
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    if day_first and month_first:
        raise MarketDataError(
            f"{source}: column 'date' mixes day-first (line {int(np.argmax(first > 12)) + 2}) "
            f"and month-first (line {int(np.argmax(second > 12)) + 2}) dates")
    if not (day_first or month_first):
        raise MarketDataError(
            f"{source}: column 'date' is ambiguous ({text.iloc[0]!r} could be day-first or "
            f"month-first); pass --date-format '%d{sep}%m{sep}{year}' or "
            f"'%m{sep}%d{sep}{year}' (data.date_format in a config)")
    return "dayfirst" if day_first else "monthfirst"


def parse_dates(column: pd.Series, source: str, date_format: str | None = None
                ) -> pd.DatetimeIndex:
    """Bar stamps of a CSV's date column as naive exchange time (America/New_York).

    Accepts ISO dates and date-times, integer ``YYYYMMDD``, day-first or month-first numeric
    dates when the values decide it (a day above 12), and ``date_format`` otherwise. Stamps with
    a UTC offset or ``Z`` are read as instants, converted to exchange time and made naive.
    """
    text = column.astype(str).str.strip()
    fmt = date_format
    if fmt is None and text.str.fullmatch(_YYYYMMDD).all():
        fmt = "%Y%m%d"
    dayfirst = False
    if fmt is None:
        order = _numeric_date_order(text, source)
        if order is not None:
            fmt, dayfirst = "mixed", order == "dayfirst"
    aware = text.str.contains(_AWARE)
    if aware.any() and not aware.all():
        raise MarketDataError(
            f"{source}: column 'date' mixes stamps with and without a UTC offset (without on "
            f"line(s) {_rows(~aware.to_numpy())}); give every stamp an offset or none")
    try:
        stamps = pd.to_datetime(text, errors="coerce", utc=bool(aware.any()),
                                format=fmt or "ISO8601", dayfirst=dayfirst)
    except ValueError as exc:
        raise MarketDataError(f"{source}: column 'date' could not be parsed with format "
                              f"{fmt or 'ISO8601'!r} ({exc})") from None
    bad = stamps.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        expected = f"format {date_format!r}" if date_format else "ISO dates (YYYY-MM-DD)"
        raise MarketDataError(
            f"{source}: column 'date' has {int(bad.sum())} unparseable value(s) on line(s) "
            f"{_rows(bad)} (first {column.iloc[first]!r}); expected {expected}, or pass "
            f"--date-format")
    if aware.any():
        stamps = stamps.dt.tz_convert(EXCHANGE_TIMEZONE).dt.tz_localize(None)
    return pd.DatetimeIndex(stamps, name="date")


def _iv_to_decimal(iv: pd.Series, source: str, iv_in_points: bool | None) -> pd.Series:
    """VIX-style points -> decimals; a file mixing both units is an error naming lines."""
    if iv_in_points is not None:
        return iv / VOL_POINTS_PER_UNIT if iv_in_points else iv
    values = iv.to_numpy(dtype="float64", na_value=np.nan)
    points, decimals = values > IV_POINTS_ABOVE, values <= IV_DECIMAL_AT_MOST
    if points.any() and decimals.any():
        raise MarketDataError(
            f"{source}: column 'iv_index' mixes units: points (above {IV_POINTS_ABOVE:g}) on "
            f"line(s) {_rows(points)} and decimals (at most {IV_DECIMAL_AT_MOST:g}) on line(s) "
            f"{_rows(decimals)}; use one unit for the whole column")
    return iv / VOL_POINTS_PER_UNIT if points.any() else iv


def _read(path: Path, source: str) -> pd.DataFrame:
    if path.is_dir():
        raise MarketDataError(f"{source}: is a folder; expected a CSV file")
    if not path.exists():
        raise MarketDataError(f"{source}: no such file")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"{source}: could not parse as CSV ({exc})") from exc
    except OSError as exc:
        raise MarketDataError(f"{source}: cannot read ({exc.strerror or exc})") from exc


def load_csv(path: str | os.PathLike, prefer_adjusted: bool = False,
             iv_in_points: bool | None = None, date_format: str | None = None,
             bar_stamp: str = "start") -> pd.DataFrame:
    """Read a CSV of bars into a validated market frame.

    The file needs a date/time column and open, high, low, close, volume columns (any case;
    aliases such as ``Adj Close``, ``Date``, ``Timestamp``); dates as :func:`parse_dates` reads
    them. An optional ``iv``/``vix`` column becomes ``iv_index``; values above 3 are taken as
    points (VIX style) and divided by 100 unless ``iv_in_points`` says otherwise; a column with
    both points and decimals is an error. Missing volumes are an error naming the lines.
    """
    path = Path(path)
    source = f"csv file {path}"
    raw = _read(path, source)
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
    stamps = parse_dates(frame["date"], source, date_format)
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
                f"{source}: column '{column}' has {int(bad.sum())} non-numeric value(s) on "
                f"line(s) {_rows(bad)} (first {out[column].iloc[first]!r} at {stamps[first]})"
            )
        out[column] = numeric.astype("float64")
    missing_volume = out["volume"].isna().to_numpy()
    if missing_volume.any():
        raise MarketDataError(
            f"{source}: column 'volume' is empty (NaN) on line(s) {_rows(missing_volume)}; "
            f"expected a number of shares (0 if none traded)")
    out.index = stamps
    if "iv_index" in out.columns:
        out["iv_index"] = _iv_to_decimal(out["iv_index"], source, iv_in_points)
    intraday = bool((out.index != out.index.normalize()).any())
    if bar_stamp not in ("start", "end"):
        raise MarketDataError(f"{source}: bar_stamp must be 'start' or 'end', got {bar_stamp!r}")
    out.attrs.update(source="csv", symbol=path.stem.upper(), interval="intraday" if intraday
                     else "1d", path=str(path), bar_stamp=bar_stamp)
    return validate_market_frame(out, source=source)
