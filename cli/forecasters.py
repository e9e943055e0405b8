"""``python -m forecasters --config configs/quick.yaml --out DIR``: walk-forward, metrics, plots.

With ``--tune MEMBER`` it runs (or joins) the Optuna study of that member instead, scored on the
validation segment, and writes the best parameters to ``forecast.tune.best_params_path``.
With ``--timeframes`` it hands over to :mod:`cli.timeframes`.

The CLI layer of ``forecasters``: it resolves the experiment YAML (``forecasters/__main__.py``
calls :func:`main`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.timeframes import main as timeframes_main
from config import load_config
from data import load_market
from forecasters.config import TUNABLE
from forecasters.metrics import coverage_by_year_table, metrics_table, verdict_lines
from forecasters.report import run_report
from forecasters.tune import save_best_params, tune_member

__all__ = ["main"]


def _load(path: str, overrides: list[str]):
    """(forecast config, segments, data config) of an experiment YAML."""
    experiment = load_config(path, overrides)
    return experiment.forecast, experiment.segments, experiment.data


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if any(arg == "--timeframes" or arg.startswith("--timeframes=") for arg in argv):
        return timeframes_main(list(argv))
    parser = argparse.ArgumentParser(
        prog="python -m forecasters", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--config", required=True, help="experiment YAML (its data, segments, forecast sections)"
    )
    parser.add_argument("--out", help="output folder for panel.parquet, metrics and plots")
    parser.add_argument(
        "--segment", default="test", choices=["train", "valid", "test"], help="evaluated segment"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="override, e.g. forecast.n_jobs=1",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--tune", choices=TUNABLE, help="run the Optuna search for this member instead"
    )
    parser.add_argument(
        "--trials", type=int, help="trials for this worker (default forecast.tune.n_trials)"
    )
    parser.add_argument("--storage", help="Optuna storage URL (default forecast.tune.storage)")
    args = parser.parse_args(argv)

    forecast, segments, data_config = _load(args.config, args.overrides)
    frame = load_market(data_config.source, **data_config.load_options())
    if args.tune:
        best = tune_member(
            frame,
            forecast,
            args.tune,
            segments.valid.start,
            segments.valid.end,
            args.trials,
            args.storage,
        )
        path = save_best_params(args.tune, best, forecast.tune.best_params_path)
        print(f"best {args.tune} parameters {best} written to {path}")
        return 0
    if not args.out:
        parser.error("--out is required unless --tune is given")
    segment = segments.get(args.segment)
    metrics, gate = run_report(
        frame,
        forecast,
        Path(args.out),
        segment.start,
        segment.end,
        progress=not args.no_progress,
        regime_start=segments.train.start,
        regime_end=segments.train.end,
    )
    window = f"{args.segment} segment {segment.start}..{segment.end}"
    print(f"# Forecasts on the {window}\n")
    print("## Verdict per horizon (ensemble)\n")
    for line in verdict_lines(metrics):
        print(f"- {line}")
    print()
    print(metrics_table(metrics, f"Point and interval metrics by model and horizon ({window})"))
    print(f"## 75% interval coverage (%) by year, h = 1..H ({window})\n")
    print(coverage_by_year_table(metrics, key="coverage_75"))
    if gate is None:
        print("Forecast gate: off (forecast.gate.enabled is false)")
    else:
        print("\n".join(gate.lines()))
    print(f"\nwritten to {args.out}: metrics.json, metrics.md, panel.parquet, reliability.png")
    return 0
