"""Orders (OCC symbols, client order ids), the risk manager's limits on hand-made positions, and
the journal's schema and transactions."""

from __future__ import annotations

import os
import signal
import sqlite3

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from execution.brokers.base import BrokerFill, BrokerPosition
from execution.journal import SCHEMA_PATH, Journal, JournalMismatchError
from execution.orders import MultiLegOrder, OrderLeg, client_order_id, occ_symbol, parse_occ_symbol
from execution.risk import KillSwitch, RiskConfig, RiskState, check_order, exit_reason

EXPIRY = pd.Timestamp("2016-06-17")


def leg(option_type: str, strike: float, qty: int) -> OrderLeg:
    return OrderLeg(occ_symbol("SPY", EXPIRY, option_type, strike), option_type, strike,
                    EXPIRY, qty)


CONDOR = (leg("put", 190, 2), leg("put", 200, -2), leg("call", 220, -2), leg("call", 230, 2))


def order(intent="open", legs=CONDOR) -> MultiLegOrder:
    bar_time = pd.Timestamp("2016-05-02")
    return MultiLegOrder(client_order_id("run", "ppo", bar_time, intent, legs), intent,
                         "iron_condor", legs, -1.25, 10, bar_time)


# ------------------------------------------------------------------ orders
def test_occ_symbol_matches_the_documented_layout():
    assert occ_symbol("SPY", EXPIRY, "put", 200) == "SPY   160617P00200000"
    assert occ_symbol("SPY", pd.Timestamp("2024-01-19"), "call", 472.5) == \
        "SPY   240119C00472500"
    assert parse_occ_symbol("SPY240119C00472500") == ("SPY", pd.Timestamp("2024-01-19"),
                                                      "call", 472.5)
    with pytest.raises(ValueError, match="root"):
        occ_symbol("TOOLONG", EXPIRY, "put", 200)


@given(st.integers(1, 9_999_999), st.sampled_from(["call", "put"]),
       st.dates(pd.Timestamp("2000-01-01").date(), pd.Timestamp("2099-12-31").date()))
def test_occ_symbols_round_trip(thousandths, option_type, day):
    strike = thousandths / 1000
    symbol = occ_symbol("SPY", pd.Timestamp(day), option_type, strike)
    assert len(symbol) == 21
    assert parse_occ_symbol(symbol) == ("SPY", pd.Timestamp(day), option_type, strike)


def test_client_order_ids_are_deterministic_and_tell_orders_apart():
    t = pd.Timestamp("2016-05-02")
    first = client_order_id("run", "ppo", t, "open", CONDOR)
    assert first == client_order_id("run", "ppo", t, "open", CONDOR)
    others = {client_order_id("run2", "ppo", t, "open", CONDOR),
              client_order_id("run", "random", t, "open", CONDOR),
              client_order_id("run", "ppo", t + pd.Timedelta(days=1), "open", CONDOR),
              client_order_id("run", "ppo", t, "close", CONDOR),
              client_order_id("run", "ppo", t, "open", CONDOR[:3])}
    assert first not in others and len(others) == 5
    assert len(first) <= 48  # brokers cap client ids (Alpaca: 128 characters)


def test_order_units_and_contracts():
    o = order()
    assert o.contracts == 2 and o.ratio_units == 2
    assert o.net_limit_usd == pytest.approx(-250.0)


# ------------------------------------------------------------------ risk: exits
def position(pnl_if_closed: float, credit: float = 100.0, max_profit: float | None = 100.0,
             max_loss: float | None = 900.0, dte: float = 30.0) -> BrokerPosition:
    return BrokerPosition(7, "iron_condor", 1, CONDOR, dte, pnl_if_closed, pnl_if_closed,
                          credit, max_profit, max_loss)


@pytest.mark.parametrize(("cfg", "pnl", "dte", "rule"), [
    (RiskConfig(stop_loss_credit_multiple=2.0), -199.0, 30, None),
    (RiskConfig(stop_loss_credit_multiple=2.0), -200.0, 30, "stop_loss"),
    (RiskConfig(stop_loss_max_loss_fraction=0.5), -449.0, 30, None),
    (RiskConfig(stop_loss_max_loss_fraction=0.5), -450.0, 30, "stop_loss"),
    (RiskConfig(take_profit_max_profit_fraction=0.5), 49.0, 30, None),
    (RiskConfig(take_profit_max_profit_fraction=0.5), 50.0, 30, "take_profit"),
    (RiskConfig(exit_at_dte_days=21), 0.0, 21.5, None),
    (RiskConfig(exit_at_dte_days=21), 0.0, 21.0, "dte_exit"),
    (RiskConfig(), -10_000.0, 0.0, None),  # every limit off
])
def test_exit_rules_fire_exactly_at_their_thresholds(cfg, pnl, dte, rule):
    why = exit_reason(position(pnl, dte=dte), cfg)
    assert (why.split(":")[0] if why else None) == rule


def test_stop_loss_on_credit_needs_a_credit_and_take_profit_a_bounded_profit():
    debit = position(-500.0, credit=0.0)
    assert exit_reason(debit, RiskConfig(stop_loss_credit_multiple=1.0)) is None
    unbounded = position(10_000.0, max_profit=None)
    assert exit_reason(unbounded, RiskConfig(take_profit_max_profit_fraction=0.1)) is None


# ------------------------------------------------------------------ risk: refusals
def state(open_positions=0, equity=100_000.0, day_start=100_000.0, kill=None) -> RiskState:
    return RiskState(open_positions, equity, day_start, kill)


@pytest.mark.parametrize(("cfg", "st_", "rule"), [
    (RiskConfig(max_open_positions=1), state(open_positions=0), None),
    (RiskConfig(max_open_positions=1), state(open_positions=1), "max_open_positions"),
    (RiskConfig(max_contracts=2), state(), None),
    (RiskConfig(max_contracts=1), state(), "max_contracts"),
    (RiskConfig(daily_loss_limit_usd=500), state(equity=99_501), None),
    (RiskConfig(daily_loss_limit_usd=500), state(equity=99_500), "daily_loss_limit"),
    (RiskConfig(), state(kill="file KILL exists"), "kill_switch"),
])
def test_opening_orders_are_refused_by_the_limit_they_breach(cfg, st_, rule):
    refusal = check_order(order(), st_, cfg)
    assert (refusal.rule if refusal else None) == rule


def test_closing_orders_pass_every_limit_but_the_kill_switch():
    cfg = RiskConfig(max_open_positions=0, max_contracts=1, daily_loss_limit_usd=1)
    closing = order("close", tuple(OrderLeg(x.symbol, x.option_type, x.strike, x.expiry,
                                            -x.quantity_contracts) for x in CONDOR))
    assert check_order(closing, state(open_positions=5, equity=0), cfg) is None
    assert check_order(closing, state(kill="SIGTERM received"), cfg).rule == "kill_switch"


def test_risk_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="max_contrcts"):
        RiskConfig(max_contrcts=3)


def test_kill_switch_by_file_and_by_sigterm(tmp_path):
    kill = KillSwitch(tmp_path / "KILL")
    assert kill.reason() is None
    (tmp_path / "KILL").touch()
    assert "KILL" in kill.reason()
    (tmp_path / "KILL").unlink()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        kill.install()
        os.kill(os.getpid(), signal.SIGTERM)
        assert kill.reason() == "SIGTERM received"
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------ journal
def test_journal_uses_the_fixed_schema_in_wal_mode(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reference = sqlite3.connect(":memory:")
    reference.executescript(SCHEMA_PATH.read_text())
    for table in ("meta", "decisions", "orders", "fills", "equity", "positions", "refusals"):
        ours = journal.conn.execute(f"PRAGMA table_info({table})").fetchall()
        assert ours == reference.execute(f"PRAGMA table_info({table})").fetchall()
    journal.close()


def test_journal_bar_transactions_are_all_or_nothing(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    identity = {"run": "r", "policy": "ppo", "mode": "replay", "broker": "paper",
                "segment": "test"}
    journal.open_for(identity, {})
    fill = BrokerFill("f1", None, 1, pd.Timestamp("2016-01-05"), CONDOR[0].symbol, 1, 1.0,
                      1.0, 0.0, "settle")
    with pytest.raises(RuntimeError), journal.transaction():
        journal.write_decision(0, "2016-01-04", "hold", "hold", "policy holds")
        journal.write_fill(fill)
        raise RuntimeError("crash in the middle of a bar")
    assert journal.next_bar() == 0
    assert journal.dump()["fills"] == []
    with journal.transaction():
        journal.write_decision(0, "2016-01-04", "hold", "hold", "policy holds")
    assert journal.next_bar() == 1
    with pytest.raises(JournalMismatchError, match="policy"):
        journal.open_for({**identity, "policy": "random"}, {})
    journal.close()


V1_FILLS = """CREATE TABLE fills (
  fill_id TEXT PRIMARY KEY, client_order_id TEXT,
  bar_index INTEGER NOT NULL, bar_time TEXT NOT NULL, logged_at TEXT NOT NULL,
  symbol TEXT NOT NULL, quantity_contracts INTEGER NOT NULL, price_per_share REAL NOT NULL,
  mid_per_share REAL, commission_usd REAL NOT NULL, kind TEXT NOT NULL);"""


def test_a_version_1_journal_gains_the_quote_source_column_on_open(tmp_path):
    """A journal written before ``fills.quote_source`` existed opens, keeps its fills (their
    source unknown: NULL), records new fills with their source and says schema version 2."""
    path = tmp_path / "v1.sqlite"
    old = sqlite3.connect(path)
    old.executescript(V1_FILLS + "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
    old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old.execute("INSERT INTO fills VALUES ('f0', NULL, 0, '2016-01-04', 'x', ?, 1, 1.0, 1.0, 0.0,"
                " 'settle')", (CONDOR[0].symbol,))
    old.commit()
    old.close()
    journal = Journal(path)
    assert journal.meta()["schema_version"] == "2"
    with journal.transaction():
        journal.write_fill(BrokerFill("f1", None, 1, pd.Timestamp("2016-01-05"),
                                      CONDOR[0].symbol, 1, 0.4, 1.0, 0.0, "close", "fallback"))
    rows = journal.conn.execute("SELECT fill_id, quote_source FROM fills ORDER BY fill_id")
    assert rows.fetchall() == [("f0", None), ("f1", "fallback")]
    journal.close()
    again = Journal(path)  # a second open finds nothing to migrate
    assert again.meta()["schema_version"] == "2"
    again.close()
