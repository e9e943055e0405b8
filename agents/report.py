"""Plots and the Markdown report of an evaluation: a tear sheet per policy.

Per policy: rolling Sharpe, underwater (drawdown) curve, monthly returns (table and heatmap)
and the P&L attribution into delta, gamma, theta, vega, costs and residual. Every plot colours
an action with ``ACTION_COLOURS`` (one palette, keyed by action name). A metric that does not
apply is ``None`` and shows as "-".
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from agents.audit import audit_markdown
from agents.evaluation import EpisodeResult
from common import analytics
from common.io import write_text_atomic
from common.plotting import pyplot
from common.units import PERCENT_PER_UNIT
from envs.actions import ACTION_NAMES

__all__ = ["ACTION_COLOURS", "ROLLING_SHARPE_BARS", "markdown_table", "monthly_returns",
           "pnl_attribution", "plot_actions", "plot_equity", "plot_pnl_by_strategy",
           "plot_tearsheet", "rolling_sharpe", "write_report"]

ROLLING_SHARPE_BARS = analytics.ROLLING_SHARPE_BARS
_TAB20 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
          "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")
ACTION_COLOURS = {name: _TAB20[k % len(_TAB20)] for k, name in enumerate(ACTION_NAMES)}
ATTRIBUTION_COLOURS = {"delta": "#1f77b4", "gamma": "#ff7f0e", "theta": "#2ca02c",
                       "vega": "#9467bd", "costs": "#d62728", "residual": "#7f7f7f"}
MISSING = "-"

TABLE_COLUMNS = (
    ("total_return_pct", "return %", "{:.2f}"),
    ("annual_return_pct", "annual %", "{:.2f}"),
    ("annual_vol_pct", "vol %", "{:.2f}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown_pct", "max DD %", "{:.2f}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("probabilistic_sharpe", "PSR", "{:.2f}"),
    ("min_track_record_bars", "MinTRL bars", "{:.0f}"),
    ("trades", "trades", "{:.0f}"),
    ("win_rate", "win rate", "{:.2f}"),
    ("avg_pnl_per_trade_usd", "avg P&L $", "{:.0f}"),
    ("profit_factor", "PF", "{:.2f}"),
    ("total_costs_usd", "costs $", "{:.0f}"),
    ("exposure", "exposure", "{:.2f}"),
    ("return_on_margin_pct", "RoM %", "{:.1f}"),
)
LEDGER_COLUMNS = ("trade_id", "strategy", "open_date", "close_date", "exit_reason",
                  "entry_spot", "exit_spot", "entry_iv", "exit_iv", "entry_dte_days",
                  "entry_delta_shares", "entry_gamma_shares_per_usd", "entry_theta_usd_per_day",
                  "entry_vega_usd_per_vol_point", "pnl_usd")
_LEDGER_ROWS_SHOWN = 20


def _plt():
    return pyplot()


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    _plt().close(fig)
    return path


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    return fmt.format(value)


# ---------------------------------------------------------------------------- analytics
def rolling_sharpe(result: EpisodeResult, bars_per_year: float,
                   window: int = ROLLING_SHARPE_BARS) -> pd.Series:
    """Annualised Sharpe over the last ``window`` bars (``common.analytics.rolling_sharpe``)."""
    return analytics.rolling_sharpe(result.equity["equity_usd"], bars_per_year, window)


def monthly_returns(result: EpisodeResult) -> pd.DataFrame:
    """Compounded return of each calendar month in percent: rows years, columns 1..12."""
    return analytics.monthly_returns_pct(result.equity["equity_usd"])


def pnl_attribution(result: EpisodeResult) -> pd.DataFrame | None:
    """Per-bar P&L split into delta, gamma, theta, vega, costs and residual (USD), from the
    greeks held over each bar and the costs paid in it (``common.analytics.pnl_attribution``,
    the one computation the dashboard shows too). None for a reference curve."""
    if result.greeks is None:
        return None
    greeks = result.greeks
    return analytics.pnl_attribution(result.equity["equity_usd"], result.equity["spot"],
                                     greeks["atm_iv"], greeks[list(analytics.GREEK_COLUMNS)],
                                     greeks["costs_usd"])


# ---------------------------------------------------------------------------- plots
def plot_equity(results: dict[str, EpisodeResult], path: Path, title: str) -> Path:
    """Equity curves of every policy (top) and their drawdowns (bottom)."""
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.3]})
    for name, result in results.items():
        eq = result.equity["equity_usd"]
        style = {"lw": 2.0} if name.startswith("ppo") else {"lw": 1.0, "alpha": 0.85}
        top.plot(eq.index, eq / result.starting_equity_usd * PERCENT_PER_UNIT, label=name, **style)
        bottom.plot(eq.index, (eq / eq.cummax() - 1) * PERCENT_PER_UNIT, **style)
    top.set_ylabel("equity (% of start)")
    top.set_title(title)
    top.legend(fontsize=8, ncol=3)
    bottom.set_ylabel("drawdown %")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_actions(result: EpisodeResult, path: Path) -> Path:
    """The policy's actions over time against the underlying's price; one colour per action
    (``ACTION_COLOURS``) in both panels."""
    plt = _plt()
    eq = result.equity
    fig, (price_ax, act_ax) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                           gridspec_kw={"height_ratios": [2, 1.5]})
    price_ax.plot(eq.index, eq["spot"], color="black", lw=0.8)
    price_ax.set_ylabel("underlying")
    price_ax.set_title(f"{result.name}: actions against the price")
    code = {name: k for k, name in enumerate(ACTION_NAMES)}
    for name in ACTION_NAMES[1:]:  # hold is the absence of a marker
        hits = eq.index[eq["action"] == name]
        if not len(hits):
            continue
        colour = ACTION_COLOURS.get(name, ACTION_COLOURS["close"])
        act_ax.scatter(hits, np.full(len(hits), code[name]), s=12, color=colour)
        price_ax.scatter(hits, eq.loc[hits, "spot"], s=14, color=colour, label=name)
    if price_ax.get_legend_handles_labels()[0]:
        price_ax.legend(fontsize=7, ncol=3)
    act_ax.set_yticks(range(len(ACTION_NAMES)))
    act_ax.set_yticklabels(ACTION_NAMES, fontsize=7)
    for tick, name in zip(act_ax.get_yticklabels(), ACTION_NAMES, strict=True):
        tick.set_color(ACTION_COLOURS.get(name, ACTION_COLOURS["close"]))
    for ax in (price_ax, act_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_pnl_by_strategy(results: dict[str, EpisodeResult], path: Path) -> Path:
    """Total P&L after costs per policy, stacked by strategy (coloured as its opening action)."""
    plt = _plt()
    table = {}
    for name, result in results.items():
        if len(result.trades) and not result.reference_curve:
            table[name] = result.trades.groupby("strategy")["pnl_usd"].sum()
    frame = pd.DataFrame(table).fillna(0.0).T
    fig, ax = plt.subplots(figsize=(11, 4.5))
    if len(frame):
        frame.plot.bar(ax=ax, stacked=True, rot=0,
                       color=[ACTION_COLOURS[f"open_{s}"] for s in frame.columns])
        ax.legend(fontsize=7, ncol=3)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("P&L after costs, USD")
    ax.set_title("P&L by strategy")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def plot_tearsheet(result: EpisodeResult, bars_per_year: float, path: Path) -> Path:
    """Rolling Sharpe, underwater curve, monthly-returns heatmap and cumulative P&L
    attribution of one policy."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    (sharpe_ax, water_ax), (heat_ax, attr_ax) = axes
    fig.suptitle(f"{result.name}: tear sheet")

    rolling = rolling_sharpe(result, bars_per_year)
    sharpe_ax.plot(rolling.index, rolling, color="#1f77b4", lw=1.2)
    sharpe_ax.axhline(0, color="black", lw=0.8)
    sharpe_ax.set_title(f"rolling {ROLLING_SHARPE_BARS}-bar Sharpe (annualised)")

    eq = result.equity["equity_usd"]
    underwater = (eq / eq.cummax() - 1) * PERCENT_PER_UNIT
    water_ax.fill_between(underwater.index, underwater, 0, color="#d62728", alpha=0.5)
    water_ax.set_title("underwater: drawdown from the running peak, %")

    months = monthly_returns(result)
    values = months.to_numpy(dtype=float)
    bound = max(np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0, 1e-9)
    image = heat_ax.imshow(values, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    heat_ax.set_xticks(range(12))
    heat_ax.set_xticklabels([str(m) for m in range(1, 13)])
    heat_ax.set_yticks(range(len(months.index)))
    heat_ax.set_yticklabels([str(y) for y in months.index])
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            heat_ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=7)
    heat_ax.set_title("monthly returns, %")
    fig.colorbar(image, ax=heat_ax, fraction=0.04)

    attribution = pnl_attribution(result)
    if attribution is None:
        attr_ax.text(0.5, 0.5, "reference curve: no options, no attribution",
                     ha="center", va="center", transform=attr_ax.transAxes)
        attr_ax.set_xticks([])
        attr_ax.set_yticks([])
    else:
        cumulative = attribution.cumsum()
        for name, colour in ATTRIBUTION_COLOURS.items():
            attr_ax.plot(cumulative.index, cumulative[name], color=colour, label=name, lw=1.2)
        attr_ax.plot(cumulative.index, cumulative["total"], color="black", lw=1.6,
                     label="total")
        attr_ax.axhline(0, color="black", lw=0.5)
        attr_ax.legend(fontsize=7, ncol=4)
    attr_ax.set_title("cumulative P&L attribution, USD")
    for ax in (sharpe_ax, water_ax, attr_ax):
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------- Markdown
def markdown_table(metrics: dict[str, dict]) -> str:
    """One row per policy; "-" where a metric does not apply."""
    header = "| policy | " + " | ".join(label for _, label, _ in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    rows = [f"| {name} | " + " | ".join(_cell(values.get(key), fmt)
                                        for key, _, fmt in TABLE_COLUMNS) + " |"
            for name, values in metrics.items()]
    return "\n".join([header, rule, *rows])


def _monthly_markdown(result: EpisodeResult) -> list[str]:
    months = monthly_returns(result)
    lines = ["| year | " + " | ".join(str(m) for m in range(1, 13)) + " |",
             "|---|" + "---:|" * 12]
    for year, row in months.iterrows():
        lines.append(f"| {year} | " + " | ".join(_cell(v, "{:.2f}") for v in row) + " |")
    return lines


def _attribution_markdown(result: EpisodeResult) -> list[str]:
    attribution = pnl_attribution(result)
    if attribution is None:
        return ["P&L attribution: " + MISSING + " (reference curve, no options)."]
    totals = attribution.sum()
    names = [*ATTRIBUTION_COLOURS, "total"]
    return ["| " + " | ".join(names) + " |", "|" + "---:|" * len(names),
            "| " + " | ".join(f"{totals[n]:,.0f}" for n in names) + " |"]


def _ledger_markdown(result: EpisodeResult) -> list[str]:
    trades = result.trades
    if result.reference_curve or not len(trades):
        return ["No trades."]
    columns = [c for c in LEDGER_COLUMNS if c in trades.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in trades.head(_LEDGER_ROWS_SHOWN).iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, pd.Timestamp):
                cells.append(str(value.date()))
            elif isinstance(value, float | np.floating):
                cells.append(_cell(float(value), "{:.4g}"))
            else:
                cells.append(MISSING if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    if len(trades) > _LEDGER_ROWS_SHOWN:
        lines.append(f"\n({len(trades) - _LEDGER_ROWS_SHOWN} more in the CSV ledger.)")
    return lines


def _comparison_markdown(comparison: dict, detail: dict) -> list[str]:
    ci = comparison["sharpe_diff_ci"]
    per = ", ".join(f"{name} {p:.3f}" for name, p in detail["spa_pvalue_per_baseline"].items())
    verdict = ("The interval includes 0: no evidence of a difference."
               if ci["low"] <= 0 <= ci["high"] else "The interval excludes 0.")
    compared = comparison.get("compared") or list(detail["spa_pvalue_per_baseline"])
    return [
        "## Does PPO beat the baselines?", "",
        f"Baselines compared: {', '.join(f'`{n}`' for n in compared)}"
        + ("" if "cash" in compared else " (not `cash`: it was not evaluated)") + ".", "",
        f"Hansen's SPA test of \"PPO beats every baseline\": p = {comparison['spa_pvalue']:.3f} "
        f"(the largest of the per-baseline SPA p-values of \"no PPO seed beats this baseline\": "
        f"{per}; a small value is evidence for PPO).", "",
        f"Sharpe({detail['ppo_curve']}) - Sharpe({comparison['best_baseline']}, the best "
        f"baseline) = {ci['estimate']:.2f}; {PERCENT_PER_UNIT * ci['level']:.0f}% stationary-bootstrap "
        f"interval [{ci['low']:.2f}, {ci['high']:.2f}] (automatic block length "
        f"{comparison['block_length_bars']} bars, {detail['reps']} resamples). {verdict}", ""]


def write_report(path: Path, title: str, metrics: dict[str, dict], document: dict,
                 results: dict[str, EpisodeResult], bars_per_year: float,
                 plots: list[Path], notes: list[str], audit: dict | None = None) -> Path:
    """``report.md``: the table, the statistics, the audit (``audit.json``'s content, when
    given), the input hashes and a tear sheet per policy."""
    lines = [f"# {title}", "", *notes, "", "## Inputs", ""]
    for key, value in document["inputs"].items():
        lines.append(f"- {key}: `{value}`")
    lines += ["", "## Policies", "", markdown_table(metrics), "",
              "PSR: probability that the true Sharpe is above 0; MinTRL: bars of this quality "
              "needed for PSR to reach 0.95 (\"-\": Sharpe not above 0). \"-\": does not "
              "apply.", ""]
    seeds = document.get("seeds")
    if seeds:
        lines += ["## PPO across seeds (median [min, max])", "",
                  "| metric | median | min | max |", "|---|---:|---:|---:|"]
        for key, stats in seeds["spread"].items():
            lines.append(f"| {key} | {stats['median']:.3f} | {stats['min']:.3f} | "
                         f"{stats['max']:.3f} |")
        interval = seeds.get("sharpe_median_interval")
        if interval is not None:
            lines += ["", f"Median Sharpe over {len(seeds['per_seed'])} seeds: "
                          f"{seeds['spread']['sharpe']['median']:.2f}; "
                          f"{PERCENT_PER_UNIT * interval['level']:.0f}% bootstrap interval of "
                          f"that median over seeds [{interval['low']:.2f}, {interval['high']:.2f}]. "
                          "Other seeds could put the median anywhere in it: a difference "
                          "smaller than its width is not a finding."]
        dsr = seeds.get("deflated_sharpe")
        lines += ["", f"Deflated Sharpe ratio of the best seed ({seeds['best_seed']}; "
                      f"probability its true Sharpe > 0 after {len(seeds['per_seed'])} "
                      f"trials): {_cell(dsr, '{:.3f}')}", ""]
    if document.get("comparison"):
        lines += _comparison_markdown(document["comparison"], document["comparison_detail"])
    if audit is not None:
        lines += audit_markdown(audit["policies"])
    if plots:
        lines += ["## Plots", ""] + [f"![{plot.stem}]({plot.name})" for plot in plots] + [""]
    for name, result in results.items():
        lines += [f"## Tear sheet: {name}", ""]
        if (path.parent / f"tearsheet_{name}.png").exists():
            lines += [f"![tearsheet_{name}](tearsheet_{name}.png)", ""]
        lines += ["Monthly returns, %:", "", *_monthly_markdown(result), "",
                  "P&L attribution over the segment, USD:", "", *_attribution_markdown(result),
                  "", "Trades:", "", *_ledger_markdown(result), ""]
    return write_text_atomic("\n".join(lines) + "\n", path)
