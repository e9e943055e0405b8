"""The training loop behind ``train.py``: environments, model, callbacks, run directory."""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import yaml

from agents.callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    ValidationCallback,
    latest_checkpoint,
)
from agents.ppo import atomic_save, build_model, load_model

__all__ = ["TrainingError", "provenance", "train", "write_run_metadata"]

log = logging.getLogger(__name__)
PACKAGES = ("numpy", "pandas", "torch", "gymnasium", "stable-baselines3", "sb3-contrib",
            "scikit-learn", "xgboost", "arch", "vollib")


class TrainingError(RuntimeError):
    """Training cannot start or continue (e.g. --resume with no checkpoint)."""


def _git_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(inputs) -> dict:
    """How the data and code of a run were made."""
    from data import frame_hash

    frame = inputs.frame
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "data": {**{k: str(v) for k, v in frame.attrs.items()}, "rows": len(frame),
                 "first": str(frame.index[0]), "last": str(frame.index[-1]),
                 "frame_hash": frame_hash(frame)},
        "forecasts": {"first": str(inputs.forecasts.dates.min()),
                      "last": str(inputs.forecasts.dates.max()),
                      "models": sorted(inputs.panel_long["model"].unique().tolist())},
        "code_version": _git_version(),
        "python": platform.python_version(),
        "packages": versions,
    }


def write_run_metadata(cfg, run_dir: Path, inputs, command: list[str]) -> None:
    """Resolved config, command line, provenance and the forecast panel, next to the results."""
    from common.io import write_parquet_atomic, write_text_atomic
    from config import config_to_dict

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), run_dir / "config.yaml")
    write_text_atomic(" ".join(command) + "\n", run_dir / "command.txt")
    write_text_atomic(json.dumps(provenance(inputs), indent=2), run_dir / "provenance.json")
    write_parquet_atomic(inputs.panel_long, run_dir / "forecasts" / "panel.parquet")


class _ProgressBar:
    """A tqdm bar over timesteps (SB3's own bar needs ``rich``)."""

    def __new__(cls, total: int, initial: int):
        from stable_baselines3.common.callbacks import BaseCallback
        from tqdm.auto import tqdm

        class Bar(BaseCallback):
            def _on_training_start(self) -> None:
                self.bar = tqdm(total=total, initial=initial, unit="step", desc="train")

            def _on_step(self) -> bool:
                self.bar.n = self.num_timesteps
                if self.n_calls % 256 == 0:
                    self.bar.refresh()
                return True

            def _on_training_end(self) -> None:
                self.bar.n = self.num_timesteps
                self.bar.close()

        return Bar()


def _vec_env(cfg, inputs, seed: int):
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from envs import make_env

    def factory(rank: int):
        def _make():
            env = make_env(cfg, "train", inputs=inputs)
            env.reset(seed=seed + rank)
            return Monitor(env)
        return _make

    n = cfg.train.n_envs
    makers = [factory(k) for k in range(n)]
    if cfg.train.vec_env == "subproc" and n > 1:
        return SubprocVecEnv(makers, start_method="fork")
    return DummyVecEnv(makers)


def train(cfg, run_dir: Path, resume: bool = False, progress: bool = True,
          command: list[str] | None = None) -> dict:
    """Train one seed of ``cfg`` into ``run_dir``; returns the training summary."""
    import torch
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import VecNormalize

    from envs import load_env_inputs, make_env

    run_dir = Path(run_dir)
    torch.set_num_threads(cfg.agent.torch_threads)
    ckpt_dir = run_dir / "checkpoints"
    ckpt = latest_checkpoint(ckpt_dir) if resume else None
    if resume and ckpt is None:
        raise TrainingError(f"--resume: no checkpoint in {ckpt_dir}")
    if not resume and (run_dir / "model.zip").exists():
        raise TrainingError(f"{run_dir} already holds a trained model; choose another --run-dir "
                            f"or pass --resume")

    # Everything that can fail on bad input happens before the run directory is written.
    log.info("loading data and forecasts for %s", cfg.name)
    inputs = load_env_inputs(cfg, progress=progress)
    probe = make_env(cfg, "train", inputs=inputs)
    valid_probe = make_env(cfg, "valid", inputs=inputs)
    log.info("train segment: %d bars %s..%s; valid: %d bars", len(probe.panel),
             probe.panel.dates[0].date(), probe.panel.dates[-1].date(), len(valid_probe.panel))

    write_run_metadata(cfg, run_dir, inputs, command or ["train.py"])
    vec_env = _vec_env(cfg, inputs, cfg.seed)
    vec_norm = None
    if cfg.agent.vec_normalize:
        if ckpt is not None and ckpt.with_suffix(".vecnormalize.pkl").exists():
            vec_env = VecNormalize.load(str(ckpt.with_suffix(".vecnormalize.pkl")), vec_env)
        else:
            vec_env = VecNormalize(vec_env, norm_obs=True, norm_reward=False, clip_obs=10.0)
        vec_norm = vec_env
    if ckpt is not None:
        model = load_model(ckpt, cfg.agent.algo, env=vec_env)
        model.tensorboard_log = str(run_dir / "tb")
        log.info("resuming from %s at %d timesteps", ckpt.name, model.num_timesteps)
    else:
        model = build_model(cfg.agent, vec_env, cfg.seed, str(run_dir / "tb"))
    done_steps = int(model.num_timesteps)
    total = int(cfg.train.total_timesteps)
    remaining = max(0, total - done_steps)

    validation = ValidationCallback(lambda: make_env(cfg, "valid", inputs=inputs),
                                    cfg.agent.algo, cfg.train.eval_every_steps, run_dir,
                                    probe.panel.bars_per_year, vec_norm)
    checkpoints = CheckpointCallback(cfg.train.checkpoint_every_steps, ckpt_dir, vec_norm)
    callbacks = [EpisodeStatsCallback(), validation, checkpoints]
    if progress and cfg.train.progress_bar:
        callbacks.append(_ProgressBar(total, done_steps))
    started = time.time()
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=CallbackList(callbacks),
                    reset_num_timesteps=ckpt is None, tb_log_name="ppo")
    wall = time.time() - started
    for callback in (validation, checkpoints):
        if getattr(callback, "model", None) is None:
            callback.init_callback(model)
    # A last validation at the end, so best_model.zip always exists.
    validation.evaluate_now()
    checkpoints.save()
    atomic_save(model, run_dir / "model.zip")
    if vec_norm is not None:
        atomic_save(vec_norm, run_dir / "vecnormalize.pkl")
    summary = {
        "timesteps": int(model.num_timesteps),
        "resumed_from": ckpt.name if ckpt is not None else None,
        "wall_seconds": wall,
        "timesteps_per_second": (int(model.num_timesteps) - done_steps) / max(wall, 1e-9),
        "seed": cfg.seed,
        "algo": cfg.agent.algo,
        "validation_history": validation.history,
        "best_validation_sharpe": validation.best_sharpe,
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    log.info("model saved to %s (best validation Sharpe %.2f in best_model.zip)",
             run_dir / "model.zip", validation.best_sharpe)
    return summary
