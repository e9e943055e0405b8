"""Statistics of per-bar return series: Sharpe-ratio inference and tests of one strategy
against several, through ``arch.bootstrap``.

* :func:`block_length_bars` - Politis-White (2004, with Patton-Politis-White 2009's correction)
  automatic block length of the stationary bootstrap, via ``arch.bootstrap.optimal_block_length``.
* :func:`sharpe_diff_interval` - stationary-bootstrap percentile interval of
  Sharpe(a) - Sharpe(b); both series are resampled with the same blocks, keeping their dependence.
* :func:`spa_test` - Hansen's (2005) test for superior predictive ability (``arch.bootstrap.SPA``).
* :func:`probabilistic_sharpe_ratio`, :func:`min_track_record_bars`, :func:`deflated_sharpe_ratio`
  - Bailey & Lopez de Prado (2012, 2014). Sharpe ratios there are per bar (not annualised).
* :func:`median_interval` - percentile-bootstrap interval of the median of a few independent
  values (PPO's Sharpe over training seeds).
"""

from __future__ import annotations

import math

import numpy as np

from common.lazy import lazy_module
from common.units import PERCENT_PER_UNIT

stats = lazy_module("scipy.stats")  # 0.5 s to import; training never reaches it

__all__ = [
    "EULER_GAMMA",
    "block_length_bars",
    "deflated_sharpe_ratio",
    "median_interval",
    "min_track_record_bars",
    "per_bar_sharpe",
    "probabilistic_sharpe_ratio",
    "sharpe_diff_interval",
    "spa_test",
]

EULER_GAMMA = 0.5772156649015329
_FLAT_SD = 1e-12  # a per-bar standard deviation below this is a flat series


def _arch_bootstrap():
    """``arch.bootstrap``, imported when first used: arch imports slowly (about 0.5 s, with
    statsmodels and matplotlib), and every command that reads a config imports this module."""
    # arch (GARCH fits, bootstraps) is heavy: imported only where it is used
    from arch import bootstrap

    return bootstrap


def median_interval(values, level: float = 0.95, reps: int = 10_000,
                    seed: int = 0) -> tuple[float, float]:
    """(low, high): percentile-bootstrap interval of the median of independent ``values``.

    The values are resampled with replacement ``reps`` times (a fixed ``seed``, so a report
    is reproducible). For PPO's Sharpe over training seeds it says how far the median of so
    few seeds could move with other seeds. With five seeds the 95% interval is their whole
    range (a resample's median is the lowest value with probability 0.058); with fifteen it
    narrows to about the 4th to the 12th value.
    """
    values = np.asarray(values, float)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("median_interval needs at least one value, all finite")
    draws = np.random.default_rng(seed).choice(values, size=(reps, values.size))
    medians = np.median(draws, axis=1)
    tail = PERCENT_PER_UNIT * (1.0 - level) / 2.0
    low, high = np.percentile(medians, [tail, PERCENT_PER_UNIT - tail])
    return float(low), float(high)


def per_bar_sharpe(returns: np.ndarray) -> float:
    """Mean over sample standard deviation (ddof=1) of per-bar returns; 0 for a flat series."""
    r = np.asarray(returns, float)
    sd = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
    return float(np.mean(r) / sd) if sd > _FLAT_SD else 0.0


def block_length_bars(*series: np.ndarray) -> int:
    """Automatic stationary-bootstrap block length: the largest Politis-White estimate over the
    given series (at least 1 bar). Flat series are skipped (their estimate is undefined)."""
    lengths = [1.0]
    for x in series:
        x = np.asarray(x, float)
        if len(x) > 2 and np.std(x) > _FLAT_SD:
            estimate = float(_arch_bootstrap().optimal_block_length(x)["stationary"].iloc[0])
            if math.isfinite(estimate):
                lengths.append(estimate)
    return max(1, math.ceil(max(lengths)))


def sharpe_diff_interval(returns_a: np.ndarray, returns_b: np.ndarray, bars_per_year: float,
                         block_bars: int, reps: int, seed: int, level: float = 0.95) -> dict:
    """Annualised Sharpe(a) - Sharpe(b) and its stationary-bootstrap percentile interval.

    Returns ``{"estimate", "low", "high", "level"}``.
    """
    a, b = np.asarray(returns_a, float), np.asarray(returns_b, float)
    if len(a) != len(b) or len(a) < 3:
        raise ValueError("need two aligned return series of at least 3 bars")
    scale = math.sqrt(bars_per_year)

    def diff(x: np.ndarray, y: np.ndarray) -> float:
        return (per_bar_sharpe(x) - per_bar_sharpe(y)) * scale

    bootstrap = _arch_bootstrap().StationaryBootstrap(block_bars, a, b, seed=seed)
    low, high = bootstrap.conf_int(diff, reps=reps, method="percentile", size=level)[:, 0]
    return {"estimate": diff(a, b), "low": float(low), "high": float(high), "level": level}


def spa_test(benchmark_returns: np.ndarray, model_returns: np.ndarray, block_bars: int,
             reps: int, seed: int) -> float:
    """Hansen's SPA p-value of "no model beats the benchmark" (consistent p-value).

    Losses are negative per-bar returns. ``model_returns`` is (bars,) or (bars, models); a small
    p-value is evidence that the best model has a higher mean return than the benchmark, with
    the choice of that best model accounted for.
    """
    benchmark = -np.asarray(benchmark_returns, float).reshape(-1, 1)
    models = -np.asarray(model_returns, float)
    if models.ndim == 1:
        models = models[:, None]
    spa = _arch_bootstrap().SPA(benchmark, models, block_size=block_bars, reps=reps,
                                bootstrap="stationary", seed=seed)
    spa.compute()
    return float(spa.pvalues["consistent"])


def _variance_term(sharpe: float, skew: float, kurtosis: float) -> float:
    return max(1e-12, 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2)


def probabilistic_sharpe_ratio(returns: np.ndarray, benchmark_sharpe_per_bar: float = 0.0
                               ) -> float | None:
    """P(true per-bar Sharpe > benchmark) given the sample's length, skew and kurtosis
    (Bailey & Lopez de Prado 2012). None for a flat or too short series."""
    r = np.asarray(returns, float)
    if len(r) < 3 or np.std(r, ddof=1) <= _FLAT_SD:
        return None
    sr = per_bar_sharpe(r)
    denom = math.sqrt(_variance_term(sr, float(stats.skew(r)),
                                     float(stats.kurtosis(r, fisher=False))))
    return float(stats.norm.cdf((sr - benchmark_sharpe_per_bar) * math.sqrt(len(r) - 1) / denom))


def min_track_record_bars(returns: np.ndarray, benchmark_sharpe_per_bar: float = 0.0,
                          confidence: float = 0.95) -> float | None:
    """Bars of this quality needed for PSR(benchmark) to reach ``confidence`` (Bailey & Lopez
    de Prado 2012). None when the Sharpe is not above the benchmark (no length suffices)."""
    r = np.asarray(returns, float)
    if len(r) < 3 or np.std(r, ddof=1) <= _FLAT_SD:
        return None
    sr = per_bar_sharpe(r)
    if sr <= benchmark_sharpe_per_bar:
        return None
    var = _variance_term(sr, float(stats.skew(r)), float(stats.kurtosis(r, fisher=False)))
    return float(1.0 + var * (stats.norm.ppf(confidence) / (sr - benchmark_sharpe_per_bar)) ** 2)


def expected_max_sharpe(trial_sharpes_per_bar: np.ndarray) -> float:
    """Expected maximum per-bar Sharpe of N trials whose true Sharpe is 0 (the DSR benchmark)."""
    trials = np.asarray(trial_sharpes_per_bar, float)
    n = len(trials)
    sd = float(np.std(trials, ddof=1))
    return sd * ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n)
                 + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n * math.e)))


def deflated_sharpe_ratio(sharpe_per_bar: float, trial_sharpes_per_bar: np.ndarray,
                          n_bars: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Probability that the best of several trials has a true Sharpe above zero after
    correcting for the number of trials (Bailey & Lopez de Prado 2014): the PSR against the
    expected maximum Sharpe of ``len(trial_sharpes_per_bar)`` null trials.

    ``n_bars`` is the number of returns of the best trial; NaN for fewer than 2 trials.
    """
    trials = np.asarray(trial_sharpes_per_bar, float)
    if len(trials) < 2 or n_bars < 3:
        return float("nan")
    denom = math.sqrt(_variance_term(sharpe_per_bar, skew, kurtosis))
    return float(stats.norm.cdf((sharpe_per_bar - expected_max_sharpe(trials))
                                * math.sqrt(n_bars - 1) / denom))
