"""Forwards, market implied vols and a per-day SSVI smile fitted to a real chain.

Forward and carry (:func:`implied_forwards`): for each quote date and expiry, put-call parity
``C - P = D (F - K)`` on the strikes quoted on both sides (positive bids) nearest the money
gives the forward ``F = K + (C - P) / D`` with ``D = exp(-r T)`` (median over the
:data:`PARITY_STRIKES` strikes with the smallest ``|C - P|``, as the CBOE VIX method does with
one). Where at least :data:`MIN_PAIRS_FOR_RATE` pairs exist, a regression of ``C - P`` on
``K`` also gives ``D`` itself (a box-spread rate): :func:`parity_rate` is its median over
expiries of :data:`MIN_RATE_DTE_DAYS` days or more. The carry ``q = r - ln(F / S) / T``
is the dividend yield implied by parity.

Market implied vols (:func:`market_ivs`): the mid of each out-of-the-money quote (puts below
the forward, calls at or above it) with a positive bid is inverted with BSM at the spot, the
rate and the expiry's parity carry (the same as Black-76 on the forward). Expiries without a
put-call pair use the date's median carry.

SSVI (:func:`fit_ssvi_day`): Gatheral & Jacquier, "Arbitrage-free SVI volatility surfaces",
Quantitative Finance 14 (2014). Total implied variance at forward log-moneyness ``k``::

    w(k, theta) = theta / 2 * (1 + rho phi k + sqrt((phi k + rho)^2 + 1 - rho^2))
    phi(theta)  = eta / (theta^gamma (1 + theta)^(1 - gamma)),  gamma = 1/2

with ``theta`` the at-the-money total variance of each listed expiry (non-decreasing in T:
no calendar arbitrage) and ``eta (1 + |rho|) <= 2`` (no butterfly arbitrage, their
Remark 4.4 / Corollary 4.1 for this ``phi``). One (rho, eta) per day, one theta per expiry;
least squares in implied vol on the day's out-of-the-money quotes. Between fitted expiries
``theta`` is interpolated linearly in T; beyond them it scales with T (flat ATM vol).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.errors import UserInputError
from common.lazy import lazy_module
from options.american import (
    DividendHistory,
    implied_vol_american,
    project_quarterly_dividends,
)
from options.pricing import DAYS_PER_YEAR, VOL_POINT, implied_vol_vectorized

# scipy.optimize adds about 0.3 s to a process's start: loaded at its first use
optimize = lazy_module("scipy.optimize")

__all__ = [
    "ChainDataError",
    "MIN_RATE_DTE_DAYS",
    "PARITY_STRIKES",
    "SmileFit",
    "fit_smiles",
    "chain_dividend_yield",
    "fit_ssvi_day",
    "implied_forwards",
    "implied_vol_american_quotes",
    "market_ivs",
    "parity_rate",
    "ssvi_total_variance",
]

PARITY_STRIKES = 3
"""Strikes nearest the money (smallest |C - P|) whose parity forwards are averaged."""
MIN_PAIRS_FOR_RATE = 5
"""Put-call pairs needed at an expiry before its box-spread rate is used."""
MIN_RATE_DTE_DAYS = 30
"""Shortest expiry whose box rate or parity carry enters the chain's rate / dividend yield
(shorter ones turn a cent of quote noise into whole points of rate)."""
SSVI_GAMMA = 0.5
"""Exponent of the heavy-tailed power-law phi (Gatheral & Jacquier 2014, eq. 4.5)."""
SMILE_MIN_DTE_DAYS = 2
"""Quotes closer to expiry than this are left out of the smile fit (noise in pennies)."""
SMILE_MAX_ABS_LOG_MONEYNESS = 0.3
"""Quotes further from the forward than this are left out of the smile fit."""
SMILE_TOLERANCE = 1e-6
"""Relative tolerance of the smile fit (cost and parameters), far below a hundredth of a vol
point."""
SMILE_MAX_QUOTES_PER_EXPIRY = 40
"""Quotes per expiry used by the smile fit (evenly thinned beyond this)."""
MIN_QUOTES_FREE_SHAPE = 6
"""Usable quotes needed on a day to fit its own smile shape (rho, eta)."""
_RHO_BOUND = 0.999


class ChainDataError(UserInputError):
    """A chain that lacks what a computation needs (named in the message)."""


def _pairs(chain: pd.DataFrame) -> pd.DataFrame:
    ok = chain[~chain["zero_bid"]]
    calls = ok[ok["option_type"] == "call"]
    puts = ok[ok["option_type"] == "put"]
    key = ["quote_date", "expiry", "strike"]
    both = calls[key + ["mid_per_share", "underlying_price", "dte_days"]].merge(
        puts[key + ["mid_per_share"]], on=key, suffixes=("_call", "_put"))
    both["cp"] = both["mid_per_share_call"] - both["mid_per_share_put"]
    return both[both["dte_days"] > 0]


def parity_rate(chain: pd.DataFrame) -> float | None:
    """Median box-spread rate over (date, expiry) with enough put-call pairs and at least
    :data:`MIN_RATE_DTE_DAYS` days; None where no expiry qualifies."""
    pairs = _pairs(chain)
    pairs = pairs[pairs["dte_days"] >= MIN_RATE_DTE_DAYS]
    pairs = pairs[(pairs["strike"] / pairs["underlying_price"] - 1.0).abs() <= 0.1]
    rates = []
    for (_, _), g in pairs.groupby(["quote_date", "expiry"], sort=False):
        if len(g) < MIN_PAIRS_FOR_RATE:
            continue
        slope = np.polyfit(g["strike"].to_numpy(), g["cp"].to_numpy(), 1)[0]
        if slope < 0:
            rates.append(-np.log(-slope) / (g["dte_days"].iloc[0] / DAYS_PER_YEAR))
    return float(np.median(rates)) if rates else None


def implied_forwards(chain: pd.DataFrame, rate: float) -> pd.DataFrame:
    """Parity forward and carry per (quote_date, expiry) with a put-call pair.

    Returns columns ``quote_date, expiry, t_years, spot, forward, carry_q, n_pairs``.
    """
    pairs = _pairs(chain).copy()
    if pairs.empty:
        return pd.DataFrame(columns=["quote_date", "expiry", "t_years", "spot", "forward",
                                     "carry_q", "n_pairs"])
    pairs["t_years"] = pairs["dte_days"] / DAYS_PER_YEAR
    pairs["abs_cp"] = pairs["cp"].abs()
    pairs["fwd"] = pairs["strike"] + pairs["cp"] * np.exp(rate * pairs["t_years"])
    pairs = pairs.sort_values(["quote_date", "expiry", "abs_cp"])
    near = pairs.groupby(["quote_date", "expiry"], sort=False).head(PARITY_STRIKES)
    out = near.groupby(["quote_date", "expiry"]).agg(
        t_years=("t_years", "first"), spot=("underlying_price", "first"),
        forward=("fwd", "median"))
    out["n_pairs"] = pairs.groupby(["quote_date", "expiry"]).size()
    out["carry_q"] = rate - np.log(out["forward"] / out["spot"]) / out["t_years"]
    return out.reset_index()


def chain_dividend_yield(forwards: pd.DataFrame) -> float | None:
    """Median parity carry over expiries of at least :data:`MIN_RATE_DTE_DAYS` days."""
    long = forwards[forwards["t_years"] * DAYS_PER_YEAR >= MIN_RATE_DTE_DAYS]
    return float(long["carry_q"].median()) if len(long) else None


def market_ivs(chain: pd.DataFrame, rate: float, dividend_yield: float | None = None,
               forwards: pd.DataFrame | None = None, *, exercise: str = "european",
               dividends: DividendHistory | None = None) -> pd.DataFrame:
    """The chain with ``t_years, forward, carry_q, log_moneyness`` (vs the forward),
    ``otm`` and ``iv_market`` (NaN for in-the-money quotes, zero bids, expired contracts
    and mids with no implied vol).

    Carry of an expiry without a put-call pair: the median parity carry of that date's
    expiries (those of :data:`MIN_RATE_DTE_DAYS`+ days where there are any); on a date with
    no pair at all, the median of the earlier dates' carries, else ``dividend_yield`` (else
    0). Every date's values use that date and earlier ones only.

    ``exercise``: ``"european"`` (SPX) inverts with Black-Scholes-Merton as above;
    ``"american"`` (SPY) with :func:`implied_vol_american_quotes` (the American quote, cash
    ``dividends`` projected causally where given, else the parity carry as a yield).
    """
    fw = implied_forwards(chain, rate) if forwards is None else forwards
    q_default = 0.0 if dividend_yield is None else float(dividend_yield)
    dates = pd.DatetimeIndex(sorted(chain["quote_date"].unique()))
    if len(fw):
        long = fw["t_years"] * DAYS_PER_YEAR >= MIN_RATE_DTE_DAYS
        day_all = fw.groupby("quote_date")["carry_q"].median()
        day_long = fw[long].groupby("quote_date")["carry_q"].median()
        day_q = day_long.combine_first(day_all).reindex(dates)
    else:
        day_q = pd.Series(np.nan, index=dates)
    earlier = day_q.expanding().median().shift(1)
    day_q = day_q.fillna(earlier).fillna(q_default)
    out = chain.merge(fw[["quote_date", "expiry", "carry_q"]], on=["quote_date", "expiry"],
                      how="left")
    out["carry_q"] = pd.to_numeric(out["carry_q"], errors="coerce").astype(float).fillna(
        out["quote_date"].map(day_q).astype(float))
    t = out["dte_days"].to_numpy() / DAYS_PER_YEAR
    s = out["underlying_price"].to_numpy()
    q = out["carry_q"].to_numpy()
    out["t_years"] = t
    out["forward"] = s * np.exp((rate - q) * t)
    out["log_moneyness"] = np.log(out["strike"].to_numpy() / out["forward"].to_numpy())
    is_call = (out["option_type"] == "call").to_numpy()
    out["otm"] = np.where(is_call, out["log_moneyness"] >= 0, out["log_moneyness"] < 0)
    use = out["otm"].to_numpy() & ~out["zero_bid"].to_numpy() & (t > 0)
    iv = np.full(len(out), np.nan)
    if exercise not in ("european", "american"):
        raise ValueError(f"exercise must be 'european' or 'american', got {exercise!r}")
    if use.any() and exercise == "american":
        iv[use] = implied_vol_american_quotes(out[use], rate, dividends)
    elif use.any():
        iv[use] = implied_vol_vectorized(
            out["mid_per_share"].to_numpy()[use], out["option_type"].to_numpy()[use], s[use],
            out["strike"].to_numpy()[use], t[use], rate, q[use])
    out["iv_market"] = iv
    out.attrs.update(chain.attrs)
    out.attrs["rate"] = rate
    return out


def implied_vol_american_quotes(quotes: pd.DataFrame, rate: float,
                                dividends: DividendHistory | None = None) -> np.ndarray:
    """Implied vols of American quotes (``mid_per_share``, ``option_type``,
    ``underlying_price``, ``strike``, ``t_years``, ``quote_date``, ``carry_q``) by
    :func:`options.american.implied_vol_american` (CRR tree, escrowed cash dividends).

    Dividends: with ``dividends`` (the paid history), each quote date's causal projection
    (:func:`options.american.project_quarterly_dividends`: only dividends gone ex by that date
    are read) with no continuous yield; a date before any paid dividend, and every date
    without ``dividends``, uses the row's parity carry ``carry_q`` as a continuous yield.
    NaN where the quote has no American implied vol (e.g. at or below intrinsic).
    """
    c = quotes["option_type"].to_numpy()
    s = quotes["underlying_price"].to_numpy(float)
    k = quotes["strike"].to_numpy(float)
    t = quotes["t_years"].to_numpy(float)
    q = quotes["carry_q"].to_numpy(float)
    price = quotes["mid_per_share"].to_numpy(float)
    if dividends is None:
        return implied_vol_american(price, c, s, k, t, rate, q).iv_annualized
    dates = pd.DatetimeIndex(quotes["quote_date"])
    tau, amount = project_quarterly_dividends(dividends.ex_dates, dividends.cash_per_share,
                                              dates)
    has_cash = (amount > 0).any(axis=1)
    return implied_vol_american(price, c, s, k, t, rate, np.where(has_cash, 0.0, q),
                                dividend_t_years=tau, dividend_per_share=amount).iv_annualized


def _phi(theta, eta):
    return eta / (np.power(theta, SSVI_GAMMA) * np.power(1.0 + theta, 1.0 - SSVI_GAMMA))


def ssvi_total_variance(k, theta, rho: float, eta: float):
    """SSVI total implied variance at forward log-moneyness ``k`` (broadcasts)."""
    k = np.asarray(k, dtype=float)
    theta = np.asarray(theta, dtype=float)
    pk = _phi(theta, eta) * k
    return 0.5 * theta * (1.0 + rho * pk + np.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))


@dataclass(frozen=True)
class SmileFit:
    """One day's SSVI fit; see the module docstring."""

    quote_date: pd.Timestamp
    spot: float
    rate: float
    dividend_yield: float
    expiries: pd.DatetimeIndex
    t_years: np.ndarray
    forwards: np.ndarray
    theta: np.ndarray          # ATM total variance per expiry (non-decreasing)
    rho: float
    eta: float
    n_quotes: int
    rmse_iv_pts: float

    def theta_at(self, t_years) -> np.ndarray:
        t = np.asarray(t_years, dtype=float)
        inside = np.interp(t, self.t_years, self.theta)
        lo = self.theta[0] * t / self.t_years[0]
        hi = self.theta[-1] * t / self.t_years[-1]
        return np.where(t < self.t_years[0], lo, np.where(t > self.t_years[-1], hi, inside))

    def forward_at(self, t_years) -> np.ndarray:
        t = np.asarray(t_years, dtype=float)
        return self.spot * np.exp((self.rate - self.dividend_yield) * t)

    def iv(self, strike, t_years, forward=None) -> np.ndarray:
        """Implied vol (decimal) of ``strike`` at ``t_years`` (> 0) from the fitted smile;
        ``forward`` defaults to the listed expiry's parity forward where ``t_years`` matches
        one, else ``spot * exp((r - q) T)``."""
        t = np.asarray(t_years, dtype=float)
        if forward is None:
            idx = np.searchsorted(self.t_years, t)
            idx_c = np.clip(idx, 0, len(self.t_years) - 1)
            listed = np.isclose(self.t_years[idx_c], t, rtol=0, atol=1e-9)
            forward = np.where(listed, self.forwards[idx_c], self.forward_at(t))
        k = np.log(np.asarray(strike, dtype=float) / forward)
        theta = self.theta_at(t)
        w = ssvi_total_variance(k, theta, self.rho, self.eta)
        return np.sqrt(np.maximum(w, 0.0) / np.maximum(t, 1e-12))


def _unpack(x: np.ndarray):
    n_e = len(x) - 2
    theta = np.cumsum(np.exp(x[:n_e]))
    rho = _RHO_BOUND * np.tanh(x[n_e])
    eta = 2.0 / (1.0 + abs(rho)) / (1.0 + np.exp(-x[n_e + 1]))
    return theta, rho, eta


def _thin(q: pd.DataFrame) -> pd.DataFrame:
    """At most :data:`SMILE_MAX_QUOTES_PER_EXPIRY` quotes per expiry, evenly spaced in
    log-moneyness rank (dense index chains list 100+ strikes per expiry; the fit's cost grows
    with their number and its result barely moves)."""
    rank = q.groupby("expiry").cumcount().to_numpy()
    size = q.groupby("expiry")["strike"].transform("size").to_numpy()
    step = np.maximum(size / SMILE_MAX_QUOTES_PER_EXPIRY, 1.0)
    keep = (np.floor(rank / step) != np.floor((rank - 1) / step)) | (rank == 0)
    return q[keep]


def fit_ssvi_day(day: pd.DataFrame, prior_shape: tuple[float, float] | None = None) -> SmileFit:
    """Fit SSVI to one quote date's rows of :func:`market_ivs` output.

    With fewer than :data:`MIN_QUOTES_FREE_SHAPE` usable quotes and a ``prior_shape``
    ``(rho, eta)`` (the previous session's, so nothing after the date is used), only the
    at-the-money variances are fitted and the shape is kept."""
    date = pd.Timestamp(day["quote_date"].iloc[0])
    use = (day["iv_market"].notna() & (day["dte_days"] >= SMILE_MIN_DTE_DAYS)
           & (day["log_moneyness"].abs() <= SMILE_MAX_ABS_LOG_MONEYNESS))
    q = _thin(day[use].sort_values(["expiry", "log_moneyness"]))
    fixed = len(q) < MIN_QUOTES_FREE_SHAPE and prior_shape is not None
    if len(q) < MIN_QUOTES_FREE_SHAPE and not fixed or len(q) == 0:
        raise ChainDataError(
            f"chain has {len(q)} usable out-of-the-money quote(s) on {date.date()} "
            f"(positive bid, {SMILE_MIN_DTE_DAYS}+ days, |log-moneyness| <= "
            f"{SMILE_MAX_ABS_LOG_MONEYNESS}); a smile needs {MIN_QUOTES_FREE_SHAPE}, or at "
            f"least one with a previous session's fit")
    exp_tab = q.groupby("expiry").agg(t_years=("t_years", "first"), forward=("forward", "first"))
    expiries = pd.DatetimeIndex(exp_tab.index)
    t_e = exp_tab["t_years"].to_numpy()
    e_idx = expiries.get_indexer(q["expiry"])
    k = q["log_moneyness"].to_numpy()
    t = q["t_years"].to_numpy()
    iv_mkt = q["iv_market"].to_numpy()
    # start: ATM total variance from the quote nearest the forward at each expiry
    atm_var = np.empty(len(expiries))
    for j in range(len(expiries)):
        sel = e_idx == j
        atm_var[j] = iv_mkt[sel][np.argmin(np.abs(k[sel]))] ** 2 * t_e[j]
    atm_var = np.maximum.accumulate(np.maximum(atm_var, 1e-6))
    inc = np.diff(np.concatenate([[0.0], atm_var]))
    shape0 = [np.arctanh(-0.7 / _RHO_BOUND), 0.0]
    if prior_shape is not None:
        rho0, eta0 = prior_shape
        cap = 2.0 / (1.0 + abs(rho0))
        frac = np.clip(eta0 / cap, 1e-6, 1 - 1e-6)
        shape0 = [np.arctanh(np.clip(rho0 / _RHO_BOUND, -0.999999, 0.999999)),
                  np.log(frac / (1.0 - frac))]
    x_levels = np.log(np.maximum(inc, 1e-7))

    def full(x):
        return np.concatenate([x, shape0]) if fixed else x

    x0 = x_levels if fixed else np.concatenate([x_levels, shape0])

    def resid(x):
        theta, rho, eta = _unpack(full(x))
        w = ssvi_total_variance(k, theta[e_idx], rho, eta)
        return np.sqrt(np.maximum(w, 1e-12) / t) - iv_mkt

    sol = optimize.least_squares(resid, x0, method="trf", loss="soft_l1", f_scale=0.01, max_nfev=200,
                        ftol=SMILE_TOLERANCE, xtol=SMILE_TOLERANCE)
    theta, rho, eta = _unpack(full(sol.x))
    r = resid(sol.x)
    return SmileFit(
        quote_date=date, spot=float(day["underlying_price"].iloc[0]),
        rate=float(day.attrs.get("rate", 0.0)),
        dividend_yield=float(day.groupby("expiry")["carry_q"].first().median()),
        expiries=expiries, t_years=t_e, forwards=exp_tab["forward"].to_numpy(),
        theta=theta, rho=float(rho), eta=float(eta), n_quotes=len(q),
        rmse_iv_pts=float(np.sqrt(np.mean(r * r)) / VOL_POINT))


def fit_smiles(ivs: pd.DataFrame) -> dict[pd.Timestamp, SmileFit]:
    """SSVI fit for every quote date of :func:`market_ivs` output."""
    fits: dict[pd.Timestamp, SmileFit] = {}
    prior = None
    for date, day in ivs.groupby("quote_date", sort=True):
        day.attrs.update(ivs.attrs)
        fit = fit_ssvi_day(day, prior)
        fits[pd.Timestamp(date)] = fit
        prior = (fit.rho, fit.eta)
    return fits
