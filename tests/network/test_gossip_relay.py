"""Gossip relays: a member relays a message only to peers its publisher did not reach itself."""

from collections import Counter

import pytest
import trio

from lendchain import codec
from lendchain.node.network_host import unwrap_gossip, wrap_gossip
from tests.network.harness import Peer, make_members, running, wait_for, wait_full_mesh


def count_relays(peers: list[Peer]) -> Counter:
    """Count (sender, receiver) for every publish RPC a router sends; patches the routers."""
    sent: Counter = Counter()
    for peer in peers:
        router = peer.network._router
        original = router.send_rpc

        def send_rpc(to, rpc, _original=original, _name=peer.name, _router=router):
            if rpc.publish:
                sent[_name, peer_name[to]] += len(rpc.publish)
            return _original(to, rpc)

        router.send_rpc = send_rpc
    peer_name = {p.network.my_peer_id: p.name for p in peers}
    return sent


async def full_gossip_mesh(peers: list[Peer]) -> None:
    await wait_full_mesh(peers)
    others = len(peers) - 1
    await wait_for(
        lambda: all(len(p.network.gossip_members()) == others for p in peers), "a full gossip mesh"
    )


def four_peers() -> list[Peer]:
    members, keys = make_members(4)
    return [Peer(m.name, keys[m.name], members) for m in members]


def relays(sent: Counter) -> dict:
    """What members other than the publisher (node0) sent on."""
    return {pair: n for pair, n in sent.items() if pair[0] != "node0"}


def test_with_every_link_up_only_the_publisher_sends():
    peers = four_peers()

    async def main():
        async with running(peers):
            await full_gossip_mesh(peers)
            sent = count_relays(peers)
            batches = [f"batch {i}".encode() for i in range(20)]
            for batch in batches:
                await peers[0].network.publish(batch)
            await wait_for(
                lambda: all(set(batches) <= set(p.gossip) for p in peers[1:]), "20 batches everywhere"
            )
            await trio.sleep(0.3)  # time for any relay to go out
            assert {pair: n for pair, n in sent.items() if pair[0] == "node0"} == {
                ("node0", "node1"): 20,
                ("node0", "node2"): 20,
                ("node0", "node3"): 20,
            }
            assert relays(sent) == {}, f"members relayed what the publisher had sent everyone: {relays(sent)}"

    trio.run(main)


def test_a_peer_the_publisher_missed_gets_the_message_by_relay():
    peers = four_peers()

    async def main():
        async with running(peers):
            await full_gossip_mesh(peers)
            sent = count_relays(peers)
            router = peers[0].network._router
            node3 = peers[3].network.my_peer_id
            real_targets = router.publish_targets
            # node0 says it reached only node1 and node2 (as if its link to node3 were down when it
            # published): node1 and node2 must relay to node3, and to no one else.
            router.publish_targets = lambda topic: real_targets(topic) - {node3}
            await peers[0].network.publish(b"partly sent")
            await wait_for(lambda: all(b"partly sent" in p.gossip for p in peers[1:]), "the batch everywhere")
            await wait_for(  # node3 has it from the first relay; the second may still be on its way
                lambda: sent["node1", "node3"] and sent["node2", "node3"], "node1 and node2 to relay to node3"
            )
            await trio.sleep(0.3)  # time for any other relay to go out
            assert relays(sent) == {("node1", "node3"): 1, ("node2", "node3"): 1}
            assert peers[3].gossip.count(b"partly sent") == 1

    trio.run(main)


def test_each_member_unwraps_a_message_once_for_validation_delivery_and_relay(monkeypatch):
    """Pubsub hands one message to the validator, the delivery and the relay: one unwrap serves all."""
    peers = four_peers()
    unwraps: Counter = Counter()
    real_unpack = codec.unpack

    def unpack(data, max_size=codec.DEFAULT_MAX_SIZE):
        if b"partly sent" in bytes(data):
            unwraps["partly sent"] += 1
        return real_unpack(data, max_size)

    async def main():
        async with running(peers):
            await full_gossip_mesh(peers)
            router = peers[0].network._router
            node3 = peers[3].network.my_peer_id
            real_targets = router.publish_targets
            router.publish_targets = lambda topic: real_targets(topic) - {node3}  # node1, node2 relay
            monkeypatch.setattr(codec, "unpack", unpack)
            await peers[0].network.publish(b"partly sent")
            await wait_for(lambda: all(b"partly sent" in p.gossip for p in peers[1:]), "the batch everywhere")
            await trio.sleep(0.3)  # time for the relays, and for node3 to drop the second copy as seen
            # node1 and node2 validate, deliver and relay it; node3 validates and delivers it.
            assert unwraps["partly sent"] == 3

    trio.run(main)


def test_wrapped_gossip_round_trips_and_garbage_is_refused():
    members, keys = make_members(2)
    peer = Peer(members[0].name, keys[members[0].name], members)
    target = peer.network.my_peer_id
    data = wrap_gossip([target], b"payload")
    assert unwrap_gossip(data, 1 << 20) == ([target.to_bytes()], b"payload")
    for garbage in (b"\xc1", b"\x92\x01\x02", b"\x91\x90", b"\x92\x91\x01\xc4\x00"):
        with pytest.raises(ValueError):
            unwrap_gossip(garbage, 1 << 20)
    with pytest.raises(ValueError):
        unwrap_gossip(wrap_gossip([], b"x" * 100), 50)


def test_unwrapped_gossip_is_rejected_by_members():
    members, keys = make_members(3)
    peers = [Peer(m.name, keys[m.name], members) for m in members]

    async def main():
        async with running(peers):
            await full_gossip_mesh(peers)
            # Publish raw bytes past the wrapper, as an old or broken node would.
            await peers[0].network._pubsub.publish(peers[0].network.topic, b"not wrapped")
            await wait_for(
                lambda: all(p.network.stats()["gossip_rejected"] >= 1 for p in peers[1:]),
                "the others to reject the unwrapped message",
            )
            assert all(not p.gossip for p in peers[1:])

    trio.run(main)
