"""Runs: every run folder, its config, segments, seeds, headline metrics and verdict."""

import pandas as pd
import streamlit as st

from common.units import PERCENT_PER_UNIT
from dashboard import charts, loaders, ui

HEADLINE = ("total_return_pct", "sharpe", "max_drawdown_pct", "trades", "win_rate")
RESULT_METRICS = ("total_return_pct", "sharpe", "max_drawdown_pct", "trades")
SHORT = {"total_return_pct": "return %", "sharpe": "Sharpe", "max_drawdown_pct": "max DD %",
         "trades": "trades", "win_rate": "win rate"}


def summary_row(summary: loaders.RunSummary) -> dict:
    """The run's set-up: config, segments, seeds and the evaluations it holds."""
    return {"run": summary.name, "config": summary.config_name,
            **{f"{k} segment": v for k, v in summary.segments.items()},
            "seeds": summary.seeds,
            "evaluations": ", ".join(s.folder + (f" ({s.key.split(':')[1]})" if ":" in s.key
                                                 else "")
                                     for s in loaders.available_eval_sources(summary.path))}


def result_row(summary: loaders.RunSummary) -> dict:
    """PPO's headline metrics on the held-out evaluation, the best baseline and the verdict,
    in short columns so that the table fits the page (1400 px wide window)."""
    ppo = (summary.metrics or {}).get("ppo") or {}
    row = {"run": summary.name}
    row.update({f"ppo {SHORT[k]}": ppo.get(k) for k in RESULT_METRICS})
    comparison = summary.comparison or {}
    best = (summary.metrics or {}).get(comparison.get("best_baseline")) or {}
    row["best baseline"] = comparison.get("best_baseline")
    row["its Sharpe"] = best.get("sharpe")
    row["SPA p"] = comparison.get("spa_pvalue")
    row["verdict"] = loaders.short_verdict(summary.comparison) if summary.metrics else None
    return row


def render() -> None:
    st.title("Runs")
    choices = ui.run_choices()
    if not choices:
        st.info(f"No run folders under {ui.runs_root()}: train one with "
                "`python train.py --config configs/quick.yaml` or pass --runs DIR.")
        return
    summaries = [loaders.load_run_summary(path, label) for label, path in choices.items()]
    st.caption(f"{len(summaries)} run(s) under {ui.runs_root()}. Headline metrics are PPO's on "
               "the held-out evaluation (median over seeds for multi-seed runs).")
    st.dataframe(pd.DataFrame([summary_row(s) for s in summaries]), hide_index=True)
    st.subheader("Held-out results")
    st.caption("PPO against every baseline, cash included: \"beats all\" needs Hansen's SPA "
               "p < 0.05 and a Sharpe-difference interval above 0 (Performance page: details).")
    st.dataframe(pd.DataFrame([result_row(s) for s in summaries if s.metrics]),
                 hide_index=True)
    windows = {s.name: s.eval_window for s in summaries if s.metrics and s.eval_window}
    if windows:
        st.caption("Evaluated on: " + "; ".join(f"{k}: {v}" for k, v in windows.items()))
    for summary in summaries:
        for problem in summary.problems:
            st.warning(f"{summary.name}: {problem}")

    st.subheader("Compare runs")
    evaluated = [s.name for s in summaries if s.metrics]
    picked = st.multiselect("Runs to compare", evaluated, default=evaluated[:2], key="compare")
    if not picked:
        return
    rows, curves = [], {}
    for name in picked:
        summary = next(s for s in summaries if s.name == name)
        for policy, metrics in summary.metrics.items():
            rows.append({"run": name, "policy": policy,
                         **{SHORT.get(k, k): metrics.get(k)
                            for k in (*HEADLINE, "sortino", "calmar")}})
        try:
            equity = ui.equity_curves(str(summary.path), "eval")
        except loaders.DashboardInputError as exc:
            st.warning(str(exc))
            continue
        for policy, frame in equity.items():
            if policy.startswith("ppo"):
                start = float(frame["equity_usd"].iloc[0])
                curves[f"{name}: {policy}"] = PERCENT_PER_UNIT * (frame["equity_usd"] / start - 1)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if curves:
        st.altair_chart(charts.line_chart(curves, "return_pct", "PPO cumulative return, %"),
                        width="stretch")


ui.guarded(render)
