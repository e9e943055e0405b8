"""Wall seconds of LiveForecaster: the bootstrap, then one update on non-refit bars and a refit bar.

Usage: python bench/live_forecast.py [--config configs/quick.yaml] [--n-jobs 2] [--end DATE]
Runs the config's ``forecast:`` section on the embedded S&P 500 data. The bootstrap runs on the
bars up to two before the last refit position of the frame; the next three updates add one bar
each: two non-refit bars, then the refit bar. Also times one ``walk_forward`` on the same bars
(what a live run without this class would recompute each bar) and checks that the rows of the
last update equal it. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

import data  # noqa: E402
from config import load_config  # noqa: E402
from forecasters import LiveForecaster, walk_forward  # noqa: E402
from forecasters.walkforward import for_frame, refit_positions  # noqa: E402

NON_REFIT_UPDATES = 2
"""Updates timed on bars that are not refit positions before the refit bar."""


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, round(time.perf_counter() - start, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml", help="experiment YAML")
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib processes of the bootstrap")
    parser.add_argument("--end", default=None, help="last date of the embedded data used")
    parser.add_argument(
        "--skip-walk-forward", action="store_true", help="do not time the full walk-forward"
    )
    args = parser.parse_args()

    config = load_config(Path(args.config)).forecast.model_copy(update={"n_jobs": args.n_jobs})
    frame = data.load_market("embedded", end=args.end)
    refit = refit_positions(frame.index, for_frame(config.resolved(), frame.index))[-1]
    first_rows = refit - NON_REFIT_UPDATES  # the bootstrap's last bar is row first_rows - 1
    results: dict[str, object] = {
        "config": args.config,
        "bars_bootstrap": first_rows,
        "refit_bar_date": str(frame.index[refit].date()),
    }
    with tempfile.TemporaryDirectory() as state_dir:
        live = LiveForecaster(config, state_dir, progress=False)
        _, results["bootstrap_s"] = _timed(live.update, frame.iloc[:first_rows])
        for k in range(NON_REFIT_UPDATES):
            _, results[f"update_non_refit_{k + 1}_s"] = _timed(
                live.update, frame.iloc[: first_rows + k + 1]
            )
        last, results["update_refit_s"] = _timed(live.update, frame.iloc[: refit + 1])
        restarted = LiveForecaster(config, state_dir, progress=False)
        _, results["update_after_restart_s"] = _timed(restarted.update, frame.iloc[: refit + 2])
    if not args.skip_walk_forward:
        panel, results["walk_forward_s"] = _timed(
            walk_forward, frame.iloc[: refit + 1], config, False
        )
        expected = panel[panel["date"] == frame.index[refit]].reset_index(drop=True)
        diff = (last.drop(columns=["date", "model", "horizon"]) - expected.iloc[:, 3:]).abs()
        results["max_abs_diff_refit_bar"] = float(diff.to_numpy().max())
        results["same_keys"] = bool(last.iloc[:, :3].equals(expected.iloc[:, :3]))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
