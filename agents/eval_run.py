"""The steps of ``evaluate.py``: find a run's models, choose the window, run every policy, compare
PPO with the baselines and stage the output folder.

Every check on user input happens before anything is written; the output goes to a hidden
temporary folder next to its destination and is moved into place only when complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kurtosis, skew

from agents.audit import audit_policy, entry_quote_grids
from agents.baselines import BASELINES
from agents.evaluation import EpisodeResult, bar_returns
from agents.run_folder import EvaluationInputError, seed_dirs
from agents.statistics import (
    block_length_bars,
    deflated_sharpe_ratio,
    median_interval,
    per_bar_sharpe,
    sharpe_diff_interval,
    spa_test,
)
from common.io import sha256_file

__all__ = [
    "CUSTOM_SEGMENT",
    "EvaluationInputError",
    "audit_results",
    "check_model_file",
    "compare_with_baselines",
    "input_hashes",
    "json_ready",
    "model_file",
    "parse_baselines",
    "read_panel",
    "ruined_policies",
    "seed_dirs",
    "seeds_summary",
    "staged_directory",
    "window_notes",
    "with_window",
]

log = logging.getLogger(__name__)
CUSTOM_SEGMENT = "custom"
CI_LEVEL = 0.95
_SB3_DATA_MEMBER = "data"
# Every baseline is compared, cash included ("beats cash": a mean return above zero); its flat
# series is skipped only by the block-length estimate, where it is undefined.
_NOT_COMPARED: tuple[str, ...] = ()
_IDENTICAL = 1e-15  # per-bar returns this close are the same curve: no evidence either way


def model_file(seed_dir: Path, which: str) -> Path:
    """``best_model.zip`` for ``--model best`` (an error naming it when missing: no silent
    fallback to the final weights), ``model.zip`` for ``--model final``."""
    if which == "best":
        best = seed_dir / "best_model.zip"
        if not best.exists():
            raise EvaluationInputError(
                f"{best}: missing (no validation checkpoint was saved); use --model final "
                f"to evaluate {seed_dir / 'model.zip'}")
        return best
    return seed_dir / "model.zip"


def check_model_file(path: Path, algo: str) -> None:
    """A clear error for an empty, corrupt or other-algorithm SB3 zip, before unpickling."""
    if not path.exists():
        raise EvaluationInputError(f"{path}: model file missing")
    if path.stat().st_size == 0:
        raise EvaluationInputError(f"{path}: model file is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(_SB3_DATA_MEMBER).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise EvaluationInputError(f"{path}: not a stable-baselines3 model zip ({exc})") from None
    maskable = "MaskableActorCriticPolicy" in data
    if maskable != (algo == "maskable_ppo"):
        saved = "maskable_ppo" if maskable else "ppo"
        raise EvaluationInputError(
            f"{path}: saved by {saved} but config.yaml says agent.algo: {algo}")


def read_panel(seed_dir: Path) -> pd.DataFrame:
    """The forecast panel the run was trained with."""
    path = seed_dir / "forecasts" / "panel.parquet"
    if not path.is_file():
        raise EvaluationInputError(f"{path}: forecast panel missing (the run folder is "
                                   f"incomplete; rerun train.py)")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise EvaluationInputError(f"{path}: unreadable forecast panel ({exc})") from None


def parse_baselines(text: str | None, configured: list[str]) -> list[str]:
    """``--baselines a,b`` -> names (checked against the registry); the config's when absent."""
    if text is None:
        return list(configured)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown or not names:
        raise EvaluationInputError(f"--baselines: unknown baseline(s) {unknown or [text]}; "
                                   f"expected names from {sorted(BASELINES)}")
    return names


def _date(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise EvaluationInputError(f"{flag} {text!r}: expected a date YYYY-MM-DD") from None


def with_window(cfg, frame: pd.DataFrame, start: str | None, end: str | None):
    """``cfg`` whose ``test`` segment is ``start..end`` (the ``custom`` window), after checks.

    The window must lie within the market data and start after the train segment's end, so
    that no bar the agent learned on is scored.
    """
    if start is None and end is None:
        return cfg
    if start is None or end is None:
        raise EvaluationInputError("--start and --end must be given together")
    first, last = _date(start, "--start"), _date(end, "--end")
    if last < first:
        raise EvaluationInputError(f"--end {last} is before --start {first}")
    train_end = cfg.segments.train.end
    if first <= train_end:
        raise EvaluationInputError(
            f"--start {first}: must be after the train segment's end {train_end}")
    data_first, data_last = frame.index[0].date(), frame.index[-1].date()
    if first < data_first or last > data_last:
        raise EvaluationInputError(
            f"--start/--end {first}..{last}: outside the market data {data_first}..{data_last}")
    window = cfg.segments.test.model_copy(update={"start": first, "end": last})
    segments = cfg.segments.model_copy(update={"test": window})
    return cfg.model_copy(update={"segments": segments})


def window_notes(cfg, custom: bool, model: str) -> list[str]:
    """A warning when a custom window reaches into the valid segment, on which
    ``best_model.zip`` was chosen (its score there is optimistic)."""
    window, valid = cfg.segments.test, cfg.segments.valid
    if custom and model == "best" and window.start <= valid.end and window.end >= valid.start:
        return [f"**Warning:** the window overlaps the valid segment {valid.start}..{valid.end} "
                f"on which `best_model.zip` was selected; its results there are optimistic."]
    return []


def _sha256_frame(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's columns, index and values (``data.frame_hash`` is its prefix)."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def input_hashes(seed_dir: Path, cfg, frame: pd.DataFrame) -> dict:
    """SHA-256 of the forecast panel file and of the market data used (content, and the CSV
    file itself for the ``csv`` source), so that another machine can compare."""
    hashes = {"forecast_panel_sha256": sha256_file(seed_dir / "forecasts" / "panel.parquet"),
              "market_data_sha256": _sha256_frame(frame)}
    if cfg.data.source == "csv" and cfg.data.path:
        hashes["market_csv_sha256"] = sha256_file(cfg.data.path)
    return hashes


def _returns(result: EpisodeResult, dates: pd.DatetimeIndex | None = None) -> np.ndarray:
    """Per-bar returns; with ``dates`` (the bars the returns end on), aligned on them, a
    ruined policy's missing bars counting as flat (zero return)."""
    returns = bar_returns(result)
    if dates is None:
        return returns
    series = pd.Series(returns, index=pd.DatetimeIndex(result.equity.index[1:]))
    return series.reindex(dates, fill_value=0.0).to_numpy(dtype=float)


def ruined_policies(results: dict[str, EpisodeResult], last_date) -> dict[str, str]:
    """``{policy: date}`` of each policy whose episode ended before ``last_date`` (its equity
    fell to ``env.ruin_equity_fraction`` of the start): the date of its last bar."""
    last = pd.Timestamp(last_date)
    return {name: str(pd.Timestamp(r.equity.index[-1]).date()) for name, r in results.items()
            if pd.Timestamp(r.equity.index[-1]) < last}


def compare_with_baselines(results: dict[str, EpisodeResult], ppo_labels: list[str],
                           baseline_names: list[str], bars_per_year: float,
                           reps: int, seed: int, dates: pd.DatetimeIndex | None = None
                           ) -> tuple[dict | None, dict | None]:
    """Hansen's SPA test of "PPO beats every baseline" and the Sharpe-difference interval
    against the best baseline; ``(comparison, detail)`` or ``(None, None)`` without baselines.

    For each baseline, SPA tests "no PPO seed beats this baseline" (seeds are the models, so
    picking the best seed is accounted for). "PPO beats every baseline" holds only if each of
    these nulls is rejected, so its p-value is the largest of them (an intersection-union test,
    which needs no further multiplicity correction). The block length is the Politis-White
    automatic one over all series compared. The series are aligned on ``dates`` (the bars of
    the window; by default those of the policies compared): a policy ruined before the end
    counts as flat after its last bar.
    """
    compared = [n for n in baseline_names if n not in _NOT_COMPARED]
    if not compared:
        return None, None
    if dates is None:
        dates = pd.DatetimeIndex(sorted(set().union(
            *(pd.DatetimeIndex(results[n].equity.index) for n in [*ppo_labels, *compared]))))
    returns = {name: _returns(results[name], pd.DatetimeIndex(dates)[1:])
               for name in [*ppo_labels, *compared]}
    ppo = np.column_stack([returns[label] for label in ppo_labels])
    series = [ppo[:, k] for k in range(ppo.shape[1])] + [returns[n] for n in compared]
    block = block_length_bars(*series)
    # A PPO curve identical to the baseline (e.g. flat like cash) is no evidence: p = 1
    # (the SPA statistic of all-zero differences would otherwise read as p = 0).
    pvalues = {name: 1.0 if np.all(np.abs(ppo - returns[name][:, None]) < _IDENTICAL)
               else spa_test(returns[name], ppo, block, reps, seed) for name in compared}
    sharpe = {name: per_bar_sharpe(returns[name]) for name in [*ppo_labels, *compared]}
    best_baseline = max(compared, key=sharpe.get)
    # The PPO curve compared is the single run, or the seed nearest the median Sharpe.
    median = float(np.median([sharpe[k] for k in ppo_labels]))
    label = min(ppo_labels, key=lambda k: abs(sharpe[k] - median))
    interval = sharpe_diff_interval(returns[label], returns[best_baseline],
                                    bars_per_year, block, reps, seed, CI_LEVEL)
    comparison = {"spa_pvalue": max(pvalues.values()), "sharpe_diff_ci": interval,
                  "block_length_bars": block, "best_baseline": best_baseline,
                  "compared": compared}
    detail = {"ppo_curve": label, "spa_pvalue_per_baseline": pvalues,
              "bootstrap": "stationary", "reps": reps, "seed": seed,
              "loss": "negative per-bar return", "spa_pvalue_kind": "consistent"}
    return comparison, detail


def audit_results(env, results: dict[str, EpisodeResult]) -> dict:
    """``audit.json``: the audit (:mod:`agents.audit`) of every policy that ran through
    ``env`` (reference curves have no trades of their own and are left out)."""
    band = env.cfg.strategies.max_abs_log_moneyness
    policies = {label: audit_policy(result.trades, band, entry_quote_grids(env, result.trades))
                for label, result in results.items() if not result.reference_curve}
    return {"quotes": getattr(env.quotes, "name", "model"), "max_abs_log_moneyness": band,
            "policies": policies}


def seeds_summary(results: dict[str, EpisodeResult], per_seed: dict[str, dict]) -> dict:
    """Median and range of each metric over seeds, and the deflated Sharpe of the best seed."""
    keys = [k for k, v in next(iter(per_seed.values())).items() if isinstance(v, int | float)]
    spread = {}
    for key in keys:
        values = [m[key] for m in per_seed.values() if m[key] is not None]
        if values:
            spread[key] = {"median": float(np.median(values)), "min": float(np.min(values)),
                           "max": float(np.max(values))}
    returns = {label: _returns(results[label]) for label in per_seed}
    sharpes = {label: per_bar_sharpe(r) for label, r in returns.items()}
    best = max(sharpes, key=sharpes.get)
    r = returns[best]
    dsr = deflated_sharpe_ratio(sharpes[best], np.asarray(list(sharpes.values())), len(r),
                                skew=float(skew(r)), kurtosis=float(kurtosis(r, fisher=False)))
    low, high = median_interval([m["sharpe"] for m in per_seed.values()])
    return {"per_seed": per_seed, "spread": spread, "best_seed": best,
            "deflated_sharpe": None if np.isnan(dsr) else dsr,
            "sharpe_median_interval": {"low": low, "high": high, "level": 0.95}}


@contextlib.contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """A temporary folder next to ``final`` that replaces it only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        old.rmdir()
        final.rename(old)
    staging.chmod(0o755)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def json_ready(value):
    """Plain JSON values: numpy scalars become Python numbers, NaN and infinities null."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value
