"""Intervals chosen on long windows, the HAR and GJR members, the verdicts and the forecast gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasters import ForecastConfig, make_forecaster
from forecasters.base import RETURN_COLUMN, VOL_COLUMN, quantile_column
from forecasters.config import GateConfig
from forecasters.conformal import block_coverage_error, calibrate_intervals, select_step
from forecasters.gate import evaluate_gate
from forecasters.metrics import coverage_by_year_table, evaluate_panel, verdict_lines
from forecasters.walkforward import forward_log_returns

ROOT = Path(__file__).resolve().parent.parent
LEVELS = [0.05, 0.125, 0.5, 0.875, 0.95]
GRID = [0.0, 0.01, 0.05, 0.1]
BARS_PER_YEAR = 252
Z = np.array([-1.6448536, -1.1503494, 0.0, 1.1503494, 1.6448536])  # N(0,1) quantiles of LEVELS


def _shift_series(n: int, shifts: list[int], seed: int = 0):
    """Per-bar returns whose annualised vol alternates 10% -> 40% -> 10% ... at ``shifts``;
    forward h-bar returns (n, H) for H = (1, 5); a stale interval that always assumes 10%."""
    rng = np.random.default_rng(seed)
    annual = np.full(n, 0.10)
    for k, start in enumerate(shifts):
        annual[start:] = 0.40 if k % 2 == 0 else 0.10
    r = rng.standard_normal(n) * annual / np.sqrt(BARS_PER_YEAR)
    close = pd.Series(100 * np.exp(np.cumsum(r)))
    horizons = (1, 5)
    y = forward_log_returns(close, horizons)
    calm = 0.10 / np.sqrt(BARS_PER_YEAR) * np.sqrt(np.asarray(horizons, float))
    raw = np.broadcast_to(calm[None, :, None] * Z[None, None, :], (n, 2, 5)).copy()
    scale = np.broadcast_to(calm[None, :], (n, 2)).copy()
    return y, raw, scale, horizons


def _coverage(calibrated: np.ndarray, y: np.ndarray, rows: slice, j: int, lo: int, hi: int):
    inside = (y[rows, j] >= calibrated[rows, j, lo]) & (y[rows, j] <= calibrated[rows, j, hi])
    return float(np.mean(inside[np.isfinite(y[rows, j])]))


def test_coverage_recovers_after_an_abrupt_vol_shift_with_h_bar_label_delays():
    # a calm-turbulent-calm history to choose the step on, then the tested shift at bar 2400
    n, tested_shift = 3200, 2400
    y, raw, scale, horizons = _shift_series(n, [700, 1100, tested_shift])
    calibrated, chosen = calibrate_intervals(
        raw, y, scale, horizons, LEVELS, 250, 60, GRID, 0.02, (0, 1800), 0.005, 63
    )
    after = slice(tested_shift + 100, n)  # from 100 bars after the 10% -> 40% shift
    for j, h in enumerate(horizons):
        raw_cov = _coverage(raw, y, after, j, 1, 3)
        assert raw_cov < 0.35, f"h={h}: the stale interval should miss the shift ({raw_cov})"
        for lo, hi, nominal in ((1, 3, 0.75), (0, 4, 0.90)):
            cov = _coverage(calibrated, y, after, j, lo, hi)
            assert abs(cov - nominal) < 0.05, f"h={h} {nominal}: coverage {cov:.3f} after the shift"
    # the steps were chosen on the calm-and-turbulent history: none is the static scorecaster
    assert all(c.n_selection > 0 for c in chosen)
    assert all(c.method != "fixed" or c.step > 0 for c in chosen)


@settings(max_examples=8, deadline=None)
@given(cut=st.integers(min_value=1300, max_value=1580), horizon=st.sampled_from([1, 3, 5]))
def test_thresholds_at_t_ignore_labels_after_t_minus_h(cut, horizon):
    """Labels of forecasts made after ``cut - h`` (unknown at ``cut``) never move the interval
    made at ``cut`` or before, with the step chosen on a history that ends before ``cut``."""
    y, raw, scale, _ = _shift_series(1600, [500, 900, 1250], seed=cut)
    j = 1 if horizon == 5 else 0
    y1, raw1, scale1 = y[:, [j]].copy(), raw[:, [j]].copy(), scale[:, [j]].copy()
    args = ([horizon], LEVELS, 200, 40, GRID, 0.02, (0, 1200), 0.005, 63)
    known = y1.copy()
    known[len(known) - horizon :] = np.nan
    full, steps = calibrate_intervals(raw1, known, scale1, *args)
    changed = known.copy()
    changed[cut - horizon + 1 :] = 7.0 * np.sign(np.random.default_rng(cut).standard_normal())
    again, steps_again = calibrate_intervals(raw1, changed, scale1, *args)
    assert repr(steps_again) == repr(steps)  # repr: the aggregated step is NaN
    np.testing.assert_array_equal(again[: cut + 1], full[: cut + 1])


def test_block_coverage_error_charges_offsetting_misses():
    # two candidates with 75% coverage overall: one steady, one 100% then 50% by half
    steady = np.tile([1, 1, 1, 0], 50)
    lumpy = np.r_[np.ones(100), np.tile([1, 0], 50)]
    covered = np.column_stack([steady, lumpy]).astype(bool)
    np.testing.assert_allclose(block_coverage_error(covered, 0.75, None), [0.0, 0.0])
    np.testing.assert_allclose(block_coverage_error(covered, 0.75, 20), [0.0, 0.25])


def test_selection_puts_coverage_before_width():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.standard_normal(n) * np.where(np.arange(n) % 200 < 100, 0.5, 1.5)
    lower, upper = np.full(n, -1.15), np.full(n, 1.15)
    # candidate 0: constant (narrow in calm, too narrow in turbulence); 1: widens with vol
    thresholds = np.column_stack([np.zeros(n), np.where(np.arange(n) % 200 < 100, -0.58, 0.58)])
    rows = np.ones(n, bool)
    best, *_ = select_step(lower, upper, y, np.ones(n), thresholds, rows, 0.75, 0.005, 0, 50)
    assert best == 1


def _har_inputs(n: int = 900, seed: int = 0):
    rng = np.random.default_rng(seed)
    annual = np.where(np.arange(n) < n // 2, 0.1, 0.3)
    r = rng.standard_normal(n) * annual / np.sqrt(BARS_PER_YEAR)
    close = pd.Series(100 * np.exp(np.cumsum(r)), index=pd.bdate_range("2010-01-01", periods=n))
    ret = np.log(close).diff()
    X = pd.DataFrame(
        {
            RETURN_COLUMN: ret,
            VOL_COLUMN: ret.rolling(20).std(),
            "rv_ann_5b": ret.rolling(5).std() * np.sqrt(BARS_PER_YEAR),
            "rv_ann_20b": ret.rolling(20).std() * np.sqrt(BARS_PER_YEAR),
        },
        index=close.index,
    )
    return X, forward_log_returns(close, (1, 5))


def test_har_member_tracks_the_vol_level_and_uses_resolved_labels_only():
    config = ForecastConfig(horizons=[1, 5], quantile_levels=LEVELS, members=["har"])
    X, y = _har_inputs()
    fit_end = 800
    train = y[: fit_end + 1].copy()
    rows = np.arange(fit_end + 1)
    train[rows[:, None] + np.array([1, 5])[None, :] > fit_end] = np.nan
    model = make_forecaster("har", config, 0).fit(X.iloc[: fit_end + 1], train)
    pred = model.predict(X.iloc[fit_end - 10 :])
    turbulent = model.predict(X.iloc[500 : fit_end + 1])
    width = turbulent[:, 0, 3] - turbulent[:, 0, 1]  # 75% interval, h=1, in the 30% regime
    expected = 2 * 1.15 * 0.3 / np.sqrt(BARS_PER_YEAR)
    assert abs(np.median(width) / expected - 1) < 0.25
    calm = model.predict(X.iloc[300:400])
    assert np.median(width) / np.median(calm[:, 0, 3] - calm[:, 0, 1]) > 2  # 30% vs 10% vol
    assert np.all(np.diff(pred, axis=-1) >= 0)


@pytest.mark.parametrize(
    ("member", "start", "refit_every_bars", "params"),
    [
        ("har", "2013-01-01", 60, {}),
        ("gjr", "2012-01-01", 120, {"gjr": {"lookback_bars": 600, "quantile_lookback_bars": 300}}),
    ],
)
def test_member_walk_forward_has_no_look_ahead(member, start, refit_every_bars, params):
    """The member's panel on data truncated at T equals the full panel at dates <= T."""
    import data
    from forecasters import walk_forward

    market = data.load_market("embedded", start=start, end="2016-06-30")
    config = ForecastConfig(
        horizons=[1, 3], members=[member], references=["random_walk"], min_train_bars=300,
        refit_every_bars=refit_every_bars, n_jobs=1,
        ensemble={"min_forecasts": 30, "lookback_forecasts": 200},
        conformal={"min_forecasts": 20, "window_forecasts": 100, "select_end": "2015-06-30"},
        **params,
    )  # fmt: skip
    full = walk_forward(market, config, progress=False)
    cut = market.index[len(market) - 95]
    truncated = walk_forward(market.loc[:cut], config, progress=False)
    expected = full[full["date"] <= cut].reset_index(drop=True)
    assert set(expected["model"]) == {member, "random_walk", "ensemble"}
    pd.testing.assert_frame_equal(truncated.reset_index(drop=True), expected, rtol=1e-9, atol=1e-12)


def _gjr_series(n: int = 3000, seed: int = 0):
    """Daily returns from a GJR-GARCH(1,1)-t in percent (omega 0.02, alpha 0.02, gamma 0.12,
    beta 0.9, nu 7), as a model input frame and forward h-bar returns for h = 1, 5."""
    rng = np.random.default_rng(seed)
    omega, alpha, gamma, beta, nu = 0.02, 0.02, 0.12, 0.9, 7.0
    shocks = rng.standard_t(nu, n) * np.sqrt((nu - 2) / nu)
    variance, r_pct = omega / (1 - alpha - gamma / 2 - beta), np.empty(n)
    for i in range(n):
        r_pct[i] = np.sqrt(variance) * shocks[i]
        variance = omega + (alpha + gamma * (r_pct[i] < 0)) * r_pct[i] ** 2 + beta * variance
    close = pd.Series(
        100 * np.exp(np.cumsum(r_pct / 100)), index=pd.bdate_range("2000-01-03", periods=n)
    )
    X = pd.DataFrame({RETURN_COLUMN: np.log(close).diff()}, index=close.index)
    return X, forward_log_returns(close, (1, 5))


def _resolved_at(y: np.ndarray, refit: int, horizons=(1, 5)) -> np.ndarray:
    rows = np.arange(refit + 1)
    fit = y[: refit + 1].copy()
    fit[rows[:, None] + np.array(horizons)[None, :] > refit] = np.nan
    return fit


def test_gjr_member_matches_arch_and_answers_falls_more_than_rises():
    """The h-bar variance equals arch's own GJR forecast summed over 1..h (an independent
    implementation); a 2% fall widens tomorrow's interval more than a 2% rise; and its
    intervals out of sample cover as promised on the process it models."""
    from arch import arch_model

    config = ForecastConfig(horizons=[1, 5], quantile_levels=LEVELS, members=["gjr"])
    X, y = _gjr_series()
    refit = 2499
    model = make_forecaster("gjr", config, 0).fit(X.iloc[: refit + 1], _resolved_at(y, refit))
    assert model._gamma > 0.05 and model._alpha < 0.06

    returns_pct = 100 * X[RETURN_COLUMN].to_numpy()[1 : refit + 1]
    reference = arch_model(
        returns_pct, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="t", rescale=False
    )
    steps = (
        reference.fix([model._mu, model._omega, model._alpha, model._gamma, model._beta, model._nu])
        .forecast(horizon=5, reindex=False)
        .variance.to_numpy()[-1]
    )
    ours = model._cumulative_variance_pct2(100 * X[RETURN_COLUMN].to_numpy()[: refit + 1])[-1]
    np.testing.assert_allclose(ours, [steps[0], steps.sum()], rtol=1e-6)

    window = X.iloc[refit - 100 : refit + 1].copy()
    widths = {}
    for move in (-0.02, 0.02):
        window.iloc[-1, 0] = move
        pred = model.predict(window)[-1, 0]
        widths[move] = pred[3] - pred[1]
    assert widths[-0.02] > 1.3 * widths[0.02]  # 1.49 here; GARCH answers both alike

    pred = model.predict(X)[refit + 1 :]  # the 500 bars after the refit
    outcome = y[refit + 1 :]
    for j in range(2):
        ok = np.isfinite(outcome[:, j])
        inside = (outcome[ok, j] >= pred[ok, j, 1]) & (outcome[ok, j] <= pred[ok, j, 3])
        assert abs(inside.mean() - 0.75) < 0.05


def _toy_panel(n: int = 300, hit_scale: float = 0.005, seed: int = 0):
    """A frame and a one-model panel whose 75% interval is N(0, sigma) and median is 0."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2016-01-01", periods=n)
    r = rng.standard_normal(n) * hit_scale
    frame = pd.DataFrame({"close": 100 * np.exp(np.cumsum(r))}, index=dates)
    rows = []
    for h in (1, 2):
        sigma = hit_scale * np.sqrt(h)
        values = {quantile_column(q): z * sigma for q, z in zip(LEVELS, Z, strict=True)}
        rows.append(pd.DataFrame({"date": dates, "model": "ensemble", "horizon": h, **values}))
    return frame, pd.concat(rows, ignore_index=True)


def test_gate_passes_a_calibrated_panel_and_fails_a_strict_one():
    frame, panel = _toy_panel()
    gate = GateConfig(enabled=True, horizons=[1, 2], min_hit_share=0.5)
    result = evaluate_gate(panel, frame, gate)
    assert result.passed, result.lines()
    assert len(result.checks) == 4
    narrow = panel.copy()
    columns = [quantile_column(q) for q in LEVELS]
    narrow[columns] = narrow[columns] * 0.5  # a 75% interval that covers about 44%
    failed = evaluate_gate(narrow, frame, gate)
    assert not failed.passed
    assert {c.measure for c in failed.failures} == {"coverage_75"}
    strict = GateConfig(enabled=True, horizons=[1, 2], min_hit_share=1.0)
    assert {c.measure for c in evaluate_gate(panel, frame, strict).failures} == {"hit_2pct"}
    # the window ends at ``end``: no forecast whose outcome is after it is read
    end = frame.index[150]
    windowed = evaluate_gate(panel, frame, gate, end=end)
    assert {c.n for c in windowed.checks if c.horizon == 2} == {149}
    with pytest.raises(ValueError, match="forecast.gate.model"):
        evaluate_gate(panel, frame, GateConfig(enabled=True, model="xgb"))


def test_verdict_says_no_point_skill_and_tables_have_titles():
    frame, panel = _toy_panel(n=400)
    rw = panel.assign(model="random_walk")
    rw[quantile_column(0.5)] = 0.0003  # a slightly different median, so losses differ
    metrics = evaluate_panel(pd.concat([panel, rw], ignore_index=True), frame)
    lines = verdict_lines(metrics)
    assert lines[0].startswith("ensemble: no point skill over the random walk at any horizon")
    assert all("no point skill" in line for line in lines[1:])
    assert all("75% interval covers" in line and "Diebold-Mariano p" in line for line in lines[1:])
    assert "reliability" in metrics["ensemble"]["1"]
    assert set(metrics["ensemble"]["1"]["reliability"]) == {"0.75", "0.90"}
    assert "kupiec_pvalue_75" in metrics["ensemble"]["1"]["by_year"]["2016"]
    table = coverage_by_year_table(metrics, models=("ensemble", "random_walk"))
    assert table.splitlines()[0] == "| year | ensemble h=1/2 | random_walk h=1/2 |"
    assert table.splitlines()[-1].startswith("| all |")


# --- train.py and the gate (subprocesses on a tiny config) ---


def _tiny(cache_dir: Path, gate: dict) -> dict:
    return {
        "name": "tiny_gate",
        "data": {"source": "embedded", "start": "2010-01-01"},
        "segments": {
            "train": {"start": "2014-01-01", "end": "2015-06-30"},
            "valid": {"start": "2015-07-01", "end": "2015-12-31"},
            "test": {"start": "2016-01-01", "end": "2016-06-30"},
        },
        "forecast": {
            "first_forecast_date": "2013-10-01",
            "members": ["vol_rw"],
            "references": ["random_walk"],
            "refit_every_bars": 252,
            "cache_dir": str(cache_dir),
            "gate": {"enabled": True, **gate},
        },
        "env": {"underlying_price_scale": 0.1, "episode_length_bars": 40},
        "agent": {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "net_arch": [8]},
        "train": {
            "total_timesteps": 32,
            "checkpoint_every_steps": 32,
            "eval_every_steps": 32,
            "n_envs": 1,
            "progress_bar": False,
        },
    }


def _train(
    tmp_path: Path, gate: dict, *extra: str, cache: Path | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    """train.py on the tiny gate config; ``cache``: a forecast cache to share (the gate is not
    part of the panel's cache key, so the session's tiny panel is reused)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "tiny_gate.yaml"
    config.write_text(yaml.safe_dump(_tiny(cache or tmp_path / "cache", gate)))
    run_dir = tmp_path / "runs" / "tiny_gate"
    out = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(config), "--run-dir",
         str(run_dir), "--no-progress", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return out, run_dir


def test_train_refuses_a_panel_that_fails_the_gate(tmp_path, forecast_cache):
    out, run_dir = _train(tmp_path, {"min_hit_share": 1.0}, cache=forecast_cache)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("train.py: error: forecast.gate: the ensemble forecasts of ")
    assert "hit_2pct" in lines[-1] and "--ignore-gate" in lines[-1]
    assert "Traceback" not in out.stderr
    assert not run_dir.exists()


@pytest.mark.slow
def test_train_records_a_passing_gate_and_an_ignored_failure(tmp_path):
    out, run_dir = _train(tmp_path / "pass", {"min_hit_share": 0.3, "coverage_min": 0.6,
                                              "coverage_max": 0.9})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    gate = json.loads((run_dir / "provenance.json").read_text())["forecast_gate"]
    assert gate["passed"] and not gate["ignored"]
    assert gate["end"] == "2015-12-31"
    assert (run_dir / "forecast_gate.md").read_text().startswith("# Forecast gate\n\nPASS")
    out, run_dir = _train(tmp_path / "ignored", {"min_hit_share": 1.0}, "--ignore-gate")
    assert out.returncode == 0, out.stderr[-3000:]
    gate = json.loads((run_dir / "provenance.json").read_text())["forecast_gate"]
    assert not gate["passed"] and gate["ignored"]
