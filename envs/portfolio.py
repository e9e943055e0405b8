"""The portfolio simulator: cash, open structures, fills, margin and settlement.

Its state changes only through :meth:`PortfolioSimulator.step`: orders at bar t fill at bar t's
quotes (buy at the ask, sell at the bid, commission per contract per leg), then the market moves to
bar t+1, legs whose expiry session closes at t+1 settle in cash at intrinsic value, positions are
marked at mid, and the automatic exits (profit target, stop loss, days to expiry) fire at t+1's
quotes. Every price comes from one :class:`options.quotes.QuoteSource`.

A structure opened at bar i is a :class:`UnitStructure`: one unit (the spec's ratios) chosen at
bar i with its quotes at entry and, once it is first traded, along every later bar up to its last
expiry. It depends on the bar only, never on the portfolio, so it is built once per (bar,
structure) and shared by every episode; a position is a unit times a number of contracts.

Risk of a structure (what sizing and the mask compare to the budget):

* defined risk: its maximum loss at expiry (a calendar spread's: the debit paid, because its
  back leg is sold at the bid on the bar the front leg settles; held on alone, a long call whose
  short front leg settled in the money could lose more than the debit);
* undefined risk (short straddle, short strangle): the loss at the front expiry if the underlying
  moved ``stress_move_fraction`` (default 10%) against it, a documented stress measure in the
  spirit of exchange risk-based margin (Cboe/OCC TIMS scan ranges are of this size for broad
  indices). The broker's Reg-T margin must also fit in the free margin.

No structure that cannot pay is built (its unit is None and :meth:`UnitTables.why_missing` says
why, which the environment's mask and ``info`` report):

* a leg beyond the moneyness band ``|log(K/S)| > StrategyConfig.max_abs_log_moneyness`` (strikes
  chosen by delta are searched inside the band, among the strikes listed that day whose quotes
  are valid, so only wings offset from them can fall outside);
* a leg without a valid price: :func:`quote_is_valid` (a listed two-sided quote, not a smile
  price: ``from_smile`` False, bid and ask finite, ``0 <= bid <= ask``, ``ask > 0``);
* a maximum profit at expiry, after the entry commission, at or below zero: for a credit
  structure a maximum profit <= 0, for a debit structure a debit >= its maximum payoff (the two
  are one condition, ``max payoff - debit = max profit``). Calendars (no closed-form maximum)
  and unbounded-profit structures are not subject to it.

Closing a leg whose quote at that bar is not valid fills at the quote source's fallback price
(the chain source's smile price around the day's fit) and the fill is marked
``quote_source = "fallback"`` (otherwise the source's name, ``model`` or ``chain``); the ledger
counts such fills per trade.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from common.units import CONTRACT_MULTIPLIER
from envs.assignment import AssignmentRules, next_sessions
from envs.selection import StrikeGrids, quote_is_valid, valid_float_quote
from options.calendar import NS_PER_DAY, expiry_close_ns
from options.costs import CostConfig
from options.positions import (
    Fill,
    Leg,
    MarginConfig,
    Position,
    expiry_risk_per_share,
    payoff_at_expiry_usd,
    per_share_to_position,
    structure_units,
)
from options.pricing import DAYS_PER_YEAR
from options.quotes import LegQuotes, QuoteSource
from options.strategies import within_band
from options.structures import STRUCTURES, build_structure_legs

__all__ = [
    "TABLE_BLOCK_BARS",
    "TABLE_LAYOUT_VERSION",
    "ClosingTerms",
    "ExitRules",
    "OpenPosition",
    "OpeningTerms",
    "PortfolioSimulator",
    "PortfolioView",
    "StepResult",
    "UnitStructure",
    "UnitTables",
    "quote_is_valid",
]


TABLE_BLOCK_BARS = 64  # bars whose tables are built together, the first time one is needed
TABLE_LAYOUT_VERSION = 1  # of a stored block (UnitTables.export_block): bump when it changes


# --------------------------------------------------------------------------- unit structures
@dataclass
class UnitStructure:
    """One unit of a structure chosen at ``entry_bar``, priced by a quote source."""

    strategy: str
    entry_bar: int
    legs: tuple[Leg, ...]  # quantity = the spec's ratio (one unit)
    leg_bid: np.ndarray  # per leg at entry, per share
    leg_ask: np.ndarray
    leg_mid: np.ndarray
    leg_iv: np.ndarray
    commission_contracts: int  # sum of |ratio| over legs
    entry_cash_usd: float  # cash change of one unit at entry, before commission
    entry_spread_usd: float  # cost of trading away from mid, one unit
    max_loss_usd: float | None
    max_profit_usd: float | None
    risk_usd: float  # max loss, or the stress loss for undefined risk
    margin_usd: float  # margin to open one unit (max loss, or Reg-T)
    expiry_close_ns: tuple[int, ...]  # per leg
    close_at_first_expiry: bool = False  # calendars: sell the back leg when the front settles
    path: _UnitPath | None = field(default=None, repr=False)
    leg_delta: np.ndarray | None = None  # per leg at entry, per share
    quote_source: str = "model"  # name of the quote source that priced it

    @property
    def first_expiry_close_ns(self) -> int:
        return min(self.expiry_close_ns)


@dataclass
class _UnitPath:
    """One unit's values on bars ``entry_bar .. entry_bar + len - 1`` (lists for fast indexing)."""

    mid_usd: list[float]  # legs alive after the bar's settlements, at mid
    liq_usd: list[float]  # same legs closed at bid (long) / ask (short), before commission
    settle_usd: list[float]  # cash from legs settling at the bar
    settles: list[bool]  # some leg settles at the bar
    alive_contracts: list[int]  # sum of |ratio| of legs alive after the bar's settlements
    delta: list[float]
    gamma: list[float]
    theta: list[float]
    vega: list[float]
    margin_usd: list[float]
    first_expiry_ns: list[int]  # earliest expiry close of the legs alive after the bar
    leg_bid: np.ndarray  # [legs, bars]
    leg_ask: np.ndarray
    leg_mid: np.ndarray
    leg_alive: np.ndarray  # bool [legs, bars]: alive after the bar's settlements
    leg_settle_bar: np.ndarray  # per leg: path index where it settles (-1: after the path)
    leg_fallback: np.ndarray  # bool [legs, bars]: alive and without a valid quote
    leg_invalid_price: np.ndarray  # bool [legs, bars]: alive and bid/ask zero, crossed, one-sided

    def __getattr__(self, name: str):
        """A path loaded from a stored block (:func:`_stored_path`) makes its fields on the
        first read of any of them: most units of a block are never opened, and making every
        path's lists was most of the time a process spent loading tables. Only called for an
        attribute not set; dunder names (copy, pickle) are never fields."""
        stored = self.__dict__.get("_stored") if not name.startswith("__") else None
        if stored is not None:
            self.__dict__.update(_stored_path_fields(*stored))
            del self.__dict__["_stored"]
            if name in self.__dict__:
                return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def quote_flags_at(self, k: int) -> tuple[int, int]:
        """At path bar ``k``, how many legs have no valid quote (``leg_fallback``) and how many
        a zero, crossed or one-sided one (``leg_invalid_price``): a count over a few legs, at
        each close (no per-path table to build on a path's first close)."""
        return (self.leg_fallback[:, k].tolist().count(True),
                self.leg_invalid_price[:, k].tolist().count(True))


class UnitTables:
    """Unit structures per (bar, structure), built lazily from a quote source and cached.

    Which strikes and expiries a unit uses comes from :attr:`grids`
    (:class:`envs.selection.StrikeGrids`: one :class:`envs.selection.BarSelection` per bar);
    this class prices, sizes and refuses the units built from it."""

    def __init__(self, source: QuoteSource, strategy_cfg, cost_cfg: CostConfig,
                 margin_cfg: MarginConfig, stress_move_fraction: float,
                 max_volume_share: float | None = None) -> None:
        self.source = source
        self.bars = source.bars
        self.cfg = strategy_cfg
        self.costs = cost_cfg
        self.margin_cfg = margin_cfg
        self.stress = float(stress_move_fraction)
        self.max_volume_share = max_volume_share
        self._units: dict[tuple[int, str], UnitStructure | None] = {}
        self._why: dict[tuple[int, str], str] = {}
        self._legs: dict[tuple, Leg] = {}  # legs made while building (_leg), cleared per block
        self._in_band: dict[tuple[int, float], bool] = {}  # (_within_band), cleared per block
        self._close_ns: dict[pd.Timestamp, int] = {}  # expiry close per expiry
        self._settle_bars: dict[int, int] = {}  # bar per expiry close (_settle_bar)
        self.grids = StrikeGrids(source, strategy_cfg)  # strike and expiry selection per bar
        # Blocks in memory, least recently used first (ensure_bar), at most max_blocks of them.
        self._built_blocks: dict[int, None] = {}
        self.max_blocks: int | None = None  # None: every block stays once built (keep_blocks)
        self.evicted = 0  # blocks dropped to keep within max_blocks, for tests and benchmarks
        self.store = None  # where blocks are loaded from and saved to (attach_store)
        self._spot = self.bars.spot.tolist()
        self._dates = list(self.bars.dates)
        # Each quote of an elementwise source depends on its own (bar, strike) only, so the
        # tables may be built in a few large calls that equal the many small ones bit for bit.
        self.batched = bool(getattr(source, "elementwise_quotes", False))

    # ----------------------------------------------------------------- units
    def unit(self, bar: int, strategy: str) -> UnitStructure | None:
        """The unit of ``strategy`` at ``bar``, or None when none can be built there."""
        key = (bar, strategy)
        if key in self._units:
            return self._units[key]
        if self.max_blocks is not None and self.batched:  # its block was dropped: bring it back
            self.ensure_bar(bar)
            if key in self._units:
                return self._units[key]
        unit = None
        try:
            unit = self._build(bar, strategy)
        except ValueError as exc:  # no strikes/expiry, degenerate quotes
            self._why[key] = str(exc)
        self._units[key] = unit
        return unit

    def why_missing(self, bar: int, strategy: str) -> str:
        return self._why.get((bar, strategy), "no valid strikes/expiry at this bar")

    def _build(self, bar: int, strategy: str) -> UnitStructure | None:
        spec = STRUCTURES[strategy]
        sel = self.grids.selection(bar)
        missing = [r for r in spec.expiries if r not in sel.expiries]
        if missing or sel.atm_strike is None:
            raise ValueError(f"no listed {' and '.join(missing) or 'front'} expiry at this bar")
        choices = build_structure_legs(
            spec, expiries=sel.expiries, atm_strike=sel.atm_strike,
            wing_width=self.cfg.wing_width, by_delta=sel.selectors, targets=self.cfg,
            listed=sel.listed)
        if choices is None:
            raise ValueError("its strikes are not listed or do not form a valid structure here")
        legs = tuple(self._leg(c) for c in choices)
        spot = self._spot[bar]
        band = self.cfg.max_abs_log_moneyness
        outside = [leg for leg in legs if not self._within_band(bar, leg.strike)]
        if outside:
            leg = outside[0]
            raise ValueError(
                f"the {leg.option_type} {leg.strike:g} lies beyond the moneyness band: "
                f"|log(K/S)| = {abs(math.log(leg.strike / spot)):.3f} > {band:g} at spot "
                f"{spot:g} (max_abs_log_moneyness)")
        quotes = [sel.leg_quote(leg_spec.expiry, leg.option_type, leg.strike)
                  for leg_spec, leg in zip(spec.legs, legs, strict=True)]
        for leg, q in zip(legs, quotes, strict=True):
            if not _valid_leg_quote(q):
                what = "a fitted smile's price, no listed quote" if q.from_smile else \
                    f"bid {q.bid_per_share:g}, ask {q.ask_per_share:g}"
                raise ValueError(f"the {leg.option_type} {leg.strike:g} expiring "
                                 f"{pd.Timestamp(leg.expiry).date()} has no valid two-sided "
                                 f"quote ({what})")
        bid, ask, mid, iv, leg_delta, _ = np.array(quotes, dtype=float).T
        qty_contracts = [leg.quantity_contracts for leg in legs]
        price = [q.ask_per_share if n > 0 else q.bid_per_share
                 for q, n in zip(quotes, qty_contracts, strict=True)]
        mids = [q.mid_per_share for q in quotes]
        # NumPy's sum of a few floats, float(-(price * qty).sum() * CONTRACT_MULTIPLIER):
        entry_cash = float(-_sum_floats([p * float(n) for p, n in zip(price, qty_contracts,
                                                                       strict=True)])
                           * CONTRACT_MULTIPLIER)
        spread = float(_sum_floats([(p - m) * float(n) for p, m, n in zip(
            price, mids, qty_contracts, strict=True)]) * CONTRACT_MULTIPLIER)
        if self.max_volume_share is not None:
            for leg in legs:
                volume, oi = self.source.volume(bar, leg.option_type, leg.strike, leg.expiry)
                if max(volume, oi) <= 0:
                    raise ValueError(f"{leg.option_type} {leg.strike:g} has no volume")
        commission_contracts = sum(abs(q) for q in qty_contracts)
        # build_structure_legs checked the choices; a Leg only normalises their expiries.
        normalised = any(leg.expiry != c.expiry for leg, c in zip(legs, choices, strict=True))
        if normalised or not all(math.isfinite(m) and m >= 0 for m in mids):
            # a Position checks them again, and refuses a mid that is not finite or negative
            max_loss, max_profit = self._probe_risk_usd(strategy, legs, bar, price, mids)
        elif not spec.is_calendar:
            max_loss, max_profit = _expiry_risk_usd(legs, price)
        if spec.is_calendar:
            max_loss, max_profit = max(-entry_cash, 0.0), None  # debit paid (see docstring)
        if max_profit is not None:
            _refuse_if_cannot_pay(max_profit, entry_cash, self.costs.commission_per_contract_usd
                                  * commission_contracts)
        if max_loss is not None:
            risk = margin = max_loss
        else:
            moves = spot * np.array([1.0 - self.stress, 1.0 + self.stress])
            risk = max(0.0, float(-(payoff_at_expiry_usd(legs, moves) + entry_cash).min()))
            margin = float(_naked_margin(legs, mid[:, None], np.array([spot]),
                                         self.margin_cfg)[0])
        if not risk > 0:
            raise ValueError("its risk per contract is not positive")
        return UnitStructure(
            strategy, bar, legs, bid, ask, mid, iv, int(commission_contracts), entry_cash,
            spread, max_loss, max_profit, float(risk), float(margin),
            tuple(self._expiry_close_ns(leg.expiry) for leg in legs), spec.is_calendar,
            leg_delta=leg_delta, quote_source=self.quote_source_name)

    def _leg(self, choice) -> Leg:
        """The :class:`Leg` of a chosen leg, made once per (right, strike, expiry, contracts)
        while a block is built (legs are frozen, so units may share them)."""
        key = (choice.option_type, choice.strike, choice.expiry, choice.quantity_contracts)
        leg = self._legs.get(key)
        if leg is None:
            leg = self._legs[key] = Leg(*key)
        return leg

    def _within_band(self, bar: int, strike: float) -> bool:
        """:func:`options.strategies.within_band` of one strike at ``bar``'s spot, once per
        (bar, strike) while a block is built."""
        key = (bar, strike)
        inside = self._in_band.get(key)
        if inside is None:
            inside = self._in_band[key] = bool(within_band(
                np.array([strike]), self._spot[bar], self.cfg.max_abs_log_moneyness)[0])
        return inside

    def _expiry_close_ns(self, expiry: pd.Timestamp) -> int:
        """:func:`options.calendar.expiry_close_ns`, once per expiry."""
        close_ns = self._close_ns.get(expiry)
        if close_ns is None:
            close_ns = self._close_ns[expiry] = expiry_close_ns(expiry)
        return close_ns

    def _probe_risk_usd(self, strategy: str, legs: tuple[Leg, ...], bar: int,
                        price: list[float], mid: list[float]
                        ) -> tuple[float | None, float | None]:
        """Maximum loss and profit at expiry of one unit from a :class:`Position` opened at
        ``price`` (which raises ValueError on prices it does not accept)."""
        date = self._dates[bar]
        probe = Position(strategy, legs, date, tuple(
            Fill(leg, date, leg.quantity_contracts, p, m, 0.0, "open")
            for leg, p, m in zip(legs, price, mid, strict=True)))
        return probe.max_loss_usd, probe.max_profit_usd

    # ----------------------------------------------------------------- bulk building
    def build_bars(self, bars) -> None:
        """Build the units of every structure at ``bars`` and their paths, quoting each
        (expiry, right) once for all of them where the source is elementwise."""
        bars = list(bars)
        if self.batched:
            self.grids.prefetch(bars)
        units = [self.unit(bar, strategy) for bar in bars for strategy in STRUCTURES]
        self._legs.clear()
        self._in_band.clear()
        self.build_paths([u for u in units if u is not None])

    def build_all(self) -> None:
        """Build every bar's units and paths (what a long training run visits); with a store,
        block by block, each loaded from it or built and saved to it."""
        if self.store is not None and self.batched:
            for block in range(self.n_blocks):
                self.ensure_bar(block * TABLE_BLOCK_BARS)
            return
        self.build_bars(range(len(self.bars)))
        self._built_blocks.update(dict.fromkeys(range(self.n_blocks)))
        self.grids.forget(range(len(self.bars)))

    @property
    def n_blocks(self) -> int:
        return -(-len(self.bars) // TABLE_BLOCK_BARS)

    def block_bars(self, block: int) -> range:
        """The bars of one block of :data:`TABLE_BLOCK_BARS`."""
        return range(block * TABLE_BLOCK_BARS, min((block + 1) * TABLE_BLOCK_BARS,
                                                   len(self.bars)))

    def ensure_bar(self, bar: int) -> None:
        """Build the block of :data:`TABLE_BLOCK_BARS` bars around ``bar`` in one pass, the
        first time one of its bars is needed (elementwise sources; others stay lazy). With a
        store, the block is loaded from it when there, else built and saved to it. With
        :attr:`max_blocks`, the least recently used block beyond that many is dropped."""
        if not self.batched:
            return
        block = bar // TABLE_BLOCK_BARS
        if block in self._built_blocks:
            if self.max_blocks is not None:  # now the most recently used
                self._built_blocks[block] = self._built_blocks.pop(block)
            return
        self._built_blocks[block] = None
        self._bring_in(block)
        if self.max_blocks is not None:
            while len(self._built_blocks) > self.max_blocks:
                self._drop_block(next(iter(self._built_blocks)))

    def _bring_in(self, block: int) -> None:
        """Load ``block`` from the store, else build it (and save it there)."""
        bars = self.block_bars(block)
        store = self.store
        if store is not None:
            arrays = store.load(block)
            if arrays is not None:
                try:
                    self.import_block(block, arrays)
                    return
                except Exception as exc:  # whatever is wrong with a stored block: rebuild it
                    store.unreadable(block, exc)
        self.build_bars(bars)
        self.grids.forget(bars)
        if store is not None:
            store.save(block, self.export_block(block))

    def keep_blocks(self, max_blocks: int) -> None:
        """Keep at most ``max_blocks`` blocks in memory (elementwise sources): the least
        recently used beyond that is dropped, and its units come back from the store (or are
        built again) the next time one of its bars is needed, equal bit for bit. Units held
        elsewhere (open positions) stay whole; they are only no longer shared."""
        if max_blocks < 1:
            raise ValueError(f"max_blocks must be >= 1, got {max_blocks}")
        self.max_blocks = int(max_blocks)

    def _drop_block(self, block: int) -> None:
        del self._built_blocks[block]
        for bar in self.block_bars(block):
            for strategy in STRUCTURES:
                self._units.pop((bar, strategy), None)
                self._why.pop((bar, strategy), None)
        self.evicted += 1

    def attach_store(self, store) -> None:
        """Load blocks from and save them to ``store``: an object with ``load(block) -> dict of
        arrays or None``, ``save(block, arrays)`` and ``unreadable(block, error)`` (see
        :mod:`envs.table_cache`). Only for elementwise sources (others build lazily)."""
        self.store = store

    # ----------------------------------------------------------------- stored blocks
    def export_block(self, block: int) -> dict[str, np.ndarray]:
        """Every unit, path and refusal of one built block as flat arrays (no objects), from
        which :meth:`import_block` rebuilds them bit for bit."""
        bars = self.block_bars(block)
        strategies = tuple(STRUCTURES)
        units, why = [], []
        present = np.zeros((len(bars), len(strategies)), dtype=bool)
        for i, bar in enumerate(bars):
            for s, strategy in enumerate(strategies):
                unit = self._units[(bar, strategy)]
                if unit is None:
                    why.append(self.why_missing(bar, strategy))
                else:
                    present[i, s] = True
                    units.append(unit)
        return _units_to_arrays(units, why, present, {
            "layout": TABLE_LAYOUT_VERSION, "bars": [bars.start, bars.stop],
            "strategies": list(strategies)})

    def import_block(self, block: int, arrays: dict[str, np.ndarray]) -> None:
        """Units, paths and refusals of one block from :meth:`export_block`'s arrays. Raises
        ValueError (KeyError, IndexError) on arrays of another layout or block; nothing is
        kept then."""
        bars = self.block_bars(block)
        meta = json.loads(str(arrays["meta"]))
        if meta != {"layout": TABLE_LAYOUT_VERSION, "bars": [bars.start, bars.stop],
                    "strategies": list(STRUCTURES)}:
            raise ValueError(f"stored block {meta} is not block {block} of this layout")
        units, why = {}, {}
        made = iter(_units_from_arrays(arrays, self.quote_source_name))
        missing = iter(arrays["why"].tolist())
        present = arrays["present"]
        if present.shape != (len(bars), len(STRUCTURES)):
            raise ValueError(f"stored block has {present.shape} units, expected "
                             f"{(len(bars), len(STRUCTURES))}")
        for i, bar in enumerate(bars):
            for s, strategy in enumerate(STRUCTURES):
                if present[i, s]:
                    unit = next(made)
                    if unit.entry_bar != bar or unit.strategy != strategy:
                        raise ValueError(f"stored unit {unit.strategy}@{unit.entry_bar} where "
                                         f"{strategy}@{bar} was expected")
                    units[(bar, strategy)] = unit
                else:
                    units[(bar, strategy)] = None
                    why[(bar, strategy)] = next(missing)
        if next(made, None) is not None or next(missing, None) is not None:
            raise ValueError("stored block holds more units than its table says")
        for key, unit in units.items():  # units built before (lazily) stay the same objects
            if key not in self._units:
                self._units[key] = unit
                if key in why:
                    self._why[key] = why[key]

    @property
    def quote_source_name(self) -> str:
        return str(getattr(self.source, "name", "model"))

    def path(self, unit: UnitStructure) -> _UnitPath:
        """Quotes of the unit's legs on every bar from entry to its last expiry (built once)."""
        if unit.path is None:
            self.build_paths((unit,))
        return unit.path

    def build_paths(self, units) -> None:
        """Build the paths of ``units`` (those not built yet); with an elementwise source, one
        quote call per (expiry, right) for all their legs and bars."""
        todo, seen = [], set()
        for unit in units:
            if unit.path is None and id(unit) not in seen:
                seen.add(id(unit))
                todo.append(unit)
        plans = [self._path_plan(unit) for unit in todo]
        if not self.batched or len(todo) == 1:
            for unit, plan in zip(todo, plans, strict=True):
                self._path_one_by_one(unit, plan)
            return
        # per (expiry, right): (unit, leg, entry bar, bars quoted, strike) of its legs
        groups: dict[tuple, list[tuple[int, int, int, int, float]]] = {}
        for u, (unit, (_, _, ends)) in enumerate(zip(todo, plans, strict=True)):
            for j, (leg, end) in enumerate(zip(unit.legs, ends, strict=True)):
                if end > 0:
                    groups.setdefault((leg.expiry, leg.option_type), []).append(
                        (u, j, unit.entry_bar, end, leg.strike))
        cells = _PathCells(todo, plans)
        unquoted: set[int] = set()  # units some of whose quotes could not be fetched in bulk
        for (expiry, option_type), items in groups.items():
            units, legs, first_bar, n_quoted, strike = (np.array(x) for x in zip(*items,
                                                                                 strict=True))
            bar_idx = _ragged_ranges(first_bar, n_quoted)  # each leg's bars, one after another
            try:
                q = _quote_each_once(self.source, bar_idx, option_type,
                                     np.repeat(strike, n_quoted), expiry)
            except ValueError:  # left to each unit's own calls (below), as if built lazily
                unquoted.update(units.tolist())
                continue
            cells.put(q, units, legs, n_quoted)
        with np.errstate(invalid="ignore"):
            self._assemble_all(todo, plans, cells, unquoted)

    def _assemble_all(self, todo, plans, cells: _PathCells, unquoted: set[int]) -> None:
        """Paths of ``todo``: those whose quotes all came in bulk strategy by strategy in array
        operations (:meth:`_assemble_group`), the others one by one."""
        by_shape: dict[tuple, list[int]] = {}
        for u, (unit, plan) in enumerate(zip(todo, plans, strict=True)):
            if u in unquoted:
                with contextlib.suppress(ValueError):  # raised again when opened, as before
                    self._path_one_by_one(unit, plan)
            elif min(plan[2]) < 0 or len(unit.legs) >= _PAIRWISE_SUM_LEGS:
                # a leg settling before entry, or a sum over legs NumPy may add pairwise: left
                # to the arithmetic of one unit
                self._path_one_by_one(unit, plan)
            else:
                shape = tuple((leg.option_type, leg.quantity_contracts) for leg in unit.legs)
                by_shape.setdefault(shape, []).append(u)
        for members in by_shape.values():
            self._assemble_group([todo[u] for u in members], [plans[u] for u in members],
                                 cells, cells.base[members])

    def _path_one_by_one(self, unit: UnitStructure, plan) -> None:
        settle_bar, idx, ends = plan
        quotes = [self.source.quote(idx[:end], leg.option_type, leg.strike, leg.expiry)
                  if end > 0 else None for leg, end in zip(unit.legs, ends, strict=True)]
        with np.errstate(invalid="ignore"):
            self._assemble_path(unit, settle_bar, idx, ends, quotes)

    def _path_plan(self, unit: UnitStructure) -> tuple[list[int], np.ndarray, list[int]]:
        """Settlement bar per leg (-1: after the bars), the path's bars, and per leg the number
        of path bars on which it is quoted (before its settlement)."""
        bars = self.bars
        settle_bar = [self._settle_bar(close_ns) for close_ns in unit.expiry_close_ns]
        last = len(bars) - 1 if min(settle_bar) < 0 else max(settle_bar)
        idx = np.arange(unit.entry_bar, last + 1)
        n = len(idx)
        ends = [n if sb < 0 else sb - unit.entry_bar for sb in settle_bar]
        return settle_bar, idx, ends

    def _settle_bar(self, close_ns: int) -> int:
        """The bar whose close is ``close_ns`` (-1: none), once per expiry close."""
        bar = self._settle_bars.get(close_ns)
        if bar is None:
            found = self.bars.bar_of_close(close_ns)
            bar = self._settle_bars[close_ns] = -1 if found is None else found
        return bar

    def _assemble_path(self, unit: UnitStructure, settle_bar: list[int], idx: np.ndarray,
                       ends: list[int], quotes: list[LegQuotes | None]) -> None:
        bars = self.bars
        n = len(idx)
        n_legs = len(unit.legs)
        leg_bid = np.zeros((n_legs, n))
        leg_ask = np.zeros((n_legs, n))
        leg_mid = np.zeros((n_legs, n))
        alive = np.zeros((n_legs, n), dtype=bool)
        fallback = np.zeros((n_legs, n), dtype=bool)
        greeks = np.zeros((4, n))
        settle_usd = np.zeros(n)
        leg_settle = np.full(n_legs, -1)
        for j, leg in enumerate(unit.legs):
            units = leg.quantity_contracts * CONTRACT_MULTIPLIER
            end = ends[j]
            if end < n:
                leg_settle[j] = end
                intrinsic = float(leg.intrinsic_per_share(bars.spot[settle_bar[j]]))
                settle_usd[end] += intrinsic * units
                leg_mid[j, end] = leg_bid[j, end] = leg_ask[j, end] = intrinsic
            if end <= 0:
                continue
            q = quotes[j]
            leg_bid[j, :end], leg_ask[j, :end], leg_mid[j, :end] = (
                q.bid_per_share, q.ask_per_share, q.mid_per_share)
            fallback[j, :end] = ~valid_float_quote(q.bid_per_share, q.ask_per_share, q.from_smile)
            alive[j, :end] = True
            greeks[:, :end] += units * np.vstack([q.delta, q.gamma, q.theta_per_day,
                                                  q.vega_per_vol_point])
        qty = np.array([leg.quantity_contracts for leg in unit.legs], dtype=float)[:, None]
        live_mid = np.where(alive, leg_mid, 0.0)
        mid_usd = (live_mid * qty).sum(axis=0) * CONTRACT_MULTIPLIER
        liq = np.where(qty > 0, leg_bid, leg_ask)
        liq_usd = (np.where(alive, liq, 0.0) * qty).sum(axis=0) * CONTRACT_MULTIPLIER
        alive_contracts = (alive * np.abs(qty)).sum(axis=0).astype(int)
        if unit.max_loss_usd is not None:
            margin = np.full(n, unit.max_loss_usd)
        else:
            margin = _naked_margin(unit.legs, live_mid, bars.spot[idx], self.margin_cfg)
        expiry_ns = np.array(unit.expiry_close_ns, dtype=float)[:, None]
        first_expiry = np.where(alive, expiry_ns, np.inf).min(axis=0)
        first_expiry = np.where(np.isfinite(first_expiry), first_expiry, 0).astype("int64")
        unit.path = _UnitPath(
            mid_usd.tolist(), liq_usd.tolist(), settle_usd.tolist(),
            (leg_settle[:, None] == np.arange(n)[None, :]).any(axis=0).tolist(),
            alive_contracts.tolist(), *(g.tolist() for g in greeks), margin.tolist(),
            first_expiry.tolist(), leg_bid, leg_ask, leg_mid, alive, leg_settle, fallback,
            alive & ~valid_float_quote(leg_bid, leg_ask))

    def _assemble_group(self, units: list[UnitStructure], plans: list, cells: _PathCells,
                        base: np.ndarray) -> None:
        """:meth:`_assemble_path` of units with the same rights and ratios leg by leg, on the
        path bars of all of them side by side ([legs, bars of every unit]): the same
        elementwise operations in the same order, so the same paths bit for bit (a sum over
        legs is NumPy's ``sum(axis=0)`` of a [legs, bars] array: ``((0 + a0) + a1) + ...``)."""
        legs0 = units[0].legs
        n_legs = len(legs0)
        qty = [leg.quantity_contracts for leg in legs0]
        is_call = np.array([leg.is_call for leg in legs0])[:, None]
        n_bars = np.array([len(plan[1]) for plan in plans])
        first_col = np.concatenate(([0], np.cumsum(n_bars)[:-1]))
        unit_of = np.repeat(np.arange(len(units)), n_bars)  # per column: its unit
        k = np.arange(len(unit_of)) - first_col[unit_of]  # per column: its path bar
        ends = np.array([plan[2] for plan in plans])  # [units, legs]
        end = ends[unit_of].T  # [legs, columns]
        alive = k < end
        settles_at = (k == end) & (end < n_bars[unit_of])
        cell = (base[:, None] + np.arange(n_legs) * n_bars[:, None])[unit_of].T + k
        bid, ask, mid, smile = (cells.values[name][cell] for name in
                                ("bid_per_share", "ask_per_share", "mid_per_share",
                                 "from_smile"))
        strikes = np.array([[leg.strike for leg in unit.legs] for unit in units])
        spot_at_settle = self.bars.spot[np.array([plan[0] for plan in plans])]
        intrinsic = np.where(is_call.T, np.maximum(spot_at_settle - strikes, 0.0),
                             np.maximum(strikes - spot_at_settle, 0.0))[unit_of].T
        settle_usd = np.zeros(len(unit_of))
        for j in range(n_legs):
            at = settles_at[j]
            settle_usd[at] += intrinsic[j][at] * (qty[j] * CONTRACT_MULTIPLIER)
        greeks = np.zeros((4, len(unit_of)))
        for g, name in enumerate(("delta", "gamma", "theta_per_day", "vega_per_vol_point")):
            values = cells.values[name][cell]
            for j in range(n_legs):  # adding -0.0 changes nothing where a leg is not alive
                greeks[g] += np.where(alive[j], qty[j] * CONTRACT_MULTIPLIER * values[j], -0.0)
        fallback = alive & ~valid_float_quote(bid, ask, smile)
        leg_bid, leg_ask, leg_mid = (np.where(settles_at, intrinsic, x) for x in (bid, ask, mid))
        quantity = np.array(qty, dtype=float)[:, None]
        live_mid = np.where(alive, leg_mid, 0.0)
        mid_usd = _sum_legs(live_mid * quantity) * CONTRACT_MULTIPLIER
        liq = np.where(quantity > 0, leg_bid, leg_ask)
        liq_usd = _sum_legs(np.where(alive, liq, 0.0) * quantity) * CONTRACT_MULTIPLIER
        alive_contracts = (alive * np.abs(quantity)).sum(axis=0).astype(int)
        margin = self._group_margin(units, plans, unit_of, k, strikes, live_mid)
        expiry_ns = np.array([u.expiry_close_ns for u in units], dtype=float)[unit_of].T
        first_expiry = np.where(alive, expiry_ns, np.inf).min(axis=0)
        first_expiry = np.where(np.isfinite(first_expiry), first_expiry, 0).astype("int64")
        invalid = alive & ~valid_float_quote(leg_bid, leg_ask)
        leg_settle = np.where(ends < n_bars[:, None], ends, -1)
        per_bar = [x.tolist() for x in (mid_usd, liq_usd, settle_usd, settles_at.any(axis=0),
                                        alive_contracts, *greeks, margin, first_expiry)]
        per_cell = (leg_bid, leg_ask, leg_mid, alive)
        for u, unit in enumerate(units):
            cols = slice(first_col[u], first_col[u] + n_bars[u])
            unit.path = _UnitPath(*(x[cols] for x in per_bar),
                                  *(x[:, cols].copy() for x in per_cell), leg_settle[u].copy(),
                                  fallback[:, cols].copy(), invalid[:, cols].copy())

    def _group_margin(self, units, plans, unit_of, k, strikes, live_mid) -> np.ndarray:
        """Per column of :meth:`_assemble_group`: the unit's maximum loss, or the Reg-T margin
        of its naked legs at that bar where it has none."""
        max_loss = [math.nan if u.max_loss_usd is None else u.max_loss_usd for u in units]
        margin = np.array(max_loss)[unit_of]
        naked = np.array([u.max_loss_usd is None for u in units])
        if naked.any():
            legs0 = units[0].legs
            entry = np.array([plan[1][0] for plan in plans])[unit_of]
            reg_t = _naked_margin_of([leg.is_call for leg in legs0],
                                     [leg.quantity_contracts for leg in legs0],
                                     list(strikes[unit_of].T), live_mid,
                                     self.bars.spot[entry + k], self.margin_cfg)
            margin = np.where(naked[unit_of], reg_t, margin)
        return margin


class _PathCells:
    """Quotes of every (unit, leg, path bar) of the units of one :meth:`UnitTables.build_paths`
    call, filled from its bulk quote calls: unit ``u``'s leg ``j`` at path bar ``k`` is cell
    ``base[u] + j * bars[u] + k`` (zero where not quoted)."""

    FIELDS = ("bid_per_share", "ask_per_share", "mid_per_share", "delta", "gamma",
              "theta_per_day", "vega_per_vol_point")

    def __init__(self, units, plans) -> None:
        self.bars = np.array([len(plan[1]) for plan in plans], dtype=np.int64)
        size = np.array([len(unit.legs) for unit in units], dtype=np.int64) * self.bars
        self.base = np.concatenate(([0], np.cumsum(size)[:-1])).astype(np.int64)
        total = int(size.sum())
        self.values = {name: np.zeros(total) for name in self.FIELDS}
        self.values["from_smile"] = np.zeros(total, dtype=bool)

    def put(self, q: LegQuotes, units: np.ndarray, legs: np.ndarray, n_quoted: np.ndarray
            ) -> None:
        """Store ``q``: the quotes of leg ``legs[i]`` of unit ``units[i]`` on its first
        ``n_quoted[i]`` path bars, for each i one after another."""
        cells = _ragged_ranges(self.base[units] + legs * self.bars[units], n_quoted)
        for name in (*self.FIELDS, "from_smile"):
            self.values[name][cells] = getattr(q, name)


# --------------------------------------------------------------------------- stored blocks
# Arrays of a stored block: per unit (u_), per leg of every unit (l_), per path bar of every
# unit (p_) and per leg and path bar of every unit, legs major (q_).
_PATH_BAR_FIELDS = (("mid_usd", "float64"), ("liq_usd", "float64"), ("settle_usd", "float64"),
                    ("settles", "bool"), ("alive_contracts", "int64"), ("delta", "float64"),
                    ("gamma", "float64"), ("theta", "float64"), ("vega", "float64"),
                    ("margin_usd", "float64"), ("first_expiry_ns", "int64"))
_PATH_LEG_FIELDS = (("leg_bid", "float64"), ("leg_ask", "float64"), ("leg_mid", "float64"),
                    ("leg_alive", "bool"), ("leg_fallback", "bool"),
                    ("leg_invalid_price", "bool"))
_UNIT_LEG_FIELDS = ("leg_bid", "leg_ask", "leg_mid", "leg_iv", "leg_delta")


def _concat(parts: list, dtype: str) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _units_to_arrays(units: list[UnitStructure], why: list[str], present: np.ndarray,
                     meta: dict) -> dict[str, np.ndarray]:
    """Flat arrays of ``units`` (see :meth:`UnitTables.export_block`)."""
    nan = math.nan
    out: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(meta, sort_keys=True)), "present": present,
        "why": np.array(why, dtype=str) if why else np.zeros(0, dtype="<U1"),
        "u_bar": np.array([u.entry_bar for u in units], dtype="int64"),
        "u_legs": np.array([len(u.legs) for u in units], dtype="int64"),
        "u_commission_contracts": np.array([u.commission_contracts for u in units], "int64"),
        "u_entry_cash_usd": np.array([u.entry_cash_usd for u in units], dtype="float64"),
        "u_entry_spread_usd": np.array([u.entry_spread_usd for u in units], dtype="float64"),
        "u_has_max_loss": np.array([u.max_loss_usd is not None for u in units], dtype=bool),
        "u_max_loss_usd": np.array([nan if u.max_loss_usd is None else u.max_loss_usd
                                    for u in units], dtype="float64"),
        "u_has_max_profit": np.array([u.max_profit_usd is not None for u in units], dtype=bool),
        "u_max_profit_usd": np.array([nan if u.max_profit_usd is None else u.max_profit_usd
                                      for u in units], dtype="float64"),
        "u_risk_usd": np.array([u.risk_usd for u in units], dtype="float64"),
        "u_margin_usd": np.array([u.margin_usd for u in units], dtype="float64"),
        "u_close_at_first_expiry": np.array([u.close_at_first_expiry for u in units], bool),
        "u_has_leg_delta": np.array([u.leg_delta is not None for u in units], dtype=bool),
        "u_path_bars": np.array([-1 if u.path is None else len(u.path.mid_usd)
                                 for u in units], dtype="int64"),
        "l_call": np.array([leg.is_call for u in units for leg in u.legs], dtype=bool),
        "l_strike": np.array([leg.strike for u in units for leg in u.legs], dtype="float64"),
        "l_expiry_ns": np.array([pd.Timestamp(leg.expiry).as_unit("ns").value
                                 for u in units for leg in u.legs], dtype="int64"),
        "l_quantity": np.array([leg.quantity_contracts for u in units for leg in u.legs],
                               dtype="int64"),
        "l_expiry_close_ns": np.array([ns for u in units for ns in u.expiry_close_ns], "int64"),
    }
    for name in _UNIT_LEG_FIELDS:
        out[f"l_{name}"] = _concat([np.full(len(u.legs), nan) if getattr(u, name) is None
                                    else getattr(u, name) for u in units], "float64")
    paths = [u.path for u in units if u.path is not None]
    out["l_settle_bar"] = _concat([p.leg_settle_bar for p in paths], "int64")
    for name, dtype in _PATH_BAR_FIELDS:
        out[f"p_{name}"] = _concat([np.asarray(getattr(p, name), dtype=dtype) for p in paths],
                                   dtype)
    for name, dtype in _PATH_LEG_FIELDS:
        out[f"q_{name}"] = _concat([getattr(p, name).ravel() for p in paths], dtype)
    return out


def _units_from_arrays(a: dict[str, np.ndarray], quote_source: str) -> list[UnitStructure]:
    """The units of :func:`_units_to_arrays`, equal to the stored ones bit for bit."""
    strategies = json.loads(str(a["meta"]))["strategies"]
    n_legs = a["u_legs"].tolist()
    bar_of = a["u_bar"].tolist()
    path_bars = a["u_path_bars"].tolist()
    present = a["present"]
    strategy_of = [strategies[s] for s in np.nonzero(present)[1].tolist()]
    if not len(strategy_of) == len(n_legs) == len(bar_of) == len(path_bars):
        raise ValueError("stored block: per-unit arrays of different lengths")
    scalars = {k: a[k].tolist() for k in (
        "u_commission_contracts", "u_entry_cash_usd", "u_entry_spread_usd", "u_has_max_loss",
        "u_max_loss_usd", "u_has_max_profit", "u_max_profit_usd", "u_risk_usd", "u_margin_usd",
        "u_close_at_first_expiry", "u_has_leg_delta")}
    calls, strikes, quantity = (a["l_call"].tolist(), a["l_strike"].tolist(),
                                a["l_quantity"].tolist())
    expiry_ns, close_ns = a["l_expiry_ns"].tolist(), a["l_expiry_close_ns"].tolist()
    leg_arrays = {name: a[f"l_{name}"] for name in _UNIT_LEG_FIELDS}
    settle_bar = a["l_settle_bar"]
    bar_arrays = tuple(a[f"p_{name}"] for name, _ in _PATH_BAR_FIELDS)
    n_path_bars = len(bar_arrays[0])
    if any(len(x) != n_path_bars for x in bar_arrays):
        raise ValueError("stored block: per-bar path arrays of different lengths")
    leg_bar = {name: a[f"q_{name}"] for name, _ in _PATH_LEG_FIELDS}
    n_cells = len(leg_bar["leg_bid"])
    for name, dtype in _PATH_LEG_FIELDS:
        if leg_bar[name].dtype != np.dtype(dtype) or len(leg_bar[name]) != n_cells:
            raise ValueError(f"stored block: q_{name} is {leg_bar[name].dtype} of "
                             f"{len(leg_bar[name])}, not {dtype} of {n_cells}")
    # checked here, sliced when a path is first read (_stored_path)
    block_path = (bar_arrays, tuple(leg_bar.values()), settle_bar)
    made_legs: dict[tuple, Leg] = {}  # legs are frozen: units with the same leg share it
    out = []
    leg = bar = cell = path_leg = 0  # running offsets into the l_, p_ and q_ arrays
    for u, strategy in enumerate(strategy_of):
        k = n_legs[u]
        stop = leg + k
        legs = []
        for j in range(leg, stop):
            key = (calls[j], strikes[j], expiry_ns[j], quantity[j])
            one = made_legs.get(key)
            if one is None:
                one = made_legs[key] = Leg("call" if calls[j] else "put", strikes[j],
                                           pd.Timestamp(expiry_ns[j]), quantity[j])
            legs.append(one)
        unit = UnitStructure(
            strategy=strategy, entry_bar=bar_of[u], legs=tuple(legs),
            leg_bid=leg_arrays["leg_bid"][leg:stop], leg_ask=leg_arrays["leg_ask"][leg:stop],
            leg_mid=leg_arrays["leg_mid"][leg:stop], leg_iv=leg_arrays["leg_iv"][leg:stop],
            commission_contracts=scalars["u_commission_contracts"][u],
            entry_cash_usd=scalars["u_entry_cash_usd"][u],
            entry_spread_usd=scalars["u_entry_spread_usd"][u],
            max_loss_usd=scalars["u_max_loss_usd"][u] if scalars["u_has_max_loss"][u] else None,
            max_profit_usd=(scalars["u_max_profit_usd"][u] if scalars["u_has_max_profit"][u]
                            else None),
            risk_usd=scalars["u_risk_usd"][u], margin_usd=scalars["u_margin_usd"][u],
            expiry_close_ns=tuple(close_ns[leg:stop]),
            close_at_first_expiry=scalars["u_close_at_first_expiry"][u],
            leg_delta=leg_arrays["leg_delta"][leg:stop] if scalars["u_has_leg_delta"][u] else None,
            quote_source=quote_source)
        n = path_bars[u]
        if n >= 0:
            end, cell_end = bar + n, cell + k * n
            if end > n_path_bars or cell_end > n_cells or path_leg + k > len(settle_bar):
                raise ValueError("stored block: path arrays shorter than its units")
            unit.path = _stored_path(block_path, bar, end, cell, cell_end, path_leg, k, n)
            bar, cell, path_leg = end, cell_end, path_leg + k
        out.append(unit)
        leg = stop
    if leg != len(calls) or bar != n_path_bars or cell != n_cells:
        raise ValueError("stored block: leg or path arrays longer than its units")
    return out


def _stored_path(block_path: tuple, bar: int, end: int, cell: int, cell_end: int,
                 path_leg: int, k: int, n: int) -> _UnitPath:
    """A :class:`_UnitPath` of a stored block whose fields are made on first use
    (``_UnitPath.__getattr__``), equal to those made at once: the same slices."""
    path = object.__new__(_UnitPath)
    path.__dict__["_stored"] = (block_path, bar, end, cell, cell_end, path_leg, k, n)
    return path


def _stored_path_fields(block_path: tuple, bar: int, end: int, cell: int, cell_end: int,
                        path_leg: int, k: int, n: int) -> dict:
    """The fields of one unit's path from its block's arrays (lists per bar, [legs, bars]
    arrays per leg)."""
    bar_arrays, leg_arrays, settle_bar = block_path
    fields_ = {name: x[bar:end].tolist()
               for (name, _), x in zip(_PATH_BAR_FIELDS, bar_arrays, strict=True)}
    for (name, _), x in zip(_PATH_LEG_FIELDS, leg_arrays, strict=True):
        fields_[name] = x[cell:cell_end].reshape(k, n)
    fields_["leg_settle_bar"] = settle_bar[path_leg:path_leg + k]
    return fields_


def _refuse_if_cannot_pay(max_profit_usd: float, entry_cash_usd: float,
                          commission_usd: float) -> None:
    """Raise ValueError when one unit's maximum profit at expiry, after its entry commission, is
    at or below zero (see the module docstring)."""
    net = max_profit_usd - commission_usd
    if net > 0:
        return
    if entry_cash_usd > 0:
        raise ValueError(f"a credit structure that cannot pay: maximum profit {net:.2f} USD <= 0 "
                         f"per unit (credit {entry_cash_usd:.2f}, commission "
                         f"{commission_usd:.2f})")
    debit = -entry_cash_usd
    raise ValueError(f"a debit structure that cannot pay: debit {debit:.2f} USD plus commission "
                     f"{commission_usd:.2f} >= its maximum payoff {max_profit_usd + debit:.2f} "
                     f"USD per unit")


def _expiry_risk_usd(legs: tuple[Leg, ...], price_per_share: list[float]
                     ) -> tuple[float | None, float | None]:
    """``(max_loss_usd, max_profit_usd)`` of a :class:`Position` of ``legs`` opened at
    ``price_per_share`` (one expiry), without building it: its own functions
    (:func:`options.positions.expiry_risk_per_share`), on the premium it would sum."""
    units = structure_units(legs)
    premium_per_share = sum(p * leg.quantity_contracts / units
                            for p, leg in zip(price_per_share, legs, strict=True))
    loss, profit = expiry_risk_per_share(legs, premium_per_share)
    return (None if loss is None else per_share_to_position(loss, units),
            None if profit is None else per_share_to_position(profit, units))


def _valid_leg_quote(q) -> bool:
    """:func:`envs.selection.quote_is_valid` of one :class:`envs.selection.LegQuote`."""
    bid, ask = q.bid_per_share, q.ask_per_share
    return (math.isfinite(bid) and math.isfinite(ask) and ask > 0 and bid >= 0 and bid <= ask
            and not q.from_smile)


def _sum_floats(values: list[float]) -> float:
    """NumPy's ``sum`` of a 1-D float array: ``((0 + a0) + a1) + ...`` for fewer than
    :data:`_PAIRWISE_SUM_LEGS` elements (NumPy sums longer arrays pairwise)."""
    if len(values) >= _PAIRWISE_SUM_LEGS:
        return float(np.sum(values))
    total = 0.0
    for x in values:
        total = total + x
    return total


def _naked_margin(legs, leg_mid: np.ndarray, spot: np.ndarray, cfg: MarginConfig) -> np.ndarray:
    """Reg-T margin of undefined-risk legs (see :meth:`options.positions.Position.
    margin_requirement_usd`), vectorised over bars: ``leg_mid`` is [legs, bars]."""
    return _naked_margin_of([leg.is_call for leg in legs],
                            [leg.quantity_contracts for leg in legs],
                            [leg.strike for leg in legs], leg_mid, spot, cfg)


def _naked_margin_of(is_call: list[bool], quantity: list[int], strike: list, leg_mid: np.ndarray,
                     spot: np.ndarray, cfg: MarginConfig) -> np.ndarray:
    """:func:`_naked_margin` of legs given by right, contracts and strike (a number, or an
    array over the bars)."""
    n = leg_mid.shape[1]
    req = {True: np.zeros(n), False: np.zeros(n)}
    premium = {True: np.zeros(n), False: np.zeros(n)}
    has_short = {True: False, False: False}
    for j, (call, qty, k) in enumerate(zip(is_call, quantity, strike, strict=True)):
        if qty > 0:
            continue
        mid = leg_mid[j]
        if call:
            otm = np.maximum(k - spot, 0.0)
            floor = cfg.naked_minimum_fraction * spot
        else:
            otm = np.maximum(spot - k, 0.0)
            floor = cfg.naked_minimum_fraction * k
        per_share = mid + np.maximum(cfg.naked_underlying_fraction * spot - otm, floor)
        req[call] = req[call] + per_share * -qty * CONTRACT_MULTIPLIER
        premium[call] = premium[call] + mid * -qty * CONTRACT_MULTIPLIER
        has_short[call] = True
    if has_short[True] and has_short[False]:
        return np.maximum(req[True] + premium[False], req[False] + premium[True])
    return req[True] + req[False]


def _quote_each_once(source: QuoteSource, bar_idx: np.ndarray, option_type: str,
                     strikes: np.ndarray, expiry) -> LegQuotes:
    """``source.quote(bar_idx, option_type, strikes, expiry)`` of an elementwise source,
    quoting each distinct (bar, strike) once (units entered on nearby bars share contracts)."""
    strike_values, strike_rank = np.unique(strikes, return_inverse=True)
    pairs, inverse = np.unique(bar_idx * len(strike_values) + strike_rank, return_inverse=True)
    q = source.quote(pairs // len(strike_values), option_type,
                     strike_values[pairs % len(strike_values)], expiry)
    return LegQuotes(*(getattr(q, f.name)[inverse] for f in fields(LegQuotes)))


def _ragged_ranges(first: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(f, f + n) for f, n in zip(first, lengths)])``, int64."""
    first = np.asarray(first, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    start_in_out = np.cumsum(lengths) - lengths
    return np.repeat(first - start_in_out, lengths) + np.arange(int(lengths.sum()))


# From this many legs on, NumPy's sum over the legs of a one-bar [legs, 1] path is pairwise.
_PAIRWISE_SUM_LEGS = 8


def _sum_legs(per_leg: np.ndarray) -> np.ndarray:
    """``per_leg.sum(axis=0)`` of a [legs, bars] array with fewer than
    :data:`_PAIRWISE_SUM_LEGS` legs in NumPy's order for it, ``((0 + a0) + a1) + ...``, on any
    layout."""
    total = np.zeros(per_leg.shape[1])
    for row in per_leg:
        total = total + row
    return total


# --------------------------------------------------------------------------- positions
@dataclass
class OpenPosition:
    """A unit structure times a number of contracts, opened at ``unit.entry_bar``."""

    trade_id: int
    unit: UnitStructure
    contracts: int
    entry_cash_flow_usd: float  # premium and commission, signed as cash moves
    entry_commission_usd: float
    entry_spread_cost_usd: float
    risk_usd: float
    exit_cash_flow_usd: float = 0.0
    exit_commission_usd: float = 0.0
    exit_spread_cost_usd: float = 0.0
    close_bar: int | None = None
    exit_reason: str = ""
    fallback_fills: int = 0  # leg fills at the fallback price (no valid quote)
    invalid_quote_fills: int = 0  # leg fills at a zero, crossed or one-sided quote

    @property
    def strategy(self) -> str:
        return self.unit.strategy

    @property
    def pnl_usd(self) -> float:
        return self.entry_cash_flow_usd + self.exit_cash_flow_usd

    def legs(self) -> tuple[Leg, ...]:
        return tuple(Leg(leg.option_type, leg.strike, leg.expiry,
                         leg.quantity_contracts * self.contracts) for leg in self.unit.legs)


@dataclass(frozen=True)
class PositionView:
    """Read-only view of one open position at the current bar."""

    trade_id: int
    strategy: str
    contracts: int
    legs: tuple[Leg, ...]
    dte_days: float  # calendar days to the earliest remaining expiry's close
    value_mid_usd: float
    pnl_if_closed_usd: float  # entry cash flows plus closing at bid/ask, before commission
    unrealized_pnl_usd: float  # entry cash flows plus the mid value
    max_profit_usd: float | None
    max_loss_usd: float | None
    risk_usd: float


@dataclass(frozen=True)
class OpeningTerms:
    """What opening ``contracts`` units of a structure at ``bar`` would trade: the sized legs
    (signed contracts) and the cash of one unit at this bar's quotes, before commission
    (positive: a credit). ``fits_margin``: the free margin holds it."""

    strategy: str
    bar: int
    legs: tuple[Leg, ...]
    contracts: int
    entry_cash_per_unit_usd: float
    fits_margin: bool


@dataclass(frozen=True)
class ClosingTerms:
    """What closing the open position ``trade_id`` at ``bar`` would trade: the legs still
    alive, with the opposite signed contracts, and the cash of one unit at this bar's quotes
    (bid/ask), before commission."""

    trade_id: int
    strategy: str
    bar: int
    legs: tuple[Leg, ...]
    liquidation_cash_per_unit_usd: float


@dataclass(frozen=True)
class PortfolioView:
    """Read-only view of the portfolio at the current bar (USD and position units)."""

    cash_usd: float
    equity_usd: float
    margin_used_usd: float
    delta_shares: float
    gamma_shares_per_usd: float
    theta_usd_per_day: float
    vega_usd_per_vol_point: float
    positions: tuple[PositionView, ...]


@dataclass(frozen=True)
class ExitRules:
    """Automatic exits (None = off)."""

    profit_target_fraction: float | None = None
    stop_loss_multiple: float | None = None
    close_at_dte_days: float | None = None

    @property
    def any(self) -> bool:
        return not (self.profit_target_fraction is None and self.stop_loss_multiple is None
                    and self.close_at_dte_days is None)


@dataclass
class StepResult:
    """What one portfolio step did, in USD."""

    commission_usd: float = 0.0
    spread_usd: float = 0.0
    fills: list = field(default_factory=list)  # Fill objects, only when recording fills


class PortfolioSimulator:
    """Cash, positions, margin, fills and settlement over a table of bars."""

    def __init__(self, tables: UnitTables, costs: CostConfig, exits: ExitRules,
                 starting_equity_usd: float, record_fills: bool = False,
                 assignment: AssignmentRules | None = None) -> None:
        self.tables = tables
        self.bars = tables.bars
        self.costs = costs
        self.exits = exits
        self._exits_any = exits.any
        self.assignment = assignment  # None: European legs, never assigned early
        self._next_session = next_sessions(self.bars.dates) if assignment is not None else None
        self.start_equity = float(starting_equity_usd)
        self.record_fills = record_fills
        self._close_ns = self.bars.close_ns.tolist()
        self._commission = costs.commission_per_contract_usd
        self.reset(0)

    # ----------------------------------------------------------------- state
    def reset(self, bar: int) -> None:
        self.bar = int(bar)
        self.cash = self.start_equity
        self.positions: list[OpenPosition] = []
        self.closed: list[OpenPosition] = []
        self.realized_pnl = 0.0
        self.total_commission = 0.0
        self.total_spread_cost = 0.0
        self.trade_counter = 0
        self._mark()

    def _k(self, pos: OpenPosition) -> int:
        return self.bar - pos.unit.entry_bar

    def _mark(self) -> None:
        equity = self.cash
        margin = delta = gamma = theta = vega = 0.0
        for pos in self.positions:
            path = pos.unit.path
            k = self.bar - pos.unit.entry_bar
            c = pos.contracts
            equity += c * path.mid_usd[k]
            margin += c * path.margin_usd[k]
            delta += c * path.delta[k]
            gamma += c * path.gamma[k]
            theta += c * path.theta[k]
            vega += c * path.vega[k]
        self.equity = equity
        self.margin_used = margin
        self.greeks = (delta, gamma, theta, vega)

    # ----------------------------------------------------------------- orders
    def contracts_for(self, unit: UnitStructure, sizing: str, risk_fraction: float,
                      fixed_contracts: int, max_contracts: int) -> int:
        if sizing == "fixed_contracts":
            contracts = fixed_contracts
        else:  # the risk budget, and never more than the free margin holds
            contracts = int(min(risk_fraction * self.equity // unit.risk_usd,
                                (self.equity - self.margin_used) // unit.margin_usd))
        if self.tables.max_volume_share is not None:
            for leg in unit.legs:
                volume, oi = self.tables.source.volume(unit.entry_bar, leg.option_type,
                                                       leg.strike, leg.expiry)
                cap = self.tables.max_volume_share * max(volume, oi) / abs(leg.quantity_contracts)
                contracts = min(contracts, int(cap))
        return min(contracts, max_contracts)

    def openable(self, units, sizing: str, risk_fraction: float, fixed_contracts: int,
                 max_contracts: int) -> list[bool]:
        """``can_open(unit, contracts_for(unit, ...))`` for each of ``units``, the same
        arithmetic without a call per unit."""
        if self.tables.max_volume_share is not None:
            return [self.can_open(u, self.contracts_for(u, sizing, risk_fraction,
                                                        fixed_contracts, max_contracts))
                    for u in units]
        equity = self.equity
        free = equity - self.margin_used
        budget = risk_fraction * equity
        out = []
        for unit in units:
            if sizing == "fixed_contracts":
                contracts = fixed_contracts
            else:
                contracts = int(min(budget // unit.risk_usd, free // unit.margin_usd))
            contracts = min(contracts, max_contracts)
            out.append(contracts >= 1 and unit.margin_usd * contracts <= free)
        return out

    def openable_by_budget(self, candidates, risk_fraction: float, max_contracts: int) -> list:
        """The labels of ``candidates``, ``(label, risk_usd, margin_usd)`` per unit (risk and
        margin per contract, positive floats), whose unit :meth:`openable` holds when sized by
        the risk budget with no volume cap: in plain float arithmetic equal to NumPy's on
        arrays of them (a loop over a few floats costs less than ufunc calls on them),
        ``contracts = minimum(minimum(budget // risk, free // margin), max_contracts)`` with
        ``minimum``'s NaN (either side NaN gives NaN), then ``contracts >= 1 and margin *
        contracts <= free``. Float ``//`` is the same floor of the same quotient in Python and
        NumPy."""
        equity = self.equity
        free = equity - self.margin_used
        budget = risk_fraction * equity
        out = []
        for label, risk, margin in candidates:
            contracts = budget // risk
            if not contracts >= 1:  # the minimum is below 1 (or NaN) whatever the margin
                continue
            by_margin = free // margin
            if by_margin < contracts or by_margin != by_margin:  # NumPy's minimum, NaN included
                contracts = by_margin
            if max_contracts < contracts:
                contracts = max_contracts
            if contracts >= 1 and margin * contracts <= free:
                out.append(label)
        return out

    def can_open(self, unit: UnitStructure, contracts: int) -> bool:
        return contracts >= 1 and unit.margin_usd * contracts <= self.equity - self.margin_used

    def opening_terms(self, unit: UnitStructure, contracts: int) -> OpeningTerms:
        """The legs and cash of opening ``contracts`` units of ``unit`` at the current bar."""
        legs = tuple(Leg(leg.option_type, leg.strike, leg.expiry,
                         leg.quantity_contracts * contracts) for leg in unit.legs)
        return OpeningTerms(unit.strategy, self.bar, legs, contracts,
                            float(unit.entry_cash_usd), self.can_open(unit, contracts))

    def position(self, trade_id: int) -> OpenPosition:
        """The open position ``trade_id`` (KeyError when none is open)."""
        for pos in self.positions:
            if pos.trade_id == trade_id:
                return pos
        raise KeyError(f"no open position with trade id {trade_id}")

    def closing_terms(self, trade_id: int) -> ClosingTerms:
        """The legs and cash of closing the open position ``trade_id`` at the current bar."""
        pos = self.position(trade_id)
        path = pos.unit.path
        k = self._k(pos)
        legs = tuple(Leg(leg.option_type, leg.strike, leg.expiry, -leg.quantity_contracts)
                     for j, leg in enumerate(pos.legs()) if path.leg_alive[j, k])
        return ClosingTerms(trade_id, pos.strategy, self.bar, legs, float(path.liq_usd[k]))

    def open(self, unit: UnitStructure, contracts: int, result: StepResult,
             mark: bool = True) -> OpenPosition:
        """Open ``contracts`` units at the current bar's quotes. ``mark=False`` leaves equity,
        margin and greeks as they were, for a caller that calls :meth:`advance` next (which
        marks every position at the next bar from scratch)."""
        self.tables.path(unit)
        commission = self._commission * unit.commission_contracts * contracts
        cash = unit.entry_cash_usd * contracts - commission
        spread = unit.entry_spread_usd * contracts
        self.cash += cash
        self.total_commission += commission
        self.total_spread_cost += spread
        result.commission_usd += commission
        result.spread_usd += spread
        self.trade_counter += 1
        pos = OpenPosition(self.trade_counter, unit, contracts, cash, commission, spread,
                           unit.risk_usd * contracts)
        self.positions.append(pos)
        if self.record_fills:
            result.fills += self._fills(pos, 0, "open")
        if mark:
            self._mark()
        return pos

    def close(self, pos: OpenPosition, reason: str, result: StepResult) -> None:
        """Close every remaining leg of ``pos`` at the current bar's bid/ask."""
        path = pos.unit.path
        k = self._k(pos)
        commission = self._commission * path.alive_contracts[k] * pos.contracts
        cash = path.liq_usd[k] * pos.contracts - commission
        spread = (path.mid_usd[k] - path.liq_usd[k]) * pos.contracts
        fallback, invalid = path.quote_flags_at(k)
        pos.fallback_fills += fallback
        pos.invalid_quote_fills += invalid
        if self.record_fills:
            result.fills += self._fills(pos, k, "close")
        self._book_exit(pos, cash, commission, spread, result)
        self._end(pos, reason)
        self._mark()

    def _book_exit(self, pos, cash, commission, spread, result) -> None:
        self.cash += cash
        self.total_commission += commission
        self.total_spread_cost += spread
        result.commission_usd += commission
        result.spread_usd += spread
        pos.exit_cash_flow_usd += cash
        pos.exit_commission_usd += commission
        pos.exit_spread_cost_usd += spread

    def _end(self, pos: OpenPosition, reason: str) -> None:
        pos.close_bar = self.bar
        pos.exit_reason = reason
        self.realized_pnl += pos.pnl_usd
        self.positions.remove(pos)
        self.closed.append(pos)

    def _fills(self, pos: OpenPosition, k: int, kind: str) -> list[Fill]:
        """Fill objects of an open (k = 0), close or settlement, for audits."""
        path = pos.unit.path
        date = self.bars.dates[self.bar]
        out = []
        for j, leg in enumerate(pos.legs()):
            if kind == "open":
                qty = leg.quantity_contracts
                price = path.leg_ask[j, 0] if qty > 0 else path.leg_bid[j, 0]
                mid = path.leg_mid[j, 0]
                commission = self._commission * abs(qty)
            elif kind == "close":
                if not path.leg_alive[j, k]:
                    continue
                qty = -leg.quantity_contracts
                price = path.leg_ask[j, k] if qty > 0 else path.leg_bid[j, k]
                mid = path.leg_mid[j, k]
                commission = self._commission * abs(qty)
            else:
                if path.leg_settle_bar[j] != k:
                    continue
                qty = -leg.quantity_contracts
                price = mid = path.leg_mid[j, k]
                commission = 0.0
            source = "fallback" if kind == "close" and path.leg_fallback[j, k] \
                else pos.unit.quote_source
            out.append(Fill(leg, date, int(qty), float(price), float(mid), commission, kind,
                            source))
        return out

    # ----------------------------------------------------------------- time
    def advance(self, result: StepResult) -> None:
        """Move to the next bar: settle expiring legs, mark, then the automatic exits."""
        self.bar = bar = self.bar + 1
        positions = self.positions
        if not positions:  # nothing moves: cash, equity, margin and greeks stay as marked
            return
        for pos in positions:
            unit = pos.unit
            if unit.path.settles[bar - unit.entry_bar]:
                self._settle(result)
                break
        self._mark()
        if self.assignment is not None and self.positions:
            self._assignments(result)
        if self._exits_any and self.positions:
            self._auto_exits(result)

    def _settle(self, result: StepResult) -> None:
        """Settle the legs of every open position that expire at the current bar."""
        for pos in list(self.positions):
            path = pos.unit.path
            k = self._k(pos)
            if not path.settles[k]:
                continue
            cash = path.settle_usd[k] * pos.contracts
            if self.record_fills:
                result.fills += self._fills(pos, k, "settle")
            self._book_exit(pos, cash, 0.0, 0.0, result)
            if path.alive_contracts[k] == 0:
                self._end(pos, "expiry")
            elif pos.unit.close_at_first_expiry:
                self.close(pos, "expiry", result)

    def _assignments(self, result: StepResult) -> None:
        """American exercise (:mod:`envs.assignment`): where a short leg is assigned at this
        bar, the whole structure closes: the assigned leg in cash at intrinsic (no commission;
        the shares it delivers are taken as sold at the close), the other legs still alive at
        the bar's bid/ask with commission, as :meth:`close` does."""
        bars = self.bars
        b = self.bar
        now_ns = self._close_ns[b]
        spot = float(bars.spot[b])
        next_date = self._next_session[b]
        for pos in list(self.positions):
            path = pos.unit.path
            k = self._k(pos)
            legs = pos.unit.legs
            quantity = np.array([leg.quantity_contracts for leg in legs], dtype=float)
            t_years = np.maximum(np.array(pos.unit.expiry_close_ns, dtype=float) - now_ns,
                                 0.0) / NS_PER_DAY / DAYS_PER_YEAR
            assigned, reason = self.assignment.assigned_legs(
                legs, quantity, path.leg_alive[:, k], path.leg_mid[:, k], t_years, spot,
                float(bars.rate[b]), float(bars.atm_iv[b]), float(bars.dividend_yield),
                bars.dates[b], next_date)
            if reason is not None:
                self._assign(pos, assigned, reason, result)

    def _assign(self, pos: OpenPosition, assigned: np.ndarray, reason: str,
                result: StepResult) -> None:
        path = pos.unit.path
        k = self._k(pos)
        c = pos.contracts
        alive = path.leg_alive[:, k]
        others = alive & ~assigned
        quantity = np.array([leg.quantity_contracts for leg in pos.unit.legs], dtype=float)
        intrinsic = np.array([float(leg.intrinsic_per_share(self.bars.spot[self.bar]))
                              for leg in pos.unit.legs])
        liq = np.where(quantity > 0, path.leg_bid[:, k], path.leg_ask[:, k])
        per_share = np.where(assigned, intrinsic, np.where(others, liq, 0.0))
        cash_unit = float((per_share * quantity).sum()) * CONTRACT_MULTIPLIER
        commission = self._commission * float(np.abs(quantity[others]).sum()) * c
        spread = float(((path.leg_mid[:, k] - liq) * quantity)[others].sum()) \
            * CONTRACT_MULTIPLIER * c
        pos.fallback_fills += int(path.leg_fallback[others, k].sum())
        pos.invalid_quote_fills += int(path.leg_invalid_price[others, k].sum())
        if self.record_fills:
            date = self.bars.dates[self.bar]
            for j, leg in enumerate(pos.legs()):
                if not (assigned[j] or others[j]):
                    continue
                qty = -leg.quantity_contracts
                source = "fallback" if others[j] and path.leg_fallback[j, k] \
                    else pos.unit.quote_source
                result.fills.append(Fill(
                    leg, date, int(qty), float(per_share[j]), float(path.leg_mid[j, k]),
                    self._commission * abs(qty) if others[j] else 0.0,
                    "assign" if assigned[j] else "close", source))
        self._book_exit(pos, cash_unit * c - commission, commission, spread, result)
        self._end(pos, reason)
        self._mark()

    def _auto_exits(self, result: StepResult) -> None:
        rules = self.exits
        now_ns = self._close_ns[self.bar]
        for pos in list(self.positions):
            path = pos.unit.path
            k = self._k(pos)
            pnl_if_closed = pos.entry_cash_flow_usd + pos.exit_cash_flow_usd \
                + path.liq_usd[k] * pos.contracts
            credit = max(pos.entry_cash_flow_usd, 0.0)
            max_profit = pos.unit.max_profit_usd
            reason = None
            if (rules.profit_target_fraction is not None and max_profit
                    and pnl_if_closed >= rules.profit_target_fraction * max_profit * pos.contracts):
                reason = "profit_target"
            elif (rules.stop_loss_multiple is not None and credit > 0
                  and -pnl_if_closed >= rules.stop_loss_multiple * credit):
                reason = "stop_loss"
            elif (rules.close_at_dte_days is not None
                  and (path.first_expiry_ns[k] - now_ns) / NS_PER_DAY <= rules.close_at_dte_days):
                reason = "dte_exit"
            if reason is not None:
                self.close(pos, reason, result)

    # ----------------------------------------------------------------- views
    def position_view(self, pos: OpenPosition) -> PositionView:
        path = pos.unit.path
        k = self._k(pos)
        c = pos.contracts
        flows = pos.entry_cash_flow_usd + pos.exit_cash_flow_usd
        max_profit = pos.unit.max_profit_usd
        max_loss = pos.unit.max_loss_usd
        return PositionView(
            pos.trade_id, pos.strategy, c, pos.legs(),
            max(0.0, (path.first_expiry_ns[k] - self._close_ns[self.bar]) / NS_PER_DAY),
            path.mid_usd[k] * c, flows + path.liq_usd[k] * c, flows + path.mid_usd[k] * c,
            None if max_profit is None else max_profit * c,
            None if max_loss is None else max_loss * c, pos.risk_usd)

    def view(self) -> PortfolioView:
        return PortfolioView(self.cash, self.equity, self.margin_used, *self.greeks,
                             tuple(self.position_view(p) for p in self.positions))

    def unrealized_pnl(self) -> float:
        """Mid value of open legs plus the cash flows that opened them (costs included)."""
        return sum(p.entry_cash_flow_usd + p.exit_cash_flow_usd
                   + p.unit.path.mid_usd[self._k(p)] * p.contracts for p in self.positions)

    def position_objects(self) -> tuple[Position, ...]:
        """Open positions as :class:`options.positions.Position` objects (remaining legs)."""
        out = []
        for pos in self.positions:
            path = pos.unit.path
            k = self._k(pos)
            legs = [leg for j, leg in enumerate(pos.legs()) if path.leg_alive[j, k]]
            date = self.bars.dates[pos.unit.entry_bar]
            fills = tuple(Fill(leg, date, leg.quantity_contracts,
                               float(pos.unit.leg_ask[j] if leg.quantity_contracts > 0
                                     else pos.unit.leg_bid[j]), float(pos.unit.leg_mid[j]),
                               self._commission * abs(leg.quantity_contracts), "open")
                          for j, leg in enumerate(pos.legs()) if path.leg_alive[j, k])
            strategy = pos.strategy if len(legs) == len(pos.unit.legs) else "custom"
            out.append(Position(strategy, tuple(legs), date, fills))
        return tuple(out)
