"""The training loop behind ``train.py``: environments, model, callbacks, run directory.

A run folder is written by one process at a time (``.lock``). ``--resume`` continues from the
latest complete checkpoint exactly (see :mod:`agents.checkpoint`) after checking that the
checkpoint's SHA-256 matches ``provenance.json`` and that the config is the one the run was
started with (``train.total_timesteps`` may grow); a finished run is reused as it is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import signal
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnvWrapper,
    VecNormalize,
)
from tqdm.auto import tqdm

from agents.baselines import make_baseline
from agents.callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    GracefulStop,
    HealthCallback,
    ValidationCallback,
)
from agents.checkpoint import (
    EpisodeRecorder,
    latest_checkpoint,
    read_checkpoint_state,
    restore_training_state,
    save_vecnormalize,
)
from agents.paths import path_envs, training_panels
from agents.ppo import atomic_save, build_model, load_model
from common.errors import UserInputError
from common.io import write_json_atomic, write_parquet_atomic, write_text_atomic
from common.runfolder import (
    MODEL_SHA256_KEY,
    PROVENANCE_NAME,
    RunLock,
    record_model_sha256,
    verify_model_sha256,
)
from data import bars_per_year, check_segments_covered, frame_hash, load_market
from envs import load_env_inputs, make_env
from envs.vec_env import BatchedSpyVecEnv
from options.iv_proxy import describe_iv_proxy

__all__ = ["TrainingError", "health_lines", "learning_health", "load_checked_market",
           "provenance", "train",
           "monitored_vec_env", "training_vec_env", "wrap_training_vec_env",
           "validation_interval", "write_run_metadata"]

log = logging.getLogger(__name__)
PACKAGES = ("numpy", "pandas", "torch", "gymnasium", "stable-baselines3", "sb3-contrib",
            "scikit-learn", "xgboost", "arch", "vollib")
# Keys a resumed run may change: they do not change what is learned.
RESUMABLE_CHANGES = ("train.total_timesteps", "train.progress_bar", "train.vec_env",
                     "forecast.n_jobs",
                     "forecast.cache_dir", "forecast.tune.storage", "data.cache_dir",
                     "env.table_cache_dir")
CLIP_OBS = 10.0


class TrainingError(UserInputError):
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


def write_run_metadata(cfg, run_dir: Path, inputs, command: list[str],
                       iv_proxy: dict | None = None) -> None:
    """Resolved config, command line(s), provenance and the forecast panel, next to the results.

    The model hashes already in ``provenance.json`` are kept; a resumed run appends its command
    line to ``command.txt``.
    """

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), run_dir / "config.yaml")
    previous = (run_dir / "command.txt").read_text() if (run_dir / "command.txt").exists() else ""
    write_text_atomic(previous + " ".join(command) + "\n", run_dir / "command.txt")
    document = provenance(inputs)
    if iv_proxy is not None:  # what priced implied vol (options.iv_proxy.describe_iv_proxy)
        document["iv_proxy"] = iv_proxy
    old = run_dir / PROVENANCE_NAME
    if old.exists():
        document[MODEL_SHA256_KEY] = json.loads(old.read_text()).get(MODEL_SHA256_KEY, {})
    write_json_atomic(document, old)
    write_parquet_atomic(inputs.panel_long, run_dir / "forecasts" / "panel.parquet")


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _check_same_config(cfg, run_dir: Path) -> None:
    """``--resume`` with a config other than the run's own is an error naming the keys."""

    saved_path = run_dir / "config.yaml"
    if not saved_path.exists():
        raise TrainingError(f"--resume: {saved_path} is missing; cannot check the config")
    raw = yaml.safe_load(saved_path.read_text()) or {}
    # A run saved before a setting existed holds that setting's default; a file that no longer
    # validates is compared as written (the keys that differ are named below).
    with contextlib.suppress(ValueError):
        raw = type(cfg).model_validate(raw).model_dump(mode="json")
    saved = _flatten(raw)
    now = _flatten(cfg.model_dump(mode="json"))
    changed = sorted(k for k in saved.keys() | now.keys()
                     if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        shown = ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed[:5])
        raise TrainingError(f"--resume: the config differs from {saved_path} in {shown}; "
                            f"resume with the run's own config or train into a new --run-dir")


def _finished_summary(cfg, run_dir: Path) -> dict | None:
    """The summary of a run that already reached ``train.total_timesteps``, else None."""
    summary_path = run_dir / "train_summary.json"
    if not ((run_dir / "model.zip").exists() and summary_path.exists()):
        return None
    summary = json.loads(summary_path.read_text())
    done = summary.get("timesteps", 0) >= cfg.train.total_timesteps or summary.get("stopped_early")
    return summary if done else None


def _segments(cfg) -> dict:
    return {name: (cfg.segments.get(name).start, cfg.segments.get(name).end)
            for name in ("train", "valid", "test")}


def load_checked_market(cfg, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The experiment's market frame (``frame`` when the caller loaded it already), its
    segments checked against its dates (``data.check_segments_covered``): the one place
    where ``train.py`` checks them."""
    if frame is None:
        frame = load_market(cfg.data.source, **cfg.data.load_options())
    check_segments_covered(frame.index, _segments(cfg), clip=cfg.data.clip_segments,
                           source=f"{cfg.data.source} data")
    return frame


class _ProgressBar:
    """A tqdm bar over timesteps (SB3's own bar needs ``rich``)."""

    def __new__(cls, total: int, initial: int):
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


def training_vec_env(cfg, inputs, seed: int):
    """The training envs (``train.n_envs``, env ``k`` first reset with ``seed + k``) behind
    ``train.vec_env``: ``batched`` (:class:`envs.vec_env.BatchedSpyVecEnv`, one loop with the
    bookkeeping inside), ``dummy`` (``DummyVecEnv`` over ``EpisodeRecorder(Monitor(env))``,
    the same transitions bit for bit, slower) or ``subproc`` (the same wrappers, one process
    per env)."""
    n = cfg.train.n_envs
    subproc = cfg.train.vec_env == "subproc" and n > 1

    first = make_env(cfg, "train", inputs=inputs)  # the others share its per-bar tables
    switching = None
    if cfg.train.paths.source != "real":  # generated paths, from the training segment only
        panels = training_panels(cfg, inputs, first.panel)
        log.info("training paths: %s, %d path(s)", cfg.train.paths.source, len(panels))
        switching = path_envs(cfg, panels, n)

    def make(rank: int):
        env = (switching[rank] if switching is not None
               else make_env(cfg, "train", share_with=first))
        env.reset(seed=seed + rank)
        return env

    if cfg.train.vec_env == "batched":
        return BatchedSpyVecEnv([make(k) for k in range(n)], cfg.agent.decision_every_bars)

    def factory(rank: int):
        def _make():
            if subproc:  # in the worker: Ctrl-C is the parent's to handle (checkpoint first)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            return EpisodeRecorder(Monitor(make(rank)))
        return _make

    makers = [factory(k) for k in range(n)]
    if subproc:
        return SubprocVecEnv(makers, start_method="fork")
    return DummyVecEnv(makers)


def monitored_vec_env(envs: list, vec_env: str, decision_every_bars: int = 1):
    """``envs`` (made and seeded by the caller) as one vectorised env without checkpoint
    records, for the tuner and the learnability suite: ``BatchedSpyVecEnv`` when ``vec_env`` is
    ``batched``, else ``DummyVecEnv`` over ``Monitor(env)`` (the same transitions; decisions
    every bar only)."""
    if vec_env == "batched":
        return BatchedSpyVecEnv(envs, decision_every_bars)
    if decision_every_bars != 1:
        raise ValueError("decision_every_bars > 1 needs the batched vectorised env")
    return DummyVecEnv([lambda env=env: Monitor(env) for env in envs])


class _ScaledReward(VecEnvWrapper):
    """Multiplies the rewards PPO learns from by a constant (the environment's own rewards,
    and every reported return, are unchanged)."""

    def __init__(self, venv, scale: float) -> None:
        super().__init__(venv)
        self.scale = float(scale)

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        return obs, rewards * self.scale, dones, infos


def wrap_training_vec_env(vec_env, cfg):
    """The training vectorised env as PPO sees it: rewards times ``train.reward_scale``, then
    ``VecNormalize`` of observations (``agent.vec_normalize``) and/or of rewards
    (``train.normalize_reward``). Returns ``(vec_env, vec_normalize or None)``."""
    if cfg.train.reward_scale != 1.0:
        vec_env = _ScaledReward(vec_env, cfg.train.reward_scale)
    if not (cfg.agent.vec_normalize or cfg.train.normalize_reward):
        return vec_env, None
    vec_env = VecNormalize(vec_env, norm_obs=cfg.agent.vec_normalize,
                           norm_reward=cfg.train.normalize_reward, clip_obs=CLIP_OBS,
                           gamma=cfg.agent.gamma)
    return vec_env, vec_env


def train(cfg, run_dir: Path, resume: bool = False, progress: bool = True,
          command: list[str] | None = None, allow_modified: bool = False,
          frame: pd.DataFrame | None = None) -> dict:
    """Train one seed of ``cfg`` into ``run_dir``; returns the training summary.

    ``frame`` is the experiment's market frame when the caller loaded it already (the forecast
    gate's); it is loaded here otherwise, once for the whole run.

    With ``resume`` a finished run is returned as it is (``"reused": True``); an unfinished one
    continues from its latest checkpoint. Ctrl-C stops at the next rollout boundary with a
    checkpoint and raises ``KeyboardInterrupt``.
    """
    run_dir = Path(run_dir)
    torch.set_num_threads(cfg.agent.torch_threads)
    ckpt_dir = run_dir / "checkpoints"
    ckpt = latest_checkpoint(ckpt_dir) if ckpt_dir.is_dir() else None
    if resume:
        if ckpt is None:
            raise TrainingError(f"--resume: no checkpoint in {ckpt_dir}")
        _check_same_config(cfg, run_dir)
        finished = _finished_summary(cfg, run_dir)
        if finished is not None:
            verify_model_sha256(run_dir, run_dir / "model.zip", allow_modified)
            log.info("%s already holds a model trained for %d timesteps "
                     "(train.total_timesteps %d): reusing it, nothing to train", run_dir,
                     finished["timesteps"], cfg.train.total_timesteps)
            return {**finished, "reused": True}
        verify_model_sha256(run_dir, ckpt, allow_modified)
    elif (run_dir / "model.zip").exists():
        raise TrainingError(f"{run_dir} already holds a trained model; choose another --run-dir "
                            f"or pass --resume")
    elif ckpt is not None:
        raise TrainingError(f"{run_dir} holds checkpoints of an unfinished run ({ckpt.name}); "
                            f"pass --resume to continue it or choose another --run-dir")

    # Everything that can fail on bad input happens before the run directory is written.
    log.info("loading data and forecasts for %s", cfg.name)
    frame = load_checked_market(cfg, frame)
    iv_proxy = describe_iv_proxy(frame, cfg.options.surface, _segments(cfg),
                                 bars_per_year=bars_per_year(frame.index))
    log.info("implied vol: %s", iv_proxy["summary"])
    inputs = load_env_inputs(cfg, progress=progress, frame=frame)
    probe = make_env(cfg, "train", inputs=inputs)
    valid_probe = make_env(cfg, "valid", inputs=inputs)
    log.info("train segment: %d bars %s..%s; valid: %d bars", len(probe.panel),
             probe.panel.dates[0].date(), probe.panel.dates[-1].date(), len(valid_probe.panel))

    command = command or ["train.py"]
    with RunLock(run_dir, command):
        return _train_locked(cfg, run_dir, ckpt, inputs, probe, command, progress, iv_proxy)


def _train_locked(cfg, run_dir: Path, ckpt: Path | None, inputs, probe, command,
                  progress: bool, iv_proxy: dict) -> dict:
    write_run_metadata(cfg, run_dir, inputs, command, iv_proxy)
    vec_env, vec_norm = wrap_training_vec_env(training_vec_env(cfg, inputs, cfg.seed), cfg)
    validation = ValidationCallback(lambda: make_env(cfg, "valid", inputs=inputs),
                                    cfg.agent.algo, validation_interval(cfg.train), run_dir,
                                    probe.panel.bars_per_year, vec_norm,
                                    hparams=_hparams(cfg),
                                    patience=cfg.train.early_stopping_patience,
                                    decision_every_bars=cfg.agent.decision_every_bars)
    stop = GracefulStop()
    checkpoints = CheckpointCallback(cfg.train.checkpoint_every_steps, run_dir / "checkpoints",
                                     run_dir, vec_norm, validation=validation, stop=stop)
    if ckpt is not None:
        model = load_model(ckpt, cfg.agent.algo, env=vec_env)
        model.tensorboard_log = str(run_dir / "tb")
        document, arrays = read_checkpoint_state(ckpt)
        validation.load_state(document["callbacks"]["validation"])
        restore_training_state(model, vec_norm, document, arrays)  # RNGs last: nothing after
        log.info("resuming from %s at %d timesteps", ckpt.name, model.num_timesteps)
    else:
        model = build_model(cfg.agent, vec_env, cfg.seed, str(run_dir / "tb"))
        validation.score_baselines({
            name: make_baseline(name, probe.observation_names, cfg.baselines, seed=cfg.seed)
            for name in cfg.baselines.names})
    done_steps = int(model.num_timesteps)
    total = int(cfg.train.total_timesteps)
    remaining = max(0, total - done_steps)

    health = HealthCallback()  # before the validation: it reads train/* before they are dumped
    callbacks = [EpisodeStatsCallback(probe.action_names), health, validation, checkpoints]
    if progress and cfg.train.progress_bar:
        callbacks.append(_ProgressBar(total, done_steps))
    started = time.time()
    with stop:
        # Also with nothing left: learn() sets up the logger the final steps below write to.
        model.learn(total_timesteps=remaining, callback=CallbackList(callbacks),
                    reset_num_timesteps=ckpt is None, tb_log_name="ppo")
    wall = time.time() - started
    if checkpoints.stopped_at is not None:
        log.warning("stopped by Ctrl-C: checkpoint %s (at a rollout boundary); continue with "
                    "--resume", checkpoints.stopped_at)
        raise KeyboardInterrupt
    if validation.stopped_early is not None:
        log.warning("early stopping at %d timesteps: %d validations without a better Sharpe "
                    "(train.early_stopping_patience)", validation.stopped_early,
                    validation.since_best)
    # A last validation at the end (so best_model.zip always exists), then the final files.
    if not validation.history or validation.history[-1]["timesteps"] != model.num_timesteps:
        validation.evaluate_now()
    checkpoints.save()
    record_model_sha256(run_dir, atomic_save(model, run_dir / "model.zip"))
    if vec_norm is not None:
        save_vecnormalize(vec_norm, run_dir / "vecnormalize.npz")
    summary = {
        "timesteps": int(model.num_timesteps),
        "resumed_from": ckpt.name if ckpt is not None else None,
        "wall_seconds": wall,
        "timesteps_per_second": (int(model.num_timesteps) - done_steps) / max(wall, 1e-9),
        "seed": cfg.seed,
        "algo": cfg.agent.algo,
        "validation_history": validation.history,
        "best_validation_sharpe": validation.best_sharpe,
        "baseline_validation_sharpe": validation.baseline_sharpe,
        "iv_proxy": iv_proxy,
        "stopped_early": validation.stopped_early is not None,
        "validation_interval_steps": validation.every_steps,
    }
    summary["learning_health"] = learning_health(health.last, validation.history,
                                                 validation.baseline_sharpe)
    write_json_atomic(summary, run_dir / "train_summary.json")
    log.info("model saved to %s (best validation Sharpe %.2f in best_model.zip)",
             run_dir / "model.zip", validation.best_sharpe)
    return summary


def validation_interval(train_cfg) -> int:
    """Steps between validations: ``eval_every_steps``, shortened so that a run has at least
    ``min_validation_points`` of them."""
    scaled = train_cfg.total_timesteps // train_cfg.min_validation_points
    return max(1, min(train_cfg.eval_every_steps, scaled))


def learning_health(last_update: dict, history: list[dict], baselines: dict | None) -> dict:
    """How learning went: the last update's value fit, entropy and KL, the validation Sharpe at
    every evaluation beside the baselines', the largest trade's P&L share at the best
    validation, and plain warnings."""
    sharpes = [row["sharpe"] for row in history]
    best = max(sharpes) if sharpes else None
    best_row = history[sharpes.index(best)] if sharpes else {}
    baselines = {k: v for k, v in (baselines or {}).items() if v is not None}
    best_baseline = max(baselines, key=baselines.get) if baselines else None
    entropy_loss = last_update.get("entropy_loss")
    health = {
        "explained_variance": last_update.get("explained_variance"),
        "entropy": None if entropy_loss is None else -entropy_loss,
        "approx_kl": last_update.get("approx_kl"),
        "clip_fraction": last_update.get("clip_fraction"),
        "validation_sharpe": [{"timesteps": row["timesteps"], "sharpe": row["sharpe"]}
                              for row in history],
        "best_validation_sharpe": best,
        # The best of several checkpoints on one validation segment is flattered by the pick
        # (default config, 5 seeds: best 0.74-1.92 where the checkpoints' medians were -0.47
        # to 1.41); their median says what a checkpoint of this run typically does there.
        "median_validation_sharpe": float(statistics.median(sharpes)) if sharpes else None,
        "baseline_validation_sharpe": baselines,
        "best_baseline": best_baseline,
        "top_trade_pnl_share_at_best": best_row.get("top_trade_pnl_share"),
        "warnings": [],
    }
    ev = health["explained_variance"]
    if ev is not None and ev < 0:
        health["warnings"].append(
            f"the value function does not fit: explained variance {ev:.2f} < 0 at the end")
    if best is not None and best_baseline is not None and best < baselines[best_baseline]:
        health["warnings"].append(
            f"PPO's best validation Sharpe {best:.2f} is below the best baseline's "
            f"({best_baseline} {baselines[best_baseline]:.2f})")
    share = health["top_trade_pnl_share_at_best"]
    if share is not None and share > 1:
        health["warnings"].append(
            f"one trade made {share:.1f} times the best validation episode's whole P&L")
    return health


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def health_lines(summary: dict) -> list[str]:
    """The learning-health block the console ends with."""
    health = summary.get("learning_health")
    if not health:
        return []
    lines = [f"learning health: explained variance {_fmt(health['explained_variance'])}, "
             f"entropy {_fmt(health['entropy'], '.3f')}, approx KL "
             f"{_fmt(health['approx_kl'], '.4f')} (last update)"]
    points = ", ".join(f"{p['timesteps']}: {p['sharpe']:.2f}" for p in health["validation_sharpe"])
    lines.append(f"validation Sharpe by timesteps: {points}")
    if health["baseline_validation_sharpe"]:
        lines.append("baselines' validation Sharpe: " + ", ".join(
            f"{k} {v:.2f}" for k, v in health["baseline_validation_sharpe"].items())
            + f"; PPO best {_fmt(health['best_validation_sharpe'])}")
    sharpes = [p["sharpe"] for p in health["validation_sharpe"]]
    if len(sharpes) > 1:  # from the list: a summary written before this line shows it too
        lines.append(f"PPO's best validation Sharpe is the best of {len(sharpes)} checkpoints "
                     f"(their median {statistics.median(sharpes):.2f}): the pick flatters it; "
                     "the test segment is the honest measure")
    lines.append("largest trade's share of the best validation P&L: "
                 f"{_fmt(health['top_trade_pnl_share_at_best'])}")
    if summary.get("stopped_early"):
        lines.append(f"stopped early at {summary['timesteps']} timesteps "
                     "(train.early_stopping_patience)")
    lines += [f"WARNING: {w}" for w in health["warnings"]]
    return lines


def _hparams(cfg) -> dict:
    """The hyper-parameters shown in TensorBoard's HParams tab."""
    agent = cfg.agent.model_dump(mode="json")
    return {**{f"agent/{k}": v for k, v in agent.items()}, "seed": cfg.seed,
            "train/total_timesteps": cfg.train.total_timesteps,
            "train/n_envs": cfg.train.n_envs, "env/reward": str(getattr(cfg.env, "reward", ""))}

