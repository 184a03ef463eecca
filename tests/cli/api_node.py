"""The CLI's own ``NodeClient``, answered by the node's API app in-process from a ledger test chain.

``use_chain(monkeypatch, chain)`` points every command's ``--node`` at the
real API app (``build_app``) over a test chain: what a command sends (path,
escaping, query parameters) is checked by the routes that serve a node, and
what it prints is printed from the views a node answers.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from lendchain.cli import _common
from lendchain.client import NodeClient
from lendchain.ledger.block import Block
from lendchain.ledger.member_names import member_name
from lendchain.ledger.rules import rules_status
from lendchain.ledger.state import ledger_events_key, read_value
from lendchain.ledger.transactions import decode_transaction
from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits
from tests.ledger.chain import CHAIN_ID, Chain
from tests.node.test_api_queries import LedgerNode


class ChainApi(LedgerNode):
    """``LedgerNode`` with the chain's status, blocks (with what the ledger did at their start) and txs,
    as ``NodeViews`` answers them from a store."""

    def status(self) -> dict[str, Any]:
        return {
            "chain_id": CHAIN_ID,
            "height": self.chain.height,
            "rules": rules_status(self.chain.state, self.chain.height),
        }

    def block(self, ref: str) -> dict[str, Any] | None:
        found = [Block.decode(raw) for raw, _ in self.chain.blocks]
        for block in found:
            height = block.header.height
            if ref in (str(height), block.hash().hex()) or (ref == "head" and height == self.chain.height):
                events = read_value(self.chain.state, ledger_events_key(height)) or []
                return {**block.to_json(), "ledger_events": events}
        return None

    def blocks(self, start: int, limit: int) -> list[dict[str, Any]]:
        last = min(self.chain.height, start + limit - 1)
        return [found for height in range(start, last + 1) if (found := self.block(str(height)))]

    def tx_status(self, tx_id: bytes) -> dict[str, Any]:
        for raw, execution in self.chain.blocks:
            for index, result in enumerate(execution.results):
                if result.tx_id == tx_id:
                    block = Block.decode(raw)
                    tx = decode_transaction(block.txs[index])
                    return {
                        "id": tx_id.hex(),
                        "status": "committed",
                        "height": block.header.height,
                        "index": index,
                        "block_hash": block.hash().hex(),
                        "timestamp_ms": block.header.timestamp_ms,
                        "kind": tx.kind,
                        "sender": tx.sender,
                        "sender_name": member_name(lambda key: read_value(self.chain.state, key), tx.sender),
                        "result": result.to_json(),
                    }
        return {"id": tx_id.hex(), "status": "unknown"}


class _AppTransport(httpx.BaseTransport):
    """A synchronous transport that hands each request to an ASGI app, as a server would."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000))
            answer = await transport.handle_async_request(request)
            return httpx.Response(answer.status_code, headers=answer.headers, content=await answer.aread())

        return trio.run(run)


def api_client(node: Any) -> NodeClient:
    client = NodeClient("http://node")
    client._http.close()
    client._http = httpx.Client(
        base_url="http://node", transport=_AppTransport(build_app(node, None, ApiLimits()))
    )
    return client


def use_chain(monkeypatch: Any, chain: Chain) -> list[str]:
    """Have every command talk to ``chain`` through the API app; the paths they asked for, in order."""
    node = ChainApi(chain)
    asked: list[str] = []

    def make_client(*_: Any) -> NodeClient:
        client = api_client(node)
        client._http.event_hooks["request"].append(
            lambda request: asked.append(request.url.raw_path.decode())
        )
        return client

    monkeypatch.setattr(_common, "make_client", make_client)
    return asked
