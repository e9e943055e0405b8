"""Option expiry dates on the real NYSE calendar, and time to expiry.

Expiry kinds and the first date each is treated as listed (an expiry of a kind appears in
:func:`listed_expiries` only for ``as_of`` on or after that date):

================== ============= =====================================================
kind               listed from   source / note
================== ============= =====================================================
``monthly``        always        third Friday of the month. SPY options started
                                 2005-01-10; before that the S&P 500 index (SPX) had
                                 monthlies since 1983, so the model keeps them always.
``friday_weekly``  2005-10-28    Cboe introduced Weeklys in October 2005 (SPX first;
                                 SPY Weeklys followed in the program's ETF expansion,
                                 so early years are approximate).
``wednesday_weekly`` 2016-02-23  Cboe listed SPX Wednesday Weeklys from 2016-02-23;
                                 SPY Wednesday Weeklys came the same year (MIAX listed
                                 them from 2016-09-07), so 2016 is approximate.
``monday_weekly``  2018-02-16    Cboe announcement: SPY Monday Weeklys from 2018-02-16
                                 (SPX Mondays had started 2016-08-15).
``tuesday_weekly`` 2022-11-14    SPY Tuesday/Thursday expiries (daily expirations) from
``thursday_weekly`` 2022-11-14   November 2022 (SPX had them from April/May 2022).
================== ============= =====================================================

Holidays: a Friday, Wednesday, Tuesday or Thursday expiry on an exchange holiday moves to
the previous trading day (Good Friday 2014-04-18 -> Thursday 2014-04-17); a Monday expiry
on a holiday moves to the next trading day (as in Cboe's Monday-Weeklys rules). Two kinds
landing on the same day are one expiry. Quarterly (end-of-quarter) and end-of-month
expiries, and the limited number of weeklies listed at any time, are not modelled: every
expiry of a listed kind within ``max_dte_days`` is available.

Time to expiry: an option expires at the close of its expiry session: 16:00 New York, or the
early close (13:00 on 2015-12-24, 2018-07-03, ...) from ``exchange_calendars``. A timestamp at
midnight stands for that day's close (daily bars are decisions at the close); an intraday
timestamp counts the hours left to the close. Calendar days are used throughout
(:data:`options.pricing.DAYS_PER_YEAR`), so theta is per calendar day.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd

from options.pricing import DAYS_PER_YEAR

__all__ = [
    "ALL_EXPIRY_KINDS",
    "CALENDAR_NAME",
    "EXPIRY_KIND_LISTED_FROM",
    "NS_PER_DAY",
    "dte_days",
    "expiry_close_ns",
    "is_session",
    "session_close_offset_ns",
    "listed_expiries",
    "nearest_expiry",
    "t_years_to_expiry",
    "timestamp_close_ns",
]

CALENDAR_NAME = "XNYS"
_CALENDAR_START = "1990-01-02"
_CALENDAR_END = "2035-12-31"

EXPIRY_KIND_LISTED_FROM: dict[str, pd.Timestamp] = {
    "monthly": pd.Timestamp("1900-01-01"),
    "friday_weekly": pd.Timestamp("2005-10-28"),
    "wednesday_weekly": pd.Timestamp("2016-02-23"),
    "monday_weekly": pd.Timestamp("2018-02-16"),
    "tuesday_weekly": pd.Timestamp("2022-11-14"),
    "thursday_weekly": pd.Timestamp("2022-11-14"),
}
ALL_EXPIRY_KINDS: tuple[str, ...] = tuple(EXPIRY_KIND_LISTED_FROM)

NS_PER_DAY = 86_400 * 10**9
_CLOSE_OFFSET_NS = 16 * 3_600 * 10**9
_NS_PER_YEAR = DAYS_PER_YEAR * NS_PER_DAY
_WEEKDAY = {
    "monday_weekly": 0,
    "tuesday_weekly": 1,
    "wednesday_weekly": 2,
    "thursday_weekly": 3,
    "friday_weekly": 4,
}


@lru_cache(maxsize=1)
def _calendar():
    # Imported here: it takes about 0.3 s, and a process whose tables come from the table cache
    # (envs.table_cache) may never need a session close.
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange_calendars 4.13 trips pandas 3 deprecation warnings internally (not ours)
        warnings.simplefilter("ignore")
        return xcals.get_calendar(CALENDAR_NAME, start=_CALENDAR_START, end=_CALENDAR_END)


@lru_cache(maxsize=1)
def _sessions() -> np.ndarray:
    return _calendar().sessions.tz_localize(None).to_numpy().astype("datetime64[D]")


@lru_cache(maxsize=1)
def _close_offsets_ns() -> dict[int, int]:
    """Session day (ns at midnight) -> its close as an offset from midnight, New York time, for
    the sessions that do not close at 16:00 (early closes such as 13:00 on 2018-07-03)."""
    closes = _calendar().closes.dt.tz_convert("America/New_York").dt.tz_localize(None)
    days = closes.index.tz_localize(None) if closes.index.tz is not None else closes.index
    days_ns = days.as_unit("ns").asi8
    offsets = closes.to_numpy().astype("datetime64[ns]").astype("int64") - days_ns
    return {int(d): int(o) for d, o in zip(days_ns, offsets, strict=True)
            if o != _CLOSE_OFFSET_NS}


def session_close_offset_ns(day_ns: int) -> int:
    """Offset of a day's close from its midnight (16:00, or the early close), in ns."""
    return _close_offsets_ns().get(day_ns, _CLOSE_OFFSET_NS)


def _shift_to_session(nominal: np.ndarray, forward: bool) -> np.ndarray:
    sessions = _sessions()
    if forward:
        idx = np.searchsorted(sessions, nominal, side="left")
        ok = idx < len(sessions)
        return sessions[idx[ok]]
    idx = np.searchsorted(sessions, nominal, side="right") - 1
    ok = idx >= 0
    return sessions[idx[ok]]


@lru_cache(maxsize=16)
def _kind_expiries(kind: str) -> np.ndarray:
    """All expiries of one kind over the calendar's range (datetime64[D], sorted)."""
    sessions = _sessions()
    first, last = sessions[0], sessions[-1]
    days = np.arange(first, last + np.timedelta64(1, "D"), dtype="datetime64[D]")
    weekday = (days.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
    if kind == "monthly":
        day_of_month = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(
            "int64"
        ) + 1
        nominal = days[(weekday == 4) & (day_of_month >= 15) & (day_of_month <= 21)]
        forward = False
    elif kind in _WEEKDAY:
        nominal = days[weekday == _WEEKDAY[kind]]
        forward = kind == "monday_weekly"
    else:
        raise ValueError(f"unknown expiry kind {kind!r}; expected one of {ALL_EXPIRY_KINDS}")
    return np.unique(_shift_to_session(nominal, forward))


_LISTED_FROM_DAY = {k: np.datetime64(v.date(), "D") for k, v in EXPIRY_KIND_LISTED_FROM.items()}


@lru_cache(maxsize=64)
def _union_of_kinds(active: tuple[str, ...]) -> np.ndarray:
    if not active:
        return np.array([], dtype="datetime64[D]")
    return np.unique(np.concatenate([_kind_expiries(k) for k in active]))


def _union_expiries(kinds: tuple[str, ...], as_of_day: np.datetime64) -> np.ndarray:
    return _union_of_kinds(tuple(k for k in kinds if _LISTED_FROM_DAY[k] <= as_of_day))


def _normalize_kinds(kinds: Iterable[str] | str | None) -> tuple[str, ...]:
    if kinds is None:
        return ALL_EXPIRY_KINDS
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(sorted(set(kinds)))
    bad = [k for k in kinds if k not in EXPIRY_KIND_LISTED_FROM]
    if bad or not kinds:
        raise ValueError(f"unknown expiry kind(s) {bad}; expected some of {ALL_EXPIRY_KINDS}")
    return kinds


def _naive(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("America/New_York").tz_localize(None)
    return ts


def listed_expiries(
    as_of_date, max_dte_days: int, kinds: Iterable[str] | str | None = None, min_dte_days: int = 0
) -> pd.DatetimeIndex:
    """Expiry dates listed at ``as_of_date`` with ``min_dte_days <= dte <= max_dte_days``.

    Args:
        as_of_date: the decision date (a timestamp; its time of day is ignored).
        max_dte_days: latest expiry, in calendar days after ``as_of_date``.
        kinds: expiry kinds to include (see the module table); all by default. A kind counts
            only from the date it was first listed.
        min_dte_days: earliest expiry in calendar days (0 includes an expiry on
            ``as_of_date`` itself).

    Returns:
        Sorted, unique DatetimeIndex of expiry dates (midnight timestamps).
    """
    if min_dte_days < 0 or max_dte_days < min_dte_days:
        raise ValueError(
            f"need 0 <= min_dte_days <= max_dte_days, got {min_dte_days} and {max_dte_days}"
        )
    day = np.datetime64(_naive(as_of_date).date(), "D")
    return _listed_expiries_cached(
        day, int(max_dte_days), _normalize_kinds(kinds), int(min_dte_days)
    )


@lru_cache(maxsize=4096)
def _listed_expiries_cached(
    day: np.datetime64, max_dte_days: int, kinds: tuple[str, ...], min_dte_days: int
) -> pd.DatetimeIndex:
    sessions = _sessions()
    if day < sessions[0] or day + np.timedelta64(max_dte_days, "D") > sessions[-1] + 1:
        raise ValueError(
            f"as_of_date {day} + {max_dte_days} days is outside the {CALENDAR_NAME} calendar "
            f"range {sessions[0]}..{sessions[-1]}"
        )
    expiries = _union_expiries(kinds, day)
    lo = np.searchsorted(expiries, day + np.timedelta64(min_dte_days, "D"), side="left")
    hi = np.searchsorted(expiries, day + np.timedelta64(max_dte_days, "D"), side="right")
    return pd.DatetimeIndex(expiries[lo:hi].astype("datetime64[ns]"))


def nearest_expiry(
    as_of_date,
    target_dte_days: float,
    kinds: Iterable[str] | str | None = None,
    min_dte_days: int = 1,
    max_dte_days: int = 1200,
) -> pd.Timestamp:
    """The listed expiry whose days to expiry are nearest ``target_dte_days``.

    Ties go to the later expiry. Only expiries at least ``min_dte_days`` away count
    (default 1: never open an option that expires today). Raises ValueError when none is
    listed in ``[min_dte_days, max_dte_days]``.
    """
    expiries = listed_expiries(as_of_date, max_dte_days, kinds, min_dte_days)
    if len(expiries) == 0:
        raise ValueError(
            f"no expiry of kinds {_normalize_kinds(kinds)} between {min_dte_days} and "
            f"{max_dte_days} days after {as_of_date}"
        )
    day_ns = _naive(as_of_date).normalize().value
    dte = (expiries.asi8 - day_ns) / NS_PER_DAY
    gap = np.abs(dte - float(target_dte_days))
    best = len(gap) - 1 - int(np.argmin(gap[::-1]))
    return expiries[best]


def timestamp_close_ns(ts) -> int:
    """Nanoseconds of a timestamp, with a midnight timestamp read as that day's 16:00 close.

    Timezone-aware timestamps are converted to New York local time first.
    """
    ts = _naive(ts)
    value = ts.value
    if value % NS_PER_DAY == 0:
        value += session_close_offset_ns(value)
    return value


def expiry_close_ns(expiry) -> int:
    """The close of ``expiry``'s session in ns (16:00 New York, or the early close)."""
    if type(expiry) is pd.Timestamp and expiry.tzinfo is None:
        return _day_close_ns(expiry.normalize().value)
    return _day_close_ns(_naive(expiry).normalize().value)


@lru_cache(maxsize=65536)
def _day_close_ns(day_ns: int) -> int:
    return day_ns + session_close_offset_ns(day_ns)


def t_years_to_expiry(as_of, expiry) -> float:
    """Years (of 365 days) from ``as_of`` to the 16:00 close of ``expiry``'s date; >= 0."""
    expiry_ns = expiry_close_ns(expiry)
    remaining = expiry_ns - timestamp_close_ns(as_of)
    return remaining / _NS_PER_YEAR if remaining > 0 else 0.0


def dte_days(as_of, expiry) -> int:
    """Calendar days from ``as_of``'s date to ``expiry``'s date (negative once past)."""
    return int((_naive(expiry).normalize() - _naive(as_of).normalize()).days)


def is_session(dates) -> np.ndarray:
    """Boolean mask: which of ``dates`` (normalised to days) are XNYS trading sessions."""
    days = pd.DatetimeIndex(pd.to_datetime(dates)).normalize().to_numpy().astype("datetime64[D]")
    sessions = _sessions()
    idx = np.clip(np.searchsorted(sessions, days), 0, len(sessions) - 1)
    return sessions[idx] == days
