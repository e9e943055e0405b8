"""Environment speed: SpyOptions steps per second against gym-anytrading's stocks env, one run.

Our environment runs on the embedded S&P 500 data for 2014-2018 (scaled to a SPY-like underlying,
with a causal normal forecast panel built from the VIX so that no forecaster runs), in training
mode (random starts, 252-bar episodes), in one process. The policy is random over the action
mask and keeps a position open most of the time: when flat it opens a random valid structure,
when open it closes with probability ``--p-close`` and holds otherwise. The reference is
gym-anytrading's ``stocks-v0`` on its own STOCKS_GOOGL data (window 10) with uniformly random
actions. Both environments are stepped raw (``.unwrapped``: no Gymnasium checker wrappers), resets
included in the time. ``--profile`` adds a cProfile of our steps (top 15 by cumulative time).

    python bench/env.py [--steps 50000] [--p-close 0.05] [--seed 0] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
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
    args = parser.parse_args()

    build_start = time.perf_counter()
    env = make_our_env()
    build_s = time.perf_counter() - build_start
    # First pass: includes building each bar's one-contract strategy table, which the env does
    # lazily the first time a bar is seen flat. Second pass: the same env, table cached (what a
    # long training run sees after its first pass over the data).
    cold = run_ours(env, args.steps, args.p_close, args.seed)
    ours = run_ours(env, args.steps, args.p_close, args.seed + 1)
    rand_cold = run_masked_random(env, args.steps, args.seed + 2)
    rand = run_masked_random(env, args.steps, args.seed + 3)
    ref = run_anytrading(args.steps, args.seed)
    ratio = ours["steps_per_s"] / ref["steps_per_s"]
    print(f"SpyOptions-v1 (embedded 2014-2018, {len(env.panel)} bars; built in {build_s:.2f} s)")
    print("hold-heavy loop")
    for label, result in (("first pass", cold), ("steady state", ours)):
        print(
            f"  {label}: {args.steps:,} steps in {result['seconds']:.2f} s: "
            f"{result['steps_per_s']:,.0f} steps/s  (position open "
            f"{100 * result['open_share']:.0f}% of steps, {result['trades']:,} opens, "
            f"{result['episodes']} episodes)"
        )
    print("masked-random actions (uniform over the valid ones)")
    for label, result in (("next pass", rand_cold), ("steady state", rand)):
        print(f"  {label}: {args.steps:,} steps in {result['seconds']:.2f} s: "
              f"{result['steps_per_s']:,.0f} steps/s ({result['episodes']} episodes)")
    print("gym-anytrading stocks-v0 (STOCKS_GOOGL, window 10)")
    print(
        f"  {args.steps:,} steps in {ref['seconds']:.2f} s: {ref['steps_per_s']:,.0f} steps/s"
        f"  ({ref['episodes']} episodes)"
    )
    def verdict(value: float, target: int) -> str:
        return f"{'meets' if value >= target else 'misses'} {target:,} steps/s"

    print(f"ratio ours (hold-heavy, steady state) / gym-anytrading: {ratio:.3f}")
    print(f"targets: hold-heavy {verdict(ours['steps_per_s'], TARGET_HOLD_HEAVY_STEPS_PER_S)}; "
          f"masked-random {verdict(rand['steps_per_s'], TARGET_MASKED_RANDOM_STEPS_PER_S)}")
    if args.profile:
        print(f"\ncProfile of {args.profile_steps:,} of our steps (continuing the same env):")
        print(profile_ours(env, args.profile_steps, args.p_close, args.seed + 1))


if __name__ == "__main__":
    main()
