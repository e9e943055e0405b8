"""Read-only access to a paper/live executor's SQLite journal (schema: ``execution/journal_schema.sql``, written by ``trade.py``).

The journal is opened with ``mode=ro`` through a URI, so the dashboard can never write to it;
in WAL mode a reader does not block the executor that writes. Every query reads one snapshot
(one transaction), so the tables agree with each other.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from dashboard.loaders import DashboardInputError

__all__ = ["JOURNAL_TABLES", "JournalSnapshot", "daily_loss_status", "load_journal",
           "open_journal"]

JOURNAL_TABLES = ("meta", "decisions", "orders", "fills", "equity", "positions", "refusals")
BUSY_TIMEOUT_S = 2.0
LIMIT_KEY = "daily_loss_limit_usd"


@dataclass(frozen=True)
class JournalSnapshot:
    """Every table of a journal, read in one transaction."""

    path: Path
    meta: dict
    limits: dict
    decisions: pd.DataFrame
    orders: pd.DataFrame
    fills: pd.DataFrame
    equity: pd.DataFrame
    positions: pd.DataFrame  # every bar's open positions
    refusals: pd.DataFrame
    problems: tuple[str, ...] = field(default=())

    @property
    def open_positions(self) -> pd.DataFrame:
        """The positions held at the latest bar that has an equity row."""
        if self.positions.empty:
            return self.positions
        last = self.equity["bar_index"].max() if not self.equity.empty else \
            self.positions["bar_index"].max()
        return self.positions[self.positions["bar_index"] == last]


def open_journal(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the journal at ``path`` (clear error if it is missing)."""
    path = Path(path)
    if not path.is_file():
        raise DashboardInputError(f"--journal {path}: no such file")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        connection.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        raise DashboardInputError(f"--journal {path}: cannot open read-only ({exc})") from exc
    return connection


def load_journal(path: str | Path) -> JournalSnapshot:
    """All tables of the journal; a clear error when it is not an executor journal."""
    path = Path(path)
    connection = open_journal(path)
    try:
        connection.execute("BEGIN")  # one read snapshot for every table
        present = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in JOURNAL_TABLES if t not in present]
        if missing:
            raise DashboardInputError(f"--journal {path}: table(s) {', '.join(missing)} missing "
                                      "(expected an executor journal, see execution/journal_schema.sql)")
        frames = {t: pd.read_sql_query(f"SELECT * FROM {t}", connection)  # noqa: S608
                  for t in JOURNAL_TABLES}
        connection.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise DashboardInputError(f"--journal {path}: not a readable SQLite journal "
                                  f"({exc})") from exc
    finally:
        connection.close()
    meta = dict(zip(frames["meta"]["key"], frames["meta"]["value"], strict=True))
    problems = []
    limits: dict = {}
    if "limits" in meta:
        try:
            limits = json.loads(meta["limits"])
            if not isinstance(limits, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            problems.append(f"{path}: meta 'limits' is not a JSON object ({exc})")
            limits = {}
    for name in ("decisions", "orders", "fills", "equity", "positions", "refusals"):
        frame = frames[name]
        if "bar_time" in frame.columns:
            frame["bar_time"] = pd.to_datetime(frame["bar_time"], errors="coerce", utc=True)
            frames[name] = frame.sort_values(["bar_time"], kind="stable").reset_index(drop=True)
    return JournalSnapshot(path, meta, limits, frames["decisions"], frames["orders"],
                           frames["fills"], frames["equity"], frames["positions"],
                           frames["refusals"], tuple(problems))


def daily_loss_status(equity: pd.DataFrame, limit_usd: float | None) -> dict:
    """Today's P&L against the daily loss limit.

    "Today" is the calendar date of the latest equity row; the day starts from the last equity
    of an earlier date (the previous close), or from the day's first row when there is none.
    """
    if equity.empty:
        return {"day": None, "start_equity_usd": None, "equity_usd": None, "pnl_usd": None,
                "limit_usd": limit_usd, "used_share": None, "breached": False}
    frame = equity.sort_values("bar_time")
    days = frame["bar_time"].dt.date
    today: dt.date = days.iloc[-1]
    before = frame[days < today]
    start = float(before["equity_usd"].iloc[-1] if not before.empty
                  else frame.loc[days == today, "equity_usd"].iloc[0])
    latest = float(frame["equity_usd"].iloc[-1])
    pnl = latest - start
    used = (max(0.0, -pnl) / limit_usd) if limit_usd else None
    return {"day": today, "start_equity_usd": start, "equity_usd": latest, "pnl_usd": pnl,
            "limit_usd": limit_usd, "used_share": used,
            "breached": bool(limit_usd) and -pnl >= float(limit_usd)}
