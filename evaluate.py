"""Evaluate a trained run against the baselines on a held-out segment or date range.

    python evaluate.py --run runs/NAME [--segment test] [--model best|final]
                       [--set key=value ...] [--baselines NAME,...] [--start DATE --end DATE]
                       [--out DIR] [--no-plots]

runs/NAME/ -> deterministic episodes of PPO and the baselines through the same environment ->
runs/NAME/eval/ (or --out): metrics.json, audit.json (agents.audit), equity and trade ledgers
(CSV), plots (PNG), report.md.
A run made with --seeds (runs/NAME/seed_*/) is evaluated seed by seed and summarised by the
median and range over seeds. ``--set`` overrides the run's config (costs, baselines'
parameters); ``--start/--end`` score a window after the train segment instead of a segment.
The output folder is written in full to a temporary folder and only then moved into place.
(This script parses the flags and resolves the run's config; ``agents.evaluate_run`` runs it.)
"""

from __future__ import annotations

import argparse
import logging

from common.cli import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by train.py")
    parser.add_argument("--segment", choices=("train", "valid", "test"),
                        help="date segment (default: the config's eval.segment, 'test')")
    parser.add_argument("--model", choices=("best", "final"), default="best",
                        help="best_model.zip (chosen on the validation segment) or model.zip")
    parser.add_argument("--allow-modified", action="store_true",
                        help="load a model file whose SHA-256 differs from provenance.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override the run's config, e.g. "
                             "options.costs.commission_per_contract_usd=1.0")
    parser.add_argument("--baselines", metavar="NAME,...",
                        help="comma-separated baselines (default: the config's baselines.names)")
    parser.add_argument("--start", help="first date of a custom window (with --end)")
    parser.add_argument("--end", help="last date of a custom window (with --start)")
    parser.add_argument("--out", help="output folder (default RUN/eval)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    parser.add_argument("--quotes", choices=("model", "chain"), default="model",
                        help="chain: every policy on the sessions of --chain, with real quotes "
                             "and with model quotes side by side (writes RUN/eval_chain/)")
    parser.add_argument("--chain", nargs="+", metavar="FILE",
                        help="real end-of-day option chain file(s) for --quotes chain")
    parser.add_argument("--format", dest="chain_format",
                        help="the chain files' layout (default: detected)")
    args = parser.parse_args(argv)
    if args.segment and (args.start or args.end):
        parser.error("--segment and --start/--end are alternatives; give one")
    if args.quotes == "chain" and not args.chain:
        parser.error("--quotes chain needs --chain FILE")
    if args.chain and args.quotes != "chain":
        parser.error("--chain is read only with --quotes chain")
    if args.quotes == "chain" and (args.segment or args.start or args.end):
        parser.error("--quotes chain evaluates on the chain's sessions; drop --segment/--start/--end")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # the CLI layer loads config, pandas and torch/SB3 (seconds): imported once --help is past
    from cli.evaluate import run

    return run(args, argv)


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="evaluate.py"))
