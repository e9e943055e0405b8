"""``evaluate.py``'s run: every policy through the same environment, the comparison, the
output folder (:func:`run`), or every policy on a real chain's sessions (:func:`evaluate_on_chain`,
``--quotes chain``).

``evaluate.py`` parses the flags, finds the seed folders and resolves the run's ``config.yaml``
(the CLI layer: ``agents`` never imports ``config``); the steps are in :mod:`agents.eval_run`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agents import eval_run as steps
from agents.audit import audit_markdown, audit_policy, entry_quote_grids
from agents.baselines import make_baseline
from agents.chain_eval import (
    OBSERVATION_POLICIES,
    chain_details,
    chain_report,
    prepare_chain_setup,
)
from agents.checkpoint import load_policy
from agents.evaluation import performance_metrics, run_episode
from agents.report import (
    markdown_table,
    plot_actions,
    plot_equity,
    plot_pnl_by_strategy,
    plot_tearsheet,
    pnl_attribution,
    write_report,
)
from common.io import write_json_atomic, write_text_atomic
from common.runfolder import RunLock
from common.units import PERCENT_PER_UNIT
from data import bars_per_year as frame_bars_per_year
from envs import load_env_inputs, make_env
from options.chain_io import read_chains
from options.iv_proxy import describe_iv_proxy

if TYPE_CHECKING:
    from config import ExperimentConfig

__all__ = ["evaluate_on_chain", "run"]

log = logging.getLogger("evaluate")


def evaluate_on_chain(args, run: Path, cfg, inputs, seed_dirs, baseline_names) -> int:
    """Every policy on the chain's sessions, real quotes and model quotes (``--quotes chain``)."""
    chain = read_chains(args.chain, args.chain_format)
    setup = prepare_chain_setup(cfg, inputs.frame, inputs.forecasts, chain)
    envs = {"chain": setup.chain_env, "model": setup.model_env}
    panel = setup.model_env.panel
    log.info("chain sessions %s..%s: %d bars (%s frame), level x%g", panel.dates[0].date(),
             panel.dates[-1].date(), len(panel), setup.frame_source, setup.level_factor)
    makers, skipped = {}, {}
    for seed_dir in seed_dirs:
        label = "ppo" if len(seed_dirs) == 1 else f"ppo_{seed_dir.name}"
        if setup.missing_inputs:
            skipped[label] = f"needs the observation's forecasts and features: {setup.missing_inputs}"
        else:
            makers[label] = lambda env, d=seed_dir: setup.hold_on_missing(load_policy(
                d, cfg, args.model, env, args.allow_modified)[0])
    for name in baseline_names:
        if name in OBSERVATION_POLICIES and setup.missing_inputs:
            skipped[name] = f"reads forecasts from the observation: {setup.missing_inputs}"
        else:
            makers[name] = lambda env, n=name: setup.hold_if_reads_observation(n, make_baseline(
                n, env.observation_names, cfg.baselines, seed=cfg.seed))
    metrics, results, smile_marks, audits = {}, {}, {}, {}
    band = setup.env_cfg.strategies.max_abs_log_moneyness
    for name, make in makers.items():
        metrics[name], audits[name] = {}, {}
        for kind, env in envs.items():
            before = setup.chain_source.smile_marks
            results[name, kind] = run_episode(env, make(env), seed=cfg.seed)
            metrics[name][kind] = performance_metrics(results[name, kind],
                                                      panel.bars_per_year)
            trades = results[name, kind].trades
            audits[name][kind] = audit_policy(trades, band, entry_quote_grids(env, trades))
            if kind == "chain":
                smile_marks[name] = setup.chain_source.smile_marks - before
        log.info("%s: chain %.2f%% vs model %.2f%%", name,
                 metrics[name]["chain"]["total_return_pct"],
                 metrics[name]["model"]["total_return_pct"])
    document = steps.json_ready({**metrics, "skipped": skipped})
    details = steps.json_ready({
        "chain_files": [str(p) for p in args.chain], "sessions": len(panel),
        "start": str(panel.dates[0].date()), "end": str(panel.dates[-1].date()),
        "frame": setup.frame_source, "level_factor": setup.level_factor,
        "starting_equity_usd": setup.env_cfg.starting_equity_usd,
        "strike_spacing": setup.env_cfg.strategies.strike_spacing,
        "wing_width": setup.env_cfg.strategies.wing_width,
        "dividend_yield": setup.env_cfg.dividend_yield, "rate": setup.market.rate,
        "smile_marks": smile_marks, "model": args.model, **chain_details(setup, chain)})
    out = Path(args.out) if args.out else run / "eval_chain"
    with RunLock(run, ["evaluate.py", *sys.argv[1:]]), steps.staged_directory(out) as staging:
        for (name, kind), result in results.items():
            result.equity.to_csv(staging / f"equity_{name}_{kind}.csv")
            result.trades.to_csv(staging / f"trades_{name}_{kind}.csv", index=False)
        write_json_atomic(document, staging / "metrics.json")
        write_json_atomic(details, staging / "chain_run.json")
        write_json_atomic(steps.json_ready({"max_abs_log_moneyness": band, "policies": audits}),
                          staging / "audit.json")
        audit_section = audit_markdown({f"{name} ({kind})": a for name, by_kind in audits.items()
                                        for kind, a in by_kind.items()})
        write_text_atomic(chain_report(cfg.name, document, details) + "\n"
                          + "\n".join(audit_section), staging / "report.md")
    log.info("wrote %s (metrics.json, chain_run.json, report.md, ledgers)", out)
    return 0


def run(args: argparse.Namespace, run: Path, seed_dirs: list[Path], cfg: ExperimentConfig,
        argv: list[str] | None = None) -> int:
    """Everything ``evaluate.py`` does once its flags are parsed, the run's seed folders found
    (:func:`agents.eval_run.seed_dirs`) and its config loaded with ``--set`` (``cfg``);
    ``argv`` (None: ``sys.argv``) is recorded by the run folder's lock."""
    # Every check on the user's input, before anything is written.
    baseline_names = steps.parse_baselines(args.baselines, cfg.baselines.names)
    for seed_dir in seed_dirs:
        steps.check_model_file(steps.model_file(seed_dir, args.model), cfg.agent.algo)
    inputs = load_env_inputs(cfg, panel_long=steps.read_panel(seed_dirs[0]))
    if args.quotes == "chain":
        return evaluate_on_chain(args, run, cfg, inputs, seed_dirs, baseline_names)
    cfg = steps.with_window(cfg, inputs.frame, args.start, args.end)
    custom = args.start is not None
    segment = "test" if custom else (args.segment or cfg.eval.segment)
    seg = cfg.segments.get(segment)
    iv_proxy = describe_iv_proxy(inputs.frame, cfg.options.surface,
                                 {segment: (seg.start, seg.end)},
                                 bars_per_year=frame_bars_per_year(inputs.frame.index))
    log.info("implied vol: %s", iv_proxy["summary"])
    env = make_env(cfg, segment, mode="eval", inputs=inputs)
    bars_per_year = env.panel.bars_per_year
    segment_name = steps.CUSTOM_SEGMENT if custom else segment
    log.info("evaluating on %s: %d bars %s..%s", segment_name, len(env.panel),
             env.panel.dates[0].date(), env.panel.dates[-1].date())

    # PPO, seed by seed, then the baselines, all through the same environment.
    results, metrics, per_seed = {}, {}, {}
    for seed_dir in seed_dirs:
        policy, which = load_policy(seed_dir, cfg, args.model, env, args.allow_modified)
        label = "ppo" if len(seed_dirs) == 1 else f"ppo_{seed_dir.name}"
        results[label] = run_episode(env, policy)
        results[label].name = label
        per_seed[label] = performance_metrics(results[label], bars_per_year)
        log.info("%s (%s): return %.2f%%, Sharpe %.2f", label, which,
                 per_seed[label]["total_return_pct"], per_seed[label]["sharpe"])
    seeds = None
    if len(seed_dirs) == 1:
        metrics["ppo"] = per_seed["ppo"]
    else:
        seeds = steps.seeds_summary(results, per_seed)
        metrics["ppo"] = {k: s["median"] for k, s in seeds["spread"].items()}
        metrics["ppo"]["seeds"] = len(seed_dirs)
    for name in baseline_names:
        policy = make_baseline(name, env.observation_names, cfg.baselines, seed=cfg.seed)
        results[name] = run_episode(env, policy, seed=cfg.seed)
        metrics[name] = performance_metrics(results[name], bars_per_year)

    ruined = steps.ruined_policies(results, env.panel.dates[-1])
    for name, date in ruined.items():
        log.warning("%s was ruined on %s (equity at or below %g of the start); it stays flat "
                    "after that in the comparison", name, date, cfg.env.ruin_equity_fraction)

    # Does PPO beat every baseline? Hansen's SPA and the Sharpe-difference interval.
    comparison, detail = steps.compare_with_baselines(
        results, list(per_seed), baseline_names, bars_per_year, cfg.eval.bootstrap_samples,
        cfg.seed, dates=env.panel.dates)

    start, end = env.panel.dates[0].date(), env.panel.dates[-1].date()
    document = steps.json_ready({
        "segment": segment_name, "start": str(start), "end": str(end), "bars": len(env.panel),
        "model": args.model, "overrides": args.overrides,
        "inputs": steps.input_hashes(seed_dirs[0], cfg, inputs.frame),
        "policies": metrics, "comparison": comparison, "comparison_detail": detail,
        "seeds": seeds, "iv_proxy": iv_proxy, "ruined": ruined,
    })
    audit = steps.json_ready(steps.audit_results(env, results))
    title = f"{cfg.name}: {segment_name} {start}..{end}"
    notes = [
        f"Model: `{args.model}` ({'best validation Sharpe checkpoint' if args.model == 'best' else 'final weights'}); "
        f"deterministic actions; every policy runs through the same environment and costs.",
        "`buy_and_hold` is the underlying's price curve (no dividends, no costs) for reference.",
        f"Implied vol: {iv_proxy['summary']}.",
    ] + [f"**Ruined:** `{name}` ended on {date}, its equity at or below "
         f"{cfg.env.ruin_equity_fraction:g} of the start; the comparison counts it flat after "
         f"that date." for name, date in ruined.items()
    ] + steps.window_notes(cfg, custom, args.model) + ([f"Config overrides: {', '.join(f'`{o}`' for o in args.overrides)}."]
         if args.overrides else [])

    out = Path(args.out) if args.out else run / "eval"
    with RunLock(run, ["evaluate.py", *(argv or sys.argv[1:])]), \
            steps.staged_directory(out) as staging:
        for label, result in results.items():
            result.equity.to_csv(staging / f"equity_{label}.csv")
            result.trades.to_csv(staging / f"trades_{label}.csv", index=False)
            attribution = pnl_attribution(result)  # the report's; the dashboard shows the file
            if attribution is not None:
                attribution.to_csv(staging / f"attribution_{label}.csv")
        plots = []
        if not args.no_plots:
            plots.append(plot_equity(results, staging / "equity.png", title))
            plots.append(plot_actions(results[next(iter(per_seed))], staging / "actions_ppo.png"))
            plots.append(plot_pnl_by_strategy(results, staging / "pnl_by_strategy.png"))
            for label, result in results.items():
                plot_tearsheet(result, bars_per_year, staging / f"tearsheet_{label}.png")
        write_text_atomic(json.dumps(document, indent=2) + "\n", staging / "metrics.json")
        write_text_atomic(json.dumps(audit, indent=2) + "\n", staging / "audit.json")
        write_report(staging / "report.md", title, document["policies"], document, results,
                     bars_per_year, plots, notes, audit)

    print(markdown_table(document["policies"]))
    if seeds is not None:
        interval = seeds["sharpe_median_interval"]
        print(f"PPO's median Sharpe over {len(seed_dirs)} seeds: "
              f"{seeds['spread']['sharpe']['median']:.2f}, 95% bootstrap interval of that median "
              f"over seeds [{interval['low']:.2f}, {interval['high']:.2f}]")
    if comparison:
        ci = comparison["sharpe_diff_ci"]
        print(f"SPA p-value (PPO beats every baseline): {comparison['spa_pvalue']:.3f}; "
              f"Sharpe(ppo) - Sharpe({comparison['best_baseline']}) = {ci['estimate']:.2f} "
              f"[{ci['low']:.2f}, {ci['high']:.2f}] ({PERCENT_PER_UNIT * ci['level']:.0f}% stationary "
              f"bootstrap, blocks of {comparison['block_length_bars']} bars)")
    print(f"report: {out / 'report.md'}")
    return 0
