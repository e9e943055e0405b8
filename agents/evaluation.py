"""Run a policy through the environment and measure it; shared by training and evaluation.

Metrics follow empyrical-reloaded's definitions on the per-bar returns of the equity curve
(``tests/test_evaluation.py`` checks them to 1e-9): Sharpe and volatility with ddof=1, the
Sortino & Price Sortino ratio (downside deviation over *all* bars, gains counted as zero),
geometric annual return, Calmar = annual return / max drawdown. A metric that does not apply
(a trade statistic of a policy that never traded, a ratio with a zero denominator) is ``None``:
null in JSON, "-" in the report. By convention a flat curve has Sharpe 0 (training selects
checkpoints by it), where empyrical returns NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agents.statistics import (
    deflated_sharpe_ratio,
    min_track_record_bars,
    per_bar_sharpe,
    probabilistic_sharpe_ratio,
)
from common.codecs import parse_ledger_legs
from common.units import PERCENT_PER_UNIT
from envs.step_info import StepInfo
from options.quotes import position_greeks

__all__ = ["GREEK_COLUMNS", "EpisodeRecorder", "EpisodeResult", "deflated_sharpe_ratio",
           "performance_metrics", "policy_action", "run_episode", "sharpe_ratio"]

NO_ACTION = "none"  # the ``action`` of an episode's last bar: no decision is taken there
GREEK_COLUMNS = ("delta_shares", "gamma_shares_per_usd", "theta_usd_per_day",
                 "vega_usd_per_vol_point")


@dataclass
class EpisodeResult:
    """One deterministic episode: the equity curve, the trade ledger and per-bar greeks.

    ``greeks`` has one row per bar of ``equity``: the greeks of the positions held over the bar
    that ends there (``GREEK_COLUMNS``), the at-the-money implied volatility ``atm_iv`` at the
    bar, and the trading costs paid in it (``costs_usd``).
    """

    name: str
    equity: pd.DataFrame  # index date; equity_usd, cash_usd, margin_used_usd, spot, action
    trades: pd.DataFrame
    starting_equity_usd: float
    total_costs_usd: float
    greeks: pd.DataFrame | None = None
    reference_curve: bool = False  # an index curve, not a trading policy


def _held_greeks(env, info: dict, previous_index: int) -> tuple[float, ...]:
    """Greeks of the positions held over the bar that just ended.

    With position objects in ``info`` (held through the step), their greeks at the start of
    the bar (the previous close) come from the env's quote source, the one that priced their
    fills (:func:`options.quotes.position_greeks`: the model surface's for model quotes, the
    chain's for chain quotes); otherwise the env's own ``info`` greeks at the bar's end are
    used. Positions closed inside the bar (expiry, exits) have no greeks here: their P&L goes
    to the attribution's residual.
    """
    info = StepInfo.of(info)
    positions = info.position if info.is_full else None
    if positions is not None:
        if not positions:
            return (0.0, 0.0, 0.0, 0.0)
        marks = [position_greeks(env.quotes, previous_index, p) for p in positions]
        return tuple(float(sum(m[j] for m in marks)) for j in range(len(GREEK_COLUMNS)))
    return tuple(float(g) for g in info.greeks)


def _step_costs(info: StepInfo) -> float:
    return float(info.costs.step_usd)


def _bar_index(env, info: StepInfo) -> int:
    return int(env.panel.dates.get_loc(info.date))


class EpisodeRecorder:
    """Collects what :func:`run_episode` records, bar by bar, for any loop that steps an
    eval-mode env (the paper executor uses it, so its ledgers equal ``run_episode``'s)."""

    def __init__(self, env, info: dict) -> None:
        info = StepInfo.of(info)
        self.index = _bar_index(env, info)
        self.rows = [(info.date, 0.0, 0.0, 0.0, 0.0, float(info.atm_iv), 0.0)]

    def record(self, env, info: dict) -> None:
        """After each ``env.step`` (its full ``info``): the greeks held over the bar, its ATM
        IV and costs."""
        info = StepInfo.of(info)
        greeks = _held_greeks(env, info, self.index)
        self.index = _bar_index(env, info)
        self.rows.append((info.date, *greeks, float(info.atm_iv), _step_costs(info)))

    def result(self, env, policy, info: dict) -> EpisodeResult:
        """The episode's equity curve and ledger (``info``: the last step's)."""
        greeks = pd.DataFrame(self.rows, columns=["date", *GREEK_COLUMNS, "atm_iv", "costs_usd"]
                              ).set_index("date")
        equity = env.equity_curve().copy()
        # The env records the action taken at bar t on the row of bar t+1 (the bar it was
        # marked after); each row carries its own bar's decision, as the ledger's open dates
        # do. The last bar of an episode takes none.
        equity["action"] = equity["action"].shift(-1).fillna(NO_ACTION)
        reference = getattr(policy, "reference_curve", None) == "underlying"
        if reference:
            equity = equity.copy()
            equity["equity_usd"] = env.start_equity * equity["spot"] / equity["spot"].iloc[0]
            equity["cash_usd"] = 0.0
            equity["action"] = "hold"
            costs = 0.0
            greeks = None
        else:
            costs = StepInfo.of(info).costs.total_usd
        trades = augment_ledger(env.trade_ledger(), equity, greeks)
        return EpisodeResult(policy.name, equity, trades, env.start_equity, costs, greeks,
                             reference)


def policy_action(policy, env, obs, info, action_mask) -> int:
    """``policy.act``, and the rule behind a close it orders (a rule-based policy's
    ``close_reason``, e.g. ``dte_exit``) handed to ``env`` for the ledger's ``exit_reason``;
    policies without rules (PPO) close as ``agent``."""
    action = policy.act(obs, info, action_mask)
    env.label_close(getattr(policy, "close_reason", None))
    return action


def run_episode(env, policy, seed: int = 0) -> EpisodeResult:
    """Run ``policy`` over one whole episode of ``env`` (use an ``eval``-mode env)."""
    obs, info = env.reset(seed=seed)
    policy.reset(seed)
    recorder = EpisodeRecorder(env, info)
    done = False
    while not done:
        action = policy_action(policy, env, obs, info, env.action_masks())
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        recorder.record(env, info)
    return recorder.result(env, policy, info)


def augment_ledger(trades: pd.DataFrame, equity: pd.DataFrame,
                   greeks: pd.DataFrame | None) -> pd.DataFrame:
    """Add entry/exit spot, entry/exit ATM IV, days to expiry at entry and the position's
    greeks over its first bar to a trade ledger (columns the env already gives are kept)."""
    trades = trades.copy()
    if not len(trades):
        return trades
    spot = equity["spot"]
    opened = pd.to_datetime(trades["open_date"])
    closed = pd.to_datetime(trades["close_date"])

    def at(series: pd.Series, dates: pd.Series) -> np.ndarray:
        return series.reindex(pd.DatetimeIndex(dates)).to_numpy(dtype=float)

    new = {"entry_spot": at(spot, opened), "exit_spot": at(spot, closed)}
    if greeks is not None:
        new["entry_iv"] = at(greeks["atm_iv"], opened)
        new["exit_iv"] = at(greeks["atm_iv"], closed)
        # The bar after the opening bar carries the greeks held over it (marked at the open).
        following = greeks.shift(-1)
        for column in GREEK_COLUMNS:
            new[f"entry_{column}"] = at(following[column], opened)
    first_expiry = pd.DatetimeIndex([parse_ledger_legs(legs)[0].expiry for legs in trades["legs"]])
    new["entry_dte_days"] = (pd.Series(first_expiry, index=trades.index)
                             - opened.dt.normalize()).dt.days
    for column, values in new.items():
        if column not in trades.columns:
            trades[column] = values
    return trades


def sharpe_ratio(returns: np.ndarray, bars_per_year: float) -> float:
    """Annualised Sharpe of per-bar returns (no risk-free subtraction; 0 when flat)."""
    return per_bar_sharpe(returns) * math.sqrt(bars_per_year)


def _max_drawdown(equity: np.ndarray) -> float:
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak)) if len(equity) else 0.0


def bar_returns(result: EpisodeResult) -> np.ndarray:
    """Simple per-bar returns of the equity curve."""
    equity = result.equity["equity_usd"].to_numpy(dtype=float)
    return np.diff(equity) / equity[:-1] if len(equity) > 1 else np.zeros(0)


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator > 0 else None


def performance_metrics(result: EpisodeResult, bars_per_year: float = 252.0) -> dict:
    """Return, risk and trade statistics of one episode (percentages in percent; ``None``
    where a metric does not apply)."""
    equity = result.equity["equity_usd"].to_numpy(dtype=float)
    returns = bar_returns(result)
    n_bars = max(len(returns), 1)
    total = equity[-1] / equity[0] - 1.0
    years = n_bars / bars_per_year
    annual = (1 + total) ** (1 / years) - 1 if total > -1 else -1.0
    vol = float(np.std(returns, ddof=1) * math.sqrt(bars_per_year)) if len(returns) > 1 else 0.0
    # Sortino & Price: downside deviation over every bar, gains counted as zero.
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) else 0.0
    mdd = _max_drawdown(equity)
    trades = result.trades
    traded = len(trades) > 0 and not result.reference_curve
    pnl = trades["pnl_usd"].to_numpy(dtype=float) if traded else np.zeros(0)
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    margin = result.equity["margin_used_usd"].to_numpy(dtype=float)
    mean_margin = float(margin[margin > 0].mean()) if (margin > 0).any() else 0.0
    return {
        "total_return_pct": PERCENT_PER_UNIT * total,
        "annual_return_pct": PERCENT_PER_UNIT * annual,
        "annual_vol_pct": PERCENT_PER_UNIT * vol,
        "sharpe": sharpe_ratio(returns, bars_per_year),
        "sortino": _ratio(float(np.mean(returns)) * math.sqrt(bars_per_year), downside)
        if len(returns) else None,
        "max_drawdown_pct": PERCENT_PER_UNIT * mdd,
        "calmar": _ratio(annual, mdd),
        "probabilistic_sharpe": probabilistic_sharpe_ratio(returns),
        "min_track_record_bars": min_track_record_bars(returns),
        "trades": None if result.reference_curve else len(trades),
        "win_rate": float(np.mean(pnl > 0)) if traded else None,
        "avg_pnl_per_trade_usd": float(pnl.mean()) if traded else None,
        "profit_factor": _ratio(gains, losses) if traded else None,
        "total_costs_usd": float(result.total_costs_usd),
        "costs_pct_of_start": PERCENT_PER_UNIT * result.total_costs_usd / result.starting_equity_usd,
        "exposure": None if result.reference_curve else float(
            np.mean(result.equity["open_positions"].to_numpy() > 0)),
        "return_on_margin_pct": PERCENT_PER_UNIT * float(pnl.sum()) / mean_margin if traded and mean_margin > 0
        else None,
        "final_equity_usd": float(equity[-1]),
        "bars": int(len(equity)),
    }
