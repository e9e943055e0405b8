"""The text formats that cross a package line, each written and read here only.

* The trade ledger's ``legs`` cell (:mod:`envs.ledgers` writes it; the audit, the evaluation and
  the dashboard read it back): legs separated by ``;``, each ``<+/-contracts> <call|put> <strike>
  <YYYY-MM-DD expiry>``, e.g. ``-1 put 245 2018-02-16;+1 put 240 2018-02-16``. A strike is
  written with ``%g`` where that is exact, else with Python's shortest round-trip ``repr``, so
  :func:`parse_ledger_legs` gives back the strike written, bit for bit.
* The forecast panel's column names: ``q0.050`` for a quantile level (the long panel,
  ``forecasters.walkforward``) and ``h5_q0.050`` for a horizon in bars and a level (the wide
  panel the environment reads). Levels are written with three decimals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

__all__ = [
    "LEG_SEPARATOR",
    "LedgerLeg",
    "format_ledger_legs",
    "parse_ledger_legs",
    "parse_quantile_column",
    "parse_wide_column",
    "quantile_column",
    "wide_column",
]

LEG_SEPARATOR = ";"
_RIGHTS = ("call", "put")
_LEG = re.compile(r"^\s*([+-]\d+)\s+(call|put)\s+(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s+"
                  r"(\d{4}-\d{2}-\d{2})\s*$")
_LEVEL_DECIMALS = 3
_QUANTILE = re.compile(r"^q(0\.\d{3})$")
_WIDE = re.compile(r"^h([1-9]\d*)_q(0\.\d{3})$")


# --------------------------------------------------------------------------- ledger legs
@dataclass(frozen=True)
class LedgerLeg:
    """One leg of a ledger row: signed contracts (long > 0), right, strike and expiry date."""

    quantity_contracts: int
    option_type: str  # "call" | "put"
    strike: float
    expiry: pd.Timestamp  # the expiry date (midnight)

    def __post_init__(self) -> None:
        if self.option_type not in _RIGHTS:
            raise ValueError(f"ledger leg: option_type must be 'call' or 'put', got "
                             f"{self.option_type!r}")
        if self.quantity_contracts == 0:
            raise ValueError("ledger leg: quantity_contracts must not be 0")
        if not (self.strike > 0 and math.isfinite(self.strike)):
            raise ValueError(f"ledger leg: strike must be finite and > 0, got {self.strike!r}")


def _strike_text(strike: float) -> str:
    text = f"{strike:g}"
    return text if float(text) == strike else repr(float(strike))


def format_ledger_legs(legs: Iterable) -> str:
    """The ledger's ``legs`` cell of ``legs`` (objects with ``quantity_contracts``,
    ``option_type``, ``strike`` and ``expiry``: :class:`options.positions.Leg` or
    :class:`LedgerLeg`)."""
    return LEG_SEPARATOR.join(
        f"{leg.quantity_contracts:+d} {leg.option_type} {_strike_text(leg.strike)} "
        f"{pd.Timestamp(leg.expiry).date()}" for leg in legs)


def parse_ledger_legs(text: str) -> tuple[LedgerLeg, ...]:
    """The legs of a ledger ``legs`` cell (empty parts are skipped); ValueError naming the part
    that does not read."""
    out = []
    for part in str(text).split(LEG_SEPARATOR):
        if not part.strip():
            continue
        match = _LEG.match(part)
        if match is None:
            raise ValueError(f"ledger leg {part.strip()!r}: cannot read it (expected "
                             "'<+/-qty> <call|put> <strike> <YYYY-MM-DD>')")
        qty, right, strike, expiry = match.groups()
        out.append(LedgerLeg(int(qty), right, float(strike), pd.Timestamp(expiry)))
    return tuple(out)


# --------------------------------------------------------------------------- forecast columns
def quantile_column(level: float) -> str:
    """Panel column of a quantile level: 0.05 -> 'q0.050'."""
    return f"q{level:.{_LEVEL_DECIMALS}f}"


def wide_column(horizon_bars: int, level: float) -> str:
    """Wide-panel column of one horizon and level: (1, 0.05) -> 'h1_q0.050'."""
    return f"h{horizon_bars}_{quantile_column(level)}"


def parse_quantile_column(name: object) -> float | None:
    """The level of a quantile column ('q0.050' -> 0.05), None for any other name."""
    match = _QUANTILE.match(str(name))
    return float(match.group(1)) if match else None


def parse_wide_column(name: object) -> tuple[int, float] | None:
    """(horizon in bars, level) of a wide-panel column ('h5_q0.050' -> (5, 0.05)), None for any
    other name."""
    match = _WIDE.match(str(name))
    return (int(match.group(1)), float(match.group(2))) if match else None
