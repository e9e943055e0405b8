"""The forecaster contract, shared column names and the small maths every model uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

# The panel's column names: one codec writes and reads them (re-exported here).
from common.codecs import quantile_column as quantile_column
from common.codecs import wide_column as wide_column

RETURN_COLUMN = "fc_log_return_1"
"""Feature column added by the walk-forward: log(close[t] / close[t-1]), known at the close of t."""
VOL_COLUMN = "fc_vol_per_bar"
"""Feature column added by the walk-forward: causal volatility of one bar's log return at t."""




MIN_OBSERVED_ROWS = 20
"""A feature needs this many finite values in a training window to be used by that fit."""


@runtime_checkable
class Forecaster(Protocol):
    """Predicts quantiles of forward log returns for several horizons.

    ``fit(X, y)``: ``X`` holds every row known at the refit time (features, plus
    ``RETURN_COLUMN`` and ``VOL_COLUMN``); ``y`` has shape (len(X), n_horizons) with
    y[i, j] = log(close[i + h_j] / close[i]) and NaN where that label was not resolved at the
    refit time. A model trains only on the non-NaN labels.

    ``predict(X)`` returns an array (len(X), n_horizons, n_levels) of quantiles of the log return,
    one forecast per row made with that row's information. Sequence models use the rows before a
    row within ``X`` as context; ``context_bars`` says how many they need (None: all rows since
    the training window started), and the walk-forward passes them.
    """

    horizons: tuple[int, ...]
    levels: tuple[float, ...]
    context_bars: int | None

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self: ...

    def predict(self, X: pd.DataFrame) -> np.ndarray: ...


class QuantileForecaster:
    """Base class: horizons, levels, seed and the vol scaling of targets shared by the members."""

    context_bars: int | None = 0

    def __init__(
        self,
        horizons: Sequence[int],
        levels: Sequence[float],
        params=None,
        seed: int = 0,
        scale_target: bool = True,
    ) -> None:
        self.horizons = tuple(int(h) for h in horizons)
        self.levels = tuple(float(q) for q in levels)
        self.params = params
        self.seed = int(seed)
        self.scale_target = bool(scale_target)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Self:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def _features(self, X: pd.DataFrame, fit_rows: np.ndarray | None = None) -> np.ndarray:
        """Feature matrix; at fit time (``fit_rows`` given) keep columns observed in those rows.

        A column with fewer than ``MIN_OBSERVED_ROWS`` finite values in the training rows (the
        implied-vol index before it existed, say) is dropped for this fit: feature selection
        happens inside the training window only.
        """
        if fit_rows is not None:
            observed = np.isfinite(feature_matrix(X)[fit_rows]).sum(axis=0)
            self._columns = [
                c for c, k in zip(X.columns, observed, strict=True) if k >= MIN_OBSERVED_ROWS
            ]
        return feature_matrix(X[self._columns])

    def _horizon_scale(self, X: pd.DataFrame) -> np.ndarray:
        """(len(X), n_horizons) divisor of the target: vol_per_bar * sqrt(h), or ones."""
        if not self.scale_target:
            return np.ones((len(X), len(self.horizons)))
        return horizon_scale(X[VOL_COLUMN].to_numpy(float), self.horizons)


def horizon_scale(vol_per_bar: np.ndarray, horizons: Sequence[int]) -> np.ndarray:
    """(n, n_horizons) standard deviation of an h-bar return under i.i.d. bars: vol * sqrt(h)."""
    return np.asarray(vol_per_bar, float)[:, None] * np.sqrt(np.asarray(horizons, float))[None, :]


def pinball_loss(y: np.ndarray, q_pred: np.ndarray, level: float) -> np.ndarray:
    """Elementwise pinball (quantile) loss of prediction ``q_pred`` of level ``level`` for ``y``."""
    diff = np.asarray(y) - np.asarray(q_pred)
    return np.maximum(level * diff, (level - 1.0) * diff)


def repair_crossing(quantiles: np.ndarray) -> np.ndarray:
    """Sort along the last axis so that quantiles never cross (NaN rows stay NaN)."""
    return np.sort(quantiles, axis=-1)


def feature_matrix(X: pd.DataFrame) -> np.ndarray:
    """Float matrix of all columns (NaN kept: the tree members handle missing values)."""
    return X.to_numpy(dtype=np.float64, na_value=np.nan)


def interval_pairs(levels: Sequence[float]) -> list[tuple[int, int, float]]:
    """Symmetric (lower index, upper index, nominal coverage) pairs among the levels."""
    pairs = []
    for i, lo in enumerate(levels):
        for j in range(len(levels) - 1, i, -1):
            if abs(lo + levels[j] - 1.0) < 1e-9 and lo < 0.5:
                pairs.append((i, j, round(levels[j] - lo, 10)))
    return pairs
