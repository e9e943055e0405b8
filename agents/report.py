"""Plots and the Markdown report of an evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agents.evaluation import EpisodeResult
from envs.actions import ACTION_NAMES

__all__ = ["markdown_table", "plot_actions", "plot_equity", "plot_pnl_by_strategy",
           "write_report"]

TABLE_COLUMNS = (
    ("total_return_pct", "return %", "{:.2f}"),
    ("annual_return_pct", "annual %", "{:.2f}"),
    ("annual_vol_pct", "vol %", "{:.2f}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown_pct", "max DD %", "{:.2f}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("trades", "trades", "{:.0f}"),
    ("win_rate", "win rate", "{:.2f}"),
    ("avg_pnl_per_trade_usd", "avg P&L $", "{:.0f}"),
    ("profit_factor", "PF", "{:.2f}"),
    ("total_costs_usd", "costs $", "{:.0f}"),
    ("exposure", "exposure", "{:.2f}"),
    ("return_on_margin_pct", "RoM %", "{:.1f}"),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    _plt().close(fig)
    return path


def plot_equity(results: dict[str, EpisodeResult], path: Path, title: str) -> Path:
    """Equity curves of every policy (top) and their drawdowns (bottom)."""
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.3]})
    for name, result in results.items():
        eq = result.equity["equity_usd"]
        style = {"lw": 2.0} if name.startswith("ppo") else {"lw": 1.0, "alpha": 0.85}
        top.plot(eq.index, eq / result.starting_equity_usd * 100, label=name, **style)
        bottom.plot(eq.index, (eq / eq.cummax() - 1) * 100, **style)
    top.set_ylabel("equity (% of start)")
    top.set_title(title)
    top.legend(fontsize=8, ncol=3)
    bottom.set_ylabel("drawdown %")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_actions(result: EpisodeResult, path: Path) -> Path:
    """The policy's actions over time, against the underlying's price."""
    plt = _plt()
    eq = result.equity
    fig, (price_ax, act_ax) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                           gridspec_kw={"height_ratios": [2, 1.5]})
    price_ax.plot(eq.index, eq["spot"], color="black", lw=0.8)
    price_ax.set_ylabel("underlying")
    price_ax.set_title(f"{result.name}: actions against the price")
    codes = eq["action"].map({name: k for k, name in enumerate(ACTION_NAMES)}).to_numpy()
    traded = codes != 0
    act_ax.scatter(eq.index[traded], codes[traded], s=10, c=codes[traded], cmap="tab10",
                   vmin=0, vmax=10)
    for name in (n for n in ACTION_NAMES if n.startswith("open_")):
        hits = eq.index[eq["action"] == name]
        if len(hits):
            price_ax.scatter(hits, eq.loc[hits, "spot"], s=12, label=name)
    if price_ax.get_legend_handles_labels()[0]:
        price_ax.legend(fontsize=7, ncol=3)
    act_ax.set_yticks(range(len(ACTION_NAMES)))
    act_ax.set_yticklabels(ACTION_NAMES, fontsize=7)
    for ax in (price_ax, act_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_pnl_by_strategy(results: dict[str, EpisodeResult], path: Path) -> Path:
    """Total P&L (after costs) per strategy, per policy."""
    plt = _plt()
    table = {}
    for name, result in results.items():
        if len(result.trades):
            table[name] = result.trades.groupby("strategy")["pnl_usd"].sum()
    frame = pd.DataFrame(table).fillna(0.0)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    if len(frame):
        frame.plot.bar(ax=ax)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("P&L after costs, USD")
    ax.set_title("P&L by strategy")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def markdown_table(metrics: dict[str, dict]) -> str:
    header = "| policy | " + " | ".join(label for _, label, _ in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    rows = []
    for name, values in metrics.items():
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            value = values.get(key)
            cells.append("" if value is None or (isinstance(value, float) and np.isnan(value))
                         else fmt.format(value))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def write_report(path: Path, title: str, metrics: dict[str, dict], comparison: dict | None,
                 seeds: dict | None, plots: list[Path], notes: list[str]) -> Path:
    lines = [f"# {title}", "", *notes, "", "## Policies on the held-out segment", "",
             markdown_table(metrics), ""]
    if seeds:
        lines += ["## PPO across seeds (median [min, max])", "",
                  "| metric | median | min | max |", "|---|---:|---:|---:|"]
        for key, stats in seeds["spread"].items():
            lines.append(f"| {key} | {stats['median']:.3f} | {stats['min']:.3f} | "
                         f"{stats['max']:.3f} |")
        if seeds.get("deflated_sharpe") is not None:
            lines += ["", f"Deflated Sharpe ratio of the best seed "
                          f"(probability its true Sharpe > 0 after {len(seeds['per_seed'])} "
                          f"trials): {seeds['deflated_sharpe']:.3f}"]
        lines.append("")
    if comparison:
        lines += [
            "## Is PPO better than the best baseline?", "",
            f"Sharpe(PPO) - Sharpe({comparison['baseline']}) = {comparison['sharpe_diff']:.2f}; "
            f"{100 * comparison['level']:.0f}% moving-block bootstrap interval "
            f"[{comparison['ci_low']:.2f}, {comparison['ci_high']:.2f}] "
            f"(blocks of {comparison['block_bars']} bars, {comparison['samples']} resamples). "
            + ("The interval includes 0: no evidence of a difference."
               if comparison["ci_low"] <= 0 <= comparison["ci_high"]
               else "The interval excludes 0."), ""]
    lines += ["## Plots", ""]
    for plot in plots:
        lines.append(f"![{plot.stem}]({plot.name})")
    path.write_text("\n".join(lines) + "\n")
    return path
