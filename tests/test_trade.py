"""trade.py and the replay executor on the tiny trained run (``tests/conftest.py``): replay
parity with evaluate.py, restart and crash safety, risk exits on the bar a hand computation says,
the kill switch. Where the process itself is not the point, trade.py's ``main`` runs in-process
(``in_process.trade``); the SIGKILL, SIGTERM and one-line-error checks run real processes."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from agents import make_baseline
from agents.eval_run import read_panel
from config import load_config
from envs import load_env_inputs, make_env
from execution.brokers.paper import PaperBroker
from execution.executor import ExecutorSettings, ReplayExecutor
from execution.journal import Journal
from execution.orders import MultiLegOrder, OrderLeg
from execution.risk import KillSwitch, RiskConfig
from options.positions import Fill, Leg
from tests.helpers import ROOT, journal_rows, run

POLICY = "iron_condor"  # a credit structure, so stop-loss and take-profit both apply


@pytest.fixture
def trained(tiny_run) -> Path:
    """The session's tiny run; trade.py writes only under --out, always given here."""
    return tiny_run


@pytest.fixture(scope="module")
def evaluated(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trade_eval") / "eval"
    done = run(str(ROOT / "evaluate.py"), "--run", str(tiny_run), "--baselines",
               f"{POLICY},random", "--no-plots", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def replay_args(run_dir: Path, policy: str, out: Path, *extra: str) -> list[str]:
    return ["--run", str(run_dir), "--broker", "paper", "--replay", "--segment", "test",
            "--policy", policy, "--out", str(out), *extra]


def trade(run_dir: Path, policy: str, out: Path, *extra: str,
          env: dict | None = None) -> subprocess.CompletedProcess:
    """trade.py --replay as a real process."""
    return run(str(ROOT / "trade.py"), *replay_args(run_dir, policy, out, *extra), env=env)


@pytest.mark.parametrize("policy", ["ppo", POLICY, "random"])
def test_replay_writes_the_same_ledgers_as_evaluate(trained, evaluated, policy, tmp_path,
                                                    in_process):
    out = tmp_path / f"{policy}_replay"
    if policy == "ppo":  # the command line, end to end
        done = trade(trained, policy, out)
    else:
        done = in_process.trade(*replay_args(trained, policy, out))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("trades", "equity"):
        ours = (out / f"{name}.csv").read_text()
        theirs = (evaluated / f"{name}_{policy}.csv").read_text()
        assert ours == theirs, f"{name}.csv differs from evaluate.py's {name}_{policy}.csv"
    trades = pd.read_csv(out / "trades.csv")
    rows = journal_rows(out / "journal.sqlite")
    assert len(rows["decisions"]) == len(pd.read_csv(out / "equity.csv")) - 1
    opened = {r[0] for r in rows["orders"] if r[3] == "open"}
    assert len(opened) == len(trades)  # one opening order per trade of the ledger
    assert all(r[7] == "filled" for r in rows["orders"])
    assert len(done.stdout.splitlines()) >= len(rows["decisions"])  # a progress line per bar
    # Each bar's line and equity.csv's row show that bar's own state (issue 24 item 13): the
    # line's equity is the row's, and a trade's open date is the row of its opening action.
    equity = pd.read_csv(out / "equity.csv", index_col=0)
    lines = [line for line in done.stdout.splitlines() if " bar " in line]
    for line in lines:
        date, bar = line.split()[0], int(line.split()[2].rstrip(":"))
        assert equity.index[bar].startswith(date), line
        shown = float(line.rsplit("equity ", 1)[1].split()[0].replace(",", ""))
        assert shown == pytest.approx(equity["equity_usd"].iloc[bar], abs=0.006), line
        assert line.split(" -> ")[1].split()[0] == equity["action"].iloc[bar], line
    for opened in trades["open_date"]:
        assert equity.loc[opened, "action"].startswith("open_"), opened
    assert equity["action"].iloc[-1] == "none"


def test_a_second_start_replays_the_journal_and_adds_nothing(trained, tmp_path, in_process):
    out = tmp_path / "again"
    assert in_process.trade(*replay_args(trained, POLICY, out)).returncode == 0
    before = journal_rows(out / "journal.sqlite")
    again = in_process.trade(*replay_args(trained, POLICY, out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 bar(s) journalled" in again.stdout
    assert journal_rows(out / "journal.sqlite") == before


def _crash_and_restart(trained, tmp_path, in_process, kills: int, seed: int) -> dict:
    """SIGKILL a replay after a random number of bars, ``kills`` times, then let it finish."""
    reference = tmp_path / "reference"
    assert in_process.trade(*replay_args(trained, POLICY, reference)).returncode == 0
    out = tmp_path / "crashed"
    env = {**os.environ, "SPYRL_TRADE_BAR_DELAY_S": "0.02", "PYTHONUNBUFFERED": "1"}
    rng = random.Random(seed)
    adopted = 0
    killed = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "trade.py"), "--run", str(trained), "--broker", "paper",
             "--replay", "--policy", POLICY, "--out", str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        wanted = rng.randint(1, 6)
        seen = 0
        for line in proc.stdout:
            if " bar " in line and "->" in line:
                seen += 1
            found = re.search(r"restart at bar .* (\d+) difference", line)
            adopted += bool(found and int(found.group(1)) > 0)
            if seen >= wanted:
                break
        time.sleep(rng.uniform(0.0, 0.04))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    final = in_process.trade(*replay_args(trained, POLICY, out))
    assert final.returncode == 0, final.stderr[-3000:]
    ours, theirs = journal_rows(out / "journal.sqlite"), journal_rows(
        reference / "journal.sqlite")
    assert ours == theirs  # identical journal (logged_at and meta.started_at aside)
    book = sqlite3.connect(out / "paper_broker.sqlite")
    ids = [r[0] for r in book.execute("SELECT client_order_id FROM book")]
    book.close()
    assert len(ids) == len(theirs["orders"])  # the broker holds each order once
    assert (out / "trades.csv").read_text() == (reference / "trades.csv").read_text()
    return {"killed": killed, "restarts_with_adopted_orders": adopted}


def test_killed_and_restarted_replay_ends_with_the_uninterrupted_journal(trained, tmp_path,
                                                                         in_process):
    counts = _crash_and_restart(trained, tmp_path, in_process, kills=2, seed=1)
    assert counts["killed"] >= 1


@pytest.mark.slow
def test_twenty_sigkills_end_with_the_uninterrupted_journal(trained, tmp_path, in_process):
    counts = _crash_and_restart(trained, tmp_path, in_process, kills=24, seed=7)
    print(json.dumps(counts))
    assert counts["killed"] >= 20


# ------------------------------------------------------------------ in-process risk checks
def _setup(trained: Path, folder: Path, limits: RiskConfig):
    cfg = load_config(trained / "config.yaml")
    inputs = load_env_inputs(cfg, panel_long=read_panel(trained))
    env = make_env(cfg, "test", mode="eval", inputs=inputs)
    policy = make_baseline(POLICY, env.observation_names, cfg.baselines, seed=cfg.seed)
    folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(folder / "journal.sqlite")
    broker = PaperBroker(env, folder / "book.sqlite", "SPY")
    executor = ReplayExecutor(broker, policy, journal, limits, KillSwitch(folder / "KILL"),
                              ExecutorSettings("tiny", POLICY, cfg.seed), progress=lambda s: None)
    return cfg, env, policy, journal, executor


def _first_trade_path(trained: Path, tmp_path: Path):
    """Without limits: per bar of the first trade, the simulator's own P&L if closed, its
    credit (entry premium before commission), max profit and days to expiry, by hand from the sim's views."""
    cfg, env, policy, journal, _ = _setup(trained, tmp_path / "free", RiskConfig())
    journal.close()
    obs, info = env.reset(seed=cfg.seed)
    policy.reset(cfg.seed)
    rows, trade_id = [], None
    while True:
        sim = env.sim
        if sim.positions and (trade_id is None or sim.positions[0].trade_id == trade_id):
            pos = sim.positions[0]
            trade_id = pos.trade_id
            view = sim.position_view(pos)
            rows.append((sim.bar, view.pnl_if_closed_usd,
                         pos.entry_cash_flow_usd + pos.entry_commission_usd,
                         view.max_profit_usd, view.dte_days))
        elif trade_id is not None:
            return rows
        obs, _, term, trunc, info = env.step(policy.act(obs, info, env.action_masks()))
        if term or trunc:
            return rows


def _decisions(journal: Journal) -> dict[int, tuple[str, str]]:
    """bar -> (final action, reason)"""
    return dict((r[0], (r[1], r[2])) for r in journal.conn.execute(
        "SELECT bar_index, final_action, reason FROM decisions"))


def test_stop_loss_take_profit_and_dte_exits_fire_on_the_hand_computed_bar(trained, tmp_path):
    path = _first_trade_path(trained, tmp_path)
    assert len(path) > 2
    held_from = path[0][0]  # the first bar the position is held at a close: exits checked from it
    # Thresholds at the trade's worst loss / best gain: each exit must fire on that very bar.
    worst = max(-pnl / credit for _, pnl, credit, _, _ in path)
    best = max(pnl / max_profit for _, pnl, _, max_profit, _ in path)
    cases = []
    if worst > 0:
        multiple = worst * (1 - 1e-9)
        bar = next(b for b, pnl, credit, _, _ in path if -pnl >= multiple * credit)
        cases.append((RiskConfig(stop_loss_credit_multiple=multiple), bar, "stop_loss"))
    if best > 0:
        fraction = best * (1 - 1e-9)
        bar = next(b for b, pnl, _, mp, _ in path if pnl >= fraction * mp)
        cases.append((RiskConfig(take_profit_max_profit_fraction=fraction), bar, "take_profit"))
    nearest = min(dte for *_, dte in path)
    bar = next(b for b, *_, dte in path if dte <= nearest)
    cases.append((RiskConfig(exit_at_dte_days=nearest), bar, "dte_exit"))
    assert cases, "the first trade neither lost nor gained: no exit to check"
    for k, (limits, bar, rule) in enumerate(cases):
        *_, journal, executor = _setup(trained, tmp_path / f"case{k}", limits)
        executor.run()
        decisions = _decisions(journal)
        first_exit = min(b for b, (final, reason) in decisions.items()
                         if b >= held_from and final == "close" and reason.startswith(rule))
        assert first_exit == bar, (rule, first_exit, bar)
        # the simulator's ledger names the rule (a labelled close: not held by
        # env.min_holding_bars)
        assert f"risk_{rule}" in set(executor.env.trade_ledger()["exit_reason"])
        journal.close()


def test_limits_refuse_orders_and_journal_why(trained, tmp_path):
    _, _, _, journal, executor = _setup(trained, tmp_path / "lim",
                                        RiskConfig(max_contracts=1))
    executor.run()
    rules = {r[0] for r in journal.conn.execute("SELECT rule FROM refusals")}
    assert rules == {"max_contracts"}
    assert journal.conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    journal.close()


def test_kill_switch_file_cancels_and_stops(trained, tmp_path, in_process):
    out = tmp_path / "killed"
    out.mkdir()
    (out / "KILL").write_text("stop\n")
    done = in_process.trade(*replay_args(trained, POLICY, out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kill switch" in done.stdout
    journal = Journal(out / "journal.sqlite")
    assert journal.conn.execute("SELECT rule FROM refusals").fetchall() == [("kill_switch",)]
    assert journal.next_bar() == 0
    journal.close()


def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, in_process):
    bad = tmp_path / "limits.yaml"
    bad.write_text("stop_loss_credit_multiple: 2\nmax_contrcts: 3\n")
    done = trade(trained, POLICY, tmp_path / "x", "--limits", str(bad))
    assert done.returncode == 2
    assert "max_contrcts" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = in_process.trade(*replay_args(trained, "no_such_policy", tmp_path / "y"))
    assert done.returncode == 2 and "no_such_policy" in done.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_live_on_a_run_of_embedded_history_fails_with_one_line(trained):
    done = run(str(ROOT / "trade.py"), "--run", str(trained), "--broker", "paper", "--live")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "embedded" in done.stderr and "yfinance or csv" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_alpaca_without_keys_fails_with_one_line(trained, in_process):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    done = in_process.trade("--run", str(trained), "--broker", "alpaca", "--live", env=env)
    assert done.returncode == 2
    assert "APCA_API_KEY_ID" in done.stderr and "Traceback" not in done.stderr


def test_restart_adopts_an_order_the_broker_holds_but_the_journal_lost(trained, tmp_path):
    """A crash after the broker took bar t's order but before the journal's commit: the
    restart reports it, does not place it again, and the journal ends as if nothing happened."""
    folder = tmp_path / "crash"
    *_, journal, executor = _setup(trained, folder, RiskConfig())
    executor.run()
    complete = journal.dump()
    t = journal.conn.execute("SELECT MAX(bar_index) FROM orders").fetchone()[0]
    with journal.transaction():  # the state a crash before bar t's commit leaves
        for table in ("decisions", "orders", "fills", "refusals"):
            journal.conn.execute(f"DELETE FROM {table} WHERE bar_index >= ?", (t,))
        for table in ("equity", "positions"):
            journal.conn.execute(f"DELETE FROM {table} WHERE bar_index > ?", (t,))
    journal.close()
    *_, journal, executor = _setup(trained, folder, RiskConfig())
    outcome = executor.run()
    assert outcome.bars_replayed == t
    assert len(outcome.differences) == 1
    assert "missing from the journal" in outcome.differences[0]
    assert journal.dump() == complete
    book = sqlite3.connect(folder / "book.sqlite")
    assert book.execute("SELECT COUNT(*) FROM book").fetchone()[0] == len(complete["orders"])
    book.close()
    journal.close()


def test_dry_run_writes_nothing(trained, tmp_path, in_process):
    done = in_process.trade(*replay_args(trained, POLICY, tmp_path / "dry", "--dry-run"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "first decision open_iron_condor" in done.stdout
    assert not (tmp_path / "dry").exists()


def test_paper_broker_rejects_what_the_simulator_would_not_fill(trained, tmp_path):
    cfg, env, _, journal, executor = _setup(trained, tmp_path / "rej", RiskConfig())
    journal.close()
    broker = executor.broker
    broker.reset(cfg.seed)
    terms = broker.open_terms(POLICY)
    when = pd.Timestamp(env.panel.dates[0])
    bigger = tuple(OrderLeg(x.symbol, x.option_type, x.strike, x.expiry,
                            2 * x.quantity_contracts) for x in terms.legs)
    wrong_size = MultiLegOrder("id-size", "open", POLICY, bigger, terms.net_price_per_share, 0,
                               when)
    too_cheap = MultiLegOrder("id-limit", "open", POLICY, terms.legs,
                              terms.net_price_per_share - 0.05, 0, when)
    for order, words in ((wrong_size, "legs differ"), (too_cheap, "beyond the limit")):
        first = broker.submit(order)
        assert first.status == "rejected" and words in first.detail
        assert broker.submit(order) == first  # idempotent: the book holds it once
    assert len(broker.known_order_ids()) == 2 and broker.open_orders() == []
    outcome = broker.end_bar(0)  # nothing pending: the bar passes with no fill
    assert not [f for f in outcome.fills if f.client_order_id]
    assert env.sim.positions == []


def test_sigterm_stops_at_the_next_bar_and_a_restart_continues(trained, tmp_path, in_process):
    out = tmp_path / "term"
    env = {**os.environ, "SPYRL_TRADE_BAR_DELAY_S": "0.05", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "trade.py"), "--run", str(trained), "--broker", "paper",
         "--replay", "--policy", POLICY, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if " bar 3:" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert "kill switch (SIGTERM received)" in rest
    journal = Journal(out / "journal.sqlite")
    stopped_at = journal.next_bar()
    assert journal.conn.execute("SELECT rule, bar_index FROM refusals").fetchall() == [
        ("kill_switch", stopped_at)]
    journal.close()
    done = in_process.trade(*replay_args(trained, POLICY, out))
    assert done.returncode == 0 and f"{stopped_at} replayed from the journal" in done.stdout


def _journal_file(path: Path, bars: int = 200) -> Path:
    """A real journal with ``bars`` decisions, closed (its WAL folded into the file)."""
    journal = Journal(path)
    journal.open_for({"run": "tiny", "policy": POLICY, "mode": "replay", "broker": "paper",
                      "segment": "test"}, {})
    for bar in range(bars):
        journal.write_decision(bar, f"2016-01-{bar % 28 + 1:02d}", "hold", "hold", "x" * 200)
    journal.close()
    return path


def _truncated(path: Path) -> Path:
    data = _journal_file(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.mkdir() or p, "is a folder; expected a journal file"),
    (lambda p: p.write_bytes(random.Random(0).randbytes(8192)) and p, "not a journal"),
    (lambda p: p.write_text("date,equity\n2016-01-04,100000\n" * 50) and p, "not a journal"),
    (_truncated, "damaged SQLite file"),
    (lambda p: (sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(), p)[1],
     "an SQLite file without the journal's tables"),
])
def test_a_bad_journal_is_one_line_naming_it(trained, tmp_path, in_process, make, message):
    """issue 24 item 6: --journal that is a folder, random bytes, a text file, a truncated
    journal or another SQLite file: one line naming --journal, exit 2, nothing written (the
    folder case as a real process, the others in-process)."""
    journal = make(tmp_path / "journal.sqlite")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = replay_args(trained, POLICY, tmp_path / "out", "--journal", str(journal))
    done = (trade(trained, POLICY, tmp_path / "out", "--journal", str(journal))
            if message.startswith("is a folder") else in_process.trade(*argv))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"--journal {journal}" in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/, no -wal/-shm


def test_a_read_only_journal_is_named_before_anything_is_written(tmp_path):
    """Checked as an unprivileged user (root writes through file permissions): the process
    imports as itself, then drops to ``nobody`` before the check."""
    import pwd
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ro-journal-"))
    try:
        path = _journal_file(folder / "journal.sqlite", bars=5)
        path.chmod(0o444)
        folder.chmod(0o755)
        drop = ""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            drop = f"os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid}); "
        check = ("import os, sys; from common.cli import run_cli; "
                 "from execution.journal import check_journal_file; " + drop +
                 "sys.exit(run_cli(lambda a: check_journal_file(a[0]), sys.argv[1:], prog='t'))")
        done = subprocess.run([sys.executable, "-c", check, str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"--journal {path}: read-only" in done.stderr, done.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["journal.sqlite"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_journal_fills_name_the_quote_source_that_priced_them(trained, tmp_path):
    """Every paper fill says where its price came from: the replay's model quotes are ``model``;
    a leg the simulator filled at its fallback price (no valid quote) journals ``fallback``."""
    cfg, env, _, journal, executor = _setup(trained, tmp_path / "src", RiskConfig())
    executor.run()
    sources = [r[0] for r in journal.conn.execute("SELECT quote_source FROM fills")]
    journal.close()
    assert sources and set(sources) == {"model"}
    broker = executor.broker
    t = 0
    when = pd.Timestamp(env.panel.dates[t + 1])
    fallback = Fill(Leg("put", 200.0, when, -1), when, 1, 3.5, 3.0, 0.0, "settle", "fallback")
    model = Fill(Leg("put", 200.0, when, -1), when, 1, 3.5, 3.0, 0.0, "settle", "model")
    unknown = Fill(Leg("put", 200.0, when, -1), when, 1, 3.5, 3.0, 0.0, "settle")
    out = broker._attribute([fallback, model, unknown], t)
    assert [f.quote_source for f in out] == ["fallback", "model", None]


def test_a_run_deciding_every_3_bars_trades_on_the_bars_evaluate_does(tiny_workspace, tmp_path,
                                                                      in_process):
    """``agent.decision_every_bars: 3``: trade.py --replay asks PPO on bars 0, 3, 6, ... and
    writes the same ledgers as evaluate.py, which does the same."""
    config = yaml.safe_load((tiny_workspace / "tiny.yaml").read_text())
    config["agent"]["decision_every_bars"] = 3
    (tmp_path / "every3.yaml").write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "every3"
    done = in_process.train("--config", str(tmp_path / "every3.yaml"), "--run-dir",
                            str(run_dir), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    evaluated = tmp_path / "eval"
    done = in_process.evaluate("--run", str(run_dir), "--baselines", "cash", "--no-plots",
                               "--out", str(evaluated))
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "replay"
    done = in_process.trade(*replay_args(run_dir, "ppo", out))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("trades", "equity"):
        assert (out / f"{name}.csv").read_text() == (evaluated / f"{name}_ppo.csv").read_text()
    actions = pd.read_csv(out / "equity.csv")["action"]
    acting = [bar for bar, action in enumerate(actions) if action not in ("hold", "none")]
    assert acting and all(bar % 3 == 0 for bar in acting)
