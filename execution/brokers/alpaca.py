"""Alpaca (paper endpoint by default) through ``alpaca-py`` (the optional extra ``alpaca``).

Multi-leg orders use the ``mleg`` order class: ``qty`` units of the structure, each leg with its
``ratio_qty``, side and position intent, one net ``limit_price`` per unit (+ debit, - credit).
Keys come only from the environment (``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``); they are
sent in request headers by alpaca-py and never logged or written. The live (real money)
endpoint needs ``live_trading=True`` (``trade.py --live-trading``).

Faults: a time-out, a connection error, a 429 or a 5xx answer is retried with exponential
back-off (``retries`` times); a submission that timed out is looked up by its client order id
before it is sent again, so it is never placed twice. A 4xx answer to a submission is a
rejection: returned as a ``rejected`` order with the broker's message.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    OrderType,
    PositionIntent,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.requests import (
    GetOptionContractsRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    OptionLegRequest,
)
from requests.adapters import HTTPAdapter

from common.errors import UserInputError
from execution.brokers.base import AccountMark, BrokerError, BrokerFill, BrokerOrder, BrokerPosition
from execution.orders import MultiLegOrder, OrderLeg, parse_occ_symbol

__all__ = ["BASE_URL_ENV", "KEY_ID_ENV", "LIVE_URL", "PAPER_URL", "SECRET_KEY_ENV", "AlpacaBroker", "MissingKeysError",
           "compact_symbol"]

log = logging.getLogger(__name__)
KEY_ID_ENV = "APCA_API_KEY_ID"
SECRET_KEY_ENV = "APCA_API_SECRET_KEY"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
BASE_URL_ENV = "APCA_API_BASE_URL"  # alpaca's documented variable; the paper endpoint if unset
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF_S = 0.5
HTTP_TOO_MANY_REQUESTS = 429
HTTP_NOT_FOUND = 404
HTTP_SERVER_ERROR = 500
_STATUS = {  # Alpaca's order statuses -> ours
    "new": "submitted", "accepted": "submitted", "pending_new": "submitted",
    "accepted_for_bidding": "submitted", "held": "submitted", "calculated": "submitted",
    "pending_replace": "submitted", "pending_cancel": "submitted",
    "partially_filled": "partially_filled", "filled": "filled",
    "canceled": "canceled", "expired": "canceled", "done_for_day": "canceled",
    "replaced": "canceled", "rejected": "rejected", "suspended": "rejected",
    "stopped": "rejected",
}


class MissingKeysError(UserInputError):
    """The Alpaca keys are not in the environment."""


def compact_symbol(symbol: str) -> str:
    """Alpaca writes OCC symbols without the root's padding (``SPY160617P00200000``)."""
    root = parse_occ_symbol(symbol)[0]
    return f"{root}{symbol[-15:]}"


class _TimeoutAdapter(HTTPAdapter):
    """Every request through the session gets a time-out (alpaca-py sets none)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def send(self, request, **kwargs):
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout_s
        return super().send(request, **kwargs)


def _transient(exc: Exception) -> bool:
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return True
    if isinstance(exc, APIError):
        code = exc.status_code
        return code is not None and (code == HTTP_TOO_MANY_REQUESTS or code >= HTTP_SERVER_ERROR)
    return False


class AlpacaBroker:
    """The :class:`execution.brokers.base.Broker` interface over Alpaca's trading API."""

    name = "alpaca"

    def __init__(self, client: TradingClient, retries: int = DEFAULT_RETRIES,
                 backoff_s: float = DEFAULT_BACKOFF_S,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.retried = 0  # transient faults met so far (for logs and tests)

    @classmethod
    def from_environment(cls, live_trading: bool = False, base_url: str | None = None,
                         timeout_s: float = DEFAULT_TIMEOUT_S,
                         environ: Mapping[str, str] = os.environ, **kwargs) -> AlpacaBroker:
        """A broker with keys from ``environ``; the paper endpoint unless ``live_trading``."""
        missing = [k for k in (KEY_ID_ENV, SECRET_KEY_ENV) if not environ.get(k)]
        if missing:
            raise MissingKeysError(f"--broker alpaca: set {' and '.join(missing)} in the "
                                   f"environment (keys are read from nowhere else)")
        base_url = base_url or environ.get(BASE_URL_ENV) or None
        if base_url and base_url.rstrip("/") == LIVE_URL and not live_trading:
            raise MissingKeysError(f"${BASE_URL_ENV}={base_url} is the live (real money) "
                                   f"endpoint; pass --live-trading to trade it")
        client = TradingClient(environ[KEY_ID_ENV], environ[SECRET_KEY_ENV],
                               paper=not live_trading, raw_data=True, url_override=base_url)
        # TradingClient takes no retry or time-out settings: its own retry (a fixed 3 s wait on
        # 429/504) is switched off for ours, and its session gets a time-out.
        client._retry_codes = []
        adapter = _TimeoutAdapter(timeout_s)
        client._session.mount("http://", adapter)
        client._session.mount("https://", adapter)
        return cls(client, **kwargs)

    # ----------------------------------------------------------------- plumbing
    def _call(self, what: str, fn: Callable, *args, **kwargs):
        """``fn(*args)``, retried with exponential back-off on transient faults."""
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not _transient(exc):
                    raise
                if attempt == self.retries:
                    raise BrokerError(f"alpaca {what}: {_describe(exc)} after "
                                      f"{self.retries + 1} attempts") from exc
                self.retried += 1
                delay = self.backoff_s * 2 ** attempt
                log.warning("alpaca %s: %s; retrying in %.2f s", what, _describe(exc), delay)
                self.sleep(delay)
        raise AssertionError("unreachable")

    @staticmethod
    def _order(raw: dict) -> BrokerOrder:
        status = _STATUS.get(raw.get("status"), "submitted")
        filled = int(float(raw.get("filled_qty") or 0))
        return BrokerOrder(raw["client_order_id"], raw["id"], status, filled,
                           raw.get("status"))

    # ----------------------------------------------------------------- orders
    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        try:
            raw = self._call("get order", self.client.get_order_by_client_id, client_order_id)
        except APIError as exc:
            if exc.status_code == HTTP_NOT_FOUND:
                return None
            raise BrokerError(f"alpaca get order {client_order_id}: {_describe(exc)}") from exc
        return self._order(raw)

    def _request(self, order: MultiLegOrder) -> LimitOrderRequest:
        units = order.ratio_units
        legs = [OptionLegRequest(
            symbol=compact_symbol(leg.symbol), ratio_qty=abs(leg.quantity_contracts) // units,
            side=OrderSide.BUY if leg.quantity_contracts > 0 else OrderSide.SELL,
            position_intent=_intent(order.intent, leg.quantity_contracts)) for leg in order.legs]
        return LimitOrderRequest(order_class=OrderClass.MLEG, qty=units, type=OrderType.LIMIT,
                                 limit_price=round(order.net_limit_price_per_share, 2),
                                 time_in_force=TimeInForce.DAY,
                                 client_order_id=order.client_order_id, legs=legs)

    def submit(self, order: MultiLegOrder) -> BrokerOrder:
        """Place ``order`` once: an id Alpaca already holds is answered with that order."""
        request = self._request(order)
        for attempt in range(self.retries + 1):
            existing = self.get_order(order.client_order_id)
            if existing is not None:
                return existing
            try:
                return self._order(self.client.submit_order(request))
            except Exception as exc:
                if isinstance(exc, APIError) and not _transient(exc):
                    return BrokerOrder(order.client_order_id, None, "rejected",
                                       detail=_describe(exc))
                if not _transient(exc) or attempt == self.retries:
                    raise BrokerError(f"alpaca submit {order.client_order_id}: "
                                      f"{_describe(exc)}") from exc
                self.retried += 1
                self.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

    def cancel(self, client_order_id: str) -> BrokerOrder:
        held = self.get_order(client_order_id)
        if held is None:
            raise BrokerError(f"alpaca cancel: no order {client_order_id}")
        if held.is_open:
            self._call("cancel", self.client.cancel_order_by_id, held.broker_order_id)
        return self.get_order(client_order_id)

    def open_orders(self) -> list[BrokerOrder]:
        raw = self._call("open orders", self.client.get_orders,
                         GetOrdersRequest(status=QueryOrderStatus.OPEN))
        return [self._order(o) for o in raw]

    # ----------------------------------------------------------------- account
    def positions(self) -> list[BrokerPosition]:
        """One position per option line (Alpaca knows no structures)."""
        out = []
        for k, raw in enumerate(self._call("positions", self.client.get_all_positions), 1):
            symbol = raw["symbol"]
            try:
                root, expiry, option_type, strike = parse_occ_symbol(symbol)
            except ValueError:
                continue  # shares or another asset class: not ours
            qty = int(float(raw["qty"]))
            leg = OrderLeg(symbol, option_type, strike, expiry, qty)
            out.append(BrokerPosition(k, "single", abs(qty), (leg,), None,
                                      float(raw.get("unrealized_pl") or 0.0)))
        return out

    def account(self) -> AccountMark:
        raw = self._call("account", self.client.get_account)
        lines = len(self.positions())
        return AccountMark(float(raw["equity"]), float(raw["cash"]),
                           float(raw.get("initial_margin") or 0.0), lines)

    def clock(self) -> dict:
        return self._call("clock", self.client.get_clock)

    def option_symbols(self, underlying: str, expiry: str) -> list[str]:
        """Listed contracts of ``underlying`` expiring on ``expiry`` (YYYY-MM-DD)."""
        request = GetOptionContractsRequest(underlying_symbols=[underlying],
                                            expiration_date=expiry)
        raw = self._call("option contracts", self.client.get_option_contracts, request)
        return [c["symbol"] for c in raw["option_contracts"]]

    def fills(self, client_order_id: str | None = None, bar_index: int = -1,
              kind: str = "open") -> list[BrokerFill]:
        """Fill activities (``/v2/account/activities/FILL``), optionally of one order; Alpaca's
        activities carry no bar nor intent, so the caller gives them."""
        order_id = None
        if client_order_id is not None:
            held = self.get_order(client_order_id)
            if held is None:
                return []
            order_id = held.broker_order_id
        raw = self._call("fills", self.client.get, "/account/activities/FILL")
        out = []
        for a in raw:
            if order_id is not None and a["order_id"] != order_id:
                continue
            qty = int(float(a["qty"])) * (1 if a["side"] == "buy" else -1)
            out.append(BrokerFill(a["id"], client_order_id, bar_index,
                                  pd.Timestamp(a["transaction_time"]), a["symbol"], qty,
                                  float(a["price"]), None, 0.0, kind, "broker"))
        return out


def _intent(intent: str, quantity: int) -> PositionIntent:
    if intent == "open":
        return PositionIntent.BUY_TO_OPEN if quantity > 0 else PositionIntent.SELL_TO_OPEN
    return PositionIntent.BUY_TO_CLOSE if quantity > 0 else PositionIntent.SELL_TO_CLOSE


def _describe(exc: Exception) -> str:
    if isinstance(exc, APIError):
        try:
            message = exc.message
        except (ValueError, KeyError, TypeError):
            message = str(exc)
        return f"HTTP {exc.status_code}: {message}"
    return f"{type(exc).__name__}: {exc}"
