"""Forecast evaluation on a held-out segment: point, interval and quantile scores per model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from common.codecs import parse_quantile_column
from common.io import write_text_atomic
from common.lazy import lazy_module
from common.units import PERCENT_PER_UNIT
from forecasters.base import interval_pairs, pinball_loss, quantile_column
from forecasters.conformal import interval_score
from forecasters.coverage_tests import (
    MCS_SIZE,
    christoffersen_pvalue,
    kupiec_pvalue,
    model_confidence_set,
)

# scipy.stats adds about 0.5 s to a process's start: loaded at its first use
stats = lazy_module("scipy.stats")

REFERENCE = "random_walk"
ENSEMBLE_NAME = "ensemble"
HIT_TOLERANCE = 0.02
"""Share of price within which a median forecast counts as a hit (the roadmap's +/-2%)."""
METRIC_KEYS = (
    "mae_pct",
    "rmse_pct",
    "hit_2pct",
    "direction_hit",
    "coverage_75",
    "width_75_pct",
    "coverage_90",
    "width_90_pct",
    "interval_score_75",
    "interval_score_90",
    "kupiec_pvalue_75",
    "kupiec_pvalue_90",
    "pinball",
    "mae_ratio_rw",
)
NOMINALS = (75, 90)
TERCILES = ("low", "mid", "high")
BREAKDOWN_KEYS = ("n", *(f"{k}_{n}{u}" for n in NOMINALS for k, u in (
    ("coverage", ""), ("width", "_pct"), ("interval_score", ""), ("kupiec_pvalue", ""),
    ("christoffersen_pvalue", ""))))  # fmt: skip
SKILL_PVALUE = 0.05
"""Diebold-Mariano and Kupiec p-values below this are called significant in the verdicts."""


def tercile_edges(vol: pd.Series, start=None, end=None) -> tuple[float, float]:
    """Cut points (1/3 and 2/3 quantiles) of ``vol`` over [start, end] (the training segment)."""
    window = vol.loc[pd.Timestamp(start) if start else None : _end_of(end)].dropna()
    if window.empty:
        raise ValueError(f"no volatility values between {start} and {end} for the tercile cuts")
    low, high = np.quantile(window.to_numpy(float), [1 / 3, 2 / 3])
    return float(low), float(high)


def _end_of(end):
    return None if end is None else pd.Timestamp(end) + pd.Timedelta(days=1) - pd.Timedelta(1)


def vol_tercile(vol_at_forecast: np.ndarray, edges: tuple[float, float]) -> np.ndarray:
    """'low' / 'mid' / 'high' of each volatility value against the cut points."""
    return np.asarray(TERCILES, dtype=object)[np.searchsorted(edges, vol_at_forecast, side="right")]


def _interval_figures(r: np.ndarray, bounds: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Coverage, width (% of close_t) and interval score (% log return) of each interval."""
    out: dict[str, float] = {"n": int(len(r))}
    for nominal in NOMINALS:
        if nominal not in bounds or len(r) == 0:
            for key in ("coverage", "width", "interval_score"):
                out[f"{key}_{nominal}{'_pct' if key == 'width' else ''}"] = float("nan")
            continue
        lo, hi = bounds[nominal]
        out[f"coverage_{nominal}"] = float(np.mean((r >= lo) & (r <= hi)))
        out[f"width_{nominal}_pct"] = float(np.mean(np.exp(hi) - np.exp(lo)) * PERCENT_PER_UNIT)
        out[f"interval_score_{nominal}"] = float(
            np.mean(interval_score(lo, hi, r, nominal / PERCENT_PER_UNIT)) * PERCENT_PER_UNIT
        )
    return out


def panel_levels(panel: pd.DataFrame) -> list[float]:
    """Quantile levels of a long panel, read from its ``qX.XXX`` columns."""
    return sorted(level for c in panel.columns
                  if (level := parse_quantile_column(c)) is not None)


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
    vol: pd.Series | None = None,
    edges: tuple[float, float] | None = None,
) -> dict[str, dict[str, dict]]:
    """Metrics keyed [model][str(horizon)] over forecasts dated in [start, end] with outcomes.

    Prices: median price forecast = close_t * exp(q0.500). ``mae_pct``/``rmse_pct``: error in % of
    the realised price; ``hit_2pct``: share within 2% of it; ``direction_hit``: sign of the
    median equals the sign of the realised return; ``coverage_XX``/``width_XX_pct``: share of
    outcomes in the central XX% interval and its mean width in % of close_t; ``pinball``: mean
    pinball loss over levels with returns in percent; ``mae_ratio_rw``: MAE over the random
    walk's on the same dates, with ``dm_pvalue_rw`` its Diebold-Mariano p-value.

    Intervals: ``interval_score_XX`` the mean Winkler score (log return in percent);
    ``kupiec_pvalue_XX`` and ``christoffersen_pvalue_XX`` the backtests of the misses in date
    order; ``by_year`` the coverage, width and interval score per calendar year of the forecast
    date; with ``vol`` (per-bar volatility at forecast time, indexed like the frame) and ``edges``
    (its tercile cut points from the training segment) the same ``by_vol_tercile``.
    ``mcs_pvalue``/``in_mcs``: the model confidence set over all models of the horizon on the
    mean pinball loss per date (dates every model forecast).
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
    pairs = {round(cov * PERCENT_PER_UNIT): (levels[lo], levels[hi]) for lo, hi, cov in interval_pairs(levels)}

    if vol is not None and edges is not None:
        rows["vol_tercile"] = vol_tercile(vol.reindex(dates[keep]).to_numpy(float), edges)
    abs_errors: dict[tuple[str, int], pd.Series] = {}
    pinball_by_date: dict[int, dict[str, pd.Series]] = {}
    metrics: dict[str, dict] = {}
    for (model, horizon), group in rows.groupby(["model", "horizon"], sort=True):
        group = group.sort_values("date", kind="stable")
        r = group["log_return"].to_numpy()
        actual = group["close_target"].to_numpy()
        predicted = group["close_t"].to_numpy() * np.exp(group[median].to_numpy())
        rel_error = (predicted - actual) / actual
        abs_errors[model, horizon] = pd.Series(
            np.abs(rel_error) * PERCENT_PER_UNIT, index=group["date"].to_numpy()
        )
        moving = r != 0
        out = {
            "n": int(len(group)),
            "mae_pct": float(np.mean(np.abs(rel_error)) * PERCENT_PER_UNIT),
            "rmse_pct": float(np.sqrt(np.mean(rel_error**2)) * PERCENT_PER_UNIT),
            "hit_2pct": float(np.mean(np.abs(rel_error) <= HIT_TOLERANCE)),
            "direction_hit": float(
                np.mean(np.sign(group[median].to_numpy()[moving]) == np.sign(r[moving]))
            ),
        }
        bounds = {
            nominal: tuple(group[quantile_column(q)].to_numpy() for q in pairs[nominal])
            for nominal in NOMINALS
            if nominal in pairs
        }
        out.update(_interval_figures(r, bounds))
        for nominal in NOMINALS:
            out[f"kupiec_pvalue_{nominal}"] = float("nan")
            out[f"christoffersen_pvalue_{nominal}"] = float("nan")
            if nominal in bounds:
                lo, hi = bounds[nominal]
                miss = (r < lo) | (r > hi)
                out[f"kupiec_pvalue_{nominal}"] = kupiec_pvalue(miss, nominal / PERCENT_PER_UNIT)
                out[f"christoffersen_pvalue_{nominal}"] = christoffersen_pvalue(miss)
        out["reliability"] = reliability(r, group, levels)
        out["by_year"] = _breakdown(r, bounds, pd.DatetimeIndex(group["date"]).year.astype(str))
        if "vol_tercile" in group.columns:
            out["by_vol_tercile"] = _breakdown(r, bounds, group["vol_tercile"].to_numpy())
        losses = [
            pinball_loss(r * PERCENT_PER_UNIT, group[quantile_column(q)].to_numpy() * PERCENT_PER_UNIT, q)
            for q in levels
        ]
        out["pinball"] = float(np.mean([loss.mean() for loss in losses]))
        pinball_by_date.setdefault(int(horizon), {})[str(model)] = pd.Series(
            np.mean(losses, axis=0), index=group["date"].to_numpy()
        )
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
    for horizon, losses in pinball_by_date.items():
        pvalues = model_confidence_set(pd.DataFrame(losses))
        for model, pvalue in pvalues.items():
            metrics[model][str(horizon)]["mcs_pvalue"] = pvalue
            metrics[model][str(horizon)]["in_mcs"] = bool(pvalue > MCS_SIZE)
    return metrics


def reliability(r: np.ndarray, group: pd.DataFrame, levels) -> dict[str, float]:
    """Realised coverage of every central interval the levels make, keyed by nominal ('0.75')."""
    out = {}
    for lo, hi, nominal in sorted(interval_pairs(levels), key=lambda pair: pair[2]):
        lower = group[quantile_column(levels[lo])].to_numpy()
        upper = group[quantile_column(levels[hi])].to_numpy()
        out[f"{nominal:.2f}"] = float(np.mean((r >= lower) & (r <= upper)))
    return out


def _breakdown(r: np.ndarray, bounds: dict, labels: np.ndarray) -> dict[str, dict]:
    """``_interval_figures`` plus Kupiec and Christoffersen p-values per label (year or
    tercile), labels in sorted order; misses in date order within a label."""
    labels = np.asarray(labels)
    out = {}
    for label in sorted(set(labels.tolist()), key=_label_order):
        mask = labels == label
        sub = {k: (lo[mask], hi[mask]) for k, (lo, hi) in bounds.items()}
        figures = _interval_figures(r[mask], sub)
        for nominal, (lo, hi) in sub.items():
            miss = (r[mask] < lo) | (r[mask] > hi)
            figures[f"kupiec_pvalue_{nominal}"] = kupiec_pvalue(miss, nominal / PERCENT_PER_UNIT)
            figures[f"christoffersen_pvalue_{nominal}"] = christoffersen_pvalue(miss)
        out[str(label)] = figures
    return out


def _label_order(label: str):
    return (TERCILES.index(label), "") if label in TERCILES else (len(TERCILES), label)


def metrics_table(
    metrics: dict, title: str | None = "Point and interval metrics by model and horizon"
) -> str:
    """Markdown table, one row per model and horizon, of the contract metrics, under ``title``."""
    columns = ["model", "h", *METRIC_KEYS, "dm_pvalue_rw"]
    lines = [f"## {title}\n"] if title else []
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for model in sorted(metrics):
        for horizon in sorted(metrics[model], key=int):
            values = metrics[model][horizon]
            cells = [model, horizon] + [f"{values.get(k, float('nan')):.3f}" for k in columns[2:]]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


INTERVAL_COLUMNS = (
    "coverage_75",
    "width_75_pct",
    "interval_score_75",
    "kupiec_pvalue_75",
    "christoffersen_pvalue_75",
    "coverage_90",
    "width_90_pct",
    "interval_score_90",
    "kupiec_pvalue_90",
    "christoffersen_pvalue_90",
    "pinball",
    "mcs_pvalue",
)


def interval_tables(metrics: dict) -> str:
    """Markdown: interval backtests per model and horizon, then per year and per vol tercile."""
    parts = ["## Intervals by horizon\n", _table(metrics, None, INTERVAL_COLUMNS)]
    parts.append(
        "Interval score: Winkler score in % log return (lower is better). Kupiec: unconditional "
        "coverage; Christoffersen: independence of misses (h > 1 forecasts overlap, so misses "
        f"cluster by construction). MCS: p-value in the {1 - MCS_SIZE:.0%} model confidence set "
        "on the mean pinball loss (arch.bootstrap.MCS).\n"
    )
    for key, title in (("by_year", "calendar year"), ("by_vol_tercile", "volatility tercile")):
        if any(key in by_h[h] for by_h in metrics.values() for h in by_h):
            parts += [f"## Intervals by {title}\n", _table(metrics, key, BREAKDOWN_KEYS)]
    return "\n".join(parts)


def _table(metrics: dict, breakdown: str | None, columns) -> str:
    head = ["model", "h", *([breakdown.removeprefix("by_")] if breakdown else []), *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in sorted(metrics):
        for horizon in sorted(metrics[model], key=int):
            values = metrics[model][horizon]
            groups = values.get(breakdown, {}) if breakdown else {"": values}
            for label, figures in groups.items():
                cells = [model, horizon, *([label] if breakdown else [])]
                cells += [_cell(figures.get(k, float("nan"))) for k in columns]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_lines(metrics: dict, model: str = "ensemble") -> list[str]:
    """One line per horizon: MAE against the random walk with its Diebold-Mariano p-value, and
    the realised coverage of each interval against nominal with its Kupiec p-value.

    Point skill means a lower MAE than the random walk's with DM p < ``SKILL_PVALUE``; otherwise
    the line says "no point skill" (or "worse than the random walk" when significantly worse).
    A first line sums up when no horizon has skill.
    """
    by_h = metrics.get(model, {})
    reference = metrics.get(REFERENCE, {})
    lines, skilled = [], []
    for horizon in sorted(by_h, key=int):
        m = by_h[horizon]
        ratio, pvalue = m.get("mae_ratio_rw", math.nan), m.get("dm_pvalue_rw", math.nan)
        rw_mae = reference.get(horizon, {}).get("mae_pct", math.nan)
        if model == REFERENCE or not math.isfinite(ratio):
            point = f"MAE {m['mae_pct']:.3f}% (no random walk to compare)"
        else:
            if ratio < 1 and pvalue < SKILL_PVALUE:
                word = "point skill over the random walk"
                skilled.append(horizon)
            elif ratio > 1 and pvalue < SKILL_PVALUE:
                word = "no point skill: worse than the random walk"
            else:
                word = "no point skill over the random walk"
            point = (
                f"{word} (MAE {m['mae_pct']:.3f}% vs {rw_mae:.3f}%, ratio {ratio:.3f}, "
                f"Diebold-Mariano p = {pvalue:.3f})"
            )
        intervals = []
        for nominal in NOMINALS:
            cov = m.get(f"coverage_{nominal}", math.nan)
            if not math.isfinite(cov):
                continue
            kupiec = m.get(f"kupiec_pvalue_{nominal}", math.nan)
            if kupiec >= SKILL_PVALUE:
                word = "as promised"
            else:
                word = "below nominal" if cov < nominal / PERCENT_PER_UNIT else "above nominal"
            intervals.append(
                f"{nominal}% interval covers {cov * PERCENT_PER_UNIT:.1f}% ({word}, Kupiec p = {kupiec:.3f})"
            )
        lines.append(f"h={horizon}: {point}; " + "; ".join(intervals) + ".")
    if by_h and model != REFERENCE and not skilled:
        lines.insert(0, f"{model}: no point skill over the random walk at any horizon "
                        "(its median is no better than the last price); its value is in the "
                        "intervals.")  # fmt: skip
    return lines


def coverage_by_year_table(
    metrics: dict, models=("ensemble", "garch", "random_walk"), key: str = "coverage_75"
) -> str:
    """Markdown: one row per year (then 'all'), one column per model with ``key`` at h = 1..H
    (coverage in %, interval score as it is), so a long evaluation reads in one table."""
    models = [m for m in models if m in metrics]
    if not models:
        return ""
    horizons = sorted(metrics[models[0]], key=int)
    years = sorted({y for m in models for h in horizons for y in metrics[m][h].get("by_year", {})})
    scale = PERCENT_PER_UNIT if key.startswith("coverage") else 1.0
    head = ["year", *(f"{m} h={'/'.join(horizons)}" for m in models)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for year in [*years, "all"]:
        cells = [year]
        for m in models:
            values = []
            for h in horizons:
                figures = (
                    metrics[m][h]
                    if year == "all"
                    else metrics[m][h].get("by_year", {}).get(year, {})
                )
                values.append(
                    f"{figures.get(key, math.nan) * scale:.1f}"
                    if scale != 1
                    else f"{figures.get(key, math.nan):.2f}"
                )
            cells.append(" / ".join(values))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    return str(value) if isinstance(value, int | bool) else f"{value:.3f}"


def write_metrics(
    metrics: dict, out_dir: str | Path, extra_markdown: str = ""
) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.md`` (tables plus ``extra_markdown``), atomically."""
    out_dir = Path(out_dir)
    json_path = write_text_atomic(
        json.dumps(metrics, indent=2, sort_keys=True, allow_nan=True), out_dir / "metrics.json"
    )
    verdicts = (
        "\n".join(f"- {line}" for line in verdict_lines(metrics))
        if ENSEMBLE_NAME in metrics
        else ""
    )
    markdown = "\n".join(
        ["# Forecast metrics\n", "## Verdict per horizon\n", verdicts + "\n",
         metrics_table(metrics), interval_tables(metrics), extra_markdown]
    )  # fmt: skip
    md_path = write_text_atomic(markdown, out_dir / "metrics.md")
    return json_path, md_path
