"""Expiry calendar: third Fridays, weeklies by listing date, holiday shifts, time to expiry."""

from __future__ import annotations

import time
import warnings

import pandas as pd
import pytest

from options.calendar import (
    dte_days,
    listed_expiries,
    nearest_expiry,
    t_years_to_expiry,
)


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


def test_good_friday_moves_monthly_expiry_to_thursday():
    monthly = listed_expiries("2014-04-01", 30, kinds="monthly")
    assert list(monthly) == [ts("2014-04-17")]


def test_third_fridays_of_2015():
    got = listed_expiries("2015-01-01", 364, kinds="monthly")
    expected = [
        d
        for d in pd.date_range("2015-01-01", "2015-12-31")
        if d.weekday() == 4 and 15 <= d.day <= 21
    ]
    assert list(got) == expected  # no third Friday holiday in 2015


def test_weekly_fridays_and_good_friday_shift():
    got = listed_expiries("2015-03-25", 14, kinds="friday_weekly")
    # Good Friday 2015-04-03: the weekly expires Thursday 2015-04-02
    assert list(got) == [ts("2015-03-27"), ts("2015-04-02")]


def test_kinds_appear_only_once_listed():
    def weekdays(as_of, days=28):
        return {d.weekday() for d in listed_expiries(as_of, days)}

    assert weekdays("2004-06-01", 60) == {4}  # monthlies only before Weeklys
    assert len(listed_expiries("2004-06-01", 60)) == 2
    assert weekdays("2015-06-01") == {4}
    assert weekdays("2016-06-01") == {2, 4}
    assert weekdays("2018-06-01") == {0, 2, 4}
    assert weekdays("2023-06-01") == {0, 1, 2, 3, 4}


def test_holiday_rules_by_weekday():
    # Monday weekly on MLK day 2019-01-21 moves forward to Tuesday 2019-01-22
    assert ts("2019-01-22") in listed_expiries("2019-01-14", 10, kinds="monday_weekly")
    # Wednesday weekly on 2018-07-04 moves back to Tuesday 2018-07-03
    wed = listed_expiries("2018-06-28", 10, kinds="wednesday_weekly")
    assert ts("2018-07-03") in wed and ts("2018-07-04") not in wed
    # unscheduled closure (national day of mourning, Wednesday 2018-12-05) also shifts back
    assert ts("2018-12-04") in listed_expiries("2018-11-30", 7, kinds="wednesday_weekly")


def test_expiries_are_sessions_and_unique():
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 deprecations inside exchange_calendars
        cal = xcals.get_calendar("XNYS", start="2010-01-04")
        sessions = set(cal.sessions.tz_localize(None))
    got = listed_expiries("2012-01-03", 3000)
    assert got.is_unique and got.is_monotonic_increasing
    assert set(got) <= sessions


def test_min_max_dte_and_nearest_expiry():
    got = listed_expiries("2014-04-17", 8, kinds="friday_weekly", min_dte_days=0)
    assert got[0] == ts("2014-04-17")  # expiring today counts with min_dte_days=0
    assert nearest_expiry("2014-04-01", 30) == ts("2014-05-02")  # 31 days beats 24
    assert nearest_expiry("2014-04-01", 27.5) == ts("2014-05-02")  # tie -> later
    assert nearest_expiry("2014-04-01", 30, kinds="monthly") == ts("2014-04-17")
    assert nearest_expiry("2014-04-17", 0, kinds="monthly") == ts("2014-05-16")  # min 1 day
    with pytest.raises(ValueError, match="no expiry"):
        nearest_expiry("2014-04-01", 30, kinds="monthly", max_dte_days=10)
    with pytest.raises(ValueError, match="unknown expiry kind"):
        listed_expiries("2014-04-01", 30, kinds="daily")


def test_time_to_expiry():
    assert t_years_to_expiry("2014-04-17", "2014-04-17") == 0.0
    assert t_years_to_expiry("2014-04-10", "2014-04-17") == pytest.approx(7 / 365)
    assert t_years_to_expiry("2014-04-17 10:00", "2014-04-17") == pytest.approx(6 / 24 / 365)
    assert t_years_to_expiry("2014-04-18", "2014-04-17") == 0.0
    aware = pd.Timestamp("2014-04-17 14:00", tz="UTC")  # 10:00 in New York
    assert t_years_to_expiry(aware, "2014-04-17") == pytest.approx(6 / 24 / 365)
    assert dte_days("2014-04-01 15:00", "2014-04-17") == 16


def test_repeated_calls_are_cheap():
    listed_expiries("2016-01-04", 60)
    days = pd.bdate_range("2016-01-04", periods=250)
    timings = []  # the best of three: a busy machine may pause any single pass
    for _ in range(3):
        start = time.perf_counter()
        for day in days:
            nearest_expiry(day, 30)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.5
