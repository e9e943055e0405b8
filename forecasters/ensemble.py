"""Stacked ensemble: a forecaster over member forecasts, fitted on out-of-sample forecasts only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np

from common.lazy import lazy_module
from forecasters.base import repair_crossing

# scipy.optimize adds about 0.3 s to a process's start: loaded at its first use
optimize = lazy_module("scipy.optimize")


def pinball_weights(member_quantiles: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Non-negative weights summing to one that minimise the pinball loss of the combination.

    ``member_quantiles`` (n, M) are the members' level-``level`` quantiles, ``y`` (n,) the
    outcomes. Solved exactly as a linear programme (HiGHS).
    """
    n, m = member_quantiles.shape
    cost = np.concatenate([np.zeros(m), np.full(n, level), np.full(n, 1.0 - level)])
    a_eq = np.zeros((n + 1, m + 2 * n))
    a_eq[:n, :m] = member_quantiles
    a_eq[:n, m : m + n] = np.eye(n)
    a_eq[:n, m + n :] = -np.eye(n)
    a_eq[n, :m] = 1.0
    b_eq = np.concatenate([y, [1.0]])
    result = optimize.linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if not result.success:
        return np.full(m, 1.0 / m)
    weights = np.clip(result.x[:m], 0.0, None)
    return weights / weights.sum()


class StackedEnsemble:
    """Weights per horizon and level over member forecasts (the ensemble is itself a forecaster).

    ``fit(X, y)``: ``X`` (n, M, H, Q) member quantiles made out of sample, ``y`` (n, H) outcomes,
    ``scale`` optional (n, H) divisor so that calm and turbulent periods weigh alike. Rows with
    any missing value for a horizon are dropped for that horizon; with fewer than
    ``min_rows`` rows left the weights are equal. ``predict(X)`` -> (n, H, Q).
    """

    def __init__(self, horizons: Sequence[int], levels: Sequence[float], min_rows: int = 1) -> None:
        self.horizons = tuple(horizons)
        self.levels = tuple(levels)
        self.min_rows = int(min_rows)
        self.context_bars = 0
        self.weights_: np.ndarray | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, scale: np.ndarray | None = None) -> Self:
        n, m, n_h, n_q = X.shape
        weights = np.full((n_h, n_q, m), 1.0 / m)
        for j in range(n_h):
            divisor = np.ones(n) if scale is None else scale[:, j]
            rows = (
                np.isfinite(y[:, j]) & np.isfinite(X[:, :, j, :]).all(axis=(1, 2)) & (divisor > 0)
            )
            if rows.sum() < self.min_rows:
                continue
            for k, level in enumerate(self.levels):
                weights[j, k] = pinball_weights(
                    X[rows, :, j, k] / divisor[rows, None], y[rows, j] / divisor[rows], level
                )
        self.weights_ = weights
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.weights_ is None:
            raise RuntimeError("StackedEnsemble.predict called before fit")
        return repair_crossing(np.einsum("nmhq,hqm->nhq", X, self.weights_))
