"""Chain import under American exercise: implied vols of American quotes (``options.exercise``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from options.american import DividendHistory, american_price
from options.chain_io import ChainFileError, read_chain, read_dividend_history
from options.pricing import DAYS_PER_YEAR, VOL_POINT, implied_vol_vectorized
from options.smile import implied_vol_american_quotes, market_ivs
from tests.helpers import run

SPY_SLICE = Path(__file__).parent / "data" / "real_chains" / "spy_slice_2021-03-01_05.csv"
VOL = 0.25
RATE = 0.05
SPOT = 100.0
STRIKES = np.arange(80.0, 121.0, 5.0)


def _american_chain(dte_days=(60, 120), strikes=STRIKES) -> pd.DataFrame:
    """A tidy chain of American prices (flat vol 25%, rate 5%, no dividend) on one date."""
    rows = []
    date = pd.Timestamp("2021-03-01")
    for dte in dte_days:
        for right in ("call", "put"):
            mid = american_price(right, SPOT, strikes, dte / DAYS_PER_YEAR, RATE, VOL)
            for k, m in zip(strikes, mid, strict=True):
                rows.append({"quote_date": date, "expiry": date + pd.Timedelta(days=dte),
                             "option_type": right, "strike": k, "mid_per_share": m,
                             "bid_per_share": m - 0.01, "ask_per_share": m + 0.01,
                             "underlying_price": SPOT, "dte_days": dte, "zero_bid": False})
    return pd.DataFrame(rows)


def _with_carry(chain: pd.DataFrame, carry: float = 0.0) -> pd.DataFrame:
    return chain.assign(t_years=chain["dte_days"] / DAYS_PER_YEAR, carry_q=carry)


def test_american_inversion_recovers_the_vol_and_reads_itm_puts_lower_than_european():
    rows = _with_carry(_american_chain())
    american = implied_vol_american_quotes(rows, RATE)
    # A put deep enough to be exercised (almost) at once is worth (about) its intrinsic value:
    # no vol can be read from under a tick of time value.
    intrinsic = np.where(rows["option_type"] == "call", SPOT - rows["strike"],
                         rows["strike"] - SPOT).clip(0)
    has_time_value = (rows["mid_per_share"] - intrinsic > 0.01).to_numpy()
    assert has_time_value.sum() >= len(rows) - 4
    np.testing.assert_allclose(american[has_time_value], VOL, atol=2e-4)
    assert np.isnan(american[~has_time_value]).all()
    european = implied_vol_vectorized(rows["mid_per_share"], rows["option_type"], SPOT,
                                      rows["strike"], rows["t_years"], RATE, 0.0)
    diff_pts = (american - european) / VOL_POINT
    put = (rows["option_type"] == "put").to_numpy()
    itm_put = put & (rows["strike"] > SPOT).to_numpy()
    otm_put = put & (rows["strike"] < SPOT).to_numpy()
    call = ~put
    # The early-exercise premium read as European volatility: ITM puts several points too high
    # (or no European vol at all, a price above the European value bound); OTM puts barely.
    readable = itm_put & np.isfinite(european) & np.isfinite(american)
    assert readable.sum() >= 4
    assert (diff_pts[readable] < -0.5).all()
    assert (np.abs(diff_pts[otm_put]) < 0.5).all() and (diff_pts[otm_put] <= 1e-6).all()
    assert np.abs(diff_pts[otm_put]).max() < np.abs(diff_pts[readable]).min()
    # A call on a stock without dividends is never exercised early: the same vol.
    np.testing.assert_allclose(american[call], european[call], atol=1e-5)


def test_market_ivs_reads_exercise_and_dividends():
    chain = _american_chain()
    european = market_ivs(chain, RATE)
    american = market_ivs(chain, RATE, exercise="american")
    otm = european["iv_market"].notna().to_numpy()
    assert otm.sum() >= 10 and american["iv_market"].notna().to_numpy()[otm].all()
    assert not np.allclose(american["iv_market"][otm], european["iv_market"][otm], atol=1e-5)
    expected = implied_vol_american_quotes(american[otm], RATE)
    np.testing.assert_allclose(american["iv_market"][otm], expected)
    # Dividends paid before the quote date enter (the projection: 2020-12-15 + 3 months);
    # one paid only after it is unknown at the quote date and changes nothing.
    paid = DividendHistory(pd.DatetimeIndex(["2020-12-15"]), np.array([1.5]))
    with_cash = market_ivs(chain, RATE, exercise="american", dividends=paid)
    assert not np.allclose(with_cash["iv_market"][otm], american["iv_market"][otm], atol=1e-4)
    later = DividendHistory(pd.DatetimeIndex(["2021-03-02"]), np.array([1.5]))
    not_yet = market_ivs(chain, RATE, exercise="american", dividends=later)
    np.testing.assert_array_equal(not_yet["iv_market"], american["iv_market"])
    with pytest.raises(ValueError, match="exercise"):
        market_ivs(chain, RATE, exercise="bermudan")


def test_read_dividend_history(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("symbol,date,close,divCash\nSPY,2021-03-18,390,0.0\n"
                    "SPY,2021-03-19,389,1.2778\nSPY,2021-03-22,392,0\n")
    paid = read_dividend_history(path)
    assert list(paid.ex_dates) == [pd.Timestamp("2021-03-19")]
    np.testing.assert_allclose(paid.cash_per_share, [1.2778])
    bad = tmp_path / "bad.csv"
    bad.write_text("date,close\n2021-03-19,389\n")
    with pytest.raises(ChainFileError, match="bad.csv.*cash column"):
        read_dividend_history(bad)
    negative = tmp_path / "neg.csv"
    negative.write_text("date,divCash\n2021-03-19,-1\n")
    with pytest.raises(ChainFileError, match="divCash"):
        read_dividend_history(negative)


def test_chain_evaluation_passes_the_configured_exercise(monkeypatch):
    """``options.exercise`` of the run's config reaches the chain import (prepare_chain_market)
    in ``evaluate.py --quotes chain``."""
    import agents.chain_eval as chain_eval
    from config import load_config

    seen = {}

    class Stop(Exception):
        pass

    def spy(chain, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(chain_eval, "prepare_chain_market", spy)
    chain = read_chain(SPY_SLICE)
    base = {"segments": {"train": {"start": "2001-01-01", "end": "2001-12-31"},
                         "valid": {"start": "2002-01-01", "end": "2002-06-30"},
                         "test": {"start": "2002-07-01", "end": "2002-12-31"}}}
    for style in ("american", "european"):
        cfg = load_config({**base, "options": {"exercise": style}})
        with pytest.raises(Stop):
            chain_eval.prepare_chain_setup(cfg, pd.DataFrame(index=pd.DatetimeIndex([])), None,
                                           chain)
        assert seen["exercise"] == style


def test_spy_configs_say_american_and_spx_configs_european():
    from config import load_config

    root = Path(__file__).parents[1] / "configs"
    assert load_config(root / "spy_live.yaml").options.exercise == "american"
    for name in ("quick.yaml", "default.yaml"):
        assert load_config(root / name).options.exercise == "european"


def test_exercise_ivs_cli_on_real_spy_quotes(tmp_path):
    """The measuring CLI on the SPY slice (2021-03-01..05) with the 2020-12-18 dividend paid:
    its table, and one line naming the file for a missing dividend file."""
    bars = tmp_path / "bars.csv"
    bars.write_text("date,divCash\n2020-12-18,1.58\n")
    out = tmp_path / "ivs.csv"
    proc = run("-m", "options.exercise_ivs", "--chain", str(SPY_SLICE), "--rate", "0.0005",
               "--dividends", str(bars), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "iv_american_cash" in proc.stdout and "put       itm" in proc.stdout
    table = pd.read_csv(out)
    assert len(table) > 50 and table["iv_american_yield"].notna().mean() > 0.95
    proc = run("-m", "options.exercise_ivs", "--chain", str(SPY_SLICE), "--dividends",
               str(tmp_path / "missing.csv"))
    assert proc.returncode == 2 and "missing.csv" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
