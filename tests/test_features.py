"""Causal features: values against independent computations, and no look-ahead by truncation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data import build_features, load_market

TRUNCATION_DATES = ("2003-03-11", "2008-10-10", "2014-06-02", "2016-02-11", "2018-12-24")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_market("embedded")


@pytest.fixture(scope="module")
def features(frame) -> pd.DataFrame:
    return build_features(frame)


def _wilder_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """RSI with Wilder smoothing, seeded by the simple mean of the first ``period`` changes."""
    change = np.diff(close)
    gains, losses = np.clip(change, 0, None), np.clip(-change, 0, None)
    out = np.full(len(close), np.nan)
    avg_gain, avg_loss = gains[:period].mean(), losses[:period].mean()
    out[period] = 100 * avg_gain / (avg_gain + avg_loss)
    for i in range(period, len(change)):
        avg_gain = (avg_gain * (period - 1) + gains[i]) / period
        avg_loss = (avg_loss * (period - 1) + losses[i]) / period
        out[i + 1] = 100 * avg_gain / (avg_gain + avg_loss)
    return out


def _ema(values: np.ndarray, period: int) -> np.ndarray:
    """EMA seeded by the simple mean of the first ``period`` values (TA-Lib's convention)."""
    alpha = 2.0 / (period + 1)
    out = np.full(len(values), np.nan)
    out[period - 1] = values[:period].mean()
    for i in range(period, len(values)):
        out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


def test_indicators_match_independent_computation(frame):
    short = frame.iloc[:300]
    feats = build_features(short)
    close = short["close"].to_numpy()
    np.testing.assert_allclose(feats["rsi_14b"].to_numpy()[14:], _wilder_rsi(close, 14)[14:],
                               rtol=1e-9)
    ema10 = _ema(close, 10)
    np.testing.assert_allclose(feats["ema_gap_pct_10b"].to_numpy()[9:],
                               (close / ema10 - 1)[9:] * 100, rtol=1e-9, atol=1e-12)
    mean20 = short["close"].rolling(20).mean()
    std20 = short["close"].rolling(20).std(ddof=0)
    np.testing.assert_allclose(feats["bb_width_pct_20b"].to_numpy()[19:],
                               (4 * std20 / mean20 * 100).to_numpy()[19:], rtol=1e-7)
    log_ret = np.diff(np.log(close))
    expected_rv = np.std(log_ret[-20:], ddof=1) * np.sqrt(252)
    assert feats["rv_ann_20b"].iloc[-1] == pytest.approx(expected_rv, rel=1e-12)
    hl = np.log(short["high"].to_numpy() / short["low"].to_numpy())[-20:]
    expected_pk = np.sqrt(np.mean(hl**2) / (4 * np.log(2)) * 252)
    assert feats["parkinson_vol_ann_20b"].iloc[-1] == pytest.approx(expected_pk, rel=1e-12)
    assert feats["ret_log_5b"].iloc[-1] == pytest.approx(np.log(close[-1] / close[-6]))
    assert feats["day_of_week"].iloc[-1] == short.index[-1].day_of_week


def test_feature_names_and_ranges(features):
    assert features.index.equals(load_market("embedded").index)
    assert features["rsi_14b"].dropna().between(0, 100).all()
    assert features["adx_14b"].dropna().between(0, 100).all()
    assert (features["rv_ann_20b"].dropna() > 0).all()
    late = features.loc["2015":]
    assert late.drop(columns=[]).notna().all().all(), "after warm-up every feature is defined"
    iv_minus = late["iv_minus_rv_20b"]
    np.testing.assert_allclose(iv_minus, late["iv_index"] - late["rv_ann_20b"])


@pytest.mark.parametrize("cutoff", TRUNCATION_DATES)
def test_no_look_ahead_features_and_macro(frame, features, cutoff):
    """Recompute on data truncated at T: every value at or before T is unchanged."""
    truncated = frame.loc[:cutoff]
    recomputed = build_features(truncated)
    pd.testing.assert_frame_equal(recomputed, features.loc[:cutoff], check_freq=False,
                                  rtol=1e-12, atol=1e-12)
    # Macro columns come from monthly files; reloading restricted to T must not change them.
    restricted = load_market("embedded", end=cutoff)
    macro = ["rate", "cpi_core", "cpi_core_yoy", "aaa_yield", "baa_yield", "iv_index"]
    pd.testing.assert_frame_equal(restricted[macro], frame.loc[:cutoff, macro], check_freq=False)


def test_look_ahead_would_be_caught(frame):
    """The truncation check detects a centred (non-causal) window, so it can fail."""
    full = frame["close"].rolling(5, center=True).mean()
    cut = frame.loc[:"2010-06-01", "close"].rolling(5, center=True).mean()
    assert not np.allclose(full.loc[:"2010-06-01"].to_numpy()[-3:], cut.to_numpy()[-3:],
                           equal_nan=True)
