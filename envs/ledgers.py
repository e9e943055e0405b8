"""The trade ledger of an episode: one row per round trip, from the portfolio simulator.

Besides the cash flows and entry greeks, each row carries what an audit needs
(:mod:`agents.audit`): ``quote_source`` (``fallback`` when any of its fills had no valid quote,
else the quote source's name, ``model`` or ``chain``), the counts ``fallback_fills`` and
``invalid_quote_fills`` (fills at a zero, crossed or one-sided quote), the largest
``|log(strike / spot)|`` of its legs at entry (``entry_max_abs_log_moneyness``) and the
``|delta|`` of its first leg at entry (``entry_leg_delta_abs``: the leg chosen by delta or at the
money).
"""

from __future__ import annotations

import math

import pandas as pd

from common.codecs import format_ledger_legs
from envs.market import MarketPanel
from envs.portfolio import OpenPosition, PortfolioSimulator
from options.calendar import NS_PER_DAY

__all__ = ["LEDGER_COLUMNS", "trade_ledger"]

LEDGER_COLUMNS = ("trade_id", "strategy", "legs", "open_date", "close_date", "exit_reason",
                  "contracts", "entry_cash_flow_usd", "exit_cash_flow_usd", "pnl_usd",
                  "commission_usd", "spread_cost_usd", "max_loss_usd", "max_profit_usd",
                  "risk_usd", "entry_spot", "exit_spot", "entry_iv", "entry_dte_days",
                  "entry_delta_shares", "entry_gamma_shares_per_usd", "entry_theta_usd_per_day",
                  "entry_vega_usd_per_vol_point", "quote_source", "fallback_fills",
                  "invalid_quote_fills", "entry_max_abs_log_moneyness", "entry_leg_delta_abs")


def _row(pos: OpenPosition, panel: MarketPanel, close_bar: int, reason: str, pnl: float) -> dict:
    unit = pos.unit
    path = unit.path
    c = pos.contracts
    legs = format_ledger_legs(pos.legs())
    entry = unit.entry_bar
    spot = float(panel.spot[entry])
    return {
        "trade_id": pos.trade_id, "strategy": pos.strategy, "legs": legs,
        "open_date": panel.dates[entry],
        "close_date": panel.dates[close_bar] if reason != "open_at_end" else None,
        "exit_reason": reason, "contracts": c,
        "entry_cash_flow_usd": pos.entry_cash_flow_usd,
        "exit_cash_flow_usd": pos.exit_cash_flow_usd, "pnl_usd": pnl,
        "commission_usd": pos.entry_commission_usd + pos.exit_commission_usd,
        "spread_cost_usd": pos.entry_spread_cost_usd + pos.exit_spread_cost_usd,
        "max_loss_usd": None if unit.max_loss_usd is None else unit.max_loss_usd * c,
        "max_profit_usd": None if unit.max_profit_usd is None else unit.max_profit_usd * c,
        "risk_usd": pos.risk_usd,
        "entry_spot": float(panel.spot[entry]), "exit_spot": float(panel.spot[close_bar]),
        "entry_iv": float(panel.atm_iv[entry]),
        "entry_dte_days": (unit.first_expiry_close_ns - int(panel.close_ns[entry])) / NS_PER_DAY,
        "entry_delta_shares": path.delta[0] * c,
        "entry_gamma_shares_per_usd": path.gamma[0] * c,
        "entry_theta_usd_per_day": path.theta[0] * c,
        "entry_vega_usd_per_vol_point": path.vega[0] * c,
        "quote_source": "fallback" if pos.fallback_fills else unit.quote_source,
        "fallback_fills": pos.fallback_fills,
        "invalid_quote_fills": pos.invalid_quote_fills,
        "entry_max_abs_log_moneyness": max(abs(math.log(leg.strike / spot)) for leg in unit.legs),
        "entry_leg_delta_abs": None if unit.leg_delta is None else abs(float(unit.leg_delta[0])),
    }


def trade_ledger(sim: PortfolioSimulator, panel: MarketPanel) -> pd.DataFrame:
    """Closed and expired trades, then those still open (``open_at_end``, marked at mid)."""
    rows = [_row(p, panel, p.close_bar, p.exit_reason, p.pnl_usd) for p in sim.closed]
    for pos in sim.positions:
        k = sim.bar - pos.unit.entry_bar
        rows.append(_row(pos, panel, sim.bar, "open_at_end",
                         pos.pnl_usd + pos.unit.path.mid_usd[k] * pos.contracts))
    return pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))
