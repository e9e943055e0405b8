"""The audit of an evaluation: did a policy's P&L come from a hole in the market?

A PPO agent is an optimiser: wherever the simulated market misprices, it learns the mispricing.
Every evaluation therefore writes, per policy (and per quote kind on real chains), what its
ledger says about the market it traded in:

===============================  ===============================================================
key                              meaning
===============================  ===============================================================
``trades``                       rows of the ledger (closed, expired and open at the end)
``negative_max_profit_opens``    trades opened with a maximum profit at expiry <= 0 USD
``legs_beyond_band``             legs whose ``|log(strike / entry spot)|`` exceeds the band
``fills_at_invalid_quotes``      leg fills at a zero, crossed or one-sided quote
``fallback_fills``               leg fills without a valid quote (the source's fallback price)
``arbitrage_violations_at_entry``  static-arbitrage violations among the mids of the valid
                                 quotes on the entry bars' strikes (inside the band) and
                                 expiries (the trade's and the next listed one)
                                 (:func:`static_arbitrage_violations`); by kind in
                                 ``arbitrage_by_check``, the largest in ``arbitrage_worst``
``top_trade_pnl_share``          the largest trade's P&L over the policy's total P&L (in the
                                 total's direction: the largest gain when the total is a gain,
                                 the largest loss when it is a loss; None when the total is 0)
``top3_trade_pnl_share``         the same for the three largest trades
``pnl_by_bucket``                P&L by structure x entry-delta bucket (``|delta|`` of the
                                 structure's first leg at entry) x days-to-expiry bucket
===============================  ===============================================================

Everything here is a pure function of ledgers and quote tables, except
:func:`entry_quote_grids`, which asks an environment for the entry bars' quotes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from common.codecs import parse_ledger_legs
from common.units import PERCENT_PER_UNIT

__all__ = [
    "CONCENTRATION_SHARE",
    "DELTA_BUCKETS",
    "DTE_BUCKETS",
    "audit_markdown",
    "audit_policy",
    "entry_quote_grids",
    "ledger_legs",
    "static_arbitrage_violations",
]

CONCENTRATION_SHARE = 0.5
"""A policy whose largest trade carries more than this share of its P&L is flagged."""
DELTA_BUCKETS = (0.0, 0.10, 0.20, 0.30, 0.40, 0.60, 1.0)
"""Edges of the entry-delta buckets (``|delta|`` of the first leg; left-closed)."""
DTE_BUCKETS = (0.0, 8.0, 22.0, 46.0, 91.0, math.inf)
"""Edges of the days-to-expiry buckets at entry (left-closed): 0-7, 8-21, 22-45, 46-90, 91+."""
ARBITRAGE_TOLERANCE_FRACTION_OF_SPOT = 1e-6
"""A price relation counts as violated only beyond this fraction of spot, per share (rounding
noise of exact model prices is far below it)."""
_WORST_SHOWN = 5


# --------------------------------------------------------------------------- ledgers
def ledger_legs(legs_text: str) -> list[tuple[int, str, float, pd.Timestamp]]:
    """The legs of a ledger row's ``legs`` text (``"+1 put 245 2018-02-16;-1 put 250 ..."``):
    (signed contracts, right, strike, expiry) each."""
    return [(leg.quantity_contracts, leg.option_type, leg.strike, leg.expiry)
            for leg in parse_ledger_legs(legs_text)]


def _column(trades: pd.DataFrame, name: str, default: float = 0.0) -> np.ndarray:
    if name not in trades.columns:
        return np.full(len(trades), default, dtype=float)
    return pd.to_numeric(trades[name], errors="coerce").to_numpy(dtype=float)


def _top_shares(pnl: np.ndarray) -> tuple[float | None, float | None]:
    total = float(pnl.sum())
    if len(pnl) == 0 or total == 0.0:
        return None, None
    ordered = np.sort(pnl * math.copysign(1.0, total))[::-1]  # largest in the total's direction
    scale = abs(total)
    return float(ordered[0] / scale), float(ordered[:3].sum() / scale)


def _bucket(value: float, edges: tuple[float, ...], fmt) -> str:
    if not np.isfinite(value):
        return "unknown"
    i = int(np.searchsorted(edges, value, side="right")) - 1
    i = min(max(i, 0), len(edges) - 2)
    return fmt(edges[i], edges[i + 1])


def _delta_label(lo: float, hi: float) -> str:
    return f"{lo:.2f}-{hi:.2f}"


def _dte_label(lo: float, hi: float) -> str:
    return f"{lo:.0f}+" if not np.isfinite(hi) else f"{lo:.0f}-{hi - 1:.0f}"


def pnl_by_bucket(trades: pd.DataFrame) -> list[dict]:
    """P&L and trade count by structure x entry-delta bucket x days-to-expiry bucket."""
    if not len(trades):
        return []
    delta = _column(trades, "entry_leg_delta_abs", math.nan)
    dte = _column(trades, "entry_dte_days", math.nan)
    frame = pd.DataFrame({
        "structure": trades["strategy"].astype(str).to_numpy(),
        "delta_bucket": [_bucket(d, DELTA_BUCKETS, _delta_label) for d in delta],
        "dte_bucket": [_bucket(d, DTE_BUCKETS, _dte_label) for d in dte],
        "pnl_usd": _column(trades, "pnl_usd")})
    grouped = frame.groupby(["structure", "delta_bucket", "dte_bucket"], sort=True)["pnl_usd"]
    table = grouped.agg(["count", "sum"]).reset_index()
    return [{"structure": r.structure, "delta_bucket": r.delta_bucket, "dte_bucket": r.dte_bucket,
             "trades": int(r["count"]), "pnl_usd": float(r["sum"])}
            for _, r in table.iterrows()]


def audit_policy(trades: pd.DataFrame, max_abs_log_moneyness: float,
                 entry_grids: dict | None = None) -> dict:
    """The audit of one policy's ledger (see the module docstring for the keys).

    Args:
        trades: the policy's trade ledger (``envs.ledgers`` columns; ``legs``, ``entry_spot``,
            ``pnl_usd`` and ``max_profit_usd`` are read; the fill counts, entry delta and days
            to expiry where present).
        max_abs_log_moneyness: the moneyness band the legs are checked against.
        entry_grids: quote tables per entry date (:func:`entry_quote_grids`); None or a
            missing date: no arbitrage check there (``arbitrage_checked_entries`` says how many
            were checked).
    """
    n = len(trades)
    max_profit = _column(trades, "max_profit_usd", math.nan)
    pnl = _column(trades, "pnl_usd")
    beyond = 0
    if n:
        spots = _column(trades, "entry_spot", math.nan)
        for legs, spot in zip(trades["legs"], spots, strict=True):
            for _, _, strike, _ in ledger_legs(legs):
                if not abs(math.log(strike / spot)) <= max_abs_log_moneyness + 1e-12:
                    beyond += 1
    violations: list[dict] = []
    checked = 0
    if entry_grids and n:
        for date in sorted(set(pd.to_datetime(trades["open_date"]))):
            grid = entry_grids.get(pd.Timestamp(date))
            if grid is None:
                continue
            checked += 1
            for v in static_arbitrage_violations(grid):
                violations.append({"entry_date": str(pd.Timestamp(date).date()), **v})
    top, top3 = _top_shares(pnl)
    worst = sorted(violations, key=lambda v: -v["amount_per_share"])[:_WORST_SHOWN]
    return {
        "trades": int(n),
        "negative_max_profit_opens": int(np.sum(max_profit <= 0.0)),
        "legs_beyond_band": int(beyond),
        "fills_at_invalid_quotes": int(np.nansum(_column(trades, "invalid_quote_fills"))),
        "fallback_fills": int(np.nansum(_column(trades, "fallback_fills"))),
        "arbitrage_violations_at_entry": len(violations),
        "arbitrage_checked_entries": checked,
        "arbitrage_by_check": {c: sum(v["check"] == c for v in violations)
                               for c in sorted({v["check"] for v in violations})},
        "arbitrage_worst": worst,
        "total_pnl_usd": float(pnl.sum()),
        "top_trade_pnl_share": top,
        "top3_trade_pnl_share": top3,
        "concentrated": top is not None and top > CONCENTRATION_SHARE,
        "max_abs_log_moneyness": float(max_abs_log_moneyness),
        "pnl_by_bucket": pnl_by_bucket(trades),
    }


# --------------------------------------------------------------------------- arbitrage
def _violation(check: str, expiry, option_type: str, strikes, amount: float) -> dict:
    return {"check": check, "expiry": str(pd.Timestamp(expiry).date()),
            "option_type": option_type, "strikes": [float(k) for k in strikes],
            "amount_per_share": float(amount)}


def static_arbitrage_violations(grid: pd.DataFrame,
                                tolerance_fraction_of_spot: float =
                                ARBITRAGE_TOLERANCE_FRACTION_OF_SPOT) -> list[dict]:
    """Static-arbitrage violations among the mids of one bar's valid quotes.

    ``grid`` has columns ``expiry, t_years, option_type, strike, mid_per_share, valid`` and
    ``attrs`` ``spot``, ``rate``, ``dividend_yield`` (as :meth:`envs.SpyOptionsEnv.quote_grid`
    writes it). Checked, per right and expiry over neighbouring strikes: verticals within
    ``[0, e^{-rT} (K2 - K1)]``; butterflies >= 0 (convexity in the strike, unequal spacing
    allowed); calls <= spot, puts <= strike. Across neighbouring expiries, calendars >= 0 at
    fixed forward moneyness: the price in units of ``S e^{-qT}`` (calls) or ``K e^{-rT}``
    (puts) as a function of ``log(K / F)`` may not fall with maturity (the later expiry
    interpolated linearly in log-moneyness, within its range). A relation counts only beyond
    ``tolerance_fraction_of_spot * spot`` per share (per unit of normalised price for
    calendars: the same fraction). Returns one dict per violation: ``check``, ``expiry``,
    ``option_type``, ``strikes``, ``amount_per_share``.
    """
    spot = float(grid.attrs["spot"])
    rate = float(grid.attrs.get("rate", 0.0))
    q = float(grid.attrs.get("dividend_yield", 0.0))
    tol = tolerance_fraction_of_spot * spot
    ok = grid[grid["valid"].astype(bool)] if "valid" in grid.columns else grid
    out: list[dict] = []
    curves: dict[str, list[tuple]] = {"call": [], "put": []}
    for (expiry, option_type), rows in ok.groupby(["expiry", "option_type"], sort=True):
        rows = rows.sort_values("strike")
        k = rows["strike"].to_numpy(dtype=float)
        v = rows["mid_per_share"].to_numpy(dtype=float)
        t = float(rows["t_years"].iloc[0])
        disc = math.exp(-rate * t)
        is_call = option_type == "call"
        above = v - (spot if is_call else k)
        for j in np.flatnonzero(above > tol):
            out.append(_violation("call_above_spot" if is_call else "put_above_strike",
                                  expiry, option_type, [k[j]], above[j]))
        if len(k) >= 2:
            step = np.diff(v) * (-1.0 if is_call else 1.0)  # >= 0: value falls away from money
            width = disc * np.diff(k)
            for j in np.flatnonzero(step < -tol):
                out.append(_violation("vertical_negative", expiry, option_type,
                                      k[j:j + 2], -step[j]))
            for j in np.flatnonzero(step > width + tol):
                out.append(_violation("vertical_above_width", expiry, option_type,
                                      k[j:j + 2], step[j] - width[j]))
        if len(k) >= 3:
            w = (k[2:] - k[1:-1]) / (k[2:] - k[:-2])
            excess = v[1:-1] - (w * v[:-2] + (1.0 - w) * v[2:])
            for j in np.flatnonzero(excess > tol):
                out.append(_violation("butterfly_negative", expiry, option_type,
                                      k[j:j + 3], excess[j]))
        forward = spot * math.exp((rate - q) * t)
        norm = spot * math.exp(-q * t) if is_call else k * disc
        curves[option_type].append((t, expiry, np.log(k / forward), v / norm))
    for option_type, by_t in curves.items():
        by_t.sort(key=lambda c: c[0])
        for (t1, e1, x1, c1), (t2, _, x2, c2) in zip(by_t, by_t[1:], strict=False):
            if t2 <= t1 or len(x2) < 2:
                continue
            inside = (x1 >= x2[0]) & (x1 <= x2[-1])
            later = np.interp(x1[inside], x2, c2)
            drop = c1[inside] - later
            strikes = np.exp(x1[inside]) * spot * math.exp((rate - q) * t1)
            for j in np.flatnonzero(drop > tolerance_fraction_of_spot):
                out.append(_violation("calendar_negative", e1, option_type,
                                      [round(float(strikes[j]), 6)], drop[j]))
    return out


def entry_quote_grids(env, trades: pd.DataFrame) -> dict[pd.Timestamp, pd.DataFrame]:
    """Quote tables of the entry bars of ``trades`` from ``env`` (its quote source): the
    trade's expiries and the next listed one, every listed strike inside the band."""
    grids: dict[pd.Timestamp, pd.DataFrame] = {}
    if not len(trades):
        return grids
    dates = env.panel.dates
    by_date: dict[pd.Timestamp, set] = {}
    for open_date, legs in zip(pd.to_datetime(trades["open_date"]), trades["legs"], strict=True):
        by_date.setdefault(pd.Timestamp(open_date), set()).update(
            e for _, _, _, e in ledger_legs(legs))
    for date, expiries in by_date.items():
        bar = int(dates.get_loc(date))
        listed = [pd.Timestamp(e) for e in env.quotes.expiries(bar)]
        later = [e for e in listed if e > max(expiries)]
        grids[date] = env.quote_grid(bar, sorted(expiries) + later[:1])
    return grids


# --------------------------------------------------------------------------- report
def _share(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def audit_markdown(audits: dict[str, dict]) -> list[str]:
    """The report's audit section: one row per policy (``audits``: name -> audit), a plain
    sentence for each policy whose largest trade carries more than half its P&L, and the P&L
    by structure x entry delta x days to expiry."""
    lines = ["## Audit: did the P&L come from a hole in the market?", "",
             "Counts per policy: opens with a maximum profit <= 0, legs beyond the moneyness "
             "band, fills at zero/crossed/one-sided quotes, fills at the fallback price, "
             "static-arbitrage violations among the entry bars' quotes; shares of the total "
             "P&L carried by the largest trade and the three largest.", "",
             "| policy | trades | max profit <= 0 | legs beyond band | invalid-quote fills | "
             "fallback fills | arbitrage at entry | top trade share | top 3 share |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, a in audits.items():
        lines.append(f"| {name} | {a['trades']} | {a['negative_max_profit_opens']} | "
                     f"{a['legs_beyond_band']} | {a['fills_at_invalid_quotes']} | "
                     f"{a['fallback_fills']} | {a['arbitrage_violations_at_entry']} | "
                     f"{_share(a['top_trade_pnl_share'])} | {_share(a['top3_trade_pnl_share'])} |")
    lines.append("")
    flagged = [n for n, a in audits.items() if a["concentrated"]]
    for name in flagged:
        a = audits[name]
        lines.append(f"**{name}: one trade carries more than half of the P&L** "
                     f"({PERCENT_PER_UNIT * a['top_trade_pnl_share']:.0f}% of {a['total_pnl_usd']:,.0f} USD); "
                     "its result rests on that trade.")
    if not flagged:
        lines.append("No policy's largest trade carries more than half of its P&L.")
    holes = [n for n, a in audits.items()
             if a["negative_max_profit_opens"] or a["legs_beyond_band"]
             or a["fills_at_invalid_quotes"] or a["arbitrage_violations_at_entry"]]
    if holes:
        lines.append(f"Trades through a hole in the market (see the counts): {', '.join(holes)}.")
    lines += ["", "P&L by structure x entry |delta| of the first leg x days to expiry, USD:", "",
              "| policy | structure | entry delta | DTE | trades | P&L $ |",
              "|---|---|---|---|---:|---:|"]
    for name, a in audits.items():
        for row in a["pnl_by_bucket"]:
            lines.append(f"| {name} | {row['structure']} | {row['delta_bucket']} | "
                         f"{row['dte_bucket']} | {row['trades']} | {row['pnl_usd']:,.0f} |")
    return lines + [""]
