"""Strike and expiry selection at one bar, apart from the accounting.

:class:`StrikeGrids` chooses each bar's front (and back) expiry among the listed ones and caches,
per (bar, expiry rule, right), the listed strikes and their quotes from one
:class:`options.quotes.QuoteSource`. :class:`BarSelection` is one bar's view of it: the chosen
expiries, the at-the-money strike, the strike nearest a delta target, whether a strike is listed,
and one leg's quote. :class:`envs.portfolio.UnitTables` builds every unit from it; nothing here
knows about cash, risk or positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property, partial
from typing import NamedTuple

import numpy as np
import pandas as pd

from options.calendar import NS_PER_DAY
from options.quotes import LegQuotes, QuoteSource, settleable_expiries
from options.strategies import within_band
from options.structures import STRUCTURES, StrikeSelector

__all__ = ["GRID_KEYS", "BarSelection", "LegQuote", "StrikeGrids", "quote_is_valid", "slice_quotes",
           "valid_float_quote"]

_QUOTE_FIELDS = tuple(f.name for f in fields(LegQuotes))
# (expiry rule, right) of every leg of every spec: the strike grids a bar's units quote.
GRID_KEYS = tuple(sorted({(leg.expiry, leg.option_type) for spec in STRUCTURES.values()
                          for leg in spec.legs}))
_STRIKE_TOLERANCE = 1e-9  # two strikes closer than this are the same listed strike


def quote_is_valid(bid_per_share, ask_per_share, from_smile=False) -> np.ndarray:
    """Where a quote is a valid fill price: a listed two-sided quote (``from_smile`` False),
    bid and ask finite, ``0 <= bid <= ask`` and ``ask > 0``. Zero, crossed and one-sided
    quotes, and prices a fitted smile made up, are not."""
    bid = np.asarray(bid_per_share, dtype=float)
    ask = np.asarray(ask_per_share, dtype=float)
    with np.errstate(invalid="ignore"):
        return valid_float_quote(bid, ask, from_smile)


def valid_float_quote(bid: np.ndarray, ask: np.ndarray, from_smile=False) -> np.ndarray:
    """:func:`quote_is_valid` on float arrays, inside the caller's ``np.errstate``."""
    two_sided = np.isfinite(bid) & np.isfinite(ask) & (ask > 0) & (bid >= 0) & (bid <= ask)
    return two_sided & ~np.asarray(from_smile, dtype=bool)


class LegQuote(NamedTuple):
    """One listed contract's quote at one bar, per share."""

    bid_per_share: float
    ask_per_share: float
    mid_per_share: float
    iv_annualized: float
    delta: float
    from_smile: bool  # True: a fallback price, not a listed two-sided quote


class StrikeGrids:
    """Each bar's chosen expiries, listed strikes and strike-grid quotes (cached until
    :meth:`forget`)."""

    def __init__(self, source: QuoteSource, strategy_cfg) -> None:
        self.source = source
        self.cfg = strategy_cfg
        self._dates = list(source.bars.dates)
        self._spot = source.bars.spot.tolist()
        self._chosen: dict[int, dict[str, pd.Timestamp]] = {}
        self._strikes: dict[tuple[int, str, str], np.ndarray] = {}
        self._grid: dict[tuple[int, str, str], LegQuotes] = {}
        self._strike_index: dict[tuple[int, str, str], dict[float, int] | None] = {}
        self._selection: dict[int, BarSelection] = {}
        # per bar: the strike by_delta chose per (expiry rule, right, target), its candidates
        # per (expiry rule, right) and leg_quote's quotes per ("quote", rule, right, strike)
        self._bar_memo: dict[int, dict[tuple, object]] = {}

    @property
    def cached_bars(self) -> int:
        """How many bars hold cached expiries, strikes, quotes or a selection (0 once every one
        is forgotten)."""
        return len(self._selection.keys() | self._chosen.keys() | self._bar_memo.keys()
                   | {key[0] for key in self._strikes} | {key[0] for key in self._grid}
                   | {key[0] for key in self._strike_index})

    def expiries(self, bar: int) -> dict[str, pd.Timestamp]:
        """The front (and back) expiry of one bar: the listed expiries nearest the target days
        (ties: the later expiry)."""
        chosen = self._chosen.get(bar)
        if chosen is not None:
            return chosen
        cfg = self.cfg
        expiries = self.source.expiries(bar)
        if not getattr(self.source, "expiries_settleable", False):
            expiries = settleable_expiries(expiries, self.source.bars)
        now_day = self._dates[bar].normalize().value
        dte = (expiries.as_unit("ns").asi8 - now_day) / NS_PER_DAY if len(expiries) else np.array([])
        ok = dte >= max(1, cfg.min_dte_days)
        chosen = {}
        if ok.any():
            cand, cand_dte = np.flatnonzero(ok), dte[ok]  # positions in expiries, days
            gap = np.abs(cand_dte - cfg.dte_days)
            front = len(gap) - 1 - int(np.argmin(gap[::-1]))  # ties: the later expiry
            chosen["front"] = expiries[int(cand[front])]
            later = cand_dte > cand_dte[front]
            if later.any():
                gap_b = np.where(later, np.abs(cand_dte - cfg.back_dte_days), np.inf)
                back = len(gap_b) - 1 - int(np.argmin(gap_b[::-1]))
                chosen["back"] = expiries[int(cand[back])]
        self._chosen[bar] = chosen
        return chosen

    def listed_strikes(self, bar: int, rule: str, option_type: str) -> np.ndarray:
        """The strikes listed at ``bar`` for the expiry chosen by ``rule``, ascending."""
        key = (bar, rule, option_type)
        strikes = self._strikes.get(key)
        if strikes is None:
            strikes = self._strikes[key] = self.source.strikes(
                bar, self.expiries(bar)[rule], option_type)
        return strikes

    def strike_index(self, bar: int, rule: str, option_type: str) -> dict[float, int] | None:
        """Position of each listed strike of ``bar``'s expiry chosen by ``rule`` (once; None
        when two of them lie within the strike tolerance, so that only a search is exact)."""
        key = (bar, rule, option_type)
        if key not in self._strike_index:
            strikes = self.listed_strikes(bar, rule, option_type)
            spread_out = len(strikes) < 2 or bool(np.diff(strikes).min() > 2 * _STRIKE_TOLERANCE)
            self._strike_index[key] = ({k: i for i, k in enumerate(strikes.tolist())}
                                       if spread_out else None)
        return self._strike_index[key]

    def grid_quotes(self, bar: int, rule: str, option_type: str) -> LegQuotes:
        """Quotes of every listed strike of one expiry and right at one bar (once)."""
        key = (bar, rule, option_type)
        q = self._grid.get(key)
        if q is None:
            q = self._grid[key] = self.source.quote(
                bar, option_type, self.listed_strikes(bar, rule, option_type),
                self.expiries(bar)[rule])
        return q

    def prefetch(self, bars: Iterable[int]) -> None:
        """Quote the strike grids of ``bars`` with one call per (expiry, right) (elementwise
        sources only: each value is the one the per-bar call gives, bit for bit)."""
        groups: dict[tuple, list[tuple[int, str, np.ndarray]]] = {}
        for bar in bars:
            chosen = self.expiries(bar)
            for rule, option_type in GRID_KEYS:
                if rule not in chosen or (bar, rule, option_type) in self._grid:
                    continue
                strikes = self.listed_strikes(bar, rule, option_type)
                groups.setdefault((chosen[rule], option_type), []).append(
                    (bar, rule, strikes))
        for (expiry, option_type), items in groups.items():
            bar_idx = np.concatenate([np.full(len(k), b) for b, _, k in items])
            strikes = np.concatenate([k for _, _, k in items])
            try:
                q = self.source.quote(bar_idx, option_type, strikes, expiry)
            except ValueError:  # some bar cannot be quoted: leave these bars to the lazy path
                continue
            start = 0
            for bar, rule, k in items:
                self._grid[(bar, rule, option_type)] = slice_quotes(q, start, start + len(k))
                start += len(k)

    def forget(self, bars: Iterable[int]) -> None:
        """Drop the expiries, strike grids, quotes and selections of ``bars``."""
        for bar in bars:
            self._selection.pop(bar, None)
            self._bar_memo.pop(bar, None)
            self._chosen.pop(bar, None)
            for rule, option_type in GRID_KEYS:
                self._strikes.pop((bar, rule, option_type), None)
                self._grid.pop((bar, rule, option_type), None)
                self._strike_index.pop((bar, rule, option_type), None)

    def selection(self, bar: int) -> BarSelection:
        """One bar's :class:`BarSelection` (cached)."""
        sel = self._selection.get(bar)
        if sel is None:
            chosen = self.expiries(bar)
            spot = self._spot[bar]
            atm = None
            if "front" in chosen:
                grid = np.union1d(self.listed_strikes(bar, "front", "call"),
                                  self.listed_strikes(bar, "front", "put"))
                if len(grid):
                    atm = float(grid[int(np.argmin(np.abs(grid - spot)))])
            sel = self._selection[bar] = BarSelection(
                bar, spot, self.cfg.max_abs_log_moneyness, chosen, atm, self)
        return sel


@dataclass(frozen=True)
class BarSelection:
    """The expiries and strikes a structure may use at one bar, and their quotes."""

    bar: int
    spot: float
    max_abs_log_moneyness: float | None  # the moneyness band delta strikes are searched in
    expiries: Mapping[str, pd.Timestamp]  # per expiry rule: "front", and "back" when listed
    atm_strike: float | None  # the listed front strike nearest spot (None: no front strikes)
    grids: StrikeGrids = field(repr=False, compare=False)

    def listed_strikes(self, rule: str, option_type: str) -> np.ndarray:
        return self.grids.listed_strikes(self.bar, rule, option_type)

    def grid_quotes(self, rule: str, option_type: str) -> LegQuotes:
        return self.grids.grid_quotes(self.bar, rule, option_type)

    def by_delta(self, rule: str, option_type: str, target: float) -> float:
        """The strike whose |delta| is nearest ``target`` among the listed strikes inside the
        moneyness band with valid quotes (NaN when none); searched once per bar and target."""
        chosen = self.grids._bar_memo.setdefault(self.bar, {})
        key = (rule, option_type, target)
        strike = chosen.get(key)
        if strike is None:
            strike = chosen[key] = self._search_by_delta(rule, option_type, target)
        return strike

    def _search_by_delta(self, rule: str, option_type: str, target: float) -> float:
        candidates = self.grids._bar_memo[self.bar].get((rule, option_type))
        if candidates is None:
            candidates = self.grids._bar_memo[self.bar][(rule, option_type)] = \
                self._delta_candidates(rule, option_type)
        strikes, delta, ok = candidates
        if not ok.any():
            return math.nan
        gap = np.where(ok, np.abs(delta - target), np.inf)
        return float(strikes[int(np.argmin(gap))])

    def _delta_candidates(self, rule: str, option_type: str
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The listed strikes, their |delta| and where they may be chosen by delta (inside the
        moneyness band, finite delta, valid quote), whatever the target."""
        strikes = self.listed_strikes(rule, option_type)
        if len(strikes) == 0:
            return strikes, strikes, np.zeros(0, dtype=bool)
        q = self.grid_quotes(rule, option_type)
        delta = np.abs(q.delta)
        ok = (within_band(strikes, self.spot, self.max_abs_log_moneyness) & np.isfinite(delta)
              & quote_is_valid(q.bid_per_share, q.ask_per_share, q.from_smile))
        return strikes, delta, ok

    @cached_property
    def selectors(self) -> dict[str, StrikeSelector]:
        """A delta selector per chosen expiry rule (``build_structure_legs``'s ``by_delta``)."""
        return {rule: partial(self.by_delta, rule) for rule in self.expiries}

    def listed(self, rule: str, option_type: str, strike: float) -> bool:
        """Whether ``strike`` is listed for the expiry chosen by ``rule``."""
        if rule not in self.expiries:
            return False
        strikes = self.listed_strikes(rule, option_type)
        i = self._strike_index(rule, option_type, strike)
        return i < len(strikes) and abs(strikes[i] - strike) < _STRIKE_TOLERANCE

    def _strike_index(self, rule: str, option_type: str, strike: float) -> int:
        """``searchsorted(strikes, strike - tolerance)`` of the listed strikes: looked up where
        ``strike`` is one of them exactly and they lie further apart than the tolerance (the
        same index then), searched otherwise."""
        index = self.grids.strike_index(self.bar, rule, option_type)
        i = index.get(strike) if index is not None else None
        if i is None:
            strikes = self.listed_strikes(rule, option_type)
            i = int(np.searchsorted(strikes, strike - _STRIKE_TOLERANCE))
        return i

    def leg_quote(self, rule: str, option_type: str, strike: float) -> LegQuote:
        """The quote of a listed ``strike`` (see :meth:`listed`), read once per bar."""
        memo = self.grids._bar_memo.setdefault(self.bar, {})
        key = ("quote", rule, option_type, strike)
        quote = memo.get(key)
        if quote is None:
            quote = memo[key] = self._read_leg_quote(rule, option_type, strike)
        return quote

    def _read_leg_quote(self, rule: str, option_type: str, strike: float) -> LegQuote:
        i = self._strike_index(rule, option_type, strike)
        q = self.grid_quotes(rule, option_type)
        return LegQuote(float(q.bid_per_share[i]), float(q.ask_per_share[i]),
                        float(q.mid_per_share[i]), float(q.iv_annualized[i]), float(q.delta[i]),
                        bool(q.from_smile[i]))


def slice_quotes(q: LegQuotes, start: int, stop: int) -> LegQuotes:
    """Elements ``start:stop`` of every array of ``q``."""
    return LegQuotes(*(getattr(q, f)[start:stop] for f in _QUOTE_FIELDS))
