"""Fit the bid-ask width model of :mod:`options.costs` on real chains.

    python -m options.calibrate_costs --chain FILE [FILE ...] [--rate R|auto ...]
        [--surface YAML] [--market embedded|none] --out configs/costs_chains.yaml

Quotes: the valid two-sided out-of-the-money quotes with |log(K/S)| <=
:data:`MAX_ABS_LOG_MONEYNESS` and :data:`DTE_RANGE` days (the selection of
:mod:`options.validate`), at the model's scale (index options at 1/10, as the environment
prices them). The volatility level of a date is the at-the-money vol the environment would
use: the date's implied-vol index (the frame's, else the chain's own,
:mod:`options.chain_market`) times the surface's ``index_to_atm_ratio``.

Model (:func:`options.costs.spread_width_per_share`)::

    log width = log(floor_c + fraction_c * mid) + b_vol log(atm_iv / ref_iv)
                + b_moneyness |log(K/S)| + b_dte log(dte / 30)

with a level (floor, fraction) per chain (markets differ in tick and competition) and one
shape shared by all chains, least squares in log width, each chain weighted equally. The
reference vol is the median of the dates' at-the-money vols (all chains' dates together),
fixed before the fit. The YAML holds ``costs:`` (the shape: :class:`options.costs.CostConfig`
fields) and ``provenance:`` (command, files and SHA-256, per-chain levels, quote counts,
residuals).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

from common.cli import run_cli
from common.errors import UserInputError
from common.io import sha256_file, write_text_atomic
from options.calibrate import load_frame
from options.chain_io import CHAIN_FORMATS, read_chain
from options.chain_market import ChainMarket, prepare_chain_market
from options.surface import SurfaceConfig, load_surface_config

__all__ = ["DTE_RANGE", "MAX_ABS_LOG_MONEYNESS", "SHAPE_FIELDS", "fit_spread_shape", "main",
           "width_quotes"]

MAX_ABS_LOG_MONEYNESS = 0.15
DTE_RANGE = (7, 130)
REFERENCE_DTE_DAYS = 30.0
SHAPE_FIELDS = ("spread_vol_elasticity", "spread_moneyness_coef", "spread_dte_elasticity")
_LOWER = np.array([-5.0, -50.0, -2.0])
_UPPER = np.array([5.0, 50.0, 2.0])


def width_quotes(cm: ChainMarket, index_to_atm_ratio: float) -> pd.DataFrame:
    """The quotes the fit uses (module docstring), at the model's scale, with columns
    ``quote_date, width_per_share, mid_per_share, atm_iv, log_moneyness, dte_days``."""
    q = cm.ivs
    bid, ask = q["bid_per_share"].to_numpy(float), q["ask_per_share"].to_numpy(float)
    log_m = np.log(q["strike"] / q["underlying_price"]).to_numpy()
    index = q["quote_date"].map(cm.index_by_date).to_numpy(float)
    lo, hi = DTE_RANGE
    keep = (q["otm"].to_numpy() & (bid > 0) & (ask > bid) & (np.abs(log_m) <= MAX_ABS_LOG_MONEYNESS)
            & q["dte_days"].between(lo, hi).to_numpy() & np.isfinite(index))
    scale = cm.model_scale
    return pd.DataFrame({
        "quote_date": q["quote_date"].to_numpy()[keep],
        "width_per_share": (ask - bid)[keep] * scale,
        "mid_per_share": 0.5 * (ask + bid)[keep] * scale,
        "atm_iv": index[keep] * index_to_atm_ratio,
        "log_moneyness": log_m[keep],
        "dte_days": q["dte_days"].to_numpy(float)[keep],
    })


def fit_spread_shape(chains: list[pd.DataFrame]) -> dict:
    """Fit the shared shape and per-chain levels (module docstring) to the quotes of each
    chain (:func:`width_quotes`). Returns the shape fields, ``spread_reference_atm_iv``,
    ``levels`` (floor and fraction per chain) and ``median_abs_log_residual`` per chain."""
    if not chains or any(len(c) < 10 for c in chains):
        raise UserInputError("the spread fit needs at least 10 valid out-of-the-money quotes "
                             "per chain")
    dates_iv = pd.concat([c.groupby("quote_date")["atm_iv"].first() for c in chains])
    ref_iv = float(np.median(dates_iv))
    n = len(chains)

    def parts(c: pd.DataFrame, floor, frac, shape):
        b_vol, b_m, b_d = shape
        return (np.log(floor + frac * c["mid_per_share"].to_numpy())
                + b_vol * np.log(c["atm_iv"].to_numpy() / ref_iv)
                + b_m * np.abs(c["log_moneyness"].to_numpy())
                + b_d * np.log(c["dte_days"].to_numpy() / REFERENCE_DTE_DAYS))

    def resid(x):
        shape = x[2 * n:]
        out = []
        for i, c in enumerate(chains):
            r = parts(c, x[2 * i], x[2 * i + 1], shape) - np.log(c["width_per_share"].to_numpy())
            out.append(r / np.sqrt(len(c)))
        return np.concatenate(out)

    x0 = np.concatenate([np.tile([0.01, 0.01], n), np.zeros(3)])
    lower = np.concatenate([np.tile([1e-5, 0.0], n), _LOWER])
    upper = np.concatenate([np.tile([1.0, 1.0], n), _UPPER])
    sol = least_squares(resid, x0, bounds=(lower, upper), max_nfev=2000)
    shape = sol.x[2 * n:]
    levels, residuals = [], []
    for i, c in enumerate(chains):
        r = parts(c, sol.x[2 * i], sol.x[2 * i + 1], shape) - np.log(c["width_per_share"])
        levels.append({"spread_floor_per_share": round(float(sol.x[2 * i]), 5),
                       "spread_fraction_of_premium": round(float(sol.x[2 * i + 1]), 5)})
        residuals.append(round(float(np.median(np.abs(r))), 4))
    out = {name: round(float(v), 4) for name, v in zip(SHAPE_FIELDS, shape, strict=True)}
    out.update(spread_reference_atm_iv=round(ref_iv, 4),
               spread_reference_dte_days=REFERENCE_DTE_DAYS,
               levels=levels, median_abs_log_residual=residuals)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m options.calibrate_costs",
                                description="Fit the bid-ask width model on real chains.")
    p.add_argument("--chain", nargs="+", required=True, help="chain CSV file(s)")
    p.add_argument("--rate", nargs="+", default=["auto"],
                   help="rate per chain (decimal) or 'auto' (frame, else box spreads); one "
                        "value applies to all chains")
    p.add_argument("--format", choices=CHAIN_FORMATS, default=None)
    p.add_argument("--surface", default=None,
                   help="surface YAML whose index_to_atm_ratio turns the index into ATM vol")
    p.add_argument("--market", choices=("embedded", "none"), default="embedded")
    p.add_argument("--out", required=True, help="output YAML path")
    return p


def _rate(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise UserInputError(f"--rate {text!r}: expected a decimal rate or 'auto'") from None


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    rates = args.rate * len(args.chain) if len(args.rate) == 1 else args.rate
    if len(rates) != len(args.chain):
        raise UserInputError(f"--rate: {len(args.rate)} value(s) for {len(args.chain)} chain(s); "
                             f"give one, or one per chain")
    cfg = load_surface_config(args.surface) if args.surface else SurfaceConfig()
    frame = load_frame(args.market)
    quotes, files = [], []
    for path, rate in zip(args.chain, rates, strict=True):
        chain = read_chain(path, args.format)
        cm = prepare_chain_market(chain, frame=frame, rate=_rate(rate), fit_all_smiles=False)
        quotes.append(width_quotes(cm, cfg.index_to_atm_ratio))
        files.append({"path": str(path), "sha256": sha256_file(path), "rate": round(cm.rate, 6),
                      "model_price_scale": cm.model_scale, "n_quotes": int(len(quotes[-1]))})
    fit = fit_spread_shape(quotes)
    costs = {k: fit[k] for k in ("spread_reference_atm_iv", *SHAPE_FIELDS,
                                 "spread_reference_dte_days")}
    doc = {"costs": costs, "provenance": {
        "command": "python -m options.calibrate_costs " + " ".join(argv),
        "files": files,
        "surface": args.surface or "built-in SurfaceConfig()",
        "index_to_atm_ratio": cfg.index_to_atm_ratio,
        "selection": {"max_abs_log_moneyness": MAX_ABS_LOG_MONEYNESS,
                      "dte_days": list(DTE_RANGE),
                      "quotes": "valid two-sided, out of the money, width > 0"},
        "levels_per_chain": fit["levels"],
        "median_abs_log_residual_per_chain": fit["median_abs_log_residual"]}}
    header = ("# Bid-ask width model fitted on real chains (options.calibrate_costs); the costs: "
              "fields are options.costs.CostConfig fields.\n")
    write_text_atomic(header + yaml.safe_dump(doc, sort_keys=False), Path(args.out))
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v}" for k, v in costs.items()))
    print("levels per chain: " + "; ".join(
        f"{f['path']}: {lvl}" for f, lvl in zip(files, fit["levels"], strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="options.calibrate_costs"))
