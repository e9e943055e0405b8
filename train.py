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
(this script parses the flags and resolves the YAML; ``agents.train_run`` does the rest)
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from common.cli import run_cli


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # the CLI layer loads config, pandas and torch/SB3 (seconds): imported once --help is past
    from cli.train import run

    return run(args, argv, Path(__file__))


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="train.py"))
