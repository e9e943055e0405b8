"""Wall seconds of a full walk-forward of each forecaster, and of the quick and default configs.

Usage: python bench/forecasters.py [--members rf,xgb] [--skip-configs] [--n-jobs 2]
Runs on the embedded S&P 500 data; prints one JSON object (seconds per run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# This file is named like the package it times: run as a script, its own folder comes first on
# sys.path and would shadow the package, so put the repository root there instead.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

import data  # noqa: E402
from forecasters import FORECASTERS, ForecastConfig, walk_forward  # noqa: E402

FIRST_FORECAST_DATE = "2012-01-03"
"""Default config: forecasts from here to 2018-12-31 (OOS history before a 2016-2018 test)."""
QUICK = {
    "first_forecast_date": "2013-12-02",
    "refit_every_bars": 126,
    "members": ["rf", "xgb", "vol_rw"],
    "rf": {"n_estimators": 50},
    "xgb": {"n_estimators": 60},
}


def _time(frame, config: ForecastConfig) -> float:
    start = time.perf_counter()
    walk_forward(frame, config, progress=False)
    return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--members", default=",".join(FORECASTERS), help="comma-separated registry names"
    )
    parser.add_argument("--skip-configs", action="store_true", help="only time single members")
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib processes")
    parser.add_argument(
        "--configs-dir", default="configs", help="where quick.yaml/default.yaml live"
    )
    args = parser.parse_args()

    frame = data.load_market("embedded")
    base = ForecastConfig(first_forecast_date=FIRST_FORECAST_DATE, n_jobs=args.n_jobs)
    results: dict[str, float] = {}
    for name in args.members.split(","):
        is_reference = name in ("random_walk", "garch")
        config = base.model_copy(
            update={
                "members": [] if is_reference else [name],
                "references": [name] if is_reference else [],
                "ensemble": base.ensemble.model_copy(update={"enabled": False}),
                "conformal": base.conformal.model_copy(update={"enabled": False}),
            }
        )
        results[f"member/{name}"] = _time(frame, config)
        print(json.dumps({f"member/{name}": results[f"member/{name}"]}), flush=True)
    if not args.skip_configs:
        configs = {"default": base, "quick": ForecastConfig(**{**QUICK, "n_jobs": args.n_jobs})}
        for name in ("quick", "default"):
            path = Path(args.configs_dir) / f"{name}.yaml"
            if path.is_file():
                from config import load_config

                configs[name] = load_config(path).forecast.model_copy(
                    update={"n_jobs": args.n_jobs}
                )
            results[f"config/{name}"] = _time(frame, configs[name])
            print(json.dumps({f"config/{name}": results[f"config/{name}"]}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
