"""``evaluate.py``'s run folder and config resolution and its call into
:mod:`agents.evaluate_run`."""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.run_folder import seed_dirs
from common.lazy import lazy_module
from config import load_config

# pandas, SciPy, the environment, torch and SB3 (seconds): loaded once the run folder and its
# config have been found usable, so that a mistyped --run or --set fails at once.
evaluate_run = lazy_module("agents.evaluate_run")

__all__ = ["run"]


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Evaluate the run of the parsed flags (its ``config.yaml`` with ``--set``)."""
    run_dir = Path(args.run)
    dirs = seed_dirs(run_dir)
    cfg = load_config(dirs[0] / "config.yaml", args.overrides)
    return evaluate_run.run(args, run_dir, dirs, cfg, argv)
