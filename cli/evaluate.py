"""``evaluate.py``'s run folder and config resolution and its call into
:mod:`agents.evaluate_run`."""

from __future__ import annotations

import argparse
from pathlib import Path

from agents import eval_run, evaluate_run
from config import load_config

__all__ = ["run"]


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Evaluate the run of the parsed flags (its ``config.yaml`` with ``--set``)."""
    run_dir = Path(args.run)
    seed_dirs = eval_run.seed_dirs(run_dir)
    cfg = load_config(seed_dirs[0] / "config.yaml", args.overrides)
    return evaluate_run.run(args, run_dir, seed_dirs, cfg, argv)
