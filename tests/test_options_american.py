"""American exercise: QuantLib agreement, American >= European, the early-exercise boundary,
implied vol from real SPY quotes, and the early-assignment rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from options.american import (
    american_price,
    crr_price,
    early_exercise_premium,
    european_price_escrowed,
    implied_vol_american,
    project_quarterly_dividends,
    pv_dividends,
    should_assign_call_before_ex_dividend,
    should_assign_put_early,
)
from options.pricing import DAYS_PER_YEAR, bs_price, implied_vol_vectorized

ql = pytest.importorskip("QuantLib")

SPY_SLICE = Path(__file__).parent / "data" / "real_chains" / "spy_slice_2021-03-01_05.csv"
# SPY's cash dividends of 2021 (ex-date, USD per share) from spy_daily_bars_2021.csv (divCash)
# in ../shared/data/real_chains: the ones that matter for the slice's expiries.
SPY_DIVIDENDS_2021 = (("2021-03-19", 1.2778), ("2021-06-18", 1.3759))
QL_TOLERANCE_PER_SHARE = 0.005  # half a cent: tree (200 steps) and FD grid (800 x 800) errors

# (type, spot, strike, days, rate, vol, yield, [(days to ex-date, cash dividend), ...])
QL_CASES = [
    ("put", 100.0, 110.0, 180, 0.05, 0.25, 0.0, []),
    ("call", 100.0, 95.0, 90, 0.03, 0.20, 0.02, []),
    ("put", 100.0, 90.0, 365, 0.05, 0.30, 0.01, []),
    ("put", 370.0, 360.0, 60, 0.01, 0.20, 0.0, [(20, 1.3)]),
    ("call", 370.0, 340.0, 100, 0.01, 0.18, 0.0, [(20, 1.3), (90, 1.4)]),
    ("put", 370.0, 400.0, 200, 0.04, 0.22, 0.0, [(20, 1.3), (110, 1.4)]),
    ("call", 120.0, 100.0, 30, 0.02, 0.20, 0.0, [(2, 3.0)]),
]


def _ql_price(kind, spot, strike, days, rate, vol, q, dividends, american=True, grid=800):
    """QuantLib finite-difference price, escrowed cash dividends (the same model)."""
    today = ql.Date(4, 1, 2021)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, rate, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)))
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if kind == "call" else ql.Option.Put, strike)
    expiry = today + int(days)
    exercise = ql.AmericanExercise(today, expiry) if american else ql.EuropeanExercise(expiry)
    option = ql.VanillaOption(payoff, exercise)
    schedule = [ql.FixedDividend(amount, today + int(d)) for d, amount in dividends]
    option.setPricingEngine(ql.FdBlackScholesVanillaEngine(
        process, schedule, grid, grid, 0, ql.FdmSchemeDesc.Douglas(), False, -ql.nullDouble(),
        ql.FdBlackScholesVanillaEngine.Escrowed))
    return option.NPV()


def _div_arrays(dividends):
    if not dividends:
        return {}
    return {"dividend_t_years": np.array([d for d, _ in dividends]) / DAYS_PER_YEAR,
            "dividend_per_share": np.array([a for _, a in dividends])}


@pytest.mark.parametrize("case", QL_CASES, ids=lambda c: f"{c[0]}-{c[1]:g}-{c[2]:g}-{c[3]}d")
def test_american_price_matches_quantlib(case):
    kind, spot, strike, days, rate, vol, q, dividends = case
    mine = american_price(kind, spot, strike, days / DAYS_PER_YEAR, rate, vol, q,
                          **_div_arrays(dividends))
    assert mine == pytest.approx(_ql_price(kind, spot, strike, days, rate, vol, q, dividends),
                                 abs=QL_TOLERANCE_PER_SHARE)
    euro = european_price_escrowed(kind, spot, strike, days / DAYS_PER_YEAR, rate, vol, q,
                                   **_div_arrays(dividends))
    assert euro == pytest.approx(_ql_price(kind, spot, strike, days, rate, vol, q, dividends,
                                           american=False), abs=QL_TOLERANCE_PER_SHARE)


def test_vectorised_equals_one_by_one():
    """One call over all cases (per-contract dividend rows) equals the contract-by-contract
    prices."""
    m = max(len(c[7]) for c in QL_CASES)
    tau = np.zeros((len(QL_CASES), m))
    amount = np.zeros((len(QL_CASES), m))
    for i, case in enumerate(QL_CASES):
        for j, (days, cash) in enumerate(case[7]):
            tau[i, j], amount[i, j] = days / DAYS_PER_YEAR, cash
    cols = list(zip(*[c[:7] for c in QL_CASES], strict=True))
    together = american_price(np.array(cols[0]), np.array(cols[1]), np.array(cols[2]),
                              np.array(cols[3]) / DAYS_PER_YEAR, np.array(cols[4]),
                              np.array(cols[5]), np.array(cols[6]), dividend_t_years=tau,
                              dividend_per_share=amount)
    single = [american_price(c[0], c[1], c[2], c[3] / DAYS_PER_YEAR, c[4], c[5], c[6],
                             **_div_arrays(c[7])) for c in QL_CASES]
    np.testing.assert_allclose(together, single, rtol=1e-12)


def test_european_tree_converges_to_black_scholes():
    """The raw tree (no control variate) is right: its European price tends to BSM."""
    args = (np.array(["call", "put"]), 100.0, 105.0, 0.5, 0.03, 0.25, 0.01)
    exact = bs_price(*args)
    coarse = np.abs(crr_price(*args, steps=50, american=False) - exact)
    fine = np.abs(crr_price(*args, steps=2000, american=False) - exact)
    assert (fine < 2e-3).all() and (fine < coarse).all()


def test_call_without_dividends_is_european():
    """No dividends and q = 0: early exercise of a call is never optimal (Merton 1973)."""
    strikes = np.array([80.0, 100.0, 120.0])
    amer = american_price("call", 100.0, strikes, 0.75, 0.05, 0.3)
    np.testing.assert_allclose(amer, bs_price("call", 100.0, strikes, 0.75, 0.05, 0.3),
                               atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(
    spot=st.floats(50.0, 150.0),
    strike=st.floats(50.0, 150.0),
    days=st.integers(1, 400),
    rate=st.floats(0.0, 0.08),
    vol=st.floats(0.05, 0.8),
    q=st.floats(0.0, 0.04),
    is_call=st.booleans(),
    cash=st.floats(0.0, 2.0),
    ex_days=st.integers(1, 400),
)
def test_american_at_least_european_and_intrinsic(spot, strike, days, rate, vol, q, is_call,
                                                  cash, ex_days):
    kind = "call" if is_call else "put"
    divs = {"dividend_t_years": np.array([ex_days / DAYS_PER_YEAR]),
            "dividend_per_share": np.array([cash])}
    t = days / DAYS_PER_YEAR
    amer = american_price(kind, spot, strike, t, rate, vol, q, steps=100, **divs)
    euro = european_price_escrowed(kind, spot, strike, t, rate, vol, q, **divs)
    intrinsic = max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
    assert amer >= euro - 1e-9
    assert amer >= intrinsic - 1e-12
    assert early_exercise_premium(kind, spot, strike, t, rate, vol, q, steps=100, **divs) >= 0


def test_deep_in_the_money_put_is_worth_its_intrinsic_value():
    """Inside the exercise region the American put is exactly strike - spot; above the
    boundary it carries time value."""
    deep = american_price("put", 60.0, 100.0, 0.5, 0.05, 0.2)
    assert deep == pytest.approx(40.0, abs=1e-3)
    near = american_price("put", 95.0, 100.0, 0.5, 0.05, 0.2)
    assert near - 5.0 > 0.5


def _put_boundary(t_years, rate, vol, strike=100.0):
    """Highest spot (to 0.1) where the tree's American put equals its intrinsic value."""
    spots = np.arange(40.0, 100.0, 0.1)
    values = crr_price("put", spots, strike, t_years, rate, vol, steps=400)
    at_intrinsic = values - (strike - spots) <= 1e-6
    return float(spots[at_intrinsic].max())


def test_early_exercise_boundary_of_the_put():
    """The put's exercise boundary falls with time to expiry towards the perpetual boundary
    ``K 2r / (2r + sigma^2)`` (Merton 1973) from above, and rises towards the strike near
    expiry. (At 400 steps over 30 years the tree's boundary sits about 2.5 above the perpetual
    one; it converges slowly in both maturity and steps.)"""
    rate, vol, strike = 0.06, 0.3, 100.0
    days2, short, mid, long = (_put_boundary(t, rate, vol) for t in (0.005, 0.05, 1.0, 30.0))
    assert strike > days2 > short > mid > long
    perpetual = strike * 2 * rate / (2 * rate + vol**2)
    assert perpetual < long < perpetual + 3.0
    assert days2 > 0.95 * strike


def test_pv_dividends_counts_ex_dates_inside_the_option_life():
    pv = pv_dividends(np.array([0.1, 0.5]), 0.05, np.array([-0.01, 0.05, 0.2, 0.6]),
                      np.array([9.0, 1.0, 2.0, 4.0]))
    np.testing.assert_allclose(pv, [np.exp(-0.05 * 0.05),
                                    np.exp(-0.05 * 0.05) + 2 * np.exp(-0.05 * 0.2)])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="dividend_t_years and dividend_per_share"):
        american_price("put", 100.0, 100.0, 0.5, 0.01, 0.2, dividend_t_years=np.array([0.1]))
    with pytest.raises(ValueError, match="spot"):
        american_price("put", -1.0, 100.0, 0.5, 0.01, 0.2)
    with pytest.raises(ValueError, match="present value of its dividends"):
        american_price("put", 1.0, 100.0, 0.5, 0.01, 0.2, dividend_t_years=np.array([0.1]),
                       dividend_per_share=np.array([2.0]))


def test_projected_dividends_use_only_the_paid_history():
    ex = ["2021-03-19", "2021-06-18", "2021-09-17"]
    cash = [1.2778, 1.3759, 1.4281]
    as_of = pd.DatetimeIndex(["2021-01-04", "2021-03-18", "2021-03-19", "2021-06-21"])
    tau, amount = project_quarterly_dividends(ex, cash, as_of)
    days = np.rint(tau * DAYS_PER_YEAR)
    assert amount[0].sum() == 0.0                         # no history yet: no dividend
    assert days[1, 0] == 0.0 and amount[1].sum() == 0.0   # (only 2021 history here)
    assert list(days[2, :4]) == [92, 184, 275, 365] and (amount[2, :4] == 1.2778).all()
    assert days[3, 0] == 89 and amount[3, 0] == 1.3759
    # Causal: the history after each date changes nothing for it.
    for i, day in enumerate(as_of):
        known = [(e, c) for e, c in zip(ex, cash, strict=True) if pd.Timestamp(e) <= day]
        if known:
            t_cut, a_cut = project_quarterly_dividends(*zip(*known, strict=True), [day])
            np.testing.assert_array_equal(t_cut[0], tau[i])
            np.testing.assert_array_equal(a_cut[0], amount[i])
    # A dividend due (a quarter after the last one) but not yet paid goes ex the next day.
    tau, amount = project_quarterly_dividends(["2020-12-18"], [1.58], ["2021-03-18"])
    assert np.rint(tau[0, 0] * DAYS_PER_YEAR) == 1 and amount[0, 0] == 1.58


# ------------------------------------------------------------ implied vol from American quotes
def _spy_rows() -> pd.DataFrame:
    raw = pd.read_csv(SPY_SLICE, parse_dates=["quotedate", "expiration"])
    raw = raw[raw["ask"] >= raw["bid"]]
    raw = raw.assign(mid=(raw["bid"] + raw["ask"]) / 2,
                     dte_days=(raw["expiration"] - raw["quotedate"]).dt.days)
    return raw.reset_index(drop=True)


def _spy_dividends(rows: pd.DataFrame):
    ex = np.array([np.datetime64(d) for d, _ in SPY_DIVIDENDS_2021])
    quote = rows["quotedate"].to_numpy().astype("datetime64[D]")
    tau = (ex[None, :] - quote[:, None]).astype(float) / DAYS_PER_YEAR
    cash = np.broadcast_to(np.array([a for _, a in SPY_DIVIDENDS_2021]), tau.shape)
    return tau, cash


def test_implied_vol_from_american_spy_quotes():
    """Real SPY quotes (2021-03-01..05): every quote with time value inverts; repricing at the
    implied vol returns the mid; the American vol is at most the European one of the same
    quote and dividends (early exercise is worth something); it is near the vendor's."""
    rows = _spy_rows()
    tau, cash = _spy_dividends(rows)
    rate = 0.0005  # 1-month T-bill, March 2021 (about 0.03-0.05%)
    args = (rows["type"].to_numpy(), rows["underlying_last"].to_numpy(),
            rows["strike"].to_numpy(), rows["dte_days"].to_numpy() / DAYS_PER_YEAR, rate)
    result = implied_vol_american(rows["mid"].to_numpy(), *args, dividend_t_years=tau,
                                  dividend_per_share=cash)
    ok = result.reason == "ok"
    assert ok.mean() > 0.95
    iv = result.iv_annualized
    back = american_price(*(a[ok] if np.ndim(a) else a for a in args), iv[ok],
                          dividend_t_years=tau[ok], dividend_per_share=cash[ok])
    np.testing.assert_allclose(back, rows["mid"].to_numpy()[ok], atol=1e-4)
    escrowed = rows["underlying_last"].to_numpy() - pv_dividends(args[3], rate, tau, cash)
    euro = implied_vol_vectorized(rows["mid"].to_numpy(), args[0], escrowed, args[2], args[3],
                                  rate)
    both = ok & np.isfinite(euro)
    assert (iv[both] <= euro[both] + 1e-7).all()
    vendor = rows["impliedvol"].to_numpy()
    assert np.median(np.abs(iv[ok] - vendor[ok])) < 0.01


def test_implied_vol_reasons():
    result = implied_vol_american(np.array([40.0, 0.0, 5.0]), "put", np.array([60.0, 100, 100]),
                                  100.0, np.array([0.5, 0.5, 0.0]), 0.05)
    assert list(result.reason) == ["below_intrinsic", "below_intrinsic", "expired"]
    assert np.isnan(result.iv_annualized).all()


def test_implied_vol_round_trip():
    vols = np.array([0.12, 0.2, 0.35, 0.6])
    kinds = np.array(["put", "call", "put", "call"])
    strikes = np.array([95.0, 100.0, 110.0, 90.0])
    divs = {"dividend_t_years": np.array([0.1, 0.35]), "dividend_per_share": np.array([1.0, 1.0])}
    quotes = american_price(kinds, 100.0, strikes, 0.4, 0.04, vols, **divs)
    result = implied_vol_american(quotes, kinds, 100.0, strikes, 0.4, 0.04, **divs)
    np.testing.assert_allclose(result.iv_annualized, vols, atol=1e-5)


# ---------------------------------------------------------------------- early assignment rules
def test_call_assigned_before_ex_date_only_when_the_dividend_beats_its_time_value():
    spot = np.array([120.0, 101.0, 120.0, 120.0])
    dividend = np.array([2.0, 2.0, 0.0, 2.0])
    t_years = np.array([0.1, 0.1, 0.1, 0.5 / DAYS_PER_YEAR])  # last: expires before the ex-date
    out = should_assign_call_before_ex_dividend(spot, 100.0, t_years, 0.02, 0.2, dividend)
    assert list(out) == [True, False, False, False]
    # The rule is the comparison it states: exercise value against the value after the drop.
    hold = american_price("call", 118.0, 100.0, 0.1 - 1 / DAYS_PER_YEAR, 0.02, 0.2)
    assert hold * np.exp(-0.02 / DAYS_PER_YEAR) < 20.0


def test_call_near_the_money_or_long_dated_is_not_assigned():
    """A long-dated call keeps much time value, so a small dividend does not trigger it."""
    assert not should_assign_call_before_ex_dividend(105.0, 100.0, 1.0, 0.03, 0.25, 0.5)
    assert should_assign_call_before_ex_dividend(150.0, 100.0, 0.05, 0.03, 0.25, 0.5)


def test_put_assigned_early_when_its_time_value_is_gone():
    spots = np.array([60.0, 95.0, 105.0])
    out = should_assign_put_early(spots, 100.0, 0.5, 0.05, 0.2)
    assert list(out) == [True, False, False]
    # With a zero rate and no dividends an American put is European: holding always has
    # positive time value near the money, so no early assignment.
    assert not should_assign_put_early(80.0, 100.0, 0.5, 0.0, 0.3)
    # A cash dividend before expiry raises the put's value, so it is not exercised yet.
    assert not should_assign_put_early(80.0, 100.0, 0.2, 0.05, 0.2,
                                       dividend_t_years=np.array([0.1]),
                                       dividend_per_share=np.array([3.0]))
    assert should_assign_put_early(80.0, 100.0, 0.2, 0.05, 0.2)
    assert not should_assign_put_early(60.0, 100.0, 0.0, 0.05, 0.2)  # at expiry: not "early"


def test_put_assignment_agrees_with_the_exercise_boundary():
    rate, vol, t_years = 0.06, 0.3, 1.0
    boundary = _put_boundary(t_years, rate, vol)
    spots = np.array([boundary - 1.0, boundary + 1.0])
    out = should_assign_put_early(spots, 100.0, t_years, rate, vol, steps=400,
                                  time_value_tolerance_per_share=1e-6)
    assert list(out) == [True, False]


def test_options_exercise_config_key():
    from common.errors import UserInputError
    from config import load_config

    base = {"segments": {"train": {"start": "2001-01-01", "end": "2001-12-31"},
                         "valid": {"start": "2002-01-01", "end": "2002-06-30"},
                         "test": {"start": "2002-07-01", "end": "2002-12-31"}}}
    assert load_config(base).options.exercise == "european"
    assert load_config({**base, "options": {"exercise": "american"}}).options.exercise == \
        "american"
    with pytest.raises(UserInputError, match="exercise"):
        load_config({**base, "options": {"exercise": "bermudan"}})
