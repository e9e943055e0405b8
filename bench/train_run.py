"""A whole ``train.py`` run as a user waits for it: the speed issue's "1,000,000 MaskablePPO
steps on the quick config within 15 minutes on 2 cores".

It starts ``python train.py --config CONFIG --run-dir <fresh folder> --total-timesteps N
--no-progress`` as a child process and reports the wall-clock seconds from just before the start
to its exit (interpreter start, imports, data, forecast panel and table caches as they are,
validation every ``train.eval_every_steps``, checkpoints and the final save included), the
child's CPU seconds, its peak memory, and the ``learn`` figures train.py itself prints. The run
folder is deleted afterwards unless ``--keep``.

    python bench/train_run.py [--config configs/quick.yaml] [--timesteps 1000000]
                              [--json OUT] [--keep DIR]

Nothing else should run on the machine while it measures (``uptime`` before and after is
printed): on 2 cores a second busy process slows the single-threaded run by a quarter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 15 * 60
LEARNED = re.compile(r"trained (\d+) timesteps in (\d+) s \((\d+)/s\)")


def _load_average() -> float:
    return os.getloadavg()[0]


def measure(config: str, timesteps: int, run_dir: Path) -> dict:
    command = [sys.executable, str(_ROOT / "train.py"), "--config", config, "--run-dir",
               str(run_dir), "--total-timesteps", str(timesteps), "--no-progress"]
    load_before = _load_average()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"train.py exited {done.returncode}")
    learned = LEARNED.search(done.stdout + done.stderr)
    return {
        "config": config, "timesteps": timesteps, "wall_s": round(wall_s, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "learn_timesteps": int(learned.group(1)) if learned else None,
        "learn_s": int(learned.group(2)) if learned else None,
        "learn_steps_per_s": int(learned.group(3)) if learned else None,
        "target_s": TARGET_S,
        "meets_target": wall_s <= TARGET_S if timesteps >= 1_000_000 else None,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(_load_average(), 2),
        "command": " ".join(command[1:]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--json", metavar="OUT", default=None)
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="train into DIR and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.keep:
        run_dir = Path(args.keep)
        if run_dir.exists():
            raise SystemExit(f"--keep {run_dir}: exists; give a new folder")
        result = measure(args.config, args.timesteps, run_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_train_run_") as tmp:
            result = measure(args.config, args.timesteps, Path(tmp) / "run")
    minutes, seconds = divmod(result["wall_s"], 60)
    print(f"{result['timesteps']:,} steps on {args.config}: {int(minutes)}:{seconds:04.1f} wall "
          f"(target for 1,000,000 steps {TARGET_S // 60}:00"
          f"{'' if result['meets_target'] is None else ', ' + ('met' if result['meets_target'] else 'missed')}); "
          f"learn {result['learn_s']} s at {result['learn_steps_per_s']} steps/s; CPU "
          f"{result['cpu_s']} s; peak RSS {result['peak_rss_mb']} MB; load "
          f"{result['load_average_before']} -> {result['load_average_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
