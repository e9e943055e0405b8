"""Conformal calibration of forecast intervals on past out-of-sample forecasts.

Scores. For a symmetric pair of levels (lower, upper) with nominal coverage c, the conformity
score of the forecast made at s for horizon h is the CQR score (Romano, Patterson and Candes 2019)
E_s = max(lower_s - y_s, y_s - upper_s) / scale_s, normalised by the volatility known at s
(``scale`` = vol per bar * sqrt(h)). A threshold q_t widens the interval made at t to
[lower_t - q_t scale_t, upper_t + q_t scale_t]; the forecast misses exactly when E_t > q_t.

Delay. The score of the forecast made at s is known only at s + h: the threshold used at t is
built from scores of forecasts made at s <= t - h, never later ones.

Thresholds (``adaptive_thresholds``): conformal PID control (Angelopoulos, Candes and Tibshirani
2023) with a rolling empirical quantile as its scorecaster and the proportional (quantile
tracking) term, q_t = Qhat_t + eta * sum_{s + h <= t} (miss_s - (1 - c)):

* Qhat_t is the ceil((n + 1) c)-th smallest of the latest ``window`` resolved scores (the rolling
  CQR of earlier versions; eta = 0 gives it back exactly);
* the sum grows by c after every miss and shrinks by 1 - c after every hit, so a run of misses
  after a volatility shift widens the interval within a few bars, whatever the window says.
  The long-run miss rate is 1 - c whatever the scores do (the guarantee of quantile tracking).

The aggregated variant (in the spirit of AgACI, Zaffran et al. 2022) runs one tracker per step of
the grid and follows, at each t, the one with the lowest discounted pinball loss on the scores
resolved by t (``aggregated_thresholds``).

Per model, horizon and interval, one candidate (a fixed step of ``step_grid`` or the aggregated
tracker) is chosen on a selection window of past dates, coverage before width (``select_step``):
the coverage error is the mean distance of coverage from nominal over consecutive blocks of
forecasts (a quarter by default), so that a candidate that under-covers after volatility shifts
and over-covers in calm spells is not taken for a calibrated one; among candidates within
``coverage_tolerance`` of the best error, the lowest interval (Winkler) score wins. The window
should span calm and turbulent periods: by default all the walk-forward history up to the end
of the validation segment, never one calm year.

MAPIE (1.6, ``TimeSeriesRegressor`` with ``method="aci"``) was checked first: it wraps a point
regressor that it refits itself and calibrates absolute residuals, updates after every row as if
each label were known one row later, takes one step for all horizons and has no PID or
scorecaster. Our intervals come from a panel of quantile forecasts made elsewhere, with h-bar
label delays and a step per horizon, so it does not fit; its numpy/scikit-learn requirements
would have been compatible with our pins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from forecasters.base import interval_pairs, repair_crossing

FIXED = "fixed"
AGGREGATED = "aggregated"


def conformity_scores(
    lower: np.ndarray, upper: np.ndarray, y: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """CQR scores max(lower - y, y - upper) / scale (NaN where y is unknown)."""
    return np.maximum(lower - y, y - upper) / scale


def rolling_quantile_known_at(
    scores: np.ndarray, horizon: int, coverage: float, window: int, min_scores: int
) -> np.ndarray:
    """(n,) Qhat_t: conformal quantile of the latest ``window`` scores of rows s <= t - h.

    NaN until ``min_scores`` finite scores are known.
    """
    n = len(scores)
    padded = np.concatenate([np.full(window - 1, np.nan), scores])
    windows = np.sort(sliding_window_view(padded, window), axis=1)  # NaN sort last
    counts = np.isfinite(windows).sum(axis=1)
    rank = np.ceil((counts + 1) * coverage).astype(int) - 1
    rank = np.clip(rank, 0, np.maximum(counts - 1, 0))
    q_at = windows[np.arange(n), rank]
    q_at = np.where(counts >= min_scores, q_at, np.nan)
    out = np.full(n, np.nan)
    out[horizon:] = q_at[: n - horizon]
    return out


def adaptive_thresholds(
    scores: np.ndarray,
    horizon: int,
    coverage: float,
    steps: Sequence[float] | np.ndarray,
    window: int,
    min_scores: int,
) -> np.ndarray:
    """(n, G) thresholds q_t of the PID tracker for each step eta in ``steps`` (G,).

    ``scores`` (n,) are the scores of the forecasts made at each row (NaN when unresolved within
    the data). Row t uses the scores and misses of rows s <= t - h only. NaN where the
    scorecaster has fewer than ``min_scores`` scores.
    """
    steps = np.asarray(steps, float)
    base = rolling_quantile_known_at(scores, horizon, coverage, window, min_scores)
    n = len(scores)
    thresholds = np.full((n, len(steps)), np.nan)
    tracked = np.zeros(len(steps))
    alpha = 1.0 - coverage
    for t in range(n):
        s = t - horizon  # the forecast whose outcome becomes known at t
        if s >= 0 and np.isfinite(scores[s]) and np.isfinite(thresholds[s, 0]):
            miss = (scores[s] > thresholds[s]).astype(float)
            tracked += steps * (miss - alpha)
        if np.isfinite(base[t]):
            thresholds[t] = base[t] + tracked
    return thresholds


def aggregated_thresholds(
    scores: np.ndarray,
    thresholds: np.ndarray,
    horizon: int,
    coverage: float,
    halflife: float,
    default_expert: int,
) -> np.ndarray:
    """(n,) threshold of the expert (column of ``thresholds``) leading at each row.

    The aggregated variant: each expert (one tracking step) keeps its own threshold path; at t
    the expert with the lowest exponentially discounted pinball loss (at level ``coverage``) of
    its thresholds against the scores resolved by t (rows s <= t - h) is followed. Before any
    score is resolved, ``default_expert``.
    """
    n = len(scores)
    diff = scores[:, None] - thresholds
    loss = np.maximum(coverage * diff, (coverage - 1.0) * diff)  # NaN where unresolved
    discounted = pd.DataFrame(loss).ewm(halflife=halflife, ignore_na=True).mean().to_numpy()
    leader = np.full(n, default_expert)
    known = discounted[: n - horizon] if n > horizon else discounted[:0]
    resolved = np.isfinite(known).all(axis=1)
    leader[horizon:][resolved] = np.argmin(known[resolved], axis=1)
    return thresholds[np.arange(n), leader]


def interval_score(
    lower: np.ndarray, upper: np.ndarray, y: np.ndarray, coverage: float
) -> np.ndarray:
    """Winkler (interval) score of [lower, upper] at nominal ``coverage`` for outcomes y.

    width + (2 / alpha) * distance of y outside the interval, alpha = 1 - coverage
    (Gneiting and Raftery 2007); lower is better, in the units of y.
    """
    alpha = 1.0 - coverage
    below = np.clip(lower - y, 0.0, None)
    above = np.clip(y - upper, 0.0, None)
    return (upper - lower) + (2.0 / alpha) * (below + above)


@dataclass(frozen=True)
class StepChoice:
    """The step chosen for one horizon and interval, with its selection-window figures."""

    horizon: int
    coverage_nominal: float
    method: str
    step: float
    coverage_selection: float
    interval_score_selection: float
    n_selection: int


def block_coverage_error(covered: np.ndarray, coverage: float, block: int | None) -> np.ndarray:
    """(G,) mean |coverage - nominal| over consecutive blocks of ``block`` rows of ``covered``.

    ``covered`` (n, G) is 1 where candidate g's interval held the outcome. Blocks with fewer
    than half of ``block`` rows (the tail) are left out unless they are the only one. With
    ``block`` None the whole window is one block: |overall coverage - nominal|. Averaging over
    blocks charges a candidate for covering too little after a volatility shift and too much in
    calm spells, even when the two cancel over the window (conditional before average coverage).
    """
    n = len(covered)
    if block is None or n <= block:
        return np.abs(covered.mean(axis=0) - coverage)
    starts = np.arange(0, n, block)
    sizes = np.minimum(starts + block, n) - starts
    keep = sizes >= (block + 1) // 2
    means = np.add.reduceat(covered.astype(float), starts, axis=0) / sizes[:, None]
    return np.abs(means[keep] - coverage).mean(axis=0)


def select_step(
    lower: np.ndarray,
    upper: np.ndarray,
    y: np.ndarray,
    scale: np.ndarray,
    thresholds: np.ndarray,
    selection_rows: np.ndarray,
    coverage: float,
    tolerance: float,
    default: int,
    block: int | None = None,
) -> tuple[int, float, float, int]:
    """(column of ``thresholds``, coverage, mean interval score, n) on the selection rows.

    Coverage before width: each candidate's coverage error is ``block_coverage_error`` over the
    usable selection rows in date order; candidates within ``tolerance`` of the smallest error
    compete on the mean interval score, the lowest wins. With no usable row, ``default``.
    """
    rows = selection_rows & np.isfinite(y) & np.isfinite(thresholds).all(axis=1)
    n = int(rows.sum())
    if n == 0:
        return default, float("nan"), float("nan"), 0
    lo = lower[rows, None] - thresholds[rows] * scale[rows, None]
    hi = upper[rows, None] + thresholds[rows] * scale[rows, None]
    yy = y[rows, None]
    inside = (yy >= lo) & (yy <= hi)
    covered = inside.mean(axis=0)
    scores = interval_score(lo, hi, yy, coverage).mean(axis=0)
    error = block_coverage_error(inside, coverage, block)
    ok = error <= error.min() + tolerance
    best = int(np.argmin(np.where(ok, scores, np.inf)))
    return best, float(covered[best]), float(scores[best]), n


def calibrate_intervals(
    quantiles: np.ndarray,
    y: np.ndarray,
    scale: np.ndarray,
    horizons: Sequence[int],
    levels: Sequence[float],
    window: int,
    min_scores: int,
    step_grid: Sequence[float],
    default_step: float,
    selection_span: tuple[int, int] | None,
    tolerance: float,
    block: int | None = None,
) -> tuple[np.ndarray, list[StepChoice]]:
    """Calibrated copy of ``quantiles`` (n, H, Q) on consecutive bars, and the chosen steps.

    ``y`` (n, H) is the realised h-bar log return of the forecast made at each row (NaN when not
    resolved within the data), ``scale`` (n, H) a positive divisor known at each row.
    ``selection_span`` (first, last) rows: for horizon h the step is chosen on the forecasts made
    at rows first..last - h, whose outcomes are all known by row ``last``, by ``select_step``
    (coverage error over blocks of ``block`` forecasts, then interval score); None uses
    ``default_step`` everywhere. Rows before the
    scorecaster has ``min_scores`` scores keep their raw interval. The median is not changed;
    crossing is repaired afterwards.
    """
    grid = np.asarray(sorted({*map(float, step_grid), float(default_step)}))
    default = int(np.argmin(np.abs(grid - default_step)))
    labels = [(FIXED, step) for step in grid] + [(AGGREGATED, float("nan"))]
    out = quantiles.copy()
    choices: list[StepChoice] = []
    for lo, hi, coverage in interval_pairs(levels):
        for j, h in enumerate(horizons):
            lower, upper = quantiles[:, j, lo], quantiles[:, j, hi]
            scores = conformity_scores(lower, upper, y[:, j], scale[:, j])
            fixed = adaptive_thresholds(scores, int(h), coverage, grid, window, min_scores)
            aggregated = aggregated_thresholds(scores, fixed, int(h), coverage, window, default)
            thresholds = np.column_stack([fixed, aggregated])
            best, cov, score, n_sel = default, np.nan, np.nan, 0
            if selection_span is not None:
                best, cov, score, n_sel = select_step(
                    lower, upper, y[:, j], scale[:, j], thresholds,
                    _span_rows(len(quantiles), selection_span, int(h)), coverage, tolerance,
                    default, block,
                )  # fmt: skip
            method, step = labels[best]
            choices.append(StepChoice(int(h), float(coverage), method, step, cov, score, n_sel))
            threshold = np.nan_to_num(thresholds[:, best], nan=0.0)
            out[:, j, lo] = lower - threshold * scale[:, j]
            out[:, j, hi] = upper + threshold * scale[:, j]
    return repair_crossing(out), choices


def _span_rows(n: int, span: tuple[int, int], horizon: int) -> np.ndarray:
    rows = np.zeros(n, bool)
    first, last = span
    rows[max(first, 0) : max(last - horizon + 1, 0)] = True
    return rows


def rolling_cqr(
    quantiles: np.ndarray,
    y: np.ndarray,
    scale: np.ndarray,
    horizons: Sequence[int],
    levels: Sequence[float],
    window: int,
    min_scores: int,
) -> np.ndarray:
    """Rolling CQR alone: ``calibrate_intervals`` with step 0 (the scorecaster only)."""
    calibrated, _ = calibrate_intervals(
        quantiles, y, scale, horizons, levels, window, min_scores, [0.0], 0.0, None, 0.0
    )
    return calibrated
