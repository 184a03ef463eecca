"""A member linked without a gossip subscription is reconnected (``Network._repair_gossip``).

py-libp2p 0.8.1's pubsub can lose a member's subscription when two
connections cross; the network notices a linked member it does not see
subscribed and reconnects it, after which gossip flows both ways again.
Members admitted at run time are checked like the genesis's, and a removal
racing the check does not stop it. (Here the subscription is taken from
pubsub's tables by hand: from the topic's peers and from the router's mesh,
which is what a lost announcement leaves, so that nothing published reaches
the member until the repair.)
"""

from __future__ import annotations

import trio

from lendchain.crypto import SigningKey
from lendchain.genesis import Member
from tests.network.harness import Peer, free_ports, make_members, running, wait_for


def forget_subscription(peer: Peer, other: Peer) -> None:
    """What the py-libp2p bug leaves: ``peer``'s pubsub does not know ``other`` subscribed."""
    other_id = other.network.my_peer_id
    topic = peer.network.topic
    peer.network._pubsub.peer_topics.get(topic, set()).discard(other_id)
    for peers in (peer.network._router.mesh, peer.network._router.fanout):
        peers.get(topic, set()).discard(other_id)


def knows_subscription(peer: Peer, other: Peer) -> bool:
    return other.network.my_peer_id in peer.network._pubsub.peer_topics.get(peer.network.topic, set())


async def gossip_reaches(sender: Peer, receiver: Peer, data: bytes) -> None:
    # Published before the sender's router meshes the receiver (a heartbeat after its subscription
    # is known), a message reaches no one: a node's re-gossip sends its txs again, a test would wait
    # forever. (That is not yet shown to be why this test timed out in 2 runs of 11 of tests/network
    # under load: both meshes were whole when it did, and 34 runs that recorded the mesh at publish
    # found it whole every time; the closing note of 2026-12-06's seventh session keeps it open.)
    await wait_for(
        lambda: receiver.name in sender.network.gossip_members(), f"{receiver.name} in {sender.name}'s mesh"
    )
    await sender.network.publish(data)
    await wait_for(lambda: data in receiver.gossip, f"{sender.name}'s gossip {data!r} at {receiver.name}")


def test_a_member_admitted_at_run_time_is_repaired_when_its_subscription_is_lost():
    members, keys = make_members(1)
    joiner_key = SigningKey.generate()
    (port,) = free_ports(1)
    joiner_member = Member("joiner", joiner_key.public_key, f"/ip4/127.0.0.1/tcp/{port}", ("lender",), True)
    node0 = Peer("node0", keys["node0"], members, gossip_repair_s=0.4)
    joiner = Peer("joiner", joiner_key, [*members, joiner_member], gossip_repair_s=0.4)

    async def main():
        async with running([node0, joiner]):
            assert node0.network.add_member(joiner_member)  # not known when the network started
            await wait_for(lambda: "joiner" in node0.network.connected_members(), "the link to the joiner")
            await wait_for(lambda: knows_subscription(node0, joiner), "the joiner's subscription")
            await gossip_reaches(node0, joiner, b"txs before")
            forget_subscription(node0, joiner)
            # Lost, it leaves node0 nobody to publish to: gossip to the joiner has stopped.
            assert node0.network._router.publish_targets(node0.network.topic) == set()
            # The check runs over a member it did not start with (it raised KeyError here once,
            # which stopped the node's network): it reconnects it.
            await wait_for(lambda: node0.network.stats()["gossip_repairs"] >= 1, "a repair")
            await wait_for(lambda: "joiner" in node0.network.connected_members(), "the link back")
            await wait_for(lambda: knows_subscription(node0, joiner), "the joiner's subscription again")
            # Gossip flows again, both ways: what node0 publishes reaches the joiner, and back.
            await gossip_reaches(node0, joiner, b"txs after the repair")
            await gossip_reaches(joiner, node0, b"the joiner's txs after the repair")
            # Removed while unsubscribed: the next check skips it, and nothing breaks.
            forget_subscription(node0, joiner)
            assert node0.network.remove_member("joiner")
            await trio.sleep(0.45)  # past one check
            assert node0.network.member_names() == ["node0"]

    trio.run(main)
