"""The run folder ``evaluate.py`` reads, found before the evaluation stack is imported.

:func:`seed_dirs` needs only the file system, so ``cli.evaluate`` checks ``--run`` with it (and
loads the run's config) before it imports :mod:`agents.evaluate_run` (pandas, SciPy, the
environment, torch and SB3): a mistyped folder fails in well under a second.
"""

from __future__ import annotations

from pathlib import Path

from common.errors import UserInputError

__all__ = ["EvaluationInputError", "seed_dirs"]


class EvaluationInputError(UserInputError):
    """A run folder, model file or evaluate.py flag is not usable."""


def seed_dirs(run: Path) -> list[Path]:
    """The run itself, or its ``seed_*/`` folders, each holding a ``model.zip``."""
    if not run.is_dir():
        raise EvaluationInputError(f"--run {run}: no such run folder")
    if (run / "model.zip").exists():
        return [run]
    found = sorted(p for p in run.glob("seed_*") if (p / "model.zip").exists())
    if not found:
        raise EvaluationInputError(f"{run}: no model.zip here nor in seed_*/ (run train.py first)")
    return found
