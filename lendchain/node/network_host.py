"""Building the py-libp2p host and gossipsub router for a closed consortium.

Owns the libp2p-specific configuration so that ``network.py`` reads as
lendchain logic: the identity comes from the member's Ed25519 seed (so every
PeerID is computable from the genesis), security is Noise only (the library
default would also offer plaintext, which proves nothing), a Noise subclass
refuses non-member PeerIDs right after the handshake (py-libp2p has no PeerID
gater), and gossipsub is tuned for ≤ 16 known peers on a permissioned network.

Gossip relays. On a consortium every member keeps a link to every other, and
the mesh is full, so a publisher's own sends reach everyone; gossipsub would
still have every receiver relay the message to every other member, (n-1)(n-2)
copies in all where n-1 do (12 of 3 at n = 4, 72 of 9 at n = 10), each one
decrypted, parsed and hashed before it is dropped as seen. So each message
names the peers its publisher sent it to (``wrap_gossip``), and
``MemberGossipSub`` relays only to mesh peers not on that list: none while
every link is up, the cut-off ones when a link is down. The list is inside the
publisher's signature, so a relay cannot shorten it; a publisher that lies
about it only slows its own transactions, which it re-gossips anyway.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream, IRawConnection, ISecureConn
from libp2p.crypto.ed25519 import Ed25519PublicKey
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.exceptions import ParseError
from libp2p.identity_utils import create_identity_from_seed
from libp2p.io.exceptions import IncompleteReadError
from libp2p.network.config import RetryConfig
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.pubsub import pubsub as _pubsub_module
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import RpcQueue
from libp2p.security.exceptions import HandshakeFailure
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.utils.varint import encode_varint_prefixed, read_varint_prefixed_bytes_limited

from lendchain import codec
from lendchain.bounded import BoundedCache
from lendchain.crypto import SigningKey
from lendchain.node import network_records
from lendchain.node.network_mux import ReaderFirstYamux

# A full mesh up to 12 other members: the publisher reaches everyone itself (see MemberGossipSub).
# Not sized by the genesis's member count: members admitted later (member.admit) need room too.
# A mesh sized for a 2-member genesis held one peer: an admitted member could take the other
# member's place in it, and once the admitted one was removed, gossip between the two did not
# come back within 30 s (tests/network/test_network.py, the let-go test).
MESH_DEGREE = 12

# How fast a removed member's node may talk on its pubsub stream (``DeliveringPubsub._hear_out``).
HEAR_OUT_BYTES_PER_S = 64 * 1024

# py-libp2p 0.8.1 creates each peer's outbound pubsub queue as ``RpcQueue()``
# with room for 32 RPCs and drops the rest silently; the class name is looked
# up in the pubsub module at that moment, so a roomier subclass placed there
# raises the limit for every Pubsub in this process (only ours exist).
PUBSUB_PEER_QUEUE = 1024


class _RoomyRpcQueue(RpcQueue):
    # Outbound RPCs above this are dropped silently (1 MiB by default); raised to
    # the largest max_gossip_size of any network built in this process.
    max_rpc_bytes = 1024 * 1024

    def __init__(self, max_size: int = PUBSUB_PEER_QUEUE, **kwargs) -> None:
        kwargs.setdefault("max_message_size", self.max_rpc_bytes)
        super().__init__(max_size, **kwargs)


_pubsub_module.RpcQueue = _RoomyRpcQueue  # type: ignore[misc]
network_records.install()  # the signed peer record of every pubsub RPC, made and checked once


class _DropDialErrors(logging.Filter):
    """libp2p logs every failed TCP dial at ERROR (to stderr, through logging's last
    resort handler); the network layer redials members every few seconds and logs
    reachability itself, so these lines are only noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to open TCP stream")


logging.getLogger("libp2p.transport.tcp.tcp").addFilter(_DropDialErrors())


def listenable(address: multiaddr.Multiaddr) -> bool:
    """Whether a host can listen on ``address``'s form: an IP address and a TCP port (not a DNS name)."""
    protocols = {p.name for p in address.protocols()}
    return "tcp" in protocols and bool(protocols & {"ip4", "ip6"})


def check_listen_address_free(listen: multiaddr.Multiaddr) -> None:
    """Raise OSError when another socket already listens on ``listen``'s TCP port.

    py-libp2p 0.8.1 listens with SO_REUSEPORT (for hole punching), so a second
    node on a busy port would start without error and the kernel would split
    incoming connections between the two. A bind without SO_REUSEPORT finds it.
    """
    protocols = {p.name for p in listen.protocols()}
    if "tcp" not in protocols:
        return
    family, host = (
        (socket.AF_INET6, listen.value_for_protocol("ip6"))
        if "ip6" in protocols
        else (socket.AF_INET, listen.value_for_protocol("ip4"))
    )
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR ignores connections in TIME_WAIT (a node restarted on its port)
        # but still fails against a listening socket, which is what we look for.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, int(listen.value_for_protocol("tcp"))))


def peer_id_of(public_key: bytes) -> ID:
    """The libp2p PeerID of a member, from its 32-byte Ed25519 genesis public key."""
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(public_key))


class MemberOnlyNoise(NoiseTransport):
    """Noise XX that refuses a peer whose authenticated PeerID is not a member.

    The check runs after the handshake proved the remote holds its key and
    before the muxer, identify or any lendchain protocol sees the connection.
    """

    def __init__(
        self, key_pair, is_member: Callable[[ID], bool], on_refused: Callable[[ID, str], None]
    ) -> None:
        super().__init__(key_pair, noise_privkey=create_x25519_key_pair().private_key)
        self._is_member = is_member
        self._on_refused = on_refused

    async def _gate(self, secure_conn: ISecureConn, direction: str) -> ISecureConn:
        remote = secure_conn.get_remote_peer()
        if not self._is_member(remote):
            self._on_refused(remote, direction)
            await secure_conn.close()
            raise HandshakeFailure(f"peer {remote} is not a member of this consortium")
        return secure_conn

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        try:
            secured = await super().secure_inbound(conn)
        except HandshakeFailure as e:
            _handshake_log.info("inbound Noise handshake failed: %s", _cause(e))
            raise
        return await self._gate(secured, "inbound")

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        try:
            secured = await super().secure_outbound(conn, peer_id)
        except HandshakeFailure as e:
            _handshake_log.info("outbound Noise handshake with %s failed: %s", peer_id, _cause(e))
            raise
        return await self._gate(secured, "outbound")


# py-libp2p reports a failed handshake without its reason; this says which step failed.
_handshake_log = logging.getLogger("lendchain.network.handshake")


def _cause(error: BaseException) -> str:
    causes = []
    while error is not None and len(causes) < 4:
        causes.append(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        error = error.__cause__ or error.__context__
    return " <- ".join(causes)


def build_host(
    key: SigningKey,
    listen: multiaddr.Multiaddr,
    is_member: Callable[[ID], bool],
    on_refused: Callable[[ID, str], None],
) -> IHost:
    key_pair = create_identity_from_seed(key.seed)
    host = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: MemberOnlyNoise(key_pair, is_member, on_refused)},
        muxer_opt={YAMUX_PROTOCOL_ID: ReaderFirstYamux},
        listen_addrs=[listen],
        enable_mDNS=False,
        enable_upnp=False,
        bootstrap=None,
    )
    # A member's address is the one the genesis or the ledger gives. py-libp2p's pubsub would
    # otherwise replace a peer's addresses with those of the signed peer record every RPC carries, which on a
    # node listening on 0.0.0.0 name its own wildcard address: dialling that peer then reached
    # the dialler itself (Noise: PeerIDMismatchesPubkey) and, after a partition, never healed.
    host.get_peerstore().consume_peer_record = network_records.keep_genesis_addresses  # type: ignore[method-assign]
    swarm = host.get_network()
    # The swarm's auto-connector dials any peer in the peerstore (including
    # addresses learned through identify) to reach 150+ connections; members are
    # dialled by the network layer, at the addresses the genesis or the ledger gives only.
    swarm.auto_connector.maybe_connect = _never_auto_connect  # type: ignore[method-assign]
    # Each dial retries 3 times with its own backoff; the network layer has its own.
    swarm.retry_config = RetryConfig(max_retries=0)
    return host


async def close_connections(host: IHost, peer_id: ID) -> None:
    """Close every connection to ``peer_id`` that the swarm lists now.

    Not ``host.disconnect``: py-libp2p 0.8.1's ``Swarm.close_peer`` closes the
    connections it listed, then forgets every connection of the peer, a new one
    included that the peer dialled while those closed (members redial within
    0.1 s). That one goes on carrying streams, but the swarm no longer lists it:
    nothing can close it, pubsub never hears it closed, and the node counts the
    member as not connected (seen when the gossip repair reconnected a member:
    its subscription never came back). A connection closed here leaves the
    swarm's list by itself.
    """
    for connection in host.get_network().get_connections(peer_id):
        try:
            await connection.close()
        except Exception:  # one that fails to close is gone or going; close the others
            pass


def forget_closed_connections(host: IHost, peer_id: ID) -> int:
    """Drop from the swarm's list the connections to ``peer_id`` that are closed but still listed.

    py-libp2p 0.8.1's ``SwarmConn.close`` marks a connection closed at once,
    then closes its muxer (a yamux GO_AWAY written to the socket) and only
    after that takes it off the swarm's list. When the peer reads nothing (its
    link to us timed out: it went silent under load, or the connection is
    stuck), that write can wait for many seconds, and meanwhile
    ``BasicHost.connect`` sees a connection listed and does not dial, while
    ``new_stream`` finds none open: "No valid connections available", dial
    after dial (seen in the network benchmark: a primary and a backup could
    not reconnect for the run's last 16 s). The close goes on in its own task
    and takes the connection off the list again when it ends, harmlessly.
    Returns how many were dropped.
    """
    swarm = host.get_network()
    closed = [conn for conn in swarm.get_connections(peer_id) if conn.is_closed]
    for conn in closed:
        swarm.remove_conn(conn)
    return len(closed)


async def _never_auto_connect() -> None:
    return None


def content_message_id(msg: rpc_pb2.Message) -> bytes:
    """Gossip message id = hash of publisher, seqno and data.

    A message relayed along several paths keeps all three, so it is recognised
    as one. A node that publishes the same batch again (re-gossip of txs not yet
    committed) uses a new seqno, so peers that lost the first copy after marking
    it seen still take the second; the data in the hash keeps a restarted node's
    reused seqno (see ``build_pubsub``) from ever colliding with an old message.
    """
    h = hashlib.sha256()
    for part in (msg.from_id, msg.seqno, msg.data):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


class MessageIds:
    """``content_message_id`` hashed once per message object, for pubsub's ``msg_id_constructor``.

    Pubsub asks for a received message's id five times (seen already?, its
    validation cache, marking it seen, and ``MemberGossipSub.publish`` and
    gossipsub's ``publish``), and for a message this node publishes four times;
    each hashes all of its data, ~56 KiB for a full gossip message (~50 µs
    here). Keyed by ``id(msg)`` as ``MemberGossipSub.unwrapped`` is: the entry
    holds the message, so its id is not reused while the entry lives, and the
    identity check refuses any other message. A message is not changed after
    pubsub first asks for its id (its publisher sets all three parts before).
    """

    MEMORY = 64

    def __init__(self) -> None:
        self._ids: BoundedCache[int, tuple[rpc_pb2.Message, bytes]] = BoundedCache(self.MEMORY)

    def __call__(self, msg: rpc_pb2.Message) -> bytes:
        entry = self._ids.get(id(msg))
        if entry is None or entry[0] is not msg:
            entry = (msg, content_message_id(msg))
            self._ids.put(id(msg), entry)
        return entry[1]


def wrap_gossip(sent_to: Iterable[ID], payload: bytes) -> bytes:
    """The gossip message data: the peers the publisher sends it to, and the payload."""
    return codec.pack([sorted(peer.to_bytes() for peer in sent_to), payload])


def unwrap_gossip(data: bytes, max_size: int) -> tuple[list[bytes], bytes]:
    """``(sent_to, payload)``; raises ``ValueError`` for anything else."""
    try:
        value = codec.unpack(data, max_size=max_size)
    except codec.CodecError as e:
        raise ValueError(f"gossip message does not decode: {e}") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], list)
        or not all(isinstance(peer, bytes) for peer in value[0])
        or not isinstance(value[1], bytes)
    ):
        raise ValueError("gossip message is not [sent_to, payload]")
    return value[0], value[1]


class MemberGossipSub(GossipSub):
    """Gossipsub that relays a message only to the peers its publisher did not send it to."""

    max_message_size = 1 << 20
    # Messages between validation and relay: validator, delivery and relay unwrap each once.
    UNWRAPPED_MEMORY = 64

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._reached: dict[bytes, set[ID]] = {}
        self._unwrapped: BoundedCache[int, tuple[rpc_pb2.Message, list[bytes], bytes]] = BoundedCache(
            self.UNWRAPPED_MEMORY
        )

    def unwrapped(self, msg: rpc_pb2.Message) -> tuple[list[bytes], bytes]:
        """``unwrap_gossip`` of ``msg.data``, done once per message object.

        Pubsub hands one message object to the topic validator, the delivery
        and the relay in turn. Keyed by ``id(msg)``: the entry holds the
        message, so the id cannot be reused while the entry lives, and the
        identity check refuses any other message.
        """
        entry = self._unwrapped.get(id(msg))
        if entry is None or entry[0] is not msg:
            sent_to, payload = unwrap_gossip(msg.data, self.max_message_size)
            entry = (msg, sent_to, payload)
            self._unwrapped.put(id(msg), entry)
        return entry[1], entry[2]

    async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
        if self.pubsub is None or msg_forwarder == self.pubsub.my_id:
            await super().publish(msg_forwarder, pubsub_msg)
            return
        try:
            sent_to, _ = self.unwrapped(pubsub_msg)
            reached = {ID(peer) for peer in sent_to}
        except ValueError:
            reached = set()  # the validator refuses such a message before it gets here
        msg_id = self.pubsub.get_message_id(pubsub_msg)
        self._reached[msg_id] = reached
        try:
            await super().publish(msg_forwarder, pubsub_msg)
        finally:
            self._reached.pop(msg_id, None)

    def _get_peers_to_send(
        self, topic_ids: Iterable[str], msg_forwarder: ID, origin: ID, msg_id: bytes | None = None
    ) -> Iterator[ID]:
        reached = self._reached.get(msg_id, ()) if msg_id is not None else ()
        for peer in super()._get_peers_to_send(topic_ids, msg_forwarder, origin, msg_id):
            if peer not in reached:
                yield peer

    def publish_targets(self, topic: str) -> set[ID]:
        """The peers a message published now on ``topic`` goes to directly."""
        if self.pubsub is None:
            return set()
        return {peer for peer in self.mesh.get(topic, ()) if peer in self.pubsub.peers}


class DeliveringPubsub(Pubsub):
    """Pubsub that hands validated messages straight to a callback.

    The stock subscription channel holds 32 messages and drops the rest with a
    warning each; our callback is synchronous and never blocks, so it is called
    in place of the channel.
    """

    deliver: Callable[[rpc_pb2.Message], None] = staticmethod(lambda msg: None)  # type: ignore[assignment]

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        if any(topic in self.topic_ids for topic in publish_message.topicIDs):
            self.deliver(publish_message)

    async def stream_handler(self, stream: INetStream) -> None:
        """Read a peer's pubsub stream; a blacklisted peer's (a removed member's node) is heard out.

        The stock handler reads a blacklisted peer's stream as any other: its
        subscriptions would put the peer in the topic's peers, the router could
        mesh it, and what we publish to the mesh would go nowhere.
        """
        peer_id = stream.muxed_conn.peer_id
        if self.is_peer_blacklisted(peer_id):
            await self._hear_out(stream)
            return
        try:
            await self.continuously_read_stream(stream)
        except (StreamError, ParseError, IncompleteReadError):
            await stream.reset()
            # Its connection closed: the disconnect notice forgets the peer if it has no other
            # connection. Forgetting it here (as the stock handler does) would also drop what
            # it announced on a newer connection, and it announces that only once.
            if not self._on_closed_connection(stream):
                self._handle_dead_peer(peer_id)

    async def _hear_out(self, stream: INetStream) -> None:
        """Read a blacklisted peer's pubsub stream and drop what it says, at most ``HEAR_OUT_BYTES_PER_S``.

        It is also told our subscriptions, on a stream of ours that carries
        nothing else. Its node may not know yet that its member was removed (it
        fetches its blocks up to the removal); were its streams reset, or were it
        never told that we subscribe, it would take the silence for a lost
        subscription and reconnect again and again (``Network._repair_gossip``).
        Nothing is published to it: it is in no mesh of ours.
        """
        peer_id = stream.muxed_conn.peer_id
        ours: INetStream | None = None
        try:
            ours = await self.host.new_stream(peer_id, self.protocols)
            await ours.write(encode_varint_prefixed(self.get_hello_packet().SerializeToString()))
            while True:
                said = await read_varint_prefixed_bytes_limited(stream, self.max_inbound_rpc_size)
                await trio.sleep(len(said) / HEAR_OUT_BYTES_PER_S)
        except Exception:  # its connection closed, or it sent something unreadable
            pass
        finally:
            for each in (stream, ours):
                if each is not None:
                    with trio.move_on_after(1.0) as scope:
                        scope.shield = True
                        try:
                            await each.reset()
                        except Exception:
                            pass

    async def _handle_new_peer(self, peer_id: ID) -> None:
        """Open our stream to a peer that connected, first dropping one left on a closed connection.

        py-libp2p 0.8.1 hears a connection closed 0.1 s late, and then only if
        the peer has no other: a member that redials at once (every member
        does) is connected again by then, so its old stream stays registered,
        the stock handler skips the new connection as "already has a pubsub
        stream", and neither side sends the other its subscriptions: gossip
        between the two stops. Dropping the stale stream (not the peer's
        subscriptions: it re-announces them on its new stream) lets the hello
        go out on the new connection.
        """
        if self._stale(peer_id):
            del self.peers[peer_id]
            queue = self.peer_queues.pop(peer_id, None)
            if queue is not None:
                queue.close()
            self.router.remove_peer(peer_id)
        await super()._handle_new_peer(peer_id)

    def _stale(self, peer_id: ID) -> bool:
        """Whether our registered stream to ``peer_id`` rides on a connection that closed."""
        stream = self.peers.get(peer_id)
        return stream is not None and self._on_closed_connection(stream)

    @staticmethod
    def _on_closed_connection(stream: INetStream) -> bool:
        return bool(getattr(stream.muxed_conn, "is_closed", False))


def build_pubsub(
    host: IHost,
    heartbeat_s: float,
    max_message_size: int,
    deliver: Callable[[rpc_pb2.Message], None],
) -> tuple[DeliveringPubsub, MemberGossipSub]:
    """A gossipsub router for a closed network of up to ``MESH_DEGREE`` + 1 members."""
    max_rpc_bytes = max_message_size + 64 * 1024  # room for the signed envelope and peer record
    _RoomyRpcQueue.max_rpc_bytes = max(_RoomyRpcQueue.max_rpc_bytes, max_rpc_bytes)
    degree = MESH_DEGREE
    router = MemberGossipSub(
        protocols=[PROTOCOL_ID_V11],
        degree=degree,
        degree_low=max(1, degree - 2),
        degree_high=degree,
        time_to_live=30,
        # IHAVE gossip covers ~2 s of history at the short heartbeat.
        gossip_window=max(3, int(2.0 / heartbeat_s)),
        gossip_history=max(5, int(4.0 / heartbeat_s)),
        heartbeat_initial_delay=0.05,
        heartbeat_interval=heartbeat_s,  # type: ignore[arg-type]  # trio.sleep takes floats
        prune_back_off=5,
        unsubscribe_back_off=2,
        # Defaults meant for open networks that break a small closed one: the
        # adaptive mode stretches the heartbeat to 30-60 s, spam protection drops
        # more than 10 messages/s per peer, eclipse protection wants 3 distinct IPs.
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
        max_pending_messages_per_peer=1000,
    )
    router.max_message_size = max_message_size
    pubsub = DeliveringPubsub(
        host,
        router,
        cache_size=4096,
        seen_ttl=120,
        strict_signing=True,
        msg_id_constructor=MessageIds(),
        max_inbound_rpc_size=max_rpc_bytes,
    )
    pubsub.deliver = deliver  # type: ignore[method-assign]
    # Sequence numbers start at the time in seconds; a node restarted within
    # fewer seconds than it published would reuse them. Content ids make this
    # harmless, and nanoseconds keep seqnos unique for anything that uses them.
    pubsub.counter = time.time_ns()
    return pubsub, router
