"""``python -m agents.ablate``: parse the flags, resolve the experiment YAML, run the ablation
(:func:`agents.ablate.run`)."""

from __future__ import annotations

from agents import ablate
from config import load_config

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = ablate.parse_args(argv)
    return ablate.run(args, load_config(args.config, args.overrides))
