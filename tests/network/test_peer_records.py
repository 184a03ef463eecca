"""The signed peer record of every pubsub RPC: the same bytes, made and checked once (network_records)."""

from __future__ import annotations

import multiaddr
import pytest
from libp2p.peer import peerstore as peerstore_module
from libp2p.peer.id import ID
from libp2p.pubsub import gossipsub as gossipsub_module
from libp2p.pubsub import pubsub as pubsub_module
from libp2p.pubsub import utils as utils_module
from libp2p.pubsub.pb import rpc_pb2

from lendchain.crypto import SigningKey
from lendchain.node import network_records
from lendchain.node.network_host import build_host


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def host_of(seed: int, port: int):
    key = SigningKey(bytes([seed]) * 32)
    listen = multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")
    return build_host(key, listen, lambda peer: True, lambda peer, why: None)


@pytest.fixture
def counted(monkeypatch):
    """The library's own functions, counted as the cache calls them."""
    calls = {"issue": 0, "consume": 0}

    def issue(host):
        calls["issue"] += 1
        return peerstore_module.env_to_send_in_RPC(host)

    def consume(msg, host, peer_id):
        calls["consume"] += 1
        return utils_module.maybe_consume_signed_record(msg, host, peer_id)

    monkeypatch.setattr(network_records, "_issue_record", issue)
    monkeypatch.setattr(network_records, "_consume_record", consume)
    return calls


def test_installed_in_both_pubsub_modules():
    for module in (pubsub_module, gossipsub_module):
        assert module.env_to_send_in_RPC is network_records.sender_record
        assert module.maybe_consume_signed_record is network_records.consume_sender_record


def test_the_record_sent_is_the_librarys_and_is_made_once_a_second(counted):
    host, clock = host_of(1, 40001), Clock()
    envelope, _ = network_records.sender_record(host, clock)
    assert counted["issue"] == 1
    assert envelope == peerstore_module.env_to_send_in_RPC(host)[0]  # the bytes on the wire are the library's
    for _ in range(50):
        clock.now += 0.01
        assert network_records.sender_record(host, clock) == (envelope, False)
    assert counted["issue"] == 1
    clock.now += network_records.ADDRESS_CHECK_S
    assert network_records.sender_record(host, clock) == (envelope, False)
    assert counted["issue"] == 2  # the addresses were compared again, and had not moved


def test_a_new_local_record_is_sent_at_once(counted):
    host, clock = host_of(2, 40002), Clock()
    first, _ = network_records.sender_record(host, clock)
    fresh = peerstore_module.issue_and_cache_local_record(host)  # as the library does when addresses move
    envelope, _ = network_records.sender_record(host, clock)
    assert envelope == fresh and counted["issue"] == 2
    assert envelope != first  # a new record has a new sequence number


def test_hosts_keep_their_own_records(counted):
    clock = Clock()
    one, two = host_of(3, 40003), host_of(4, 40004)
    assert network_records.sender_record(one, clock)[0] != network_records.sender_record(two, clock)[0]


def rpc_from(host) -> rpc_pb2.RPC:
    rpc = rpc_pb2.RPC()
    rpc.senderRecord = peerstore_module.env_to_send_in_RPC(host)[0]
    return rpc


def test_a_peers_record_is_checked_once(counted):
    receiver, sender = host_of(5, 40005), host_of(6, 40006)
    rpc = rpc_from(sender)
    for _ in range(5):
        assert network_records.consume_sender_record(rpc, receiver, sender.get_id())
    assert counted["consume"] == 1


def test_a_record_that_does_not_check_is_refused_every_time(counted):
    receiver, sender, other = host_of(7, 40007), host_of(8, 40008), host_of(9, 40009)
    rpc = rpc_from(sender)
    forged = rpc_pb2.RPC()
    forged.senderRecord = rpc.senderRecord[:-1] + bytes(
        [rpc.senderRecord[-1] ^ 1]
    )  # the signature's last byte
    for _ in range(3):
        assert not network_records.consume_sender_record(forged, receiver, sender.get_id())
        # a true record from the wrong peer: the library refuses it, and so does every repeat
        assert not network_records.consume_sender_record(rpc, receiver, other.get_id())
    assert counted["consume"] == 6


def test_an_rpc_without_a_record_is_read(counted):
    receiver = host_of(10, 40010)
    assert network_records.consume_sender_record(rpc_pb2.RPC(), receiver, ID(b"\x00\x01x"))
    assert counted["consume"] == 0


def test_a_peerstore_that_keeps_records_consumes_each(counted):
    receiver, sender = host_of(11, 40011), host_of(12, 40012)
    kept: list[object] = []
    receiver.get_peerstore().consume_peer_record = lambda envelope, ttl: kept.append(envelope) or True
    rpc = rpc_from(sender)
    for _ in range(3):
        assert network_records.consume_sender_record(rpc, receiver, sender.get_id())
    assert counted["consume"] == 3 and len(kept) == 3
