"""Real-chain pipeline speed on the shared SPX file (550k rows): import, preparation (parity,
implied vols, CBOE index), surface calibration, model-versus-market summary and the chain quote
source (smile fits for every bar, then quotes), one run each.

    python bench/chains.py [--chain ../shared/data/real_chains/spx_eod_chains_...csv.gz]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from options.calendar import timestamp_close_ns  # noqa: E402
from options.calibrate import calibration_quotes, fit_surface  # noqa: E402
from options.chain_io import read_chain  # noqa: E402
from options.chain_market import prepare_chain_market  # noqa: E402
from options.quotes_chain import ChainQuoteSource, MarketBars  # noqa: E402
from options.surface import SurfaceConfig  # noqa: E402
from options.validate import validation_summary  # noqa: E402

DEFAULT_CHAIN = (Path(__file__).resolve().parents[2] / "shared" / "data" / "real_chains"
                 / "spx_eod_chains_2019-04-25_2019-07-22.csv.gz")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--chain", default=str(DEFAULT_CHAIN))
    args = p.parse_args()
    times = {}
    t0 = time.perf_counter()
    chain = read_chain(args.chain)
    times["read_chain"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cm = prepare_chain_market(chain, fit_all_smiles=False)
    times["prepare_chain_market"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg, _ = fit_surface(calibration_quotes(cm))
    times["fit_surface"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    validation_summary(cm, SurfaceConfig())
    times["validation_summary"] = time.perf_counter() - t0
    dates = cm.dates
    bars = MarketBars(dates=dates, close_ns=np.array([timestamp_close_ns(d) for d in dates]),
                      spot=cm.spot_by_date.to_numpy(), atm_iv=cm.index_by_date.to_numpy(),
                      rate=np.full(len(dates), cm.rate), dividend_yield=cm.dividend_yield)
    t0 = time.perf_counter()
    src = ChainQuoteSource(bars, cm.chain)
    times["chain_source_init (smiles)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = 0
    for bar in range(len(dates)):
        expiry = src.expiries(bar)[5]
        strikes = src.strikes(bar, expiry, "put")
        src.quote(bar, "put", strikes, expiry)
        n += len(strikes)
    times[f"quotes ({n} contracts, {len(dates)} calls)"] = time.perf_counter() - t0
    print(f"{len(chain)} rows, {len(dates)} sessions")
    for k, v in times.items():
        print(f"{k:40s} {v:8.2f} s")


if __name__ == "__main__":
    main()
