"""Query parameters: a route refuses one it does not take, and `lendchain block list` sends the right one.

Before, ``?start=`` on ``/blocks`` was ignored and the answer began at block 1;
``lendchain block list --from N`` sent exactly that, and its text output
failed on the block view's shape.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from lendchain.cli import chain as chain_cli
from lendchain.cli import main
from lendchain.ledger.block import Block
from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key
from tests.node.test_api_protection import call


class BlocksNode:
    """Answers ``/blocks`` from a test chain, as ``NodeViews.blocks`` does from a store."""

    metrics_registry = CollectorRegistry()

    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    def blocks(self, start: int, limit: int) -> list[dict[str, Any]]:
        found = [Block.decode(raw).to_json() for raw, _ in self.chain.blocks]
        return [b for b in found if start <= b["header"]["height"] < start + limit]


def _chain_of(blocks: int) -> Chain:
    genesis, _ = make_genesis()
    chain = Chain.start(genesis)
    for n in range(blocks):
        chain.onboard(seeded_key(10 + n), member_key(KYC_MEMBER))
    return chain


def test_blocks_answers_from_the_height_asked_and_refuses_a_misspelt_parameter():
    chain = _chain_of(4)
    app = build_app(BlocksNode(chain), None, ApiLimits())
    good, misspelt, two = call(
        app,
        [
            ("GET", "/blocks", {"params": {"from": 3, "limit": 2}}),
            ("GET", "/blocks", {"params": {"start": 3, "limit": 2}}),
            ("GET", "/blocks", {"params": {"start": 3, "size": 2}}),
        ],
    )
    assert good.status_code == 200
    assert [b["header"]["height"] for b in good.json()["blocks"]] == [3, 4]
    assert misspelt.status_code == 400
    assert misspelt.json() == {
        "error": "bad_request",
        "message": "unknown query parameter 'start' on /blocks: it takes from, limit",
    }
    assert (
        two.json()["message"] == "unknown query parameters 'size', 'start' on /blocks: it takes from, limit"
    )


def test_a_route_without_parameters_refuses_any():
    app = build_app(BlocksNode(_chain_of(1)), None, ApiLimits())
    (answer,) = call(app, [("GET", "/health", {"params": {"verbose": 1}})])
    assert answer.status_code == 400
    assert answer.json()["message"] == "unknown query parameter 'verbose' on /health: it takes none"


class AppClient:
    """The CLI's client, answered by the node's API app in-process."""

    def __init__(self, app) -> None:
        self.app = app
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def get(self, path: str, **params: Any) -> Any:
        self.asked.append((path, params))
        (answer,) = call(self.app, [("GET", path, {"params": params})])
        assert answer.status_code == 200, answer.text
        return answer.json()


def test_block_list_starts_at_from_and_prints_one_line_per_block(monkeypatch):
    chain = _chain_of(4)
    client = AppClient(build_app(BlocksNode(chain), None, ApiLimits()))
    monkeypatch.setattr(chain_cli, "client_from", lambda kw: client)
    text = CliRunner().invoke(main, ["block", "list", "--from", "3", "--limit", "2"])
    assert text.exit_code == 0, text.output
    assert client.asked == [("/blocks", {"from": 3, "limit": 2})]
    lines = text.output.splitlines()
    assert [line.split()[0] for line in lines] == ["3", "4"]
    third = Block.decode(chain.blocks[2][0])
    assert lines[0].split()[1] == third.hash().hex()[:16]
    assert f"txs={third.header.tx_count} " in lines[0]
    assert lines[0].endswith(f"proposer {third.header.proposer}")

    as_json = CliRunner().invoke(main, ["--json", "block", "list", "--from", "4", "--limit", "5"])
    assert as_json.exit_code == 0, as_json.output
    assert [b["header"]["height"] for b in json.loads(as_json.output)["blocks"]] == [4]  # the head

    past_head = CliRunner().invoke(main, ["block", "list", "--from", "50"])
    assert past_head.output.strip() == "no blocks from height 50"
