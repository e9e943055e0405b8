"""Optional news sentiment as a causal feature of each bar.

No sentiment data ships with the project; a user brings a CSV (``data.sentiment_path``) with a
time column (``published_at``, ``timestamp``, ``datetime``, ``date`` or ``time``) and either

* ``score`` (or ``sentiment``): a number per row, e.g. a daily score from a vendor; or
* ``headline`` (or ``title``, ``text``): the text of a headline, scored here by VADER's
  ``compound`` score (-1 most negative .. +1 most positive) from the ``vaderSentiment`` package,
  whose lexicon ships inside the package (Hutto and Gilbert 2014; nothing is downloaded).

Timing (no look-ahead): a row counts for the first bar whose close is strictly after the time
it was published, so a headline published after a bar's close (or exactly at it) counts for the
next bar; one published over a weekend counts for Monday's bar. Times with a UTC offset are
converted to New York time; naive times are New York time (as the market frame's stamps). A
file of dates only (every row at midnight, no time written) is taken as known at the end of
each date, so a score dated D counts for the first bar closing after D's midnight (the next
session's bar for daily bars). Bar closes: a daily bar's session close from the exchange
calendar (early closes included); an intraday bar's end (its stamp plus one bar when stamps mark
bar starts, ``frame.attrs['bar_stamp']``, the default).

Columns added: ``sentiment_score_mean`` (mean score of the rows counted for the bar; 0.0 when
none) and ``sentiment_items_count`` (how many). Both are NaN on the frame's first bar (whose
window opens at a close the frame does not hold) and on bars before the file's first row.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from data.calendar import bar_minutes, exchange_calendar
from data.errors import MarketDataError

__all__ = [
    "SENTIMENT_COLUMNS",
    "SENTIMENT_COUNT_COLUMN",
    "SENTIMENT_SCORE_COLUMN",
    "attach_sentiment",
    "bar_close_times",
    "read_sentiment",
    "score_headlines",
    "sentiment_on_bars",
]

SENTIMENT_SCORE_COLUMN = "sentiment_score_mean"
SENTIMENT_COUNT_COLUMN = "sentiment_items_count"
SENTIMENT_COLUMNS = (SENTIMENT_SCORE_COLUMN, SENTIMENT_COUNT_COLUMN)
EXCHANGE_TIMEZONE = "America/New_York"
REGULAR_CLOSE = pd.Timedelta(hours=16)
_TIME_HEADERS = ("published_at", "timestamp", "datetime", "date", "time")
_SCORE_HEADERS = ("score", "sentiment")
_TEXT_HEADERS = ("headline", "title", "text")
_HAS_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})\s*$")
_HAS_CLOCK = re.compile(r"\d{1,2}:\d{2}")


def score_headlines(headlines) -> np.ndarray:
    """VADER compound score of each headline (-1..+1)."""
    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(text)["compound"] for text in headlines],
                    dtype="float64")


def _published_at(raw: pd.Series, source: str, column: str) -> pd.DatetimeIndex:
    text = raw.astype(str).str.strip()
    aware = text.str.contains(_HAS_OFFSET)
    if aware.any() and not aware.all():
        line = int(np.flatnonzero(~aware.to_numpy())[0]) + 2
        raise MarketDataError(f"{source}: column '{column}' mixes times with and without a UTC "
                              f"offset (line {line} has none); give all or none")
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601", utc=bool(aware.all())))
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=bool(aware.all()))
        line = int(np.flatnonzero(pd.isna(parsed))[0]) + 2
        raise MarketDataError(f"{source}: column '{column}' has an unreadable time "
                              f"{text.iloc[line - 2]!r} on line {line}; expected ISO 8601 "
                              "(2021-03-01 16:05:00, optionally with an offset)") from None
    if stamps.tz is not None:
        stamps = stamps.tz_convert(EXCHANGE_TIMEZONE).tz_localize(None)
    dates_only = (stamps == stamps.normalize()).all() and not text.str.contains(_HAS_CLOCK).any()
    if dates_only:
        stamps = stamps + pd.Timedelta(days=1)  # known at the end of its date
    return stamps.as_unit("ns")


def read_sentiment(path: str | Path) -> pd.DataFrame:
    """Rows of the sentiment file as ``published_at`` (New York time) and ``score``, sorted."""
    path = Path(path)
    source = f"sentiment file {path}"
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"{source}: cannot read ({exc})") from exc
    columns = {c.strip().lower(): c for c in raw.columns}
    time_key = next((columns[h] for h in _TIME_HEADERS if h in columns), None)
    score_key = next((columns[h] for h in _SCORE_HEADERS if h in columns), None)
    text_key = next((columns[h] for h in _TEXT_HEADERS if h in columns), None)
    if time_key is None or (score_key is None and text_key is None):
        raise MarketDataError(
            f"{source}: expected a time column ({', '.join(_TIME_HEADERS)}) and a 'score' or "
            f"'headline' column (found {list(raw.columns)})")
    if len(raw) == 0:
        raise MarketDataError(f"{source}: no rows")
    published = _published_at(raw[time_key], source, time_key)
    if score_key is not None:
        scores = pd.to_numeric(raw[score_key], errors="coerce").to_numpy(dtype="float64")
        bad = ~np.isfinite(scores)
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise MarketDataError(f"{source}: column '{score_key}' has {int(bad.sum())} "
                                  f"non-numeric value(s), first {raw[score_key].iloc[line - 2]!r} "
                                  f"on line {line}")
    else:
        empty = raw[text_key].str.strip() == ""
        if empty.any():
            line = int(np.flatnonzero(empty.to_numpy())[0]) + 2
            raise MarketDataError(f"{source}: column '{text_key}' is empty on line {line}")
        scores = score_headlines(raw[text_key])
    out = pd.DataFrame({"published_at": published, "score": scores})
    return out.sort_values("published_at", kind="stable").reset_index(drop=True)


def bar_close_times(index: pd.DatetimeIndex, bar_stamp: str | None = None) -> pd.DatetimeIndex:
    """Each bar's close (its decision time) in naive New York time: a daily bar's session close
    (early closes included, 16:00 on a day that is not a session); an intraday bar's end."""
    if index.tz is not None:
        index = index.tz_convert(EXCHANGE_TIMEZONE).tz_localize(None)
    minutes = bar_minutes(index)
    if minutes is None:
        closes = exchange_calendar().closes
        closes = pd.Series(closes.dt.tz_convert(EXCHANGE_TIMEZONE).dt.tz_localize(None)
                           .to_numpy(), index=pd.DatetimeIndex(closes.index).tz_localize(None)
                           if closes.index.tz is not None else pd.DatetimeIndex(closes.index))
        days = index.normalize()
        found = closes.reindex(days).to_numpy()
        regular = (days + REGULAR_CLOSE).to_numpy()
        return pd.DatetimeIndex(np.where(pd.isna(found), regular, found)).as_unit("ns")
    stamp = bar_stamp or "start"
    if stamp not in ("start", "end"):
        raise MarketDataError(f"frame.attrs['bar_stamp'] must be 'start' or 'end', got {stamp!r}")
    shift = pd.Timedelta(minutes=minutes) if stamp == "start" else pd.Timedelta(0)
    return (index + shift).as_unit("ns")


def sentiment_on_bars(items: pd.DataFrame, closes: pd.DatetimeIndex) -> pd.DataFrame:
    """Mean score and count of the items counted for each bar (see the module docstring)."""
    close_ns = closes.as_unit("ns").asi8
    published_ns = pd.DatetimeIndex(items["published_at"]).as_unit("ns").asi8
    bar = np.searchsorted(close_ns, published_ns, side="right")  # first close after it
    keep = bar < len(close_ns)
    n = len(close_ns)
    count = np.bincount(bar[keep], minlength=n).astype("float64")
    total = np.bincount(bar[keep], weights=items["score"].to_numpy()[keep], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, 0.0)
    first_bar = int(bar.min()) if len(bar) else n
    unknown = np.arange(n) < max(first_bar, 1)
    mean[unknown] = np.nan
    count[unknown] = np.nan
    return pd.DataFrame({SENTIMENT_SCORE_COLUMN: mean, SENTIMENT_COUNT_COLUMN: count})


def attach_sentiment(frame: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The frame with the sentiment columns from the file at ``path`` (provenance in
    ``frame.attrs['sentiment']``)."""
    items = read_sentiment(path)
    closes = bar_close_times(frame.index, frame.attrs.get("bar_stamp"))
    columns = sentiment_on_bars(items, closes)
    attrs = dict(frame.attrs)
    out = frame.copy()
    for name in SENTIMENT_COLUMNS:
        out[name] = columns[name].to_numpy()
    out.attrs.update(attrs, sentiment=str(path))
    return out
