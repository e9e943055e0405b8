"""Training callbacks: grouped TensorBoard scalars, validation with best checkpoint, atomic
periodic checkpoints (the state ``--resume`` continues from)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.evaluation import performance_metrics, run_episode
from agents.ppo import PPOPolicy, atomic_save

__all__ = ["CheckpointCallback", "EpisodeStatsCallback", "ValidationCallback", "latest_checkpoint"]

_CKPT = re.compile(r"^ckpt_(\d+)_steps\.zip$")


class EpisodeStatsCallback(BaseCallback):
    """Logs ``rollout/episode_return_pct`` and ``env/*`` from the env's ``episode_stats``."""

    def __init__(self) -> None:
        super().__init__()
        self._stats: list[dict] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "episode_stats" in info:
                self._stats.append(info["episode_stats"])
        return True

    def _on_rollout_end(self) -> None:
        if not self._stats:
            return
        def mean(key):
            values = [s[key] for s in self._stats if np.isfinite(s[key])]
            return float(np.mean(values)) if values else float("nan")
        self.logger.record("rollout/episode_return_pct", mean("return_pct"))
        self.logger.record("env/trades_per_episode", mean("trades"))
        self.logger.record("env/win_rate", mean("win_rate"))
        self.logger.record("env/costs_pct", mean("costs_pct"))
        self._stats.clear()


class ValidationCallback(BaseCallback):
    """Every ``every_steps``: one deterministic episode on the validation segment; keeps the
    model with the best validation Sharpe as ``best_model.zip``."""

    def __init__(self, make_valid_env, algo: str, every_steps: int, run_dir: Path,
                 bars_per_year: float, vec_normalize=None) -> None:
        super().__init__()
        self.make_valid_env = make_valid_env
        self.algo = algo
        self.every_steps = every_steps
        self.run_dir = Path(run_dir)
        self.bars_per_year = bars_per_year
        self.vec_normalize = vec_normalize
        self.best_sharpe = -np.inf
        self._next = every_steps
        self._env = None
        self.history: list[dict] = []

    def _on_step(self) -> bool:
        return True

    def evaluate_now(self) -> dict:
        if self._env is None:
            self._env = self.make_valid_env()
        policy = PPOPolicy(self.model, self.algo, self.vec_normalize)
        metrics = performance_metrics(run_episode(self._env, policy), self.bars_per_year)
        self.logger.record("eval/sharpe", metrics["sharpe"])
        self.logger.record("eval/return_pct", metrics["total_return_pct"])
        self.logger.record("eval/max_drawdown_pct", metrics["max_drawdown_pct"])
        self.logger.record("eval/trades", metrics["trades"])
        row = {"timesteps": int(self.model.num_timesteps), **{k: metrics[k] for k in (
            "sharpe", "total_return_pct", "max_drawdown_pct", "trades")}}
        self.history.append(row)
        if metrics["sharpe"] > self.best_sharpe:
            self.best_sharpe = metrics["sharpe"]
            atomic_save(self.model, self.run_dir / "best_model.zip")
            if self.vec_normalize is not None:
                atomic_save(self.vec_normalize, self.run_dir / "best_vecnormalize.pkl")
            (self.run_dir / "best_model.json").write_text(json.dumps(row, indent=2))
        return metrics

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self._next:
            self.evaluate_now()
            while self._next <= self.num_timesteps:
                self._next += self.every_steps


class CheckpointCallback(BaseCallback):
    """Atomic checkpoints at rollout boundaries (after the policy update), keeping the last few.

    Saving at the start of a rollout means the checkpoint holds every update so far and its
    ``num_timesteps``; ``--resume`` continues from there to the same total.
    """

    def __init__(self, every_steps: int, directory: Path, vec_normalize=None,
                 keep_last: int = 3) -> None:
        super().__init__()
        self.every_steps = every_steps
        self.directory = Path(directory)
        self.vec_normalize = vec_normalize
        self.keep_last = keep_last
        self._next: int | None = None

    def _on_step(self) -> bool:
        return True

    def _on_training_start(self) -> None:
        done = self.num_timesteps
        self._next = (done // self.every_steps + 1) * self.every_steps

    def save(self) -> Path:
        path = self.directory / f"ckpt_{self.model.num_timesteps}_steps.zip"
        atomic_save(self.model, path)
        if self.vec_normalize is not None:
            atomic_save(self.vec_normalize, path.with_suffix(".vecnormalize.pkl"))
        ckpts = sorted(self.directory.glob("ckpt_*_steps.zip"),
                       key=lambda p: int(_CKPT.match(p.name).group(1)))
        for old in ckpts[: -self.keep_last]:
            old.unlink(missing_ok=True)
            old.with_suffix(".vecnormalize.pkl").unlink(missing_ok=True)
        return path

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self._next:
            self.save()
            while self._next <= self.num_timesteps:
                self._next += self.every_steps


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the most timesteps in ``directory``, or None."""
    found = [(int(m.group(1)), p) for p in Path(directory).glob("ckpt_*_steps.zip")
             if (m := _CKPT.match(p.name))]
    return max(found)[1] if found else None
