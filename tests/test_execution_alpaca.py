"""The Alpaca adapter against a local HTTP server on 127.0.0.1 that answers the documented
endpoints it uses, from fixtures in the API's documented shapes (tests/data/alpaca): a 4-leg
condor as an ``mleg`` order, read back, a partial fill, a rejection, 5xx and time-outs retried
with back-off, cancel, positions reconciled. No connection leaves 127.0.0.1."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

pytest.importorskip("alpaca", reason="the optional extra 'alpaca' (alpaca-py) is not installed")

from execution.brokers.alpaca import (  # noqa: E402
    KEY_ID_ENV,
    PAPER_URL,
    SECRET_KEY_ENV,
    AlpacaBroker,
    MissingKeysError,
    compact_symbol,
)
from execution.brokers.base import BrokerError  # noqa: E402
from execution.orders import MultiLegOrder, OrderLeg, client_order_id, occ_symbol  # noqa: E402
from tests.fake_alpaca import EXPIRY, KEY_ID, SECRET, TIMEOUT_S, FakeAlpaca, serve  # noqa: E402


@pytest.fixture
def server():
    with serve(FakeAlpaca()) as state:
        yield state


@pytest.fixture
def broker(server):
    sleeps = []
    b = AlpacaBroker.from_environment(base_url=server.url, timeout_s=TIMEOUT_S,
                                      environ={KEY_ID_ENV: KEY_ID, SECRET_KEY_ENV: SECRET},
                                      backoff_s=0.01, sleep=sleeps.append)
    b.sleeps = sleeps
    return b


def condor(units: int = 2, bar_time: str = "2024-01-16T15:30") -> MultiLegOrder:
    spec = (("put", 450, 1), ("put", 460, -1), ("call", 490, -1), ("call", 500, 1))
    legs = tuple(OrderLeg(occ_symbol("SPY", EXPIRY, t, k), t, float(k), EXPIRY, q * units)
                 for t, k, q in spec)
    when = pd.Timestamp(bar_time)
    return MultiLegOrder(client_order_id("run", "ppo", when, "open", legs), "open",
                         "iron_condor", legs, -1.25, 5, when)


def test_submit_a_condor_read_it_back_fill_partly_then_fully_and_reconcile(server, broker):
    assert broker.clock()["is_open"] is True
    assert len(broker.option_symbols("SPY", "2024-01-19")) == 4
    order = condor(units=2)
    placed = broker.submit(order)
    assert placed.status == "submitted" and placed.broker_order_id
    raw = server.orders[placed.broker_order_id]
    assert raw["order_class"] == "mleg" and raw["qty"] == "2" and raw["limit_price"] == "-1.25"
    assert [(leg["symbol"], leg["side"], leg["position_intent"], leg["ratio_qty"])
            for leg in raw["legs"]] == [
        ("SPY240119P00450000", "buy", "buy_to_open", "1"),
        ("SPY240119P00460000", "sell", "sell_to_open", "1"),
        ("SPY240119C00490000", "sell", "sell_to_open", "1"),
        ("SPY240119C00500000", "buy", "buy_to_open", "1")]
    assert broker.get_order(order.client_order_id) == placed
    assert [o.client_order_id for o in broker.open_orders()] == [order.client_order_id]

    server.fill(placed.broker_order_id, 1)  # a partial fill: one unit of two
    partial = broker.get_order(order.client_order_id)
    assert partial.status == "partially_filled" and partial.filled_units == 1
    assert len(broker.fills(order.client_order_id)) == 4
    server.fill(placed.broker_order_id, 1)
    assert broker.get_order(order.client_order_id).status == "filled"
    fills = broker.fills(order.client_order_id)
    assert sum(f.quantity_contracts for f in fills) == 0  # two long legs, two short, 2 each
    assert broker.open_orders() == []

    held = {leg.symbol: leg.quantity_contracts for p in broker.positions() for leg in p.legs}
    assert held == {compact_symbol(leg.symbol): leg.quantity_contracts for leg in order.legs}
    assert broker.account().open_positions == 4

    again = broker.submit(order)  # the same client order id: answered, never placed twice
    assert again.broker_order_id == placed.broker_order_id
    assert sum(1 for m, p in server.requests if m == "POST") == 1


def test_a_rejection_is_returned_not_raised(server, broker):
    server.reject_next = True
    result = broker.submit(condor())
    assert result.status == "rejected"
    assert "403" in result.detail and "buying power" in result.detail
    assert server.orders == {}


def test_5xx_and_timeouts_are_retried_with_backoff(server, broker):
    server.faults = ["503", "timeout", "503"]
    assert broker.account().equity_usd == 100_000.0
    assert broker.retried == 3
    assert broker.sleeps == [0.01, 0.02, 0.04]  # exponential back-off


def test_a_submission_that_timed_out_is_looked_up_before_it_is_sent_again(server, broker):
    order = condor()
    server.faults = ["timeout", "none", "slow"]  # lookup times out; the POST places the order
    placed = broker.submit(order)                # but its answer comes too late
    assert placed.status == "submitted"
    assert [m for m, _ in server.requests].count("POST") == 1
    assert len(server.orders) == 1
    assert broker.retried == 2


def test_persistent_5xx_ends_in_a_broker_error(server, broker):
    server.faults = ["503"] * 10
    with pytest.raises(BrokerError, match="503"):
        broker.open_orders()


def test_cancel(server, broker):
    order = condor()
    placed = broker.submit(order)
    canceled = broker.cancel(order.client_order_id)
    assert canceled.status == "canceled"
    assert server.orders[placed.broker_order_id]["status"] == "canceled"
    assert broker.open_orders() == []


def test_keys_only_from_the_environment_and_never_logged(server, caplog):
    with pytest.raises(MissingKeysError, match=SECRET_KEY_ENV):
        AlpacaBroker.from_environment(environ={KEY_ID_ENV: KEY_ID})
    paper = AlpacaBroker.from_environment(environ={KEY_ID_ENV: KEY_ID, SECRET_KEY_ENV: SECRET})
    assert paper.client._base_url == PAPER_URL  # paper unless live trading is asked for
    caplog.set_level(logging.DEBUG)
    b = AlpacaBroker.from_environment(base_url=server.url, timeout_s=TIMEOUT_S, backoff_s=0.0,
                                      environ={KEY_ID_ENV: KEY_ID, SECRET_KEY_ENV: SECRET})
    server.faults = ["503"]
    b.account()
    assert "retrying" in caplog.text
    assert SECRET not in caplog.text and KEY_ID not in caplog.text
    wrong = AlpacaBroker.from_environment(base_url=server.url, retries=0,
                                          environ={KEY_ID_ENV: KEY_ID, SECRET_KEY_ENV: "x"})
    with pytest.raises(Exception, match="401|not authorized"):
        wrong.account()
