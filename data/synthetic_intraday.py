"""Made-up intraday bars on the real NYSE calendar, for trying the intraday pipeline.

No intraday market data ships with the project. ``python -m data.synthetic_intraday --out FILE``
writes a CSV of **made-up** bars in the format a user's own file has (``date, open, high, low,
close, volume, iv``), so that ``configs/intraday.yaml`` and the timeframe comparison
(``python -m forecasters --timeframes ...``) run without a download. Nothing in it is a market
observation; results on it say nothing about SPY.

The path: regular sessions of ``exchange_calendars``' XNYS (09:30 to 16:00 New York, early closes
at 13:00 included), one bar every ``bar_minutes`` stamped at its start (as yfinance stamps them).
Bar log returns follow a GARCH(1,1) with Student-t shocks at a per-bar variance that annualises to
``vol_annualized`` over the regular session's bars (252 x 390 / bar minutes a year); the first bar
of each session also carries an overnight gap with ``overnight_variance_share`` of a session's
variance. ``iv`` is a VIX-style 30-day implied vol in points: the GARCH's expected average
variance over the next 30 sessions, known at the bar's close, times ``1 + premium``. Deterministic
in ``seed``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.units import TRADING_DAYS_PER_YEAR, VOL_POINTS_PER_UNIT
from data.calendar import REGULAR_SESSION_MINUTES, exchange_calendar
from data.synthetic import garch_t_returns
from data.validation import validate_market_frame

__all__ = ["IntradaySpec", "make_intraday_bars", "main", "session_bar_starts"]

_IV_TERM_SESSIONS = 30
_INTRABAR_RANGE_SD = 0.5
_VOLUME_RANGE = (50_000, 500_000)


@dataclass(frozen=True)
class IntradaySpec:
    """Parameters of one made-up intraday path (volatilities annualised, decimals)."""

    sessions: int = 60
    bar_minutes: int = 5
    first_session: str = "2024-01-02"
    start_level: float = 470.0
    vol_annualized: float = 0.16
    garch_alpha: float = 0.05
    garch_beta: float = 0.93
    t_dof: float = 5.0
    overnight_variance_share: float = 0.2
    premium: float = 0.15

    def __post_init__(self) -> None:
        if self.sessions < 1:
            raise ValueError(f"sessions must be at least 1, got {self.sessions}")
        if not 1 <= self.bar_minutes <= REGULAR_SESSION_MINUTES // 2:
            raise ValueError(f"bar_minutes must be in 1..{REGULAR_SESSION_MINUTES // 2}, got "
                             f"{self.bar_minutes}")
        if self.garch_alpha < 0 or self.garch_beta < 0 or self.garch_alpha + self.garch_beta >= 1:
            raise ValueError("GARCH needs alpha, beta >= 0 and alpha + beta < 1 (stationary)")
        if self.t_dof <= 2:
            raise ValueError(f"t_dof must exceed 2 (finite variance), got {self.t_dof}")


def session_bar_starts(first_session: str, sessions: int, bar_minutes: int) -> pd.DatetimeIndex:
    """Start stamps (naive New York time) of every bar of ``sessions`` XNYS sessions from
    ``first_session`` (the next session if it is none): open to close, early closes included."""
    calendar = exchange_calendar()
    start = calendar.date_to_session(pd.Timestamp(first_session), direction="next")
    days = calendar.sessions_window(start, sessions)
    opens = calendar.schedule.loc[days, "open"].dt.tz_convert("America/New_York")
    closes = calendar.schedule.loc[days, "close"].dt.tz_convert("America/New_York")
    step = pd.Timedelta(minutes=bar_minutes)
    stamps: list[pd.Timestamp] = []
    for open_, close in zip(opens, closes, strict=True):
        n_bars = math.ceil((close - open_) / step - 1e-9)
        stamps.extend(open_.tz_localize(None) + step * k for k in range(n_bars))
    return pd.DatetimeIndex(stamps, name="date")


def make_intraday_bars(spec: IntradaySpec = IntradaySpec(), seed: int = 0) -> pd.DataFrame:
    """A validated market frame of made-up intraday bars (``iv_index`` in decimals)."""
    rng = np.random.default_rng(seed)
    index = session_bar_starts(spec.first_session, spec.sessions, spec.bar_minutes)
    n_bars = len(index)
    bars_per_session = REGULAR_SESSION_MINUTES / spec.bar_minutes
    bars_per_year = TRADING_DAYS_PER_YEAR * bars_per_session
    session_var = spec.vol_annualized**2 / TRADING_DAYS_PER_YEAR
    bar_var = session_var * (1.0 - spec.overnight_variance_share) / bars_per_session
    persistence = spec.garch_alpha + spec.garch_beta
    omega = bar_var * (1.0 - persistence)
    shocks, variance = garch_t_returns(rng, n_bars, omega, spec.garch_alpha, spec.garch_beta,
                                       spec.t_dof)
    first_of_session = np.r_[True, index[1:].normalize() != index[:-1].normalize()]
    first_of_session[0] = False  # the first bar opens at the start level
    gap_var = session_var * spec.overnight_variance_share
    gaps = np.where(first_of_session, rng.standard_normal(n_bars) * math.sqrt(gap_var), 0.0)
    log_returns = shocks + gaps - 0.5 * (variance[:-1] + np.where(first_of_session, gap_var, 0))
    log_close = math.log(spec.start_level) + np.cumsum(log_returns)
    close = np.exp(log_close)
    open_ = np.r_[spec.start_level, close[:-1]] * np.exp(gaps)
    bar_sd = np.sqrt(variance[:-1])
    up = np.exp(np.abs(rng.standard_normal(n_bars)) * _INTRABAR_RANGE_SD * bar_sd)
    down = np.exp(-np.abs(rng.standard_normal(n_bars)) * _INTRABAR_RANGE_SD * bar_sd)
    # Expected mean bar variance over the next 30 sessions given variance[k + 1] (GARCH(1,1)).
    term = _IV_TERM_SESSIONS * bars_per_session
    decay = (1.0 - persistence**term) / (term * (1.0 - persistence))
    mean_var = bar_var + (variance[1:] - bar_var) * decay
    iv = np.sqrt((mean_var * bars_per_session + gap_var) * TRADING_DAYS_PER_YEAR)
    frame = pd.DataFrame({
        "open": open_,
        "high": np.maximum(open_, close) * up,
        "low": np.minimum(open_, close) * down,
        "close": close,
        "volume": rng.integers(*_VOLUME_RANGE, n_bars).astype(float),
        "iv_index": iv * (1.0 + spec.premium),
    }, index=index)
    frame.attrs.update(source="synthetic", symbol="MADE-UP", interval=f"{spec.bar_minutes}m",
                       bar_stamp="start", bars_per_year=str(bars_per_year))
    return validate_market_frame(frame, f"made-up {spec.bar_minutes}-minute bars (seed {seed})")


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The frame as a user's CSV: ``date`` (ISO, New York time), OHLCV and ``iv`` in points."""
    out = frame.drop(columns=["iv_index"]).copy()
    out["iv"] = (frame["iv_index"] * VOL_POINTS_PER_UNIT).round(4)
    out[["open", "high", "low", "close"]] = out[["open", "high", "low", "close"]].round(4)
    out.index = out.index.strftime("%Y-%m-%d %H:%M:%S")
    out.index.name = "date"
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data.synthetic_intraday",
        description="Write a CSV of MADE-UP intraday bars (not market data) on the NYSE calendar.")
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--sessions", type=int, default=IntradaySpec.sessions,
                        help="number of trading sessions (default %(default)s)")
    parser.add_argument("--bar-minutes", type=int, default=IntradaySpec.bar_minutes,
                        help="bar length in minutes (default %(default)s)")
    parser.add_argument("--first-session", default=IntradaySpec.first_session,
                        help="first session date, YYYY-MM-DD (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    try:
        pd.Timestamp(args.first_session)
    except ValueError:
        parser.error(f"--first-session {args.first_session!r} is not a date (YYYY-MM-DD)")
    try:
        spec = IntradaySpec(sessions=args.sessions, bar_minutes=args.bar_minutes,
                            first_session=args.first_session)
    except ValueError as exc:
        parser.error(str(exc))
    frame = make_intraday_bars(spec, args.seed)
    path = write_csv(frame, Path(args.out))
    print(f"wrote {len(frame)} MADE-UP {spec.bar_minutes}-minute bars "
          f"({frame.index[0]} .. {frame.index[-1]}, {spec.sessions} sessions, seed {args.seed}) "
          f"to {path}; synthetic data for trying the pipeline, not market observations")
    return 0


if __name__ == "__main__":
    from common.cli import run_cli

    raise SystemExit(run_cli(main, prog="python -m data.synthetic_intraday"))
