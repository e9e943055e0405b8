"""GDP growth enters on its release date: modelled advance releases, ALFRED vintages, no
look-ahead by truncation, stale values dropped, file errors, and the config switch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import UserInputError
from config import load_config
from data import build_features, load_market
from data.macro import (
    GDP_COLUMN,
    GDP_MAX_AGE_DAYS,
    gdp_growth_on_bars,
    gdp_releases,
    gdp_releases_macrodata,
    read_gdp_csv,
)

TRUNCATION_DATES = ("2001-10-31", "2005-06-15", "2008-10-10", "2008-12-10", "2009-08-03",
                    "2010-03-01")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_market("embedded", gdp="macrodata", end="2011-06-30")


def _macrodata_levels() -> pd.Series:
    from statsmodels.datasets import macrodata

    raw = macrodata.load_pandas().data
    quarters = pd.PeriodIndex.from_fields(year=raw["year"].astype(int),
                                          quarter=raw["quarter"].astype(int), freq="Q")
    return pd.Series(raw["realgdp"].to_numpy(), index=quarters.to_timestamp())


def test_growth_enters_after_the_advance_release_not_at_its_quarter(frame):
    levels = _macrodata_levels()
    q1 = (levels["2009-01-01"] / levels["2008-10-01"]) ** 4 - 1
    q2 = (levels["2009-04-01"] / levels["2009-01-01"]) ** 4 - 1
    gdp = frame[GDP_COLUMN]
    # 2009Q2 (quarter ends June 30; BEA's advance estimate came on 2009-07-31) is public from
    # 2009-08-01 here: July's bars still show 2009Q1, August's first bar shows 2009Q2.
    np.testing.assert_allclose(gdp.loc["2009-05-01":"2009-07-31"], q1, rtol=1e-12)
    assert gdp.loc["2009-08-03"] == pytest.approx(q2, rel=1e-12)
    assert not np.isclose(gdp.loc[:"2009-07-31"], q2, rtol=1e-9).any()


@pytest.mark.parametrize("cutoff", TRUNCATION_DATES)
def test_no_look_ahead_by_truncation(frame, cutoff):
    """Recomputed on bars truncated at T, and on GDP data truncated to the quarters that had
    ended by T, every value at or before T is unchanged."""
    restricted = load_market("embedded", gdp="macrodata", end=cutoff)
    pd.testing.assert_series_equal(restricted[GDP_COLUMN], frame.loc[:cutoff, GDP_COLUMN],
                                   check_freq=False)
    levels = _macrodata_levels()
    quarter_ends = levels.index.to_period("Q").end_time
    known = levels[quarter_ends <= pd.Timestamp(cutoff)]
    bars = frame.loc[:cutoff].index
    recomputed = gdp_growth_on_bars(gdp_releases(known), bars)
    pd.testing.assert_series_equal(recomputed, frame.loc[:cutoff, GDP_COLUMN],
                                   check_freq=False, check_names=False)


def test_truncation_check_catches_a_reference_date_lag(frame):
    """The check above fails for values placed on their quarter (no release lag)."""
    releases = gdp_releases_macrodata()
    leaky = releases.assign(public_from=releases["quarter"])
    cutoff = "2008-10-10"
    bars = frame.loc[:cutoff].index
    full = gdp_growth_on_bars(leaky, bars)
    levels = _macrodata_levels()
    known = levels[levels.index.to_period("Q").end_time <= pd.Timestamp(cutoff)]
    cut = gdp_releases(known)
    truncated = gdp_growth_on_bars(cut.assign(public_from=cut["quarter"]), bars)
    assert not np.allclose(full.to_numpy(), truncated.to_numpy(), equal_nan=True)


def test_stale_value_becomes_unknown(frame):
    """macrodata ends with 2009Q3 (public 2009-11-01): the value is NaN once older than
    GDP_MAX_AGE_DAYS with no newer release."""
    gdp = frame[GDP_COLUMN]
    last_release = pd.Timestamp("2009-11-01")  # a Sunday: the value enters on Monday
    age = (gdp.index - last_release).days
    assert gdp[(age >= 0) & (age <= GDP_MAX_AGE_DAYS)].notna().all()
    assert gdp[age > GDP_MAX_AGE_DAYS].isna().all()
    assert gdp.loc["1999-01-04":"2009-12-31"].notna().all()


def test_features_carry_gdp_only_when_configured(frame):
    assert GDP_COLUMN in build_features(frame).columns
    plain = load_market("embedded", end="2001-12-31")
    assert GDP_COLUMN not in plain.columns
    assert GDP_COLUMN not in build_features(plain).columns


def test_fred_csv_equals_the_same_levels(tmp_path, frame):
    levels = _macrodata_levels()
    path = tmp_path / "GDPC1.csv"
    pd.DataFrame({"observation_date": levels.index.strftime("%Y-%m-%d"),
                  "GDPC1": levels.to_numpy()}).to_csv(path, index=False)
    from_file = load_market("embedded", gdp="csv", gdp_path=str(path), end="2011-06-30")
    pd.testing.assert_series_equal(from_file[GDP_COLUMN], frame[GDP_COLUMN])
    assert from_file.attrs["gdp"] == f"csv {path}"


def _vintage_rows() -> pd.DataFrame:
    """Made-up vintages: 2017Q4's advance estimate, its revision, then 2018Q1's advance."""
    return pd.DataFrame([
        ("2017-10-27", "2017-07-01", 100.0), ("2017-10-27", "2017-04-01", 99.0),
        ("2018-01-26", "2017-10-01", 101.0),                  # advance 2017Q4: growth from 100
        ("2018-02-28", "2017-10-01", 101.5),                  # second estimate of 2017Q4
        ("2018-04-27", "2018-01-01", 102.0),                  # advance 2018Q1
    ], columns=["realtime_start", "date", "value"])


def test_alfred_vintages_enter_on_their_release_dates(tmp_path):
    path = tmp_path / "alfred.csv"
    _vintage_rows().to_csv(path, index=False)
    releases = read_gdp_csv(path)
    bars = pd.bdate_range("2018-01-22", "2018-05-04")
    gdp = gdp_growth_on_bars(releases, bars)
    assert gdp.loc["2018-01-25"] == pytest.approx((100.0 / 99.0) ** 4 - 1)
    assert gdp.loc["2018-01-26"] == pytest.approx((101.0 / 100.0) ** 4 - 1)
    assert gdp.loc["2018-02-27"] == pytest.approx((101.0 / 100.0) ** 4 - 1)
    assert gdp.loc["2018-02-28"] == pytest.approx((101.5 / 100.0) ** 4 - 1)
    assert gdp.loc["2018-04-27"] == pytest.approx((102.0 / 101.5) ** 4 - 1)
    # Truncation: the vintages published by T alone give the same values up to T.
    for cutoff in ("2018-01-26", "2018-02-27", "2018-04-26"):
        rows = _vintage_rows()
        rows = rows[pd.to_datetime(rows["realtime_start"]) <= pd.Timestamp(cutoff)]
        cut_path = tmp_path / f"alfred_{cutoff}.csv"
        rows.to_csv(cut_path, index=False)
        pd.testing.assert_series_equal(
            gdp_growth_on_bars(read_gdp_csv(cut_path), bars[bars <= cutoff]),
            gdp.loc[:cutoff], check_freq=False)
    # ALFRED's wide download (one column per vintage) reads the same.
    wide = _vintage_rows().pivot(index="date", columns="realtime_start", values="value")
    wide.columns = [f"GDPC1_{c.replace('-', '')}" for c in wide.columns]
    wide_path = tmp_path / "alfred_wide.csv"
    wide.rename_axis("observation_date").reset_index().to_csv(wide_path, index=False)
    pd.testing.assert_series_equal(gdp_growth_on_bars(read_gdp_csv(wide_path), bars), gdp)


def test_bad_gdp_file_names_file_column_and_line(tmp_path):
    path = tmp_path / "gdp.csv"
    path.write_text("DATE,GDPC1\n2017-01-01,100\n2017-04-01,abc\n2017-07-01,101\n")
    with pytest.raises(UserInputError, match=r"gdp.csv.*'GDPC1'.*'abc' on line 3"):
        read_gdp_csv(path)
    path.write_text("when,GDPC1\n2017-01-01,100\n")
    with pytest.raises(UserInputError, match="no date column"):
        read_gdp_csv(path)
    path.write_text("DATE,GDPC1\n2017-01-01,100\n2017-04-01,.\n2017-07-01,101\n")
    with pytest.raises(UserInputError, match="not consecutive quarters"):
        read_gdp_csv(path)


def test_config_gdp_keys(tmp_path):
    base = {"segments": {"train": {"start": "2001-01-01", "end": "2001-12-31"},
                         "valid": {"start": "2002-01-01", "end": "2002-06-30"},
                         "test": {"start": "2002-07-01", "end": "2002-12-31"}}}
    cfg = load_config({**base, "data": {"gdp": "macrodata"}})
    assert cfg.data.load_options()["gdp"] == "macrodata"
    assert "gdp" not in load_config(base).data.load_options()
    with pytest.raises(UserInputError, match="gdp_path"):
        load_config({**base, "data": {"gdp": "csv"}})
