"""How much the American inversion changes a chain's implied vols (``options.exercise``).

    python -m options.exercise_ivs --chain FILE [--format eod|cboe|wide] [--rate R]
        [--dividends BARS.csv] [--out ivs.csv]

Every quote with a positive bid and time left is inverted three ways, at the chain's rate
(``--rate``, else its box-spread rate) and each expiry's put-call-parity carry
(:func:`options.smile.market_ivs`):

- ``iv_european``: Black-Scholes-Merton with the carry as a continuous yield (how SPX quotes,
  and SPY quotes under ``exercise: european``, are read);
- ``iv_american_yield``: the American CRR tree with the same carry, so the difference is the
  early-exercise premium alone;
- ``iv_american_cash`` (with ``--dividends``): the American tree with the cash dividends paid,
  projected causally (what ``exercise: american`` with dividends gives), the carry where no
  dividend has been paid yet.

The table (printed, one line per right and moneyness against the forward) gives the count,
the median and the largest absolute difference from ``iv_european`` in vol points, and the
quotes that only one inversion can read (a European price below the European intrinsic value
has no European vol).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from common.cli import run_cli
from common.errors import UserInputError
from options.american import DividendHistory
from options.chain_io import (
    CHAIN_FORMATS,
    chain_read_report,
    one_root_per_contract,
    read_chains,
    read_dividend_history,
)
from options.pricing import VOL_POINT, implied_vol_vectorized
from options.smile import implied_vol_american_quotes, market_ivs, parity_rate

__all__ = ["compare_exercise_ivs", "exercise_iv_summary", "main"]

_GROUPS = (("put", "itm"), ("put", "otm"), ("call", "itm"), ("call", "otm"))


def compare_exercise_ivs(chain: pd.DataFrame, rate: float,
                         dividends: DividendHistory | None = None) -> pd.DataFrame:
    """One row per quote with a positive bid and time left: ``quote_date, expiry,
    option_type, strike, dte_days, mid_per_share, underlying_price, carry_q, log_moneyness,
    moneyness`` ('itm'/'otm' against the parity forward), ``iv_european,
    iv_american_yield`` and, with ``dividends``, ``iv_american_cash`` (module docstring)."""
    ivs = market_ivs(one_root_per_contract(chain), rate)
    rows = ivs[~ivs["zero_bid"].to_numpy() & (ivs["t_years"].to_numpy() > 0)].reset_index(
        drop=True)
    rows["moneyness"] = np.where(rows["otm"].to_numpy(), "otm", "itm")
    rows["iv_european"] = implied_vol_vectorized(
        rows["mid_per_share"].to_numpy(), rows["option_type"].to_numpy(),
        rows["underlying_price"].to_numpy(), rows["strike"].to_numpy(),
        rows["t_years"].to_numpy(), rate, rows["carry_q"].to_numpy())
    rows["iv_american_yield"] = implied_vol_american_quotes(rows, rate, None)
    keep = ["quote_date", "expiry", "option_type", "strike", "dte_days", "mid_per_share",
            "underlying_price", "carry_q", "log_moneyness", "moneyness", "iv_european",
            "iv_american_yield"]
    if dividends is not None:
        rows["iv_american_cash"] = implied_vol_american_quotes(rows, rate, dividends)
        keep.append("iv_american_cash")
    return rows[keep]


def exercise_iv_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per right and moneyness, and per American column: ``n_quotes``, ``n_both`` (both vols
    exist), ``median_diff_pts``, ``median_abs_diff_pts``, ``max_abs_diff_pts`` (American minus
    European, vol points), ``only_american`` and ``only_european`` (quotes only one reads)."""
    out = []
    for column in [c for c in ("iv_american_yield", "iv_american_cash") if c in table]:
        for right, money in _GROUPS:
            g = table[(table["option_type"] == right) & (table["moneyness"] == money)]
            eu, am = g["iv_european"].to_numpy(), g[column].to_numpy()
            both = np.isfinite(eu) & np.isfinite(am)
            diff = (am[both] - eu[both]) / VOL_POINT
            out.append({
                "american": column, "option_type": right, "moneyness": money,
                "n_quotes": len(g), "n_both": int(both.sum()),
                "median_diff_pts": float(np.median(diff)) if both.any() else np.nan,
                "median_abs_diff_pts": float(np.median(np.abs(diff))) if both.any() else np.nan,
                "max_abs_diff_pts": float(np.abs(diff).max()) if both.any() else np.nan,
                "only_american": int((np.isfinite(am) & ~np.isfinite(eu)).sum()),
                "only_european": int((np.isfinite(eu) & ~np.isfinite(am)).sum())})
    return pd.DataFrame(out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m options.exercise_ivs",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--chain", nargs="+", required=True, help="chain CSV file(s)")
    p.add_argument("--format", choices=CHAIN_FORMATS, default=None)
    p.add_argument("--rate", type=float, default=None,
                   help="risk-free rate, decimal (default: the chain's box-spread rate)")
    p.add_argument("--dividends", default=None,
                   help="CSV of cash dividends paid (date, divCash), e.g. a daily-bars file")
    p.add_argument("--out", default=None, help="write the per-quote table to this CSV")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    dividends = read_dividend_history(args.dividends) if args.dividends else None
    chain = read_chains(args.chain, args.format)
    print(chain_read_report(chain).summary())
    rate = args.rate if args.rate is not None else parity_rate(chain)
    if rate is None:
        raise UserInputError(f"chain {args.chain}: too few put-call pairs at 30+ days to imply "
                             "a rate; pass --rate (decimal)")
    table = compare_exercise_ivs(chain, rate, dividends)
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"wrote {args.out}: {len(table)} quotes")
    print(f"rate {rate:.4f}; American minus European implied vol, vol points:")
    print(exercise_iv_summary(table).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="options.exercise_ivs"))
