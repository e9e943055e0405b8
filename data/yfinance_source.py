"""yfinance source behind a Parquet cache.

A request (symbol, interval, start, end) is served from the cache when a cached file covers it;
otherwise it is downloaded, validated, cached atomically and returned. With no network and no
cache, the error says so and names the offline sources.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pandas as pd

from common.io import write_parquet_atomic
from common.paths import user_cache_root
from common.units import VOL_POINTS_PER_UNIT
from data.errors import MarketDataError
from data.validation import validate_market_frame

__all__ = ["INTERVALS", "cache_path", "default_cache_dir", "load_yfinance"]

log = logging.getLogger(__name__)
INTERVALS = ("1d", "1h", "15m", "5m")
VIX_SYMBOL = "^VIX"


def default_cache_dir() -> Path:
    """``$SPYRL_CACHE_DIR`` or the user's cache dir (platformdirs) / spy-options-rl / yfinance."""
    return user_cache_root() / "yfinance"


def cache_path(cache_dir: Path, symbol: str, interval: str, start: str | None,
               end: str | None) -> Path:
    """The cache file of one request; the key is readable and collision-free."""
    key = f"{symbol}|{interval}|{start}|{end}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    safe = "".join(ch if ch.isalnum() else "_" for ch in symbol)
    return Path(cache_dir) / f"{safe}_{interval}_{start}_{end}_{digest}.parquet"


def _download(symbol: str, interval: str, start: str | None, end: str | None) -> pd.DataFrame:
    # yfinance (optional, network): only for data.source yfinance
    import yfinance as yf

    raw = yf.download(symbol, interval=interval, start=start, end=end, auto_adjust=False,
                      progress=False, threads=False)
    if raw is None or len(raw) == 0:
        raise ConnectionError(f"yfinance returned no rows for {symbol} {interval}")
    if isinstance(raw.columns, pd.MultiIndex):
        raw.columns = raw.columns.get_level_values(0)
    frame = pd.DataFrame(
        {c.lower(): raw[c].astype("float64") for c in ("Open", "High", "Low", "Close", "Volume")}
    )
    index = pd.DatetimeIndex(raw.index)
    if index.tz is not None:
        index = index.tz_convert("America/New_York").tz_localize(None)
    frame.index = index.rename("date")
    return frame


def _fetch(symbol: str, interval: str, start: str | None, end: str | None, cache_dir: Path,
           refresh: bool) -> pd.DataFrame:
    path = cache_path(cache_dir, symbol, interval, start, end)
    if path.exists() and not refresh:
        log.info("yfinance %s %s served from cache %s", symbol, interval, path)
        return pd.read_parquet(path)
    try:
        frame = _download(symbol, interval, start, end)
    except Exception as exc:  # network errors come in many types from yfinance/curl
        raise MarketDataError(
            f"yfinance: could not download {symbol} {interval} {start}..{end} ({exc}) and "
            f"nothing is cached at {path}. Use the offline sources instead: "
            f"load_market('embedded') or load_market('csv', path=...)"
        ) from exc
    validate_market_frame(frame, source=f"yfinance {symbol} {interval}")
    write_parquet_atomic(frame, path)
    log.info("yfinance %s %s downloaded, cached at %s", symbol, interval, path)
    return frame


def load_yfinance(symbol: str = "SPY", interval: str = "1d", start: str | None = None,
                  end: str | None = None, cache_dir: str | os.PathLike | None = None,
                  with_vix: bool = True, refresh: bool = False) -> pd.DataFrame:
    """Bars of ``symbol`` from yfinance (cached), with ``^VIX`` close/100 as ``iv_index``."""
    if interval not in INTERVALS:
        raise MarketDataError(f"yfinance: interval '{interval}' not supported; expected one of "
                              f"{list(INTERVALS)}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    frame = _fetch(symbol, interval, start, end, cache, refresh)
    if with_vix and symbol != VIX_SYMBOL:
        try:
            vix = _fetch(VIX_SYMBOL, interval, start, end, cache, refresh)
        except MarketDataError as exc:
            log.warning("no ^VIX for %s: %s; iv_index left empty", symbol, exc)
            frame["iv_index"] = float("nan")
        else:
            # As-of join: each bar sees the latest VIX bar at or before it, never a later one.
            frame["iv_index"] = (vix["close"] / VOL_POINTS_PER_UNIT).reindex(frame.index, method="ffill")
    frame.attrs.update(source="yfinance", symbol=symbol, interval=interval,
                       cache_dir=str(cache), bar_stamp="start")  # yfinance stamps bar starts
    return validate_market_frame(frame, source=f"yfinance {symbol} {interval}")
