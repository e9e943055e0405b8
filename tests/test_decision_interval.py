"""``agent.decision_every_bars``: PPO decides every N bars and holds in between, the same way
in training (``envs.vec_env.BatchedSpyVecEnv``, tested in ``tests/test_vec_env.py``) and in
every evaluation, validation and trade (``agents.ppo.PPOPolicy``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.chain_eval import HoldOnBars
from agents.evaluation import run_episode
from agents.learnability import SuiteSettings, heldout_envs
from agents.ppo import PPOPolicy
from cli.learnability import suite_config
from config import ConfigError, load_config
from envs.actions import ACTION_HOLD, action_for_strategy
from envs.step_info import StepInfo

OPEN = action_for_strategy("bull_call_spread")


class _Model:
    """Stands for a trained model: opens a bull call spread whenever asked (or holds when the
    mask refuses it), and counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def predict(self, obs, deterministic=True, action_masks=None):
        self.asked += 1
        return np.array(OPEN if action_masks[OPEN] else ACTION_HOLD), None


def test_the_policy_asks_its_model_on_every_nth_bar_and_holds_in_between():
    model = _Model()
    policy = PPOPolicy(model, "maskable_ppo", decision_every_bars=3)
    obs, mask = np.zeros(4, dtype=np.float32), np.ones(30, dtype=bool)
    actions = [policy.act(obs, {}, mask) for _ in range(7)]
    assert actions == [OPEN, 0, 0, OPEN, 0, 0, OPEN] and model.asked == 3
    policy.reset(1)  # a new episode starts with a decision
    assert policy.act(obs, {}, mask) == OPEN and model.asked == 4
    every_bar = PPOPolicy(_Model(), "maskable_ppo")
    assert [every_bar.act(obs, {}, mask) for _ in range(3)] == [OPEN] * 3
    with pytest.raises(ValueError, match="decision_every_bars"):
        PPOPolicy(model, "maskable_ppo", decision_every_bars=0)


def test_an_evaluation_episode_opens_only_on_decision_bars():
    """Through ``run_episode`` (evaluation, validation, the suite's scoring) the policy acts
    only on bars 0, N, 2N, ... of the episode; asked every bar, the same model opens on others."""
    settings = SuiteSettings("no_edge", n_heldout_paths=1, heldout_episodes_per_path=1)
    env = heldout_envs(settings, suite_config(settings, 200))[0]

    def acting_bars(every: int) -> np.ndarray:
        result = run_episode(env, PPOPolicy(_Model(), "maskable_ppo", decision_every_bars=every))
        actions = result.equity["action"].to_numpy()  # "none": the row after the last bar
        return np.flatnonzero(~np.isin(actions, ["hold", "none"]))

    every = 4
    bars = acting_bars(every)
    assert len(bars) >= 3 and np.all(bars % every == 0)
    assert np.any(acting_bars(1) % every != 0)


def test_a_decision_interval_needs_the_batched_vec_env():
    with pytest.raises(ConfigError, match="decision_every_bars 5 needs train.vec_env: batched"):
        load_config("configs/quick.yaml", ["agent.decision_every_bars=5", "train.vec_env=dummy"])
    assert load_config("configs/quick.yaml",
                       ["agent.decision_every_bars=5"]).agent.decision_every_bars == 5


def test_bars_held_for_missing_features_keep_the_decision_bars():
    """Chain evaluation holds on bars without features without asking the policy
    (``HoldOnBars``); PPO's decisions stay on bars 0, N, 2N, ... of the episode."""
    dates = pd.bdate_range("2021-01-04", periods=7)
    policy = HoldOnBars(PPOPolicy(_Model(), "maskable_ppo", decision_every_bars=3),
                        [dates[3], dates[4]])
    policy.reset(0)
    obs, mask = np.zeros(4, dtype=np.float32), np.ones(30, dtype=bool)
    actions = [policy.act(obs, StepInfo(date=date), mask) for date in dates]
    assert actions == [OPEN, 0, 0, 0, 0, 0, OPEN] and policy.held == 2
