"""Calibrate the VIX-driven model surface (:mod:`options.surface`) on real chains.

    python -m options.calibrate --chain FILE [FILE ...] [--format eod|cboe|wide]
        [--rate R] [--drop-crossed] [--market embedded|none] --out configs/surface_NAME.yaml

Fitted across all days at once (least squares in implied vol, soft-L1 loss, each
(date, expiry) slice weighted equally) on the out-of-the-money quotes with a positive bid,
|log(K/S)| <= :data:`CALIBRATION_MAX_ABS_LOG_MONEYNESS` and :data:`CALIBRATION_DTE_RANGE`
days: the at-the-money level relative to the implied-vol index (``index_to_atm_ratio``),
the put slope and its call-wing ratio, the curvature of each wing, and the term structure
(``long_run_iv_annualized``, ``term_mean_reversion_per_year``). The index of each date is the
market frame's ``iv_index`` where it covers the date, else the chain's own 30-day index by the
CBOE VIX method, so that the level-to-index relation carries over to periods where only VIX is
known. The dividend yield is the median put-call-parity carry (``dividend_yield_annualized``).

The YAML holds ``surface:`` (loads into :class:`SurfaceConfig` via
:func:`options.surface.load_surface_config`) and ``provenance:`` (files and their SHA-256,
dates, quote counts, rate and index sources, fit residuals).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

import data
from common.cli import run_cli
from common.io import sha256_file, write_text_atomic
from options.chain_io import CHAIN_FORMATS, chain_read_report, read_chains
from options.chain_market import ChainMarket, prepare_chain_market
from options.pricing import DAYS_PER_YEAR, VOL_POINT
from options.surface import SurfaceConfig, iv_at

__all__ = [
    "CALIBRATION_DTE_RANGE",
    "CALIBRATION_MAX_ABS_LOG_MONEYNESS",
    "FITTED_FIELDS",
    "calibration_quotes",
    "fit_surface",
    "main",
    "surface_document",
]

CALIBRATION_MAX_ABS_LOG_MONEYNESS = 0.15
CALIBRATION_DTE_RANGE = (7, 130)
FITTED_FIELDS = (
    "index_to_atm_ratio",
    "put_skew_slope_1y",
    "call_wing_slope_ratio",
    "put_wing_curvature_1y",
    "call_wing_curvature_1y",
    "long_run_iv_annualized",
    "term_mean_reversion_per_year",
)
_LOWER = np.array([0.5, 0.0, 0.0, -2.0, -2.0, 0.05, 0.0])
_UPPER = np.array([1.5, 1.0, 3.0, 2.0, 2.0, 0.6, 20.0])
IV_LOSS_SCALE = 0.01
"""Soft-L1 scale of the fit: residuals beyond one vol point count linearly."""


def calibration_quotes(cm: ChainMarket) -> pd.DataFrame:
    """Out-of-the-money quotes used by the fit, with ``index`` and ``log_m_spot`` columns."""
    q = cm.ivs
    lo, hi = CALIBRATION_DTE_RANGE
    log_m_spot = np.log(q["strike"] / q["underlying_price"])
    keep = (q["iv_market"].notna() & (log_m_spot.abs() <= CALIBRATION_MAX_ABS_LOG_MONEYNESS)
            & q["dte_days"].between(lo, hi))
    out = q.loc[keep].copy()
    out["log_m_spot"] = log_m_spot[keep]
    out["index"] = out["quote_date"].map(cm.index_by_date).to_numpy(dtype=float)
    return out[out["index"].notna()].reset_index(drop=True)


def _cfg(x: np.ndarray, base: SurfaceConfig) -> SurfaceConfig:
    return base.model_copy(update={name: float(v) for name, v in zip(FITTED_FIELDS, x, strict=True)})


def _model_iv(x: np.ndarray, index: np.ndarray, log_m: np.ndarray, t: np.ndarray,
              base: SurfaceConfig) -> np.ndarray:
    """:func:`iv_at` without its clip (smooth for the optimiser)."""
    ratio, slope_1y, call_ratio, put_c, call_c, long_run, kappa = x
    atm = ratio * index
    t_ref = base.term_reference_dte_days / DAYS_PER_YEAR

    def f(tt):
        z = kappa * tt
        return np.where(z > 1e-8, -np.expm1(-z) / np.where(z > 1e-8, z, 1.0), 1.0 - 0.5 * z)

    var = long_run**2 + (atm * atm - long_run**2) * f(t) / f(t_ref)
    base_iv = np.sqrt(np.maximum(var, 1e-8))
    t_eff = np.maximum(t, base.skew_min_t_years)
    call = log_m > 0
    slope = slope_1y / np.sqrt(t_eff) * np.where(call, call_ratio, 1.0)
    curv = np.where(call, call_c, put_c) / t_eff
    return base_iv - slope * log_m + curv * log_m * log_m


def fit_surface(quotes: pd.DataFrame, base: SurfaceConfig | None = None
                ) -> tuple[SurfaceConfig, dict]:
    """Fit :data:`FITTED_FIELDS` to ``quotes`` (from :func:`calibration_quotes`).

    Returns the calibrated config (other fields from ``base``) and residual statistics in
    vol points (model minus market, with the real :func:`iv_at`, clip included)."""
    base = base or SurfaceConfig()
    if len(quotes) < len(FITTED_FIELDS):
        raise ValueError(f"calibration needs at least {len(FITTED_FIELDS)} quotes, got "
                         f"{len(quotes)}")
    index = quotes["index"].to_numpy(float)
    log_m = quotes["log_m_spot"].to_numpy(float)
    t = quotes["t_years"].to_numpy(float)
    iv_mkt = quotes["iv_market"].to_numpy(float)
    n_slice = quotes.groupby(["quote_date", "expiry"])["strike"].transform("size").to_numpy()
    weight = 1.0 / np.sqrt(n_slice)
    x0 = np.array([getattr(base, f) for f in FITTED_FIELDS], dtype=float)
    x0 = np.clip(x0, _LOWER + 1e-6, _UPPER - 1e-6)

    def resid(x):
        return weight * (_model_iv(x, index, log_m, t, base) - iv_mkt)

    sol = least_squares(resid, x0, bounds=(_LOWER, _UPPER), loss="soft_l1",
                        f_scale=IV_LOSS_SCALE * float(np.mean(weight)), max_nfev=500)
    cfg = _cfg(sol.x, base)
    err = (iv_at(cfg.index_to_atm_ratio * index, quotes["underlying_price"].to_numpy(float),
                 quotes["strike"].to_numpy(float), t, cfg) - iv_mkt) / VOL_POINT
    stats = {
        "n_quotes": int(len(quotes)),
        "median_abs_iv_error_pts": float(np.median(np.abs(err))),
        "mean_iv_error_pts": float(np.mean(err)),
        "rmse_iv_error_pts": float(np.sqrt(np.mean(err * err))),
        "optimizer_status": int(sol.status),
    }
    return cfg, stats


def surface_document(cfg: SurfaceConfig, cm: ChainMarket, stats: dict, files: list[str]
                     ) -> dict:
    """The YAML document: ``surface`` (non-default and fitted fields) and ``provenance``."""
    fitted = {f: round(float(getattr(cfg, f)), 6) for f in FITTED_FIELDS}
    fitted["dividend_yield_annualized"] = round(float(cm.dividend_yield), 6)
    smile_rmse = [f.rmse_iv_pts for f in cm.fits.values()]
    return {
        "surface": fitted,
        "provenance": {
            "command": "python -m options.calibrate",
            "files": [{"path": str(p), "sha256": sha256_file(p)} for p in files],
            "format": cm.chain.attrs.get("format"),
            "dropped_non_session_dates": list(cm.chain.attrs.get("dropped_non_session_dates",
                                                                 [])),
            "dropped_crossed_quotes": int(cm.chain.attrs.get("dropped_crossed_quotes", 0)),
            "first_date": str(cm.dates[0].date()),
            "last_date": str(cm.dates[-1].date()),
            "n_dates": int(len(cm.dates)),
            "n_quotes_in_chain": int(len(cm.chain)),
            "n_quotes_fitted": stats["n_quotes"],
            "selection": {
                "max_abs_log_moneyness": CALIBRATION_MAX_ABS_LOG_MONEYNESS,
                "dte_days": list(CALIBRATION_DTE_RANGE),
                "quotes": "out of the money, positive bid",
            },
            "rate": round(cm.rate, 6),
            "rate_source": cm.rate_source,
            "dividend_yield_source": "median put-call-parity carry, expiries of 30+ days",
            "index_source_counts": {k: int(v) for k, v in
                                    cm.index_source.value_counts().items()},
            "chain_vix_method_counts": {k: int(v) for k, v in
                                        cm.vix["method"].value_counts().items()},
            "chain_vix_mean": round(float(cm.vix["iv_index"].mean()), 6),
            "fit_residuals_vol_points": {k: round(v, 4) for k, v in stats.items()
                                         if k.endswith("_pts")},
            "smile": {"model": "SSVI (Gatheral-Jacquier 2014), one per date, fitted where the "
                               "index needs it (chains too sparse for listed strikes)",
                      "n_dates_fitted": len(smile_rmse),
                      "median_rmse_iv_pts": (round(float(np.median(smile_rmse)), 4)
                                             if smile_rmse else None)},
        },
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m options.calibrate", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--chain", nargs="+", required=True, help="chain CSV file(s)")
    p.add_argument("--format", choices=CHAIN_FORMATS, default=None,
                   help="chain layout (default: detected)")
    p.add_argument("--out", required=True, help="output YAML path")
    p.add_argument("--rate", type=float, default=None,
                   help="risk-free rate, decimal (default: frame, else box spreads)")
    p.add_argument("--drop-crossed", action="store_true",
                   help="kept for earlier scripts: crossed quotes are always set aside, counted")
    p.add_argument("--market", choices=("embedded", "none"), default="embedded",
                   help="market frame for iv_index/rate where it covers the chain's dates")
    return p


def load_frame(name: str) -> pd.DataFrame | None:
    """The market frame for ``--market`` (None for 'none')."""
    return None if name == "none" else data.load_market(name)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    chain = read_chains(args.chain, args.format, drop_crossed=args.drop_crossed)
    print(chain_read_report(chain).summary())
    cm = prepare_chain_market(chain, frame=load_frame(args.market), rate=args.rate,
                              fit_all_smiles=False)
    for line in cm.fallback_lines():
        print(f"fallback: {line}")
    cfg, stats = fit_surface(calibration_quotes(cm))
    doc = surface_document(cfg, cm, stats, args.chain)
    header = ("# Calibrated volatility surface: python -m options.calibrate "
              f"--chain {' '.join(args.chain)} --out {args.out}\n"
              "# Load with options.surface.load_surface_config (surface: SurfaceConfig fields).\n")
    write_text_atomic(header + yaml.safe_dump(doc, sort_keys=False), Path(args.out))
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v}" for k, v in doc["surface"].items()))
    print("fit residuals (vol points): " + ", ".join(
        f"{k}={v:.3f}" for k, v in stats.items() if k.endswith("_pts")))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="options.calibrate"))
