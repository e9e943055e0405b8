"""The ``data:`` section of an experiment config."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["DataConfig"]


class DataConfig(BaseModel):
    """Where the market frame comes from.

    ``source``: ``embedded`` (offline default), ``yfinance`` or ``csv``. ``start``/``end`` restrict
    the frame (ISO dates). ``path`` is the CSV file; ``cache_dir`` the yfinance cache.
    ``date_format`` (strftime codes, e.g. ``%d/%m/%Y``) reads a CSV's dates when their order is
    ambiguous. ``clip_segments``: a train/valid/test segment that reaches outside the data is an
    error unless this is true (then the segment is cut to the data and a warning says so).
    ``bar_stamp``: whether a CSV's intraday timestamps mark each bar's ``start`` (the default,
    as yfinance and most vendors do) or its ``end``; the decision time is the bar's end.
    """

    model_config = ConfigDict(extra="forbid")

    source: Literal["embedded", "yfinance", "csv"] = "embedded"
    symbol: str = "SPY"
    interval: Literal["1d", "1h", "15m", "5m"] = "1d"
    start: str | None = None
    end: str | None = None
    path: str | None = None
    cache_dir: str | None = None
    with_vix: bool = True
    date_format: str | None = None
    bar_stamp: Literal["start", "end"] = "start"
    clip_segments: bool = False

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso(cls, value):
        """YAML reads 2014-01-01 as a date; keep it as an ISO string. A string must be an ISO
        date or date-time that exists (2017-02-30 does not)."""
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"'{value}' is not an existing ISO date (YYYY-MM-DD)") from None
        return value

    def load_options(self) -> dict:
        """Keyword arguments for :func:`data.load_market` for this source."""
        if self.source == "embedded":
            return {"start": self.start, "end": self.end}
        if self.source == "csv":
            return {"path": self.path, "start": self.start, "end": self.end,
                    "date_format": self.date_format, "bar_stamp": self.bar_stamp}
        return {"symbol": self.symbol, "interval": self.interval, "start": self.start,
                "end": self.end, "cache_dir": self.cache_dir, "with_vix": self.with_vix}
