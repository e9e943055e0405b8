"""The risk manager: limits on new orders, automatic exits and the kill switch.

Every limit is off (``None``) by default, so a replay with the default config trades exactly what
the policy asks. Limits, with their units in their names:

* exits, checked on each open position at every bar's close, before the policy acts (the exit is
  a close order at that bar's quotes):

  - ``stop_loss_credit_multiple``: close when the loss if closed now (entry cash flows plus closing
    at bid/ask, commissions of the entry included) reaches this multiple of the credit received
    at entry (credit structures only);
  - ``stop_loss_max_loss_fraction``: close when that loss reaches this share of the position's
    maximum loss at expiry (defined-risk structures only);
  - ``take_profit_max_profit_fraction``: close when the profit if closed now reaches this share of
    the maximum profit at expiry (structures with a bounded profit only);
  - ``exit_at_dte_days``: close when the nearest remaining expiry is at most this many calendar
    days away.

* refusals of an opening order: ``max_open_positions`` (positions already open),
  ``max_contracts`` (the order's largest leg), ``daily_loss_limit_usd`` (equity now below the
  equity at the previous session's last bar by at least this much).

* the kill switch: a file (``kill_switch_file``, relative to the trade folder) or SIGTERM; every
  new order is refused, open orders are cancelled and the executor stops.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from execution.brokers.base import BrokerPosition
from execution.orders import MultiLegOrder

__all__ = ["KillSwitch", "Refusal", "RiskConfig", "RiskState", "check_order", "exit_reason"]


class RiskConfig(BaseModel):
    """Limits of the risk manager (``None``: off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_loss_credit_multiple: float | None = Field(None, gt=0)
    stop_loss_max_loss_fraction: float | None = Field(None, gt=0)
    take_profit_max_profit_fraction: float | None = Field(None, gt=0)
    exit_at_dte_days: float | None = Field(None, ge=0)
    daily_loss_limit_usd: float | None = Field(None, gt=0)
    max_open_positions: int | None = Field(None, ge=0)
    max_contracts: int | None = Field(None, ge=1)
    kill_switch_file: str = Field("KILL", min_length=1,
                                  description="relative to the trade folder")


@dataclass(frozen=True)
class Refusal:
    rule: str
    detail: str


@dataclass(frozen=True)
class RiskState:
    """What the limits on new orders look at, at the bar's close."""

    open_positions: int
    equity_usd: float
    day_start_equity_usd: float  # equity at the previous session's last bar
    kill_switch: str | None = None  # why it is on, or None


def exit_reason(position: BrokerPosition, cfg: RiskConfig) -> str | None:
    """The exit rule ``position`` triggers now, as one line, or None.

    Order of precedence: stop-loss (credit multiple, then max-loss share), take-profit, days to
    expiry.
    """
    pnl = position.pnl_if_closed_usd
    if pnl is not None:
        loss = -pnl
        credit = position.entry_credit_usd
        if cfg.stop_loss_credit_multiple is not None and credit > 0 \
                and loss >= cfg.stop_loss_credit_multiple * credit:
            return (f"stop_loss: trade {position.trade_id} loses {loss:.2f} USD if closed, "
                    f">= {cfg.stop_loss_credit_multiple:g} x credit {credit:.2f}")
        max_loss = position.max_loss_usd
        if cfg.stop_loss_max_loss_fraction is not None and max_loss \
                and loss >= cfg.stop_loss_max_loss_fraction * max_loss:
            return (f"stop_loss: trade {position.trade_id} loses {loss:.2f} USD if closed, "
                    f">= {cfg.stop_loss_max_loss_fraction:g} x max loss {max_loss:.2f}")
        max_profit = position.max_profit_usd
        if cfg.take_profit_max_profit_fraction is not None and max_profit \
                and pnl >= cfg.take_profit_max_profit_fraction * max_profit:
            return (f"take_profit: trade {position.trade_id} gains {pnl:.2f} USD if closed, "
                    f">= {cfg.take_profit_max_profit_fraction:g} x max profit {max_profit:.2f}")
    if cfg.exit_at_dte_days is not None and position.dte_days is not None \
            and position.dte_days <= cfg.exit_at_dte_days:
        return (f"dte_exit: trade {position.trade_id} has {position.dte_days:.1f} days to "
                f"expiry, <= {cfg.exit_at_dte_days:g}")
    return None


def check_order(order: MultiLegOrder, state: RiskState, cfg: RiskConfig) -> Refusal | None:
    """The limit ``order`` would breach, or None. Closing orders are refused only by the kill
    switch."""
    if state.kill_switch is not None:
        return Refusal("kill_switch", f"{order.intent} {order.strategy}: {state.kill_switch}")
    if order.intent != "open":
        return None
    if cfg.max_open_positions is not None and state.open_positions >= cfg.max_open_positions:
        return Refusal("max_open_positions",
                       f"open {order.strategy}: {state.open_positions} position(s) open, "
                       f"limit {cfg.max_open_positions}")
    if cfg.max_contracts is not None and order.contracts > cfg.max_contracts:
        return Refusal("max_contracts", f"open {order.strategy}: {order.contracts} contracts "
                       f"on a leg, limit {cfg.max_contracts}")
    if cfg.daily_loss_limit_usd is not None:
        loss = state.day_start_equity_usd - state.equity_usd
        if loss >= cfg.daily_loss_limit_usd:
            return Refusal("daily_loss_limit",
                           f"open {order.strategy}: down {loss:.2f} USD since the previous "
                           f"session, limit {cfg.daily_loss_limit_usd:g}")
    return None


class KillSwitch:
    """On when ``path`` exists or the process received SIGTERM (after :meth:`install`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.sigterm = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        self.sigterm = True

    def reason(self) -> str | None:
        if self.sigterm:
            return "SIGTERM received"
        if self.path.exists():
            return f"kill switch file {self.path} exists"
        return None
