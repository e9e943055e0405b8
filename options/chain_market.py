"""A real chain made ready for calibration, validation and quoting.

:func:`prepare_chain_market` reads nothing: it takes a tidy chain (:mod:`options.chain_io`)
and, optionally, a market frame, and computes once what every consumer needs:

- the rate: the frame's ``rate`` on the chain's dates where present, else ``rate`` given,
  else the chain's box-spread rate (:func:`options.smile.parity_rate`);
- forwards and market implied vols of out-of-the-money quotes (:func:`options.smile.market_ivs`);
- the per-day SSVI smiles (:func:`fit_smiles_robust`: a date with too few quotes for its own
  smile carries the previous session's fit, listed in ``smile_fallbacks``);
- the chain's own 30-day index by the CBOE VIX method (:func:`options.vix.chain_vix_index`,
  dates it cannot compute, e.g. 0-DTE-only dates or dates without a 7-day expiry, left NaN
  and listed);
- the implied-vol index per date for the model (:data:`INDEX_SOURCES`): the frame's
  ``iv_index`` where it covers the date, else the chain's index, else the previous session's
  index, else the date's smile 30-day at-the-money vol (``index_source`` says which; a date
  with none of them is ``none`` and left out of comparisons);
- the put-call-parity dividend yield, or the configured ``default_dividend_yield`` where no
  expiry of 30+ days allows one (``dividend_yield_source`` says which, and a warning is
  logged).

:func:`check_underlying` stops when the chain's underlying price and the frame's close
disagree on shared dates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from common.errors import UserInputError
from common.units import PERCENT_PER_UNIT
from options.american import DividendHistory
from options.chain_io import one_root_per_contract, read_dividend_history
from options.pricing import DAYS_PER_YEAR
from options.smile import (
    ChainDataError,
    SmileFit,
    chain_dividend_yield,
    fit_ssvi_day,
    implied_forwards,
    market_ivs,
    parity_rate,
)
from options.vix import chain_vix_index

__all__ = [
    "DEFAULT_UNDERLYING_TOLERANCE_PCT",
    "add_exercise_arguments",
    "exercise_arguments",
    "INDEX_LEVEL_ROOTS",
    "INDEX_SOURCES",
    "ChainMarket",
    "UnderlyingMismatchError",
    "carry_fit",
    "check_underlying",
    "fit_day_robust",
    "fit_smiles_robust",
    "model_price_scale",
    "prepare_chain_market",
    "robust_index",
]

log = logging.getLogger(__name__)
INDEX_SOURCES = ("frame", "chain_vix", "previous_session", "smile_atm_30d", "none")
"""Where a date's implied-vol index comes from, in order of preference."""
INDEX_TERM_DTE_DAYS = 30

DEFAULT_UNDERLYING_TOLERANCE_PCT = 1.0
"""Largest tolerated gap between a chain's underlying price and the frame's close, in %."""
INDEX_LEVEL_ROOTS = ("SPX", "SPXW", "SPX1", "SPXPM")
"""Roots of options on the S&P 500 index itself, which the model prices at 1/10 (SPY-like)."""
SPY_LIKE_SCALE = 0.1
INDEX_SYMBOLS = ("^GSPC", "SPX", "^SPX")
"""Frame symbols at the S&P 500 index level (compared with a SPY chain at 1/10)."""


def add_exercise_arguments(parser) -> None:
    """``--exercise european|american`` and ``--dividends FILE`` for the chain CLIs."""
    parser.add_argument("--exercise", choices=("european", "american"), default="european",
                        help="option style of the chain's quotes: american for SPY (implied "
                             "vols by a CRR tree), european for SPX (default)")
    parser.add_argument("--dividends", default=None,
                        help="CSV of cash dividends paid (date, divCash; e.g. a bars file), "
                             "for --exercise american (default: the parity carry as a yield)")


def exercise_arguments(args) -> dict:
    """``exercise`` and ``dividends`` keyword arguments of :func:`prepare_chain_market` from
    the parsed ``--exercise`` and ``--dividends``."""
    if args.dividends and args.exercise != "american":
        raise UserInputError("--dividends is read only with --exercise american")
    dividends = read_dividend_history(args.dividends) if args.dividends else None
    return {"exercise": args.exercise, "dividends": dividends}


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
    gap_pct = (under.loc[both] / spot.loc[both] - 1.0).abs() * PERCENT_PER_UNIT
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
    dividend_yield_source: str = "put_call_parity"   # or "configured"
    smile_fallbacks: dict = field(default_factory=dict)   # date -> why its own fit failed
    index_fallbacks: dict = field(default_factory=dict)   # date -> why the chain index failed

    @property
    def dates(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.spot_by_date.index)

    def fallback_lines(self) -> list[str]:
        """One line per date that did not get its own smile or index, for the output."""
        lines = [f"{d.date()}: smile: {why}" for d, why in sorted(self.smile_fallbacks.items())]
        src = self.index_source
        for d in src.index[src.ne("frame") & src.ne("chain_vix")]:
            why = self.index_fallbacks.get(d, "")
            lines.append(f"{d.date()}: volatility index from {src[d]}"
                         + (f" ({why})" if why else ""))
        if self.dividend_yield_source != "put_call_parity":
            lines.append(f"dividend yield: configured {self.dividend_yield:.4f} (no expiry of "
                         f"30+ days with a put-call pair to estimate it)")
        return lines


def carry_fit(fit: SmileFit, date: pd.Timestamp, spot: float) -> SmileFit:
    """The previous session's smile used on ``date``: same shape and at-the-money variances
    by time to expiry, forwards moved with the spot (sticky moneyness)."""
    ratio = float(spot) / fit.spot
    return replace(fit, quote_date=pd.Timestamp(date), spot=float(spot),
                   forwards=np.asarray(fit.forwards, float) * ratio)


def fit_day_robust(day: pd.DataFrame, prior: SmileFit | None
                   ) -> tuple[SmileFit | None, str | None]:
    """One date's SSVI fit (rows of :func:`options.smile.market_ivs` output), with the shape
    of ``prior`` (the previous session's fit) as a start; where the date's own fit fails (too
    few usable quotes: a 0-DTE-only date, one expiry of pennies) the previous session's fit
    carried to the date (:func:`carry_fit`), or None on a first date. Returns the fit and the
    reason it is not the date's own (None when it is)."""
    date = pd.Timestamp(day["quote_date"].iloc[0])
    try:
        return fit_ssvi_day(day, None if prior is None else (prior.rho, prior.eta)), None
    except ChainDataError as exc:
        if prior is None:
            return None, f"{exc}; no earlier fit"
        fit = carry_fit(prior, date, float(day["underlying_price"].iloc[0]))
        return fit, f"{exc}; previous session's fit ({prior.quote_date.date()}) used"


def fit_smiles_robust(ivs: pd.DataFrame) -> tuple[dict[pd.Timestamp, SmileFit], dict]:
    """:func:`fit_day_robust` for every quote date of ``ivs`` in order. Returns the fits and
    ``{date: reason}`` of the dates that did not get their own fit."""
    fits: dict[pd.Timestamp, SmileFit] = {}
    fallbacks: dict[pd.Timestamp, str] = {}
    prior: SmileFit | None = None
    for date, day in ivs.groupby("quote_date", sort=True):
        day.attrs.update(ivs.attrs)
        fit, why = fit_day_robust(day, prior)
        if why is not None:
            fallbacks[pd.Timestamp(date)] = why
        if fit is not None:
            fits[pd.Timestamp(date)] = prior = fit
    return fits, fallbacks


def robust_index(dates: pd.DatetimeIndex, frame_index: pd.Series, chain_index: pd.Series,
                 fits: dict[pd.Timestamp, SmileFit]) -> tuple[pd.Series, pd.Series]:
    """The implied-vol index per date and its source (:data:`INDEX_SOURCES`), using each
    date and earlier ones only."""
    frame_index = frame_index.reindex(dates)
    chain_index = chain_index.reindex(dates)
    index = pd.Series(np.nan, index=dates)
    source = pd.Series("none", index=dates, dtype=object)
    last = np.nan
    for d in dates:
        if np.isfinite(frame_index[d]):
            index[d], source[d] = frame_index[d], "frame"
        elif np.isfinite(chain_index[d]):
            index[d], source[d] = chain_index[d], "chain_vix"
        elif np.isfinite(last):
            index[d], source[d] = last, "previous_session"
        elif d in fits:
            t = INDEX_TERM_DTE_DAYS / DAYS_PER_YEAR
            index[d] = float(np.sqrt(fits[d].theta_at(t) / t))
            source[d] = "smile_atm_30d"
        last = index[d] if np.isfinite(index[d]) else last
    return index, source


def _frame_on(frame: pd.DataFrame | None, col: str, dates: pd.DatetimeIndex) -> pd.Series:
    if frame is None or col not in frame.columns:
        return pd.Series(np.nan, index=dates)
    series = frame[col].copy()
    series.index = pd.DatetimeIndex(series.index).normalize()
    return series.reindex(dates)


def prepare_chain_market(chain: pd.DataFrame, *, frame: pd.DataFrame | None = None,
                         rate: float | None = None,
                         tolerance_pct: float = DEFAULT_UNDERLYING_TOLERANCE_PCT,
                         fit_all_smiles: bool = True,
                         default_dividend_yield: float = 0.0, exercise: str = "european",
                         dividends: DividendHistory | None = None) -> ChainMarket:
    """See the module docstring. ``frame`` may be None (no market frame). With
    ``fit_all_smiles=False`` the smiles are fitted only when the index needs them (chains too
    sparse for the listed-strike method, or dates the listed method cannot do) and ``fits`` is
    otherwise empty. ``default_dividend_yield`` is used (and logged) where put-call parity
    cannot estimate one. ``exercise`` (``options.exercise``) and ``dividends`` (cash paid, for
    ``"american"``) choose how the market implied vols are inverted
    (:func:`options.smile.market_ivs`)."""
    chain = one_root_per_contract(chain)
    spot = chain.groupby("quote_date")["underlying_price"].first()
    dates = pd.DatetimeIndex(spot.index)
    scale = model_price_scale(chain)
    source_name = chain.attrs.get("source", "?")
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
                f"chain '{source_name}' has too few put-call pairs at 30+ days to imply a "
                f"rate and the frame has no 'rate' on its dates; pass --rate (decimal)")
        used_rate, rate_source = box, "chain_box_spreads"
    forwards = implied_forwards(chain, used_rate)
    q = chain_dividend_yield(forwards) if len(forwards) else None
    q_source = "put_call_parity"
    if q is None or not np.isfinite(q):
        q, q_source = float(default_dividend_yield), "configured"
        log.warning("chain '%s': no expiry of 30+ days with a put-call pair; the dividend yield "
                    "falls back to the configured %.4f", source_name, q)
    ivs = market_ivs(chain, used_rate, None, forwards, exercise=exercise, dividends=dividends)
    fits: dict = {}
    smile_fallbacks: dict = {}
    vix = None
    if not fit_all_smiles:
        vix = chain_vix_index(chain, used_rate, None, skip_dates=True)
        if not vix["iv_index"].notna().all():
            vix = None
    if vix is None:
        fits, smile_fallbacks = fit_smiles_robust(ivs)
        vix = chain_vix_index(chain, used_rate, fits, skip_dates=True)
    frame_index = _frame_on(frame, "iv_index", dates)
    index, source = robust_index(dates, frame_index, vix["iv_index"], fits)
    index_fallbacks = {pd.Timestamp(d): str(r) for d, r in vix["reason"].items()
                       if isinstance(r, str) and r}
    out = ChainMarket(chain=chain, ivs=ivs, fits=fits, vix=vix, index_by_date=index,
                      index_source=source, spot_by_date=spot, rate=used_rate,
                      rate_source=rate_source, dividend_yield=float(q), model_scale=scale,
                      dividend_yield_source=q_source, smile_fallbacks=smile_fallbacks,
                      index_fallbacks=index_fallbacks)
    for line in out.fallback_lines():
        log.warning("chain '%s': %s", source_name, line)
    return out
