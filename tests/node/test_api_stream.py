"""``/txs/stream``: the WebSocket that takes ``POST /txs`` bodies, in-process (no sockets).

Each message is answered once, in order, with what ``POST /txs`` would have
said; a bad message is answered with its error and the stream stays open.
Opening it takes the bearer token and is charged as a write, and so is each
message. The same endpoint over real sockets, through hypercorn and the
client's ``TxStream``, is in test_api_stream_node.py.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from prometheus_client import CollectorRegistry

from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits
from lendchain.node.mempool import MempoolFull

from .test_api_protection import AUTH, GUESS, TOKEN, Clock, call

BEARER = [(b"authorization", AUTH["Authorization"].encode())]


class FakeNode:
    metrics_registry = CollectorRegistry()

    def __init__(self, full_after: int | None = None) -> None:
        self.submitted: list[list[bytes]] = []
        self.full_after = full_after

    def submit(self, raw_txs: list[bytes]) -> list[dict[str, Any]]:
        if self.full_after is not None and len(self.submitted) >= self.full_after:
            raise MempoolFull("the mempool holds 100000 txs; retry later", retry_after_s=2)
        self.submitted.append(raw_txs)
        return [{"id": raw.hex(), "status": "accepted" if raw[0] else "rejected"} for raw in raw_txs]


def session(
    app, messages: list[Any], headers=BEARER, client: str = "127.0.0.1", query_string: bytes = b""
) -> list[dict[str, Any]]:
    """Open /txs/stream on ``app``, send ``messages`` (JSON values, or str as they are), then close.

    Returns what the app sent, as ASGI events.
    """
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/txs/stream",
        "raw_path": b"/txs/stream",
        "root_path": "",
        "query_string": query_string,
        "headers": headers,
        "client": (client, 40000),
        "server": ("node", 8101),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    incoming = [{"type": "websocket.connect"}]
    incoming += [
        {"type": "websocket.receive", "text": m if isinstance(m, str) else json.dumps(m)} for m in messages
    ]
    incoming.append({"type": "websocket.disconnect", "code": 1000})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    trio.run(app, scope, receive, send)
    return sent


def answers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert events[0] == {"type": "websocket.accept", "subprotocol": None, "headers": []}
    return [json.loads(e["text"]) for e in events[1:]]


def app_for(node: FakeNode, clock: Clock | None = None, **limits: Any):
    return build_app(node, TOKEN, ApiLimits(**limits), clock=clock or Clock())


def test_each_message_is_answered_in_order_with_post_txs_results():
    node = FakeNode()
    got = answers(session(app_for(node), [{"txs": ["01aa", "00bb"], "id": 7}, {"tx": "02cc"}, {"txs": []}]))
    assert got == [
        {"results": [{"id": "01aa", "status": "accepted"}, {"id": "00bb", "status": "rejected"}], "id": 7},
        {"results": [{"id": "02cc", "status": "accepted"}]},
        # As POST /txs answers it: an empty batch is a mistake, not a batch of nothing.
        {"error": "bad_request", "message": "'txs' is empty: a batch holds 1 to 10000 txs", "status": 400},
    ]
    assert node.submitted == [[b"\x01\xaa", b"\x00\xbb"], [b"\x02\xcc"]]


def test_a_bad_message_gets_its_error_and_the_stream_stays_open():
    node = FakeNode()
    messages = [
        "not json",
        {"txs": "01aa"},
        {"tx": "01aa", "txs": ["01aa"]},
        {"txs": ["zz"], "id": "b-1"},
        {"txs": ["01" * 3]},
    ]
    got = answers(session(app_for(node), messages))
    assert got[0] == {"error": "bad_request", "message": "message is not valid JSON", "status": 400}
    assert got[1]["error"] == "bad_request" and "list of hex strings" in got[1]["message"]
    assert got[2]["error"] == "bad_request" and got[2]["status"] == 400
    assert got[3] == {"error": "bad_request", "message": "'txs[0]' must be hex", "status": 400, "id": "b-1"}
    assert got[4] == {"results": [{"id": "010101", "status": "accepted"}]}
    assert node.submitted == [[b"\x01\x01\x01"]]  # nothing of the bad ones reached the node


def test_batches_and_messages_over_the_limits_are_refused():
    node = FakeNode()
    app = app_for(node, max_batch_txs=2, max_body_bytes=64)
    got = answers(session(app, [{"txs": ["01"] * 3}, {"txs": ["01" * 40]}, {"txs": ["01"] * 2}]))
    assert got[0]["status"] == 413 and got[0]["message"] == "a batch holds at most 2 txs, got 3"
    assert got[1] == {"error": "too_large", "message": "message is over 64 bytes", "status": 413}
    assert got[2]["results"] == [{"id": "01", "status": "accepted"}] * 2


def test_a_bad_batch_names_the_same_fault_as_ever():
    """A good batch is hex-decoded in one pass; a bad one still gets the first of the checks it fails."""
    listed = {"error": "bad_request", "message": "'txs' must be a list of hex strings", "status": 400}
    cases = [
        ({"txs": ["01", 5]}, listed),
        ({"tx": 5}, {"error": "bad_request", "message": "'tx' must be a hex string", "status": 400}),
        ({"txs": ["01", None, "zz"]}, listed),  # a non-str before a bad hex one
        ({"txs": ["01", "zz", 5]}, listed),  # and after it: the list check comes first
        ({"txs": ["01", 5, "01"]}, listed),  # over the batch limit too: the list check comes first
        (
            {"txs": ["zz"] * 3},
            {"error": "too_large", "message": "a batch holds at most 2 txs, got 3", "status": 413},
        ),
        (
            {"txs": ["01", "0g"]},
            {"error": "bad_request", "message": "'txs[1]' must be hex", "status": 400},
        ),
        (
            {"tx": "abc"},
            {"error": "bad_request", "message": "'tx' has an odd number of hex digits (3)", "status": 400},
        ),
        ({"tx": "é1"}, {"error": "bad_request", "message": "'tx' must be hex", "status": 400}),
    ]
    node = FakeNode()
    got = answers(session(app_for(node, max_batch_txs=2), [message for message, _ in cases]))
    assert got == [answer for _, answer in cases]
    assert node.submitted == []


def test_hex_with_spaces_or_capitals_is_taken_as_ever():
    node = FakeNode()
    got = answers(session(app_for(node), [{"txs": ["01 aa", "0A0b"]}, {"tx": "00"}]))
    assert got == [
        {"results": [{"id": "01aa", "status": "accepted"}, {"id": "0a0b", "status": "accepted"}]},
        {"results": [{"id": "00", "status": "rejected"}]},
    ]
    assert node.submitted == [[b"\x01\xaa", b"\x0a\x0b"], [b"\x00"]]


def test_a_full_mempool_answers_503_with_the_seconds_to_wait():
    got = answers(session(app_for(FakeNode(full_after=1)), [{"tx": "01"}, {"tx": "02", "id": 2}]))
    assert got[0] == {"results": [{"id": "01", "status": "accepted"}]}
    assert got[1] == {
        "error": "mempool_full",
        "message": "the mempool holds 100000 txs; retry later",
        "status": 503,
        "retry_after_s": 2,
        "id": 2,
    }


def test_opening_and_each_message_are_charged_to_the_clients_write_budget():
    clock = Clock()
    node = FakeNode()
    app = app_for(node, clock, write_rate_per_s=0.5, write_burst=3)
    got = answers(session(app, [{"tx": "01"}, {"tx": "02"}, {"tx": "03"}]))  # opening + 2 fit
    assert [a.get("status") for a in got] == [None, None, 429]
    assert got[2]["error"] == "rate_limited" and got[2]["retry_after_s"] == 2
    assert "at most 0.5 writes per second, bursts of 3" in got[2]["message"]
    assert node.submitted == [[b"\x01"], [b"\x02"]]
    # The budget is the client's across requests and streams: a POST now waits too, and so
    # does opening another stream (refused with the same JSON error and Retry-After).
    assert call(app, [("POST", "/txs", {"json": {"tx": "04"}, "headers": AUTH})])[0].status_code == 429
    refused = session(app, [{"tx": "05"}])
    assert refused[0]["type"] == "websocket.http.response.start" and refused[0]["status"] == 429
    assert (b"retry-after", b"2") in refused[0]["headers"]
    assert json.loads(refused[1]["body"])["error"] == "rate_limited"
    # Another address has its own budget; time refills this one.
    assert "results" in answers(session(app, [{"tx": "06"}], client="10.0.0.9"))[0]
    clock.now += 10
    assert "results" in answers(session(app, [{"tx": "07"}]))[0]


def test_opening_without_the_token_is_refused_with_401_and_echoes_no_secret():
    node = FakeNode()
    for headers in ([], [(b"authorization", f"Bearer {GUESS}".encode())]):
        events = session(app_for(node), [{"tx": "01"}], headers=headers)
        assert [e["type"] for e in events] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
        assert events[0]["status"] == 401
        body = events[1]["body"].decode()
        assert json.loads(body) == {"error": "unauthorized", "message": "missing or wrong bearer token"}
        assert GUESS not in body and TOKEN not in body
    assert node.submitted == []


def test_a_server_without_denial_responses_closes_a_refused_opening():
    app = app_for(FakeNode())
    sent: list[dict[str, Any]] = []
    scope = {"type": "websocket", "path": "/txs/stream", "headers": [], "client": ("127.0.0.1", 1)}

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)

    trio.run(app, scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_a_plain_get_of_the_stream_says_it_is_a_websocket():
    response = call(app_for(FakeNode()), [("GET", "/txs/stream", {"headers": AUTH})])[0]
    assert response.status_code == 426 and response.headers["upgrade"] == "websocket"
    assert response.json()["error"] == "upgrade_required"
