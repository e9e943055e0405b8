"""A small hand-made chain with the defects of ordinary chain files, end to end.

The chain (written by :func:`write_tiny_chain`, SPXW at the embedded S&P 500's closes and VIX,
2016-02-29..2016-03-11) has one expiry per session, all within 30 days (so no put-call-parity
dividend), a 0-DTE-only date (2016-03-04: no smile, no 7-day expiry for the chain's index),
zero, crossed and one-sided quotes, a stale copy on a non-session day and a row expiring before
its quote date. It goes through the reader, ``options.validate``, ``options.calibrate`` and the
chain quote source here, and through ``evaluate.py --quotes chain`` on a tiny trained run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import data
from options.chain_io import chain_read_report, read_chain
from options.chain_market import prepare_chain_market
from options.pricing import bs_price
from options.quotes import MarketBars
from options.quotes_chain import ChainQuoteSource

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ("2016-02-29", "2016-03-01", "2016-03-02", "2016-03-03", "2016-03-04",
            "2016-03-07", "2016-03-08", "2016-03-09", "2016-03-10", "2016-03-11")
ZERO_DTE_DATE = "2016-03-04"
STRIKE_STEP = 10.0
TICK = 0.05
DIVIDEND_YIELD = 0.02
# contracts given bad quotes on 2016-03-01 (expiry 2016-03-18): (type, strike offset from ATM)
ZERO_QUOTE = ("put", -50.0)
CROSSED = ("call", 30.0)
MISSING_BID = ("put", -30.0)
MISSING_ASK = ("call", 50.0)


def _expiry_for(date: pd.Timestamp) -> pd.Timestamp:
    if date == pd.Timestamp(ZERO_DTE_DATE):
        return date
    return date + pd.Timedelta(days=(4 - date.weekday()) % 7 + 14)  # a Friday 2-3 weeks on


def write_tiny_chain(path: Path) -> dict:
    """Write the chain (eod layout); returns the expected read report's counts."""
    frame = data.load_market("embedded")
    rows = []
    for text in SESSIONS:
        date = pd.Timestamp(text)
        spot = float(frame.loc[date, "close"])
        atm = 0.85 * float(frame.loc[date, "iv_index"])
        rate = float(frame.loc[date, "rate"])
        expiry = _expiry_for(date)
        t_years = max((expiry - date).days, 0.25) / 365.0
        center = round(spot / STRIKE_STEP) * STRIKE_STEP
        for offset in np.arange(-160.0, 161.0, STRIKE_STEP):
            strike = center + offset
            x = np.log(strike / spot)
            iv = max(atm - 0.5 * x + 1.5 * x * x, 0.05)
            for kind in ("call", "put"):
                mid = float(bs_price(kind, spot, strike, t_years, rate, iv, DIVIDEND_YIELD))
                half = max(TICK, 0.02 * mid) / 2
                bid = np.floor((mid - half) / TICK + 1e-9) * TICK
                ask = np.ceil((mid + half) / TICK - 1e-9) * TICK
                bid = round(max(bid, 0.0), 2)
                rows.append({"underlying": "SPX", "underlying_last": round(spot, 2),
                             "optionroot": f"SPXW{expiry:%y%m%d}{kind[0].upper()}"
                                           f"{int(strike * 1000):08d}",
                             "type": kind, "expiration": f"{expiry:%Y-%m-%d}",
                             "quotedate": text, "strike": strike, "bid": bid,
                             "ask": round(max(ask, TICK), 2), "volume": 10,
                             "openinterest": 100, "_offset": offset})
    raw = pd.DataFrame(rows)
    natural_one_sided = int(((raw["bid"] <= 0) & (raw["ask"] > 0)).sum())
    day = raw["quotedate"] == "2016-03-01"

    def at(spec):
        kind, offset = spec
        return day & (raw["type"] == kind) & (raw["_offset"] == offset)

    raw.loc[at(ZERO_QUOTE), ["bid", "ask"]] = 0.0
    raw.loc[at(CROSSED), "bid"] = raw.loc[at(CROSSED), "ask"] + 0.5
    raw["bid"] = raw["bid"].astype(object)
    raw["ask"] = raw["ask"].astype(object)
    raw.loc[at(MISSING_BID), "bid"] = ""
    raw.loc[at(MISSING_ASK), "ask"] = ""
    stale = raw[raw["quotedate"] == ZERO_DTE_DATE].copy()
    stale["quotedate"] = "2016-03-05"  # a Saturday: a vendor's stale copy
    expired = raw[day].head(1).copy()
    expired["expiration"] = "2016-02-26"
    expired["optionroot"] = "SPXW160226X"
    raw = pd.concat([raw, stale, expired], ignore_index=True).drop(columns="_offset")
    raw.to_csv(path, index=False)
    return {"zero_quote": 1, "one_sided_quote": natural_one_sided + 2, "crossed_quote": 1,
            "non_session_date": len(stale), "expiry_before_quote_date": 1,
            "n_rows_read": len(raw)}


@pytest.fixture(scope="module")
def tiny_chain(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("chain") / "tiny_spxw.csv"
    return path, write_tiny_chain(path)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_reader_reports_each_reason(tiny_chain):
    path, expected = tiny_chain
    chain = read_chain(path)
    report = chain_read_report(chain)
    for reason in ("zero_quote", "one_sided_quote", "crossed_quote", "non_session_date",
                   "expiry_before_quote_date"):
        assert report.set_aside[reason] == expected[reason], reason
    assert report.n_rows_read == expected["n_rows_read"]
    assert report.non_session_dates == ("2016-03-05",)
    assert sorted(chain["quote_date"].dt.strftime("%Y-%m-%d").unique()) == list(SESSIONS)
    assert chain.groupby("quote_date")["expiry"].nunique().max() == 1
    assert (~chain["valid_quote"]).sum() == expected["zero_quote"] + expected[
        "one_sided_quote"] - 1  # the bid-only row is dropped, the others kept and flagged


def test_chain_market_survives_zero_dte_dates_and_missing_dividend(tiny_chain, caplog):
    path, _ = tiny_chain
    chain = read_chain(path)
    with caplog.at_level("WARNING"):
        cm = prepare_chain_market(chain, rate=0.0024, default_dividend_yield=0.013)
    zero = pd.Timestamp(ZERO_DTE_DATE)
    assert cm.dividend_yield == 0.013 and cm.dividend_yield_source == "configured"
    assert "falls back to the configured 0.0130" in caplog.text
    assert zero in cm.smile_fallbacks and "previous session" in cm.smile_fallbacks[zero]
    assert cm.fits[zero].rho == cm.fits[pd.Timestamp("2016-03-03")].rho  # carried
    assert cm.index_source[zero] == "previous_session"
    assert cm.index_by_date[zero] == cm.index_by_date[pd.Timestamp("2016-03-03")]
    assert cm.index_by_date.notna().all()
    lines = cm.fallback_lines()
    assert any(line.startswith("2016-03-04: volatility index from previous_session")
               for line in lines)


def _bars(chain: pd.DataFrame) -> MarketBars:
    dates = pd.DatetimeIndex(sorted(chain["quote_date"].unique()))
    spot = chain.groupby("quote_date")["underlying_price"].first().to_numpy(float)
    close_ns = (dates + pd.Timedelta(hours=16)).asi8
    return MarketBars(dates, close_ns, spot, np.full(len(dates), 0.16),
                      np.full(len(dates), 0.0024), DIVIDEND_YIELD)


@pytest.mark.parametrize("spec", [ZERO_QUOTE, CROSSED, MISSING_BID])
def test_invalid_quotes_are_never_fill_prices(tiny_chain, spec):
    path, _ = tiny_chain
    chain = read_chain(path)
    src = ChainQuoteSource(_bars(chain), chain)
    bar = 1  # 2016-03-01
    spot = float(src.bars.spot[bar])
    expiry = pd.Timestamp("2016-03-18")
    kind, offset = spec
    strike = round(spot / STRIKE_STEP) * STRIKE_STEP + offset
    q = src.quote(bar, kind, [strike, strike + STRIKE_STEP], expiry)
    assert q.from_smile.tolist() == [True, False]
    assert q.valid_quote.tolist() == [False, True]
    assert strike not in src.strikes(bar, expiry, kind)
    # the fallback: the smile's mid, bid and ask around it at the day's median relative width
    assert 0 < q.bid_per_share[0] < q.mid_per_share[0] < q.ask_per_share[0]
    assert src.smile_marks == 1


def test_zero_dte_date_prices_held_contracts_from_the_previous_fit(tiny_chain):
    path, _ = tiny_chain
    chain = read_chain(path)
    src = ChainQuoteSource(_bars(chain), chain)
    bar = SESSIONS.index(ZERO_DTE_DATE)
    assert len(src.expiries(bar)) == 0  # only the expiring contracts are listed: none to open
    q = src.quote(bar, "put", [1950.0], pd.Timestamp("2016-03-18"))
    assert q.from_smile.all() and np.isfinite(q.mid_per_share).all()
    assert pd.Timestamp(ZERO_DTE_DATE) in src.smile_fallbacks


def test_validate_runs_and_lists_fallbacks(tiny_chain, tmp_path):
    path, _ = tiny_chain
    out = run("-m", "options.validate", "--chain", str(path), "--market", "none", "--rate",
              "0.0024", "--out", str(tmp_path / "v"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "crossed_quote=1" in out.stdout and "non-session dates: 2016-03-05" in out.stdout
    assert "fallback: 2016-03-04: volatility index from previous_session" in out.stdout
    assert "fallback: dividend yield: configured" in out.stdout
    doc = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert doc["read_report"]["set_aside"]["crossed_quote"] == 1
    assert len(doc["width_ratio_by_vol_tercile"]) == 3
    assert doc["stress_week"]["start"] <= doc["stress_week"]["end"]
    for key in ("put_spread_credit_error_pct", "call_spread_credit_error_pct",
                "iron_condor_credit_error_pct"):
        assert key in doc and key in doc["stress_week"]
    assert doc["n_call_spread_entries"] > 0
    assert "Stress week" in (tmp_path / "v" / "report.md").read_text()


def test_validate_with_the_market_frame_uses_its_index(tiny_chain, tmp_path):
    path, _ = tiny_chain
    out = run("-m", "options.validate", "--chain", str(path), "--out", str(tmp_path / "v"))
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert doc["chain"]["index_source_counts"] == {"frame": len(SESSIONS)}
    assert doc["chain"]["dividend_yield_source"] == "configured"


def test_calibrate_runs(tiny_chain, tmp_path):
    path, _ = tiny_chain
    out = run("-m", "options.calibrate", "--chain", str(path), "--out", str(tmp_path / "s.yaml"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "set aside as fill prices" in out.stdout
    doc = yaml.safe_load((tmp_path / "s.yaml").read_text())
    assert doc["provenance"]["n_quotes_fitted"] > 0


def test_truncated_gzip_chain_is_a_one_line_cli_error(tiny_chain, tmp_path):
    path, _ = tiny_chain
    import gzip
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(path.read_bytes())[:3000])
    out = run("-m", "options.validate", "--chain", str(cut), "--out", str(tmp_path / "v"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "cut.csv.gz' is truncated" in out.stderr
    assert not (tmp_path / "v").exists()


# --------------------------------------------------------------------------- evaluate.py
def _tiny_config(cache_dir: Path) -> dict:
    return {
        "name": "tinychain",
        "data": {"source": "embedded", "start": "2010-01-01"},
        "segments": {"train": {"start": "2014-01-01", "end": "2015-06-30"},
                     "valid": {"start": "2015-07-01", "end": "2015-12-31"},
                     "test": {"start": "2016-01-01", "end": "2016-06-30"}},
        "forecast": {"first_forecast_date": "2013-10-01", "members": ["vol_rw"],
                     "references": ["random_walk"], "refit_every_bars": 252,
                     "cache_dir": str(cache_dir)},
        "env": {"underlying_price_scale": 0.1, "episode_length_bars": 40},
        "agent": {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": [16],
                  "vec_normalize": True},
        "train": {"total_timesteps": 128, "checkpoint_every_steps": 128,
                  "eval_every_steps": 128, "n_envs": 1, "progress_bar": False},
        "eval": {"bootstrap_samples": 200},
    }


@pytest.mark.slow
def test_evaluate_on_the_tiny_chain_end_to_end(tiny_chain, tmp_path):
    path, _ = tiny_chain
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(_tiny_config(tmp_path / "cache")))
    run_dir = tmp_path / "runs" / "tiny"
    out = run(str(ROOT / "train.py"), "--config", str(tmp_path / "tiny.yaml"), "--run-dir",
              str(run_dir), "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    out = run(str(ROOT / "evaluate.py"), "--run", str(run_dir), "--quotes", "chain", "--chain",
              str(path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "set aside as fill prices" in out.stderr
    metrics = json.loads((run_dir / "eval_chain" / "metrics.json").read_text())
    assert "ppo" in metrics and set(metrics["ppo"]) == {"chain", "model"}
    details = json.loads((run_dir / "eval_chain" / "chain_run.json").read_text())
    assert details["read_report"]["set_aside"]["crossed_quote"] == 1
    assert details["dividend_yield_source"] == "configured"
    assert ZERO_DTE_DATE in details["smile_fallback_dates"]
    report = (run_dir / "eval_chain" / "report.md").read_text()
    assert "Sessions without their own smile" in report


# --------------------------------------------------------------------------- hold bars
def test_a_session_without_forecasts_is_a_hold_for_observation_readers(tiny_chain):
    from agents.chain_eval import HoldOnBars, chain_details, prepare_chain_setup
    from config import load_config
    from envs.actions import ACTION_HOLD
    from forecasters.panel import ForecastPanel

    path, _ = tiny_chain
    chain = read_chain(path)
    cfg = load_config(ROOT / "configs" / "quick.yaml", ["env.dividend_yield=0.015"])
    frame = data.load_market("embedded")
    dates = frame.loc["2015-06-01":"2016-06-30"].index
    gap = pd.Timestamp("2016-03-08")
    dates = dates[dates != gap]
    levels = tuple(cfg.forecast.quantile_levels)
    horizons = tuple(cfg.forecast.horizons)
    values = np.tile(np.linspace(-0.02, 0.02, len(levels)), (len(dates), len(horizons), 1))
    forecasts = ForecastPanel(dates, horizons, levels, values)
    setup = prepare_chain_setup(cfg, frame, forecasts, chain)
    assert setup.frame_source == "run" and setup.missing_inputs is None
    assert list(setup.hold_dates) == [gap] and "no forecast" in setup.hold_dates[gap]
    assert setup.market.dividend_yield == 0.015  # no 30-day expiry: the configured value
    assert any("env.dividend_yield 0.0150" in note for note in setup.notes)
    details = chain_details(setup, chain)
    assert details["hold_bars"] == {"2016-03-08": setup.hold_dates[gap]}

    class Opener:
        name = "opener"

        def act(self, observation, info, action_mask):
            return int(np.flatnonzero(action_mask)[-1])

        def reset(self, seed=None):
            pass

    policy = setup.hold_on_missing(Opener())
    assert isinstance(policy, HoldOnBars)
    env = setup.chain_env
    obs, info = env.reset(seed=0)
    done, acted = False, {}
    while not done:
        action = policy.act(obs, info, env.action_masks())
        acted[pd.Timestamp(info.date)] = action
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    assert acted[gap] == ACTION_HOLD and policy.held == 1
    assert setup.hold_if_reads_observation("short_put_spread", Opener()).__class__ is Opener
