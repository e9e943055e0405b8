"""Forecasters: contract, toy cases with known answers, no look-ahead, intraday, cache, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import data
from forecasters import (
    FORECASTERS,
    ForecastConfig,
    Forecaster,
    StackedEnsemble,
    load_or_make_panel,
    make_forecaster,
    quantile_column,
    walk_forward,
    wide_panel,
)
from forecasters.conformal import rolling_cqr
from forecasters.ensemble import pinball_weights
from forecasters.metrics import METRIC_KEYS, diebold_mariano_pvalue, evaluate_panel
from forecasters.report import PLOTS
from tests.forecast_data import TINY, intraday_frame, toy_inputs

LEVELS = [0.05, 0.125, 0.5, 0.875, 0.95]

@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    frame = data.load_market("embedded", start="2013-01-01", end="2016-06-30")
    return frame


def test_config_rejects_unknown_key_and_bad_levels():
    with pytest.raises(ValueError, match="not_a_field"):
        ForecastConfig(not_a_field=1)
    with pytest.raises(ValueError, match="quantile_levels"):
        ForecastConfig(quantile_levels=[0.5, 0.05])


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_every_forecaster_follows_the_contract(name):
    config = ForecastConfig(**{**TINY, "horizons": [1, 2]})
    X, y = toy_inputs()
    model = make_forecaster(name, config, seed=0)
    assert isinstance(model, Forecaster)
    y_fit = y.copy()
    y_fit[-2:] = np.nan  # unresolved labels are ignored
    pred = model.fit(X.iloc[:300], y_fit[:300]).predict(X.iloc[300:])
    assert pred.shape == (100, 2, len(LEVELS))
    assert np.isfinite(pred).all()
    assert (np.diff(pred, axis=-1) >= 0).all(), "quantiles must not cross"


def test_random_walk_is_empirical_quantiles():
    X, y = toy_inputs()
    model = make_forecaster("random_walk", ForecastConfig(horizons=[1, 2]), seed=0).fit(X, y)
    pred = model.predict(X.iloc[:3])
    np.testing.assert_allclose(pred[0, 0], np.quantile(y[:, 0], LEVELS))
    np.testing.assert_allclose(pred[2, 1], np.quantile(y[:, 1], LEVELS))


def test_quantile_forest_learns_the_signal():
    X, y = toy_inputs(n=1500)
    config = ForecastConfig(horizons=[1, 2], rf={"n_estimators": 50, "min_samples_leaf": 30})
    model = make_forecaster("rf", config, seed=0).fit(X.iloc[:1000], y[:1000])
    median = model.predict(X.iloc[1000:])[:, 0, 2]
    assert np.corrcoef(median, 0.01 * X["signal"].iloc[1000:])[0, 1] > 0.8


def test_stacking_puts_weight_on_the_true_quantile():
    rng = np.random.default_rng(1)
    y = rng.normal(size=2000)
    good = np.full(2000, 1.2815515655446004)  # true 0.9 quantile of N(0, 1)
    bad = good + rng.normal(scale=2.0, size=2000)
    weights = pinball_weights(np.column_stack([good, bad]), y, 0.9)
    assert weights[0] > 0.9 and weights.min() >= 0 and abs(weights.sum() - 1) < 1e-9

    members = np.stack([np.stack([good] * 2, 1), np.stack([bad] * 2, 1)], axis=1)[:, :, :, None]
    ensemble = StackedEnsemble([1, 2], [0.9]).fit(members, np.column_stack([y, y]))
    assert ensemble.predict(members).shape == (2000, 2, 1)


def test_rolling_cqr_restores_coverage_without_look_ahead():
    rng = np.random.default_rng(2)
    n = 3000
    y = rng.normal(size=(n, 1))
    narrow = np.tile(np.array([-0.5, 0.0, 0.5]), (n, 1, 1))  # covers only 38%
    scale = np.ones((n, 1))
    calibrated = rolling_cqr(narrow, y, scale, [1], [0.1, 0.5, 0.9], window=500, min_scores=100)
    inside = (y[1000:, 0] >= calibrated[1000:, 0, 0]) & (y[1000:, 0] <= calibrated[1000:, 0, 2])
    assert abs(inside.mean() - 0.8) < 0.03
    changed = y.copy()
    changed[2000:] = 100.0  # the future must not move earlier calibrations
    again = rolling_cqr(narrow, changed, scale, [1], [0.1, 0.5, 0.9], window=500, min_scores=100)
    np.testing.assert_array_equal(again[:2001], calibrated[:2001])


def test_diebold_mariano_detects_a_clear_difference():
    rng = np.random.default_rng(3)
    a = np.abs(rng.normal(size=500))
    assert diebold_mariano_pvalue(a, a + 0.5, 1) < 1e-6
    assert diebold_mariano_pvalue(a, rng.permutation(a), 2) > 0.01


def test_walk_forward_has_no_look_ahead(market):
    """A panel recomputed on data truncated at T equals the full panel at dates <= T (on data
    to mid-2015: six refits of every member are as telling as ten)."""
    market = market.loc[:"2015-06-30"]
    config = ForecastConfig(**TINY)
    full = walk_forward(market, config, progress=False)
    cut = market.index[len(market) - 95]  # inside a refit block
    truncated = walk_forward(market.loc[:cut], config, progress=False)
    expected = full[full["date"] <= cut].reset_index(drop=True)
    assert set(expected["model"]) == {*TINY["members"], *TINY["references"], "ensemble"}
    pd.testing.assert_frame_equal(truncated.reset_index(drop=True), expected, rtol=1e-9, atol=1e-12)
    # Contract: columns, and no forecast before the first refit.
    assert list(full.columns) == ["date", "model", "horizon", *[quantile_column(q) for q in LEVELS]]
    assert full["date"].min() == market.index[TINY["min_train_bars"]]


def test_walk_forward_runs_on_intraday_bars():
    frame = intraday_frame(days=40, minutes=15, seed=4)
    config = ForecastConfig(
        **{
            **TINY,
            "horizons": [1, 4],
            "members": ["xgb", "vol_rw"],
            "min_train_bars": 400,
            "refit_every_bars": 130,
        }
    )
    panel = walk_forward(frame, config, progress=False)
    assert panel["date"].min() == frame.index[400]
    assert (panel["date"].dt.minute % 15 == 0).all() and panel["date"].dt.hour.nunique() > 1
    wide = wide_panel(panel)
    assert list(wide.columns)[:2] == ["h1_q0.050", "h1_q0.125"] and wide.shape[1] == 10
    assert len(wide) == len(frame) - 400
    assert np.isfinite(wide.to_numpy()).all()


def test_panel_cache_reuses_the_same_key(market, tmp_path):
    config = ForecastConfig(**{**TINY, "members": ["vol_rw"], "references": ["random_walk"]})
    calls = []

    def make(frame, cfg, progress, features):
        calls.append(1)
        return walk_forward(frame, cfg, progress=progress, features=features)

    first = load_or_make_panel(market, config, tmp_path, progress=False, make=make)
    second = load_or_make_panel(market, config, tmp_path, progress=False, make=make)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, second)
    assert len(list(tmp_path.glob("panel_*.parquet"))) == 1
    load_or_make_panel(
        market,
        config.model_copy(update={"refit_every_bars": 61}),
        tmp_path,
        progress=False,
        make=make,
    )
    assert len(calls) == 2


def test_metrics_on_a_perfect_and_a_biased_forecast():
    index = pd.bdate_range("2020-01-01", periods=60)
    close = pd.Series(100 * np.exp(np.cumsum(np.full(60, 0.01))), index=index)
    frame = pd.DataFrame({"close": close})
    rows = []
    for model, shift in (("perfect", 0.0), ("random_walk", 0.02)):
        for t in index[:-1]:
            rows.append(
                {
                    "date": t,
                    "model": model,
                    "horizon": 1,
                    **{quantile_column(q): 0.01 + shift + (q - 0.5) * 0.01 for q in LEVELS},
                }
            )
    metrics = evaluate_panel(pd.DataFrame(rows), frame)
    perfect = metrics["perfect"]["1"]
    assert set(METRIC_KEYS) <= set(perfect)
    assert perfect["mae_pct"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["hit_2pct"] == 1.0 and perfect["direction_hit"] == 1.0
    assert perfect["coverage_75"] == 1.0 and perfect["coverage_90"] == 1.0
    assert perfect["mae_ratio_rw"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["random_walk"]["1"]["mae_pct"] == pytest.approx(
        100 * (np.exp(0.02) - 1), rel=1e-6
    )
    assert metrics["random_walk"]["1"]["coverage_75"] == 0.0


def test_cli_writes_panel_metrics_and_plots(tmp_path):
    experiment = {
        "name": "forecasters-cli-test",
        "data": {"source": "embedded", "start": "2013-06-01", "end": "2016-06-30"},
        "segments": {
            "train": ["2014-01-01", "2014-12-31"],
            "valid": ["2015-01-01", "2015-06-30"],
            "test": ["2015-07-01", "2016-06-30"],
        },
        "forecast": {
            **TINY,
            "members": ["xgb", "vol_rw"],
            "refit_every_bars": 120,
            "cache_dir": str(tmp_path / "cache"),
        },
    }
    experiment["segments"] = {
        k: {"start": v[0], "end": v[1]} for k, v in experiment["segments"].items()
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forecasters",
            "--config",
            str(path),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"xgb", "vol_rw", "random_walk", "garch", "ensemble"}
    assert set(METRIC_KEYS) <= set(metrics["ensemble"]["3"])
    panel = pd.read_parquet(out / "panel.parquet")
    assert panel["date"].min() >= pd.Timestamp("2014-01-01")
    for name in ("metrics.md", "forecast_config.yaml", "conformal.json", *PLOTS):
        assert (out / name).stat().st_size > 0
    ensemble = metrics["ensemble"]["3"]
    assert {"interval_score_75", "kupiec_pvalue_90", "mcs_pvalue", "by_year"} <= set(ensemble)
    assert set(ensemble["by_vol_tercile"]) <= {"low", "mid", "high"}
    report = (out / "metrics.md").read_text()
    assert "Intervals by volatility tercile" in report and "Intervals by calendar year" in report


def test_tune_writes_params_that_training_uses(market, tmp_path):
    from forecasters.tune import save_best_params, tune_member

    config = ForecastConfig(
        **{**TINY, "tune": {"storage": f"sqlite:///{tmp_path}/optuna.db", "n_trials": 2}}
    )
    best = tune_member(market, config, "xgb", "2015-01-01", "2015-03-31")
    assert {"n_estimators", "max_depth"} <= set(best)
    path = save_best_params("xgb", best, tmp_path / "best.yaml")
    resolved = config.model_copy(update={"tuned_params_path": str(path)}).resolved()
    assert resolved.xgb.n_estimators == best["n_estimators"]
    assert resolved.tuned_params_path is None


@pytest.mark.parametrize("n_models", [2, 3])
def test_model_confidence_set_names_every_model_with_string_columns(n_models):
    """arch's MCS with pandas 3 string columns (two models broke it before)."""
    from forecasters.coverage_tests import model_confidence_set

    rng = np.random.default_rng(0)
    losses = pd.DataFrame(rng.random((200, n_models)) + np.arange(n_models) * 0.5,
                          columns=[f"m{k}" for k in range(n_models)])
    pvalues = model_confidence_set(losses)
    assert set(pvalues) == set(losses.columns)
    assert pvalues["m0"] == 1.0 and pvalues[f"m{n_models - 1}"] < 0.1  # the best survives
