"""The ``data:`` section of an experiment config."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

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
    ``gdp``: quarterly real GDP growth as a macro column entering on its release date
    (:mod:`data.macro`): ``none`` (default), ``macrodata`` (statsmodels' shipped history to
    2009Q3) or ``csv`` (``gdp_path``: a FRED ``DATE,GDPC1`` or ALFRED vintage file).
    ``sentiment_path``: an optional file of daily sentiment scores or timestamped headlines
    (:mod:`data.sentiment`); absent by default, and then nothing changes.
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
    gdp: Literal["none", "macrodata", "csv"] = "none"
    gdp_path: str | None = None
    sentiment_path: str | None = None

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

    @model_validator(mode="after")
    def _gdp_path_with_csv(self) -> DataConfig:
        if (self.gdp == "csv") != bool(self.gdp_path):
            raise ValueError("gdp: csv needs gdp_path (a FRED/ALFRED CSV), and gdp_path needs "
                             "gdp: csv")
        return self

    def load_options(self) -> dict:
        """Keyword arguments for :func:`data.load_market` for this source."""
        if self.source == "embedded":
            options = {"start": self.start, "end": self.end}
        elif self.source == "csv":
            options = {"path": self.path, "start": self.start, "end": self.end,
                       "date_format": self.date_format, "bar_stamp": self.bar_stamp}
        else:
            options = {"symbol": self.symbol, "interval": self.interval, "start": self.start,
                       "end": self.end, "cache_dir": self.cache_dir, "with_vix": self.with_vix}
        extras = {"gdp": self.gdp if self.gdp != "none" else None, "gdp_path": self.gdp_path,
                  "sentiment_path": self.sentiment_path}
        return {**options, **{key: value for key, value in extras.items() if value}}
