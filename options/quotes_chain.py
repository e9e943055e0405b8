"""The ``chain`` quote source: real end-of-day quotes behind the QuoteSource interface.

- Listed expiries and strikes are those of the chain on the bar's date (expiries strictly
  after it: a contract expiring on the bar's date has settled at its close). ``strikes``
  can leave out zero-bid quotes and quotes with volume below ``min_volume`` (selection);
  ``quote`` always answers for any contract.
- Fills are at the real bid and ask, marks at the real mid, and only where the bar has a
  valid two-sided quote (``0 < bid <= ask``, both sides present). A contract without one (no
  row, a zero quote, a zero or missing bid or ask, a crossed quote) is "no valid quote": it is
  priced by the documented fallback, the day's fitted SSVI smile price widened by the bar's
  median relative bid-ask width of its valid quotes (``from_smile=True``, counted in
  ``smile_marks``). A date without its own smile uses the previous session's fit
  (:func:`options.chain_market.fit_smiles_robust`), and a first date without any fit a flat
  smile at the bar's at-the-money vol (the market frame's index); a date without valid quotes
  uses the last earlier median width, else :data:`FALLBACK_RELATIVE_WIDTH`. The environment's
  mask refuses to open a structure with any ``from_smile`` leg, and fills of such legs are
  written ``quote_source = fallback`` in the ledger.
- ``strikes`` and ``expiries`` list only contracts with a valid two-sided quote.
- Implied vol of a listed quote: its mid inverted with BSM at the bar's spot, rate and the
  bars' dividend yield (``exercise="american"``, SPY: as an American quote by
  :func:`options.american.implied_vol_american`, the dividend yield continuous); where the mid
  has no implied vol (below intrinsic), the smile's. Greeks are BSM at the quote's implied vol.
- A bar with no chain raises :class:`NoChainForBarError` naming the date, never a zero.

``MarketBars`` and ``LegQuotes`` are those of :mod:`options.quotes` (the ``QuoteSource``
protocol). An expiry's quotes run to its session's close (early closes included).

:func:`chain_market_frame` makes a minimal market frame from a chain (close = the chain's
underlying price, ``iv_index`` = the chain's CBOE-method index) for running the environment
on a chain's sessions where no market data covers them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from options.american import implied_vol_american
from options.calendar import NS_PER_DAY, expiry_close_ns
from options.chain_io import one_root_per_contract
from options.chain_market import (
    DEFAULT_UNDERLYING_TOLERANCE_PCT,
    carry_fit,
    check_underlying,
    fit_day_robust,
    fit_smiles_robust,
    robust_index,
)
from options.pricing import DAYS_PER_YEAR, bs_greeks, bs_price, implied_vol_vectorized
from options.quotes import LegQuotes, MarketBars, quoted_position_greeks
from options.smile import ChainDataError, SmileFit, market_ivs
from options.vix import chain_vix_index

__all__ = [
    "FALLBACK_RELATIVE_WIDTH",
    "ChainQuoteSource",
    "valid_quote_mask",
    "LegQuotes",
    "MarketBars",
    "NoChainForBarError",
    "chain_market_frame",
    "check_underlying",
]

_NS_PER_YEAR = DAYS_PER_YEAR * NS_PER_DAY
FALLBACK_RELATIVE_WIDTH = 0.10
"""Relative bid-ask width (of the smile mid) of a fallback price on a date before any date
with valid quotes: 10%, about the 75th percentile of the valid quotes' relative width in the
shared SPX 2019 chain (within 7-130 days), a conservative stand-in."""


def valid_quote_mask(chain: pd.DataFrame) -> np.ndarray:
    """True where a chain row is a valid two-sided quote: both sides finite, ``0 < bid <=
    ask``. Only these are ever fill prices."""
    bid = chain["bid_per_share"].to_numpy(float)
    ask = chain["ask_per_share"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid)


class NoChainForBarError(ChainDataError):
    """A bar whose date has no quotes in the chain."""


class ChainQuoteSource:
    """Real quotes from a tidy chain (:mod:`options.chain_io`); see the module docstring.

    Args:
        bars: the environment's bars (dates, close times, spot, rate, dividend yield).
        chain_frame: tidy chain covering the bars' dates.
        smile_fits: per-date SSVI fits (:func:`options.smile.fit_smiles`); None fits them
            here at the bars' mean rate.
        exclude_zero_bid: kept for earlier callers; quotes without a valid two-sided quote
            (zero bids included) are never listed.
        exercise: ``"european"`` (SPX) or ``"american"`` (SPY): how quotes' implied vols
            are inverted (``options.exercise``).
        min_volume: leave quotes with a day's volume below this out of :meth:`strikes`.
    """

    name = "chain"

    def __init__(self, bars: MarketBars, chain_frame: pd.DataFrame,
                 smile_fits: dict[pd.Timestamp, SmileFit] | None = None, *,
                 exclude_zero_bid: bool = False, min_volume: int = 0,
                 exercise: str = "european"):
        if exercise not in ("european", "american"):
            raise ValueError(f"exercise must be 'european' or 'american', got {exercise!r}")
        self.exercise = exercise
        self.bars = bars
        self.exclude_zero_bid = bool(exclude_zero_bid)
        self.min_volume = int(min_volume)
        self.smile_marks = 0
        self.smile_fallbacks: dict[pd.Timestamp, str] = {}
        full = one_root_per_contract(chain_frame)
        self._dates = pd.DatetimeIndex(bars.dates).normalize()
        chain = full[valid_quote_mask(full)].reset_index(drop=True)
        chain.attrs.update(full.attrs)
        self.n_invalid_quotes = int(len(full) - len(chain))
        if smile_fits is None:
            smile_fits = self._fit_smiles_per_bar(chain)
        self._fits = smile_fits
        self._chain = chain
        self._key = pd.MultiIndex.from_frame(
            chain[["quote_date", "expiry", "option_type", "strike"]])
        self._bid = chain["bid_per_share"].to_numpy(float)
        self._ask = chain["ask_per_share"].to_numpy(float)
        self._under = chain["underlying_price"].to_numpy(float)
        mid = 0.5 * (chain["ask_per_share"] + chain["bid_per_share"])
        rel = (chain["ask_per_share"] - chain["bid_per_share"]) / mid
        by_date = rel.groupby(chain["quote_date"]).median()
        # causal: a bar without valid quotes uses the last earlier median
        self._rel_width = (by_date.reindex(self._dates.union(pd.DatetimeIndex(by_date.index)))
                           .ffill().fillna(FALLBACK_RELATIVE_WIDTH))
        # every bar with any row (valid or not) has a day; listings come from valid rows
        self._by_date = {pd.Timestamp(d): g for d, g in chain.groupby("quote_date")}
        for d in full["quote_date"].unique():
            self._by_date.setdefault(pd.Timestamp(d), chain.iloc[0:0])

    def _fit_smiles_per_bar(self, chain: pd.DataFrame) -> dict[pd.Timestamp, SmileFit]:
        """One SSVI fit per bar date with a chain, at that bar's rate (causal: each fit uses
        its date's quotes and, for sparse days, the previous fit's shape)."""
        rate_by_date = dict(zip(self._dates, np.asarray(self.bars.rate, float), strict=True))
        days = []
        for date, day in chain.groupby("quote_date", sort=True):
            date = pd.Timestamp(date)
            if date not in rate_by_date:
                continue
            ivs = market_ivs(day, rate_by_date[date], self.bars.dividend_yield,
                             exercise=self.exercise)
            ivs.attrs["rate"] = rate_by_date[date]
            days.append(ivs)
        fits: dict[pd.Timestamp, SmileFit] = {}
        prior = None
        for ivs in days:
            date = pd.Timestamp(ivs["quote_date"].iloc[0])
            fit, why = fit_day_robust(ivs, prior)
            if why is not None:
                self.smile_fallbacks[date] = why
            if fit is not None:
                fits[date] = prior = fit
        return fits

    # ------------------------------------------------------------------ listing
    def _day(self, bar: int) -> tuple[pd.Timestamp, pd.DataFrame]:
        date = self._dates[int(bar)]
        day = self._by_date.get(date)
        if day is None:
            raise NoChainForBarError(
                f"chain '{self._chain.attrs.get('source', '?')}' has no quotes for bar {bar} "
                f"dated {date.date()}; every bar needs that day's chain")
        return date, day

    def expiries(self, bar: int) -> pd.DatetimeIndex:
        date, day = self._day(bar)
        exp = pd.DatetimeIndex(day["expiry"].unique())
        return exp[exp > date].sort_values()

    def strikes(self, bar: int, expiry: pd.Timestamp, option_type: str) -> np.ndarray:
        _, day = self._day(bar)
        sel = (day["expiry"] == pd.Timestamp(expiry)) & (day["option_type"] == option_type)
        if self.exclude_zero_bid:
            sel &= ~day["zero_bid"]
        if self.min_volume > 0:
            sel &= day["volume"].fillna(0.0) >= self.min_volume
        return np.sort(day.loc[sel, "strike"].to_numpy(float))

    def volume(self, bar: int, option_type: str, strike: float, expiry: pd.Timestamp
               ) -> tuple[float, float]:
        date, _ = self._day(bar)
        pos = self._key.get_indexer([(date, pd.Timestamp(expiry), option_type, float(strike))])[0]
        if pos < 0:
            return 0.0, 0.0
        row = self._chain.iloc[pos]
        return (float(np.nan_to_num(row["volume"])), float(np.nan_to_num(row["open_interest"])))

    def position_greeks(self, bar: int, position) -> tuple[float, float, float, float]:
        """The chain's greeks of ``position`` at ``bar`` (:func:`options.quotes.
        quoted_position_greeks`: Black-Scholes at each leg's quoted implied vol, the smile's
        where it has no quote). A read of greeks is not a mark: ``smile_marks`` is unchanged."""
        before = self.smile_marks
        try:
            return quoted_position_greeks(self, bar, position.legs)
        finally:
            self.smile_marks = before

    # ------------------------------------------------------------------ quotes
    def quote(self, bar_idx, option_type: str, strikes, expiry: pd.Timestamp) -> LegQuotes:
        if option_type not in ("call", "put"):
            raise ValueError(f"option_type must be 'call' or 'put', got {option_type!r}")
        bar, k = np.broadcast_arrays(np.asarray(bar_idx, dtype=int), np.asarray(strikes, float))
        shape = bar.shape
        bar, k = bar.ravel(), k.ravel()
        for b in np.unique(bar):
            self._day(int(b))
        expiry = pd.Timestamp(expiry).normalize()
        dates = self._dates[bar]
        pos = self._key.get_indexer(pd.MultiIndex.from_arrays(
            [dates, np.full(len(k), expiry), np.full(len(k), option_type), k]))
        listed = pos >= 0
        spot = np.asarray(self.bars.spot, float)[bar]
        rate = np.asarray(self.bars.rate, float)[bar]
        q = float(self.bars.dividend_yield)
        expiry_ns = expiry_close_ns(expiry)
        t = np.maximum(expiry_ns - np.asarray(self.bars.close_ns, np.int64)[bar], 0) / _NS_PER_YEAR
        smile_iv = np.full(len(k), np.nan)
        for b in np.unique(bar):
            sel = bar == b
            fit = self._fit_on(self._dates[b], float(spot[sel][0]))
            if fit is not None:
                smile_iv[sel] = fit.iv(k[sel], np.maximum(t[sel], 1e-9))
            else:  # no smile on or before the date: flat at the bar's at-the-money vol
                smile_iv[sel] = float(np.asarray(self.bars.atm_iv, float)[b])
        bid = np.where(listed, self._bid[pos], np.nan)
        ask = np.where(listed, self._ask[pos], np.nan)
        mid = 0.5 * (bid + ask)
        iv = np.full(len(k), np.nan)
        live = listed & (t > 0)
        if live.any() and self.exercise == "american":
            iv[live] = implied_vol_american(mid[live], option_type, spot[live], k[live],
                                            t[live], rate[live], q).iv_annualized
        elif live.any():
            iv[live] = implied_vol_vectorized(mid[live], option_type, spot[live], k[live],
                                              t[live], rate[live], q)
        iv = np.where(np.isfinite(iv), iv, smile_iv)
        missing = ~listed
        if missing.any():
            no_fit = missing & ~np.isfinite(smile_iv)
            if no_fit.any():
                d = dates[np.flatnonzero(no_fit)[0]]
                raise ChainDataError(
                    f"no valid quote, no fitted smile and no at-the-money vol for {option_type} "
                    f"{k[no_fit][0]} expiring {expiry.date()} on {d.date()}")
            smile_mid = bs_price(option_type, spot[missing], k[missing], t[missing],
                                 rate[missing], smile_iv[missing], q)
            rel = self._rel_width.reindex(dates[missing]).fillna(0.0).to_numpy()
            half = 0.5 * rel * np.asarray(smile_mid)
            mid[missing] = smile_mid
            bid[missing] = np.maximum(smile_mid - half, 0.0)
            ask[missing] = smile_mid + half
            self.smile_marks += int(missing.sum())
        greeks = bs_greeks(option_type, spot, k, t, rate, np.nan_to_num(iv), q)

        def shaped(a):
            return np.asarray(a, dtype=float).reshape(shape)

        return LegQuotes(
            bid_per_share=shaped(bid), ask_per_share=shaped(ask), mid_per_share=shaped(mid),
            iv_annualized=shaped(iv), delta=shaped(greeks["delta"]),
            gamma=shaped(greeks["gamma"]), theta_per_day=shaped(greeks["theta_per_day"]),
            vega_per_vol_point=shaped(greeks["vega_per_vol_point"]),
            from_smile=missing.reshape(shape))

    def _fit_on(self, date: pd.Timestamp, spot: float) -> SmileFit | None:
        """The date's smile, else the latest earlier one carried to the date, else None."""
        fit = self._fits.get(date)
        if fit is not None:
            return fit
        earlier = [d for d in self._fits if d < date]
        if not earlier:
            return None
        return carry_fit(self._fits[max(earlier)], date, spot)

    def check_underlying(self, tolerance_pct: float = DEFAULT_UNDERLYING_TOLERANCE_PCT) -> int:
        """:func:`check_underlying` of this source's bars against its chain."""
        return check_underlying(pd.Series(self.bars.spot, index=self._dates), self._chain,
                                tolerance_pct)


def chain_market_frame(chain: pd.DataFrame, rate: float) -> pd.DataFrame:
    """Minimal market frame on the chain's dates: open/high/low/close = the chain's
    underlying price, volume 0, ``iv_index`` = the chain's CBOE-method 30-day index (where a
    date has none, the previous session's, else its smile's 30-day at-the-money vol;
    :func:`options.chain_market.robust_index`), ``rate`` constant."""
    chain = one_root_per_contract(chain)
    ivs = market_ivs(chain, rate)
    fits, _ = fit_smiles_robust(ivs)
    vix = chain_vix_index(chain, rate, fits, skip_dates=True)
    close = chain.groupby("quote_date")["underlying_price"].first().astype(float)
    dates = pd.DatetimeIndex(close.index)
    index, _ = robust_index(dates, pd.Series(np.nan, index=dates), vix["iv_index"], fits)
    frame = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                          "volume": 0.0, "iv_index": index.reindex(close.index),
                          "rate": float(rate)})
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    roots = sorted(chain["root"].astype(str).unique())
    frame.attrs = {"source": f"chain:{chain.attrs.get('source', '?')}",
                   "symbol": ",".join(roots), "interval": "1d",
                   "note": "bars made from an option chain's underlying price (open=high=low="
                           "close); iv_index by the CBOE VIX method on the chain"}
    return frame
