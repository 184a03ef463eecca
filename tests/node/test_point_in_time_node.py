"""Point-in-time replay from a node's API (``GET /blocks/raw``), in-process: a node is not trusted.

The node here is the API app over a stopped node's store (``report_chain``);
what it serves can be changed on the way out, as a faulty or lying node would.
"""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
import trio

from lendchain.cli.report import NodeBlocks
from lendchain.client import NodeClient, NodeError
from lendchain.consensus.certificate import CommitCertificate
from lendchain.consensus.quorum import tag
from lendchain.ledger.block import Block
from lendchain.node.api import build_app
from lendchain.node.config import ApiLimits
from lendchain.node.pointintime import (
    DataDirBlocks,
    ReplayedViews,
    ReportError,
    Target,
    parse_as_of,
    replay_to,
)
from lendchain.node.store import ChainStore
from lendchain.node.views import NodeViews
from tests.node.report_chain import SECOND_DAY, report_chain

URL = "http://node"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    chain = report_chain()
    return chain, chain.write_data_dir(tmp_path_factory.mktemp("report") / "data")


@pytest.fixture
def store(world):
    chain, data_dir = world
    with ChainStore.open(data_dir, chain.genesis, create=False) as opened:
        yield opened


def client_of(facade: NodeViews, token: str | None = None, client_token: str | None = None) -> NodeClient:
    """A ``NodeClient`` whose requests go to the API app over ``facade``, in this process."""
    app = build_app(facade, token, ApiLimits())

    def answer(request: httpx.Request) -> httpx.Response:
        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url=URL) as http:
                return await http.send(request)

        response = trio.run(run)
        return httpx.Response(response.status_code, headers=response.headers, content=response.content)

    client = NodeClient(URL, client_token)
    client._http = httpx.Client(base_url=URL, headers=client._headers, transport=httpx.MockTransport(answer))
    return client


class Serving(ReplayedViews):
    """A node that changes what it serves of block ``height`` with ``change`` (a raw block item)."""

    def __init__(self, store, genesis, height=0, change=None) -> None:
        super().__init__(store, genesis)
        self.height, self.change = height, change

    def raw_blocks(self, start: int, limit: int, max_bytes: int = 8 << 20):
        answer = super().raw_blocks(start, limit, max_bytes)
        for item in answer["blocks"]:
            if item["height"] == self.height:
                self.change(item)
        return answer


def node_report(chain, facade: NodeViews, target: Target, token=None):
    with client_of(facade, client_token=token) as client:
        with replay_to(chain.genesis, NodeBlocks(client, chain.genesis), target) as pit:
            return pit.basis, pit.views.query("portfolio", chain.members[0].did)


def test_raw_blocks_are_the_stored_bytes_with_their_certificates_a_page_at_a_time(world, store):
    chain, _ = world
    with client_of(ReplayedViews(store, chain.genesis)) as client:
        page = client.get("/blocks/raw", **{"from": 2, "limit": 3})
        assert [item["height"] for item in page["blocks"]] == [2, 3, 4]
        assert [bytes.fromhex(item["block"]) for item in page["blocks"]] == [
            raw for raw, _ in chain.chain.blocks[1:4]
        ]
        assert bytes.fromhex(page["blocks"][0]["certificate"]) == store.certificate(2)
        assert (
            page["genesis_hash"] == chain.genesis.hash().hex() and page["chain_id"] == chain.genesis.chain_id
        )
        assert page["head"] == {
            "height": 10,
            "hash": store.head().hash.hex(),
            "timestamp_ms": store.head().timestamp_ms,
        }
        assert client.get("/blocks/raw", **{"from": 10, "limit": 5})["blocks"][0]["height"] == 10
        assert client.get("/blocks/raw", **{"from": 11})["blocks"] == []
        with pytest.raises(NodeError, match="query parameter 'limit' must be an integer from 1 to 1000"):
            client.get("/blocks/raw", limit=1001)
    # A page stops at about max_bytes, but always holds one block.
    page = ReplayedViews(store, chain.genesis).raw_blocks(1, 10, max_bytes=1)
    assert [item["height"] for item in page["blocks"]] == [1]


def test_a_nodes_blocks_give_the_data_directorys_report(world, store, tmp_path):
    chain, data_dir = world
    target = Target(as_of_ms=parse_as_of(SECOND_DAY))
    basis, portfolio = node_report(chain, ReplayedViews(store, chain.genesis), target)
    store.close()
    with (
        DataDirBlocks(data_dir, chain.genesis) as source,
        replay_to(chain.genesis, source, target, tmp_path) as pit,
    ):
        assert portfolio == pit.views.query("portfolio", chain.members[0].did)
        assert {**basis, "source": None} == {**pit.basis, "source": None}
    assert basis["source"] == f"node at {URL}" and basis["height"] == chain.heights["second_day"]


def certify(chain, height: int, digest: bytes) -> str:
    """A commit certificate by bank1..bank3 for ``digest``: what members who signed a bad block serve."""
    body = [0, height, digest]
    signatures = tuple(
        (member.name, key.sign(tag("commit"), chain.genesis.chain_id, body))
        for member, key in list(zip(chain.genesis.members, chain.members, strict=True))[:3]
    )
    return CommitCertificate(0, height, digest, signatures).encode().hex()


def wrong_state_root(chain):
    def change(item: dict) -> None:
        block = Block.decode(bytes.fromhex(item["block"]))
        forged = Block(replace(block.header, state_root=bytes(32)), block.txs)
        item["block"] = forged.encode().hex()
        item["certificate"] = certify(chain, item["height"], forged.hash())

    return change


def unsigned(item: dict) -> None:
    cert = CommitCertificate.decode(bytes.fromhex(item["certificate"]))
    item["certificate"] = replace(cert, signatures=cert.signatures[:2]).encode().hex()


@pytest.mark.parametrize(
    "change, message",
    [
        (
            unsigned,
            "block 4 fails the check: its commit certificate does not verify under the genesis keys and the "
            r"replayed governance \(commit certificate has 2 signatures, a quorum needs 3\)",
        ),
        (
            "wrong_state_root",
            r"block 4 fails the check: block 4 state root 0000000000000000 does not match the state root \w{16} "
            "its execution gives here",
        ),
    ],
)
def test_a_node_serving_a_block_that_does_not_check_is_refused_at_its_height(world, store, change, message):
    chain, _ = world
    change = wrong_state_root(chain) if change == "wrong_state_root" else change
    with pytest.raises(ReportError, match=f"node at {URL}: {message}; nothing is reported"):
        node_report(chain, Serving(store, chain.genesis, 4, change), Target())


def test_a_node_that_hides_the_block_after_the_time_is_caught(world, store):
    """It claims a later head, then serves nothing past the as-of target: no block proves the target last."""
    chain, _ = world

    class Withholding(ReplayedViews):
        def raw_blocks(self, start, limit, max_bytes=8 << 20):
            answer = super().raw_blocks(start, limit, max_bytes)
            answer["blocks"] = [item for item in answer["blocks"] if item["height"] <= 5]
            return answer

    with pytest.raises(
        ReportError, match=f"node at {URL} served no block from height 6, though its newest is 10"
    ):
        node_report(chain, Withholding(store, chain.genesis), Target(as_of_ms=parse_as_of(SECOND_DAY)))


def test_a_node_of_another_chain_is_named_before_anything_is_replayed(world, store):
    chain, _ = world
    other = replace(chain.genesis, chain_id="another-chain")
    with client_of(ReplayedViews(store, chain.genesis)) as client:
        with pytest.raises(
            ReportError,
            match=f"node at {URL} serves chain 'lendchain-ledger-test' .*, not the chain "
            "of the genesis given \\('another-chain', genesis",
        ):
            NodeBlocks(client, other)


def test_a_wrong_token_and_an_older_node_are_told_apart(world, store):
    chain, _ = world
    facade = ReplayedViews(store, chain.genesis)
    with client_of(facade, token="s3cret-token-0123456789", client_token="wrong") as client:
        with pytest.raises(
            ReportError,
            match="refused the request \\(missing or wrong bearer token\\): give its API "
            "token with --token-file FILE",
        ):
            NodeBlocks(client, chain.genesis)

    def older_node(request: httpx.Request) -> httpx.Response:  # as a release without the route answers
        return httpx.Response(404, json={"error": "not_found", "message": f"no route GET {request.url.path}"})

    with NodeClient(URL) as client:
        client._http = httpx.Client(base_url=URL, transport=httpx.MockTransport(older_node))
        with pytest.raises(
            ReportError,
            match="does not serve GET /blocks/raw .*: replay a backup of its data directory with --data-dir instead",
        ):
            NodeBlocks(client, chain.genesis)


def test_the_block_after_an_as_of_time_must_build_on_the_reports_block(world, store):
    """Certified by a quorum, but on another parent: it proves nothing about the report's block."""
    chain, _ = world
    after = chain.heights["second_day"] + 1

    def elsewhere(item: dict) -> None:
        block = Block.decode(bytes.fromhex(item["block"]))
        forged = Block(replace(block.header, prev_hash=bytes(32)), block.txs)
        item["block"] = forged.encode().hex()
        item["certificate"] = certify(chain, item["height"], forged.hash())

    with pytest.raises(
        ReportError, match=f"block {after} fails the check: it does not build on block {after - 1}"
    ):
        node_report(
            chain, Serving(store, chain.genesis, after, elsewhere), Target(as_of_ms=parse_as_of(SECOND_DAY))
        )


def test_a_node_that_claims_a_later_head_than_its_blocks_reach_is_caught(world, store):
    """Its head's time lets an as-of time after the real head through; the blocks then end before it."""
    chain, _ = world

    class Boasting(ReplayedViews):
        def raw_blocks(self, start, limit, max_bytes=8 << 20):
            answer = super().raw_blocks(start, limit, max_bytes)
            answer["head"]["timestamp_ms"] += 10 * 86_400_000
            return answer

    with pytest.raises(
        ReportError,
        match=f"node at {URL} said its newest block 10 is at 2024-06-02T09:00:00.000Z, but that block is at "
        "2024-05-23T09:00:00.000Z: nothing proves it the last block at or before 2024-05-25T23:59:59.999Z",
    ):
        node_report(chain, Boasting(store, chain.genesis), Target(as_of_ms=parse_as_of("2024-05-25")))
