"""trade.py --live on a run whose data source is a CSV file that grows bar by bar (as a recorder
would append to it): the live loop's decisions, fills, trade ledger and equity equal a replay of
the same bars with the walk-forward's forecasts; missed bars are holds; the kill switch stops the
waiting loop; Alpaca orders against the local server; SIGKILLs mid-cycle and restarts change
nothing (slow); bad live inputs fail in one line. Most cycles call trade.py's ``main``
in-process (one import of the stack for many cycles, as the long-running loop is); the command
line runs for a repeated cycle, the Alpaca keys' secrecy and the waiting loop's kill switch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import data
from agents import make_baseline, run_episode
from agents.eval_run import read_panel
from config import load_config
from envs import load_env_inputs, make_env
from execution.journal import MISSED_PREFIX
from execution.live import MarketTape, closed_bars, next_bar_due_ns
from tests.helpers import ROOT, InProcess, journal_rows, run, tiny_config

POLICY = "iron_condor"
FIRST_LIVE = "2016-03-29"  # the CSV is cut after this bar before live trading starts
LIVE_BARS = 9  # bars appended one at a time after it (a condor opened on the first is closed)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """The embedded bars as a vendor CSV (iv in VIX points, rate as a fraction)."""
    table = frame[["open", "high", "low", "close", "volume"]].copy()
    table["iv"] = frame["iv_index"] * 100.0
    table["rate"] = frame["rate"]
    table.index.name = "date"
    table.to_csv(path, date_format="%Y-%m-%d")


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return data.load_market("embedded", start="2010-01-01", end="2016-06-30")


@pytest.fixture(scope="module")
def live_run(tmp_path_factory, history) -> Path:
    """A tiny run trained on a CSV source (the full file: train, valid and test segments). Not
    the session's embedded run: the CSV has no macro columns, so its features and forecasts
    differ from the embedded run's."""
    base = tmp_path_factory.mktemp("live")
    csv = base / "spx.csv"
    write_csv(history, csv)
    config = tiny_config(base / "cache")
    config["data"] = {"source": "csv", "path": str(csv)}
    (base / "tiny.yaml").write_text(yaml.safe_dump(config))
    run_dir = base / "runs" / "tiny"
    done = run(str(ROOT / "train.py"), "--config", str(base / "tiny.yaml"), "--run-dir",
               str(run_dir), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def cut_csv(run_dir: Path, history: pd.DataFrame, last: pd.Timestamp) -> None:
    cfg = load_config(run_dir / "config.yaml")
    write_csv(history.loc[:last], Path(cfg.data.path))


def live_args(run_dir: Path, out: Path, *extra: str, policy: str = POLICY,
              broker: str = "paper") -> list[str]:
    return ["--run", str(run_dir), "--broker", broker, "--live", "--once",
            "--publication-delay-minutes", "0", "--no-progress", "--policy", policy, "--out",
            str(out), *extra]


def trade_live(run_dir: Path, out: Path, *extra: str, policy: str = POLICY, broker: str = "paper",
               env: dict | None = None) -> subprocess.CompletedProcess:
    """One cycle of ``trade.py --live --once`` as a real process."""
    return run(str(ROOT / "trade.py"), *live_args(run_dir, out, *extra, policy=policy,
                                                  broker=broker), env=env)


@pytest.fixture
def live_once(capsys, monkeypatch):
    """One cycle of ``trade.py --live --once`` in this process; returns its standard output.
    An exception other than a user-input error propagates (the crash test needs it)."""
    runner = InProcess(capsys, monkeypatch)

    def call(run_dir: Path, out: Path, *extra: str, broker: str = "paper") -> str:
        done = runner.trade(*live_args(run_dir, out, *extra, broker=broker))
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return call


def live_dates(history: pd.DataFrame) -> pd.DatetimeIndex:
    first = history.index.get_loc(pd.Timestamp(FIRST_LIVE))
    return history.index[first:first + LIVE_BARS + 1]


def replayed_ledgers(run_dir: Path, start, end) -> tuple[str, str]:
    """evaluate.py's ledgers for the policy on [start, end] with the run's walk-forward panel."""
    cfg = load_config(run_dir / "config.yaml")
    inputs = load_env_inputs(cfg, panel_long=read_panel(run_dir))
    env = make_env(cfg, "test", mode="eval", inputs=inputs, start=start, end=end)
    policy = make_baseline(POLICY, env.observation_names, cfg.baselines, seed=cfg.seed)
    result = run_episode(env, policy, seed=cfg.seed)
    return result.equity.to_csv(), result.trades.to_csv(index=False)


def test_live_bar_by_bar_equals_the_replay_of_the_same_bars(live_run, history, live_once):
    dates = live_dates(history)
    out = live_run / "trade" / "live_iron_condor"
    lines = []
    for k, bar in enumerate(dates):
        cut_csv(live_run, history, bar)
        lines.append(live_once(live_run, out))
        rows = journal_rows(out / "journal.sqlite")
        assert len(rows["decisions"]) == k + 1  # the newest bar is decided at once
        assert max(r[0] for r in rows["equity"]) == k  # its mark waits for the next bar
    assert "live trading starts" in lines[0]
    again = trade_live(live_run, out)  # the command line; nothing new: nothing written
    assert again.returncode == 0 and "nothing new" in again.stdout
    equity, trades = replayed_ledgers(live_run, dates[0], dates[-1])
    assert (out / "equity.csv").read_text() == equity
    assert (out / "trades.csv").read_text() == trades
    ledger = pd.read_csv(out / "trades.csv")
    assert len(ledger) >= 1, "the test needs at least one trade to compare fills"
    rows = journal_rows(out / "journal.sqlite")
    filled = {r[0] for r in rows["orders"] if r[7] == "filled"}  # every order but the newest bar's
    assert filled and {r[1] for r in rows["fills"] if r[1] is not None} == filled
    tape = pd.read_parquet(out / "live" / "bars.parquet")
    assert tape.index[-1] == dates[-1]


def test_bars_that_closed_while_down_are_holds(live_run, history, tmp_path, live_once):
    dates = live_dates(history)
    out = tmp_path / "live"
    cut_csv(live_run, history, dates[0])
    live_once(live_run, out)
    cut_csv(live_run, history, dates[3])  # two bars closed while it was not running
    live_once(live_run, out)
    rows = journal_rows(out / "journal.sqlite")
    reasons = {r[0]: (r[3], r[4]) for r in rows["decisions"]}
    assert [k for k, (_, why) in reasons.items() if why.startswith(MISSED_PREFIX)] == [1, 2]
    assert all(reasons[k][0] == "hold" for k in (1, 2)) and 3 in reasons
    assert max(r[0] for r in rows["equity"]) == 3  # bars 0-2 ended, the newest is decided
    assert not [r for r in rows["orders"] if r[1] in (1, 2)]  # no order after the fact


def test_live_refuses_embedded_runs_and_unreachable_sources(live_run, tmp_path, in_process):
    from execution.live import LiveDataError
    from execution.trade_run import TradeInputError, live_loader

    cfg = load_config(live_run / "config.yaml")
    with pytest.raises(TradeInputError, match="embedded"):
        live_loader(cfg.model_copy(update={"data": cfg.data.model_copy(
            update={"source": "embedded"})}))
    auto_exit = cfg.env.model_copy(update={"close_at_dte_days": 5})
    (tmp_path / "run").mkdir()
    for name in ("model.zip", "provenance.json"):
        (tmp_path / "run" / name).write_bytes((live_run / name).read_bytes())
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(
        cfg.model_copy(update={"env": auto_exit}).model_dump(mode="json")))
    done = in_process.trade("--run", str(tmp_path / "run"), "--broker", "alpaca", "--live",
                            env={**os.environ, "APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"})
    assert done.returncode == 2 and "env.close_at_dte_days" in done.stderr
    offline = cfg.data.model_copy(update={"source": "yfinance", "cache_dir": str(tmp_path)})
    with pytest.raises(LiveDataError, match="yfinance"):
        live_loader(cfg.model_copy(update={"data": offline}))()


def test_closed_bars_drop_the_session_in_progress_and_wait_for_publication(history):
    frame = history.loc["2016-03-28":"2016-03-31"]
    close_31 = pd.Timestamp("2016-03-31 16:00").value
    assert closed_bars(frame, close_31 - 1, 0).index[-1] == pd.Timestamp("2016-03-30")
    assert closed_bars(frame, close_31, 0).index[-1] == pd.Timestamp("2016-03-31")
    assert closed_bars(frame, close_31 + 10**9, 20 * 60).index[-1] == pd.Timestamp("2016-03-30")
    before_easter = history.loc["2016-03-21":"2016-03-24"].index
    due = next_bar_due_ns(pd.Timestamp("2016-03-24"), before_easter, None, 0)
    assert pd.Timestamp(due) == pd.Timestamp("2016-03-28 16:00")  # Good Friday is a holiday
    thanksgiving = pd.DatetimeIndex(["2016-11-22", "2016-11-23"])
    early = next_bar_due_ns(pd.Timestamp("2016-11-23"), thanksgiving, None, 60)
    assert pd.Timestamp(early) == pd.Timestamp("2016-11-25 13:01")  # the early close


def test_intraday_bars_are_due_one_interval_later_or_after_the_next_open():
    index = pd.date_range("2016-03-31 09:30", "2016-03-31 15:45", freq="15min")
    due = next_bar_due_ns(pd.Timestamp("2016-03-31 10:00"), index, "start", 0)
    assert pd.Timestamp(due) == pd.Timestamp("2016-03-31 10:30")  # the 10:15 bar ends then
    due = next_bar_due_ns(pd.Timestamp("2016-03-31 15:45"), index, "start", 30)
    assert pd.Timestamp(due) == pd.Timestamp("2016-04-01 09:45:30")


def test_live_dry_run_and_flags(live_run, history, live_once, tmp_path):
    cut_csv(live_run, history, live_dates(history)[0])
    shown = live_once(live_run, tmp_path / "dry", "--dry-run")
    assert "dry run:" in shown and "newest 2016-03-29" in shown
    assert not (tmp_path / "dry").exists()
    done = run(str(ROOT / "trade.py"), "--run", str(live_run), "--broker", "paper", "--replay",
               "--once")
    assert done.returncode == 2 and "--once" in done.stderr


def test_the_tape_keeps_what_was_traded_on(history, tmp_path):
    tape = MarketTape(tmp_path / "bars.parquet")
    first = history.loc[:"2016-03-29"]
    new, revised = tape.extend(first)
    assert len(new) == len(first) and revised == 0
    changed = history.loc[:"2016-03-31"].copy()
    changed.loc["2016-03-29", "close"] += 1.0  # the source revises a bar already traded on
    new, revised = tape.extend(changed)
    assert list(new) == [pd.Timestamp("2016-03-30"), pd.Timestamp("2016-03-31")]
    assert revised == 1
    reread = MarketTape(tmp_path / "bars.parquet").frame()
    assert reread.loc["2016-03-29", "close"] == first.loc["2016-03-29", "close"]
    assert len(reread) == len(first) + 2


@pytest.fixture
def alpaca_server():
    pytest.importorskip("alpaca", reason="the optional extra 'alpaca' is not installed")
    from tests.fake_alpaca import FakeAlpaca, serve

    state = FakeAlpaca()
    state.any_contract = True
    with serve(state):
        yield state


def alpaca_env(server) -> dict:
    from execution.brokers.alpaca import BASE_URL_ENV, KEY_ID_ENV, SECRET_KEY_ENV
    from tests.fake_alpaca import KEY_ID, SECRET

    return {**os.environ, KEY_ID_ENV: KEY_ID, SECRET_KEY_ENV: SECRET, BASE_URL_ENV: server.url}


def open_orders_at(server) -> list[dict]:
    return [o for o in server.orders.values() if o["status"] == "accepted"]


def test_live_through_alpaca_fills_as_the_simulator_and_reconciles(live_run, history,
                                                                  alpaca_server, tmp_path,
                                                                  in_process):
    """The first cycle (which sends the order) as a real process, the next two in-process;
    the secret key is in neither's output nor log."""
    dates = live_dates(history)[:3]
    out = tmp_path / "alpaca"
    outputs = []
    for k, bar in enumerate(dates):
        cut_csv(live_run, history, bar)
        asked_before = len(alpaca_server.requests)
        env = alpaca_env(alpaca_server)
        done = (trade_live(live_run, out, broker="alpaca", env=env) if k == 0 else
                in_process.trade(*live_args(live_run, out, broker="alpaca"), env=env))
        assert done.returncode == 0, done.stderr[-3000:]
        assert alpaca_env(alpaca_server)["APCA_API_SECRET_KEY"] not in done.stdout + done.stderr
        outputs.append(done.stdout)
        for order in open_orders_at(alpaca_server):  # the exchange fills what was sent
            alpaca_server.fill(order["id"], int(order["qty"]), price_per_share=0.85)
    assert all("0 reconciliation difference(s)" in line for line in outputs[1:])
    # the last cycle replays bar 0's filled order without asking Alpaca about it again
    assert not [p for _, p in alpaca_server.requests[asked_before:] if "by_client_order_id" in p]
    equity, trades = replayed_ledgers(live_run, dates[0], dates[-1])
    assert (out / "trades.csv").read_text() == trades  # the simulator traded what Alpaca filled
    assert (out / "equity.csv").read_text() == equity
    rows = journal_rows(out / "journal.sqlite")
    opened = [r for r in rows["orders"] if r[3] == "open"]
    assert len(opened) == 1 and opened[0][7] == "filled"
    fills = [r for r in rows["fills"] if r[1] == opened[0][0]]
    assert len(fills) == 4 and all(r[6] == 0.85 for r in fills)  # Alpaca's fills, legs of 4
    assert {r[2] for r in rows["equity"]} == {100000.0}  # the account's equity, not the model's
    sent = [p for m, p in alpaca_server.requests if m == "POST"]
    assert len(sent) == 1  # replays ask for the order by its id, never send it again


def test_live_through_alpaca_rejections_and_unfilled_orders_are_holds(
        live_run, history, alpaca_server, tmp_path, live_once, monkeypatch):
    dates = live_dates(history)[:4]
    out = tmp_path / "alpaca"
    for key, value in alpaca_env(alpaca_server).items():
        monkeypatch.setenv(key, value)
    alpaca_server.reject_next = True  # bar 0: the broker rejects the condor
    outputs = []
    for k, bar in enumerate(dates):
        cut_csv(live_run, history, bar)
        outputs.append(live_once(live_run, out, broker="alpaca"))
        working = open_orders_at(alpaca_server)
        if k == 1:  # bar 1's condor: one unit of it fills, the rest never does
            alpaca_server.fill(working[0]["id"], 1)
        elif k == 2:  # bar 2's condor fills
            alpaca_server.fill(working[0]["id"], int(working[0]["qty"]))
    rows = journal_rows(out / "journal.sqlite")
    decisions = {r[0]: r[3] for r in rows["decisions"]}
    statuses = {r[1]: r[7] for r in rows["orders"]}
    assert decisions[0] == "hold" and statuses[0] == "rejected"
    assert statuses[1] == "canceled" and statuses[2] == "filled"
    assert "3 reconciliation difference(s)" not in outputs[2]
    # the unit filled at bar 1 is Alpaca's, not the simulator's: reported on every later bar
    assert "4 reconciliation difference(s)" in outputs[2] and "4 reconciliation" in outputs[3]
    trades = pd.read_csv(out / "trades.csv")
    assert list(trades["open_date"]) == [str(dates[2].date())]


@pytest.mark.slow
def test_twenty_sigkills_of_the_live_loop_end_with_the_uninterrupted_journal(live_run, history,
                                                                            tmp_path):
    """Each bar is appended, then the live executor is killed at random moments of its cycle
    (tape, forecasts, replay, between the broker and the journal) before it may finish."""
    import json
    import random

    dates = live_dates(history)
    reference, out = tmp_path / "reference", tmp_path / "crashed"
    slow = {**os.environ, "SPYRL_TRADE_BAR_DELAY_S": "0.5"}
    rng = random.Random(11)
    killed = adopted = 0
    for bar in dates:
        cut_csv(live_run, history, bar)
        began = time.monotonic()
        assert trade_live(live_run, reference).returncode == 0
        cycle_s = time.monotonic() - began
        for _ in range(3):  # killed at a random moment of the cycle's second half, up to 3 times
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "trade.py"), "--run", str(live_run), "--broker",
                 "paper", "--live", "--once", "--publication-delay-minutes", "0",
                 "--no-progress", "--policy", POLICY, "--out", str(out)],
                cwd=ROOT, env=slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=rng.uniform(0.5, 1.0) * cycle_s)
                break
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed += 1
        done = trade_live(live_run, out)
        assert done.returncode == 0, done.stderr[-3000:]
        adopted += "missing from the journal" in done.stdout + done.stderr
    print(json.dumps({"killed": killed, "restarts_adopting_an_order": adopted}))
    assert killed >= 20
    assert journal_rows(out / "journal.sqlite") == journal_rows(reference / "journal.sqlite")
    assert (out / "trades.csv").read_text() == (reference / "trades.csv").read_text()
    assert (out / "equity.csv").read_text() == (reference / "equity.csv").read_text()


def test_the_shipped_live_config_is_valid_and_live():
    cfg = load_config(ROOT / "configs" / "spy_live.yaml")
    assert cfg.data.source == "yfinance" and cfg.env.underlying_price_scale == 1.0
    assert cfg.forecast.conformal.select_end < cfg.segments.test.start


@pytest.mark.slow  # fast cover: test_trade's test_kill_switch_file_cancels_and_stops and
# test_execution's test_kill_switch_by_file_and_by_sigterm; `make test-slow` (and CI) run it
def test_the_kill_switch_stops_the_waiting_loop_and_cancels_working_orders(live_run, history,
                                                                          tmp_path):
    dates = live_dates(history)
    out = tmp_path / "loop"
    cut_csv(live_run, history, dates[0])  # the condor opened on this bar is working
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "trade.py"), "--run", str(live_run), "--broker", "paper",
         "--live", "--poll-seconds", "1", "--publication-delay-minutes", "0", "--no-progress",
         "--policy", POLICY, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "journal.sqlite").exists() and journal_rows(out / "journal.sqlite")[
                    "orders"]:
                break
            time.sleep(0.5)
        (out / "KILL").touch()
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stdout[-3000:]
    assert "stopping: kill switch file" in stdout and "waiting" in stdout
    rows = journal_rows(out / "journal.sqlite")
    assert [r[7] for r in rows["orders"]] == ["canceled"]
    assert [r[3] for r in rows["refusals"]] == ["kill_switch"]
    (out / "KILL").unlink()  # a restart on the next bar: the cancelled condor was never filled
    cut_csv(live_run, history, dates[1])
    done = trade_live(live_run, out)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = journal_rows(out / "journal.sqlite")
    assert not [r for r in rows["fills"] if r[1] == rows["orders"][0][0]]


def test_an_order_sent_before_a_crash_on_a_bar_then_missed_is_cancelled(
        live_run, history, live_once, monkeypatch, tmp_path):
    import sqlite3

    from execution.executor import ReplayExecutor

    dates = live_dates(history)
    out = tmp_path / "crash"
    cut_csv(live_run, history, dates[0])

    def crash(*args, **kwargs):
        raise RuntimeError("killed between the broker and the journal")

    with monkeypatch.context() as patch:
        patch.setattr(ReplayExecutor, "_journal_decision", crash)
        with pytest.raises(RuntimeError, match="killed"):
            live_once(live_run, out)
    book = sqlite3.connect(out / "paper_broker.sqlite")
    assert [r[0] for r in book.execute("SELECT status FROM book")] == ["submitted"]
    cut_csv(live_run, history, dates[2])  # the executor comes back two bars later
    live_once(live_run, out)
    assert [r[0] for r in book.execute("SELECT status FROM book")][0] == "canceled"
    book.close()
    rows = journal_rows(out / "journal.sqlite")
    assert [r[3] for r in rows["decisions"]][:2] == ["hold", "hold"]
    assert not rows["fills"]


def test_the_loop_reports_an_unreachable_source_and_tries_again(history, tmp_path):
    from execution.brokers.base import BrokerError
    from execution.journal import Journal
    from execution.live import LiveDataError, LiveSession

    faults = iter([None, LiveDataError("source down"), BrokerError("broker down"), None])
    lines, ran = [], []

    def load():
        fault = next(faults, None)
        if fault is not None:
            raise fault
        return history.loc[:"2016-03-29"]

    class Forecasts:
        def panel(self, tape, start, features):
            return pd.DataFrame()

    class Outcome:
        stopped = None

    def run_executor(tape, features, forecasts, start, missed):
        ran.append(tape.index[-1])
        return Outcome()

    journal = Journal(tmp_path / "journal.sqlite")
    stops = iter([None] * 4 + ["kill switch file exists"])
    session = LiveSession(tmp_path / "live", load, Forecasts(), run_executor, journal, 0.0,
                          progress=lines.append)
    session.run(False, 1.0, lambda: next(stops, "kill switch file exists"), sleep=lambda s: None)
    journal.close()
    assert any("cycle failed (source down)" in line for line in lines)
    assert any("cycle failed (broker down)" in line for line in lines)
    # every cycle that reached the bars ran the executor (this stub journals nothing), the last
    # one for the kill switch
    assert len(ran) == 4 and set(ran) == {pd.Timestamp("2016-03-29")}
    faults = iter([LiveDataError("source down")])
    other = Journal(tmp_path / "j2.sqlite")
    with pytest.raises(LiveDataError):  # --once: the failure is the command's (exit 2)
        LiveSession(tmp_path / "other", load, Forecasts(), run_executor, other,
                    0.0).run(True, 1.0, lambda: None)
    other.close()
