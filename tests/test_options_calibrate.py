"""Calibration of the model surface: recovers known parameters from a chain the model made;
the CLI writes a YAML that loads into SurfaceConfig; bad input exits 2 in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from options.calibrate import FITTED_FIELDS, calibration_quotes, fit_surface
from options.chain_market import prepare_chain_market
from options.costs import CostConfig, bid_ask_per_share
from options.pricing import bs_price
from options.surface import (
    SurfaceConfig,
    iv_at,
    load_surface_config,
    ssvi_shape,
    surface_arbitrage_report,
)

ROOT = Path(__file__).resolve().parents[1]
SPY = ROOT / "tests" / "data" / "real_chains" / "spy_slice_2021-03-01_05.csv"
TRUE = SurfaceConfig(index_to_atm_ratio=0.87, long_run_iv_annualized=0.17,
                     term_mean_reversion_per_year=4.0, ssvi_rho=-0.62, ssvi_rho_per_log_level=-0.2,
                     ssvi_eta=0.95, ssvi_eta_per_log_level=-0.4, ssvi_gamma=0.45)
RATE, DIV = 0.02, 0.015


def model_chain(cfg: SurfaceConfig, *, n_dates: int = 6, seed: int = 0,
                rounded: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A tidy chain priced by the model surface, and the market frame it used."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2017-03-01", periods=n_dates)
    index = 0.11 + 0.2 * rng.random(n_dates)
    spot = 2300.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n_dates)))
    rows = []
    for d, ix, s in zip(dates, index, spot, strict=True):
        for dte in (9, 16, 30, 44, 58, 90, 120):
            strikes = np.round(s * np.exp(np.linspace(-0.16, 0.16, 33)), 1)
            t = dte / 365
            iv = iv_at(cfg.index_to_atm_ratio * ix, s, strikes, t, cfg)
            for typ in ("call", "put"):
                mid = bs_price(typ, s, strikes, t, RATE, iv, DIV)
                if rounded:
                    bid, ask = bid_ask_per_share(mid, CostConfig(tick_size=0.05))
                else:
                    bid, ask = mid * 0.995, mid * 1.005
                rows.append(pd.DataFrame({
                    "quote_date": d, "expiry": d + pd.Timedelta(days=dte), "option_type": typ,
                    "strike": strikes, "bid_per_share": bid, "ask_per_share": ask,
                    "mid_per_share": 0.5 * (bid + ask), "volume": 10.0, "open_interest": 100.0,
                    "underlying_price": s, "zero_bid": bid <= 0, "iv_vendor": np.nan,
                    "root": "SPXW", "dte_days": dte}))
    frame = pd.DataFrame({"close": spot, "iv_index": index, "rate": RATE}, index=dates)
    return pd.concat(rows, ignore_index=True), frame


def test_calibration_recovers_the_parameters_of_a_model_chain():
    chain, frame = model_chain(TRUE)
    cm = prepare_chain_market(chain, frame=frame)
    assert cm.rate == RATE and cm.rate_source == "frame"
    assert set(cm.index_source) == {"frame"}
    assert cm.dividend_yield == pytest.approx(DIV, abs=1e-6)
    cfg, stats = fit_surface(calibration_quotes(cm))
    for name in FITTED_FIELDS:
        assert getattr(cfg, name) == pytest.approx(getattr(TRUE, name), rel=0.02, abs=0.005), name
    assert stats["median_abs_iv_error_pts"] < 0.01


def test_default_surface_does_not_fit_a_calibrated_chain():
    # the check above can fail: the default surface is far from this chain
    chain, frame = model_chain(TRUE, n_dates=2)
    cm = prepare_chain_market(chain, frame=frame)
    q = calibration_quotes(cm)
    err = iv_at(q["index"].to_numpy(), q["underlying_price"].to_numpy(), q["strike"].to_numpy(),
                q["t_years"].to_numpy(), SurfaceConfig()) - q["iv_market"].to_numpy()
    assert np.median(np.abs(err)) * 100 > 0.5


def test_fit_respects_the_no_butterfly_bound():
    # a chain whose smile is steeper than the SSVI bound allows: the fit stays at the bound
    steep = TRUE.model_copy(update={"ssvi_eta": 1.6, "ssvi_eta_per_log_level": 0.0,
                                    "ssvi_rho_per_log_level": 0.0})
    chain, frame = model_chain(steep, n_dates=2)
    cm = prepare_chain_market(chain, frame=frame)
    cfg, _ = fit_surface(calibration_quotes(cm))
    index = np.linspace(9.0, 80.0, 300)
    rho, eta = ssvi_shape(cfg.index_to_atm_ratio * index / 100, cfg)
    assert np.all(eta * (1 + np.abs(rho)) <= 2.0)
    rho_true, eta_true = ssvi_shape(steep.index_to_atm_ratio * index / 100, steep)
    assert np.all(eta_true * (1 + np.abs(rho_true)) > 2.5)  # what the quotes alone ask for
    assert surface_arbitrage_report(cfg).ok


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_writes_a_surface_yaml_that_loads(tmp_path):
    out = tmp_path / "surface_spy.yaml"
    proc = run_cli("options.calibrate", "--chain", str(SPY), "--rate", "0.0005",
                   "--market", "none", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    cfg = load_surface_config(out)
    doc = yaml.safe_load(out.read_text())
    assert set(doc) == {"surface", "provenance"}
    prov = doc["provenance"]
    assert prov["n_dates"] == 5 and prov["first_date"] == "2021-03-01"
    assert prov["files"][0]["sha256"] and prov["n_quotes_fitted"] > 50
    assert prov["index_source_counts"] == {"chain_vix": 5}
    assert "median_abs_iv_error_pts" in prov["fit_residuals_vol_points"]
    assert cfg.dividend_yield_annualized == doc["surface"]["dividend_yield_annualized"]
    assert 0.6 < cfg.index_to_atm_ratio < 1.2
    assert prov["arbitrage_check"]["n_violations"] == 0
    assert prov["command"].startswith("python -m options.calibrate --chain ")
    assert set(prov["fit_residuals_by_moneyness_pct"]) and set(prov["fit_residuals_by_index_tercile"])


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    proc = run_cli("options.calibrate", "--chain", str(tmp_path / "none.csv"),
                   "--out", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2
    assert "none.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.yaml").exists()


def test_surface_yaml_errors_name_the_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"surface": {"ssvi_gamma": -1.0}}))
    with pytest.raises(ValueError, match=r"s.yaml.*surface.ssvi_gamma"):
        load_surface_config(path)
    path.write_text(yaml.safe_dump({"surface": {}, "extra": 1}))
    with pytest.raises(ValueError, match="unknown top-level key"):
        load_surface_config(path)
