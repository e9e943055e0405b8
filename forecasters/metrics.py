"""Forecast evaluation on a held-out segment: point, interval and quantile scores per model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from forecasters.base import interval_pairs, pinball_loss, quantile_column

REFERENCE = "random_walk"
HIT_TOLERANCE = 0.02
"""Share of price within which a median forecast counts as a hit (the roadmap's +/-2%)."""
PERCENT = 100.0
METRIC_KEYS = (
    "mae_pct",
    "rmse_pct",
    "hit_2pct",
    "direction_hit",
    "coverage_75",
    "width_75_pct",
    "coverage_90",
    "width_90_pct",
    "pinball",
    "mae_ratio_rw",
)


def panel_levels(panel: pd.DataFrame) -> list[float]:
    """Quantile levels of a long panel, read from its ``qX.XXX`` columns."""
    return sorted(float(c[1:]) for c in panel.columns if c.startswith("q"))


def realised(panel: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Panel rows with ``close_t``, ``close_target`` and ``log_return`` (NaN when not resolved)."""
    close = frame["close"].to_numpy(float)
    position = frame.index.get_indexer(pd.DatetimeIndex(panel["date"]))
    if (position < 0).any():
        raise ValueError("panel has dates that are not bars of the frame")
    target = position + panel["horizon"].to_numpy(int)
    inside = target < len(close)
    close_target = np.full(len(panel), np.nan)
    close_target[inside] = close[target[inside]]
    out = panel.copy()
    out["close_t"] = close[position]
    out["close_target"] = close_target
    out["target_date"] = pd.NaT
    out.loc[inside, "target_date"] = frame.index[target[inside]]
    out["log_return"] = np.log(close_target / out["close_t"].to_numpy())
    return out


def diebold_mariano_pvalue(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int) -> float:
    """Two-sided p-value that two loss series have equal means (Diebold-Mariano, HLN-corrected).

    The long-run variance uses h - 1 Newey-West lags with Bartlett weights, because h-bar-ahead
    forecast errors overlap.
    """
    d = np.asarray(loss_a, float) - np.asarray(loss_b, float)
    n = len(d)
    if n < 10:
        return float("nan")
    centred = d - d.mean()
    variance = centred @ centred / n
    for lag in range(1, horizon):
        weight = 1.0 - lag / horizon
        variance += 2.0 * weight * (centred[lag:] @ centred[:-lag]) / n
    if variance <= 0:
        return float("nan")
    statistic = d.mean() / math.sqrt(variance / n)
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(2.0 * stats.t.sf(abs(statistic * correction), df=n - 1))


def evaluate_panel(
    panel: pd.DataFrame,
    frame: pd.DataFrame,
    start=None,
    end=None,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics keyed [model][str(horizon)] over forecasts dated in [start, end] with outcomes.

    Prices: median price forecast = close_t * exp(q0.500). ``mae_pct``/``rmse_pct``: error in % of
    the realised price; ``hit_2pct``: share within 2% of it; ``direction_hit``: sign of the
    median equals the sign of the realised return; ``coverage_XX``/``width_XX_pct``: share of
    outcomes in the central XX% interval and its mean width in % of close_t; ``pinball``: mean
    pinball loss over levels with returns in percent; ``mae_ratio_rw``: MAE over the random
    walk's on the same dates, with ``dm_pvalue_rw`` its Diebold-Mariano p-value.
    """
    rows = realised(panel, frame)
    dates = pd.DatetimeIndex(rows["date"])
    keep = np.array(rows["log_return"].notna())
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    if end is not None:
        keep &= dates <= pd.Timestamp(end)
    rows = rows[keep]
    if rows.empty:
        raise ValueError(f"no resolved forecasts between {start} and {end}")
    levels = panel_levels(panel)
    median = quantile_column(0.5)
    if median not in rows.columns:
        raise ValueError("the panel has no median (q0.500) column")
    pairs = {round(cov * 100): (levels[lo], levels[hi]) for lo, hi, cov in interval_pairs(levels)}

    abs_errors: dict[tuple[str, int], pd.Series] = {}
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    for (model, horizon), group in rows.groupby(["model", "horizon"], sort=True):
        r = group["log_return"].to_numpy()
        actual = group["close_target"].to_numpy()
        predicted = group["close_t"].to_numpy() * np.exp(group[median].to_numpy())
        rel_error = (predicted - actual) / actual
        abs_errors[model, horizon] = pd.Series(
            np.abs(rel_error) * PERCENT, index=group["date"].to_numpy()
        )
        moving = r != 0
        out = {
            "n": int(len(group)),
            "mae_pct": float(np.mean(np.abs(rel_error)) * PERCENT),
            "rmse_pct": float(np.sqrt(np.mean(rel_error**2)) * PERCENT),
            "hit_2pct": float(np.mean(np.abs(rel_error) <= HIT_TOLERANCE)),
            "direction_hit": float(
                np.mean(np.sign(group[median].to_numpy()[moving]) == np.sign(r[moving]))
            ),
        }
        for nominal in (75, 90):
            if nominal in pairs:
                lo, hi = (group[quantile_column(q)].to_numpy() for q in pairs[nominal])
                out[f"coverage_{nominal}"] = float(np.mean((r >= lo) & (r <= hi)))
                out[f"width_{nominal}_pct"] = float(np.mean(np.exp(hi) - np.exp(lo)) * PERCENT)
            else:
                out[f"coverage_{nominal}"] = float("nan")
                out[f"width_{nominal}_pct"] = float("nan")
        losses = [
            pinball_loss(r * PERCENT, group[quantile_column(q)].to_numpy() * PERCENT, q)
            for q in levels
        ]
        out["pinball"] = float(np.mean([loss.mean() for loss in losses]))
        for q, loss in zip(levels, losses, strict=True):
            out[f"pinball_{quantile_column(q)}"] = float(loss.mean())
        metrics.setdefault(str(model), {})[str(int(horizon))] = out

    for (model, horizon), errors in abs_errors.items():
        out = metrics[str(model)][str(int(horizon))]
        reference = abs_errors.get((REFERENCE, horizon))
        if reference is None:
            out["mae_ratio_rw"] = float("nan")
            out["dm_pvalue_rw"] = float("nan")
            continue
        common = errors.index.intersection(reference.index)
        a, b = errors.loc[common].to_numpy(), reference.loc[common].to_numpy()
        out["mae_ratio_rw"] = float(a.mean() / b.mean())
        out["dm_pvalue_rw"] = (
            float("nan") if model == REFERENCE else diebold_mariano_pvalue(a, b, int(horizon))
        )
    return metrics


def metrics_table(metrics: dict) -> str:
    """Markdown table, one row per model and horizon, of the contract metrics."""
    columns = ["model", "h", *METRIC_KEYS, "dm_pvalue_rw"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for model in sorted(metrics):
        for horizon in sorted(metrics[model], key=int):
            values = metrics[model][horizon]
            cells = [model, horizon] + [f"{values.get(k, float('nan')):.3f}" for k in columns[2:]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_metrics(metrics: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.md`` into ``out_dir`` (atomically)."""
    from common.io import write_text_atomic

    out_dir = Path(out_dir)
    json_path = write_text_atomic(
        json.dumps(metrics, indent=2, sort_keys=True, allow_nan=True), out_dir / "metrics.json"
    )
    md_path = write_text_atomic(metrics_table(metrics), out_dir / "metrics.md")
    return json_path, md_path
