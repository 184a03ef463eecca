"""The API's guard, in-process (no sockets): token, rate limits, body and batch caps, no CORS.

The token and the guesses never come back in a response or a log line. The
node-process side of the same promise (the log of a real node started with a
token and an encrypted key) is in test_secrets_in_logs.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from prometheus_client import CollectorRegistry

from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits

TOKEN = "configured-token-7f3a9c1e5b2d4680"
GUESS = "guessed-token-0011223344556677"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class FakeNode:
    metrics_registry = CollectorRegistry()

    def __init__(self) -> None:
        self.submitted: list[list[bytes]] = []

    def submit(self, raw_txs: list[bytes]) -> list[dict[str, Any]]:
        self.submitted.append(raw_txs)
        return [{"id": raw.hex(), "status": "accepted"} for raw in raw_txs]

    def status(self) -> dict[str, Any]:
        return {"name": "bank1", "height": 7}

    def block(self, ref: str) -> dict[str, Any] | None:
        raise RuntimeError(f"the store failed while reading block {ref}")


def call(app, requests: list[tuple], client: str = "127.0.0.1") -> list[httpx.Response]:
    """Send (method, path, kwargs) requests to ``app`` in-process, from ``client``'s address."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=(client, 40000), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            return [await http.request(method, path, **kwargs) for method, path, kwargs in requests]

    return trio.run(run)


def post_tx(headers: dict[str, str] | None = None) -> tuple:
    return ("POST", "/txs", {"json": {"tx": "ab"}, "headers": headers or AUTH})


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limited_app(clock: Clock, **limits: Any):
    node = FakeNode()
    return node, build_app(node, TOKEN, ApiLimits(**limits), clock=clock)


def test_writes_past_the_burst_get_429_with_retry_after_and_a_json_error(clock):
    node, app = limited_app(clock, write_rate_per_s=0.5, write_burst=3)
    responses = call(app, [post_tx() for _ in range(4)])
    assert [r.status_code for r in responses] == [202, 202, 202, 429]
    refused = responses[-1]
    assert refused.headers["retry-after"] == "2"  # one token per 2 s at 0.5/s
    assert refused.json()["error"] == "rate_limited"
    assert "retry after 2 s" in refused.json()["message"]
    assert len(node.submitted) == 3  # the refused request never reached the node
    # Reads are not charged; another address has its own budget; time refills.
    assert {r.status_code for r in call(app, [("GET", "/status", {"headers": AUTH})] * 20)} == {200}
    assert call(app, [post_tx()], client="10.1.2.3")[0].status_code == 202
    clock.now += 2.0
    assert [r.status_code for r in call(app, [post_tx(), post_tx()])] == [202, 429]


def test_wrong_token_guesses_are_charged_to_the_same_budget(clock):
    _, app = limited_app(clock, write_rate_per_s=1.0, write_burst=2)
    wrong = {"Authorization": f"Bearer {GUESS}"}
    codes = [r.status_code for r in call(app, [("GET", "/status", {"headers": wrong})] * 3)]
    assert codes == [401, 401, 429]
    # The right token is not refused for reads, even with the budget spent.
    assert call(app, [("GET", "/status", {"headers": AUTH})])[0].status_code == 200


def test_the_default_limits_are_generous_for_one_local_client():
    limits = ApiLimits()
    assert limits.write_rate_per_s >= 100 and limits.write_burst >= 200
    _, app = limited_app(Clock())
    assert {r.status_code for r in call(app, [post_tx() for _ in range(limits.write_burst)])} == {202}


def test_a_body_over_the_limit_is_refused_with_or_without_content_length(clock):
    _, app = limited_app(clock, max_body_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"tx": "'
        for _ in range(10):
            yield b"ab" * 100
        yield b'"}'

    declared, streamed, small = call(
        app,
        [
            ("POST", "/txs", {"content": b"x" * 1001, "headers": AUTH}),
            ("POST", "/txs", {"content": chunks(), "headers": AUTH}),
            ("POST", "/txs", {"json": {"tx": "ab" * 100}, "headers": AUTH}),
        ],
    )
    assert declared.status_code == 413 and declared.json()["error"] == "too_large"
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413 and "over 1000 bytes" in streamed.json()["message"]
    assert small.status_code == 202


def test_a_batch_over_the_limit_is_refused(clock):
    node, app = limited_app(clock, max_batch_txs=2)
    over, at = call(
        app,
        [
            ("POST", "/txs", {"json": {"txs": ["ab"] * 3}, "headers": AUTH}),
            ("POST", "/txs", {"json": {"txs": ["ab"] * 2}, "headers": AUTH}),
        ],
    )
    assert over.status_code == 413 and "at most 2 txs, got 3" in over.json()["message"]
    assert at.status_code == 202 and node.submitted == [[b"\xab", b"\xab"]]


def test_no_cors_headers_are_sent(clock):
    _, app = limited_app(clock)
    origin = {"Origin": "https://evil.example"}
    preflight, read = call(
        app,
        [
            ("OPTIONS", "/txs", {"headers": {**origin, "Access-Control-Request-Method": "POST"}}),
            ("GET", "/status", {"headers": {**origin, **AUTH}}),
        ],
    )
    assert read.status_code == 200
    for response in (preflight, read):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_no_response_or_log_line_carries_the_token_or_a_guess(clock, caplog):
    _, app = limited_app(clock, write_rate_per_s=1.0, write_burst=4, max_body_bytes=100)
    wrong = {"Authorization": f"Bearer {GUESS}"}
    caplog.set_level(logging.DEBUG)
    responses = call(
        app,
        [
            ("GET", "/status", {"headers": wrong}),
            ("GET", "/status", {"headers": {"Authorization": GUESS}}),
            ("GET", "/nowhere", {"headers": AUTH}),
            ("DELETE", "/status", {"headers": AUTH}),
            ("GET", "/blocks/1", {"headers": AUTH}),
            ("POST", "/txs", {"content": b"x" * 101, "headers": AUTH}),
            post_tx(wrong),
            post_tx(wrong),
            ("GET", "/status", {"headers": AUTH}),
        ],
    )
    codes = [r.status_code for r in responses]
    assert codes == [401, 401, 404, 405, 500, 413, 429, 429, 200]
    assert responses[4].json() == {
        "error": "internal",
        "message": "the node failed to answer this request; see its log",
    }
    for response in responses:
        shown = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        assert GUESS not in shown and TOKEN not in shown, shown
    logged = "\n".join(caplog.messages + [r.exc_text or "" for r in caplog.records])
    assert GUESS not in logged and TOKEN not in logged
