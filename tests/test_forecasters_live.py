"""LiveForecaster: one bar at a time, equal to the walk-forward on the data up to each bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data
from forecasters import ForecastConfig, LiveForecaster, walk_forward
from forecasters.live import STATE_FILE, LiveStateError
from forecasters.walkforward import (
    fit_member,
    for_frame,
    forward_log_returns,
    model_inputs,
    predict_block,
    training_window,
)

# Tiny but complete: learned members (trees and the LSTM), a reference, the stacked ensemble and
# the conformal calibration, with refits every 20 bars so that the grown span crosses several.
TINY = dict(
    horizons=[1, 3],
    quantile_levels=[0.1, 0.5, 0.9],
    members=["gb", "lstm", "vol_rw"],
    references=["random_walk"],
    min_train_bars=250,
    refit_every_bars=20,
    n_jobs=1,
    gb={"max_iter": 5, "min_samples_leaf": 20},
    lstm={"epochs": 1, "hidden_size": 4, "window_bars": 5, "max_train_rows": 200},
    vol_rw={"lookback_bars": 200},
    ensemble={"min_forecasts": 20, "lookback_forecasts": 60},
    # The step-selection window ends inside the grown span: the chosen step changes with the bar.
    conformal={
        "min_forecasts": 10,
        "window_forecasts": 30,
        "select_start": "2015-01-14",
        "select_end": "2015-04-13",
    },
)
T0 = 300  # bars of the first call
T1 = 345  # last bar of the grown frame: refits at rows 310, 330 fall inside
SELECT_END_ROW = 320  # row of conformal.select_end


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return data.load_market("embedded", start="2014-01-01", end="2016-12-31").iloc[: T1 + 1]


@pytest.fixture(scope="module")
def reference(market) -> pd.DataFrame:
    return walk_forward(market, ForecastConfig(**TINY), progress=False)


def _rows_at(panel: pd.DataFrame, dates) -> pd.DataFrame:
    return panel[panel["date"].isin(dates)].reset_index(drop=True)


def _assert_same(live: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(live) > 0
    pd.testing.assert_frame_equal(live.reset_index(drop=True), expected, rtol=0, atol=0)


def test_live_equals_walk_forward_bar_by_bar(market, reference, tmp_path):
    config = ForecastConfig(**TINY)
    live = LiveForecaster(config, tmp_path, progress=False)
    first = live.update(market.iloc[:T0])
    # The first call returns the bar being traded only: the frame's last date.
    assert list(first["date"].unique()) == [market.index[T0 - 1]]
    assert set(first["model"]) == {*TINY["members"], *TINY["references"], "ensemble"}
    rows = [live.update(market.iloc[: t + 1]) for t in range(T0, T1 - 4)]
    rows.append(live.update(market))  # several new bars in one call
    grown = pd.concat(rows, ignore_index=True)
    assert list(grown["date"].unique()) == list(market.index[T0:])
    # Before the step selection's last date the walk-forward on all bars chose its step with
    # later outcomes: there the contract is the walk-forward cut at each bar.
    for cut in (T0 - 1, T0 + 7):
        truncated = walk_forward(market.iloc[: cut + 1], config, progress=False)
        assert not truncated.equals(_rows_at(reference, truncated["date"].unique()))
        _assert_same(_rows_at(pd.concat([first, grown]), [market.index[cut]]),
                     _rows_at(truncated, [market.index[cut]]))  # fmt: skip
    # From that date on (every step resolved) the walk-forward on all bars agrees at each bar.
    settled = market.index[SELECT_END_ROW:]
    _assert_same(_rows_at(grown, settled), _rows_at(reference, settled))
    assert live.update(market).empty  # no new bar, no rows


def test_live_restart_continues_identically(market, reference, tmp_path):
    config = ForecastConfig(**TINY)
    LiveForecaster(config, tmp_path, progress=False).update(market.iloc[:T0])
    LiveForecaster(config, tmp_path, progress=False).update(market.iloc[: SELECT_END_ROW + 5])
    restarted = LiveForecaster(config, tmp_path, progress=False)  # inside the block of row 310
    assert restarted.last_date == market.index[SELECT_END_ROW + 4]
    grown = pd.concat(
        [restarted.update(market.iloc[: t + 1]) for t in range(SELECT_END_ROW + 5, T1 + 1)],
        ignore_index=True,
    )
    _assert_same(grown, _rows_at(reference, market.index[SELECT_END_ROW + 5 :]))


def test_live_rolling_window_embargo_hours_and_first_date(market, tmp_path):
    """Rolling windows, an embargo, horizons in hours and a first forecast date, bar by bar."""
    config = ForecastConfig(
        **{
            **TINY,
            "members": ["gb", "vol_rw"],
            "horizons_hours": [24.0, 72.0],
            "window": "rolling",
            "window_bars": 150,
            "embargo_bars": 2,
            "first_forecast_date": str(market.index[270].date()),
            "conformal": {"min_forecasts": 10, "window_forecasts": 30},
        }
    )
    reference = walk_forward(market, config, progress=False)
    assert reference["date"].min() == market.index[270]
    assert sorted(reference["horizon"].unique()) == [1, 3]
    live = LiveForecaster(config, tmp_path, progress=False)
    rows = [live.update(market.iloc[: t + 1]) for t in range(T0 - 1, T1 + 1)]
    _assert_same(pd.concat(rows), _rows_at(reference, market.index[T0 - 1 :]))


def test_live_refuses_another_config_a_changed_history_and_a_short_frame(market, tmp_path):
    config = ForecastConfig(**TINY)
    live = LiveForecaster(config, tmp_path, progress=False)
    with pytest.raises(LiveStateError, match="no forecast dates"):
        live.update(market.iloc[:200])
    assert not (tmp_path / STATE_FILE).exists()
    live.update(market.iloc[:T0])
    changed = market.iloc[: T0 + 1].copy()
    changed.iloc[123, changed.columns.get_loc("close")] *= 1.01
    with pytest.raises(ValueError, match=str(market.index[123].date())):
        live.update(changed)
    with pytest.raises(ValueError, match="fewer than"):
        live.update(market.iloc[: T0 - 1])
    other = ForecastConfig(**{**TINY, "refit_every_bars": 21})
    with pytest.raises(ValueError, match=str(tmp_path)):
        LiveForecaster(other, tmp_path, progress=False)


def test_member_fits_are_deterministic(market):
    """A restart refits the current members; that is exact only if the fits are deterministic."""
    config = for_frame(ForecastConfig(**TINY), market.index)
    inputs = model_inputs(market, config)
    targets = forward_log_returns(market["close"], config.horizons)
    _, x_fit, y_fit = training_window(inputs, targets, config, 310)
    for name in [*TINY["members"], *TINY["references"]]:
        a, b = (
            predict_block(fit_member(name, config, 7, x_fit, y_fit), inputs.iloc[300:], 40)
            for _ in range(2)
        )
        np.testing.assert_array_equal(a, b, err_msg=name)
