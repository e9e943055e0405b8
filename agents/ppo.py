"""PPO (stable-baselines3) and MaskablePPO (sb3-contrib) behind the policy interface."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from agents.config import AgentConfig
from common.io import atomic_target
from common.lazy import lazy_module
from envs.actions import ACTION_HOLD

sb3_logger = lazy_module("stable_baselines3.common.logger")  # imports torch: only on use

__all__ = ["ALGOS", "PPOPolicy", "add_hold_prior", "atomic_save", "build_model", "load_model",
           "quiet_logger"]


def _algos():
    # torch and SB3 take seconds to import: `import agents` (baselines, metrics) stays light
    from sb3_contrib import MaskablePPO  # optional heavy: as above
    from stable_baselines3 import PPO  # optional heavy: as above

    from agents.lean_torch import optimizers_without_dynamo  # optional heavy: imports torch

    optimizers_without_dynamo()
    return {"maskable_ppo": MaskablePPO, "ppo": PPO}


ALGOS = ("maskable_ppo", "ppo")


def build_model(cfg: AgentConfig, vec_env, seed: int, tensorboard_log: str | None):
    """A fresh PPO/MaskablePPO on ``vec_env`` with the config's hyper-parameters."""
    # torch takes seconds to import: `import agents` (baselines, metrics) stays light
    import torch

    torch.set_num_threads(cfg.torch_threads)
    algo = _algos()[cfg.algo]
    model = algo(
        "MlpPolicy", vec_env, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
        batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
        policy_kwargs={"net_arch": list(cfg.net_arch)}, tensorboard_log=tensorboard_log,
        seed=seed, device="cpu", verbose=0,
    )
    if tensorboard_log is None:
        quiet_logger(model)
    _lean_model(model)
    if cfg.hold_logit_bias:
        add_hold_prior(model, cfg.hold_logit_bias)
    return model


def quiet_logger(model) -> None:
    """Keep the learner's figures in memory only. Without it every ``learn`` of a model with
    no TensorBoard folder makes an empty ``SB3-<date>`` folder in the temp dir (SB3's
    ``configure``): one per suite seed, tuning trial and test."""
    model.set_logger(sb3_logger.Logger(folder=None, output_formats=[]))


def _lean_model(model):
    """The same model with less work around its numbers (``agents.lean_torch``)."""
    from agents.lean_torch import lean_model  # optional heavy: imports torch and sb3-contrib

    return lean_model(model)


def add_hold_prior(model, logit_bias: float) -> None:
    """Raise the initial policy's logit of ``hold`` by ``logit_bias`` (a learned bias: only the
    starting point moves). With the output layer's small SB3 init the logits start near 0, so
    ``hold`` starts at about e^b / (e^b + n_valid - 1) of the valid actions' probability:
    states the policy has not learned about default to no trade instead of a uniform pick."""
    import torch  # optional heavy: as in build_model

    with torch.no_grad():
        model.policy.action_net.bias[ACTION_HOLD] += float(logit_bias)


def load_model(path, algo: str, env=None):
    """Load a saved model (SB3 zip): a path, or a binary file object (``io.BytesIO``)."""
    source = path if hasattr(path, "read") else str(path)
    return _lean_model(_algos()[algo].load(source, env=env, device="cpu"))


def atomic_save(model, path: str | os.PathLike) -> Path:
    """Save an SB3 model (or VecNormalize) so that no reader ever sees a partial file."""
    path = Path(path)
    tmp = atomic_target(path, suffix=path.suffix)
    try:
        model.save(tmp)  # tmp keeps the target's suffix, so SB3 writes exactly there
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


class PPOPolicy:
    """A trained model as a :class:`agents.base.Policy` (deterministic actions).

    With ``decision_every_bars`` N > 1 (``agent.decision_every_bars``) the model is asked on
    the episode's first bar and every N-th bar after it and the policy holds in between, as it
    was trained (``envs.vec_env.BatchedSpyVecEnv``); bars are counted from :meth:`reset`."""

    def __init__(self, model, algo: str, vec_normalize=None, name: str = "ppo",
                 decision_every_bars: int = 1) -> None:
        if decision_every_bars < 1:
            raise ValueError(f"decision_every_bars must be >= 1, got {decision_every_bars}")
        self.model = model
        self.algo = algo
        self.vec_normalize = vec_normalize
        self.name = name
        self.decision_every_bars = int(decision_every_bars)
        self._bars = 0

    def reset(self, seed: int | None = None) -> None:
        self._bars = 0

    def skip_bar(self) -> None:
        """A bar the caller holds on without asking (chain evaluation's bars without features,
        :class:`agents.chain_eval.HoldOnBars`): the decisions stay on bars 0, N, 2N, ..."""
        self._bars += 1

    def act(self, observation: np.ndarray, info: dict, action_mask: np.ndarray) -> int:
        bar, self._bars = self._bars, self._bars + 1
        if bar % self.decision_every_bars:
            return ACTION_HOLD
        obs = observation
        if self.vec_normalize is not None:
            obs = self.vec_normalize.normalize_obs(observation[None, :])[0]
        if self.algo == "maskable_ppo":
            action, _ = self.model.predict(obs, deterministic=True, action_masks=action_mask)
        else:
            action, _ = self.model.predict(obs, deterministic=True)
        return int(action)
