"""Where PPO's update costs more on our environment than on CartPole: the spaces or the masks.

One PPO minibatch update (``evaluate_actions``, the clipped loss, ``backward``, gradient
clipping, Adam's step) of the same 64x64 policy, timed in one process for:

* ``cartpole``: stable-baselines3's ``ActorCriticPolicy`` with CartPole's spaces (4 inputs,
  2 actions);
* ``ours_spaces_unmasked``: the same policy with our spaces (the quick config's observation
  size and action count);
* ``ours_masked_small``: our MaskablePPO policy (``agents.ppo``'s lean distribution and step)
  with CartPole's spaces and masks;
* ``ours``: our MaskablePPO policy with our spaces and masks, as training runs it;
* ``ours_stock``: the same with sb3-contrib's own distribution and torch's own step.

    python bench/policy_update.py [--config configs/quick.yaml] [--batch 128] [--repeat 5]
                                  [--updates 400] [--json OUT]

Variants run in turn, ``--repeat`` times, ``--updates`` timed updates each after a warm-up; the
figure is the median microseconds per update. Synthetic tensors (random observations, actions,
masks with hold always valid): the arithmetic, not the data, sets the cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_ROOT))  # run as a script from anywhere


def _spaces(cfg) -> tuple[int, int]:
    """Our observation size and action count for ``cfg`` (one env built, its tables warm)."""
    from envs import load_env_inputs, make_env

    env = make_env(cfg, "train", inputs=load_env_inputs(cfg, progress=False))
    return int(env.observation_space.shape[0]), int(env.action_space.n)


def _policy(kind: str, n_obs: int, n_actions: int, lean: bool, agent):
    import numpy as np
    from gymnasium import spaces
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from stable_baselines3.common.policies import ActorCriticPolicy

    from agents.lean_torch import lean_model, optimizers_without_dynamo

    optimizers_without_dynamo()
    cls = MaskableActorCriticPolicy if kind == "masked" else ActorCriticPolicy
    policy = cls(spaces.Box(-1.0, 1.0, (n_obs,), np.float32), spaces.Discrete(n_actions),
                 lambda _: agent.learning_rate, net_arch=list(agent.net_arch))
    if lean:
        lean_model(types.SimpleNamespace(policy=policy))
    return policy


def _time_updates(policy, masked: bool, n_obs: int, n_actions: int, batch: int, updates: int,
                  agent) -> float:
    import numpy as np
    import torch

    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(batch, n_obs, generator=gen)
    rng = np.random.default_rng(0)
    masks = rng.random((batch, n_actions)) < 0.5
    masks[:, 0] = True
    actions = torch.as_tensor((rng.random((batch, n_actions)) * masks).argmax(axis=1))  # valid
    advantages, old_log_prob, returns = (torch.randn(batch, generator=gen) for _ in range(3))

    def one() -> None:
        kwargs = {"action_masks": masks} if masked else {}
        values, log_prob, entropy = policy.evaluate_actions(obs, actions, **kwargs)
        ratio = torch.exp(log_prob - old_log_prob)
        policy_loss = -torch.min(advantages * ratio,
                                 advantages * torch.clamp(ratio, 1 - agent.clip_range,
                                                          1 + agent.clip_range)).mean()
        loss = (policy_loss + agent.vf_coef * ((returns - values.flatten()) ** 2).mean()
                - agent.ent_coef * entropy.mean())
        policy.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), agent.max_grad_norm)
        policy.optimizer.step()

    for _ in range(max(updates // 8, 20)):
        one()
    start = time.perf_counter()
    for _ in range(updates):
        one()
    return (time.perf_counter() - start) / updates * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--batch", type=int, default=None,
                        help="minibatch size (default: the config's agent.batch_size)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--json", metavar="OUT", default=None)
    args = parser.parse_args()

    import torch

    from config import load_config

    cfg = load_config(args.config)
    agent = cfg.agent
    torch.set_num_threads(agent.torch_threads)
    batch = args.batch or agent.batch_size
    n_obs, n_actions = _spaces(cfg)
    variants = {  # name: (policy kind, lean, inputs, actions, masked)
        "cartpole": ("plain", False, 4, 2, False),
        "ours_spaces_unmasked": ("plain", False, n_obs, n_actions, False),
        "ours_masked_small": ("masked", True, 4, 2, True),
        "ours": ("masked", True, n_obs, n_actions, True),
        "ours_stock": ("masked", False, n_obs, n_actions, True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, (kind, lean, obs_size, action_count, masked) in variants.items():
            policy = _policy(kind, obs_size, action_count, lean, agent)
            times[name].append(_time_updates(policy, masked, obs_size, action_count, batch,
                                             args.updates, agent))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["cartpole"]
    print(f"one PPO minibatch update, batch {batch}, net {list(agent.net_arch)}, "
          f"{agent.torch_threads} torch thread(s); ours: {n_obs} inputs, {n_actions} actions; "
          f"median of {args.repeat} x {args.updates} updates")
    for name, value in medians.items():
        print(f"  {name:<22} {value:7.0f} us  x{value / base:.2f} of CartPole's "
              f"(runs {min(times[name]):.0f}-{max(times[name]):.0f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"config": args.config, "batch": batch, "n_obs": n_obs, "n_actions": n_actions,
             "us_per_update": medians, "runs": times}, indent=2) + "\n")
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
