"""Small, well-formed run folders and executor journals for the dashboard's tests and bench.

The run folder has every file the dashboard reads, in the formats train.py, evaluate.py and
``python -m forecasters`` write; the numbers are synthetic (a seeded random walk around the
embedded data's real closes), so tests can check the pages show exactly what the files hold.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from common.analytics import GREEK_COLUMNS, pnl_attribution
from data.market import load_market

SCHEMA = Path(__file__).resolve().parent.parent / "execution" / "journal_schema.sql"
EVAL_START, EVAL_END = "2016-01-04", "2016-06-30"
PANEL_START = "2015-07-01"
HORIZONS = (1, 2, 3, 4, 5)
LEVELS = (0.05, 0.125, 0.5, 0.875, 0.95)
Z = {0.05: -1.6449, 0.125: -1.1503, 0.5: 0.0, 0.875: 1.1503, 0.95: 1.6449}
BASELINES = ("cash", "buy_and_hold", "iron_condor")
START_EQUITY_USD = 100_000.0
TB_TAGS = ("eval/sharpe", "eval/return_pct", "env/episode_return_pct", "train/approx_kl")


def _closes() -> pd.Series:
    return load_market("embedded", start=PANEL_START, end="2016-07-31")["close"]


def _equity_frame(dates: pd.DatetimeIndex, rng: np.random.Generator, drift: float,
                  greeks: bool) -> pd.DataFrame:
    returns = rng.normal(drift, 0.004, len(dates))
    returns[0] = 0.0
    equity = START_EQUITY_USD * np.cumprod(1 + returns)
    frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "equity_usd": equity,
                          "cash_usd": equity, "margin_used_usd": 0.0,
                          "spot": 200 + np.cumsum(rng.normal(0, 1, len(dates))),
                          "action": "hold", "open_positions": 0})
    if greeks:
        frame["delta_shares"] = rng.normal(0, 20, len(dates))
        frame["gamma_shares_per_usd"] = -np.abs(rng.normal(0, 1, len(dates)))
        frame["theta_usd_per_day"] = np.abs(rng.normal(50, 10, len(dates)))
        frame["vega_usd_per_vol_point"] = -np.abs(rng.normal(300, 50, len(dates)))
        frame["atm_iv"] = 0.15 + 0.01 * np.sin(np.arange(len(dates)) / 9)
        frame["costs_usd"] = np.where(np.arange(len(dates)) % 10 == 1, 26.0, 0.0)
    return frame


def _trades(dates: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for k, start in enumerate(range(1, len(dates) - 12, 20)):
        open_date, close_date = dates[start], dates[start + 10]
        expiry = (open_date + pd.Timedelta(days=30)).strftime("%Y-%m-%d")
        pnl = 150.0 * (1 if k % 3 else -2)
        rows.append({"trade_id": k + 1, "strategy": "iron_condor",
                     "legs": f"-5 put 190 {expiry};-5 call 215 {expiry};+5 put 185 {expiry};"
                             f"+5 call 220 {expiry}",
                     "open_date": open_date.strftime("%Y-%m-%d"),
                     "close_date": close_date.strftime("%Y-%m-%d"), "exit_reason": "agent",
                     "contracts": 5, "entry_cash_flow_usd": 500.0,
                     "exit_cash_flow_usd": -500.0 + pnl, "pnl_usd": pnl, "commission_usd": 26.0,
                     "entry_spot": 200.0, "exit_spot": 201.0, "entry_iv": 0.15,
                     "entry_dte_days": 30.0, "entry_delta_shares": -10.0, "exit_iv": 0.14})
    return pd.DataFrame(rows)


def _metrics(curves: dict[str, pd.DataFrame]) -> dict[str, dict]:
    out = {}
    for name, frame in curves.items():
        equity = frame["equity_usd"].to_numpy()
        r = np.diff(equity) / equity[:-1]
        sharpe = float(r.mean() / r.std(ddof=1) * np.sqrt(252)) if r.std() > 0 else 0.0
        peak = np.maximum.accumulate(equity)
        out[name] = {"total_return_pct": float(100 * (equity[-1] / equity[0] - 1)),
                     "sharpe": sharpe, "sortino": sharpe * 1.3,
                     "max_drawdown_pct": float(100 * np.max(1 - equity / peak)),
                     "trades": None if name == "buy_and_hold" else 5, "win_rate": 0.6,
                     "calmar": 1.0, "total_costs_usd": 130.0}
    return out


def _write_tb(folder: Path, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder))
    for step in range(128, 1025, 128):
        values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(rng.normal()))
                  for tag in TB_TAGS]
        writer.add_event(event_pb2.Event(step=step, wall_time=1.7e9 + step,
                                         summary=summary_pb2.Summary(value=values)))
    writer.close()


def _panel(closes: pd.Series) -> pd.DataFrame:
    log_returns = np.log(closes).diff()
    vol = log_returns.rolling(20).std().bfill()
    rows = []
    for model, scale in (("vol_rw", 1.0), ("random_walk", 1.4)):
        for h in HORIZONS:
            sigma = vol.to_numpy() * np.sqrt(h) * scale
            frame = pd.DataFrame({"date": closes.index, "model": model, "horizon": h})
            for level in LEVELS:
                frame[f"q{level:.3f}"] = Z[level] * sigma
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _forecast_eval() -> dict:
    def figures(n, c75, c90):
        return {"n": n, "coverage_75": c75, "width_75_pct": 3.1, "coverage_90": c90,
                "width_90_pct": 4.6, "interval_score_75": 4.0, "interval_score_90": 5.5}
    out = {}
    for model in ("random_walk", "vol_rw"):
        out[model] = {}
        for h in HORIZONS:
            entry = figures(120, 0.74, 0.89)
            entry["by_year"] = {"2016": figures(120, 0.74, 0.89)}
            entry["by_vol_tercile"] = {"low": figures(40, 0.8, 0.95),
                                       "mid": figures(40, 0.75, 0.9),
                                       "high": figures(40, 0.675, 0.825)}
            out[model][str(h)] = entry
    return out


def make_run(folder: Path, name: str = "synthetic", seeds: int = 1, seed: int = 0) -> Path:
    """Write a complete evaluated run folder at ``folder`` and return it."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    closes = _closes()
    dates = closes.loc[EVAL_START:EVAL_END].index
    folder.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "seed": 0,
              "data": {"source": "embedded", "symbol": "SPY", "interval": "1d"},
              "segments": {"train": {"start": "2014-01-01", "end": "2015-06-30"},
                           "valid": {"start": "2015-07-01", "end": "2015-12-31"},
                           "test": {"start": EVAL_START, "end": EVAL_END}},
              "forecast": {"horizons": list(HORIZONS), "quantile_levels": list(LEVELS)}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "provenance.json").write_text(json.dumps({"data": {"source": "embedded"}}))
    (folder / "forecasts").mkdir(exist_ok=True)
    _panel(closes).to_parquet(folder / "forecasts" / "panel.parquet")
    ppo_labels = ["ppo"] if seeds == 1 else [f"ppo_seed_{k}" for k in range(seeds)]
    for k in range(len(ppo_labels)):
        seed_dir = folder if seeds == 1 else folder / f"seed_{k}"
        seed_dir.mkdir(exist_ok=True)
        (seed_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (seed_dir / "train_summary.json").write_text(json.dumps({"timesteps": 1024,
                                                                 "seed": k}))
        _write_tb(seed_dir / "tb" / "ppo_1", rng)
    curves = {label: _equity_frame(dates, rng, 0.0004, True) for label in ppo_labels}
    curves["cash"] = _equity_frame(dates, rng, 0.0, False)
    curves["cash"]["equity_usd"] = START_EQUITY_USD
    curves["buy_and_hold"] = _equity_frame(dates, rng, 0.0002, False)
    curves["iron_condor"] = _equity_frame(dates, rng, 0.0001, True)
    eval_dir = folder / "eval"
    eval_dir.mkdir(exist_ok=True)
    for label, frame in curves.items():
        frame.to_csv(eval_dir / f"equity_{label}.csv", index=False)
        if "delta_shares" in frame.columns:  # as evaluate.py writes the report's attribution
            indexed = frame.set_index(pd.DatetimeIndex(frame["date"], name="date"))
            pnl_attribution(indexed["equity_usd"], indexed["spot"], indexed["atm_iv"],
                            indexed[list(GREEK_COLUMNS)], indexed["costs_usd"]
                            ).to_csv(eval_dir / f"attribution_{label}.csv")
        trades = _trades(dates) if label != "buy_and_hold" and label != "cash" else \
            pd.DataFrame(columns=list(_trades(dates).columns))
        trades.to_csv(eval_dir / f"trades_{label}.csv", index=False)
    per_seed = _metrics({k: curves[k] for k in ppo_labels})
    metrics = _metrics({k: v for k, v in curves.items() if k not in ppo_labels})
    if seeds == 1:
        metrics["ppo"] = per_seed["ppo"]
        seeds_doc = None
    else:
        metrics["ppo"] = {k: float(np.median([m[k] for m in per_seed.values()]))
                          for k in ("total_return_pct", "sharpe", "max_drawdown_pct")}
        metrics["ppo"]["seeds"] = seeds
        seeds_doc = {"per_seed": per_seed, "best_seed": ppo_labels[0], "deflated_sharpe": 0.4,
                     "spread": {}}
    document = {"segment": "test", "start": EVAL_START, "end": EVAL_END, "bars": len(dates),
                "policies": metrics,
                "comparison": {"spa_pvalue": 0.412, "block_length_bars": 4,
                               "best_baseline": "buy_and_hold",
                               "sharpe_diff_ci": {"estimate": 0.3, "low": -1.25, "high": 1.85,
                                                  "level": 0.95}},
                "inputs": {}, "seeds": seeds_doc}
    (eval_dir / "metrics.json").write_text(json.dumps(document))
    (folder / "forecast_eval").mkdir(exist_ok=True)
    (folder / "forecast_eval" / "metrics.json").write_text(json.dumps(_forecast_eval()))
    return folder


# ----------------------------------------------------------------------------- journal
JOURNAL_DAY1 = [(0, "2026-11-24T21:00:00+00:00", 100_000.0), (1, "2026-11-24T21:05:00+00:00",
                                                               100_500.0)]
JOURNAL_DAY2 = [(2, "2026-11-25T14:35:00+00:00", 100_000.0), (3, "2026-11-25T14:40:00+00:00",
                                                               99_700.0)]
DAILY_LOSS_LIMIT_USD = 2_000.0  # today's loss 100,500 - 99,700 = 800: 40% of the limit


def make_journal(path: Path) -> Path:
    """A small executor journal: two days of equity, one open iron condor, one order with its
    fills, one refusal; meta.limits carries the daily loss limit."""
    path = Path(path)
    legs = [{"symbol": f"SPY261218{r}00{k}000", "option_type": t, "strike": k, "expiry":
             "2026-12-18", "quantity_contracts": q}
            for r, t, k, q in (("P", "put", 650, -1), ("P", "put", 640, 1),
                               ("C", "call", 720, -1), ("C", "call", 730, 1))]
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA.read_text())
    connection.execute("PRAGMA journal_mode=WAL")
    meta = {"run": "runs/synthetic", "policy": "ppo", "mode": "replay", "broker": "paper",
            "segment": "test", "started_at": "2026-11-24T20:59:00+00:00", "schema_version": "2",
            "limits": json.dumps({"daily_loss_limit_usd": DAILY_LOSS_LIMIT_USD,
                                  "max_contracts": 10})}
    connection.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
    for bar, time, equity in JOURNAL_DAY1 + JOURNAL_DAY2:
        connection.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
                           (bar, time, time, "open_iron_condor" if bar == 1 else "hold",
                            "open_iron_condor" if bar == 1 else "hold", "policy"))
        connection.execute("INSERT INTO equity VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           (bar, time, time, equity, equity - 300, 1000.0 if bar else 0.0,
                            -3.5, -0.2, 12.5, -40.0, 1 if bar else 0, 668.0))
        if bar >= 1:
            connection.execute("INSERT INTO positions VALUES (?,?,?,?,?,?,?,?)",
                               (bar, time, 1, "iron_condor", 1, json.dumps(legs), 23.0,
                                -120.0 + bar))
    connection.execute("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       ("ord-1", 1, JOURNAL_DAY1[1][1], JOURNAL_DAY1[1][1], "open", "iron_condor",
                        json.dumps(legs), -2.15, "filled", "paper-1", None))
    for k, leg in enumerate(legs):
        connection.execute("INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           (f"fill-{k}", "ord-1", 1, JOURNAL_DAY1[1][1], JOURNAL_DAY1[1][1],
                            leg["symbol"], leg["quantity_contracts"], 1.05 + k, 1.0 + k, 0.65,
                            "open", "model"))
    connection.execute("INSERT INTO refusals (bar_index, bar_time, logged_at, rule, detail) "
                       "VALUES (?,?,?,?,?)", (3, JOURNAL_DAY2[1][1], JOURNAL_DAY2[1][1],
                                              "max_contracts", "12 contracts > limit 10"))
    connection.commit()
    connection.close()
    return path
