"""Live: the executor's journal (positions and greeks, orders and fills, refusals, equity today
against the daily loss limit), re-read every few seconds without locking it."""

import json

import pandas as pd
import streamlit as st

from common.units import PERCENT_PER_UNIT
from dashboard import charts, journal, loaders, ui

REFRESH_S = 3.0


def legs_table(text: str) -> pd.DataFrame:
    try:
        return pd.DataFrame(json.loads(text))
    except (TypeError, ValueError) as exc:
        raise loaders.DashboardInputError(f"journal legs {text!r}: not a JSON list") from exc


@st.fragment(run_every=REFRESH_S)
def live_view() -> None:
    ui.guarded(_render_snapshot)


def _render_snapshot() -> None:
    path = ui.journal_path()
    snap = journal.load_journal(path)
    ui.show_problems(snap.problems)
    meta = snap.meta
    st.caption(" · ".join(f"{k}: {meta[k]}" for k in ("run", "policy", "mode", "broker",
                                                       "segment", "started_at") if k in meta))
    limit = snap.limits.get(journal.LIMIT_KEY)
    status = journal.daily_loss_status(snap.equity, float(limit) if limit is not None else None)
    cols = st.columns(4)
    if status["equity_usd"] is None:
        st.info("No equity rows yet.")
    else:
        cols[0].metric("Equity, USD", f"{status['equity_usd']:,.2f}",
                       f"{status['pnl_usd']:,.2f} today")
        cols[1].metric("Daily loss limit, USD",
                       "none" if limit is None else f"{float(limit):,.2f}")
        cols[2].metric("Limit used", "-" if status["used_share"] is None
                       else f"{PERCENT_PER_UNIT * status['used_share']:.1f}%")
        last = snap.equity.iloc[-1]
        cols[3].metric("Open positions", int(last["open_positions"]))
        if status["breached"]:
            st.error(f"Daily loss limit reached: {status['pnl_usd']:,.2f} USD on {status['day']}")
        elif status["used_share"] is not None:
            st.progress(min(1.0, status["used_share"]),
                        text=f"today's loss against the limit ({status['day']})")
        greeks = {k: last.get(k) for k in ("delta_shares", "gamma_shares_per_usd",
                                           "theta_usd_per_day", "vega_usd_per_vol_point")}
        st.dataframe(pd.DataFrame([greeks]), hide_index=True)
        equity = snap.equity.set_index("bar_time")["equity_usd"]
        equity.index = equity.index.tz_localize(None)
        equity.index.name = "date"
        st.altair_chart(charts.line_chart({"equity": equity}, "equity_usd", "Equity, USD",
                                          height=charts.SMALL_HEIGHT_PX), width="stretch")
    st.subheader("Current positions")
    current = snap.open_positions
    if current.empty:
        st.caption("none")
    else:
        st.dataframe(current.drop(columns=["legs"]), hide_index=True)
        for _, row in current.iterrows():
            with st.expander(f"trade {row['trade_id']}: {row['strategy']} legs"):
                st.dataframe(legs_table(row["legs"]), hide_index=True)
    st.subheader("Orders")
    st.dataframe(snap.orders.sort_values("bar_index", ascending=False), hide_index=True)
    if not snap.orders.empty:
        order_id = st.selectbox("Order: fills", snap.orders["client_order_id"].tolist(),
                                key="live_order")
        order = snap.orders[snap.orders["client_order_id"] == order_id].iloc[0]
        st.dataframe(legs_table(order["legs"]), hide_index=True)
        st.dataframe(snap.fills[snap.fills["client_order_id"] == order_id], hide_index=True)
    st.subheader("Fills")
    st.dataframe(snap.fills.sort_values("bar_index", ascending=False), hide_index=True)
    st.subheader("Risk-manager refusals")
    if snap.refusals.empty:
        st.caption("none")
    else:
        st.dataframe(snap.refusals.sort_values("id", ascending=False), hide_index=True)
    st.subheader("Decisions")
    st.dataframe(snap.decisions.sort_values("bar_index", ascending=False).head(50),
                 hide_index=True)


def render() -> None:
    st.title("Live")
    if ui.journal_path() is None:
        st.info("No journal: start the dashboard with --journal PATH (the executor's SQLite "
                "journal) to watch it.")
        return
    st.caption(f"journal: {ui.journal_path()} (read-only, refreshed every {REFRESH_S:g} s)")
    live_view()


ui.guarded(render)
