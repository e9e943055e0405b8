"""The bench scripts start and write their figures (the plumbing, never the speed: speed
targets are measured by running them, not asserted in tests)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, run

BENCH_SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("script", BENCH_SCRIPTS)
def test_every_bench_script_prints_its_help(script):
    out = run(f"bench/{script}", "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("usage:")


def test_train_throughput_small_run_writes_every_figure(tmp_path):
    """Both CartPole variants of the bench (padded to our spaces, without the compiler import)
    in one tiny run: each figure is there and positive."""
    out_json = tmp_path / "tt.json"
    out = run("bench/train_throughput.py", "--timesteps", "128", "--n-envs", "2",
              "--cartpole-spaces", "ours", "--lean-cartpole", "--json", str(out_json))
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out_json.read_text())
    assert figures["cartpole_spaces"] == "ours" and figures["lean_cartpole"] is True
    (row,) = figures["runs"]
    assert row["n_envs"] == 2
    for key in ("user_ratio", "steady_ratio"):
        assert row[key] > 0
    assert row["ours"]["vec_env"] == "BatchedSpyVecEnv" and row["ours"]["algo"] == "MaskablePPO"


def test_train_throughput_trains_ours_unmasked_with_plain_ppo(tmp_path):
    """``--ours-unmasked``: our environment under SB3's plain PPO (the bound without masks)."""
    out_json = tmp_path / "tt.json"
    out = run("bench/train_throughput.py", "--timesteps", "128", "--n-envs", "2",
              "--ours-unmasked", "--json", str(out_json))
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out_json.read_text())
    assert figures["ours_unmasked"] is True
    (row,) = figures["runs"]
    assert row["steady_ratio"] > 0 and row["ours"]["vec_env"] == "BatchedSpyVecEnv"
    assert row["ours"]["algo"] == "PPO" and row["cartpole"]["algo"] == "PPO"


def test_policy_update_small_run_writes_every_variant(tmp_path):
    out_json = tmp_path / "pu.json"
    out = run("bench/policy_update.py", "--repeat", "1", "--updates", "3", "--json",
              str(out_json))
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out_json.read_text())
    assert set(figures["us_per_update"]) == {"cartpole", "ours_spaces_unmasked",
                                             "ours_masked_small", "ours", "ours_stock"}
    assert all(v > 0 for v in figures["us_per_update"].values())
    assert figures["n_obs"] > 4 and figures["n_actions"] > 2


def test_signal_rule_small_run_writes_a_row_per_hold(tmp_path):
    out_json = tmp_path / "sr.json"
    out = run("bench/signal_rule.py", "--holds", "1,20", "--heldout-paths", "1",
              "--heldout-episodes-per-path", "1", "--json", str(out_json))
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out_json.read_text())
    assert [r["hold_bars"] for r in figures["rows"]] == [1, 20]
    assert all(r["episodes"] == 1 for r in figures["rows"])
    # a different hold is a different policy: the two returns differ
    assert figures["rows"][0]["mean_episode_return_pct"] != figures["rows"][1][
        "mean_episode_return_pct"]


def test_signal_rule_refuses_bad_holds_in_one_line():
    out = run("bench/signal_rule.py", "--holds", "5,zero")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "--holds" in out.stderr
