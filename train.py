"""Train a PPO agent on the train segment of an experiment config.

    python train.py --config configs/quick.yaml [--set key=value ...] [--run-dir runs/NAME]
                    [--seed N | --seeds 0 1 2] [--total-timesteps N] [--resume]
                    [--allow-modified] [--ignore-gate] [--debug]

With neither --seed nor --seeds, the config's ``train.seeds`` are trained (one process each, in
RUN_DIR/seed_<n>, when there are several). --resume continues an interrupted run exactly from its
latest checkpoint, or reuses a finished one. Ctrl-C stops at the next rollout boundary with a
checkpoint. Bad input is one line on stderr and exit status 2 (--debug shows the traceback).

The forecast gate (``forecast.gate``, when enabled) is checked on the forecasts dated in the
train and valid segments before anything is trained: a panel that fails it is refused (exit 2)
unless --ignore-gate is given. Its result goes into the run's provenance.json
(``forecast_gate``) and forecast_gate.md.

config -> data -> out-of-sample forecasts -> vectorised environments -> agent.learn -> runs/NAME/
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from common.cli import run_cli
from common.errors import UserInputError

log = logging.getLogger("train")
POLL_SECONDS = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML (configs/quick.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key, e.g. agent.n_steps=256")
    parser.add_argument("--run-dir", help="output folder (default runs/<config name>)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="seed of this run (overrides the config's)")
    seeds.add_argument("--seeds", type=int, nargs="+",
                       help="several seeds, one process each, in RUN_DIR/seed_<n> "
                            "(default: the config's train.seeds)")
    parser.add_argument("--total-timesteps", type=int, help="override train.total_timesteps")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in RUN_DIR/checkpoints")
    parser.add_argument("--allow-modified", action="store_true",
                        help="load a model file whose SHA-256 differs from provenance.json")
    parser.add_argument("--ignore-gate", action="store_true",
                        help="train even if the forecast panel fails forecast.gate")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def check_forecast_gate(cfg, ignore: bool, progress: bool) -> dict:
    """The gate's record for this config (``{"enabled": False}`` when off); raises UserInputError
    when the panel fails it and ``ignore`` is false. Checked on forecasts dated from the train
    segment's start to the valid segment's end whose outcomes are known by then."""
    gate_config = cfg.forecast.gate
    if not gate_config.enabled:
        log.info("forecast gate: off (forecast.gate.enabled is false)")
        return {"enabled": False}
    from data import load_market
    from forecasters import load_or_make_panel
    from forecasters.gate import evaluate_gate

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
    return {"enabled": True, "ignored": bool(ignore and not result.passed), **result.to_dict()}


def record_forecast_gate(run_dir: Path, gate: dict) -> None:
    """Add the gate's record to RUN_DIR/provenance.json and write RUN_DIR/forecast_gate.md."""
    import json

    from common.io import write_json_atomic, write_text_atomic
    from common.runfolder import PROVENANCE_NAME

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


def _check_seeds(seeds: list[int], flag: str) -> None:
    from config import MAX_SEED

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


def run_seeds(args: argparse.Namespace, cfg, seeds: list[int], run_dir: Path) -> int:
    """One subprocess per seed, as many at once as there are cores."""
    from data import check_segments_covered, load_market
    from envs import load_env_inputs

    frame = load_market(cfg.data.source, **cfg.data.load_options())
    check_segments_covered(frame.index, {n: (cfg.segments.get(n).start, cfg.segments.get(n).end)
                                         for n in ("train", "valid", "test")},
                           clip=cfg.data.clip_segments, source=f"{cfg.data.source} data")
    # Make (or load) the shared forecast panel once, so the seeds do not all compute it.
    load_env_inputs(cfg, progress=not args.no_progress)
    max_parallel = max(1, os.cpu_count() or 1)
    pending = list(seeds)
    running: list[tuple[int, subprocess.Popen]] = []
    failed = []
    while pending or running:
        while pending and len(running) < max_parallel:
            seed = pending.pop(0)
            cmd = [sys.executable, __file__, "--config", args.config, "--seed", str(seed),
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from config import load_config

    if args.seeds is not None:
        _check_seeds(args.seeds, "--seeds")
    if args.seed is not None:
        _check_seeds([args.seed], "--seed")
    if args.total_timesteps is not None and args.total_timesteps < 1:
        raise UserInputError(f"--total-timesteps: expected a positive number of steps, got "
                             f"{args.total_timesteps}")
    overrides = list(args.overrides)
    if args.total_timesteps is not None:
        overrides.append(f"train.total_timesteps={args.total_timesteps}")
    cfg = load_config(args.config, overrides)
    run_dir = Path(args.run_dir or f"runs/{cfg.name}")
    gate = check_forecast_gate(cfg, args.ignore_gate, progress=not args.no_progress)
    seeds = seeds_to_train(cfg, args.seed, args.seeds)
    if len(seeds) > 1:
        return run_seeds(args, cfg, seeds, run_dir)
    seed = seeds[0]
    if seed != cfg.seed:
        cfg = load_config(args.config, [*overrides, f"seed={seed}"])

    from agents.training import health_lines, train

    summary = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress,
                    command=[sys.executable, *sys.argv] if argv is None else ["train.py", *argv],
                    allow_modified=args.allow_modified)
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


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="train.py"))
