"""``env.min_holding_bars``: the policy may close a position only after holding it that long;
labelled closes (a rule's exit, the risk manager's) and the automatic exits are not held."""

from __future__ import annotations

import pytest

from agents.learnability import SuiteSettings, heldout_envs
from cli.learnability import suite_config
from envs.actions import ACTION_CLOSE, ACTION_HOLD, action_for_strategy
from envs.step_info import StepInfo

MIN_HOLD = 3


@pytest.fixture(scope="module")
def envs_by_min_hold():
    """One synthetic held-out path's eval env with and without a minimum hold."""
    out = {}
    for bars in (0, MIN_HOLD):
        settings = SuiteSettings("signal", n_heldout_paths=1, heldout_episodes_per_path=1,
                                 overrides=(f"env.min_holding_bars={bars}",))
        out[bars] = heldout_envs(settings, suite_config(settings, 200))[0]
    return out


def _open(env):
    env.reset(options={"start_index": 0, "length_bars": 40})
    action = action_for_strategy("bull_call_spread")
    assert env.action_masks()[action]
    _, _, _, _, info = env.step(action)
    assert StepInfo.of(info).open_positions == 1
    return env


def test_the_policy_cannot_close_before_the_minimum_hold(envs_by_min_hold):
    env = _open(envs_by_min_hold[MIN_HOLD])
    for held in range(1, MIN_HOLD):  # bars held when the close is asked
        assert not env.action_masks()[ACTION_CLOSE]
        _, _, _, _, info = env.step(ACTION_CLOSE)  # asked anyway: a no-op that says why
        step = StepInfo.of(info)
        assert step.open_positions == 1 and step.action == ACTION_HOLD
        assert step.invalid_action == (f"close: position held {held} of min_holding_bars "
                                       f"{MIN_HOLD} bars")
    assert env.action_masks()[ACTION_CLOSE]
    _, _, _, _, info = env.step(ACTION_CLOSE)
    assert StepInfo.of(info).open_positions == 0
    assert env.trade_ledger()["exit_reason"].tolist() == ["agent"]


def test_without_a_minimum_hold_the_next_bar_may_close(envs_by_min_hold):
    env = _open(envs_by_min_hold[0])
    assert env.action_masks()[ACTION_CLOSE]
    _, _, _, _, info = env.step(ACTION_CLOSE)
    assert StepInfo.of(info).open_positions == 0


def test_a_labelled_close_is_not_held(envs_by_min_hold):
    """A rule's exit or the risk manager's (``label_close``) closes at once."""
    env = _open(envs_by_min_hold[MIN_HOLD])
    env.step(ACTION_HOLD)
    env.label_close("risk_exit")
    _, _, _, _, info = env.step(ACTION_CLOSE)
    assert StepInfo.of(info).open_positions == 0
    assert env.trade_ledger()["exit_reason"].tolist() == ["risk_exit"]
