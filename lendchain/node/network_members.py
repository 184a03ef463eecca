"""Who the network layer admits and links to: ``MemberSet`` is a mixin of ``Network`` (network.py).

The Noise gate asks ``_is_member`` of every peer: a PeerID of one of a
member's node keys (``allow_keys``: every key it has had or will have, until
it proves a newer one, which retires the older). The member set grows when
the ledger admits a member (``add_member``: a link, dialled at once) and
shrinks when it lets a removed one go (``remove_member``: its link and
connections closed). A member whose node moved is dialled at its new address
(``set_address``).

A removed member is dialled no more from the block that removes it
(``stop_dialling``), though its link lasts until it is let go: a node that
read its own removal closes its links and dials no one (``leave``), so
dialling it would only be refused, every few seconds, until the let-go.
A removed member let go is not forgotten (``let_go``): its node may still
connect, so that a node that was down when its member was removed can fetch
the blocks up to the one that removes it and say so (the daemon serves it
no block above that one). Nothing else it sends is taken: its consensus
frames are read at its budget and dropped (its stream is kept, so that its
link does not flap and drop the connection its requests ride on), its
relayed txs refused, and gossip neither reaches it nor is taken from it
(pubsub's blacklist).

Either way the link is *passive*: this node never dials the member, but
when the member's node connects, a supervisor opens this node's stream back
over that connection and keeps it alive with PINGs. A node that has not read
its removal yet judges its links by what it hears on them; without the
stream back it would hear nothing, close the connection every
``dead_after_s`` and dial again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import multiaddr
import trio
from libp2p.peer.id import ID

from lendchain.genesis import Member
from lendchain.node.network_host import close_connections, peer_id_of
from lendchain.node.network_link import InboundBudget, MemberLink, bounded

# Permanent peerstore entry for member addresses (libp2p's connect() adds 120 s ones).
ADDR_TTL = 10**9
# What a removed member's node may ask of us (per second, burst): a member that was expelled
# may be hostile, and each request can cost us a response of up to 64 blocks. Enough to read
# its removal: 32 requests (2,048 blocks) at once, then 2 a second.
LET_GO_RATES = {"frames": (2.0, 32.0), "bytes": (64.0 * 1024, 256.0 * 1024)}
PASSIVE_POLL_S = 0.1  # how soon a passive link answers a removed member's node that connected


class MemberSet:
    def _is_member(self: Any, peer_id: ID) -> bool:
        link = self._by_peer.get(peer_id)
        if link is None:
            return peer_id in self._let_go  # a removed member's node, to fetch up to its removal
        retired = link.seen_on(peer_id)
        if retired:  # proof of a newer key: the older ones are not this member any more
            name = link.member.name
            self._on_retire(name, retired)
            for key in retired:
                self._by_peer.pop(peer_id_of(key), None)
                if self._host is not None:  # drop what it still has open (new streams are refused)
                    trio.lowlevel.spawn_system_task(bounded, close_connections(self._host, peer_id_of(key)))
            self.log.warning(
                "%s proved a newer node key: its %d older ones are refused now", name, len(retired)
            )
        return True

    def add_member(self: Any, member: Member) -> bool:
        """Link to a member admitted after the genesis (``member.admit``); False if already linked.

        Its node key joins the allow-list and, while the host is up, a supervisor
        starts dialling its address at once (as for every member from the start).
        """
        if member.name == self.me or member.name in self._links:
            return False
        link = MemberLink(member)
        self._links[member.name] = link
        self._order.append(member.name)
        self._member_keys = {**self._member_keys, member.name: [member.public_key]}
        self.allow_keys(self._member_keys)
        if self._host is not None and self._links_nursery is not None:
            link.budget = InboundBudget(self._rates, trio.current_time())
            self._links_nursery.start_soon(self._maintain, link)
        self.log.info("%s joined the consortium: linking to it at %s", member.name, member.address)
        return True

    def remove_member(self: Any, name: str) -> bool:
        """Let a removed member go (``member.remove``): its link and connections closed; False if unknown.

        Its node may still connect to fetch the blocks up to its removal (``let_go``).
        """
        link = self._drop_link(name)
        if link is None:
            return False
        gone = MemberLink(link.member)  # a fresh link: the dropped one's supervisor is stopping
        gone.retired = set(link.retired)
        gone.set_keys(link.keys or [link.member.public_key])
        self._keep_let_go(gone)
        self.log.warning(
            "%s was removed from the consortium: its links are closed; its node may fetch blocks "
            "up to its removal, nothing else",
            name,
        )
        return True

    def let_go(self: Any, member: Member, keys: list[bytes]) -> None:
        """Remember a member removed and let go before this node started (``keys``: newest first)."""
        link = MemberLink(member)
        link.set_keys(keys)
        self._keep_let_go(link)

    def stop_dialling(self: Any, name: str) -> bool:
        """Dial a removed member no more (``member.remove``); False if unknown or done already.

        Its link stays until it is let go: its node may still connect (it has not
        read its removal yet) and is answered as before.
        """
        link = self._links.get(name)
        if link is None or link.passive:
            return False
        link.passive = True
        self.log.info(
            "%s was removed from the consortium: this node dials it no more, and answers its node "
            "until it lets it go",
            name,
        )
        return True

    def leave(self: Any) -> None:
        """This node's own member was removed and the node read it: close every link, dial no one."""
        for name in list(self._links):
            self._drop_link(name)
        self.log.warning("this node's member was removed from the consortium: it links to no member now")

    def let_go_member(self: Any, peer_id: ID) -> str | None:
        """The removed member a connection's ``peer_id`` is, if it is one (``let_go``)."""
        link = self._let_go.get(peer_id)
        return link.member.name if link is not None else None

    def _drop_link(self: Any, name: str) -> MemberLink | None:
        link = self._links.pop(name, None)
        if link is None:
            return None
        link.removed = True  # its supervisor stops at its next turn
        link.dropped.set()
        self._order.remove(name)
        self._consensus_links = [other for other in self._consensus_links if other is not link]
        self._member_keys = {other: keys for other, keys in self._member_keys.items() if other != name}
        for peer_id in link.peer_ids:
            self._by_peer.pop(peer_id, None)
            if self._host is not None:
                trio.lowlevel.spawn_system_task(bounded, close_connections(self._host, peer_id))
        link.wake.set()
        return link

    def _keep_let_go(self: Any, link: MemberLink) -> None:
        link.let_go = link.passive = True
        for peer_id in link.peer_ids:
            self._let_go[peer_id] = link
            # Into pubsub's blacklist set, not through add_to_blacklist: its teardown drops the
            # peer's stream behind the router's back, which then still meshes it and loses
            # publishes (seen in the network tests). _drop_link's disconnect tears it down.
            if self._pubsub is not None:
                self._pubsub.blacklisted_peers.add(peer_id)
        link.budget = InboundBudget(LET_GO_RATES, trio.current_time() if self._host is not None else 0.0)
        if self._host is not None and self._links_nursery is not None:
            self._links_nursery.start_soon(self._maintain, link)

    def _let_go_links(self: Any) -> list[MemberLink]:
        """Each removed member let go once (``_let_go`` lists it under each of its PeerIDs)."""
        return list({id(link): link for link in self._let_go.values()}.values())

    async def _wait_for_its_dial(self: Any, link: MemberLink) -> bool:
        """A passive link: wait until the member's node connects (True) or the link is dropped (False)."""
        while not link.removed:
            for peer_id in link.peer_ids:
                connections = self._host.get_network().get_connections(peer_id)
                if any(not connection.is_closed for connection in connections):
                    link.peer_id = peer_id
                    return True
            await trio.sleep(PASSIVE_POLL_S)
        return False

    def _prepare_let_go(self: Any, pubsub: Any, now: float) -> None:
        """Before the host runs: removed members let go get no gossip, and a fresh request budget."""
        for peer_id, link in self._let_go.items():
            pubsub.blacklisted_peers.add(peer_id)
            link.budget = InboundBudget(LET_GO_RATES, now)

    def set_address(self: Any, name: str, address: str) -> bool:
        """Dial ``name`` at ``address`` from now on (``member.address``); False if unknown or unchanged.

        A link that is up stays up: only the next dial goes to the new address.
        """
        link = self._links.get(name)
        if link is None or str(link.maddr) == address:
            return False
        link.member = replace(link.member, address=address)
        link.maddr = multiaddr.Multiaddr(address)
        if self._host is not None:
            for peer_id in link.peer_ids:
                self._host.get_peerstore().clear_addrs(peer_id)
                self._host.get_peerstore().add_addrs(peer_id, [link.maddr], ADDR_TTL)
        self.log.warning("%s's node moved: dialling it at %s from now on", name, address)
        return True

    def allow_keys(self: Any, member_keys: dict[str, list[bytes]]) -> None:
        """Accept each member's PeerIDs of all its node keys (rotations), newest first for dialling."""
        self._member_keys = member_keys
        for name, link in self._links.items():
            for peer_id in link.set_keys(member_keys.get(name, [link.member.public_key])):
                self._by_peer[peer_id] = link
                if self._host is not None:
                    self._host.get_peerstore().add_addrs(peer_id, [link.maddr], ADDR_TTL)

    def _refused(self: Any, peer_id: ID, direction: str) -> None:
        self._counters["rejected_peers"] += 1
        self.log.warning("refused %s connection from non-member peer %s", direction, peer_id)
