"""Sentiment: the after-the-close rule, daily scores, VADER headlines, truncation, defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import UserInputError
from config import load_config
from data import build_features, load_market
from data.sentiment import (
    SENTIMENT_COUNT_COLUMN,
    SENTIMENT_SCORE_COLUMN,
    attach_sentiment,
    bar_close_times,
    read_sentiment,
    score_headlines,
    sentiment_on_bars,
)

SCORE, COUNT = SENTIMENT_SCORE_COLUMN, SENTIMENT_COUNT_COLUMN


@pytest.fixture(scope="module")
def july_2018() -> pd.DataFrame:
    """Embedded daily bars around 2018-07-03, an early close (13:00) before a holiday."""
    return load_market("embedded", start="2018-06-25", end="2018-07-13")


def _write(tmp_path, rows, name="news.csv", columns=("published_at", "score")):
    path = tmp_path / name
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_headline_after_the_close_counts_for_the_next_bar(tmp_path, july_2018):
    rows = [
        ("2018-06-25 10:00", 0.1),   # first row: 06-25 (the frame's first bar, so unknown)
        ("2018-06-27 15:59", 0.5),   # before 16:00 -> 06-27
        ("2018-06-27 16:00", -0.4),  # exactly at the close -> next bar 06-28
        ("2018-06-27 16:01", -0.2),  # after the close -> 06-28
        ("2018-06-29 18:00", 0.9),   # Friday evening -> Monday 07-02
        ("2018-06-30 12:00", 0.3),   # Saturday -> Monday 07-02
        ("2018-07-03 12:59", 0.2),   # before the 13:00 early close -> 07-03
        ("2018-07-03 14:00", -0.6),  # after the early close, holiday 07-04 -> 07-05
    ]
    out = attach_sentiment(july_2018, _write(tmp_path, rows))
    got = out[[SCORE, COUNT]]
    assert got.loc["2018-06-25"].isna().all()
    assert got.loc["2018-06-26"].tolist() == [0.0, 0.0]  # no news: neutral, none counted
    assert got.loc["2018-06-27"].tolist() == [0.5, 1.0]
    assert got.loc["2018-06-28", SCORE] == pytest.approx(-0.3)
    assert got.loc["2018-06-28", COUNT] == 2.0
    assert got.loc["2018-07-02", SCORE] == pytest.approx(0.6)
    assert got.loc["2018-07-03"].tolist() == [0.2, 1.0]
    assert got.loc["2018-07-05"].tolist() == [-0.6, 1.0]


def test_no_look_ahead_by_truncation(tmp_path, july_2018):
    """Bars and news cut at a close T give the same values up to T; the check fails for a
    rule that lets a headline after the close into its own bar."""
    rng = np.random.default_rng(0)
    start = pd.Timestamp("2018-06-24").value
    stamps = pd.to_datetime(np.sort(rng.integers(start, pd.Timestamp("2018-07-14").value, 200)))
    rows = list(zip(stamps.strftime("%Y-%m-%d %H:%M:%S"), rng.normal(size=200), strict=True))
    full = attach_sentiment(july_2018, _write(tmp_path, rows))
    closes = bar_close_times(july_2018.index)
    for cutoff in ("2018-06-28", "2018-07-03", "2018-07-10"):
        close = closes[july_2018.index.get_loc(pd.Timestamp(cutoff))]
        known = [r for r in rows if pd.Timestamp(r[0]) <= close]
        cut = attach_sentiment(july_2018.loc[:cutoff], _write(tmp_path, known, "cut.csv"))
        pd.testing.assert_frame_equal(cut[[SCORE, COUNT]], full.loc[:cutoff, [SCORE, COUNT]])
        # The same check fails for a leaky rule: a bar that counts its whole day's headlines.
        items = read_sentiment(_write(tmp_path, rows, "all.csv"))
        day_ends = july_2018.index + pd.Timedelta(days=1)
        leaky_full = sentiment_on_bars(items, day_ends)
        leaky_cut = sentiment_on_bars(items[items["published_at"] <= close],
                                      day_ends[day_ends <= pd.Timestamp(cutoff) + pd.Timedelta(days=1)])
        assert not np.allclose(leaky_cut[SCORE], leaky_full[SCORE].iloc[:len(leaky_cut)],
                               equal_nan=True)


def test_daily_scores_count_from_the_next_session(tmp_path, july_2018):
    """A score dated D (no time) is known at the end of D: it counts for the next bar."""
    path = _write(tmp_path, [("2018-06-26", 0.4), ("2018-06-29", -0.2), ("2018-06-30", 0.6)],
                  columns=("date", "sentiment"))
    out = attach_sentiment(july_2018, path)
    assert np.isnan(out.loc["2018-06-26", SCORE])   # before the file's first row counts
    assert out.loc["2018-06-27", SCORE] == pytest.approx(0.4)
    assert out.loc["2018-07-02", SCORE] == pytest.approx(0.2)  # Friday's and Saturday's
    assert out.loc["2018-07-02", COUNT] == 2.0


def test_utc_offsets_are_converted_to_new_york(tmp_path, july_2018):
    # 19:30 UTC = 15:30 New York (EDT): before the close; 20:30 UTC = 16:30: the next bar.
    path = _write(tmp_path, [("2018-06-25T12:00:00Z", 0.0), ("2018-06-27T19:30:00Z", 1.0),
                             ("2018-06-27T20:30:00+00:00", -1.0)])
    out = attach_sentiment(july_2018, path)
    assert out.loc["2018-06-27", SCORE] == 1.0
    assert out.loc["2018-06-28", SCORE] == -1.0


def test_headlines_are_scored_by_vader(tmp_path, july_2018):
    headlines = ["Stocks soar to record highs on strong earnings",
                 "Markets plunge as recession fears grow"]
    good, bad = score_headlines(headlines)
    assert good > 0.3 and bad < -0.3
    path = _write(tmp_path, [("2018-06-26 09:00", headlines[0]), ("2018-06-27 09:00",
                                                                  headlines[1])],
                  columns=("timestamp", "headline"))
    out = attach_sentiment(july_2018, path)
    assert out.loc["2018-06-26", SCORE] == pytest.approx(good)
    assert out.loc["2018-06-27", SCORE] == pytest.approx(bad)


def test_intraday_bars_use_their_end(tmp_path):
    index = pd.DatetimeIndex(["2018-06-27 09:30", "2018-06-27 10:30", "2018-06-27 11:30"])
    frame = pd.DataFrame({"close": [1.0, 2.0, 3.0]}, index=index)
    frame.attrs["bar_stamp"] = "start"
    assert list(bar_close_times(index, "start")) == list(index + pd.Timedelta(hours=1))
    path = _write(tmp_path, [("2018-06-27 09:00", 0.0), ("2018-06-27 11:29", 0.7),
                             ("2018-06-27 11:30", -0.7)])
    out = attach_sentiment(frame, path)
    # the 10:30 bar ends at 11:30: 11:29 counts for it, 11:30 for the next one
    assert out[SCORE].tolist()[1:] == [0.7, -0.7]


def test_absent_by_default_and_features_when_given(tmp_path, july_2018):
    base = {"segments": {"train": {"start": "2001-01-01", "end": "2001-12-31"},
                         "valid": {"start": "2002-01-01", "end": "2002-06-30"},
                         "test": {"start": "2002-07-01", "end": "2002-12-31"}}}
    assert "sentiment_path" not in load_config(base).data.load_options()
    assert SCORE not in build_features(july_2018).columns
    path = _write(tmp_path, [("2018-06-25 10:00", 0.1), ("2018-06-26 10:00", 0.2)])
    loaded = load_market("embedded", start="2018-06-25", end="2018-07-13",
                         sentiment_path=str(path))
    features = build_features(loaded)
    assert {SCORE, COUNT} <= set(features.columns)
    assert features.loc["2018-06-26", SCORE] == pytest.approx(0.2)
    pd.testing.assert_frame_equal(build_features(loaded).drop(columns=[SCORE, COUNT]),
                                  build_features(july_2018))


def test_bad_sentiment_file_names_file_column_and_line(tmp_path):
    path = _write(tmp_path, [("2018-06-25 10:00", "0.1"), ("2018-06-26 10:00", "high")])
    with pytest.raises(UserInputError, match=r"news.csv: column 'score'.*'high' on line 3"):
        read_sentiment(path)
    path = _write(tmp_path, [("2018-06-25 10:00", 0.1)], columns=("when", "score"))
    with pytest.raises(UserInputError, match="expected a time column"):
        read_sentiment(path)
    path = _write(tmp_path, [("2018-06-25 10:00Z", 0.1), ("2018-06-25 11:00", 0.2)])
    with pytest.raises(UserInputError, match="mixes times with and without a UTC offset"):
        read_sentiment(path)
    path = _write(tmp_path, [("not a time", 0.1)])
    with pytest.raises(UserInputError, match="unreadable time 'not a time' on line 2"):
        read_sentiment(path)
