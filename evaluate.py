"""Evaluate a trained run against every baseline on a held-out segment.

    python evaluate.py --run runs/NAME [--segment test] [--model best|final]

runs/NAME/ -> deterministic episodes of PPO and the baselines through the same environment ->
runs/NAME/eval/: metrics.json, equity and trade ledgers (CSV), plots (PNG), report.md.
A run made with --seeds (runs/NAME/seed_*/) is evaluated seed by seed and summarised by the
median and range over seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("evaluate")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by train.py")
    parser.add_argument("--segment", choices=("train", "valid", "test"),
                        help="date segment (default: the config's eval.segment, 'test')")
    parser.add_argument("--model", choices=("best", "final"), default="best",
                        help="best_model.zip (chosen on the validation segment) or model.zip")
    parser.add_argument("--allow-modified", action="store_true",
                        help="load a model file whose SHA-256 differs from provenance.json")
    return parser.parse_args(argv)


def _seed_dirs(run: Path) -> list[Path]:
    if (run / "model.zip").exists():
        return [run]
    found = sorted(p for p in run.glob("seed_*") if (p / "model.zip").exists())
    if not found:
        raise FileNotFoundError(f"{run}: no model.zip here nor in seed_*/ (run train.py first)")
    return found


def _load_policy(seed_dir: Path, cfg, which: str, env, allow_modified: bool = False):
    """The saved agent as a policy; VecNormalize statistics (NPZ), if any, are loaded frozen.

    The model file is a pickle: its SHA-256 must match the one train.py recorded in
    provenance.json, unless ``allow_modified``.
    """
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents import PPOPolicy, load_model
    from agents.checkpoint import load_vecnormalize
    from common.runfolder import verify_model_sha256

    name = "best_model" if which == "best" and (seed_dir / "best_model.zip").exists() else "model"
    verify_model_sha256(seed_dir, seed_dir / f"{name}.zip", allow_modified)
    model = load_model(seed_dir / f"{name}.zip", cfg.agent.algo)
    vec_norm = None
    if cfg.agent.vec_normalize:
        stats = seed_dir / ("best_vecnormalize.npz" if name == "best_model" else "vecnormalize.npz")
        if not stats.exists():
            raise FileNotFoundError(f"{stats}: agent.vec_normalize is on but no statistics saved")
        vec_norm = load_vecnormalize(stats, DummyVecEnv([lambda: env]), training=False)
    return PPOPolicy(model, cfg.agent.algo, vec_norm), name


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from agents import (
        block_bootstrap_sharpe_diff,
        deflated_sharpe_ratio,
        make_baseline,
        performance_metrics,
        run_episode,
    )
    from agents.report import (
        markdown_table,
        plot_actions,
        plot_equity,
        plot_pnl_by_strategy,
        write_report,
    )
    from common.io import write_text_atomic
    from config import load_config
    from envs import load_env_inputs, make_env

    run = Path(args.run)
    try:
        seed_dirs = _seed_dirs(run)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg = load_config(seed_dirs[0] / "config.yaml")
    segment = args.segment or cfg.eval.segment
    panel = pd.read_parquet(seed_dirs[0] / "forecasts" / "panel.parquet")
    inputs = load_env_inputs(cfg, panel_long=panel)
    env = make_env(cfg, segment, mode="eval", inputs=inputs)
    bars_per_year = env.panel.bars_per_year
    out = run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    log.info("evaluating on %s: %d bars %s..%s", segment, len(env.panel),
             env.panel.dates[0].date(), env.panel.dates[-1].date())

    results, metrics = {}, {}
    per_seed = {}
    for seed_dir in seed_dirs:
        policy, which = _load_policy(seed_dir, cfg, args.model, env, args.allow_modified)
        label = "ppo" if len(seed_dirs) == 1 else f"ppo_{seed_dir.name}"
        result = run_episode(env, policy)
        result.name = label
        results[label] = result
        per_seed[label] = performance_metrics(result, bars_per_year)
        log.info("%s (%s): return %.2f%%, Sharpe %.2f", label, which,
                 per_seed[label]["total_return_pct"], per_seed[label]["sharpe"])
    seeds_summary = None
    if len(seed_dirs) == 1:
        metrics["ppo"] = per_seed["ppo"]
    else:
        keys = [k for k, v in next(iter(per_seed.values())).items() if isinstance(v, int | float)]
        spread = {k: {"median": float(np.median([m[k] for m in per_seed.values()])),
                      "min": float(np.min([m[k] for m in per_seed.values()])),
                      "max": float(np.max([m[k] for m in per_seed.values()]))} for k in keys}
        metrics["ppo"] = {k: s["median"] for k, s in spread.items()}
        metrics["ppo"]["seeds"] = len(seed_dirs)
        from scipy.stats import kurtosis, skew

        per_bar, seed_returns = [], []
        for label in per_seed:
            eq = results[label].equity["equity_usd"].to_numpy()
            r = np.diff(eq) / eq[:-1]
            seed_returns.append(r)
            per_bar.append(r.mean() / r.std(ddof=1) if r.std(ddof=1) > 0 else 0.0)
        best = int(np.argmax(per_bar))
        best_r = seed_returns[best]
        seeds_summary = {"per_seed": per_seed, "spread": spread,
                         "deflated_sharpe": deflated_sharpe_ratio(
                             per_bar[best], np.asarray(per_bar), len(best_r),
                             skew=float(skew(best_r)),
                             kurtosis=float(kurtosis(best_r, fisher=False)))}
    for name in cfg.baselines.names:
        policy = make_baseline(name, env.observation_names, cfg.baselines, seed=cfg.seed)
        results[name] = run_episode(env, policy, seed=cfg.seed)
        metrics[name] = performance_metrics(results[name], bars_per_year)

    def returns(label):
        eq = results[label].equity["equity_usd"].to_numpy()
        return np.diff(eq) / eq[:-1]

    baseline_names = [n for n in cfg.baselines.names if n != "cash"]
    comparison = None
    if baseline_names:
        best_baseline = max(baseline_names, key=lambda n: metrics[n]["sharpe"])
        ppo_label = next(iter(per_seed))  # the single run, or the first seed
        if len(seed_dirs) > 1:
            ppo_label = min(per_seed, key=lambda k: abs(per_seed[k]["sharpe"]
                                                        - metrics["ppo"]["sharpe"]))
        comparison = {"ppo": ppo_label, "baseline": best_baseline,
                      **block_bootstrap_sharpe_diff(
                          returns(ppo_label), returns(best_baseline), bars_per_year,
                          cfg.eval.bootstrap_block_bars, cfg.eval.bootstrap_samples,
                          seed=cfg.seed)}

    for label, result in results.items():
        result.equity.to_csv(out / f"equity_{label}.csv")
        result.trades.to_csv(out / f"trades_{label}.csv", index=False)
    title = f"{cfg.name}: {segment} segment {env.panel.dates[0].date()}..{env.panel.dates[-1].date()}"
    plots = [plot_equity(results, out / "equity.png", title)]
    first_ppo = next(iter(per_seed))
    plots.append(plot_actions(results[first_ppo], out / "actions_ppo.png"))
    plots.append(plot_pnl_by_strategy(results, out / "pnl_by_strategy.png"))
    document = {
        "segment": segment, "start": str(env.panel.dates[0].date()),
        "end": str(env.panel.dates[-1].date()), "bars": len(env.panel), "model": args.model,
        "policies": metrics, "comparison": comparison, "seeds": seeds_summary,
    }
    write_text_atomic(json.dumps(metrics, indent=2, default=float), out / "metrics.json")
    write_text_atomic(json.dumps(document, indent=2, default=float), out / "summary.json")
    notes = [
        f"Model: `{args.model}` ({'best validation Sharpe checkpoint' if args.model == 'best' else 'final weights'}); "
        f"deterministic actions; every policy runs through the same environment and costs.",
        "`buy_and_hold` is the underlying's price curve (no dividends, no costs) for reference.",
    ]
    report = write_report(out / "report.md", title, metrics, comparison, seeds_summary, plots,
                          notes)
    print(markdown_table(metrics))
    if comparison:
        print(f"Sharpe(ppo) - Sharpe({comparison['baseline']}) = {comparison['sharpe_diff']:.2f} "
              f"[{comparison['ci_low']:.2f}, {comparison['ci_high']:.2f}] "
              f"({100 * comparison['level']:.0f}% block bootstrap)")
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
