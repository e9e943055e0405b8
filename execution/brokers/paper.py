"""The paper broker: orders fill through the environment's portfolio simulator.

It wraps an eval-mode :class:`envs.SpyOptionsEnv` (``info_level="full"``): an order is accepted
only if it is exactly what the env would trade at this bar (the structure's legs at the env's
size, or the remaining legs of an open position), and it fills when the bar ends
(:meth:`PaperBroker.end_bar` steps the env) at the quote source's bid/ask with the env's
commission. Nothing about fills is computed here: prices, costs, settlement and marks are the
simulator's, so a replay through this broker reproduces ``evaluate.py``'s ledgers.

Its order book is durable (a small SQLite file next to the journal): an order it accepted
survives a crash of the executor, and ``submit`` of a client order id it already holds returns
that order instead of placing another. Its positions are not stored: they are a deterministic
function of the accepted orders, rebuilt by replaying the segment from its first bar (the
executor does that on every start; see ``execution.executor``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from envs.actions import ACTION_HOLD, CloseAll, CloseSlot, Open, encode
from envs.step_info import StepInfo
from execution.brokers.base import AccountMark, BrokerError, BrokerFill, BrokerOrder, BrokerPosition
from execution.orders import MultiLegOrder, OrderLeg, order_legs
from options.positions import position_to_per_share

__all__ = ["BarOutcome", "OpenTerms", "PaperBroker"]

_PRICE_TOLERANCE_PER_SHARE = 1e-9
_BOOK_DDL = """
CREATE TABLE IF NOT EXISTS book (
  client_order_id TEXT PRIMARY KEY, broker_order_id TEXT NOT NULL, bar_index INTEGER NOT NULL,
  intent TEXT NOT NULL, strategy TEXT NOT NULL, legs TEXT NOT NULL,
  net_limit_price_per_share REAL, status TEXT NOT NULL, detail TEXT);
"""


@dataclass(frozen=True)
class OpenTerms:
    """What opening ``strategy`` now would trade: legs at the env's size and the net price."""

    strategy: str
    legs: tuple  # OrderLeg
    contracts: int
    net_price_per_share: float  # per unit of the structure, + debit / - credit


@dataclass(frozen=True)
class BarOutcome:
    """The env's step at the end of a bar, and the fills it made."""

    observation: object
    terminated: bool
    truncated: bool
    info: dict
    fills: tuple[BrokerFill, ...]


class PaperBroker:
    """Paper trading through an eval-mode env's portfolio simulator."""

    name = "paper"

    def __init__(self, env, book_path: str | Path, occ_root: str) -> None:
        if env.mode != "eval" or env.info_level != "full":
            raise ValueError("the paper broker needs an eval-mode env with info_level='full'")
        self.env = env
        self.root = occ_root
        self.book = sqlite3.connect(book_path, isolation_level=None)
        self.book.execute("PRAGMA journal_mode=WAL")
        self.book.execute("PRAGMA synchronous=FULL")
        self.book.executescript(_BOOK_DDL)
        self._pending: list[MultiLegOrder] = []
        self._fills: list[BrokerFill] = []

    def close(self) -> None:
        """Close the order book's connection (a live loop makes one broker per cycle)."""
        self.book.close()

    # ----------------------------------------------------------------- market clock
    @property
    def bar(self) -> int:
        return self.env.bar

    def reset(self, seed: int):
        self._pending = []
        self._fills = []
        return self.env.reset(seed=seed)

    # ----------------------------------------------------------------- quotes of orders
    def open_terms(self, strategy: str) -> OpenTerms | None:
        """The order the env's ``open_<strategy>`` action would place now (None: none)."""
        terms = self.env.opening_terms(strategy)
        if terms is None:
            return None
        return OpenTerms(strategy, order_legs(terms.legs, self.root), terms.contracts,
                         position_to_per_share(-terms.entry_cash_per_unit_usd))

    def close_terms(self, trade_id: int) -> tuple[tuple, float]:
        """(legs, net price per share per unit) that close the position ``trade_id`` now."""
        try:
            terms = self.env.closing_terms(trade_id)
        except KeyError:
            raise BrokerError(f"paper broker: no open position with trade id {trade_id}"
                              ) from None
        return (order_legs(terms.legs, self.root),
                position_to_per_share(-terms.liquidation_cash_per_unit_usd))

    # ----------------------------------------------------------------- orders
    def _row(self, client_order_id: str):
        return self.book.execute("SELECT broker_order_id, status, detail FROM book "
                                 "WHERE client_order_id = ?", (client_order_id,)).fetchone()

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        row = self._row(client_order_id)
        if row is None:
            return None
        return BrokerOrder(client_order_id, row[0], row[1], detail=row[2])

    def known_order_ids(self) -> set[str]:
        return {r[0] for r in self.book.execute("SELECT client_order_id FROM book")}

    def submit(self, order: MultiLegOrder) -> BrokerOrder:
        """Accept ``order`` for this bar (it fills at :meth:`end_bar`); idempotent on its id."""
        if order.bar_index != self.bar:
            raise BrokerError(f"paper broker is at bar {self.bar}; order "
                              f"{order.client_order_id} is for bar {order.bar_index}")
        existing = self.get_order(order.client_order_id)
        if existing is not None:
            if existing.status in ("submitted", "filled"):
                self._pending.append(order)  # rebuilt in this process; the book holds it once
            return existing
        problem = self._check(order)
        status = "rejected" if problem else "submitted"
        broker_id = f"paper-{order.client_order_id[-12:]}"
        self.book.execute("INSERT INTO book VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (order.client_order_id, broker_id, order.bar_index, order.intent,
                           order.strategy, order.legs_json(), order.net_limit_price_per_share,
                           status, problem))
        if not problem:
            self._pending.append(order)
        return BrokerOrder(order.client_order_id, broker_id, status, detail=problem)

    def _check(self, order: MultiLegOrder) -> str | None:
        """Why the simulator cannot fill ``order`` as given (None: it can)."""
        if order.intent == "open":
            terms = self.open_terms(order.strategy)
            if terms is None or terms.legs != order.legs:
                return f"{order.strategy}: legs differ from the structure the simulator trades now"
            if not self.env.opening_terms(order.strategy).fits_margin:
                return f"{order.strategy}: margin exceeds the free margin"
            price = terms.net_price_per_share
        else:
            matches = [p.trade_id for p in self.env.positions
                       if self.close_terms(p.trade_id)[0] == order.legs]
            if not matches:
                return "close: no open position has these legs"
            price = self.close_terms(matches[0])[1]
        if price > order.net_limit_price_per_share + _PRICE_TOLERANCE_PER_SHARE:
            return (f"net price {price:.4f} per share is beyond the limit "
                    f"{order.net_limit_price_per_share:.4f}")
        return None

    def cancel(self, client_order_id: str) -> BrokerOrder:
        existing = self.get_order(client_order_id)
        if existing is None:
            raise BrokerError(f"paper broker: no order {client_order_id}")
        if existing.is_open:
            self.book.execute("UPDATE book SET status = 'canceled' WHERE client_order_id = ?",
                              (client_order_id,))
            self._pending = [o for o in self._pending if o.client_order_id != client_order_id]
        return self.get_order(client_order_id)

    def refuse(self, client_order_id: str, status: str, detail: str) -> None:
        """Record that another broker refused (or did not fill) an order this book accepted:
        it will not fill here (a mirrored live broker, ``execution.brokers.mirrored``)."""
        self.book.execute("UPDATE book SET status = ?, detail = ? WHERE client_order_id = ?",
                          (status, detail, client_order_id))
        self._pending = [o for o in self._pending if o.client_order_id != client_order_id]

    def line_differences(self) -> list[str]:
        return []  # the simulator is the broker

    def open_orders(self) -> list[BrokerOrder]:
        return [BrokerOrder(r[0], r[1], r[2]) for r in self.book.execute(
            "SELECT client_order_id, broker_order_id, status FROM book "
            "WHERE status IN ('submitted', 'partially_filled') ORDER BY client_order_id")]

    # ----------------------------------------------------------------- the bar's end
    def _env_action(self, hint: int) -> int:
        """The env action whose effect is the pending orders (``hint`` when it has it)."""
        env = self.env
        opens = [o for o in self._pending if o.intent == "open"]
        closes = [o for o in self._pending if o.intent == "close"]
        if opens and closes or len(opens) > 1:
            raise BrokerError("paper broker fills one open, or closes only, per bar")
        if opens:
            action = encode(Open(opens[0].strategy))
            if hint != action:
                raise BrokerError(f"paper broker: order opens {opens[0].strategy}, the "
                                  f"executor's action is {env.action_names[hint]}")
            return action
        if not closes:
            if hint != ACTION_HOLD:
                raise BrokerError(f"paper broker: no order to fill for the executor's action "
                                  f"{env.action_names[hint]}")
            return ACTION_HOLD
        positions = list(env.positions)
        closing = {p.trade_id for p in positions for o in closes
                   if self.close_terms(p.trade_id)[0] == o.legs}
        wanted = env.decode(hint)
        if isinstance(wanted, CloseAll) and closing == {p.trade_id for p in positions}:
            return hint
        if (isinstance(wanted, CloseSlot) and wanted.slot < len(positions)
                and closing == {positions[wanted.slot].trade_id}):
            return hint
        raise BrokerError(f"paper broker: close orders for trades {sorted(closing)} do not "
                          f"match the executor's action {env.action_names[hint]}")

    def end_bar(self, hint: int, record: bool = True) -> BarOutcome:
        """Fill the pending orders at this bar's quotes and move the market to the next bar.
        (``record``: whether the fills will be journalled; the simulator's cost nothing.)"""
        env = self.env
        t = self.bar
        action = self._env_action(hint)
        obs, _, terminated, truncated, info = env.step(action)
        fills = self._attribute(StepInfo.of(info).fills, t)
        for order in self._pending:
            self.book.execute("UPDATE book SET status = 'filled' WHERE client_order_id = ?",
                              (order.client_order_id,))
        self._pending = []
        self._fills += fills
        return BarOutcome(obs, terminated, truncated, info, tuple(fills))

    def _attribute(self, raw_fills, t: int) -> list[BrokerFill]:
        """Broker fills of the env's Fill objects: those at bar t belong to the pending orders
        (by symbol and size), those at t+1 are settlements and automatic exits."""
        dates = self.env.panel.dates
        out = []
        unused = [(o, {leg.symbol: leg.quantity_contracts for leg in o.legs})
                  for o in self._pending]
        automatic = 0
        for fill in raw_fills:
            symbol = order_legs((fill.leg,), self.root)[0].symbol
            if fill.date == dates[t] and fill.kind in ("open", "close"):
                owner = next((o for o, legs in unused
                              if legs.get(symbol) == fill.quantity_contracts), None)
                if owner is None:
                    raise BrokerError(f"paper broker: fill of {symbol} at bar {t} matches no "
                                      f"order")
                next(legs for o, legs in unused if o is owner).pop(symbol)
                fill_id, coid, bar = f"{owner.client_order_id}:{symbol}", \
                    owner.client_order_id, t
            else:
                bar = t + 1
                fill_id, coid = f"{fill.kind}:{bar}:{automatic}", None
                automatic += 1
            out.append(BrokerFill(fill_id, coid, bar, pd.Timestamp(dates[bar]), symbol,
                                  int(fill.quantity_contracts), float(fill.premium_per_share),
                                  float(fill.mid_per_share), float(fill.commission_usd),
                                  fill.kind, fill.quote_source or None))
        return out

    # ----------------------------------------------------------------- account
    def fills(self, client_order_id: str | None = None) -> list[BrokerFill]:
        """Fills made in this process (the replay rebuilds them from the first bar)."""
        return [f for f in self._fills
                if client_order_id is None or f.client_order_id == client_order_id]

    def positions(self) -> list[BrokerPosition]:
        env = self.env
        out = []
        for pos in env.positions:
            view = env.position_view(pos.trade_id)
            legs, _ = self.close_terms(pos.trade_id)
            held = tuple(OrderLeg(leg.symbol, leg.option_type, leg.strike, leg.expiry,
                                   -leg.quantity_contracts) for leg in legs)
            out.append(BrokerPosition(
                pos.trade_id, pos.strategy, pos.contracts, held, view.dte_days,
                view.unrealized_pnl_usd, view.pnl_if_closed_usd,
                max(pos.entry_cash_flow_usd + pos.entry_commission_usd, 0.0),
                view.max_profit_usd, view.max_loss_usd))
        return out

    def account(self) -> AccountMark:
        view = self.env.portfolio_view()
        return AccountMark(view.equity_usd, view.cash_usd, view.margin_used_usd,
                           len(view.positions), view.delta_shares, view.gamma_shares_per_usd,
                           view.theta_usd_per_day, view.vega_usd_per_vol_point,
                           float(self.env.panel.spot[self.bar]))
