"""Pure functions over the frames the loaders return: forecast-interval coverage, and the
equity analytics of ``common.analytics`` (the report's own functions, not a copy) applied to
an equity CSV with its bars per year.

The P&L attribution is not recomputed here: ``evaluate.py`` writes the report's attribution
(``attribution_<policy>.csv``) and the dashboard shows that file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common import analytics
from common.analytics import GREEK_COLUMNS, ROLLING_SHARPE_BARS, drawdown_pct, monthly_returns_pct
from common.codecs import quantile_column
from common.units import PERCENT_PER_UNIT
from data.calendar import bars_per_year

__all__ = [
    "GREEK_COLUMNS",
    "NOMINAL_INTERVALS",
    "ROLLING_COVERAGE_BARS",
    "ROLLING_SHARPE_BARS",
    "coverage_rows",
    "drawdown_pct",
    "interval_table",
    "monthly_returns_pct",
    "realised_intervals",
    "rolling_sharpe",
]

ROLLING_COVERAGE_BARS = 63
DEFAULT_BARS_PER_YEAR = 252.0  # a curve too short to measure its bars per year


def rolling_sharpe(equity_usd: pd.Series, window: int = ROLLING_SHARPE_BARS) -> pd.Series:
    """``common.analytics.rolling_sharpe`` with the curve's own bars per year."""
    index = pd.DatetimeIndex(equity_usd.index)
    per_year = bars_per_year(index) if len(index) > 2 else DEFAULT_BARS_PER_YEAR
    return analytics.rolling_sharpe(equity_usd, per_year, window)


# nominal coverage (%) -> (lower, upper) quantile level of the central interval
NOMINAL_INTERVALS = {75: (0.125, 0.875), 90: (0.05, 0.95)}


def realised_intervals(panel: pd.DataFrame, close: pd.Series, model: str,
                       horizon: int) -> pd.DataFrame:
    """Per forecast date of one model and horizon: the target date, close at t and t+h, the
    realised log return and whether it fell inside the central 75% and 90% intervals.

    The target is ``horizon`` bars of ``close`` after the forecast date; forecasts whose target
    lies beyond the last close (unresolved) are dropped. Band prices are close_t * exp(q).
    """
    rows = panel[(panel["model"] == model) & (panel["horizon"] == horizon)]
    rows = rows.sort_values("date")
    close = close.sort_index()
    position = close.index.get_indexer(pd.DatetimeIndex(rows["date"]))
    ok = (position >= 0) & (position + horizon < len(close))
    rows, position = rows[ok], position[ok]
    close_t = close.to_numpy()[position]
    close_target = close.to_numpy()[position + horizon]
    out = pd.DataFrame({
        "date": pd.DatetimeIndex(rows["date"]),
        "target_date": close.index[position + horizon],
        "close_t": close_t,
        "close_target": close_target,
        "log_return": np.log(close_target / close_t),
    })
    for nominal, (lo_level, hi_level) in NOMINAL_INTERVALS.items():
        lo, hi = quantile_column(lo_level), quantile_column(hi_level)
        if lo not in rows.columns or hi not in rows.columns:
            continue
        lo_q, hi_q = rows[lo].to_numpy(float), rows[hi].to_numpy(float)
        out[f"lower_{nominal}"] = close_t * np.exp(lo_q)
        out[f"upper_{nominal}"] = close_t * np.exp(hi_q)
        r = out["log_return"].to_numpy()
        out[f"inside_{nominal}"] = (r >= lo_q) & (r <= hi_q)
    median = quantile_column(0.5)
    if median in rows.columns:
        out["median"] = close_t * np.exp(rows[median].to_numpy(float))
    return out.reset_index(drop=True)


def rolling_coverage(realised: pd.DataFrame,
                     window: int = ROLLING_COVERAGE_BARS) -> pd.DataFrame:
    """Share of outcomes inside each interval over the last ``window`` forecasts (long form:
    date, interval, coverage)."""
    parts = []
    for nominal in NOMINAL_INTERVALS:
        column = f"inside_{nominal}"
        if column not in realised.columns:
            continue
        share = realised[column].astype(float).rolling(window).mean()
        parts.append(pd.DataFrame({"date": realised["date"], "interval": f"{nominal}%",
                                   "nominal": nominal / PERCENT_PER_UNIT, "coverage": share}))
    if not parts:
        return pd.DataFrame(columns=["date", "interval", "nominal", "coverage"])
    return pd.concat(parts, ignore_index=True).dropna(subset=["coverage"])


def coverage_rows(realised: pd.DataFrame) -> dict:
    """Coverage (share) and mean width (% of close_t) of both intervals over ``realised``."""
    out: dict = {"n": len(realised)}
    for nominal in NOMINAL_INTERVALS:
        if f"inside_{nominal}" not in realised.columns or realised.empty:
            continue
        out[f"coverage_{nominal}"] = float(realised[f"inside_{nominal}"].mean())
        width = (realised[f"upper_{nominal}"] - realised[f"lower_{nominal}"]) / realised["close_t"]
        out[f"width_{nominal}_pct"] = float(width.mean() * PERCENT_PER_UNIT)
    return out


def interval_table(metrics: dict, breakdown: str | None = None) -> pd.DataFrame:
    """A ``forecast_eval/metrics.json`` document as rows of model, horizon[, group] with the
    coverage and width of the 75% and 90% intervals (``breakdown``: by_year, by_vol_tercile)."""
    keys = ("n", "coverage_75", "width_75_pct", "coverage_90", "width_90_pct",
            "interval_score_75", "interval_score_90")
    rows = []
    for model, horizons in sorted(metrics.items()):
        if not isinstance(horizons, dict):
            continue
        for horizon, values in sorted(horizons.items(), key=lambda kv: _as_int(kv[0])):
            if not isinstance(values, dict):
                continue
            groups = ({None: values} if breakdown is None
                      else values.get(breakdown) or {})
            for group, figures in groups.items():
                row = {"model": model, "horizon": _as_int(horizon)}
                if breakdown is not None:
                    row[breakdown.removeprefix("by_")] = group
                row.update({k: figures.get(k) for k in keys if isinstance(figures, dict)})
                rows.append(row)
    return pd.DataFrame(rows)


def _as_int(text) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0
