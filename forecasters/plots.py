"""PNG plots of a forecast panel against realised prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecasters.base import quantile_column
from forecasters.metrics import realised

BAND_LEVELS = (0.125, 0.875)
"""The 75% band drawn around the median price forecast."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _model_rows(panel, frame, model, start, end):
    rows = realised(panel[panel["model"] == model], frame)
    dates = pd.DatetimeIndex(rows["date"])
    keep = np.ones(len(rows), bool)
    if start is not None:
        keep &= dates >= pd.Timestamp(start)
    if end is not None:
        keep &= dates <= pd.Timestamp(end)
    rows = rows[keep & rows["close_target"].notna().to_numpy()]
    for q in (0.5, *BAND_LEVELS):
        rows[f"price_{q}"] = rows["close_t"] * np.exp(rows[quantile_column(q)])
    return rows


def plot_price_bands(panel, frame, path, model="ensemble", start=None, end=None) -> Path:
    """Actual vs median predicted price with the 75% band, one panel per horizon (target dates)."""
    plt = _pyplot()
    rows = _model_rows(panel, frame, model, start, end)
    horizons = sorted(rows["horizon"].unique())
    fig, axes = plt.subplots(
        len(horizons), 1, figsize=(11, 2.6 * len(horizons)), sharex=True, squeeze=False
    )
    for ax, h in zip(axes[:, 0], horizons, strict=True):
        g = rows[rows["horizon"] == h]
        x = pd.DatetimeIndex(g["target_date"])
        ax.fill_between(
            x,
            g[f"price_{BAND_LEVELS[0]}"],
            g[f"price_{BAND_LEVELS[1]}"],
            alpha=0.3,
            label="75% band",
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
        ax.axhline(nominal / 100, color="black", ls="--", lw=1)
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


def _save(fig, plt, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
