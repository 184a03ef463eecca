"""``NodeClient.wait_tx`` asks the node to hold each request for less than the client's own timeout."""

from __future__ import annotations

import httpx
import pytest

from lendchain.client import NodeClient, NodeError


def _client(timeout: float, answers: list[str], held: list[int]) -> NodeClient:
    def answer(request: httpx.Request) -> httpx.Response:
        held.append(int(request.url.params["wait_ms"]))
        return httpx.Response(200, json={"status": answers.pop(0) if answers else "pending"})

    client = NodeClient("http://node.test", timeout=timeout)
    client._http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(answer))
    return client


@pytest.mark.parametrize("timeout, hold_ms", [(5.0, 3000), (30.0, 10_000), (1.0, 0)])
def test_each_wait_is_shorter_than_the_clients_timeout(timeout, hold_ms):
    held: list[int] = []
    with _client(timeout, ["pending", "committed"], held) as client:
        assert client.wait_tx("ab" * 32, timeout_s=60)["status"] == "committed"
    assert held == [hold_ms, hold_ms]


def test_a_tx_still_pending_at_the_deadline_is_an_error():
    held: list[int] = []
    with _client(5.0, [], held) as client, pytest.raises(NodeError, match="still pending after 0 s"):
        client.wait_tx("ab" * 32, timeout_s=0)
    assert held == [0]
