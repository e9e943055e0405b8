"""Read-only loaders of the files a run folder holds; every bad input is a ``DashboardInputError``.

A run folder is a directory with a ``config.yaml`` written by ``train.py`` (not a ``seed_*``
folder of a multi-seed run). Loaders open files for reading only and never create, lock or
rewrite anything. Each error message names the file and what was expected, so a page can show it
as one line instead of a traceback.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from common.analytics import ATTRIBUTION_COLUMNS
from common.codecs import parse_ledger_legs, parse_quantile_column
from common.errors import UserInputError

__all__ = [
    "DashboardInputError",
    "EVAL_SOURCES",
    "EvalSource",
    "RunSummary",
    "available_eval_sources",
    "eval_folder_problem",
    "find_runs",
    "load_attribution",
    "load_equity_curves",
    "load_eval_metrics",
    "load_forecast_eval",
    "load_market_close",
    "load_panel",
    "load_run_summary",
    "load_trades",
    "parse_legs",
    "read_json",
    "read_yaml",
    "short_verdict",
    "verdict",
]

CONFIG_NAME = "config.yaml"
MAX_SEARCH_DEPTH = 3
SIGNIFICANCE_LEVEL = 0.05
EQUITY_REQUIRED = ("date", "equity_usd")
TRADES_REQUIRED = ("trade_id", "strategy", "legs", "open_date", "pnl_usd")
PANEL_REQUIRED = ("date", "model", "horizon")


class DashboardInputError(UserInputError):
    """A run folder or journal file is missing or malformed."""


@dataclass(frozen=True)
class EvalSource:
    """One evaluation of a run: ``eval/`` or one quote kind of ``eval_chain/``."""

    key: str  # eval | eval_chain:chain | eval_chain:model
    label: str
    folder: str  # relative to the run folder
    suffix: str  # appended to the policy name in equity_/trades_ file names ("" or "_chain")


EVAL_SOURCES = (
    EvalSource("eval", "held-out evaluation (eval/)", "eval", ""),
    EvalSource("eval_chain:chain", "real option quotes (eval_chain/, chain)", "eval_chain",
               "_chain"),
    EvalSource("eval_chain:model", "model quotes on the chain's dates (eval_chain/, model)",
               "eval_chain", "_model"),
)


@dataclass(frozen=True)
class RunSummary:
    """What the Runs page shows of one run folder."""

    name: str
    path: Path
    config_name: str | None
    segments: dict = field(default_factory=dict)  # name -> "start..end"
    seeds: int = 1
    metrics: dict | None = None  # eval/metrics.json "policies"
    comparison: dict | None = None
    eval_window: str | None = None
    problems: tuple[str, ...] = ()


# ------------------------------------------------------------------------------ small readers
def read_json(path: Path) -> dict:
    """A JSON object from ``path``; a clear error when missing or malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise DashboardInputError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DashboardInputError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DashboardInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise DashboardInputError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_yaml(path: Path) -> dict:
    """A YAML mapping from ``path``; a clear error when missing or malformed."""
    path = Path(path)
    try:
        value = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise DashboardInputError(f"{path}: file not found") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise DashboardInputError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(value, dict):
        raise DashboardInputError(f"{path}: expected a YAML mapping")
    return value


def _read_csv(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise DashboardInputError(f"{path}: {what} not found") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DashboardInputError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DashboardInputError(f"{path}: column(s) {', '.join(missing)} missing "
                                  f"(expected a {what} with {', '.join(required)})")
    return frame


def _parse_dates(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    parsed = pd.to_datetime(frame[column], errors="coerce")
    bad = parsed.isna() & frame[column].notna()
    if bad.any():
        first = frame.loc[bad, column].iloc[0]
        raise DashboardInputError(f"{path}: column '{column}' has {int(bad.sum())} value(s) "
                                  f"that are not dates, first {first!r}")
    return parsed


# ------------------------------------------------------------------------------ runs
def find_runs(root: Path) -> list[Path]:
    """Run folders under ``root`` (``root`` itself included), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DashboardInputError(f"--runs {root}: no such folder")
    found: list[Path] = []
    frontier = [root]
    for _ in range(MAX_SEARCH_DEPTH + 1):
        nxt = []
        for folder in frontier:
            if (folder / CONFIG_NAME).is_file() and not folder.name.startswith("seed_"):
                found.append(folder)
                continue
            try:
                nxt += [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
            except OSError:
                continue
        frontier = sorted(nxt)
    return sorted(found)


def seed_folders(run: Path) -> list[Path]:
    """The ``seed_*`` folders of a multi-seed run (empty for a single-seed run)."""
    return sorted(p for p in Path(run).glob("seed_*") if p.is_dir())


def run_label(run: Path, root: Path) -> str:
    """The run's name as the pages show it: its path relative to the runs folder."""
    run, root = Path(run), Path(root)
    try:
        rel = run.relative_to(root)
    except ValueError:
        return run.name
    return run.name if str(rel) == "." else str(rel)


def load_run_summary(run: Path, label: str | None = None) -> RunSummary:
    """Config name, segments, seeds and the evaluation's headline metrics of one run.

    A missing or malformed file is recorded in ``problems`` rather than raised, so one bad run
    does not hide the others on the Runs page.
    """
    run = Path(run)
    problems: list[str] = []
    config_name, segments = None, {}
    try:
        config = read_yaml(run / CONFIG_NAME)
        config_name = str(config.get("name")) if config.get("name") is not None else None
        for name, window in (config.get("segments") or {}).items():
            if isinstance(window, dict):
                segments[name] = f"{window.get('start')}..{window.get('end')}"
    except DashboardInputError as exc:
        problems.append(str(exc))
    metrics = comparison = window = None
    seeds = max(1, len(seed_folders(run)))
    metrics_path = run / "eval" / "metrics.json"
    if metrics_path.exists():
        try:
            document = load_eval_metrics(run, EVAL_SOURCES[0])
            metrics = document["policies"]
            comparison = document.get("comparison")
            if document.get("start"):
                window = f"{document.get('segment', '')} {document['start']}..{document['end']}"
        except DashboardInputError as exc:
            problems.append(str(exc))
    else:
        problems.append(f"{metrics_path}: not evaluated yet (run evaluate.py --run {run})")
    return RunSummary(label or run.name, run, config_name, segments, seeds, metrics, comparison,
                      window, tuple(problems))


def verdict(comparison: dict | None) -> str:
    """One line: does the evaluation show PPO beating every baseline, and was cash among
    them (``comparison["compared"]``)?"""
    if not comparison:
        return "no comparison (no baselines evaluated)"
    p = comparison.get("spa_pvalue")
    ci = comparison.get("sharpe_diff_ci") or {}
    if not isinstance(p, int | float) or not math.isfinite(p):
        return "no SPA p-value"
    low, high = ci.get("low"), ci.get("high")
    interval = (f"; Sharpe diff vs {comparison.get('best_baseline')} "
                f"[{low:.2f}, {high:.2f}]" if isinstance(low, int | float)
                and isinstance(high, int | float) else "")
    compared = comparison.get("compared")
    # Evaluations before cash was compared have no "compared" list: cash was left out.
    which = "incl. cash" if isinstance(compared, list) and "cash" in compared else "excl. cash"
    if p < SIGNIFICANCE_LEVEL and isinstance(low, int | float) and low > 0:
        return f"PPO beats every baseline, {which} (SPA p = {p:.3f}{interval})"
    return f"no evidence PPO beats every baseline, {which} (SPA p = {p:.3f}{interval})"


def short_verdict(comparison: dict | None) -> str:
    """The verdict in a few words for a table cell (``verdict`` has the figures)."""
    text = verdict(comparison)
    if text.startswith("PPO beats"):
        return "beats all" + (", incl. cash" if "incl. cash" in text else ", excl. cash")
    if text.startswith("no evidence"):
        return "no evidence" + (", incl. cash" if "incl. cash" in text else ", excl. cash")
    return text


# ------------------------------------------------------------------------------ evaluation
def available_eval_sources(run: Path) -> list[EvalSource]:
    """The evaluations this run folder holds, in ``EVAL_SOURCES`` order."""
    run = Path(run)
    out = []
    for source in EVAL_SOURCES:
        if any((run / source.folder).glob(f"equity_*{source.suffix}.csv")):
            out.append(source)
    return out


def eval_folder_problem(run: Path) -> str | None:
    """Why an evaluation folder that exists shows nothing (no equity CSVs; its metrics.json
    malformed or missing), or None when the run has no evaluation folder at all."""
    for source in EVAL_SOURCES:
        folder = Path(run) / source.folder
        if not folder.is_dir():
            continue
        try:
            load_eval_metrics(run, source)
        except DashboardInputError as exc:
            return str(exc)
        return f"{folder}: no equity_*{source.suffix}.csv files (an incomplete evaluation)"
    return None


def load_eval_metrics(run: Path, source: EvalSource) -> dict:
    """``{"policies": {name: metrics}, ...}`` of an evaluation.

    ``eval_chain/metrics.json`` maps each policy to ``{"chain": ..., "model": ...}``; it is
    reshaped to the same form as ``eval/metrics.json`` for the chosen quote kind.
    """
    path = Path(run) / source.folder / "metrics.json"
    document = read_json(path)
    if source.folder == "eval_chain":
        kind = source.key.split(":", 1)[1]
        policies = {name: value[kind] for name, value in document.items()
                    if isinstance(value, dict) and isinstance(value.get(kind), dict)}
        if not policies:
            raise DashboardInputError(f"{path}: no policy with '{kind}' metrics")
        return {"policies": policies, "skipped": document.get("skipped", {})}
    policies = document.get("policies")
    if not isinstance(policies, dict) or not all(isinstance(v, dict) for v in policies.values()):
        raise DashboardInputError(f"{path}: key 'policies' missing or not a mapping of "
                                  "policy -> metrics")
    return document


def load_equity_curves(run: Path, source: EvalSource) -> dict[str, pd.DataFrame]:
    """Every ``equity_<policy>.csv`` of an evaluation, indexed by date, sorted by policy."""
    folder = Path(run) / source.folder
    if not folder.is_dir():
        raise DashboardInputError(f"{folder}: no such folder (run evaluate.py first)")
    curves = {}
    pattern = re.compile(rf"^equity_(.+){re.escape(source.suffix)}\.csv$")
    for path in sorted(folder.glob("equity_*.csv")):
        match = pattern.match(path.name)
        if not match:
            continue
        frame = _read_csv(path, EQUITY_REQUIRED, "equity curve")
        frame["date"] = _parse_dates(frame, "date", path)
        equity = pd.to_numeric(frame["equity_usd"], errors="coerce")
        if equity.isna().any() or (equity <= 0).any():
            raise DashboardInputError(f"{path}: column 'equity_usd' must be positive numbers")
        frame["equity_usd"] = equity
        curves[match.group(1)] = frame.set_index("date").sort_index()
    if not curves:
        raise DashboardInputError(f"{folder}: no equity_*{source.suffix}.csv files")
    return curves


def load_attribution(run: Path, source: EvalSource, policy: str) -> pd.DataFrame | None:
    """``attribution_<policy>.csv``: the per-bar P&L attribution (USD) that ``evaluate.py``
    computed for its report (``common.analytics.pnl_attribution``), indexed by date. None
    when the evaluation wrote none (a reference curve, or an evaluation folder from before
    the file existed: the page says so)."""
    path = Path(run) / source.folder / f"attribution_{policy}{source.suffix}.csv"
    if not path.is_file():
        return None
    frame = _read_csv(path, ("date", *ATTRIBUTION_COLUMNS), "P&L attribution")
    frame["date"] = _parse_dates(frame, "date", path)
    values = frame[list(ATTRIBUTION_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any():
        raise DashboardInputError(f"{path}: columns {', '.join(ATTRIBUTION_COLUMNS)} must be "
                                  f"numbers")
    return values.set_index(frame["date"]).sort_index()


def load_trades(run: Path, source: EvalSource, policy: str) -> pd.DataFrame:
    """The trade ledger of one policy (empty frame when it never traded)."""
    path = Path(run) / source.folder / f"trades_{policy}{source.suffix}.csv"
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise DashboardInputError(f"{path}: trade ledger not found") from exc
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(TRADES_REQUIRED))
    except (OSError, ValueError) as exc:
        raise DashboardInputError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in TRADES_REQUIRED if c not in frame.columns]
    if missing and len(frame.columns) > 0:
        raise DashboardInputError(f"{path}: column(s) {', '.join(missing)} missing")
    for column in ("open_date", "close_date"):
        if column in frame.columns:
            frame[column] = _parse_dates(frame, column, path)
    return frame


def parse_legs(text: str) -> pd.DataFrame:
    """The ledger's ``legs`` cell (``-5 put 2785 2019-05-24;+5 call ...``) as rows of
    quantity_contracts, right, strike, expiry."""
    try:
        legs = parse_ledger_legs(text)
    except ValueError as exc:
        raise DashboardInputError(str(exc)) from None
    rows = [{"quantity_contracts": leg.quantity_contracts, "right": leg.option_type,
             "strike": leg.strike, "expiry": leg.expiry} for leg in legs]
    return pd.DataFrame(rows, columns=["quantity_contracts", "right", "strike", "expiry"])


# ------------------------------------------------------------------------------ forecasts
def load_panel(run: Path) -> pd.DataFrame:
    """The run's forecast panel (long: date, model, horizon, q...); quantile columns sorted."""
    path = Path(run) / "forecasts" / "panel.parquet"
    try:
        panel = pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise DashboardInputError(f"{path}: forecast panel not found") from exc
    except (OSError, ValueError) as exc:
        raise DashboardInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in PANEL_REQUIRED if c not in panel.columns]
    if missing:
        raise DashboardInputError(f"{path}: column(s) {', '.join(missing)} missing")
    quantiles = sorted((c for c in panel.columns if parse_quantile_column(c) is not None),
                       key=parse_quantile_column)
    if not quantiles:
        raise DashboardInputError(f"{path}: no quantile columns (expected q0.050 ... q0.950)")
    panel = panel[[*PANEL_REQUIRED, *quantiles]].copy()
    panel["date"] = pd.to_datetime(panel["date"])
    return panel


def quantile_column(panel: pd.DataFrame, level: float) -> str | None:
    """The panel's column for quantile ``level`` (e.g. 0.05 -> 'q0.050'), None if absent."""
    for column in panel.columns:
        found = parse_quantile_column(column)
        if found is not None and abs(found - level) < 1e-9:
            return column
    return None


def load_market_close(run: Path, config: dict) -> pd.Series:
    """The run's close prices, read from its configured local data source (embedded or CSV).

    A yfinance run's prices would need the network, so they are not fetched here.
    """
    # Imported here on purpose: only the Forecasts page needs the data package (and pandas-ta
    # style dependencies); no import cycle is hidden.
    from data.market import load_market

    data = config.get("data") or {}
    source = data.get("source", "embedded")
    if source not in ("embedded", "csv"):
        raise DashboardInputError(f"{Path(run) / CONFIG_NAME}: data.source '{source}' needs the "
                                  "network; prices are shown only for embedded or csv data")
    options = {"start": data.get("start"), "end": data.get("end")}
    if source == "csv":
        options.update(path=data.get("path"), date_format=data.get("date_format"))
    try:
        frame = load_market(source, **options)
    except (UserInputError, OSError) as exc:
        raise DashboardInputError(f"{Path(run) / CONFIG_NAME}: market data: {exc}") from exc
    return frame["close"].astype(float)


def load_forecast_eval(run: Path) -> dict | None:
    """``forecast_eval/metrics.json`` of the run, None when the run has none."""
    path = Path(run) / "forecast_eval" / "metrics.json"
    return read_json(path) if path.exists() else None
