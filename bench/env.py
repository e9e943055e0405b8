"""Environment speed: SpyOptions steps per second against gym-anytrading's stocks env, one run.

Our environment runs on the embedded S&P 500 data for 2014-2018 (scaled to a SPY-like underlying,
with a causal normal forecast panel built from the VIX so that no forecaster runs), in training
mode (random starts, 252-bar episodes), in one process. The policy is random over the action
mask and keeps a position open most of the time: when flat it opens a random valid structure,
when open it closes with probability ``--p-close`` and holds otherwise. The reference is
gym-anytrading's ``stocks-v0`` on its own STOCKS_GOOGL data (window 10) with uniformly random
actions. Both environments are stepped raw (``.unwrapped``: no Gymnasium checker wrappers), resets
included in the time. ``--profile`` adds a cProfile of our steps (top 15 by cumulative time), on a
fresh environment (``--profile-tables cold``, the default) or on the warm one (``warm``).

Tables are measured as a user meets them and warm. *Cold*: a fresh environment, whose per-bar
structure tables (units, leg quotes, position paths) are built inside the timed pass, whatever
builds them (lazily or up front); its steps/s include that building. ``table_build_s`` is the
time to build every bar's tables on another fresh environment, reported apart (and
``env_ready_s`` the time to construct one). *Warm*: the same loops on an environment whose
tables are all built (what a long training run sees after its first pass). The headline
figures (``hold_heavy_steps_per_s``, ``masked_random_steps_per_s``) are the warm ones; the cold
ones are written beside them. ``--json OUT`` writes every figure.

``--ready CONFIG`` instead times the seconds from a fresh process's start (the parent's clock
just before it starts the child) to a training environment of that config (e.g.
``configs/quick.yaml``) reset with its first action mask: what ``train.py`` waits for before
stepping. *Cold*: the first process on an empty table cache (``env.table_cache_dir`` set to a new
temporary folder) and an empty user cache (``SPYRL_CACHE_DIR``, so the surface's arbitrage check
runs and is stored), which builds the segment's market panel and first block of structure tables
and writes them there. *Warm*: a second process on the same folder, which loads them. The
forecast panel comes from its own cache in both (computing it is another matter, minutes).
``--repeat N`` repeats the pair on new folders and reports the medians.

    python bench/env.py [--steps 50000] [--p-close 0.05] [--seed 0] [--profile]
                        [--profile-tables cold|warm] [--json OUT]
    python bench/env.py --ready configs/quick.yaml [--repeat 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

TARGET_HOLD_HEAVY_STEPS_PER_S = 100_000
TARGET_MASKED_RANDOM_STEPS_PER_S = 50_000
PRICE_SCALE = 0.1  # S&P 500 index -> SPY-like underlying
HORIZONS = (1, 2, 3, 4, 5)
LEVELS = (0.05, 0.125, 0.5, 0.875, 0.95)
TRADING_DAYS_PER_YEAR = 252


def forecast_panel(frame: pd.DataFrame):
    """Causal stand-in forecasts: normal quantiles of the log return at the day's implied vol."""
    from scipy.stats import norm

    from forecasters.panel import ForecastPanel

    iv = frame["iv_index"].ffill().dropna()
    values = np.stack([np.outer(iv.to_numpy() * math.sqrt(h / TRADING_DAYS_PER_YEAR),
                                norm.ppf(LEVELS)) for h in HORIZONS], axis=1)
    return ForecastPanel(pd.DatetimeIndex(iv.index), HORIZONS, LEVELS, values)


def make_our_env():
    import data
    from envs import EnvConfig, SpyOptionsEnv, build_market_panel
    from options.surface import SurfaceConfig

    frame = data.load_market("embedded")
    panel = build_market_panel(
        frame,
        data.build_features(frame),
        forecast_panel(frame),
        "2014-01-01",
        "2018-12-31",
        SurfaceConfig(),
        price_scale=PRICE_SCALE,
    )
    return SpyOptionsEnv(panel, EnvConfig(underlying_price_scale=PRICE_SCALE), mode="train")


def build_all_tables(env) -> float:
    """Build every bar's structure tables of ``env`` (units and position paths); seconds."""
    from envs.actions import STRATEGIES

    start = time.perf_counter()
    tables = env.tables
    if hasattr(tables, "build_all"):
        tables.build_all()
    else:  # environments without a bulk builder: every (bar, structure) one by one
        for bar in range(len(env.panel) - 1):
            for strategy in STRATEGIES:
                unit = tables.unit(bar, strategy)
                if unit is not None:
                    tables.path(unit)
    return time.perf_counter() - start


def run_ours(env, steps: int, p_close: float, seed: int) -> dict:
    """Step ``env`` with the biased masked random policy; returns timing and occupancy."""
    from envs.actions import ACTION_CLOSE, ACTION_HOLD, FIRST_OPEN_ACTION

    rng = np.random.default_rng(seed)
    uniform = rng.random(steps)  # drawn up front: the policy should cost next to nothing
    env.reset(seed=seed)
    open_steps = episodes = trades = 0
    start = time.perf_counter()
    for k in range(steps):
        mask = env.action_masks()
        if mask[ACTION_CLOSE]:
            open_steps += 1
            action = ACTION_CLOSE if uniform[k] < p_close else ACTION_HOLD
        else:
            valid = np.flatnonzero(mask[FIRST_OPEN_ACTION:])
            action = (
                FIRST_OPEN_ACTION + int(valid[int(uniform[k] * len(valid))])
                if len(valid)
                else ACTION_HOLD
            )
            trades += action != ACTION_HOLD
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            episodes += 1
            env.reset()
    elapsed = time.perf_counter() - start
    return {
        "steps_per_s": steps / elapsed,
        "seconds": elapsed,
        "open_share": open_steps / steps,
        "episodes": episodes,
        "trades": trades,
    }


def run_masked_random(env, steps: int, seed: int) -> dict:
    """Uniformly random valid actions (what an untrained masked agent does)."""
    rng = np.random.default_rng(seed)
    uniform = rng.random(steps)
    env.reset(seed=seed)
    episodes = 0
    start = time.perf_counter()
    for k in range(steps):
        valid = np.flatnonzero(env.action_masks())
        _, _, terminated, truncated, _ = env.step(int(valid[int(uniform[k] * len(valid))]))
        if terminated or truncated:
            episodes += 1
            env.reset()
    elapsed = time.perf_counter() - start
    return {"steps_per_s": steps / elapsed, "seconds": elapsed, "episodes": episodes}


def run_anytrading(steps: int, seed: int) -> dict:
    import gym_anytrading  # noqa: F401  (registers stocks-v0)
    import gymnasium as gym
    from gym_anytrading.datasets import STOCKS_GOOGL

    env = gym.make(
        "stocks-v0", df=STOCKS_GOOGL, frame_bound=(50, len(STOCKS_GOOGL)), window_size=10
    ).unwrapped
    env.reset(seed=seed)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    episodes = 0
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            episodes += 1
            env.reset()
    elapsed = time.perf_counter() - start
    return {"steps_per_s": steps / elapsed, "seconds": elapsed, "episodes": episodes}


def profile_ours(env, steps: int, p_close: float, seed: int, top: int = 15) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_ours(env, steps, p_close, seed)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


_READY_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from config import load_config
from envs import make_env
env = make_env(load_config({config!r}, {overrides!r}), "train")
env.reset(seed=0)
env.action_masks()
print(time.time() - {t0!r})
"""


def time_to_ready(config: str, repeat: int = 1) -> dict[str, list[float]]:
    """Seconds from process start to a reset training env with its mask: a cold process (empty
    table cache) then a warm one (the same cache), ``repeat`` times on new cache folders."""
    import os
    import shutil
    import subprocess
    import tempfile

    from common.paths import user_cache_root

    root = str(Path(__file__).resolve().parents[1])
    forecasts = user_cache_root() / "forecasts"  # the config's default forecast cache
    out: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(repeat):
        cache_dir = tempfile.mkdtemp(prefix="env_tables_")
        try:
            # A user cache of its own (SPYRL_CACHE_DIR): the cold process also runs the
            # surface's arbitrage check, as a first process after installing does.
            env = {**os.environ, "SPYRL_CACHE_DIR": str(Path(cache_dir) / "user_cache")}
            overrides = [f"env.table_cache_dir={cache_dir}", f"forecast.cache_dir={forecasts}"]
            for kind in ("cold", "warm"):
                t0 = time.time()
                done = subprocess.run([sys.executable, "-c", _READY_CHILD.format(
                    root=root, config=config, t0=t0, overrides=overrides)],
                    capture_output=True, text=True, cwd=root, env=env)
                if done.returncode != 0:
                    raise SystemExit(f"the environment of {config} failed:\n"
                                     f"{done.stderr[-3000:]}")
                out[kind].append(float(done.stdout.strip().splitlines()[-1]))
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument(
        "--p-close",
        type=float,
        default=0.05,
        help="probability of closing an open position at each step",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile top-15 (cumulative) of our env's steps",
    )
    parser.add_argument("--profile-steps", type=int, default=10_000)
    parser.add_argument("--profile-tables", choices=("cold", "warm"), default="cold",
                        help="--profile: a fresh environment (cold tables, the default) or the "
                             "one whose tables are all built (warm: the step path alone)")
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="also write the figures to this JSON file")
    parser.add_argument("--ready", metavar="CONFIG", default=None,
                        help="only time a fresh process until this config's env is ready")
    parser.add_argument("--repeat", type=int, default=3,
                        help="--ready: cold/warm pairs to take the median of")
    args = parser.parse_args()
    if args.ready:
        times = time_to_ready(args.ready, args.repeat)
        cold, warm = (float(np.median(times[k])) for k in ("cold", "warm"))
        print(f"{args.ready}: training environment ready (reset and first mask), median of "
              f"{args.repeat}: cold (empty table cache) {cold:.2f} s after the process started, "
              f"warm (second process, tables cached) {warm:.2f} s")
        print("  cold: " + ", ".join(f"{t:.2f}" for t in times["cold"])
              + "  warm: " + ", ".join(f"{t:.2f}" for t in times["warm"]))
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"config": args.ready, "repeat": args.repeat, "first_process_ready_s": cold,
                 "second_process_ready_s": warm, "cold_ready_s": times["cold"],
                 "warm_ready_s": times["warm"]}, indent=2) + "\n")
        return

    # Cold: fresh environments whose tables are built inside the timed pass.
    build_start = time.perf_counter()
    env = make_our_env()
    env_ready_s = time.perf_counter() - build_start
    cold = run_ours(env, args.steps, args.p_close, args.seed)
    rand_cold = run_masked_random(make_our_env(), args.steps, args.seed + 2)
    # The table build alone, on another fresh environment; then warm passes on it.
    env = make_our_env()
    table_build_s = build_all_tables(env)
    ours = run_ours(env, args.steps, args.p_close, args.seed + 1)
    rand = run_masked_random(env, args.steps, args.seed + 3)
    ref = run_anytrading(args.steps, args.seed)
    ratio = ours["steps_per_s"] / ref["steps_per_s"]
    print(f"SpyOptions-v1 (embedded 2014-2018, {len(env.panel)} bars): environment ready in "
          f"{env_ready_s:.2f} s; every bar's structure tables built in {table_build_s:.2f} s")
    print("hold-heavy loop")
    for label, result in (("cold tables", cold), ("warm tables", ours)):
        print(
            f"  {label}: {args.steps:,} steps in {result['seconds']:.2f} s: "
            f"{result['steps_per_s']:,.0f} steps/s  (position open "
            f"{100 * result['open_share']:.0f}% of steps, {result['trades']:,} opens, "
            f"{result['episodes']} episodes)"
        )
    print("masked-random actions (uniform over the valid ones)")
    for label, result in (("cold tables", rand_cold), ("warm tables", rand)):
        print(f"  {label}: {args.steps:,} steps in {result['seconds']:.2f} s: "
              f"{result['steps_per_s']:,.0f} steps/s ({result['episodes']} episodes)")
    print("gym-anytrading stocks-v0 (STOCKS_GOOGL, window 10)")
    print(
        f"  {args.steps:,} steps in {ref['seconds']:.2f} s: {ref['steps_per_s']:,.0f} steps/s"
        f"  ({ref['episodes']} episodes)"
    )
    def verdict(value: float, target: int) -> str:
        return f"{'meets' if value >= target else 'misses'} {target:,} steps/s"

    print(f"ratio ours (hold-heavy, warm tables) / gym-anytrading: {ratio:.3f}")
    print(f"targets (warm tables): hold-heavy "
          f"{verdict(ours['steps_per_s'], TARGET_HOLD_HEAVY_STEPS_PER_S)}; masked-random "
          f"{verdict(rand['steps_per_s'], TARGET_MASKED_RANDOM_STEPS_PER_S)}")
    if args.json:
        figures = {
            "steps": args.steps,
            "seed": args.seed,
            "bars": len(env.panel),
            "env_ready_s": env_ready_s,
            "table_build_s": table_build_s,
            "hold_heavy_steps_per_s": ours["steps_per_s"],
            "hold_heavy_cold_steps_per_s": cold["steps_per_s"],
            "masked_random_steps_per_s": rand["steps_per_s"],
            "masked_random_cold_steps_per_s": rand_cold["steps_per_s"],
            "reference_steps_per_s": ref["steps_per_s"],
            "hold_heavy_opens": ours["trades"],
            "hold_heavy_episodes": ours["episodes"],
            "targets": {"hold_heavy_steps_per_s": TARGET_HOLD_HEAVY_STEPS_PER_S,
                        "masked_random_steps_per_s": TARGET_MASKED_RANDOM_STEPS_PER_S},
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures: {args.json}")
    if args.profile:
        warm = args.profile_tables == "warm"
        print(f"\ncProfile of {args.profile_steps:,} of our steps ("
              + ("the environment of the warm passes, every table built):" if warm
                 else "fresh environment, cold tables):"))
        print(profile_ours(env if warm else make_our_env(), args.profile_steps, args.p_close,
                           args.seed + 1))


if __name__ == "__main__":
    main()
