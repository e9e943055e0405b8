"""A 30-day volatility index from an option chain by the CBOE VIX method.

CBOE, "Cboe Volatility Index (VIX) White Paper" (2019), steps 1-3, for each of a near and a
next term:

1. Forward ``F = K* + e^{RT} (C - P)`` at the strike ``K*`` where call and put mids are
   closest; ``K0`` is the first strike at or below ``F``.
2. Out-of-the-money puts below ``K0`` (going down) and calls above it (going up), skipping
   zero bids and stopping after two consecutive zero bids; at ``K0`` the mean of the put
   and call mids.
3. ``sigma^2 = (2/T) sum_i dK_i / K_i^2 e^{RT} Q(K_i) - (1/T) (F/K0 - 1)^2`` with
   ``dK_i = (K_{i+1} - K_{i-1}) / 2`` (one-sided at the ends of the strip).

Then ``index = sqrt((T1 s1^2 (N2 - N30)/(N2 - N1) + T2 s2^2 (N30 - N1)/(N2 - N1)) * N365/N30)``
with ``N`` in days (end-of-day quotes: ``T = days / 365``). The near term is the latest expiry
of :data:`MIN_TERM_DTE_DAYS` to 30 days, the next the earliest beyond 30 days; with only one
of them, its variance is used as the 30-day one (``method`` says so). Returned as a decimal
(VIX / 100) like the market frame's ``iv_index``.

Sparse chains (the shared SPY file quotes about 20 contracts a day) have too few strikes for
the sum; there the same formula runs on a dense strike grid priced from the day's fitted
smile (:mod:`options.smile`), ``method = "smile"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from options.pricing import DAYS_PER_YEAR, bs_price
from options.smile import ChainDataError, SmileFit

__all__ = [
    "MIN_STRIKES_PER_SIDE",
    "MIN_TERM_DTE_DAYS",
    "TARGET_DTE_DAYS",
    "cboe_strip",
    "chain_vix_index",
    "smile_term_variance",
    "term_variance",
    "vix_from_terms",
]

TARGET_DTE_DAYS = 30
MIN_TERM_DTE_DAYS = 7
"""Shortest expiry used as the near term (CBOE's rule is 23 days with weeklies listed every
few days; 7 lets chains with monthly expiries only still have a near term)."""
MIN_STRIKES_PER_SIDE = 5
"""Out-of-the-money strikes with bids needed on each side of K0 to use listed quotes."""
SMILE_GRID_STRIKES = 401
SMILE_GRID_SD = (8.0, 5.0)
"""Synthetic strip for the smile method: strikes from F e^{-8 s sqrt(T)} to F e^{+5 s sqrt(T)}
(s: ATM vol), beyond which the listed SPX strips of the shared file contribute nothing
measurable."""


def cboe_strip(strikes, call_mid, call_bid, put_mid, put_bid, rate, t_years):
    """CBOE steps 1-2 on one expiry's quotes (arrays by ascending strike; NaN where a side
    has no quote). Returns ``(forward, K0, strip strikes, strip Q, {"put": n, "call": n})``
    with the number of out-of-the-money strikes kept on each side."""
    both = np.isfinite(call_mid) & np.isfinite(put_mid)
    if not both.any():
        raise ChainDataError("no strike has both a call and a put quote")
    diff = np.where(both, np.abs(call_mid - put_mid), np.inf)
    j = int(np.argmin(diff))
    growth = np.exp(rate * t_years)
    fwd = strikes[j] + growth * (call_mid[j] - put_mid[j])
    below = np.flatnonzero(strikes <= fwd)
    if below.size == 0:
        raise ChainDataError(f"no strike at or below the forward {fwd:.2f}")
    i0 = int(below[-1])
    ks, qs = [strikes[i0]], [0.5 * (call_mid[i0] + put_mid[i0]) if both[i0] else
                            (put_mid[i0] if np.isfinite(put_mid[i0]) else call_mid[i0])]
    n_side = {}
    for side, idx_range, mid, bid in (("put", range(i0 - 1, -1, -1), put_mid, put_bid),
                                      ("call", range(i0 + 1, len(strikes)), call_mid, call_bid)):
        zeros, n = 0, 0
        for i in idx_range:
            if not np.isfinite(bid[i]) or bid[i] <= 0:
                zeros += 1
                if zeros >= 2:
                    break
                continue
            zeros = 0
            ks.append(strikes[i])
            qs.append(mid[i])
            n += 1
        n_side[side] = n
    order = np.argsort(ks)
    return fwd, strikes[i0], np.asarray(ks)[order], np.asarray(qs)[order], n_side


def term_variance(strikes, q_mid, forward: float, k0: float, rate: float,
                  t_years: float) -> float:
    """CBOE step 3: the term's variance from a sorted strip of strikes and their Q(K)."""
    k = np.asarray(strikes, dtype=float)
    q = np.asarray(q_mid, dtype=float)
    if k.size < 2:
        raise ChainDataError("a strip needs at least two strikes")
    dk = np.empty_like(k)
    dk[1:-1] = 0.5 * (k[2:] - k[:-2])
    dk[0] = k[1] - k[0]
    dk[-1] = k[-1] - k[-2]
    total = np.sum(dk / k**2 * np.exp(rate * t_years) * q)
    return float(2.0 / t_years * total - (forward / k0 - 1.0) ** 2 / t_years)


def vix_from_terms(var1: float, dte1: float, var2: float | None, dte2: float | None) -> float:
    """CBOE step 4 (decimal); ``var2=None`` uses the one term's variance as the 30-day one."""
    if var2 is None:
        return float(np.sqrt(max(var1, 0.0)))
    t1, t2 = dte1 / DAYS_PER_YEAR, dte2 / DAYS_PER_YEAR
    w1 = (dte2 - TARGET_DTE_DAYS) / (dte2 - dte1)
    w2 = (TARGET_DTE_DAYS - dte1) / (dte2 - dte1)
    total = (t1 * var1 * w1 + t2 * var2 * w2) * DAYS_PER_YEAR / TARGET_DTE_DAYS
    return float(np.sqrt(max(total, 0.0)))


def _pick_terms(dtes: np.ndarray) -> tuple[int | None, int | None]:
    near = [d for d in dtes if MIN_TERM_DTE_DAYS <= d <= TARGET_DTE_DAYS]
    nxt = [d for d in dtes if d > TARGET_DTE_DAYS]
    return (max(near) if near else None), (min(nxt) if nxt else None)


def _listed_term(g: pd.DataFrame, rate: float):
    wide = g.pivot_table(index="strike", columns="option_type",
                         values=["mid_per_share", "bid_per_share"], aggfunc="first")
    strikes = wide.index.to_numpy(dtype=float)

    def col(v, side):
        key = (v, side)
        return wide[key].to_numpy(dtype=float) if key in wide.columns else np.full(
            len(strikes), np.nan)

    t = g["dte_days"].iloc[0] / DAYS_PER_YEAR
    try:
        fwd, k0, ks, qs, n_side = cboe_strip(strikes, col("mid_per_share", "call"),
                                         col("bid_per_share", "call"),
                                         col("mid_per_share", "put"),
                                         col("bid_per_share", "put"), rate, t)
    except ChainDataError:
        return None
    if min(n_side.values()) < MIN_STRIKES_PER_SIDE:
        return None
    return term_variance(ks, qs, fwd, k0, rate, t)


def smile_term_variance(fit: SmileFit, dte: float, rate: float) -> float:
    """CBOE step 3 on a dense synthetic strip priced from a fitted smile (:data:`SMILE_GRID_SD`)."""
    t = dte / DAYS_PER_YEAR
    fwd = float(fit.forward_at(t)) if not np.any(np.isclose(fit.t_years, t)) else float(
        fit.forwards[np.argmin(np.abs(fit.t_years - t))])
    atm = float(fit.iv(fwd, t, forward=fwd))
    sd = atm * np.sqrt(t)
    k = fwd * np.exp(np.linspace(-SMILE_GRID_SD[0] * sd, SMILE_GRID_SD[1] * sd,
                                 SMILE_GRID_STRIKES))
    iv = fit.iv(k, t, forward=fwd)
    q_div = rate - np.log(fwd / fit.spot) / t
    k0 = k[k <= fwd][-1]
    is_call = k > k0
    mid = bs_price(is_call, fit.spot, k, t, rate, iv, q_div)
    at = k == k0
    mid[at] = 0.5 * (bs_price(True, fit.spot, k0, t, rate, iv[at], q_div)
                     + bs_price(False, fit.spot, k0, t, rate, iv[at], q_div))
    return term_variance(k, mid, fwd, k0, rate, t)


def chain_vix_index(chain: pd.DataFrame, rate: float,
                    fits: dict[pd.Timestamp, SmileFit] | None = None, *,
                    skip_dates: bool = False) -> pd.DataFrame:
    """The 30-day index (decimal) of every quote date of a tidy chain.

    Listed quotes where both terms have :data:`MIN_STRIKES_PER_SIDE` strikes on each side,
    else the smile strip (``fits`` needed). A date with neither (no expiry of
    :data:`MIN_TERM_DTE_DAYS`+ days, e.g. a 0-DTE-only date; too few strikes and no fitted
    smile) raises :class:`ChainDataError`, or with ``skip_dates=True`` gets ``iv_index`` NaN,
    ``method = "unavailable"`` and the reason.

    Returns:
        DataFrame indexed by quote_date with ``iv_index, method, near_dte_days,
        next_dte_days, reason`` (empty where the index was computed).
    """
    rows = []
    for date, day in chain.groupby("quote_date", sort=True):
        date = pd.Timestamp(date)
        try:
            rows.append(_date_index(date, day, rate, fits))
        except ChainDataError as exc:
            if not skip_dates:
                raise
            rows.append({"quote_date": date, "iv_index": np.nan, "method": "unavailable",
                         "near_dte_days": None, "next_dte_days": None, "reason": str(exc)})
    return pd.DataFrame(rows, columns=["quote_date", "iv_index", "method", "near_dte_days",
                                       "next_dte_days", "reason"]).set_index("quote_date")


def _date_index(date: pd.Timestamp, day: pd.DataFrame, rate: float,
                fits: dict[pd.Timestamp, SmileFit] | None) -> dict:
    dtes = np.sort(day["dte_days"].unique())
    near, nxt = _pick_terms(dtes)
    terms = [d for d in (near, nxt) if d is not None]
    if not terms:
        raise ChainDataError(f"chain has no expiry of {MIN_TERM_DTE_DAYS}+ days on "
                             f"{date.date()} for the volatility index")
    variances = [_listed_term(day[day["dte_days"] == d], rate) for d in terms]
    method = "listed"
    if any(v is None for v in variances):
        if fits is None or date not in fits:
            raise ChainDataError(
                f"chain on {date.date()} has fewer than {MIN_STRIKES_PER_SIDE} strikes on "
                f"a side of the money for the volatility index and no fitted smile")
        variances = [smile_term_variance(fits[date], d, rate) for d in terms]
        method = "smile"
    if len(terms) == 2:
        index = vix_from_terms(variances[0], terms[0], variances[1], terms[1])
    else:
        index = vix_from_terms(variances[0], terms[0], None, None)
        method += "_one_term"
    return {"quote_date": date, "iv_index": index, "method": method,
            "near_dte_days": near, "next_dte_days": nxt, "reason": ""}
