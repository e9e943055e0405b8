"""Tests of the environment's typed ``info`` (``envs.step_info.StepInfo``)."""

from __future__ import annotations

import math
import pickle
from functools import cache

import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from envs import EnvConfig, SpyOptionsEnv
from envs.step_info import EpisodeStats, StepCosts, StepInfo
from tests.env_data import SCALE, embedded_panel


@cache
def panel():
    return embedded_panel("2016-01-01", "2016-03-31")


def env(info_level: str, length_bars: int = 5) -> SpyOptionsEnv:
    cfg = EnvConfig(underlying_price_scale=SCALE, episode_length_bars=length_bars)
    return SpyOptionsEnv(panel(), cfg, mode="train", info_level=info_level)


def test_slim_info_reads_its_entries_and_names_the_full_info_for_the_rest():
    e = env("slim")
    _, info = e.reset(seed=0)
    assert type(info) is StepInfo and not info.is_full
    assert info.equity_usd == e.start_equity == info.cash_usd
    assert info.open_positions == 0 and info.invalid_action is None
    assert info.greeks == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(KeyError, match="info_level='full'"):
        _ = info.portfolio
    _, _, _, _, info = e.step(1)  # close with nothing open: invalid, a hold
    assert isinstance(info.invalid_action, str) and info.action == 0


def test_full_info_carries_typed_costs_and_the_episode_stats_at_the_end():
    e = env("full", length_bars=3)
    _, info = e.reset(seed=0, options={"start_index": 0, "length_bars": 3})
    assert info.is_full and isinstance(info.costs, StepCosts) and info.episode_stats is None
    open_action = next(a for a in range(2, len(e.action_names)) if e.action_masks()[a])
    _, _, _, _, info = e.step(open_action)
    assert info.open_positions == 1 == len(info.position) == len(info.portfolio.positions)
    assert info.costs.step_usd == pytest.approx(info.commission_usd + info.spread_usd)
    assert info.costs.total_usd == pytest.approx(info.costs.step_usd) and info.costs.step_usd > 0
    done = False
    while not done:
        _, _, terminated, truncated, info = e.step(0)
        done = terminated or truncated
    stats = info.episode_stats
    assert isinstance(stats, EpisodeStats) and stats.trades == 1 and stats.bars == 3
    assert math.isclose(stats.return_pct, 100 * (info.equity_usd / e.start_equity - 1))


def test_a_wrappers_plain_copy_and_a_pickle_read_back_the_same():
    e = env("full")
    _, info = e.reset(seed=0)
    copied = StepInfo.of(dict(info))  # VecMonitor hands back info.copy(), a plain dict
    assert copied == info and copied.equity_usd == info.equity_usd and copied.date == info.date
    assert StepInfo.of(info) is info
    restored = pickle.loads(pickle.dumps(info))  # SubprocVecEnv pickles infos
    assert type(restored) is StepInfo and restored == info


def test_monitor_and_a_vec_env_keep_the_step_info_and_add_their_entries():
    vec = DummyVecEnv([lambda: Monitor(env("slim", length_bars=2))])
    vec.reset()
    infos = []
    for _ in range(2):
        _, _, _, step_infos = vec.step([0])
        infos += step_infos
    last = infos[-1]
    assert all(type(i) is StepInfo for i in infos)
    assert last["episode"]["l"] == 2 and "terminal_observation" in last
    assert isinstance(last.episode_stats, EpisodeStats) and last.episode_stats.bars == 2
