"""Training callbacks: grouped TensorBoard scalars, validation with best checkpoint, exact
checkpoints at rollout boundaries (the state ``--resume`` continues from), clean Ctrl-C.

TensorBoard tags:

* ``env/*`` per rollout: ``action_share/<action name>`` (share of steps taking each action),
  ``invalid_action_rate``, ``margin_used_pct`` (margin over equity, mean over steps),
  ``open_positions`` and the position greeks averaged over the rollout's steps
  (``position_delta_shares``, ``position_gamma_shares_per_usd``, ``position_theta_usd_per_day``,
  ``position_vega_usd_per_vol_point``; logged when the step ``info`` carries them); per finished
  episode: ``episode_return_pct`` (the equity return in percent), ``trades_per_episode``,
  ``win_rate``, ``costs_pct``. SB3's own ``rollout/ep_rew_mean`` is the sum of the shaped
  rewards, which equals ``episode_return_pct / 100`` only for the default ``pnl`` reward.
* ``eval/*`` at the step each validation is measured (the last one included): ``sharpe``,
  ``sortino``, ``return_pct``, ``max_drawdown_pct``, ``win_rate``, ``trades``; and once at the
  start ``eval/baseline_sharpe/<name>``, each baseline's validation Sharpe.
* ``hparams``: the run's hyper-parameters against ``eval/sharpe``.
"""

from __future__ import annotations

import math
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam

from agents.checkpoint import (
    CHECKPOINT_PATTERN,
    checkpoint_files,
    checkpoint_steps,
    latest_checkpoint,
    save_vecnormalize,
    training_state,
    write_checkpoint_state,
)
from agents.evaluation import performance_metrics, run_episode
from agents.ppo import PPOPolicy, atomic_save
from common.io import write_json_atomic
from common.runfolder import forget_model_sha256, record_model_sha256
from common.units import PERCENT_PER_UNIT
from envs.step_info import GREEK_NAMES, EpisodeStats, StepInfo

__all__ = [
    "HEALTH_KEYS",
    "CheckpointCallback",
    "EpisodeStatsCallback",
    "GracefulStop",
    "HealthCallback",
    "StepMetrics",
    "ValidationCallback",
    "latest_checkpoint",
    "log_hparams",
    "step_metrics",
    "top_trade_pnl_share",
]

_TB_ONLY = ("stdout", "log", "json", "csv")
GREEK_KEYS = GREEK_NAMES
EVAL_KEYS = {"sharpe": "sharpe", "sortino": "sortino", "return_pct": "total_return_pct",
             "max_drawdown_pct": "max_drawdown_pct", "win_rate": "win_rate", "trades": "trades"}


# ---------------------------------------------------------------- step info adapter
@dataclass(frozen=True)
class StepMetrics:
    """What the training scalars need from one environment step."""

    equity_usd: float
    margin_used_usd: float
    invalid_action: bool
    open_positions: float
    greeks: dict[str, float]  # per GREEK_KEYS


def step_metrics(info: dict) -> StepMetrics:
    """Read one step's ``info`` (an :class:`envs.step_info.StepInfo`, slim or full, or a
    VecEnv wrapper's plain copy of one)."""
    info = StepInfo.of(info)
    return StepMetrics(equity_usd=float(info.equity_usd),
                       margin_used_usd=float(info.margin_used_usd),
                       invalid_action=info.invalid_action is not None,
                       open_positions=float(info.open_positions),
                       greeks={key: float(v) for key, v in zip(GREEK_KEYS, info.greeks,
                                                              strict=True)})


def _finite_mean(values) -> float:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


class EpisodeStatsCallback(BaseCallback):
    """Per-rollout ``env/*`` scalars (actions, margin, greeks) and finished-episode statistics."""

    def __init__(self, action_names: tuple[str, ...]) -> None:
        super().__init__()
        self.action_names = tuple(action_names)
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._stats: list[EpisodeStats] = []
        self._action_counts = np.zeros(len(self.action_names), dtype=np.int64)
        self._steps = 0
        self._invalid = 0
        self._margin_pct: list[float] = []
        self._open: list[float] = []
        self._greeks: dict[str, list[float]] = {key: [] for key in GREEK_KEYS}

    def _on_step(self) -> bool:
        actions = np.asarray(self.locals.get("actions", ())).reshape(-1)
        for k, info in enumerate(self.locals.get("infos", ())):
            info = StepInfo.of(info)
            if info.episode_stats is not None:
                self._stats.append(info.episode_stats)
            action = info.action if "action" in info else (
                actions[k] if k < len(actions) else None)
            if action is not None and 0 <= int(action) < len(self.action_names):
                self._action_counts[int(action)] += 1
            metrics = step_metrics(info)
            self._steps += 1
            self._invalid += metrics.invalid_action
            if metrics.equity_usd > 0:
                self._margin_pct.append(PERCENT_PER_UNIT * metrics.margin_used_usd / metrics.equity_usd)
            self._open.append(metrics.open_positions)
            for key, value in metrics.greeks.items():
                self._greeks[key].append(value)
        return True

    def _on_rollout_end(self) -> None:
        if self._steps:
            shares = self._action_counts / max(1, self._action_counts.sum())
            for name, share in zip(self.action_names, shares, strict=True):
                self.logger.record(f"env/action_share/{name}", float(share))
            self.logger.record("env/invalid_action_rate", self._invalid / self._steps)
            self.logger.record("env/margin_used_pct", _finite_mean(self._margin_pct))
            self.logger.record("env/open_positions", _finite_mean(self._open))
            for key, values in self._greeks.items():
                if values:
                    self.logger.record(f"env/position_{key}", _finite_mean(values))
        if self._stats:
            def mean(key):
                return _finite_mean(getattr(s, key) for s in self._stats)
            self.logger.record("env/episode_return_pct", mean("return_pct"))
            self.logger.record("env/trades_per_episode", mean("trades"))
            self.logger.record("env/win_rate", mean("win_rate"))
            self.logger.record("env/costs_pct", mean("costs_pct"))
        self._reset_counters()


def log_hparams(logger, hparams: dict) -> None:
    """An HParams summary of this run (TensorBoard only), scored by ``eval/sharpe``."""
    plain = {k: (v if isinstance(v, int | float | str | bool) else str(v))
             for k, v in hparams.items()}
    logger.record("hparams", HParam(plain, {"eval/sharpe": 0.0}), exclude=_TB_ONLY)


# ---------------------------------------------------------------- learning health
HEALTH_KEYS = {"explained_variance": "train/explained_variance",
               "entropy_loss": "train/entropy_loss", "approx_kl": "train/approx_kl",
               "clip_fraction": "train/clip_fraction", "value_loss": "train/value_loss"}


class HealthCallback(BaseCallback):
    """Keeps the last policy update's ``train/*`` scalars (SB3 records them after each update
    and clears them at the next dump), so that the run can report them at its end."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}

    def _capture(self) -> None:
        values = getattr(self.logger, "name_to_value", {}) if self.model is not None else {}
        got = {name: float(values[tag]) for name, tag in HEALTH_KEYS.items() if tag in values}
        if got:
            self.last = got

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:  # before the validation's dump clears them
        self._capture()

    def _on_training_end(self) -> None:
        self._capture()


def top_trade_pnl_share(trades) -> float | None:
    """The largest absolute trade P&L over the absolute total P&L of a ledger (above 1 when
    one trade made more than the whole episode); None without trades or with a zero total."""
    if trades is None or not len(trades) or "pnl_usd" not in trades:
        return None
    pnl = trades["pnl_usd"].to_numpy(dtype=float)
    total = abs(float(pnl.sum()))
    return float(np.abs(pnl).max() / total) if total > 0 else None


# ---------------------------------------------------------------- validation
class ValidationCallback(BaseCallback):
    """Every ``every_steps``: one deterministic episode on the validation segment, written to
    TensorBoard at the step it was measured; keeps the best validation Sharpe's model as
    ``best_model.zip`` (its normalisation statistics as ``best_vecnormalize.npz``).

    With ``patience`` (a number of validations), training stops once that many validations in
    a row have not beaten the best Sharpe (``stopped_early`` is then the step it stopped at).
    """

    def __init__(self, make_valid_env, algo: str, every_steps: int, run_dir: Path,
                 bars_per_year: float, vec_normalize=None, hparams: dict | None = None,
                 patience: int | None = None, decision_every_bars: int = 1) -> None:
        super().__init__()
        self.decision_every_bars = decision_every_bars
        self.patience = patience
        self.since_best = 0
        self.stopped_early: int | None = None
        self.hparams = hparams
        self._fresh = True  # a new run logs its hparams and baselines at the start
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
        self.baseline_sharpe: dict[str, float] | None = None

    # state carried by checkpoints
    def state(self) -> dict:
        return {"best_sharpe": self.best_sharpe, "next": self._next, "history": self.history,
                "baseline_sharpe": self.baseline_sharpe, "since_best": self.since_best}

    def load_state(self, state: dict) -> None:
        self.best_sharpe = float(state["best_sharpe"])
        self._next = int(state["next"])
        self.history = list(state["history"])
        self.baseline_sharpe = state.get("baseline_sharpe")
        self.since_best = int(state.get("since_best", 0))
        self._fresh = False

    def _valid_env(self):
        if self._env is None:
            self._env = self.make_valid_env()
        return self._env

    def score_baselines(self, baselines: dict) -> dict[str, float]:
        """Each baseline's validation Sharpe (``baselines``: name -> policy), computed once."""
        env = self._valid_env()
        self.baseline_sharpe = {
            name: float(performance_metrics(run_episode(env, policy), self.bars_per_year)["sharpe"])
            for name, policy in baselines.items()}
        return self.baseline_sharpe

    def _on_training_start(self) -> None:
        if not self._fresh:
            return
        self._fresh = False
        if self.hparams:
            log_hparams(self.logger, self.hparams)
        for name, sharpe in (self.baseline_sharpe or {}).items():
            self.logger.record(f"eval/baseline_sharpe/{name}", sharpe)
        self.logger.dump(step=self.num_timesteps)

    def _on_step(self) -> bool:
        return self.stopped_early is None

    def evaluate_now(self) -> dict:
        policy = PPOPolicy(self.model, self.algo, self.vec_normalize,
                           decision_every_bars=self.decision_every_bars)
        episode = run_episode(self._valid_env(), policy)
        metrics = performance_metrics(episode, self.bars_per_year)
        step = int(self.model.num_timesteps)
        for tag, key in EVAL_KEYS.items():
            if metrics[key] is not None:  # None: does not apply (no trades: no win rate)
                self.logger.record(f"eval/{tag}", float(metrics[key]))
        self.logger.dump(step=step)  # at the step it was measured, not the next rollout's
        row = {"timesteps": step, **{k: metrics[k] for k in (
            "sharpe", "sortino", "total_return_pct", "max_drawdown_pct", "win_rate", "trades")},
               "top_trade_pnl_share": top_trade_pnl_share(episode.trades)}
        self.history.append(row)
        while self._next <= step:
            self._next += self.every_steps
        if metrics["sharpe"] > self.best_sharpe:
            self.since_best = 0
            self.best_sharpe = metrics["sharpe"]
            best = atomic_save(self.model, self.run_dir / "best_model.zip")
            record_model_sha256(self.run_dir, best)
            if self.vec_normalize is not None:
                save_vecnormalize(self.vec_normalize, self.run_dir / "best_vecnormalize.npz")
            write_json_atomic(row, self.run_dir / "best_model.json")
        else:
            self.since_best += 1
            if self.patience is not None and self.since_best >= self.patience:
                self.stopped_early = step
        return metrics

    def _on_rollout_start(self) -> None:
        if self.num_timesteps >= self._next:
            self.evaluate_now()


# ---------------------------------------------------------------- checkpoints and Ctrl-C
class GracefulStop:
    """While active, the first Ctrl-C only asks training to stop at the next rollout boundary
    (after a checkpoint); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping at the next rollout boundary after a checkpoint "
              "(Ctrl-C again to abort without one)", flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class CheckpointCallback(BaseCallback):
    """Exact checkpoints at rollout boundaries (after the policy update), keeping the last few.

    A checkpoint holds every update so far, ``num_timesteps``, the environments' and RNGs'
    state and the validation callback's state (see :mod:`agents.checkpoint`); ``--resume``
    continues from there as if never stopped. When ``stop`` (a :class:`GracefulStop`) is
    requested it saves at the next boundary and ends training.
    """

    def __init__(self, every_steps: int, directory: Path, run_dir: Path, vec_normalize=None,
                 validation: ValidationCallback | None = None, stop: GracefulStop | None = None,
                 keep_last: int = 3) -> None:
        super().__init__()
        self.every_steps = every_steps
        self.directory = Path(directory)
        self.run_dir = Path(run_dir)
        self.vec_normalize = vec_normalize
        self.validation = validation
        self.stop = stop
        self.keep_last = keep_last
        self.stopped_at: Path | None = None
        self._next: int | None = None

    def _on_step(self) -> bool:
        return self.stopped_at is None

    def _on_training_start(self) -> None:
        done = self.num_timesteps
        self._next = (done // self.every_steps + 1) * self.every_steps

    def save(self) -> Path:
        path = self.directory / f"ckpt_{self.model.num_timesteps}_steps.zip"
        callbacks = {"validation": self.validation.state() if self.validation else None}
        document, arrays = training_state(self.model, self.vec_normalize, callbacks)
        atomic_save(self.model, path)
        record_model_sha256(self.run_dir, path)
        write_checkpoint_state(path, document, arrays)
        saved = sorted((p for p in self.directory.glob("ckpt_*_steps.zip")
                        if CHECKPOINT_PATTERN.match(p.name)), key=checkpoint_steps)
        for old in saved[: -self.keep_last]:
            for file in checkpoint_files(old):
                file.unlink(missing_ok=True)
            forget_model_sha256(self.run_dir, old)
        return path

    def _on_rollout_start(self) -> None:
        stopping = self.stop is not None and self.stop.requested
        if self.num_timesteps >= self._next or stopping:
            path = self.save()
            while self._next <= self.num_timesteps:
                self._next += self.every_steps
            if stopping:
                self.stopped_at = path

