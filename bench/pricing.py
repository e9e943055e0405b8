"""Pricing speed: our vectorised BSM against vollib called in a Python loop, in one run.

Prices 100,000 random European options (calls and puts, random spot, strike, expiry, rate,
vol and dividend yield) with :func:`options.pricing.bs_price` in one vectorised call. vollib
is timed in a Python loop over the first ``--vollib-subset`` options (5,000 by default) and
its rate is extrapolated to 100,000: the loop's cost per option is flat, so this is fair,
and the printout says so. Also times the scalar fast path (:func:`bs_price_scalar`, the
environment's hot loop) and checks that all three agree.

    python bench/pricing.py [--n 100000] [--vollib-subset 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from options.pricing import bs_greeks, bs_price, bs_price_scalar  # noqa: E402


def random_options(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    spot = rng.uniform(50.0, 500.0, n)
    return {
        "option_type": np.where(rng.random(n) < 0.5, "call", "put"),
        "spot": spot,
        "strike": spot * np.exp(rng.normal(0.0, 0.15, n)),
        "t_years": rng.uniform(1.0, 730.0, n) / 365.0,
        "rate": rng.uniform(0.0, 0.06, n),
        "iv_annualized": rng.uniform(0.05, 1.0, n),
        "dividend_yield": rng.uniform(0.0, 0.03, n),
    }


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--vollib-subset", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from vollib.black_scholes_merton import black_scholes_merton

    opts = random_options(args.n, args.seed)
    cols = [
        opts[k]
        for k in (
            "option_type",
            "spot",
            "strike",
            "t_years",
            "rate",
            "iv_annualized",
            "dividend_yield",
        )
    ]
    ours_s = best_of(lambda: bs_price(*cols), repeats=5)
    ours_prices = bs_price(*cols)
    greeks_s = best_of(lambda: bs_greeks(*cols), repeats=3)

    m = min(args.vollib_subset, args.n)
    flags = ["c" if o == "call" else "p" for o in opts["option_type"][:m]]
    rows = list(
        zip(
            flags,
            *(
                opts[k][:m].tolist()
                for k in ("spot", "strike", "t_years", "rate", "iv_annualized", "dividend_yield")
            ),
            strict=True,
        )
    )
    vollib_prices = np.empty(m)

    def vollib_loop() -> None:
        for i, (f, s, k, t, r, v, q) in enumerate(rows):
            vollib_prices[i] = black_scholes_merton(f, s, k, t, r, v, q)

    vollib_s_subset = best_of(vollib_loop, repeats=1)
    vollib_s = vollib_s_subset * args.n / m

    is_call = [o == "call" for o in opts["option_type"][:m]]
    scalar_rows = list(
        zip(
            is_call,
            *(
                opts[k][:m].tolist()
                for k in ("spot", "strike", "t_years", "rate", "iv_annualized", "dividend_yield")
            ),
            strict=True,
        )
    )
    scalar_prices = np.empty(m)

    def scalar_loop() -> None:
        for i, row in enumerate(scalar_rows):
            scalar_prices[i] = bs_price_scalar(*row)

    scalar_s_subset = best_of(scalar_loop, repeats=3)

    diff_vollib = float(np.max(np.abs(ours_prices[:m] - vollib_prices)))
    diff_scalar = float(np.max(np.abs(ours_prices[:m] - scalar_prices)))
    print(
        f"options: {args.n:,} random (seed {args.seed}); vollib timed on the first {m:,} "
        f"in a Python loop and extrapolated linearly to {args.n:,}"
    )
    print(f"ours vectorised bs_price : {ours_s * 1e3:9.2f} ms  {args.n / ours_s:14,.0f} options/s")
    print(
        f"ours vectorised bs_greeks: {greeks_s * 1e3:9.2f} ms  {args.n / greeks_s:14,.0f} options/s"
    )
    print(
        f"vollib loop (extrapolated): {vollib_s * 1e3:8.2f} ms  {args.n / vollib_s:14,.0f} options/s"
        f"  (measured {vollib_s_subset * 1e3:.2f} ms for {m:,})"
    )
    print(
        f"ours scalar bs_price_scalar loop: {scalar_s_subset / m * 1e6:.2f} us/option "
        f"({m / scalar_s_subset:,.0f} options/s; {m / scalar_s_subset / 4:,.0f} 4-leg steps/s "
        f"of pricing alone)"
    )
    print(f"max |ours - vollib| = {diff_vollib:.2e}; max |vectorised - scalar| = {diff_scalar:.2e}")
    print(f"speed-up vectorised vs vollib loop: {vollib_s / ours_s:,.0f}x (target >= 30x)")


if __name__ == "__main__":
    main()
