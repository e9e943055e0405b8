"""Small forecasting inputs shared by test_forecasters.py and test_forecast_calibration.py:
the tiny forecaster config, a toy regression with a known signal, synthetic 15-minute bars."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.calendar import bars_per_session
from forecasters import RETURN_COLUMN, VOL_COLUMN

TINY = dict(
    horizons=[1, 3],
    members=["rf", "gb", "xgb", "lstm", "vol_rw"],
    references=["random_walk", "garch"],
    min_train_bars=300,
    refit_every_bars=60,
    n_jobs=1,
    rf={"n_estimators": 10, "min_samples_leaf": 20},
    gb={"max_iter": 10},
    xgb={"n_estimators": 10},
    lstm={"epochs": 1, "hidden_size": 4, "window_bars": 5, "max_train_rows": 300},
    ensemble={"min_forecasts": 30, "lookback_forecasts": 200},
    conformal={"min_forecasts": 20, "window_forecasts": 100},
)


def toy_inputs(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2020-01-01", periods=n)
    signal = rng.normal(size=n)
    returns = 0.01 * rng.standard_t(5, size=n)
    X = pd.DataFrame({"signal": signal, "noise": rng.normal(size=n)}, index=index)
    X[RETURN_COLUMN] = returns
    X[VOL_COLUMN] = 0.01
    y = np.column_stack(
        [0.01 * signal + 0.01 * rng.normal(size=n), 0.02 * signal + 0.02 * rng.normal(size=n)]
    )
    return X, y


def intraday_frame(days: int = 45, minutes: int = 15, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2024-03-04", periods=days)
    per_session = bars_per_session(
        pd.DatetimeIndex([sessions[0] + pd.Timedelta(minutes=570 + minutes * k) for k in range(3)])
    )
    stamps = [
        day + pd.Timedelta(hours=9, minutes=30) + pd.Timedelta(minutes=minutes * k)
        for day in sessions
        for k in range(per_session)
    ]
    index = pd.DatetimeIndex(stamps)
    close = 500 * np.exp(np.cumsum(rng.normal(0, 0.002, len(index))))
    open_ = np.r_[close[0], close[:-1]]
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.001,
            "low": np.minimum(open_, close) * 0.999,
            "close": close,
            "volume": rng.integers(1_000, 5_000, len(index)).astype(float),
        },
        index=index,
    )
    frame.attrs = {"source": "synthetic", "symbol": "TEST", "interval": f"{minutes}m"}
    return frame
