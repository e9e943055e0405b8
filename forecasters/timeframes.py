"""The same hour horizons forecast from bars of several timeframes, in one table.

``python -m forecasters --timeframes 5m 15m 1h 1d --csv bars_5m.csv --horizons-hours 12 24 48 96
--out DIR`` reads the finest bars once, builds every coarser timeframe from them
(:func:`resample_bars`), runs the walk-forward on each and scores every timeframe's forecasts of
the same hour horizons: ``DIR/timeframes.csv`` (every model) and ``DIR/timeframes.md`` (the
``--model``, default the ensemble), one row per timeframe and horizon.

Hours to bars: ``data.calendar.horizon_bars`` (24 hours = one regular session ahead; 12 hours
on 5-minute bars = half a session = 39 bars). A horizon shorter than one bar of a timeframe
(12 hours on daily bars) cannot be forecast there: its row has ``n = 0`` and no scores.
``horizon_hours_actual`` is the horizon the bar count really spans (12 hours on hourly bars
are 4 of the 7 bars of a session: 13.7 hours).

Origins (``--origins``): ``close`` (the default) scores only the forecasts made at the end of
each session's last bar, so every timeframe forecasts from the same instants, and at multiples
of 24 hours towards the same target closes: the rows differ only in the bars the models saw.
``all`` scores every bar's forecast of each timeframe (more forecasts on finer bars, from
different times of day).

The walk-forward's schedule is set in sessions, the same for every timeframe: the first
forecast on ``--first-forecast`` (default: the session after the first 40% of the file's
sessions), refits every ``--refit-every-sessions`` sessions. Every other parameter of the
``forecast:`` section (``--config``, or the light defaults :data:`DEFAULT_FORECAST`) is in bars
and is kept in bars on every timeframe (an EWMA half-life of 20 bars is 100 minutes of 5-minute
bars and four weeks of daily ones). Every timeframe is built from the same file, so the daily
models learn from 78 times fewer rows than the 5-minute ones.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from common.errors import UserInputError
from common.units import PERCENT_PER_UNIT
from data.calendar import (
    HOURS_PER_SESSION_DAY,
    bar_minutes,
    bars_per_session,
    exchange_calendar,
    horizon_bars,
)
from forecasters.metrics import evaluate_panel
from forecasters.walkforward import walk_forward

__all__ = [
    "DEFAULT_FORECAST",
    "TIMEFRAME_MINUTES",
    "compare_timeframes",
    "horizon_bars_or_none",
    "resample_bars",
    "session_close_rows",
    "timeframe_minutes",
    "timeframes_markdown",
]

log = logging.getLogger(__name__)

TIMEFRAME_MINUTES: dict[str, int | None] = {"5m": 5, "15m": 15, "30m": 30, "1h": 60, "1d": None}
"""Timeframe names and their bar length in minutes (``1d``: one bar per session)."""
SESSION_OPEN = pd.Timedelta(hours=9, minutes=30)
"""Regular sessions open at 09:30 New York; intraday buckets are counted from there."""
DEFAULT_FORECAST = {
    "members": ["xgb", "vol_rw"],
    "references": ["random_walk"],
    "min_train_bars": 20,
    "n_jobs": 2,
    "xgb": {"n_estimators": 50},
    "ensemble": {"min_forecasts": 60, "lookback_forecasts": 1000},
    "conformal": {"min_forecasts": 30, "window_forecasts": 250},
}
"""The ``forecast:`` keys used without ``--config``: two cheap members and the random walk."""
TABLE_COLUMNS = ("timeframe", "horizon_hours", "horizon_bars", "horizon_hours_actual", "model",
                 "n", "mae_pct", "pinball", "coverage_75", "coverage_90", "width_75_pct",
                 "mae_ratio_rw")
_OHLC_AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def timeframe_minutes(name: str) -> int | None:
    if name not in TIMEFRAME_MINUTES:
        raise UserInputError(f"--timeframes: unknown timeframe {name!r}; expected some of "
                             f"{list(TIMEFRAME_MINUTES)}")
    return TIMEFRAME_MINUTES[name]


def _start_stamps(frame: pd.DataFrame) -> pd.DatetimeIndex:
    """Bar start times of an intraday frame (its stamps, moved back one bar if they mark ends)."""
    minutes = bar_minutes(frame.index)
    if frame.attrs.get("bar_stamp", "start") == "end":
        return frame.index - pd.Timedelta(minutes=minutes)
    return frame.index


def _session_closes(days: pd.DatetimeIndex) -> pd.Series:
    """Close time (naive New York) of each day: the exchange's (early closes), else 16:00."""
    calendar = exchange_calendar()
    schedule = calendar.schedule
    index = schedule.index.tz_localize(None) if schedule.index.tz is not None else schedule.index
    closes = pd.Series(schedule["close"].dt.tz_convert("America/New_York").dt.tz_localize(None)
                       .to_numpy(), index=index)
    unique = pd.DatetimeIndex(days.unique())
    known = closes.reindex(unique)
    fallback = pd.Series(unique + pd.Timedelta(hours=16), index=unique)
    return known.fillna(fallback)


def resample_bars(frame: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Bars of ``timeframe`` built from the finer intraday bars of ``frame``, causally.

    An intraday bar of M minutes covers [09:30 + k M, 09:30 + (k + 1) M) of its session (the last
    one ends at the close, early closes included) and is stamped at its start
    (``attrs["bar_stamp"] = "start"``); a daily bar covers the session and is stamped at
    midnight. Open is the first fine bar's, high the highest, low the lowest, close and
    ``iv_index``/``rate`` the last one's, volume the sum. A bar is built only from fine bars
    inside it, all of which end by its end (its decision time), and a last bar the data stops
    inside (not yet complete) is dropped: nothing uses bars after the coarse bar's end.
    Fine bars outside the regular session are dropped (logged).
    """
    target = timeframe_minutes(timeframe)
    fine = bar_minutes(frame.index)
    if fine is None:
        raise UserInputError("resampling needs intraday bars (the frame's bars are daily); give "
                             "the finest bars you have")
    if target is not None and (target < fine - 1e-9 or abs(target / fine - round(target / fine))
                               > 1e-9):
        raise UserInputError(f"--timeframes: {timeframe} cannot be built from {fine:g}-minute "
                             f"bars; expected a multiple of {fine:g} minutes")
    starts = _start_stamps(frame)
    days = starts.normalize()
    closes = _session_closes(days)
    close_of_bar = pd.DatetimeIndex(closes.reindex(days).to_numpy())
    ends = starts + pd.Timedelta(minutes=fine)
    regular = (starts >= days + SESSION_OPEN) & (ends <= close_of_bar)
    if not regular.all():
        log.info("resampling to %s: %d bar(s) outside the regular session dropped", timeframe,
                 int((~regular).sum()))
    columns = [c for c in (*_OHLC_AGG, "iv_index", "rate") if c in frame.columns]
    data = frame.loc[regular, columns]
    starts, days, close_of_bar, ends = (starts[regular], days[regular], close_of_bar[regular],
                                        ends[regular])
    if target is None:
        bucket_start = days
        bucket_end = close_of_bar
    else:
        step = pd.Timedelta(minutes=target)
        k = ((starts - days - SESSION_OPEN) // step).astype("int64")
        bucket_start = days + SESSION_OPEN + step * k
        bucket_end = pd.DatetimeIndex(np.minimum((bucket_start + step).to_numpy(),
                                                 close_of_bar.to_numpy()))
    agg = {c: _OHLC_AGG.get(c, "last") for c in columns}
    grouped = data.groupby(bucket_start.to_numpy(), sort=True)
    out = grouped.agg(agg)
    bucket_ends = pd.Series(bucket_end.to_numpy()).groupby(bucket_start.to_numpy()).max()
    data_end = ends.max()
    complete = bucket_ends.reindex(out.index).to_numpy() <= np.datetime64(data_end)
    out = out.loc[complete]
    out.index = pd.DatetimeIndex(out.index, name="date")
    out.attrs.update({**frame.attrs, "interval": timeframe, "bar_stamp": "start",
                      "resampled_from": f"{fine:g}m"})
    return out


def session_close_rows(index: pd.DatetimeIndex) -> np.ndarray:
    """Boolean mask of each session's last bar (every bar of a daily frame)."""
    if bar_minutes(index) is None:
        return np.ones(len(index), dtype=bool)
    day = index.normalize()
    return np.r_[day[1:] != day[:-1], True]


def horizon_bars_or_none(hours: float, index: pd.DatetimeIndex) -> int | None:
    """``data.calendar.horizon_bars`` on this frame, or None when ``hours`` is shorter than one
    bar of it (12 hours on daily bars)."""
    if hours / HOURS_PER_SESSION_DAY * bars_per_session(index) < 1.0 - 1e-9:
        return None
    return horizon_bars(hours, index)


def _first_forecast(index: pd.DatetimeIndex, first_forecast) -> pd.Timestamp:
    sessions = pd.DatetimeIndex(index.normalize().unique())
    if first_forecast is None:
        return sessions[max(20, int(0.4 * len(sessions)))] if len(sessions) > 20 else None
    return pd.Timestamp(first_forecast)


def compare_timeframes(frame: pd.DataFrame, timeframes, horizons_hours, forecast_config,
                       first_forecast=None, start=None, end=None, refit_every_sessions: int = 10,
                       origins: str = "close", progress: bool = False) -> pd.DataFrame:
    """One row per timeframe, horizon in hours and model: the scores of ``evaluate_panel``
    (``mae_pct``, ``pinball``, ``coverage_75``/``_90``, ...) over the forecasts dated in
    [start, end] (default: from the first forecast) whose outcomes the data holds."""
    if origins not in ("close", "all"):
        raise UserInputError(f"--origins must be 'close' or 'all', got {origins!r}")
    first = _first_forecast(frame.index, first_forecast)
    if first is None:
        raise UserInputError("the bars span 20 sessions or fewer; the comparison needs more")
    sessions_before = int((pd.DatetimeIndex(frame.index.normalize().unique()) < first).sum())
    if sessions_before < 20:
        raise UserInputError(f"--first-forecast {first.date()} leaves {sessions_before} sessions "
                             "of training data; expected at least 20")
    rows = []
    for timeframe in timeframes:
        bars = frame if timeframe_minutes(timeframe) == bar_minutes(frame.index) else (
            resample_bars(frame, timeframe))
        per_session = bars_per_session(bars.index)
        mapped = {hours: horizon_bars_or_none(hours, bars.index) for hours in horizons_hours}
        horizons = sorted({h for h in mapped.values() if h is not None})
        if len(horizons) < len([h for h in mapped.values() if h is not None]):
            raise UserInputError(f"--horizons-hours {list(horizons_hours)} map to bars "
                                 f"{list(mapped.values())} on {timeframe} bars; each horizon must "
                                 "be a distinct number of bars")
        scores: dict = {}
        if horizons:
            config = forecast_config.model_copy(update={
                "horizons": horizons, "horizons_hours": None, "first_forecast_date": first,
                "refit_every_bars": refit_every_sessions * per_session,
                "gate": forecast_config.gate.model_copy(update={"enabled": False})})
            log.info("%s: %d bars, horizons %s bars, walk-forward from %s", timeframe, len(bars),
                     horizons, first.date())
            panel = walk_forward(bars, config, progress=progress)
            if origins == "close":
                closes = bars.index[session_close_rows(bars.index)]
                panel = panel[pd.DatetimeIndex(panel["date"]).isin(closes)]
            try:
                scores = evaluate_panel(panel, bars, start or first, end)
            except ValueError as exc:
                raise UserInputError(f"{timeframe}: {exc}") from None
        models = sorted(scores) or ["-"]
        for hours, h in mapped.items():
            for model in models:
                values = scores.get(model, {}).get(str(h), {}) if h is not None else {}
                rows.append({
                    "timeframe": timeframe, "horizon_hours": float(hours),
                    "horizon_bars": h if h is not None else 0,
                    "horizon_hours_actual": (h / per_session * HOURS_PER_SESSION_DAY
                                             if h is not None else math.nan),
                    "model": model, "n": int(values.get("n", 0)),
                    **{key: float(values.get(key, math.nan)) for key in TABLE_COLUMNS[6:]},
                })
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def timeframes_markdown(table: pd.DataFrame, model: str, title: str) -> str:
    """The rows of ``model`` (and the horizons no timeframe could forecast) as a markdown table."""
    rows = table[(table["model"] == model) | (table["horizon_bars"] == 0)]
    rows = rows.drop_duplicates(["timeframe", "horizon_hours"])
    lines = [f"## {title}", "",
             "| timeframe | horizon h | bars | spans h | n | MAE % | pinball | cov 75 % | "
             "cov 90 % | width 75 % | MAE / RW |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows.itertuples():
        if row.horizon_bars == 0:
            lines.append(f"| {row.timeframe} | {row.horizon_hours:g} | - | - | 0 | shorter than "
                         "one bar | - | - | - | - | - |")
            continue
        lines.append(
            f"| {row.timeframe} | {row.horizon_hours:g} | {row.horizon_bars} | "
            f"{row.horizon_hours_actual:.1f} | {row.n} | {row.mae_pct:.3f} | {row.pinball:.4f} | "
            f"{PERCENT_PER_UNIT * row.coverage_75:.1f} | {PERCENT_PER_UNIT * row.coverage_90:.1f} | "
            f"{row.width_75_pct:.3f} | {row.mae_ratio_rw:.3f} |")
    return "\n".join(lines) + "\n"
