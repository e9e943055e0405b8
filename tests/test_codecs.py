"""Round trips of the text formats that cross a package line (``common.codecs``), and the
readers and writers that use them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.codecs import (
    LedgerLeg,
    format_ledger_legs,
    parse_ledger_legs,
    parse_quantile_column,
    parse_wide_column,
    quantile_column,
    wide_column,
)
from dashboard import loaders
from envs import EnvConfig, SpyOptionsEnv
from envs.observations import (
    ObservationIndex,
    forecast_quantile_obs_name,
    forecast_width_obs_name,
)
from options.positions import Leg
from tests.env_data import SCALE, embedded_panel

legs_strategy = st.lists(st.builds(
    LedgerLeg,
    quantity_contracts=st.integers(-500, 500).filter(bool),
    option_type=st.sampled_from(["call", "put"]),
    strike=st.floats(min_value=1e-4, max_value=1e7, allow_nan=False, allow_infinity=False),
    expiry=st.dates(min_value=pd.Timestamp("1990-01-01").date(),
                    max_value=pd.Timestamp("2099-12-31").date()).map(pd.Timestamp),
), max_size=6)


@settings(max_examples=200, deadline=None)
@given(legs=legs_strategy)
def test_ledger_legs_read_back_what_was_written_bit_for_bit(legs):
    text = format_ledger_legs(legs)
    assert parse_ledger_legs(text) == tuple(legs)
    assert format_ledger_legs(parse_ledger_legs(text)) == text


def test_ledger_legs_text_is_the_documented_format():
    legs = (Leg("put", 2785.0, pd.Timestamp("2019-05-24"), -5),
            Leg("call", 3080.5, pd.Timestamp("2019-05-24"), 5),
            Leg("call", 12345.25, pd.Timestamp("2019-06-21"), 1))  # beyond %g's six digits
    text = format_ledger_legs(legs)
    assert text == "-5 put 2785 2019-05-24;+5 call 3080.5 2019-05-24;+1 call 12345.25 2019-06-21"
    assert [leg.strike for leg in parse_ledger_legs(text)] == [2785.0, 3080.5, 12345.25]


@pytest.mark.parametrize("bad", ["five puts", "+1 put 245", "+1 straddle 245 2019-01-18",
                                 "1 put 245 2019-01-18", "+0 put 245 2019-01-18"])
def test_a_malformed_leg_is_refused_with_the_part_named(bad):
    with pytest.raises(ValueError, match="ledger leg"):
        parse_ledger_legs(f"+1 call 250 2019-01-18;{bad}")


def test_the_env_ledger_the_audit_and_the_dashboard_read_the_same_legs():
    from agents.audit import ledger_legs

    env = SpyOptionsEnv(embedded_panel("2016-01-01", "2016-03-31"),
                        EnvConfig(underlying_price_scale=SCALE), mode="eval")
    env.reset(seed=0)
    action = next(a for a in range(2, len(env.action_names)) if env.action_masks()[a])
    _, _, _, _, info = env.step(action)
    text = env.trade_ledger()["legs"].iloc[0]
    legs = parse_ledger_legs(text)
    assert [(leg.quantity_contracts, leg.option_type, leg.strike, leg.expiry) for leg in legs] \
        == [(leg.quantity_contracts, leg.option_type, leg.strike, pd.Timestamp(leg.expiry))
            for leg in info.position[0].legs]
    assert ledger_legs(text) == [(leg.quantity_contracts, leg.option_type, leg.strike,
                                  leg.expiry) for leg in legs]
    table = loaders.parse_legs(text)
    assert table["strike"].tolist() == [leg.strike for leg in legs]
    assert table["right"].tolist() == [leg.option_type for leg in legs]


@settings(max_examples=200, deadline=None)
@given(thousandths=st.integers(1, 999), horizon_bars=st.integers(1, 2000))
def test_forecast_column_names_read_back(thousandths, horizon_bars):
    level = thousandths / 1000
    assert parse_quantile_column(quantile_column(level)) == level
    assert parse_wide_column(wide_column(horizon_bars, level)) == (horizon_bars, level)
    assert parse_quantile_column(wide_column(horizon_bars, level)) is None
    assert parse_wide_column(quantile_column(level)) is None


def test_forecast_column_names_are_the_documented_ones():
    assert quantile_column(0.05) == "q0.050" and wide_column(5, 0.5) == "h5_q0.500"
    for other in ("date", "model", "horizon", "q0.5", "qx", "h0_q0.050", "h5_q0.5", "q1.000"):
        assert parse_quantile_column(other) is None and parse_wide_column(other) is None


def test_dashboard_reads_the_panels_quantile_columns_through_the_codec():
    panel = pd.DataFrame({"date": pd.to_datetime(["2020-01-02"]), "model": ["ensemble"],
                          "horizon": [5], quantile_column(0.95): [0.02],
                          quantile_column(0.05): [-0.02]})
    assert loaders.quantile_column(panel, 0.95) == "q0.950"
    assert loaders.quantile_column(panel, 0.5) is None


def test_observations_are_found_by_name():
    names = ("a", forecast_quantile_obs_name(5, 0.5), forecast_width_obs_name(5))
    assert names[1:] == ("forecast_h5_q0.500_vs_implied_move",
                         "forecast_width75_h5_vs_implied_width75")
    index = ObservationIndex(names)
    obs = np.array([1.0, 2.0, 3.0])
    assert index.value(obs, forecast_width_obs_name(5)) == 3.0 and index.slot("a") == 0
    with pytest.raises(KeyError, match="no observation named 'b'"):
        index.slot("b")
