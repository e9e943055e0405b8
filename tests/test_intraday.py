"""Intraday runs (issue 26 item 5): made-up intraday bars, hours -> bars, causal resampling to
coarser timeframes, the 12-96 hour comparison table and configs/intraday.yaml end to end."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from common.errors import UserInputError
from data.calendar import horizon_bars
from data.market import load_market
from data.synthetic_intraday import IntradaySpec, make_intraday_bars, session_bar_starts
from forecasters.config import ForecastConfig
from forecasters.timeframes import (
    TABLE_COLUMNS,
    compare_timeframes,
    horizon_bars_or_none,
    resample_bars,
    session_close_rows,
)
from tests.helpers import ROOT, run

HOURS = (12, 24, 48, 96)


@pytest.fixture(scope="module")
def bars_5m(made_up_5m_csv) -> pd.DataFrame:
    return load_market("csv", path=made_up_5m_csv)


def test_made_up_bars_follow_the_nyse_calendar_and_cli_says_made_up(tmp_path):
    # 2024-07-03 closes at 13:00: 42 five-minute bars, the others 78; 07-04 is a holiday.
    stamps = session_bar_starts("2024-07-02", 3, 5)
    per_day = pd.Series(1, index=stamps).groupby(stamps.normalize()).size()
    assert per_day.to_dict() == {pd.Timestamp("2024-07-02"): 78, pd.Timestamp("2024-07-03"): 42,
                                 pd.Timestamp("2024-07-05"): 78}
    assert stamps[0] == pd.Timestamp("2024-07-02 09:30") and stamps[-1] == pd.Timestamp(
        "2024-07-05 15:55")
    out = run("-m", "data.synthetic_intraday", "--out", str(tmp_path / "b.csv"), "--sessions", "2",
              "--bar-minutes", "15")
    assert out.returncode == 0, out.stderr
    assert "MADE-UP" in out.stdout
    frame = load_market("csv", path=tmp_path / "b.csv")
    assert len(frame) == 2 * 26 and frame["iv_index"].between(0.05, 0.5).all()
    bad = run("-m", "data.synthetic_intraday", "--out", str(tmp_path / "c.csv"), "--bar-minutes",
              "0")
    assert bad.returncode == 2 and "bar_minutes" in bad.stderr and "Traceback" not in bad.stderr


def test_hours_map_to_bars_through_the_regular_session(bars_5m):
    # Independent reference: 24 hours = one session of ceil(390 / minutes) bars, rounded.
    for timeframe, minutes in (("5m", 5), ("15m", 15), ("1h", 60)):
        bars = bars_5m if minutes == 5 else resample_bars(bars_5m, timeframe)
        per_session = math.ceil(390 / minutes)
        expected = [max(1, round(h / 24 * per_session)) for h in HOURS]
        assert [horizon_bars(h, bars.index) for h in HOURS] == expected
    assert [horizon_bars(h, bars_5m.index) for h in HOURS] == [39, 78, 156, 312]
    daily = resample_bars(bars_5m, "1d")
    assert [horizon_bars_or_none(h, daily.index) for h in HOURS] == [None, 1, 2, 4]
    config = ForecastConfig(horizons_hours=list(HOURS), members=["vol_rw"])
    from forecasters.walkforward import for_frame

    assert for_frame(config, bars_5m.index).horizons == [39, 78, 156, 312]


def test_resampled_bar_aggregates_the_fine_bars_inside_it(bars_5m):
    fifteen = resample_bars(bars_5m, "15m")
    first = bars_5m.iloc[:3]  # 09:30, 09:35, 09:40 make the 09:30 fifteen-minute bar
    row = fifteen.iloc[0]
    assert fifteen.index[0] == pd.Timestamp("2024-01-02 09:30")
    assert row["open"] == first["open"].iloc[0] and row["close"] == first["close"].iloc[-1]
    assert row["high"] == first["high"].max() and row["low"] == first["low"].min()
    assert row["volume"] == first["volume"].sum()
    assert row["iv_index"] == first["iv_index"].iloc[-1]
    hourly = resample_bars(bars_5m, "1h")
    last_of_day = hourly.loc["2024-01-02"].iloc[-1]  # 15:30-16:00: six five-minute bars
    assert hourly.loc["2024-01-02"].index[-1] == pd.Timestamp("2024-01-02 15:30")
    assert last_of_day["volume"] == bars_5m.loc["2024-01-02 15:30":"2024-01-02 15:55",
                                                "volume"].sum()
    daily = resample_bars(bars_5m, "1d")
    assert daily.index[0] == pd.Timestamp("2024-01-02") and len(daily) == 40
    assert daily["close"].iloc[0] == bars_5m.loc["2024-01-02", "close"].iloc[-1]
    assert session_close_rows(bars_5m.index).sum() == 40
    with pytest.raises(UserInputError, match="5m cannot be built from 15-minute bars"):
        resample_bars(bars_5m.iloc[::3], "5m")


def test_early_close_session_ends_at_its_close():
    frame = make_intraday_bars(IntradaySpec(sessions=3, first_session="2024-07-02"), seed=1)
    hourly = resample_bars(frame, "1h")
    assert list(hourly.loc["2024-07-03"].index.strftime("%H:%M")) == ["09:30", "10:30", "11:30",
                                                                      "12:30"]
    daily = resample_bars(frame, "1d")
    assert daily.loc["2024-07-03", "close"] == frame.loc["2024-07-03 12:55", "close"]


@pytest.mark.parametrize("timeframe", ["15m", "1h", "1d"])
def test_resampling_is_causal_by_truncation(bars_5m, timeframe):
    """A coarse bar built from the bars up to any cut equals the one built from the whole file
    when it ends by the cut, and a bar the cut falls inside is not built at all."""
    full = resample_bars(bars_5m, timeframe)
    minutes = {"15m": 15, "1h": 60}.get(timeframe)
    for cut in (7, 78, 100, 500, 1171, 2000):
        cut_end = bars_5m.index[cut - 1] + pd.Timedelta(minutes=5)
        # Bars after the cut changed: nothing that ends by the cut may see it.
        altered = bars_5m.copy()
        altered.iloc[cut:, :4] *= 1.5
        part = resample_bars(altered, timeframe)
        truncated = resample_bars(bars_5m.iloc[:cut], timeframe)
        if minutes is None:
            ends = full.index + pd.Timedelta(hours=16)
        else:
            ends = pd.DatetimeIndex(np.minimum(
                (full.index + pd.Timedelta(minutes=minutes)).to_numpy(),
                (full.index.normalize() + pd.Timedelta(hours=16)).to_numpy()))
        done = full[ends <= cut_end]
        pd.testing.assert_frame_equal(truncated, done, check_freq=False)
        pd.testing.assert_frame_equal(part.loc[done.index], done, check_freq=False)


def test_baseline_forecast_rule_names_the_horizons_it_can_read():
    from agents.baselines import make_baseline

    names = [f"forecast_h{h}_q0.500_vs_implied_move" for h in (39, 78)]
    with pytest.raises(UserInputError, match=r"forecast_horizon_bars 5 .*\[39, 78\]"):
        make_baseline("forecast_rule", names)


def _light_config() -> ForecastConfig:
    return ForecastConfig(members=["vol_rw"], references=["random_walk"], min_train_bars=20,
                          n_jobs=1, ensemble={"min_forecasts": 10},
                          conformal={"min_forecasts": 10, "window_forecasts": 50})


def test_timeframe_table_has_a_row_per_timeframe_and_horizon(bars_5m):
    table = compare_timeframes(bars_5m, ["5m", "15m", "1h", "1d"], HOURS, _light_config(),
                               first_forecast="2024-01-31", refit_every_sessions=5)
    assert list(table.columns) == list(TABLE_COLUMNS)
    ensemble = table[table["model"] == "ensemble"]
    pairs = set(zip(ensemble["timeframe"], ensemble["horizon_hours"], strict=True))
    assert pairs == {(t, float(h)) for t in ("5m", "15m", "1h", "1d") for h in HOURS}
    assert len(ensemble) == 16
    daily_12 = table[(table["timeframe"] == "1d") & (table["horizon_hours"] == 12)]
    assert (daily_12["n"] == 0).all() and daily_12["mae_pct"].isna().all()
    assert (table[table["n"] == 0]["horizon_bars"] == 0).all()  # only 12 h on daily bars
    # Session-close origins: the same forecast instants on every timeframe, so the same counts.
    at_24 = ensemble[ensemble["horizon_hours"] == 24].set_index("timeframe")
    assert at_24["n"].nunique() == 1 and at_24["n"].iloc[0] > 5
    scored = ensemble[ensemble["n"] > 0]
    assert len(scored) == 15
    assert scored["coverage_75"].between(0, 1).all() and (scored["mae_pct"] > 0).all()
    assert at_24.loc["1h", "horizon_bars"] == 7 and at_24.loc["5m", "horizon_bars"] == 78


def test_timeframes_cli_writes_the_12_to_96_hour_table(made_up_5m_csv, tmp_path):
    config = tmp_path / "light.yaml"
    config.write_text(
        "data: {source: csv, path: " + str(made_up_5m_csv) + "}\n"
        "segments: {train: {start: 2024-01-02, end: 2024-01-19}, valid: {start: 2024-01-22, "
        "end: 2024-01-26}, test: {start: 2024-01-29, end: 2024-02-13}}\n"
        "forecast: {members: [vol_rw], references: [random_walk], n_jobs: 1, min_train_bars: 20,"
        " ensemble: {min_forecasts: 10}, conformal: {min_forecasts: 10, window_forecasts: 50}}\n")
    out = run("-m", "forecasters", "--timeframes", "1d", "1h", "--config",
              str(config), "--horizons-hours", "12", "24", "48", "96", "--out",
              str(tmp_path / "tf"), "--first-forecast", "2024-01-31", "--no-progress")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"written to {tmp_path / 'tf'}" in out.stdout
    table = pd.read_csv(tmp_path / "tf" / "timeframes.csv")
    assert set(table["timeframe"]) == {"1h", "1d"}
    assert set(table["horizon_hours"]) == {12.0, 24.0, 48.0, 96.0}
    markdown = (tmp_path / "tf" / "timeframes.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 8  # the header and 2 timeframes x 4 horizons, finest first
    assert rows[1].startswith("| 1h | 12 | 4 | 13.7 |")
    assert "| 1d | 12 | - | - | 0 | shorter than one bar" in markdown
    bad = run("-m", "forecasters", "--timeframes", "2m", "--csv", str(made_up_5m_csv), "--out",
              str(tmp_path / "bad"))
    assert bad.returncode == 2 and "--timeframes" in bad.stderr and "Traceback" not in bad.stderr


INTRADAY_OVERRIDES = (
    "segments.train.start=2024-01-22", "segments.train.end=2024-02-02",
    "segments.valid.start=2024-02-05", "segments.valid.end=2024-02-07",
    "segments.test.start=2024-02-08", "segments.test.end=2024-02-13",
    "forecast.first_forecast_date=2024-01-16", "forecast.conformal.select_end=2024-02-07",
    "forecast.members=[vol_rw]", "forecast.n_jobs=1",
    "env.episode_length_bars=78", "agent.n_steps=64", "agent.batch_size=64",
    "agent.net_arch=[16]", "train.n_envs=2", "train.total_timesteps=256",
    "train.checkpoint_every_steps=128", "train.eval_every_steps=128", "eval.bootstrap_samples=100",
)


def _intraday_sets(csv, tmp_path) -> list[str]:
    sets = [f"data.path={csv}", f"forecast.cache_dir={tmp_path / 'fc'}",
            f"env.table_cache_dir={tmp_path / 'tables'}", *INTRADAY_OVERRIDES]
    return [arg for value in sets for arg in ("--set", value)]


def test_intraday_config_resolves_hours_on_the_made_up_frame(made_up_5m_csv):
    from config import load_config
    from forecasters.walkforward import for_frame

    cfg = load_config(ROOT / "configs" / "intraday.yaml", [f"data.path={made_up_5m_csv}"])
    assert cfg.forecast.horizons_hours == [12, 24, 48, 96]
    frame = load_market(cfg.data.source, **cfg.data.load_options())
    horizons = for_frame(cfg.forecast, frame.index).horizons
    assert horizons == [39, 78, 156, 312]
    assert cfg.baselines.forecast_horizon_bars in horizons  # the forecast rule's 24 hours


@pytest.mark.slow
def test_intraday_config_end_to_end(made_up_5m_csv, tmp_path):
    """train.py and evaluate.py on configs/intraday.yaml over 40 sessions of made-up 5-minute
    bars: hour horizons, forecasts, the environment, 256 PPO steps and the evaluation."""
    run_dir = tmp_path / "run"
    out = run(str(ROOT / "train.py"), "--config", str(ROOT / "configs" / "intraday.yaml"),
              "--run-dir", str(run_dir), "--no-progress", *_intraday_sets(made_up_5m_csv,
                                                                           tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    out = run(str(ROOT / "evaluate.py"), "--run", str(run_dir), "--no-plots")
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert "ppo" in json.dumps(metrics)
    trades = pd.read_csv(run_dir / "eval" / "trades_short_put_spread.csv")
    assert len(trades) >= 1
    # Time to expiry from the bar's end time: a 7-day target on an intraday bar is fractional.
    assert (trades["entry_dte_days"] % 1 != 0).all()
