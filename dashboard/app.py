"""The Streamlit entry point: ``python -m dashboard`` serves it (``streamlit run`` works too,
with the runs folder and journal in $SPYRL_DASHBOARD_RUNS / $SPYRL_DASHBOARD_JOURNAL)."""

from pathlib import Path

import streamlit as st

from dashboard import ui

VIEWS = Path(__file__).parent / "views"
PAGES = [
    st.Page(VIEWS / "runs.py", title="Runs", url_path="runs", default=True),
    st.Page(VIEWS / "performance.py", title="Performance", url_path="performance"),
    st.Page(VIEWS / "forecasts.py", title="Forecasts", url_path="forecasts"),
    st.Page(VIEWS / "positions.py", title="Positions", url_path="positions"),
    st.Page(VIEWS / "live.py", title="Live", url_path="live"),
    st.Page(VIEWS / "training.py", title="Training", url_path="training"),
]

st.set_page_config(page_title="SPY options RL", layout="wide")
page = st.navigation(PAGES)
ui.run_selector()
st.sidebar.caption(f"runs folder: {ui.runs_root()}")
if ui.journal_path() is not None:
    st.sidebar.caption(f"journal: {ui.journal_path()}")
page.run()
