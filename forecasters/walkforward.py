"""Walk-forward runs: out-of-sample forecast panels with purged, embargoed refits, and caching."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from common.codecs import parse_quantile_column
from common.io import write_parquet_atomic
from data import bars_per_year, build_features, frame_hash
from data.calendar import horizon_bars
from forecasters.base import (
    RETURN_COLUMN,
    VOL_COLUMN,
    horizon_scale,
    quantile_column,
    repair_crossing,
    wide_column,
)
from forecasters.config import OPTIONAL_MEMBERS, ForecastConfig
from forecasters.conformal import StepChoice, calibrate_intervals
from forecasters.ensemble import StackedEnsemble
from forecasters.models import make_forecaster

PANEL_VERSION = "3"
"""Bump when the panel's meaning changes so that cached panels are not reused."""
ENSEMBLE = "ensemble"
STEPS_ATTR = "conformal_steps"
"""``panel.attrs`` key: the tracking steps chosen per model, horizon and interval (records)."""


def vol_per_bar(frame: pd.DataFrame, config: ForecastConfig) -> pd.Series:
    """Causal volatility of one bar's log return at each bar.

    The frame's ``iv_index`` (annualised, e.g. VIX / 100) divided by sqrt(bars per year) where it
    is present and ``config.vol.use_iv``; elsewhere an EWMA of squared log returns with half-life
    ``config.vol.ewma_halflife_bars``; floored at ``config.vol.floor_per_bar``.
    """
    log_return = np.log(frame["close"]).diff()
    halflife = config.vol.ewma_halflife_bars
    ewma = np.sqrt((log_return**2).ewm(halflife=halflife, min_periods=halflife).mean())
    vol = ewma
    if config.vol.use_iv and "iv_index" in frame.columns:
        iv = frame["iv_index"].astype(float) / np.sqrt(bars_per_year(frame.index))
        vol = iv.where(iv.notna() & (iv > 0), ewma)
    return vol.clip(lower=config.vol.floor_per_bar).rename(VOL_COLUMN)


def forward_log_returns(close: pd.Series, horizons) -> np.ndarray:
    """(n, H) log(close[t + h] / close[t]); NaN where t + h is past the end."""
    log_close = np.log(close.to_numpy(float))
    out = np.full((len(close), len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        out[:-h, j] = log_close[h:] - log_close[:-h]
    return out


def model_inputs(
    frame: pd.DataFrame, config: ForecastConfig, features: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The numeric feature matrix the models see: features plus the return and vol columns."""
    _check_frame(frame)
    if features is None:
        features = build_features(frame)
    if not features.index.equals(frame.index):
        raise ValueError("features must be indexed exactly like the market frame")
    numeric = features.select_dtypes(include=[np.number, "bool"]).astype(float)
    numeric = numeric.drop(columns=[c for c in (RETURN_COLUMN, VOL_COLUMN) if c in numeric.columns])
    numeric = numeric.replace([np.inf, -np.inf], np.nan)
    numeric[RETURN_COLUMN] = np.log(frame["close"].astype(float)).diff()
    numeric[VOL_COLUMN] = vol_per_bar(frame, config)
    return numeric


def _check_frame(frame: pd.DataFrame) -> None:
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise TypeError(f"market frame must have a DatetimeIndex, got {type(frame.index).__name__}")
    if not (frame.index.is_monotonic_increasing and frame.index.is_unique):
        raise ValueError("market frame index must be sorted and unique")
    if "close" not in frame.columns:
        raise ValueError(f"market frame has no 'close' column; columns: {list(frame.columns)}")
    close = frame["close"].to_numpy(float)
    bad = ~(np.isfinite(close) & (close > 0))
    if bad.any():
        raise ValueError(
            f"column 'close' has {int(bad.sum())} non-positive or missing values, first at "
            f"{frame.index[np.argmax(bad)]}"
        )


def for_frame(config: ForecastConfig, index: pd.DatetimeIndex) -> ForecastConfig:
    """``config`` with ``horizons`` in bars of this frame when ``horizons_hours`` is set.

    Hours map to bars through the frame's bar interval and the regular session
    (``data.calendar.horizon_bars``: 24h is one session ahead); distinct hours that land on the
    same bar count are an error.
    """
    if config.horizons_hours is None:
        return config
    bars = [horizon_bars(hours, index) for hours in config.horizons_hours]
    if len(set(bars)) != len(bars):
        raise ValueError(
            f"forecast.horizons_hours {config.horizons_hours} map to bars {bars} on this frame; "
            "each horizon must be a distinct number of bars"
        )
    return config.model_copy(update={"horizons": bars})


def refit_positions(index: pd.DatetimeIndex, config: ForecastConfig) -> list[int]:
    """Bar positions where the members are refitted; the first is the first forecast."""
    first = config.min_train_bars
    if config.first_forecast_date is not None:
        first = max(first, int(index.searchsorted(pd.Timestamp(config.first_forecast_date))))
    return list(range(first, len(index), config.refit_every_bars))


def _seed(config: ForecastConfig, refit: int, name: str) -> int:
    return (config.seed * 1_000_003 + refit * 7_919 + zlib.crc32(name.encode())) % (2**31 - 1)


def fit_member(
    name: str, config: ForecastConfig, seed: int, x_fit: pd.DataFrame, y_fit: np.ndarray
):
    """Member ``name`` fitted on one training window, single-threaded (as in the walk-forward)."""
    with threadpool_limits(limits=1):
        return make_forecaster(name, config, seed).fit(x_fit, y_fit)


def predict_block(model, x_pred: pd.DataFrame, n_block: int) -> np.ndarray:
    """The last ``n_block`` rows of ``model.predict(x_pred)`` (the rows before are context)."""
    with threadpool_limits(limits=1):
        return model.predict(x_pred)[-n_block:]


def _fit_predict(name, config, seed, x_fit, y_fit, x_pred, n_block):
    return predict_block(fit_member(name, config, seed, x_fit, y_fit), x_pred, n_block)


def training_window(
    inputs: pd.DataFrame, targets: np.ndarray, config: ForecastConfig, refit: int
) -> tuple[int, pd.DataFrame, np.ndarray]:
    """(first row, X, y) the members are fitted on at ``refit``: labels unresolved by
    ``refit - embargo_bars`` are NaN (purged)."""
    horizons = np.asarray(config.horizons)
    window_start = 0 if config.window == "expanding" else max(0, refit - config.window_bars + 1)
    rows = np.arange(window_start, refit + 1)
    y_fit = targets[window_start : refit + 1].copy()
    unresolved = rows[:, None] + horizons[None, :] > refit - config.embargo_bars
    y_fit[unresolved] = np.nan
    return window_start, inputs.iloc[window_start : refit + 1], y_fit


def prediction_start(name: str, config: ForecastConfig, window_start: int, refit: int) -> int:
    """First row passed to ``predict`` for the block of ``refit``: the member's context rows."""
    context = make_forecaster(name, config, 0).context_bars
    return window_start if context is None else max(window_start, refit - context)


def _tasks(inputs: pd.DataFrame, targets: np.ndarray, config: ForecastConfig, names: list[str]):
    refits = refit_positions(inputs.index, config)
    for i, refit in enumerate(refits):
        block_end = refits[i + 1] if i + 1 < len(refits) else len(inputs)
        window_start, x_fit, y_fit = training_window(inputs, targets, config, refit)
        for name in names:
            pred_start = prediction_start(name, config, window_start, refit)
            x_pred = inputs.iloc[pred_start:block_end]
            yield name, refit, block_end, _seed(config, refit, name), x_fit, y_fit, x_pred


def walk_forward(
    frame: pd.DataFrame,
    config: ForecastConfig,
    progress: bool = True,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Out-of-sample forecast panel (long format) of every member, reference and the ensemble.

    Columns: ``date``, ``model``, ``horizon`` and one column per level named
    ``quantile_column(level)``. A forecast dated t was made after the close of t by a model fitted
    on rows whose h-bar labels resolved at or before t (minus ``embargo_bars``); ensemble weights
    and conformal adjustments use only forecasts resolved by t. ``features`` defaults to
    ``data.build_features(frame)``.
    """
    config = for_frame(config.resolved(), frame.index)
    inputs = model_inputs(frame, config, features)
    targets = forward_log_returns(frame["close"], config.horizons)
    refits = refit_positions(frame.index, config)
    if not refits:
        raise ValueError(
            f"no forecast dates: frame has {len(frame)} bars, min_train_bars={config.min_train_bars}, "
            f"first_forecast_date={config.first_forecast_date}"
        )
    raw = member_forecasts(inputs, targets, config, progress)
    scale = horizon_scale(inputs[VOL_COLUMN].to_numpy(float), config.horizons)
    steps: dict[str, list[StepChoice]] = {}
    forecasts = combine_forecasts(raw, targets, scale, refits, config, frame.index, steps)
    panel = _long_panel(frame.index, forecasts, refits[0], config)
    panel.attrs[STEPS_ATTR] = [
        {"model": name, **vars(choice)} for name, chosen in steps.items() for choice in chosen
    ]
    return panel


def member_forecasts(
    inputs: pd.DataFrame, targets: np.ndarray, config: ForecastConfig, progress: bool = True
) -> dict[str, np.ndarray]:
    """Raw out-of-sample forecasts (n, H, Q) of every member and reference, NaN before the first refit."""
    names = list(config.members) + list(config.references)
    shape = (len(inputs), len(config.horizons), len(config.quantile_levels))
    raw = {name: np.full(shape, np.nan) for name in names}
    tasks = list(_tasks(inputs, targets, config, names))
    jobs = (
        delayed(_fit_predict)(name, config, seed, x_fit, y_fit, x_pred, block_end - refit)
        for name, refit, block_end, seed, x_fit, y_fit, x_pred in tasks
    )
    bar = tqdm(total=len(tasks), desc="walk-forward fits", disable=not progress)
    if config.n_jobs == 1:
        results = (job[0](*job[1], **job[2]) for job in jobs)
    else:
        results = Parallel(n_jobs=config.n_jobs, return_as="generator")(jobs)
    for (name, refit, block_end, *_), pred in zip(tasks, results, strict=True):
        raw[name][refit:block_end] = pred
        bar.update()
    bar.close()
    return raw


def combine_forecasts(
    raw: dict[str, np.ndarray],
    targets: np.ndarray,
    scale: np.ndarray,
    refits: list[int],
    config: ForecastConfig,
    index: pd.DatetimeIndex | None = None,
    steps: dict[str, list[StepChoice]] | None = None,
    ensembles: dict[int, StackedEnsemble] | None = None,
) -> dict[str, np.ndarray]:
    """Repair crossing, add the stacked ensemble, then calibrate the intervals (all causal).

    ``index`` (the frame's) places the step-selection window; without it, or without
    ``config.conformal.select_end``, the default step is used. The chosen steps are recorded
    into ``steps`` by model when it is given. ``ensembles`` (refit row -> fitted ensemble) is a
    cache: an ensemble found there is reused, one fitted is added (its weights use only forecasts
    resolved by its refit, so it is the same whatever rows follow).
    """
    forecasts = {name: repair_crossing(pred) for name, pred in raw.items()}
    stack_names = list(config.members) + (
        list(config.references) if config.ensemble.include_references else []
    )
    if config.ensemble.enabled and len(stack_names) >= 2:
        forecasts[ENSEMBLE] = _stack(
            forecasts, stack_names, targets, scale, refits, config, ensembles
        )
    if config.conformal.enabled:
        calibrate = [
            m
            for m in forecasts
            if m not in config.references or config.conformal.calibrate_references
        ]
        span = _selection_span(index, config)
        for name in calibrate:
            forecasts[name], chosen = calibrate_intervals(
                forecasts[name],
                targets,
                scale,
                config.horizons,
                config.quantile_levels,
                config.conformal.window_forecasts,
                config.conformal.min_forecasts,
                config.conformal.step_grid,
                config.conformal.default_step,
                span,
                config.conformal.coverage_tolerance,
                config.conformal.coverage_block_forecasts,
            )
            if steps is not None:
                steps[name] = chosen
    return forecasts


def _selection_span(index: pd.DatetimeIndex | None, config: ForecastConfig):
    """(first, last) rows of the step-selection window in ``index``; None when not set or empty.

    Without ``select_start`` the window starts at row 0: every forecast up to ``select_end``
    (rows before the first forecast have no thresholds and are skipped by the selection).
    """
    conformal = config.conformal
    if index is None or conformal.select_end is None:
        return None
    first = 0
    if conformal.select_start is not None:
        first = int(index.searchsorted(pd.Timestamp(conformal.select_start)))
    after_end = pd.Timestamp(conformal.select_end) + pd.Timedelta(days=1)
    last = int(index.searchsorted(after_end)) - 1
    return (first, last) if last >= first else None


def _stack(forecasts, stack_names, targets, scale, refits, config, ensembles=None) -> np.ndarray:
    """Ensemble forecasts; weights at each refit come from forecasts resolved by then."""
    ensembles = {} if ensembles is None else ensembles
    members = np.stack([forecasts[name] for name in stack_names], axis=1)  # (n, M, H, Q)
    horizons = np.asarray(config.horizons)
    out = np.full(members.shape[:1] + members.shape[2:], np.nan)
    for i, refit in enumerate(refits):
        block_end = refits[i + 1] if i + 1 < len(refits) else len(members)
        if refit not in ensembles:
            start = max(refits[0], refit - config.ensemble.lookback_forecasts - int(horizons.max()))
            rows = np.arange(start, refit)
            y = targets[start:refit].copy()
            y[rows[:, None] + horizons[None, :] > refit] = np.nan
            ensembles[refit] = StackedEnsemble(
                config.horizons, config.quantile_levels, config.ensemble.min_forecasts
            ).fit(members[start:refit], y, scale[start:refit])
        out[refit:block_end] = ensembles[refit].predict(members[refit:block_end])
    return out


def _long_panel(index, forecasts, first, config) -> pd.DataFrame:
    dates = index[first:]
    parts = []
    for name, values in forecasts.items():
        for j, h in enumerate(config.horizons):
            block = pd.DataFrame(
                values[first:, j, :], columns=[quantile_column(q) for q in config.quantile_levels]
            )
            block.insert(0, "horizon", int(h))
            block.insert(0, "model", name)
            block.insert(0, "date", dates)
            parts.append(block)
    panel = pd.concat(parts, ignore_index=True)
    panel = panel.dropna(subset=[quantile_column(q) for q in config.quantile_levels])
    panel = panel.sort_values(["date", "model", "horizon"], kind="stable").reset_index(drop=True)
    panel["horizon"] = panel["horizon"].astype("int64")
    return panel


def wide_panel(panel: pd.DataFrame, model: str = ENSEMBLE) -> pd.DataFrame:
    """One model's forecasts indexed by date with columns ``wide_column(h, level)`` (env input)."""
    rows = panel[panel["model"] == model]
    if rows.empty:
        raise KeyError(f"model {model!r} not in panel; models: {sorted(panel['model'].unique())}")
    levels = [c for c in panel.columns if parse_quantile_column(c) is not None]
    wide = rows.pivot(index="date", columns="horizon", values=levels)
    wide.columns = [wide_column(h, parse_quantile_column(col)) for col, h in wide.columns]
    ordered = [wide_column(h, parse_quantile_column(col))
               for h in sorted(rows["horizon"].unique()) for col in levels]
    wide = wide[ordered]
    wide.index.name = "date"
    return wide


def panel_key(
    frame: pd.DataFrame, config: ForecastConfig, features: pd.DataFrame | None = None
) -> str:
    """Hash of the panel version, the config (less settings that do not change results) and data."""
    digest = _config_digest(config)
    for part in (frame, features):
        if part is not None:
            digest.update(frame_hash(part).encode())
    return digest.hexdigest()[:20]


def _config_digest(config: ForecastConfig):
    """SHA-256 of the panel version and the config less settings that do not change results.

    The parameters of an optional member that is not selected are left out too, so that adding
    one leaves the keys of the configs that do not use it as they were.
    """
    unused = {name for name in OPTIONAL_MEMBERS if name not in config.members}
    settings = config.model_dump(
        mode="json", exclude={"cache_dir", "n_jobs", "tune", "gate", *unused}
    )
    digest = hashlib.sha256()
    digest.update(PANEL_VERSION.encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest


def config_key(config: ForecastConfig) -> str:
    """Hash of the panel version and the config alone (``panel_key`` without the data)."""
    return _config_digest(config).hexdigest()[:20]


def load_or_make_panel(
    frame: pd.DataFrame,
    config: ForecastConfig,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    features: pd.DataFrame | None = None,
    make: Callable[..., pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The cached panel for this config and data, computed (and written atomically) if missing."""
    config = for_frame(config.resolved(), frame.index)
    if features is None:  # hashed too, so that a change to the feature code is a new key

        features = build_features(frame)
    directory = Path(cache_dir if cache_dir is not None else config.cache_dir)
    path = directory / f"panel_{panel_key(frame, config, features)}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    panel = (make or walk_forward)(frame, config, progress=progress, features=features)

    write_parquet_atomic(panel, path)
    return panel


__all__ = [
    "ENSEMBLE",
    "for_frame",
    "forward_log_returns",
    "load_or_make_panel",
    "model_inputs",
    "panel_key",
    "refit_positions",
    "vol_per_bar",
    "walk_forward",
    "wide_column",
    "wide_panel",
]
