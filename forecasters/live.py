"""The walk-forward one new bar at a time, for live trading (``LiveForecaster``).

``walk_forward`` recomputes every refit on every call; at each new bar's close a live run needs
only the forecasts of that bar, made exactly as the walk-forward would make them on the data up
to that bar. ``LiveForecaster`` keeps the members' raw out-of-sample forecasts (and the stacked
ensemble's weights) in a state folder, refits the members when a new bar is a refit position,
predicts the new bar's block as the walk-forward does (same context rows, same batch) and then
runs ``combine_forecasts`` over the history up to that bar.

State files in ``state_dir`` (each written atomically; ``live_state.json`` last, so that a run cut
off between two files leaves a consistent state):

* ``live_state.json``: version, ``config_key`` (hash of the resolved config), horizons in bars,
  model names, number of bars seen, first forecast row, date of the last forecast;
* ``raw_forecasts.parquet``: raw member and reference forecasts (what ``member_forecasts``
  produces) in the long panel format (date, model, horizon, quantile columns);
* ``frame_rows.parquet``: date and a 64-bit hash of each bar seen (the next frame must extend it);
* ``ensemble_weights.json``: the stacked ensemble's weights at each refit, keyed by the refit's
  row counted from the first forecast row.

Fitted members are kept in memory only: after a restart the members of the current refit are
fitted again (fits are deterministic given ``_seed(config, refit, name)``).
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import UserInputError
from common.io import write_json_atomic, write_parquet_atomic
from forecasters.base import VOL_COLUMN, QuantileForecaster, horizon_scale, quantile_column
from forecasters.config import ForecastConfig
from forecasters.ensemble import StackedEnsemble
from forecasters.walkforward import (
    STEPS_ATTR,
    _long_panel,
    _seed,
    combine_forecasts,
    config_key,
    fit_member,
    for_frame,
    forward_log_returns,
    member_forecasts,
    model_inputs,
    predict_block,
    prediction_start,
    refit_positions,
    training_window,
)

STATE_VERSION = 1
"""Bump when the state files change meaning so that an old state is refused."""
STATE_FILE = "live_state.json"
RAW_FILE = "raw_forecasts.parquet"
ROWS_FILE = "frame_rows.parquet"
ENSEMBLE_FILE = "ensemble_weights.json"


class LiveStateError(UserInputError):
    """A frame that cannot be forecast live, or a state folder that does not fit the config."""


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """(n,) uint64 hash of each bar (its date and values), to check that a frame extends another."""
    return pd.util.hash_pandas_object(frame, index=True).to_numpy(np.uint64)


class LiveForecaster:
    """Forecasts of ``walk_forward``, one new bar at a time, for live trading.

    Contract: every row that ``update`` returns for a date t equals the rows of date t of
    ``walk_forward(frame.loc[:t], config)`` (same columns, dtypes and model names).

    The first call (no state in ``state_dir``) runs the members' walk-forward over the whole frame
    once (the slow part) and returns the rows of the frame's last date only, the bar being
    traded. Each later call returns the rows of every date after the last one already forecast,
    oldest first; with no new date it returns an empty panel. ``features`` defaults to
    ``data.build_features(frame)`` and must be causal (a row depends only on bars up to it).
    """

    def __init__(
        self, config: ForecastConfig, state_dir: str | Path, progress: bool = True
    ) -> None:
        self._config = config.resolved()
        self._key = config_key(self._config)
        self._dir = Path(state_dir)
        self._progress = progress
        self._names = list(self._config.members) + list(self._config.references)
        self._raw: dict[str, np.ndarray] = {}
        self._hashes: np.ndarray | None = None
        self._dates: pd.DatetimeIndex | None = None
        self._horizons: list[int] | None = None
        self._ensembles: dict[int, StackedEnsemble] = {}
        self._models: dict[str, QuantileForecaster] = {}
        self._models_refit: int | None = None
        self._window_start = 0
        self._load()

    @property
    def last_date(self) -> pd.Timestamp | None:
        """Date of the last bar forecast (None before the first call)."""
        return None if self._dates is None else self._dates[-1]

    def update(self, frame: pd.DataFrame, features: pd.DataFrame | None = None) -> pd.DataFrame:
        """Long-format panel rows of the dates of ``frame`` not forecast yet (see the class doc).

        ``frame`` must extend the frame of the previous call: same dates and values on the bars
        seen before, else ``LiveStateError`` (a ValueError) naming the first differing date.
        ``features``, when given, must be those of this ``frame`` (they are not checked against
        the previous call's).
        """
        config = for_frame(self._config, frame.index)
        inputs = model_inputs(frame, config, features)  # checks the frame
        hashes = row_hashes(frame)
        refits = refit_positions(frame.index, config)
        targets = forward_log_returns(frame["close"], config.horizons)
        if self._hashes is None:
            if not refits:
                raise LiveStateError(
                    f"no forecast dates: frame has {len(frame)} bars, "
                    f"min_train_bars={config.min_train_bars}, "
                    f"first_forecast_date={config.first_forecast_date}"
                )
            raw = member_forecasts(inputs, targets, config, self._progress)
            self._fit_models(refits[-1], inputs, targets, config)
            new_rows = [len(frame) - 1]
        else:
            self._check_extends(frame, hashes, config)
            n_seen = len(self._hashes)
            shape = (len(frame) - n_seen, len(config.horizons), len(config.quantile_levels))
            raw = {
                name: np.concatenate([values, np.full(shape, np.nan)])
                for name, values in self._raw.items()
            }
            new_rows = list(range(n_seen, len(frame)))
            for t in new_rows:
                self._predict_block(raw, t, refits, inputs, targets, config)
        if not new_rows:
            return _long_panel(frame.index, raw, len(frame), config)
        scale = horizon_scale(inputs[VOL_COLUMN].to_numpy(float), config.horizons)
        parts = [self._panel_at(raw, t, frame, scale, refits, config) for t in new_rows]
        self._raw, self._hashes, self._dates = raw, hashes, frame.index
        self._horizons = list(config.horizons)
        self._save(refits[0], config)
        panel = pd.concat(parts, ignore_index=True)
        panel.attrs.update(parts[-1].attrs)
        return panel

    def recompute(self, frame: pd.DataFrame, dates) -> pd.DataFrame:
        """Rows of ``dates`` (already forecast) from the stored raw forecasts, for a caller that
        lost what ``update`` returned (a crash between the two writes). Exact for tree and
        volatility members; a sequence member's raw rows are re-predicted in the batch of the
        latest bar, which can move their last bits."""
        if self._hashes is None:
            raise LiveStateError(f"{self._dir}: nothing forecast yet")
        config = for_frame(self._config, frame.index)
        self._check_extends(frame, row_hashes(frame), config)
        inputs = model_inputs(frame, config)
        scale = horizon_scale(inputs[VOL_COLUMN].to_numpy(float), config.horizons)
        refits = refit_positions(frame.index, config)
        rows = [int(frame.index.get_loc(pd.Timestamp(d))) for d in dates]
        if any(t >= len(self._hashes) for t in rows):
            raise LiveStateError(f"{self._dir}: a date of {list(dates)} is not forecast yet")
        return pd.concat(
            [self._panel_at(self._raw, t, frame, scale, refits, config) for t in rows],
            ignore_index=True,
        )

    # -- one bar ---------------------------------------------------------------------------

    def _fit_models(self, refit: int, inputs, targets, config: ForecastConfig) -> None:
        window_start, x_fit, y_fit = training_window(inputs, targets, config, refit)
        self._models = {
            name: fit_member(name, config, _seed(config, refit, name), x_fit, y_fit)
            for name in self._names
        }
        self._models_refit, self._window_start = refit, window_start

    def _predict_block(self, raw, t: int, refits, inputs, targets, config) -> None:
        """Raw forecasts of rows refit..t into ``raw``, predicted in one batch as ``walk_forward``
        on bars 0..t does (a sequence model's output can depend on the batch in the last bits)."""
        refit = refits[bisect.bisect_right(refits, t) - 1]
        if self._models_refit != refit:
            self._fit_models(refit, inputs, targets, config)
        for name, model in self._models.items():
            start = prediction_start(name, config, self._window_start, refit)
            raw[name][refit : t + 1] = predict_block(
                model, inputs.iloc[start : t + 1], t + 1 - refit
            )

    def _panel_at(self, raw, t: int, frame, scale, refits, config) -> pd.DataFrame:
        """Rows of date t of the walk-forward on bars 0..t.

        ``combine_forecasts`` runs on the rows from the first forecast on: the raw forecasts
        are NaN before it, and leaving those rows out changes no result (every step of the
        ensemble and the calibration skips rows without forecasts) while the calibration's
        loop over rows is the cost of an update. Row positions (the ensemble cache's keys too)
        are counted from the first forecast.
        """
        first = refits[0]
        index = frame.index[first : t + 1]
        targets = forward_log_returns(frame["close"].iloc[: t + 1], config.horizons)
        steps: dict = {}
        forecasts = combine_forecasts(
            {name: values[first : t + 1] for name, values in raw.items()},
            targets[first:],
            scale[first : t + 1],
            [r - first for r in refits if r <= t],
            config,
            index,
            steps,
            self._ensembles,
        )
        panel = _long_panel(index, forecasts, t - first, config)
        panel.attrs[STEPS_ATTR] = [
            {"model": name, **vars(choice)} for name, chosen in steps.items() for choice in chosen
        ]
        return panel

    def _check_extends(self, frame: pd.DataFrame, hashes: np.ndarray, config) -> None:
        if list(config.horizons) != self._horizons:
            raise LiveStateError(
                f"{self._dir}: horizons {list(config.horizons)} on this frame differ from the "
                f"state's {self._horizons}"
            )
        n_seen = len(self._hashes)
        if len(frame) < n_seen:
            raise LiveStateError(
                f"frame has {len(frame)} bars, fewer than the {n_seen} already forecast "
                f"(last {self._dates[-1]}); pass the whole history"
            )
        same = (frame.index[:n_seen] == self._dates) & (hashes[:n_seen] == self._hashes)
        if not same.all():
            first = int(np.argmin(same))
            raise LiveStateError(
                f"frame does not extend the one already forecast: bar {first} differs "
                f"(date {frame.index[first]}, was {self._dates[first]})"
            )

    # -- state -----------------------------------------------------------------------------

    def _save(self, first_row: int, config: ForecastConfig) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(
            _long_panel(self._dates, self._raw, first_row, config), self._dir / RAW_FILE
        )
        rows = pd.DataFrame({"date": self._dates, "row_hash": self._hashes})
        write_parquet_atomic(rows, self._dir / ROWS_FILE)
        weights = {
            str(refit): ensemble.weights_.tolist() for refit, ensemble in self._ensembles.items()
        }
        write_json_atomic(weights, self._dir / ENSEMBLE_FILE)
        state = {
            "version": STATE_VERSION,
            "config_key": self._key,
            "horizons": self._horizons,
            "quantile_levels": list(config.quantile_levels),
            "models": self._names,
            "n_bars": len(self._dates),
            "first_forecast_row": first_row,
            "last_forecast_date": self._dates[-1].isoformat(),
        }
        write_json_atomic(state, self._dir / STATE_FILE)

    def _load(self) -> None:
        path = self._dir / STATE_FILE
        if not path.exists():
            return
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("version") != STATE_VERSION or state.get("config_key") != self._key:
            raise LiveStateError(
                f"{self._dir}: live state was written under another forecast config or state "
                f"version (key {state.get('config_key')}, version {state.get('version')}; this "
                f"config is {self._key}, version {STATE_VERSION}); use a new state_dir"
            )
        n_bars = int(state["n_bars"])
        rows = pd.read_parquet(self._dir / ROWS_FILE).iloc[:n_bars]
        self._dates = pd.DatetimeIndex(rows["date"])
        self._hashes = rows["row_hash"].to_numpy(np.uint64)
        self._horizons = [int(h) for h in state["horizons"]]
        levels = state["quantile_levels"]
        self._raw = {
            name: np.full((n_bars, len(self._horizons), len(levels)), np.nan)
            for name in self._names
        }
        raw = pd.read_parquet(self._dir / RAW_FILE)
        raw = raw[raw["date"] <= self._dates[-1]]
        positions = self._dates.get_indexer(raw["date"])
        horizon_index = {h: j for j, h in enumerate(self._horizons)}
        values = raw[[quantile_column(q) for q in levels]].to_numpy(float)
        for name in self._names:
            mine = (raw["model"] == name).to_numpy()
            columns = raw.loc[mine, "horizon"].map(horizon_index).to_numpy(int)
            self._raw[name][positions[mine], columns] = values[mine]
        weights = json.loads((self._dir / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        config = self._config
        first = int(state["first_forecast_row"])
        for refit, matrix in weights.items():  # rows counted from the first forecast
            if first + int(refit) >= n_bars:
                continue
            ensemble = StackedEnsemble(
                self._horizons, config.quantile_levels, config.ensemble.min_forecasts
            )
            ensemble.weights_ = np.asarray(matrix, float)
            self._ensembles[int(refit)] = ensemble


__all__ = [
    "ENSEMBLE_FILE",
    "RAW_FILE",
    "ROWS_FILE",
    "STATE_FILE",
    "LiveForecaster",
    "LiveStateError",
    "row_hashes",
]
