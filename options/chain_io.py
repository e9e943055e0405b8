"""Import of real end-of-day option chains into one tidy, validated frame.

Three layouts are read (``format`` argument, or detected from the header):

- ``"eod"``: the long vendor layout of ``../shared/data/real_chains`` (``underlying,
  underlying_last, optionroot, type, expiration, quotedate, strike, bid, ask, volume,
  openinterest, impliedvol, ...``), with ISO or US m/d/Y dates, an optional UTF-8 byte-order
  mark and header names padded with spaces or brackets (``[QUOTE_DATE]``).
- ``"cboe"``: CBOE DataShop "Option EOD Summary" (``underlying_symbol, quote_date, root,
  expiration, strike, option_type (C/P), ..., bid_eod, ask_eod, underlying_bid_eod,
  underlying_ask_eod, open_interest`` and optionally ``implied_volatility_1545`` and
  ``active_underlying_price_1545``). The end-of-day bid/ask are used; the underlying price is
  the mid of its end-of-day bid/ask, else ``active_underlying_price_1545``.
- ``"wide"``: one row per (quote date, expiry, strike) with ``call_bid, call_ask, put_bid,
  put_ask`` side by side (plus optional ``call_volume, put_volume, call_open_interest,
  put_open_interest, call_iv, put_iv``) and ``underlying_price``.

Output (:data:`TIDY_COLUMNS`), one row per listed contract, sorted by quote date, expiry,
option type, strike, root: ``quote_date, expiry`` (midnight-normalised), ``option_type``
('call'/'put'), ``strike``, ``bid_per_share, ask_per_share, mid_per_share``, ``volume,
open_interest`` (NaN where the file has none), ``underlying_price``, ``zero_bid`` (bool: no
bid, kept and flagged), ``iv_vendor`` (the vendor's implied vol, decimal; NaN where absent or
reported as 0), ``root`` (option root, e.g. SPXW), ``dte_days`` and ``valid_quote`` (bool: a
two-sided quote, ``0 < bid <= ask``; only these are ever fill prices).

Rows set aside as fill prices, counted per reason (:data:`SET_ASIDE_REASONS`) in a
:class:`ChainReadReport` (``attrs["read_report"]``, logged at INFO as one line; the CLIs
print it):

- ``zero_quote``: bid and ask both <= 0 or missing; kept with bid = ask = 0, ``zero_bid`` and
  ``valid_quote = False`` (the CBOE index method reads zero bids as the end of a strip);
- ``one_sided_quote``: one side missing or <= 0. With a positive ask only, kept with bid 0
  (``zero_bid``, ``valid_quote = False``); with a positive bid only, dropped;
- ``crossed_quote``: bid > ask > 0, dropped;
- ``non_session_date``: quote dated on a day that is not an XNYS session, dropped (the dates
  are listed in the report);
- ``expiry_before_quote_date``: dropped.

Validation: every other failure raises :class:`ChainFileError` (a :class:`UserInputError`)
naming the file, the column, how many rows fail and the first one: an unreadable or
truncated file, missing columns, unparseable dates, non-numeric or negative prices, a
non-positive strike or underlying price, an unknown option type and duplicated contracts
(same quote date, root, expiry, type and strike).
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common.errors import UserInputError
from options.american import DividendHistory
from options.calendar import is_session

__all__ = [
    "CHAIN_FORMATS",
    "SET_ASIDE_REASONS",
    "TIDY_COLUMNS",
    "ChainFileError",
    "ChainReadReport",
    "chain_read_report",
    "detect_chain_format",
    "one_root_per_contract",
    "read_chain",
    "read_dividend_history",
    "read_chains",
]

CHAIN_FORMATS = ("eod", "cboe", "wide")

TIDY_COLUMNS = (
    "quote_date",
    "expiry",
    "option_type",
    "strike",
    "bid_per_share",
    "ask_per_share",
    "mid_per_share",
    "volume",
    "open_interest",
    "underlying_price",
    "zero_bid",
    "iv_vendor",
    "root",
    "dte_days",
    "valid_quote",
)
SET_ASIDE_REASONS = ("zero_quote", "one_sided_quote", "crossed_quote", "non_session_date",
                     "expiry_before_quote_date")
"""Reasons a row is set aside (never a fill price), in report order."""
CONTRACT_KEY = ("quote_date", "root", "expiry", "option_type", "strike")

_TYPE_VALUES = {"call": "call", "c": "call", "calls": "call", "put": "put", "p": "put", "puts": "put"}
_OCC_ROOT = re.compile(r"^\s*([A-Za-z]+\d?)\d{6}[CPcp]")

# canonical name -> accepted header names (after :func:`_canonical`)
_EOD_COLUMNS = {
    "quote_date": ("quotedate", "quote_date", "date"),
    "expiry": ("expiration", "expiry", "expiration_date"),
    "option_type": ("type", "option_type", "call_put", "put_call"),
    "strike": ("strike", "strike_price"),
    "bid": ("bid",),
    "ask": ("ask",),
    "underlying_price": ("underlying_last", "underlying_price"),
}
_EOD_OPTIONAL = {
    "volume": ("volume",),
    "open_interest": ("openinterest", "open_interest"),
    "iv_vendor": ("impliedvol", "implied_volatility", "iv"),
    "optionroot": ("optionroot", "option_symbol", "symbol"),
    "underlying": ("underlying",),
}
_CBOE_COLUMNS = {
    "quote_date": ("quote_date",),
    "expiry": ("expiration",),
    "option_type": ("option_type",),
    "strike": ("strike",),
    "bid": ("bid_eod",),
    "ask": ("ask_eod",),
}
_CBOE_OPTIONAL = {
    "root": ("root",),
    "volume": ("trade_volume",),
    "open_interest": ("open_interest",),
    "iv_vendor": ("implied_volatility_1545",),
    "underlying_bid": ("underlying_bid_eod",),
    "underlying_ask": ("underlying_ask_eod",),
    "underlying_active": ("active_underlying_price_1545",),
    "underlying": ("underlying_symbol",),
}
_WIDE_COLUMNS = {
    "quote_date": ("quote_date", "quotedate", "date"),
    "expiry": ("expiration", "expiry"),
    "strike": ("strike",),
    "call_bid": ("call_bid",),
    "call_ask": ("call_ask",),
    "put_bid": ("put_bid",),
    "put_ask": ("put_ask",),
    "underlying_price": ("underlying_price", "underlying_last", "spot"),
}
_WIDE_OPTIONAL = {
    "call_volume": ("call_volume",),
    "put_volume": ("put_volume",),
    "call_open_interest": ("call_open_interest", "call_openinterest", "call_oi"),
    "put_open_interest": ("put_open_interest", "put_openinterest", "put_oi"),
    "call_iv": ("call_iv", "call_impliedvol", "call_implied_volatility"),
    "put_iv": ("put_iv", "put_impliedvol", "put_implied_volatility"),
    "root": ("root",),
}
_LAYOUTS = {
    "eod": (_EOD_COLUMNS, _EOD_OPTIONAL),
    "cboe": (_CBOE_COLUMNS, _CBOE_OPTIONAL),
    "wide": (_WIDE_COLUMNS, _WIDE_OPTIONAL),
}
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d")


log = logging.getLogger(__name__)


class ChainFileError(UserInputError):
    """A chain file that cannot be used; the message names file, column, count, first row."""


@dataclass(frozen=True)
class ChainReadReport:
    """What reading chain file(s) set aside, per reason (:data:`SET_ASIDE_REASONS`).

    Attributes:
        source: the file(s) read.
        n_rows_read: contract rows in the file(s) (a wide row counts as two).
        n_rows_kept: rows in the tidy frame (zero and bid-less quotes included, flagged).
        set_aside: rows per reason that are never a fill price.
        non_session_dates: the dropped non-session quote dates (ISO).
    """

    source: str
    n_rows_read: int
    n_rows_kept: int
    set_aside: dict[str, int] = field(default_factory=dict)
    non_session_dates: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"source": self.source, "n_rows_read": self.n_rows_read,
                "n_rows_kept": self.n_rows_kept,
                "set_aside": {r: int(self.set_aside.get(r, 0)) for r in SET_ASIDE_REASONS},
                "non_session_dates": list(self.non_session_dates)}

    def summary(self) -> str:
        """One line for logs and CLI output."""
        parts = ", ".join(f"{r}={int(self.set_aside.get(r, 0))}" for r in SET_ASIDE_REASONS)
        dates = (f" (non-session dates: {', '.join(self.non_session_dates)})"
                 if self.non_session_dates else "")
        return (f"chain {self.source}: {self.n_rows_read} rows read, {self.n_rows_kept} kept; "
                f"set aside as fill prices: {parts}{dates}")

    @staticmethod
    def merge(reports: list[ChainReadReport]) -> ChainReadReport:
        """One report for several files."""
        return ChainReadReport(
            source=";".join(r.source for r in reports),
            n_rows_read=sum(r.n_rows_read for r in reports),
            n_rows_kept=sum(r.n_rows_kept for r in reports),
            set_aside={k: sum(int(r.set_aside.get(k, 0)) for r in reports)
                       for k in SET_ASIDE_REASONS},
            non_session_dates=tuple(sorted({d for r in reports for d in r.non_session_dates})))


def chain_read_report(chain: pd.DataFrame) -> ChainReadReport | None:
    """The :class:`ChainReadReport` a tidy chain was read with (None for a hand-made frame)."""
    report = chain.attrs.get("read_report")
    if isinstance(report, dict):
        return ChainReadReport(report["source"], report["n_rows_read"], report["n_rows_kept"],
                               dict(report["set_aside"]), tuple(report["non_session_dates"]))
    return report


def _canonical(name: str) -> str:
    text = str(name).replace("\ufeff", "").strip().strip("[]").strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


def _fail(path: Path, column: str, problem: str, bad: np.ndarray, raw: pd.DataFrame):
    bad = np.asarray(bad, dtype=bool)
    n = int(bad.sum())
    first = int(np.flatnonzero(bad)[0])
    row = raw.iloc[first].to_dict()
    raise ChainFileError(
        f"chain file '{path}': column '{column}' {problem} in {n} row(s); first at data row "
        f"{first + 1} (line {first + 2}): {row}"
    )


def _match(raw: pd.DataFrame, wanted: dict[str, tuple[str, ...]]) -> dict[str, str]:
    by_canonical = {_canonical(c): c for c in raw.columns}
    found = {}
    for target, aliases in wanted.items():
        for alias in aliases:
            if alias in by_canonical:
                found[target] = by_canonical[alias]
                break
    return found


def detect_chain_format(columns) -> str | None:
    """The layout (one of :data:`CHAIN_FORMATS`) whose required columns all appear; else the
    one with most of them (at least half, so that a missing column is reported by name);
    else None."""
    canon = {_canonical(c) for c in columns}
    scores = {}
    for name in ("cboe", "wide", "eod"):
        required, _ = _LAYOUTS[name]
        hits = sum(any(a in canon for a in aliases) for aliases in required.values())
        scores[name] = hits / len(required)
    best = max(scores, key=scores.get)
    return best if scores[best] >= 0.5 else None


def _parse_dates(series: pd.Series, path: Path, column: str, raw: pd.DataFrame) -> pd.Series:
    text = series.astype(str).str.strip()
    best = None
    for fmt in _DATE_FORMATS:
        parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        if best is None or parsed.notna().sum() > best.notna().sum():
            best = parsed
        if parsed.notna().all():
            break
    bad = best.isna().to_numpy()
    if bad.any():
        _fail(path, column, f"has unparseable or missing dates (expected one of {_DATE_FORMATS})",
              bad, raw)
    return best.dt.normalize()


def _numeric(raw: pd.DataFrame, col: str, path: Path, *, optional: bool) -> np.ndarray:
    values = pd.to_numeric(raw[col].astype(str).str.strip().replace({"": np.nan}),
                           errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if optional:
        bad &= ~np.isnan(values)
    if bad.any():
        _fail(path, col, "is not a finite number", bad, raw)
    return values


def _read_raw(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ChainFileError(f"chain file '{path}' does not exist")
    if path.is_dir():
        raise ChainFileError(f"chain file '{path}' is a directory, expected a CSV file")
    try:
        raw = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False,
                          skipinitialspace=True)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ChainFileError(f"chain file '{path}' is truncated or not valid gzip "
                             f"({type(exc).__name__}: {exc}); expected a complete .csv.gz"
                             ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError,
            OSError) as exc:
        raise ChainFileError(f"chain file '{path}' is not a readable CSV: {exc}") from None
    if raw.empty:
        raise ChainFileError(f"chain file '{path}' has no rows")
    return raw


def _long_from_layout(raw: pd.DataFrame, fmt: str, path: Path) -> pd.DataFrame:
    required, optional = _LAYOUTS[fmt]
    cols = _match(raw, required)
    missing = [c for c in required if c not in cols]
    if missing:
        accepted = {m: list(required[m]) for m in missing}
        raise ChainFileError(
            f"chain file '{path}' ({fmt} layout) is missing {len(missing)} column(s) {missing}; "
            f"header line 1 has {list(raw.columns)} (accepted names: {accepted})"
        )
    opt = _match(raw, optional)
    quote = _parse_dates(raw[cols["quote_date"]], path, cols["quote_date"], raw)
    expiry = _parse_dates(raw[cols["expiry"]], path, cols["expiry"], raw)
    strike = _numeric(raw, cols["strike"], path, optional=False)

    def num(key: str, table: dict, opt_ok: bool) -> np.ndarray:
        if key in table:
            return _numeric(raw, table[key], path, optional=opt_ok)
        return np.full(len(raw), np.nan)

    if fmt == "wide":
        n = len(raw)
        root = (raw[opt["root"]].astype(str).str.strip() if "root" in opt
                else pd.Series([""] * n))
        parts = []
        for side in ("call", "put"):
            parts.append(pd.DataFrame({
                "quote_date": quote.to_numpy(), "expiry": expiry.to_numpy(),
                "option_type": side, "strike": strike,
                "bid": num(f"{side}_bid", cols, True), "ask": num(f"{side}_ask", cols, True),
                "volume": num(f"{side}_volume", opt, True),
                "open_interest": num(f"{side}_open_interest", opt, True),
                "iv_vendor": num(f"{side}_iv", opt, True),
                "underlying_price": num("underlying_price", cols, False),
                "root": root.to_numpy(), "_row": np.arange(n),
                "_bid_col": cols[f"{side}_bid"], "_ask_col": cols[f"{side}_ask"],
            }))
        return pd.concat(parts, ignore_index=True)

    types = raw[cols["option_type"]].astype(str).str.strip().str.lower().map(_TYPE_VALUES)
    bad = types.isna().to_numpy()
    if bad.any():
        _fail(path, cols["option_type"], "is not call/put (or C/P)", bad, raw)
    if fmt == "cboe":
        ubid, uask = num("underlying_bid", opt, True), num("underlying_ask", opt, True)
        active = num("underlying_active", opt, True)
        with np.errstate(invalid="ignore"):
            under = np.where((ubid > 0) & (uask > 0), 0.5 * (ubid + uask), active)
        root = raw[opt["root"]].astype(str).str.strip() if "root" in opt else None
    else:
        under = num("underlying_price", cols, False)
        root = None
        if "optionroot" in opt:
            root = raw[opt["optionroot"]].astype(str).str.extract(_OCC_ROOT)[0]
    if root is None:
        root = raw[opt["underlying"]].astype(str).str.strip() if "underlying" in opt else ""
    out = pd.DataFrame({
        "quote_date": quote.to_numpy(), "expiry": expiry.to_numpy(),
        "option_type": types.to_numpy(), "strike": strike,
        "bid": num("bid", cols, True), "ask": num("ask", cols, True),
        "volume": num("volume", opt, True), "open_interest": num("open_interest", opt, True),
        "iv_vendor": num("iv_vendor", opt, True), "underlying_price": under,
        "root": pd.Series(root, index=raw.index).fillna("").to_numpy() if not isinstance(root, str)
        else root,
        "_row": np.arange(len(raw)), "_bid_col": cols["bid"], "_ask_col": cols["ask"],
    })
    return out


def _validate(df: pd.DataFrame, raw: pd.DataFrame, path: Path, fmt: str) -> None:
    rows = df["_row"].to_numpy()

    def fail_rows(column: str, problem: str, mask: np.ndarray) -> None:
        if mask.any():
            bad_raw = np.zeros(len(raw), dtype=bool)
            bad_raw[rows[mask]] = True
            # count contracts (a wide row holds two), report the first raw row
            n = int(mask.sum())
            first = int(np.flatnonzero(bad_raw)[0])
            raise ChainFileError(
                f"chain file '{path}': column '{column}' {problem} in {n} row(s); first at "
                f"data row {first + 1} (line {first + 2}): {raw.iloc[first].to_dict()}"
            )

    bid, ask = df["bid"].to_numpy(), df["ask"].to_numpy()
    bid_col = df["_bid_col"].to_numpy()
    ask_col = df["_ask_col"].to_numpy()
    for side_col in np.unique(bid_col):
        fail_rows(side_col, "has negative prices", (bid < 0) & (bid_col == side_col))
    for side_col in np.unique(ask_col):
        fail_rows(side_col, "has negative prices", (ask < 0) & (ask_col == side_col))
    fail_rows("strike", "is not > 0", df["strike"].to_numpy() <= 0)
    under = df["underlying_price"].to_numpy()
    fail_rows("underlying price", "is missing or not > 0", ~(under > 0))
    for col in ("volume", "open_interest"):
        fail_rows(col, "is negative", df[col].to_numpy() < 0)
    dup = df.duplicated(list(CONTRACT_KEY), keep="first").to_numpy()
    fail_rows("strike", "duplicates a contract (same quote date, root, expiry, type and strike)",
              dup)


def read_chain(path, format: str | None = None, *,  # noqa: A002 - the CLI's name
               drop_non_sessions: bool = True, drop_crossed: bool = True) -> pd.DataFrame:
    """Read and validate one chain file into the tidy frame (module docstring).

    Args:
        path: CSV file, optionally gzip-compressed (by extension).
        format: one of :data:`CHAIN_FORMATS`, or None to detect it from the header.
        drop_non_sessions: drop rows whose quote date is not an XNYS session before
            validating. Vendors write stale copies of the previous session on holidays (the
            shared SPX file has 2019-05-27 and 2019-07-04, with contracts that expired the
            day before); the dropped dates are listed in the report and in
            ``attrs["dropped_non_session_dates"]``.
        drop_crossed: kept for callers of earlier versions; crossed quotes are always set
            aside and counted (``attrs["dropped_crossed_quotes"]``).

    The :class:`ChainReadReport` is ``attrs["read_report"]`` (a dict; read it back with
    :func:`chain_read_report`) and is logged at INFO when anything was set aside.
    """
    del drop_crossed
    path = Path(path)
    if format is not None and format not in CHAIN_FORMATS:
        raise ChainFileError(f"chain format {format!r} for '{path}' is not one of {CHAIN_FORMATS}")
    raw = _read_raw(path)
    fmt = format or detect_chain_format(raw.columns)
    if fmt is None:
        raise ChainFileError(
            f"chain file '{path}': cannot tell its layout from header line 1 "
            f"{list(raw.columns)}; expected one of {CHAIN_FORMATS} (pass --format)"
        )
    df = _long_from_layout(raw, fmt, path)
    n_read = len(df)
    set_aside = dict.fromkeys(SET_ASIDE_REASONS, 0)
    dropped: list[str] = []
    if drop_non_sessions:
        session = is_session(df["quote_date"])
        if not session.all():
            dropped = sorted({str(d.date()) for d in df.loc[~session, "quote_date"]})
            set_aside["non_session_date"] = int((~session).sum())
            df = df.loc[session].reset_index(drop=True)
            if df.empty:
                raise ChainFileError(f"chain file '{path}': no quote date is a trading session "
                                     f"(dates {dropped})")
    late = (df["expiry"] < df["quote_date"]).to_numpy()
    set_aside["expiry_before_quote_date"] = int(late.sum())
    df = df.loc[~late].reset_index(drop=True)
    if df.empty:
        raise ChainFileError(f"chain file '{path}': every expiry is before its quote date")
    _validate(df, raw, path, fmt)
    bid, ask = df["bid"].to_numpy(float), df["ask"].to_numpy(float)
    has_bid, has_ask = bid > 0, ask > 0  # NaN (missing side) is False
    zero = ~has_bid & ~has_ask
    ask_only = ~has_bid & has_ask
    bid_only = has_bid & ~has_ask
    crossed = has_bid & has_ask & (bid > ask)
    set_aside["zero_quote"] = int(zero.sum())
    set_aside["one_sided_quote"] = int(ask_only.sum() + bid_only.sum())
    set_aside["crossed_quote"] = int(crossed.sum())
    keep = ~(bid_only | crossed)
    df = df.loc[keep].reset_index(drop=True)
    bid = np.where(has_bid, bid, 0.0)[keep]
    ask = np.where(has_ask, ask, 0.0)[keep]
    iv = df["iv_vendor"].to_numpy()
    out = pd.DataFrame({
        "quote_date": df["quote_date"], "expiry": df["expiry"],
        "option_type": df["option_type"], "strike": df["strike"],
        "bid_per_share": bid, "ask_per_share": ask, "mid_per_share": 0.5 * (bid + ask),
        "volume": df["volume"], "open_interest": df["open_interest"],
        "underlying_price": df["underlying_price"], "zero_bid": bid <= 0.0,
        "iv_vendor": np.where(iv > 0, iv, np.nan), "root": df["root"].astype(str),
    })
    out["dte_days"] = (out["expiry"] - out["quote_date"]).dt.days.astype(int)
    out["valid_quote"] = (bid > 0) & (ask >= bid)
    out = out.sort_values(["quote_date", "expiry", "option_type", "strike", "root"],
                          ignore_index=True)
    report = ChainReadReport(str(path), n_read, len(out), set_aside, tuple(dropped))
    out.attrs["source"] = str(path)
    out.attrs["format"] = fmt
    out.attrs["dropped_non_session_dates"] = dropped
    out.attrs["dropped_crossed_quotes"] = set_aside["crossed_quote"]
    out.attrs["read_report"] = report.to_dict()
    if any(set_aside.values()):
        log.info("%s", report.summary())
    return out


def read_chains(paths, format: str | None = None, *,  # noqa: A002
                drop_crossed: bool = True) -> pd.DataFrame:
    """Read several chain files and concatenate them; duplicated contracts across files fail.
    The read report is the sum of the files' reports."""
    frames = [read_chain(p, format, drop_crossed=drop_crossed) for p in paths]
    if not frames:
        raise ChainFileError("no chain file given")
    dropped = sorted({d for f in frames for d in f.attrs["dropped_non_session_dates"]})
    out = pd.concat(frames, ignore_index=True)
    dup = out.duplicated(list(CONTRACT_KEY)).to_numpy()
    if dup.any():
        first = out.loc[np.flatnonzero(dup)[0]]
        raise ChainFileError(
            f"chain files {[str(p) for p in paths]}: column 'strike' duplicates a contract "
            f"across files in {int(dup.sum())} row(s); first: {first.to_dict()}"
        )
    out = out.sort_values(["quote_date", "expiry", "option_type", "strike", "root"],
                          ignore_index=True)
    out.attrs["source"] = ";".join(str(p) for p in paths)
    out.attrs["format"] = frames[0].attrs["format"]
    out.attrs["dropped_non_session_dates"] = dropped
    out.attrs["dropped_crossed_quotes"] = sum(f.attrs["dropped_crossed_quotes"] for f in frames)
    out.attrs["read_report"] = ChainReadReport.merge(
        [chain_read_report(f) for f in frames]).to_dict()
    return out


def one_root_per_contract(chain: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per (quote date, expiry, type, strike) where several roots list the same
    contract (SPX AM-settled monthlies and SPXW PM-settled weeklies on third Fridays): the
    root with the most rows in the chain wins (SPXW for the shared SPX file), matching the
    environment's settlement at the expiry session's close."""
    counts = chain["root"].value_counts()
    rank = chain["root"].map({r: i for i, r in enumerate(counts.index)})
    keep = (chain.assign(_rank=rank.to_numpy())
            .sort_values("_rank", kind="stable")
            .drop_duplicates(["quote_date", "expiry", "option_type", "strike"], keep="first")
            .drop(columns="_rank"))
    out = keep.sort_values(["quote_date", "expiry", "option_type", "strike"], ignore_index=True)
    out.attrs.update(chain.attrs)
    return out


DIVIDEND_DATE_COLUMNS = ("date", "ex_date", "exdate")
DIVIDEND_CASH_COLUMNS = ("divcash", "dividend", "dividends", "dividend_per_share")


def read_dividend_history(path) -> DividendHistory:
    """Cash dividends paid, from a daily-bars CSV (Tiingo layout: ``date`` and ``divCash``,
    as ``../shared/data/real_chains/spy_daily_bars_2021.csv``) or any CSV with a date column
    (:data:`DIVIDEND_DATE_COLUMNS`) and a cash column (:data:`DIVIDEND_CASH_COLUMNS`, case
    ignored): the rows with a positive amount, each dated on its ex-date. Errors raise
    :class:`ChainFileError` naming the file and column."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ChainFileError(f"dividend file '{path}': cannot read it as CSV ({exc})") from None
    names = {_canonical(c): c for c in raw.columns}
    date_col = next((names[c] for c in DIVIDEND_DATE_COLUMNS if c in names), None)
    cash_col = next((names[c] for c in DIVIDEND_CASH_COLUMNS if c in names), None)
    if date_col is None or cash_col is None:
        raise ChainFileError(
            f"dividend file '{path}': expected a date column (one of "
            f"{', '.join(DIVIDEND_DATE_COLUMNS)}) and a cash column (one of "
            f"{', '.join(DIVIDEND_CASH_COLUMNS)}); found {', '.join(map(str, raw.columns))}")
    cash = pd.to_numeric(raw[cash_col], errors="coerce").to_numpy(float)
    dates = pd.to_datetime(raw[date_col], errors="coerce")
    bad = ~np.isfinite(cash) | (cash < 0) | dates.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ChainFileError(
            f"dividend file '{path}': {int(bad.sum())} row(s) without a date in '{date_col}' "
            f"or a cash amount >= 0 in '{cash_col}'; first at data row {first + 1}: "
            f"{raw.iloc[first][[date_col, cash_col]].tolist()}")
    paid = cash > 0
    ex_dates = pd.DatetimeIndex(dates[paid]).tz_localize(None).normalize()
    order = np.argsort(ex_dates.asi8, kind="stable")
    return DividendHistory(ex_dates[order], cash[paid][order])
