"""Train a PPO agent on the train segment of an experiment config.

    python train.py --config configs/quick.yaml [--set key=value ...] [--run-dir runs/NAME]
                    [--seed N | --seeds 0 1 2] [--total-timesteps N] [--resume]

config -> data -> out-of-sample forecasts -> vectorised environments -> agent.learn -> runs/NAME/
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML (configs/quick.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a config key, e.g. agent.n_steps=256")
    parser.add_argument("--run-dir", help="output folder (default runs/<config name>)")
    parser.add_argument("--seed", type=int, help="seed of this run (overrides config seed)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="several seeds, one process each, in RUN_DIR/seed_<n>")
    parser.add_argument("--total-timesteps", type=int, help="override train.total_timesteps")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in RUN_DIR/checkpoints")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def run_seeds(args: argparse.Namespace, run_dir: Path) -> int:
    """One subprocess per seed, as many at once as there are cores."""
    from config import load_config

    cfg = load_config(args.config, args.overrides)  # fail before starting anything
    from envs import load_env_inputs

    # Make (or load) the shared forecast panel once, so the seeds do not all compute it.
    load_env_inputs(cfg, progress=not args.no_progress)
    max_parallel = max(1, os.cpu_count() or 1)
    pending = list(args.seeds)
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
            if args.resume:
                cmd.append("--resume")
            log.info("seed %d: %s", seed, " ".join(cmd))
            running.append((seed, subprocess.Popen(cmd)))
        time.sleep(1.0)
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
    from config import ConfigError, load_config

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.total_timesteps is not None:
        overrides.append(f"train.total_timesteps={args.total_timesteps}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir or f"runs/{cfg.name}")
    if args.seeds:
        return run_seeds(args, run_dir)

    from agents.training import TrainingError, train

    try:
        train(cfg, run_dir, resume=args.resume, progress=not args.no_progress,
              command=[sys.executable, *sys.argv] if argv is None else ["train.py", *argv])
    except (TrainingError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = json.loads((run_dir / "train_summary.json").read_text())
    print(f"trained {summary['timesteps']} timesteps in {summary['wall_seconds']:.0f} s "
          f"({summary['timesteps_per_second']:.0f}/s); run directory: {run_dir}")
    print(f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")
    print(f"next: python evaluate.py --run {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
