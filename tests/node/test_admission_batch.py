"""A batch (a stream message, a gossip message) is admitted as its txs one request at a time would be.

``TxAdmission._admit`` takes a whole batch in one loop, reading the committed
nonces' memory, the clocks and the node's lookups once; these tests hold it to
the answers, pool and kept txs of one-tx requests on a twin node.
"""

from __future__ import annotations

import pytest

from lendchain import codec
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.keyrotation import MemberSigner
from lendchain.ledger.transactions import Transaction, build_transaction
from lendchain.node.config import load_node_config
from lendchain.node.daemon import Node
from lendchain.node.testnet import generate_testnet

CHAIN_ID = "lendchain-test-1"  # every test network's
SENDER, OTHER, STALE, CURRENT = (SigningKey(bytes([n]) * 32) for n in (0x31, 0x32, 0x06, 0x07))


def tx(key: SigningKey, nonce: int, role: str = "borrower", kind: str = "party.register") -> Transaction:
    return build_transaction(key, CHAIN_ID, kind, nonce, {"role": role}, 1_800_000_000_000)


def forged(good: Transaction) -> Transaction:
    return Transaction(
        good.chain_id, good.kind, good.sender, good.nonce, good.created_ms, good.payload, bytes(64)
    )


@pytest.fixture
def twins(tmp_path):
    """Two bank1 nodes of one test network, each with SENDER's nonce 0 committed and STALE replaced."""
    nodes = []
    for name in ("a", "b"):
        config = load_node_config(generate_testnet(tmp_path / name, 4).configs[0])
        node = Node(config, read_key_file(config.key_file))
        assert node.submit([tx(SENDER, 0).encode()])[0]["status"] == "accepted"
        head = node.store.head()
        block = node.app.propose(head.height + 1, head.hash, head.timestamp_ms + 1_000)
        node.app.commit(head.height + 1, block, node.app.digest(block), b"certificate")
        node.signers = {
            STALE.did: MemberSigner("bank2", "did:key:z6Mkbank2", (0, 1), 0),
            CURRENT.did: MemberSigner("bank2", "did:key:z6Mkbank2", (0, 1), 1),
        }
        nodes.append(node)
    yield nodes
    for node in nodes:
        node.store.close()


def batch() -> list[Transaction]:
    """One of each answer admission gives, twice over where a repeat answers otherwise."""
    return [
        tx(SENDER, 0),  # known: committed
        tx(SENDER, 0, role="investor"),  # bad_nonce: already used
        tx(SENDER, 1),  # accepted
        tx(SENDER, 1),  # known: pending (the same tx again)
        tx(SENDER, 1, role="investor"),  # duplicate_nonce
        tx(SENDER, 2),  # accepted: the run goes on
        tx(OTHER, 10_001),  # bad_nonce: too far ahead
        tx(OTHER, 0),  # accepted: a new sender
        tx(STALE, 0),  # forbidden: a replaced member key
        tx(CURRENT, 0),  # accepted: a member's current key
    ]


def state(node: Node) -> tuple:
    pooled = [
        (p.tx.id, p.tx.sender, p.tx.nonce) for p in (node.mempool.get(i) for i in node.mempool.oldest(100))
    ]
    return pooled, sorted(node.store.pending_items()), node._gossip_outbox, sorted(node._accepted_at)


def test_a_stream_message_is_answered_and_kept_as_its_txs_sent_one_by_one(twins):
    at_once, one_by_one = twins
    raws = [t.encode() for t in batch()]
    raws[4:4] = [b"\x93junk", forged(tx(OTHER, 1)).encode(), tx(OTHER, 3, kind="no.such").encode()]
    answers = at_once.submit(raws)
    assert answers == [one_by_one.submit([raw])[0] for raw in raws]
    assert [a["status"] for a in answers].count("accepted") == 4
    assert {a.get("code") for a in answers} >= {"malformed", "bad_signature", "unknown_kind", "forbidden"}
    assert state(at_once) == state(one_by_one)
    duplicate = answers[7]  # the answer's keys in the order the API has always written them
    assert list(duplicate) == ["id", "status", "code", "message"] and duplicate["code"] == "duplicate_nonce"
    assert (
        duplicate["message"] == f"nonce 1 of {SENDER.did} is already taken by pending tx {answers[2]['id']}"
    )


def test_a_gossip_message_is_pooled_as_its_txs_accepted_one_by_one(twins):
    at_once, one_by_one = twins
    txs = batch()
    at_once._on_gossip(codec.pack([t.encode() for t in txs]))
    answers = [one_by_one._accept(t, source="gossip", verified=True) for t in txs]
    assert [a["status"] for a in answers].count("accepted") == 4
    assert state(at_once) == state(one_by_one)

    def accepted(node: Node) -> float:
        return node.metrics.registry.get_sample_value("lendchain_tx_accepted_total", {"source": "gossip"})

    assert accepted(at_once) == accepted(one_by_one) == 4


def test_a_batch_reads_a_senders_committed_nonce_again_once_the_head_moved(twins):
    node = twins[0]
    assert node.submit([tx(OTHER, 0).encode()])[0]["status"] == "accepted"
    assert node._committed_nonces == {OTHER.did: 0}  # read at this head only
    head = node.store.head()
    block = node.app.propose(head.height + 1, head.hash, head.timestamp_ms + 1_000)
    node.app.commit(head.height + 1, block, node.app.digest(block), b"certificate")
    answers = node.submit([tx(OTHER, 0, role="investor").encode(), tx(OTHER, 1).encode()])
    assert [a["status"] for a in answers] == ["rejected", "accepted"]
    assert answers[0]["message"] == f"nonce 0 of {OTHER.did} is already used; next is 1"
