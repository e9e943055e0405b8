"""Digest (and time) every cold-built structure table of a config: a bit-for-bit check.

For each segment (train, valid, test) of the config, an environment is made as ``train.py``
makes it (``load_checked_market``, ``envs.load_env_inputs``, ``envs.make_env``) with the table
cache off (``env.table_cache_dir`` null, so every block is built, none read), every block of
:data:`envs.portfolio.TABLE_BLOCK_BARS` bars is built cold (``UnitTables.ensure_bar``, as the
environment builds it) and hashed: every array of ``UnitTables.export_block`` (name, dtype,
shape, bytes; the refusal texts ``why`` are one of them). One sha256 per segment and one over
all is printed per set-up: ``base`` (the config as is) and ``options`` (other env options: more
open positions, the automatic exits, American exercise, other expiries, wings, moneyness
band, stress move and commission, so that more refusals of each kind occur). A change to the table code must leave
every digest unchanged.

``--time`` also prints the cold build seconds per block and per segment (the forecast panel
comes from its cache; computing it is not timed).

    python bench/table_digest.py [--config configs/quick.yaml] [--time] [--setups base options]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

SEGMENTS = ("train", "valid", "test")
SETUPS = {
    "base": [],
    "options": ["env.max_open_positions=2", "env.profit_target_fraction=0.5",
                "env.stop_loss_multiple=1.5", "env.close_at_dte_days=7",
                "options.exercise=american", "env.strategies.dte_days=45",
                "env.strategies.wing_width_strike_units=10",
                "env.strategies.max_abs_log_moneyness=0.1",
                "env.undefined_risk_stress_move_fraction=0.15",
                "options.costs.commission_per_contract_usd=20"],
}


def block_digest(arrays: dict[str, np.ndarray]) -> bytes:
    """sha256 of one exported block: every array's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.digest()


def segment_tables(cfg, segment: str, inputs) -> tuple[str, list[float]]:
    """Digest of every block of one segment built cold, and each block's build seconds."""
    from envs import make_env

    env = make_env(cfg, segment, inputs=inputs)
    tables = env.tables
    if tables.store is not None:
        raise SystemExit("table_digest: the table cache must be off (env.table_cache_dir null)")
    h = hashlib.sha256()
    seconds = []
    for block in range(tables.n_blocks):
        t0 = time.perf_counter()
        tables.ensure_bar(block * tables_block_bars())
        seconds.append(time.perf_counter() - t0)
        h.update(block_digest(tables.export_block(block)))
    return h.hexdigest(), seconds


def tables_block_bars() -> int:
    from envs.portfolio import TABLE_BLOCK_BARS

    return TABLE_BLOCK_BARS


def run_setup(config: str, name: str, overrides: list[str], show_time: bool) -> str:
    from agents.training import load_checked_market
    from config import load_config
    from envs import load_env_inputs

    cfg = load_config(config, [*overrides, "env.table_cache_dir=null"])
    frame = load_checked_market(cfg)
    inputs = load_env_inputs(cfg, progress=False, frame=frame)
    overall = hashlib.sha256()
    total_s, total_blocks = 0.0, 0
    for segment in SEGMENTS:
        digest, seconds = segment_tables(cfg, segment, inputs)
        overall.update(digest.encode())
        line = f"{name:8s} {segment:6s} {digest}"
        if show_time:
            line += (f"  {len(seconds)} blocks {sum(seconds):7.2f} s "
                     f"({sum(seconds) / len(seconds):.3f} s/block)")
        print(line, flush=True)
        total_s += sum(seconds)
        total_blocks += len(seconds)
    line = f"{name:8s} {'all':6s} {overall.hexdigest()}"
    if show_time:
        line += f"  {total_blocks} blocks {total_s:7.2f} s ({total_s / total_blocks:.3f} s/block)"
    print(line, flush=True)
    return overall.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--time", action="store_true", help="print cold build seconds")
    parser.add_argument("--setups", nargs="+", choices=sorted(SETUPS), default=list(SETUPS))
    args = parser.parse_args(argv)
    for name in args.setups:
        run_setup(args.config, name, SETUPS[name], args.time)
    return 0


if __name__ == "__main__":
    sys.exit(main())
