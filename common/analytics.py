"""Performance analytics of an equity curve, computed once for the evaluation report and the
dashboard: per-bar returns, rolling Sharpe, monthly returns, drawdown and the P&L attribution.

Pure functions over pandas Series and DataFrames (no files, no plotting). ``agents/report.py``
calls them on an episode; ``evaluate.py`` writes the attribution they compute next to the
ledgers (``attribution_<policy>.csv``), and the dashboard shows that file and calls the same
functions on the equity CSVs, so both show the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from common.units import PERCENT_PER_UNIT

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "GREEK_COLUMNS",
    "ROLLING_SHARPE_BARS",
    "bar_returns",
    "drawdown_pct",
    "monthly_returns_pct",
    "pnl_attribution",
    "rolling_sharpe",
]

ROLLING_SHARPE_BARS = 63  # about a quarter of daily bars
VOL_POINTS_PER_UNIT = 100.0  # an implied vol of 0.20 is 20 vol points
NS_PER_DAY = 86_400 * 10**9
MIN_SD = 1e-12
GREEK_COLUMNS = ("delta_shares", "gamma_shares_per_usd", "theta_usd_per_day",
                 "vega_usd_per_vol_point")
ATTRIBUTION_COLUMNS = ("delta", "gamma", "theta", "vega", "costs", "residual", "total")


def bar_returns(equity_usd: pd.Series) -> pd.Series:
    """Simple per-bar returns, indexed by the bar that ends each return."""
    values = equity_usd.to_numpy(dtype=float)
    return pd.Series(np.diff(values) / values[:-1], index=equity_usd.index[1:])


def drawdown_pct(equity_usd: pd.Series) -> pd.Series:
    """Drawdown from the running peak in percent (0 at a new high, negative below it)."""
    return (equity_usd / equity_usd.cummax() - 1.0) * PERCENT_PER_UNIT


def rolling_sharpe(equity_usd: pd.Series, bars_per_year: float,
                   window: int = ROLLING_SHARPE_BARS) -> pd.Series:
    """Annualised Sharpe over the last ``window`` bars (NaN until enough bars or when flat)."""
    returns = bar_returns(equity_usd)
    mean = returns.rolling(window).mean()
    sd = returns.rolling(window).std(ddof=1)
    return (mean / sd.where(sd > MIN_SD)) * math.sqrt(bars_per_year)


def monthly_returns_pct(equity_usd: pd.Series) -> pd.DataFrame:
    """Compounded return of each calendar month in percent: rows years, columns 1..12.

    The first month is measured from the first equity value (the start of the episode).
    """
    index = pd.DatetimeIndex(equity_usd.index)
    month_end = equity_usd.groupby([index.year, index.month]).last()
    previous = month_end.shift(1)
    previous.iloc[0] = equity_usd.iloc[0]
    table = (PERCENT_PER_UNIT * (month_end / previous - 1)).rename("return_pct")
    table.index.names = ["year", "month"]
    return table.unstack("month").reindex(columns=range(1, 13))


def pnl_attribution(equity_usd: pd.Series, spot: pd.Series, atm_iv: pd.Series,
                    greeks_held: pd.DataFrame, costs_paid_usd: pd.Series) -> pd.DataFrame:
    """Per-bar P&L (USD) split into delta, gamma, theta, vega, costs and residual, plus total.

    All inputs share one date index. ``greeks_held`` holds ``GREEK_COLUMNS`` of the positions
    held over the bar that ends at each row (marked at its start); ``costs_paid_usd`` is what
    the bar paid in commissions and half-spreads (per bar, not cumulative). Over a bar from
    t-1 to t: delta = delta * dS; gamma = gamma * dS^2 / 2; theta = theta per day * calendar
    days; vega = vega per vol point * change of the ATM implied vol in points (a parallel
    shift of the smile); costs = -costs paid; residual = the equity change not explained
    (higher-order terms, smile moves, settlement and positions closed inside the bar).
    """
    d_spot = spot.astype(float).diff().fillna(0.0)
    stamps = pd.DatetimeIndex(spot.index).as_unit("ns").asi8
    days = (pd.Series(stamps, index=spot.index).diff() / NS_PER_DAY).fillna(0.0)
    d_vol_points = atm_iv.astype(float).diff().fillna(0.0) * VOL_POINTS_PER_UNIT
    frame = pd.DataFrame({
        "delta": greeks_held["delta_shares"] * d_spot,
        "gamma": 0.5 * greeks_held["gamma_shares_per_usd"] * d_spot**2,
        "theta": greeks_held["theta_usd_per_day"] * days,
        "vega": greeks_held["vega_usd_per_vol_point"] * d_vol_points,
        "costs": -costs_paid_usd.astype(float),
    }, index=spot.index)
    total = equity_usd.astype(float).diff().fillna(0.0)
    frame["residual"] = total - frame.sum(axis=1)
    frame["total"] = total
    return frame
