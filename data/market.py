"""``load_market``: one entry point for every source of market frames."""

from __future__ import annotations

import hashlib

import pandas as pd

from data.csv_source import load_csv
from data.embedded import load_embedded
from data.errors import MarketDataError
from data.macro import attach_gdp
from data.sentiment import attach_sentiment
from data.validation import validate_market_frame
from data.yfinance_source import load_yfinance

__all__ = ["SOURCES", "frame_hash", "load_market"]

SOURCES = ("embedded", "yfinance", "csv")


def _check_bound(name: str, value) -> None:
    if value is None or not isinstance(value, str):
        return
    try:
        pd.Timestamp(value)
    except ValueError:
        raise MarketDataError(f"{name} '{value}' is not an existing date; expected YYYY-MM-DD"
                              ) from None


def load_market(source: str = "embedded", **options) -> pd.DataFrame:
    """Build a validated market frame from ``source``.

    * ``load_market("embedded", start=None, end=None)``
    * ``load_market("yfinance", symbol="SPY", interval="1d", start=..., end=..., cache_dir=...)``
    * ``load_market("csv", path=..., start=None, end=None)``

    The frame carries ``source``, ``symbol`` and ``interval`` in ``frame.attrs``. Optional
    ``gdp`` (``macrodata``/``csv``), ``gdp_path`` and ``sentiment_path`` add the GDP growth and
    sentiment columns (:mod:`data.macro`, :mod:`data.sentiment`) to any source's frame.
    """
    for bound in ("start", "end"):
        _check_bound(bound, options.get(bound))
    gdp, gdp_path = options.pop("gdp", None), options.pop("gdp_path", None)
    sentiment_path = options.pop("sentiment_path", None)
    frame = _load_source(source, **options)
    if gdp is not None or gdp_path is not None:
        frame = attach_gdp(frame, gdp or "csv", gdp_path)
    if sentiment_path is not None:
        frame = attach_sentiment(frame, sentiment_path)
    return frame


def _load_source(source: str, **options) -> pd.DataFrame:
    if source == "embedded":
        return load_embedded(**options)
    if source == "yfinance":
        return load_yfinance(**options)
    if source == "csv":
        if not options.get("path"):
            raise MarketDataError("csv source needs path=... (the CSV file to read)")
        start, end = options.pop("start", None), options.pop("end", None)
        frame = load_csv(**options)
        if start is not None or end is not None:
            attrs = dict(frame.attrs)
            frame = frame.loc[start:end]
            frame.attrs.update(attrs)
            validate_market_frame(frame, source=f"csv file {options['path']} [{start}..{end}]")
        return frame
    raise MarketDataError(f"unknown market data source '{source}'; expected one of {SOURCES}")


def frame_hash(frame: pd.DataFrame) -> str:
    """A short content hash of a frame (index, columns and values) for cache keys."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:16]
