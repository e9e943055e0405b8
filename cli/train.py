"""``train.py``'s YAML resolution and its call into :mod:`agents.train_run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.lazy import lazy_module
from config import load_config

# pandas, SciPy, the forecasters, the environment, torch and SB3 (seconds): loaded once the
# config has been found usable, so that a missing file or a bad key fails at once.
train_run = lazy_module("agents.train_run")

__all__ = ["run"]


def run(args: argparse.Namespace, argv: list[str] | None, script: Path) -> int:
    """Train what the parsed flags ask for; ``argv`` (None: ``sys.argv``) goes into the run's
    provenance; ``script`` (train.py) is started once per seed when there are several."""
    load_config(args.config, args.overrides)  # the file, the YAML and every --set key, checked
    overrides = train_run.config_overrides(args)
    return train_run.run(args, lambda extra: load_config(args.config, [*overrides, *extra]),
                         [sys.executable, *sys.argv] if argv is None else ["train.py", *argv],
                         script)
