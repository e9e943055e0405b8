"""Fit and check the ``garch_vrp`` implied-vol proxy on the embedded S&P 500 and VIX.

    python -m options.iv_proxy_fit [--json OUT]

Prints the VIX/GARCH ratio fitted on 2014-2015 (:data:`options.iv_proxy.GARCH_VRP_RATIO`, the
shipped constant, beside it) and the out-of-sample errors against the real VIX of ``garch_vrp``
(ratio fitted on 2014-2016, scored on 2017-2018) and of the earlier realised-vol proxies on the
same bars (:func:`options.iv_proxy.fit_report`). A separate module from :mod:`options.iv_proxy`,
which the ``options`` package imports (``python -m`` on it would run a second copy).
"""

from __future__ import annotations

import argparse

import data
from common.cli import run_cli
from common.io import write_json_atomic
from options.iv_proxy import fit_report

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m options.iv_proxy_fit",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="OUT", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    report = fit_report(data.load_market("embedded"))
    print(f"GARCH_VRP_RATIO = {report['ratio_all']}  (fitted on {report['fitted_on']}, "
          f"{report['bars_all']} bars; shipped: {report['shipped_ratio']})")
    print(f"out of sample: ratio {report['ratio_fit_before_split']} fitted before "
          f"{report['split']} ({report['bars_before_split']} bars), scored on "
          f"{report['test_bars']} bars from {report['split']} "
          f"(mean VIX {report['test_mean_vix_vol_points']:.2f})")
    for name, row in report["out_of_sample"].items():
        print(f"  {name:20s} median |error| {row['median_abs_error_vol_points']:5.2f} vol points,"
              f" mean error {row['mean_error_vol_points']:+5.2f}")
    if args.json:
        write_json_atomic(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="python -m options.iv_proxy_fit"))
