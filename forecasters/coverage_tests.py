"""Backtests of interval forecasts: Kupiec, Christoffersen, and the model confidence set.

Pure functions over a 0/1 series of interval misses (1: the outcome fell outside). For h-bar
forecasts made every bar, consecutive misses overlap by h - 1 bars, so for h > 1 Christoffersen's
independence test rejects by construction and Kupiec's test is over-sized; both are reported as
computed, with that caveat in the report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from common.lazy import lazy_module

# scipy.stats adds about 0.5 s to a process's start: loaded at its first use
stats = lazy_module("scipy.stats")

MCS_SIZE = 0.10
"""Models outside the 90% model confidence set are excluded (Hansen, Lunde and Nason 2011)."""
MCS_REPS = 1000
MCS_SEED = 0


def _log_likelihood(misses: int, n: int, rate: float) -> float:
    """Bernoulli log-likelihood of ``misses`` in ``n`` at ``rate`` (0 log 0 = 0)."""
    out = 0.0
    if misses:
        out += misses * math.log(rate) if rate > 0 else -math.inf
    if n - misses:
        out += (n - misses) * math.log(1.0 - rate) if rate < 1 else -math.inf
    return out


def kupiec_pvalue(miss: np.ndarray, coverage: float) -> float:
    """p-value of Kupiec's unconditional coverage test: miss rate == 1 - coverage (LR, chi2(1))."""
    miss = np.asarray(miss, bool)
    n, x = len(miss), int(miss.sum())
    if n == 0:
        return float("nan")
    statistic = -2.0 * (_log_likelihood(x, n, 1.0 - coverage) - _log_likelihood(x, n, x / n))
    return float(stats.chi2.sf(max(statistic, 0.0), df=1))


def christoffersen_pvalue(miss: np.ndarray) -> float:
    """p-value of Christoffersen's independence test (first-order Markov vs i.i.d. misses)."""
    miss = np.asarray(miss, int)
    if len(miss) < 3:
        return float("nan")
    before, after = miss[:-1], miss[1:]
    n00 = int(((before == 0) & (after == 0)).sum())
    n01 = int(((before == 0) & (after == 1)).sum())
    n10 = int(((before == 1) & (after == 0)).sum())
    n11 = int(((before == 1) & (after == 1)).sum())
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    restricted = _log_likelihood(n01 + n11, n00 + n01 + n10 + n11, pi)
    unrestricted = _log_likelihood(n01, n00 + n01, pi0) + _log_likelihood(n11, n10 + n11, pi1)
    statistic = -2.0 * (restricted - unrestricted)
    return float(stats.chi2.sf(max(statistic, 0.0), df=1))


def model_confidence_set(losses: pd.DataFrame, size: float = MCS_SIZE) -> dict[str, float]:
    """MCS p-value of each model (column) from per-date losses (rows), via ``arch.bootstrap.MCS``.

    Rows with any missing loss are dropped. A model is in the (1 - size) set when its p-value
    exceeds ``size``. Stationary bootstrap with automatic block length, fixed seed.
    """
    # arch (GARCH fits, bootstraps) is heavy: imported only where it is used
    from arch.bootstrap import MCS

    losses = losses.dropna()
    if losses.shape[1] < 2 or len(losses) < 10:
        return {str(c): float("nan") for c in losses.columns}
    # A plain array: arch 8 indexes the frame's columns with a float array, which pandas 3's
    # string columns refuse; the models are mapped back to their names by position.
    mcs = MCS(
        losses.to_numpy(dtype=float),
        size=size,
        reps=MCS_REPS,
        method="R",
        bootstrap="stationary",
        seed=MCS_SEED,
    )
    mcs.compute()
    # Model indices come back as ints or one-element arrays depending on the elimination path.
    by_index = {int(np.asarray(k).ravel()[0]): float(p) for k, p in mcs.pvalues["Pvalue"].items()}
    return {str(model): by_index[k] for k, model in enumerate(losses.columns)}
