"""``/txs/stream`` on a real node process, through hypercorn and the client's ``TxStream``.

The in-process tests of the endpoint's answers are in test_api_stream.py;
these check what only a real server and socket show: a tx sent on the stream
commits, a refused opening reaches the client as the node's JSON error, a
message over the body limit closes the stream (code 1009) without harming the
node, and a node stopped with a stream open exits cleanly while its client is
told the stream closed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lendchain.client import NodeClient, NodeError
from lendchain.crypto import SigningKey
from lendchain.ledger.transactions import Transaction
from lendchain.node.cluster import Cluster, free_port_block
from lendchain.node.testnet import generate_testnet

pytestmark = pytest.mark.slow

TOKEN = "stream-api-token-3c9e71d0a5b24f86"
FIELDS = ("chain_id", "kind", "sender", "nonce", "created_ms", "payload")


@pytest.fixture
def node(tmp_path: Path):
    """A one-member network with an API token and a 64 KiB body limit, running."""
    p2p = free_port_block(2)
    api = free_port_block(2, start=p2p + 10)
    layout = generate_testnet(tmp_path / "net", 1, p2p_base_port=p2p, api_base_port=api)
    config = layout.configs[0]
    (tmp_path / "net" / "api.token").write_text(TOKEN + "\n")
    text = config.read_text().replace("[api]\n", '[api]\ntoken_file = "api.token"\nmax_body_bytes = 65536\n')
    config.write_text(text)
    cluster = Cluster([config], tmp_path / "logs")
    cluster.start("bank1")
    try:
        cluster.wait_healthy()
        yield cluster["bank1"]
    finally:
        assert cluster.stop_all() == {"bank1": 0}


def test_txs_sent_on_the_stream_commit_and_refusals_come_back_per_tx(node):
    with NodeClient(node.url, TOKEN, timeout=10) as c:
        keys = [SigningKey.generate() for _ in range(3)]
        txs = [c.build(k, "party.register", {"role": "borrower"}, nonce=0) for k in keys]
        other = c.build(SigningKey.generate(), "party.register", {"role": "borrower"}, nonce=0)
        forged = Transaction(*[getattr(other, f) for f in FIELDS], signature=bytes(64))
        with c.stream() as stream:
            first = stream.submit_many(txs[:2])
            second = stream.submit_many([txs[2], forged, txs[0]])
        assert [r["status"] for r in first] == ["accepted", "accepted"]
        assert [r["status"] for r in second] == ["accepted", "rejected", "known"]
        assert second[1]["code"] == "bad_signature"
        for tx in txs:
            assert c.wait_tx(tx.id.hex(), timeout_s=30)["status"] == "committed"


def test_a_wrong_token_is_refused_at_opening_with_the_nodes_error(node):
    with NodeClient(node.url, "not-the-token-0123456789", timeout=10) as c:
        with pytest.raises(NodeError) as refused:
            c.stream()
    assert refused.value.status == 401
    assert refused.value.code == "unauthorized"
    assert str(refused.value) == "missing or wrong bearer token"


def test_a_message_over_the_body_limit_closes_the_stream_and_the_node_serves_on(node):
    with NodeClient(node.url, TOKEN, timeout=10) as c:
        with c.stream() as stream:
            with pytest.raises(NodeError, match="closed.*1009"):
                stream.submit_hex(["00" * 40_000])
        with c.stream() as stream:  # a new stream, and the node, work as before
            tx = c.build(SigningKey.generate(), "party.register", {"role": "borrower"}, nonce=0)
            assert stream.submit_many([tx])[0]["status"] == "accepted"


def test_a_node_stops_cleanly_with_a_stream_open_and_the_client_is_told(node):
    with NodeClient(node.url, TOKEN, timeout=10) as c:
        tx = c.build(SigningKey.generate(), "party.register", {"role": "borrower"}, nonce=0)
        with c.stream() as stream:
            assert stream.submit_many([tx])[0]["status"] == "accepted"
            node.process.terminate()  # SIGTERM, as a service manager stops it
            assert node.process.wait(timeout=30) == 0
            with pytest.raises(NodeError, match="closed"):
                stream.submit_many([tx])


def test_pipelined_batches_are_answered_in_order_and_a_refused_one_loses_none_of_the_rest(node):
    with NodeClient(node.url, TOKEN, timeout=10) as c:
        txs = [
            c.build(SigningKey.generate(), "party.register", {"role": "borrower"}, nonce=0) for _ in range(12)
        ]
        batches = [[tx.encode().hex() for tx in txs[i : i + 2]] for i in range(0, 12, 2)]
        batches.insert(3, ["not hex"])
        with c.stream() as stream:
            answers = list(stream.submit_pipelined(batches, window=4))
            assert len(answers) == 7
            refused = answers.pop(3)
            assert isinstance(refused, NodeError) and (refused.status, refused.code) == (400, "bad_request")
            assert [[r["status"] for r in answer] for answer in answers] == [["accepted", "accepted"]] * 6
            assert [r["id"] for answer in answers for r in answer] == [tx.id.hex() for tx in txs]
            # Leaving the loop early reads the answers still in flight: the stream stays in step.
            for answer in stream.submit_pipelined([[tx.encode().hex()] for tx in txs[:5]], window=5):
                assert answer[0]["status"] == "known"
                break
            again = stream.submit_many([txs[5]])[0]
            assert (again["id"], again["status"]) == (txs[5].id.hex(), "known")
        for tx in txs:
            assert c.wait_tx(tx.id.hex(), timeout_s=30)["status"] == "committed"
