"""End-to-end tests of train.py and evaluate.py on a tiny config (subprocesses, real data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.config import BaselinesConfig

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_METRICS = ("total_return_pct", "annual_return_pct", "annual_vol_pct", "sharpe",
                    "sortino", "max_drawdown_pct", "trades", "win_rate", "calmar",
                    "avg_pnl_per_trade_usd", "profit_factor", "total_costs_usd", "exposure",
                    "return_on_margin_pct")


def tiny_config(cache_dir: Path) -> dict:
    return {
        "name": "tiny",
        "data": {"source": "embedded", "start": "2010-01-01"},
        "segments": {"train": {"start": "2014-01-01", "end": "2015-06-30"},
                     "valid": {"start": "2015-07-01", "end": "2015-12-31"},
                     "test": {"start": "2016-01-01", "end": "2016-06-30"}},
        "forecast": {"first_forecast_date": "2013-10-01", "members": ["vol_rw"],
                     "references": ["random_walk"], "refit_every_bars": 252,
                     "cache_dir": str(cache_dir)},
        "env": {"underlying_price_scale": 0.1, "episode_length_bars": 40},
        "agent": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": [16],
                  "vec_normalize": True},
        "train": {"total_timesteps": 256, "checkpoint_every_steps": 128,
                  "eval_every_steps": 128, "n_envs": 1, "progress_bar": False},
        "eval": {"bootstrap_samples": 200},
    }


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    (base / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(base / "cache")))
    return base


@pytest.fixture(scope="module")
def trained(workspace) -> Path:
    run_dir = workspace / "runs" / "tiny"
    out = run(str(ROOT / "train.py"), "--config", str(workspace / "tiny.yaml"), "--run-dir",
              str(run_dir), "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


def test_train_writes_a_complete_run_directory(trained):
    for name in ("config.yaml", "command.txt", "provenance.json", "forecasts/panel.parquet",
                 "model.zip", "best_model.zip", "train_summary.json", "vecnormalize.npz",
                 "best_vecnormalize.npz"):
        assert (trained / name).exists(), name
    assert list((trained / "checkpoints").glob("ckpt_*_steps.zip"))
    assert list((trained / "tb").rglob("events.out.tfevents.*"))
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["timesteps"] == 256
    provenance = json.loads((trained / "provenance.json").read_text())
    assert provenance["data"]["source"] == "embedded"
    assert provenance["data"]["symbol"] == "^GSPC"
    resolved = yaml.safe_load((trained / "config.yaml").read_text())
    assert resolved["train"]["total_timesteps"] == 256
    assert resolved["env"]["starting_equity_usd"] == 100000.0  # defaults written out


def test_tensorboard_has_grouped_custom_scalars(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    event_dir = next((trained / "tb").rglob("events.out.tfevents.*")).parent
    acc = EventAccumulator(str(event_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("env/episode_return_pct", "env/trades_per_episode", "env/win_rate",
                "env/costs_pct", "eval/sharpe", "eval/return_pct", "eval/max_drawdown_pct"):
        assert tag in tags, (tag, sorted(tags))


def test_evaluate_writes_metrics_for_ppo_and_every_baseline(trained):
    out = run(str(ROOT / "evaluate.py"), "--run", str(trained))
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((trained / "eval" / "metrics.json").read_text())
    expected = {"ppo", *BaselinesConfig().names}
    assert set(metrics) == expected
    for name, values in metrics.items():
        for key in REQUIRED_METRICS:
            assert key in values, (name, key)
    assert metrics["cash"]["total_return_pct"] == 0.0
    assert metrics["cash"]["trades"] == 0
    for name in expected:
        assert (trained / "eval" / f"equity_{name}.csv").exists()
        assert (trained / "eval" / f"trades_{name}.csv").exists()
    for plot in ("equity.png", "actions_ppo.png", "pnl_by_strategy.png"):
        assert (trained / "eval" / plot).stat().st_size > 10_000
    report = (trained / "eval" / "report.md").read_text()
    assert "| ppo |" in report and "bootstrap" in report
    assert "report:" in out.stdout


def test_resume_reaches_the_same_totals(workspace, trained):
    run_dir = workspace / "runs" / "resumed"
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
    assert resumed["timesteps"] == straight["timesteps"] == 256


def test_resume_without_checkpoint_is_an_error(workspace):
    out = run(str(ROOT / "train.py"), "--config", str(workspace / "tiny.yaml"), "--run-dir",
              str(workspace / "runs" / "never"), "--resume", "--no-progress")
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
def test_bad_config_is_a_clear_error_and_writes_nothing(workspace, tmp_path, mutate, message):
    config = tiny_config(workspace / "cache")
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    out = run(str(ROOT / "train.py"), "--config", str(path), "--run-dir", str(run_dir),
              "--no-progress")
    assert out.returncode == 2
    assert message in out.stderr, out.stderr[-2000:]
    assert not run_dir.exists()


def test_evaluate_without_model_is_an_error(tmp_path):
    out = run(str(ROOT / "evaluate.py"), "--run", str(tmp_path))
    assert out.returncode == 2
    assert "no model.zip" in out.stderr


def test_several_seeds_are_summarised_by_median_and_range(workspace):
    run_dir = workspace / "runs" / "seeds"
    out = run(str(ROOT / "train.py"), "--config", str(workspace / "tiny.yaml"), "--run-dir",
              str(run_dir), "--seeds", "0", "1", "--total-timesteps", "128", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run_dir / "seed_0" / "model.zip").exists() and (run_dir / "seed_1" / "model.zip").exists()
    out = run(str(ROOT / "evaluate.py"), "--run", str(run_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    per_seed = summary["seeds"]["per_seed"]
    assert set(per_seed) == {"ppo_seed_0", "ppo_seed_1"}
    sharpes = [m["sharpe"] for m in per_seed.values()]
    spread = summary["seeds"]["spread"]["sharpe"]
    assert spread["min"] == min(sharpes) and spread["max"] == max(sharpes)
    assert summary["policies"]["ppo"]["sharpe"] == pytest.approx(float(np.median(sharpes)))
    assert 0.0 <= summary["seeds"]["deflated_sharpe"] <= 1.0
    assert "across seeds" in (run_dir / "eval" / "report.md").read_text()
