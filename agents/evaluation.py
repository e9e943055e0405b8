"""Run a policy through the environment and measure it; shared by training and evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["EpisodeResult", "block_bootstrap_sharpe_diff", "deflated_sharpe_ratio",
           "performance_metrics", "run_episode",
           "sharpe_ratio"]


@dataclass
class EpisodeResult:
    """One deterministic episode: the equity curve and the trade ledger."""

    name: str
    equity: pd.DataFrame  # index date; equity_usd, cash_usd, margin_used_usd, spot, action
    trades: pd.DataFrame
    starting_equity_usd: float
    total_costs_usd: float


def run_episode(env, policy, seed: int = 0) -> EpisodeResult:
    """Run ``policy`` over one whole episode of ``env`` (use an ``eval``-mode env)."""
    obs, info = env.reset(seed=seed)
    policy.reset(seed)
    done = False
    while not done:
        action = policy.act(obs, info, env.action_masks())
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    equity = env.equity_curve()
    if getattr(policy, "reference_curve", None) == "underlying":
        equity = equity.copy()
        equity["equity_usd"] = env.start_equity * equity["spot"] / equity["spot"].iloc[0]
        equity["cash_usd"] = 0.0
        equity["action"] = "hold"
        costs = 0.0
    else:
        costs = info["costs"]["total_commission_usd"] + info["costs"]["total_spread_usd"]
    return EpisodeResult(policy.name, equity, env.trade_ledger(), env.start_equity, costs)


def sharpe_ratio(returns: np.ndarray, bars_per_year: float) -> float:
    """Annualised Sharpe of per-bar returns (no risk-free subtraction; 0 when flat)."""
    sd = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    if sd < 1e-12:
        return 0.0
    return float(np.mean(returns) / sd * math.sqrt(bars_per_year))


def _max_drawdown(equity: np.ndarray) -> float:
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak)) if len(equity) else 0.0


def performance_metrics(result: EpisodeResult, bars_per_year: float = 252.0) -> dict:
    """Return, risk and trade statistics of one episode (percentages in percent)."""
    equity = result.equity["equity_usd"].to_numpy(dtype=float)
    returns = np.diff(equity) / equity[:-1] if len(equity) > 1 else np.zeros(0)
    n_bars = max(len(returns), 1)
    total = equity[-1] / equity[0] - 1.0
    years = n_bars / bars_per_year
    annual = (1 + total) ** (1 / years) - 1 if total > -1 else -1.0
    vol = float(np.std(returns, ddof=1) * math.sqrt(bars_per_year)) if len(returns) > 1 else 0.0
    downside = returns[returns < 0]
    down_sd = math.sqrt(float(np.mean(downside**2))) * math.sqrt(bars_per_year) if len(
        downside) else 0.0
    mdd = _max_drawdown(equity)
    trades = result.trades
    pnl = trades["pnl_usd"].to_numpy(dtype=float) if len(trades) else np.zeros(0)
    gains, losses = pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()
    margin = result.equity["margin_used_usd"].to_numpy(dtype=float)
    exposure = float(np.mean(result.equity["open_positions"].to_numpy() > 0))
    mean_margin = float(margin[margin > 0].mean()) if (margin > 0).any() else 0.0
    return {
        "total_return_pct": 100 * total,
        "annual_return_pct": 100 * annual,
        "annual_vol_pct": 100 * vol,
        "sharpe": sharpe_ratio(returns, bars_per_year),
        "sortino": float(np.mean(returns) * bars_per_year / down_sd) if down_sd > 0 else 0.0,
        "max_drawdown_pct": 100 * mdd,
        "calmar": float(annual / mdd) if mdd > 0 else 0.0,
        "trades": len(trades),
        "win_rate": float(np.mean(pnl > 0)) if len(pnl) else 0.0,
        "avg_pnl_per_trade_usd": float(pnl.mean()) if len(pnl) else 0.0,
        "profit_factor": float(gains / losses) if losses > 0 else (float("inf") if gains > 0
                                                                   else 0.0),
        "total_costs_usd": float(result.total_costs_usd),
        "costs_pct_of_start": 100 * result.total_costs_usd / result.starting_equity_usd,
        "exposure": exposure,
        "return_on_margin_pct": 100 * float(pnl.sum()) / mean_margin if mean_margin > 0 else 0.0,
        "final_equity_usd": float(equity[-1]),
        "bars": int(len(equity)),
    }


def block_bootstrap_sharpe_diff(returns_a: np.ndarray, returns_b: np.ndarray,
                                bars_per_year: float, block_bars: int = 20,
                                samples: int = 2000, seed: int = 0,
                                level: float = 0.95) -> dict:
    """Moving-block bootstrap CI of Sharpe(a) - Sharpe(b) on aligned per-bar returns.

    Blocks of ``block_bars`` consecutive bars are drawn with replacement (the same blocks for
    both series, keeping their dependence), so serial correlation survives the resampling.
    """
    a, b = np.asarray(returns_a, float), np.asarray(returns_b, float)
    n = len(a)
    if n != len(b) or n < 2 * block_bars:
        raise ValueError(f"need two aligned return series of at least {2 * block_bars} bars")
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block_bars))
    diffs = np.empty(samples)
    offsets = np.arange(block_bars)
    for k in range(samples):
        starts = rng.integers(0, n - block_bars + 1, n_blocks)
        idx = (starts[:, None] + offsets).ravel()[:n]
        diffs[k] = sharpe_ratio(a[idx], bars_per_year) - sharpe_ratio(b[idx], bars_per_year)
    alpha = (1 - level) / 2
    point = sharpe_ratio(a, bars_per_year) - sharpe_ratio(b, bars_per_year)
    lo, hi = np.quantile(diffs, [alpha, 1 - alpha])
    return {"sharpe_diff": point, "ci_low": float(lo), "ci_high": float(hi), "level": level,
            "block_bars": block_bars, "samples": samples,
            "share_above_zero": float(np.mean(diffs > 0))}


def deflated_sharpe_ratio(sharpe_per_bar: float, trial_sharpes_per_bar: np.ndarray,
                          n_bars: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Probability that the best of several trials has a true Sharpe above zero after
    correcting for the number of trials (Bailey & Lopez de Prado 2014).

    Sharpe ratios are per bar (not annualised). ``trial_sharpes_per_bar`` holds every trial's
    Sharpe (seeds or configs of a search), from which the expected maximum under the null is
    taken.
    """
    from scipy.stats import norm

    trials = np.asarray(trial_sharpes_per_bar, float)
    n_trials = len(trials)
    if n_trials < 2 or n_bars < 3:
        return float("nan")
    euler = 0.5772156649015329
    sd = float(np.std(trials, ddof=1))
    expected_max = sd * ((1 - euler) * norm.ppf(1 - 1 / n_trials)
                         + euler * norm.ppf(1 - 1 / (n_trials * math.e)))
    denom = math.sqrt(max(1e-12, 1 - skew * sharpe_per_bar
                          + (kurtosis - 1) / 4 * sharpe_per_bar**2))
    return float(norm.cdf((sharpe_per_bar - expected_max) * math.sqrt(n_bars - 1) / denom))
