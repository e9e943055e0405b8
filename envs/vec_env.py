"""A batched vectorised environment: N ``SpyOptionsEnv`` copies stepped in one loop.

:class:`BatchedSpyVecEnv` is what ``DummyVecEnv([EpisodeRecorder(Monitor(env)) ...])`` gives
stable-baselines3 (the training stack of ``agents.training`` until issue 22), bit for bit, with
less work per step:

* no wrapper calls: the bookkeeping of ``Monitor`` (``info["episode"]`` with ``r``, ``l``,
  ``t`` at an episode's end) and of ``agents.checkpoint.EpisodeRecorder`` (an
  :class:`envs.replay.ReplayRecord` per env, behind ``env_method("get_state")`` / ``("set_state", ...)``)
  is done here;
* no ``deepcopy`` of the step infos and observations (``DummyVecEnv`` copies them every step;
  here every step builds new ones);
* observations written in place into one preallocated ``(n_envs, n_obs)`` buffer, the per-bar
  rows (market block, zero portfolio block) of every env in one gather when the envs share one
  market panel, then each env's portfolio entries;
* the action masks of all envs in one ``(n_envs, n_actions)`` buffer, computed once per step,
  behind ``action_masks()`` and ``env_method("action_masks")`` (what sb3_contrib's
  ``get_action_masks`` calls).

Auto-reset is ``DummyVecEnv``'s: an env whose episode ends puts its last observation in
``info["terminal_observation"]``, ``info["TimeLimit.truncated"]`` says truncated and not
terminated, and the env is reset with no seed (its own ``np_random``); the first ``reset()``
uses the seeds of ``seed()`` once. Rewards are float32 as ``DummyVecEnv`` stores them (the
episode return in ``info["episode"]["r"]`` sums the float64 rewards, as ``Monitor`` does).
``tests/test_vec_env.py`` checks all of it against ``DummyVecEnv`` step by step.

Each env is a ``SpyOptionsEnv``, or an env that steps one at a time through its ``active``
attribute (``agents.paths.PathSwitchingEnv``: the path drawn at each reset).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from envs.actions import ACTION_HOLD
from envs.replay import ReplayRecord
from envs.spy_options_env import SpyOptionsEnv
from envs.step_info import StepInfo

__all__ = ["BatchedSpyVecEnv"]

_MONITOR_DIGITS = 6  # Monitor rounds the episode return and time to this many digits


def _stepper(env: gym.Env) -> SpyOptionsEnv:
    """The ``SpyOptionsEnv`` that ``env`` steps now."""
    return env if isinstance(env, SpyOptionsEnv) else env.active


class BatchedSpyVecEnv(VecEnv):
    """``n`` environments stepped in one loop (see the module docstring).

    ``envs`` are distinct environment objects, already made (those of one panel should share
    their per-bar tables: ``envs.make_env(..., share_with=first)``), with one observation and
    action space.
    """

    def __init__(self, envs: Sequence[gym.Env], decision_every_bars: int = 1) -> None:
        envs = list(envs)
        if decision_every_bars < 1:
            raise ValueError(f"decision_every_bars must be >= 1, got {decision_every_bars}")
        self.decision_every_bars = int(decision_every_bars)
        if not envs:
            raise ValueError("BatchedSpyVecEnv needs at least one environment")
        if len({id(env) for env in envs}) != len(envs):
            raise ValueError("BatchedSpyVecEnv got the same environment object twice; make one "
                             "per slot (envs.make_env(..., share_with=first))")
        self.envs = envs
        first = envs[0]
        super().__init__(len(envs), first.observation_space, first.action_space)
        for k, env in enumerate(envs):
            if env.observation_space != first.observation_space or (
                    env.action_space != first.action_space):
                raise ValueError(f"environment {k} has other spaces than environment 0: "
                                 f"{env.observation_space}, {env.action_space}")
        n = len(envs)
        self._obs = np.zeros((n, *first.observation_space.shape), dtype=np.float32)
        self._rewards = np.zeros(n, dtype=np.float32)
        self._dones = np.zeros(n, dtype=bool)
        self._masks = np.zeros((n, first.action_space.n), dtype=bool)
        self._masks_ready = False
        self._records = [ReplayRecord() for _ in envs]
        self._episode_rewards: list[list[float]] = [[] for _ in envs]  # as Monitor keeps them
        self._t_start = time.time()
        steppers = [_stepper(env) for env in envs]
        # One gather of the per-bar rows for all when every env reads the same panel with the
        # same clip.
        shared = all(isinstance(env, SpyOptionsEnv) and env.panel is first.panel
                     and env._clip == first._clip for env in envs)
        self._shared_obs_rows = steppers[0]._obs_rows if shared else None
        self.actions: np.ndarray | None = None
        self.metadata = first.metadata

    # ------------------------------------------------------------------ one env
    def _reset_one(self, k: int, seed: int | None = None, options: dict | None = None):
        env = self.envs[k]
        self._records[k].on_reset(env, seed, options)
        self._episode_rewards[k] = []
        return env.reset(seed=seed, options=options)

    def _step_one(self, k: int, action) -> tuple[float, bool, bool, StepInfo]:
        """One env's step with Monitor's and the replay record's bookkeeping; no reset (the
        env's :class:`envs.step_info.StepInfo`, with Monitor's ``episode`` entry at the end).

        With ``decision_every_bars`` N > 1 the step is the action's bar and then up to N - 1
        bars of hold (fewer when the episode ends), one transition each, as a policy that
        decides every N bars trades (:class:`agents.ppo.PPOPolicy`); the reward is their sum
        and the info the last bar's. The replay record keeps every bar's action."""
        record = self._records[k].actions
        stepper = _stepper(self.envs[k])
        record.append(int(action))
        reward, terminated, truncated, info = stepper._transition(action)
        for _ in range(self.decision_every_bars - 1):
            if terminated or truncated:
                break
            record.append(ACTION_HOLD)
            more, terminated, truncated, info = stepper._transition(ACTION_HOLD)
            reward += more
        rewards = self._episode_rewards[k]
        rewards.append(float(reward))
        if terminated or truncated:
            info["episode"] = {"r": round(sum(rewards), _MONITOR_DIGITS), "l": len(rewards),
                               "t": round(time.time() - self._t_start, _MONITOR_DIGITS)}
        return reward, terminated, truncated, info

    def _write_obs(self) -> None:
        """Every env's current observation into the buffer, as its ``_get_obs`` makes it."""
        obs = self._obs
        steppers = [_stepper(env) for env in self.envs]
        if self._shared_obs_rows is not None:
            obs[:] = self._shared_obs_rows[[s.sim.bar for s in steppers]]
        else:
            for k, stepper in enumerate(steppers):
                obs[k] = stepper._obs_rows[stepper.sim.bar]
        for k, stepper in enumerate(steppers):
            stepper._write_portfolio_obs(obs[k])

    # ------------------------------------------------------------------ VecEnv API
    def reset(self):
        for k in range(self.num_envs):
            _, self.reset_infos[k] = self._reset_one(k, seed=self._seeds[k],
                                                     options=self._options[k] or None)
        self._reset_seeds()
        self._reset_options()
        self._masks_ready = False
        self._write_obs()
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = actions

    def step_wait(self):
        infos = []
        rewards, dones = self._rewards, self._dones
        for k, action in enumerate(self.actions):
            reward, terminated, truncated, info = self._step_one(k, action)
            rewards[k] = reward
            done = dones[k] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if done:
                info["terminal_observation"] = _stepper(self.envs[k])._get_obs()
                _, self.reset_infos[k] = self._reset_one(k)
            infos.append(info)
        self._masks_ready = False
        self._write_obs()
        return self._obs.copy(), rewards.copy(), dones.copy(), infos

    def action_masks(self) -> np.ndarray:
        """The valid actions of every env now, ``(n_envs, n_actions)`` bool (a copy)."""
        if not self._masks_ready:
            for k, env in enumerate(self.envs):
                self._masks[k] = _stepper(env).action_masks()
            self._masks_ready = True
        return self._masks.copy()

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in self.envs]

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "action_masks":
            return [self._method(i, "action_masks") for i in self._get_indices(indices)]
        return [self.envs[i].get_wrapper_attr(attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for i in self._get_indices(indices):
            setattr(self.envs[i], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None,
                   **method_kwargs) -> list[Any]:
        if method_name == "action_masks":  # every step of MaskablePPO: one copy for all
            masks = self.action_masks()
            return [masks[i] for i in self._get_indices(indices)]
        return [self._method(i, method_name)(*method_args, **method_kwargs)
                for i in self._get_indices(indices)]

    def _method(self, k: int, name: str) -> Callable:
        """Env ``k``'s method ``name``; the batched env answers those whose state it holds."""
        if name == "action_masks":
            return lambda: self.action_masks()[k]
        if name == "get_state":
            return lambda: self._records[k].snapshot(self.envs[k])
        if name == "set_state":
            return lambda state: self._set_state(k, state)
        return self.envs[k].get_wrapper_attr(name)

    def _set_state(self, k: int, state: dict) -> None:
        every = self.decision_every_bars
        if state.get("kind") == "replay" and every > 1:
            # the record keeps every bar; a step spans ``every`` of them from the reset on (a
            # snapshot is taken between steps), so the decisions are every ``every``-th action
            state = {**state, "actions": state["actions"][::every]}
        self._records[k].restore(self.envs[k], state, reset=lambda **kw: self._reset_one(k, **kw),
                                 step=lambda action: self._step_one(k, action))
        self._masks_ready = False

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        """``Monitor`` counts as a wrapper of every env (its ``info["episode"]`` is written
        here); other wrappers are looked for on the envs themselves."""
        return [issubclass(Monitor, wrapper_class) or is_wrapped(self.envs[i], wrapper_class)
                for i in self._get_indices(indices)]
