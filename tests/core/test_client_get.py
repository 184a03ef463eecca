"""``NodeClient.get`` sends the query parameters given in the path and as keywords.

httpx drops a path's query when ``params`` is given, even an empty dict: the
chaos test's checker asked for ``/blocks?from=1&limit=500`` and got the
route's default of 20 blocks.
"""

from __future__ import annotations

import httpx
import pytest

from lendchain.client import NodeClient


def _client(seen: list[httpx.URL]) -> NodeClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={})

    client = NodeClient("http://node.test")
    client._http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(answer))
    return client


@pytest.mark.parametrize(
    "path, keywords, sent",
    [
        ("/blocks?from=3&limit=2", {}, {"from": "3", "limit": "2"}),
        ("/blocks", {"from": 3, "limit": 2}, {"from": "3", "limit": "2"}),
        ("/blocks?from=3", {"limit": 2}, {"from": "3", "limit": "2"}),
        ("/blocks?from=3", {"from": 4}, {"from": "4"}),
        ("/txs/ab", {"wait_ms": None}, {}),
    ],
)
def test_query_parameters_reach_the_node(path, keywords, sent):
    seen: list[httpx.URL] = []
    with _client(seen) as client:
        client.get(path, **keywords)
    (url,) = seen
    assert url.path == path.partition("?")[0]
    assert dict(url.params) == sent
