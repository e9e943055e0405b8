"""Exchange-calendar helpers: bars per year and the report of missing sessions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from common.units import TRADING_DAYS_PER_YEAR

__all__ = [
    "TRADING_DAYS_PER_YEAR",
    "GapReport",
    "bars_per_session",
    "bars_per_year",
    "exchange_calendar",
    "gap_report",
    "horizon_bars",
]

REGULAR_SESSION_MINUTES = 390
HOURS_PER_SESSION_DAY = 24.0
"""A horizon of 24 hours is one trading session ahead (daily bars: 24h = 1 bar, 96h = 4 bars)."""


@lru_cache(maxsize=4)
def exchange_calendar(name: str = "XNYS"):
    """The ``exchange_calendars`` calendar ``name`` from 1990 (built once per process)."""
    # exchange_calendars is slow to import: only for exchange calendars
    import exchange_calendars as xcals

    return xcals.get_calendar(name, start="1990-01-02")


def bar_minutes(index: pd.DatetimeIndex) -> float | None:
    """Median spacing of intraday bars in minutes; None for daily (or coarser) bars."""
    if len(index) < 3:
        return None
    seconds = index.to_numpy().astype("datetime64[s]").astype("int64")
    steps = np.diff(seconds) / 60.0
    same_day = index[1:].normalize() == index[:-1].normalize()
    if not same_day.any():
        return None
    return float(np.median(steps[same_day]))


def bars_per_year(index: pd.DatetimeIndex) -> float:
    """Bars in a trading year: 252 for daily bars, 252 * bars per regular session intraday."""
    minutes = bar_minutes(index)
    if minutes is None:
        return float(TRADING_DAYS_PER_YEAR)
    return TRADING_DAYS_PER_YEAR * REGULAR_SESSION_MINUTES / minutes


def bars_per_session(index: pd.DatetimeIndex) -> int:
    """Bars in one regular session: 1 for daily bars, ceil(390 minutes / bar minutes) intraday.

    A partial last bar counts (1h bars from 9:30 give 7 bars, the last one 15:30-16:00).
    """
    minutes = bar_minutes(index)
    if minutes is None:
        return 1
    return int(np.ceil(REGULAR_SESSION_MINUTES / minutes - 1e-9))


def horizon_bars(hours: float, index: pd.DatetimeIndex) -> int:
    """Bars ahead that make a horizon of ``hours`` on the frame's bars, counted in sessions.

    24 hours are one session ahead: the same time of day on the next session, whatever lies
    between (a night, a weekend, a holiday). Hours that are not a multiple of 24 take that share
    of a session's bars: 12h on 15-minute bars is 13 bars, so a forecast made on the 14:00 bar
    targets the 10:45 bar of the next session. Bars after a session's close are not counted,
    because the frame has none. Early-close sessions have fewer bars, so a horizon that spans one
    ends a little later in clock time. At least one bar.
    """
    if hours <= 0:
        raise ValueError(f"horizon must be a positive number of hours, got {hours}")
    sessions = hours / HOURS_PER_SESSION_DAY
    return max(1, int(round(sessions * bars_per_session(index))))


@dataclass(frozen=True)
class GapReport:
    """Sessions of the exchange calendar with no bar, and bars on non-sessions."""

    calendar: str
    first_session: pd.Timestamp
    last_session: pd.Timestamp
    expected_sessions: int
    present_sessions: int
    missing_sessions: pd.DatetimeIndex
    extra_days: pd.DatetimeIndex

    def summary(self) -> str:
        head = ", ".join(d.date().isoformat() for d in self.missing_sessions[:5])
        more = "" if len(self.missing_sessions) <= 5 else f" (+{len(self.missing_sessions) - 5})"
        return (
            f"{self.present_sessions}/{self.expected_sessions} {self.calendar} sessions present; "
            f"{len(self.missing_sessions)} missing{': ' + head + more if head else ''}; "
            f"{len(self.extra_days)} bar day(s) on non-sessions"
        )


def gap_report(frame: pd.DataFrame, calendar: str = "XNYS") -> GapReport:
    """Compare the frame's bar days with the exchange's sessions over the frame's span."""
    cal = exchange_calendar(calendar)
    days = pd.DatetimeIndex(frame.index.normalize().unique())
    first, last = days[0], days[-1]
    sessions = cal.sessions_in_range(max(first, cal.first_session), min(last, cal.last_session))
    sessions = pd.DatetimeIndex(sessions).tz_localize(None) if sessions.tz else sessions
    return GapReport(
        calendar=calendar,
        first_session=first,
        last_session=last,
        expected_sessions=len(sessions),
        present_sessions=int(sessions.isin(days).sum()),
        missing_sessions=sessions[~sessions.isin(days)],
        extra_days=days[~days.isin(sessions)],
    )
