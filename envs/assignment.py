"""Early assignment of short American options in the simulator (``options.exercise``).

SPY's options are American: a holder may exercise any day, and the simulator assigns a short
leg where a rational holder would (:mod:`options.american` states the rules):

- a short **call** on the session before an ex-dividend date, when the coming dividend exceeds
  the time value exercise gives up (:func:`options.american.should_assign_call_before_ex_dividend`,
  reason :data:`REASON_CALL_EX_DIVIDEND`);
- a short **put** in the money whose time value is gone (at most one tick;
  :func:`options.american.should_assign_put_early`, reason :data:`REASON_PUT_EARLY`).

SPX index options (the embedded S&P 500 data) are European: ``exercise: european`` (the
default) builds no rules and the simulator never assigns.

Dividends, known at each bar only from what is public then (:class:`AssignmentRules`):

- ``dividend_history`` (ex-dates and cash paid, e.g. a bars file's ``divCash``): the latest paid
  dividend repeated every three months after its ex-date
  (:func:`options.american.project_quarterly_dividends`);
- otherwise the continuous ``dividend_yield`` the environment prices with, paid quarterly:
  ``yield * spot / 4`` per share (spot at the bar) on SPY's ex-dates, the third Friday of March,
  June, September and December (:func:`quarterly_ex_dates`).

A leg's volatility for the rules is the Black-Scholes-Merton implied vol of its mid at the bar
(the model's quotes are European BSM prices), else the bar's at-the-money vol where the mid has
none (a deep in-the-money mid at or below intrinsic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.calendar import exchange_calendar
from options.american import (
    EXERCISE_STYLES,
    project_quarterly_dividends,
    should_assign_call_before_ex_dividend,
    should_assign_put_early,
)
from options.pricing import DAYS_PER_YEAR, IV_REASON_OK, implied_vol_vectorized_with_reason

__all__ = [
    "next_sessions",
    "REASON_CALL_EX_DIVIDEND",
    "REASON_PUT_EARLY",
    "AssignmentRules",
    "assignment_rules",
    "quarterly_ex_dates",
]

REASON_CALL_EX_DIVIDEND = "assigned_call_ex_dividend"
"""Exit reason of a structure whose short call was assigned before an ex-dividend date."""
REASON_PUT_EARLY = "assigned_put_early"
"""Exit reason of a structure whose short put was assigned early (no time value left)."""
_QUARTER_END_MONTHS = (3, 6, 9, 12)
_HORIZON_DAYS = 800  # dividends projected this far ahead (beyond any listed expiry used here)


def next_sessions(dates) -> list[pd.Timestamp | None]:
    """The exchange session after each bar's session (XNYS), from the calendar, not from the
    data's next row: known in advance, there at the newest bar of a live run, and the next
    session on intraday bars too. None past the calendar's last session."""
    sessions = exchange_calendar().sessions
    days = pd.DatetimeIndex(dates).tz_localize(None).normalize()
    idx = sessions.searchsorted(days, side="right")
    return [sessions[i] if i < len(sessions) else None for i in idx]


def quarterly_ex_dates(start, end) -> pd.DatetimeIndex:
    """Third Fridays of March, June, September and December between ``start`` and ``end``
    (inclusive): SPY's ex-dividend dates (SPY goes ex on its quarterly expiry Friday)."""
    first = pd.Timestamp(start).normalize()
    last = pd.Timestamp(end).normalize()
    months = pd.date_range(first.replace(day=1), last + pd.offsets.MonthEnd(0), freq="MS")
    months = months[months.month.isin(_QUARTER_END_MONTHS)]
    # The third Friday: the first Friday on or after the 15th is the 15th..21st.
    fridays = months + pd.Timedelta(days=14) + pd.offsets.Week(0, weekday=4)
    return pd.DatetimeIndex(fridays[(fridays >= first) & (fridays <= last)])


@dataclass(frozen=True)
class AssignmentRules:
    """When short American legs are assigned (module docstring).

    ``dividend_yield``: continuous yield (decimal) that sets the quarterly cash dividend where no
    history is given. ``dividend_history``: ex-dates and cash per share paid, or None.
    """

    dividend_yield: float = 0.0
    dividend_history: tuple[pd.DatetimeIndex, np.ndarray] | None = None

    def dividends(self, date: pd.Timestamp, spot: float) -> tuple[np.ndarray, np.ndarray]:
        """The dividends known at ``date`` still to come: ex-dates in years from ``date``
        (ascending, > 0) and cash per share."""
        day = pd.Timestamp(date).normalize()
        if self.dividend_history is not None:
            ex_dates, cash = self.dividend_history
            tau, amount = project_quarterly_dividends(ex_dates, cash, [day],
                                                      horizon_days=_HORIZON_DAYS)
            keep = amount[0] > 0
            return tau[0][keep], amount[0][keep]
        if self.dividend_yield <= 0:
            return np.zeros(0), np.zeros(0)
        ex = quarterly_ex_dates(day + pd.Timedelta(days=1), day + pd.Timedelta(days=_HORIZON_DAYS))
        tau = (ex - day).days.to_numpy() / DAYS_PER_YEAR
        return tau, np.full(len(tau), self.dividend_yield * float(spot) / 4.0)

    def assigned_legs(self, legs, quantity: np.ndarray, alive: np.ndarray, leg_mid: np.ndarray,
                      t_years: np.ndarray, spot: float, rate: float, atm_iv: float,
                      dividend_yield: float, date: pd.Timestamp,
                      next_date: pd.Timestamp | None) -> tuple[np.ndarray, str | None]:
        """Per leg, whether it is assigned at this bar, and the reason (calls first).

        ``legs`` (option type and strike per leg), ``quantity`` (signed, per unit), ``alive``,
        ``leg_mid`` (per share) and ``t_years`` (to each leg's expiry) describe one structure at
        the bar; ``next_date`` is the next session's date (None: no next session here, so no
        ex-date check). Only short legs alive with time left can be assigned.
        """
        n = len(legs)
        is_call = np.array([leg.is_call for leg in legs], dtype=bool)
        strike = np.array([leg.strike for leg in legs], dtype=float)
        short = alive & (quantity < 0) & (t_years > 0)
        itm = np.where(is_call, spot > strike, spot < strike)
        candidates = short & itm
        out = np.zeros(n, dtype=bool)
        if not candidates.any():
            return out, None
        tau, amount = self.dividends(date, spot)
        iv = self._vols(leg_mid, is_call, strike, t_years, spot, rate, atm_iv, dividend_yield,
                        candidates)
        calls = candidates & is_call
        if calls.any() and next_date is not None and len(tau):
            to_next = (pd.Timestamp(next_date).normalize()
                       - pd.Timestamp(date).normalize()).days / DAYS_PER_YEAR
            coming = tau[0] <= to_next + 1e-12
            if coming:
                i = np.flatnonzero(calls)
                out[i] = should_assign_call_before_ex_dividend(
                    spot, strike[i], t_years[i], rate, iv[i], amount[0],
                    ex_dividend_t_years=tau[0])
                if out.any():
                    return out, REASON_CALL_EX_DIVIDEND
        puts = candidates & ~is_call
        if puts.any():
            i = np.flatnonzero(puts)
            m = max(len(tau), 1)
            tau_rows = np.zeros((len(i), m))
            amount_rows = np.zeros((len(i), m))
            tau_rows[:, :len(tau)] = tau
            amount_rows[:, :len(tau)] = amount
            out[i] = should_assign_put_early(spot, strike[i], t_years[i], rate, iv[i],
                                             dividend_t_years=tau_rows,
                                             dividend_per_share=amount_rows)
            if out.any():
                return out, REASON_PUT_EARLY
        return out, None

    @staticmethod
    def _vols(leg_mid, is_call, strike, t_years, spot, rate, atm_iv, dividend_yield, use):
        iv = np.full(len(strike), float(atm_iv))
        i = np.flatnonzero(use)
        res = implied_vol_vectorized_with_reason(leg_mid[i], is_call[i], spot, strike[i],
                                                 t_years[i], rate, dividend_yield)
        ok = res.reason == IV_REASON_OK
        iv[i[ok]] = res.iv_annualized[ok]
        return iv


def assignment_rules(exercise: str, dividend_yield: float = 0.0,
                     dividend_history: tuple[pd.DatetimeIndex, np.ndarray] | None = None
                     ) -> AssignmentRules | None:
    """The rules for ``exercise`` (``options.exercise``): None for ``"european"`` (no early
    assignment), :class:`AssignmentRules` for ``"american"``."""
    if exercise not in EXERCISE_STYLES:
        raise ValueError(f"exercise must be one of {EXERCISE_STYLES}, got {exercise!r}")
    if exercise == "european":
        return None
    return AssignmentRules(float(dividend_yield), dividend_history)
