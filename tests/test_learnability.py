"""The learnability suite: synthetic markets' statistics, the suite's plumbing, learning health
and early stopping."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.callbacks import HealthCallback, ValidationCallback, top_trade_pnl_share
from agents.config import AgentConfig
from agents.learnability import (
    SignalSpreadPolicy,
    SuiteSettings,
    TradeProfile,
    evaluate_policy,
    heldout_envs,
    path_seed,
    ppo_seeds,
    reference_policy,
)
from agents.training import health_lines, learning_health, validation_interval
from cli.learnability import suite_config
from data.synthetic import SyntheticSpec, garch_t_returns, make_synthetic_market
from envs.actions import ACTION_CLOSE, ACTION_HOLD, action_for_strategy
from forecasters.synthetic import synthetic_forecast_panel

ROOT = Path(__file__).resolve().parent.parent
N_LONG = 5000  # bars: 2005..2024 on the NYSE calendar


# ---------------------------------------------------------------- synthetic markets
def test_garch_persistence_is_recovered_by_a_fitted_model():
    from arch import arch_model

    rng = np.random.default_rng(7)
    spec = SyntheticSpec("vrp")
    daily_var = spec.vol_annualized ** 2 / 252
    omega = daily_var * (1 - spec.garch_alpha - spec.garch_beta)
    returns, variance = garch_t_returns(rng, 8000, omega, spec.garch_alpha, spec.garch_beta,
                                        spec.t_dof)
    assert variance.shape == (8001,)
    fit = arch_model(100 * returns, mean="Zero", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    persistence = fit.params["alpha[1]"] + fit.params["beta[1]"]
    assert abs(persistence - (spec.garch_alpha + spec.garch_beta)) < 0.02
    assert abs(fit.params["nu"] - spec.t_dof) < 1.5


def test_vrp_implied_vol_carries_the_premium_over_the_true_and_the_realised_vol():
    market = make_synthetic_market(SyntheticSpec("vrp", n_bars=N_LONG), seed=3)
    iv = market.frame["iv_index"].to_numpy()
    np.testing.assert_allclose(iv / market.next_bar_vol_annualized, 1.25, rtol=1e-12)
    # Realised: the next bar's squared return against the implied variance known before it.
    log_ret = np.diff(np.log(market.frame["close"].to_numpy()))
    implied_var = (iv[:-1] / 1.25) ** 2 / 252
    ratio = np.mean(log_ret ** 2) / np.mean(implied_var)
    assert abs(ratio - 1.0) < 0.1  # the true vol is the realised one...
    assert abs(np.mean(iv[:-1] ** 2 / 252) / np.mean(log_ret ** 2) - 1.25 ** 2) < 0.2  # ...premium


@pytest.mark.parametrize("next_bar_vol", [0.08, 0.16, 0.40])
@pytest.mark.parametrize("bars_to_expiry", [5, 21, 42, 126])
def test_vrp_options_of_every_expiry_carry_the_premium_over_garchs_expected_vol(
        next_bar_vol, bars_to_expiry):
    """The suite prices a vrp option at (1 + premium) x the root of GARCH's expected average
    variance over its life, summed bar by bar from the recursion (a flat term structure
    priced a 30-day option at (1 + premium) x the next bar's vol whatever GARCH expected)."""
    from options.surface import iv_at

    spec = SyntheticSpec("vrp")
    settings = SuiteSettings("vrp", n_train_paths=1, n_heldout_paths=1)
    surface = suite_config(settings, 200).options.surface
    persistence = spec.garch_alpha + spec.garch_beta
    long_run_var = spec.vol_annualized ** 2
    expected_var = [long_run_var + persistence ** j * (next_bar_vol ** 2 - long_run_var)
                    for j in range(bars_to_expiry)]
    want = (1 + spec.premium) * math.sqrt(np.mean(expected_var))
    t_years = bars_to_expiry / 252  # 252 sessions a year: 365 / 252 calendar days a bar
    got = float(iv_at((1 + spec.premium) * next_bar_vol, 100.0, np.array([90.0, 100.0, 110.0]),
                      t_years, surface)[1])
    assert got == pytest.approx(want, rel=0.01)
    # no skew: every strike of one expiry at the same vol
    np.testing.assert_allclose(iv_at((1 + spec.premium) * next_bar_vol, 100.0,
                                     np.array([90.0, 100.0, 110.0]), t_years, surface), got,
                               rtol=1e-6)


def test_every_suite_market_is_priced_free_of_static_arbitrage():
    """The suite's surfaces (vrp's term structure included) over the checker's default grid:
    vol index 9-80, 1-365 days, log-moneyness +-1."""
    from options.static_arbitrage import check_iv_function
    from options.surface import iv_at

    for market in ("vrp", "signal"):
        surface = suite_config(SuiteSettings(market, n_train_paths=1, n_heldout_paths=1),
                               200).options.surface
        report = check_iv_function(
            lambda level, spot, strike, t, s=surface: iv_at(level, spot, strike, t, s), 0.0)
        assert report.n_checked > 100_000 and report.n_violations == 0, market


def test_signal_and_no_edge_keep_one_flat_vol_for_every_expiry():
    from options.surface import iv_at

    for market in ("signal", "no_edge"):
        surface = suite_config(SuiteSettings(market, n_train_paths=1, n_heldout_paths=1),
                               200).options.surface
        ivs = iv_at(0.16, 100.0, np.array([100.0] * 4), np.array([2, 30, 90, 365]) / 365,
                    surface)
        np.testing.assert_allclose(ivs, 0.16, rtol=1e-6)


def test_signal_hits_the_future_direction_about_60_percent_and_reaches_the_panel():
    market = make_synthetic_market(SyntheticSpec("signal", n_bars=N_LONG), seed=5)
    hit = np.mean(np.sign(market.future_log_return) == market.signal)
    assert abs(hit - 0.60) < 0.025
    # The future return matches the closes (the last h rows look beyond the frame).
    closes = np.log(market.frame["close"].to_numpy())
    h = market.spec.signal_horizon_bars
    np.testing.assert_allclose(market.future_log_return[:-h], closes[h:] - closes[:-h])
    panel, long = synthetic_forecast_panel(market, [1, 5], [0.125, 0.5, 0.875])
    median = panel.quantile(5, 0.5)
    assert np.all(np.sign(median) == market.signal)
    assert set(long.columns) == {"date", "model", "horizon", "q0.125", "q0.500", "q0.875"}
    assert len(long) == 2 * len(market.frame)


def test_no_edge_is_a_fair_martingale_with_uninformative_forecasts():
    market = make_synthetic_market(SyntheticSpec("no_edge", n_bars=N_LONG), seed=11)
    assert not market.signal.any()
    np.testing.assert_allclose(market.frame["iv_index"], 0.16)
    gross = np.exp(np.diff(np.log(market.frame["close"].to_numpy())))
    assert abs(gross.mean() - 1.0) < 3 * gross.std() / math.sqrt(len(gross))
    panel, _ = synthetic_forecast_panel(market, [5], [0.5])
    assert np.ptp(panel.values) == 0.0  # one forecast for every date: nothing to learn from


def test_a_seed_is_one_path_and_another_seed_another():
    a = make_synthetic_market(SyntheticSpec("vrp", n_bars=300), seed=1)
    b = make_synthetic_market(SyntheticSpec("vrp", n_bars=300), seed=1)
    c = make_synthetic_market(SyntheticSpec("vrp", n_bars=300), seed=2)
    assert a.frame.equals(b.frame)
    assert not np.allclose(a.frame["close"], c.frame["close"])
    assert a.frame.attrs["source"] == "synthetic"


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="market must be one of"):
        SyntheticSpec("trend")
    with pytest.raises(ValueError, match="stationary"):
        SyntheticSpec("vrp", garch_alpha=0.2, garch_beta=0.85)


# ---------------------------------------------------------------- the suite
def test_reference_rules_run_through_the_environment_on_held_out_paths():
    settings = SuiteSettings("signal", n_heldout_paths=1, heldout_episodes_per_path=2)
    cfg = suite_config(settings, 200)
    envs = heldout_envs(settings, cfg)
    policy = SignalSpreadPolicy(envs[0].observation_names, 5, hold_bars=20)
    profile = TradeProfile.for_market("signal", envs[0].observation_names, cfg)
    returns = evaluate_policy(envs, policy, cfg.env.episode_length_bars, profile)
    assert len(returns) == 2 and all(np.isfinite(returns))
    assert returns != [0.0, 0.0]  # it traded
    # the profile sees the rule as it is: debit spreads with the planted direction, ~20 bars
    summary = profile.summary()
    assert set(summary["opens"]) <= {"bull_call_spread (up)", "bear_put_spread (down)"}
    assert len(summary["opens"]) == 2
    assert sum(summary["opens"].values()) == summary["positions"]
    assert 15 <= summary["median_held_bars"] <= 21
    assert summary["closed_after_one_bar_share"] == 0.0
    assert summary["spread_shares"] == {"up": {"bull": 1.0, "bear": 0.0},
                                        "down": {"bull": 0.0, "bear": 1.0}}
    assert summary["signal_response"] == 1.0


def test_a_minimum_hold_set_for_ppo_leaves_the_suites_rule_as_it_is():
    """The rule's 20-bar close is labelled (a rule's exit), so ``env.min_holding_bars`` does not
    hold it to expiry: the reference scores the same with and without the option."""
    returns = {}
    for hold in (0, 30):
        settings = SuiteSettings("signal", n_heldout_paths=1, heldout_episodes_per_path=2,
                                 overrides=(f"env.min_holding_bars={hold}",))
        cfg = suite_config(settings, 200)
        envs = heldout_envs(settings, cfg)
        policy = reference_policy("signal", envs[0].observation_names, cfg)
        returns[hold] = evaluate_policy(envs, policy, cfg.env.episode_length_bars)
    assert returns[0] != [0.0, 0.0]
    assert returns[30] == returns[0]


def test_a_replicate_draws_new_paths_and_ppo_seeds_and_replicate_0_is_the_suite():
    suite, other = SuiteSettings("signal"), SuiteSettings("signal", replicate=1)
    assert [path_seed(suite, k) for k in (0, 5)] == [0, 5]  # the suite's paths as before
    assert path_seed(suite, 5, heldout=True) == 1_000_005
    assert ppo_seeds(suite, 3) == [0, 1, 2]
    assert ppo_seeds(other, 3) == [1000, 1001, 1002]
    seeds = {path_seed(s, k, heldout=h) for s in (suite, other) for k in range(200)
             for h in (False, True)}
    assert len(seeds) == 800  # no path is shared between replicates or roles
    small = {"n_heldout_paths": 1, "heldout_episodes_per_path": 1}
    cfg = suite_config(SuiteSettings("signal", **small), 200)
    frames = [heldout_envs(SuiteSettings("signal", replicate=r, **small), cfg)[0].panel
              for r in (0, 1)]
    assert not np.array_equal(frames[0].spot, frames[1].spot)


def test_the_trade_profile_measures_how_the_signal_moves_the_spread_side():
    """Blind to the signal (a bull put spread whatever it says): response 0; one side only
    (bull spreads on up signals, strangles on down ones): 0.5; against it: -1."""
    settings = SuiteSettings("signal", n_heldout_paths=1, heldout_episodes_per_path=2)
    cfg = suite_config(settings, 200)
    names = heldout_envs(settings, cfg)[0].observation_names

    def response(opens):
        profile = TradeProfile.for_market("signal", names, cfg)
        observation = np.zeros(len(names))
        for signal, strategy in opens:
            observation[profile.direction_slot] = signal
            profile.record_open(strategy, observation)
        return profile.summary()

    blind = response([(1.0, "bull_put_spread"), (-1.0, "bull_put_spread")])
    assert blind["signal_response"] == 0.0
    assert blind["spread_shares"]["down"] == {"bull": 1.0, "bear": 0.0}
    assert response([(1.0, "bull_call_spread"), (-1.0, "short_strangle"),
                     (1.0, "bull_put_spread"), (-1.0, "long_straddle")])["signal_response"] == 0.5
    assert response([(1.0, "bear_put_spread"), (-1.0, "bull_call_spread")]
                    )["signal_response"] == -1.0
    one_direction = response([(1.0, "bull_call_spread")])
    assert one_direction["signal_response"] is None
    assert one_direction["spread_shares"]["down"] == {"bull": None, "bear": None}
    outside = TradeProfile().summary()
    assert outside["signal_response"] is None and outside["spread_shares"] is None


def test_the_trade_profile_counts_a_position_closed_after_one_bar():
    """Open, close at once, open again and hold: two positions, one flat after one bar (the
    suite's 20-bar minimum hold, from the quick config, is lifted so that the close is taken)."""
    settings = SuiteSettings("no_edge", n_heldout_paths=1, heldout_episodes_per_path=1,
                             overrides=("env.min_holding_bars=0",))
    cfg = suite_config(settings, 200)
    envs = heldout_envs(settings, cfg)
    script = {0: action_for_strategy("bull_call_spread"), 1: ACTION_CLOSE,
              2: action_for_strategy("iron_condor")}

    class Scripted:
        def reset(self, seed=None):
            self.bar = 0

        def act(self, observation, info, action_mask):
            self.bar += 1
            return script.get(self.bar - 1, ACTION_HOLD)

    profile = TradeProfile()
    evaluate_policy(envs, Scripted(), 40, profile)
    summary = profile.summary()
    first_episode = profile.held_bars[:2]
    assert first_episode[0] == 1 and first_episode[1] > 1
    assert summary["opens"]["bull_call_spread"] >= 1 and summary["opens"]["iron_condor"] >= 1
    assert 0 < summary["closed_after_one_bar_share"] < 1


def test_the_suite_cli_writes_its_document_and_plot(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "learnability.py"), "--market", "vrp",
         "--timesteps", "128", "--seeds", "1", "--train-paths", "2", "--train-path-bars", "120", "--heldout-paths", "1",
         "--heldout-episodes-per-path", "1", "--set", "agent.n_steps=64",
         "--set", "agent.batch_size=64", "--set", "agent.n_epochs=1",
         "--set", "env.episode_length_bars=30", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    document = json.loads((tmp_path / "learnability.json").read_text())
    for key in ("market", "timesteps", "seeds", "ppo_mean_episode_return_pct", "ppo_by_seed",
                "reference_mean_episode_return_pct", "random_mean_episode_return_pct",
                "ratio_to_reference"):
        assert key in document
    assert document["market"] == "vrp" and document["seeds"] == [0]
    assert len(document["ppo_by_seed"]) == 1
    # the generalisation gap: the final model and the rule also scored on a training path
    assert len(document["ppo_train_paths_by_seed"]) == 1
    assert document["train_paths_episodes"] == 1
    # what was traded, per seed and for the rule, in the document and under the headline
    assert len(document["ppo_trade_profile_by_seed"]) == 1
    assert document["reference_trade_profile"]["positions"] >= 1
    assert "trades on the held-out episodes:" in out.stdout and "reference:" in out.stdout
    assert np.isfinite(document["reference_train_paths_mean_episode_return_pct"])
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


def test_the_suite_cli_refuses_bad_input_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "learnability.py"), "--market",
                          "vrp", "--timesteps", "0", "--out", str(tmp_path / "x")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--timesteps" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- learning health
def test_validation_interval_gives_at_least_the_minimum_number_of_points():
    from config import TrainConfig

    train = TrainConfig(total_timesteps=30_000, eval_every_steps=10_000)
    assert validation_interval(train) == 3_000
    assert validation_interval(TrainConfig(total_timesteps=1_000_000,
                                           eval_every_steps=20_000)) == 20_000


def test_learning_health_fields_and_warnings():
    history = [{"timesteps": 100, "sharpe": 0.4, "top_trade_pnl_share": 2.2},
               {"timesteps": 200, "sharpe": -0.7, "top_trade_pnl_share": 0.3}]
    health = learning_health({"explained_variance": -0.36, "entropy_loss": -0.8,
                              "approx_kl": 0.01}, history, {"cash": 0.0, "short_put_spread": 1.1})
    assert health["explained_variance"] == -0.36 and health["entropy"] == 0.8
    assert health["approx_kl"] == 0.01
    assert [p["sharpe"] for p in health["validation_sharpe"]] == [0.4, -0.7]
    assert health["best_baseline"] == "short_put_spread"
    assert health["top_trade_pnl_share_at_best"] == 2.2
    assert health["median_validation_sharpe"] == pytest.approx(-0.15)
    text = " ".join(health["warnings"])
    assert "explained variance" in text and "below the best baseline" in text
    lines = health_lines({"learning_health": health, "timesteps": 200})
    assert any(line.startswith("WARNING") for line in lines)
    assert any("best of 2 checkpoints (their median -0.15)" in line for line in lines)
    # a summary written before the median was stored still gets the line (resumed runs)
    del health["median_validation_sharpe"]
    old_lines = health_lines({"learning_health": health, "timesteps": 200})
    assert any("best of 2 checkpoints (their median -0.15)" in line for line in old_lines)
    fine = learning_health({"explained_variance": 0.5}, history[:1], {"cash": 0.0})
    assert fine["warnings"] == [] or "one trade" in fine["warnings"][0]


def test_top_trade_share():
    import pandas as pd

    assert top_trade_pnl_share(pd.DataFrame({"pnl_usd": [5638.0, -3112.0]})) == pytest.approx(
        5638.0 / 2526.0)
    assert top_trade_pnl_share(pd.DataFrame({"pnl_usd": []})) is None


def test_early_stopping_stops_when_validation_stops_improving(tmp_path):
    """A policy that cannot change (learning rate ~0) scores the same Sharpe at every
    validation: with patience 1, training stops at the second validation."""
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.ppo import build_model

    settings = SuiteSettings("vrp", n_heldout_paths=1, heldout_episodes_per_path=1)
    cfg = suite_config(settings, 200)
    train_env = heldout_envs(settings, cfg)[0]
    train_env.mode = "train"
    valid = heldout_envs(settings, cfg)[0]
    vec = DummyVecEnv([lambda: train_env])
    model = build_model(AgentConfig(learning_rate=1e-12, n_steps=32, batch_size=32, n_epochs=1,
                                    net_arch=[8]), vec, 0, None)
    validation = ValidationCallback(lambda: valid, "maskable_ppo", 32, tmp_path, 252.0,
                                    patience=1)
    health = HealthCallback()
    model.learn(total_timesteps=32 * 20, callback=CallbackList([health, validation]))
    assert validation.stopped_early is not None
    assert len(validation.history) == 2
    assert model.num_timesteps < 32 * 20
    assert {"explained_variance", "entropy_loss", "approx_kl"} <= set(health.last)


def test_a_validation_episode_without_trades_is_recorded_not_a_crash(tmp_path):
    """A policy that holds cash through validation (a strong hold prior, learning rate ~0)
    has no win rate and no Sortino (None: they do not apply); validation records the other
    metrics and training goes on (it used to stop on float(None))."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.ppo import build_model

    settings = SuiteSettings("no_edge", n_heldout_paths=1, heldout_episodes_per_path=1)
    cfg = suite_config(settings, 200)
    train_env = heldout_envs(settings, cfg)[0]
    train_env.mode = "train"
    valid = heldout_envs(settings, cfg)[0]
    model = build_model(AgentConfig(learning_rate=1e-12, n_steps=32, batch_size=32, n_epochs=1,
                                    net_arch=[8], hold_logit_bias=20.0),
                        DummyVecEnv([lambda: train_env]), 0, None)
    validation = ValidationCallback(lambda: valid, "maskable_ppo", 32, tmp_path, 252.0)
    model.learn(total_timesteps=32 * 3, callback=validation)
    assert len(validation.history) >= 2
    for row in validation.history:
        assert row["trades"] == 0 and row["win_rate"] is None and row["sharpe"] == 0.0
    assert (tmp_path / "best_model.zip").exists()


def test_hold_prior_starts_the_policy_on_hold_and_zero_leaves_the_init():
    """``agent.hold_logit_bias``: the untrained masked policy holds with probability
    e^b / (e^b + n_valid - 1) in a flat state; 0 gives the same parameters as no prior."""
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.ppo import build_model
    from envs.actions import ACTION_HOLD

    settings = SuiteSettings("no_edge", n_heldout_paths=1, heldout_episodes_per_path=1)
    cfg = suite_config(settings, 200)
    env = heldout_envs(settings, cfg)[0]
    obs, _ = env.reset(seed=0)
    mask = env.action_masks()
    n_valid = int(mask.sum())
    assert mask[ACTION_HOLD] and n_valid > 2

    def hold_probability(bias: float):
        model = build_model(AgentConfig(n_steps=32, batch_size=32, hold_logit_bias=bias),
                            DummyVecEnv([lambda: env]), 0, None)
        with torch.no_grad():
            dist = model.policy.get_distribution(
                model.policy.obs_to_tensor(obs[None, :])[0], action_masks=mask[None, :])
            return float(dist.distribution.probs[0, ACTION_HOLD]), model

    p0, plain = hold_probability(0.0)
    p3, biased = hold_probability(3.0)
    assert p0 == pytest.approx(1 / n_valid, abs=0.05)  # SB3's small output init: ~uniform
    expected = math.exp(3.0) / (math.exp(3.0) + n_valid - 1)
    assert p3 == pytest.approx(expected, abs=0.05)
    bias_plain = plain.policy.action_net.bias.detach().numpy()
    bias_held = biased.policy.action_net.bias.detach().numpy()
    assert bias_held[ACTION_HOLD] == pytest.approx(bias_plain[ACTION_HOLD] + 3.0)
    others = np.arange(bias_plain.size) != ACTION_HOLD
    assert np.array_equal(bias_held[others], bias_plain[others])


@pytest.mark.slow
def test_train_py_ends_with_learning_health_and_stops_early(tmp_path):
    """End to end on a tiny real config: the summary's health fields, the console block, and
    early stopping of a policy that cannot improve (learning rate ~0)."""
    import yaml

    config = {
        "name": "tiny_health",
        "data": {"source": "embedded", "start": "2010-01-01"},
        "segments": {"train": {"start": "2014-01-01", "end": "2015-06-30"},
                     "valid": {"start": "2015-07-01", "end": "2015-12-31"},
                     "test": {"start": "2016-01-01", "end": "2016-06-30"}},
        "forecast": {"first_forecast_date": "2013-10-01", "members": ["vol_rw"],
                     "references": ["random_walk"], "refit_every_bars": 252,
                     "cache_dir": str(tmp_path / "cache")},
        "env": {"underlying_price_scale": 0.1, "episode_length_bars": 40},
        "agent": {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "net_arch": [16],
                  "learning_rate": 1e-12},
        "baselines": {"names": ["cash", "short_put_spread"]},
        "train": {"total_timesteps": 1280, "checkpoint_every_steps": 640,
                  "eval_every_steps": 640, "early_stopping_patience": 2, "n_envs": 1,
                  "progress_bar": False},
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config",
                          str(tmp_path / "tiny.yaml"), "--run-dir", str(run_dir),
                          "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "train_summary.json").read_text())
    health = summary["learning_health"]
    for key in ("explained_variance", "entropy", "approx_kl", "validation_sharpe",
                "baseline_validation_sharpe", "top_trade_pnl_share_at_best", "warnings"):
        assert key in health
    assert summary["validation_interval_steps"] == 128  # 1280 / 10 validation points
    assert summary["stopped_early"] and summary["timesteps"] < 1280
    assert len(health["validation_sharpe"]) >= 3
    assert set(health["baseline_validation_sharpe"]) == {"cash", "short_put_spread"}
    assert "learning health: explained variance" in out.stdout
    assert "stopped early" in out.stdout
