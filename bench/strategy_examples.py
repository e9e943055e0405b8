"""One example of every strategy on a real date of the embedded data, as a Markdown table.

    python bench/strategy_examples.py [--date 2016-06-01] [--price-scale 0.1]

Spot is the S&P 500 close times ``--price-scale`` (0.1: SPY-like, $1 strikes), the ATM volatility
is that day's VIX/100 (``options.surface.atm_iv_series``) and the rate the frame's ``rate``.
"""

from __future__ import annotations

import argparse

import pandas as pd

from data import load_market
from options import STRATEGY_NAMES, CostConfig, MarketState, StrategyConfig, build_position
from options.surface import SurfaceConfig, atm_iv_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", default="2016-06-01")
    parser.add_argument("--price-scale", type=float, default=0.1)
    parser.add_argument("--dte-days", type=float, default=30.0)
    args = parser.parse_args()
    frame = load_market("embedded")
    date = pd.Timestamp(args.date)
    surface, costs = SurfaceConfig(), CostConfig()
    atm = float(atm_iv_series(frame, surface).loc[date])
    market = MarketState(date, float(frame.loc[date, "close"]) * args.price_scale, atm,
                         float(frame.loc[date, "rate"]))
    strategy_cfg = StrategyConfig(dte_days=args.dte_days)
    print(f"{date.date()}: spot {market.spot:.2f}, ATM vol {atm:.4f}, rate {market.rate:.4f}, "
          f"1 contract per leg, target {args.dte_days:g} days, costs: ${costs.commission_per_contract_usd}"
          f"/contract + spread model")
    print("| strategy | legs (qty type strike @ fill) | expiry | entry cash flow $ | max loss $ | "
          "max profit $ | margin $ | delta sh | gamma sh/$ | theta $/day | vega $/pt |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in STRATEGY_NAMES:
        pos = build_position(name, market, contracts=1, strategy_cfg=strategy_cfg,
                             surface_cfg=surface, cost_cfg=costs)
        mark = pos.mark(market, surface, costs)
        legs = " ".join(f"{f.quantity_contracts:+d}{f.leg.option_type[0].upper()}{f.leg.strike:g}"
                        f"@{f.premium_per_share:.2f}" for f in pos.entry_fills)

        def money(x):
            return "unbounded" if x is None else f"{x:,.0f}"

        print(f"| {name} | {legs} | {pos.legs[0].expiry.date()} | "
              f"{pos.entry_cash_flow_usd:,.0f} | {money(pos.max_loss_usd)} | "
              f"{money(pos.max_profit_usd)} | "
              f"{pos.margin_requirement_usd(market, surface):,.0f} | {mark.delta_shares:.1f} | "
              f"{mark.gamma_shares_per_usd:.2f} | {mark.theta_usd_per_day:.2f} | "
              f"{mark.vega_usd_per_vol_point:.2f} |")


if __name__ == "__main__":
    main()
