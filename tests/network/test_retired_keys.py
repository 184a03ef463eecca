"""A member that rotated its node key: once it connects with the new key, its old one is refused.

node1's genesis key is ``old``; governance scheduled ``new``. node0 admits
either until node1 proves ``new`` (a Noise handshake with it); from then on a
connection with ``old`` (a leaked copy, or node1 started on the wrong key
file) is refused, and node0 records that so a restart does not admit it again.
"""

from __future__ import annotations

import logging

import pytest
import trio

from lendchain.crypto import SigningKey
from lendchain.node.network_host import peer_id_of
from lendchain.node.network_link import MemberLink
from tests.network.harness import Peer, make_members, running, wait_for


def test_a_link_retires_the_keys_older_than_the_one_it_saw():
    members, _ = make_members(1)
    link = MemberLink(members[0])
    newest, current, genesis = (SigningKey.generate().public_key for _ in range(3))
    link.set_keys([newest, current, genesis])
    assert link.seen_on(link.peer_ids[2]) == []  # the oldest: nothing is older
    assert link.seen_on(link.peer_ids[1]) == [genesis]
    assert link.keys == [newest, current] and link.seen_on(link.peer_ids[1]) == []
    assert link.seen_on(link.peer_ids[0]) == [current]
    assert link.keys == [newest] and link.peer_id == link.peer_ids[0]
    link.set_keys([newest, current, genesis])  # a later refresh from the ledger keeps them out
    assert link.keys == [newest]


def test_the_old_key_is_refused_once_the_member_connected_with_its_new_one(caplog):
    members, keys = make_members(2)
    old, new = keys["node1"], SigningKey.generate()
    member_keys = {"node0": [keys["node0"].public_key], "node1": [new.public_key, old.public_key]}
    retired: list[tuple[str, list[bytes]]] = []

    def node0(**extra):
        on_retire = lambda name, keys: retired.append((name, keys))  # noqa: E731
        return Peer("node0", keys["node0"], members, member_keys=member_keys, on_retire=on_retire, **extra)

    def node1(key):
        return Peer("node1", key, members, member_keys=member_keys)

    def connected(peer: Peer, other: Peer) -> bool:
        return peer.network.connected_members() == {"node1"} and other.network.connected_members() == {
            "node0"
        }

    async def main():
        first = node0()
        async with running([first]) as nursery:
            on_old = node1(old)  # not rotated yet on its side: its old key is still the member
            await on_old.start(nursery)
            await wait_for(lambda: connected(first, on_old), "node1 on its old key to connect")
            assert retired == []
            await on_old.stop()
            on_new = node1(new)
            await on_new.start(nursery)
            await wait_for(lambda: connected(first, on_new), "node1 on its new key to connect")
            assert retired == [("node1", [old.public_key])]
            await on_new.stop()
            await wait_for(lambda: "node1" not in first.network.connected_members(), "node0 to see node1 go")
            refused_before = first.network.stats()["rejected_peers"]
            again_old = node1(old)
            await again_old.start(nursery)
            await wait_for(  # refused, and refused again when it redials: never let in
                lambda: first.network.stats()["rejected_peers"] > refused_before + 1,
                "node0 to refuse the old key twice",
            )
            assert "node1" not in first.network.connected_members()
            await again_old.stop()

        # node0 restarted with what it recorded refuses the old key from the start.
        restarted = node0(retired_keys={"node1": [old.public_key]})
        async with running([restarted]) as nursery:
            stale = node1(old)
            await stale.start(nursery)
            await wait_for(
                lambda: restarted.network.stats()["rejected_peers"] > 0, "the restarted node0 to refuse"
            )
            assert "node1" not in restarted.network.connected_members()
            await stale.stop()

    with caplog.at_level(logging.WARNING):
        trio.run(main)
    assert any("node1 proved a newer node key" in r.getMessage() for r in caplog.records)


def test_a_running_member_moves_to_its_new_key_without_a_restart(caplog):
    """``rekey``: node1's host comes back on the new key at the same address; links, frames and
    gossip resume, its peers retire the old key, and a stranger's key is refused."""
    members, keys = make_members(3)
    old, new = keys["node1"], SigningKey.generate()
    member_keys = {name: [key.public_key] for name, key in keys.items()}
    member_keys["node1"] = [new.public_key, old.public_key]
    retired: dict[str, list[tuple[str, list[bytes]]]] = {"node0": [], "node2": []}

    def peer(name, key):
        on_retire = lambda who, gone: retired[name].append((who, gone))  # noqa: E731
        return Peer(name, key, members, member_keys=member_keys, on_retire=on_retire)

    node0, node1, node2 = peer("node0", keys["node0"]), peer("node1", old), peer("node2", keys["node2"])
    everyone = [node0, node1, node2]

    def all_linked() -> bool:
        return all(len(p.network.connected_members()) == 2 for p in everyone)

    async def main():
        async with running(everyone):
            await wait_for(all_linked, "all three linked, node1 on its old key")
            with pytest.raises(ValueError, match="not one of node1's node keys"):
                node1.network.rekey(SigningKey.generate())
            old_peer_id = node1.network.peer_id

            node1.network.rekey(new)
            await wait_for(lambda: node1.network.peer_id != old_peer_id, "node1's host on the new key")
            assert node1.network.peer_id == str(peer_id_of(new.public_key))
            await wait_for(all_linked, "all three linked again, node1 on its new key", timeout_s=60)
            for name in ("node0", "node2"):
                await wait_for(lambda name=name: retired[name], f"{name} to retire node1's old key")
                assert retired[name] == [("node1", [old.public_key])]

            # Consensus frames both ways, and gossip both ways, on the new identity.
            assert node0.network.send("node1", b"to the new key")
            assert node1.network.send("node2", b"from the new key")
            await wait_for(lambda: node1.frames["node0"] == [b"to the new key"], "node0's frame")
            await wait_for(lambda: node2.frames["node1"] == [b"from the new key"], "node1's frame")
            # (Relayed if need be: as after a restart, py-libp2p's pubsub occasionally misses one
            # subscription for a while; see Network._repair_gossip.)
            await wait_for(lambda: node1.network.gossip_members(), "node1 in the gossip mesh")
            await node1.network.publish(b"gossip from the new key")
            await wait_for(
                lambda: all(b"gossip from the new key" in p.gossip for p in (node0, node2)),
                "node1's gossip at node0 and node2",
            )
            await wait_for(lambda: node2.network.gossip_members(), "node2 in the gossip mesh")
            await node2.network.publish(b"gossip to the new key")
            await wait_for(lambda: b"gossip to the new key" in node1.gossip, "node2's gossip at node1")

    with caplog.at_level(logging.WARNING):
        trio.run(main)
    assert any("network identity moves to the rotated node key" in r.getMessage() for r in caplog.records)


def test_a_rekey_asked_for_before_the_host_runs_starts_it_on_the_new_key():
    members, keys = make_members(2)
    new = SigningKey.generate()
    member_keys = {"node0": [keys["node0"].public_key], "node1": [new.public_key, keys["node1"].public_key]}
    node0 = Peer("node0", keys["node0"], members, member_keys=member_keys)
    node1 = Peer("node1", keys["node1"], members, member_keys=member_keys)
    node1.network.rekey(new)

    async def main():
        async with running([node0, node1]):
            assert node1.network.peer_id == str(peer_id_of(new.public_key))
            await wait_for(lambda: node0.network.connected_members() == {"node1"}, "node1 on its new key")

    trio.run(main)
