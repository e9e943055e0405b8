"""American exercise: prices, implied volatility and early-assignment rules, vectorised.

SPY options are American and SPY pays cash dividends each quarter; SPX options are European
(``options.exercise`` in the config says which applies). This module prices American options
on a stock with a continuous dividend yield and/or known cash dividends.

Method (each step documented where it is coded):

- **Dividends: the escrowed-dividend model** (Hull, *Options, Futures and Other Derivatives*,
  ch. 21): the stock is the present value of the cash dividends paid before expiry plus a risky
  part ``spot - PV(dividends)`` that follows geometric Brownian motion with volatility
  ``iv_annualized``. A dividend with ex-date at ``tau`` (years from now) is in the price at
  every time ``t < tau`` and out of it from ``tau`` on; only ex-dates in ``(0, t_years]`` count.
  QuantLib's finite-difference engine with ``CashDividendModel.Escrowed`` is the same model
  (tests cross-check against it).
- **Cox-Ross-Rubinstein binomial tree** on the risky part (``u = exp(sigma sqrt(dt))``,
  ``d = 1/u``, ``p = (exp((r - q) dt) - d) / (u - d)``), vectorised over contracts: one array
  of node values per time step for all contracts at once. At each node the American holder
  takes the larger of the discounted expectation and the intrinsic value on the full stock
  price (risky part + PV of the dividends still to come).
- **Control variate** (Hull and White 1988): :func:`american_price` is the exact European
  Black-Scholes-Merton price on the escrowed spot plus the tree's early-exercise premium
  (American tree minus European tree of the same grid), which removes most of the tree's
  discretisation error; it is floored at the intrinsic value.
- **Implied volatility from American quotes** (:func:`implied_vol_american`): the quote minus
  the early-exercise premium is a European price; its Black-Scholes-Merton volatility (the
  project's safeguarded Newton inverter, :mod:`options.pricing`) gives a new premium, and so on
  until the volatility moves by less than ``tolerance_vol``. The premium depends little on the
  volatility, so a few trees per contract suffice.

Units as in :mod:`options.pricing`: prices per share, ``t_years`` in years of 365 calendar days,
rates and yields annualised continuously compounded decimals, ``dividend_per_share`` in the
underlying's currency per share. Dividend arrays have shape ``(m,)`` (one schedule for all
contracts) or ``(n, m)`` (one row per contract); unused slots may hold amount 0.

What the model leaves out: the dividend amounts are taken as known (a forecast of SPY's next
dividends, e.g. the last one repeated, is the caller's choice); volatility is flat per contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from options.pricing import (
    DAYS_PER_YEAR,
    IV_REASON_BELOW_INTRINSIC,
    IV_REASON_EXPIRED,
    IV_REASON_NOT_CONVERGED,
    IV_REASON_OK,
    ImpliedVolResult,
    bs_price,
    implied_vol_vectorized_with_reason,
    is_call_array,
)

__all__ = [
    "ASSIGNMENT_TIME_VALUE_PER_SHARE",
    "DEFAULT_TREE_STEPS",
    "DividendHistory",
    "EXERCISE_STYLES",
    "ONE_DAY_YEARS",
    "american_price",
    "crr_price",
    "early_exercise_premium",
    "european_price_escrowed",
    "implied_vol_american",
    "project_quarterly_dividends",
    "pv_dividends",
    "should_assign_call_before_ex_dividend",
    "should_assign_put_early",
]

EXERCISE_STYLES = ("european", "american")
"""Values of ``options.exercise``: SPY options are American, SPX options European."""
DEFAULT_TREE_STEPS = 200
"""Binomial steps per contract; with the control variate prices agree with QuantLib's
finite-difference engine to about a tenth of a cent on SPY-like contracts (tests)."""
ONE_DAY_YEARS = 1.0 / DAYS_PER_YEAR
"""One calendar day in years: the usual gap from the session before an ex-date to the ex-date."""
ASSIGNMENT_TIME_VALUE_PER_SHARE = 0.01
"""A short put is assigned early when its time value is at most this (one quote tick): a holder
cannot sell time value below a tick, so exercising loses nothing."""
_MIN_SPREAD = 1e-12
_MIN_DAYS_PER_MONTH = 28


@dataclass(frozen=True)
class DividendHistory:
    """Cash dividends paid: ex-dates and USD per share (e.g. a bars file's ``divCash`` > 0,
    whose ``date`` is the ex-date; :func:`options.chain_io.read_dividend_history`). Read it
    causally with :func:`project_quarterly_dividends`."""

    ex_dates: pd.DatetimeIndex
    cash_per_share: np.ndarray


def _flat(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield):
    """Validate and broadcast the contract arguments; return the shape and 1-D arrays."""
    is_call = is_call_array(option_type)
    arrays = [np.asarray(a, dtype=float)
              for a in (spot, strike, t_years, rate, iv_annualized, dividend_yield)]
    names = ("spot", "strike", "t_years", "rate", "iv_annualized", "dividend_yield")
    for name, value in zip(names, arrays, strict=True):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} must be finite")
    for name, value in zip(names[:3], arrays[:3], strict=True):
        if (value < 0).any() or (name != "t_years" and (value <= 0).any()):
            raise ValueError(f"{name} must be {'>= 0' if name == 't_years' else '> 0'}")
    if (arrays[4] < 0).any():
        raise ValueError("iv_annualized must be >= 0")
    try:
        out = np.broadcast_arrays(is_call, *arrays)
    except ValueError as exc:
        raise ValueError(f"option_type, spot, strike, t_years, rate, iv_annualized and "
                         f"dividend_yield must broadcast to one shape: {exc}") from None
    shape = out[0].shape
    return shape, [a.reshape(-1).copy() for a in out]


def _dividends(n: int, shape: tuple, dividend_t_years, dividend_per_share):
    """(n, m) arrays of ex-dividend times (years) and cash amounts; m = 0 without dividends."""
    if dividend_t_years is None and dividend_per_share is None:
        return np.zeros((n, 0)), np.zeros((n, 0))
    if dividend_t_years is None or dividend_per_share is None:
        raise ValueError("dividend_t_years and dividend_per_share go together (give both)")
    tau = np.asarray(dividend_t_years, dtype=float)
    amount = np.asarray(dividend_per_share, dtype=float)
    if tau.shape != amount.shape:
        raise ValueError(f"dividend_t_years {tau.shape} and dividend_per_share {amount.shape} "
                         "must have the same shape")
    if not (np.isfinite(tau).all() and np.isfinite(amount).all()):
        raise ValueError("dividend_t_years and dividend_per_share must be finite")
    if (amount < 0).any():
        raise ValueError("dividend_per_share must be >= 0")
    if tau.ndim == 0:
        tau, amount = tau[None], amount[None]
    if tau.ndim == 1:
        return (np.broadcast_to(tau, (n, tau.size)).copy(),
                np.broadcast_to(amount, (n, amount.size)).copy())
    if tau.ndim == len(shape) + 1 and tau.shape[:-1] == shape:
        return tau.reshape(n, -1).copy(), amount.reshape(n, -1).copy()
    raise ValueError(f"dividend arrays must have shape (m,) or {shape + ('m',)}, got {tau.shape}")


def _pv_at(at_years, t_years, rate, tau, amount):
    """PV at time ``at_years`` of the dividends with ex-date in ``(max(at, 0), t_years]``."""
    at = np.asarray(at_years, dtype=float)[:, None]
    live = (tau > at) & (tau > 0.0) & (tau <= t_years[:, None])
    return np.sum(np.where(live, amount * np.exp(-rate[:, None] * (tau - at)), 0.0), axis=1)


def pv_dividends(t_years, rate, dividend_t_years, dividend_per_share) -> np.ndarray:
    """Present value (per share) of the cash dividends with ex-date in ``(0, t_years]``.

    ``t_years`` and ``rate`` are arrays of n contracts (or scalars); the dividend arrays have
    shape ``(m,)`` or ``(n, m)``.
    """
    t, r = np.broadcast_arrays(np.asarray(t_years, float), np.asarray(rate, float))
    shape = t.shape
    t, r = t.reshape(-1), r.reshape(-1)
    tau, amount = _dividends(t.size, shape, dividend_t_years, dividend_per_share)
    return _pv_at(np.zeros(t.size), t, r, tau, amount).reshape(shape)


def project_quarterly_dividends(ex_dates, cash_per_share, as_of_dates, *,
                                horizon_days: int = 400, months_apart: int = 3):
    """Causal dividend forecast for each ``as_of_dates`` entry, as (n, m) arrays for the pricing
    functions: ``dividend_t_years`` (years from that date) and ``dividend_per_share``.

    Only dividends with an ex-date on or before the as-of date are read: the latest one's amount
    is repeated every ``months_apart`` months after its ex-date (SPY goes ex on its quarterly
    expiry Fridays; a forecast date a few days off changes prices by far less than a cent),
    out to ``horizon_days``; one due on or before the as-of date but not yet paid is taken to go
    ex the next day. A date with no dividend history gets none (amount 0).
    ``ex_dates`` and ``cash_per_share`` are the paid history (e.g. ``divCash`` > 0 of a bars
    file, whose ``date`` is the ex-date).
    """
    paid = pd.Series(np.asarray(cash_per_share, dtype=float),
                     index=pd.DatetimeIndex(ex_dates).normalize()).sort_index()
    if (paid < 0).any() or not np.isfinite(paid.to_numpy()).all():
        raise ValueError("cash_per_share must be finite and >= 0")
    as_of = pd.DatetimeIndex(as_of_dates).normalize()
    steps = int(np.ceil(horizon_days / (months_apart * _MIN_DAYS_PER_MONTH))) + 1
    tau = np.zeros((len(as_of), steps))
    amount = np.zeros((len(as_of), steps))
    position = paid.index.searchsorted(as_of, side="right") - 1
    for i, (day, last) in enumerate(zip(as_of, position, strict=True)):
        if last < 0:
            continue
        ex = paid.index[last] + pd.DateOffset(months=months_apart) * np.arange(1, steps + 1)
        days = (pd.DatetimeIndex(ex) - day).days.to_numpy()
        # A dividend due by now but not yet in the history goes ex on the next day.
        overdue = (days <= 0) & (days > -months_apart * _MIN_DAYS_PER_MONTH)
        days = np.where(overdue, 1, days)
        keep = (days > 0) & (days <= horizon_days)
        tau[i, keep] = days[keep] / DAYS_PER_YEAR
        amount[i, keep] = paid.iloc[last]
    return tau, amount


def _escrowed_spot(s, t, r, tau, amount):
    pv0 = _pv_at(np.zeros(s.size), t, r, tau, amount)
    risky = s - pv0
    if (risky <= 0).any():
        first = int(np.flatnonzero(risky <= 0)[0])
        raise ValueError(f"spot {s[first]!r} is not above the present value of its dividends "
                         f"{pv0[first]!r}")
    return risky


def _crr(is_call, s, k, t, r, v, q, tau, amount, steps: int, american: bool) -> np.ndarray:
    """CRR tree on the escrowed (risky) part of the stock; rows with t > 0 only."""
    n = s.size
    dt = t / steps
    sqrt_dt = np.sqrt(dt)
    # CRR probabilities leave [0, 1] when sigma sqrt(dt) <= |r - q| dt: floor the tree's
    # volatility just above that (a volatility this low only matters for absurdly low quotes).
    v_tree = np.maximum(v, np.abs(r - q) * sqrt_dt * (1.0 + 1e-6) + _MIN_SPREAD)
    up = np.exp(v_tree * sqrt_dt)
    down = 1.0 / up
    p_up = (np.exp((r - q) * dt) - down) / (up - down)
    p_down = 1.0 - p_up
    disc = np.exp(-r * dt)
    sign = np.where(is_call, 1.0, -1.0)[:, None]
    risky0 = s - _pv_at(np.zeros(n), t, r, tau, amount)
    cum_shift = dt[:, None] * (1.0 - 1e-9)
    j = np.arange(steps + 1)
    # Risky part at the last step: risky0 * u^(2j - steps); the full stock adds PV(D) = 0.
    nodes = risky0[:, None] * np.exp(v_tree[:, None] * sqrt_dt[:, None] * (2 * j - steps))
    values = np.maximum(sign * (nodes - k[:, None]), 0.0)
    for step in range(steps - 1, -1, -1):
        values = disc[:, None] * (p_up[:, None] * values[:, 1:step + 2]
                                  + p_down[:, None] * values[:, :step + 1])
        nodes = nodes[:, :step + 1] * up[:, None]  # u^(2j - step) = u^(2j - step - 1) * u
        if american:
            # At the first node at or after an ex-time the holder may exercise just before the
            # drop (a call: the stock still holds the dividend) or just after it (a put), so the
            # exercise the model allows at the ex-instant is on the grid; otherwise the tree
            # exercises up to one step early and converges only at O(dt).
            pv_now = (np.where(is_call, _pv_at(step * dt, t, r, tau + cum_shift, amount),
                               _pv_at(step * dt, t, r, tau, amount))
                      if tau.shape[1] else 0.0)
            stock = nodes + (pv_now[:, None] if tau.shape[1] else 0.0)
            np.maximum(values, sign * (stock - k[:, None]), out=values)
    return values[:, 0]


def crr_price(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield=0.0, *,
              dividend_t_years=None, dividend_per_share=None, steps: int = DEFAULT_TREE_STEPS,
              american: bool = True):
    """Raw Cox-Ross-Rubinstein tree price per share (escrowed cash dividends, yield ``q``).

    ``american=False`` gives the European price on the same grid (the control variate's other
    half). At ``t_years == 0`` the price is the intrinsic value.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    shape, (c, s, k, t, r, v, q) = _flat(option_type, spot, strike, t_years, rate,
                                         iv_annualized, dividend_yield)
    tau, amount = _dividends(s.size, shape, dividend_t_years, dividend_per_share)
    _escrowed_spot(s, t, r, tau, amount)
    out = np.where(c, np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))
    live = t > 0
    if live.any():
        out[live] = _crr(c[live], s[live], k[live], t[live], r[live], v[live], q[live],
                         tau[live], amount[live], steps, american)
    return out.reshape(shape) if shape else float(out[0])


def european_price_escrowed(option_type, spot, strike, t_years, rate, iv_annualized,
                            dividend_yield=0.0, *, dividend_t_years=None,
                            dividend_per_share=None):
    """European Black-Scholes-Merton price per share on the escrowed spot
    ``spot - PV(dividends before expiry)`` (exact in the escrowed-dividend model)."""
    shape, (c, s, k, t, r, v, q) = _flat(option_type, spot, strike, t_years, rate,
                                         iv_annualized, dividend_yield)
    tau, amount = _dividends(s.size, shape, dividend_t_years, dividend_per_share)
    risky = _escrowed_spot(s, t, r, tau, amount)
    out = np.asarray(bs_price(c, risky, k, t, r, v, q), dtype=float).reshape(-1)
    return out.reshape(shape) if shape else float(out[0])


def _american_flat(c, s, k, t, r, v, q, tau, amount, steps):
    risky = _escrowed_spot(s, t, r, tau, amount)
    intrinsic = np.where(c, np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))
    out = intrinsic.copy()
    live = t > 0
    if live.any():
        args = (c[live], s[live], k[live], t[live], r[live], v[live], q[live], tau[live],
                amount[live], steps)
        premium = _crr(*args, american=True) - _crr(*args, american=False)
        euro = np.asarray(bs_price(c[live], risky[live], k[live], t[live], r[live], v[live],
                                   q[live]), dtype=float).reshape(-1)
        out[live] = np.maximum(euro + premium, intrinsic[live])
    return out


def american_price(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield=0.0,
                   *, dividend_t_years=None, dividend_per_share=None,
                   steps: int = DEFAULT_TREE_STEPS):
    """American option price per share, vectorised over contracts.

    The exact European price on the escrowed spot plus the CRR tree's early-exercise premium
    (control variate), floored at the intrinsic value ``max(+-(spot - strike), 0)``.

    Args:
        option_type: "call"/"put" or an array of them (or booleans, True = call).
        spot, strike: prices per share (> 0); ``spot`` includes the dividends to come.
        t_years: years to expiry (365-day years, >= 0).
        rate, dividend_yield: annualised continuously compounded decimals.
        iv_annualized: volatility of the risky part (decimal).
        dividend_t_years, dividend_per_share: ex-dates (years from now) and cash amounts.
        steps: binomial steps per contract.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    shape, (c, s, k, t, r, v, q) = _flat(option_type, spot, strike, t_years, rate,
                                         iv_annualized, dividend_yield)
    tau, amount = _dividends(s.size, shape, dividend_t_years, dividend_per_share)
    out = _american_flat(c, s, k, t, r, v, q, tau, amount, steps)
    return out.reshape(shape) if shape else float(out[0])


def early_exercise_premium(option_type, spot, strike, t_years, rate, iv_annualized,
                           dividend_yield=0.0, *, dividend_t_years=None, dividend_per_share=None,
                           steps: int = DEFAULT_TREE_STEPS):
    """American minus European price per share (>= 0): what early exercise is worth."""
    kwargs = {"dividend_t_years": dividend_t_years, "dividend_per_share": dividend_per_share}
    amer = american_price(option_type, spot, strike, t_years, rate, iv_annualized,
                          dividend_yield, steps=steps, **kwargs)
    euro = european_price_escrowed(option_type, spot, strike, t_years, rate, iv_annualized,
                                   dividend_yield, **kwargs)
    return np.maximum(np.asarray(amer) - np.asarray(euro), 0.0) if np.ndim(amer) else max(
        amer - euro, 0.0)


def implied_vol_american(premium_per_share, option_type, spot, strike, t_years, rate,
                         dividend_yield=0.0, *, dividend_t_years=None, dividend_per_share=None,
                         steps: int = DEFAULT_TREE_STEPS, tolerance_vol: float = 1e-6,
                         max_iterations: int = 30) -> ImpliedVolResult:
    """Implied volatility of American option quotes, vectorised (see the module docstring).

    Reason codes as :func:`options.pricing.implied_vol_vectorized_with_reason`, plus
    ``"below_intrinsic"`` for a quote at or below the American intrinsic value (a deep
    in-the-money quote with no time value carries no volatility information) and
    ``"not_converged"`` where the volatility still moved by more than ``tolerance_vol`` after
    ``max_iterations`` trees. The volatility is NaN wherever the reason is not ``"ok"``.
    """
    price = np.asarray(premium_per_share, dtype=float)
    if not np.isfinite(price).all() or (price < 0).any():
        raise ValueError("premium_per_share must be finite and >= 0")
    shape, (c, s, k, t, r, _, q) = _flat(option_type, spot, strike, t_years, rate, 0.0,
                                         dividend_yield)
    try:
        price = np.broadcast_to(price, shape).reshape(-1).copy()
    except ValueError as exc:
        raise ValueError(f"premium_per_share must broadcast with the other arguments: {exc}"
                         ) from None
    tau, amount = _dividends(s.size, shape, dividend_t_years, dividend_per_share)
    risky = _escrowed_spot(s, t, r, tau, amount)
    intrinsic = np.where(c, np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))
    iv = np.full(s.size, np.nan)
    reason = np.full(s.size, IV_REASON_NOT_CONVERGED, dtype=object)
    reason[t == 0] = IV_REASON_EXPIRED
    reason[(t > 0) & (price <= intrinsic)] = IV_REASON_BELOW_INTRINSIC
    active = np.flatnonzero((t > 0) & (price > intrinsic))
    premium = np.zeros(s.size)
    sigma = np.full(s.size, np.nan)
    for _ in range(max_iterations):
        if active.size == 0:
            break
        a = active
        euro = implied_vol_vectorized_with_reason(
            np.maximum(price[a] - premium[a], 0.0), c[a], risky[a], k[a], t[a], r[a], q[a])
        ok = euro.reason == IV_REASON_OK
        failed = a[~ok]
        reason[failed] = euro.reason[~ok]
        a, new_sigma = a[ok], euro.iv_annualized[ok]
        moved = np.abs(new_sigma - np.nan_to_num(sigma[a], nan=np.inf))
        sigma[a] = new_sigma
        done = moved <= tolerance_vol
        iv[a[done]] = new_sigma[done]
        reason[a[done]] = IV_REASON_OK
        a = a[~done]
        if a.size:
            args = (c[a], s[a], k[a], t[a], r[a], sigma[a], q[a], tau[a], amount[a], steps)
            premium[a] = _crr(*args, american=True) - _crr(*args, american=False)
        active = a
    return ImpliedVolResult(iv.reshape(shape), reason.astype(str).reshape(shape))


def should_assign_call_before_ex_dividend(spot, strike, t_years, rate, iv_annualized,
                                          dividend_per_share, *, ex_dividend_t_years=ONE_DAY_YEARS,
                                          dividend_yield=0.0, steps: int = DEFAULT_TREE_STEPS):
    """True where a short American call is assigned at this close, the session before an
    ex-dividend date.

    A holder exercises on the last session before the ex-date when exercising now is worth more
    than keeping the call: ``spot - strike`` against the American value of the call once the
    stock has dropped by the dividend, ``spot - dividend``, with ``t_years -
    ex_dividend_t_years`` to expiry (no further cash dividends; ``dividend_yield`` for any
    continuous yield). Equivalently, the dividend exceeds the time value that exercise throws
    away, so it needs an in-the-money call and ``dividend > strike (1 - exp(-r tau))`` at least.
    (The simpler rule "in the money by more than the dividend" is close for deep in-the-money
    calls; this one also accounts for the time value of calls nearer the money.) Ex-dates after
    expiry never trigger assignment. Arrays broadcast; returns a bool array (or a bool).
    """
    shape, (_, s, k, t, r, v, q) = _flat("call", spot, strike, t_years, rate, iv_annualized,
                                         dividend_yield)
    div = np.broadcast_to(np.asarray(dividend_per_share, float), shape).reshape(-1)
    ex = np.broadcast_to(np.asarray(ex_dividend_t_years, float), shape).reshape(-1)
    if (div < 0).any() or (ex <= 0).any():
        raise ValueError("dividend_per_share must be >= 0 and ex_dividend_t_years > 0")
    intrinsic = s - k
    relevant = (ex <= t) & (div > 0) & (intrinsic > 0) & (s - div > 0)
    out = np.zeros(s.size, dtype=bool)
    if relevant.any():
        i = relevant
        no_div = np.zeros((int(i.sum()), 0))
        hold = _american_flat(np.ones(int(i.sum()), dtype=bool), s[i] - div[i], k[i],
                              t[i] - ex[i], r[i], v[i], q[i], no_div, no_div, steps)
        out[i] = intrinsic[i] > hold * np.exp(-r[i] * ex[i])
    return out.reshape(shape) if shape else bool(out[0])


def should_assign_put_early(spot, strike, t_years, rate, iv_annualized, dividend_yield=0.0, *,
                            dividend_t_years=None, dividend_per_share=None,
                            time_value_tolerance_per_share: float = ASSIGNMENT_TIME_VALUE_PER_SHARE,
                            steps: int = DEFAULT_TREE_STEPS):
    """True where a short American put is assigned early at this close: it is in the money and
    its time value (the CRR tree's American price minus ``strike - spot``) is at most
    ``time_value_tolerance_per_share`` (default one tick). Cash dividends still to come raise a
    put's value, so a put is rarely assigned just before an ex-date; at expiry (``t_years ==
    0``) nothing is "early" and the answer is False. Arrays broadcast; returns a bool array.
    """
    if time_value_tolerance_per_share < 0:
        raise ValueError("time_value_tolerance_per_share must be >= 0")
    shape, (_, s, k, t, r, v, q) = _flat("put", spot, strike, t_years, rate, iv_annualized,
                                         dividend_yield)
    tau, amount = _dividends(s.size, shape, dividend_t_years, dividend_per_share)
    intrinsic = k - s
    candidate = (t > 0) & (intrinsic > 0)
    out = np.zeros(s.size, dtype=bool)
    if candidate.any():
        i = candidate
        # The raw tree: at a node inside its exercise region it is exactly the intrinsic value
        # (the control variate would add the European grid error there).
        _escrowed_spot(s[i], t[i], r[i], tau[i], amount[i])
        value = _crr(np.zeros(int(i.sum()), dtype=bool), s[i], k[i], t[i], r[i], v[i], q[i],
                     tau[i], amount[i], steps, american=True)
        out[i] = value - intrinsic[i] <= time_value_tolerance_per_share
    return out.reshape(shape) if shape else bool(out[0])
