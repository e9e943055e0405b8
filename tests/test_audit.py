"""The evaluation's audit (``agents.audit``): fields on a hand-built ledger with a known
concentrated trade, the static-arbitrage checks on priced grids with planted violations, and
``audit.json`` written by a tiny evaluation (model quotes and real chain quotes)."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from agents.audit import (
    audit_markdown,
    audit_policy,
    ledger_legs,
    pnl_by_bucket,
    static_arbitrage_violations,
)
from options.pricing import bs_price
from tests.helpers import SPX_CHAIN, run

BAND = 0.25


def ledger() -> pd.DataFrame:
    """Four trades: one of +3,000 USD carries 3000 / 3350 of the total; one opened with a
    maximum profit of -168 USD and two legs beyond the band (the measured condor)."""
    rows = [
        ("iron_condor", "-3 put 245 2018-03-09;-3 call 367 2018-03-09;+3 put 240 2018-03-09;"
                        "+3 call 372 2018-03-09", 269.5, -168.0, -500.0, 0.16, 31.0, 0, 0),
        ("bull_put_spread", "-1 put 260 2018-04-20;+1 put 255 2018-04-20", 270.0, 150.0,
         3000.0, 0.31, 30.0, 1, 2),
        ("bull_put_spread", "-1 put 262 2018-05-18;+1 put 257 2018-05-18", 271.0, 140.0,
         400.0, 0.29, 29.0, 0, 0),
        ("long_straddle", "+1 put 270 2018-06-15;+1 call 270 2018-06-15", 270.0, None, 450.0,
         0.52, 10.0, 0, 1),
    ]
    return pd.DataFrame(rows, columns=[
        "strategy", "legs", "entry_spot", "max_profit_usd", "pnl_usd", "entry_leg_delta_abs",
        "entry_dte_days", "invalid_quote_fills", "fallback_fills"]).assign(
        open_date=pd.to_datetime(["2018-02-06", "2018-03-20", "2018-04-18", "2018-06-05"]))


def test_audit_fields_of_a_hand_built_ledger():
    audit = audit_policy(ledger(), BAND)
    assert audit["trades"] == 4
    assert audit["negative_max_profit_opens"] == 1
    # log(367 / 269.5) = 0.309 and log(372 / 269.5) = 0.322 are beyond 0.25; 240 and 245 not.
    assert audit["legs_beyond_band"] == 2
    assert audit["fills_at_invalid_quotes"] == 1 and audit["fallback_fills"] == 3
    assert audit["total_pnl_usd"] == pytest.approx(3350.0)
    assert audit["top_trade_pnl_share"] == pytest.approx(3000.0 / 3350.0)
    assert audit["top3_trade_pnl_share"] == pytest.approx(3850.0 / 3350.0)
    assert audit["concentrated"] is True
    assert audit["arbitrage_violations_at_entry"] == 0 and audit["arbitrage_checked_entries"] == 0
    assert audit["arbitrage_by_check"] == {} and audit["arbitrage_worst"] == []
    buckets = {(r["structure"], r["delta_bucket"], r["dte_bucket"]): (r["trades"], r["pnl_usd"])
               for r in audit["pnl_by_bucket"]}
    assert buckets == {("iron_condor", "0.10-0.20", "22-45"): (1, -500.0),
                       ("bull_put_spread", "0.30-0.40", "22-45"): (1, 3000.0),
                       ("bull_put_spread", "0.20-0.30", "22-45"): (1, 400.0),
                       ("long_straddle", "0.40-0.60", "8-21"): (1, 450.0)}
    text = "\n".join(audit_markdown({"ppo": audit}))
    assert "ppo: one trade carries more than half of the P&L" in text
    assert "| ppo | 4 | 1 | 2 | 1 | 3 | 0 | 0.90 | 1.15 |" in text


def test_shares_follow_the_direction_of_the_total_and_are_none_without_one():
    losing = ledger().assign(pnl_usd=[-100.0, -900.0, 50.0, -50.0])  # total -1000
    audit = audit_policy(losing, BAND)
    assert audit["top_trade_pnl_share"] == pytest.approx(0.9)  # the largest loss
    assert audit["top3_trade_pnl_share"] == pytest.approx(1.05)
    assert audit["concentrated"] is True
    spread = audit_policy(ledger().assign(pnl_usd=[100.0, 100.0, 100.0, 100.0]), BAND)
    assert spread["top_trade_pnl_share"] == pytest.approx(0.25) and not spread["concentrated"]
    assert "No policy's largest trade" in "\n".join(audit_markdown({"x": spread}))
    flat = audit_policy(ledger().assign(pnl_usd=[1.0, -1.0, 0.0, 0.0]), BAND)
    assert flat["top_trade_pnl_share"] is None and flat["top3_trade_pnl_share"] is None
    empty = audit_policy(ledger().iloc[:0], BAND)
    assert empty["trades"] == 0 and empty["pnl_by_bucket"] == [] and not empty["concentrated"]


def test_ledger_legs_are_read_back_and_bad_text_is_named():
    assert ledger_legs("-3 put 245 2018-03-09;+3 call 372.5 2018-03-09") == [
        (-3, "put", 245.0, pd.Timestamp("2018-03-09")),
        (3, "call", 372.5, pd.Timestamp("2018-03-09"))]
    with pytest.raises(ValueError, match="cannot read"):
        ledger_legs("3 calls 372")


def test_pnl_buckets_edges():
    trades = pd.DataFrame({"strategy": ["a", "a", "a"], "pnl_usd": [1.0, 2.0, 4.0],
                           "entry_leg_delta_abs": [0.10, 0.0999, math.nan],
                           "entry_dte_days": [7.0, 8.0, 120.0]})
    got = {(r["delta_bucket"], r["dte_bucket"]): r["pnl_usd"] for r in pnl_by_bucket(trades)}
    assert got == {("0.10-0.20", "0-7"): 1.0, ("0.00-0.10", "8-21"): 2.0,
                   ("unknown", "91+"): 4.0}


# --------------------------------------------------------------------------- arbitrage
SPOT, RATE, Q = 100.0, 0.03, 0.01


def bs_grid(vol_by_t: dict[float, float]) -> pd.DataFrame:
    """Black-Scholes mids at a flat vol per maturity (free of static arbitrage when total
    variance grows with maturity), strikes 80..120, both rights."""
    rows = []
    strikes = np.arange(80.0, 121.0, 1.0)
    for i, (t, vol) in enumerate(sorted(vol_by_t.items())):
        for right in ("call", "put"):
            mid = np.asarray(bs_price(right, SPOT, strikes, t, RATE, vol, Q), dtype=float)
            rows.append(pd.DataFrame({"expiry": pd.Timestamp("2020-01-17") + pd.Timedelta(
                days=30 * i), "t_years": t, "option_type": right, "strike": strikes,
                "mid_per_share": mid, "valid": True}))
    grid = pd.concat(rows, ignore_index=True)
    grid.attrs = {"spot": SPOT, "rate": RATE, "dividend_yield": Q}
    return grid


def _set(grid, right, strike, t, value):
    sel = (grid["option_type"] == right) & (grid["strike"] == strike) & (grid["t_years"] == t)
    assert sel.sum() == 1
    grid.loc[sel, "mid_per_share"] = value


def _checks(grid) -> set[tuple[str, str]]:
    return {(v["check"], v["option_type"]) for v in static_arbitrage_violations(grid)}


def test_an_arbitrage_free_grid_has_no_violation():
    assert static_arbitrage_violations(bs_grid({0.1: 0.2, 0.2: 0.2, 0.5: 0.18})) == []


def test_planted_butterfly_vertical_bound_and_calendar_violations_are_found():
    grid = bs_grid({0.1: 0.2, 0.2: 0.2})
    mid = grid.loc[(grid["option_type"] == "call") & (grid["strike"] == 110.0)
                   & (grid["t_years"] == 0.1), "mid_per_share"].iloc[0]
    _set(grid, "call", 110.0, 0.1, mid + 0.3)  # a bump: butterfly < 0 and a rising call
    assert {("butterfly_negative", "call"), ("vertical_negative", "call")} <= _checks(grid)
    grid = bs_grid({0.1: 0.2, 0.2: 0.2})
    _set(grid, "put", 100.0, 0.2, 0.01)  # far below the next strike's: wider than the width
    assert ("vertical_above_width", "put") in _checks(grid)
    grid = bs_grid({0.1: 0.2, 0.2: 0.2})
    _set(grid, "call", 80.0, 0.1, 101.0)
    _set(grid, "put", 120.0, 0.1, 121.0)
    found = _checks(grid)
    assert ("call_above_spot", "call") in found and ("put_above_strike", "put") in found
    # Calendar: the later expiry at a lower total variance than the earlier one.
    calendar = bs_grid({0.1: 0.4, 0.2: 0.2})
    assert {check for check, _ in _checks(calendar)} == {"calendar_negative"}
    # Invalid quotes are left out of the checks.
    grid = bs_grid({0.1: 0.2})
    _set(grid, "call", 110.0, 0.1, 50.0)
    grid.loc[grid["strike"] == 110.0, "valid"] = False
    assert static_arbitrage_violations(grid) == []


# --------------------------------------------------------------------------- end to end
def _run(*args: str) -> subprocess.CompletedProcess:
    return run(*args, timeout=900)


@pytest.mark.slow
def test_a_tiny_evaluation_writes_its_audit(tiny_run_copy):
    run_dir = tiny_run_copy  # the session's tiny run (tests/conftest.py), copied: written into
    done = _run("evaluate.py", "--run", str(run_dir), "--no-plots")
    assert done.returncode == 0, done.stderr[-3000:]
    audit = json.loads((run_dir / "eval" / "audit.json").read_text())
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert audit["quotes"] == "model" and audit["max_abs_log_moneyness"] == 0.25
    assert set(audit["policies"]) == set(metrics["policies"]) - {"buy_and_hold"}
    for name, a in audit["policies"].items():
        trades = pd.read_csv(run_dir / "eval" / f"trades_{name}.csv")
        assert a["trades"] == len(trades)
        # Nothing that cannot pay is opened, no leg beyond the band, no invalid fill.
        assert a["negative_max_profit_opens"] == a["legs_beyond_band"] == 0
        assert a["fills_at_invalid_quotes"] == 0
        assert a["arbitrage_checked_entries"] == trades["open_date"].nunique()
        assert sum(r["pnl_usd"] for r in a["pnl_by_bucket"]) == pytest.approx(
            trades["pnl_usd"].sum())
    report = (run_dir / "eval" / "report.md").read_text()
    assert "## Audit" in report and "top trade share" in report
    done = _run("evaluate.py", "--run", str(run_dir), "--quotes", "chain", "--chain",
                str(SPX_CHAIN))
    assert done.returncode == 0, done.stderr[-3000:]
    chain_audit = json.loads((run_dir / "eval_chain" / "audit.json").read_text())
    assert chain_audit["policies"]
    for by_kind in chain_audit["policies"].values():
        assert set(by_kind) == {"chain", "model"}
        assert by_kind["chain"]["fills_at_invalid_quotes"] == 0
    assert "## Audit" in (run_dir / "eval_chain" / "report.md").read_text()


def test_the_audit_counts_violations_on_each_entry_bar_once():
    trades = ledger()
    bad = bs_grid({0.1: 0.2, 0.2: 0.2})
    _set(bad, "call", 80.0, 0.1, 101.0)  # one call above spot (and the vertical it breaks)
    clean = bs_grid({0.1: 0.2, 0.2: 0.2})
    grids = {pd.Timestamp("2018-02-06"): bad, pd.Timestamp("2018-03-20"): clean}
    audit = audit_policy(trades, BAND, grids)
    assert audit["arbitrage_checked_entries"] == 2  # the other two entry bars have no grid
    assert audit["arbitrage_by_check"]["call_above_spot"] == 1
    assert audit["arbitrage_violations_at_entry"] == sum(audit["arbitrage_by_check"].values())
    assert all(v["entry_date"] == "2018-02-06" for v in audit["arbitrage_worst"])
