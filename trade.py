"""Run a trained agent or a baseline bar by bar through a broker, with a risk manager and a journal.

    python trade.py --run runs/NAME [--policy ppo|BASELINE] --broker paper|alpaca
                    [--replay --segment test | --live] [--journal PATH] [--dry-run]
                    [--out DIR] [--limits FILE.yaml] [--model best|final] [--live-trading]
                    [--once] [--poll-seconds S] [--publication-delay-minutes M]

``--replay`` runs the segment's bars in order with the run's data, its stored out-of-sample
forecast panel (``forecasts/panel.parquet``, the walk-forward's output) and its config; the paper
broker fills through the environment's simulator, so with no risk limit binding the outputs equal
``evaluate.py``'s ledgers for that policy. Writes ``RUN/trade/<policy>_<mode>/`` (or ``--out``):
``journal.sqlite`` (or ``--journal``), ``paper_broker.sqlite`` (the paper broker's order book),
``trades.csv`` and ``equity.csv``. A second start on the same folder continues from the
journal's next bar. The kill switch is the file ``KILL`` in that folder (``--limits`` can rename
it) or SIGTERM. ``--dry-run`` checks every input and prints the first decision, writing nothing.

``--live`` trades each new bar of a run trained on a live source (yfinance or a growing CSV) at
its close: the source is reloaded, closed bars go on a tape, the run's forecasters forecast them
(refitted on the walk-forward's schedule), the policy decides on the newest bar and its orders go
to the paper simulator and, with ``--broker alpaca``, to Alpaca (``execution.live``,
``execution.brokers.mirrored``). ``--once`` trades what has closed and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

import yaml

from common.cli import run_cli
from common.errors import UserInputError
from common.runfolder import RunLock

log = logging.getLogger("trade")
BAR_DELAY_ENV = "SPYRL_TRADE_BAR_DELAY_S"  # tests: pause between broker and journal per bar
DEFAULT_POLL_S = 60.0


class TradeInputError(UserInputError):
    """A bad flag or file given to trade.py."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by train.py")
    parser.add_argument("--policy", default="ppo", help="ppo or a baseline's name")
    parser.add_argument("--broker", choices=("paper", "alpaca"), required=True)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--replay", action="store_true", help="replay a segment of the run")
    mode.add_argument("--live", action="store_true",
                      help="trade each new bar of the run's data source (yfinance or CSV)")
    parser.add_argument("--segment", choices=("train", "valid", "test"),
                        help="segment to replay (default test)")
    parser.add_argument("--journal", help="journal file (default OUT/journal.sqlite)")
    parser.add_argument("--out", help="output folder (default RUN/trade/<policy>_<mode>)")
    parser.add_argument("--limits", help="YAML file of the risk manager's limits")
    parser.add_argument("--model", choices=("best", "final"), default="best")
    parser.add_argument("--allow-modified", action="store_true",
                        help="load a model file whose SHA-256 differs from provenance.json")
    parser.add_argument("--occ-root", default="SPY", help="OCC root of the option symbols")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the inputs and show the first decision; write nothing")
    parser.add_argument("--live-trading", action="store_true",
                        help="alpaca: trade the live (real money) endpoint, not paper")
    parser.add_argument("--once", action="store_true",
                        help="--live: trade the bars closed by now, then exit (for cron)")
    parser.add_argument("--poll-seconds", type=float,
                        help="--live: how often to look for the next bar once it is due "
                             f"(default {DEFAULT_POLL_S:g})")
    parser.add_argument("--publication-delay-minutes", type=float, default=20.0,
                        help="--live: wait this long after a bar's close before using it "
                             "(^VIX closes 15 minutes after SPY)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.segment and not args.replay:
        parser.error("--segment is read only with --replay")
    if args.live_trading and args.broker != "alpaca":
        parser.error("--live-trading is an alpaca flag")
    if (args.once or args.poll_seconds is not None) and not args.live:
        parser.error("--once and --poll-seconds are --live flags")
    args.poll_seconds = DEFAULT_POLL_S if args.poll_seconds is None else args.poll_seconds
    if args.poll_seconds <= 0 or args.publication_delay_minutes < 0:
        parser.error("--poll-seconds must be > 0 and --publication-delay-minutes >= 0")
    if args.replay and args.broker != "paper":
        parser.error("--replay runs through --broker paper (a real broker cannot fill past bars)")
    return args


def load_limits(path: str | None):
    from execution.risk import RiskConfig

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
    from agents import make_baseline
    from agents.baselines import BASELINES
    from agents.eval_run import check_model_file
    from evaluate import _load_policy

    if name == "ppo":
        best = seed_dir / "best_model.zip"
        check_model_file(best if model == "best" and best.exists()
                         else seed_dir / "model.zip", cfg.agent.algo)
        return _load_policy(seed_dir, cfg, model, env, allow_modified)[0], 0
    if name not in BASELINES:
        raise TradeInputError(f"--policy {name!r}: expected ppo or one of {sorted(BASELINES)}")
    return make_baseline(name, env.observation_names, cfg.baselines, seed=cfg.seed), cfg.seed


@contextlib.contextmanager
def open_journal(args, argv, run: Path, out: Path, journal_path: Path, limits, mode: str,
                 segment: str):
    """The output folder locked and its journal opened for this run, policy, mode and broker."""
    from execution.journal import Journal

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
    import data
    from execution.live import LiveDataError

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
    from common.io import write_text_atomic
    from envs import make_env
    from envs.factory import EnvInputs
    from execution.brokers.mirrored import MirroredBroker
    from execution.brokers.paper import PaperBroker
    from execution.executor import ReplayExecutor
    from execution.live import LiveInputError
    from forecasters.panel import ForecastPanel

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from agents import eval_run as steps
    from common.io import write_text_atomic
    from config import load_config
    from envs import load_env_inputs, make_env
    from execution.brokers.paper import PaperBroker
    from execution.executor import ExecutorSettings, ReplayExecutor
    from execution.journal import check_journal_file
    from execution.risk import KillSwitch

    run = Path(args.run)
    seed_dirs = steps.seed_dirs(run)
    if len(seed_dirs) > 1 and args.policy == "ppo":
        raise TradeInputError(f"--run {run}: {len(seed_dirs)} seeds; pass --run {seed_dirs[0]} "
                              f"(one seed folder) to trade one agent")
    seed_dir = seed_dirs[0]
    cfg = load_config(seed_dir / "config.yaml")
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
        return main_live(args, argv, cfg, run, seed_dir, out, journal_path, limits, bar_delay_s)
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


def main_live(args, argv, cfg, run: Path, seed_dir: Path, out: Path, journal_path: Path, limits,
              bar_delay_s: float) -> int:
    """``--live``: cycles of fetch, forecast and trade until the kill switch (or ``--once``)."""
    from execution.brokers.base import BrokerError
    from execution.executor import ExecutorSettings
    from execution.live import ForecastTape, LiveSession, closed_bars, now_ns
    from execution.risk import KillSwitch
    from forecasters.live import LiveForecaster

    real = None
    if args.broker == "alpaca":
        from execution.brokers.alpaca import AlpacaBroker

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


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="trade.py"))
