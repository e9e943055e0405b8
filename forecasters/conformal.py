"""Rolling conformalised quantile regression (CQR) on past out-of-sample forecasts.

For each symmetric pair of levels (lower, upper) with nominal coverage c, the conformity score of
the forecast made at s for horizon h is E_s = max(lower_s - y_s, y_s - upper_s) / scale_s. At date t
the scores of the latest ``window`` forecasts resolved by t (s + h <= t) give the adjustment
Q_t = the ceil((n + 1) c)-th smallest score, and the interval becomes
[lower_t - Q_t scale_t, upper_t + Q_t scale_t] (Romano, Patterson and Candes 2019, applied on a
rolling window). The median is not changed; crossing is repaired afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecasters.base import interval_pairs, repair_crossing


def rolling_cqr(
    quantiles: np.ndarray,
    y: np.ndarray,
    scale: np.ndarray,
    horizons: Sequence[int],
    levels: Sequence[float],
    window: int,
    min_scores: int,
) -> np.ndarray:
    """Calibrated copy of ``quantiles`` (n, H, Q) on consecutive bars.

    ``y`` (n, H) is the realised h-bar log return of the forecast made at each row (NaN when not
    resolved within the data), ``scale`` (n, H) a positive divisor known at each row. Row t uses
    only scores of rows s <= t - h, so the calibration never looks ahead.
    """
    out = quantiles.copy()
    n = len(quantiles)
    for lo, hi, coverage in interval_pairs(levels):
        for j, h in enumerate(horizons):
            scores = np.maximum(quantiles[:, j, lo] - y[:, j], y[:, j] - quantiles[:, j, hi])
            scores = scores / scale[:, j]
            padded = np.concatenate([np.full(window - 1, np.nan), scores])
            windows = np.sort(sliding_window_view(padded, window), axis=1)  # NaN sort last
            counts = np.isfinite(windows).sum(axis=1)
            rank = np.ceil((counts + 1) * coverage).astype(int) - 1
            rank = np.clip(rank, 0, np.maximum(counts - 1, 0))
            q_at = windows[np.arange(n), rank]  # adjustment from scores of rows <= index
            q_at = np.where(counts >= min_scores, q_at, 0.0)
            adjust = np.zeros(n)
            adjust[h:] = q_at[: n - h]  # at t use rows <= t - h
            out[:, j, lo] = quantiles[:, j, lo] - adjust * scale[:, j]
            out[:, j, hi] = quantiles[:, j, hi] + adjust * scale[:, j]
    return repair_crossing(out)
