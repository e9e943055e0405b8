"""Wall seconds of one live cycle (``trade.py --live --once``, in process) against the length of
the live history it replays.

Usage: python bench/live_cycle.py [--history-bars 1 40 120] [--policies iron_condor ppo]
Trains the tests' tiny run on a CSV of the embedded bars (once, in a temporary folder, or in
``--work DIR`` to keep it), then for each policy and history length N: cuts the CSV at a first
live bar, runs a cycle (live start), adds N-1 bars at once (journalled as missed holds), runs a
cycle, adds one bar and times that cycle. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT), str(_ROOT / "tests")] + [
    p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

from test_cli import tiny_config  # noqa: E402
from test_trade_live import write_csv  # noqa: E402

import data  # noqa: E402
import trade  # noqa: E402

FIRST_LIVE = "2016-01-04"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history-bars", type=int, nargs="+", default=[1, 40, 120])
    parser.add_argument("--policies", nargs="+", default=["iron_condor", "ppo"])
    parser.add_argument("--work", help="folder for the run and outputs (default: temporary)")
    args = parser.parse_args()
    signal.signal = lambda *a: None  # trade.main installs a SIGTERM handler; keep the default
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.work or tmp)
        base.mkdir(parents=True, exist_ok=True)
        history = data.load_market("embedded", start="2010-01-01", end="2016-12-30")
        csv = base / "spx.csv"
        write_csv(history.loc[:"2016-06-30"], csv)
        config = tiny_config(base / "cache")
        config["data"] = {"source": "csv", "path": str(csv)}
        (base / "tiny.yaml").write_text(yaml.safe_dump(config))
        run = base / "run"
        if not (run / "model.zip").exists():
            subprocess.run([sys.executable, str(_ROOT / "train.py"), "--config",
                            str(base / "tiny.yaml"), "--run-dir", str(run), "--no-progress"],
                           check=True, capture_output=True)
        start = int(history.index.searchsorted(FIRST_LIVE))
        results = []
        for policy in args.policies:
            for n in args.history_bars:
                out = base / f"out_{policy}_{n}"

                def cycle(k: int, out=out, policy=policy) -> float:
                    write_csv(history.iloc[:start + k + 1], csv)
                    began = time.perf_counter()
                    trade.main(["--run", str(run), "--broker", "paper", "--live", "--once",
                                "--publication-delay-minutes", "0", "--no-progress",
                                "--policy", policy, "--out", str(out)])
                    return time.perf_counter() - began

                first_s = cycle(0)
                if n > 1:
                    cycle(n - 1)
                results.append({"policy": policy, "live_history_bars": n + 1,
                                "cycle_s": round(cycle(n), 3), "first_cycle_s": round(first_s, 3)})
    print(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
