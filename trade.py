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
(This script parses the flags and resolves the run's config; ``execution.trade_run`` runs it.)
"""

from __future__ import annotations

import argparse
import logging

from common.cli import run_cli

DEFAULT_POLL_S = 60.0


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # the CLI layer loads config, pandas and torch/SB3 (seconds): imported once --help is past
    from cli.trade import run

    return run(args, argv)


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="trade.py"))
