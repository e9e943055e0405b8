"""Calibrate the index-driven SSVI model surface (:mod:`options.surface`) on real chains.

    python -m options.calibrate --chain FILE [FILE ...] [--format eod|cboe|wide]
        [--rate R] [--drop-crossed] [--market embedded|none]
        [--exercise european|american] [--dividends BARS.csv] --out configs/surface_NAME.yaml

Fitted across all days at once (least squares in implied vol, soft-L1 loss with a one-vol-point
scale, each (date, expiry) slice weighted equally) on the out-of-the-money quotes with a
positive bid, |log(K/S)| <= :data:`CALIBRATION_MAX_ABS_LOG_MONEYNESS` and
:data:`CALIBRATION_DTE_RANGE` days: the at-the-money level relative to the implied-vol index
(``index_to_atm_ratio``), the ATM variance term structure (``long_run_iv_annualized``,
``term_mean_reversion_per_year``) and the SSVI shape (``ssvi_rho``, ``ssvi_eta``,
``ssvi_gamma`` and how rho and eta move with the level). The index of each date is the market
frame's ``iv_index`` where it covers the date, else the chain's own 30-day index by the CBOE
VIX method, so that the level-to-index relation carries over to periods where only VIX is
known. The dividend yield is the median put-call-parity carry (``dividend_yield_annualized``).
``--exercise american`` (SPY) inverts the quotes' implied vols as American options
(:func:`options.smile.market_ivs`), with ``--dividends`` the cash dividends paid (projected
causally); the default ``european`` is for SPX.

Arbitrage-freeness is a constraint of the fit, not a later repair: ``ssvi_gamma`` is bounded
to (0, 1/2] and ``eta (1 + |rho|)`` is held at most :data:`ETA_BOUND_MARGIN` below 2 at every
volatility-index level of the checked domain (9-80) by a penalty; the written file is then
checked by :func:`options.surface.surface_arbitrage_report` (its result goes in the
provenance) and not written when it fails.

The YAML holds ``surface:`` (loads into :class:`SurfaceConfig` via
:func:`options.surface.load_surface_config`) and ``provenance:`` (the command, files and their
SHA-256, dates, quote counts, index range, rate and index sources, fit residuals overall, by
moneyness bucket and by index tercile, and the arbitrage check).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

import data
from common.cli import run_cli
from common.errors import UserInputError
from common.io import sha256_file, write_text_atomic
from common.units import PERCENT_PER_UNIT
from options.chain_io import CHAIN_FORMATS, chain_read_report, read_chains
from options.chain_market import (
    ChainMarket,
    add_exercise_arguments,
    exercise_arguments,
    prepare_chain_market,
)
from options.pricing import VOL_POINT
from options.static_arbitrage import DEFAULT_GRID
from options.surface import (
    INDEX_POINTS_PER_UNIT,
    SurfaceConfig,
    iv_at,
    ssvi_shape,
    surface_arbitrage_report,
)

__all__ = [
    "CALIBRATION_DTE_RANGE",
    "CALIBRATION_MAX_ABS_LOG_MONEYNESS",
    "ETA_BOUND_MARGIN",
    "FITTED_FIELDS",
    "calibration_quotes",
    "fit_surface",
    "load_frame",
    "main",
    "surface_document",
]

CALIBRATION_MAX_ABS_LOG_MONEYNESS = 0.15
CALIBRATION_DTE_RANGE = (7, 130)
FITTED_FIELDS = (
    "index_to_atm_ratio",
    "long_run_iv_annualized",
    "term_mean_reversion_per_year",
    "ssvi_rho",
    "ssvi_rho_per_log_level",
    "ssvi_eta",
    "ssvi_eta_per_log_level",
    "ssvi_gamma",
)
# optimiser coordinates: ratio, long-run vol, kappa, atanh(rho), rho slope, log(eta),
# eta elasticity, gamma
_LOWER = np.array([0.5, 0.05, 0.0, -3.0, -2.0, math.log(0.05), -2.0, 0.05])
_UPPER = np.array([1.5, 0.6, 20.0, 1.0, 2.0, math.log(4.0), 2.0, 0.5])
IV_LOSS_SCALE = 0.01
"""Soft-L1 scale of the fit: residuals beyond one vol point count linearly."""
ETA_BOUND_MARGIN = 1e-3
"""The fit keeps ``eta (1 + |rho|)`` at most this far below its bound of 2 (no butterfly)."""
PENALTY_WEIGHT = 100.0
"""Weight of the no-butterfly penalty (per unit of excess, at each checked level)."""
PENALTY_LEVELS = 40
MONEYNESS_EDGES_PCT = (-15.0, -8.0, -4.0, -1.0, 1.0, 4.0, 8.0, 15.0)


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


def _to_x(cfg: SurfaceConfig) -> np.ndarray:
    return np.array([cfg.index_to_atm_ratio, cfg.long_run_iv_annualized,
                     cfg.term_mean_reversion_per_year, math.atanh(cfg.ssvi_rho),
                     cfg.ssvi_rho_per_log_level, math.log(cfg.ssvi_eta),
                     cfg.ssvi_eta_per_log_level, cfg.ssvi_gamma])


def _cfg(x: np.ndarray, base: SurfaceConfig) -> SurfaceConfig:
    ratio, long_run, kappa, rho_z, rho_b, log_eta, eta_b, gamma = (float(v) for v in x)
    return base.model_copy(update={
        "index_to_atm_ratio": ratio, "long_run_iv_annualized": long_run,
        "term_mean_reversion_per_year": kappa, "ssvi_rho": math.tanh(rho_z),
        "ssvi_rho_per_log_level": rho_b, "ssvi_eta": math.exp(log_eta),
        "ssvi_eta_per_log_level": eta_b, "ssvi_gamma": gamma})


def _eta_bound_excess(cfg: SurfaceConfig, index_levels: np.ndarray) -> np.ndarray:
    """``eta (1 + |rho|) - (2 - margin)`` at each index level (points), as ATM levels."""
    rho, eta = ssvi_shape(cfg.index_to_atm_ratio * index_levels / INDEX_POINTS_PER_UNIT, cfg)
    return eta * (1.0 + np.abs(rho)) - (2.0 - ETA_BOUND_MARGIN)


def _soft_l1_residual(r: np.ndarray, scale: float) -> np.ndarray:
    """A residual whose square is the soft-L1 loss ``2 s^2 (sqrt(1 + (r/s)^2) - 1)``."""
    z = r / scale
    return np.sign(r) * scale * np.sqrt(2.0 * (np.sqrt(1.0 + z * z) - 1.0))


def fit_surface(quotes: pd.DataFrame, base: SurfaceConfig | None = None
                ) -> tuple[SurfaceConfig, dict]:
    """Fit :data:`FITTED_FIELDS` to ``quotes`` (from :func:`calibration_quotes`).

    Returns the calibrated config (other fields from ``base``) and residual statistics in
    vol points (model minus market, with the real :func:`iv_at`)."""
    base = base or SurfaceConfig()
    if len(quotes) < len(FITTED_FIELDS):
        raise UserInputError(f"calibration needs at least {len(FITTED_FIELDS)} quotes, got "
                             f"{len(quotes)}")
    index = quotes["index"].to_numpy(float)
    spot = quotes["underlying_price"].to_numpy(float)
    strike = quotes["strike"].to_numpy(float)
    t = quotes["t_years"].to_numpy(float)
    iv_mkt = quotes["iv_market"].to_numpy(float)
    n_slice = quotes.groupby(["quote_date", "expiry"])["strike"].transform("size").to_numpy()
    weight = 1.0 / np.sqrt(n_slice)
    scale = IV_LOSS_SCALE * float(np.mean(weight))
    levels = np.linspace(min(DEFAULT_GRID.index_levels), max(DEFAULT_GRID.index_levels),
                         PENALTY_LEVELS)
    x0 = np.clip(_to_x(base), _LOWER + 1e-6, _UPPER - 1e-6)

    def resid(x):
        cfg = _cfg(x, base)
        err = iv_at(cfg.index_to_atm_ratio * index, spot, strike, t, cfg) - iv_mkt
        penalty = PENALTY_WEIGHT * np.maximum(_eta_bound_excess(cfg, levels), 0.0)
        return np.concatenate([_soft_l1_residual(weight * err, scale), penalty])

    sol = least_squares(resid, x0, bounds=(_LOWER, _UPPER), x_scale="jac", max_nfev=400)
    cfg = _cfg(sol.x, base)
    err = (iv_at(cfg.index_to_atm_ratio * index, spot, strike, t, cfg) - iv_mkt) / VOL_POINT
    stats = {
        "n_quotes": int(len(quotes)),
        "median_abs_iv_error_pts": float(np.median(np.abs(err))),
        "mean_iv_error_pts": float(np.mean(err)),
        "rmse_iv_error_pts": float(np.sqrt(np.mean(err * err))),
        "optimizer_status": int(sol.status),
        "by_moneyness": _bucket_errors(err, quotes["log_m_spot"].to_numpy(float)),
        "by_index_tercile": _tercile_errors(err, index),
    }
    return cfg, stats


def _bucket_errors(err: np.ndarray, log_m: np.ndarray) -> dict:
    cut = pd.cut(log_m * PERCENT_PER_UNIT, MONEYNESS_EDGES_PCT, include_lowest=True)
    g = pd.Series(err).groupby(cut, observed=True)
    return {str(b): {"n": int(s.size), "mean_iv_error_pts": round(float(s.mean()), 4),
                     "median_abs_iv_error_pts": round(float(s.abs().median()), 4)}
            for b, s in g}


def _tercile_errors(err: np.ndarray, index: np.ndarray) -> dict:
    edges = np.quantile(index, [0.0, 1 / 3, 2 / 3, 1.0])
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (index >= lo) & (index <= hi)
        out[f"index {lo * INDEX_POINTS_PER_UNIT:.1f}-{hi * INDEX_POINTS_PER_UNIT:.1f}"] = {
            "n": int(sel.sum()),
            "median_abs_iv_error_pts": round(float(np.median(np.abs(err[sel]))), 4),
            "mean_iv_error_pts": round(float(np.mean(err[sel])), 4)}
    return out


def surface_document(cfg: SurfaceConfig, cm: ChainMarket, stats: dict, files: list[str],
                     command: str = "python -m options.calibrate") -> dict:
    """The YAML document: ``surface`` (fitted fields and the dividend yield) and
    ``provenance`` (including the arbitrage check of the fitted surface)."""
    fitted = {f: round(float(getattr(cfg, f)), 6) for f in FITTED_FIELDS}
    fitted["dividend_yield_annualized"] = round(float(cm.dividend_yield), 6)
    checked = cfg.model_copy(update=fitted)
    report = surface_arbitrage_report(checked)
    smile_rmse = [f.rmse_iv_pts for f in cm.fits.values()]
    index = cm.index_by_date.dropna()
    return {
        "surface": fitted,
        "provenance": {
            "command": command,
            "model": "SSVI (Gatheral-Jacquier 2014), power-law phi, ATM variance driven by "
                     "the volatility index (options/surface.py)",
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
            "index_range_points": [round(float(index.min()) * INDEX_POINTS_PER_UNIT, 2),
                                   round(float(index.max()) * INDEX_POINTS_PER_UNIT, 2)],
            "chain_vix_method_counts": {k: int(v) for k, v in
                                        cm.vix["method"].value_counts().items()},
            "chain_vix_mean": round(float(cm.vix["iv_index"].mean()), 6),
            "fit_residuals_vol_points": {k: round(v, 4) for k, v in stats.items()
                                         if k.endswith("_pts")},
            "fit_residuals_by_moneyness_pct": stats["by_moneyness"],
            "fit_residuals_by_index_tercile": stats["by_index_tercile"],
            "arbitrage_check": {"n_checked": report.n_checked,
                                "n_violations": report.n_violations,
                                "grid": report.grid},
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
    add_exercise_arguments(p)
    return p


def load_frame(name: str) -> pd.DataFrame | None:
    """The market frame for ``--market`` (None for 'none')."""
    return None if name == "none" else data.load_market(name)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    chain = read_chains(args.chain, args.format, drop_crossed=args.drop_crossed)
    print(chain_read_report(chain).summary())
    exercise = exercise_arguments(args)
    cm = prepare_chain_market(chain, frame=load_frame(args.market), rate=args.rate,
                              fit_all_smiles=False, **exercise)
    for line in cm.fallback_lines():
        print(f"fallback: {line}")
    cfg, stats = fit_surface(calibration_quotes(cm))
    command = "python -m options.calibrate " + " ".join(shlex.quote(a) for a in argv)
    doc = surface_document(cfg, cm, stats, args.chain, command)
    if args.exercise == "american":
        doc["provenance"]["exercise"] = {
            "style": "american",
            "implied_vols": "CRR tree with escrowed cash dividends (options.american."
                            "implied_vol_american)",
            "dividends": ({"path": args.dividends, "sha256": sha256_file(args.dividends),
                           "projection": "causal: the latest paid dividend repeated quarterly"}
                          if args.dividends else "parity carry as a continuous yield")}
    check = doc["provenance"]["arbitrage_check"]
    if check["n_violations"]:
        print(f"options.calibrate: the fitted surface fails the arbitrage check "
              f"({check['n_violations']} violation(s)); {args.out} not written", file=sys.stderr)
        return 1
    header = (f"# Calibrated volatility surface: {command}\n"
              "# Load with options.surface.load_surface_config (surface: SurfaceConfig fields).\n")
    write_text_atomic(header + yaml.safe_dump(doc, sort_keys=False), Path(args.out))
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v}" for k, v in doc["surface"].items()))
    print("fit residuals (vol points): " + ", ".join(
        f"{k}={v:.3f}" for k, v in stats.items() if k.endswith("_pts")))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="options.calibrate"))
