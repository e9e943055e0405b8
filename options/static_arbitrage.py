"""Static-arbitrage checks of model option prices over a grid (any implied-vol function).

:func:`check_iv_function` prices calls and puts with BSM at the implied vols of a surface
(``iv_fn(index_level, spot, strike, t_years)``) over :class:`ArbitrageGrid` (log-moneyness
``log(K/S)`` from -1.0 to +1.0, 1 to 365 days, volatility-index levels 9 to 80, a few rates)
and counts the violations of the model-free static no-arbitrage bounds:

- ``butterfly_call`` / ``butterfly_put``: for neighbouring strikes K1 < K2 < K3, the butterfly
  ``a C(K1) - C(K2) + (1 - a) C(K3)`` with ``a = (K3 - K2) / (K3 - K1)`` (it pays >= 0) is
  worth >= 0 (same for puts);
- ``vertical_call`` / ``vertical_put``: a call spread ``C(K1) - C(K2)`` and a put spread
  ``P(K2) - P(K1)`` lie within ``[0, exp(-rT) (K2 - K1)]``;
- ``call_above_spot`` / ``put_above_strike``: ``C <= S`` and ``P <= K``;
- ``calendar_call`` / ``calendar_put``: at fixed forward log-moneyness ``k = log(K / F(T))``,
  ``F(T) = S exp((r - q) T)``, the forward-normalised price ``C / (exp(-rT) F(T))`` does not
  fall from one maturity of the grid to the next (same for puts).

Amounts are dollars per share at ``spot`` (100 by default); a shortfall smaller than
:data:`TOLERANCE_PER_SHARE` is floating-point rounding, not a violation. The surface's own
closed-form conditions (e.g. SSVI's) are checked where the surface is defined
(:func:`options.surface.surface_arbitrage_report`), which adds them to the same report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from options.pricing import DAYS_PER_YEAR, bs_price

__all__ = [
    "DEFAULT_GRID",
    "TOLERANCE_PER_SHARE",
    "ArbitrageGrid",
    "ArbitrageReport",
    "Violation",
    "check_iv_function",
]

TOLERANCE_PER_SHARE = 1e-7
"""Shortfalls below this many dollars per share (at spot 100: a millionth of a cent) are
rounding in the BSM formula on deep in-the-money prices, not arbitrage."""
WORST_CASES_KEPT = 10


@dataclass(frozen=True)
class ArbitrageGrid:
    """Where the prices are checked (defaults: the domain named in the module docstring)."""

    log_moneyness: tuple[float, ...] = tuple(
        float(x) for x in np.round(np.linspace(-1.0, 1.0, 201), 10))
    dte_days: tuple[float, ...] = (1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90, 120, 180, 270,
                                   365)
    index_levels: tuple[float, ...] = (9, 10, 12, 15, 18, 20, 25, 30, 40, 50, 60, 70, 80)
    rates: tuple[float, ...] = (0.0, 0.03, 0.06)
    spot: float = 100.0

    def describe(self) -> dict:
        """The grid as plain numbers (for JSON output)."""
        k = self.log_moneyness
        return {"log_moneyness": [float(k[0]), float(k[-1]), len(k)],
                "dte_days": [float(d) for d in self.dte_days],
                "index_levels": [float(x) for x in self.index_levels],
                "rates": [float(r) for r in self.rates], "spot": float(self.spot)}


DEFAULT_GRID = ArbitrageGrid()


@dataclass(frozen=True)
class Violation:
    """One broken bound: ``amount_per_share`` is how far the price is past it (> 0)."""

    kind: str
    index_level: float
    rate: float
    dte_days: float
    log_moneyness: float
    amount_per_share: float
    detail: str = ""

    def describe(self) -> str:
        """One line: the kind, where (the coordinates that apply) and by how much."""
        parts = [f"index {self.index_level:g}" if np.isfinite(self.index_level) else "",
                 f"{self.dte_days:g} days" if np.isfinite(self.dte_days) else "",
                 f"log-moneyness {self.log_moneyness:+.3f}"
                 if np.isfinite(self.log_moneyness) else "",
                 f"rate {self.rate:g}" if np.isfinite(self.rate) else ""]
        where = ", ".join(p for p in parts if p) or "all levels"
        if self.detail and not np.isfinite(self.dte_days):
            return f"{self.kind} at {where}: {self.detail}"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.kind} at {where}: {self.amount_per_share:.3g} per share{extra}"


@dataclass(frozen=True)
class ArbitrageReport:
    """Counts of checked bounds and violations, and the worst violations (largest first)."""

    n_checked: int
    n_violations: int
    counts_by_kind: dict = field(default_factory=dict)
    worst: tuple[Violation, ...] = ()
    grid: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.n_violations == 0

    def merged(self, extra: list[Violation], n_extra_checked: int) -> ArbitrageReport:
        """This report with ``extra`` violations (e.g. closed-form conditions, in their own
        units) added: all are counted; the worst cases list the price violations first, then
        the largest ``extra`` violation of each kind."""
        counts = dict(self.counts_by_kind)
        top: dict[str, Violation] = {}
        for v in extra:
            counts[v.kind] = counts.get(v.kind, 0) + 1
            if v.kind not in top or v.amount_per_share > top[v.kind].amount_per_share:
                top[v.kind] = v
        worst = [*self.worst, *sorted(top.values(), key=lambda v: -v.amount_per_share)]
        return ArbitrageReport(self.n_checked + n_extra_checked,
                               self.n_violations + len(extra), counts,
                               tuple(worst), self.grid)

    def to_dict(self) -> dict:
        return {"n_checked": self.n_checked, "n_violations": self.n_violations,
                "counts_by_kind": dict(self.counts_by_kind),
                "worst": [{"kind": v.kind, "index_level": _num(v.index_level),
                           "rate": _num(v.rate), "dte_days": _num(v.dte_days),
                           "log_moneyness": _num(v.log_moneyness),
                           "amount_per_share": _num(v.amount_per_share), "detail": v.detail,
                           "description": v.describe()}
                          for v in self.worst],
                "grid": dict(self.grid), "tolerance_per_share": TOLERANCE_PER_SHARE}


def _num(x: float) -> float | None:
    """A JSON-safe number (None for NaN: a coordinate that does not apply)."""
    return float(x) if np.isfinite(x) else None


class _Collector:
    """Gathers shortfalls of one kind of bound into counts and worst cases."""

    def __init__(self) -> None:
        self.n_checked = 0
        self.counts: dict[str, int] = {}
        self.worst: list[Violation] = []

    def add(self, kind: str, shortfall: np.ndarray, index_level: float, rate: float,
            dte: np.ndarray, log_m: np.ndarray) -> None:
        """``shortfall`` > tolerance marks a violation; ``dte``/``log_m`` broadcast to it."""
        shortfall = np.asarray(shortfall, dtype=float)
        self.n_checked += shortfall.size
        bad = shortfall > TOLERANCE_PER_SHARE
        n_bad = int(bad.sum())
        if not n_bad:
            return
        self.counts[kind] = self.counts.get(kind, 0) + n_bad
        dte_b = np.broadcast_to(dte, shortfall.shape)[bad]
        k_b = np.broadcast_to(log_m, shortfall.shape)[bad]
        amt = shortfall[bad]
        for j in np.argsort(-amt)[:WORST_CASES_KEPT]:
            self.worst.append(Violation(kind, float(index_level), float(rate), float(dte_b[j]),
                                        float(k_b[j]), float(amt[j])))
        self.worst = sorted(self.worst, key=lambda v: -v.amount_per_share)[:WORST_CASES_KEPT]


def _strike_checks(col: _Collector, calls, puts, strikes, spot, disc, index_level, rate, dte,
                   log_m) -> None:
    """Butterflies, verticals and price bounds along the strike axis (last axis)."""
    k1, k2, k3 = strikes[:-2], strikes[1:-1], strikes[2:]
    a = (k3 - k2) / (k3 - k1)
    mid_k = log_m[1:-1]
    for kind, p in (("butterfly_call", calls), ("butterfly_put", puts)):
        fly = a * p[:, :-2] - p[:, 1:-1] + (1.0 - a) * p[:, 2:]
        col.add(kind, -fly, index_level, rate, dte, mid_k)
    width = (strikes[1:] - strikes[:-1]) * disc
    lo_k = log_m[:-1]
    call_spread = calls[:, :-1] - calls[:, 1:]
    put_spread = puts[:, 1:] - puts[:, :-1]
    for kind, spread in (("vertical_call", call_spread), ("vertical_put", put_spread)):
        col.add(kind, np.maximum(-spread, spread - width), index_level, rate, dte, lo_k)
    col.add("call_above_spot", calls - spot, index_level, rate, dte, log_m)
    col.add("put_above_strike", puts - strikes, index_level, rate, dte, log_m)


def check_iv_function(iv_fn: Callable, dividend_yield: float = 0.0,
                      grid: ArbitrageGrid = DEFAULT_GRID) -> ArbitrageReport:
    """Check the prices of ``iv_fn(index_level, spot, strike, t_years)`` (vectorised,
    annualised decimal vols) with dividend yield ``dividend_yield`` over ``grid``."""
    col = _Collector()
    spot = float(grid.spot)
    log_m = np.asarray(grid.log_moneyness, dtype=float)
    dte = np.asarray(grid.dte_days, dtype=float)[:, None]
    t = dte / DAYS_PER_YEAR
    strikes = spot * np.exp(log_m)
    q = float(dividend_yield)
    for level in grid.index_levels:
        for rate in grid.rates:
            disc = np.exp(-rate * t)
            iv = np.broadcast_to(np.asarray(iv_fn(level, spot, strikes[None, :], t), float),
                                 (len(dte), len(log_m)))
            calls = np.asarray(bs_price("call", spot, strikes[None, :], t, rate, iv, q), float)
            puts = np.asarray(bs_price("put", spot, strikes[None, :], t, rate, iv, q), float)
            _strike_checks(col, calls, puts, strikes, spot, disc, level, rate, dte, log_m)
            # calendars at fixed forward moneyness: forward-normalised prices rise with T
            fwd = spot * np.exp((rate - q) * t)
            k_fwd = fwd * np.exp(log_m)[None, :]
            iv_f = np.broadcast_to(np.asarray(iv_fn(level, spot, k_fwd, t), float),
                                   k_fwd.shape)
            norm = disc * fwd / spot
            for kind, right in (("calendar_call", "call"), ("calendar_put", "put")):
                c = np.asarray(bs_price(right, spot, k_fwd, t, rate, iv_f, q), float) / norm
                col.add(kind, c[:-1] - c[1:], level, rate, dte[:-1], log_m)
    return ArbitrageReport(col.n_checked, int(sum(col.counts.values())), col.counts,
                           tuple(col.worst), grid.describe())
