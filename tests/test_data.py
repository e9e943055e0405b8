"""Market data: embedded history, sources, validation errors, cache, macro lags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data
from common.io import write_parquet_atomic
from data import MarketDataError, gap_report, load_market, validate_market_frame
from data.macro import CPI_RELEASE_DAY
from data.yfinance_source import cache_path


@pytest.fixture(scope="module")
def embedded() -> pd.DataFrame:
    return load_market("embedded")


@pytest.mark.parametrize("name,filename", [
    ("sp500", "sp500.csv.gz"), ("vix", "vix.csv.gz"), ("frenchdata", "frenchdata.csv.gz"),
    ("core_cpi", "core-cpi.csv.gz"), ("default", "default.csv.gz")])
def test_embedded_files_read_as_arch_reads_them(name, filename):
    import importlib

    from data.embedded import _arch_data

    pd.testing.assert_frame_equal(_arch_data(name, filename),
                                  importlib.import_module(f"arch.data.{name}").load(),
                                  check_exact=True)


def test_embedded_rows_and_ranges(embedded):
    assert len(embedded) == 5031
    assert embedded.index[0] == pd.Timestamp("1999-01-04")
    assert embedded.index[-1] == pd.Timestamp("2018-12-31")
    assert embedded.attrs["symbol"] == "^GSPC"
    assert "SPY" in embedded.attrs["note"]
    iv = embedded["iv_index"].dropna()
    assert iv.index[0] == pd.Timestamp("2014-01-03")
    assert 0.08 < iv.min() < iv.max() < 0.6  # VIX/100, not points
    assert embedded["rate"].between(0, 0.08).all()
    assert embedded.loc["2000-06-01":"2000-06-30", "rate"].mean() == pytest.approx(0.48 * 12 / 100,
                                                                                    abs=0.01)
    assert {"cpi_core", "cpi_core_yoy", "aaa_yield", "baa_yield"} <= set(embedded.columns)


def test_embedded_restrict_dates():
    frame = load_market("embedded", start="2015-01-01", end="2015-12-31")
    assert frame.index[0] == pd.Timestamp("2015-01-02")
    assert frame.index[-1] == pd.Timestamp("2015-12-31")
    assert len(frame) == 252


def test_cpi_enters_on_publication_not_reference_date(embedded):
    from arch.data import core_cpi

    cpi = core_cpi.load()["CPILFESL"]
    jan_2018 = cpi.loc["2018-01-01"]
    dec_2017 = cpi.loc["2017-12-01"]
    # January 2018 CPI is public from 2018-02-20 (our conservative release day), not before.
    before = embedded.loc[:f"2018-02-{CPI_RELEASE_DAY - 1:02d}", "cpi_core"]
    assert before.iloc[-1] == dec_2017
    after = embedded.loc["2018-02-20":"2018-02-28", "cpi_core"]
    assert (after == jan_2018).all()
    assert (embedded.loc["2018-01-02":"2018-02-16", "cpi_core"] != jan_2018).all()


def test_bond_yields_enter_month_after_reference(embedded):
    from arch.data import default

    yields = default.load()
    assert embedded.loc["2018-03-01", "aaa_yield"] == pytest.approx(yields.loc["2018-02-01", "AAA"]
                                                                    / 100)
    assert embedded.loc["2018-02-28", "aaa_yield"] == pytest.approx(yields.loc["2018-01-01", "AAA"]
                                                                    / 100)


def test_gap_report_embedded_is_complete(embedded):
    report = gap_report(embedded)
    assert report.expected_sessions == report.present_sessions == len(embedded)
    holey = embedded.drop(pd.Timestamp("2015-03-10"))
    report = gap_report(holey)
    assert list(report.missing_sessions) == [pd.Timestamp("2015-03-10")]
    assert "1 missing" in report.summary()


def _bars(n: int = 6, freq: str = "B") -> pd.DataFrame:
    index = pd.date_range("2020-01-06", periods=n, freq=freq, name="date")
    close = np.linspace(100.0, 105.0, n)
    return pd.DataFrame({"open": close - 0.5, "high": close + 1.0, "low": close - 1.0,
                         "close": close, "volume": np.full(n, 1e6)}, index=index)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.assign(close=f["close"].where(f.index != f.index[2], -1.0)),
         "column 'close' has 1 row(s) non-positive, first at 2020-01-08"),
        (lambda f: f.assign(close=f["close"].where(f.index != f.index[3], np.nan)),
         "column 'close' has 1 row(s) missing (NaN), first at 2020-01-09"),
        (lambda f: f.assign(high=f["low"] - 0.1),
         "column 'high' has 6 row(s) below max(open, close), first at 2020-01-06"),
        (lambda f: f.assign(low=f["high"] + 0.1),
         "column 'low' has 6 row(s) above min(open, close), first at 2020-01-06"),
        (lambda f: f.assign(volume=f["volume"].where(f.index != f.index[4], -5.0)),
         "column 'volume' has 1 row(s) negative, first at 2020-01-10"),
        (lambda f: f.iloc[[0, 2, 1, 3]], "column 'timestamp' has 1 row(s) out of order"),
        (lambda f: f.iloc[[0, 1, 1, 2]], "column 'timestamp' has 1 row(s) duplicated, first at "
                                         "2020-01-07"),
        (lambda f: f.drop(columns="volume"), "missing column(s) ['volume']"),
        (lambda f: f.assign(iv_index=18.0), "column 'iv_index' has 6 row(s) above 5"),
    ],
)
def test_validation_errors_name_column_count_and_first_row(mutate, message):
    with pytest.raises(MarketDataError) as err:
        validate_market_frame(mutate(_bars()), source="unit")
    assert message in str(err.value)
    assert str(err.value).startswith("unit")


def test_csv_source_aliases_and_intraday(tmp_path):
    index = pd.date_range("2021-03-01 09:30", periods=12, freq="5min")
    close = np.linspace(380, 382, 12)
    raw = pd.DataFrame({"Timestamp": index.strftime("%Y-%m-%d %H:%M"), "OPEN": close,
                        "High": close + 0.2, "low": close - 0.2, "Close": close,
                        "Adj Close": close * 0.99, "Volume": 1000, "VIX": 21.5})
    path = tmp_path / "spy_5m.csv"
    raw.to_csv(path, index=False)
    frame = load_market("csv", path=str(path))
    assert list(frame.index) == list(index)
    assert frame.attrs["interval"] == "intraday"
    assert frame["iv_index"].iloc[0] == pytest.approx(0.215)
    assert frame["close"].iloc[-1] == pytest.approx(382)
    adjusted = data.market.load_csv(path, prefer_adjusted=True)
    assert adjusted["close"].iloc[-1] == pytest.approx(382 * 0.99)
    assert adjusted["high"].iloc[-1] == pytest.approx(382.2 * 0.99)
    assert data.bars_per_year(frame.index) == pytest.approx(252 * 78)


def test_csv_errors_name_file_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    frame = _bars()
    frame.index = frame.index.strftime("%Y-%m-%d")
    frame.loc["2020-01-08", "close"] = 0.0
    frame.rename_axis("Date").to_csv(path)
    with pytest.raises(MarketDataError, match=r"csv file .*bad.csv: column 'close' has 1 row"):
        load_market("csv", path=str(path))
    no_date = tmp_path / "nodate.csv"
    _bars().reset_index(drop=True).to_csv(no_date, index=False)
    with pytest.raises(MarketDataError, match="no date column"):
        load_market("csv", path=str(no_date))
    with pytest.raises(MarketDataError, match="no such file"):
        load_market("csv", path=str(tmp_path / "absent.csv"))
    text = tmp_path / "text.csv"
    text.write_text("date,open,high,low,close,volume\n2020-01-02,1,2,0.5,abc,10\n")
    with pytest.raises(MarketDataError, match="column 'close' has 1 non-numeric"):
        load_market("csv", path=str(text))
    with pytest.raises(MarketDataError, match="unknown market data source 'bloomberg'"):
        load_market("bloomberg")


def test_yfinance_served_from_cache_without_network(tmp_path, monkeypatch):
    import data.yfinance_source as yfs

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be used when the cache holds the request")

    monkeypatch.setattr(yfs, "_download", no_network)
    spy = _bars(8)
    vix = _bars(8).assign(close=20.0, open=20.0, high=21.0, low=19.0)
    write_parquet_atomic(spy, cache_path(tmp_path, "SPY", "1d", "2020-01-01", "2020-02-01"))
    write_parquet_atomic(vix, cache_path(tmp_path, "^VIX", "1d", "2020-01-01", "2020-02-01"))
    frame = load_market("yfinance", symbol="SPY", interval="1d", start="2020-01-01",
                        end="2020-02-01", cache_dir=tmp_path)
    pd.testing.assert_series_equal(frame["close"], spy["close"], check_freq=False)
    assert (frame["iv_index"] == 0.20).all()
    assert frame.attrs["source"] == "yfinance"


def test_yfinance_download_is_cached_then_reused(tmp_path, monkeypatch):
    import data.yfinance_source as yfs

    calls: list[str] = []

    def fake_download(symbol, interval, start, end):
        calls.append(symbol)
        return _bars(5)

    monkeypatch.setattr(yfs, "_download", fake_download)
    first = load_market("yfinance", symbol="QQQ", start="2020-01-01", end="2020-01-31",
                        cache_dir=tmp_path, with_vix=False)
    second = load_market("yfinance", symbol="QQQ", start="2020-01-01", end="2020-01-31",
                         cache_dir=tmp_path, with_vix=False)
    assert calls == ["QQQ"]
    pd.testing.assert_frame_equal(first, second, check_freq=False)
    assert not list(tmp_path.glob("*.tmp"))


def test_yfinance_without_network_or_cache_names_offline_sources(tmp_path, monkeypatch):
    import data.yfinance_source as yfs

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(yfs, "_download", offline)
    with pytest.raises(MarketDataError) as err:
        load_market("yfinance", symbol="SPY", start="2020-01-01", end="2020-02-01",
                    cache_dir=tmp_path)
    assert "nothing is cached" in str(err.value)
    assert "embedded" in str(err.value) and "csv" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "frame.parquet"

    class Broken(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_parquet_atomic(Broken({"a": [1.0]}), target)
    assert list(tmp_path.iterdir()) == []
