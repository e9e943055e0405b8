"""Static-arbitrage check of a surface file, from the command line.

    python -m options.arbitrage --surface FILE [--json OUT]

Reads the surface YAML (``configs/surface_*.yaml``; schema errors exit 2), checks its model
prices over the grid of :class:`options.static_arbitrage.ArbitrageGrid` (log-moneyness
-1.0..+1.0, 1-365 days, volatility index 9-80, rates 0-6%, the file's dividend yield) for
call and put butterflies >= 0, calendars >= 0 at fixed forward moneyness, verticals within
[0, discounted width], calls <= spot and puts <= strike, plus the surface's closed-form SSVI
conditions (:func:`options.surface.surface_arbitrage_report`). Prints the number of checks,
the violations by kind and the worst cases; ``--json`` writes the same as a JSON object
(keys ``surface``, ``n_checked``, ``n_violations``, ``counts_by_kind``, ``worst``, ``grid``,
``tolerance_per_share``). Exit status: 0 when there is no violation, 1 when there is any,
2 for bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.cli import run_cli
from common.io import write_json_atomic
from options.static_arbitrage import (
    DEFAULT_GRID,
    ArbitrageGrid,
    ArbitrageReport,
    Violation,
    check_iv_function,
)
from options.surface import SurfaceArbitrageError, read_surface_file, surface_arbitrage_report

__all__ = [
    "DEFAULT_GRID",
    "ArbitrageGrid",
    "ArbitrageReport",
    "SurfaceArbitrageError",
    "Violation",
    "check_iv_function",
    "format_report",
    "main",
    "surface_arbitrage_report",
]

EXIT_VIOLATIONS = 1
WORST_CASES_PRINTED = 5


def format_report(report: ArbitrageReport, name: str) -> str:
    """The printed summary: counts, violations by kind, worst cases."""
    lines = [f"{name}: {report.n_violations} static-arbitrage violation(s) in "
             f"{report.n_checked} checks"]
    for kind, n in sorted(report.counts_by_kind.items()):
        lines.append(f"  {kind}: {n}")
    if report.worst:
        lines.append("worst:")
        lines += [f"  {v.describe()}" for v in report.worst[:WORST_CASES_PRINTED]]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m options.arbitrage",
                                description="Static-arbitrage check of a surface file.")
    p.add_argument("--surface", required=True, help="surface YAML (configs/surface_*.yaml)")
    p.add_argument("--json", default=None, help="write the report as JSON to this path")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cfg = read_surface_file(args.surface)
    report = surface_arbitrage_report(cfg)
    print(format_report(report, args.surface))
    if args.json:
        write_json_atomic({"surface": str(args.surface), **report.to_dict()}, Path(args.json))
    return EXIT_VIOLATIONS if report.n_violations else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="options.arbitrage"))
