"""Gossip message ids: one id per publish, the same id along every relay path."""

from __future__ import annotations

from libp2p.pubsub.pb import rpc_pb2

from lendchain.node.network_host import content_message_id


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
