"""Per-day SSVI smile, parity forwards, box-spread rate and carry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.chain_io import read_chain
from options.pricing import bs_price
from options.smile import (
    ChainDataError,
    chain_dividend_yield,
    fit_smiles,
    fit_ssvi_day,
    implied_forwards,
    market_ivs,
    parity_rate,
    ssvi_total_variance,
)

SPX = Path(__file__).parent / "data" / "real_chains" / "spx_slice_2019-05-06_07.csv.gz"
RATE, DIV, RHO, ETA = 0.025, 0.018, -0.65, 1.1
THETA = {20: 0.0016, 41: 0.0030, 76: 0.0052}


def ssvi_chain(strike_step: float = 5.0) -> pd.DataFrame:
    spot, date = 2900.0, pd.Timestamp("2019-05-06")
    rows = []
    for dte, theta in THETA.items():
        t = dte / 365
        fwd = spot * np.exp((RATE - DIV) * t)
        strikes = np.arange(2500.0, 3200.0, strike_step)
        iv = np.sqrt(ssvi_total_variance(np.log(strikes / fwd), theta, RHO, ETA) / t)
        for typ in ("call", "put"):
            mid = bs_price(typ, spot, strikes, t, RATE, iv, DIV)
            rows.append(pd.DataFrame({
                "quote_date": date, "expiry": date + pd.Timedelta(days=dte), "option_type": typ,
                "strike": strikes, "bid_per_share": mid * 0.99, "ask_per_share": mid * 1.01,
                "mid_per_share": mid, "volume": 1.0, "open_interest": 1.0,
                "underlying_price": spot, "zero_bid": mid * 0.99 <= 0, "iv_vendor": np.nan,
                "root": "SPXW", "dte_days": dte}))
    return pd.concat(rows, ignore_index=True)


def test_parity_recovers_rate_forward_and_carry():
    chain = ssvi_chain()
    assert parity_rate(chain) == pytest.approx(RATE, abs=1e-9)
    fw = implied_forwards(chain, RATE)
    np.testing.assert_allclose(fw["carry_q"], DIV, atol=1e-9)
    assert chain_dividend_yield(fw) == pytest.approx(DIV, abs=1e-9)


def test_ssvi_fit_recovers_its_parameters():
    ivs = market_ivs(ssvi_chain(), RATE)
    fit = fit_smiles(ivs)[pd.Timestamp("2019-05-06")]
    assert fit.rho == pytest.approx(RHO, abs=0.01)
    assert fit.eta == pytest.approx(ETA, rel=0.02)
    np.testing.assert_allclose(fit.theta, list(THETA.values()), rtol=0.01)
    assert fit.rmse_iv_pts < 0.05
    # between expiries: linear in total variance
    t_mid = 30 / 365
    theta_mid = np.interp(t_mid, np.array(list(THETA)) / 365, list(THETA.values()))
    assert float(fit.theta_at(t_mid)) == pytest.approx(theta_mid, rel=0.01)


def test_real_spx_fit_is_arbitrage_sane():
    chain = read_chain(SPX)
    fits = fit_smiles(market_ivs(chain, parity_rate(chain)))
    assert len(fits) == 2
    for fit in fits.values():
        assert np.all(np.diff(fit.theta) >= 0)  # no calendar arbitrage
        assert fit.eta * (1 + abs(fit.rho)) <= 2 + 1e-12  # Gatheral-Jacquier butterfly bound
        assert -1 < fit.rho < 0  # equity skew
        assert fit.rmse_iv_pts < 1.5


def test_sparse_day_keeps_the_previous_shape_and_empty_day_fails():
    ivs = market_ivs(ssvi_chain(), RATE)
    day = ivs[ivs["iv_market"].notna()].head(4).copy()
    day.attrs.update(ivs.attrs)
    with pytest.raises(ChainDataError, match="2019-05-06"):
        fit_ssvi_day(day)
    fit = fit_ssvi_day(day, prior_shape=(RHO, ETA))
    assert fit.rho == pytest.approx(RHO, abs=1e-6) and fit.eta == pytest.approx(ETA, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(rho=st.floats(-0.99, 0.99), eta_frac=st.floats(0.01, 1.0),
       theta=st.floats(1e-4, 0.5))
def test_ssvi_within_the_fit_bounds_has_no_butterfly_arbitrage(rho, eta_frac, theta):
    # Durrleman's condition g(k) >= 0 (Gatheral & Jacquier 2014, eq. 2.1) on a grid
    eta = eta_frac * 2.0 / (1.0 + abs(rho))
    k = np.linspace(-1.5, 1.5, 601)
    h = 1e-4
    w = ssvi_total_variance(k, theta, rho, eta)
    w1 = (ssvi_total_variance(k + h, theta, rho, eta)
          - ssvi_total_variance(k - h, theta, rho, eta)) / (2 * h)
    w2 = (ssvi_total_variance(k + h, theta, rho, eta) - 2 * w
          + ssvi_total_variance(k - h, theta, rho, eta)) / h**2
    g = (1 - k * w1 / (2 * w)) ** 2 - w1**2 / 4 * (1 / w + 0.25) + w2 / 2
    assert np.all(w > 0)
    assert g.min() > -1e-5
