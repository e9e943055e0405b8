"""Static-arbitrage check: each bound caught on a hand-made surface that breaks it, nothing
flagged on a flat surface or on the shipped SSVI files, the CLI's exit codes and JSON, and
load_surface_config refusing a failing file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import UserInputError
from options import surface as surface_mod
from options.static_arbitrage import ArbitrageGrid, check_iv_function
from options.surface import (
    SurfaceArbitrageError,
    SurfaceConfig,
    load_surface_config,
    surface_arbitrage_report,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("surface_*.yaml"))
SMALL = ArbitrageGrid(log_moneyness=tuple(np.round(np.linspace(-0.5, 0.5, 51), 10)),
                      dte_days=(2, 7, 30, 90, 365), index_levels=(12, 40), rates=(0.0, 0.05))


def flat(vol: float):
    return lambda index, spot, strike, t: np.full(np.broadcast(strike, t).shape, vol)


def test_flat_surface_has_no_violation():
    report = check_iv_function(flat(0.2), 0.01, SMALL)
    assert report.ok and report.n_checked > 5000 and report.worst == ()


def test_calendar_caught_when_total_variance_falls_with_maturity():
    # vol 0.4 at 2 days falling as 1/T: total variance 0.16 * 2/365 * (2/365 / T) falls
    def falling(index, spot, strike, t):
        return np.broadcast_to(0.4 * (2 / 365) / t, np.broadcast(strike, t).shape)

    report = check_iv_function(falling, 0.0, SMALL)
    assert report.counts_by_kind.get("calendar_call", 0) > 0
    assert report.counts_by_kind["calendar_call"] == report.counts_by_kind["calendar_put"]
    assert report.worst[0].kind.startswith("calendar")


def test_butterfly_caught_on_a_kinked_smile():
    # a vol spike at one strike makes that call dearer than its neighbours' average
    def spike(index, spot, strike, t):
        k = np.log(strike / spot)
        return np.broadcast_to(0.2 + 0.3 * (np.abs(k - 0.1) < 1e-9), np.broadcast(k, t).shape)

    report = check_iv_function(spike, 0.0, SMALL)
    assert report.counts_by_kind.get("butterfly_call", 0) > 0
    assert report.counts_by_kind.get("butterfly_put", 0) > 0
    bad = [v for v in report.worst if v.kind == "butterfly_call"]
    assert bad and all(abs(v.log_moneyness - 0.1) < 1e-9 for v in bad)


def test_vertical_caught_when_vol_drops_too_fast_with_strike():
    # a cliff in vol above the money makes a call spread worth more than its width
    def cliff(index, spot, strike, t):
        k = np.log(strike / spot)
        return np.broadcast_to(np.where(k < 0.05, 1.5, 0.05), np.broadcast(k, t).shape)

    report = check_iv_function(cliff, 0.0, SMALL)
    assert report.counts_by_kind.get("vertical_call", 0) > 0
    assert report.counts_by_kind.get("vertical_put", 0) > 0


def test_price_bounds_caught_with_negative_carry():
    # BSM with a negative dividend yield (calls) or rate (puts) prices above spot / strike
    grid = ArbitrageGrid(log_moneyness=(-0.2, 0.0, 0.2), dte_days=(365,), index_levels=(20,),
                         rates=(-0.2,))
    report = check_iv_function(flat(3.0), -0.2, grid)
    assert report.counts_by_kind.get("call_above_spot", 0) == 3
    assert report.counts_by_kind.get("put_above_strike", 0) == 3


def test_issue_example_hand_shaped_wings_fail():
    """The surface of the issue (configs/surface_spx2019.yaml before SSVI): linear and
    quadratic wings in log-moneyness over a mean-reverting ATM level, clipped to [0.05, 2]."""
    def old(index, spot, strike, t):
        atm = 0.864529 * index / 100
        lr, kap, t_ref = 0.159401**2, 4.836568, 30 / 365

        def f(x):
            return -np.expm1(-kap * x) / (kap * x)

        base = np.sqrt(np.maximum(lr + (atm**2 - lr) * f(t) / f(t_ref), 0.0))
        k = np.log(strike / spot)
        t_eff = np.maximum(t, 7 / 365)
        slope = 0.281296 / np.sqrt(t_eff) * np.where(k > 0, 1.16916, 1.0)
        curv = np.where(k > 0, 0.914503, -0.050466) / t_eff
        return np.clip(base - slope * k + curv * k * k, 0.05, 2.0)

    report = check_iv_function(old, 0.01956)
    assert report.counts_by_kind["calendar_call"] > 1000
    assert report.counts_by_kind["vertical_call"] > 1000
    assert not report.ok


def test_ssvi_beyond_its_bound_is_refused_by_the_closed_form_and_the_prices():
    report = surface_arbitrage_report(SurfaceConfig(ssvi_eta=3.0, ssvi_rho=-0.7))
    assert report.counts_by_kind["ssvi_eta_bound"] > 0
    assert report.counts_by_kind["butterfly_call"] > 0
    # at the bound itself: no violation anywhere
    edge = SurfaceConfig(ssvi_eta=2.0 / 1.7, ssvi_rho=-0.7)
    assert surface_arbitrage_report(edge).ok


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_surfaces_pass_with_zero_violations(path):
    cfg = load_surface_config(path)
    report = surface_arbitrage_report(cfg)
    assert report.n_violations == 0 and report.n_checked > 900_000
    # the domain of the issue: log-moneyness +-1, 1-365 days, index 9-80, several rates
    assert report.grid["log_moneyness"] == [-1.0, 1.0, 201]
    assert report.grid["dte_days"][0] == 1 and report.grid["dte_days"][-1] == 365
    assert report.grid["index_levels"][0] == 9 and report.grid["index_levels"][-1] == 80


def write_bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad_wings.yaml"
    path.write_text("surface:\n  ssvi_rho: -0.8\n  ssvi_eta: 3.0\n"
                    "provenance:\n  note: hand-made, wings too steep\n")
    return path


def test_load_refuses_a_failing_file_naming_the_worst_case(tmp_path):
    path = write_bad(tmp_path)
    worst = r"(butterfly|vertical)_\w+ at index \d+, \d+ days, log-moneyness"
    with pytest.raises(SurfaceArbitrageError, match=r"bad_wings.yaml.*" + worst):
        load_surface_config(path)
    assert issubclass(SurfaceArbitrageError, UserInputError)


def test_load_checks_once_per_file_content(tmp_path):
    surface_mod._cached_report.cache_clear()
    path = tmp_path / "ok.yaml"
    path.write_text("surface:\n  ssvi_eta: 0.8\n")
    load_surface_config(path)
    load_surface_config(path)
    info = surface_mod._cached_report.cache_info()
    assert info.misses == 1 and info.hits == 1
    path.write_text("surface:\n  ssvi_eta: 0.81\n")  # new content: checked again
    load_surface_config(path)
    assert surface_mod._cached_report.cache_info().misses == 2


def counting_check(monkeypatch) -> list:
    """Patch the check so that each run of it is recorded (it still runs)."""
    calls: list = []
    real = surface_mod.surface_arbitrage_report

    def counted(cfg):
        calls.append(cfg)
        return real(cfg)

    monkeypatch.setattr(surface_mod, "surface_arbitrage_report", counted)
    return calls


def test_a_passing_check_is_stored_and_a_later_process_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SPYRL_CACHE_DIR", str(tmp_path / "cache"))
    calls = counting_check(monkeypatch)
    path = tmp_path / "ok.yaml"
    path.write_text("surface:\n  ssvi_eta: 0.8\n")
    surface_mod._cached_report.cache_clear()
    first = load_surface_config(path)
    records = list((tmp_path / "cache" / "surface_checks").glob("*.json"))
    assert len(calls) == 1 and len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["n_violations"] == 0 and record["n_checked"] > 900_000

    surface_mod._cached_report.cache_clear()  # what a new process has: the stored record only
    assert load_surface_config(path) == first and len(calls) == 1

    path.write_text("surface:\n  ssvi_eta: 0.81\n")  # new content: checked and stored again
    load_surface_config(path)
    assert len(calls) == 2
    assert len(list((tmp_path / "cache" / "surface_checks").glob("*.json"))) == 2


def test_a_damaged_or_foreign_record_means_the_check_runs_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SPYRL_CACHE_DIR", str(tmp_path / "cache"))
    calls = counting_check(monkeypatch)
    path = tmp_path / "ok.yaml"
    path.write_text("surface:\n  ssvi_eta: 0.8\n")
    surface_mod._cached_report.cache_clear()
    load_surface_config(path)
    (record_path,) = (tmp_path / "cache" / "surface_checks").glob("*.json")
    good = json.loads(record_path.read_text())
    for damaged in ("{not json", json.dumps({**good, "surface_sha256": "0" * 64}),
                    json.dumps({**good, "check_code": "another version"}),
                    json.dumps({**good, "n_violations": 3})):
        record_path.write_text(damaged)
        surface_mod._cached_report.cache_clear()
        n_before = len(calls)
        load_surface_config(path)
        assert len(calls) == n_before + 1, damaged[:40]
    assert json.loads(record_path.read_text()) == good  # the re-run wrote the pass back


def test_a_failing_check_is_never_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("SPYRL_CACHE_DIR", str(tmp_path / "cache"))
    calls = counting_check(monkeypatch)
    path = write_bad(tmp_path)
    for _ in range(2):
        surface_mod._cached_report.cache_clear()
        with pytest.raises(SurfaceArbitrageError):
            load_surface_config(path)
    assert len(calls) == 2
    assert not list((tmp_path / "cache").rglob("*.json"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "options.arbitrage", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_exit_0_on_shipped_and_1_on_hand_made_with_json(tmp_path):
    ok = run_cli("--surface", str(SHIPPED[0]))
    assert ok.returncode == 0, ok.stderr
    assert "0 static-arbitrage violation(s)" in ok.stdout
    out = tmp_path / "report.json"
    bad = run_cli("--surface", str(write_bad(tmp_path)), "--json", str(out))
    assert bad.returncode == 1, bad.stderr
    assert "butterfly_call" in bad.stdout and "worst:" in bad.stdout
    doc = json.loads(out.read_text())
    assert {"surface", "n_checked", "n_violations", "counts_by_kind", "worst", "grid",
            "tolerance_per_share"} <= set(doc)
    assert doc["n_violations"] == sum(doc["counts_by_kind"].values()) > 0
    assert all(math.isfinite(w["amount_per_share"]) for w in doc["worst"])


def test_cli_bad_input_exits_2_in_one_line(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("surface:\n  ssvi_rhoo: -0.5\n")
    proc = run_cli("--surface", str(bad), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert "typo.yaml" in proc.stderr and "ssvi_rhoo" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


@settings(max_examples=40, deadline=None)
@given(rho=st.floats(-0.98, 0.5), eta_share=st.floats(0.05, 1.0), gamma=st.floats(0.05, 0.5),
       long_run=st.floats(0.08, 0.4), kappa=st.floats(0.0, 10.0),
       dividend=st.floats(0.0, 0.04))
def test_any_ssvi_within_its_conditions_passes_the_price_checks(rho, eta_share, gamma,
                                                                long_run, kappa, dividend):
    # eta at a share of its bound 2 / (1 + |rho|): arbitrage-free by construction, so the
    # prices must pass (spot-based moneyness and the carry shift included)
    cfg = SurfaceConfig(ssvi_rho=rho, ssvi_eta=eta_share * 2.0 / (1.0 + abs(rho)),
                        ssvi_gamma=gamma, long_run_iv_annualized=long_run,
                        term_mean_reversion_per_year=kappa, dividend_yield_annualized=dividend,
                        index_to_atm_ratio=0.85)
    report = surface_arbitrage_report(cfg, PROPERTY_GRID)
    assert report.ok, report.worst[0].describe()


PROPERTY_GRID = ArbitrageGrid(log_moneyness=tuple(np.round(np.linspace(-1.0, 1.0, 81), 10)),
                              dte_days=(1, 3, 7, 14, 30, 60, 120, 365),
                              index_levels=(9, 15, 30, 80), rates=(0.0, 0.06))
