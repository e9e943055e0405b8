"""PPO training throughput: our environment against CartPole with the same hyper-parameters.

For each number of environments (2 and 16 by default) it trains the config's algorithm
(MaskablePPO by default) on ``SpyOptions`` (the config's train segment, the vectorised env
``train.py`` builds: ``agents.training.training_vec_env``, envs sharing their per-bar structure
tables, ``--vec-env`` choosing ``train.vec_env``: ``batched``, the default, or ``dummy``; no
VecNormalize) and stable-baselines3's PPO on ``CartPole-v1`` with the same
n_steps, batch size, epochs, network and torch threads, each in a fresh process, one after the
other on one machine. Two figures per run:

* **as a user sees it**: ``timesteps`` / the seconds from the process's start (measured by this
  parent just before it starts the child) to the end of ``learn``: interpreter start, imports,
  data, forecast panel (the config's cache), environment, structure tables and model included;
* **steady state**: a second ``learn`` of ``timesteps`` in the same process, after every bar's
  tables are built (their build time, usually nothing left to build, is reported).

Ours does not import torch's compiler (``torch._dynamo``, 1.2-2 s), which stock SB3 on
CartPole imports when it builds its optimizer (``agents.lean_torch``). ``--lean-cartpole``
gives CartPole's PPO the same economy, so the "as a user sees it" ratio shows what is left
without it. ``--cartpole-spaces ours`` pads CartPole to our observation size and action count
(zeros; an action pushes as its number mod 2), so both train networks of the same size: what is
left is the masks and the environment. ``--ours-unmasked`` trains our environment with SB3's
plain PPO instead of MaskablePPO (no masks on the policy's side; a masked action is a no-op
hold in the environment): a bound on what any saving in the masking could buy.

    python bench/train_throughput.py [--config configs/quick.yaml] [--timesteps 16384]
                                     [--n-envs 2 16] [--vec-env batched|dummy]
                                     [--lean-cartpole] [--cartpole-spaces cartpole|ours]
                                     [--ours-unmasked]
                                     [--json OUT]

The target of the speed issue: ours at least 90% of CartPole's steps/s at both, both ways.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))  # run as a script from anywhere

TARGET_RATIO = 0.90


def _agent_config(cfg, n_envs: int, rollout_steps: int | None):
    agent = cfg.agent
    if rollout_steps:
        n_steps = max(rollout_steps // n_envs, 8)
        agent = agent.model_copy(update={"n_steps": n_steps,
                                         "batch_size": min(agent.batch_size, n_steps * n_envs)})
    return agent


def _cartpole():
    import gymnasium as gym

    return gym.make("CartPole-v1")


def _our_spaces(cfg) -> tuple[int, int]:
    """Our training env's observation size and action count (one env, no tables built; in the
    parent, so that CartPole's timed process does not build our env)."""
    from envs import make_env

    env = make_env(cfg, "train")
    return int(env.observation_space.shape[0]), int(env.action_space.n)


def _cartpole_in_our_spaces(n_obs: int, n_actions: int):
    """CartPole with our observation size (its 4 values, then zeros) and action count (action
    ``a`` pushes as ``a % 2``): the same network sizes as ours, CartPole's dynamics."""
    import gymnasium as gym
    import numpy as np

    class _Padded(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
            self.action_space = gym.spaces.Discrete(n_actions)
            self._obs = np.zeros(n_obs, dtype=np.float32)

        def _pad(self, obs):
            out = self._obs.copy()
            out[:len(obs)] = obs
            return out

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            return self._pad(obs), info

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(int(action) % 2)
            return self._pad(obs), reward, terminated, truncated, info

    return _Padded(_cartpole())


def _plain_ppo(ppo_class, vec, agent):
    """SB3's PPO with the config's hyper-parameters and torch threads (CartPole's learner)."""
    import torch

    from agents.ppo import quiet_logger

    torch.set_num_threads(agent.torch_threads)
    model = ppo_class("MlpPolicy", vec, learning_rate=agent.learning_rate,
                      n_steps=agent.n_steps, batch_size=agent.batch_size,
                      n_epochs=agent.n_epochs, gamma=agent.gamma, gae_lambda=agent.gae_lambda,
                      clip_range=agent.clip_range, ent_coef=agent.ent_coef,
                      vf_coef=agent.vf_coef, max_grad_norm=agent.max_grad_norm,
                      policy_kwargs={"net_arch": list(agent.net_arch)}, seed=0, device="cpu",
                      verbose=0)
    quiet_logger(model)  # as build_model does for ours: no empty SB3 folder in the temp dir
    return model


def _child(args) -> dict:
    """One measurement in this (fresh) process; ``args.t0`` is the parent's clock at spawn."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.ppo import build_model
    from config import load_config

    n_envs = args.n_envs[0]
    overrides = [f"train.n_envs={n_envs}"] + ([f"train.vec_env={args.vec_env}"]
                                              if args.vec_env else [])
    cfg = load_config(args.config, overrides=overrides)
    agent = _agent_config(cfg, n_envs, args.rollout_steps)
    if args.child == "ours":
        from agents.training import training_vec_env
        from envs import load_env_inputs

        inputs = load_env_inputs(cfg, progress=False)
        vec = training_vec_env(cfg, inputs, seed=0)
        if args.ours_unmasked:
            from agents.lean_torch import step_without_dynamo

            model = _plain_ppo(PPO, vec, agent)
            step_without_dynamo(model.policy.optimizer)
        else:
            model = build_model(agent, vec, seed=0, tensorboard_log=None)
    else:
        if args.lean_cartpole:  # the same start-up economies as ours (agents.lean_torch)
            from agents.lean_torch import optimizers_without_dynamo, step_without_dynamo

            optimizers_without_dynamo()
        make = (functools.partial(_cartpole_in_our_spaces, *args.padded_spaces)
                if args.padded_spaces else _cartpole)
        model = _plain_ppo(PPO, DummyVecEnv([make] * n_envs), agent)
        vec = model.get_env()
        if args.lean_cartpole:
            step_without_dynamo(model.policy.optimizer)
    ready_s = time.time() - args.t0
    model.learn(total_timesteps=args.timesteps)
    user_s = time.time() - args.t0
    user_steps = model.num_timesteps
    tables_s = 0.0
    if args.child == "ours":
        start = time.perf_counter()
        vec.get_attr("tables", indices=[0])[0].build_all()
        tables_s = time.perf_counter() - start
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps, reset_num_timesteps=True)
    steady_s = time.perf_counter() - start
    return {"env": args.child, "n_envs": n_envs, "n_steps": agent.n_steps,
            "vec_env": type(vec).__name__, "algo": type(model).__name__,
            "ready_s": ready_s, "user_seconds": user_s,
            "user_steps_per_s": user_steps / user_s,
            "steady_steps_per_s": model.num_timesteps / steady_s,
            "tables_left_s": tables_s}


def _spawn(args, which: str, n_envs: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--config", args.config,
           "--timesteps", str(args.timesteps), "--n-envs", str(n_envs), "--child", which]
    if args.rollout_steps:
        cmd += ["--rollout-steps", str(args.rollout_steps)]
    if args.vec_env:
        cmd += ["--vec-env", args.vec_env]
    if args.lean_cartpole:
        cmd += ["--lean-cartpole"]
    if which == "ours" and args.ours_unmasked:
        cmd += ["--ours-unmasked"]
    if which == "cartpole" and args.cartpole_spaces == "ours":
        cmd += ["--padded-spaces", *map(str, args.padded_spaces)]
    t0 = time.time()
    done = subprocess.run([*cmd, "--t0", repr(t0)], capture_output=True, text=True,
                          cwd=_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{which} n_envs={n_envs} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--timesteps", type=int, default=16_384)
    parser.add_argument("--n-envs", type=int, nargs="+", default=[2, 16])
    parser.add_argument("--rollout-steps", type=int, default=None,
                        help="keep n_envs x n_steps at this (default: each run uses the "
                             "config's n_steps per env)")
    parser.add_argument("--vec-env", choices=("batched", "dummy"), default=None,
                        help="train.vec_env of our runs (default: the config's)")
    parser.add_argument("--lean-cartpole", action="store_true",
                        help="give CartPole's PPO the start-up economies ours has (no import "
                             "of torch's compiler: agents.lean_torch), to see what is left")
    parser.add_argument("--cartpole-spaces", choices=("cartpole", "ours"), default="cartpole",
                        help="ours: CartPole padded to our observation size and action count "
                             "(the same network sizes; zeros, actions mod 2), to see what is left "
                             "of the gap beyond the bigger network")
    parser.add_argument("--ours-unmasked", action="store_true",
                        help="train ours with SB3's plain PPO (no masks on the policy's side): "
                             "a bound on what saving on the masking could buy")
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="also write the figures to this JSON file")
    parser.add_argument("--child", choices=("ours", "cartpole"), help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--padded-spaces", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return

    if args.cartpole_spaces == "ours":
        from config import load_config

        args.padded_spaces = _our_spaces(load_config(args.config))
    rows = []
    for n_envs in args.n_envs:
        ours = _spawn(args, "ours", n_envs)
        cart = _spawn(args, "cartpole", n_envs)
        row = {"n_envs": n_envs, "ours": ours, "cartpole": cart,
               "user_ratio": ours["user_steps_per_s"] / cart["user_steps_per_s"],
               "steady_ratio": ours["steady_steps_per_s"] / cart["steady_steps_per_s"]}
        rows.append(row)
        for label, key in (("as a user sees it", "user"), ("steady state", "steady")):
            ratio = row[f"{key}_ratio"]
            print(f"n_envs={n_envs:>2} (n_steps {ours['n_steps']}, {ours['vec_env']}) {label}: "
                  f"SpyOptions "
                  f"{ours[f'{key}_steps_per_s']:,.0f} steps/s, CartPole "
                  f"{cart[f'{key}_steps_per_s']:,.0f} steps/s: ratio {ratio:.2f} "
                  f"({'meets' if ratio >= TARGET_RATIO else 'misses'} {TARGET_RATIO:.0%})")
        print(f"  process start to ready: SpyOptions {ours['ready_s']:.1f} s, CartPole "
              f"{cart['ready_s']:.1f} s; to the end of learn: {ours['user_seconds']:.1f} s "
              f"against {cart['user_seconds']:.1f} s; tables left to build after learn: "
              f"{ours['tables_left_s']:.1f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"config": args.config, "vec_env": args.vec_env,
                                               "lean_cartpole": args.lean_cartpole,
                                               "cartpole_spaces": args.cartpole_spaces,
                                               "ours_unmasked": args.ours_unmasked,
                                               "timesteps": args.timesteps, "runs": rows},
                                              indent=2) + "\n")
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
