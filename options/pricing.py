"""Black-Scholes-Merton prices, greeks and implied volatility.

Conventions (every function in this module):

- Prices are per share of the underlying (the contract multiplier is applied in
  :mod:`options.positions`, nowhere else).
- ``t_years`` is time to expiry in years of :data:`DAYS_PER_YEAR` calendar days.
- ``rate`` and ``dividend_yield`` are annualised, continuously compounded decimals.
- ``iv_annualized`` is an annualised volatility as a decimal (0.20 = 20 vol points).
- ``theta_per_day`` is the change in value per calendar day that passes (per year / 365,
  as in vollib); ``vega_per_vol_point`` is the change per 1 volatility point (0.01);
  ``rho`` is the change per 1 percentage point of rate (0.01), as in vollib.

Edge cases (same in the vectorised and the scalar functions):

- ``t_years == 0``: the option is at expiry and worth its intrinsic value
  ``max(spot - strike, 0)`` (call) or ``max(strike - spot, 0)`` (put); greeks are the
  expiry limits (delta 1/0, 0.5 exactly at the money for a call, gamma/theta/vega/rho 0).
- total volatility ``iv_annualized * sqrt(t_years)`` below :data:`MIN_TOTAL_VOLATILITY`
  (zero or tiny volatility): the discounted intrinsic value of the forward,
  ``max(spot e^{-qT} - strike e^{-rT}, 0)`` for a call, and the derivatives of that.
- invalid input (non-positive spot or strike, negative time or volatility, any non-finite
  value, an option type other than "call"/"put") raises :class:`ValueError` naming the
  argument.

European exercise only: American early exercise (SPY options are American) is out of
scope; for calls on a low-dividend ETF the difference is negligible, for deep in-the-money
puts it is not, and the model ignores it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from common.lazy import lazy_module
from common.units import CALENDAR_DAYS_PER_YEAR

# scipy.special adds about 0.3 s to a process's start, and a process that opens an environment
# from cached tables never prices: loaded at its first use
special = lazy_module("scipy.special")

__all__ = [
    "DAYS_PER_YEAR",
    "IV_LOWER_BOUND",
    "IV_REASON_ABOVE_UPPER_BOUND",
    "IV_REASON_BELOW_INTRINSIC",
    "IV_REASON_EXPIRED",
    "IV_REASON_NOT_CONVERGED",
    "IV_REASON_OK",
    "IV_UPPER_BOUND",
    "MIN_TOTAL_VOLATILITY",
    "VOL_POINT",
    "ImpliedVolResult",
    "bs_greeks",
    "bs_greeks_scalar",
    "bs_price",
    "bs_price_greeks_scalar",
    "bs_price_scalar",
    "implied_vol",
    "implied_vol_vectorized",
    "implied_vol_vectorized_with_reason",
    "is_call_array",
]


DAYS_PER_YEAR = CALENDAR_DAYS_PER_YEAR
"""Calendar days per year (``common.units.CALENDAR_DAYS_PER_YEAR``): ``t_years = calendar_days / DAYS_PER_YEAR`` and theta is per day."""
VOL_POINT = 0.01
"""One volatility point (and one rate point) as a decimal."""
MIN_TOTAL_VOLATILITY = 1e-12
"""Below this ``iv * sqrt(t)`` an option is priced at the discounted intrinsic of the forward."""
IV_LOWER_BOUND = 1e-6
"""Smallest implied volatility the vectorised inverter searches."""
IV_UPPER_BOUND = 10.0
"""Largest implied volatility the vectorised inverter searches (1000 vol points)."""

IV_REASON_OK = "ok"
IV_REASON_BELOW_INTRINSIC = "below_intrinsic"
IV_REASON_ABOVE_UPPER_BOUND = "above_upper_bound"
IV_REASON_EXPIRED = "expired"
IV_REASON_NOT_CONVERGED = "not_converged"

_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INF = math.inf


# --------------------------------------------------------------------------- validation
_CALL_U4 = np.array(["call"], dtype="<U4").view(np.uint64)
_PUT_U4 = np.array(["put"], dtype="<U4").view(np.uint64)


def is_call_array(option_type) -> np.ndarray:
    """Boolean array, True for "call", False for "put"; raises on anything else.

    A boolean array (True = call) is passed through.
    """
    arr = np.asarray(option_type)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "UO":
        raise ValueError(
            f"option_type must be 'call' or 'put' (or an array of them), got dtype {arr.dtype}"
        )
    if arr.dtype == np.dtype("<U4") and arr.ndim >= 1 and arr.flags.c_contiguous:
        # Fast path: compare the 16 bytes of each fixed-width string as two integers.
        words = arr.view(np.uint64).reshape(arr.shape + (2,))
        is_call = (words[..., 0] == _CALL_U4[0]) & (words[..., 1] == _CALL_U4[1])
        is_put = (words[..., 0] == _PUT_U4[0]) & (words[..., 1] == _PUT_U4[1])
    else:
        is_call = np.asarray(arr == "call")
        is_put = np.asarray(arr == "put")
    bad = ~(is_call | is_put)
    if np.any(bad):
        first = arr.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]
        raise ValueError(
            f"option_type must be 'call' or 'put', got {first!r} "
            f"({int(np.count_nonzero(bad))} invalid value(s))"
        )
    return is_call


def _check(name: str, value: np.ndarray, *, positive: bool = False, nonneg: bool = False):
    if value.size == 0:
        return
    lo, hi = (value.min(), value.max()) if value.size > 1 else (value.item(), value.item())
    # min/max propagate NaN, so this one test covers NaN, infinities and the lower bound.
    if (
        np.isfinite(lo)
        and np.isfinite(hi)
        and not (positive and lo <= 0)
        and not (nonneg and lo < 0)
    ):
        return
    flat = value.reshape(-1)
    finite = np.isfinite(flat)
    if not finite.all():
        raise ValueError(f"{name} must be finite, got {float(flat[~finite][0])!r}")
    if positive:
        raise ValueError(f"{name} must be > 0, got {float(flat[flat <= 0][0])!r}")
    raise ValueError(f"{name} must be >= 0, got {float(flat[flat < 0][0])!r}")


def _prepare(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield):
    is_call = is_call_array(option_type)
    s = np.asarray(spot, dtype=float)
    k = np.asarray(strike, dtype=float)
    t = np.asarray(t_years, dtype=float)
    r = np.asarray(rate, dtype=float)
    v = np.asarray(iv_annualized, dtype=float)
    q = np.asarray(dividend_yield, dtype=float)
    _check("spot", s, positive=True)
    _check("strike", k, positive=True)
    _check("t_years", t, nonneg=True)
    _check("rate", r)
    _check("iv_annualized", v, nonneg=True)
    _check("dividend_yield", q)
    try:
        return np.broadcast_arrays(is_call, s, k, t, r, v, q)
    except ValueError as exc:
        raise ValueError(
            "option_type, spot, strike, t_years, rate, iv_annualized and dividend_yield "
            f"must broadcast to one shape: {exc}"
        ) from None


def _scalar_or_array(x: np.ndarray):
    return float(x) if x.ndim == 0 else x


# --------------------------------------------------------------------------- vectorised
def bs_price(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield=0.0):
    """Black-Scholes-Merton price per share, vectorised with NumPy broadcasting.

    Args:
        option_type: "call"/"put", or an array of them (or a boolean array, True = call).
        spot: underlying price (> 0).
        strike: strike price (> 0).
        t_years: time to expiry in years of 365 calendar days (>= 0).
        rate: annualised continuously compounded risk-free rate (decimal).
        iv_annualized: annualised volatility (decimal, >= 0).
        dividend_yield: annualised continuous dividend yield (decimal).

    Returns:
        Price per share: a float for scalar inputs, else an array of the broadcast shape.
    """
    c, s, k, t, r, v, q = _prepare(
        option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        total_vol = v * np.sqrt(t)
        disc_spot = s * np.exp(-q * t)
        disc_strike = k * np.exp(-r * t)
        smooth = total_vol >= MIN_TOTAL_VOLATILITY
        all_smooth = bool(smooth.all())
        safe_vol = total_vol if all_smooth else np.where(smooth, total_vol, 1.0)
        # d1 = (log(S/K) + (r - q) t + v^2 t / 2) / (v sqrt t), written with the discounted
        # spot and strike; for puts evaluate the call formula at -d1, -d2 and flip the sign.
        d1 = np.log(disc_spot / disc_strike) / safe_vol + 0.5 * safe_vol
        sign = np.where(c, 1.0, -1.0)
        out = sign * (disc_spot * special.ndtr(sign * d1) - disc_strike * special.ndtr(sign * (d1 - safe_vol)))
        if not all_smooth:
            degenerate = np.maximum(sign * (disc_spot - disc_strike), 0.0)
            out = np.where(smooth, out, degenerate)
    return _scalar_or_array(np.maximum(out, 0.0))


def bs_greeks(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield=0.0):
    """Black-Scholes-Merton greeks, vectorised; same arguments as :func:`bs_price`.

    Returns:
        dict with ``delta`` (per 1 unit of spot), ``gamma`` (per unit of spot squared),
        ``theta_per_day`` (value change per calendar day), ``vega_per_vol_point``
        (per 0.01 of volatility) and ``rho`` (per 0.01 of rate); floats for scalar input.
    """
    return _greeks(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield,
                   with_rho=True)


def _greeks(option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield,
            *, with_rho: bool):
    """:func:`bs_greeks`, with ``rho`` only when ``with_rho`` (quotes carry no rho; skipping
    it leaves every other greek's operations, and so its bits, unchanged)."""
    c, s, k, t, r, v, q = _prepare(
        option_type, spot, strike, t_years, rate, iv_annualized, dividend_yield
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        sqrt_t = np.sqrt(t)
        total_vol = v * sqrt_t
        df_r = np.exp(-r * t)
        df_q = np.exp(-q * t)
        smooth = total_vol >= MIN_TOTAL_VOLATILITY
        safe_vol = np.where(smooth, total_vol, 1.0)
        safe_sqrt_t = np.where(smooth, sqrt_t, 1.0)
        d1 = (np.log(s / k) + (r - q) * t + 0.5 * total_vol * total_vol) / safe_vol
        d2 = d1 - safe_vol
        pdf_d1 = _INV_SQRT2PI * np.exp(-0.5 * d1 * d1)
        n_d1 = special.ndtr(d1)
        n_d2 = special.ndtr(d2)
        n_md1 = special.ndtr(-d1)
        n_md2 = special.ndtr(-d2)
        delta = np.where(c, df_q * n_d1, -df_q * n_md1)
        gamma = df_q * pdf_d1 / (s * safe_vol)
        decay = -s * df_q * pdf_d1 * v / (2.0 * safe_sqrt_t)
        theta_year = np.where(
            c,
            decay + q * s * df_q * n_d1 - r * k * df_r * n_d2,
            decay - q * s * df_q * n_md1 + r * k * df_r * n_md2,
        )
        vega = s * df_q * pdf_d1 * safe_sqrt_t

        # Degenerate: expiry or zero volatility -> derivatives of the discounted intrinsic.
        expired = t == 0.0
        fwd_diff = s * df_q - k * df_r
        itm = np.where(c, fwd_diff > 0.0, fwd_diff < 0.0)
        at_money = fwd_diff == 0.0
        deg_delta = np.where(c, df_q, -df_q) * np.where(itm, 1.0, np.where(at_money, 0.5, 0.0))
        deg_theta = np.where(
            itm, np.where(c, q * s * df_q - r * k * df_r, r * k * df_r - q * s * df_q), 0.0
        )
        deg_theta = np.where(expired, 0.0, deg_theta)
        zero = np.zeros_like(s)
        out = {
            "delta": np.where(smooth, delta, deg_delta),
            "gamma": np.where(smooth, gamma, zero),
            "theta_per_day": np.where(smooth, theta_year, deg_theta) / DAYS_PER_YEAR,
            "vega_per_vol_point": np.where(smooth, vega, zero) * VOL_POINT,
        }
        if with_rho:
            rho = np.where(c, t * k * df_r * n_d2, -t * k * df_r * n_md2)
            deg_rho = np.where(itm, np.where(c, t * k * df_r, -t * k * df_r), 0.0)
            out["rho"] = np.where(smooth, rho, deg_rho) * VOL_POINT
    return {name: _scalar_or_array(value) for name, value in out.items()}


# --------------------------------------------------------------------------- scalar fast path
def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _scalar_invalid(spot, strike, t_years, rate, iv_annualized, dividend_yield) -> ValueError:
    for name, value, lower in (
        ("spot", spot, "positive"),
        ("strike", strike, "positive"),
        ("t_years", t_years, "nonneg"),
        ("rate", rate, None),
        ("iv_annualized", iv_annualized, "nonneg"),
        ("dividend_yield", dividend_yield, None),
    ):
        if not math.isfinite(value):
            return ValueError(f"{name} must be finite, got {value!r}")
        if lower == "positive" and value <= 0:
            return ValueError(f"{name} must be > 0, got {value!r}")
        if lower == "nonneg" and value < 0:
            return ValueError(f"{name} must be >= 0, got {value!r}")
    return ValueError("invalid input")  # pragma: no cover - unreachable by construction


def bs_price_scalar(
    is_call: bool,
    spot: float,
    strike: float,
    t_years: float,
    rate: float,
    iv_annualized: float,
    dividend_yield: float = 0.0,
) -> float:
    """Scalar twin of :func:`bs_price` for hot loops (``math`` only, about 1 µs).

    Same units, edge cases and errors as :func:`bs_price`; ``is_call`` is a bool.
    """
    if not (
        0.0 < spot < _INF
        and 0.0 < strike < _INF
        and 0.0 <= t_years < _INF
        and 0.0 <= iv_annualized < _INF
        and -_INF < rate < _INF
        and -_INF < dividend_yield < _INF
    ):
        raise _scalar_invalid(spot, strike, t_years, rate, iv_annualized, dividend_yield)
    total_vol = iv_annualized * math.sqrt(t_years)
    df_r = math.exp(-rate * t_years)
    df_q = math.exp(-dividend_yield * t_years)
    if total_vol < MIN_TOTAL_VOLATILITY:
        fwd_diff = spot * df_q - strike * df_r
        if is_call:
            return fwd_diff if fwd_diff > 0.0 else 0.0
        return -fwd_diff if fwd_diff < 0.0 else 0.0
    d1 = (
        math.log(spot / strike) + (rate - dividend_yield) * t_years + 0.5 * total_vol * total_vol
    ) / total_vol
    d2 = d1 - total_vol
    if is_call:
        value = spot * df_q * _ncdf(d1) - strike * df_r * _ncdf(d2)
    else:
        value = strike * df_r * _ncdf(-d2) - spot * df_q * _ncdf(-d1)
    return value if value > 0.0 else 0.0


def bs_price_greeks_scalar(
    is_call: bool,
    spot: float,
    strike: float,
    t_years: float,
    rate: float,
    iv_annualized: float,
    dividend_yield: float = 0.0,
) -> tuple[float, float, float, float, float]:
    """Price and greeks in one pass (scalar, ``math`` only).

    Returns:
        ``(price_per_share, delta, gamma, theta_per_day, vega_per_vol_point)``, equal to
        :func:`bs_price` and :func:`bs_greeks` to rounding.
    """
    if not (
        0.0 < spot < _INF
        and 0.0 < strike < _INF
        and 0.0 <= t_years < _INF
        and 0.0 <= iv_annualized < _INF
        and -_INF < rate < _INF
        and -_INF < dividend_yield < _INF
    ):
        raise _scalar_invalid(spot, strike, t_years, rate, iv_annualized, dividend_yield)
    sqrt_t = math.sqrt(t_years)
    total_vol = iv_annualized * sqrt_t
    df_r = math.exp(-rate * t_years)
    df_q = math.exp(-dividend_yield * t_years)
    if total_vol < MIN_TOTAL_VOLATILITY:
        fwd_diff = spot * df_q - strike * df_r
        itm = fwd_diff > 0.0 if is_call else fwd_diff < 0.0
        if itm:
            delta = df_q if is_call else -df_q
        elif fwd_diff == 0.0:
            delta = 0.5 * df_q if is_call else -0.5 * df_q
        else:
            delta = 0.0
        theta_year = 0.0
        if itm and t_years > 0.0:
            carry = dividend_yield * spot * df_q - rate * strike * df_r
            theta_year = carry if is_call else -carry
        price = abs(fwd_diff) if itm else 0.0
        return price, delta, 0.0, theta_year / DAYS_PER_YEAR, 0.0
    d1 = (
        math.log(spot / strike) + (rate - dividend_yield) * t_years + 0.5 * total_vol * total_vol
    ) / total_vol
    d2 = d1 - total_vol
    pdf_d1 = _INV_SQRT2PI * math.exp(-0.5 * d1 * d1)
    decay = -spot * df_q * pdf_d1 * iv_annualized / (2.0 * sqrt_t)
    if is_call:
        n_d1 = _ncdf(d1)
        n_d2 = _ncdf(d2)
        price = spot * df_q * n_d1 - strike * df_r * n_d2
        delta = df_q * n_d1
        theta_year = decay + dividend_yield * spot * df_q * n_d1 - rate * strike * df_r * n_d2
    else:
        n_md1 = _ncdf(-d1)
        n_md2 = _ncdf(-d2)
        price = strike * df_r * n_md2 - spot * df_q * n_md1
        delta = -df_q * n_md1
        theta_year = decay - dividend_yield * spot * df_q * n_md1 + rate * strike * df_r * n_md2
    gamma = df_q * pdf_d1 / (spot * total_vol)
    vega = spot * df_q * pdf_d1 * sqrt_t * VOL_POINT
    return (price if price > 0.0 else 0.0), delta, gamma, theta_year / DAYS_PER_YEAR, vega


def bs_greeks_scalar(
    is_call: bool,
    spot: float,
    strike: float,
    t_years: float,
    rate: float,
    iv_annualized: float,
    dividend_yield: float = 0.0,
) -> tuple[float, float, float, float]:
    """Scalar twin of :func:`bs_greeks` for hot loops.

    Returns:
        ``(delta, gamma, theta_per_day, vega_per_vol_point)`` (no rho: the environment holds
        the rate fixed over a step).
    """
    return bs_price_greeks_scalar(
        is_call, spot, strike, t_years, rate, iv_annualized, dividend_yield
    )[1:]


# --------------------------------------------------------------------------- implied vol
def implied_vol(
    price_per_share: float,
    option_type: str,
    spot: float,
    strike: float,
    t_years: float,
    rate: float,
    dividend_yield: float = 0.0,
) -> float:
    """Scalar implied volatility by vollib (Jäckel's "Let's Be Rational").

    Returns NaN where no volatility reproduces the price: at or past expiry, a price below
    the discounted intrinsic value or above the no-arbitrage upper bound. Use
    :func:`implied_vol_vectorized_with_reason` to learn which.
    """
    # vollib (optional reference implementation): only for this solver
    from vollib.black_scholes_merton.implied_volatility import (
        implied_volatility as _vollib_iv,
    )

    if option_type not in ("call", "put"):
        raise ValueError(f"option_type must be 'call' or 'put', got {option_type!r}")
    if not (math.isfinite(price_per_share) and price_per_share >= 0):
        raise ValueError(f"price_per_share must be finite and >= 0, got {price_per_share!r}")
    if not (
        0.0 < spot < _INF
        and 0.0 < strike < _INF
        and 0.0 <= t_years < _INF
        and -_INF < rate < _INF
        and -_INF < dividend_yield < _INF
    ):
        raise _scalar_invalid(spot, strike, t_years, rate, 0.0, dividend_yield)
    if t_years == 0.0:
        return math.nan
    try:
        iv = _vollib_iv(
            price_per_share,
            spot,
            strike,
            t_years,
            rate,
            dividend_yield,
            "c" if option_type == "call" else "p",
        )
    except Exception:  # vollib raises PriceIsAboveMaximum / PriceIsBelowIntrinsic
        return math.nan
    iv = float(iv)
    return iv if math.isfinite(iv) and iv > 0 else math.nan


class ImpliedVolResult(NamedTuple):
    """Implied volatilities (NaN where none exists) and a reason code per element."""

    iv_annualized: np.ndarray
    reason: np.ndarray


def implied_vol_vectorized_with_reason(
    price_per_share,
    option_type,
    spot,
    strike,
    t_years,
    rate,
    dividend_yield=0.0,
    *,
    tolerance: float = 1e-12,
    max_iterations: int = 100,
) -> ImpliedVolResult:
    """Vectorised implied volatility by safeguarded Newton-Raphson inside a bisection bracket.

    The bracket is ``[IV_LOWER_BOUND, IV_UPPER_BOUND]``; each iteration takes the Newton step
    when it stays inside the bracket and halves the bracket (geometrically) otherwise, so it
    converges for every attainable price. Reason codes (strings):

    - ``"ok"``: converged (relative price error below ``tolerance`` or bracket collapsed);
    - ``"expired"``: ``t_years == 0`` (no time value to invert);
    - ``"below_intrinsic"``: price below the discounted intrinsic of the forward (lower bound)
      or so close to it that the volatility is below ``IV_LOWER_BOUND``;
    - ``"above_upper_bound"``: price at or above ``spot e^{-qT}`` (call) or ``strike e^{-rT}``
      (put), or needing a volatility above ``IV_UPPER_BOUND``;
    - ``"not_converged"``: iterations ran out (not expected in practice).

    The volatility is NaN wherever the reason is not ``"ok"``.
    """
    p = np.asarray(price_per_share, dtype=float)
    _check("price_per_share", p, nonneg=True)
    c, s, k, t, r, _, q = _prepare(option_type, spot, strike, t_years, rate, 0.0, dividend_yield)
    try:
        p, c, s, k, t, r, q = np.broadcast_arrays(p, c, s, k, t, r, q)
    except ValueError as exc:
        raise ValueError(
            f"price_per_share must broadcast with the other arguments: {exc}"
        ) from None
    df_r = np.exp(-r * t)
    df_q = np.exp(-q * t)
    fwd_diff = s * df_q - k * df_r
    lower = np.where(c, np.maximum(fwd_diff, 0.0), np.maximum(-fwd_diff, 0.0))
    upper = np.where(c, s * df_q, k * df_r)

    reason = np.full(s.shape, IV_REASON_NOT_CONVERGED, dtype=object)
    expired = t == 0.0
    below = ~expired & (p <= lower)
    above = ~expired & ~below & (p >= upper)
    reason[expired] = IV_REASON_EXPIRED
    reason[below] = IV_REASON_BELOW_INTRINSIC
    reason[above] = IV_REASON_ABOVE_UPPER_BOUND
    todo = ~(expired | below | above)
    iv = np.full(s.shape, np.nan)

    idx = np.flatnonzero(todo.reshape(-1))
    if idx.size:
        cc, ss, kk, tt, rr, qq, pp = (a.reshape(-1)[idx] for a in (c, s, k, t, r, q, p))
        lo = np.full(idx.size, IV_LOWER_BOUND)
        hi = np.full(idx.size, IV_UPPER_BOUND)
        p_lo = bs_price(cc, ss, kk, tt, rr, lo, qq)
        p_hi = bs_price(cc, ss, kk, tt, rr, hi, qq)
        sub_reason = np.full(idx.size, IV_REASON_NOT_CONVERGED, dtype=object)
        sub_reason[pp <= p_lo] = IV_REASON_BELOW_INTRINSIC
        sub_reason[pp >= p_hi] = IV_REASON_ABOVE_UPPER_BOUND
        active = (pp > p_lo) & (pp < p_hi)
        # Start near the Brenner-Subrahmanyam at-the-money approximation, inside the bracket.
        sigma = np.clip(np.sqrt(2.0 * np.pi / tt) * pp / ss, 0.05, 2.0)
        result = np.full(idx.size, np.nan)
        for _ in range(max_iterations):
            a = np.flatnonzero(active)
            if a.size == 0:
                break
            sg = sigma[a]
            price = bs_price(cc[a], ss[a], kk[a], tt[a], rr[a], sg, qq[a])
            vega = bs_greeks(cc[a], ss[a], kk[a], tt[a], rr[a], sg, qq[a])["vega_per_vol_point"]
            vega = np.atleast_1d(vega) / VOL_POINT
            price = np.atleast_1d(price)
            diff = price - pp[a]
            too_high = diff > 0
            hi[a] = np.where(too_high, sg, hi[a])
            lo[a] = np.where(too_high, lo[a], sg)
            converged = (np.abs(diff) <= np.maximum(tolerance * pp[a], 1e-15 * (ss[a] + kk[a]))) | (
                hi[a] - lo[a] <= 1e-15 * hi[a]
            )
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                newton = sg - diff / vega
            inside = np.isfinite(newton) & (newton > lo[a]) & (newton < hi[a])
            bisect = np.sqrt(lo[a] * hi[a])
            nxt = np.where(inside, newton, bisect)
            done = a[converged]
            result[done] = sg[converged]
            sub_reason[done] = IV_REASON_OK
            active[done] = False
            sigma[a] = np.where(converged, sg, nxt)
        iv.reshape(-1)[idx] = result
        reason.reshape(-1)[idx] = sub_reason
    return ImpliedVolResult(iv, reason.astype(str))


def implied_vol_vectorized(
    price_per_share, option_type, spot, strike, t_years, rate, dividend_yield=0.0
):
    """Vectorised implied volatility: NaN where none exists (see
    :func:`implied_vol_vectorized_with_reason` for the reason per element)."""
    result = implied_vol_vectorized_with_reason(
        price_per_share, option_type, spot, strike, t_years, rate, dividend_yield
    )
    return _scalar_or_array(result.iv_annualized)
