"""Members redial while the close of their old connection hangs (``forget_closed_connections``).

py-libp2p 0.8.1 marks a connection closed before it closes the muxer, and
lists it in the swarm until that ends; a yamux close writing to a peer that
reads nothing can take many seconds. ``BasicHost.connect`` skips the dial
while any connection is listed and ``new_stream`` refuses closed ones, so
two members whose link timed out on both sides (each heard nothing from the
other for ``dead_after_s`` under load) stayed apart for as long as their
closes hung: 16 s and more under the network benchmark. Here both hang for
good.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from tests.network.harness import Peer, running, sender_and_receiver, wait_for


async def _hang() -> None:
    await trio.sleep_forever()


def _linked(me: Peer, other: Peer) -> Callable[[], bool]:
    return lambda: me.network.connected_members() == {other.name}


def _open_connection(me: Peer, other: Peer) -> Callable[[], bool]:
    swarm = me.network._host.get_network()
    return lambda: any(not c.is_closed for c in swarm.get_connections(other.network.my_peer_id))


def test_two_members_link_again_while_their_old_connections_closes_hang():
    node0, node1 = sender_and_receiver()
    pairs = ((node0, node1), (node1, node0))

    async def main():
        async with running([node0, node1]):
            for me, other in pairs:
                await wait_for(_linked(me, other), f"{me.name}'s link")
            stuck = {}
            for me, other in pairs:
                (conn,) = me.network._host.get_network().get_connections(other.network.my_peer_id)
                conn.muxed_conn.close = _hang  # the GO_AWAY never gets written
                stuck[me.name] = conn
            async with trio.open_nursery() as nursery:
                # As each link's watchdog leaves it after "nothing heard": its connection closing
                # (closed at once, listed until the muxer closes: never), its streams gone.
                for conn in stuck.values():
                    nursery.start_soon(conn.close)
                await wait_for(lambda: all(conn.is_closed for conn in stuck.values()), "both marked closed")
                for conn in stuck.values():
                    for stream in list(conn.streams):
                        await stream.reset()
                # Each redial drops the listed closed connection and dials afresh, instead of
                # finding "No valid connections available" until its close ends.
                for me, other in pairs:
                    await wait_for(_open_connection(me, other), f"a new connection at {me.name}")
                    await wait_for(_linked(me, other), f"{me.name}'s link again")
                assert node0.network.stats()["stuck_closes"] + node1.network.stats()["stuck_closes"] >= 1
                assert node0.network.send("node1", b"after the stuck closes")
                await wait_for(lambda: node1.frames["node0"][-1:] == [b"after the stuck closes"], "a frame")
                nursery.cancel_scope.cancel()

    trio.run(main)
