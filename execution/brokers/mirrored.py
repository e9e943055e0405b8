"""A real broker's orders, mirrored by the paper simulator the policy observes (live trading).

The policy's observation, the risk manager's exits and the orders' legs and limit prices come
from the environment's simulator (model quotes, the environment's sizing). Each order the
simulator accepts is sent to the real broker (Alpaca) with the same client order id. What the
real broker does decides what the simulator does:

* an order the real broker rejects is a rejection (the bar becomes a hold);
* at the end of the order's bar (the next cycle) an order the broker has not filled is cancelled
  there; filled, the simulator fills it at its own quotes; otherwise (cancelled, expired, or only
  partly filled: the remainder cancelled, the filled part left at the broker and reported by the
  reconciliation) the simulator does not trade it.

The journal gets the real broker's fills and account; ``trades.csv`` and ``equity.csv`` stay the
simulator's (model prices), comparable line by line with ``evaluate.py``'s. Every bar the
simulator's option lines are compared with the broker's positions and each difference is
reported (:meth:`MirroredBroker.line_differences`).
"""

from __future__ import annotations

import logging
from collections import Counter

from execution.brokers.base import AccountMark, BrokerOrder
from execution.brokers.paper import BarOutcome, PaperBroker
from execution.orders import MultiLegOrder, parse_occ_symbol

__all__ = ["MirroredBroker"]

log = logging.getLogger("trade")
_FINAL_REFUSALS = ("rejected", "canceled")


def _line_key(symbol: str) -> tuple:
    root, expiry, option_type, strike = parse_occ_symbol(symbol)
    return root, expiry.date().isoformat(), option_type, strike


class MirroredBroker:
    """Orders to ``real``; the policy's state in ``paper`` (see the module docstring)."""

    def __init__(self, paper: PaperBroker, real) -> None:
        self.paper = paper
        self.real = real
        self.name = real.name
        self._filled_now: list[MultiLegOrder] = []

    # the simulator's side, as the executor reads it
    @property
    def env(self):
        return self.paper.env

    @property
    def bar(self) -> int:
        return self.paper.bar

    def reset(self, seed: int):
        self._filled_now = []
        return self.paper.reset(seed)

    def open_terms(self, strategy: str):
        return self.paper.open_terms(strategy)

    def close_terms(self, trade_id: int):
        return self.paper.close_terms(trade_id)

    def positions(self):
        return self.paper.positions()

    def known_order_ids(self) -> set[str]:
        return self.paper.known_order_ids()

    # orders
    def submit(self, order: MultiLegOrder) -> BrokerOrder:
        held = self.paper.get_order(order.client_order_id)
        if held is not None and held.status in _FINAL_REFUSALS:
            return held  # refused before: never sent again
        newest = order.bar_index == len(self.env.panel) - 1
        mine = self.paper.submit(order)
        if mine.status == "rejected":
            return mine  # the simulator cannot trade it: never sent
        if mine.status == "filled":  # the book marks an order filled only once the broker had
            self._filled_now.append(order)  # filled it: final, no need to ask again
            return mine
        real = self.real.submit(order)
        if not newest and real.is_open:  # its bar has ended: the rest is cancelled
            real = self.real.cancel(order.client_order_id)
        if not newest and real.filled_units:
            self._filled_now.append(order)  # its fills (all, or a part) are journalled
        if real.status == "filled":
            return real
        if real.status in _FINAL_REFUSALS or not newest:
            if real.filled_units:
                log.warning("order %s: %d unit(s) filled at %s before the rest was cancelled; "
                            "the simulator does not hold them (see the reconciliation)",
                            order.client_order_id, real.filled_units, self.name)
            status = "rejected" if real.status == "rejected" else "canceled"
            detail = f"{self.name}: {real.detail or real.status}"
            self.paper.refuse(order.client_order_id, status, detail)
            return BrokerOrder(order.client_order_id, real.broker_order_id, status,
                               real.filled_units, detail)
        return real  # the newest bar: working at the broker until the bar ends

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        mine = self.paper.get_order(client_order_id)
        if mine is not None and mine.status in _FINAL_REFUSALS:
            return mine
        return self.real.get_order(client_order_id) or mine

    def cancel(self, client_order_id: str) -> BrokerOrder:
        real = self.real.cancel(client_order_id)
        self.paper.cancel(client_order_id)
        return real

    def open_orders(self) -> list[BrokerOrder]:
        """The real broker's open orders that this executor sent."""
        ours = self.paper.known_order_ids()
        return [o for o in self.real.open_orders() if o.client_order_id in ours]

    # the bar's end
    def end_bar(self, hint: int, record: bool = True) -> BarOutcome:
        """The simulator moves on; the fills journalled are the real broker's, asked for only
        when the executor will journal them (``record``)."""
        t = self.bar
        outcome = self.paper.end_bar(hint)
        automatic = sorted({f.symbol for f in outcome.fills
                            if f.client_order_id is None and f.kind == "close"})
        if automatic:  # a calendar's back leg sold at its front leg's expiry
            log.warning("the simulator closed %s at bar %d without an order to %s; close them "
                        "there (the reconciliation lists them until then)", ", ".join(automatic),
                        t + 1, self.name)
        fills = []
        for order in self._filled_now if record else ():
            fills += self.real.fills(order.client_order_id, bar_index=t, kind=order.intent)
        self._filled_now = []
        return BarOutcome(outcome.observation, outcome.terminated, outcome.truncated,
                          outcome.info, tuple(fills))

    def fills(self, client_order_id: str | None = None):
        return self.real.fills(client_order_id)

    def account(self) -> AccountMark:
        """The real account's equity, cash and margin; the simulator's greeks and spot."""
        real, mine = self.real.account(), self.paper.account()
        return AccountMark(real.equity_usd, real.cash_usd, real.margin_used_usd,
                           mine.open_positions, mine.delta_shares, mine.gamma_shares_per_usd,
                           mine.theta_usd_per_day, mine.vega_usd_per_vol_point, mine.spot)

    def line_differences(self) -> list[str]:
        """Option lines whose quantity differs between the simulator and the real broker."""
        mine = Counter()
        for position in self.paper.positions():
            for leg in position.legs:
                mine[_line_key(leg.symbol)] += leg.quantity_contracts
        theirs = Counter()
        for position in self.real.positions():
            for leg in position.legs:
                theirs[_line_key(leg.symbol)] += leg.quantity_contracts
        out = []
        for key in sorted(set(mine) | set(theirs)):
            if mine[key] != theirs[key]:
                root, expiry, option_type, strike = key
                out.append(f"{root} {expiry} {option_type} {strike:g}: simulator holds "
                           f"{mine[key]:+d}, {self.name} holds {theirs[key]:+d}")
        return out
