"""``train.py``'s YAML resolution and its call into :mod:`agents.train_run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents import train_run
from config import load_config

__all__ = ["run"]


def run(args: argparse.Namespace, argv: list[str] | None, script: Path) -> int:
    """Train what the parsed flags ask for; ``argv`` (None: ``sys.argv``) goes into the run's
    provenance; ``script`` (train.py) is started once per seed when there are several."""
    overrides = train_run.config_overrides(args)
    return train_run.run(args, lambda extra: load_config(args.config, [*overrides, *extra]),
                         [sys.executable, *sys.argv] if argv is None else ["train.py", *argv],
                         script)
