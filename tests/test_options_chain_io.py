"""Import of real chain layouts (eod, cboe, wide) and their validation errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import UserInputError
from options.chain_io import (
    TIDY_COLUMNS,
    ChainFileError,
    chain_read_report,
    detect_chain_format,
    one_root_per_contract,
    read_chain,
    read_chains,
)

DATA = Path(__file__).parent / "data" / "real_chains"
SPX = DATA / "spx_slice_2019-05-06_07.csv.gz"
SPY = DATA / "spy_slice_2021-03-01_05.csv"


def test_eod_layout_reads_the_shared_slice():
    df = read_chain(SPX)
    assert tuple(df.columns) == TIDY_COLUMNS
    assert df.attrs["format"] == "eod"
    assert set(df["option_type"]) == {"call", "put"}
    assert set(df["root"]) == {"SPXW"}
    assert (df["quote_date"].dt.normalize() == df["quote_date"]).all()
    assert (df["ask_per_share"] >= df["bid_per_share"]).all()
    np.testing.assert_allclose(df["mid_per_share"], 0.5 * (df["bid_per_share"]
                                                         + df["ask_per_share"]))
    # zero bids are kept and flagged
    assert df["zero_bid"].any()
    assert (df.loc[df["zero_bid"], "bid_per_share"] == 0).all()
    raw = pd.read_csv(SPX)
    assert len(df) == len(raw)
    first = raw.iloc[0]
    row = df[(df["strike"] == first["strike"]) & (df["option_type"] == first["type"])
             & (df["expiry"] == pd.Timestamp(first["expiration"]))
             & (df["quote_date"] == pd.Timestamp(first["quotedate"]))].iloc[0]
    assert row["bid_per_share"] == first["bid"] and row["ask_per_share"] == first["ask"]
    assert row["underlying_price"] == first["underlying_last"]


def test_us_dates_bom_and_padded_headers_give_the_same_frame(tmp_path):
    raw = pd.read_csv(SPY, dtype=str)
    raw["quotedate"] = pd.to_datetime(raw["quotedate"]).dt.strftime("%m/%d/%Y")
    raw["expiration"] = pd.to_datetime(raw["expiration"]).dt.strftime("%m/%d/%Y")
    raw.columns = [f" [{c.upper()}]" if i % 2 else f"{c} " for i, c in enumerate(raw.columns)]
    path = tmp_path / "us.csv"
    path.write_bytes(b"\xef\xbb\xbf" + raw.to_csv(index=False).encode())
    got = read_chain(path)
    want = read_chain(SPY)
    pd.testing.assert_frame_equal(got, want)


def _cboe_file(tmp_path: Path) -> Path:
    spy = read_chain(SPY)
    out = pd.DataFrame({
        "underlying_symbol": "SPY",
        "quote_date": spy["quote_date"].dt.strftime("%Y-%m-%d"),
        "root": "SPY",
        "expiration": spy["expiry"].dt.strftime("%Y-%m-%d"),
        "strike": spy["strike"],
        "option_type": np.where(spy["option_type"] == "call", "C", "P"),
        "open": 0, "high": 0, "low": 0, "close": 0,
        "trade_volume": spy["volume"].astype(int),
        "bid_size_1545": 10, "bid_1545": spy["bid_per_share"], "ask_size_1545": 10,
        "ask_1545": spy["ask_per_share"],
        "underlying_bid_1545": 0, "underlying_ask_1545": 0,
        "implied_volatility_1545": spy["iv_vendor"],
        "active_underlying_price_1545": spy["underlying_price"],
        "bid_size_eod": 10, "bid_eod": spy["bid_per_share"], "ask_size_eod": 10,
        "ask_eod": spy["ask_per_share"],
        "underlying_bid_eod": spy["underlying_price"] - 0.01,
        "underlying_ask_eod": spy["underlying_price"] + 0.01,
        "vwap": 0, "open_interest": spy["open_interest"].astype(int), "delivery_code": "",
    })
    path = tmp_path / "UnderlyingOptionsEODCalcs_2021.csv"
    out.to_csv(path, index=False)
    return path


def test_cboe_datashop_layout(tmp_path):
    path = _cboe_file(tmp_path)
    got = read_chain(path)
    assert got.attrs["format"] == "cboe"
    want = read_chain(SPY)
    cols = ["quote_date", "expiry", "option_type", "strike", "bid_per_share", "ask_per_share",
            "volume", "open_interest", "zero_bid", "iv_vendor", "dte_days"]
    pd.testing.assert_frame_equal(got[cols], want[cols])
    np.testing.assert_allclose(got["underlying_price"], want["underlying_price"])


def test_wide_layout_matches_the_long_one(tmp_path):
    long = read_chain(SPY)
    key = ["quote_date", "expiry", "strike"]
    calls = long[long["option_type"] == "call"].set_index(key)
    puts = long[long["option_type"] == "put"].set_index(key)
    both = calls.join(puts, suffixes=("_c", "_p"), how="inner").reset_index()
    assert len(both) >= 1
    wide = pd.DataFrame({
        "quote_date": both["quote_date"].dt.strftime("%Y-%m-%d"),
        "expiration": both["expiry"].dt.strftime("%Y-%m-%d"),
        "strike": both["strike"],
        "underlying_price": both["underlying_price_c"],
        "call_bid": both["bid_per_share_c"], "call_ask": both["ask_per_share_c"],
        "put_bid": both["bid_per_share_p"], "put_ask": both["ask_per_share_p"],
        "call_volume": both["volume_c"], "put_volume": both["volume_p"],
    })
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False)
    assert detect_chain_format(wide.columns) == "wide"
    got = read_chain(path)
    assert len(got) == 2 * len(both)
    merged = got.merge(long, on=["quote_date", "expiry", "option_type", "strike"])
    assert len(merged) == len(got)
    np.testing.assert_array_equal(merged["bid_per_share_x"], merged["bid_per_share_y"])
    np.testing.assert_array_equal(merged["ask_per_share_x"], merged["ask_per_share_y"])


def test_format_argument_and_undetectable_layout(tmp_path):
    assert read_chain(SPY, format="eod").attrs["format"] == "eod"
    path = tmp_path / "odd.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ChainFileError, match="cannot tell its layout.*--format"):
        read_chain(path)
    with pytest.raises(ChainFileError, match="is not one of"):
        read_chain(SPY, format="nope")


def _mutated(tmp_path: Path, edit) -> Path:
    raw = pd.read_csv(SPY, dtype=str)
    raw = edit(raw)
    path = tmp_path / "bad_chain.csv"
    raw.to_csv(path, index=False)
    return path


def _set(col, rows, value):
    def edit(raw):
        raw.loc[rows, col] = value
        return raw
    return edit


@pytest.mark.parametrize("edit, pattern", [
    (_set("bid", [5], "-1"), r"column 'bid' has negative prices in 1 row\(s\); first at data "
                             r"row 6"),
    (lambda raw: pd.concat([raw, raw.iloc[[10]]], ignore_index=True),
     r"duplicates a contract .* in 1 row\(s\); first at data row 101"),
    (lambda raw: raw.drop(columns=["ask"]), r"missing 1 column\(s\) \['ask'\]"),
    (_set("quotedate", [1], "yesterday"), r"column 'quotedate' has unparseable .* in 1 row"),
    (_set("type", [0], "straddle"), r"column 'type' is not call/put .* in 1 row"),
])
def test_bad_input_names_file_column_count_and_first_row(tmp_path, edit, pattern):
    path = _mutated(tmp_path, edit)
    with pytest.raises(ChainFileError, match=pattern) as info:
        read_chain(path)
    assert "bad_chain.csv" in str(info.value)
    assert isinstance(info.value, UserInputError)


def test_crossed_quotes_are_set_aside_and_counted(tmp_path):
    path = _mutated(tmp_path, _set("ask", [3, 7], "0.01"))
    for df in (read_chain(path), read_chain(path, drop_crossed=False)):
        assert df.attrs["dropped_crossed_quotes"] == 2
        assert len(df) == 98
        assert chain_read_report(df).set_aside["crossed_quote"] == 2


def test_holiday_copies_are_dropped_and_listed(tmp_path, caplog):
    def edit(raw):
        extra = raw[raw["quotedate"] == "2021-03-05"].copy()
        extra["quotedate"] = "2021-04-02"  # Good Friday 2021: no session
        return pd.concat([raw, extra], ignore_index=True)
    with caplog.at_level("INFO", logger="options.chain_io"):
        df = read_chain(_mutated(tmp_path, edit))
    assert df.attrs["dropped_non_session_dates"] == ["2021-04-02"]
    assert pd.Timestamp("2021-04-02") not in set(df["quote_date"])
    report = chain_read_report(df)
    assert report.non_session_dates == ("2021-04-02",)
    assert report.set_aside["non_session_date"] == 20 == report.n_rows_read - report.n_rows_kept
    assert "non_session_date=20" in caplog.text and "2021-04-02" in caplog.text


def test_reader_sets_aside_each_kind_of_invalid_quote_and_counts_it(tmp_path):
    def edit(raw):
        raw.loc[[0, 1], ["bid", "ask"]] = "0"                   # zero quotes: kept, flagged
        raw.loc[2, "bid"] = ""                                   # missing bid: kept, flagged
        raw.loc[3, "ask"] = ""                                   # missing ask: dropped
        raw.loc[4, "ask"] = "0"                                  # bid only: dropped
        raw.loc[[5, 6, 7], "ask"] = "0.01"                       # crossed: dropped
        raw.loc[[8, 9], "expiration"] = "2021-02-01"             # expired: dropped
        return raw
    df = read_chain(_mutated(tmp_path, edit))
    report = chain_read_report(df)
    assert report.set_aside == {"zero_quote": 2, "one_sided_quote": 3, "crossed_quote": 3,
                                "non_session_date": 0, "expiry_before_quote_date": 2}
    assert report.n_rows_read == 100 and report.n_rows_kept == len(df) == 100 - 2 - 3 - 2
    assert int((~df["valid_quote"]).sum()) == 3  # two zero quotes and the bid-less one
    assert (df.loc[~df["valid_quote"], "bid_per_share"] == 0).all()
    assert (df.loc[df["valid_quote"], "bid_per_share"] > 0).all()
    assert (df["ask_per_share"] >= df["bid_per_share"]).all()
    assert report.to_dict()["set_aside"]["crossed_quote"] == 3
    assert "crossed_quote=3" in report.summary()


def test_truncated_gzip_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(SPX.read_bytes()[:2000])
    with pytest.raises(ChainFileError, match=r"cut\.csv\.gz' is truncated") as info:
        read_chain(path)
    assert "\n" not in str(info.value)


def test_several_files_sum_their_reports(tmp_path):
    a = _mutated(tmp_path, _set("ask", [3], "0.01"))
    raw = pd.read_csv(SPY, dtype=str)
    raw["quotedate"] = (pd.to_datetime(raw["quotedate"]) + pd.Timedelta(days=63)).dt.strftime(
        "%Y-%m-%d")  # nine weeks later: same weekdays, all sessions
    raw["expiration"] = "2021-06-18"
    raw = raw.drop_duplicates(["quotedate", "type", "strike"])
    raw.loc[[0], "ask"] = "0.01"
    b = tmp_path / "other.csv"
    raw.to_csv(b, index=False)
    report = chain_read_report(read_chains([a, b]))
    assert report.set_aside["crossed_quote"] == 2
    assert report.n_rows_read == 100 + len(raw)


def test_one_root_per_contract_prefers_the_most_listed_root():
    df = read_chain(SPX)
    monthly = df[df["expiry"] == pd.Timestamp("2019-05-17")].head(3).assign(root="SPX")
    both = pd.concat([df, monthly], ignore_index=True)
    out = one_root_per_contract(both)
    assert len(out) == len(df)
    assert set(out["root"]) == {"SPXW"}
