"""Monthly macro series aligned to the bars on which they became public.

A monthly value for reference month M is never visible before its publication date. The lags
used here (each a named constant; all conservative, i.e. never earlier than the real release):

* ``CPI_RELEASE_DAY = 20``: the BLS publishes CPI for month M at 08:30 ET on a day between
  roughly the 10th and the 19th of month M+1 (1999-2018). We let the value enter on the first bar
  dated on or after the 20th of M+1, later than nearly every real release, so no bar sees a CPI
  print before it was public. (The October 2013 shutdown delayed one release to Oct 30; that one
  value enters 10 days early. Stated rather than hidden.)
* Moody's AAA/BAA yields (FRED ``AAA``/``BAA``) are monthly averages of daily yields that are
  themselves public each day; the average for month M is fully known after M's last session, so it
  enters on the first bar of month M+1.
* Fama-French ``RF`` for month M is the one-month T-bill return over M, set by the bill's price at
  the end of M-1: the rate was a market quote before M began, so it enters on the first bar of
  month M. (Ken French publishes the file later; the information itself was public.)

Values are forward-filled from their entry bar onwards and are NaN before their first entry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "CPI_RELEASE_DAY",
    "align_monthly_to_bars",
    "publication_dates",
]

CPI_RELEASE_DAY = 20
MONTHS_PER_YEAR = 12


def publication_dates(reference_months: pd.DatetimeIndex, lag_months: int,
                      release_day: int = 1) -> pd.DatetimeIndex:
    """Calendar date from which a monthly value is public.

    ``reference_months`` are month starts (e.g. 2018-01-01 for January 2018). The value becomes
    public on day ``release_day`` of the month ``lag_months`` after the reference month.
    """
    month_starts = reference_months.to_period("M").to_timestamp()
    shifted = month_starts + pd.DateOffset(months=lag_months)
    return shifted + pd.to_timedelta(release_day - 1, unit="D")


def align_monthly_to_bars(values: pd.Series, public_from: pd.DatetimeIndex,
                          bars: pd.DatetimeIndex) -> pd.Series:
    """Place each monthly value on the first bar at or after its publication date, then ffill.

    A bar at timestamp ``b`` sees the latest value whose publication date is ``<= b``'s date.
    """
    order = np.argsort(public_from.to_numpy())
    release = pd.Series(values.to_numpy()[order], index=public_from[order])
    release = release[~release.index.duplicated(keep="last")]
    bar_days = bars.normalize()
    position = release.index.searchsorted(bar_days, side="right") - 1
    out = np.full(len(bars), np.nan)
    known = position >= 0
    out[known] = release.to_numpy(dtype="float64")[position[known]]
    return pd.Series(out, index=bars, name=values.name)
