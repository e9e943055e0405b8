"""Positions: open and past positions on a timeline, legs, strikes and expiry, greeks over time,
P&L attribution, and each trade of the ledger with its legs (fills live in a journal: Live)."""

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import analytics, charts, loaders, ui

TIMELINE_LANE_PX = 36  # one row of the positions timeline
# The greeks' charts: short titles with units, so that they fit half the page's width.
GREEK_TITLES = {"delta_shares": "delta, shares", "gamma_shares_per_usd": "gamma, shares per USD",
                "theta_usd_per_day": "theta, USD per day",
                "vega_usd_per_vol_point": "vega, USD per vol point"}


def lanes(trades: pd.DataFrame, end: pd.Series) -> pd.Series:
    """A row label per trade: its strategy, numbered when trades of that strategy overlap in
    time (the first lane free at its open date), so that no two bars are drawn on each other."""
    labels = pd.Series(index=trades.index, dtype=object)
    for strategy, group in trades.groupby("strategy", sort=False):
        free_from: list[pd.Timestamp] = []  # per lane: when its last trade ends
        for i in group.sort_values("open_date").index:
            lane = next((k for k, until in enumerate(free_from)
                         if until < trades.at[i, "open_date"]), len(free_from))
            if lane == len(free_from):
                free_from.append(end[i])
            free_from[lane] = end[i]
            labels[i] = strategy if lane == 0 else f"{strategy} ({lane + 1})"
    return labels


def timeline(trades: pd.DataFrame, last_date: pd.Timestamp) -> alt.Chart:
    """One bar per trade from its open to its close date (still open: to the last bar), one
    row per strategy, more rows where its trades overlap."""
    frame = trades.copy()
    frame["end"] = frame["close_date"].fillna(last_date) if "close_date" in frame else last_date
    frame["status"] = "closed"
    if "close_date" in frame:
        frame.loc[frame["close_date"].isna(), "status"] = "open"
    frame["lane"] = lanes(frame, frame["end"])
    tooltip = [c for c in ("trade_id", "strategy", "open_date", "close_date", "exit_reason",
                           "contracts", "pnl_usd", "legs") if c in frame.columns]
    return alt.Chart(frame).mark_bar(height=TIMELINE_LANE_PX * 0.6).encode(
        x=alt.X("open_date:T", title=None), x2="end:T",
        y=alt.Y("lane:N", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=220)),
        color=alt.Color("pnl_usd:Q", title="P&L, USD", scale=alt.Scale(
            scheme="redyellowgreen", domainMid=0),
            legend=alt.Legend(orient="bottom", direction="horizontal", gradientLength=240)),
        stroke=alt.condition(alt.datum.status == "open", alt.value("black"), alt.value(None)),
        tooltip=tooltip,
    ).properties(title="Positions over time (one bar per trade, open to close; outlined: still "
                 "open)", height=alt.Step(TIMELINE_LANE_PX)).interactive(bind_y=False)


def strikes_chart(trades: pd.DataFrame, spot: pd.Series | None,
                  last_date: pd.Timestamp) -> alt.LayerChart:
    """Each leg's strike held from the trade's open to its close, over the underlying's spot."""
    rows = []
    for _, trade in trades.iterrows():
        end = trade["close_date"] if pd.notna(trade.get("close_date")) else last_date
        for _, leg in loaders.parse_legs(trade["legs"]).iterrows():
            rows.append({"trade_id": trade["trade_id"], "open_date": trade["open_date"],
                         "end": end, "strike": leg["strike"], "expiry": leg["expiry"],
                         "leg": f"{'long' if leg['quantity_contracts'] > 0 else 'short'} "
                                f"{leg['right']}",
                         "quantity_contracts": leg["quantity_contracts"]})
    legs = alt.Chart(pd.DataFrame(rows)).mark_rule(strokeWidth=3).encode(
        x=alt.X("open_date:T", title=None), x2="end:T",
        y=alt.Y("strike:Q", title="strike / spot", scale=alt.Scale(zero=False)),
        color=alt.Color("leg:N", title="leg"),
        tooltip=["trade_id", "leg", "quantity_contracts", "strike", "expiry:T", "open_date:T",
                 "end:T"])
    layers = [legs]
    if spot is not None:
        frame = pd.DataFrame({"date": spot.index, "spot": spot.to_numpy()})
        layers.append(alt.Chart(frame).mark_line(color="black", strokeWidth=1).encode(
            x="date:T", y="spot:Q", tooltip=["date:T", alt.Tooltip("spot:Q", format=",.2f")]))
    return alt.layer(*layers).properties(title="Legs: strikes held, and the spot (black)",
                                         height=charts.HEIGHT_PX).interactive(bind_y=False)


def render() -> None:
    st.title("Positions")
    picked = ui.selected_run()
    if picked is None:
        return
    label, run = picked
    source = ui.eval_source_picker(run, "pos_source")
    if source is None:
        return
    curves = ui.equity_curves(str(run), source.key)
    names = list(curves)
    traded = [i for i, n in enumerate(names) if "open_positions" in curves[n].columns
              and curves[n]["open_positions"].max() > 0]
    default = next((i for i, n in enumerate(names) if n.startswith("ppo")),
                   traded[0] if traded else 0)
    policy = st.selectbox("Policy", names, index=default, key="pos_policy")
    st.caption(f"run: {label}; {source.label}")
    equity = curves[policy]
    trades = loaders.load_trades(run, source, policy)
    if trades.empty:
        st.info(f"{policy}: no trades in this evaluation")
    else:
        st.altair_chart(timeline(trades, equity.index[-1]), width="stretch")
        spot = equity["spot"] if "spot" in equity.columns else None
        st.altair_chart(strikes_chart(trades, spot, equity.index[-1]), width="stretch")

    greeks = [c for c in analytics.GREEK_COLUMNS if c in equity.columns]
    if greeks:
        st.subheader("Greeks of the positions held")
        cols = st.columns(2)
        for i, column in enumerate(greeks):
            cols[i % 2].altair_chart(charts.line_chart(
                {policy: equity[column]}, column, GREEK_TITLES.get(column, column),
                height=charts.SMALL_HEIGHT_PX, y_title=None, legend=False), width="stretch")
    attribution = loaders.load_attribution(run, source, policy)
    if attribution is None:
        st.caption(ui.attribution_missing(policy, source))
    else:
        st.subheader("P&L attribution")
        totals = attribution.sum().rename("usd").to_frame().T
        st.dataframe(totals, hide_index=True)
        cumulative = attribution.cumsum()
        st.altair_chart(charts.line_chart({c: cumulative[c] for c in cumulative.columns}, "usd",
                                          "cumulative P&L attribution, USD", rule_at=0.0),
                        width="stretch")
    if trades.empty:
        return
    st.subheader("Trades")
    st.dataframe(trades, hide_index=True)
    trade_ids = trades["trade_id"].tolist()
    chosen = st.selectbox("Trade", trade_ids, key="pos_trade")
    row = trades[trades["trade_id"] == chosen].iloc[0]
    st.markdown(f"**Trade {chosen}: {row['strategy']}**, opened {row['open_date']:%Y-%m-%d}"
                + (f", closed {row['close_date']:%Y-%m-%d} ({row.get('exit_reason')})"
                   if pd.notna(row.get("close_date")) else ", still open")
                + f"; P&L {row['pnl_usd']:,.2f} USD")
    st.dataframe(loaders.parse_legs(row["legs"]), hide_index=True)
    st.dataframe(row.drop(labels=["legs"]).rename("value").astype(str).to_frame())
    st.caption("A simulated evaluation has no fills of its own: each leg fills at the close's "
               "price plus half the spread. Fills of a paper or live executor are on the Live "
               "page.")


ui.guarded(render)
