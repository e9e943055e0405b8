"""Quote sources: the one place every price comes from.

A quote source answers "bid, ask, mid, implied vol and greeks of these contracts at bar t" over a
fixed table of bars (:class:`MarketBars`, one row per decision time). The environment, the
baselines, evaluation and the paper broker take every price from one. Two implement it:

* :class:`ModelQuoteSource` (``"model"``): the volatility surface of :mod:`options.surface`
  (Black-Scholes-Merton with the dividend yield) around the bar's at-the-money level, and the
  cost model's bid/ask (:mod:`options.costs`). Strikes are a regular grid of
  ``strike_spacing``; expiries are the listed calendar (:mod:`options.calendar`).
* ``ChainQuoteSource`` (``"chain"``, :mod:`options.quotes_chain`): imported real quotes.

Expiries offered at a bar are only those that can be settled honestly: the expiry session's close
is one of the bars, or lies after the last bar (the position is then still open at the end). An
expiry whose close falls inside the bars' span without a bar of its own (a gap in the data) is
never offered, so no leg is ever settled later than its expiry close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from common.io import content_key
from options.calendar import NS_PER_DAY, expiry_close_ns, listed_expiries
from options.costs import CostConfig, bid_ask_per_share
from options.positions import MarketState, Position, per_share_to_position
from options.pricing import DAYS_PER_YEAR, _greeks, bs_price
from options.surface import SurfaceConfig, iv_at

__all__ = ["LegQuotes", "MarketBars", "ModelQuoteSource", "QuoteSource", "position_greeks",
           "quoted_position_greeks", "settleable_expiries"]

_NS_PER_YEAR = DAYS_PER_YEAR * NS_PER_DAY
_GRID_SD = 6.0  # model strike grid: six standard deviations of spot each side
_GRID_MIN_STRIKES = 20  # ... and at least this many strikes each side


@dataclass(frozen=True)
class MarketBars:
    """What quote sources need of the market, one row per bar (decision time = bar close).

    Attributes:
        dates: bar labels (daily: session dates at midnight).
        close_ns: int64 ns of each bar's decision time (New York wall time; a daily bar's
            session close, early closes included).
        spot: underlying price per bar, in strike units.
        atm_iv: reference-horizon at-the-money implied vol per bar (decimal), known at the bar.
        rate: annualised risk-free rate per bar (decimal).
        dividend_yield: continuous dividend yield (decimal).
    """

    dates: pd.DatetimeIndex
    close_ns: np.ndarray
    spot: np.ndarray
    atm_iv: np.ndarray
    rate: np.ndarray
    dividend_yield: float = 0.0

    def __len__(self) -> int:
        return len(self.dates)

    def cache_parts(self) -> tuple:
        """Every value of the bars, for cache keys (dates as int64 ns with their time zone)."""
        return (self.dates.as_unit("ns").asi8, str(self.dates.tz), np.asarray(self.close_ns),
                np.asarray(self.spot), np.asarray(self.atm_iv), np.asarray(self.rate),
                float(self.dividend_yield))

    def bar_of_close(self, close_ns: int) -> int | None:
        """Index of the bar whose decision time is exactly ``close_ns``, else None."""
        i = int(np.searchsorted(self.close_ns, close_ns))
        return i if i < len(self.close_ns) and self.close_ns[i] == close_ns else None


@dataclass(frozen=True)
class LegQuotes:
    """Quotes of contracts, per share; every array has the broadcast shape of the request.

    ``from_smile`` (contract with the environment's mask and ledgers): a boolean array, True
    where the price did NOT come from a valid two-sided listed quote (``0 < bid <= ask``) but
    from the quote source's documented fallback (the chain source: the day's fitted smile
    widened by the median relative spread; see :mod:`options.quotes_chain`). Opening a leg
    needs ``from_smile`` False; a fill of a leg with it True is a ``fallback`` fill. Model
    quotes are never a fallback (all False). :attr:`valid_quote` is its negation.
    """

    bid_per_share: np.ndarray
    ask_per_share: np.ndarray
    mid_per_share: np.ndarray
    iv_annualized: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    theta_per_day: np.ndarray
    vega_per_vol_point: np.ndarray
    from_smile: np.ndarray  # True where no valid two-sided quote existed (fallback price)

    @property
    def valid_quote(self) -> np.ndarray:
        """True where the price is a valid two-sided listed quote (``~from_smile``)."""
        return ~np.asarray(self.from_smile, dtype=bool)


@runtime_checkable
class QuoteSource(Protocol):
    """Bid, ask, mid, implied vol and greeks of contracts at a bar."""

    name: str
    bars: MarketBars

    def expiries(self, bar: int) -> pd.DatetimeIndex:
        """Listed expiries at ``bar`` (after its close), sorted."""

    def strikes(self, bar: int, expiry: pd.Timestamp, option_type: str) -> np.ndarray:
        """Listed strikes of ``expiry`` at ``bar``, sorted."""

    def quote(self, bar_idx, option_type: str, strikes, expiry: pd.Timestamp) -> LegQuotes:
        """Quotes with ``bar_idx`` broadcast against ``strikes``."""

    def volume(self, bar: int, option_type: str, strike: float,
               expiry: pd.Timestamp) -> tuple[float, float]:
        """(volume, open interest) of a contract that day; ``inf`` where not modelled."""

    # Optional: ``position_greeks(bar, position) -> (delta_shares, gamma_shares_per_usd,
    # theta_usd_per_day, vega_usd_per_vol_point)``; :func:`position_greeks` falls back to
    # :func:`quoted_position_greeks` (the greeks of :meth:`quote`) where a source has none.


def quoted_position_greeks(source: QuoteSource, bar: int, legs) -> tuple[float, float, float,
                                                                        float]:
    """Greeks of ``legs`` held at ``bar``, in position units (delta in shares, gamma in shares
    per USD, theta in USD per calendar day, vega in USD per volatility point): each leg's
    per-share greeks from ``source.quote`` times its signed contracts and the multiplier."""
    delta = gamma = theta = vega = 0.0
    for leg in legs:
        q = source.quote(bar, leg.option_type, np.array([float(leg.strike)]),
                         pd.Timestamp(leg.expiry))
        units = per_share_to_position(1.0, leg.quantity_contracts)
        delta += float(q.delta[0]) * units
        gamma += float(q.gamma[0]) * units
        theta += float(q.theta_per_day[0]) * units
        vega += float(q.vega_per_vol_point[0]) * units
    return delta, gamma, theta, vega


def position_greeks(source: QuoteSource, bar: int, position: Position) -> tuple[float, float,
                                                                              float, float]:
    """The greeks of ``position`` at ``bar`` as ``source`` gives them (its ``position_greeks``
    where it has one, else :func:`quoted_position_greeks`): the source that prices the fills
    also gives the greeks reported beside them."""
    own = getattr(source, "position_greeks", None)
    if own is not None:
        return own(bar, position)
    return quoted_position_greeks(source, bar, position.legs)


@lru_cache(maxsize=65536)
def _day_close_ns(day_ns: int) -> int:
    """:func:`options.calendar.expiry_close_ns` of a naive midnight in ns (cached)."""
    return expiry_close_ns(pd.Timestamp(day_ns))


def _close_ns_of(expiries: pd.DatetimeIndex) -> np.ndarray:
    """Session close (ns) of each expiry of a naive midnight index, int64."""
    days = expiries.as_unit("ns").asi8
    return np.fromiter((_day_close_ns(d) for d in days.tolist()), dtype=np.int64,
                       count=len(days))


def _midnight_naive(expiries: pd.DatetimeIndex) -> bool:
    return (expiries.dtype == np.dtype("datetime64[ns]")
            and not (expiries.asi8 % NS_PER_DAY).any())


def _settleable_closes(closes: np.ndarray, bars: MarketBars) -> np.ndarray:
    """Whether each expiry close (ns) is a bar's close, or after the last bar."""
    bar_closes = np.asarray(bars.close_ns)
    at = np.minimum(np.searchsorted(bar_closes, closes), len(bar_closes) - 1)
    return (closes > int(bars.close_ns[-1])) | (bar_closes[at] == closes)


def settleable_expiries(expiries: pd.DatetimeIndex, bars: MarketBars) -> pd.DatetimeIndex:
    """The ``expiries`` whose session close is a bar, or after the last bar."""
    if len(expiries) == 0:
        return expiries
    last = int(bars.close_ns[-1])
    if isinstance(expiries, pd.DatetimeIndex) and _midnight_naive(expiries):
        keep = _settleable_closes(_close_ns_of(expiries), bars)
        return pd.DatetimeIndex(expiries[keep].as_unit("ns"), freq=None, name=None)
    keep = [e for e in expiries
            if (c := expiry_close_ns(e)) > last or bars.bar_of_close(c) is not None]
    return pd.DatetimeIndex(keep)


class ModelQuoteSource:
    """Model quotes: the calibrated surface and the cost model over a table of bars."""

    name = "model"
    # Each output element depends on its own (bar, strike) only: one call over many contracts
    # equals the calls on each, bit for bit (the environment's tables batch on it).
    elementwise_quotes = True
    # expiries() lists only settleable expiries (settleable_expiries applied already)
    expiries_settleable = True

    def __init__(self, bars: MarketBars, surface_cfg: SurfaceConfig | None = None,
                 cost_cfg: CostConfig | None = None, *, strike_spacing: float = 1.0,
                 expiry_kinds: tuple[str, ...] | None = None, max_dte_days: int = 400) -> None:
        if strike_spacing <= 0:
            raise ValueError(f"strike_spacing must be > 0, got {strike_spacing}")
        self.bars = bars
        self.surface = surface_cfg or SurfaceConfig()
        self.costs = cost_cfg or CostConfig()
        self.strike_spacing = float(strike_spacing)
        self.expiry_kinds = expiry_kinds
        self.max_dte_days = int(max_dte_days)
        self._expiries = lru_cache(maxsize=None)(self._expiries_uncached)

    def _expiries_uncached(self, bar: int) -> pd.DatetimeIndex:
        listed = listed_expiries(self.bars.dates[bar], self.max_dte_days, self.expiry_kinds,
                                 min_dte_days=0)
        now = int(self.bars.close_ns[bar])
        if len(listed) and _midnight_naive(listed):
            # settleable_expiries(listed[closes > now]) in one pass over the closes: the same
            # expiries, without an index made in between
            closes = _close_ns_of(listed)
            keep = (closes > now) & _settleable_closes(closes, self.bars)
            return pd.DatetimeIndex(listed[keep].as_unit("ns"), freq=None, name=None)
        listed = pd.DatetimeIndex([e for e in listed if expiry_close_ns(e) > now])
        return settleable_expiries(listed, self.bars)

    def expiries(self, bar: int) -> pd.DatetimeIndex:
        return self._expiries(int(bar))

    def cache_key(self) -> str:
        """A digest of everything these quotes depend on: the class, the bars, the surface
        (its parameters and iv proxy), the costs and the strike and expiry grids. Tables built
        from this source may be stored under it (``envs.table_cache``)."""
        cls = type(self)
        return content_key(f"{cls.__module__}.{cls.__qualname__}", *self.bars.cache_parts(),
                           self.surface.model_dump(mode="json"),
                           self.costs.model_dump(mode="json"), self.strike_spacing,
                           self.expiry_kinds, self.max_dte_days)

    def t_years(self, bar_idx, expiry: pd.Timestamp) -> np.ndarray:
        """Years (of 365 days) from each bar's close to the expiry close; >= 0."""
        left = expiry_close_ns(expiry) - self.bars.close_ns[np.asarray(bar_idx)]
        return np.maximum(left, 0) / _NS_PER_YEAR

    def strikes(self, bar: int, expiry: pd.Timestamp, option_type: str) -> np.ndarray:
        spot = float(self.bars.spot[bar])
        atm = max(float(self.bars.atm_iv[bar]), self.surface.iv_floor_annualized)
        sd = atm * math.sqrt(max(float(self.t_years(bar, expiry)), 1.0 / DAYS_PER_YEAR))
        step = self.strike_spacing
        lo = min(spot * math.exp(-_GRID_SD * sd), spot - _GRID_MIN_STRIKES * step)
        hi = max(spot * math.exp(_GRID_SD * sd), spot + _GRID_MIN_STRIKES * step)
        first, last = max(math.ceil(lo / step), 1), math.floor(hi / step)
        return np.round(np.arange(first, last + 1, dtype=float) * step, 10)

    def quote(self, bar_idx, option_type: str, strikes, expiry: pd.Timestamp) -> LegQuotes:
        idx = np.asarray(bar_idx)
        strikes = np.asarray(strikes, dtype=float)
        idx, strikes = np.broadcast_arrays(idx, strikes)
        t = self.t_years(idx, expiry)
        spot = self.bars.spot[idx]
        rate = self.bars.rate[idx]
        q = self.bars.dividend_yield
        iv = np.asarray(iv_at(self.bars.atm_iv[idx], spot, strikes, t, self.surface), dtype=float)
        mid = np.asarray(bs_price(option_type, spot, strikes, t, rate, iv, q), dtype=float)
        greeks = _greeks(option_type, spot, strikes, t, rate, iv, q, with_rho=False)
        bid, ask = bid_ask_per_share(mid, self.costs, atm_iv_annualized=self.bars.atm_iv[idx],
                                     log_moneyness=np.log(strikes / spot),
                                     dte_days=t * DAYS_PER_YEAR)
        return LegQuotes(bid, ask, mid, iv, *(np.asarray(greeks[k], dtype=float) for k in (
            "delta", "gamma", "theta_per_day", "vega_per_vol_point")), np.zeros(mid.shape, dtype=bool))

    def volume(self, bar: int, option_type: str, strike: float,
               expiry: pd.Timestamp) -> tuple[float, float]:
        return math.inf, math.inf

    def position_greeks(self, bar: int, position: Position) -> tuple[float, float, float,
                                                                      float]:
        """The surface's greeks of ``position`` at ``bar`` (:meth:`options.positions.Position.mark`
        at the bar's spot, ATM IV, rate and this source's dividend yield: the inputs
        :meth:`quote` prices with, leg by leg in scalar arithmetic)."""
        bars = self.bars
        market = MarketState(bars.dates[bar], float(bars.spot[bar]), float(bars.atm_iv[bar]),
                             float(bars.rate[bar]), bars.dividend_yield)
        m = position.mark(market, self.surface, self.costs)
        return (m.delta_shares, m.gamma_shares_per_usd, m.theta_usd_per_day,
                m.vega_usd_per_vol_point)
