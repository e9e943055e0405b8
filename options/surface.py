"""Implied-volatility surface: SSVI total variance driven by the volatility-index level.

The at-the-money level at date t comes from the market frame's ``iv_index`` (a 30-day
implied volatility such as VIX/100) where present, and from the named proxy of
:mod:`options.iv_proxy` elsewhere (:func:`atm_iv_series`), times ``index_to_atm_ratio`` (VIX
is a variance-swap rate and sits above at-the-money vol; the ratio is calibrated). Given that reference level
``sigma`` (the ``atm_iv`` argument, clipped to ``[iv_floor_annualized, iv_cap_annualized]``),
a strike's implied vol is (:func:`iv_at`) ``sqrt(w(k, theta_T) / T)`` with the SSVI total
variance of Gatheral & Jacquier, "Arbitrage-free SVI volatility surfaces", Quantitative
Finance 14 (2014)::

    w(k, theta)  = theta / 2 * (1 + rho phi k + sqrt((phi k + rho)^2 + 1 - rho^2))
    phi(theta)   = eta / (theta^gamma (1 + theta)^(1 - gamma))          (power law, eq. 4.5)
    k            = log(strike / spot)                                   (log-moneyness)

The at-the-money total variance ``theta_T`` follows a Heston-style mean-reverting variance
(expected variance ``v(s) = L + (v0 - L) e^{-kappa s}``, ``L = long_run_iv_annualized^2``,
``kappa = term_mean_reversion_per_year``) whose instantaneous level ``v0`` is set so that the
reference horizon ``T_ref = term_reference_dte_days / 365`` has ``theta = sigma^2 T_ref``::

    theta_T = L T + (sigma^2 - L) H(T) / f_ref,  H(T) = (1 - e^{-kappa T}) / kappa,
    f_ref   = H(T_ref) / T_ref

which is increasing in T whenever ``v0 >= 0``, i.e. ``sigma >= sigma_min = sqrt(L (1 -
f_ref))``. Below ``sigma_min`` the term structure is that of ``sigma_min`` scaled by
``(sigma / sigma_min)^2`` (still increasing, still ``sigma`` at ``T_ref``).

The smile's shape moves with the level: with ``x = log(sigma / shape_reference_iv_annualized)``,
``rho = tanh(atanh(ssvi_rho) + ssvi_rho_per_log_level x)`` and ``eta = ssvi_eta
exp(ssvi_eta_per_log_level x)``; for each fixed level (one bar) the surface is one SSVI.

No static arbitrage (Gatheral & Jacquier 2014): ``theta_T`` non-decreasing in T (above) and
``d(theta phi)/d theta = phi (1 - gamma) / (1 + theta) >= 0`` exclude calendar spreads
(their Theorem 4.1); ``gamma`` in (0, 1/2] and ``eta (1 + |rho|) <= 2`` exclude butterflies
(Remark 4.4: then ``theta phi (1 + |rho|) < 4`` and ``theta phi^2 (1 + |rho|) <= 4`` for
every theta, Theorem 4.2), and the wings' total-variance slope ``theta phi (1 + |rho|) / 2``
stays below 1, inside Lee's moment bound of 2. These conditions depend on the level through
rho and eta: :func:`surface_arbitrage_report` checks them for volatility-index levels 9-80
and checks the model's prices over a grid (:mod:`options.static_arbitrage`);
:func:`load_surface_config` refuses a file that fails. Nothing is clipped inside that domain;
below one hour to expiry the vol of one hour is used (total variance then shrinks linearly to
0 at expiry, which keeps calendars; outside the checked domain).

Log-moneyness is taken against spot, not the forward: :func:`iv_at` receives no rate, and the
callers price with the rate of each bar. The calendar check at fixed forward moneyness runs
with the file's dividend yield and rates of 0-6%; at those carries the shift between spot and
forward moneyness (``(r - q) T``) keeps a wide margin (see the tests).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from functools import cache, cached_property, lru_cache
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import UserInputError
from common.io import content_key, write_json_atomic
from common.paths import user_cache_root
from common.units import TRADING_DAYS_PER_YEAR
from options.iv_proxy import (
    DEFAULT_IV_PROXY,
    IvProxyName,
    implied_vol_level,
    realized_vol_series,
)
from options.pricing import DAYS_PER_YEAR
from options.static_arbitrage import (
    DEFAULT_GRID,
    ArbitrageGrid,
    ArbitrageReport,
    Violation,
    check_iv_function,
)

__all__ = [
    "INDEX_POINTS_PER_UNIT",
    "MIN_T_YEARS",
    "SurfaceArbitrageError",
    "SurfaceConfig",
    "SurfaceParams",
    "atm_iv_series",
    "atm_term_iv",
    "atm_total_variance",
    "iv_at",
    "iv_at_params",
    "iv_at_scalar",
    "load_surface_config",
    "read_surface_file",
    "realized_vol_series",
    "ssvi_shape",
    "surface_arbitrage_report",
    "surface_params",
]

MIN_T_YEARS = 1.0 / (DAYS_PER_YEAR * 24.0)
"""One hour: shorter expiries get this expiry's implied vol (see the module docstring)."""
INDEX_POINTS_PER_UNIT = 100.0
"""Volatility-index points per unit of annualised vol (VIX 20 = 0.20)."""
SSVI_MAX_GAMMA = 0.5
"""Largest power-law exponent for which ``eta (1 + |rho|) <= 2`` rules out butterflies."""


class SurfaceConfig(BaseModel):
    """Parameters of the volatility surface; unknown keys are rejected.

    Defaults (the built-in, uncalibrated surface; calibrated files ``configs/surface_*.yaml``
    come from ``python -m options.calibrate`` and replace the fitted ones):

    - ``index_to_atm_ratio = 1.0``: 30-day at-the-money vol per unit of the volatility index.
      VIX is a variance-swap rate, which the put skew lifts 1-3 points above ATM vol (fits on
      SPX 2019 and SPY 2021 chains give about 0.8-0.9); 1.0 keeps the architecture's reading
      of ``iv_index`` as the ATM level in the uncalibrated default.
    - ``long_run_iv_annualized = 0.20`` and ``term_mean_reversion_per_year = 4.0``: the
      mean-reverting ATM variance term structure (Heston 1993; Gatheral, *The Volatility
      Surface* (2006), ch. 3) towards VIX's long-run mean of about 19-20 (CBOE, 1990-2020):
      upward sloping when the index is low, inverted when it is high.
    - ``term_reference_dte_days = 30``: the horizon of ``iv_index`` (VIX is a 30-day measure).
    - ``ssvi_rho = -0.7``, ``ssvi_eta = 1.0``, ``ssvi_gamma = 0.5``: an equity-index smirk
      (Gatheral & Jacquier 2014 fit SPX with rho about -0.7 and eta about 1-1.5 for
      gamma = 1/2); ATM skew ``rho eta / (2 sqrt T)`` per unit of log-moneyness, about -1.2 at
      30 days.
    - ``ssvi_rho_per_log_level = 0``, ``ssvi_eta_per_log_level = 0``: how the shape moves with
      the level, per unit of ``log(level / shape_reference_iv_annualized)`` (0.15).
    - ``iv_floor_annualized = 0.05`` and ``iv_cap_annualized = 2.0``: bounds of the reference
      ATM level (S&P 500 implied vols have stayed within these; VIX all-time low 9.1, high
      82.7 intraday). They bound the input level only; strikes' vols are not clipped.
    - ``dividend_yield_annualized = None``: the continuous dividend yield calibrated from
      put-call parity on real chains; None leaves the environment's ``dividend_yield``
      (``EnvConfig.dividend_yield``) in charge. Where set, it is the yield to price with.
    - ``realized_window_bars = 21`` (one trading month on daily bars), annualised with the
      frame's own bars per year (passed to :func:`atm_iv_series`): the
      realised-volatility proxy, close-to-close.
    - ``fallback_iv_to_realized_ratio = 1.2``: the ratio of implied to trailing realised
      volatility before any overlap with ``iv_index`` exists. Implied vol exceeds realised on
      average (the variance risk premium; Carr & Wu 2009, Bollerslev, Tauchen & Zhou 2009);
      over 1990-2018 the VIX averaged about 1.2 times the S&P 500's trailing one-month
      realised vol.
    - ``min_calibration_overlap_bars = 60``: dates with both ``iv_index`` and realised vol
      needed before the calibrated ratio replaces the fallback.
    - ``iv_proxy = "garch_vrp"``: what prices bars without ``iv_index``
      (:mod:`options.iv_proxy`): ``garch_vrp`` (a causal GJR-GARCH 30-day forecast times the
      VIX/GARCH ratio of 2014-2015), ``realized_ratio`` (realised vol times the ratio above and
      its fallback; the three previous keys) or ``none`` (refuse). Not a surface-file key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    index_to_atm_ratio: float = Field(1.0, gt=0.0)
    long_run_iv_annualized: float = Field(0.20, gt=0.0)
    term_mean_reversion_per_year: float = Field(4.0, ge=0.0, le=100.0)
    term_reference_dte_days: float = Field(30.0, gt=0.0)
    ssvi_rho: float = Field(-0.7, gt=-1.0, lt=1.0)
    ssvi_rho_per_log_level: float = Field(0.0, ge=-10.0, le=10.0)
    ssvi_eta: float = Field(1.0, gt=0.0)
    ssvi_eta_per_log_level: float = Field(0.0, ge=-10.0, le=10.0)
    ssvi_gamma: float = Field(0.5, gt=0.0, lt=1.0)
    shape_reference_iv_annualized: float = Field(0.15, gt=0.0)
    dividend_yield_annualized: float | None = Field(None, ge=-0.05, le=0.2)
    iv_floor_annualized: float = Field(0.05, gt=0.0)
    iv_cap_annualized: float = Field(2.0, gt=0.0)
    realized_window_bars: int = Field(21, ge=2)
    fallback_iv_to_realized_ratio: float = Field(1.2, gt=0.0)
    min_calibration_overlap_bars: int = Field(60, ge=1)
    iv_proxy: IvProxyName = DEFAULT_IV_PROXY

    @cached_property
    def params(self) -> SurfaceParams:
        """The scalar constants of this config, computed once (see :func:`surface_params`)."""
        return surface_params(self)

    def model_copy(self, *, update=None, deep: bool = False) -> SurfaceConfig:
        """A copy with ``update`` applied; the cached :attr:`params` are recomputed for it
        (pydantic copies the instance dict, which holds the cache of the original)."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("params", None)
        return copy

    @model_validator(mode="after")
    def _floor_below_cap(self) -> SurfaceConfig:
        if self.iv_floor_annualized >= self.iv_cap_annualized:
            raise ValueError(
                f"iv_floor_annualized ({self.iv_floor_annualized}) must be below "
                f"iv_cap_annualized ({self.iv_cap_annualized})"
            )
        return self


class SurfaceParams(NamedTuple):
    """:class:`SurfaceConfig` reduced to the numbers :func:`iv_at_params` needs."""

    long_run_var: float          # L
    kappa: float
    ref_t_years: float           # T_ref
    ref_h_factor: float          # f_ref = H(T_ref) / T_ref
    min_level_var: float         # sigma_min^2 = L (1 - f_ref)
    rho_atanh: float
    rho_per_log_level: float
    eta: float
    eta_per_log_level: float
    gamma: float
    shape_reference_iv: float
    level_floor: float
    level_cap: float


def _h(t_years, kappa: float):
    """H(T) = (1 - e^{-kappa T}) / kappa (-> T as kappa -> 0), numpy."""
    t = np.asarray(t_years, dtype=float)
    if kappa * float(np.max(t, initial=0.0)) < 1e-10:
        return t * (1.0 - 0.5 * kappa * t)
    return -np.expm1(-kappa * t) / kappa


def _h_scalar(t_years: float, kappa: float) -> float:
    x = kappa * t_years
    return -math.expm1(-x) / kappa if x > 1e-10 else t_years * (1.0 - 0.5 * x)


def surface_params(cfg: SurfaceConfig) -> SurfaceParams:
    """Precompute the scalar surface constants once (for loops over many strikes or steps)."""
    kappa = cfg.term_mean_reversion_per_year
    t_ref = cfg.term_reference_dte_days / DAYS_PER_YEAR
    f_ref = _h_scalar(t_ref, kappa) / t_ref
    long_run = cfg.long_run_iv_annualized**2
    return SurfaceParams(
        long_run, kappa, t_ref, f_ref, max(long_run * (1.0 - f_ref), 0.0),
        math.atanh(cfg.ssvi_rho), cfg.ssvi_rho_per_log_level, cfg.ssvi_eta,
        cfg.ssvi_eta_per_log_level, cfg.ssvi_gamma, cfg.shape_reference_iv_annualized,
        cfg.iv_floor_annualized, cfg.iv_cap_annualized,
    )


def _level(atm_iv, p: SurfaceParams):
    return np.clip(np.asarray(atm_iv, dtype=float), p.level_floor, p.level_cap)


def _shape(level, p: SurfaceParams):
    """(rho, eta) at reference level(s) ``level`` (already clipped)."""
    x = np.log(level / p.shape_reference_iv)
    return np.tanh(p.rho_atanh + p.rho_per_log_level * x), p.eta * np.exp(p.eta_per_log_level * x)


def _theta(level, t_years, p: SurfaceParams):
    """ATM total variance at ``t_years`` (>= 0) for reference level(s) ``level``."""
    var = level * level
    eff = np.maximum(var, p.min_level_var)
    h = _h(t_years, p.kappa)
    theta = p.long_run_var * t_years + (eff - p.long_run_var) * h / p.ref_h_factor
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(eff > 0, var / np.where(eff > 0, eff, 1.0), 1.0)
    return np.maximum(theta * scale, 0.0)


def _ssvi_w(log_m, theta, rho, eta, gamma: float):
    """SSVI total variance; theta > 0."""
    phi = eta / (np.power(theta, gamma) * np.power(1.0 + theta, 1.0 - gamma))
    pk = phi * log_m
    return 0.5 * theta * (1.0 + rho * pk + np.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))


def ssvi_shape(atm_iv, cfg: SurfaceConfig) -> tuple[np.ndarray, np.ndarray]:
    """SSVI ``(rho, eta)`` at reference ATM level(s) ``atm_iv`` (after the level's bounds)."""
    p = cfg.params
    return _shape(_level(atm_iv, p), p)


def atm_total_variance(atm_iv, t_years, cfg: SurfaceConfig):
    """ATM total implied variance ``theta_T`` (decimal^2 x years), vectorised."""
    p = cfg.params
    return _theta(_level(atm_iv, p), np.asarray(t_years, dtype=float), p)


def atm_term_iv(atm_iv, t_years, cfg: SurfaceConfig):
    """At-the-money implied vol at expiry ``t_years`` given the reference-horizon ATM vol."""
    t = np.maximum(np.asarray(t_years, dtype=float), MIN_T_YEARS)
    return np.sqrt(atm_total_variance(atm_iv, t, cfg) / t)


def _iv(atm, s, k_, t, p: SurfaceParams):
    level = _level(atm, p)
    t_eff = np.maximum(t, MIN_T_YEARS)
    theta = np.maximum(_theta(level, t_eff, p), 1e-300)
    rho, eta = _shape(level, p)
    w = _ssvi_w(np.log(k_ / s), theta, rho, eta, p.gamma)
    return np.sqrt(w / t_eff)


def iv_at(atm_iv, spot, strike, t_years, cfg: SurfaceConfig):
    """Implied volatility of each strike, vectorised with broadcasting.

    Args:
        atm_iv: at-the-money implied vol at the reference horizon
            (``cfg.term_reference_dte_days``), e.g. from :func:`atm_iv_series`; decimal.
        spot: underlying price (> 0).
        strike: strike (> 0).
        t_years: time to expiry in years of 365 days (>= 0).
        cfg: surface parameters.

    Returns:
        Annualised implied vol (decimal) of the SSVI surface (module docstring); a float for
        scalar input.
    """
    atm = np.asarray(atm_iv, dtype=float)
    s = np.asarray(spot, dtype=float)
    k_ = np.asarray(strike, dtype=float)
    t = np.asarray(t_years, dtype=float)
    for name, arr in (("atm_iv", atm), ("spot", s), ("strike", k_), ("t_years", t)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite, got {arr[~np.isfinite(arr)].ravel()[0]!r}")
    if np.any(atm < 0):
        raise ValueError("atm_iv must be >= 0")
    if np.any(s <= 0) or np.any(k_ <= 0):
        raise ValueError("spot and strike must be > 0")
    if np.any(t < 0):
        raise ValueError("t_years must be >= 0")
    iv = _iv(atm, s, k_, t, cfg.params)
    return float(iv) if iv.ndim == 0 else iv


def iv_at_params(
    p: SurfaceParams, atm_iv: float, spot: float, strike: float, t_years: float
) -> float:
    """Scalar surface vol from precomputed :class:`SurfaceParams` (``math`` only)."""
    level = min(max(atm_iv, p.level_floor), p.level_cap)
    t = t_years if t_years > MIN_T_YEARS else MIN_T_YEARS
    var = level * level
    eff = var if var > p.min_level_var else p.min_level_var
    x = p.kappa * t
    h = -math.expm1(-x) / p.kappa if x > 1e-10 else t * (1.0 - 0.5 * x)
    theta = p.long_run_var * t + (eff - p.long_run_var) * h / p.ref_h_factor
    if eff > 0:
        theta *= var / eff
    theta = max(theta, 1e-300)
    lx = math.log(level / p.shape_reference_iv)
    rho = math.tanh(p.rho_atanh + p.rho_per_log_level * lx)
    eta = p.eta * math.exp(p.eta_per_log_level * lx)
    phi = eta / (theta**p.gamma * (1.0 + theta) ** (1.0 - p.gamma))
    pk = phi * math.log(strike / spot)
    w = 0.5 * theta * (1.0 + rho * pk + math.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))
    return math.sqrt(w / t)


def iv_at_scalar(
    atm_iv: float, spot: float, strike: float, t_years: float, cfg: SurfaceConfig
) -> float:
    """Scalar twin of :func:`iv_at` (``math`` only); inputs are not validated beyond what
    ``math.log``/``math.sqrt`` reject. In a loop, call :func:`surface_params` once and
    :func:`iv_at_params` per strike instead."""
    return iv_at_params(cfg.params, atm_iv, spot, strike, t_years)


def atm_iv_series(frame: pd.DataFrame, cfg: SurfaceConfig | None = None, *,
                  bars_per_year: float = TRADING_DAYS_PER_YEAR,
                  rows: pd.Series | None = None) -> pd.Series:
    """Reference-horizon at-the-money implied vol for every row of a market frame.

    ``iv_index`` where present; elsewhere the proxy named by ``cfg.iv_proxy``
    (:mod:`options.iv_proxy`: ``garch_vrp`` by default, ``realized_ratio``, or ``none``, which
    leaves such rows NaN and refuses a frame with no implied vol at all). Every proxy at t
    depends on rows up to t only: truncating the frame after t does not change it. The result is
    multiplied by ``cfg.index_to_atm_ratio``. Rows the proxy cannot price yet (too little
    history) are NaN.

    ``bars_per_year`` annualises the proxies: it must be the frame's own
    (``data.bars_per_year(frame.index)``, the one source of truth; 252 for daily bars, about
    19,656 for 5-minute bars), which the environment passes. ``rows`` (a boolean Series; None:
    all) are the rows the caller reads; others may be left NaN where that saves proxy fits
    (:func:`options.iv_proxy.implied_vol_level`).

    Returns:
        Series named ``atm_iv_annualized`` on the frame's index.
    """
    cfg = cfg or SurfaceConfig()
    if "close" not in frame.columns:
        raise ValueError(
            f"market frame needs a 'close' column for the implied-vol proxy; "
            f"columns are {list(frame.columns)}"
        )
    if not bars_per_year > 0:
        raise ValueError(f"bars_per_year must be > 0, got {bars_per_year}")
    level = implied_vol_level(frame, cfg, bars_per_year=bars_per_year, rows=rows)
    return (level * cfg.index_to_atm_ratio).rename("atm_iv_annualized")


SURFACE_YAML_KEYS = ("surface", "provenance")
"""Top-level keys of a calibrated surface file: ``surface`` (the :class:`SurfaceConfig`
fields) and ``provenance`` (how it was fitted: files, dates, quote counts, residuals)."""
CHECK_LEVEL_STEPS = 285
"""Levels (evenly spaced over the grid's index range) at which the closed-form SSVI
conditions are checked."""


class SurfaceArbitrageError(UserInputError):
    """A surface file whose prices or SSVI parameters admit static arbitrage."""


def _closed_form_violations(cfg: SurfaceConfig, grid: ArbitrageGrid) -> tuple[list, int]:
    """Gatheral-Jacquier conditions over the grid's index range: ``gamma <= 1/2`` and
    ``eta (1 + |rho|) <= 2`` at every level (amount: the excess, dimensionless)."""
    out: list[Violation] = []
    if cfg.ssvi_gamma > SSVI_MAX_GAMMA:
        out.append(Violation("ssvi_gamma_above_half", math.nan, math.nan, math.nan, math.nan,
                             cfg.ssvi_gamma - SSVI_MAX_GAMMA, f"ssvi_gamma {cfg.ssvi_gamma}"))
    index = np.linspace(min(grid.index_levels), max(grid.index_levels), CHECK_LEVEL_STEPS)
    rho, eta = ssvi_shape(cfg.index_to_atm_ratio * index / INDEX_POINTS_PER_UNIT, cfg)
    excess = eta * (1.0 + np.abs(rho)) - 2.0
    for j in np.flatnonzero(excess > 0):
        out.append(Violation("ssvi_eta_bound", float(index[j]), math.nan, math.nan, math.nan,
                             float(excess[j]),
                             f"eta (1 + |rho|) = {excess[j] + 2.0:.4f} > 2, rho {rho[j]:.4f}, "
                             f"eta {eta[j]:.4f}"))
    return out, 1 + len(index)


def surface_arbitrage_report(cfg: SurfaceConfig, grid: ArbitrageGrid = DEFAULT_GRID
                             ) -> ArbitrageReport:
    """Static-arbitrage check of ``cfg``: its model prices over ``grid`` (index levels in
    points, read as ATM vol ``index_to_atm_ratio * index / 100``; the config's dividend yield,
    0 where unset) and its closed-form SSVI conditions over the grid's index range."""
    ratio = cfg.index_to_atm_ratio

    def iv_fn(index_level, spot, strike, t_years):
        return iv_at(ratio * index_level / INDEX_POINTS_PER_UNIT, spot, strike, t_years, cfg)

    q = cfg.dividend_yield_annualized or 0.0
    report = check_iv_function(iv_fn, q, grid)
    extra, n_extra = _closed_form_violations(cfg, grid)
    return report.merged(extra, n_extra)


@lru_cache(maxsize=64)
def _cached_report(content_sha256: str, cfg: SurfaceConfig) -> ArbitrageReport:
    """The default-grid report of a surface file's config, once per file content.

    A passing report is also stored on disk (:func:`_passed_check_path`), so a later process
    that loads the same file content with the same checking code skips the check (0.2 s, and
    0.3 s more to import ``scipy.special`` in a process that otherwise never prices). A failing
    report is never stored: such a file is checked, and refused, every time.
    """
    path = _passed_check_path(content_sha256)
    stored = _read_passed_check(path, content_sha256)
    if stored is not None:
        return stored
    report = surface_arbitrage_report(cfg)
    if report.ok:
        record = {"surface_sha256": content_sha256, "check_code": _check_code_digest(),
                  **report.to_dict()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(record, path)
        except OSError:  # a read-only cache only costs the next process the check again
            pass
    return report


# The modules whose code decides a check's outcome: an edit of any is a new stored record.
_CHECK_MODULES = ("options.static_arbitrage", "options.surface", "options.pricing",
                  "options.iv_proxy")


@cache
def _check_code_digest() -> str:
    """Digest of the checking code (its modules' source files), the default grid and the
    NumPy and SciPy versions whose arithmetic the check runs on."""
    sources = [Path(sys.modules[name].__file__).read_bytes() for name in _CHECK_MODULES]
    return content_key(*sources, DEFAULT_GRID.describe(), np.__version__,
                       metadata.version("scipy"))


def _passed_check_path(content_sha256: str) -> Path:
    """Where the passing check of a surface file content is stored, in the user cache folder
    (:func:`common.paths.user_cache_root`)."""
    return (user_cache_root() / "surface_checks"
            / f"{content_sha256[:32]}-{_check_code_digest()}.json")


def _read_passed_check(path: Path, content_sha256: str) -> ArbitrageReport | None:
    """The stored passing report at ``path``, or None when there is none, it cannot be read or
    it is not a pass of this content by this code (then the check runs again)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if (record["surface_sha256"] != content_sha256
                or record["check_code"] != _check_code_digest()
                or record["n_violations"] != 0):
            return None
        return ArbitrageReport(int(record["n_checked"]), 0, dict(record["counts_by_kind"]),
                               (), dict(record["grid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read(path) -> tuple[SurfaceConfig, str]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise UserInputError(f"surface file '{path}': {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserInputError(f"surface file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise UserInputError(f"surface file '{path}' must hold a mapping, got {type(doc).__name__}")
    if "surface" in doc:
        extra = sorted(set(doc) - set(SURFACE_YAML_KEYS))
        if extra:
            raise UserInputError(f"surface file '{path}': unknown top-level key(s) {extra}; "
                                 f"expected {list(SURFACE_YAML_KEYS)}")
        doc = doc["surface"]
    try:
        cfg = SurfaceConfig(**(doc or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(x) for x in first["loc"])
        raise UserInputError(f"surface file '{path}': key 'surface.{key}': {first['msg']}") from None
    except TypeError as exc:
        raise UserInputError(f"surface file '{path}': 'surface' must be a mapping of keys: "
                             f"{exc}") from None
    return cfg, hashlib.sha256(raw).hexdigest()


def read_surface_file(path) -> SurfaceConfig:
    """Read a surface YAML into a :class:`SurfaceConfig` without the arbitrage check (what
    ``python -m options.arbitrage`` checks); see :func:`load_surface_config`."""
    return _read(path)[0]


def load_surface_config(path) -> SurfaceConfig:
    """Read a surface YAML (``configs/surface_*.yaml``) into a :class:`SurfaceConfig`.

    The file is either a mapping of :class:`SurfaceConfig` fields or, as
    ``python -m options.calibrate`` writes it, ``{surface: {...}, provenance: {...}}``
    (the provenance is kept in the file and ignored here). Errors name the file and key.
    The surface is then checked for static arbitrage (:func:`surface_arbitrage_report`, once
    per file content: the result is cached by the file's SHA-256) and refused with
    :class:`SurfaceArbitrageError`, naming the worst case, when any check fails.
    """
    cfg, digest = _read(path)
    report = _cached_report(digest, cfg)
    if not report.ok:
        worst = report.worst[0].describe() if report.worst else "?"
        raise SurfaceArbitrageError(
            f"surface file '{path}' admits static arbitrage: {report.n_violations} violation(s) "
            f"of {report.n_checked} checks; worst: {worst} (python -m options.arbitrage "
            f"--surface {path} lists them)")
    return cfg
