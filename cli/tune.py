"""``python -m agents.tune``: parse the flags, resolve the experiment YAML, run the search
(:func:`agents.tune.run`)."""

from __future__ import annotations

from agents import tune
from config import load_config

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = tune.parse_args(argv)
    return tune.run(args, load_config(args.config, args.overrides))
