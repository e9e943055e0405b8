"""PPO hyper-parameter search with Optuna (TPE sampler, median pruner on validation Sharpe).

    python -m agents.tune --config configs/quick.yaml --trials 20 [--seeds-per-trial 2]
                          [--storage URL] [--study NAME] [--timesteps N] [--out DIR]
                          [--set key=value ...] [--sampler-seed N]

Each trial samples PPO hyper-parameters from a search space adapted from RL Zoo's PPO space,
trains ``--seeds-per-trial`` agents on the train segment and scores them on the valid segment
(the test segment is never read). Every ``eval_every_rollouts`` rollouts the validation Sharpe
is reported to the pruner, which stops trials below the median of earlier trials at the same
point. The trial's value is the mean final validation Sharpe over its seeds.

Several machines share one study through ``--storage`` (SQLite by default, in ``OUT``; a
PostgreSQL URL such as ``postgresql://user@host:5432/optuna`` for several machines): start the
same command on each machine with a different ``--sampler-seed``. ``--trials`` is the study's
total: a worker stops once that many trials are finished (complete or pruned) or running.
Failed trials do not count. A trial left "running" by a killed worker is marked failed when a
worker starts again: at once when it ran on this machine (its process is gone), after
``HEARTBEAT_GRACE_SECONDS`` without a heartbeat from another machine. ``postgresql://`` URLs
use the psycopg2 driver that the project installs. Every check on the flags, the budget and
the storage runs before the study starts; errors are one line.

One line per finished trial (value, seed Sharpes, parameters); at the end, a warning when the
best validation Sharpe is below the best baseline's on the same segment or below cash (0).

Writes ``OUT/best_params.yaml`` (the ``agent:`` section of the best trial, usable as
``train.py --set`` overrides, listed in ``OUT/best_overrides.txt``), ``OUT/tune_summary.json``
and ``OUT/tune_report.md`` with the deflated Sharpe of the best trial over all trials.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import optuna
import sqlalchemy
import torch
import yaml
from scipy.stats import kurtosis, skew
from stable_baselines3.common.callbacks import BaseCallback

from agents.baselines import make_baseline
from agents.evaluation import bar_returns, performance_metrics, run_episode
from agents.ppo import PPOPolicy, build_model
from agents.statistics import deflated_sharpe_ratio, per_bar_sharpe
from agents.training import monitored_vec_env
from common.errors import UserInputError
from common.io import write_json_atomic, write_text_atomic
from envs import load_env_inputs, make_env

if TYPE_CHECKING:
    from config import ExperimentConfig

__all__ = ["SEARCH_SPACE_NOTE", "TuneError", "ValidationPruningCallback", "check_budget",
           "open_storage", "parse_args", "run", "optimize", "sample_agent_params", "storage_url",
           "write_best_params"]

log = logging.getLogger("agents.tune")
SEARCH_SPACE_NOTE = "RL Zoo's PPO space (rl_zoo3/hyperparams_opt.py: sample_ppo_params), narrowed"
NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}
N_STEPS_CHOICES = (64, 128, 256, 512, 1024, 2048)
BATCH_SIZE_CHOICES = (32, 64, 128, 256, 512)
DEFAULT_EVAL_EVERY_ROLLOUTS = 2
PRUNER_STARTUP_TRIALS = 3
STORAGE_ATTEMPTS = 5
STORAGE_RETRY_SECONDS = 0.5
HEARTBEAT_SECONDS = 60  # a running trial's heartbeat; another machine's is stale after:
HEARTBEAT_GRACE_SECONDS = 300
COUNTED_STATES = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                  optuna.trial.TrialState.RUNNING)
WORKER_ATTR = "worker"  # {"host", "pid"} of the process running a trial


class TuneError(UserInputError):
    """A flag or setting of the search is unusable."""


def sample_agent_params(trial: optuna.Trial, n_envs: int, total_timesteps: int) -> dict:
    """PPO hyper-parameters for one trial, as keys of the config's ``agent:`` section.

    RL Zoo's ranges, narrowed where theirs cannot run here: a rollout must fit the trial's
    budget (at least two rollouts), the learning rate stops at 1e-2 and the batch never exceeds
    the rollout.
    """
    fitting = check_budget(n_envs, total_timesteps)
    n_steps = trial.suggest_categorical("n_steps", fitting)
    batch_size = trial.suggest_categorical("batch_size", BATCH_SIZE_CHOICES)
    arch = trial.suggest_categorical("net_arch", tuple(NET_ARCHS))
    rollout = n_steps * n_envs
    return {
        "n_steps": n_steps,
        # The largest minibatch at most the sampled one that divides the rollout.
        "batch_size": math.gcd(min(batch_size, rollout), rollout),
        "gamma": trial.suggest_categorical("gamma", (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", (0.1, 0.2, 0.3, 0.4)),
        "n_epochs": trial.suggest_categorical("n_epochs", (1, 5, 10, 20)),
        "gae_lambda": trial.suggest_categorical("gae_lambda", (0.8, 0.9, 0.92, 0.95, 0.98,
                                                               0.99, 1.0)),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", (0.3, 0.5, 0.6, 0.7, 0.8,
                                                                     0.9, 1.0, 2.0, 5.0)),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
        "net_arch": NET_ARCHS[arch],
    }


def check_budget(n_envs: int, total_timesteps: int) -> list[int]:
    """The rollout lengths (``n_steps``) that fit two rollouts in ``total_timesteps``; an error
    naming ``--timesteps`` when none does (checked before the study starts)."""
    fitting = [n for n in N_STEPS_CHOICES if 2 * n * n_envs <= total_timesteps]
    if not fitting:
        raise TuneError(f"--timesteps {total_timesteps}: too small for two rollouts of "
                        f"{min(N_STEPS_CHOICES)} steps on {n_envs} environment(s); expected "
                        f"at least {2 * min(N_STEPS_CHOICES) * n_envs}")
    return fitting


def storage_url(text: str) -> str:
    """A checked Optuna storage URL: it parses, names a known database, and a SQLite file's
    folder exists. ``postgresql://`` (and ``postgres://``) use psycopg2, the driver the project
    installs (SQLAlchemy 2.1 would otherwise ask for psycopg 3)."""
    try:
        url = sqlalchemy.engine.make_url(text)
    except sqlalchemy.exc.ArgumentError:
        raise TuneError(f"--storage {text!r}: not a database URL; expected e.g. "
                        f"sqlite:///optuna.db or postgresql://user@host:5432/db") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg2")
    try:
        url.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise TuneError(f"--storage {text!r}: unknown database '{url.drivername}'; expected "
                        f"sqlite:/// or postgresql://") from None
    except ImportError as exc:
        raise TuneError(f"--storage {text!r}: its driver is not installed ({exc})") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise TuneError(f"--storage {text!r}: folder {folder} does not exist")
    return url.render_as_string(hide_password=False)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The study's storage, with heartbeats (so that other workers can tell a trial whose
    worker died); racing workers creating the tables are retried; an unreachable database is
    a one-line error."""
    for attempt in range(1, STORAGE_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=HEARTBEAT_GRACE_SECONDS)
        except ImportError as exc:
            raise TuneError(f"storage {_safe(url)}: its driver is not installed ({exc})") from None
        except sqlalchemy.exc.DBAPIError as exc:
            # Workers starting together on a new database race to create its tables; the
            # loser sees a duplicate-key error and finds the tables there on the next try.
            if attempt == STORAGE_ATTEMPTS:
                reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                raise TuneError(f"storage {_safe(url)}: cannot open ({reason})") from None
            time.sleep(STORAGE_RETRY_SECONDS * attempt)
    raise AssertionError("unreachable")


def _safe(url: str) -> str:
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark failed the running trials whose worker ran on this machine and is gone (a killed
    run); other machines' dead trials are failed by their missing heartbeat. Returns their
    numbers."""
    running = (optuna.trial.TrialState.RUNNING,)
    before = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=running):
        worker = trial.user_attrs.get(WORKER_ATTR) or {}
        if worker.get("host") == host and not _alive(int(worker.get("pid", -1))):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study._storage.set_trial_state_values(trial._trial_id,
                                                      optuna.trial.TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=running)}
    return sorted(before - after)


class ValidationPruningCallback(BaseCallback):
    """Every ``every_rollouts`` rollouts: one deterministic episode on the valid segment; its
    Sharpe is reported to the trial at ``step_offset + k``. Stops training when pruned."""

    def __init__(self, trial: optuna.Trial, valid_env, algo: str, bars_per_year: float,
                 every_rollouts: int, step_offset: int, decision_every_bars: int = 1) -> None:
        super().__init__()
        self.decision_every_bars = decision_every_bars
        self.trial = trial
        self.valid_env = valid_env
        self.algo = algo
        self.bars_per_year = bars_per_year
        self.every_rollouts = every_rollouts
        self.step_offset = step_offset
        self.rollouts = 0
        self.reports = 0
        self.pruned = False

    def _on_step(self) -> bool:
        return not self.pruned

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        if self.rollouts % self.every_rollouts:
            return
        policy = PPOPolicy(self.model, self.algo, decision_every_bars=self.decision_every_bars)
        sharpe = performance_metrics(run_episode(self.valid_env, policy),
                                     self.bars_per_year)["sharpe"]
        self.trial.report(sharpe, self.step_offset + self.reports)
        self.reports += 1
        if self.trial.should_prune():
            self.pruned = True


def _train_env(cfg, inputs, seed: int):
    envs = []
    for rank in range(cfg.train.n_envs):
        envs.append(make_env(cfg, "train", inputs=inputs))
        envs[-1].reset(seed=seed + rank)
    return monitored_vec_env(envs, cfg.train.vec_env, cfg.agent.decision_every_bars)


def make_objective(cfg, inputs, total_timesteps: int, seeds_per_trial: int,
                   every_rollouts: int) -> Callable[[optuna.Trial], float]:
    """The objective: mean final validation Sharpe over ``seeds_per_trial`` seeds."""

    def objective(trial: optuna.Trial) -> float:
        params = sample_agent_params(trial, cfg.train.n_envs, total_timesteps)
        agent = cfg.agent.model_validate({**cfg.agent.model_dump(), **params})
        max_reports = total_timesteps // (params["n_steps"] * cfg.train.n_envs) + 1
        sharpes, per_bar, skews, kurts, n_bars = [], [], [], [], 0
        for k in range(seeds_per_trial):
            seed = cfg.seed + k
            valid_env = make_env(cfg, "valid", mode="eval", inputs=inputs)
            model = build_model(agent, _train_env(cfg, inputs, seed), seed, None)
            callback = ValidationPruningCallback(trial, valid_env, agent.algo,
                                                 valid_env.panel.bars_per_year, every_rollouts,
                                                 k * max_reports, agent.decision_every_bars)
            model.learn(total_timesteps=total_timesteps, callback=callback)
            if callback.pruned:
                raise optuna.TrialPruned()
            result = run_episode(valid_env, PPOPolicy(
                model, agent.algo, decision_every_bars=agent.decision_every_bars))
            returns = bar_returns(result)
            sharpes.append(performance_metrics(result, valid_env.panel.bars_per_year)["sharpe"])
            per_bar.append(per_bar_sharpe(returns))
            skews.append(float(skew(returns)) if np.std(returns) > 0 else 0.0)
            kurts.append(float(kurtosis(returns, fisher=False)) if np.std(returns) > 0 else 3.0)
            n_bars = len(returns)
        trial.set_user_attr("agent_params", params)
        trial.set_user_attr("seed_sharpes", sharpes)
        trial.set_user_attr("sharpe_per_bar", float(np.mean(per_bar)))
        trial.set_user_attr("skew", float(np.mean(skews)))
        trial.set_user_attr("kurtosis", float(np.mean(kurts)))
        trial.set_user_attr("n_bars", n_bars)
        return float(np.mean(sharpes))

    return objective


def optimize(study_name: str, storage: str | optuna.storages.BaseStorage, n_trials: int,
             objective, sampler_seed: int = 0,
             pruner: optuna.pruners.BasePruner | None = None,
             callbacks: list[Callable] = ()) -> optuna.Study:
    """Run ``objective`` in the shared study until it holds ``n_trials`` finished (complete or
    pruned) or running trials (several processes may call this at once on the same storage).
    Running trials left by dead workers are failed first; failed trials are not counted, so a
    rerun after a crash runs the number asked for."""
    pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS)
    if isinstance(storage, str):
        storage = open_storage(storage_url(storage))
    for attempt in range(1, STORAGE_ATTEMPTS + 1):
        try:
            study = optuna.create_study(
                study_name=study_name, storage=storage, direction="maximize",
                load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                pruner=pruner)
            break
        except sqlalchemy.exc.DBAPIError:
            # Workers creating the same study at once: the loser finds it on the next try.
            if attempt == STORAGE_ATTEMPTS:
                raise
            time.sleep(STORAGE_RETRY_SECONDS * attempt)
    failed = fail_dead_trials(study)
    if failed:
        log.warning("study '%s': trial(s) %s were left running by a worker that is gone; "
                    "marked failed (not counted)", study_name, failed)
    counted = len(study.get_trials(deepcopy=False, states=COUNTED_STATES))
    def tracked(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
        return objective(trial)

    if counted < n_trials:
        study.optimize(tracked, n_trials=n_trials - counted,
                       callbacks=[optuna.study.MaxTrialsCallback(n_trials,
                                                                 states=COUNTED_STATES),
                                  *callbacks])
    return study


def print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial: its state, value, seeds' Sharpes and parameters."""
    value = "-" if trial.value is None else f"{trial.value:.3f}"
    seeds = ", ".join(f"{v:.3f}" for v in trial.user_attrs.get("seed_sharpes", []))
    params = " ".join(f"{k}={_yaml_inline(v)}" for k, v in
                      (trial.user_attrs.get("agent_params") or trial.params).items())
    print(f"trial {trial.number} {trial.state.name.lower()}: validation Sharpe {value}"
          + (f" (seeds {seeds})" if seeds else "") + f"; {params}", flush=True)


def baseline_sharpes(cfg, inputs) -> dict[str, float]:
    """Each configured baseline's Sharpe on the valid segment (cash's is 0), the bar the best
    trial must clear."""
    env = make_env(cfg, "valid", mode="eval", inputs=inputs)
    sharpes = {}
    for name in cfg.baselines.names:
        policy = make_baseline(name, env.observation_names, cfg.baselines, seed=cfg.seed)
        sharpes[name] = performance_metrics(run_episode(env, policy, seed=cfg.seed),
                                            env.panel.bars_per_year)["sharpe"]
    sharpes.setdefault("cash", 0.0)
    return sharpes


def below_baselines(best_sharpe: float, sharpes: dict[str, float]) -> str | None:
    """A warning when the best trial does not beat the best baseline or cash, else None."""
    best_name = max(sharpes, key=sharpes.get)
    reasons = []
    if sharpes[best_name] > best_sharpe and best_name != "cash":
        reasons.append(f"the best baseline's ({best_name} {sharpes[best_name]:.3f})")
    if best_sharpe < 0:
        reasons.append("cash (0)")
    if not reasons:
        return None
    return (f"warning: the best trial's validation Sharpe {best_sharpe:.3f} is below "
            f"{' and '.join(reasons)} on the same valid segment")


def write_best_params(study: optuna.Study, out: Path) -> tuple[dict, Path]:
    """The best trial's ``agent:`` section as YAML, and its ``--set`` overrides as text."""
    params = study.best_trial.user_attrs["agent_params"]
    header = (f"# PPO hyper-parameters of trial {study.best_trial.number} of study "
              f"'{study.study_name}' (validation Sharpe {study.best_value:.3f}), written by "
              f"agents.tune.\n# Use: train.py --config CONFIG $(cat best_overrides.txt)\n")
    path = write_text_atomic(header + yaml.safe_dump({"agent": params}, sort_keys=False),
                             out / "best_params.yaml")
    overrides = " ".join(f"--set agent.{key}={_yaml_inline(value)}"
                         for key, value in params.items())
    write_text_atomic(overrides + "\n", out / "best_overrides.txt")
    return params, path


def _yaml_inline(value) -> str:
    return json.dumps(value, separators=(",", ":"))  # JSON is YAML, on one shell word


def summarise(study: optuna.Study) -> dict:
    """Trials, the best one and its deflated Sharpe over every completed trial."""
    complete = study.get_trials(deepcopy=False,
                                states=(optuna.trial.TrialState.COMPLETE,))
    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             "params": t.params} for t in study.get_trials(deepcopy=False)]
    best = study.best_trial
    trial_sharpes = np.asarray([t.user_attrs["sharpe_per_bar"] for t in complete])
    dsr = deflated_sharpe_ratio(best.user_attrs["sharpe_per_bar"], trial_sharpes,
                                best.user_attrs["n_bars"], skew=best.user_attrs["skew"],
                                kurtosis=best.user_attrs["kurtosis"])
    return {"study": study.study_name, "trials": rows, "completed": len(complete),
            "pruned": sum(r["state"] == "PRUNED" for r in rows),
            "best_trial": best.number, "best_validation_sharpe": best.value,
            "best_seed_sharpes": best.user_attrs["seed_sharpes"],
            "best_agent_params": best.user_attrs["agent_params"],
            "deflated_sharpe": None if math.isnan(dsr) else dsr,
            "search_space": SEARCH_SPACE_NOTE}


def write_report(summary: dict, path: Path) -> Path:
    dsr = summary["deflated_sharpe"]
    lines = [f"# PPO hyper-parameter search: study `{summary['study']}`", "",
             f"{len(summary['trials'])} trials ({summary['completed']} completed, "
             f"{summary['pruned']} pruned). Objective: mean validation Sharpe over seeds "
             f"(the test segment is not used).", "",
             f"Best trial {summary['best_trial']}: validation Sharpe "
             f"{summary['best_validation_sharpe']:.3f} (seeds: "
             + ", ".join(f"{s:.3f}" for s in summary["best_seed_sharpes"]) + ").", "",
             "Deflated Sharpe ratio of the best trial over all completed trials (probability "
             "that its true validation Sharpe is above 0 after the search): "
             + ("-" if dsr is None else f"{dsr:.3f}") + ".", ""]
    if summary.get("baseline_validation_sharpes"):
        lines += ["Baselines' validation Sharpe on the same segment: "
                  + ", ".join(f"`{k}` {v:.3f}" for k, v in
                              summary["baseline_validation_sharpes"].items()) + ".", ""]
    if summary.get("warning"):
        lines += [f"**{summary['warning'].capitalize()}.**", ""]
    lines += ["| trial | state | validation Sharpe |", "|---:|---|---:|"]
    for row in summary["trials"]:
        value = "-" if row["value"] is None else f"{row['value']:.3f}"
        lines.append(f"| {row['number']} | {row['state']} | {value} |")
    lines += ["", "Best parameters (`best_params.yaml`):", "", "```yaml",
              yaml.safe_dump({"agent": summary["best_agent_params"]}, sort_keys=False).strip(),
              "```"]
    return write_text_atomic("\n".join(lines) + "\n", path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agents.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--trials", type=int, required=True, help="trials in the study, total")
    parser.add_argument("--seeds-per-trial", type=int, default=2, help="agents per trial")
    parser.add_argument("--storage", help="Optuna storage URL (default sqlite in OUT)")
    parser.add_argument("--study", help="study name (default ppo_<config name>)")
    parser.add_argument("--timesteps", type=int, help="timesteps per agent "
                                                      "(default train.total_timesteps)")
    parser.add_argument("--eval-every-rollouts", type=int, default=DEFAULT_EVAL_EVERY_ROLLOUTS,
                        help="validation (and pruning) every this many rollouts")
    parser.add_argument("--sampler-seed", type=int, help="TPE seed (default the config's "
                                                         "seed; differ per worker)")
    parser.add_argument("--out", help="output folder (default runs/tune/<study>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--no-progress", action="store_true", help="no forecast progress bar")
    args = parser.parse_args(argv)
    for flag in ("trials", "seeds_per_trial", "eval_every_rollouts", "timesteps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise TuneError(f"--{flag.replace('_', '-')} {value}: expected a positive integer")
    return args


def run(args: argparse.Namespace, cfg: ExperimentConfig) -> int:
    """The search of ``python -m agents.tune`` with its parsed flags (:func:`parse_args`) and
    the loaded config (``cli.tune.main`` resolves the YAML)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study_name = args.study or f"ppo_{cfg.name}"
    out = Path(args.out or Path("runs") / "tune" / study_name)
    total_timesteps = args.timesteps or cfg.train.total_timesteps
    # Every check before the study starts (and before anything is written).
    check_budget(cfg.train.n_envs, total_timesteps)
    if out.exists() and not out.is_dir():
        raise TuneError(f"--out {out}: exists and is not a folder")
    url = storage_url(args.storage) if args.storage else None
    storage = open_storage(url) if url else None
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or open_storage(f"sqlite:///{(out / 'optuna.db').resolve()}")
    torch.set_num_threads(cfg.agent.torch_threads)
    inputs = load_env_inputs(cfg, progress=not args.no_progress)
    baselines = baseline_sharpes(cfg, inputs)
    log.info("validation Sharpe of the baselines: %s",
             ", ".join(f"{k} {v:.3f}" for k, v in baselines.items()))
    objective = make_objective(cfg, inputs, total_timesteps, args.seeds_per_trial,
                               args.eval_every_rollouts)
    seed = cfg.seed if args.sampler_seed is None else args.sampler_seed
    study = optimize(study_name, storage, args.trials, objective, seed,
                     callbacks=[print_trial])
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise TuneError(f"study '{study_name}': no trial completed (all pruned or failed)")
    params, path = write_best_params(study, out)
    summary = summarise(study)
    summary["storage"] = storage.url if args.storage is None else "(given by --storage)"
    summary["timesteps_per_agent"] = total_timesteps
    summary["baseline_validation_sharpes"] = baselines
    summary["warning"] = below_baselines(study.best_value, baselines)
    write_json_atomic(summary, out / "tune_summary.json")
    report = write_report(summary, out / "tune_report.md")
    dsr = summary["deflated_sharpe"]
    print(f"best trial {study.best_trial.number}: validation Sharpe {study.best_value:.3f}; "
          f"deflated Sharpe over {summary['completed']} trials: "
          f"{'-' if dsr is None else f'{dsr:.3f}'}")
    print(f"best parameters: {path}")
    print(f"train with them: python train.py --config {args.config} "
          f"$(cat {out / 'best_overrides.txt'})")
    print(f"report: {report}")
    if summary["warning"]:
        print(summary["warning"])
    return 0


if __name__ == "__main__":  # the CLI layer parses the flags and resolves the YAML
    from cli.tune import main
    from common.cli import run_cli

    raise SystemExit(run_cli(main, prog="agents.tune"))
