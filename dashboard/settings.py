"""Names shared by the command line and the app (no Streamlit import here)."""

ENV_RUNS = "SPYRL_DASHBOARD_RUNS"  # the runs folder the app reads
ENV_JOURNAL = "SPYRL_DASHBOARD_JOURNAL"  # the executor journal of the Live page, if any
DEFAULT_RUNS = "runs"
