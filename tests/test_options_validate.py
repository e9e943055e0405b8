"""Model-versus-market report: JSON contract, a model chain validates against its own model,
CLI writes its files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from options.chain_market import prepare_chain_market
from options.costs import CostConfig, bid_ask_per_share
from options.pricing import bs_price
from options.surface import SurfaceConfig, iv_at
from options.validate import validation_summary

ROOT = Path(__file__).resolve().parents[1]
SPX = ROOT / "tests" / "data" / "real_chains" / "spx_slice_2019-05-06_07.csv.gz"
CONTRACT_KEYS = {"n_quotes", "otm_median_abs_iv_error_pts", "otm_mean_iv_error_pts", "buckets",
                 "put_spread_credit_error_pct", "width_ratio_median"}
CFG = SurfaceConfig(index_to_atm_ratio=0.88, ssvi_rho=-0.6, ssvi_eta=0.9,
                    dividend_yield_annualized=0.013)
RATE = 0.01


def spy_model_chain(cfg: SurfaceConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    dates = pd.bdate_range("2016-05-02", periods=4)
    spot = np.array([205.0, 206.5, 204.0, 207.0])
    index = np.array([0.14, 0.15, 0.17, 0.13])
    expiries = pd.DatetimeIndex(["2016-05-20", "2016-06-03", "2016-06-17", "2016-07-15"])
    rows = []
    for d, s, ix in zip(dates, spot, index, strict=True):
        for e in expiries:
            t = (e - d).days / 365
            strikes = np.arange(175.0, 236.0, 1.0)
            iv = iv_at(cfg.index_to_atm_ratio * ix, s, strikes, t, cfg)
            for typ in ("call", "put"):
                mid = bs_price(typ, s, strikes, t, RATE, iv, cfg.dividend_yield_annualized)
                bid, ask = bid_ask_per_share(mid, CostConfig())
                rows.append(pd.DataFrame({
                    "quote_date": d, "expiry": e, "option_type": typ, "strike": strikes,
                    "bid_per_share": bid, "ask_per_share": ask, "mid_per_share": 0.5 * (bid + ask),
                    "volume": 1.0, "open_interest": 1.0, "underlying_price": s,
                    "zero_bid": bid <= 0, "iv_vendor": np.nan, "root": "SPY",
                    "dte_days": (e - d).days}))
    frame = pd.DataFrame({"close": spot, "iv_index": index, "rate": RATE}, index=dates)
    return pd.concat(rows, ignore_index=True), frame


def test_model_chain_validates_against_its_own_model():
    chain, frame = spy_model_chain(CFG)
    cm = prepare_chain_market(chain, frame=frame)
    doc, cmp = validation_summary(cm, CFG)
    assert set(doc) >= CONTRACT_KEYS
    assert doc["n_quotes"] == len(cmp) > 100
    # the market mid is the model mid moved by rounding to the penny: small errors only
    assert doc["otm_median_abs_iv_error_pts"] < 0.1
    assert abs(doc["otm_mean_iv_error_pts"]) < 0.1
    assert doc["width_ratio_median"] == pytest.approx(1.0)
    assert abs(doc["put_spread_credit_error_pct"]) < 2.0
    assert doc["n_put_spread_entries"] == 4
    # ... and the default surface does not
    other, _ = validation_summary(cm, SurfaceConfig())
    assert other["otm_median_abs_iv_error_pts"] > 0.5
    assert abs(other["put_spread_credit_error_pct"]) > 5
    row = doc["buckets"][0]
    assert {"moneyness_bucket", "dte_bucket", "n", "median_iv_error_pts", "mean_iv_error_pts",
            "median_abs_iv_error_pts", "median_price_error_pct", "median_width_ratio"} <= set(row)
    assert sum(r["n"] for r in doc["buckets"]) == doc["n_quotes"]


def test_cli_writes_json_report_and_plot(tmp_path):
    out = tmp_path / "val"
    proc = subprocess.run([sys.executable, "-m", "options.validate", "--chain", str(SPX),
                           "--market", "none", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "validation.json").read_text())
    assert set(doc) >= CONTRACT_KEYS
    assert doc["n_quotes"] > 100 and doc["chain"]["model_price_scale"] == 0.1
    assert doc["chain"]["index_source_counts"] == {"chain_vix": 2}
    assert np.isfinite(doc["otm_median_abs_iv_error_pts"])
    assert (out / "report.md").read_text().startswith("# Model versus market")
    assert (out / "iv_error_by_bucket.png").stat().st_size > 1000


def test_cli_bad_surface_file_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("surface: {put_skew_slope_1y: nope}\n")
    proc = subprocess.run([sys.executable, "-m", "options.validate", "--chain", str(SPX),
                           "--surface", str(bad), "--out", str(tmp_path / "o")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "bad.yaml" in proc.stderr and "put_skew_slope_1y" in proc.stderr
    assert not (tmp_path / "o").exists()
