"""Tests of the evaluation metrics, statistics and tear sheet (``agents.evaluation``,
``agents.statistics``, ``agents.report``).

Every equity-curve metric is checked against empyrical-reloaded (the reference) on the equity
curves of several policies run through the real environment; trade statistics against the
ledger; the statistics against their textbook formulas and arch's own bootstrap.
"""

from __future__ import annotations

import math
from functools import cache

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, kurtosis, norm, skew

import data
from agents import make_baseline, performance_metrics, run_episode
from agents.evaluation import GREEK_COLUMNS, EpisodeResult, bar_returns
from agents.report import ACTION_COLOURS, monthly_returns, pnl_attribution, rolling_sharpe
from agents.statistics import (
    block_length_bars,
    deflated_sharpe_ratio,
    median_interval,
    min_track_record_bars,
    probabilistic_sharpe_ratio,
    sharpe_diff_interval,
    spa_test,
)
from envs import ACTION_NAMES, EnvConfig, SpyOptionsEnv, build_market_panel
from forecasters.panel import ForecastPanel
from options.surface import SurfaceConfig
from tests.env_data import SCALE, embedded_panel

BARS_PER_YEAR = 252.0
TOLERANCE = 1e-9
POLICIES = ("cash", "buy_and_hold", "short_put_spread", "iron_condor", "forecast_rule", "random")
HORIZONS = (1, 2, 3, 4, 5)
LEVELS = (0.05, 0.125, 0.5, 0.875, 0.95)
FORECAST_WIDTH = 0.8


@cache
def episodes() -> dict[str, EpisodeResult]:
    """Every baseline over 2017 of the embedded data, with a causal normal forecast panel."""
    frame = data.load_market("embedded")
    iv = frame["iv_index"].ffill()
    # Narrower than the implied move, so that the forecast rule trades (condors).
    iv = iv.dropna()
    values = np.stack([np.outer(FORECAST_WIDTH * iv.to_numpy() * math.sqrt(h / 252),
                                norm.ppf(LEVELS)) for h in HORIZONS], axis=1)
    forecasts = ForecastPanel(pd.DatetimeIndex(iv.index), HORIZONS, LEVELS, values)
    panel = build_market_panel(frame, data.build_features(frame), forecasts, "2017-01-01",
                               "2017-12-31", SurfaceConfig(), price_scale=0.1)
    env = SpyOptionsEnv(panel, EnvConfig(underlying_price_scale=0.1), mode="eval")
    out = {}
    for name in POLICIES:
        policy = make_baseline(name, env.observation_names, seed=3)
        out[name] = run_episode(env, policy, seed=3)
    return out


def reference(returns: pd.Series) -> dict[str, float]:
    """empyrical-reloaded's value of each equity-curve metric (our units: percent)."""
    kw = {"annualization": BARS_PER_YEAR}
    return {
        "total_return_pct": 100 * empyrical.cum_returns_final(returns),
        "annual_return_pct": 100 * empyrical.annual_return(returns, **kw),
        "annual_vol_pct": 100 * empyrical.annual_volatility(returns, **kw),
        "sharpe": empyrical.sharpe_ratio(returns, **kw),
        "sortino": empyrical.sortino_ratio(returns, **kw),
        "max_drawdown_pct": -100 * empyrical.max_drawdown(returns),
        "calmar": empyrical.calmar_ratio(returns, **kw),
    }


@pytest.mark.parametrize("name", POLICIES)
def test_every_curve_metric_matches_empyrical(name):
    result = episodes()[name]
    returns = pd.Series(bar_returns(result), index=result.equity.index[1:])
    ours = performance_metrics(result, BARS_PER_YEAR)
    for key, expected in reference(returns).items():
        if np.isfinite(expected):
            assert ours[key] == pytest.approx(expected, abs=TOLERANCE, rel=0), key
        elif key == "sharpe":
            assert ours[key] == 0.0  # our documented convention for a flat curve
        else:
            assert ours[key] is None, (key, ours[key])
    assert name == "cash" or np.isfinite(reference(returns)["sortino"])


def test_sortino_counts_gains_as_zero_downside():
    """Sortino & Price: downside deviation over all periods, not over the losing ones only."""
    result = episodes()["short_put_spread"]
    r = bar_returns(result)
    downside_all = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    downside_losers = math.sqrt(np.mean(r[r < 0] ** 2))
    expected = r.mean() / downside_all * math.sqrt(BARS_PER_YEAR)
    ours = performance_metrics(result, BARS_PER_YEAR)["sortino"]
    assert ours == pytest.approx(expected, abs=TOLERANCE)
    assert abs(ours) > abs(r.mean() / downside_losers * math.sqrt(BARS_PER_YEAR))


@pytest.mark.parametrize("name", [p for p in POLICIES if p not in ("cash", "buy_and_hold")])
def test_trade_statistics_match_the_ledger(name):
    result = episodes()[name]
    ours = performance_metrics(result, BARS_PER_YEAR)
    pnl = result.trades["pnl_usd"].to_numpy(dtype=float)
    assert ours["trades"] == len(pnl) > 0
    assert ours["win_rate"] == pytest.approx(np.mean(pnl > 0), abs=TOLERANCE)
    assert ours["avg_pnl_per_trade_usd"] == pytest.approx(pnl.mean(), abs=TOLERANCE)
    losses = -pnl[pnl < 0].sum()
    expected_pf = pnl[pnl > 0].sum() / losses if losses > 0 else None
    assert ours["profit_factor"] == (pytest.approx(expected_pf) if expected_pf else None)


def test_metrics_that_do_not_apply_are_none():
    hold = performance_metrics(episodes()["buy_and_hold"], BARS_PER_YEAR)
    for key in ("trades", "win_rate", "avg_pnl_per_trade_usd", "profit_factor", "exposure",
                "return_on_margin_pct"):
        assert hold[key] is None, key
    cash = performance_metrics(episodes()["cash"], BARS_PER_YEAR)
    assert cash["trades"] == 0
    for key in ("win_rate", "profit_factor", "sortino", "calmar", "probabilistic_sharpe"):
        assert cash[key] is None, key


def test_probabilistic_sharpe_and_min_track_record_follow_their_formulas():
    r = np.random.default_rng(5).standard_t(5, 500) * 0.01 + 0.001
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = skew(r), kurtosis(r, fisher=False)
    var = 1 - g3 * sr + (g4 - 1) / 4 * sr**2
    assert probabilistic_sharpe_ratio(r) == pytest.approx(
        norm.cdf(sr * math.sqrt(len(r) - 1) / math.sqrt(var)), abs=TOLERANCE)
    min_trl = min_track_record_bars(r, confidence=0.95)
    assert min_trl == pytest.approx(1 + var * (norm.ppf(0.95) / sr) ** 2, abs=1e-6)
    # MinTRL is the length at which the PSR of this Sharpe, skew and kurtosis reaches 95%.
    z = sr * math.sqrt(min_trl - 1) / math.sqrt(var)
    assert norm.cdf(z) == pytest.approx(0.95, abs=1e-9)
    assert min_track_record_bars(-np.abs(r)) is None


def test_deflated_sharpe_falls_with_the_number_of_trials():
    rng = np.random.default_rng(0)
    few = deflated_sharpe_ratio(0.08, rng.normal(0, 0.03, 3), 250)
    many = deflated_sharpe_ratio(0.08, rng.normal(0, 0.03, 300), 250)
    assert 0 < many < few < 1


def _exact_bootstrap_median_quantile(sorted_values: np.ndarray, prob: float) -> float:
    """The prob-quantile of the median of n values resampled with replacement (n odd), exactly:
    the median is at most the k-th smallest value when at least (n + 1) / 2 draws are."""
    n = len(sorted_values)
    cdf = [1 - binom.cdf((n - 1) // 2, n, k / n) for k in range(1, n + 1)]
    return float(sorted_values[np.searchsorted(cdf, prob)])


@pytest.mark.parametrize("n", [5, 15])
def test_median_interval_matches_the_exact_bootstrap_distribution(n):
    values = np.random.default_rng(n).normal(0.4, 0.5, n)
    low, high = median_interval(values)
    ordered = np.sort(values)
    exact = (_exact_bootstrap_median_quantile(ordered, 0.025),
             _exact_bootstrap_median_quantile(ordered, 0.975))
    if n == 5:  # a resample's median is the lowest value with probability 0.058 > 0.025
        assert (low, high) == exact == (ordered[0], ordered[-1])
    else:  # P(median <= 4th value) = 0.0255: 10,000 resamples may land one value further in
        assert exact == (ordered[3], ordered[11])
        assert low in (ordered[3], ordered[4]) and high in (ordered[10], ordered[11])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=12))
def test_median_interval_holds_the_median_inside_the_values(values):
    low, high = median_interval(values, reps=2000)
    assert min(values) <= low <= float(np.median(values)) <= high <= max(values)


def test_median_interval_refuses_no_values():
    with pytest.raises(ValueError, match="at least one value"):
        median_interval([])


def test_sharpe_interval_is_arch_stationary_bootstrap_and_covers_the_estimate():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.001, 0.01, 300), rng.normal(0.0, 0.01, 300)
    block = block_length_bars(a, b)
    assert block >= 1
    ci = sharpe_diff_interval(a, b, BARS_PER_YEAR, block, 300, seed=2)
    assert ci["low"] < ci["estimate"] < ci["high"]
    assert ci == sharpe_diff_interval(a, b, BARS_PER_YEAR, block, 300, seed=2)  # seeded


def test_block_length_grows_with_serial_dependence():
    rng = np.random.default_rng(2)
    noise = rng.normal(size=2000)
    ar = np.empty_like(noise)
    ar[0] = noise[0]
    for t in range(1, len(ar)):
        ar[t] = 0.9 * ar[t - 1] + noise[t]
    assert block_length_bars(ar) > 3 * block_length_bars(noise)


def test_spa_rejects_only_when_a_model_is_truly_better():
    rng = np.random.default_rng(3)
    benchmark = rng.normal(0.0, 0.01, 1000)
    better = benchmark + 0.003 + rng.normal(0, 0.002, 1000)
    same = benchmark[:, None] + rng.normal(0, 0.002, (1000, 3))
    assert spa_test(benchmark, better, 5, 500, seed=0) < 0.01
    assert spa_test(benchmark, same, 5, 500, seed=0) > 0.05


def test_attribution_explains_a_short_put_spread_and_captures_greeks():
    result = episodes()["short_put_spread"]
    assert list(result.greeks.columns[:4]) == list(GREEK_COLUMNS)
    attribution = pnl_attribution(result)
    assert np.allclose(attribution[["delta", "gamma", "theta", "vega", "costs",
                                    "residual"]].sum(axis=1), attribution["total"])
    explained = attribution[["delta", "gamma", "theta", "vega", "costs"]].sum(axis=1)
    held = result.greeks["delta_shares"] != 0
    # Bars with a position held through them: the greeks explain most of the P&L.
    err = (attribution["total"] - explained)[held].abs().sum()
    assert err < 0.5 * attribution["total"][held].abs().sum()
    assert (result.greeks.loc[held, "theta_usd_per_day"] > 0).mean() > 0.9  # short premium
    assert pnl_attribution(episodes()["buy_and_hold"]) is None


def test_ledger_has_entry_and_exit_context():
    trades = episodes()["iron_condor"].trades
    assert (trades["exit_reason"] == "open_at_end").sum() <= 1
    closed = trades[trades["exit_reason"] != "open_at_end"]
    assert closed["exit_spot"].notna().all() and len(closed) > 10
    for column in ("entry_spot", "entry_iv", "entry_dte_days", "exit_reason",
                   "entry_delta_shares", "entry_theta_usd_per_day"):
        assert trades[column].notna().all(), column
    assert trades["entry_dte_days"].between(1, 60).all()
    assert set(trades["exit_reason"]) <= {"agent", "expiry", "open_at_end", "profit_target",
                                         "stop_loss", "dte_exit"}


def test_monthly_returns_compound_to_the_total():
    result = episodes()["forecast_rule"]
    months = monthly_returns(result).stack()
    total = np.prod(1 + months.to_numpy() / 100) - 1
    equity = result.equity["equity_usd"]
    assert total == pytest.approx(equity.iloc[-1] / equity.iloc[0] - 1, abs=TOLERANCE)


def test_rolling_sharpe_of_the_last_window_equals_the_window_sharpe():
    result = episodes()["iron_condor"]
    rolling = rolling_sharpe(result, BARS_PER_YEAR)
    r = bar_returns(result)[-63:]
    assert rolling.iloc[-1] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-9)


def test_one_colour_per_action():
    assert set(ACTION_COLOURS) == set(ACTION_NAMES)
    assert len(set(ACTION_COLOURS.values())) == len(ACTION_NAMES)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-0.05, 0.05), min_size=5, max_size=60))
def test_sortino_matches_empyrical_on_any_curve(returns):
    r = np.asarray(returns)
    equity = 1e5 * np.concatenate([[1.0], np.cumprod(1 + r)])
    index = pd.bdate_range("2020-01-01", periods=len(equity))
    frame = pd.DataFrame({"equity_usd": equity, "margin_used_usd": 0.0, "open_positions": 0,
                          "spot": 1.0}, index=index)
    result = EpisodeResult("x", frame, pd.DataFrame({"pnl_usd": []}), 1e5, 0.0)
    ours = performance_metrics(result)["sortino"]
    expected = empyrical.sortino_ratio(pd.Series(np.diff(equity) / equity[:-1]),
                                       annualization=252)
    if np.isfinite(expected):
        assert ours == pytest.approx(expected, abs=1e-9, rel=1e-9)
    else:
        assert ours is None


# ---------------------------------------------------------------- greeks from the quote source
class _DoubledGreekQuotes:
    """Model prices with gamma, theta and vega doubled (delta kept: strikes are chosen by it),
    under another name: a quote source whose greeks differ from the model surface's while its
    fills equal the model's."""

    name = "chain"

    def __init__(self, model) -> None:
        self.model, self.bars = model, model.bars

    def expiries(self, bar):
        return self.model.expiries(bar)

    def strikes(self, bar, expiry, option_type):
        return self.model.strikes(bar, expiry, option_type)

    def volume(self, bar, option_type, strike, expiry):
        return self.model.volume(bar, option_type, strike, expiry)

    def quote(self, bar_idx, option_type, strikes, expiry):
        from dataclasses import replace

        q = self.model.quote(bar_idx, option_type, strikes, expiry)
        return replace(q, gamma=2 * q.gamma,
                       theta_per_day=2 * q.theta_per_day,
                       vega_per_vol_point=2 * q.vega_per_vol_point)


class _OpenOnceAndHold:
    name = "open_once"

    def reset(self, seed=None):
        self.opened = False

    def act(self, observation, info, action_mask):
        from envs.actions import action_for_strategy

        action = action_for_strategy("bull_put_spread")
        if not self.opened and action_mask[action]:
            self.opened = True
            return action
        return 0


def test_evaluation_greeks_come_from_the_quote_source_that_fills():
    from options.quotes import ModelQuoteSource, quoted_position_greeks

    panel = embedded_panel("2017-01-01", "2017-03-31")
    cfg = EnvConfig(underlying_price_scale=SCALE)
    model = ModelQuoteSource(panel.market_bars(), SurfaceConfig())
    doubled = _DoubledGreekQuotes(model)
    results = {}
    for source in (model, doubled):
        env = SpyOptionsEnv(panel, cfg, mode="eval", quote_source=source, info_level="full")
        results[source.name] = (env, run_episode(env, _OpenOnceAndHold()))
    (_, on_model), (env, on_chain) = results["model"], results["chain"]
    same = ["equity_usd", "cash_usd", "margin_used_usd", "action"]  # same fills and marks
    pd.testing.assert_frame_equal(on_chain.equity[same], on_model.equity[same])
    held = on_chain.greeks[list(GREEK_COLUMNS)].abs().sum(axis=1) > 0
    assert held.sum() > 5
    # Every held bar's greeks are the source's: gamma, theta and vega twice the surface's.
    factor = np.array([1.0, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(on_chain.greeks.loc[held, list(GREEK_COLUMNS)].to_numpy(),
                               factor * on_model.greeks.loc[held, list(GREEK_COLUMNS)].to_numpy(),
                               rtol=1e-9, atol=1e-12)
    # ... and on the first held bar, the legs' quoted greeks at the opening bar.
    first = int(np.flatnonzero(held.to_numpy())[0])
    legs = env.trade_ledger()["legs"].iloc[0]
    from common.codecs import parse_ledger_legs

    quoted = quoted_position_greeks(doubled, first - 1, parse_ledger_legs(legs))
    np.testing.assert_allclose(on_chain.greeks.iloc[first][list(GREEK_COLUMNS)].to_numpy(float),
                               quoted, rtol=1e-12)


def test_model_source_position_greeks_are_the_surface_marks_at_its_dividend_yield():
    from options.positions import Fill, Leg, MarketState, Position
    from options.quotes import ModelQuoteSource, position_greeks, quoted_position_greeks

    panel = embedded_panel("2017-01-01", "2017-03-31")
    surface = SurfaceConfig()
    model = ModelQuoteSource(panel.market_bars(dividend_yield=0.015), surface)
    bar, date = 5, panel.dates[5]
    expiry = pd.Timestamp("2017-03-17")
    spot = float(panel.spot[bar])
    legs = (Leg("put", float(round(0.98 * spot)), expiry, -2),
            Leg("put", float(round(0.95 * spot)), expiry, 2))
    position = Position("bull_put_spread", legs, date, tuple(
        Fill(leg, date, leg.quantity_contracts, 1.0, 1.0, 0.0, "open") for leg in legs))
    market = MarketState(date, spot, float(panel.atm_iv[bar]), float(panel.rate[bar]), 0.015)
    mark = position.mark(market, surface, model.costs)
    assert position_greeks(model, bar, position) == (
        mark.delta_shares, mark.gamma_shares_per_usd, mark.theta_usd_per_day,
        mark.vega_usd_per_vol_point)
    # The scalar marks and the source's vectorised quotes agree (to rounding).
    np.testing.assert_allclose(position_greeks(model, bar, position),
                               quoted_position_greeks(model, bar, legs), rtol=1e-9)
