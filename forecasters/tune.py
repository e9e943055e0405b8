"""Optuna search over one member's main hyper-parameters, scored by walk-forward pinball loss.

The objective runs the walk-forward of that member alone on the frame truncated at the end of the
validation segment and scores the mean pinball loss of forecasts dated inside it, so the test
segment is never seen. Several worker processes (or machines, with a PostgreSQL URL) can run
``tune_member`` against the same storage and study name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from common.io import write_text_atomic
from common.units import PERCENT_PER_UNIT
from forecasters.base import pinball_loss, quantile_column
from forecasters.config import TUNABLE, ForecastConfig
from forecasters.metrics import panel_levels, realised
from forecasters.walkforward import walk_forward


def search_space(trial, member: str) -> dict:
    """The parameters tried for ``member`` (its main capacity and regularisation knobs)."""
    if member == "rf":
        return {
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 10, 200, log=True),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0),
            "max_samples": trial.suggest_float("max_samples", 0.2, 1.0),
        }
    if member == "gb":
        return {
            "max_iter": trial.suggest_int("max_iter", 50, 300, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 5),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 20, 300, log=True),
        }
    if member == "xgb":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 6),
            "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        }
    if member == "lstm":
        return {
            "window_bars": trial.suggest_int("window_bars", 5, 40),
            "hidden_size": trial.suggest_int("hidden_size", 8, 64, log=True),
            "epochs": trial.suggest_int("epochs", 5, 30),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
        }
    if member == "attention":
        return {  # every d_model here is divisible by every num_heads
            "window_bars": trial.suggest_int("window_bars", 5, 40),
            "d_model": trial.suggest_categorical("d_model", [8, 16, 32]),
            "num_heads": trial.suggest_categorical("num_heads", [1, 2, 4]),
            "epochs": trial.suggest_int("epochs", 3, 20),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        }
    raise ValueError(f"member {member!r} has no search space; tunable: {TUNABLE}")


def score_panel(panel: pd.DataFrame, frame: pd.DataFrame, start, end) -> float:
    """Mean pinball loss (returns in percent) over levels, horizons and dates in [start, end]."""
    rows = realised(panel, frame)
    dates = pd.DatetimeIndex(rows["date"])
    rows = rows[
        (dates >= pd.Timestamp(start))
        & (dates <= pd.Timestamp(end))
        & rows["log_return"].notna().to_numpy()
    ]
    levels = panel_levels(panel)
    r = rows["log_return"].to_numpy() * PERCENT_PER_UNIT
    return float(
        np.mean(
            [pinball_loss(r, rows[quantile_column(q)].to_numpy() * PERCENT_PER_UNIT, q).mean() for q in levels]
        )
    )


def tune_member(
    frame: pd.DataFrame,
    config: ForecastConfig,
    member: str,
    valid_start,
    valid_end,
    n_trials: int | None = None,
    storage: str | None = None,
    progress: bool = False,
) -> dict:
    """Run (or join) the study for ``member``; return the best parameters found so far."""
    # optuna: only for a tuning study
    import optuna

    if member not in TUNABLE:
        raise ValueError(f"cannot tune {member!r}; tunable members: {TUNABLE}")
    config = config.resolved()
    storage = storage or config.tune.storage
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    history = frame.loc[: pd.Timestamp(valid_end)]
    base = config.model_copy(
        update={
            "members": [member],
            "references": [],
            "first_forecast_date": pd.Timestamp(valid_start).date(),
            "ensemble": config.ensemble.model_copy(update={"enabled": False}),
            "conformal": config.conformal.model_copy(update={"enabled": False}),
        }
    )

    def objective(trial) -> float:
        params = getattr(base, member).model_copy(update=search_space(trial, member))
        trial_config = base.model_copy(update={member: params})
        ForecastConfig.model_validate(trial_config.model_dump())
        panel = walk_forward(history, trial_config, progress=progress)
        return score_panel(panel, history, valid_start, valid_end)

    study = optuna.create_study(
        study_name=f"{config.tune.study_prefix}-{member}",
        storage=storage,
        direction="minimize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
    )
    study.optimize(
        objective, n_trials=n_trials or config.tune.n_trials, timeout=config.tune.timeout_s
    )
    return dict(study.best_params)


def save_best_params(member: str, params: dict, path: str | Path) -> Path:
    """Merge ``params`` into the ``forecast: {member: ...}`` YAML at ``path`` (atomic write)."""
    path = Path(path)
    existing = yaml.safe_load(path.read_text()) if path.is_file() else None
    existing = existing or {}
    existing.setdefault("forecast", {})[member] = {
        k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()
    }
    return write_text_atomic(yaml.safe_dump(existing, sort_keys=True), path)
