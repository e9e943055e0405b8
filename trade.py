"""Run a trained agent or a baseline bar by bar through a broker, with a risk manager and a journal.

    python trade.py --run runs/NAME [--policy ppo|BASELINE] --broker paper|alpaca
                    [--replay --segment test | --live] [--journal PATH] [--dry-run]
                    [--out DIR] [--limits FILE.yaml] [--model best|final] [--live-trading]

``--replay`` runs the segment's bars in order with the run's data, its stored out-of-sample
forecast panel (``forecasts/panel.parquet``, the walk-forward's output) and its config; the paper
broker fills through the environment's simulator, so with no risk limit binding the outputs equal
``evaluate.py``'s ledgers for that policy. Writes ``RUN/trade/<policy>_<mode>/`` (or ``--out``):
``journal.sqlite`` (or ``--journal``), ``paper_broker.sqlite`` (the paper broker's order book),
``trades.csv`` and ``equity.csv``. A second start on the same folder continues from the
journal's next bar. The kill switch is the file ``KILL`` in that folder (``--limits`` can rename
it) or SIGTERM. ``--dry-run`` checks every input and prints the first decision, writing nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

import yaml

from common.cli import run_cli
from common.errors import UserInputError
from common.runfolder import RunLock

log = logging.getLogger("trade")
BAR_DELAY_ENV = "SPYRL_TRADE_BAR_DELAY_S"  # tests: pause between broker and journal per bar
LIVE_LOOKBACK_DAYS = 10


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
    mode.add_argument("--live", action="store_true", help="trade live bars (yfinance data)")
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
    args = parser.parse_args(argv)
    if args.segment and not args.replay:
        parser.error("--segment is read only with --replay")
    if args.live_trading and args.broker != "alpaca":
        parser.error("--live-trading is an alpaca flag")
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


def check_live(cfg) -> None:
    """Live mode needs today's bars; here that means yfinance over the network."""
    import datetime as dt
    import tempfile

    from data.errors import MarketDataError
    from data.yfinance_source import load_yfinance

    start = (dt.date.today() - dt.timedelta(days=LIVE_LOOKBACK_DAYS)).isoformat()
    import yfinance  # noqa: F401  (imported first: its import adds a warnings filter)

    logging.getLogger("yfinance").setLevel(logging.CRITICAL)  # its own lines would clutter
    with tempfile.TemporaryDirectory() as cache, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load_yfinance(cfg.data.symbol, cfg.data.interval, start=start, cache_dir=cache,
                          with_vix=False, refresh=True)
        except MarketDataError as exc:
            reason = str(exc).split(" and nothing is cached")[0]
            raise TradeInputError(f"--live: no live bars of {cfg.data.symbol} ({reason}); "
                                  f"live mode needs network access to yfinance") from None
    raise TradeInputError("--live: market data reached, but the live loop (refitting the "
                          "forecasters on their schedule, waiting for each bar's close) is not "
                          "built yet; use --replay --broker paper")


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
    from execution.journal import Journal
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
    if args.broker == "alpaca":  # keys from the environment, before anything else
        from execution.brokers.alpaca import AlpacaBroker

        AlpacaBroker.from_environment(live_trading=args.live_trading)
    if args.live:
        check_live(cfg)
    segment = args.segment or "test"
    delay = os.environ.get(BAR_DELAY_ENV)
    try:
        bar_delay_s = float(delay) if delay else 0.0
    except ValueError:
        raise TradeInputError(f"${BAR_DELAY_ENV}={delay!r}: expected seconds") from None
    inputs = load_env_inputs(cfg, panel_long=steps.read_panel(seed_dir))
    env = make_env(cfg, segment, mode="eval", inputs=inputs)
    policy, seed = build_policy(args.policy, seed_dir, cfg, env, args.model, args.allow_modified)
    out = Path(args.out) if args.out else run / "trade" / f"{args.policy}_{mode}"
    journal_path = Path(args.journal) if args.journal else out / "journal.sqlite"
    if args.dry_run:
        obs, info = env.reset(seed=seed)
        policy.reset(seed)
        action = int(policy.act(obs, info, env.action_masks()))
        print(f"dry run: {len(env.panel)} bars of {segment} {env.panel.dates[0].date()}.."
              f"{env.panel.dates[-1].date()}; first decision {env.action_names[action]}; "
              f"would write {out} (journal {journal_path}); limits "
              f"{limits.model_dump(exclude_none=True)}")
        return 0

    with RunLock(out, ["trade.py", *(argv if argv is not None else sys.argv[1:])]):
        journal = Journal(journal_path)
        try:
            journal.open_for({"run": run.resolve().name, "policy": args.policy, "mode": mode,
                              "broker": args.broker, "segment": segment},
                             limits.model_dump())
            broker = PaperBroker(env, out / "paper_broker.sqlite", args.occ_root)
            kill = KillSwitch(out / limits.kill_switch_file)
            kill.install()
            settings = ExecutorSettings(run.resolve().name, args.policy, seed, bar_delay_s)
            outcome = ReplayExecutor(broker, policy, journal, limits, kill, settings).run()
        finally:
            journal.close()
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


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="trade.py"))
