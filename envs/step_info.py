"""What one ``reset``/``step`` of :class:`envs.spy_options_env.SpyOptionsEnv` reports: :class:`StepInfo`.

Gymnasium and stable-baselines3 need ``info`` to be a ``dict`` (``Monitor`` writes
``info["episode"]``, a VecEnv ``info["terminal_observation"]``), so :class:`StepInfo` is a dict
whose entries the environment fills and everyone else reads through typed, unit-named
properties (``info.equity_usd``, ``info.portfolio``); the dict keys are this module's business.
A VecEnv wrapper may hand back a plain copy of it: :meth:`StepInfo.of` reads either.

The slim info (training) carries the account, the action, the position greeks, the step's costs,
spot and ATM IV; the full info (evaluation, paper trading: ``info_level="full"``) adds the date,
the positions and fills as objects, the cumulative costs, the reasons of refused opens and the
portfolio view. Reading a full-only entry of a slim info raises a KeyError that says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

__all__ = ["GREEK_NAMES", "EpisodeStats", "StepCosts", "StepInfo"]

# The position greeks an info carries (:attr:`StepInfo.greeks`), with their units.
GREEK_NAMES = ("delta_shares", "gamma_shares_per_usd", "theta_usd_per_day",
               "vega_usd_per_vol_point")

_FULL_ONLY = ("refused_opens", "date", "position", "fills", "costs", "unrealized_pnl",
              "trades_closed", "portfolio", "position_summary")


@dataclass(frozen=True)
class StepCosts:
    """Trading costs of the step and of the episode so far, in USD."""

    commission_usd: float
    spread_usd: float
    total_commission_usd: float
    total_spread_usd: float

    @property
    def step_usd(self) -> float:
        """Commission plus spread paid in this step."""
        return self.commission_usd + self.spread_usd

    @property
    def total_usd(self) -> float:
        """Commission plus spread paid since the episode began."""
        return self.total_commission_usd + self.total_spread_usd


@dataclass(frozen=True)
class EpisodeStats:
    """Statistics of an episode that just ended (terminated or truncated)."""

    return_pct: float
    trades: int
    win_rate: float  # NaN without a closed trade
    costs_pct: float  # commission and spread, percent of the starting equity
    bars: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _entry(key: str, doc: str) -> property:
    def read(self: StepInfo) -> Any:
        try:
            return self[key]
        except KeyError:
            if key in _FULL_ONLY:
                raise KeyError(f"info[{key!r}] is only in the full info (create the env with "
                               "info_level='full', as evaluation does)") from None
            raise
    return property(read, doc=doc)


class StepInfo(dict):
    """One step's ``info``: a dict read through the typed properties below."""

    __slots__ = ()

    @classmethod
    def of(cls, info: dict) -> StepInfo:
        """``info`` as a :class:`StepInfo` (itself, or a wrapper's plain copy of it)."""
        return info if isinstance(info, cls) else cls(info)

    @classmethod
    def slim(cls, *, equity_usd: float, cash_usd: float, margin_used_usd: float,
             invalid_action: str | None, action: int, open_positions: int,
             delta_shares: float, gamma_shares_per_usd: float, theta_usd_per_day: float,
             vega_usd_per_vol_point: float, commission_usd: float, spread_usd: float,
             realized_pnl_usd: float, spot: float, atm_iv: float) -> StepInfo:
        """The training info (plain numbers and the reason of an invalid action)."""
        return cls(equity=equity_usd, cash=cash_usd, margin_used=margin_used_usd,
                   invalid_action=invalid_action, action=action, open_positions=open_positions,
                   delta_shares=delta_shares, gamma_shares_per_usd=gamma_shares_per_usd,
                   theta_usd_per_day=theta_usd_per_day,
                   vega_usd_per_vol_point=vega_usd_per_vol_point, commission_usd=commission_usd,
                   spread_usd=spread_usd, realized_pnl=realized_pnl_usd, spot=spot,
                   atm_iv=atm_iv)

    def add_full(self, *, refused_opens: dict[str, str], date: pd.Timestamp, position: tuple,
                 fills: tuple, costs: StepCosts, unrealized_pnl_usd: float, trades_closed: int,
                 portfolio, position_summary: dict | None) -> None:
        """Add the full info's entries (see the module docstring)."""
        self.update(refused_opens=refused_opens, date=date, position=position, fills=fills,
                    costs=costs, unrealized_pnl=unrealized_pnl_usd, trades_closed=trades_closed,
                    portfolio=portfolio, position_summary=position_summary)

    def end_episode(self, stats: EpisodeStats) -> None:
        """Mark the step that ended the episode with its statistics."""
        self["episode_stats"] = stats

    @property
    def is_full(self) -> bool:
        """Whether the full info's entries are present."""
        return "portfolio" in self

    @property
    def episode_stats(self) -> EpisodeStats | None:
        """The ended episode's statistics, on its last step only."""
        return self.get("episode_stats")

    equity_usd = _entry("equity", "Cash plus open legs marked at mid, USD.")
    cash_usd = _entry("cash", "Cash, USD.")
    margin_used_usd = _entry("margin_used", "Margin held by open positions, USD.")
    invalid_action = _entry("invalid_action",
                            "Why the action was masked (it was then a hold), or None.")
    action = _entry("action", "Index of the action taken (a hold when the one asked was invalid).")
    open_positions = _entry("open_positions", "Number of open positions.")
    delta_shares = _entry("delta_shares", "Position delta, shares.")
    gamma_shares_per_usd = _entry("gamma_shares_per_usd", "Position gamma, shares per USD.")
    theta_usd_per_day = _entry("theta_usd_per_day", "Position theta, USD per calendar day.")
    vega_usd_per_vol_point = _entry("vega_usd_per_vol_point",
                                    "Position vega, USD per volatility point.")
    commission_usd = _entry("commission_usd", "Commission paid in this step, USD.")
    spread_usd = _entry("spread_usd", "Cost of trading away from mid in this step, USD.")
    realized_pnl_usd = _entry("realized_pnl", "P&L of closed trades, USD.")
    spot = _entry("spot", "The underlying's price at the bar.")
    atm_iv = _entry("atm_iv", "At-the-money implied volatility at the bar, annualized.")
    # full info only
    refused_opens = _entry("refused_opens", "Why each masked opening action is masked.")
    date = _entry("date", "The bar's timestamp.")
    position = _entry("position",
                      "The open positions (options.positions.Position), held through the step.")
    fills = _entry("fills", "The fills of the step (options.positions.Fill).")
    costs = _entry("costs", "The step's and the episode's costs (StepCosts).")
    unrealized_pnl_usd = _entry("unrealized_pnl", "Open legs at mid plus their opening cash, USD.")
    trades_closed = _entry("trades_closed", "Number of trades closed so far.")
    portfolio = _entry("portfolio", "The portfolio view (envs.portfolio.PortfolioView).")
    position_summary = _entry("position_summary",
                              "The first open position in words, or None.")

    @property
    def greeks(self) -> tuple[float, float, float, float]:
        """The position greeks in the order of :data:`GREEK_NAMES`."""
        return (self["delta_shares"], self["gamma_shares_per_usd"], self["theta_usd_per_day"],
                self["vega_usd_per_vol_point"])
