"""Gossip of the network layer: ``GossipSide`` is a mixin of ``Network`` (network.py).

Transactions travel on gossipsub (``network_host.build_pubsub``). Each message
a member relays is charged to its gossip budget before any decoding, then
checked by the daemon's validator; delivered ones go to the daemon. A linked
member whose subscription pubsub lost is reconnected (``_repair_gossip``).
"""

from __future__ import annotations

from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from lendchain.node.network_host import close_connections
from lendchain.node.network_link import bounded


class GossipSide:
    async def _repair_gossip(self: Any) -> None:
        """Reconnect a member whose gossip subscription never arrived.

        With two connections to one member, py-libp2p 0.8.1's pubsub can lose the
        member's subscription announcement; neither side notices, and gossip
        between them stops. Every member subscribes before it dials, so a member
        linked for a while without a known subscription is in that state. Closing
        its connections (``close_connections``) makes both sides open new pubsub
        streams on the next one (``DeliveringPubsub._handle_new_peer``), whose
        hellos carry the subscriptions again. (A member that let this node go still
        tells it its subscriptions, so that a node that has not read its removal
        yet is no such case: ``DeliveringPubsub._hear_out``.)
        """
        assert self._pubsub is not None and self._host is not None
        first_repair_s = self.options["gossip_repair_s"]
        # A reconnect also resets the consensus link, so repeated repairs back off.
        repair_after = {name: first_repair_s for name in self._links}
        while True:
            await trio.sleep(min(1.0, first_repair_s / 2))
            subscribed = self._pubsub.peer_topics.get(self.topic, set())
            now = trio.current_time()
            # A copy: members come and go at run time, and a disconnect below yields.
            for name, link in list(self._links.items()):
                if link.peer_id in subscribed:
                    repair_after[name] = first_repair_s
                elif link.up and now - link.up_since > repair_after.setdefault(name, first_repair_s):
                    self._counters["gossip_repairs"] += 1
                    self.log.warning(
                        "%s is linked but its gossip subscription is missing after %.1f s; reconnecting",
                        name,
                        now - link.up_since,
                    )
                    repair_after[name] = min(repair_after[name] * 2, 120.0)
                    link.up_since = now
                    await bounded(close_connections(self._host, link.peer_id))

    def _gossip_validator(self: Any, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        if forwarder == self.my_peer_id:
            return True  # our own publish: the daemon checked it before publishing
        if ID(msg.from_id) not in self._by_peer:
            self._counters["gossip_rejected"] += 1
            return False
        link = self._by_peer.get(forwarder)
        if link is not None and link.budget is not None:
            if not link.budget.admit(trio.current_time(), gossip_bytes=len(msg.data)):
                self._counters["throttled_gossip"] += 1
                self._warn_throttled(link, "gossip")
                return False
        try:
            valid = bool(self._validate_gossip(self._unwrap(msg)[1]))
        except ValueError:
            valid = False
        except Exception:
            self.log.exception("gossip validator raised; rejecting the message")
            valid = False
        if not valid:
            self._counters["gossip_rejected"] += 1
        return valid

    def _deliver_gossip(self: Any, msg: rpc_pb2.Message) -> None:
        if ID(msg.from_id) == self.my_peer_id or self._inject_loss("gossip_loss"):
            return
        self._counters["gossip_in"] += 1
        try:
            self._on_gossip(self._unwrap(msg)[1])
        except Exception:
            self.log.exception("gossip handler failed")
