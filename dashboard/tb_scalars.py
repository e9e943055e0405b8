"""The run's TensorBoard scalars, read from its event files (``tb/`` and ``seed_*/tb/``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dashboard.loaders import DashboardInputError

__all__ = ["MAIN_TAGS", "load_scalars"]

MAIN_TAGS = ("eval/sharpe", "eval/return_pct", "eval/max_drawdown_pct",
             "env/episode_return_pct", "env/trades_per_episode", "env/costs_pct",
             "rollout/ep_rew_mean", "train/approx_kl", "train/explained_variance",
             "train/entropy_loss")
EVENT_GLOB = "events.out.tfevents.*"


def event_dirs(run: Path) -> list[Path]:
    """Folders holding event files under the run's tb/ folders (its seeds' included)."""
    run = Path(run)
    roots = [run / "tb", *sorted(run.glob("seed_*/tb"))]
    return sorted({p.parent for root in roots if root.is_dir() for p in root.rglob(EVENT_GLOB)})


def load_scalars(run: Path) -> dict[str, dict[str, pd.Series]]:
    """``{event folder (relative to the run): {tag: values indexed by step}}`` (every point)."""
    run = Path(run)
    out: dict[str, dict[str, pd.Series]] = {}
    for folder in event_dirs(run):
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        try:
            accumulator.Reload()
        except Exception as exc:  # noqa: BLE001 - any corrupt event file is a bad input here
            raise DashboardInputError(f"{folder}: unreadable TensorBoard events ({exc})") from exc
        tags = accumulator.Tags().get("scalars", [])
        out[str(folder.relative_to(run))] = {
            tag: pd.Series([e.value for e in accumulator.Scalars(tag)],
                           index=pd.Index([e.step for e in accumulator.Scalars(tag)], name="step"),
                           name=tag)
            for tag in tags}
    return out
