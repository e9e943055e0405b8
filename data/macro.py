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

Quarterly real GDP growth (``gdp_growth_qoq_ann``: quarter-on-quarter growth of real GDP,
annualised as BEA reports it, ``(GDP_Q / GDP_Q-1)^4 - 1``, decimal) is optional
(``data.gdp`` in the config) and enters on its release date:

* ``GDP_RELEASE_MONTHS_AFTER_QUARTER = 2``: BEA's advance estimate for a quarter is published at
  08:30 ET late in the month after the quarter ends (e.g. 2018Q1 on 2018-04-27). Where a file
  has no release dates the value enters on the first bar dated on or after the 1st of the second
  month after the quarter (Q1 on May 1, about 30 days after the quarter's end), never earlier
  than a regular release. (Government shutdowns delayed two releases past that day: 2013Q3 to
  2013-11-07 and 2018Q4 to 2019-02-28; those values enter days early. Stated, not hidden.)
* A vintage (real-time) file from ALFRED carries each value's release date (``realtime_start``);
  then the feature is the growth of the latest quarter in each vintage, computed within that
  vintage, entering on its release date (advance, second and third estimates and revisions
  alike). This is the only source without revised values: ``macrodata`` (statsmodels' shipped
  copy of FRED, a 2009 vintage, 1959Q1-2009Q3) and a plain FRED download hold today's revised
  numbers, so their timing is causal but their levels include later revisions.
* A value older than ``GDP_MAX_AGE_DAYS`` with no newer release is NaN (unknown): a file that
  ends (``macrodata`` ends with 2009Q3) never leaves a stale growth rate on later bars.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import MarketDataError

__all__ = [
    "CPI_RELEASE_DAY",
    "GDP_COLUMN",
    "GDP_MAX_AGE_DAYS",
    "GDP_RELEASE_MONTHS_AFTER_QUARTER",
    "GDP_SOURCES",
    "align_monthly_to_bars",
    "attach_gdp",
    "gdp_growth_on_bars",
    "gdp_releases",
    "gdp_releases_macrodata",
    "publication_dates",
    "read_gdp_csv",
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


# ------------------------------------------------------------------------------------- GDP
GDP_COLUMN = "gdp_growth_qoq_ann"
GDP_SOURCES = ("none", "macrodata", "csv")
GDP_RELEASE_MONTHS_AFTER_QUARTER = 2
GDP_MAX_AGE_DAYS = 200
"""Two quarterly releases missed in a row (about 180 days) leave the value unknown."""
QUARTERS_PER_YEAR = 4
_NS_PER_DAY = 86_400_000_000_000
_VINTAGE_SUFFIX = re.compile(r"^(?P<name>.+)_(?P<vintage>\d{8})$")
_DATE_HEADERS = ("date", "observation_date")


def _annualised_growth(levels: np.ndarray) -> np.ndarray:
    return (levels[1:] / levels[:-1]) ** QUARTERS_PER_YEAR - 1.0


def gdp_releases(levels: pd.Series) -> pd.DataFrame:
    """Releases of quarterly growth from real GDP levels indexed by quarter start dates
    (FRED's ``DATE``), each public from its modelled advance-release date.

    Returns a frame with ``public_from`` (date), ``quarter`` (its first day) and ``growth``.
    """
    levels = levels.dropna().sort_index()
    quarters = pd.DatetimeIndex(levels.index).to_period("Q")
    if len(quarters) > 1 and (np.diff(quarters.asi8) != 1).any():
        gap = quarters[1:][np.diff(quarters.asi8) != 1][0]
        raise MarketDataError(f"GDP levels are not consecutive quarters (gap before {gap})")
    growth = _annualised_growth(levels.to_numpy(dtype="float64"))
    last_months = quarters[1:].asfreq("M", how="end").to_timestamp()
    public = publication_dates(last_months, lag_months=GDP_RELEASE_MONTHS_AFTER_QUARTER)
    return pd.DataFrame({"public_from": public, "quarter": quarters[1:].to_timestamp(),
                         "growth": growth})


def gdp_releases_macrodata() -> pd.DataFrame:
    """Releases from statsmodels' shipped ``macrodata`` (``realgdp``, 1959Q1-2009Q3)."""
    # statsmodels is heavy: only for its bundled macro data set
    from statsmodels.datasets import macrodata

    raw = macrodata.load_pandas().data
    starts = pd.PeriodIndex.from_fields(year=raw["year"].astype(int),
                                        quarter=raw["quarter"].astype(int), freq="Q")
    return gdp_releases(pd.Series(raw["realgdp"].to_numpy(dtype="float64"),
                                  index=starts.to_timestamp()))


def _vintage_releases(long: pd.DataFrame) -> pd.DataFrame:
    """From rows (realtime_start, quarter, value): per vintage date, the growth of its latest
    quarter, computed from the values known on that date (each quarter's latest value with
    ``realtime_start`` on or before it)."""
    long = long.sort_values(["realtime_start", "quarter"])
    out = []
    for vintage in long["realtime_start"].unique():
        known = long[long["realtime_start"] <= vintage]
        snapshot = known.groupby("quarter")["value"].last().sort_index()
        if len(snapshot) < 2:
            continue
        last_two = snapshot.iloc[-2:]
        periods = pd.DatetimeIndex(last_two.index).to_period("Q")
        if periods[1].ordinal - periods[0].ordinal != 1:
            continue
        growth = _annualised_growth(last_two.to_numpy(dtype="float64"))[0]
        out.append((pd.Timestamp(vintage), last_two.index[1], growth))
    return pd.DataFrame(out, columns=["public_from", "quarter", "growth"])


def read_gdp_csv(path: str | Path) -> pd.DataFrame:
    """Releases of quarterly real GDP growth read from a FRED or ALFRED CSV.

    Accepted layouts (header names case-insensitive):

    * FRED: ``DATE`` (or ``observation_date``) and one level column (``GDPC1``): quarter start
      dates; each value is public from its modelled advance-release date.
    * ALFRED vintages, long: ``realtime_start``, ``date`` (or ``observation_date``) and
      ``value`` (or ``GDPC1``), ``realtime_end`` optional: each value public from its
      ``realtime_start``.
    * ALFRED vintages, wide: ``observation_date`` and one column per vintage named
      ``GDPC1_YYYYMMDD`` (the vintage's release date).

    FRED's missing-value marker ``.`` (and ``#N/A``) is skipped; any other non-number is an
    error naming the file, column and line.
    """
    path = Path(path)
    source = f"GDP file {path}"
    try:
        raw = pd.read_csv(path, dtype=str, na_values=[".", "#N/A", ""], keep_default_na=True)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MarketDataError(f"{source}: cannot read ({exc})") from exc
    columns = {c.strip().lower(): c for c in raw.columns}
    date_key = next((columns[h] for h in _DATE_HEADERS if h in columns), None)
    if date_key is None:
        raise MarketDataError(f"{source}: no date column; expected 'DATE' or 'observation_date' "
                              f"(found {list(raw.columns)})")

    def numbers(column: str) -> pd.Series:
        values = pd.to_numeric(raw[column], errors="coerce")
        bad = values.isna() & raw[column].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise MarketDataError(f"{source}: column '{column}' has {int(bad.sum())} non-numeric "
                                  f"value(s), first {raw[column][bad].iloc[0]!r} on line {line}")
        return values

    def dates(column: str) -> pd.Series:
        parsed = pd.to_datetime(raw[column], errors="coerce", format="ISO8601")
        bad = parsed.isna() & raw[column].notna()
        if bad.any() or parsed.isna().all():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2 if bad.any() else 2
            raise MarketDataError(f"{source}: column '{column}' has unparseable dates, first on "
                                  f"line {line}; expected YYYY-MM-DD")
        return parsed

    quarter = dates(date_key)
    if "realtime_start" in columns:
        value_key = columns.get("value") or next(
            (c for k, c in columns.items() if k not in ("realtime_start", "realtime_end")
             and c != date_key), None)
        if value_key is None:
            raise MarketDataError(f"{source}: vintage file without a value column")
        long = pd.DataFrame({"realtime_start": dates(columns["realtime_start"]),
                             "quarter": quarter, "value": numbers(value_key)}).dropna()
        return _vintage_releases(long)
    others = [c for c in raw.columns if c != date_key]
    vintages = [c for c in others if _VINTAGE_SUFFIX.match(c.strip())]
    if vintages and len(vintages) == len(others):
        parts = []
        for column in vintages:
            stamp = _VINTAGE_SUFFIX.match(column.strip()).group("vintage")
            parts.append(pd.DataFrame({"realtime_start": pd.Timestamp(stamp),
                                       "quarter": quarter, "value": numbers(column)}))
        return _vintage_releases(pd.concat(parts).dropna())
    if len(others) != 1:
        raise MarketDataError(f"{source}: expected one GDP level column (e.g. GDPC1) next to "
                              f"'{date_key}', or vintage columns GDPC1_YYYYMMDD, or "
                              f"realtime_start; found {others}")
    levels = pd.Series(numbers(others[0]).to_numpy(), index=pd.DatetimeIndex(quarter))
    if levels.dropna().lt(0).any() or len(levels.dropna()) < 2:
        raise MarketDataError(f"{source}: column '{others[0]}' needs at least two positive "
                              "quarterly levels")
    return gdp_releases(levels)


def gdp_growth_on_bars(releases: pd.DataFrame, bars: pd.DatetimeIndex,
                       max_age_days: int = GDP_MAX_AGE_DAYS) -> pd.Series:
    """Latest released growth on each bar (first bar on or after its release date), NaN before
    the first release and once the latest release is older than ``max_age_days``."""
    public = pd.DatetimeIndex(releases["public_from"])
    growth = align_monthly_to_bars(releases["growth"].rename(GDP_COLUMN), public, bars)
    release_day = pd.Series(public.normalize().as_unit("ns").asi8 // _NS_PER_DAY,
                            dtype="float64")
    entered = align_monthly_to_bars(release_day, public, bars).to_numpy()
    bar_day = bars.normalize().as_unit("ns").asi8 // _NS_PER_DAY
    stale = bar_day - entered > max_age_days
    return growth.mask(stale).rename(GDP_COLUMN)


def attach_gdp(frame: pd.DataFrame, gdp: str = "none", gdp_path: str | None = None
               ) -> pd.DataFrame:
    """The frame with ``gdp_growth_qoq_ann`` from ``gdp`` (``none``: unchanged; ``macrodata``;
    ``csv``: ``gdp_path``), its provenance in ``frame.attrs['gdp']``."""
    if gdp == "none":
        return frame
    if gdp == "macrodata":
        releases, origin = gdp_releases_macrodata(), "statsmodels macrodata (1959Q1-2009Q3)"
    elif gdp == "csv":
        if not gdp_path:
            raise MarketDataError("data.gdp is 'csv' but data.gdp_path is not set")
        releases, origin = read_gdp_csv(gdp_path), f"csv {gdp_path}"
    else:
        raise MarketDataError(f"data.gdp '{gdp}' unknown; expected one of {GDP_SOURCES}")
    attrs = dict(frame.attrs)
    out = frame.copy()
    out[GDP_COLUMN] = gdp_growth_on_bars(releases, frame.index).to_numpy()
    out.attrs.update(attrs, gdp=origin)
    return out
