"""What every page shares: the inputs (runs folder, journal), the selected run, the evaluation
picker, and the guard that turns a bad input into a message on the page instead of a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from common.errors import UserInputError
from dashboard import loaders
from dashboard.settings import DEFAULT_RUNS, ENV_JOURNAL, ENV_RUNS

__all__ = ["ENV_JOURNAL", "ENV_RUNS", "attribution_missing", "eval_source_picker", "guarded",
           "journal_path", "runs_root", "selected_run", "show_problems"]

RUN_KEY = "run"
CACHE_TTL_S = 10  # files change while a run trains or evaluates; cached reads expire soon


def runs_root() -> Path:
    return Path(os.environ.get(ENV_RUNS, DEFAULT_RUNS))


def journal_path() -> Path | None:
    value = os.environ.get(ENV_JOURNAL)
    return Path(value) if value else None


def guarded(render: Callable[[], None]) -> None:
    """Run a page body; a bad input file shows as one error line, never a traceback."""
    try:
        render()
    except (UserInputError, OSError) as exc:
        st.error(str(exc))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        # A file that parsed but does not hold what its writer writes (a key or column
        # missing, a value of the wrong type): one line on the page, not a traceback.
        st.error(f"unexpected content in the input files: {type(exc).__name__}: {exc}")


def show_problems(problems) -> None:
    for problem in problems:
        st.warning(problem)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _find_runs(root: str) -> list[str]:
    return [str(p) for p in loaders.find_runs(Path(root))]


def run_choices() -> dict[str, Path]:
    """Run label -> folder of every run under the runs folder (cached briefly)."""
    root = runs_root()
    return {loaders.run_label(Path(p), root): Path(p) for p in _find_runs(str(root))}


def run_selector() -> None:
    """The sidebar's run picker (kept in the URL as ``?run=NAME``)."""
    try:
        choices = run_choices()
    except loaders.DashboardInputError as exc:
        st.sidebar.error(str(exc))
        return
    if not choices:
        st.sidebar.warning(f"No run folders (with a config.yaml) under {runs_root()}")
        return
    labels = list(choices)
    wanted = st.query_params.get(RUN_KEY)
    if RUN_KEY not in st.session_state or st.session_state[RUN_KEY] not in labels:
        st.session_state[RUN_KEY] = wanted if wanted in labels else labels[0]
    label = st.sidebar.selectbox("Run", labels, key=RUN_KEY)
    st.query_params[RUN_KEY] = label


def selected_run() -> tuple[str, Path] | None:
    """The run picked in the sidebar, or None (with a message on the page)."""
    try:
        choices = run_choices()
    except loaders.DashboardInputError as exc:
        st.error(str(exc))
        return None
    label = st.session_state.get(RUN_KEY)
    if label not in choices:
        st.info(f"No run selected: no run folders under {runs_root()} "
                "(pass --runs DIR; a run folder holds config.yaml)")
        return None
    return label, choices[label]


def eval_source_picker(run: Path, key: str) -> loaders.EvalSource | None:
    """Pick one of the run's evaluations (eval/, eval_chain/ chain or model quotes)."""
    sources = loaders.available_eval_sources(run)
    if not sources:
        problem = loaders.eval_folder_problem(run)
        if problem:
            st.error(problem)
        else:
            st.info(f"{run}: no evaluation yet (run `python evaluate.py --run {run}`)")
        return None
    labels = [s.label for s in sources]
    choice = st.selectbox("Evaluation", labels, key=key) if len(sources) > 1 else labels[0]
    return sources[labels.index(choice)]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def equity_curves(run: str, source_key: str) -> dict[str, pd.DataFrame]:
    source = next(s for s in loaders.EVAL_SOURCES if s.key == source_key)
    return loaders.load_equity_curves(Path(run), source)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def eval_metrics(run: str, source_key: str) -> dict:
    source = next(s for s in loaders.EVAL_SOURCES if s.key == source_key)
    return loaders.load_eval_metrics(Path(run), source)


def attribution_missing(policy: str, source: loaders.EvalSource) -> str:
    """Why a policy shows no P&L attribution: its evaluation folder holds no
    ``attribution_<policy>.csv`` (the report's attribution, written by evaluate.py)."""
    return (f"{policy}: no P&L attribution (no attribution_{policy}{source.suffix}.csv in "
            f"{source.folder}/): a reference curve such as buy_and_hold has none; an "
            f"evaluation made before the file existed needs evaluate.py again")
