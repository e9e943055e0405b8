"""The offline default source: real market history shipped inside the ``arch`` package.

* Underlying: S&P 500 index daily OHLCV 1999-01-04..2018-12-31 (symbol ``^GSPC``). It stands in
  for SPY, which tracks the index at about 1/10 of its level (SPY also pays dividends, which the
  price index does not include).
* ``iv_index``: CBOE VIX close / 100, 2014-01-03..2018-12-31 (NaN before; the options layer falls
  back to a causally calibrated realised-volatility proxy there).
* ``rate``: Fama-French monthly ``RF`` (percent per month) annualised as ``RF * 12 / 100``.
* Macro: core CPI (``CPILFESL``) level and year-on-year change, Moody's AAA and BAA yields and
  their spread, each entering on its publication date (see :mod:`data.macro`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from common.units import PERCENT_PER_UNIT
from data.macro import CPI_RELEASE_DAY, MONTHS_PER_YEAR, align_monthly_to_bars, publication_dates
from data.validation import validate_market_frame

__all__ = ["EMBEDDED_SYMBOL", "load_embedded"]

EMBEDDED_SYMBOL = "^GSPC"


def _arch_data(name: str, filename: str) -> pd.DataFrame:
    """``arch.data.<name>.load()`` without importing ``arch`` (its ``__init__`` imports the
    volatility models, statsmodels and matplotlib: about 0.4 s): the same file, read the way
    ``arch.data.utility.load_file`` reads it."""
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the embedded market data ships with the 'arch' package; "
                                  "install it (pip install arch)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name / filename
    data = pd.read_csv(path)
    if "Date" in data:
        data.Date = pd.to_datetime(data.Date)
        data = data.set_index("Date")
    for col in data:
        data[col] = pd.to_numeric(data[col], errors="coerce")
    return data


def _french_rf() -> pd.Series:
    raw = _arch_data("frenchdata", "frenchdata.csv.gz")
    # arch stores the YYYYMM integer as nanoseconds since the epoch; recover the month from it.
    yyyymm = raw.index.as_unit("ns").asi8
    months = pd.to_datetime([f"{v // 100:04d}-{v % 100:02d}-01" for v in yyyymm])
    return pd.Series(raw["RF"].to_numpy(dtype="float64"), index=months, name="rf_monthly_pct")


def load_embedded(start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Build the embedded market frame (daily bars), optionally restricted to [start, end]."""
    spx = _arch_data("sp500", "sp500.csv.gz")
    frame = pd.DataFrame(
        {
            "open": spx["Open"].astype("float64"),
            "high": spx["High"].astype("float64"),
            "low": spx["Low"].astype("float64"),
            "close": spx["Close"].astype("float64"),
            "volume": spx["Volume"].astype("float64"),
        }
    )
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    bars = frame.index

    vix_close = _arch_data("vix", "vix.csv.gz")["vix"].astype("float64")
    frame["iv_index"] = (vix_close / PERCENT_PER_UNIT).reindex(bars)

    rf = _french_rf()
    frame["rate"] = align_monthly_to_bars(
        rf * MONTHS_PER_YEAR / PERCENT_PER_UNIT, publication_dates(rf.index, lag_months=0), bars
    )

    cpi = _arch_data("core_cpi", "core-cpi.csv.gz")["CPILFESL"].astype("float64")
    cpi.index = pd.DatetimeIndex(cpi.index)
    cpi_public = publication_dates(cpi.index, lag_months=1, release_day=CPI_RELEASE_DAY)
    frame["cpi_core"] = align_monthly_to_bars(cpi, cpi_public, bars)
    cpi_yoy = np.log(cpi / cpi.shift(12))
    frame["cpi_core_yoy"] = align_monthly_to_bars(cpi_yoy, cpi_public, bars)

    yields = _arch_data("default", "default.csv.gz").astype("float64")
    yields.index = pd.DatetimeIndex(yields.index)
    yields_public = publication_dates(yields.index, lag_months=1)
    frame["aaa_yield"] = align_monthly_to_bars(yields["AAA"] / PERCENT_PER_UNIT, yields_public, bars)
    frame["baa_yield"] = align_monthly_to_bars(yields["BAA"] / PERCENT_PER_UNIT, yields_public, bars)
    frame["credit_spread"] = frame["baa_yield"] - frame["aaa_yield"]

    if start is not None or end is not None:
        frame = frame.loc[start:end]
    frame.attrs.update(
        source="embedded",
        symbol=EMBEDDED_SYMBOL,
        interval="1d",
        note=(
            "S&P 500 index daily bars from the arch package; stands in for SPY, which tracks it "
            "at about 1/10 of the level. iv_index = VIX/100 (2014-2018 only). rate = Fama-French "
            "RF annualised. Macro columns enter on their publication dates (data/macro.py)."
        ),
    )
    return validate_market_frame(frame, source="embedded (arch.data.sp500)")
