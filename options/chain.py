"""Option chains: model chains priced from the surface, selection helpers, CSV import.

A model chain at a market state has one row per (expiry, strike, option type) on the
underlying's strike grid, with mid from BSM at the surface vol, bid/ask from the spread
model and greeks. Imported vendor chains (:func:`read_chain_csv`) come in the same long
format.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from options.calendar import dte_days, t_years_to_expiry
from options.chain_io import ChainFileError, ChainReadReport
from options.costs import CostConfig, bid_ask_per_share
from options.positions import MarketState
from options.pricing import DAYS_PER_YEAR, bs_greeks, bs_price, implied_vol_vectorized
from options.surface import SurfaceConfig, iv_at

__all__ = [
    "CHAIN_COLUMNS",
    "CHAIN_REQUIRED_COLUMNS",
    "ChainFileError",
    "build_chain",
    "read_chain_csv",
    "select_expiry",
    "select_strike_by_delta",
    "select_strike_by_moneyness",
]

CHAIN_COLUMNS = (
    "quote_date",
    "expiration",
    "dte_days",
    "t_years",
    "option_type",
    "strike",
    "underlying_last",
    "bid",
    "ask",
    "mid",
    "implied_volatility",
    "delta",
    "gamma",
    "theta_per_day",
    "vega_per_vol_point",
)
"""Columns of a model chain (:func:`build_chain`)."""

CHAIN_REQUIRED_COLUMNS = ("quote_date", "expiration", "strike", "option_type", "bid", "ask")
"""Columns a chain CSV must have (after alias resolution, case-insensitive)."""

_ALIASES = {
    "quote_date": ("quote_date", "quotedate", "date", "trade_date", "data_date"),
    "expiration": ("expiration", "expiry", "expiration_date", "expire_date", "exp_date"),
    "strike": ("strike", "strike_price"),
    "option_type": ("option_type", "type", "call_put", "put_call", "cp_flag", "right"),
    "bid": ("bid",),
    "ask": ("ask", "offer"),
    "underlying_last": ("underlying_last", "underlying_price", "underlying", "spot"),
    "implied_volatility": ("implied_volatility", "iv", "impl_vol", "implied_vol"),
    "delta": ("delta",),
    "volume": ("volume",),
    "open_interest": ("open_interest", "openinterest", "oi"),
}
_TYPE_VALUES = {
    "call": "call",
    "c": "call",
    "calls": "call",
    "put": "put",
    "p": "put",
    "puts": "put",
}


# --------------------------------------------------------------------------- model chains
def build_chain(
    market: MarketState,
    expiries,
    *,
    strike_spacing: float = 1.0,
    moneyness_range: tuple[float, float] = (0.8, 1.2),
    n_strikes_each_side: int | None = None,
    surface_cfg: SurfaceConfig | None = None,
    cost_cfg: CostConfig | None = None,
) -> pd.DataFrame:
    """Model chain at ``market`` for the given expiries.

    Args:
        market: spot, ATM vol, rate and dividend yield at the quote time.
        expiries: expiry dates (e.g. from :func:`options.calendar.listed_expiries`).
        strike_spacing: strike grid interval ($1 for SPY, 5 for the index).
        moneyness_range: strikes with ``strike / spot`` in this range (inclusive).
        n_strikes_each_side: if given, instead this many grid strikes below and above the
            at-the-money strike.
        surface_cfg, cost_cfg: configs (defaults when None).

    Returns:
        DataFrame with :data:`CHAIN_COLUMNS`, sorted by expiration, option_type, strike.
    """
    surface_cfg = surface_cfg or SurfaceConfig()
    cost_cfg = cost_cfg or CostConfig()
    if strike_spacing <= 0:
        raise ValueError(f"strike_spacing must be > 0, got {strike_spacing}")
    spot = market.spot
    if n_strikes_each_side is not None:
        if n_strikes_each_side < 0:
            raise ValueError(f"n_strikes_each_side must be >= 0, got {n_strikes_each_side}")
        center = round(spot / strike_spacing)
        steps = np.arange(center - n_strikes_each_side, center + n_strikes_each_side + 1)
        steps = steps[steps >= 1]
    else:
        lo, hi = moneyness_range
        if not 0 < lo <= 1 <= hi:
            raise ValueError(
                f"moneyness_range must satisfy 0 < low <= 1 <= high, got {moneyness_range}"
            )
        steps = np.arange(
            max(np.ceil(lo * spot / strike_spacing), 1.0),
            np.floor(hi * spot / strike_spacing) + 1.0,
        )
    strikes = np.round(steps * strike_spacing, 10)
    expiries = pd.DatetimeIndex(pd.to_datetime(list(expiries))).normalize().unique().sort_values()
    if len(expiries) == 0 or len(strikes) == 0:
        return pd.DataFrame(columns=list(CHAIN_COLUMNS))
    t = np.array([t_years_to_expiry(market.as_of, e) for e in expiries])
    dte = np.array([dte_days(market.as_of, e) for e in expiries])
    n_e, n_k = len(expiries), len(strikes)
    # rows: expiry-major, then option type (call, put), then strike
    e_idx = np.repeat(np.arange(n_e), 2 * n_k)
    is_call = np.tile(np.repeat([True, False], n_k), n_e)
    k = np.tile(strikes, 2 * n_e)
    tt = t[e_idx]
    iv = iv_at(market.atm_iv_annualized, spot, k, tt, surface_cfg)
    mid = bs_price(is_call, spot, k, tt, market.rate, iv, market.dividend_yield)
    greeks = bs_greeks(is_call, spot, k, tt, market.rate, iv, market.dividend_yield)
    bid, ask = bid_ask_per_share(mid, cost_cfg, atm_iv_annualized=market.atm_iv_annualized,
                                 log_moneyness=np.log(k / spot), dte_days=tt * DAYS_PER_YEAR)
    return pd.DataFrame(
        {
            "quote_date": market.as_of,
            "expiration": expiries[e_idx],
            "dte_days": dte[e_idx],
            "t_years": tt,
            "option_type": np.where(is_call, "call", "put"),
            "strike": k,
            "underlying_last": spot,
            "bid": bid,
            "ask": ask,
            "mid": mid,
            "implied_volatility": iv,
            "delta": greeks["delta"],
            "gamma": greeks["gamma"],
            "theta_per_day": greeks["theta_per_day"],
            "vega_per_vol_point": greeks["vega_per_vol_point"],
        }
    )


# --------------------------------------------------------------------------- selection
def select_expiry(
    chain: pd.DataFrame, target_dte_days: float, min_dte_days: int = 1
) -> pd.Timestamp:
    """The chain's expiration whose days to expiry are nearest the target (ties: later)."""
    if chain.empty:
        raise ValueError("chain is empty")
    quote = pd.Timestamp(chain["quote_date"].iloc[0]).normalize()
    expiries = pd.DatetimeIndex(chain["expiration"].unique()).sort_values()
    dte = (expiries - quote).days.to_numpy()
    ok = dte >= min_dte_days
    if not ok.any():
        raise ValueError(f"no expiration at least {min_dte_days} days after {quote.date()}")
    gap = np.where(ok, np.abs(dte - target_dte_days), np.inf)
    best = len(gap) - 1 - int(np.argmin(gap[::-1]))
    return expiries[best]


def _slice(chain: pd.DataFrame, expiry, option_type: str) -> pd.DataFrame:
    if option_type not in ("call", "put"):
        raise ValueError(f"option_type must be 'call' or 'put', got {option_type!r}")
    rows = chain[
        (chain["expiration"] == pd.Timestamp(expiry)) & (chain["option_type"] == option_type)
    ]
    if rows.empty:
        raise ValueError(
            f"chain has no {option_type} quotes expiring {pd.Timestamp(expiry).date()}"
        )
    return rows


def select_strike_by_delta(
    chain: pd.DataFrame, expiry, option_type: str, target_delta_abs: float
) -> pd.Series:
    """The quote (row) whose ``|delta|`` is nearest the target at one expiry."""
    rows = _slice(chain, expiry, option_type)
    if "delta" not in rows or rows["delta"].isna().all():
        raise ValueError("chain has no delta values to select by")
    gap = (rows["delta"].abs() - target_delta_abs).abs()
    return rows.loc[gap.idxmin()]


def select_strike_by_moneyness(
    chain: pd.DataFrame, expiry, option_type: str, moneyness: float
) -> pd.Series:
    """The quote (row) whose ``strike / underlying_last`` is nearest ``moneyness``."""
    rows = _slice(chain, expiry, option_type)
    gap = (rows["strike"] / rows["underlying_last"] - moneyness).abs()
    return rows.loc[gap.idxmin()]


# --------------------------------------------------------------------------- CSV import
def _canonical(name: str) -> str:
    return str(name).strip().strip("[]").strip().lower().replace(" ", "_").replace("-", "_")


def _fail(path: Path, column: str, problem: str, bad: np.ndarray, frame: pd.DataFrame):
    n = int(bad.sum())
    first = int(np.flatnonzero(bad)[0])
    raw = frame.iloc[first].to_dict()
    raise ChainFileError(
        f"chain file '{path}': column '{column}' {problem} in {n} row(s); first at data row "
        f"{first + 1} (line {first + 2}): {raw}"
    )


def read_chain_csv(path, *, rate: float | None = None, dividend_yield: float = 0.0) -> pd.DataFrame:
    """Read a vendor option-chain dump in long format and validate it.

    Column names are matched case-insensitively after stripping spaces and brackets, with
    aliases (e.g. ``type``/``call_put`` for ``option_type``, ``expiry`` for ``expiration``,
    ``underlying_price`` for ``underlying_last``, ``iv`` for ``implied_volatility``).
    Required: :data:`CHAIN_REQUIRED_COLUMNS`; ``underlying_last``, ``implied_volatility``,
    ``delta``, ``volume`` and ``open_interest`` are kept when present.

    Checks (each failure raises :class:`ChainFileError` naming the file, the column, how many
    rows fail and the first one): a readable (not truncated) file, parseable dates, strike
    finite and > 0, option type call/put (or C/P), bid and ask numbers (or empty) and >= 0,
    underlying_last > 0 when present.

    Rows set aside as fill prices, counted in ``attrs["read_report"]`` (a
    :class:`options.chain_io.ChainReadReport` dict): expiries before the quote date, crossed
    quotes (bid > ask) and quotes with a bid but no ask are dropped; zero quotes and quotes
    with an ask but no bid are kept with bid 0 and ``valid_quote`` False.

    If ``implied_volatility`` is absent and ``underlying_last`` present and ``rate`` is given,
    it is computed from the mid by the vectorised inverter (NaN where no vol exists).

    Returns:
        DataFrame with canonical column names plus ``mid`` and ``dte_days``, sorted by
        quote_date, expiration, option_type, strike.
    """
    path = Path(path)
    if not path.exists():
        raise ChainFileError(f"chain file '{path}' does not exist")
    try:
        raw = pd.read_csv(path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ChainFileError(f"chain file '{path}' is truncated or not valid gzip "
                             f"({type(exc).__name__}: {exc}); expected a complete file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            OSError) as exc:
        raise ChainFileError(f"chain file '{path}' is not a readable CSV: {exc}") from None
    if raw.empty:
        raise ChainFileError(f"chain file '{path}' has no rows")
    by_canonical = {_canonical(c): c for c in raw.columns}
    rename = {}
    for target, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in by_canonical:
                rename[by_canonical[alias]] = target
                break
    missing = [c for c in CHAIN_REQUIRED_COLUMNS if c not in rename.values()]
    if missing:
        accepted = {k: list(_ALIASES[k]) for k in missing}
        raise ChainFileError(
            f"chain file '{path}' is missing column(s) {missing}; it has {list(raw.columns)} "
            f"(matched case-insensitively; accepted names: {accepted})"
        )
    df = raw[list(rename)].rename(columns=rename)

    for col in ("quote_date", "expiration"):
        parsed = pd.to_datetime(df[col], errors="coerce", format="mixed")
        bad = parsed.isna().to_numpy()
        if bad.any():
            _fail(path, col, "has unparseable or missing dates", bad, raw)
        if parsed.dt.tz is not None:
            parsed = parsed.dt.tz_convert("America/New_York").dt.tz_localize(None)
        df[col] = parsed.dt.normalize()

    types = df["option_type"].astype(str).str.strip().str.lower().map(_TYPE_VALUES)
    bad = types.isna().to_numpy()
    if bad.any():
        _fail(path, "option_type", "is not call/put (or C/P)", bad, raw)
    df["option_type"] = types

    numeric = ["strike", "bid", "ask"] + [
        c
        for c in ("underlying_last", "implied_volatility", "delta", "volume", "open_interest")
        if c in df.columns
    ]
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce").astype(float)
        optional = col in ("bid", "ask", "implied_volatility", "delta", "volume",
                           "open_interest")
        empty = df[col].isna().to_numpy()  # blank cells; text that is not a number is bad
        bad = ~np.isfinite(values.to_numpy()) & ~(optional & empty)
        if bad.any():
            _fail(path, col, "is not a finite number", bad, raw)
        df[col] = values
    for col, problem, bad in (
        ("strike", "is not > 0", (df["strike"] <= 0).to_numpy()),
        ("bid", "is negative", (df["bid"] < 0).to_numpy()),
        ("ask", "is negative", (df["ask"] < 0).to_numpy()),
    ):
        if bad.any():
            _fail(path, col, problem, bad, raw)
    if "underlying_last" in df.columns:
        bad = (df["underlying_last"] <= 0).to_numpy()
        if bad.any():
            _fail(path, "underlying_last", "is not > 0", bad, raw)

    # rows set aside as fill prices, as options.chain_io.read_chain does
    n_read = len(df)
    late = (df["expiration"] < df["quote_date"]).to_numpy()
    bid, ask = df["bid"].to_numpy(float), df["ask"].to_numpy(float)
    has_bid, has_ask = bid > 0, ask > 0
    bid_only = has_bid & ~has_ask
    crossed = has_bid & has_ask & (bid > ask)
    counted = ~late
    set_aside = {"zero_quote": int((~has_bid & ~has_ask & counted).sum()),
                 "one_sided_quote": int(((has_bid != has_ask) & counted).sum()),
                 "crossed_quote": int((crossed & counted).sum()), "non_session_date": 0,
                 "expiry_before_quote_date": int(late.sum())}
    keep = ~(late | bid_only | crossed)
    df = df.loc[keep].reset_index(drop=True)
    df["bid"] = np.where(has_bid, bid, 0.0)[keep]
    df["ask"] = np.where(has_ask, ask, 0.0)[keep]
    df["valid_quote"] = (df["bid"] > 0) & (df["ask"] >= df["bid"])
    df["mid"] = 0.5 * (df["bid"] + df["ask"])
    df["dte_days"] = (df["expiration"] - df["quote_date"]).dt.days.astype(int)
    if (
        "implied_volatility" not in df.columns
        and "underlying_last" in df.columns
        and (rate is not None)
    ):
        t_years = df["dte_days"].to_numpy() / DAYS_PER_YEAR
        df["implied_volatility"] = implied_vol_vectorized(
            df["mid"].to_numpy(),
            df["option_type"].to_numpy(),
            df["underlying_last"].to_numpy(),
            df["strike"].to_numpy(),
            t_years,
            rate,
            dividend_yield,
        )
    df.attrs["source"] = str(path)
    df.attrs["read_report"] = ChainReadReport(str(path), n_read, len(df), set_aside).to_dict()
    return df.sort_values(["quote_date", "expiration", "option_type", "strike"], ignore_index=True)
