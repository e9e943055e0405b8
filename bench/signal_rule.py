"""What the learnability suite's ``signal`` rule earns for how long it holds.

    python bench/signal_rule.py [--holds 1,5,10,15,20,25] [--heldout-paths N]
                                [--heldout-episodes-per-path E] [--replicate R] [--json OUT]

The suite's rule (``agents.learnability.SignalSpreadPolicy``: when flat, a bull call spread on
an up signal, a bear put spread on a down one) with the same entries, closing each position
after N bars instead of its 20; an N at or beyond the 30-day structures' life holds them to
expiry. Scored on the suite's held-out paths, as ``bench/learnability.py`` scores it (16 paths
x 12 episodes of 126 bars by default; ``--replicate`` as there): the mean episode return in
percent of starting equity and its standard error. It says what a policy that closes early
gives up, whatever it opened: a PPO run with ``env.min_holding_bars: 15`` that closes as soon
as the hold allows is bounded by the N = 15 row, not by the rule's 20 (README, stop 40).
Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.cli import require_counts, run_cli  # noqa: E402
from common.errors import UserInputError  # noqa: E402

DEFAULT_HOLDS = "1,5,10,15,20,25"


def parse_holds(text: str) -> list[int]:
    try:
        holds = [int(part) for part in text.split(",")]
    except ValueError:
        holds = []
    if not holds or any(h < 1 for h in holds):
        raise UserInputError(f"--holds: expected positive integers separated by commas "
                             f"(bars), got {text!r}")
    return holds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holds", default=DEFAULT_HOLDS,
                        help=f"bars each position is held (default {DEFAULT_HOLDS})")
    parser.add_argument("--heldout-paths", type=int, default=None,
                        help="held-out paths (default: the suite's)")
    parser.add_argument("--heldout-episodes-per-path", type=int, default=None)
    parser.add_argument("--replicate", type=int, default=0,
                        help="the suite's held-out paths (0) or another replicate's")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    require_counts(args, positive=("heldout_paths", "heldout_episodes_per_path"),
                   non_negative=("replicate",))
    args.holds = parse_holds(args.holds)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from agents.learnability import (
        SignalSpreadPolicy,
        SuiteSettings,
        evaluate_policy,
        heldout_envs,
    )
    from cli.learnability import suite_config
    from common.io import write_json_atomic
    from data.synthetic import SyntheticSpec

    extra = {}
    if args.heldout_paths:
        extra["n_heldout_paths"] = args.heldout_paths
    if args.heldout_episodes_per_path:
        extra["heldout_episodes_per_path"] = args.heldout_episodes_per_path
    settings = SuiteSettings("signal", replicate=args.replicate, **extra)
    cfg = suite_config(settings, settings.train_path_bars)
    started = time.time()
    envs = heldout_envs(settings, cfg)
    horizon = max(cfg.forecast.horizons)
    rows = []
    print(f"signal rule, replicate {settings.replicate}, {settings.n_heldout_paths} held-out "
          f"paths x {settings.heldout_episodes_per_path} episodes; the rule itself holds "
          f"{SyntheticSpec('signal').signal_horizon_bars} bars")
    print("| hold bars | mean episode return % | standard error |")
    print("|---:|---:|---:|")
    for hold in args.holds:
        policy = SignalSpreadPolicy(envs[0].observation_names, horizon, hold)
        returns = evaluate_policy(envs, policy, cfg.env.episode_length_bars)
        mean = statistics.fmean(returns)
        se = statistics.stdev(returns) / len(returns) ** 0.5 if len(returns) > 1 else None
        rows.append({"hold_bars": hold, "mean_episode_return_pct": mean,
                     "standard_error_pct": se, "episodes": len(returns)})
        print(f"| {hold} | {mean:+.2f} | {'-' if se is None else f'{se:.2f}'} |", flush=True)
    if args.json:
        write_json_atomic({"market": "signal", "replicate": settings.replicate,
                           "n_heldout_paths": settings.n_heldout_paths,
                           "heldout_episodes_per_path": settings.heldout_episodes_per_path,
                           "rows": rows}, Path(args.json))
        print(f"figures: {args.json}")
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="bench/signal_rule.py"))
