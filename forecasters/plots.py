"""PNG plots of a forecast panel against realised prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.plotting import pyplot
from common.units import PERCENT_PER_UNIT
from forecasters.base import quantile_column
from forecasters.metrics import realised

BAND_LEVELS = (0.125, 0.875)
"""The 75% band drawn around the median price forecast."""
WIDE_BAND_LEVELS = (0.05, 0.95)
"""The 90% band drawn around it, lighter."""
ROLLING_COVERAGE_BARS = 30
REGIME_COLOURS = {"mid": "#fdf1c7", "high": "#f8c9c4"}
"""Background of the bars whose volatility at forecast time is in the mid or high tercile."""


def _pyplot():
    return pyplot()


def _model_rows(panel, frame, model, start, end):
    rows = realised(panel[panel["model"] == model], frame)
    dates = pd.DatetimeIndex(rows["date"])
    keep = np.ones(len(rows), bool)
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    if end is not None:
        keep &= dates <= pd.Timestamp(end)
    rows = rows[keep & rows["close_target"].notna().to_numpy()]
    for q in (0.5, *BAND_LEVELS, *WIDE_BAND_LEVELS):
        if quantile_column(q) not in rows.columns:
            raise ValueError(f"the panel has no {quantile_column(q)} column to plot")
        rows[f"price_{q}"] = rows["close_t"] * np.exp(rows[quantile_column(q)])
    return rows


def plot_price_bands(panel, frame, path, model="ensemble", start=None, end=None) -> Path:
    """Actual vs median predicted price with the 75% and 90% bands, one panel per horizon.

    Each forecast is drawn at its target date, so the band at a date is the one made h bars
    before it.
    """
    plt = _pyplot()
    rows = _model_rows(panel, frame, model, start, end)
    horizons = sorted(rows["horizon"].unique())
    fig, axes = plt.subplots(
        len(horizons), 1, figsize=(11, 2.6 * len(horizons)), sharex=True, squeeze=False
    )
    for ax, h in zip(axes[:, 0], horizons, strict=True):
        g = rows[rows["horizon"] == h]
        x = pd.DatetimeIndex(g["target_date"])
        for (lo, hi), alpha, label in (
            (WIDE_BAND_LEVELS, 0.15, "90% band"),
            (BAND_LEVELS, 0.3, "75% band"),
        ):
            ax.fill_between(
                x,
                g[f"price_{lo}"],
                g[f"price_{hi}"],
                color="tab:blue",
                alpha=alpha,
                lw=0,
                label=label,
            )
        ax.plot(x, g["close_target"], color="black", lw=0.8, label="actual")
        ax.plot(x, g["price_0.5"], color="tab:blue", lw=0.8, label="median forecast")
        ax.set_ylabel(f"h={h} price")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(f"{model}: actual vs predicted price")
    return _save(fig, plt, path)


def plot_coverage(metrics: dict, path) -> Path:
    """Coverage of the 75% and 90% intervals by horizon for every model, nominal dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, nominal in zip(axes, (75, 90), strict=True):
        for model, by_h in sorted(metrics.items()):
            hs = sorted(by_h, key=int)
            ax.plot(
                [int(h) for h in hs],
                [by_h[h][f"coverage_{nominal}"] for h in hs],
                marker="o",
                label=model,
            )
        ax.axhline(nominal / PERCENT_PER_UNIT, color="black", ls="--", lw=1)
        ax.set_title(f"{nominal}% interval coverage")
        ax.set_xlabel("horizon (bars)")
    axes[0].legend(fontsize=8)
    return _save(fig, plt, path)


def plot_rolling_window(panel, frame, path, model="ensemble", end=None, window_bars=30) -> Path:
    """The last ``window_bars`` daily forecasts up to ``end`` for every horizon vs the outcome."""
    plt = _pyplot()
    rows = _model_rows(panel, frame, model, None, end)
    dates = sorted(rows["date"].unique())[-window_bars:]
    rows = rows[rows["date"].isin(dates)]
    horizons = sorted(rows["horizon"].unique())
    fig, axes = plt.subplots(
        len(horizons), 1, figsize=(11, 2.4 * len(horizons)), sharex=True, squeeze=False
    )
    close = frame["close"]
    for ax, h in zip(axes[:, 0], horizons, strict=True):
        g = rows[rows["horizon"] == h]
        x = pd.DatetimeIndex(g["target_date"])
        span = close.loc[pd.Timestamp(dates[0]) : x.max()]
        ax.plot(span.index, span.to_numpy(), color="black", lw=1, label="actual close")
        ax.errorbar(
            x,
            g["price_0.5"],
            yerr=[
                g["price_0.5"] - g[f"price_{BAND_LEVELS[0]}"],
                g[f"price_{BAND_LEVELS[1]}"] - g["price_0.5"],
            ],
            fmt="o",
            ms=3,
            capsize=2,
            color="tab:blue",
            label=f"forecast made h={h} bars earlier (75% band)",
        )
        ax.set_ylabel(f"h={h}")
        ax.legend(loc="upper left", fontsize=7)
    axes[0, 0].set_title(f"{model}: rolling {window_bars}-bar window of daily forecasts")
    return _save(fig, plt, path)


def plot_rolling_coverage(
    panel,
    frame,
    path,
    tercile: pd.Series | None = None,
    model="ensemble",
    start=None,
    end=None,
    window_bars: int = ROLLING_COVERAGE_BARS,
) -> Path:
    """Rolling ``window_bars`` coverage of the 75% and 90% intervals against nominal, per horizon.

    ``tercile`` ('low'/'mid'/'high' volatility at forecast time, indexed by date) shades the
    background of mid and high volatility bars.
    """
    plt = _pyplot()
    rows = _model_rows(panel, frame, model, start, end)
    horizons = sorted(rows["horizon"].unique())
    fig, axes = plt.subplots(
        len(horizons), 1, figsize=(11, 2.2 * len(horizons)), sharex=True, squeeze=False
    )
    for ax, h in zip(axes[:, 0], horizons, strict=True):
        g = rows[rows["horizon"] == h].sort_values("date")
        x = pd.DatetimeIndex(g["date"])
        r = g["log_return"].to_numpy()
        if tercile is not None:
            _shade_regimes(ax, x, tercile.reindex(x).to_numpy())
        for (lo, hi), colour in ((BAND_LEVELS, "tab:blue"), (WIDE_BAND_LEVELS, "tab:green")):
            nominal = hi - lo
            inside = (r >= g[quantile_column(lo)].to_numpy()) & (
                r <= g[quantile_column(hi)].to_numpy()
            )
            rolling = pd.Series(inside.astype(float)).rolling(window_bars).mean().to_numpy()
            ax.plot(x, rolling, color=colour, lw=1, label=f"{nominal:.0%} interval")
            ax.axhline(nominal, color=colour, ls="--", lw=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(f"h={h}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if tercile is not None:
        patch = plt.matplotlib.patches.Patch  # loaded with pyplot
        handles += [patch(color=c, label=f"{k} vol tercile") for k, c in REGIME_COLOURS.items()]
    axes[0, 0].legend(handles=handles, loc="lower left", fontsize=7, ncol=4)
    axes[0, 0].set_title(
        f"{model}: rolling {window_bars}-bar coverage (dashed: nominal), by forecast date"
    )
    return _save(fig, plt, path)


def _shade_regimes(ax, x: pd.DatetimeIndex, labels: np.ndarray) -> None:
    """Shade runs of consecutive bars with the same mid/high tercile label."""
    start = 0
    for i in range(1, len(x) + 1):
        if i == len(x) or labels[i] != labels[start]:
            colour = REGIME_COLOURS.get(labels[start])
            if colour is not None:
                right = x[i] if i < len(x) else x[-1]
                ax.axvspan(x[start], right, color=colour, lw=0, zorder=0)
            start = i


def plot_hit_rate(metrics: dict, path, tolerance_pct: float = 2.0) -> Path:
    """Share of median price forecasts within +/-``tolerance_pct``% of the outcome, by horizon."""
    plt = _pyplot()
    models = sorted(metrics)
    horizons = sorted({int(h) for by_h in metrics.values() for h in by_h})
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(models), 1)
    for k, model in enumerate(models):
        values = [metrics[model].get(str(h), {}).get("hit_2pct", np.nan) for h in horizons]
        ax.bar(np.arange(len(horizons)) + k * width, values, width, label=model)
    ax.set_xticks(np.arange(len(horizons)) + width * (len(models) - 1) / 2, horizons)
    ax.set_xlabel("horizon (bars)")
    ax.set_ylabel(f"share within +/-{tolerance_pct:g}%")
    ax.set_ylim(0, 1)
    ax.set_title(f"median price forecast within +/-{tolerance_pct:g}% of the outcome")
    ax.legend(fontsize=8, ncol=3, loc="lower left")
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(
    metrics: dict, path, models=("ensemble", "garch", "random_walk"), horizons=None
) -> Path:
    """Nominal against realised coverage of every central interval (the panel's levels, e.g. 50%
    to 95%), one panel per model with a line per horizon; the diagonal is perfect calibration."""
    plt = _pyplot()
    models = [m for m in models if m in metrics] or sorted(metrics)[:1]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        by_h = metrics[model]
        for h in sorted(by_h, key=int):
            if horizons is not None and int(h) not in horizons:
                continue
            points = by_h[h].get("reliability", {})
            nominal = [float(k) for k in points]
            ax.plot(nominal, list(points.values()), marker="o", ms=3, lw=1, label=f"h={h}")
        ax.plot([0.45, 1.0], [0.45, 1.0], color="black", ls="--", lw=0.8)
        ax.set_xlim(0.45, 1.0)
        ax.set_ylim(0.45, 1.0)
        ax.set_xlabel("nominal coverage")
        ax.set_title(f"{model}: reliability")
    axes[0, 0].set_ylabel("realised coverage")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    return _save(fig, plt, path)
