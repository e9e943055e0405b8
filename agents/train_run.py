"""The steps of ``train.py``: seed flags, the forecast gate, one process per seed, one seed.

``train.py`` parses the flags and resolves the experiment YAML (the CLI layer: ``agents`` never
imports ``config``); :func:`run` takes the parsed flags and a function that loads the config
with extra overrides. The market frame is loaded once per process and its segments checked in
one place (:func:`agents.training.load_checked_market`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from agents.config import MAX_SEED
from agents.training import health_lines, load_checked_market, train
from common.errors import UserInputError
from common.io import write_json_atomic, write_text_atomic
from common.runfolder import PROVENANCE_NAME
from data import load_market
from envs import load_env_inputs
from forecasters import load_or_make_panel
from forecasters.gate import evaluate_gate

if TYPE_CHECKING:
    from config import ExperimentConfig

__all__ = ["check_forecast_gate", "check_seeds", "config_overrides",
           "record_forecast_gate", "run", "run_seeds", "seeds_to_train"]

log = logging.getLogger("train")
POLL_SECONDS = 1.0


def check_forecast_gate(cfg, ignore: bool, progress: bool) -> tuple[dict, pd.DataFrame | None]:
    """The gate's record for this config (``{"enabled": False}`` when off) and the market frame
    it loaded (None when off); raises UserInputError when the panel fails it and ``ignore`` is
    false. Checked on forecasts dated from the train segment's start to the valid segment's end
    whose outcomes are known by then."""
    gate_config = cfg.forecast.gate
    if not gate_config.enabled:
        log.info("forecast gate: off (forecast.gate.enabled is false)")
        return {"enabled": False}, None
    frame = load_market(cfg.data.source, **cfg.data.load_options())
    panel = load_or_make_panel(frame, cfg.forecast, progress=progress)
    try:
        result = evaluate_gate(panel, frame, gate_config, cfg.segments.train.start,
                               cfg.segments.valid.end)
    except ValueError as exc:
        raise UserInputError(str(exc)) from None
    for line in result.lines():
        log.info("%s", line)
    if not result.passed and not ignore:
        failed = "; ".join(check.describe() for check in result.failures)
        raise UserInputError(f"forecast.gate: the {result.model} forecasts of "
                             f"{result.start}..{result.end} fail the gate ({failed}); "
                             "pass --ignore-gate to train anyway")
    record = {"enabled": True, "ignored": bool(ignore and not result.passed), **result.to_dict()}
    return record, frame


def record_forecast_gate(run_dir: Path, gate: dict) -> None:
    """Add the gate's record to RUN_DIR/provenance.json and write RUN_DIR/forecast_gate.md."""
    path = run_dir / PROVENANCE_NAME
    document = json.loads(path.read_text()) if path.exists() else {}
    document["forecast_gate"] = gate
    write_json_atomic(document, path)
    if not gate.get("enabled"):
        text = "Off (forecast.gate.enabled is false).\n"
    else:
        status = "PASS" if gate["passed"] else ("FAIL, ignored (--ignore-gate)" if gate["ignored"]
                                                else "FAIL")
        text = (f"{status}: {gate['model']} forecasts dated {gate['start']}..{gate['end']}\n\n"
                "| h | measure | value | allowed | n | result |\n|---|---|---|---|---|---|\n")
        for c in gate["checks"]:
            allowed = f">= {c['low']:.3f}" if c["high"] >= 1 else f"{c['low']:.3f}..{c['high']:.3f}"
            text += (f"| {c['horizon']} | {c['measure']} | {c['value']:.3f} | {allowed} | {c['n']} "
                     f"| {'pass' if c['passed'] else 'FAIL'} |\n")
    write_text_atomic("# Forecast gate\n\n" + text, run_dir / "forecast_gate.md")


def check_seeds(seeds: list[int], flag: str) -> None:
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UserInputError(f"{flag}: seed(s) {repeated} given more than once")
    outside = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if outside:
        raise UserInputError(f"{flag}: seed(s) {outside} outside 0..{MAX_SEED}")


def seeds_to_train(cfg, seed: int | None, seeds: list[int] | None) -> list[int]:
    """--seed, else --seeds, else the config's ``train.seeds`` when it sets them, else ``seed``."""
    if seed is not None:
        return [seed]
    if seeds is not None:
        return list(seeds)
    return list(cfg.train.seeds) if "seeds" in cfg.train.model_fields_set else [cfg.seed]


def run_seeds(args: argparse.Namespace, cfg, seeds: list[int], run_dir: Path, script: Path,
              frame: pd.DataFrame | None = None) -> int:
    """One subprocess of ``script`` (train.py) per seed, as many at once as there are cores."""
    frame = load_checked_market(cfg, frame)
    # Make (or load) the shared forecast panel once, so the seeds do not all compute it.
    load_env_inputs(cfg, progress=not args.no_progress, frame=frame)
    max_parallel = max(1, os.cpu_count() or 1)
    pending = list(seeds)
    running: list[tuple[int, subprocess.Popen]] = []
    failed = []
    while pending or running:
        while pending and len(running) < max_parallel:
            seed = pending.pop(0)
            cmd = [sys.executable, str(script), "--config", args.config, "--seed", str(seed),
                   "--run-dir", str(run_dir / f"seed_{seed}"), "--no-progress"]
            for override in args.overrides:
                cmd += ["--set", override]
            if args.total_timesteps:
                cmd += ["--total-timesteps", str(args.total_timesteps)]
            if args.resume and (run_dir / f"seed_{seed}" / "checkpoints").is_dir():
                cmd.append("--resume")  # a seed that never started starts afresh
            if args.allow_modified:
                cmd.append("--allow-modified")
            if args.ignore_gate:
                cmd.append("--ignore-gate")
            log.info("seed %d: %s", seed, " ".join(cmd))
            running.append((seed, subprocess.Popen(cmd)))
        time.sleep(POLL_SECONDS)
        for seed, proc in list(running):
            if proc.poll() is not None:
                running.remove((seed, proc))
                log.info("seed %d finished with exit code %d", seed, proc.returncode)
                if proc.returncode != 0:
                    failed.append(seed)
    if failed:
        log.error("seeds %s failed", failed)
        return 1
    log.info("all seeds done under %s", run_dir)
    return 0


def config_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides of the flags, with ``--total-timesteps`` as one of them."""
    overrides = list(args.overrides)
    if args.total_timesteps is not None:
        overrides.append(f"train.total_timesteps={args.total_timesteps}")
    return overrides


def run(args: argparse.Namespace, load: Callable[[Sequence[str]], ExperimentConfig],
        command: list[str], script: Path) -> int:
    """Everything ``train.py`` does after parsing ``args``: ``load(extra)`` returns the config
    with ``config_overrides(args)`` and then the ``extra`` overrides; ``command`` is recorded in
    the run's provenance; ``script`` (train.py) is started once per seed when there are several."""
    if args.seeds is not None:
        check_seeds(args.seeds, "--seeds")
    if args.seed is not None:
        check_seeds([args.seed], "--seed")
    if args.total_timesteps is not None and args.total_timesteps < 1:
        raise UserInputError(f"--total-timesteps: expected a positive number of steps, got "
                             f"{args.total_timesteps}")
    cfg = load(())
    run_dir = Path(args.run_dir or f"runs/{cfg.name}")
    gate, frame = check_forecast_gate(cfg, args.ignore_gate, progress=not args.no_progress)
    seeds = seeds_to_train(cfg, args.seed, args.seeds)
    if len(seeds) > 1:
        return run_seeds(args, cfg, seeds, run_dir, script, frame)
    seed = seeds[0]
    if seed != cfg.seed:
        cfg = load([f"seed={seed}"])

    summary = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress,
                    command=command, allow_modified=args.allow_modified, frame=frame)
    record_forecast_gate(run_dir, gate)
    if summary.get("reused"):
        print(f"already trained: {run_dir / 'model.zip'} holds {summary['timesteps']} timesteps "
              f"(train.total_timesteps {cfg.train.total_timesteps}); reused, nothing trained")
    else:
        print(f"trained {summary['timesteps']} timesteps in {summary['wall_seconds']:.0f} s "
              f"({summary['timesteps_per_second']:.0f}/s); run directory: {run_dir}")
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")
    print(f"next: python evaluate.py --run {run_dir}")
    for line in health_lines(summary):
        print(line)
    return 0
