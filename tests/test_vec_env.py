"""Tests of the batched vectorised environment (``envs.vec_env.BatchedSpyVecEnv``).

The reference is today's training stack, ``DummyVecEnv`` over ``EpisodeRecorder(Monitor(env))``
on the same seeds: the batched env must give the same observations, rewards, dones, infos and
action masks, bit for bit, step by step, through automatic resets, invalid actions, several
open positions and path switching; the same checkpoint snapshots; and the same MaskablePPO
parameters after a short training. Environments are built from the embedded data and a causal
forecast panel (``tests/env_data.py``): no forecaster runs.
"""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.checkpoint import EpisodeRecorder
from agents.paths import PathSwitchingEnv, bootstrap_panel
from envs import EnvConfig, SpyOptionsEnv
from envs.vec_env import BatchedSpyVecEnv
from tests.env_data import SCALE, embedded_panel

EPISODE_BARS = 15  # short episodes: many automatic resets in a few hundred steps
P_INVALID = 0.1  # share of actions drawn among the masked (invalid) ones


def env_config(**overrides) -> EnvConfig:
    return EnvConfig(underlying_price_scale=SCALE, episode_length_bars=EPISODE_BARS, **overrides)


@cache
def template(overrides: tuple = (), path: int = 0) -> SpyOptionsEnv:
    """One env per config and path whose per-bar tables every test's envs share (tables are
    built lazily and never change once built)."""
    real = embedded_panel("2016-01-01", "2016-12-31")
    panel = real if path == 0 else bootstrap_panel(real, 10.0, np.random.default_rng(path))
    return SpyOptionsEnv(panel, env_config(**dict(overrides)), mode="train")


def spy_envs(n: int, overrides: tuple = (), path: int = 0) -> list[SpyOptionsEnv]:
    """``n`` fresh training envs on one panel sharing the template's per-bar tables."""
    first = template(overrides, path)
    return [SpyOptionsEnv(first.panel, first.cfg, mode="train", unit_tables=first.tables)
            for _ in range(n)]


def switching(n: int) -> list[PathSwitchingEnv]:
    """``n`` path-switching envs over the real 2016 panel and one bootstrap of it."""
    return [PathSwitchingEnv([spy_envs(1, path=path)[0] for path in (0, 5)]) for _ in range(n)]


def dummy(envs, seed: int = 7) -> DummyVecEnv:
    """Today's training stack over ``envs`` (agents.training before the batched env)."""
    for rank, env in enumerate(envs):
        env.reset(seed=seed + rank)
    vec = DummyVecEnv([lambda env=env: EpisodeRecorder(Monitor(env)) for env in envs])
    vec.seed(seed)
    return vec


def batched(envs, seed: int = 7) -> BatchedSpyVecEnv:
    for rank, env in enumerate(envs):
        env.reset(seed=seed + rank)
    vec = BatchedSpyVecEnv(envs)
    vec.seed(seed)
    return vec


def draw_actions(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """A valid action per env, or (with probability ``P_INVALID``) an invalid one."""
    out = np.empty(len(masks), dtype=np.int64)
    for k, mask in enumerate(masks):
        pool = np.flatnonzero(~mask) if rng.random() < P_INVALID and not mask.all() else \
            np.flatnonzero(mask)
        out[k] = rng.choice(pool)
    return out


def plain(info: dict) -> dict:
    """An info dict comparable with ``==``: NaN as a string, arrays as lists, Monitor's wall
    time left out."""
    out = {"type": type(info).__name__}
    for key, value in info.items():
        if key == "episode":
            value = {k: v for k, v in value.items() if k != "t"}
        elif key == "episode_stats":
            value = {k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
                     for k, v in value.to_dict().items()}
        elif isinstance(value, np.ndarray):
            value = (value.dtype.str, value.tolist())
        out[key] = value
    return out


def trajectory(vec, steps: int, seed: int = 11) -> list:
    """Everything the VecEnv hands the learner over ``steps`` steps of random masked actions."""
    rng = np.random.default_rng(seed)
    obs = vec.reset()
    rows = [("reset", obs.dtype.str, obs.tolist(), [plain(i) for i in vec.reset_infos])]
    for _ in range(steps):
        masks = get_action_masks(vec)
        obs, rewards, dones, infos = vec.step(draw_actions(rng, masks))
        rows.append((masks.tolist(), obs.dtype.str, obs.tolist(), rewards.dtype.str,
                     rewards.tolist(), dones.tolist(), [plain(i) for i in infos],
                     [plain(i) for i in vec.reset_infos]))
    return rows


def assert_same(expected: list, got: list) -> None:
    assert len(expected) == len(got)
    for step, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert a == b, f"first difference at step {step}"


def ended_episodes(rows: list) -> int:
    return sum("episode" in info for row in rows[1:] for info in row[6])


@pytest.mark.parametrize(("n_envs", "overrides"), [
    (1, ()),
    (3, ()),
    (3, (("max_open_positions", 2),)),  # close-slot actions, opens beside an open position
    (2, (("ruin_equity_fraction", 0.995), ("profit_target_fraction", 0.3))),  # ruin, exits
])
def test_batched_env_is_bit_identical_to_dummy_vec_env(n_envs, overrides):
    steps = 240 // n_envs
    expected = trajectory(dummy(spy_envs(n_envs, overrides)), steps)
    got = trajectory(batched(spy_envs(n_envs, overrides)), steps)
    assert ended_episodes(expected) >= 2 * n_envs  # automatic resets were exercised
    assert_same(expected, got)


def test_batched_env_is_bit_identical_with_path_switching_envs():
    expected = trajectory(dummy(switching(3)), 80)
    got = trajectory(batched(switching(3)), 80)
    assert ended_episodes(expected) >= 6
    assert_same(expected, got)


def test_terminations_are_not_truncations():
    vec = batched(spy_envs(2, (("ruin_equity_fraction", 0.995),)))
    rows = trajectory(vec, 120)
    terminated = [i for row in rows[1:] for i in row[6]
                  if "episode" in i and not i["TimeLimit.truncated"]]
    truncated = [i for row in rows[1:] for i in row[6] if i.get("TimeLimit.truncated")]
    assert terminated and truncated
    assert all(i["episode"]["l"] == EPISODE_BARS for i in truncated)


def test_masks_reach_maskable_ppo_through_env_method_and_attributes():
    vec = batched(spy_envs(2))
    vec.reset()
    assert is_masking_supported(vec)
    masks = get_action_masks(vec)
    assert masks.shape == (2, vec.action_space.n) and masks.dtype == bool
    np.testing.assert_array_equal(masks, [env.action_masks() for env in vec.envs])
    masks[:] = False  # a copy: the env's own masks are untouched
    assert vec.action_masks()[:, 0].all()
    assert vec.env_method("action_masks", indices=[1])[0].tolist() == \
        vec.envs[1].action_masks().tolist()
    assert vec.get_attr("action_names") == [env.action_names for env in vec.envs]
    assert vec.env_is_wrapped(Monitor) == [True, True]


def test_one_object_twice_is_refused():
    env = spy_envs(1)[0]
    with pytest.raises(ValueError, match="same environment object"):
        BatchedSpyVecEnv([env, env])


def test_checkpoint_snapshots_equal_the_recorders_and_restore_exactly():
    """``env_method("get_state")`` writes what ``EpisodeRecorder`` writes, and a snapshot of
    either kind restores a batched env so that it continues exactly."""
    overrides = (("max_open_positions", 2),)
    reference, original = dummy(spy_envs(2, overrides)), batched(spy_envs(2, overrides))
    trajectory(reference, 37)
    trajectory(original, 37)  # mid-episode, after some automatic resets
    snapshot = json.loads(json.dumps(original.env_method("get_state")))
    assert snapshot == json.loads(json.dumps(reference.env_method("get_state")))
    assert {s["kind"] for s in snapshot} == {"replay"}
    for source in (snapshot, reference.env_method("get_state")):
        restored = batched(spy_envs(2, overrides), seed=99)
        restored.reset()
        for index, state in enumerate(source):
            restored.env_method("set_state", state, indices=[index])
        rng = np.random.default_rng(3)
        for _ in range(25):  # through the ends of the restored episodes
            masks = get_action_masks(original)
            np.testing.assert_array_equal(masks, get_action_masks(restored))
            actions = draw_actions(rng, masks)
            a, b = original.step(actions), restored.step(actions)
            assert (a[0].tolist(), a[1].tolist(), a[2].tolist()) == (
                b[0].tolist(), b[1].tolist(), b[2].tolist())
            assert [plain(i) for i in a[3]] == [plain(i) for i in b[3]]
        original = batched(spy_envs(2, overrides))  # the same point again for the next source
        trajectory(original, 37)


def test_maskable_ppo_learns_the_same_parameters_on_both():
    from agents.config import AgentConfig
    from agents.ppo import build_model

    agent = AgentConfig(n_steps=32, batch_size=32, n_epochs=2, net_arch=[16])
    params = []
    for make in (dummy, batched):
        model = build_model(agent, make(spy_envs(2)), seed=3, tensorboard_log=None)
        model.learn(total_timesteps=192)
        params.append({k: v.clone() for k, v in model.policy.state_dict().items()})
    assert params[0].keys() == params[1].keys()
    for key in params[0]:
        assert params[0][key].equal(params[1][key]), key


@pytest.mark.parametrize("every", [3, 4])
def test_a_decision_every_n_bars_is_the_action_then_holds_with_the_bars_rewards_summed(every):
    """``decision_every_bars`` N: one step is the action's bar and N - 1 bars of hold (fewer at
    the episode's end: 15 bars is not a multiple of 4), exactly as N single-bar steps of the
    same env fed the action then holds; the replay record keeps every bar."""
    slow, fast = batched(spy_envs(1)), spy_envs(1)
    for env in fast:
        env.reset(seed=7)
    fast = BatchedSpyVecEnv(fast, decision_every_bars=every)
    fast.seed(7)
    rng = np.random.default_rng(3)
    assert np.array_equal(fast.reset(), slow.reset())
    decisions = ends = 0
    while ends < 3:
        action = rng.choice(np.flatnonzero(fast.action_masks()[0]))
        obs, reward, done, _ = fast.step(np.array([action]))
        total, bars = 0.0, 0
        for bar_action in [action] + [0] * (every - 1):
            slow_obs, slow_reward, slow_done, _ = slow.step(np.array([bar_action]))
            total, bars = total + float(slow_reward[0]), bars + 1
            if slow_done[0]:
                break
        assert done[0] == slow_done[0]
        assert np.array_equal(obs, slow_obs)
        assert reward[0] == pytest.approx(total, rel=1e-5, abs=1e-9)
        assert bars == every or done[0]
        decisions, ends = decisions + 1, ends + int(done[0])
    assert decisions == 3 * math.ceil(EPISODE_BARS / every)
    assert fast._records[0].actions == slow._records[0].actions


def test_a_decision_interval_below_one_is_refused():
    with pytest.raises(ValueError, match="decision_every_bars"):
        BatchedSpyVecEnv(spy_envs(1), decision_every_bars=0)
