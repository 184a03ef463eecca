"""Gossip message ids: one id per publish, the same id along every relay path, hashed once per node."""

from __future__ import annotations

from collections import Counter

import pytest
import trio
from libp2p.pubsub.pb import rpc_pb2

from lendchain.node import network_host
from lendchain.node.network_host import MessageIds, content_message_id
from tests.network.harness import Peer, make_members, running, wait_for, wait_full_mesh


def message(from_id: bytes, seqno: int, data: bytes) -> rpc_pb2.Message:
    return rpc_pb2.Message(from_id=from_id, seqno=seqno.to_bytes(8, "big"), data=data, topicIDs=["t"])


def test_a_relayed_copy_has_the_same_id():
    original = message(b"peer-a", 7, b"batch")
    relayed = rpc_pb2.Message()
    relayed.CopyFrom(original)
    relayed.topicIDs.append("other-topic")  # relays may differ in routing fields only
    assert content_message_id(original) == content_message_id(relayed)


def test_republishing_the_same_batch_gets_a_new_id():
    # A peer that marked the first copy seen but lost it must still take the re-gossip.
    assert content_message_id(message(b"peer-a", 7, b"batch")) != content_message_id(
        message(b"peer-a", 8, b"batch")
    )


def test_a_restarted_publisher_reusing_a_seqno_is_not_mistaken_for_its_old_message():
    assert content_message_id(message(b"peer-a", 7, b"old batch")) != content_message_id(
        message(b"peer-a", 7, b"new batch")
    )


def test_message_ids_give_each_message_its_content_id():
    ids = MessageIds()
    first, copy, other = (
        message(b"peer-a", 7, b"batch"),
        message(b"peer-a", 7, b"batch"),
        message(b"peer-a", 7, b"b2"),
    )
    assert ids(first) == content_message_id(first)
    assert ids(copy) == ids(first)  # another object with the same content: the same id
    assert ids(other) == content_message_id(other) != ids(first)


@pytest.fixture
def hashed(monkeypatch) -> list[bytes]:
    """The seqnos of the messages ``content_message_id`` hashes from here on, in order."""
    seqnos: list[bytes] = []

    def counting(msg: rpc_pb2.Message) -> bytes:
        seqnos.append(msg.seqno)
        return content_message_id(msg)

    monkeypatch.setattr(network_host, "content_message_id", counting)
    return seqnos


def test_message_ids_hash_a_message_object_once(hashed):
    ids = MessageIds()
    msgs = [message(b"peer-a", seqno, b"batch") for seqno in range(3)]
    answers = [[ids(msg) for _ in range(5)] for msg in msgs]  # as pubsub asks for a received one
    assert hashed == [msg.seqno for msg in msgs]
    assert all(len(set(asked)) == 1 for asked in answers)


def test_message_ids_forget_old_messages_and_hash_them_again(hashed):
    ids = MessageIds()
    msgs = [message(b"peer-a", seqno, b"batch") for seqno in range(MessageIds.MEMORY + 1)]
    first_ids = [ids(msg) for msg in msgs]
    assert ids(msgs[0]) == first_ids[0]  # forgotten (the oldest), so hashed again: the same id
    assert hashed == [msg.seqno for msg in msgs] + [msgs[0].seqno]
    assert ids(msgs[-1]) == first_ids[-1] and len(hashed) == MessageIds.MEMORY + 2  # still held


def test_each_node_hashes_a_gossip_message_once(monkeypatch):
    hashed: Counter = Counter()

    def counting(msg: rpc_pb2.Message) -> bytes:
        digest = content_message_id(msg)
        hashed[digest] += 1
        return digest

    monkeypatch.setattr(network_host, "content_message_id", counting)
    members, keys = make_members(4)
    peers = [Peer(m.name, keys[m.name], members) for m in members]

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            await wait_for(lambda: all(len(p.network.gossip_members()) == 3 for p in peers), "a full mesh")
            hashed.clear()
            batches = [f"batch {i}".encode() * 1000 for i in range(10)]
            for batch in batches:
                await peers[0].network.publish(batch)
            await wait_for(lambda: all(set(batches) <= set(p.gossip) for p in peers[1:]), "10 batches")
            # Pubsub asks for an id 4 times at the publisher and 5 at each of the 3 others: one hash each.
            assert sorted(hashed.values()) == [4] * len(batches), "a node hashed a message twice"

    trio.run(main)
