"""Node.submit: admission answers (accepted, known, rejected) and what admission costs the node."""

from __future__ import annotations

import dataclasses

import pytest

from lendchain import codec
from lendchain.crypto import SigningKey
from lendchain.ledger.block import make_block
from lendchain.ledger.transactions import Transaction, build_transaction
from lendchain.node import daemon
from lendchain.node.daemon import Node
from lendchain.node.mempool import MempoolFull, PendingTx


def registration(node: Node, key: SigningKey, created_ms: int = 0) -> Transaction:
    genesis = node.genesis
    return build_transaction(
        key, genesis.chain_id, "party.register", 0, {"role": "borrower"}, genesis.genesis_time_ms + created_ms
    )


def commit_pending(node: Node) -> None:
    head = node.store.head()
    now_ms = head.timestamp_ms + 1_000
    block = node.app.propose(head.height + 1, head.hash, now_ms)
    assert block is not None
    node.app.commit(head.height + 1, block, node.app.digest(block), b"certificate")


def test_a_new_tx_is_admitted_without_reading_the_tx_index(node, monkeypatch):
    """A committed tx used up its nonce, so one at or above its sender's next nonce is new."""
    reads: list[bytes] = []
    real_tx_location = node.store.tx_location
    monkeypatch.setattr(
        node.store, "tx_location", lambda tx_id: reads.append(tx_id) or real_tx_location(tx_id)
    )
    tx = registration(node, SigningKey.generate())
    assert node.submit([tx.encode()]) == [{"id": tx.id.hex(), "status": "accepted"}]
    assert reads == []


def test_a_pending_tx_sent_again_is_known_without_a_state_read(node, monkeypatch):
    """Gossip repeats and relays bring pending txs again: the pool answers, not LevelDB."""
    tx = registration(node, SigningKey.generate())
    assert node.submit([tx.encode()]) == [{"id": tx.id.hex(), "status": "accepted"}]
    reads: list[bytes] = []
    real_get = node.store.get
    monkeypatch.setattr(node.store, "get", lambda key: reads.append(key) or real_get(key))
    assert node.submit([tx.encode()]) == [{"id": tx.id.hex(), "status": "known", "state": "pending"}]
    assert reads == []
    assert len(node.mempool) == 1


def test_a_committed_tx_sent_again_is_known_and_another_at_its_nonce_is_refused(node):
    key = SigningKey.generate()
    tx = registration(node, key)
    node.submit([tx.encode()])
    commit_pending(node)
    assert node.submit([tx.encode()]) == [{"id": tx.id.hex(), "status": "known", "state": "committed"}]
    rival = registration(node, key, created_ms=1)
    [refused] = node.submit([rival.encode()])
    assert (refused["status"], refused["code"]) == ("rejected", "bad_nonce")


def test_a_pending_tx_whose_nonce_another_tx_used_is_dropped_when_that_one_commits(node):
    """The sender sent two txs at one nonce to two members; the other member's commits first."""
    key = SigningKey.generate()
    mine = registration(node, key)
    later = build_transaction(
        key, node.genesis.chain_id, "party.register", 1, {"role": "investor"}, node.genesis.genesis_time_ms
    )
    node.submit([mine.encode(), later.encode()])
    rival = registration(node, key, created_ms=1)
    head = node.store.head()
    block, _ = make_block(
        parent_hash=head.hash,
        parent_timestamp_ms=head.timestamp_ms,
        height=head.height + 1,
        proposer="bank2",
        candidate_txs=[rival],
        reader=node.store,
        now_ms=head.timestamp_ms + 1_000,
        chain_id=node.genesis.chain_id,
    )
    raw = block.encode()
    node.app.commit(head.height + 1, raw, node.app.digest(raw), b"certificate")
    assert node.tx_status(rival.id)["status"] == "committed"
    dropped = node.tx_status(mine.id)
    assert (dropped["status"], dropped["code"]) == ("rejected", "bad_nonce")
    assert later.id in node.mempool  # nonce 1 is still the sender's next: it stays
    assert mine.id not in node.mempool


def test_accepted_and_refused_txs_are_counted_by_source_and_reason(node):
    def count(name: str, **labels: str) -> float:
        return node.metrics.registry.get_sample_value(name, labels) or 0.0

    txs = [registration(node, SigningKey.generate()) for _ in range(3)]
    node.submit([tx.encode() for tx in txs])
    node._accept(registration(node, SigningKey.generate()), source="gossip", verified=True)
    node.submit([b"\x93junk"])
    assert count("lendchain_tx_accepted_total", source="api") == 3
    assert count("lendchain_tx_accepted_total", source="gossip") == 1
    assert count("lendchain_tx_accepted_total", source="restore") == 0
    assert count("lendchain_tx_rejected_total", reason="malformed") == 1


def test_a_commit_counts_its_txs_and_the_latency_of_those_this_node_accepted(node, monkeypatch):
    """The commit listener takes the block's tx ids from the commit, not from the block read back."""

    def sample(name: str) -> float:
        return node.metrics.registry.get_sample_value(name) or 0.0

    mine = [registration(node, SigningKey.generate()) for _ in range(2)]
    node.submit([tx.encode() for tx in mine])
    heard = registration(node, SigningKey.generate())  # pooled by a test, not accepted through intake
    node.app.verified.add(heard.id)
    node.mempool.add(PendingTx(heard, 0))
    commit_pending(node)
    assert node.app.last_committed_tx_ids == [tx.id for tx in [*mine, heard]]
    monkeypatch.setattr(node.store, "block", lambda height: pytest.fail(f"block {height} was read back"))
    node._on_commit(1)
    assert sample("lendchain_txs_committed_total") == 3
    assert sample("lendchain_commit_latency_seconds_count") == 2
    assert all(tx.id not in node._accepted_at for tx in mine)


def test_a_batch_counts_its_accepted_txs_also_when_the_mempool_fills_part_way(node):
    """A stream message or a gossip message is counted once, as many txs as the pool took from it."""

    def count(source: str) -> float:
        return (
            node.metrics.registry.get_sample_value("lendchain_tx_accepted_total", {"source": source}) or 0.0
        )

    node.mempool.config = dataclasses.replace(node.mempool.config, max_txs=5)
    pooled = registration(node, SigningKey.generate())
    node.submit([pooled.encode()])
    batch = [pooled, *(registration(node, SigningKey.generate()) for _ in range(2))]
    results = node.submit([tx.encode() for tx in batch] + [b"\x93junk"])  # known, 2 new, malformed
    assert [r["status"] for r in results] == ["known", "accepted", "accepted", "rejected"]
    assert count("api") == 3
    gossip = [registration(node, SigningKey.generate()) for _ in range(3)]
    node._on_gossip(codec.pack([tx.encode() for tx in gossip]))  # the pool takes 2 and is full
    assert (count("gossip"), len(node.mempool)) == (2, 5)
    with pytest.raises(MempoolFull):
        node.submit([registration(node, SigningKey.generate()).encode()])
    assert count("api") == 3


def test_a_senders_committed_nonce_is_read_once_per_head(node, monkeypatch):
    """Only a commit changes the state: a sender's later txs at one head take its nonce from memory."""
    key = SigningKey.generate()
    txs = [
        build_transaction(
            key,
            node.genesis.chain_id,
            "party.register",
            nonce,
            {"role": "borrower"},
            node.genesis.genesis_time_ms,
        )
        for nonce in range(3)
    ]
    reads: list[bytes] = []
    real_get = node.store.get
    monkeypatch.setattr(node.store, "get", lambda k: reads.append(k) or real_get(k))
    assert [r["status"] for r in node.submit([txs[0].encode(), txs[1].encode()])] == ["accepted"] * 2
    assert len(reads) == 1
    commit_pending(node)  # executes nonces 0 and 1: the next is 2, read again at the new head
    reads.clear()
    again = node.submit([txs[1].encode(), txs[2].encode()])
    assert [r["status"] for r in again] == ["known", "accepted"] and again[0]["state"] == "committed"
    assert reads.count(reads[0]) == 1


def test_the_nonce_memory_is_bounded(node, monkeypatch):
    monkeypatch.setattr(daemon, "NONCE_MEMORY", 2)
    for _ in range(5):
        assert node.submit([registration(node, SigningKey.generate()).encode()])[0]["status"] == "accepted"
        assert len(node._committed_nonces) <= 2
