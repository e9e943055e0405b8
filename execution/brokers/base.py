"""The interface every broker implements, and the records it returns.

A broker takes :class:`execution.orders.MultiLegOrder` objects (OCC symbols, a net limit price per
share, a client order id) and answers with :class:`BrokerOrder` records; it reports fills,
positions and the account. ``submit`` is idempotent on the client order id: an id the broker
already holds is answered with the existing order, never placed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from execution.orders import MultiLegOrder, OrderLeg

__all__ = ["ORDER_STATUSES", "AccountMark", "Broker", "BrokerError", "BrokerFill", "BrokerOrder",
           "BrokerPosition"]

ORDER_STATUSES = ("submitted", "filled", "partially_filled", "rejected", "canceled")


class BrokerError(RuntimeError):
    """The broker could not be reached or answered with an error after the retries."""


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one order."""

    client_order_id: str
    broker_order_id: str | None
    status: str  # one of ORDER_STATUSES
    filled_units: int = 0
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ORDER_STATUSES:
            raise ValueError(f"order status must be one of {ORDER_STATUSES}, got {self.status!r}")

    @property
    def is_open(self) -> bool:
        return self.status in ("submitted", "partially_filled")


@dataclass(frozen=True)
class BrokerFill:
    """One execution of one leg (or a settlement at expiry: ``client_order_id`` None)."""

    fill_id: str
    client_order_id: str | None
    bar_index: int
    bar_time: pd.Timestamp
    symbol: str
    quantity_contracts: int  # + bought, - sold
    price_per_share: float
    mid_per_share: float | None
    commission_usd: float
    kind: str  # open | close | settle
    # where the price came from: "model" or "chain" (a valid quote of the simulator's source),
    # "fallback" (no valid quote: the source's documented fallback price), "broker" (the
    # broker's own execution report), or None where not known
    quote_source: str | None = None


@dataclass(frozen=True)
class BrokerPosition:
    """One open structure (paper) or one option line (a broker that knows no structures:
    ``trade_id`` numbers the lines and ``strategy`` is ``single``)."""

    trade_id: int
    strategy: str
    contracts: int
    legs: tuple[OrderLeg, ...]
    dte_days: float | None
    unrealized_pnl_usd: float | None
    pnl_if_closed_usd: float | None = None  # entry flows plus closing at bid/ask
    entry_credit_usd: float = 0.0  # premium received at entry (0 for a debit)
    max_profit_usd: float | None = None
    max_loss_usd: float | None = None


@dataclass(frozen=True)
class AccountMark:
    """The account marked at a bar: equity, cash, margin and the positions' greeks."""

    equity_usd: float
    cash_usd: float
    margin_used_usd: float
    open_positions: int
    delta_shares: float | None = None
    gamma_shares_per_usd: float | None = None
    theta_usd_per_day: float | None = None
    vega_usd_per_vol_point: float | None = None
    spot: float | None = None


class Broker(Protocol):
    """Submit multi-leg orders, cancel them, and read orders, positions, account and fills."""

    name: str

    def submit(self, order: MultiLegOrder) -> BrokerOrder: ...

    def cancel(self, client_order_id: str) -> BrokerOrder: ...

    def get_order(self, client_order_id: str) -> BrokerOrder | None: ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def positions(self) -> list[BrokerPosition]: ...

    def account(self) -> AccountMark: ...

    def fills(self, client_order_id: str | None = None) -> list[BrokerFill]: ...
