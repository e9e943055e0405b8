"""Ablations of the training paths in one command.

    python -m agents.ablate --config CONFIG --variants real,bootstrap,garch,mix --seeds K
                            [--timesteps N] [--segment test] [--out DIR] [--debug]

Each variant sets ``train.paths.source`` and trains seeds 0..K-1 with ``train.py`` (into
``DIR/<variant>/seed_<n>``), then ``evaluate.py`` scores them on the same segment (``test`` by
default; the validation segment picks each seed's checkpoint as in any run) against the
config's baselines. ``DIR/ablation.json`` and ``DIR/ablation.md`` hold, per variant, the median
and range of the Sharpe over seeds, the SPA p-value of "PPO beats every baseline", and the
deflated Sharpe of the best (variant, seed) over every one tried (Bailey & Lopez de Prado,
from the per-bar Sharpe of each trial; normal returns assumed for the variance term).
Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agents.paths import PATH_SOURCES
from agents.statistics import deflated_sharpe_ratio
from common.errors import UserInputError
from common.io import write_json_atomic, write_text_atomic
from data.calendar import TRADING_DAYS_PER_YEAR

if TYPE_CHECKING:
    from config import ExperimentConfig

__all__ = ["ablation_table", "parse_args", "run"]

log = logging.getLogger("ablate")
ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--variants", default="real,bootstrap,garch,mix",
                        help=f"comma-separated, among {', '.join(PATH_SOURCES)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per variant")
    parser.add_argument("--timesteps", type=int, help="override train.total_timesteps")
    parser.add_argument("--segment", choices=("valid", "test"), default="test")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override for every variant")
    parser.add_argument("--out", help="output folder (default runs/ablate_<config name>)")
    args = parser.parse_args(argv)
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in args.variant_list if v not in PATH_SOURCES]
    if bad or not args.variant_list:
        raise UserInputError(f"--variants: unknown {bad or 'empty list'}; expected some of "
                             f"{', '.join(PATH_SOURCES)}")
    if len(set(args.variant_list)) != len(args.variant_list):
        raise UserInputError("--variants: a variant is given twice")
    if args.seeds < 1:
        raise UserInputError(f"--seeds: expected a positive number, got {args.seeds}")
    if args.timesteps is not None and args.timesteps < 1:
        raise UserInputError(f"--timesteps: expected a positive number, got {args.timesteps}")
    return args


def _run(cmd: list[str]) -> None:
    log.info("%s", " ".join(cmd))
    done = subprocess.run(cmd, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"command failed with exit status {done.returncode}: {' '.join(cmd)}")


def _per_seed_sharpe(metrics: dict) -> dict[str, dict]:
    """label -> {sharpe, bars} of each PPO seed in an ``evaluate.py`` metrics document."""
    if metrics.get("seeds"):
        return {label: {"sharpe": m["sharpe"], "bars": m["bars"]}
                for label, m in metrics["seeds"]["per_seed"].items()}
    ppo = metrics["policies"]["ppo"]
    return {"ppo": {"sharpe": ppo["sharpe"], "bars": ppo["bars"]}}


def ablation_table(per_variant: dict[str, dict], bars_per_year: float) -> dict:
    """Median and range of Sharpe per variant, SPA p-values, and the deflated Sharpe of the
    best trial over all trials (variants x seeds)."""
    rows = {}
    trials = []
    for variant, doc in per_variant.items():
        seeds = _per_seed_sharpe(doc)
        sharpes = [s["sharpe"] for s in seeds.values()]
        trials += [(variant, label, s["sharpe"], s["bars"]) for label, s in seeds.items()]
        comparison = doc.get("comparison") or {}
        rows[variant] = {"sharpe_median": float(np.median(sharpes)),
                         "sharpe_min": float(np.min(sharpes)), "sharpe_max": float(np.max(sharpes)),
                         "spa_pvalue": comparison.get("spa_pvalue"),
                         "best_baseline": comparison.get("best_baseline"),
                         "best_baseline_sharpe": doc["policies"].get(
                             comparison.get("best_baseline"), {}).get("sharpe")}
    per_bar = np.asarray([t[2] for t in trials]) / math.sqrt(bars_per_year)
    best = int(np.argmax(per_bar))
    dsr = deflated_sharpe_ratio(float(per_bar[best]), per_bar, int(trials[best][3]))
    return {"variants": rows, "trials": len(trials),
            "best_trial": {"variant": trials[best][0], "seed": trials[best][1],
                           "sharpe": trials[best][2]},
            "deflated_sharpe_best_trial": None if math.isnan(dsr) else dsr}


def _markdown(table: dict, segment: str) -> str:
    lines = [f"| variant | Sharpe median ({segment}) | range | SPA p-value | best baseline |",
             "|---|---|---|---|---|"]
    for variant, row in table["variants"].items():
        pvalue = "-" if row["spa_pvalue"] is None else f"{row['spa_pvalue']:.3f}"
        baseline = ("-" if row["best_baseline"] is None else
                    f"{row['best_baseline']} {row['best_baseline_sharpe']:.2f}")
        lines.append(f"| {variant} | {row['sharpe_median']:.2f} | {row['sharpe_min']:.2f} .. "
                     f"{row['sharpe_max']:.2f} | {pvalue} | {baseline} |")
    dsr = table["deflated_sharpe_best_trial"]
    best = table["best_trial"]
    lines.append("")
    lines.append(f"Deflated Sharpe of the best trial ({best['variant']} {best['seed']}, Sharpe "
                 f"{best['sharpe']:.2f}) over {table['trials']} trials: "
                 f"{'-' if dsr is None else f'{dsr:.3f}'}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, cfg: ExperimentConfig) -> int:
    """The ablation of ``python -m agents.ablate`` with its parsed flags (:func:`parse_args`)
    and the loaded config (``cli.ablate.main`` resolves the YAML first: a bad config is one
    line and nothing is written)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    out = Path(args.out or f"runs/ablate_{cfg.name}")
    seeds = [str(s) for s in range(args.seeds)]
    per_variant = {}
    for variant in args.variant_list:
        run_dir = out / variant
        sets = [*args.overrides, f"train.paths.source={variant}"]
        cmd = [sys.executable, str(ROOT / "train.py"), "--config", args.config, "--seeds",
               *seeds, "--run-dir", str(run_dir), "--no-progress"]
        if args.timesteps:
            cmd += ["--total-timesteps", str(args.timesteps)]
        if all((run_dir / f"seed_{s}" / "model.zip").exists() for s in seeds):
            log.info("%s: already trained, reused", run_dir)
        else:
            for item in sets:
                cmd += ["--set", item]
            if len(seeds) == 1:  # train.py writes one seed into RUN_DIR itself
                cmd[cmd.index("--run-dir") + 1] = str(run_dir / "seed_0")
            _run(cmd)
        eval_dir = run_dir / f"eval_{args.segment}"
        _run([sys.executable, str(ROOT / "evaluate.py"), "--run", str(run_dir), "--segment",
              args.segment, "--no-plots", "--out", str(eval_dir)])
        per_variant[variant] = json.loads((eval_dir / "metrics.json").read_text())
    table = ablation_table(per_variant, TRADING_DAYS_PER_YEAR)
    write_json_atomic({"config": args.config, "segment": args.segment, "seeds": args.seeds,
                       "timesteps": args.timesteps, **table}, out / "ablation.json")
    text = _markdown(table, args.segment)
    write_text_atomic(text, out / "ablation.md")
    print(text)
    return 0


if __name__ == "__main__":  # the CLI layer parses the flags and resolves the YAML
    from cli.ablate import main
    from common.cli import run_cli

    raise SystemExit(run_cli(main, prog="agents.ablate"))
