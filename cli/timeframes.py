"""``python -m forecasters --timeframes 5m 15m 1h 1d --csv BARS --out DIR``: the CLI layer of
:mod:`forecasters.timeframes` (it resolves the experiment YAML of ``--config``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from common.errors import UserInputError
from config import load_config
from data import load_market
from data.calendar import REGULAR_SESSION_MINUTES, bar_minutes
from forecasters.config import ForecastConfig
from forecasters.timeframes import (
    DEFAULT_FORECAST,
    TIMEFRAME_MINUTES,
    compare_timeframes,
    timeframe_minutes,
    timeframes_markdown,
)

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m forecasters --timeframes",
        description="Forecast the same hour horizons from bars of several timeframes built from "
                    "one intraday file; one table of error and coverage.")
    parser.add_argument("--timeframes", nargs="+", required=True,
                        help=f"timeframes to compare, among {list(TIMEFRAME_MINUTES)} (the finest "
                             "must be a multiple of the file's bar length)")
    parser.add_argument("--csv", help="intraday bars (date, open, high, low, close, volume[, iv]); "
                                      "default: the --config's data section")
    parser.add_argument("--bar-stamp", choices=["start", "end"],
                        help="whether the CSV's stamps mark bar starts (default) or ends")
    parser.add_argument("--horizons-hours", nargs="+", type=float, default=[12, 24, 48, 96],
                        help="horizons in hours (24 = one session ahead; default 12 24 48 96)")
    parser.add_argument("--out", required=True, help="folder for timeframes.csv and timeframes.md")
    parser.add_argument("--config", help="experiment YAML whose forecast section is used (members, "
                                         "levels, ...); default: two light members")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override of the --config, e.g. forecast.n_jobs=1")
    parser.add_argument("--first-forecast", help="date of the first forecast (default: after "
                                                 "40%% of the sessions)")
    parser.add_argument("--start", help="first forecast date scored (default: --first-forecast)")
    parser.add_argument("--end", help="last forecast date scored (default: the last resolved)")
    parser.add_argument("--refit-every-sessions", type=int, default=10,
                        help="refit the members every N sessions on every timeframe (default 10)")
    parser.add_argument("--origins", choices=["close", "all"], default="close",
                        help="score forecasts made at session closes only (default: the same "
                             "instants on every timeframe) or at every bar")
    parser.add_argument("--model", default="ensemble",
                        help="model shown in timeframes.md (default ensemble)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def _dates(parser, args) -> None:
    for flag in ("first_forecast", "start", "end"):
        value = getattr(args, flag)
        if value is None:
            continue
        try:
            pd.Timestamp(value)
        except ValueError:
            parser.error(f"--{flag.replace('_', '-')} {value!r} is not a date (YYYY-MM-DD)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _dates(parser, args)
    if args.refit_every_sessions < 1:
        parser.error("--refit-every-sessions must be at least 1")
    if any(h <= 0 for h in args.horizons_hours):
        parser.error("--horizons-hours must be > 0")
    if not args.csv and not args.config:
        parser.error("give --csv (intraday bars) or --config (its data section)")
    for name in args.timeframes:
        timeframe_minutes(name)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if args.config:
        experiment = load_config(args.config, args.overrides)
        forecast = experiment.forecast.resolved()
        data_config = experiment.data
    else:
        if args.overrides:
            parser.error("--set needs --config")
        forecast, data_config = ForecastConfig(**DEFAULT_FORECAST), None
    if args.csv:
        options = {"bar_stamp": args.bar_stamp} if args.bar_stamp else {}
        frame = load_market("csv", path=args.csv, **options)
    else:
        frame = load_market(data_config.source, **data_config.load_options())
    if bar_minutes(frame.index) is None:
        raise UserInputError(f"{args.csv or args.config}: the bars are daily; the timeframe "
                             "comparison needs intraday bars to build the others from")
    order = sorted(args.timeframes, key=lambda t: TIMEFRAME_MINUTES[t] or REGULAR_SESSION_MINUTES
                   * 10)
    table = compare_timeframes(frame, order, args.horizons_hours, forecast,
                               first_forecast=args.first_forecast, start=args.start, end=args.end,
                               refit_every_sessions=args.refit_every_sessions,
                               origins=args.origins, progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "timeframes.csv", index=False)
    origin_text = ("forecasts made at session closes" if args.origins == "close"
                   else "forecasts made at every bar")
    title = (f"{args.model}: error and coverage by timeframe and horizon ({origin_text}, "
             f"{frame.index[0].date()}..{frame.index[-1].date()}, {frame.attrs.get('path', '')})")
    markdown = timeframes_markdown(table, args.model, title)
    (out / "timeframes.md").write_text(markdown)
    print(markdown)
    print(f"written to {out}: timeframes.csv (every model), timeframes.md ({args.model})")
    return 0
