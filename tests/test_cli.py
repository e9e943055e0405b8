"""End-to-end tests of train.py and evaluate.py on a tiny config (real data; the tiny run is
trained once per session by ``tests/conftest.py``). Bad-input cases call evaluate.py's ``main``
in-process (the same ``run_cli`` path as the command line); one of them also runs as a real
subprocess."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from agents.config import BaselinesConfig
from tests.helpers import ROOT, SPX_CHAIN, TINY_TIMESTEPS, run, tiny_config

REQUIRED_METRICS = ("total_return_pct", "annual_return_pct", "annual_vol_pct", "sharpe",
                    "sortino", "max_drawdown_pct", "trades", "win_rate", "calmar",
                    "avg_pnl_per_trade_usd", "profit_factor", "total_costs_usd", "exposure",
                    "return_on_margin_pct")


def test_train_writes_a_complete_run_directory(tiny_run):
    trained = tiny_run
    for name in ("config.yaml", "command.txt", "provenance.json", "forecasts/panel.parquet",
                 "model.zip", "best_model.zip", "train_summary.json", "vecnormalize.npz",
                 "best_vecnormalize.npz"):
        assert (trained / name).exists(), name
    assert list((trained / "checkpoints").glob("ckpt_*_steps.zip"))
    assert list((trained / "tb").rglob("events.out.tfevents.*"))
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["timesteps"] == TINY_TIMESTEPS
    provenance = json.loads((trained / "provenance.json").read_text())
    assert provenance["data"]["source"] == "embedded"
    assert provenance["data"]["symbol"] == "^GSPC"
    resolved = yaml.safe_load((trained / "config.yaml").read_text())
    assert resolved["train"]["total_timesteps"] == TINY_TIMESTEPS
    assert resolved["env"]["starting_equity_usd"] == 100000.0  # defaults written out


def test_tensorboard_has_grouped_custom_scalars(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    event_dir = next((tiny_run / "tb").rglob("events.out.tfevents.*")).parent
    acc = EventAccumulator(str(event_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("env/episode_return_pct", "env/trades_per_episode", "env/win_rate",
                "env/costs_pct", "eval/sharpe", "eval/return_pct", "eval/max_drawdown_pct"):
        assert tag in tags, (tag, sorted(tags))


def test_evaluate_writes_metrics_for_ppo_and_every_baseline(tiny_run_copy, in_process):
    """In this process (evaluate.py as a real process: the real-quotes and bad-input tests)."""
    trained = tiny_run_copy
    out = in_process.evaluate("--run", str(trained))
    assert out.returncode == 0, out.stderr[-3000:]
    document = json.loads((trained / "eval" / "metrics.json").read_text())
    metrics = document["policies"]
    expected = {"ppo", *BaselinesConfig().names}
    assert set(metrics) == expected
    for name, values in metrics.items():
        for key in REQUIRED_METRICS:
            assert key in values, (name, key)
    assert metrics["cash"]["total_return_pct"] == 0.0
    assert metrics["cash"]["trades"] == 0
    hold = metrics["buy_and_hold"]
    assert hold["trades"] is None and hold["profit_factor"] is None and hold["exposure"] is None
    comparison = document["comparison"]
    assert set(comparison) == {"spa_pvalue", "sharpe_diff_ci", "block_length_bars",
                               "best_baseline", "compared"}
    assert sorted(comparison["compared"]) == sorted(expected - {"ppo"})  # cash included
    assert 0.0 <= comparison["spa_pvalue"] <= 1.0
    assert comparison["block_length_bars"] >= 1
    ci = comparison["sharpe_diff_ci"]
    assert ci["low"] <= ci["high"] and ci["level"] == 0.95
    assert comparison["best_baseline"] in expected - {"ppo"}
    inputs = document["inputs"]
    assert len(inputs["forecast_panel_sha256"]) == len(inputs["market_data_sha256"]) == 64
    provenance = json.loads((trained / "provenance.json").read_text())
    assert inputs["market_data_sha256"].startswith(provenance["data"]["frame_hash"])
    for name in expected:
        assert (trained / "eval" / f"equity_{name}.csv").exists()
        assert (trained / "eval" / f"trades_{name}.csv").exists()
        assert (trained / "eval" / f"tearsheet_{name}.png").stat().st_size > 10_000
    for plot in ("equity.png", "actions_ppo.png", "pnl_by_strategy.png"):
        assert (trained / "eval" / plot).stat().st_size > 10_000
    report = (trained / "eval" / "report.md").read_text()
    assert "| ppo |" in report and "SPA" in report and "stationary-bootstrap" in report
    assert "Baselines compared: " in report and "`cash`" in report
    assert inputs["forecast_panel_sha256"] in report and inputs["market_data_sha256"] in report
    assert "| buy_and_hold |" in report and "| - |" in report
    assert "Tear sheet: ppo" in report and "attribution" in report
    # One attribution (issue 24 item 10): the file the dashboard shows is the report's, with
    # per-bar costs that add up to the policy's total costs (not a cumulative column).
    for name in expected - {"buy_and_hold"}:
        attribution = pd.read_csv(trained / "eval" / f"attribution_{name}.csv", index_col=0)
        assert -attribution["costs"].sum() == pytest.approx(metrics[name]["total_costs_usd"],
                                                            abs=0.01)
        components = attribution[["delta", "gamma", "theta", "vega", "costs", "residual"]]
        np.testing.assert_allclose(components.sum(axis=1), attribution["total"], atol=1e-6)
    assert not (trained / "eval" / "attribution_buy_and_hold.csv").exists()
    assert "report:" in out.stdout
    assert not [p for p in trained.iterdir() if p.name.startswith(".eval.")]


def test_evaluate_overrides_baselines_window_and_output(tiny_run, tmp_path, in_process):
    trained = tiny_run
    out_dir = tmp_path / "costly"
    out = in_process.evaluate("--run", str(trained), "--set",
              "options.costs.commission_per_contract_usd=5.0", "--baselines",
              "short_put_spread,forecast_rule", "--start", "2015-08-01", "--end",
              "2016-03-31", "--out", str(out_dir), "--no-plots")
    assert out.returncode == 0, out.stderr[-3000:]
    document = json.loads((out_dir / "metrics.json").read_text())
    assert set(document["policies"]) == {"ppo", "short_put_spread", "forecast_rule"}
    assert document["segment"] == "custom"
    assert document["start"] >= "2015-08-01" and document["end"] <= "2016-03-31"
    assert document["overrides"] == ["options.costs.commission_per_contract_usd=5.0"]
    assert not list(out_dir.glob("*.png"))
    assert not (trained / "config.yaml").read_text().count("commission_per_contract_usd: 5.0")
    # Higher commissions cost the same trades more.
    cheap = in_process.evaluate("--run", str(trained), "--baselines",
                "short_put_spread", "--start", "2015-08-01", "--end", "2016-03-31", "--out",
                str(tmp_path / "cheap"), "--no-plots")
    assert cheap.returncode == 0, cheap.stderr[-3000:]
    cheap_doc = json.loads((tmp_path / "cheap" / "metrics.json").read_text())
    spread_costly = document["policies"]["short_put_spread"]
    spread_cheap = cheap_doc["policies"]["short_put_spread"]
    assert spread_costly["total_costs_usd"] > spread_cheap["total_costs_usd"]


@pytest.mark.parametrize(
    ("break_run", "flags", "message"),
    [
        (lambda r: (r / "best_model.zip").write_bytes(b""), (), "model file is empty"),
        (lambda r: (r / "best_model.zip").write_bytes(b"not a zip"), (),
         "not a stable-baselines3 model zip"),
        (lambda r: (r / "config.yaml").unlink(), (), "no such config file"),
        (lambda r: (r / "config.yaml").write_text("agent: [unclosed"), (), "not valid YAML"),
        (lambda r: (r / "config.yaml").write_text(
            (r / "config.yaml").read_text().replace("algo: maskable_ppo", "algo: ppo")), (),
         "saved by maskable_ppo but config.yaml says agent.algo: ppo"),
        (lambda r: (r / "forecasts" / "panel.parquet").unlink(), (), "forecast panel missing"),
        (lambda r: (r / "best_vecnormalize.npz").unlink(), (), "best_vecnormalize.npz"),
        (lambda r: (r / "best_model.zip").unlink(), (),
         "best_model.zip: missing (no validation checkpoint was saved); use --model final"),
        (lambda r: None, ("--baselines", "cash,moon"), "--baselines: unknown baseline"),
        (lambda r: None, ("--start", "2014-06-01", "--end", "2014-12-31"),
         "must be after the train segment's end"),
        (lambda r: None, ("--start", "2016-01-01", "--end", "2031-12-31"),
         "outside the market data"),
        (lambda r: None, ("--start", "2016-01-01"), "--start and --end must be given together"),
        (lambda r: None, ("--set", "options.costs.colour=1"),
         "unknown key 'options.costs.colour'"),
    ],
)
def test_evaluate_bad_input_is_one_line_exit_2_and_writes_nothing(tiny_run_copy, in_process,
                                                                   break_run, flags, message):
    run_dir = tiny_run_copy
    break_run(run_dir)
    out = in_process.evaluate("--run", str(run_dir), "--no-plots", *flags)
    assert out.returncode == 2, out.stderr[-3000:]
    assert message in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert not (run_dir / "eval").exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".eval")]


def test_evaluate_bad_input_in_a_real_process_is_one_line(tiny_run_copy):
    """The command line itself: one error line on stderr, exit 2, nothing written."""
    (tiny_run_copy / "best_model.zip").write_bytes(b"not a zip")
    out = run(str(ROOT / "evaluate.py"), "--run", str(tiny_run_copy), "--no-plots")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "not a stable-baselines3 model zip" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tiny_run_copy / "eval").exists()


def test_evaluate_with_a_ruined_policy_compares_on_dates_and_names_it(tiny_run, tmp_path,
                                                                      in_process):
    """A policy ruined before the end (here every trader: ruin at 99.9% of the start) makes
    the comparison align on dates (flat after ruin) instead of crashing, and the report and
    metrics.json say who was ruined and when."""
    out_dir = tmp_path / "ruin"
    out = in_process.evaluate("--run", str(tiny_run), "--set",
              "env.ruin_equity_fraction=0.999", "--baselines", "cash,random,short_put_spread",
              "--out", str(out_dir), "--no-plots")
    assert out.returncode == 0, out.stderr[-3000:]
    document = json.loads((out_dir / "metrics.json").read_text())
    ruined = document["ruined"]
    assert "short_put_spread" in ruined and "cash" not in ruined
    equity = pd.read_csv(out_dir / "equity_short_put_spread.csv", index_col=0)
    assert ruined["short_put_spread"] == equity.index[-1] < document["end"]
    assert 0.0 <= document["comparison"]["spa_pvalue"] <= 1.0
    report = (out_dir / "report.md").read_text()
    assert f"**Ruined:** `short_put_spread` ended on {ruined['short_put_spread']}" in report
    assert "was ruined on" in out.stderr


@pytest.mark.slow  # fast cover: test_reliability's test_killed_run_resumes_to_exactly_the_...
def test_resume_reaches_the_same_totals(tiny_workspace, tiny_run, tmp_path):
    workspace, trained = tiny_workspace, tiny_run
    run_dir = tmp_path / "resumed"
    first = run(str(ROOT / "train.py"), "--config", str(workspace / "tiny.yaml"), "--run-dir",
                str(run_dir), "--total-timesteps", "128", "--no-progress")
    assert first.returncode == 0, first.stderr[-3000:]
    assert (run_dir / "checkpoints" / "ckpt_128_steps.zip").exists()
    (run_dir / "model.zip").unlink()  # as if the run had been cut off after its checkpoint
    second = run(str(ROOT / "train.py"), "--config", str(workspace / "tiny.yaml"), "--run-dir",
                 str(run_dir), "--total-timesteps", "256", "--resume", "--no-progress")
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = json.loads((run_dir / "train_summary.json").read_text())
    straight = json.loads((trained / "train_summary.json").read_text())
    assert resumed["resumed_from"] == "ckpt_128_steps.zip"
    assert resumed["timesteps"] == straight["timesteps"] == TINY_TIMESTEPS == 256


@pytest.mark.slow  # fast cover: test_reliability's test_bad_train_flags[resume_without_checkpoint]
def test_resume_without_checkpoint_is_an_error(tiny_workspace, tmp_path):
    out = run(str(ROOT / "train.py"), "--config", str(tiny_workspace / "tiny.yaml"), "--run-dir",
              str(tmp_path / "never"), "--resume", "--no-progress")
    assert out.returncode == 2
    assert "no checkpoint" in out.stderr


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["env"].update(leverage=3), "unknown key 'env.leverage'"),
        (lambda c: c.update(colour="blue"), "unknown key 'colour'"),
        (lambda c: c["agent"].update(n_steps="many"), "agent.n_steps"),
        (lambda c: c["segments"]["test"].update(start="2030-01-01", end="2030-12-31"),
         "segments.test 2030-01-01..2030-12-31 lies outside the data"),
        (lambda c: c["segments"]["valid"].update(start="2013-01-01"),
         "segments must be ordered and disjoint"),
    ],
)
@pytest.mark.slow  # fast cover: test_reliability's test_bad_config_value (the same five cases
# in-process, among 35) and test_each_cli_reports_one_line_in_a_real_process[train]
def test_bad_config_is_a_clear_error_and_writes_nothing(tmp_path, mutate, message):
    config = tiny_config(tmp_path / "cache")
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    out = run(str(ROOT / "train.py"), "--config", str(path), "--run-dir", str(run_dir),
              "--no-progress")
    assert out.returncode == 2
    assert message in out.stderr, out.stderr[-2000:]
    assert not run_dir.exists()


def test_evaluate_without_model_is_an_error(tmp_path, in_process):
    out = in_process.evaluate("--run", str(tmp_path))
    assert out.returncode == 2
    assert "no model.zip" in out.stderr


def test_several_seeds_are_summarised_by_median_and_range(tiny_workspace, tmp_path,
                                                         in_process):
    """Two seeds of one rollout each; evaluated against two baselines without plots (the plots
    are test_evaluate_writes_metrics_for_ppo_and_every_baseline's)."""
    run_dir = tmp_path / "seeds"
    out = run(str(ROOT / "train.py"), "--config", str(tiny_workspace / "tiny.yaml"), "--run-dir",
              str(run_dir), "--seeds", "0", "1", "--total-timesteps", "64", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run_dir / "seed_0" / "model.zip").exists() and (run_dir / "seed_1" / "model.zip").exists()
    out = in_process.evaluate("--run", str(run_dir), "--baselines", "cash,short_put_spread",
                              "--no-plots")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "eval" / "metrics.json").read_text())
    per_seed = summary["seeds"]["per_seed"]
    assert set(per_seed) == {"ppo_seed_0", "ppo_seed_1"}
    sharpes = [m["sharpe"] for m in per_seed.values()]
    spread = summary["seeds"]["spread"]["sharpe"]
    assert spread["min"] == min(sharpes) and spread["max"] == max(sharpes)
    assert summary["policies"]["ppo"]["sharpe"] == pytest.approx(float(np.median(sharpes)))
    assert 0.0 <= summary["seeds"]["deflated_sharpe"] <= 1.0
    interval = summary["seeds"]["sharpe_median_interval"]
    assert interval["low"] == min(sharpes) and interval["high"] == max(sharpes)  # 2 seeds
    report = (run_dir / "eval" / "report.md").read_text()
    assert "across seeds" in report and "bootstrap interval of that median" in report
    assert "median Sharpe over 2 seeds" in out.stdout
    assert 0.0 <= summary["comparison"]["spa_pvalue"] <= 1.0
    assert summary["comparison"]["compared"] == ["cash", "short_put_spread"]


def test_evaluate_on_real_quotes_writes_chain_and_model_side_by_side(tiny_run, tmp_path):
    """SPX quotes of two 2019 sessions (outside the embedded data): the bars come from the
    chain, so policies that read forecasts are skipped with a reason; the others run on both."""
    out_dir = tmp_path / "eval_chain"
    out = run(str(ROOT / "evaluate.py"), "--run", str(tiny_run), "--quotes", "chain", "--chain",
              str(SPX_CHAIN), "--out", str(out_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert set(metrics["skipped"]) == {"ppo", "forecast_rule"}
    assert all("forecast" in why for why in metrics["skipped"].values())
    ran = [name for name in metrics if name != "skipped"]
    assert {"cash", "short_put_spread", "iron_condor", "buy_and_hold"} <= set(ran)
    for name in ran:
        assert set(metrics[name]) == {"chain", "model"}
        for kind in ("chain", "model"):
            assert set(REQUIRED_METRICS) <= set(metrics[name][kind])
    details = json.loads((out_dir / "chain_run.json").read_text())
    assert details["level_factor"] == 10.0 and details["sessions"] == 2
    assert details["strike_spacing"] > 0 and details["strike_spacing"] % 5.0 == 0  # SPX grid
    assert (out_dir / "report.md").read_text().count("| short_put_spread |") == 1
    assert (out_dir / "trades_short_put_spread_chain.csv").exists()


def test_evaluate_quotes_chain_needs_a_chain_file(tiny_run, in_process):
    out = in_process.evaluate("--run", str(tiny_run), "--quotes", "chain")
    assert out.returncode == 2 and "--chain" in out.stderr and "Traceback" not in out.stderr


GYM_MAKE = """
import sys, warnings
warnings.simplefilter("error")
import gymnasium as gym
env = gym.make("envs:SpyOptions-v1", config=sys.argv[1], segment="test")
obs, info = env.reset(seed=0)
print("made", env.unwrapped.spec.id, len(obs))
try:
    gym.make("SpyOptions-v0", config=sys.argv[1], segment="test")
except gym.error.Error as exc:
    print("v0:", type(exc).__name__)
"""


def test_plain_gymnasium_code_makes_the_env_without_importing_envs(tiny_workspace):
    """A fresh interpreter that never imports ``envs`` itself: the module-prefixed id finds
    the environment, with no warning; ``SpyOptions-v0`` does not exist (no alias)."""
    out = run("-c", GYM_MAKE, str(tiny_workspace / "tiny.yaml"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "made SpyOptions-v1" in out.stdout
    # Gymnasium's own refusal of an id whose later version exists: no environment is made.
    assert "v0: DeprecatedEnv" in out.stdout, out.stdout


def test_plain_gymnasium_code_drives_the_env_made_by_id(tiny_workspace):
    import gymnasium as gym

    env = gym.make("envs:SpyOptions-v1", config=str(tiny_workspace / "tiny.yaml"),
                   segment="test")
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    total, steps, done = 0.0, 0, False
    while not done:
        valid = np.flatnonzero(env.unwrapped.action_masks())
        obs, reward, terminated, truncated, info = env.step(int(rng.choice(valid)))
        total += reward
        steps += 1
        done = terminated or truncated
    assert steps > 50
    assert total == pytest.approx(info.equity_usd / env.unwrapped.start_equity - 1, abs=1e-9)
