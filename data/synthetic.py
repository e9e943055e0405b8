"""Synthetic market frames with a planted, known edge (the learnability suite's markets).

Three markets, each a valid market frame (``open, high, low, close, volume, iv_index, rate``
on real NYSE sessions, so that expiries and session closes are the real calendar's):

* ``vrp``: daily log returns from a GARCH(1,1) with Student-t shocks (unit variance);
  ``iv_index[t]`` = the true conditional volatility of bar t+1 (known at the close of t)
  annualised, times ``1 + premium`` (0.25). Implied vol is rich: selling premium earns.
* ``signal``: a martingale (log returns ``N(-sigma^2/2, sigma^2)`` at a constant volatility) with
  fair implied vol (``iv_index`` = the true volatility); alongside it a planted direction
  ``signal[t]`` in {-1, +1} that equals the sign of the next ``signal_horizon_bars`` (20) bars'
  log return with probability ``signal_hit_rate`` (0.6). Twenty bars, a holding period of an
  option spread: on a 5-bar horizon the signal's expected move (0.16 sd) does not pay the
  round trip's spread and commissions of a 0.2-delta debit spread. The signal is drawn from the future and is
  handed to the forecast panel (``forecasters.synthetic``), never to the price path.
* ``no_edge``: the ``signal`` market's prices and implied vol with no signal (all zeros).

Everything is drawn from ``numpy.random.default_rng(seed)``: one seed, one path. A flat
volatility surface (no skew, flat term structure: :data:`FLAT_SURFACE`) prices these markets
fairly where the implied vol is the true one (``signal`` and ``no_edge``); ``vrp``'s surface
adds GARCH's term structure, so that every expiry carries the planted premium and no more
(:func:`market_surface`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.units import CALENDAR_DAYS_PER_YEAR
from data.calendar import TRADING_DAYS_PER_YEAR, exchange_calendar
from data.validation import validate_market_frame

__all__ = ["FLAT_SURFACE", "MARKETS", "SyntheticMarket", "SyntheticSpec", "garch_t_returns",
           "make_synthetic_market", "market_surface", "planted_signal"]

MARKETS = ("vrp", "signal", "no_edge")
FLAT_SURFACE = {"ssvi_rho": 0.0, "ssvi_eta": 1.0e-9, "ssvi_rho_per_log_level": 0.0,
                "ssvi_eta_per_log_level": 0.0, "term_mean_reversion_per_year": 0.0,
                "index_to_atm_ratio": 1.0, "dividend_yield_annualized": 0.0}
"""Surface keys (``options.surface``) that price a synthetic market with one flat volatility."""


def market_surface(spec: SyntheticSpec) -> dict:
    """Surface keys (``options.surface``) that price ``spec``'s market.

    ``signal`` and ``no_edge`` (constant volatility): :data:`FLAT_SURFACE`. ``vrp``: no skew, but
    GARCH's term structure: the frame's implied vol (``1 + premium`` times the next bar's
    conditional vol) is the level one bar out, and longer expiries mean-revert towards ``1 +
    premium`` times the unconditional vol at GARCH's own rate, ``-252 ln(alpha + beta)`` per
    year. So an option of any expiry is priced at ``1 + premium`` times the root of GARCH's
    expected average variance over its life (the surface's ``v(s) = L + (v0 - L)
    e^{-kappa s}`` is GARCH's ``sigma^2 + (alpha + beta)^k (v_t - sigma^2)``), the premium the
    market plants. With one flat vol for every expiry a 30-day option carried more than the
    planted premium when the conditional vol was high and less when it was low (GARCH's vol
    reverts by 18% of its gap to the long run over 21 bars): a timing edge the market did not
    mean to plant, and a flat term structure mispriced calendar spreads.
    """
    if spec.market != "vrp":
        return dict(FLAT_SURFACE)
    persistence = spec.garch_alpha + spec.garch_beta
    return {**FLAT_SURFACE,
            "term_mean_reversion_per_year": -TRADING_DAYS_PER_YEAR * math.log(persistence),
            "long_run_iv_annualized": (1.0 + spec.premium) * spec.vol_annualized,
            "term_reference_dte_days": CALENDAR_DAYS_PER_YEAR / TRADING_DAYS_PER_YEAR}


_VOLUME = 1.0e9
_INTRABAR_RANGE_SD = 0.5  # high/low extend max/min(open, close) by |N(0, 1)| * this * bar sd


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of one synthetic market path (volatilities annualised, decimals)."""

    market: str
    n_bars: int = 1000
    first_session: str = "2005-01-03"
    start_level: float = 2000.0
    vol_annualized: float = 0.16
    """``signal``/``no_edge``: the constant volatility; ``vrp``: GARCH's unconditional vol."""
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    t_dof: float = 5.0
    premium: float = 0.25
    signal_horizon_bars: int = 20
    signal_hit_rate: float = 0.60

    def __post_init__(self) -> None:
        if self.market not in MARKETS:
            raise ValueError(f"market must be one of {MARKETS}, got {self.market!r}")
        if self.n_bars < 2:
            raise ValueError(f"n_bars must be at least 2, got {self.n_bars}")
        if not (self.garch_alpha >= 0 and self.garch_beta >= 0
                and self.garch_alpha + self.garch_beta < 1):
            raise ValueError("GARCH needs alpha, beta >= 0 and alpha + beta < 1 (stationary)")
        if self.t_dof <= 2:
            raise ValueError(f"t_dof must exceed 2 (finite variance), got {self.t_dof}")
        if not 0.5 <= self.signal_hit_rate <= 1:
            raise ValueError(f"signal_hit_rate must be in [0.5, 1], got {self.signal_hit_rate}")

    @property
    def premium_applied(self) -> float:
        """The implied-vol premium over the true conditional vol (``vrp`` only)."""
        return self.premium if self.market == "vrp" else 0.0


@dataclass(frozen=True)
class SyntheticMarket:
    """One path: the market frame, the true conditional vol of each next bar and the signal."""

    spec: SyntheticSpec
    seed: int
    frame: pd.DataFrame
    next_bar_vol_annualized: np.ndarray  # known at the close of t: the vol of bar t+1
    signal: np.ndarray  # planted direction of log(close[t+h]/close[t]); 0 when none
    future_log_return: np.ndarray  # log(close[t+h]/close[t]) on the hidden path (tests only)


def garch_t_returns(rng: np.random.Generator, n_bars: int, omega: float, alpha: float,
                    beta: float, t_dof: float) -> tuple[np.ndarray, np.ndarray]:
    """``n_bars`` GARCH(1,1) log returns with unit-variance Student-t shocks.

    Returns ``(returns, variance)`` where ``variance[k]`` is the conditional variance of
    ``returns[k]`` and ``variance[n_bars]`` that of the next, unseen bar (length ``n_bars + 1``).
    The recursion starts at the unconditional variance ``omega / (1 - alpha - beta)``.
    """
    shocks = rng.standard_t(t_dof, size=n_bars) * math.sqrt((t_dof - 2.0) / t_dof)
    variance = np.empty(n_bars + 1)
    returns = np.empty(n_bars)
    variance[0] = omega / (1.0 - alpha - beta)
    for k in range(n_bars):
        returns[k] = math.sqrt(variance[k]) * shocks[k]
        variance[k + 1] = omega + alpha * returns[k] ** 2 + beta * variance[k]
    return returns, variance


def planted_signal(rng: np.random.Generator, future_log_return: np.ndarray,
                   hit_rate: float) -> np.ndarray:
    """+1/-1: the sign of ``future_log_return`` with probability ``hit_rate``, else flipped."""
    direction = np.where(future_log_return >= 0, 1.0, -1.0)
    hit = rng.random(len(future_log_return)) < hit_rate
    return np.where(hit, direction, -direction)


def _sessions(first: str, n_bars: int) -> pd.DatetimeIndex:
    calendar = exchange_calendar()
    start = calendar.date_to_session(pd.Timestamp(first), direction="next")
    days = calendar.sessions_window(start, n_bars)
    return pd.DatetimeIndex(days.tz_localize(None) if days.tz is not None else days, name="date")


def make_synthetic_market(spec: SyntheticSpec, seed: int) -> SyntheticMarket:
    """Draw one path of ``spec`` (deterministic in ``seed``) and return it as a market frame."""
    rng = np.random.default_rng(seed)
    h = spec.signal_horizon_bars
    n_draw = spec.n_bars + h  # the last rows' signals look at returns beyond the frame
    daily_var = spec.vol_annualized ** 2 / TRADING_DAYS_PER_YEAR
    if spec.market == "vrp":
        omega = daily_var * (1.0 - spec.garch_alpha - spec.garch_beta)
        shocks, variance = garch_t_returns(rng, n_draw, omega, spec.garch_alpha,
                                           spec.garch_beta, spec.t_dof)
    else:
        shocks = rng.standard_normal(n_draw) * math.sqrt(daily_var)
        variance = np.full(n_draw + 1, daily_var)
    log_returns = shocks - 0.5 * variance[:-1]  # E[exp(r)] = 1 for Gaussian shocks: a martingale
    # Bar 0 has no return (its close is the start level); bar k's return is log_returns[k - 1].
    log_close = math.log(spec.start_level) + np.concatenate([[0.0], np.cumsum(log_returns)])
    close_all = np.exp(log_close)  # n_draw + 1 closes; the frame keeps the first n_bars
    future = log_close[h:h + spec.n_bars] - log_close[:spec.n_bars]
    signal = (planted_signal(rng, future, spec.signal_hit_rate) if spec.market == "signal"
              else np.zeros(spec.n_bars))
    # Bar t's close is close_all[t]; the variance of the return into bar t+1 is variance[t].
    next_vol = np.sqrt(variance[:spec.n_bars] * TRADING_DAYS_PER_YEAR)
    close = close_all[:spec.n_bars]
    open_ = np.concatenate([[close[0]], close[:-1]])
    bar_sd = np.sqrt(np.concatenate([[daily_var], variance[:spec.n_bars - 1]]))
    extend_up = np.exp(np.abs(rng.standard_normal(spec.n_bars)) * _INTRABAR_RANGE_SD * bar_sd)
    extend_down = np.exp(-np.abs(rng.standard_normal(spec.n_bars)) * _INTRABAR_RANGE_SD * bar_sd)
    frame = pd.DataFrame({
        "open": open_,
        "high": np.maximum(open_, close) * extend_up,
        "low": np.minimum(open_, close) * extend_down,
        "close": close,
        "volume": np.full(spec.n_bars, _VOLUME),
        "iv_index": next_vol * (1.0 + spec.premium_applied),
        "rate": np.zeros(spec.n_bars),
    }, index=_sessions(spec.first_session, spec.n_bars))
    frame.attrs.update(source="synthetic", symbol=f"SYN-{spec.market.upper()}", interval="1d",
                       synthetic_market=spec.market, synthetic_seed=str(seed))
    validate_market_frame(frame, f"synthetic {spec.market} market (seed {seed})")
    return SyntheticMarket(spec, seed, frame, next_vol, signal, future)
