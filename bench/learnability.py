"""Learnability suite: can PPO find an edge that is planted in a synthetic market?

    python bench/learnability.py --market {vrp,signal,no_edge} [--timesteps N] [--seeds K]
                                 [--jobs J] [--replicate R] [--set KEY=VALUE ...]
                                 [--compare NAME:KEY=VALUE[;KEY=VALUE] ...] --out DIR

PPO (the quick config's agent and environment, on a flat volatility surface; since stop 44
the quick config decides every 5 bars and holds at least 20, as the default does) trains on
synthetic training paths (``agents.learnability``) for each of ``--seeds`` seeds (0..K-1, one
process each, ``--jobs`` at a time) and is scored, with its final model, on held-out paths drawn
from other seeds, against the rule that earns the planted edge (cash for ``no_edge``) and a
random policy on the same held-out episodes. Writes ``DIR/learnability.json``:

* ``market``, ``timesteps``, ``seeds``;
* ``ppo_mean_episode_return_pct``: the mean over seeds and held-out episodes of the episode
  return in percent of starting equity; ``ppo_by_seed`` each seed's mean;
  ``ppo_median_over_seeds_pct`` the median of ``ppo_by_seed``;
* ``reference_mean_episode_return_pct``, ``random_mean_episode_return_pct`` (the same episodes);
* ``ratio_to_reference``: ``ppo_median_over_seeds_pct / reference_mean_episode_return_pct``
  (null when the reference earns nothing, as cash does in ``no_edge``);
* ``target_met``: at least 0.8 of the reference (``vrp``, ``signal``), or a loss of at most 0.5%
  of equity per episode against cash (``no_edge``);
* ``ppo_train_paths_by_seed``: each seed's final model scored the same way on the first
  training paths (as many as there are held-out paths), beside
  ``reference_train_paths_mean_episode_return_pct``: a model far better on the paths it
  trained on than on held-out ones learned those paths, not the edge (overfitting);
* ``ppo_trade_profile_by_seed`` and ``reference_trade_profile``: what each traded on the
  held-out episodes (``agents.learnability.TradeProfile``: opens per structure, in ``signal``
  by the planted direction at the open; positions, their median bars held and the share flat
  again after one bar; in ``signal`` also the share of bull and bear spreads among the opens
  on up and on down signals, and ``signal_response``: 1 for the rule, 0 for a policy blind
  to the signal, 0.5 for one that trades one side of it), also printed under the headline: a
  score that misses says how;
* the learning health of each seed at the end (explained variance, entropy), the learning
  curves (held-out return of the first ``curve_paths`` paths against timesteps) and the
  settings; and ``DIR/learning_curves.png``.

``--set`` passes config overrides to every run (``--set agent.ent_coef=0.0``); ``--compare
NAME:KEY=VALUE[;KEY=VALUE]`` (repeatable) also trains a variant on the same paths and seeds
(``DIR/variant_NAME/``, and ``DIR/compare.json`` with every variant's row): the suite is how
candidate fixes are checked. ``--replicate R`` (R > 0) draws new training and held-out paths
and trains new PPO seeds (R*1000, R*1000+1, ...): a variant picked among several on the
default replicate's held-out paths is a best-of-N there, and counts only when it holds on
another replicate. Deciding every bar (the quick config before stop 44), the defaults
finished one market in about 6 minutes on 2 cores with an empty table cache (``vrp``: 5:58 on
an idle 2-core AMD EPYC) and took about 10 GB of memory at their peak; deciding every 5 bars
(stop 42's machine: 3:57-4:30 with a warm cache) the workers copy more of the shared tables
as they train, and ``vrp`` fills a 24 GB machine (README: ``--jobs 1`` trains in this process,
nothing copied). The 128 training paths' tables are built once in this process and shared
with the forked workers (the GC frozen first); the 16 held-out paths' tables are built in this
process after the workers finish, where the final models are scored (``--train-paths 8``: PPO
learns those 8 paths by heart; README).
Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from common.cli import require_counts, run_cli  # noqa: E402
from common.errors import UserInputError  # noqa: E402

TARGET_SHARE_OF_REFERENCE = 0.8
TARGET_MAX_LOSS_VS_CASH_PCT = 0.5
DEFAULT_TIMESTEPS = 100_000
DEFAULT_SEEDS = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from data.synthetic import MARKETS

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--market", required=True, choices=MARKETS)
    parser.add_argument("--timesteps", type=int, default=DEFAULT_TIMESTEPS,
                        help=f"PPO timesteps per seed (default {DEFAULT_TIMESTEPS})")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help=f"number of PPO seeds, 0..K-1 (default {DEFAULT_SEEDS})")
    parser.add_argument("--jobs", type=int, default=min(DEFAULT_SEEDS, os.cpu_count() or 1),
                        help="seeds trained at once (processes)")
    parser.add_argument("--train-paths", type=int, default=None,
                        help="training paths per seed (default: the suite's)")
    parser.add_argument("--train-path-bars", type=int, default=None,
                        help="bars of each training path (default: the suite's)")
    parser.add_argument("--heldout-paths", type=int, default=None,
                        help="held-out paths (default: the suite's)")
    parser.add_argument("--heldout-episodes-per-path", type=int, default=None)
    parser.add_argument("--replicate", type=int, default=0,
                        help="0: the suite's paths and PPO seeds; R > 0: new training and "
                             "held-out paths and PPO seeds R*1000.. (confirm a variant chosen "
                             "on replicate 0 where it was not chosen)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override for every run")
    parser.add_argument("--compare", action="append", default=[],
                        metavar="NAME:KEY=VALUE[;KEY=VALUE]",
                        help="also train this variant on the same paths and seeds (agent.* "
                             "and train.* keys); DIR/variant_NAME/ and DIR/compare.json")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    require_counts(args, positive=("timesteps", "seeds", "jobs", "train_paths", "train_path_bars",
                                   "heldout_paths", "heldout_episodes_per_path"),
                   non_negative=("replicate",))
    return args


def _settings(args):
    from agents.learnability import SuiteSettings

    extra = {}
    if args.train_paths:
        extra["n_train_paths"] = args.train_paths
    if args.train_path_bars:
        extra["train_path_bars"] = args.train_path_bars
    if args.heldout_paths:
        extra["n_heldout_paths"] = args.heldout_paths
        extra["curve_paths"] = min(args.heldout_paths, SuiteSettings("vrp").curve_paths)
    if args.heldout_episodes_per_path:
        extra["heldout_episodes_per_path"] = args.heldout_episodes_per_path
    return SuiteSettings(args.market, timesteps=args.timesteps,
                         overrides=tuple(args.overrides), replicate=args.replicate, **extra)


def _mean(values) -> float:
    return float(sum(values) / len(values))


def summarise(settings, seeds: list[dict], rules: dict) -> dict:
    """The ``learnability.json`` document."""
    by_seed = [s["mean_episode_return_pct"] for s in seeds]
    reference = _mean(rules["reference"])
    median = float(statistics.median(by_seed))
    ratio = median / reference if reference > 0 else None
    if settings.market == "no_edge":
        met = median >= reference - TARGET_MAX_LOSS_VS_CASH_PCT
    else:
        met = ratio is not None and ratio >= TARGET_SHARE_OF_REFERENCE
    return {
        "market": settings.market,
        "timesteps": settings.timesteps,
        "seeds": [s["seed"] for s in seeds],
        "ppo_mean_episode_return_pct": _mean([r for s in seeds for r in s["episode_return_pct"]]),
        "ppo_by_seed": by_seed,
        "ppo_median_over_seeds_pct": median,
        "reference_mean_episode_return_pct": reference,
        "random_mean_episode_return_pct": _mean(rules["random"]),
        "ratio_to_reference": ratio,
        "target_met": bool(met),
        "heldout_episodes": len(rules["reference"]),
        "reference_episode_sd_pct": float(statistics.pstdev(rules["reference"])),
        "reference_stderr_pct": float(statistics.pstdev(rules["reference"])
                                      / len(rules["reference"]) ** 0.5),
        "ppo_stderr_by_seed_pct": [float(statistics.pstdev(s["episode_return_pct"])
                                         / len(s["episode_return_pct"]) ** 0.5) for s in seeds],
        "learning_health": [{"seed": s["seed"], "explained_variance": s["explained_variance"],
                             "entropy_loss": s["entropy_loss"],
                             "wall_seconds": s["wall_seconds"]} for s in seeds],
        "ppo_train_paths_by_seed": [_mean(s["train_paths_episode_return_pct"])
                                    for s in seeds],
        "reference_train_paths_mean_episode_return_pct": _mean(rules["reference_train_paths"]),
        "train_paths_episodes": len(rules["reference_train_paths"]),
        "ppo_trade_profile_by_seed": [s["trade_profile"] for s in seeds],
        "reference_trade_profile": rules["reference_trade_profile"],
        "curves": {str(s["seed"]): s["curve"] for s in seeds},
        "curve_reference_pct": _mean(rules["reference_curve_paths"]),
        "curve_random_pct": _mean(rules["random_curve_paths"]),
        "settings": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in vars(settings).items()},
    }


def plot_curves(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for seed, curve in document["curves"].items():
        ax.plot([p["timesteps"] for p in curve], [p["return_pct"] for p in curve], marker="o",
                ms=3, label=f"PPO seed {seed}")
    ax.axhline(document["curve_reference_pct"], color="k", ls="--", label="reference rule")
    ax.axhline(document["curve_random_pct"], color="grey", ls=":", label="random")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("timesteps")
    ax.set_ylabel("held-out episode return (%)")
    ax.set_title(f"learnability: {document['market']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


_PREPARED: dict = {}  # variant -> Prepared, set before the workers fork: they share the tables
AS_IS = "as_is"


def parse_compare(items: list[str]) -> dict[str, list[str]]:
    """``NAME:KEY=VALUE;KEY=VALUE`` -> {NAME: [overrides]} (agent.* and train.* keys only:
    every variant runs on the same environments)."""
    variants: dict[str, list[str]] = {}
    for item in items:
        name, sep, body = item.partition(":")
        overrides = [o.strip() for o in body.split(";") if o.strip()]
        if not sep or not name.strip() or not overrides or name.strip() == AS_IS:
            raise UserInputError(f"--compare '{item}': expected NAME:KEY=VALUE[;KEY=VALUE...] "
                                 f"with a NAME other than {AS_IS}")
        bad = [o for o in overrides if not o.startswith(("agent.", "train."))]
        if bad:
            raise UserInputError(f"--compare '{item}': only agent.* and train.* keys may vary "
                                 f"(the environments are shared), got {bad}")
        if name.strip() in variants:
            raise UserInputError(f"--compare: variant '{name.strip()}' given twice")
        variants[name.strip()] = overrides
    return variants


def _train(job: tuple[str, int]) -> dict:
    from agents.learnability import train_one_seed

    variant, seed = job
    return train_one_seed(_PREPARED[variant], seed)


def _headline(document: dict, out: Path, label: str) -> str:
    ratio = document["ratio_to_reference"]
    by_seed = ", ".join(f"{v:+.2f}" for v in document["ppo_by_seed"])
    return (f"{label}: PPO {document['ppo_median_over_seeds_pct']:+.2f}% per episode "
            f"(median of seeds: {by_seed}), reference "
            f"{document['reference_mean_episode_return_pct']:+.2f}%, random "
            f"{document['random_mean_episode_return_pct']:+.2f}%; on training paths PPO "
            f"{statistics.median(document['ppo_train_paths_by_seed']):+.2f}%, reference "
            f"{document['reference_train_paths_mean_episode_return_pct']:+.2f}%; ratio "
            f"{'-' if ratio is None else f'{ratio:.2f}'}; target "
            f"{'met' if document['target_met'] else 'not met'}; {out}")


def _profile_text(profile: dict, top: int = 4) -> str:
    opens = sum(profile["opens"].values())
    kinds = ", ".join(f"{k} {n}" for k, n in list(profile["opens"].items())[:top])
    more = " ..." if len(profile["opens"]) > top else ""
    if not profile["positions"]:
        return f"{opens} opens"
    text = (f"{opens} opens ({kinds}{more}), held a median {profile['median_held_bars']:.0f} "
            f"bars, {100 * profile['closed_after_one_bar_share']:.0f}% flat again after one bar")
    shares = profile.get("spread_shares")
    if shares is not None:
        def pct(x):
            return "-" if x is None else f"{100 * x:.0f}%"
        response = profile.get("signal_response")
        text += (f"; bull/bear spreads on up signals {pct(shares['up']['bull'])}/"
                 f"{pct(shares['up']['bear'])}, on down {pct(shares['down']['bull'])}/"
                 f"{pct(shares['down']['bear'])} of the opens; signal response "
                 f"{'-' if response is None else f'{response:+.2f}'}")
    return text


def trades_text(document: dict) -> str:
    """What PPO (each seed) and the rule traded on the held-out episodes, one line each."""
    lines = [f"  PPO seed {seed}: {_profile_text(p)}" for seed, p in zip(
        document["seeds"], document["ppo_trade_profile_by_seed"], strict=True)]
    lines.append(f"  reference: {_profile_text(document['reference_trade_profile'])}")
    return "\n".join(["  trades on the held-out episodes:", *lines])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dataclasses import replace

    from agents.learnability import ppo_seeds, prepare, score_final_model, score_rules
    from cli.learnability import suite_config
    from common.io import write_json_atomic

    settings = _settings(args)
    variants = parse_compare(args.compare)
    configs = {AS_IS: suite_config(settings, settings.train_path_bars)}  # bad --set: one line
    for name, overrides in variants.items():
        configs[name] = suite_config(replace(settings, overrides=(*settings.overrides,
                                                                    *overrides)),
                                     settings.train_path_bars)
    out = Path(args.out)
    started = time.time()
    prepared = prepare(settings, configs[AS_IS])
    for name, cfg in configs.items():
        _PREPARED[name] = replace(prepared, cfg=cfg)
    jobs_list = [(name, seed) for name in configs for seed in ppo_seeds(settings, args.seeds)]
    jobs = min(args.jobs, len(jobs_list))
    if jobs > 1:
        # The tables built above are shared with the forked workers page by page until one
        # writes to a page. Python's cyclic GC writes into the header of every object it
        # tracks on a full collection; frozen, it leaves them alone (values are untouched:
        # the figures are the same to the digit). Reference counts still copy the pages of
        # the objects a worker reads: this halves the copying, it does not end it (README).
        gc.freeze()
        try:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                results = list(pool.map(_train, jobs_list))
        finally:
            gc.unfreeze()
    else:
        results = [_train(job) for job in jobs_list]
    # Scored here, after the workers are gone: the held-out tables are built in this process
    # only (before the fork they were copied into each worker's memory).
    rules = score_rules(prepared)
    results = [score_final_model(_PREPARED[variant], trained)
               for (variant, _), trained in zip(jobs_list, results, strict=True)]
    out.mkdir(parents=True, exist_ok=True)
    table = {}
    for name in configs:
        mine = [r for (variant, _), r in zip(jobs_list, results, strict=True) if variant == name]
        document = summarise(replace(settings, overrides=(*settings.overrides,
                                                          *variants.get(name, ()))), mine, rules)
        document["wall_seconds"] = time.time() - started
        folder = out if name == AS_IS else out / f"variant_{name}"
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(document, folder / "learnability.json")
        plot_curves(document, folder / "learning_curves.png")
        table[name] = {k: document[k] for k in (
            "ppo_median_over_seeds_pct", "ppo_by_seed", "ratio_to_reference", "target_met")}
        table[name]["explained_variance"] = [h["explained_variance"]
                                             for h in document["learning_health"]]
        print(_headline(document, folder / "learnability.json",
                        settings.market if name == AS_IS else f"{settings.market} [{name}]"))
        print(trades_text(document))
    if variants:
        write_json_atomic({"market": settings.market, "timesteps": settings.timesteps,
                           "variants": {k: variants.get(k, []) for k in configs},
                           "table": table}, out / "compare.json")
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="bench/learnability.py"))
