"""Pure functions over the frames the loaders return: drawdowns, rolling Sharpe, monthly returns,
P&L attribution and forecast-interval coverage.

The formulas are the evaluation report's (``agents/report.py``, ``forecasters/metrics.py``),
recomputed here from the CSV and Parquet files so that the dashboard depends on files only; the
tests cross-check both.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

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
    "pnl_attribution",
    "realised_intervals",
    "rolling_sharpe",
]

ROLLING_SHARPE_BARS = 63  # about a quarter of daily bars, as in the evaluation report
ROLLING_COVERAGE_BARS = 63
PERCENT = 100.0
VOL_POINTS_PER_UNIT = 100.0  # an implied vol of 0.20 is 20 vol points
NS_PER_DAY = 86_400 * 10**9
MIN_SD = 1e-12
GREEK_COLUMNS = ("delta_shares", "gamma_shares_per_usd", "theta_usd_per_day",
                 "vega_usd_per_vol_point")
# nominal coverage (%) -> (lower, upper) quantile level of the central interval
NOMINAL_INTERVALS = {75: (0.125, 0.875), 90: (0.05, 0.95)}


def drawdown_pct(equity_usd: pd.Series) -> pd.Series:
    """Drawdown from the running peak in percent (0 at a new high, negative below it)."""
    return (equity_usd / equity_usd.cummax() - 1.0) * PERCENT


def bar_returns(equity_usd: pd.Series) -> pd.Series:
    """Simple per-bar returns, indexed by the bar that ends each return."""
    values = equity_usd.to_numpy(dtype=float)
    return pd.Series(np.diff(values) / values[:-1], index=equity_usd.index[1:])


def rolling_sharpe(equity_usd: pd.Series, window: int = ROLLING_SHARPE_BARS) -> pd.Series:
    """Annualised Sharpe over the last ``window`` bars (NaN until enough bars or when flat)."""
    returns = bar_returns(equity_usd)
    mean = returns.rolling(window).mean()
    sd = returns.rolling(window).std(ddof=1)
    per_year = bars_per_year(pd.DatetimeIndex(equity_usd.index)) if len(equity_usd) > 2 else 252.0
    return (mean / sd.where(sd > MIN_SD)) * math.sqrt(per_year)


def monthly_returns_pct(equity_usd: pd.Series) -> pd.DataFrame:
    """Compounded return of each calendar month in percent: rows years, columns 1..12.

    The first month is measured from the first equity value (the start of the episode).
    """
    index = pd.DatetimeIndex(equity_usd.index)
    month_end = equity_usd.groupby([index.year, index.month]).last()
    previous = month_end.shift(1)
    previous.iloc[0] = equity_usd.iloc[0]
    table = (PERCENT * (month_end / previous - 1)).rename("return_pct")
    table.index.names = ["year", "month"]
    return table.unstack("month").reindex(columns=range(1, 13))


def pnl_attribution(equity: pd.DataFrame) -> pd.DataFrame | None:
    """Per-bar P&L (USD) split into delta, gamma, theta, vega, costs and residual.

    ``equity`` is an ``equity_<policy>.csv`` frame (indexed by date) with the greeks of the
    positions held over each bar, ``spot``, ``atm_iv`` and ``costs_usd``. Over a bar: delta =
    delta * dS; gamma = gamma * dS^2 / 2; theta = theta per day * calendar days; vega = vega per
    vol point * change of the ATM IV in points; costs = -costs paid; residual = the rest. None
    when the file has no greeks (a reference curve such as buy-and-hold).
    """
    needed = (*GREEK_COLUMNS, "spot", "atm_iv", "costs_usd")
    if any(c not in equity.columns for c in needed):
        return None
    spot = equity["spot"].astype(float)
    d_spot = spot.diff().fillna(0.0)
    stamps = pd.DatetimeIndex(equity.index).as_unit("ns").asi8
    days = (pd.Series(stamps, index=equity.index).diff() / NS_PER_DAY).fillna(0.0)
    d_vol_points = equity["atm_iv"].astype(float).diff().fillna(0.0) * VOL_POINTS_PER_UNIT
    frame = pd.DataFrame({
        "delta": equity["delta_shares"] * d_spot,
        "gamma": 0.5 * equity["gamma_shares_per_usd"] * d_spot**2,
        "theta": equity["theta_usd_per_day"] * days,
        "vega": equity["vega_usd_per_vol_point"] * d_vol_points,
        "costs": -equity["costs_usd"],
    }, index=equity.index)
    total = equity["equity_usd"].diff().fillna(0.0)
    frame["residual"] = total - frame.sum(axis=1)
    frame["total"] = total
    return frame


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
        lo, hi = f"q{lo_level:.3f}", f"q{hi_level:.3f}"
        if lo not in rows.columns or hi not in rows.columns:
            continue
        lo_q, hi_q = rows[lo].to_numpy(float), rows[hi].to_numpy(float)
        out[f"lower_{nominal}"] = close_t * np.exp(lo_q)
        out[f"upper_{nominal}"] = close_t * np.exp(hi_q)
        r = out["log_return"].to_numpy()
        out[f"inside_{nominal}"] = (r >= lo_q) & (r <= hi_q)
    if "q0.500" in rows.columns:
        out["median"] = close_t * np.exp(rows["q0.500"].to_numpy(float))
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
                                   "nominal": nominal / PERCENT, "coverage": share}))
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
        out[f"width_{nominal}_pct"] = float(width.mean() * PERCENT)
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
