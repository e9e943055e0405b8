"""Exact training checkpoints at rollout boundaries, and normalisation statistics without pickles.

A checkpoint ``ckpt_<N>_steps`` is three files:

* ``.zip``: the SB3 model (policy parameters and optimiser state; SB3's own format, a pickle);
* ``.state.npz``: arrays, read with ``allow_pickle=False``: torch's RNG, numpy's global RNG
  keys, the model's last observation and episode-start flags, and the VecNormalize statistics;
* ``.state.json``: every other piece of state as plain JSON: each training environment's
  snapshot (:class:`EpisodeRecorder`), the RNG scalars, the callbacks' state (best validation
  Sharpe, validation history, next validation step), and the timestep counter. It is written
  last, so a checkpoint without it is incomplete and ignored.

SB3 cannot stop and restart in the middle of a rollout (its rollout buffer is not saved), so
checkpoints are taken at rollout boundaries only: after a policy update, before the next rollout
starts. Resuming from one continues exactly as the uninterrupted run would (tests/test_reliability).

An environment snapshot uses the environment's own ``get_state() -> dict`` and
``set_state(dict)`` when it has them. Otherwise it is a replay record: the RNG state before the
episode's ``reset``, the reset's seed and options, and the actions since; restoring resets the
environment the same way and replays the actions (episodes are short and the environment is
deterministic given its RNG), then sets the RNG to its state at the checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from agents.ppo import PPOPolicy, load_model
from common.io import atomic_target, write_text_atomic
from common.runfolder import verify_model_sha256
from envs.replay import ReplayRecord

__all__ = [
    "CHECKPOINT_PATTERN",
    "EpisodeRecorder",
    "checkpoint_files",
    "checkpoint_steps",
    "latest_checkpoint",
    "load_policy",
    "load_vecnormalize",
    "read_checkpoint_state",
    "restore_training_state",
    "save_vecnormalize",
    "training_state",
    "write_checkpoint_state",
]

CHECKPOINT_PATTERN = re.compile(r"^ckpt_(\d+)_steps\.zip$")
STATE_VERSION = 1
_STATE_JSON = ".state.json"
_STATE_NPZ = ".state.npz"


# ---------------------------------------------------------------- environment snapshots
class EpisodeRecorder(gym.Wrapper):
    """Records what is needed to rebuild the current episode without pickling the env (an
    :class:`envs.replay.ReplayRecord`; ``envs.vec_env.BatchedSpyVecEnv`` keeps the same
    record for each of its envs)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._record = ReplayRecord()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._record.on_reset(self.env, seed, options)
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self._record.actions.append(int(action))
        return self.env.step(action)

    def get_state(self) -> dict:
        """Plain-data snapshot of the wrapped environment's episode."""
        return self._record.snapshot(self.env)

    def set_state(self, state: dict) -> None:
        """Put the environment back into the state :meth:`get_state` recorded."""
        self._record.restore(self.env, state, reset=self.reset, step=self.step)


# ---------------------------------------------------------------- normalisation statistics
_VECNORM_SCALARS = ("clip_obs", "clip_reward", "gamma", "epsilon")


def _vecnormalize_arrays(vec_norm) -> dict[str, np.ndarray]:
    return {
        "obs_mean": np.asarray(vec_norm.obs_rms.mean, dtype=np.float64),
        "obs_var": np.asarray(vec_norm.obs_rms.var, dtype=np.float64),
        "obs_count": np.float64(vec_norm.obs_rms.count),
        "ret_mean": np.asarray(vec_norm.ret_rms.mean, dtype=np.float64),
        "ret_var": np.asarray(vec_norm.ret_rms.var, dtype=np.float64),
        "ret_count": np.float64(vec_norm.ret_rms.count),
        "returns": np.asarray(vec_norm.returns, dtype=np.float64),
        "norm_obs": np.bool_(vec_norm.norm_obs),
        "norm_reward": np.bool_(vec_norm.norm_reward),
        **{name: np.float64(getattr(vec_norm, name)) for name in _VECNORM_SCALARS},
    }


def _set_vecnormalize_arrays(vec_norm, arrays) -> None:
    vec_norm.obs_rms.mean = np.array(arrays["obs_mean"])
    vec_norm.obs_rms.var = np.array(arrays["obs_var"])
    vec_norm.obs_rms.count = float(arrays["obs_count"])
    vec_norm.ret_rms.mean = np.array(arrays["ret_mean"])
    vec_norm.ret_rms.var = np.array(arrays["ret_var"])
    vec_norm.ret_rms.count = float(arrays["ret_count"])
    if np.shape(arrays["returns"]) == np.shape(vec_norm.returns):
        vec_norm.returns = np.array(arrays["returns"])


def _savez_atomic(arrays: dict[str, np.ndarray], path: Path) -> Path:
    tmp = atomic_target(path, suffix=".npz")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_vecnormalize(vec_norm, path: str | os.PathLike) -> Path:
    """VecNormalize statistics as NPZ (plain arrays; no pickle)."""
    return _savez_atomic(_vecnormalize_arrays(vec_norm), Path(path))


def load_vecnormalize(path: str | os.PathLike, venv, training: bool = False):
    """A VecNormalize over ``venv`` with the statistics saved by :func:`save_vecnormalize`.

    Loaded for evaluation (``training=False``) the statistics stay frozen and rewards are not
    normalised.
    """
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    vec_norm = VecNormalize(venv, training=training, norm_obs=bool(arrays["norm_obs"]),
                            norm_reward=bool(arrays["norm_reward"]) and training,
                            **{name: float(arrays[name]) for name in _VECNORM_SCALARS})
    _set_vecnormalize_arrays(vec_norm, arrays)
    return vec_norm


# ---------------------------------------------------------------- whole training state
def training_state(model, vec_norm, callbacks: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON document, arrays) holding everything a rollout-boundary resume needs."""
    np_state = np.random.get_state()  # noqa: NPY002 - SB3 shuffles minibatches with it
    py_state = random.getstate()
    document = {
        "version": STATE_VERSION,
        "num_timesteps": int(model.num_timesteps),
        "n_updates": int(getattr(model, "_n_updates", 0)),
        "envs": model.get_env().env_method("get_state"),
        "numpy_global": {"name": np_state[0], "pos": int(np_state[2]),
                         "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python_random": [py_state[0], list(py_state[1]), py_state[2]],
        "action_space_rng": model.action_space.np_random.bit_generator.state,
        "callbacks": callbacks,
    }
    arrays = {
        "torch_rng": torch.get_rng_state().numpy(),
        "numpy_global_keys": np.asarray(np_state[1]),
        "last_obs": np.asarray(model._last_obs),
        "last_episode_starts": np.asarray(model._last_episode_starts),
    }
    if getattr(model, "_last_original_obs", None) is not None:
        arrays["last_original_obs"] = np.asarray(model._last_original_obs)
    if vec_norm is not None:
        arrays.update({f"vecnorm_{k}": v for k, v in _vecnormalize_arrays(vec_norm).items()})
    return document, arrays


def restore_training_state(model, vec_norm, document: dict, arrays: dict) -> None:
    """Undo everything since :func:`training_state` (call after loading the model zip)."""
    if document.get("version") != STATE_VERSION:
        raise ValueError(f"checkpoint state version {document.get('version')}; this code reads "
                         f"version {STATE_VERSION}")
    venv = model.get_env()
    if len(document["envs"]) != venv.num_envs:
        raise ValueError(f"checkpoint has {len(document['envs'])} environments; the config "
                         f"asks for {venv.num_envs} (train.n_envs)")
    for index, state in enumerate(document["envs"]):
        venv.env_method("set_state", state, indices=[index])
    if vec_norm is not None:
        _set_vecnormalize_arrays(vec_norm, {k.removeprefix("vecnorm_"): v
                                            for k, v in arrays.items()
                                            if k.startswith("vecnorm_")})
    model._last_obs = np.array(arrays["last_obs"])
    model._last_episode_starts = np.array(arrays["last_episode_starts"])
    if "last_original_obs" in arrays:
        model._last_original_obs = np.array(arrays["last_original_obs"])
    model.num_timesteps = int(document["num_timesteps"])
    model.action_space.np_random.bit_generator.state = document["action_space_rng"]
    state = document["numpy_global"]
    np.random.set_state((state["name"], np.array(arrays["numpy_global_keys"], dtype=np.uint32),  # noqa: NPY002
                         state["pos"], state["has_gauss"], state["cached_gaussian"]))
    version, internal, gauss = document["python_random"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.from_numpy(np.array(arrays["torch_rng"], dtype=np.uint8)))


def _state_paths(checkpoint: Path) -> tuple[Path, Path]:
    stem = checkpoint.with_suffix("")
    return Path(f"{stem}{_STATE_JSON}"), Path(f"{stem}{_STATE_NPZ}")


def _plain(value):
    """numpy values inside an environment's snapshot -> JSON (arrays become lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"checkpoint state holds a {type(value).__name__}; environment snapshots "
                    f"must be plain data (numbers, strings, lists, dicts)")


def write_checkpoint_state(checkpoint: Path, document: dict, arrays: dict) -> None:
    """Write the state files of ``checkpoint`` (the JSON last: it marks a complete checkpoint)."""
    json_path, npz_path = _state_paths(checkpoint)
    _savez_atomic(arrays, npz_path)
    write_text_atomic(json.dumps(document, indent=1, default=_plain) + "\n", json_path)


def read_checkpoint_state(checkpoint: Path) -> tuple[dict, dict[str, np.ndarray]]:
    json_path, npz_path = _state_paths(checkpoint)
    document = json.loads(json_path.read_text())
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return document, arrays


def checkpoint_files(checkpoint: Path) -> list[Path]:
    """Every file of one checkpoint (model zip and state files)."""
    return [checkpoint, *_state_paths(checkpoint)]


def checkpoint_steps(checkpoint: Path) -> int:
    return int(CHECKPOINT_PATTERN.match(checkpoint.name).group(1))


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the most timesteps in ``directory``, or None."""
    found = [(int(m.group(1)), p) for p in Path(directory).glob("ckpt_*_steps.zip")
             if (m := CHECKPOINT_PATTERN.match(p.name)) and all(
                 f.exists() for f in _state_paths(p))]
    return max(found)[1] if found else None


# ---------------------------------------------------------------- a saved agent as a policy
def load_policy(seed_dir: Path, cfg, which: str, env, allow_modified: bool = False):
    """The saved agent of ``seed_dir`` (``which``: ``best`` or ``final``) as a policy, and the
    model file's stem; VecNormalize statistics (NPZ), if any, are loaded frozen.

    The model file is a pickle: its SHA-256 must match the one train.py recorded in
    provenance.json, unless ``allow_modified``.
    """
    name = "best_model" if which == "best" else "model"
    verify_model_sha256(seed_dir, seed_dir / f"{name}.zip", allow_modified)
    model = load_model(seed_dir / f"{name}.zip", cfg.agent.algo)
    vec_norm = None
    if cfg.agent.vec_normalize:
        stats = seed_dir / ("best_vecnormalize.npz" if name == "best_model" else "vecnormalize.npz")
        if not stats.exists():
            raise FileNotFoundError(f"{stats}: agent.vec_normalize is on but no statistics saved")
        vec_norm = load_vecnormalize(stats, DummyVecEnv([lambda: env]), training=False)
    return PPOPolicy(model, cfg.agent.algo, vec_norm,
                     decision_every_bars=cfg.agent.decision_every_bars), name
