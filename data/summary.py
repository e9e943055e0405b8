"""A printed summary and a chart of a market frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from common.plotting import pyplot
from common.units import VOL_POINTS_PER_UNIT
from data.calendar import gap_report

__all__ = ["plot_market", "summarise"]


def summarise(frame: pd.DataFrame) -> str:
    """Source, symbol, rows, date range, columns with coverage, and calendar gaps."""
    attrs = frame.attrs
    lines = [
        f"source:   {attrs.get('source', '?')}  symbol: {attrs.get('symbol', '?')}  "
        f"interval: {attrs.get('interval', '?')}",
        f"rows:     {len(frame)}  from {frame.index[0]} to {frame.index[-1]}",
        "columns:",
    ]
    for column in frame.columns:
        series = frame[column]
        valid = series.dropna()
        span = f"{valid.index[0].date()}..{valid.index[-1].date()}" if len(valid) else "empty"
        lines.append(f"  {column:<14} {len(valid):>6} values  {span}  last={series.iloc[-1]:.6g}")
    if attrs.get("interval", "1d") == "1d":
        lines.append(f"gaps:     {gap_report(frame).summary()}")
    if attrs.get("note"):
        lines.append(f"note:     {attrs['note']}")
    return "\n".join(lines)


def plot_market(frame: pd.DataFrame, path: str | Path) -> Path:
    """PNG of close, volume and the IV index, stacked on one time axis."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1, 1.5]})
    symbol = frame.attrs.get("symbol", "")
    axes[0].plot(frame.index, frame["close"], lw=0.8, color="tab:blue")
    axes[0].set_ylabel("close")
    axes[0].set_title(f"{symbol} ({frame.attrs.get('source', '')}, {frame.attrs.get('interval', '')})")
    axes[1].fill_between(frame.index, frame["volume"], step="mid", color="tab:gray", lw=0)
    axes[1].set_ylabel("volume")
    if "iv_index" in frame.columns:
        axes[2].plot(frame.index, frame["iv_index"] * VOL_POINTS_PER_UNIT, lw=0.8, color="tab:red")
    axes[2].set_ylabel("IV index (vol pts)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
