"""The optional attention member: walk-forward, ensemble, metrics, determinism, learning, config."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

import data
from cli.forecasters import main as forecasters_main
from common.cli import run_cli
from forecasters import ForecastConfig, evaluate_panel, make_forecaster, pinball_loss
from forecasters.config import OPTIONAL_MEMBERS
from forecasters.metrics import tercile_edges
from forecasters.walkforward import (
    PANEL_VERSION,
    combine_forecasts,
    config_key,
    forward_log_returns,
    member_forecasts,
    model_inputs,
    refit_positions,
    vol_per_bar,
    walk_forward,
)
from tests.forecast_data import toy_inputs as _toy_inputs

ATTENTION = {"window_bars": 5, "d_model": 8, "num_heads": 2, "epochs": 2, "max_train_rows": 300}
TINY = dict(
    horizons=[1, 3],
    members=["attention", "vol_rw"],
    references=["random_walk"],
    min_train_bars=300,
    refit_every_bars=120,
    n_jobs=1,
    attention=ATTENTION,
    ensemble={"min_forecasts": 30, "lookback_forecasts": 200},
    conformal={"min_forecasts": 20, "window_forecasts": 100},
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return data.load_market("embedded", start="2013-01-01", end="2016-06-30")


def test_walk_forward_stacks_and_reports_the_member(market):
    config = ForecastConfig(**TINY)
    inputs = model_inputs(market, config)
    targets = forward_log_returns(market["close"], config.horizons)
    scale = inputs["fc_vol_per_bar"].to_numpy()[:, None] * np.sqrt(config.horizons)[None, :]
    refits = refit_positions(market.index, config)
    raw = member_forecasts(inputs, targets, config, progress=False)
    ensembles = {}
    forecasts = combine_forecasts(raw, targets, scale, refits, config, ensembles=ensembles)
    members = forecasts["attention"][refits[0] :]
    assert members.shape == (len(market) - refits[0], 2, 5)
    assert np.isfinite(members).all() and (np.diff(members, axis=-1) >= 0).all()
    # the stacked ensemble weighs the member beside vol_rw and the reference
    weights = ensembles[refits[-1]].weights_
    assert weights.shape == (2, 5, 3) and np.allclose(weights.sum(axis=-1), 1.0)

    panel = walk_forward(market, config, progress=False)
    assert set(panel["model"]) == {"attention", "vol_rw", "random_walk", "ensemble"}
    rows = panel[panel["model"] == "attention"].sort_values(["date", "horizon"])
    np.testing.assert_array_equal(  # same seeds, same forecasts
        rows[[c for c in panel.columns if c.startswith("q")]].to_numpy(),
        forecasts["attention"][refits[0] :].reshape(-1, 5),
    )
    vol = vol_per_bar(market, config)
    metrics = evaluate_panel(
        panel, market, "2015-01-01", None, vol=vol, edges=tercile_edges(vol, None, "2014-12-31")
    )
    for horizon in ("1", "3"):
        figures = metrics["attention"][horizon]
        assert {"coverage_75", "coverage_90", "interval_score_75", "by_year"} <= set(figures)
        assert set(figures["by_vol_tercile"]) <= {"low", "mid", "high"}
        assert 0 < figures["coverage_75"] <= 1


def test_same_seed_same_forecasts_other_seed_other_forecasts():
    config = ForecastConfig(horizons=[1, 2], members=["attention"], attention=ATTENTION)
    X, y = _toy_inputs()
    threads = torch.get_num_threads()

    def forecast(seed: int) -> np.ndarray:
        return make_forecaster("attention", config, seed).fit(X.iloc[:300], y[:300]).predict(X)

    first = forecast(3)
    np.testing.assert_array_equal(first, forecast(3))
    assert not np.array_equal(first, forecast(4))
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_pinball_loss_falls_with_training_on_a_series_with_signal():
    X, y = _toy_inputs(n=600)
    levels = ForecastConfig().quantile_levels

    def out_of_sample_loss(epochs: int) -> float:
        params = {"window_bars": 5, "epochs": epochs, "max_train_rows": None}
        config = ForecastConfig(horizons=[1, 2], members=["attention"], attention=params)
        pred = make_forecaster("attention", config, 0).fit(X.iloc[:400], y[:400]).predict(X)
        return float(
            np.mean(
                [
                    pinball_loss(y[400:, j], pred[400:, j, k], level).mean()
                    for j in range(2)
                    for k, level in enumerate(levels)
                ]
            )
        )

    unconditional = np.mean(
        [
            pinball_loss(y[400:, j], np.quantile(y[:400, j], level), level).mean()
            for j in range(2)
            for level in levels
        ]
    )
    one, twenty = out_of_sample_loss(1), out_of_sample_loss(20)
    assert twenty < 0.8 * one
    assert twenty < unconditional  # it has learned the signal, not only the spread


def _pre_attention_key(config: ForecastConfig) -> str:
    """The cache key as computed before the optional members existed (none in the dump)."""
    settings = config.model_dump(
        mode="json", exclude={"cache_dir", "n_jobs", "tune", "gate", *OPTIONAL_MEMBERS}
    )
    digest = hashlib.sha256(PANEL_VERSION.encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def test_unselected_optional_member_leaves_cache_keys_alone():
    from config import load_config

    configs = [ForecastConfig(), load_config("configs/quick.yaml", []).forecast]
    for config in configs:
        assert "attention" not in config.members
        assert config_key(config) == _pre_attention_key(config)
        other = config.model_copy(
            update={"attention": config.attention.model_copy(update={"d_model": 64})}
        )
        assert config_key(other) == config_key(config)
    selected = configs[1].model_copy(update={"members": [*configs[1].members, "attention"]})
    assert config_key(selected) != config_key(configs[1])
    retuned = selected.model_copy(
        update={"attention": selected.attention.model_copy(update={"epochs": 3})}
    )
    assert config_key(retuned) != config_key(selected)


def test_bad_attention_param_is_one_line_naming_the_key(capsys):
    with pytest.raises(ValueError, match="num_heads"):
        ForecastConfig(members=["attention"], attention={"d_model": 16, "num_heads": 3})
    argv = ["--config", "configs/quick.yaml", "--out", "unused"]
    for override, key in (
        ("forecast.attention.num_heads=3", "forecast.attention.num_heads"),
        ("forecast.attention.d_model=0", "forecast.attention.d_model"),
        ("forecast.attention.heads=2", "forecast.attention.heads"),
    ):
        status = run_cli(forecasters_main, [*argv, "--set", override], prog="python -m forecasters")
        err = capsys.readouterr().err
        assert status == 2 and key in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_tune_search_space_gives_valid_params(tmp_path):
    import optuna

    from forecasters.config import AttentionParams
    from forecasters.tune import save_best_params, search_space

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = search_space(study.ask(), "attention")
        AttentionParams(**params)
    path = save_best_params("attention", params, tmp_path / "best.yaml")
    config = ForecastConfig(members=["attention"], tuned_params_path=str(path)).resolved()
    assert config.attention.d_model == params["d_model"]
