"""PPO training throughput: our environment against CartPole with the same hyper-parameters.

For each number of environments (2 and 16 by default) it times ``model.learn`` of the config's
algorithm (MaskablePPO by default) on ``SpyOptions`` (the config's train segment, DummyVecEnv,
envs sharing their per-bar structure tables) and of stable-baselines3's PPO on ``CartPole-v1``
with the same n_steps, batch size, epochs, network and torch threads, in one run on one machine.
Our environment's per-bar structure tables are built before the clock starts (a warm-up pass
whose time is reported on its own): that is what a long training run sees after its first pass.

    python bench/train_throughput.py [--config configs/quick.yaml] [--timesteps 16384]
                                     [--n-envs 2 16]

The target of the environment-core issue: ours at least 85% of CartPole's steps/s at both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

TARGET_RATIO = 0.85


def warm_tables(env) -> float:
    """Build every bar's structure tables once; returns the seconds it took."""
    from envs.actions import STRATEGIES

    start = time.perf_counter()
    for bar in range(len(env.panel) - 1):
        for strategy in STRATEGIES:
            unit = env.tables.unit(bar, strategy)
            if unit is not None:
                env.tables.path(unit)
    return time.perf_counter() - start


def time_learn(model, timesteps: int) -> float:
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps, reset_num_timesteps=True)
    return model.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--timesteps", type=int, default=16_384)
    parser.add_argument("--n-envs", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--rollout-steps", type=int, default=None,
                        help="keep n_envs x n_steps at this (default: each run uses the "
                             "config's n_steps per env)")
    args = parser.parse_args()

    import gymnasium as gym
    from sb3_contrib.common.wrappers import ActionMasker  # noqa: F401  (import cost up front)
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.ppo import build_model
    from config import load_config
    from envs import load_env_inputs, make_env

    cfg = load_config(args.config)
    inputs = load_env_inputs(cfg, progress=False)
    template = make_env(cfg, "train", inputs=inputs)
    warm_s = warm_tables(template)
    print(f"{cfg.name}: train segment {len(template.panel)} bars; structure tables built in "
          f"{warm_s:.1f} s (once per process)")
    rows = []
    for n_envs in args.n_envs:
        agent = cfg.agent
        if args.rollout_steps:
            n_steps = max(args.rollout_steps // n_envs, 8)
            agent = agent.model_copy(update={"n_steps": n_steps,
                                             "batch_size": min(agent.batch_size,
                                                               n_steps * n_envs)})
        ours_env = DummyVecEnv([lambda: make_env(cfg, "train", share_with=template)] * n_envs)
        ours = build_model(agent, ours_env, seed=0, tensorboard_log=None)
        cart_env = DummyVecEnv([lambda: gym.make("CartPole-v1")] * n_envs)
        cart = PPO("MlpPolicy", cart_env, learning_rate=agent.learning_rate,
                   n_steps=agent.n_steps, batch_size=agent.batch_size, n_epochs=agent.n_epochs,
                   gamma=agent.gamma, gae_lambda=agent.gae_lambda, clip_range=agent.clip_range,
                   ent_coef=agent.ent_coef, policy_kwargs={"net_arch": list(agent.net_arch)},
                   seed=0, device="cpu", verbose=0)
        ours_sps = time_learn(ours, args.timesteps)
        cart_sps = time_learn(cart, args.timesteps)
        rows.append((n_envs, ours_sps, cart_sps))
        print(f"n_envs={n_envs:>2} (n_steps {agent.n_steps}): SpyOptions {ours_sps:,.0f} steps/s ({agent.algo}), CartPole "
              f"{cart_sps:,.0f} steps/s (ppo): ratio {ours_sps / cart_sps:.2f} "
              f"({'meets' if ours_sps >= TARGET_RATIO * cart_sps else 'misses'} "
              f"{TARGET_RATIO:.0%})")
    best = max(rows, key=lambda r: r[1])
    print(f"fastest per measured step here: n_envs={best[0]}")


if __name__ == "__main__":
    main()
