"""A local stand-in for Alpaca's trading API on 127.0.0.1: the documented endpoints the adapter
uses, answered from fixtures in the API's documented shapes (tests/data/alpaca), with scripted
faults. Shared by test_execution_alpaca.py and test_trade_live.py; needs the optional extra
'alpaca' (alpaca-py) installed, so import it after ``pytest.importorskip("alpaca")``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd

from execution.brokers.alpaca import compact_symbol
from execution.orders import occ_symbol

FIXTURES = Path(__file__).parent / "data" / "alpaca"
KEY_ID, SECRET = "PKTESTKEYID0000000", "test-secret-never-logged"
EXPIRY = pd.Timestamp("2024-01-19")
OPEN_STATUSES = {"new", "accepted", "pending_new", "partially_filled"}
TIMEOUT_S = 0.3


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class FakeAlpaca:
    """State of the local server: contracts, orders, fills, positions and scripted faults."""

    def __init__(self) -> None:
        self.contracts = []
        for option_type, strike in (("put", 450), ("put", 460), ("call", 490), ("call", 500)):
            c = fixture("option_contract")
            c.update(id=str(uuid.uuid4()), type=option_type, strike_price=str(strike),
                     symbol=compact_symbol(occ_symbol("SPY", EXPIRY, option_type, strike)))
            self.contracts.append(c)
        self.orders: dict[str, dict] = {}
        self.activities: list[dict] = []
        self.positions: dict[str, int] = {}
        # consumed one per request: "503"; "timeout" (no answer); "slow" (done, answered
        # after the client's time-out); "none"
        self.faults: list[str] = []
        self.reject_next = False
        self.any_contract = False  # accept legs outside self.contracts (live tests' strikes)
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def fill(self, order_id: str, units: int, price_per_share: float = 0.5) -> None:
        """The exchange fills ``units`` more units of an order, leg by leg."""
        with self.lock:
            order = self.orders[order_id]
            done = int(order["filled_qty"]) + units
            order["filled_qty"] = str(done)
            order["status"] = "filled" if done >= int(order["qty"]) else "partially_filled"
            for leg in order["legs"]:
                qty = units * int(leg["ratio_qty"])
                activity = fixture("activity_fill")
                activity.update(id=f"{time.time_ns()}::{uuid.uuid4()}", order_id=order_id,
                                symbol=leg["symbol"], qty=str(qty), side=leg["side"],
                                price=str(price_per_share), cum_qty=str(done),
                                type="fill" if order["status"] == "filled" else "partial_fill",
                                order_status=order["status"])
                self.activities.append(activity)
                signed = qty if leg["side"] == "buy" else -qty
                self.positions[leg["symbol"]] = self.positions.get(leg["symbol"], 0) + signed


def make_handler(state: FakeAlpaca):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, code: int, body=None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            if getattr(self, "slow", False):
                time.sleep(TIMEOUT_S * 3)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, api_code: int, message: str) -> None:
            self._send(code, {"code": api_code, "message": message})

        def _pre(self) -> bool:
            self.requests_path = urlparse(self.path)
            state.requests.append((self.command, self.requests_path.path))
            if (self.headers.get("APCA-API-KEY-ID") != KEY_ID
                    or self.headers.get("APCA-API-SECRET-KEY") != SECRET):
                self._error(401, 40110000, "request is not authorized")
                return False
            with state.lock:
                fault = state.faults.pop(0) if state.faults else None
            if fault == "503":
                self._error(503, 50300000, "service unavailable")
                return False
            if fault == "timeout":
                time.sleep(TIMEOUT_S * 3)
                return False
            self.slow = fault == "slow"  # serve the request, answer too late
            return True

        def do_GET(self) -> None:
            if not self._pre():
                return
            path = self.requests_path.path
            query = parse_qs(self.requests_path.query)
            if path == "/v2/account":
                account = fixture("account")
                return self._send(200, account)
            if path == "/v2/clock":
                return self._send(200, fixture("clock"))
            if path == "/v2/options/contracts":
                wanted = query.get("underlying_symbols", [""])[0].split(",")
                expiry = query.get("expiration_date", [None])[0]
                found = [c for c in state.contracts if c["underlying_symbol"] in wanted
                         and (expiry is None or c["expiration_date"] == expiry)]
                return self._send(200, {"option_contracts": found, "next_page_token": None})
            if path == "/v2/orders:by_client_order_id":
                coid = query.get("client_order_id", [""])[0]
                found = [o for o in state.orders.values() if o["client_order_id"] == coid]
                return (self._send(200, found[0]) if found
                        else self._error(404, 40410000, "order not found"))
            if path == "/v2/orders":
                status = query.get("status", ["open"])[0]
                found = [o for o in state.orders.values()
                         if status == "all" or (o["status"] in OPEN_STATUSES) == (
                             status == "open")]
                return self._send(200, found)
            if path.startswith("/v2/orders/"):
                order = state.orders.get(path.rsplit("/", 1)[1])
                return (self._send(200, order) if order
                        else self._error(404, 40410000, "order not found"))
            if path == "/v2/positions":
                out = []
                for symbol, qty in state.positions.items():
                    if qty:
                        p = fixture("position_option")
                        p.update(symbol=symbol, qty=str(qty),
                                 side="long" if qty > 0 else "short")
                        out.append(p)
                return self._send(200, out)
            if path == "/v2/account/activities/FILL":
                return self._send(200, state.activities)
            self._error(404, 40410000, f"no endpoint {path}")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self._pre():
                return
            if self.requests_path.path != "/v2/orders":
                return self._error(404, 40410000, "no endpoint")
            if any(o["client_order_id"] == body["client_order_id"]
                   for o in state.orders.values()):
                return self._error(422, 40010001, "client_order_id must be unique")
            if state.reject_next:
                state.reject_next = False
                return self._error(403, 40310000, "insufficient options buying power")
            known = {c["symbol"] for c in state.contracts}
            if body.get("order_class") != "mleg" or not state.any_contract and any(
                    leg["symbol"] not in known for leg in body["legs"]):
                return self._error(422, 40010001, "invalid mleg order")
            order = fixture("order_mleg")
            order.update(id=str(uuid.uuid4()), client_order_id=body["client_order_id"],
                         qty=str(int(float(body["qty"]))), limit_price=str(body["limit_price"]),
                         time_in_force=body["time_in_force"], status="accepted", legs=[])
            for leg in body["legs"]:
                child = fixture("order_leg")
                child.update(id=str(uuid.uuid4()), symbol=leg["symbol"], side=leg["side"],
                             position_intent=leg["position_intent"],
                             ratio_qty=str(int(float(leg["ratio_qty"]))),
                             status="accepted")
                order["legs"].append(child)
            with state.lock:
                state.orders[order["id"]] = order
            self._send(200, order)

        def do_DELETE(self) -> None:
            if not self._pre():
                return
            order = state.orders.get(self.requests_path.path.rsplit("/", 1)[1])
            if order is None:
                return self._error(404, 40410000, "order not found")
            if order["status"] not in OPEN_STATUSES:
                return self._error(422, 42210000, "order is not cancelable")
            order["status"] = "canceled"
            self._send(204)

    return Handler


@contextmanager
def serve(state: FakeAlpaca) -> Iterator[FakeAlpaca]:
    """Serve ``state`` on a free port of 127.0.0.1 (``state.url``) until the block ends."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
