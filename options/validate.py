"""Model versus market: the model surface's quotes against a real chain.

    python -m options.validate --chain FILE [--format F] [--surface YAML] [--rate R]
        [--drop-crossed] [--market embedded|none] --out DIR

Writes ``DIR/validation.json``, ``DIR/report.md`` and ``DIR/iv_error_by_bucket.png``.

Quotes compared: out-of-the-money (puts below the parity forward, calls at or above it), a
positive bid, |log(K/S)| <= :data:`MAX_ABS_LOG_MONEYNESS`, :data:`DTE_RANGE` days. The model
prices each with :func:`options.surface.iv_at` at the date's implied-vol index (the market
frame's ``iv_index`` where it covers the date, else the chain's own CBOE-method index) times
``index_to_atm_ratio``, BSM at the rate and the surface's ``dividend_yield_annualized`` (0
where unset, as the environment does today), and the cost model's bid/ask. Options on the
S&P 500 index are priced by the model at 1/10 of the index (SPY-like, the environment's
scaling) and scaled back; market quotes stay at the index level.

JSON keys (contract): ``n_quotes``, ``otm_median_abs_iv_error_pts``, ``otm_mean_iv_error_pts``,
``buckets`` (rows: ``moneyness_bucket, dte_bucket, n, median_iv_error_pts,
mean_iv_error_pts, median_abs_iv_error_pts, median_price_error_pct, median_width_ratio``),
``put_spread_credit_error_pct`` (model credit / market credit - 1, median over entry dates,
in %), ``width_ratio_median`` (model / market bid-ask width), plus
``otm_median_price_error_pct``, ``iron_condor_credit_error_pct``,
``put_spread_mark_error_pct_of_width`` and ``iron_condor_mark_error_pct_of_width`` (median
absolute difference of daily marks, model minus market, in % of the wing width),
``n_put_spread_entries``, ``n_iron_condor_entries``, ``surface``, ``chain``; and the 25-delta
call spread beside them (``call_spread_credit_error_pct``, ``call_spread_mark_error_pct_of_width``,
``n_call_spread_entries``).

Widths and stress: the model's bid-ask comes from the cost model at the date's at-the-money
vol, the quote's moneyness and days to expiry (:mod:`options.costs`).
``width_ratio_by_vol_tercile`` (rows ``tercile, index_min, index_max, n_dates, n_quotes,
median_width_ratio``) splits the dates into terciles of their implied-vol index.
``stress_week`` is the calendar week (Monday to Friday) whose dates have the highest mean
index: ``start, end, mean_index, n_quotes, otm_median_abs_iv_error_pts,
otm_mean_iv_error_pts, width_ratio_median`` and the three structures' credit errors for
entries that week. ``read_report`` is what the chain reader set aside
(:class:`options.chain_io.ChainReadReport`) and ``fallbacks`` the dates without their own
smile or index and the dividend-yield fallback (:meth:`ChainMarket.fallback_lines`); both are
printed too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common.cli import run_cli  # noqa: E402
from common.errors import UserInputError  # noqa: E402
from common.io import write_json_atomic, write_text_atomic  # noqa: E402
from common.units import PERCENT_PER_UNIT
from options.calibrate import load_frame  # noqa: E402
from options.chain_io import CHAIN_FORMATS, chain_read_report, read_chain  # noqa: E402
from options.chain_market import (  # noqa: E402
    ChainMarket,
    add_exercise_arguments,
    exercise_arguments,
    prepare_chain_market,
)
from options.costs import CostConfig, bid_ask_per_share, load_cost_config  # noqa: E402
from options.pricing import DAYS_PER_YEAR, VOL_POINT, bs_greeks, bs_price  # noqa: E402
from options.surface import SurfaceConfig, iv_at, load_surface_config  # noqa: E402

__all__ = [
    "DTE_RANGE",
    "MAX_ABS_LOG_MONEYNESS",
    "compare_quotes",
    "stress_week",
    "width_by_vol_tercile",
    "main",
    "model_quotes",
    "structure_errors",
    "validation_summary",
]

MAX_ABS_LOG_MONEYNESS = 0.15
DTE_RANGE = (7, 130)
MONEYNESS_EDGES_PCT = (-15.0, -8.0, -4.0, -1.0, 1.0, 4.0, 8.0, 15.0)
DTE_EDGES_DAYS = (7, 14, 30, 60, 130)
STRUCTURE_DTE_DAYS = 30
PUT_SPREAD_DELTA_ABS = 0.25
CALL_SPREAD_DELTA_ABS = 0.25
CONDOR_DELTA_ABS = 0.16
WING_WIDTH_MODEL_UNITS = 5.0
"""Wing width at the model's (SPY-like) scale: $5, i.e. 50 index points for SPX."""


def model_quotes(cm: ChainMarket, cfg: SurfaceConfig, cost: CostConfig, dates, strikes,
                 t_years, option_type) -> dict[str, np.ndarray]:
    """Model IV, mid, bid and ask per share at the chain's (index-level) scale."""
    dates = pd.DatetimeIndex(dates)
    index = cm.index_by_date.reindex(dates).to_numpy(float)
    spot = cm.spot_by_date.reindex(dates).to_numpy(float)
    scale = cm.model_scale
    q = 0.0 if cfg.dividend_yield_annualized is None else cfg.dividend_yield_annualized
    atm = cfg.index_to_atm_ratio * index
    iv = np.asarray(iv_at(atm, spot, strikes, t_years, cfg))
    mid_scaled = np.asarray(bs_price(option_type, spot * scale, np.asarray(strikes) * scale,
                                     t_years, cm.rate, iv, q), dtype=float)
    bid, ask = bid_ask_per_share(mid_scaled, cost, atm_iv_annualized=atm,
                                 log_moneyness=np.log(np.asarray(strikes, float) / spot),
                                 dte_days=np.asarray(t_years, float) * DAYS_PER_YEAR)
    return {"iv": iv, "mid": mid_scaled / scale, "bid": bid / scale, "ask": ask / scale}


def compare_quotes(cm: ChainMarket, cfg: SurfaceConfig, cost: CostConfig) -> pd.DataFrame:
    """One row per compared quote with model and market IV, mid and width."""
    q = cm.ivs
    log_m = np.log(q["strike"] / q["underlying_price"])
    lo, hi = DTE_RANGE
    keep = (q["iv_market"].notna() & (log_m.abs() <= MAX_ABS_LOG_MONEYNESS)
            & q["dte_days"].between(lo, hi) & cm.index_by_date.reindex(q["quote_date"])
            .notna().to_numpy())
    q = q.loc[keep].copy()
    q["log_m_spot"] = log_m[keep]
    m = model_quotes(cm, cfg, cost, q["quote_date"], q["strike"].to_numpy(float),
                     q["t_years"].to_numpy(float), q["option_type"].to_numpy())
    q["iv_model"] = m["iv"]
    q["iv_error_pts"] = (m["iv"] - q["iv_market"].to_numpy()) / VOL_POINT
    q["price_error_pct"] = (m["mid"] / q["mid_per_share"].to_numpy() - 1.0) * PERCENT_PER_UNIT
    width_mkt = (q["ask_per_share"] - q["bid_per_share"]).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        q["width_ratio"] = np.where(width_mkt > 0, (m["ask"] - m["bid"]) / width_mkt, np.nan)
    q["moneyness_bucket"] = pd.cut(q["log_m_spot"] * PERCENT_PER_UNIT, MONEYNESS_EDGES_PCT,
                                   include_lowest=True).astype(str)
    q["dte_bucket"] = pd.cut(q["dte_days"], DTE_EDGES_DAYS, include_lowest=True).astype(str)
    return q.reset_index(drop=True)


def _buckets(cmp: pd.DataFrame) -> list[dict]:
    rows = []
    for (mb, db), g in cmp.groupby(["moneyness_bucket", "dte_bucket"], sort=False):
        err = g["iv_error_pts"]
        rows.append({"moneyness_bucket": mb, "dte_bucket": db, "n": int(len(g)),
                     "median_iv_error_pts": float(err.median()),
                     "mean_iv_error_pts": float(err.mean()),
                     "median_abs_iv_error_pts": float(err.abs().median()),
                     "median_price_error_pct": float(g["price_error_pct"].median()),
                     "median_width_ratio": float(g["width_ratio"].median())})

    def left_edge(label: str) -> float:
        return float(label.strip("([").split(",")[0])

    return sorted(rows, key=lambda r: (left_edge(r["moneyness_bucket"]),
                                       left_edge(r["dte_bucket"])))


def _nearest_strike(table: pd.DataFrame, target: np.ndarray) -> np.ndarray:
    strikes = table["strike"].to_numpy()
    return strikes[np.abs(strikes[None, :] - target[:, None]).argmin(axis=1)]


STRUCTURES = ("put_spread", "call_spread", "iron_condor")


def structure_series(cm: ChainMarket, cfg: SurfaceConfig, cost: CostConfig) -> pd.DataFrame:
    """One row per structure and day: ``structure, entry_date, date, kind`` (``credit``: the
    entry day's model / market - 1; ``mark``: a later day's |model - market| / wing) and
    ``value``, for ~30-day structures on listed strikes chosen by market delta, priced by
    the model and the market (mids of valid quotes)."""
    ivs = cm.ivs
    live = ivs[ivs["iv_market"].notna()].copy()
    live["delta"] = bs_greeks(live["option_type"].to_numpy(), live["underlying_price"]
                              .to_numpy(), live["strike"].to_numpy(), live["t_years"].to_numpy(),
                              cm.rate, live["iv_market"].to_numpy(),
                              live["carry_q"].to_numpy())["delta"]
    wing = WING_WIDTH_MODEL_UNITS / cm.model_scale
    keyed = ivs.set_index(["quote_date", "expiry", "option_type", "strike"])
    mids = keyed["mid_per_share"][~keyed["zero_bid"].to_numpy()]
    rows = []
    builders = {"put_spread": _put_spread_legs, "call_spread": _call_spread_legs,
                "iron_condor": _condor_legs}
    for name in STRUCTURES:
        legs_for = builders[name]
        for date, day in live.groupby("quote_date", sort=True):
            dtes = day["dte_days"].unique()
            if len(dtes) == 0:
                continue
            target = dtes[np.argmin(np.abs(dtes - STRUCTURE_DTE_DAYS))]
            sl = day[day["dte_days"] == target]
            legs = legs_for(sl, wing)
            if legs is None:
                continue
            expiry = sl["expiry"].iloc[0]
            for d in cm.dates[(cm.dates >= date) & (cm.dates < expiry)]:
                keys = [(d, expiry, t, k) for t, k, _ in legs]
                if not all(key in mids.index for key in keys):
                    continue
                mkt = sum(-s * mids.loc[key] for key, (_, _, s) in zip(keys, legs, strict=True))
                t_years = (expiry - d).days / DAYS_PER_YEAR
                mod = model_quotes(cm, cfg, cost, [d] * len(legs), np.array([k for _, k, _ in legs]),
                                   np.full(len(legs), t_years), np.array([t for t, _, _ in legs]))
                model = float(np.sum(-np.array([s for _, _, s in legs]) * mod["mid"]))
                if d == date:
                    if mkt > 0:
                        rows.append((name, date, d, "credit", model / mkt - 1.0))
                else:
                    rows.append((name, date, d, "mark", abs(model - mkt) / wing))
    return pd.DataFrame(rows, columns=["structure", "entry_date", "date", "kind", "value"])


def _structure_summary(series: pd.DataFrame) -> dict:
    results = {}
    for name in STRUCTURES:
        mine = series[series["structure"] == name]
        credits = mine.loc[mine["kind"] == "credit", "value"]
        marks = mine.loc[mine["kind"] == "mark", "value"]
        results[f"{name}_credit_error_pct"] = (float(credits.median() * PERCENT_PER_UNIT) if len(credits)
                                               else None)
        results[f"{name}_mark_error_pct_of_width"] = (float(marks.median() * PERCENT_PER_UNIT)
                                                      if len(marks) else None)
        results[f"n_{name}_entries"] = int(len(credits))
    return results


def structure_errors(cm: ChainMarket, cfg: SurfaceConfig, cost: CostConfig) -> dict:
    """Median entry-credit errors (%) and daily mark errors (% of the wing) of the 25-delta
    put and call spreads and the 16-delta iron condor (:func:`structure_series`)."""
    return _structure_summary(structure_series(cm, cfg, cost))


def width_by_vol_tercile(cmp: pd.DataFrame, cm: ChainMarket) -> list[dict]:
    """Median model / market width ratio per tercile of the dates' implied-vol index."""
    index = cm.index_by_date.dropna()
    if len(index) < 3:
        return []
    tercile = pd.qcut(index.rank(method="first"), 3, labels=False)
    rows = []
    for t in range(3):
        dates = tercile.index[tercile.to_numpy() == t]
        g = cmp[cmp["quote_date"].isin(dates)]
        rows.append({"tercile": t + 1, "index_min": float(index[dates].min()),
                     "index_max": float(index[dates].max()), "n_dates": int(len(dates)),
                     "n_quotes": int(len(g)),
                     "median_width_ratio": (float(g["width_ratio"].median()) if len(g)
                                            else None)})
    return rows


def stress_week(cmp: pd.DataFrame, cm: ChainMarket, series: pd.DataFrame) -> dict | None:
    """The figures of the calendar week with the highest mean implied-vol index."""
    index = cm.index_by_date.dropna()
    if index.empty:
        return None
    week = index.index.to_period("W-FRI")
    means = index.groupby(week).mean()
    top = means.idxmax()
    dates = index.index[week == top]
    g = cmp[cmp["quote_date"].isin(dates)]
    err = g["iv_error_pts"]
    out = {"start": str(dates.min().date()), "end": str(dates.max().date()),
           "mean_index": float(means.max()), "n_quotes": int(len(g)),
           "otm_median_abs_iv_error_pts": float(err.abs().median()) if len(g) else None,
           "otm_mean_iv_error_pts": float(err.mean()) if len(g) else None,
           "width_ratio_median": float(g["width_ratio"].median()) if len(g) else None}
    out.update(_structure_summary(series[series["entry_date"].isin(dates)]))
    return out


def _put_spread_legs(sl: pd.DataFrame, wing: float):
    puts = sl[sl["option_type"] == "put"]
    if len(puts) < 2:
        return None
    short = puts.loc[(puts["delta"].abs() - PUT_SPREAD_DELTA_ABS).abs().idxmin()]
    long_k = _nearest_strike(puts, np.array([short["strike"] - wing]))[0]
    if long_k >= short["strike"]:
        return None
    return [("put", float(short["strike"]), -1), ("put", float(long_k), 1)]


def _call_spread_legs(sl: pd.DataFrame, wing: float):
    calls = sl[sl["option_type"] == "call"]
    if len(calls) < 2:
        return None
    short = calls.loc[(calls["delta"].abs() - CALL_SPREAD_DELTA_ABS).abs().idxmin()]
    long_k = _nearest_strike(calls, np.array([short["strike"] + wing]))[0]
    if long_k <= short["strike"]:
        return None
    return [("call", float(short["strike"]), -1), ("call", float(long_k), 1)]


def _condor_legs(sl: pd.DataFrame, wing: float):
    puts = sl[sl["option_type"] == "put"]
    calls = sl[sl["option_type"] == "call"]
    if len(puts) < 2 or len(calls) < 2:
        return None
    sp = puts.loc[(puts["delta"].abs() - CONDOR_DELTA_ABS).abs().idxmin()]
    sc = calls.loc[(calls["delta"].abs() - CONDOR_DELTA_ABS).abs().idxmin()]
    lp = _nearest_strike(puts, np.array([sp["strike"] - wing]))[0]
    lc = _nearest_strike(calls, np.array([sc["strike"] + wing]))[0]
    if lp >= sp["strike"] or lc <= sc["strike"]:
        return None
    return [("put", float(sp["strike"]), -1), ("put", float(lp), 1),
            ("call", float(sc["strike"]), -1), ("call", float(lc), 1)]


def validation_summary(cm: ChainMarket, cfg: SurfaceConfig, cost: CostConfig | None = None
                       ) -> tuple[dict, pd.DataFrame]:
    """The JSON document (module docstring) and the per-quote comparison."""
    cost = cost or CostConfig()
    cmp = compare_quotes(cm, cfg, cost)
    err = cmp["iv_error_pts"]
    doc = {
        "n_quotes": int(len(cmp)),
        "otm_median_abs_iv_error_pts": float(err.abs().median()),
        "otm_mean_iv_error_pts": float(err.mean()),
        "otm_median_iv_error_pts": float(err.median()),
        "otm_median_price_error_pct": float(cmp["price_error_pct"].median()),
        "width_ratio_median": float(cmp["width_ratio"].median()),
        "buckets": _buckets(cmp),
    }
    series = structure_series(cm, cfg, cost)
    doc.update(_structure_summary(series))
    doc["width_ratio_by_vol_tercile"] = width_by_vol_tercile(cmp, cm)
    doc["stress_week"] = stress_week(cmp, cm, series)
    report = chain_read_report(cm.chain)
    doc["read_report"] = None if report is None else report.to_dict()
    doc["fallbacks"] = cm.fallback_lines()
    doc["chain"] = {
        "source": cm.chain.attrs.get("source"), "first_date": str(cm.dates[0].date()),
        "last_date": str(cm.dates[-1].date()), "n_dates": int(len(cm.dates)),
        "rate": cm.rate, "rate_source": cm.rate_source, "parity_dividend_yield":
        cm.dividend_yield, "model_price_scale": cm.model_scale,
        "index_source_counts": {k: int(v) for k, v in cm.index_source.value_counts().items()},
        "dividend_yield_source": cm.dividend_yield_source,
        "selection": {"max_abs_log_moneyness": MAX_ABS_LOG_MONEYNESS,
                      "dte_days": list(DTE_RANGE)},
    }
    doc["surface"] = cfg.model_dump()
    return doc, cmp


def _num(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _report(doc: dict, surface_name: str) -> str:
    lines = [
        "# Model versus market", "",
        f"Chain: `{doc['chain']['source']}`, {doc['chain']['first_date']} to "
        f"{doc['chain']['last_date']} ({doc['chain']['n_dates']} dates). Surface: {surface_name}.",
        "",
        "| figure | value |", "|---|---|",
        f"| out-of-the-money quotes compared | {doc['n_quotes']} |",
        f"| median abs IV error (vol points) | {doc['otm_median_abs_iv_error_pts']:.2f} |",
        f"| mean IV error, model - market (vol points) | {doc['otm_mean_iv_error_pts']:+.2f} |",
        f"| median price error (% of market mid) | {doc['otm_median_price_error_pct']:+.1f} |",
        f"| median width ratio (model / market) | {doc['width_ratio_median']:.2f} |",
    ]
    for key in ("put_spread_credit_error_pct", "call_spread_credit_error_pct",
                "iron_condor_credit_error_pct", "put_spread_mark_error_pct_of_width",
                "call_spread_mark_error_pct_of_width", "iron_condor_mark_error_pct_of_width"):
        val = doc.get(key)
        lines.append(f"| {key} | {'n/a' if val is None else f'{val:+.1f}'} |")
    lines += ["", "## Bid-ask width by volatility tercile", "",
              "| tercile | index range | dates | quotes | median width ratio (model / market) |",
              "|---|---|---|---|---|"]
    for r in doc["width_ratio_by_vol_tercile"]:
        lines.append(f"| {r['tercile']} | {r['index_min']:.3f}-{r['index_max']:.3f} | "
                     f"{r['n_dates']} | {r['n_quotes']} | {_num(r['median_width_ratio'], '.2f')} |")
    sw = doc.get("stress_week")
    if sw:
        lines += ["", f"## Stress week {sw['start']} to {sw['end']} (mean index "
                      f"{sw['mean_index']:.3f})", "", "| figure | value |", "|---|---|",
                  f"| quotes compared | {sw['n_quotes']} |",
                  f"| median abs IV error (vol points) | "
                  f"{_num(sw['otm_median_abs_iv_error_pts'], '.2f')} |",
                  f"| mean IV error (vol points) | {_num(sw['otm_mean_iv_error_pts'], '+.2f')} |",
                  f"| median width ratio | {_num(sw['width_ratio_median'], '.2f')} |"]
        for name in STRUCTURES:
            lines.append(f"| {name}_credit_error_pct ({sw[f'n_{name}_entries']} entries) | "
                         f"{_num(sw[f'{name}_credit_error_pct'], '+.1f')} |")
    rr = doc.get("read_report")
    if rr:
        parts = ", ".join(f"{k} {v}" for k, v in rr["set_aside"].items())
        lines += ["", f"Chain rows read {rr['n_rows_read']}, kept {rr['n_rows_kept']}; set aside "
                      f"as fill prices: {parts}."]
    if doc.get("fallbacks"):
        lines += ["", "Dates without their own smile or index, and other fallbacks:", ""]
        lines += [f"- {line}" for line in doc["fallbacks"]]
    lines += ["", "## IV error by moneyness (log K/S, %) and days to expiry", "",
              "| moneyness | DTE | n | median | mean | median abs | price err % | width ratio |",
              "|---|---|---|---|---|---|---|---|"]
    for r in doc["buckets"]:
        lines.append(f"| {r['moneyness_bucket']} | {r['dte_bucket']} | {r['n']} | "
                     f"{r['median_iv_error_pts']:+.2f} | {r['mean_iv_error_pts']:+.2f} | "
                     f"{r['median_abs_iv_error_pts']:.2f} | {r['median_price_error_pct']:+.1f} | "
                     f"{r['median_width_ratio']:.2f} |")
    lines += ["", "![IV error by bucket](iv_error_by_bucket.png)", ""]
    return "\n".join(lines)


def _plot(cmp: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for db, g in cmp.groupby("dte_bucket", sort=True):
        med = g.groupby(pd.cut(g["log_m_spot"] * PERCENT_PER_UNIT, MONEYNESS_EDGES_PCT), observed=True)[
            "iv_error_pts"].median()
        ax.plot([iv.mid for iv in med.index], med.to_numpy(), marker="o", label=f"DTE {db}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("log-moneyness log(K/S), %")
    ax.set_ylabel("median IV error, model - market (vol points)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m options.validate",
                                description="Model surface versus a real chain.")
    p.add_argument("--chain", required=True)
    p.add_argument("--format", choices=CHAIN_FORMATS, default=None)
    p.add_argument("--surface", default=None, help="surface YAML (default: built-in surface)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("--drop-crossed", action="store_true",
                   help="kept for earlier scripts: crossed quotes are always set aside, counted")
    p.add_argument("--costs", default=None,
                   help="cost YAML (costs: CostConfig fields; default: built-in CostConfig())")
    p.add_argument("--market", choices=("embedded", "none"), default="embedded")
    add_exercise_arguments(p)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    cfg = load_surface_config(args.surface) if args.surface else SurfaceConfig()
    chain = read_chain(args.chain, args.format, drop_crossed=args.drop_crossed)
    print(chain_read_report(chain).summary())
    q_default = cfg.dividend_yield_annualized or 0.0
    cm = prepare_chain_market(chain, frame=load_frame(args.market), rate=args.rate,
                              fit_all_smiles=False, default_dividend_yield=q_default,
                              **exercise_arguments(args))
    for line in cm.fallback_lines():
        print(f"fallback: {line}")
    cost = load_cost_config(args.costs) if args.costs else CostConfig()
    doc, cmp = validation_summary(cm, cfg, cost)
    if cmp.empty:
        raise UserInputError(f"chain '{args.chain}': no out-of-the-money quote with a valid "
                             f"two-sided quote, |log(K/S)| <= {MAX_ABS_LOG_MONEYNESS} and "
                             f"{DTE_RANGE[0]}-{DTE_RANGE[1]} days to compare")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(cmp, out / "iv_error_by_bucket.png")
    write_text_atomic(_report(doc, args.surface or "built-in default"), out / "report.md")
    write_json_atomic(doc, out / "validation.json")
    print(" ".join(f"{k}={doc[k]:.3f}" if isinstance(doc[k], float) else f"{k}={doc[k]}"
                   for k in ("n_quotes", "otm_median_abs_iv_error_pts", "otm_mean_iv_error_pts",
                             "put_spread_credit_error_pct", "call_spread_credit_error_pct",
                             "iron_condor_credit_error_pct", "width_ratio_median")))
    print("width ratio by vol tercile: " + ", ".join(
        f"{r['index_min']:.3f}-{r['index_max']:.3f}: {_num(r['median_width_ratio'], '.2f')}"
        for r in doc["width_ratio_by_vol_tercile"]))
    sw = doc["stress_week"]
    if sw:
        print(f"stress week {sw['start']}..{sw['end']} (index {sw['mean_index']:.3f}): median abs "
              f"IV error {_num(sw['otm_median_abs_iv_error_pts'], '.2f')}, width ratio "
              f"{_num(sw['width_ratio_median'], '.2f')}, credits put/call/condor "
              + "/".join(_num(sw[f'{n}_credit_error_pct'], '+.1f') for n in STRUCTURES))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, prog="options.validate"))
