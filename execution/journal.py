"""The executor's journal: SQLite in WAL mode, one transaction per bar.

Tables and columns are fixed by ``execution/journal_schema.sql`` (a read-only dashboard reads
them). Everything the executor does at bar t -- the decision, its orders, the fills, the risk
manager's refusals, then the position snapshot and the equity mark after the market moved -- is
written in one transaction, so a crash leaves either the whole bar or none of it. The next start
reads :meth:`Journal.next_bar` and continues from there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from common.errors import UserInputError

__all__ = ["MISSED_PREFIX", "SCHEMA_PATH", "SCHEMA_VERSION", "TABLES", "Journal", "JournalError",
           "JournalMismatchError", "check_journal_file", "now_iso"]

SCHEMA_PATH = Path(__file__).with_name("journal_schema.sql")
SCHEMA_VERSION = "2"  # 2: fills.quote_source
TABLES = ("meta", "decisions", "orders", "fills", "equity", "positions", "refusals")
BUSY_TIMEOUT_S = 30.0
# meta keys that must agree between a journal and the command that reopens it
IDENTITY_KEYS = ("run", "policy", "mode", "broker", "segment")
OPEN_ORDER_STATUSES = ("submitted", "partially_filled")
MISSED_PREFIX = "missed:"  # the reason of a bar that closed while the executor was down


class JournalMismatchError(UserInputError):
    """A journal written by another run, policy, mode or broker than the command's."""


class JournalError(UserInputError):
    """A journal path that is not a usable journal (a folder, not SQLite, damaged, read-only)."""


def check_journal_file(path: str | Path) -> None:
    """Before anything is written: an existing ``path`` must be a readable, intact SQLite file
    that this process can write, in a folder it can write (WAL adds files beside it). A path
    that does not exist yet is fine. Errors name the file (``--journal``) and what is wrong."""
    path = Path(path)
    where = f"--journal {path}"
    if path.is_dir():
        raise JournalError(f"{where}: is a folder; expected a journal file (SQLite)")
    if not path.exists():
        if path.parent.exists() and not path.parent.is_dir():
            raise JournalError(f"{where}: {path.parent} is not a folder")
        return
    if not os.access(path, os.R_OK):
        raise JournalError(f"{where}: not readable (permissions)")
    if path.stat().st_size == 0:
        return  # an empty file: SQLite makes it a new database
    # Without a WAL beside it the file is read as immutable, so the check itself leaves no
    # -wal/-shm files next to a file that may not be a journal at all.
    wal = path.with_name(path.name + "-wal").exists()
    uri = f"file:{quote(str(path.resolve()))}?mode=ro" + ("" if wal else "&immutable=1")
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        if "malformed" in str(exc):  # SQLite's word for a truncated or overwritten file
            raise JournalError(f"{where}: damaged SQLite file ({exc}); restore it or start "
                               f"another --journal") from None
        raise JournalError(f"{where}: not a journal ({exc}); expected an SQLite file written "
                           f"by trade.py") from None
    if check != "ok":
        raise JournalError(f"{where}: damaged SQLite file ({check}); restore it or start "
                           f"another --journal")
    if tables and "meta" not in tables:
        raise JournalError(f"{where}: an SQLite file without the journal's tables "
                           f"(has {sorted(tables)}); expected a journal written by trade.py")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise JournalError(f"{where}: read-only (the file or its folder); trade.py appends "
                           f"to its journal")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class Journal:
    """Append-only record of one executor (one run, policy, mode and broker)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_journal_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(SCHEMA_PATH.read_text())
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise JournalError(f"--journal {self.path}: cannot open for writing ({exc})") from None

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        """Bring a journal of an earlier schema up to :data:`SCHEMA_VERSION` in place.

        Version 1 had no ``fills.quote_source``: the column is added (NULL, "not known", for the
        fills journalled before) and ``meta.schema_version`` is set to the current version."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(fills)")}
        if "quote_source" in columns:
            return
        with self.transaction():
            self.conn.execute("ALTER TABLE fills ADD COLUMN quote_source TEXT")
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                              (SCHEMA_VERSION,))

    # ----------------------------------------------------------------- meta
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def open_for(self, identity: dict[str, str], limits: dict) -> None:
        """Record who writes the journal, or check that a reopened journal is the same one."""
        held = self.meta()
        for key in IDENTITY_KEYS:
            if key in held and held[key] != identity[key]:
                raise JournalMismatchError(
                    f"{self.path}: journal of {key}={held[key]!r}, this command has "
                    f"{key}={identity[key]!r}; use another --journal or --out")
        rows = {**identity, "limits": json.dumps(limits, sort_keys=True),
                "schema_version": SCHEMA_VERSION, "started_at": now_iso()}
        with self.transaction():
            for key, value in rows.items():
                self.conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                                  (key, str(value)))

    # ----------------------------------------------------------------- reading
    def next_bar(self) -> int:
        """The first bar with no decision journalled (0 for a new journal)."""
        row = self.conn.execute("SELECT MAX(bar_index) FROM decisions").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def equity_bars(self) -> set[int]:
        """Bars with an equity mark (bar t+1's mark completes bar t)."""
        return {int(r[0]) for r in self.conn.execute("SELECT bar_index FROM equity")}

    def missed_bars(self) -> dict[int, str]:
        """Bars journalled as missed (closed while the executor was not running): bar -> reason."""
        return {int(r[0]): r[1] for r in self.conn.execute(
            "SELECT bar_index, reason FROM decisions WHERE reason LIKE ?", (MISSED_PREFIX + "%",))}

    def decision(self, bar_index: int) -> tuple[str, str] | None:
        row = self.conn.execute("SELECT policy_action, final_action FROM decisions "
                                "WHERE bar_index = ?", (bar_index,)).fetchone()
        return None if row is None else (row[0], row[1])

    def order_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT client_order_id FROM orders")}

    def open_orders(self) -> list[str]:
        marks = ",".join("?" * len(OPEN_ORDER_STATUSES))
        return [r[0] for r in self.conn.execute(
            f"SELECT client_order_id FROM orders WHERE status IN ({marks})", OPEN_ORDER_STATUSES)]

    def last_positions(self) -> list[dict]:
        """The latest position snapshot (legs as journalled)."""
        row = self.conn.execute("SELECT MAX(bar_index) FROM equity").fetchone()
        if row[0] is None:
            return []
        return [{"trade_id": r[0], "strategy": r[1], "contracts": r[2],
                 "legs": json.loads(r[3])}
                for r in self.conn.execute(
                    "SELECT trade_id, strategy, contracts, legs FROM positions "
                    "WHERE bar_index = ? ORDER BY trade_id", (row[0],))]

    def dump(self, ignore: tuple[str, ...] = ("logged_at",),
             ignore_meta: tuple[str, ...] = ("started_at",)) -> dict[str, list[tuple]]:
        """Every table's rows, sorted, without the ``ignore`` columns (for comparisons)."""
        out = {}
        for table in TABLES:
            columns = [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")
                       if r[1] not in ignore]
            rows = self.conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            if table == "meta":
                rows = [r for r in rows if r[0] not in ignore_meta]
            out[table] = sorted(rows, key=repr)
        return out

    # ----------------------------------------------------------------- writing
    def transaction(self):
        return _Transaction(self.conn)

    def write_decision(self, bar_index: int, bar_time: str, policy_action: str,
                       final_action: str, reason: str) -> None:
        self.conn.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
                          (bar_index, bar_time, now_iso(), policy_action, final_action, reason))

    def write_order(self, order, status: str, broker_order_id: str | None,
                    detail: str | None) -> None:
        self.conn.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order.client_order_id, order.bar_index, order.bar_time.isoformat(), now_iso(),
             order.intent, order.strategy, order.legs_json(), order.net_limit_price_per_share,
             status, broker_order_id, detail))

    def set_order_status(self, client_order_id: str, status: str, detail: str | None) -> None:
        self.conn.execute("UPDATE orders SET status = ?, detail = ?, logged_at = ? "
                          "WHERE client_order_id = ?", (status, detail, now_iso(),
                                                        client_order_id))

    def write_fill(self, fill) -> None:
        """``fill``: an :class:`execution.brokers.base.BrokerFill`."""
        self.conn.execute(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (fill.fill_id, fill.client_order_id, fill.bar_index, fill.bar_time.isoformat(),
             now_iso(), fill.symbol, fill.quantity_contracts, fill.price_per_share,
             fill.mid_per_share, fill.commission_usd, fill.kind, fill.quote_source))

    def write_refusal(self, bar_index: int, bar_time: str, rule: str, detail: str) -> None:
        self.conn.execute("INSERT INTO refusals (bar_index, bar_time, logged_at, rule, detail) "
                          "VALUES (?, ?, ?, ?, ?)", (bar_index, bar_time, now_iso(), rule, detail))

    def write_equity(self, bar_index: int, bar_time: str, mark) -> None:
        """``mark``: an :class:`execution.brokers.base.AccountMark`."""
        self.conn.execute(
            "INSERT OR REPLACE INTO equity VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (bar_index, bar_time, now_iso(), mark.equity_usd, mark.cash_usd,
             mark.margin_used_usd, mark.delta_shares, mark.gamma_shares_per_usd,
             mark.theta_usd_per_day, mark.vega_usd_per_vol_point, mark.open_positions,
             mark.spot))

    def write_positions(self, bar_index: int, bar_time: str, positions) -> None:
        """``positions``: :class:`execution.brokers.base.BrokerPosition` objects."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(bar_index, bar_time, p.trade_id, p.strategy, p.contracts,
              json.dumps([leg.as_dict() for leg in p.legs]), p.dte_days, p.unrealized_pnl_usd)
             for p in positions])


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if kind is not None else "COMMIT")
