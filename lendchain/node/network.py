"""The node's network layer: member-only libp2p host, consensus streams, requests, gossip.

Theory of operation. Every member runs one host whose PeerID is derived from
its node key; the members' keys are the allow-list (``network_members``),
enforced right after the Noise handshake (``network_host.MemberOnlyNoise``).
For each other member a supervisor task keeps one long-lived outbound stream
on ``/lendchain/consensus/1``, dialling the member's address with
backoff whenever there is no connection; a single writer drains that member's
bounded queue, many frames per write, so frames from this node to that member
arrive in order. The member's own outbound stream is our inbound one, read
by the stream handler. Idle links carry PINGs; a link silent for
``dead_after_s`` is treated as dead and its connection closed, which makes
both sides redial. A write that does not finish within ``write_timeout_s`` is
never cancelled half-way: the stream is reset instead and the link rebuilt.
Catch-up requests and transactions relayed to the primary (relay.py) use one
short stream each on ``/lendchain/request/1``.
Transactions travel on gossipsub (``network_gossip``, ``network_host.build_pubsub``).

Each member has an inbound budget (``network_link.InboundBudget``): consensus
frames and requests beyond ``peer_frames_per_s`` / ``peer_bytes_per_s`` are
read later rather than dropped, which pushes back on that member's stream alone, and
gossip it relays beyond ``peer_gossip_bytes_per_s`` is refused before any
decoding (its origin re-gossips what was lost). A flooding member thus costs
the others a bounded share of this node, and is named in the log and in
``member_stats``.

Members admitted after the genesis (``member.admit``) are added at run time
(``add_member``): their address comes from the admission on the ledger, and
a ``member.address`` change moves any member's (``set_address``). Nothing
here contacts an address that neither the genesis nor the ledger gives.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr
import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.tools.anyio_service import background_trio_service

from lendchain.crypto import SigningKey
from lendchain.genesis import Member
from lendchain.node.network_gossip import GossipSide
from lendchain.node.network_host import (
    build_host,
    build_pubsub,
    check_listen_address_free,
    close_connections,
    forget_closed_connections,
    listenable,
    peer_id_of,
    wrap_gossip,
)
from lendchain.node.network_inbound import InboundStreams
from lendchain.node.network_link import (
    NETWORK_COUNTERS,
    NETWORK_OPTIONS,
    InboundBudget,
    MemberLink,
    bounded,
    checked_options,
    quietly,
)
from lendchain.node.network_members import ADDR_TTL, MemberSet
from lendchain.node.network_mux import ReaderFirstYamux
from lendchain.node.network_wire import (
    FrameKind,
    FrameReader,
    WireError,
    encode_frame,
    encode_hello,
)

CONSENSUS_PROTOCOL = TProtocol("/lendchain/consensus/1")
REQUEST_PROTOCOL = TProtocol("/lendchain/request/1")


class NetworkError(Exception):
    """A network operation failed: unknown member, not connected, timeout, peer error."""


class Network(InboundStreams, GossipSide, MemberSet):
    def __init__(
        self,
        *,
        key: SigningKey,
        me: str,
        members: list[Member],
        listen: str,
        chain_id: str,
        on_frame: Callable[[str, bytes], None],
        on_request: Callable[[str, bytes], Awaitable[bytes]],
        validate_gossip: Callable[[bytes], bool],
        on_gossip: Callable[[bytes], None],
        log: logging.Logger,
        member_keys: dict[str, list[bytes]] | None = None,
        retired_keys: dict[str, list[bytes]] | None = None,
        on_retire: Callable[[str, list[bytes]], None] = lambda name, keys: None,
        **options: Any,
    ) -> None:
        self.options = checked_options(NETWORK_OPTIONS, options)
        by_name = {m.name: m for m in members}
        if len(by_name) != len(members):
            raise ValueError("member names must be unique")
        if me not in by_name:
            raise ValueError(f"{me!r} is not in the member list; the node key must belong to a member")
        self._member_keys = member_keys or {m.name: [m.public_key] for m in members}
        if key.public_key not in self._member_keys[me]:
            raise ValueError(f"the key given does not match {me}'s public key in the member list")
        self.key = key
        self.me = me
        self.chain_id = chain_id
        self.topic = f"lendchain/{chain_id}/txs/1"
        self._listen = multiaddr.Multiaddr(listen or by_name[me].address)
        self._on_frame = on_frame
        self._on_request = on_request
        self._validate_gossip = validate_gossip
        self._on_gossip = on_gossip
        self.log = log
        self.my_peer_id = peer_id_of(key.public_key)
        self._links: dict[str, MemberLink] = {m.name: MemberLink(m) for m in members if m.name != me}
        self._order = [m.name for m in members]
        self._consensus_links = [link for link in self._links.values() if link.member.voting]
        self._by_peer: dict[ID, MemberLink] = {}
        self._let_go: dict[ID, MemberLink] = {}  # removed members' PeerIDs (``MemberSet.let_go``)
        self._host, self._pubsub, self._router = None, None, None
        self._links_nursery: trio.Nursery | None = None  # where each link's supervisor runs
        self._rates: dict[str, tuple[float, float]] = {}
        self._on_retire = on_retire
        self._next_key: SigningKey | None = None  # set by ``rekey`` until the host on it is up
        self._next_listen: multiaddr.Multiaddr | None = None  # set by ``relisten`` likewise
        self._identity_scope: trio.CancelScope | None = None
        for name, keys in (retired_keys or {}).items():
            if name in self._links:
                self._links[name].retired.update(keys)
        self.allow_keys(self._member_keys)
        self._counters: dict[str, int] = dict.fromkeys(NETWORK_COUNTERS, 0)

    # -- public API ------------------------------------------------------------------

    def send(self, to: str, payload: bytes) -> bool:
        """Queue one consensus frame for ``to``; False when unknown, not connected or full."""
        link = self._links.get(to)
        if link is None or not link.up:
            return False
        return self._enqueue(link, payload)

    def send_unchecked(self, to: str, payload: bytes) -> bool:
        """``send`` without the size check: only a test's Byzantine member uses it."""
        link = self._links.get(to)
        return link is not None and link.up and link.enqueue(payload, self.options["queue_frames"])

    def broadcast(self, payload: bytes) -> None:
        """Queue one consensus frame for every connected consensus peer (``set_consensus_peers``)."""
        for link in self._consensus_links:
            if link.up:
                self._enqueue(link, payload)

    def set_consensus_peers(self, names: set[str]) -> None:
        """Who ``broadcast`` reaches: the other voting members (genesis voters until set)."""
        self._consensus_links = [link for name, link in self._links.items() if name in names]

    async def request(self, to: str, payload: bytes, timeout_s: float) -> bytes:
        """Ask ``to`` (e.g. for blocks) and return its answer; NetworkError on any failure."""
        link = self._links.get(to)
        if link is None:
            raise NetworkError(f"cannot send a request to {to!r}: not a member")
        self._check_size(payload, "request")
        if self._host is None or not self._connected(link):
            raise NetworkError(f"cannot send a request to {to}: not connected")
        self._counters["requests_out"] += 1
        stream: INetStream | None = None
        try:
            with trio.fail_after(timeout_s):
                stream = await self._host.new_stream(link.peer_id, [REQUEST_PROTOCOL])
                await stream.write(encode_frame(FrameKind.REQUEST, payload))
                kind, answer = await FrameReader(stream, self.options["max_frame_size"]).read_frame()
        except trio.TooSlowError:
            raise NetworkError(f"request to {to} timed out after {timeout_s} s") from None
        except (WireError, EOFError) as e:
            raise NetworkError(f"request to {to} failed: {e}") from None
        except Exception as e:  # libp2p raises many unrelated types for a broken stream
            raise NetworkError(f"request to {to} failed: {type(e).__name__}: {e}") from None
        finally:
            if stream is not None:
                await quietly(stream.reset())
        # An answer is a sign of life: a member that stopped linking to us (it let this node's
        # removed member go) but answers its catch-up does not get its connection dropped.
        link.last_heard = trio.current_time()
        if kind is FrameKind.ERROR:
            raise NetworkError(f"{to} could not answer the request: {answer.decode(errors='replace')}")
        if kind is not FrameKind.RESPONSE:
            raise NetworkError(f"{to} answered a request with a {kind.name} frame")
        return answer

    async def publish(self, data: bytes) -> None:
        """Gossip ``data`` (a batch of transactions) to every member."""
        if len(data) > self.options["max_gossip_size"]:
            raise ValueError(
                f"gossip message of {len(data)} bytes exceeds max_gossip_size "
                f"{self.options['max_gossip_size']}; split the batch"
            )
        if self._pubsub is None or self._router is None or self._moving:
            raise NetworkError(
                "cannot publish: the network is not running (or moving to a new key or address)"
            )
        try:
            await self._pubsub.publish(
                self.topic, wrap_gossip(self._router.publish_targets(self.topic), data)
            )
        except Exception as e:
            if self._moving:  # the pubsub closed under it
                raise NetworkError(
                    f"cannot publish while the host moves to a new key or address: {e}"
                ) from None
            raise
        self._counters["gossip_out"] += 1

    def connected_members(self) -> set[str]:
        """The members our consensus link to is up."""
        return {name for name, link in self._links.items() if link.up}

    def reachable_members(self) -> set[str]:
        """The members we have a connection to: enough for a request, with or without a link up."""
        if self._host is None:
            return set()
        return {name for name, link in self._links.items() if self._connected(link)}

    def member_names(self) -> list[str]:
        """Every member this node links to, and itself: the genesis's in order, then admitted ones."""
        return [*self._order]

    def stats(self) -> dict[str, int | float]:
        # A removed member's link (not let go yet) counts in neither: this node no longer dials it.
        members = [link for link in self._links.values() if not link.passive]
        return {
            **self._counters,
            "connected": sum(link.up for link in members),
            "members": len(members),  # the other consortium nodes: all connected when healthy
            "queued": sum(len(link.queue) for link in self._links.values()),
            "gossip_peers": len(self.gossip_members()),
            "yamux_replies_queued": ReaderFirstYamux.queued_total,
        }

    def member_stats(self) -> dict[str, dict[str, int]]:
        """Per member: how often its inbound budget was exceeded, by unit."""
        return {
            name: dict(link.budget.throttled) if link.budget else {} for name, link in self._links.items()
        }

    def gossip_members(self) -> set[str]:
        """Members in this node's gossip mesh for the transaction topic."""
        if self._router is None:
            return set()
        mesh = self._router.mesh.get(self.topic, ())
        return {self._by_peer[pid].member.name for pid in mesh if pid in self._by_peer}

    @property
    def peer_id(self) -> str:
        return self.my_peer_id.to_base58()

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen, keep every member connected, serve streams and gossip until cancelled.

        ``rekey`` ends the host of the current key; the loop then brings one up
        on the new key, on the same address, with the same member links.
        ``relisten`` does the same to move to another address.
        """
        started: Any = task_status
        while True:
            if self._next_key is not None:
                old, self.key, self._next_key = self.my_peer_id, self._next_key, None
                self.my_peer_id = peer_id_of(self.key.public_key)
                self.log.warning(
                    "network identity moves to the rotated node key: %s -> %s", old, self.peer_id
                )
                await self._wait_listen_address_free()
            if self._next_listen is not None:
                old_listen, self._listen, self._next_listen = self._listen, self._next_listen, None
                self.log.warning("p2p listening moves from %s to %s", old_listen, self._listen)
            with trio.CancelScope() as self._identity_scope:
                await self._run_host(started)
            started = trio.TASK_STATUS_IGNORED
            if self._next_key is None and self._next_listen is None:
                return

    @property
    def _moving(self) -> bool:
        """Whether the host is closing to come back on a rotated key or another address (``rekey``, ``relisten``)."""
        return self._identity_scope is not None and self._identity_scope.cancel_called

    def rekey(self, key: SigningKey) -> None:
        """Move this node's network identity (its PeerID) to ``key``, one of its member keys.

        The host of the old key closes, and one on ``key`` comes up at once:
        peers see this member on its new key and retire the old one, with no
        process restart. Links drop for the moment that takes; queued frames wait.
        """
        if key.public_key not in self._member_keys.get(self.me, ()):
            raise ValueError(f"the key given is not one of {self.me}'s node keys on the ledger")
        if key.public_key == self.key.public_key:
            return
        self._next_key = key
        if self._identity_scope is not None:
            self._identity_scope.cancel()

    def relisten(self, address: str) -> bool:
        """Listen on ``address`` instead (this member's node moved: ``member.address``); False if it does.

        The host closes and one on ``address`` comes up at once, with the same
        key and links, as for ``rekey``. OSError, and nothing changes, when
        ``address`` cannot be listened on here (another machine's, or taken).
        """
        maddr = multiaddr.Multiaddr(address)
        if maddr == self._listen:
            return False
        if not listenable(maddr):
            raise OSError(f"{address} is no IP address and TCP port to listen on")
        check_listen_address_free(maddr)
        self._next_listen = maddr
        if self._identity_scope is not None:
            self._identity_scope.cancel()
        return True

    @property
    def listen_address(self) -> str:
        """Where this node listens now (or will, once a ``relisten`` is done)."""
        return str(self._next_listen or self._listen)

    async def _wait_listen_address_free(self) -> None:
        """Wait (briefly) for the closed host's listener to let go of the port."""
        for _ in range(50):
            try:
                check_listen_address_free(self._listen)
                return
            except OSError:
                await trio.sleep(0.1)

    async def _run_host(self, task_status: Any) -> None:
        try:
            check_listen_address_free(self._listen)
        except OSError as e:
            raise NetworkError(
                f"cannot listen on {self._listen}: is the port already in use? ({e})"
            ) from None
        host = build_host(self.key, self._listen, self._is_member, self._refused)
        pubsub, router = build_pubsub(
            host,
            heartbeat_s=self.options["gossip_heartbeat_s"],
            max_message_size=self.options["max_gossip_size"],
            deliver=self._deliver_gossip,
        )
        self._unwrap = router.unwrapped
        o = self.options
        self._rates = {
            "frames": (o["peer_frames_per_s"], o["peer_frames_burst"]),
            "bytes": (o["peer_bytes_per_s"], o["peer_bytes_burst"]),
            "gossip_bytes": (o["peer_gossip_bytes_per_s"], o["peer_gossip_bytes_burst"]),
        }
        for link in self._links.values():
            for peer_id in link.peer_ids:
                host.get_peerstore().add_addrs(peer_id, [link.maddr], ADDR_TTL)
            link.budget = InboundBudget(self._rates, trio.current_time())
        self._prepare_let_go(pubsub, trio.current_time())
        host.set_stream_handler(CONSENSUS_PROTOCOL, self._handle_consensus_stream)
        host.set_stream_handler(REQUEST_PROTOCOL, self._handle_request_stream)
        async with host.run(listen_addrs=[self._listen]):
            if str(self._listen) not in host.get_network().listeners:
                raise NetworkError(f"cannot listen on {self._listen}: is the port already in use?")
            async with background_trio_service(pubsub), background_trio_service(router):
                await pubsub.wait_until_ready()
                pubsub.set_topic_validator(self.topic, self._gossip_validator, is_async_validator=False)
                await pubsub.subscribe(self.topic)
                self._host, self._pubsub, self._router = host, pubsub, router
                try:
                    async with trio.open_nursery() as nursery:
                        self._links_nursery = nursery
                        for link in [*self._links.values(), *self._let_go_links()]:
                            nursery.start_soon(self._maintain, link)
                        nursery.start_soon(self._repair_gossip)
                        self.log.info("p2p listening on %s as %s", self._listen, self.peer_id)
                        task_status.started()
                finally:
                    self._host = self._pubsub = self._router = self._links_nursery = None
                    # py-libp2p's own shutdown closes listeners and connections from a
                    # cancelled scope, so the closes are abandoned: the port stays bound
                    # and peers keep half-dead connections. Close them here, shielded.
                    swarm = host.get_network()
                    for listener in list(swarm.listeners.values()):
                        await bounded(listener.close())
                    for link in list(self._links.values()):  # a disconnect yields: members may change
                        await bounded(close_connections(host, link.peer_id))
                    for link in [*self._links.values(), *self._let_go_links()]:
                        link.up = False

    def _connected(self, link: MemberLink) -> bool:
        assert self._host is not None
        return any(not conn.is_closed for conn in self._host.get_network().get_connections(link.peer_id))

    # -- outbound: one supervisor per member -------------------------------------------

    def _enqueue(self, link: MemberLink, payload: bytes) -> bool:
        self._check_size(payload, "frame")
        if not link.enqueue(payload, self.options["queue_frames"]):
            self._counters["dropped"] += 1
            return False
        return True

    def _check_size(self, payload: bytes, what: str) -> None:
        if len(payload) > self.options["max_frame_size"]:
            raise ValueError(
                f"{what} of {len(payload)} bytes exceeds max_frame_size {self.options['max_frame_size']}"
            )

    async def _maintain(self, link: MemberLink) -> None:
        """Keep one outbound consensus stream to ``link``'s member, redialling with backoff.

        A passive link (a removed member's) dials no one: it opens its stream over
        a connection the member's node made, whenever there is one.
        """
        assert self._host is not None
        host = self._host
        delay = self.options["redial_min_s"]
        ever_up = False
        while not link.removed:
            if link.passive and not await self._wait_for_its_dial(link):
                break
            # Both members dialling each other at once leaves two connections, and
            # py-libp2p's pubsub then sometimes loses a subscription on one of them. The
            # member with the larger PeerID (the current one of each: keys rotate) gives
            # the other a head start.
            dials_second = self.my_peer_id.to_bytes() > link.peer_id.to_bytes()
            if dials_second and link.failed_dials == 0 and not self._connected(link):
                with trio.move_on_after(self.options["dial_grace_s"]):
                    while not self._connected(link):
                        await trio.sleep(0.02)
            try:
                with trio.fail_after(self.options["dial_timeout_s"]):
                    if not self._connected(link) and link.passive:
                        continue  # its node's connection went before our stream opened: wait again
                    if not self._connected(link):
                        # A failed dial puts the peer in a 60 s negative cache; a member is
                        # always worth another try.
                        host.get_network().unblock_peer(link.peer_id)
                        # Dial the member's address on the chain only, whatever else the peerstore learned.
                        host.get_peerstore().clear_addrs(link.peer_id)
                        host.get_peerstore().add_addrs(link.peer_id, [link.maddr], ADDR_TTL)
                        if forget_closed_connections(host, link.peer_id):
                            self._counters["stuck_closes"] += 1
                        await host.connect(PeerInfo(link.peer_id, [link.maddr]))
                    stream = await host.new_stream(link.peer_id, [CONSENSUS_PROTOCOL])
            except Exception as e:  # trio.TooSlowError, SwarmException, stream negotiation errors
                # A connection that cannot open a stream is half-dead (e.g. the peer
                # vanished without closing it): drop it so the next attempt dials afresh.
                await bounded(close_connections(host, link.peer_id))
                link.failed_dials += 1
                link.try_next_peer_id()
                n = link.failed_dials
                noted = not link.passive and (n in (1, 10) or n % 100 == 0)  # passive: its node went
                log = self.log.info if noted else self.log.debug
                log("cannot reach %s at %s (attempt %d): %s", link.member.name, link.maddr, n, e)
                await trio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.options["redial_max_s"])
                continue
            if ever_up and not link.passive:
                self._counters["reconnects"] += 1
            ever_up = True
            link.failed_dials = 0
            delay = self.options["redial_min_s"]
            self.log.info("link to %s up", link.member.name)
            reason = await self._run_link(link, stream)
            link.up = False
            # It may come back on its newest key (a rotation moves it there): try that first,
            # so both sides agree on who dials second (a failed dial falls back to the others).
            link.peer_id = link.peer_ids[0]
            self.log.info("link to %s down: %s", link.member.name, reason)
            await trio.sleep(delay)

    async def _run_link(self, link: MemberLink, stream: INetStream) -> str:
        """Write ``link``'s queue to ``stream`` until it breaks; returns why it ended."""
        reason = "cancelled"

        async def writer() -> None:
            nonlocal reason
            try:
                await link.write_loop(
                    stream,
                    encode_hello(self.chain_id, self.me),
                    self.options["ping_interval_s"],
                    self.options["batch_bytes"],
                    self._counters,
                )
            except Exception as e:
                reason = f"write failed: {type(e).__name__}: {e}"
            nursery.cancel_scope.cancel()

        async def watchdog() -> None:
            nonlocal reason
            write_timeout_s, dead_after_s = self.options["write_timeout_s"], self.options["dead_after_s"]
            while True:
                if link.removed:
                    reason = "the member was removed"
                    break
                now = trio.current_time()
                started = link.write_started
                if started is not None and now - started > write_timeout_s:
                    reason = f"write stalled for {now - started:.1f} s; connection closed"
                    break
                if link.up and now - link.last_heard > dead_after_s:
                    reason = f"nothing heard for {now - link.last_heard:.1f} s; connection closed"
                    break
                # Sleep until the first moment either check could hold (a write begun or a
                # frame heard meanwhile only moves that later), not in polls: with nine
                # links a 0.25 s poll woke an idle node 36 times a second.
                due = min(
                    (now if started is None else started) + write_timeout_s, link.last_heard + dead_after_s
                )
                if not link.up:
                    due = now + min(0.25, self.options["ping_interval_s"])  # the dead check starts at ``up``
                with trio.move_on_at(due):
                    await link.dropped.wait()
            nursery.cancel_scope.cancel()
            await bounded(close_connections(self._host, link.peer_id))

        link.last_heard = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            nursery.start_soon(watchdog)
        await bounded(stream.reset())
        return reason
