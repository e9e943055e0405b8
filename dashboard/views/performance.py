"""Performance: equity and drawdowns of PPO and the baselines, rolling Sharpe, monthly returns,
the metrics table, the statistical comparison and the tear sheet of one policy."""

import pandas as pd
import streamlit as st

from dashboard import analytics, charts, loaders, ui

METRIC_COLUMNS = ("total_return_pct", "annual_return_pct", "annual_vol_pct", "sharpe", "sortino",
                  "max_drawdown_pct", "calmar", "trades", "win_rate", "profit_factor",
                  "avg_pnl_per_trade_usd", "total_costs_usd", "exposure", "return_on_margin_pct",
                  "probabilistic_sharpe")


def render() -> None:
    st.title("Performance")
    picked = ui.selected_run()
    if picked is None:
        return
    label, run = picked
    st.caption(f"run: {label}")
    source = ui.eval_source_picker(run, "perf_source")
    if source is None:
        return
    curves = ui.equity_curves(str(run), source.key)
    equity = {name: frame["equity_usd"] for name, frame in curves.items()}
    drawdown = {name: analytics.drawdown_pct(series) for name, series in equity.items()}
    st.altair_chart(charts.equity_chart(equity, drawdown), width="stretch")

    st.subheader("Metrics")
    document = None
    try:
        document = ui.eval_metrics(str(run), source.key)
    except loaders.DashboardInputError as exc:
        st.warning(str(exc))
    if document is not None:
        table = pd.DataFrame.from_dict(document["policies"], orient="index")
        table = table[[c for c in METRIC_COLUMNS if c in table.columns]]
        st.dataframe(table.rename_axis("policy"))
        comparison = document.get("comparison")
        if comparison:
            st.markdown(f"**Verdict:** {loaders.verdict(comparison)}. Hansen's SPA test of "
                        "\"PPO beats every baseline\" (a small p-value is evidence for PPO); "
                        f"block length {comparison.get('block_length_bars')} bars.")
        seeds = document.get("seeds")
        if isinstance(seeds, dict) and seeds.get("per_seed"):
            st.markdown(f"**Seeds:** {len(seeds['per_seed'])}; best seed "
                        f"`{seeds.get('best_seed')}`, deflated Sharpe "
                        f"{seeds.get('deflated_sharpe')}")
            per_seed = pd.DataFrame.from_dict(seeds["per_seed"], orient="index")
            st.dataframe(per_seed[[c for c in METRIC_COLUMNS if c in per_seed.columns]]
                         .rename_axis("seed"))
        for name, why in (document.get("skipped") or {}).items():
            st.caption(f"skipped `{name}`: {why}")

    st.subheader(f"Rolling {analytics.ROLLING_SHARPE_BARS}-bar Sharpe (annualised)")
    rolling = {name: analytics.rolling_sharpe(series) for name, series in equity.items()}
    st.altair_chart(charts.line_chart(rolling, "sharpe", "rolling Sharpe", rule_at=0.0),
                    width="stretch")

    st.subheader("Tear sheet")
    names = list(curves)
    default = next((i for i, n in enumerate(names) if n.startswith("ppo")), 0)
    policy = st.selectbox("Policy", names, index=default, key="perf_policy")
    months = analytics.monthly_returns_pct(equity[policy])
    st.altair_chart(charts.heatmap(months, f"{policy}: monthly returns, %"), width="stretch")
    attribution = loaders.load_attribution(run, source, policy)
    if attribution is None:
        st.caption(ui.attribution_missing(policy, source))
    else:
        cumulative = attribution.cumsum()
        st.altair_chart(charts.line_chart(
            {c: cumulative[c] for c in cumulative.columns}, "usd",
            f"{policy}: cumulative P&L attribution, USD", rule_at=0.0), width="stretch")


ui.guarded(render)
