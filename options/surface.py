"""Implied-volatility surface from an at-the-money level, a term structure and a skew.

The at-the-money level at date t comes from the market frame's ``iv_index`` (a 30-day
implied volatility such as VIX/100) where present, and from the named proxy of
:mod:`options.iv_proxy` elsewhere (:func:`atm_iv_series`). A strike's volatility is then
(:func:`iv_at`)::

    atm(T)^2 = theta + (atm_ref^2 - theta) * f(T) / f(T_ref),  f(T) = (1 - e^{-kT}) / (kT)
    k        = log(strike / spot)                               (log-moneyness)
    slope(T) = put_skew_slope_1y / sqrt(max(T, skew_min_t_years))
    iv       = atm(T) - slope(T) * k                 for k <= 0 (put wing)
    iv       = atm(T) - call_wing_slope_ratio * slope(T) * k   for k > 0 (call wing)
    iv      += put_wing_curvature_1y / max(T, skew_min_t_years) * k^2   for k <= 0
    iv      += call_wing_curvature_1y / max(T, skew_min_t_years) * k^2  for k > 0
    iv       = clip(iv, iv_floor_annualized, iv_cap_annualized)

The curvature terms default to 0 (and are then skipped, so the default surface is unchanged
bit for bit); calibrated surfaces (``python -m options.calibrate``, files
``configs/surface_*.yaml`` read by :func:`load_surface_config`) set them.

with ``theta = long_run_iv_annualized^2``, ``kappa = term_mean_reversion_per_year`` and
``T_ref = term_reference_dte_days / 365``. Log-moneyness is taken against spot, not the
forward, so the surface needs no rate; at SPY's rates and 30-day horizons the difference is
a fraction of a strike.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import UserInputError
from common.units import TRADING_DAYS_PER_YEAR
from options.iv_proxy import (
    DEFAULT_IV_PROXY,
    IvProxyName,
    implied_vol_level,
    realized_vol_series,
)
from options.pricing import DAYS_PER_YEAR

__all__ = [
    "SurfaceConfig",
    "SurfaceParams",
    "atm_iv_series",
    "atm_term_iv",
    "iv_at",
    "iv_at_params",
    "iv_at_scalar",
    "load_surface_config",
    "realized_vol_series",
    "surface_params",
]


class SurfaceConfig(BaseModel):
    """Parameters of the volatility surface; unknown keys are rejected.

    Defaults and where they come from:

    - ``put_skew_slope_1y = 0.20``: decrease of implied vol per unit of log-moneyness at a
      one-year expiry, growing as 1/sqrt(T) at shorter ones (the "square-root-of-time" skew
      rule of thumb, e.g. Bennett, *Trading Volatility* (2014), ch. 5; Gatheral, *The
      Volatility Surface* (2006), ch. 3). At 30 days it gives a 90% strike about 7 vol points
      over at-the-money, in line with typical S&P 500 one-month 90-100 skew (CBOE SKEW index
      levels 115-135).
    - ``call_wing_slope_ratio = 0.3``: the call wing keeps falling at about a third of the
      put slope (S&P 500 smiles are a smirk: steep puts, nearly flat calls).
    - ``skew_min_t_years = 7/365``: the 1/sqrt(T) scaling stops growing below one week so
      that 0-1 day options do not get an infinite slope.
    - ``term_reference_dte_days = 30``: the horizon of ``iv_index`` (VIX is a 30-day measure).
    - ``long_run_iv_annualized = 0.20`` and ``term_mean_reversion_per_year = 2.0``: a
      Heston-style mean-reverting variance term structure (Heston 1993; Gatheral 2006, ch. 3)
      towards VIX's long-run mean of about 19-20 (CBOE, 1990-2020): upward sloping when VIX
      is low (VIX 12 -> 1-year ATM about 17%), inverted when it is high (VIX 40 -> 31%).
    - ``iv_floor_annualized = 0.05`` and ``iv_cap_annualized = 2.0``: S&P 500 implied vols
      have stayed within these (VIX all-time low 9.1, high 82.7 intraday).
    - ``index_to_atm_ratio = 1.0``: VIX is a variance-swap rate and usually sits 1-2 points
      above 30-day ATM implied vol; 1.0 keeps the architecture's reading of ``iv_index`` as
      the ATM level; set about 0.9 to model the gap.
    - ``put_wing_curvature_1y = 0``, ``call_wing_curvature_1y = 0``: convexity of each wing
      in log-moneyness (scaled by 1/T like an SVI wing); 0 keeps the linear wings.
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

    put_skew_slope_1y: float = Field(0.20, ge=0.0)
    call_wing_slope_ratio: float = Field(0.3, ge=0.0, le=3.0)
    put_wing_curvature_1y: float = 0.0
    call_wing_curvature_1y: float = 0.0
    dividend_yield_annualized: float | None = Field(None, ge=-0.05, le=0.2)
    skew_min_t_years: float = Field(7.0 / 365.0, gt=0.0)
    term_reference_dte_days: float = Field(30.0, gt=0.0)
    long_run_iv_annualized: float = Field(0.20, gt=0.0)
    term_mean_reversion_per_year: float = Field(2.0, ge=0.0)
    iv_floor_annualized: float = Field(0.05, gt=0.0)
    iv_cap_annualized: float = Field(2.0, gt=0.0)
    index_to_atm_ratio: float = Field(1.0, gt=0.0)
    realized_window_bars: int = Field(21, ge=2)
    fallback_iv_to_realized_ratio: float = Field(1.2, gt=0.0)
    min_calibration_overlap_bars: int = Field(60, ge=1)
    iv_proxy: IvProxyName = DEFAULT_IV_PROXY

    @cached_property
    def params(self) -> SurfaceParams:
        """The scalar constants of this config, computed once (see :func:`surface_params`)."""
        return surface_params(self)

    @model_validator(mode="after")
    def _floor_below_cap(self) -> SurfaceConfig:
        if self.iv_floor_annualized >= self.iv_cap_annualized:
            raise ValueError(
                f"iv_floor_annualized ({self.iv_floor_annualized}) must be below "
                f"iv_cap_annualized ({self.iv_cap_annualized})"
            )
        return self


def _term_factor(t_years, kappa: float):
    """f(T) = (1 - e^{-kT}) / (kT), with f -> 1 as kT -> 0 (numpy or float)."""
    x = kappa * np.asarray(t_years, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(x > 1e-8, -np.expm1(-x) / np.where(x > 1e-8, x, 1.0), 1.0 - 0.5 * x)
    return f


def _term_factor_scalar(t_years: float, kappa: float) -> float:
    x = kappa * t_years
    return -math.expm1(-x) / x if x > 1e-8 else 1.0 - 0.5 * x


def atm_term_iv(atm_iv, t_years, cfg: SurfaceConfig):
    """At-the-money implied vol at expiry ``t_years`` given the reference-horizon ATM vol."""
    atm = np.asarray(atm_iv, dtype=float)
    t = np.asarray(t_years, dtype=float)
    theta = cfg.long_run_iv_annualized**2
    t_ref = cfg.term_reference_dte_days / DAYS_PER_YEAR
    k = cfg.term_mean_reversion_per_year
    ratio = _term_factor(t, k) / _term_factor_scalar(t_ref, k)
    var = theta + (atm * atm - theta) * ratio
    return np.sqrt(np.maximum(var, 0.0))


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
        Annualised implied vol (decimal), clipped to ``[iv_floor, iv_cap]``; a float for
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
    base = atm_term_iv(atm, t, cfg)
    log_m = np.log(k_ / s)
    slope = cfg.put_skew_slope_1y / np.sqrt(np.maximum(t, cfg.skew_min_t_years))
    wing = np.where(log_m > 0, cfg.call_wing_slope_ratio, 1.0)
    raw = base - slope * wing * log_m
    if cfg.put_wing_curvature_1y != 0.0 or cfg.call_wing_curvature_1y != 0.0:
        curv = np.where(log_m > 0, cfg.call_wing_curvature_1y, cfg.put_wing_curvature_1y)
        raw = raw + curv / np.maximum(t, cfg.skew_min_t_years) * log_m * log_m
    iv = np.clip(raw, cfg.iv_floor_annualized, cfg.iv_cap_annualized)
    return float(iv) if iv.ndim == 0 else iv


class SurfaceParams(NamedTuple):
    """:class:`SurfaceConfig` reduced to the numbers :func:`iv_at_params` needs."""

    long_run_var: float
    kappa: float
    term_ref_factor: float
    put_skew_slope_1y: float
    call_wing_slope_ratio: float
    skew_min_t_years: float
    iv_floor_annualized: float
    iv_cap_annualized: float
    put_wing_curvature_1y: float = 0.0
    call_wing_curvature_1y: float = 0.0


def surface_params(cfg: SurfaceConfig) -> SurfaceParams:
    """Precompute the scalar surface constants once (for loops over many strikes or steps)."""
    kappa = cfg.term_mean_reversion_per_year
    return SurfaceParams(
        cfg.long_run_iv_annualized**2,
        kappa,
        _term_factor_scalar(cfg.term_reference_dte_days / DAYS_PER_YEAR, kappa),
        cfg.put_skew_slope_1y,
        cfg.call_wing_slope_ratio,
        cfg.skew_min_t_years,
        cfg.iv_floor_annualized,
        cfg.iv_cap_annualized,
        cfg.put_wing_curvature_1y,
        cfg.call_wing_curvature_1y,
    )


def iv_at_params(
    p: SurfaceParams, atm_iv: float, spot: float, strike: float, t_years: float
) -> float:
    """Scalar surface vol from precomputed :class:`SurfaceParams` (``math`` only)."""
    x = p.kappa * t_years
    factor = -math.expm1(-x) / x if x > 1e-8 else 1.0 - 0.5 * x
    var = p.long_run_var + (atm_iv * atm_iv - p.long_run_var) * (factor / p.term_ref_factor)
    base = math.sqrt(var) if var > 0.0 else 0.0
    log_m = math.log(strike / spot)
    slope = p.put_skew_slope_1y / math.sqrt(
        t_years if t_years > p.skew_min_t_years else p.skew_min_t_years
    )
    if log_m > 0.0:
        slope *= p.call_wing_slope_ratio
    iv = base - slope * log_m
    curv = p.call_wing_curvature_1y if log_m > 0.0 else p.put_wing_curvature_1y
    if curv != 0.0:
        t_eff = t_years if t_years > p.skew_min_t_years else p.skew_min_t_years
        iv += curv / t_eff * log_m * log_m
    if iv < p.iv_floor_annualized:
        return p.iv_floor_annualized
    if iv > p.iv_cap_annualized:
        return p.iv_cap_annualized
    return iv


def iv_at_scalar(
    atm_iv: float, spot: float, strike: float, t_years: float, cfg: SurfaceConfig
) -> float:
    """Scalar twin of :func:`iv_at` (``math`` only); inputs are not validated beyond what
    ``math.log``/``math.sqrt`` reject. In a loop, call :func:`surface_params` once and
    :func:`iv_at_params` per strike instead."""
    return iv_at_params(cfg.params, atm_iv, spot, strike, t_years)


def atm_iv_series(frame: pd.DataFrame, cfg: SurfaceConfig | None = None, *,
                  bars_per_year: float = TRADING_DAYS_PER_YEAR) -> pd.Series:
    """Reference-horizon at-the-money implied vol for every row of a market frame.

    ``iv_index`` where present; elsewhere the proxy named by ``cfg.iv_proxy``
    (:mod:`options.iv_proxy`: ``garch_vrp`` by default, ``realized_ratio``, or ``none``, which
    leaves such rows NaN and refuses a frame with no implied vol at all). Every proxy at t
    depends on rows up to t only: truncating the frame after t does not change it. The result is
    multiplied by ``cfg.index_to_atm_ratio``. Rows the proxy cannot price yet (too little
    history) are NaN.

    ``bars_per_year`` annualises the proxies: it must be the frame's own
    (``data.bars_per_year(frame.index)``, the one source of truth; 252 for daily bars, about
    19,656 for 5-minute bars), which the environment passes.

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
    level = implied_vol_level(frame, cfg, bars_per_year=bars_per_year)
    return (level * cfg.index_to_atm_ratio).rename("atm_iv_annualized")


SURFACE_YAML_KEYS = ("surface", "provenance")
"""Top-level keys of a calibrated surface file: ``surface`` (the :class:`SurfaceConfig`
fields) and ``provenance`` (how it was fitted: files, dates, quote counts, residuals)."""


def load_surface_config(path) -> SurfaceConfig:
    """Read a surface YAML (``configs/surface_*.yaml``) into a :class:`SurfaceConfig`.

    The file is either a mapping of :class:`SurfaceConfig` fields or, as
    ``python -m options.calibrate`` writes it, ``{surface: {...}, provenance: {...}}``
    (the provenance is kept in the file and ignored here). Errors name the file and key.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise UserInputError(f"surface file '{path}': {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
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
        return SurfaceConfig(**(doc or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(x) for x in first["loc"])
        raise UserInputError(f"surface file '{path}': key 'surface.{key}': {first['msg']}") from None
