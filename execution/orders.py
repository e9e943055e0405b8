"""Multi-leg option orders: OCC symbols, net limit prices and deterministic client order ids.

An order is what the executor sends a broker for one decision: open a structure, or close the
remaining legs of one. Its client order id is a hash of (run, policy, bar time, intent, legs), so
the same decision at the same bar always gets the same id: after a crash between "submit" and
"journal", the executor looks the id up at the broker instead of placing the order twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from math import gcd
from typing import Literal

import pandas as pd

from options.positions import per_share_to_position

__all__ = ["OCC_ROOT_WIDTH", "Intent", "MultiLegOrder", "OrderLeg", "client_order_id",
           "occ_symbol", "order_legs", "parse_occ_symbol"]

OCC_ROOT_WIDTH = 6  # the root symbol is padded with spaces to six characters
OCC_STRIKE_SCALE = 1000  # strike in thousandths of a dollar, eight digits
OCC_STRIKE_DIGITS = 8
CLIENT_ORDER_ID_HEX_CHARS = 32  # Alpaca allows up to 128 characters; 128 bits of the hash
Intent = Literal["open", "close"]


def occ_symbol(root: str, expiry: pd.Timestamp, option_type: str, strike: float) -> str:
    """OCC option symbol, e.g. ``SPY   160617P00200000`` (root padded to 6, yymmdd, C/P,
    strike x 1000 as eight digits)."""
    if not root or len(root) > OCC_ROOT_WIDTH or not root.isalnum():
        raise ValueError(f"OCC root must be 1-{OCC_ROOT_WIDTH} letters/digits, got {root!r}")
    if option_type not in ("call", "put"):
        raise ValueError(f"option_type must be 'call' or 'put', got {option_type!r}")
    thousandths = round(float(strike) * OCC_STRIKE_SCALE)
    if not 0 < thousandths < 10 ** OCC_STRIKE_DIGITS:
        raise ValueError(f"strike {strike!r} does not fit an OCC symbol")
    return (f"{root.upper():<{OCC_ROOT_WIDTH}}{pd.Timestamp(expiry):%y%m%d}"
            f"{'C' if option_type == 'call' else 'P'}{thousandths:0{OCC_STRIKE_DIGITS}d}")


def parse_occ_symbol(symbol: str) -> tuple[str, pd.Timestamp, str, float]:
    """(root, expiry, option_type, strike) of an OCC symbol, padded (``SPY   16...``) or
    compact (``SPY16...``, as Alpaca writes it)."""
    tail = OCC_STRIKE_DIGITS + 7  # yymmdd + C/P + strike
    if len(symbol) <= tail:
        raise ValueError(f"{symbol!r} is not an OCC option symbol")
    root, rest = symbol[:-tail].strip(), symbol[-tail:]
    right = rest[6]
    if right not in "CP" or not rest[:6].isdigit() or not rest[7:].isdigit():
        raise ValueError(f"{symbol!r} is not an OCC option symbol")
    expiry = pd.Timestamp(f"20{rest[0:2]}-{rest[2:4]}-{rest[4:6]}")
    return root, expiry, "call" if right == "C" else "put", int(rest[7:]) / OCC_STRIKE_SCALE


@dataclass(frozen=True)
class OrderLeg:
    """One leg of an order: signed contracts (+ buy, - sell)."""

    symbol: str
    option_type: str
    strike: float
    expiry: pd.Timestamp
    quantity_contracts: int

    def __post_init__(self) -> None:
        if self.quantity_contracts == 0:
            raise ValueError(f"{self.symbol}: a leg trades a nonzero number of contracts")

    def as_dict(self) -> dict:
        return {"symbol": self.symbol, "option_type": self.option_type,
                "strike": float(self.strike), "expiry": str(pd.Timestamp(self.expiry).date()),
                "quantity_contracts": int(self.quantity_contracts)}


@dataclass(frozen=True)
class MultiLegOrder:
    """An order for one structure: legs, a net limit per share (+ debit, - credit), and the
    number of units (the structure's ratios times ``contracts``)."""

    client_order_id: str
    intent: Intent
    strategy: str
    legs: tuple[OrderLeg, ...]
    net_limit_price_per_share: float
    bar_index: int
    bar_time: pd.Timestamp

    def __post_init__(self) -> None:
        if self.intent not in ("open", "close"):
            raise ValueError(f"order intent must be 'open' or 'close', got {self.intent!r}")
        if not self.legs:
            raise ValueError(f"order {self.client_order_id}: no legs")
        symbols = [leg.symbol for leg in self.legs]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"order {self.client_order_id}: a symbol appears twice {symbols}")

    def legs_json(self) -> str:
        return json.dumps([leg.as_dict() for leg in self.legs])

    @property
    def contracts(self) -> int:
        """The largest leg size, the number the risk manager's ``max_contracts`` limits."""
        return max(abs(leg.quantity_contracts) for leg in self.legs)

    @property
    def net_limit_usd(self) -> float:
        """The order's net premium in USD at its limit (+ paid, - received)."""
        return per_share_to_position(self.net_limit_price_per_share, 1) * self.ratio_units

    @property
    def ratio_units(self) -> int:
        """Units of the structure: the greatest common divisor of the legs' sizes."""
        out = 0
        for leg in self.legs:
            out = gcd(out, abs(leg.quantity_contracts))
        return out


def client_order_id(run: str, policy: str, bar_time: pd.Timestamp, intent: str,
                    legs: tuple[OrderLeg, ...]) -> str:
    """Deterministic id of an order: same run, policy, bar, intent and legs -> same id."""
    key = json.dumps({"run": run, "policy": policy, "bar_time": pd.Timestamp(bar_time).isoformat(),
                      "intent": intent, "legs": [leg.as_dict() for leg in legs]},
                     sort_keys=True)
    return "spyrl-" + hashlib.sha256(key.encode()).hexdigest()[:CLIENT_ORDER_ID_HEX_CHARS]


def order_legs(legs, root: str) -> tuple[OrderLeg, ...]:
    """:class:`OrderLeg` objects of ``options.positions.Leg`` objects (same signed sizes)."""
    return tuple(OrderLeg(occ_symbol(root, leg.expiry, leg.option_type, leg.strike),
                          leg.option_type, float(leg.strike), pd.Timestamp(leg.expiry),
                          int(leg.quantity_contracts)) for leg in legs)
