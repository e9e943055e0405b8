"""``trade.py``'s seed folder and config resolution and its call into
:mod:`execution.trade_run`."""

from __future__ import annotations

import argparse
from pathlib import Path

from config import load_config
from execution import trade_run

__all__ = ["run"]


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Trade the run of the parsed flags (its seed folder's ``config.yaml``)."""
    run_dir = Path(args.run)
    seed_dir = trade_run.seed_dir_of(run_dir, args.policy)
    return trade_run.run(args, argv, run_dir, seed_dir, load_config(seed_dir / "config.yaml"))
