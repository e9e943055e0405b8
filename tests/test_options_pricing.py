"""Pricing, greeks and implied vol: vollib agreement, parity, textbook values, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vollib.black_scholes_merton import black_scholes_merton
from vollib.black_scholes_merton.greeks import analytical as vollib_greeks
from vollib.black_scholes_merton.implied_volatility import implied_volatility

from options.pricing import (
    IV_REASON_ABOVE_UPPER_BOUND,
    IV_REASON_BELOW_INTRINSIC,
    IV_REASON_EXPIRED,
    IV_REASON_OK,
    bs_greeks,
    bs_greeks_scalar,
    bs_price,
    bs_price_greeks_scalar,
    bs_price_scalar,
    implied_vol,
    implied_vol_vectorized,
    implied_vol_vectorized_with_reason,
)

BATCH = 40  # options per hypothesis example (vectorised checks)


def random_batch(
    seed: int,
    n: int = BATCH,
    *,
    log_moneyness_sd: float = 0.4,
    max_t_years: float = 3.0,
    max_vol: float = 1.5,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    spot = rng.uniform(5.0, 1000.0, n)
    return {
        "option_type": np.where(rng.random(n) < 0.5, "call", "put"),
        "spot": spot,
        "strike": spot * np.exp(rng.normal(0.0, log_moneyness_sd, n)),
        "t_years": rng.uniform(1.0 / 365.0 / 24.0, max_t_years, n),
        "rate": rng.uniform(-0.01, 0.10, n),
        "iv_annualized": rng.uniform(0.01, max_vol, n),
        "dividend_yield": rng.uniform(0.0, 0.06, n),
    }


def assert_within(actual, expected, tol, what: str = "") -> None:
    """|actual - expected| <= tol elementwise (tol may be an array)."""
    err = np.abs(np.asarray(actual) - np.asarray(expected))
    bad = ~(err <= tol)
    assert not bad.any(), f"{what}: {int(bad.sum())} element(s) off, worst error {err.max():.3e}"


def args_of(b: dict[str, np.ndarray]) -> tuple:
    return (
        b["option_type"],
        b["spot"],
        b["strike"],
        b["t_years"],
        b["rate"],
        b["iv_annualized"],
        b["dividend_yield"],
    )


batches = st.builds(
    random_batch,
    seed=st.integers(0, 2**32 - 1),
    log_moneyness_sd=st.sampled_from([0.05, 0.3, 1.0]),
    max_t_years=st.sampled_from([0.02, 0.5, 5.0]),
    max_vol=st.sampled_from([0.05, 0.5, 2.0]),
)


# --------------------------------------------------------------------------- textbook values
def test_hull_example_call_and_put():
    # Hull, Options, Futures and Other Derivatives: S=42, K=40, r=10%, sigma=20%, T=0.5.
    assert bs_price("call", 42, 40, 0.5, 0.1, 0.2) == pytest.approx(4.76, abs=0.005)
    assert bs_price("put", 42, 40, 0.5, 0.1, 0.2) == pytest.approx(0.81, abs=0.005)


def test_haug_dividend_put():
    # Haug, The Complete Guide to Option Pricing Formulas, p. 4: BSM put with yield 5%.
    assert bs_price("put", 100, 95, 0.5, 0.1, 0.2, 0.05) == pytest.approx(2.4648, abs=1e-4)


def test_hull_greeks_example():
    # Hull's greeks example: S=49, K=50, r=5%, sigma=20%, T=20 weeks (0.3846 years).
    g = bs_greeks("call", 49, 50, 0.3846, 0.05, 0.2)
    assert g["delta"] == pytest.approx(0.522, abs=1e-3)
    assert g["gamma"] == pytest.approx(0.066, abs=1e-3)
    assert g["theta_per_day"] * 365 == pytest.approx(-4.31, abs=0.01)
    assert g["vega_per_vol_point"] * 100 == pytest.approx(12.1, abs=0.05)
    assert g["rho"] * 100 == pytest.approx(8.91, abs=0.01)


# --------------------------------------------------------------------------- vollib agreement
@settings(max_examples=200, deadline=None)
@given(batches)
def test_prices_agree_with_vollib(b):
    ours = bs_price(*args_of(b))
    ref = np.array(
        [
            black_scholes_merton(o[0], s, k, t, r, v, q)
            for o, s, k, t, r, v, q in zip(*args_of(b), strict=True)
        ]
    )
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(batches)
def test_greeks_agree_with_vollib(b):
    ours = bs_greeks(*args_of(b))
    for name, fn in (
        ("delta", vollib_greeks.delta),
        ("gamma", vollib_greeks.gamma),
        ("theta_per_day", vollib_greeks.theta),
        ("vega_per_vol_point", vollib_greeks.vega),
        ("rho", vollib_greeks.rho),
    ):
        ref = np.array(
            [fn(o[0], s, k, t, r, v, q) for o, s, k, t, r, v, q in zip(*args_of(b), strict=True)]
        )
        np.testing.assert_allclose(ours[name], ref, rtol=1e-9, atol=1e-10, err_msg=name)


@settings(max_examples=300, deadline=None)
@given(batches)
def test_put_call_parity(b):
    _, s, k, t, r, v, q = args_of(b)
    call = bs_price("call", s, k, t, r, v, q)
    put = bs_price("put", s, k, t, r, v, q)
    forward_gap = s * np.exp(-q * t) - k * np.exp(-r * t)
    assert_within(call - put, forward_gap, 1e-10 * np.maximum(1, s / 100), "parity")


@settings(max_examples=300, deadline=None)
@given(batches, st.sampled_from([0.0, 1e-14, 1.0]))
def test_scalar_path_matches_vectorised(b, t_scale):
    # t_scale 0 and 1e-14 exercise expiry and tiny total volatility in both paths.
    a = list(args_of(b))
    a[3] = a[3] * t_scale
    price = bs_price(*a)
    greeks = bs_greeks(*a)
    for i in range(BATCH):
        row = (a[0][i] == "call",) + tuple(float(x[i]) for x in a[1:])
        assert bs_price_scalar(*row) == pytest.approx(price[i], abs=1e-12, rel=1e-12)
        fused = bs_price_greeks_scalar(*row)
        assert fused[0] == pytest.approx(price[i], abs=1e-12, rel=1e-12)
        scalar_greeks = bs_greeks_scalar(*row)
        for j, name in enumerate(("delta", "gamma", "theta_per_day", "vega_per_vol_point")):
            assert scalar_greeks[j] == pytest.approx(greeks[name][i], abs=1e-12, rel=1e-12), name
            assert fused[j + 1] == scalar_greeks[j]


# --------------------------------------------------------------------------- finite differences
@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        random_batch,
        seed=st.integers(0, 2**32 - 1),
        log_moneyness_sd=st.just(0.2),
        max_t_years=st.just(2.0),
        max_vol=st.just(0.8),
    )
)
def test_greeks_match_finite_differences(b):
    o, s, k, t, r, v, q = args_of(b)
    t = t + 0.05  # keep away from expiry, where the second difference gets noisy
    g = bs_greeks(o, s, k, t, r, v, q)
    h_s = 1e-5 * s
    up, down = (bs_price(o, s + d, k, t, r, v, q) for d in (h_s, -h_s))
    assert_within(g["delta"], (up - down) / (2 * h_s), 1e-6, "delta")
    d_up, d_down = (bs_greeks(o, s + d, k, t, r, v, q)["delta"] for d in (h_s, -h_s))
    assert_within(
        g["gamma"], (d_up - d_down) / (2 * h_s), 1e-6 * np.maximum(1, g["gamma"]), "gamma"
    )
    h = 1e-6
    theta = -(bs_price(o, s, k, t + h, r, v, q) - bs_price(o, s, k, t - h, r, v, q)) / (2 * h)
    scale = 1e-6 * np.maximum(1, s / 100)
    assert_within(g["theta_per_day"], theta / 365.0, scale, "theta")
    vega = (bs_price(o, s, k, t, r, v + h, q) - bs_price(o, s, k, t, r, v - h, q)) / (2 * h)
    assert_within(g["vega_per_vol_point"], vega * 0.01, scale, "vega")
    rho = (bs_price(o, s, k, t, r + h, v, q) - bs_price(o, s, k, t, r - h, v, q)) / (2 * h)
    assert_within(g["rho"], rho * 0.01, scale, "rho")


# --------------------------------------------------------------------------- edge cases
def test_expiry_is_intrinsic():
    spots = np.array([80.0, 100.0, 120.0])
    np.testing.assert_array_equal(bs_price("call", spots, 100, 0.0, 0.05, 0.3), [0, 0, 20])
    np.testing.assert_array_equal(bs_price("put", spots, 100, 0.0, 0.05, 0.3), [20, 0, 0])
    g = bs_greeks("call", spots, 100, 0.0, 0.05, 0.3)
    np.testing.assert_array_equal(g["delta"], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(g["gamma"], 0.0)
    np.testing.assert_array_equal(g["theta_per_day"], 0.0)


def test_zero_and_tiny_vol_is_discounted_forward_intrinsic():
    s, k, t, r, q = 100.0, 95.0, 0.5, 0.05, 0.02
    fwd_gap = s * math.exp(-q * t) - k * math.exp(-r * t)
    for vol in (0.0, 1e-15):
        assert bs_price("call", s, k, t, r, vol, q) == pytest.approx(fwd_gap, abs=1e-12)
        assert bs_price("put", s, k, t, r, vol, q) == 0.0
        assert bs_price_scalar(True, s, k, t, r, vol, q) == pytest.approx(fwd_gap, abs=1e-12)
    # tiny but regular vol converges to the same limit
    assert bs_price("call", s, k, t, r, 1e-6, q) == pytest.approx(fwd_gap, abs=1e-9)


def test_deep_in_and_out_of_the_money_limits():
    s, t, r, q, v = 100.0, 0.25, 0.03, 0.01, 0.2
    assert bs_price("call", s, 1.0, t, r, v, q) == pytest.approx(
        s * math.exp(-q * t) - math.exp(-r * t), rel=1e-12
    )
    assert bs_price("call", s, 1e4, t, r, v, q) == pytest.approx(0.0, abs=1e-100)
    assert bs_price("put", s, 1.0, t, r, v, q) == pytest.approx(0.0, abs=1e-100)
    assert bs_price("put", s, 1e4, t, r, v, q) == pytest.approx(
        1e4 * math.exp(-r * t) - s * math.exp(-q * t), rel=1e-12
    )


def test_broadcasting_and_option_type_arrays():
    strikes = np.array([[90.0], [100.0], [110.0]])
    types = np.array(["call", "put"])
    out = bs_price(types, 100.0, strikes, 0.5, 0.02, 0.2)
    assert out.shape == (3, 2)
    assert out[0, 0] == pytest.approx(bs_price("call", 100, 90, 0.5, 0.02, 0.2))
    assert out[2, 1] == pytest.approx(bs_price("put", 100, 110, 0.5, 0.02, 0.2))
    assert isinstance(bs_price("call", 100, 100, 1, 0, 0.2), float)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"strike": -1.0}, "strike"),
        ({"spot": 0.0}, "spot"),
        ({"t_years": -0.1}, "t_years"),
        ({"iv_annualized": -0.2}, "iv_annualized"),
        ({"rate": float("nan")}, "rate"),
        ({"spot": float("inf")}, "spot"),
        ({"dividend_yield": float("nan")}, "dividend_yield"),
        ({"option_type": "straddle"}, "option_type"),
    ],
)
def test_invalid_input_names_the_argument(kwargs, name):
    base = {
        "option_type": "call",
        "spot": 100.0,
        "strike": 100.0,
        "t_years": 0.5,
        "rate": 0.02,
        "iv_annualized": 0.2,
        "dividend_yield": 0.0,
    }
    base.update(kwargs)
    with pytest.raises(ValueError, match=name):
        bs_price(**base)
    with pytest.raises(ValueError, match=name):
        bs_greeks(**base)
    if name != "option_type":
        scalar = dict(base)
        scalar["is_call"] = scalar.pop("option_type") == "call"
        with pytest.raises(ValueError, match=name):
            bs_price_scalar(**scalar)


def test_array_with_one_bad_value_is_rejected():
    with pytest.raises(ValueError, match="strike must be > 0, got -5.0"):
        bs_price("call", 100.0, np.array([90.0, -5.0, 100.0]), 0.5, 0.0, 0.2)


# --------------------------------------------------------------------------- implied vol
@settings(max_examples=100, deadline=None)
@given(batches)
def test_vectorised_iv_recovers_the_vol(b):
    a = args_of(b)
    price = bs_price(*a)
    iv, reason = implied_vol_vectorized_with_reason(price, a[0], a[1], a[2], a[3], a[4], a[6])
    vega = bs_greeks(*a)["vega_per_vol_point"] / 0.01
    ok = reason == IV_REASON_OK
    # Where the price carries the vol (vega not negligible), the vol comes back.
    assert np.all(ok[vega > 1e-6 * a[1]])
    informative = vega > 1e-3 * a[1]
    assert_within(iv[informative], a[5][informative], 1e-8, "iv")
    # Where it is returned at all it reprices the option.
    repriced = bs_price(a[0][ok], a[1][ok], a[2][ok], a[3][ok], a[4][ok], iv[ok], a[6][ok])
    assert_within(repriced, price[ok], 1e-10 * np.maximum(1, a[1][ok]), "repriced")
    assert np.all(np.isnan(iv[~ok]))


@settings(max_examples=50, deadline=None)
@given(batches)
def test_vectorised_iv_agrees_with_vollib(b):
    a = args_of(b)
    price = bs_price(*a)
    vega = bs_greeks(*a)["vega_per_vol_point"] / 0.01
    ours = implied_vol_vectorized(price, a[0], a[1], a[2], a[3], a[4], a[6])
    for i in np.flatnonzero(vega > 1e-3 * a[1]):
        ref = implied_volatility(price[i], a[1][i], a[2][i], a[3][i], a[4][i], a[6][i], a[0][i][0])
        assert ours[i] == pytest.approx(ref, abs=1e-8)
        assert implied_vol(
            float(price[i]),
            str(a[0][i]),
            float(a[1][i]),
            float(a[2][i]),
            float(a[3][i]),
            float(a[4][i]),
            float(a[6][i]),
        ) == pytest.approx(ref, abs=1e-12)


def test_iv_reasons_for_impossible_prices():
    s, k, t, r = 100.0, 90.0, 0.5, 0.05
    intrinsic = s - k * math.exp(-r * t)
    prices = np.array([intrinsic - 0.5, s + 1.0, 15.0, 5.0])
    ts = np.array([t, t, t, 0.0])
    iv, reason = implied_vol_vectorized_with_reason(prices, "call", s, k, ts, r)
    assert list(reason) == [
        IV_REASON_BELOW_INTRINSIC,
        IV_REASON_ABOVE_UPPER_BOUND,
        IV_REASON_OK,
        IV_REASON_EXPIRED,
    ]
    assert np.isnan(iv[[0, 1, 3]]).all() and iv[2] > 0
    assert math.isnan(implied_vol(intrinsic - 0.5, "call", s, k, t, r))
    assert math.isnan(implied_vol(s + 1.0, "call", s, k, t, r))
    assert math.isnan(implied_vol(5.0, "put", s, k, 0.0, r))
    with pytest.raises(ValueError, match="price_per_share"):
        implied_vol_vectorized(-1.0, "call", s, k, t, r)
