"""Per-date market arrays precomputed once per environment (never per step).

Everything in a row ``i`` is known at the close of ``dates[i]``: spot, the at-the-money implied
volatility (``options.surface.atm_iv_series``, causal), the rate, causal features and the
out-of-sample forecast made after that close. The observation's market block is assembled here as
one float32 matrix from the observation table (:func:`envs.observations.market_entries`), so that
``step`` copies a row instead of recomputing it.

Decision times: a daily bar's is its session close (16:00 New York, or the early close, from
``exchange_calendars``). Intraday bars carry their stamp convention in ``frame.attrs["bar_stamp"]``:
``"start"`` (yfinance's, and the default for intraday frames) or ``"end"``; a bar's decision time
is its end, so a session's last bar ends at the close and expiries settle on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.errors import UserInputError
from data.calendar import bar_minutes, bars_per_year
from envs.observations import MARKET_FEATURES, MarketContext, market_entries
from forecasters.panel import ForecastPanel
from options.calendar import listed_expiries, timestamp_close_ns
from options.quotes import MarketBars
from options.surface import SurfaceConfig, atm_iv_series

__all__ = ["BAR_STAMPS", "MarketPanel", "MarketPanelError", "bar_close_ns", "build_market_panel"]


class MarketPanelError(UserInputError):
    """A segment or date range that the data, features or forecasts cannot fill."""


BAR_STAMPS = ("start", "end")
ATM_IV_CHANGE_BARS = 5  # the observation's ATM vol change is over this many bars


def bar_close_ns(index: pd.DatetimeIndex, bar_stamp: str | None = None) -> np.ndarray:
    """Decision time (bar end) of every bar, int64 ns of New York wall time.

    Daily bars end at their session's close (early closes included). Intraday bars end at their
    stamp (``bar_stamp="end"``) or one bar interval after it (``"start"``, the default).
    """
    minutes = bar_minutes(index)
    if minutes is None:
        return np.array([timestamp_close_ns(ts.normalize()) for ts in index], dtype="int64")
    stamp = bar_stamp or "start"
    if stamp not in BAR_STAMPS:
        raise ValueError(f"frame.attrs['bar_stamp'] must be one of {BAR_STAMPS}, got {stamp!r}")
    if index.tz is not None:
        index = index.tz_convert("America/New_York").tz_localize(None)
    values = index.as_unit("ns").asi8.astype("int64")
    if stamp == "start":
        values = values + int(round(minutes * 60)) * 10**9
    return values


@dataclass(frozen=True)
class MarketPanel:
    """Arrays over the tradable dates of one segment (row i = the close of dates[i])."""

    dates: pd.DatetimeIndex
    close_ns: np.ndarray  # int64 ns of each bar's decision time (a daily bar = its 16:00 close)
    spot: np.ndarray
    atm_iv: np.ndarray
    rate: np.ndarray
    market_obs: np.ndarray  # float32 [n_dates, n_market_obs]
    market_obs_names: tuple[str, ...]
    forecast_median: np.ndarray  # [n_dates, n_horizons] median log return
    forecast_width_75: np.ndarray  # [n_dates, n_horizons] q0.875 - q0.125
    implied_move: np.ndarray  # [n_dates, n_horizons] atm_iv * sqrt(h / bars_per_year)
    horizons: tuple[int, ...]
    bars_per_year: float
    symbol: str

    def __len__(self) -> int:
        return len(self.dates)

    def market_bars(self, dividend_yield: float = 0.0) -> MarketBars:
        """The bars as quote sources see them."""
        return MarketBars(self.dates, self.close_ns, self.spot, self.atm_iv, self.rate,
                          float(dividend_yield))


def _monthly_expiry_days(dates: pd.DatetimeIndex) -> np.ndarray:
    """Calendar days from each date to the next monthly (third-Friday) expiry, inclusive."""
    span_days = int((dates[-1] - dates[0]).days) + 70
    expiries = listed_expiries(dates[0], span_days, kinds="monthly")
    day = dates.to_numpy().astype("datetime64[D]")
    exp_days = expiries.to_numpy().astype("datetime64[D]")
    nxt = np.searchsorted(exp_days, day, side="left")
    return (exp_days[nxt] - day).astype("int64").astype("float64")


def build_market_panel(frame: pd.DataFrame, features: pd.DataFrame, forecasts: ForecastPanel,
                       start, end, surface: SurfaceConfig | None = None,
                       price_scale: float = 1.0, min_bars: int = 2) -> MarketPanel:
    """Assemble the tradable rows of ``[start, end]``.

    A row is tradable when it has a forecast, an ATM volatility and every market feature. The
    segment's first tradable date is the first such row; a row inside the segment after it that is
    not tradable is an error (the environment never skips bars silently). Bars per year are the
    frame's (``data.bars_per_year``), for the implied move and the realised-volatility proxy alike.
    """
    surface = surface or SurfaceConfig()
    for needed in (0.125, 0.5, 0.875):
        try:
            forecasts.level_index(needed)
        except KeyError as exc:
            raise MarketPanelError(f"{exc.args[0]}; the environment needs the 0.125, 0.5 and "
                                   "0.875 quantiles (forecast.quantile_levels)") from None
    annual = bars_per_year(frame.index)
    window = frame.loc[str(start):str(end)]
    if len(window) == 0:
        raise MarketPanelError(f"segment {start}..{end} has no bars in the market frame "
                         f"({frame.index[0].date()}..{frame.index[-1].date()})")
    # The rows read below: the window and the ATM vol change's look-back before it.
    first_row = frame.index.get_loc(window.index[0])
    read = np.zeros(len(frame), dtype=bool)
    read[max(first_row - ATM_IV_CHANGE_BARS, 0):first_row + len(window)] = True
    atm = atm_iv_series(frame, surface, bars_per_year=annual,
                        rows=pd.Series(read, index=frame.index))
    fc = forecasts.reindex(window.index)
    feats = features.reindex(window.index)
    needed_cols = [column for column, _ in MARKET_FEATURES]
    ok = (fc.complete() & atm.reindex(window.index).notna().to_numpy()
          & feats[needed_cols].notna().all(axis=1).to_numpy())
    if not ok.any():
        raise MarketPanelError(
            f"segment {start}..{end}: no bar has a forecast, an ATM volatility and all features "
            f"(forecasts cover {forecasts.dates.min()}..{forecasts.dates.max()})")
    first = int(np.flatnonzero(ok)[0])
    bad = ~ok[first:]
    if bad.any():
        where = window.index[first + int(np.flatnonzero(bad)[0])]
        raise MarketPanelError(f"segment {start}..{end}: bar {where.date()} has no forecast/ATM vol/"
                         f"features after the segment's first tradable bar; refusing to skip it")
    window = window.iloc[first:]
    idx = window.index
    if len(idx) < min_bars:
        raise MarketPanelError(f"segment {start}..{end}: fewer than {min_bars} tradable bars")
    fc = fc.reindex(idx)
    feats = feats.loc[idx]
    atm_iv = atm.loc[idx].to_numpy(dtype="float64")
    horizons = fc.horizons
    implied = {h: atm_iv * np.sqrt(h / annual) for h in horizons}
    rate = (np.nan_to_num(window["rate"].to_numpy(dtype="float64")) if "rate" in window.columns
            else np.zeros(len(idx)))
    context = MarketContext(
        forecast=fc.quantile, implied_move=implied, features=feats, atm_iv=atm_iv,
        atm_iv_5_bars_before=atm.shift(ATM_IV_CHANGE_BARS).loc[idx].to_numpy(dtype="float64"),
        days_to_monthly_expiry=_monthly_expiry_days(idx), rate=rate)
    entries = market_entries(horizons, fc.quantile_levels)
    market_obs = np.column_stack([e.value(context) / e.scale for e in entries]).astype(np.float32)
    if not np.isfinite(market_obs).all():
        bad_row = int(np.flatnonzero(~np.isfinite(market_obs).all(axis=1))[0])
        raise MarketPanelError(f"non-finite market observation on {idx[bad_row].date()}")
    return MarketPanel(
        dates=idx,
        close_ns=bar_close_ns(idx, frame.attrs.get("bar_stamp")),
        spot=window["close"].to_numpy(dtype="float64") * price_scale,
        atm_iv=atm_iv,
        rate=rate,
        market_obs=market_obs,
        market_obs_names=tuple(e.name for e in entries),
        forecast_median=np.column_stack([fc.quantile(h, 0.5) for h in horizons]),
        forecast_width_75=np.column_stack([fc.quantile(h, 0.875) - fc.quantile(h, 0.125)
                                           for h in horizons]),
        implied_move=np.column_stack([implied[h] for h in horizons]),
        horizons=tuple(horizons),
        bars_per_year=annual,
        symbol=str(frame.attrs.get("symbol", "")),
    )
