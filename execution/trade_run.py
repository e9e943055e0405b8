"""``trade.py``'s run: a trained agent or a baseline bar by bar through a broker, with the risk
manager and the journal (``--replay`` in :func:`run`, ``--live`` in :func:`run_live`).

``trade.py`` parses the flags, finds the seed folder and resolves its ``config.yaml`` (the CLI
layer: ``execution`` never imports ``config``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

import data
from agents import eval_run as steps
from agents.baselines import BASELINES, make_baseline
from agents.checkpoint import load_policy
from agents.eval_run import check_model_file
from common.errors import UserInputError
from common.io import write_text_atomic
from common.runfolder import RunLock
from envs import load_env_inputs, make_env
from envs.factory import EnvInputs
from execution.brokers.base import BrokerError
from execution.brokers.mirrored import MirroredBroker
from execution.brokers.paper import PaperBroker
from execution.executor import ExecutorSettings, ReplayExecutor
from execution.journal import Journal, check_journal_file
from execution.live import (
    ForecastTape,
    LiveDataError,
    LiveInputError,
    LiveSession,
    closed_bars,
    now_ns,
)
from execution.risk import KillSwitch, RiskConfig
from forecasters.live import LiveForecaster
from forecasters.panel import ForecastPanel

if TYPE_CHECKING:
    from config import ExperimentConfig

__all__ = ["BAR_DELAY_ENV", "TradeInputError", "build_policy", "live_executor", "live_loader",
           "load_limits", "open_journal", "run", "run_live", "seed_dir_of"]

log = logging.getLogger("trade")
BAR_DELAY_ENV = "SPYRL_TRADE_BAR_DELAY_S"  # tests: pause between broker and journal per bar


class TradeInputError(UserInputError):
    """A bad flag or file given to trade.py."""


def load_limits(path: str | None) -> RiskConfig:
    """The risk manager's limits of the ``--limits`` YAML (the defaults when None)."""
    if path is None:
        return RiskConfig()
    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TradeInputError(f"--limits {file}: not valid YAML ({exc})") from None
    if not isinstance(document, dict):
        raise TradeInputError(f"--limits {file}: expected a mapping of limit: value")
    try:
        return RiskConfig(**document)
    except ValueError as exc:
        first = getattr(exc, "errors", lambda: [{}])()[0]
        key = ".".join(str(p) for p in first.get("loc", ())) or "?"
        raise TradeInputError(f"--limits {file}: key '{key}': {first.get('msg', exc)}") from None


def build_policy(name: str, seed_dir: Path, cfg, env, model: str, allow_modified: bool):
    """The run's PPO agent or a baseline, and the seed evaluate.py runs it with."""
    if name == "ppo":
        best = seed_dir / "best_model.zip"
        check_model_file(best if model == "best" and best.exists()
                         else seed_dir / "model.zip", cfg.agent.algo)
        return load_policy(seed_dir, cfg, model, env, allow_modified)[0], 0
    if name not in BASELINES:
        raise TradeInputError(f"--policy {name!r}: expected ppo or one of {sorted(BASELINES)}")
    return make_baseline(name, env.observation_names, cfg.baselines, seed=cfg.seed), cfg.seed


@contextlib.contextmanager
def open_journal(args, argv, run: Path, out: Path, journal_path: Path, limits, mode: str,
                 segment: str):
    """The output folder locked and its journal opened for this run, policy, mode and broker."""
    with RunLock(out, ["trade.py", *(argv if argv is not None else sys.argv[1:])]):
        journal = Journal(journal_path)
        try:
            journal.open_for({"run": run.resolve().name, "policy": args.policy, "mode": mode,
                              "broker": args.broker, "segment": segment}, limits.model_dump())
            yield journal
        finally:
            journal.close()


def live_loader(cfg):
    """A function that reloads the run's data source for live bars (no end date)."""
    if cfg.data.source == "embedded":
        raise TradeInputError("--live: the run's data.source is 'embedded' (history that ends "
                              "in 2018); live trading needs a run trained on data.source "
                              "yfinance or csv (a file your recorder appends bars to)")
    options = {**cfg.data.load_options(), "end": None}
    if cfg.data.source == "yfinance":
        options["refresh"] = True

    def load():
        if cfg.data.source == "yfinance":
            logging.getLogger("yfinance").setLevel(logging.CRITICAL)
        try:
            return data.load_market(cfg.data.source, **options)
        except (data.MarketDataError, OSError) as exc:
            reason = str(exc).split(" and nothing is cached")[0]
            raise LiveDataError(f"--live: no live bars of {cfg.data.symbol} from "
                                f"data.source {cfg.data.source} ({reason})") from None

    return load


def live_executor(cfg, args, seed_dir: Path, out: Path, journal, limits, kill, settings_for,
                  real=None):
    """``run_executor(tape, features, forecasts, live_start, missed)`` for :class:`LiveSession`;
    orders go
    to the paper simulator, and to ``real`` (a broker mirrored by the simulator) when given."""
    def run_executor(tape, features, forecasts, live_start, missed):
        inputs = EnvInputs(tape, features, ForecastPanel.from_long(forecasts, "ensemble"),
                           forecasts)
        env = make_env(cfg, "test", mode="eval", inputs=inputs, info_level="full",
                       start=live_start, end=tape.index[-1], last_bar_tradable=True)
        if env.panel.dates[0] != live_start:  # the journal's bar numbers start there
            raise LiveInputError(f"the first live bar {live_start} has no forecast, ATM "
                                 f"volatility or feature; the environment starts at "
                                 f"{env.panel.dates[0]} (use a new --out)")
        policy, seed = build_policy(args.policy, seed_dir, cfg, env, args.model,
                                    args.allow_modified)
        paper = PaperBroker(env, out / "paper_broker.sqlite", args.occ_root)
        broker = paper if real is None else MirroredBroker(paper, real)
        try:
            outcome = ReplayExecutor(broker, policy, journal, limits, kill,
                                     settings_for(seed)).run(missed)
        finally:
            paper.close()
        result = outcome.result
        write_text_atomic(result.equity.to_csv(), out / "equity.csv")
        write_text_atomic(result.trades.to_csv(index=False), out / "trades.csv")
        return outcome

    return run_executor


def seed_dir_of(run: Path, policy: str) -> Path:
    """The one seed folder of ``run`` that ``--policy`` trades (a run of several seeds is
    refused for ``ppo``: pass one seed folder)."""
    seed_dirs = steps.seed_dirs(run)
    if len(seed_dirs) > 1 and policy == "ppo":
        raise TradeInputError(f"--run {run}: {len(seed_dirs)} seeds; pass --run {seed_dirs[0]} "
                              f"(one seed folder) to trade one agent")
    return seed_dirs[0]


def run(args: argparse.Namespace, argv: list[str] | None, run: Path, seed_dir: Path,
        cfg: ExperimentConfig) -> int:
    """Everything ``trade.py`` does once its flags are parsed (``args``; ``argv`` is recorded by
    the folder's lock, None: ``sys.argv``), the run's seed folder found (:func:`seed_dir_of`)
    and its ``config.yaml`` loaded (``cfg``): ``--replay`` here, ``--live`` in :func:`run_live`."""
    limits = load_limits(args.limits)
    mode = "replay" if args.replay else "live"
    segment = args.segment or "test"
    delay = os.environ.get(BAR_DELAY_ENV)
    try:
        bar_delay_s = float(delay) if delay else 0.0
    except ValueError:
        raise TradeInputError(f"${BAR_DELAY_ENV}={delay!r}: expected seconds") from None
    out = Path(args.out) if args.out else run / "trade" / f"{args.policy}_{mode}"
    journal_path = Path(args.journal) if args.journal else out / "journal.sqlite"
    check_journal_file(journal_path)  # a folder, not SQLite, damaged or read-only: one line
    if args.live:
        return run_live(args, argv, cfg, run, seed_dir, out, journal_path, limits, bar_delay_s)
    inputs = load_env_inputs(cfg, panel_long=steps.read_panel(seed_dir))
    env = make_env(cfg, segment, mode="eval", inputs=inputs)
    policy, seed = build_policy(args.policy, seed_dir, cfg, env, args.model, args.allow_modified)
    if args.dry_run:
        obs, info = env.reset(seed=seed)
        policy.reset(seed)
        action = int(policy.act(obs, info, env.action_masks()))
        print(f"dry run: {len(env.panel)} bars of {segment} {env.panel.dates[0].date()}.."
              f"{env.panel.dates[-1].date()}; first decision {env.action_names[action]}; "
              f"would write {out} (journal {journal_path}); limits "
              f"{limits.model_dump(exclude_none=True)}")
        return 0

    with open_journal(args, argv, run, out, journal_path, limits, mode, segment) as journal:
        broker = PaperBroker(env, out / "paper_broker.sqlite", args.occ_root)
        kill = KillSwitch(out / limits.kill_switch_file)
        kill.install()
        settings = ExecutorSettings(run.resolve().name, args.policy, seed, bar_delay_s)
        outcome = ReplayExecutor(broker, policy, journal, limits, kill, settings).run()
        result = outcome.result
        write_text_atomic(result.equity.to_csv(), out / "equity.csv")
        write_text_atomic(result.trades.to_csv(index=False), out / "trades.csv")
    print(f"{args.policy} {mode} {segment}: {outcome.bars_journalled} bar(s) journalled, "
          f"{outcome.bars_replayed} replayed from the journal, {len(outcome.differences)} "
          f"reconciliation difference(s); final equity "
          f"{result.equity['equity_usd'].iloc[-1]:,.2f} USD; wrote {out}")
    if outcome.stopped:
        print(f"stopped early: {outcome.stopped}")
    return 0


def run_live(args, argv, cfg, run: Path, seed_dir: Path, out: Path, journal_path: Path, limits,
              bar_delay_s: float) -> int:
    """``--live``: cycles of fetch, forecast and trade until the kill switch (or ``--once``)."""
    real = None
    if args.broker == "alpaca":
        from execution.brokers.alpaca import AlpacaBroker  # alpaca-py: only for --broker alpaca

        automatic = [name for name in ("profit_target_fraction", "stop_loss_multiple",
                                       "close_at_dte_days") if getattr(cfg.env, name) is not None]
        if automatic:
            raise TradeInputError(
                f"--broker alpaca --live: the run's env.{automatic[0]} closes positions inside "
                f"the simulator, with no order to the broker; set the risk manager's limits "
                f"instead (--limits: take_profit_max_profit_fraction, stop_loss_credit_multiple, "
                f"exit_at_dte_days), which send closing orders")

        real = AlpacaBroker.from_environment(live_trading=args.live_trading)
    load = live_loader(cfg)
    delay_s = args.publication_delay_minutes * 60.0
    if args.dry_run:
        closed = closed_bars(load(), now_ns(), delay_s)
        newest = closed.index[-1] if len(closed) else None
        print(f"dry run: {len(closed)} closed bar(s) of {cfg.data.symbol} from "
              f"{cfg.data.source}, newest {newest}; would trade {args.policy} live through "
              f"{args.broker} and write {out} (journal {journal_path}); limits "
              f"{limits.model_dump(exclude_none=True)}")
        return 0
    with open_journal(args, argv, run, out, journal_path, limits, "live", "live") as journal:
        kill = KillSwitch(out / limits.kill_switch_file)
        kill.install()
        name = run.resolve().name

        def settings_for(seed: int) -> ExecutorSettings:
            return ExecutorSettings(name, args.policy, seed, bar_delay_s)

        forecaster = ForecastTape(out / "live" / "forecasts.parquet",
                                  LiveForecaster(cfg.forecast, out / "live" / "forecaster",
                                                 progress=not args.no_progress))
        session = LiveSession(out / "live", load, forecaster,
                              live_executor(cfg, args, seed_dir, out, journal, limits, kill,
                                            settings_for, real),
                              journal, delay_s)
        try:
            outcome = session.run(args.once, args.poll_seconds, kill.reason)
        except BrokerError as exc:
            print(f"trade.py: broker error: {exc}; nothing of this cycle was journalled, run "
                  f"the command again", file=sys.stderr)
            return 1
    result = outcome.result
    if result is None:
        print(f"{args.policy} live: nothing new to trade (newest closed bar {outcome.newest}); "
              f"journal {journal_path}")
        return 0
    print(f"{args.policy} live: newest bar {outcome.newest}; {result.bars_journalled} bar(s) "
          f"journalled, {result.bars_replayed} replayed from the journal, "
          f"{len(result.differences)} reconciliation difference(s); equity "
          f"{result.result.equity['equity_usd'].iloc[-1]:,.2f} USD; wrote {out}")
    if result.stopped:
        print(f"stopped: {result.stopped}")
    return 0
