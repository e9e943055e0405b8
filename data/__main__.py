"""``python -m data``: print a summary of a market frame and chart it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from common.cli import run_cli
from data.market import SOURCES, load_market
from data.summary import plot_market, summarise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data", description=__doc__)
    parser.add_argument("--source", default="embedded", choices=SOURCES)
    parser.add_argument("--path", help="CSV file (source csv)")
    parser.add_argument("--date-format", help="strftime codes of the CSV's dates when their "
                        "order is ambiguous, e.g. %%d/%%m/%%Y")
    parser.add_argument("--symbol", default="SPY")
    parser.add_argument("--interval", default="1d")
    parser.add_argument("--start", help="first date (YYYY-MM-DD)")
    parser.add_argument("--end", help="last date (YYYY-MM-DD)")
    parser.add_argument("--out", default="runs/data_summary", help="folder for the chart")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = {"start": args.start, "end": args.end}
    if args.source == "csv":
        options.update(path=args.path, date_format=args.date_format)
    elif args.date_format:
        parser.error("--date-format applies to --source csv only")
    elif args.source == "yfinance":
        options.update(symbol=args.symbol, interval=args.interval)
    frame = load_market(args.source, **options)
    print(summarise(frame))
    chart = plot_market(frame, Path(args.out) / "market.png")
    print(f"chart:    {chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m data"))
