"""Adaptive conformal calibration, interval backtests, MCS, hour horizons and reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import data
from data.calendar import bars_per_session, horizon_bars
from forecasters import ForecastConfig, make_forecaster, quantile_column, walk_forward
from forecasters.conformal import (
    AGGREGATED,
    adaptive_thresholds,
    aggregated_thresholds,
    calibrate_intervals,
    conformity_scores,
    interval_score,
)
from forecasters.coverage_tests import christoffersen_pvalue, kupiec_pvalue, model_confidence_set
from forecasters.metrics import evaluate_panel, realised, tercile_edges, vol_tercile
from forecasters.walkforward import STEPS_ATTR, for_frame
from tests.forecast_data import TINY, intraday_frame, toy_inputs

LEVELS = [0.05, 0.125, 0.5, 0.875, 0.95]
GRID = [0.0, 0.01, 0.05, 0.1]


def _shifted_scores(n: int = 3000, shift_at: int = 1500, seed: int = 0) -> np.ndarray:
    """CQR scores of a fixed N(0,1) 75% interval; the outcome's scale doubles at ``shift_at``."""
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n) < shift_at, 1.0, 2.0)
    y = rng.normal(size=n) * sigma
    half = 1.1503493803760079  # N(0,1) 0.875 quantile
    return conformity_scores(np.full(n, -half), np.full(n, half), y, np.ones(n))


def test_tracking_restores_coverage_after_a_volatility_shift_that_the_window_misses():
    scores = _shifted_scores()
    thresholds = adaptive_thresholds(scores, 3, 0.75, [0.0, 0.05], window=1000, min_scores=100)
    after = slice(1600, 1900)  # the 300 forecasts from 100 bars after the shift
    covered = scores[after, None] <= thresholds[after]
    assert covered[:, 0].mean() < 0.6  # the rolling window alone lags the shift
    assert abs(covered[:, 1].mean() - 0.75) < 0.03  # tracking has caught up
    # long-run miss rate of quantile tracking is the nominal one
    assert abs((scores[200:, None] <= thresholds[200:])[:, 1].mean() - 0.75) < 0.02


def test_thresholds_wait_h_bars_for_a_score_and_never_look_ahead():
    scores = _shifted_scores(n=800, shift_at=400)
    horizon, cut = 5, 600
    full = adaptive_thresholds(scores, horizon, 0.75, GRID, window=200, min_scores=50)
    later = scores.copy()
    later[cut - horizon + 1 :] = 50.0  # scores not yet known at ``cut``
    again = adaptive_thresholds(later, horizon, 0.75, GRID, window=200, min_scores=50)
    np.testing.assert_array_equal(again[: cut + 1], full[: cut + 1])
    assert not np.array_equal(again[cut + 1 :], full[cut + 1 :])
    leader = aggregated_thresholds(scores, full, horizon, 0.75, 100.0, 0)
    leader_later = aggregated_thresholds(later, again, horizon, 0.75, 100.0, 0)
    np.testing.assert_array_equal(leader_later[: cut + 1], leader[: cut + 1])


@settings(max_examples=20, deadline=None)
@given(cut=st.integers(min_value=150, max_value=590), horizon=st.integers(1, 5))
def test_calibrated_intervals_are_causal(cut, horizon):
    """Changing outcomes after ``cut`` never moves an interval made at or before ``cut``."""
    rng = np.random.default_rng(cut)
    n = 600
    y = rng.normal(size=(n, 1)) * np.where(np.arange(n) < 300, 1.0, 1.8)[:, None]
    raw = np.tile(np.array([-1.6, -1.1, 0.0, 1.1, 1.6]), (n, 1, 1))
    scale = np.ones((n, 1))
    resolved = y.copy()
    resolved[n - horizon :] = np.nan
    args = ([horizon], LEVELS, 100, 30, GRID, 0.05)
    full, _ = calibrate_intervals(raw, resolved, scale, *args, None, 0.02)
    changed = resolved.copy()
    changed[cut - horizon + 1 :] = 9.0
    again, _ = calibrate_intervals(raw, changed, scale, *args, None, 0.02)
    np.testing.assert_array_equal(again[: cut + 1], full[: cut + 1])


def test_step_is_chosen_on_the_selection_window_only():
    rng = np.random.default_rng(7)
    n = 900
    y = (rng.normal(size=n) * np.where(np.arange(n) < 450, 1.0, 2.5))[:, None]
    raw = np.tile(np.array([-1.6, -1.1, 0.0, 1.1, 1.6]), (n, 1, 1))
    scale = np.ones((n, 1))
    span = (300, 600)  # selection window straddles the shift
    args = ([2], LEVELS, 150, 40, GRID, 0.0)
    calibrated, steps = calibrate_intervals(raw, y, scale, *args, span, 0.02)
    assert {s.coverage_nominal for s in steps} == {0.75, 0.9}
    assert all(s.n_selection == 300 - 2 + 1 for s in steps)
    assert any(s.step > 0 or s.method == AGGREGATED for s in steps)  # 0 cannot follow the shift
    later = y.copy()
    later[601:] = rng.normal(size=(n - 601, 1)) * 10.0  # the "test" period
    _, again = calibrate_intervals(raw, later, scale, *args, span, 0.02)
    assert again == steps


def test_interval_score_and_backtests_on_hand_computed_cases():
    assert interval_score(-1.0, 1.0, 0.5, 0.9) == pytest.approx(2.0)
    assert interval_score(-1.0, 1.0, 1.5, 0.9) == pytest.approx(2.0 + 20 * 0.5)
    assert interval_score(-1.0, 1.0, -2.0, 0.75) == pytest.approx(2.0 + 8 * 1.0)
    misses = np.zeros(400, bool)
    misses[::4] = True  # exactly 25% misses
    assert kupiec_pvalue(misses, 0.75) == pytest.approx(1.0)
    x, n, p = 60, 400, 0.25  # 15% misses against 25%: likelihood ratio by hand
    lr = -2 * (x * math.log(p) + (n - x) * math.log(1 - p))
    lr += 2 * (x * math.log(x / n) + (n - x) * math.log(1 - x / n))
    hand = math.erfc(math.sqrt(lr / 2))  # chi2(1) survival
    few = np.zeros(n, bool)
    few[:x] = True
    assert kupiec_pvalue(few, 0.75) == pytest.approx(hand, rel=1e-9)
    assert christoffersen_pvalue(few) < 1e-6  # all misses in one run
    rng = np.random.default_rng(0)
    assert christoffersen_pvalue(rng.random(2000) < 0.25) > 0.01


def test_model_confidence_set_drops_a_clearly_worse_model():
    rng = np.random.default_rng(1)
    base = rng.gamma(2.0, size=800)
    losses = pd.DataFrame(
        {"good": base, "also_good": base + rng.normal(0, 0.05, 800), "bad": base + 0.5}
    )
    pvalues = model_confidence_set(losses)
    assert pvalues["bad"] < 0.05 and pvalues["good"] > 0.1 and pvalues["also_good"] > 0.1


def test_evaluation_reports_per_year_and_per_tercile_figures():
    index = pd.bdate_range("2019-01-01", "2020-12-31")
    rng = np.random.default_rng(2)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index)))), index=index)
    frame = pd.DataFrame({"close": close})
    vol = pd.Series(np.linspace(0.005, 0.02, len(index)), index=index)
    rows = []
    for model, width in (("narrow", 0.005), ("wide", 0.03), ("random_walk", 0.015)):
        for t in index[:-1]:
            rows.append(
                {"date": t, "model": model, "horizon": 1}
                | {quantile_column(q): (q - 0.5) * 2 * width for q in LEVELS}
            )
    panel = pd.DataFrame(rows)
    edges = tercile_edges(vol, "2019-01-01", "2019-12-31")
    assert edges[0] < edges[1] < vol.loc["2019"].max()
    metrics = evaluate_panel(panel, frame, vol=vol, edges=edges)
    wide = metrics["wide"]["1"]
    assert set(wide["by_year"]) == {"2019", "2020"}
    assert wide["by_year"]["2019"]["n"] + wide["by_year"]["2020"]["n"] == wide["n"]
    terciles = wide["by_vol_tercile"]
    assert list(terciles) == ["low", "mid", "high"]  # every 2020 bar is above the 2019 cuts
    assert terciles["high"]["n"] > terciles["low"]["n"]
    assert sum(t["n"] for t in terciles.values()) == wide["n"]
    assert metrics["narrow"]["1"]["coverage_75"] < 0.75 < wide["coverage_75"]
    assert metrics["narrow"]["1"]["kupiec_pvalue_75"] < 1e-6
    assert {"interval_score_90", "christoffersen_pvalue_75", "mcs_pvalue"} <= set(wide)
    in_mcs = [m for m in metrics if metrics[m]["1"]["in_mcs"]]
    assert in_mcs and "narrow" not in in_mcs
    assert list(vol_tercile(np.array([0.0, edges[0], 1.0]), edges)) == ["low", "mid", "high"]


def test_hour_horizons_map_to_bars_through_the_session():
    daily = pd.bdate_range("2024-01-01", periods=10)
    assert [horizon_bars(h, daily) for h in (12, 24, 48, 72, 96)] == [1, 1, 2, 3, 4]
    fifteen = intraday_frame(days=3).index
    assert bars_per_session(fifteen) == 26
    assert [horizon_bars(h, fifteen) for h in (12, 24, 48, 72, 96)] == [13, 26, 52, 78, 104]
    hourly = intraday_frame(days=3, minutes=60).index
    assert bars_per_session(hourly) == 7  # 9:30 .. 15:30, the last bar half an hour
    assert [horizon_bars(h, hourly) for h in (12, 24, 48)] == [4, 7, 14]
    with pytest.raises(ValueError, match="positive"):
        horizon_bars(0, daily)


def test_hour_horizons_end_to_end_on_intraday_bars():
    frame = intraday_frame()
    config = ForecastConfig(
        horizons_hours=[12, 24],
        members=["xgb", "vol_rw"],
        references=["random_walk"],
        min_train_bars=600,
        refit_every_bars=200,
        n_jobs=1,
        xgb={"n_estimators": 10},
        ensemble={"min_forecasts": 30, "lookback_forecasts": 200},
        conformal={"min_forecasts": 20, "window_forecasts": 100},
    )
    assert for_frame(config, frame.index).horizons == [13, 26]
    panel = walk_forward(frame, config, progress=False)
    assert sorted(panel["horizon"].unique()) == [13, 26]
    assert {s["horizon"] for s in panel.attrs[STEPS_ATTR]} == {13, 26}
    rows = realised(panel[panel["model"] == "ensemble"], frame)
    # 24h ahead is the same time on the next session, across the night and the weekend
    friday_2pm = pd.Timestamp("2024-04-26 14:00")
    day_ahead = rows[(rows["date"] == friday_2pm) & (rows["horizon"] == 26)]
    assert day_ahead["target_date"].iloc[0] == pd.Timestamp("2024-04-29 14:00")
    # 12h ahead from 14:00 is 13 bars: 7 to the last bar (15:45), then 6 from the open (9:30)
    half_day = rows[(rows["date"] == friday_2pm) & (rows["horizon"] == 13)]
    assert half_day["target_date"].iloc[0] == pd.Timestamp("2024-04-29 10:45")
    metrics = evaluate_panel(panel, frame)
    assert set(metrics["ensemble"]) == {"13", "26"}


def test_lstm_is_reproducible_and_leaves_torch_settings_alone():
    import torch

    config = ForecastConfig(**{**TINY, "horizons": [1, 2]})
    X, y = toy_inputs()
    threads = torch.get_num_threads()
    first = make_forecaster("lstm", config, seed=3).fit(X.iloc[:300], y[:300]).predict(X)
    second = make_forecaster("lstm", config, seed=3).fit(X.iloc[:300], y[:300]).predict(X)
    np.testing.assert_array_equal(first, second)
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_step_selection_window_keeps_the_panel_causal_after_it():
    market = data.load_market("embedded", start="2013-01-01", end="2016-06-30")
    config = ForecastConfig(
        horizons=[1, 3],
        members=["vol_rw"],
        references=["random_walk", "garch"],
        min_train_bars=300,
        refit_every_bars=60,
        n_jobs=1,
        ensemble={"min_forecasts": 30, "lookback_forecasts": 200},
        conformal={
            "min_forecasts": 20,
            "window_forecasts": 100,
            "select_start": "2015-01-01",
            "select_end": "2015-06-30",
        },
    )
    full = walk_forward(market, config, progress=False)
    cut = market.index[len(market) - 40]
    truncated = walk_forward(market.loc[:cut], config, progress=False)
    assert truncated.attrs[STEPS_ATTR] == full.attrs[STEPS_ATTR]
    expected = full[full["date"] <= cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(truncated.reset_index(drop=True), expected, rtol=1e-9, atol=1e-12)
