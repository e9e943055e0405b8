"""Implied vol for bars without it (options.iv_proxy) and the ATM series built on it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from common.errors import UserInputError
from options.iv_proxy import (
    GARCH_SPEC,
    GARCH_VRP_RATIO,
    IV_PROXY_KEY,
    describe_iv_proxy,
    fit_report,
    garch_vol_forecast,
    realized_vol_series,
)
from options.surface import SurfaceConfig, atm_iv_series

ROOT = Path(__file__).resolve().parent.parent
RATIO_CFG = SurfaceConfig(iv_proxy="realized_ratio")
GARCH_CFG = SurfaceConfig(iv_proxy="garch_vrp")
NONE_CFG = SurfaceConfig(iv_proxy="none")


@pytest.fixture(scope="module")
def real_frame() -> pd.DataFrame:
    """S&P 500 closes 1999-2018 with VIX/100 as iv_index where it exists (2014-2018)."""
    from arch.data import sp500, vix

    sp = sp500.load()
    frame = pd.DataFrame({"close": sp["Adj Close"].astype(float)})
    frame["iv_index"] = (vix.load()["vix"] / 100.0).reindex(frame.index)
    return frame


def gjr_closes(n_bars: int, seed: int) -> pd.Series:
    """Closes of a simulated GJR-GARCH(1,1) (daily-like, percent returns)."""
    rng = np.random.default_rng(seed)
    omega, alpha, gamma, beta = 0.02, 0.02, 0.15, 0.88
    var, returns = 1.0, np.empty(n_bars)
    for i in range(n_bars):
        eps = math.sqrt(var) * rng.standard_normal()
        returns[i] = 0.03 + eps
        var = omega + (alpha + gamma * (eps < 0)) * eps * eps + beta * var
    idx = pd.bdate_range("2001-01-01", periods=n_bars)
    return pd.Series(100.0 * np.exp(np.cumsum(returns) / 100.0), index=idx, name="close")


# --------------------------------------------------------------------------- realized_ratio
def test_realized_ratio_uses_iv_index_where_present_and_fallback_before_overlap():
    idx = pd.bdate_range("2010-01-01", periods=120)
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx))))
    iv_index = np.full(len(idx), np.nan)
    iv_index[80:] = 0.25
    frame = pd.DataFrame({"close": close, "iv_index": iv_index}, index=idx)
    out = atm_iv_series(frame, RATIO_CFG)
    rv = realized_vol_series(frame["close"], 21, 252)
    assert out.iloc[:21].isna().all()  # no index, no full realised window yet
    np.testing.assert_allclose(out.iloc[21:80], rv.iloc[21:80] * 1.2, rtol=1e-12)
    np.testing.assert_array_equal(out.iloc[80:], 0.25)


def test_realized_ratio_is_geometric_mean_of_prior_overlap():
    idx = pd.bdate_range("2010-01-01", periods=200)
    rng = np.random.default_rng(2)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(idx))))
    rv = realized_vol_series(pd.Series(close, index=idx), 21, 252)
    iv_index = pd.Series(np.nan, index=idx)
    iv_index.iloc[30:120] = 1.5 * rv.iloc[30:120] * np.exp(rng.normal(0, 0.1, 90))
    frame = pd.DataFrame({"close": close, "iv_index": iv_index}, index=idx)
    out = atm_iv_series(frame, RATIO_CFG.model_copy(update={"min_calibration_overlap_bars": 60}))
    ratio = math.exp(np.mean(np.log(iv_index.iloc[30:120] / rv.iloc[30:120])))
    np.testing.assert_allclose(out.iloc[120:], rv.iloc[120:] * ratio, rtol=1e-10)


def test_frame_without_iv_index_uses_the_proxy_everywhere_and_needs_close():
    idx = pd.bdate_range("2001-01-01", periods=60)
    close = np.linspace(100, 110, 60) * (1 + 0.01 * np.sin(np.arange(60)))
    out = atm_iv_series(pd.DataFrame({"close": close}, index=idx), RATIO_CFG)
    assert out.iloc[21:].notna().all() and out.name == "atm_iv_annualized"
    with pytest.raises(ValueError, match="close"):
        atm_iv_series(pd.DataFrame({"open": close}, index=idx))


def test_garch_vrp_is_the_default_and_the_config_key_is_checked():
    from config import ConfigError, load_config

    assert SurfaceConfig().iv_proxy == "garch_vrp"
    raw = {"segments": {"train": {"start": "2010-01-01", "end": "2010-12-31"},
                        "valid": {"start": "2011-01-01", "end": "2011-06-30"},
                        "test": {"start": "2011-07-01", "end": "2011-12-31"}}}
    assert load_config(raw, ["options.surface.iv_proxy=none"]).options.surface.iv_proxy == "none"
    with pytest.raises(ConfigError, match="options.surface.iv_proxy"):
        load_config(raw, ["options.surface.iv_proxy=vix"])


# --------------------------------------------------------------------------- GJR-GARCH
def test_garch_forecast_matches_arch_at_and_between_refits():
    from arch import arch_model

    close = gjr_closes(700, seed=3)
    forecast = garch_vol_forecast(close, 252.0)
    horizon, min_history, refit = GARCH_SPEC.bars(252.0)
    assert (horizon, min_history, refit) == (21, 504, 63)
    assert forecast.iloc[:min_history].isna().all() and forecast.iloc[min_history:].notna().all()
    returns_pct = 100.0 * np.diff(np.log(close.to_numpy()))
    fit = arch_model(returns_pct[:min_history], mean="Constant", vol="GARCH", p=1, o=1, q=1,
                     dist="normal", rescale=False).fit(disp="off", show_warning=False)
    for bar in (min_history, min_history + 40):  # the fit bar, and a bar filtered with its fit
        later = arch_model(returns_pct[:bar], mean="Constant", vol="GARCH", p=1, o=1, q=1,
                           dist="normal", rescale=False).fix(fit.params)
        var = later.forecast(horizon=horizon, reindex=False).variance.to_numpy()[-1]
        want = math.sqrt(var.mean() * 252.0) / 100.0
        assert forecast.iloc[bar] == pytest.approx(want, rel=1e-5)


def test_garch_forecast_is_causal_by_truncation():
    close = gjr_closes(900, seed=4)
    full = garch_vol_forecast(close, 252.0)
    for cut in (504, 530, 567, 700, 899):  # a fit bar, inside a block, block starts, the end
        part = garch_vol_forecast(close.iloc[: cut + 1], 252.0)
        pd.testing.assert_series_equal(part, full.iloc[: cut + 1])
    shocked = close.copy()
    shocked.iloc[650:] *= np.exp(np.linspace(0.0, -0.5, 250))  # a crash after bar 649
    pd.testing.assert_series_equal(garch_vol_forecast(shocked, 252.0).iloc[:650],
                                   full.iloc[:650])
    assert not np.allclose(garch_vol_forecast(shocked, 252.0).iloc[660:], full.iloc[660:])


def test_atm_series_is_causal_by_truncation_on_real_data(real_frame):
    # VIX hidden in 2017-2018 so those bars use the proxy, as the years before 2014 do.
    frame = real_frame.loc["2006-01-01":].copy()
    frame.loc["2017-01-01":, "iv_index"] = np.nan
    for cfg in (GARCH_CFG, RATIO_CFG):
        full = atm_iv_series(frame, cfg)
        assert full.loc["2008-02-01":].notna().all()  # two years of bars from 2006
        for cut in ("2012-08-15", "2017-05-31"):
            pd.testing.assert_series_equal(atm_iv_series(frame.loc[:cut], cfg), full.loc[:cut])
        shocked = frame.copy()
        shocked.loc["2017-06-01":, "close"] *= 0.5
        pd.testing.assert_series_equal(atm_iv_series(shocked, cfg).loc[:"2017-05-31"],
                                       full.loc[:"2017-05-31"])


# --------------------------------------------------------------------------- levels
@pytest.fixture(scope="module")
def fitted(real_frame) -> dict:
    return fit_report(real_frame)


def test_shipped_ratio_is_the_one_the_fit_gives(fitted):
    assert fitted["ratio_all"] == pytest.approx(GARCH_VRP_RATIO, abs=1e-4)
    assert fitted["fitted_on"] == "2014-01-03..2015-12-31" and fitted["bars_all"] > 500


def test_garch_vrp_tracks_the_vix_out_of_sample_better_than_realised_vol(fitted):
    # Ratio fitted on 2014-2016 only, scored on 2017-2018 against the real VIX.
    errors = {name: row["median_abs_error_vol_points"]
              for name, row in fitted["out_of_sample"].items()}
    assert fitted["test_bars"] > 450
    assert errors["garch_vrp"] < 1.5  # measured 1.12 vol points (mean VIX 13.9)
    assert errors["garch_vrp"] < errors["realized_ratio"]
    assert errors["garch_vrp"] < errors["realized_x_fallback"]


# --------------------------------------------------------------------------- none, describe
def test_none_refuses_a_frame_without_implied_vol_naming_key_and_data():
    idx = pd.bdate_range("2010-01-01", periods=40)
    frame = pd.DataFrame({"close": np.linspace(100, 104, 40)}, index=idx)
    frame.attrs.update(source="csv", symbol="NDX")
    with pytest.raises(UserInputError, match=rf"'csv NDX'.*{IV_PROXY_KEY} is 'none'"):
        atm_iv_series(frame, NONE_CFG)
    partial = frame.assign(iv_index=np.where(np.arange(40) >= 20, 0.2, np.nan))
    out = atm_iv_series(partial, NONE_CFG)
    assert out.iloc[:20].isna().all() and (out.iloc[20:] == 0.2).all()
    segments = {"train": ("2010-01-01", "2010-01-20"), "test": ("2010-02-01", "2010-02-25")}
    with pytest.raises(UserInputError, match=rf"segment 'train'.*first 2010-01-01.*"
                                             rf"{IV_PROXY_KEY} 'none' has no iv_index"):
        describe_iv_proxy(partial, NONE_CFG, segments, bars_per_year=252.0)
    ok = describe_iv_proxy(partial, NONE_CFG, {"test": segments["test"]}, bars_per_year=252.0)
    assert ok["segments"]["test"]["bars_priced_by_proxy"] == 0


def test_describe_counts_proxied_bars_and_refuses_too_little_history(real_frame):
    frame = real_frame.loc["2011-01-01":"2014-06-30"]
    segments = {"train": ("2013-07-01", "2013-12-31"), "test": ("2014-01-01", "2014-06-30")}
    doc = describe_iv_proxy(frame, GARCH_CFG, segments, bars_per_year=252.0)
    assert doc["iv_proxy"] == "garch_vrp" and doc["ratio"] == GARCH_VRP_RATIO
    assert doc["fit"]["command"] == "python -m options.iv_proxy_fit"
    train, test = doc["segments"]["train"], doc["segments"]["test"]
    assert train["bars_priced_by_proxy"] == train["bars"] > 100
    assert (train["first_proxy_bar"], train["last_proxy_bar"]) == ("2013-07-01", "2013-12-31")
    assert test["bars_priced_by_proxy"] == 1 and test["first_proxy_bar"] == "2014-01-02"
    assert f"{IV_PROXY_KEY} = garch_vrp" in doc["summary"] and "train 128/128" in doc["summary"]
    json.dumps(doc)  # JSON-ready
    with pytest.raises(UserInputError, match=r"segment 'early'.*first 2011-01-03.*"
                                             r"'garch_vrp' gives no value there"):
        describe_iv_proxy(frame, GARCH_CFG, {"early": ("2011-01-01", "2012-12-31")},
                          bars_per_year=252.0)


# --------------------------------------------------------------------------- end to end
def tiny_config(cache_dir: Path) -> dict:
    """A tiny experiment before 2014: every bar of every segment is priced by the proxy."""
    return {
        "name": "tiny_proxy",
        "data": {"source": "embedded", "start": "2007-01-01", "end": "2011-12-31"},
        "segments": {"train": {"start": "2010-01-01", "end": "2010-12-31"},
                     "valid": {"start": "2011-01-01", "end": "2011-06-30"},
                     "test": {"start": "2011-07-01", "end": "2011-12-31"}},
        "forecast": {"first_forecast_date": "2009-12-01", "members": ["vol_rw"],
                     "references": ["random_walk"], "refit_every_bars": 252,
                     "cache_dir": str(cache_dir)},
        "env": {"underlying_price_scale": 0.1, "episode_length_bars": 40},
        "agent": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": [16]},
        "train": {"total_timesteps": 128, "checkpoint_every_steps": 128,
                  "eval_every_steps": 128, "n_envs": 1, "progress_bar": False},
        "eval": {"bootstrap_samples": 200},
    }


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_train_with_none_refuses_data_without_implied_vol(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "cache")))
    refused = run(str(ROOT / "train.py"), "--config", str(config), "--run-dir",
                  str(tmp_path / "none"), "--no-progress", "--set", f"{IV_PROXY_KEY}=none")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"{IV_PROXY_KEY} is 'none'" in refused.stderr and "embedded ^GSPC" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "none").exists()


@pytest.mark.slow  # about 25 s of CPU (forecasts, 128 PPO steps, an evaluation)
def test_proxy_is_stated_in_log_train_summary_provenance_and_report(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path / "cache")))
    run_dir = tmp_path / "run"
    trained = run(str(ROOT / "train.py"), "--config", str(config), "--run-dir", str(run_dir),
                  "--no-progress")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"implied vol: iv_index where present, else {IV_PROXY_KEY} = garch_vrp" in \
        trained.stderr
    summary = json.loads((run_dir / "train_summary.json").read_text())["iv_proxy"]
    provenance = json.loads((run_dir / "provenance.json").read_text())["iv_proxy"]
    assert summary == provenance
    assert summary["iv_proxy"] == "garch_vrp" and summary["ratio"] == GARCH_VRP_RATIO
    assert summary["segments"]["train"]["bars_priced_by_proxy"] == \
        summary["segments"]["train"]["bars"] > 200

    evaluated = run(str(ROOT / "evaluate.py"), "--run", str(run_dir), "--no-plots",
                    "--baselines", "cash")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["iv_proxy"]["segments"]["test"]["bars_priced_by_proxy"] == \
        metrics["bars"]
    report = (run_dir / "eval" / "report.md").read_text()
    assert f"Implied vol: iv_index where present, else {IV_PROXY_KEY} = garch_vrp" in report
    assert f"x {GARCH_VRP_RATIO:.4f}" in report


def test_rows_read_keep_their_values_and_save_the_other_fits(real_frame, monkeypatch):
    """``rows``: the garch proxy fits only the refit blocks holding them, and their values are
    those of the whole frame's proxy (the environment's market panel reads its segment only)."""
    import options.iv_proxy as iv_proxy

    full = atm_iv_series(real_frame, GARCH_CFG)
    fits = []
    fit = iv_proxy._fit_gjr
    monkeypatch.setattr(iv_proxy, "_fit_gjr", lambda r: fits.append(len(r)) or fit(r))
    for start, stop in [("2013-12-20", "2014-02-10"), ("2006-01-01", "2006-03-31")]:
        rows = pd.Series((real_frame.index >= start) & (real_frame.index <= stop),
                         index=real_frame.index)
        fits.clear()
        some = atm_iv_series(real_frame.iloc[:-1], GARCH_CFG, rows=rows)  # a new memo key
        assert 0 < len(fits) <= 2  # the refit blocks holding the rows, not all of them
        np.testing.assert_array_equal(some[rows.iloc[:-1]].to_numpy(),
                                      full.iloc[:-1][rows.iloc[:-1]].to_numpy())
        assert some[rows.iloc[:-1]].notna().all()


def test_describe_fits_the_proxy_for_the_segments_bars_only(real_frame, monkeypatch):
    """The embedded data's years before the VIX that no segment reads cost no GARCH fit (a
    tiny run's data starts in 2010, its segments in 2014), and the description is the same."""
    import options.iv_proxy as iv_proxy

    frame = real_frame.loc["2006-01-01":"2014-06-30"].iloc[:-1]  # a memo key of its own
    segments = {"train": ("2013-10-01", "2013-12-31"), "test": ("2014-01-01", "2014-06-30")}
    fits = []
    fit = iv_proxy._fit_gjr
    monkeypatch.setattr(iv_proxy, "_fit_gjr", lambda r: fits.append(len(r)) or fit(r))
    doc = describe_iv_proxy(frame, GARCH_CFG, segments, bars_per_year=252.0)
    assert 0 < len(fits) <= 2  # the refit blocks holding the segments' proxied bars
    assert doc["segments"]["train"]["bars_priced_by_proxy"] == doc["segments"]["train"]["bars"]
    level = iv_proxy.implied_vol_level(frame.iloc[:-1], GARCH_CFG, bars_per_year=252.0)
    assert level.loc["2013-10-01":"2013-12-31"].notna().all() and len(fits) > 10  # all of them
