"""A real chain made ready for calibration, validation and quoting.

:func:`prepare_chain_market` reads nothing: it takes a tidy chain (:mod:`options.chain_io`)
and, optionally, a market frame, and computes once what every consumer needs:

- the rate: the frame's ``rate`` on the chain's dates where present, else ``rate`` given,
  else the chain's box-spread rate (:func:`options.smile.parity_rate`);
- forwards and market implied vols of out-of-the-money quotes (:func:`options.smile.market_ivs`);
- the per-day SSVI smiles (:func:`options.smile.fit_smiles`);
- the chain's own 30-day index by the CBOE VIX method (:func:`options.vix.chain_vix_index`);
- the implied-vol index per date for the model: the frame's ``iv_index`` where it covers the
  date, else the chain's index (``index_source`` says which).

:func:`check_underlying` stops when the chain's underlying price and the frame's close
disagree on shared dates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.errors import UserInputError
from options.chain_io import one_root_per_contract
from options.smile import (
    ChainDataError,
    SmileFit,
    chain_dividend_yield,
    fit_smiles,
    implied_forwards,
    market_ivs,
    parity_rate,
)
from options.vix import chain_vix_index

__all__ = [
    "DEFAULT_UNDERLYING_TOLERANCE_PCT",
    "INDEX_LEVEL_ROOTS",
    "ChainMarket",
    "UnderlyingMismatchError",
    "check_underlying",
    "model_price_scale",
    "prepare_chain_market",
]

DEFAULT_UNDERLYING_TOLERANCE_PCT = 1.0
"""Largest tolerated gap between a chain's underlying price and the frame's close, in %."""
INDEX_LEVEL_ROOTS = ("SPX", "SPXW", "SPX1", "SPXPM")
"""Roots of options on the S&P 500 index itself, which the model prices at 1/10 (SPY-like)."""
SPY_LIKE_SCALE = 0.1
PERCENT = 100.0
INDEX_SYMBOLS = ("^GSPC", "SPX", "^SPX")
"""Frame symbols at the S&P 500 index level (compared with a SPY chain at 1/10)."""


class UnderlyingMismatchError(UserInputError):
    """The chain's underlying price disagrees with the market frame's."""


def check_underlying(spot_by_date: pd.Series, chain: pd.DataFrame,
                     tolerance_pct: float = DEFAULT_UNDERLYING_TOLERANCE_PCT) -> int:
    """Compare the chain's underlying price with ``spot_by_date`` (e.g. the frame's close, or
    the environment bars' spot) on the dates both have; raise :class:`UnderlyingMismatchError`
    naming the count and the first date beyond ``tolerance_pct``. Returns the dates compared."""
    under = chain.groupby("quote_date")["underlying_price"].first()
    spot = pd.Series(spot_by_date, dtype=float)
    spot.index = pd.DatetimeIndex(spot.index).normalize()
    both = under.index.intersection(spot.index)
    if len(both) == 0:
        return 0
    gap_pct = (under.loc[both] / spot.loc[both] - 1.0).abs() * PERCENT
    bad = gap_pct > tolerance_pct
    if bad.any():
        first = gap_pct[bad].index[0]
        raise UnderlyingMismatchError(
            f"chain '{chain.attrs.get('source', '?')}': column 'underlying_price' differs from "
            f"the market frame's price by more than {tolerance_pct}% on {int(bad.sum())} of "
            f"{len(both)} shared date(s); first {first.date()}: chain "
            f"{under.loc[first]:.4f} vs frame {spot.loc[first]:.4f} (is the frame the same "
            f"underlying, at the same scale?)")
    return len(both)


def model_price_scale(chain: pd.DataFrame) -> float:
    """0.1 for options on the S&P 500 index (the model prices SPY-like), else 1."""
    roots = set(chain["root"].astype(str).str.upper().unique())
    return SPY_LIKE_SCALE if roots and roots <= set(INDEX_LEVEL_ROOTS) else 1.0


@dataclass(frozen=True)
class ChainMarket:
    """Everything derived from one chain (module docstring)."""

    chain: pd.DataFrame                  # tidy, one root per contract
    ivs: pd.DataFrame                    # chain + t_years, forward, log_moneyness, iv_market
    fits: dict[pd.Timestamp, SmileFit]
    vix: pd.DataFrame                    # chain's own index per date (chain_vix_index)
    index_by_date: pd.Series             # iv_index for the model per date
    index_source: pd.Series              # "frame" or "chain_vix" per date
    spot_by_date: pd.Series
    rate: float
    rate_source: str
    dividend_yield: float
    model_scale: float

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.spot_by_date.index)


def _frame_on(frame: pd.DataFrame | None, col: str, dates: pd.DatetimeIndex) -> pd.Series:
    if frame is None or col not in frame.columns:
        return pd.Series(np.nan, index=dates)
    series = frame[col].copy()
    series.index = pd.DatetimeIndex(series.index).normalize()
    return series.reindex(dates)


def prepare_chain_market(chain: pd.DataFrame, *, frame: pd.DataFrame | None = None,
                         rate: float | None = None,
                         tolerance_pct: float = DEFAULT_UNDERLYING_TOLERANCE_PCT,
                         fit_all_smiles: bool = True) -> ChainMarket:
    """See the module docstring. ``frame`` may be None (no market frame). With
    ``fit_all_smiles=False`` the smiles are fitted only when the index needs them (chains too
    sparse for the listed-strike method) and ``fits`` is otherwise empty."""
    chain = one_root_per_contract(chain)
    spot = chain.groupby("quote_date")["underlying_price"].first()
    dates = pd.DatetimeIndex(spot.index)
    scale = model_price_scale(chain)
    if frame is not None:
        close = _frame_on(frame, "close", dates).dropna()
        index_frame = str(frame.attrs.get("symbol", "")).upper() in INDEX_SYMBOLS
        if index_frame and scale == 1.0:
            close = close * SPY_LIKE_SCALE  # an S&P 500 frame standing in for SPY
        if len(close):
            check_underlying(close, chain, tolerance_pct)
    frame_rate = _frame_on(frame, "rate", dates)
    if frame_rate.notna().all():
        used_rate, rate_source = float(frame_rate.mean()), "frame"
    elif rate is not None:
        used_rate, rate_source = float(rate), "argument"
    else:
        box = parity_rate(chain)
        if box is None:
            raise UserInputError(
                f"chain '{chain.attrs.get('source', '?')}' has too few put-call pairs to imply a "
                f"rate and the frame has no 'rate' on its dates; pass --rate (decimal)")
        used_rate, rate_source = box, "chain_box_spreads"
    forwards = implied_forwards(chain, used_rate)
    q = chain_dividend_yield(forwards) if len(forwards) else None
    ivs = market_ivs(chain, used_rate, None, forwards)
    fits: dict = {}
    vix = None
    if not fit_all_smiles:
        try:
            vix = chain_vix_index(chain, used_rate, None)
        except ChainDataError:
            vix = None
    if vix is None:
        fits = fit_smiles(ivs)
        vix = chain_vix_index(chain, used_rate, fits)
    frame_index = _frame_on(frame, "iv_index", dates)
    index = frame_index.fillna(vix["iv_index"].reindex(dates))
    source = pd.Series(np.where(frame_index.notna(), "frame", "chain_vix"), index=dates)
    return ChainMarket(chain=chain, ivs=ivs, fits=fits, vix=vix, index_by_date=index,
                       index_source=source, spot_by_date=spot, rate=used_rate,
                       rate_source=rate_source, dividend_yield=0.0 if q is None else q,
                       model_scale=scale)
