"""One other member as seen from this node: its outbound queue and the writer that drains it.

The queue holds encoded frames and is bounded by the caller; the writer sends
the HELLO, then batches of queued frames (many frames per stream write, which
costs the same CPU as one small write), or a PING when the link is idle. The
writer never puts a timeout around a write: a write cut half-way leaves the
libp2p connection unusable, so a watchdog closes the connection instead
(see ``Network._run_link``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable
from typing import Any

import multiaddr
import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID

from lendchain.genesis import Member
from lendchain.node.network_host import peer_id_of
from lendchain.node.network_wire import DEFAULT_MAX_FRAME, FrameKind, encode_frame
from lendchain.node.ratelimit import TokenBucket


class InboundBudget:
    """How much one member may send us: a token bucket per unit (frames, bytes, ...).

    ``rates`` maps a unit to (per second, burst). ``delay`` charges the buckets
    and returns how long to wait before what was charged is covered — reading
    a stream that much later applies backpressure without losing a frame.
    ``admit`` charges only when the tokens are there, else refuses.
    """

    def __init__(self, rates: dict[str, tuple[float, float]], now: float) -> None:
        self.buckets = {unit: TokenBucket(rate, burst, now) for unit, (rate, burst) in rates.items()}
        self.throttled = dict.fromkeys(rates, 0)

    @property
    def tokens(self) -> dict[str, float]:
        return {unit: bucket.tokens for unit, bucket in self.buckets.items()}

    def delay(self, now: float, **amounts: float) -> float:
        wait = 0.0
        for unit, amount in amounts.items():
            unit_wait = self.buckets[unit].charge(now, amount)
            if unit_wait > 0:
                self.throttled[unit] += 1
                wait = max(wait, unit_wait)
        return wait

    def admit(self, now: float, **amounts: float) -> bool:
        for bucket in self.buckets.values():
            bucket.refill(now)
        short = [unit for unit, amount in amounts.items() if self.buckets[unit].tokens < amount]
        for unit in short:
            self.throttled[unit] += 1
        if short:
            return False
        for unit, amount in amounts.items():
            self.buckets[unit].take(now, amount)
        return True


# The network's options, each overridable by ``Network(..., **options)`` (tests and benchmarks).
NETWORK_OPTIONS: dict[str, Any] = {
    "max_frame_size": DEFAULT_MAX_FRAME,  # bytes per consensus frame / request / response
    "max_gossip_size": 8 * 1024 * 1024,  # bytes per gossip message
    "queue_frames": 10_000,  # outbound frames queued per member before dropping
    "batch_bytes": 1024 * 1024,  # bytes coalesced into one stream write
    "ping_interval_s": 1.0,  # heartbeat on an idle link
    "dead_after_s": 5.0,  # a link silent this long is dead
    "write_timeout_s": 10.0,  # a write stalled this long resets the link
    "dial_timeout_s": 5.0,
    "redial_min_s": 0.1,
    "redial_max_s": 2.0,
    "gossip_heartbeat_s": 0.25,
    "dial_grace_s": 0.5,  # how long the member with the larger PeerID waits for the other's dial
    "gossip_repair_s": 3.0,  # a linked member not subscribed to gossip this long is reconnected
    # Inbound budget per member (sustained rate, burst). Honest members send a few
    # consensus frames per block; these bounds only bite on a flooding member.
    "peer_frames_per_s": 500,
    "peer_frames_burst": 2000,
    "peer_bytes_per_s": 32 * 1024 * 1024,
    "peer_bytes_burst": 64 * 1024 * 1024,
    "peer_gossip_bytes_per_s": 8 * 1024 * 1024,
    "peer_gossip_bytes_burst": 16 * 1024 * 1024,
    "throttle_warn_every_s": 10.0,
    # Fault injection for tests: probability that an inbound consensus frame / a
    # gossip message is dropped at this node instead of being delivered.
    "frame_loss": 0.0,
    "gossip_loss": 0.0,
}


def checked_options(defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` overridden by ``options``, refusing unknown names and out-of-range values."""
    unknown = set(options) - set(defaults)
    if unknown:
        raise TypeError(f"unknown network option(s) {sorted(unknown)}; known ones are {sorted(defaults)}")
    merged = {**defaults, **options}
    for name, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"network option {name} must be a number, got {value!r}")
        if name.endswith("_loss") and not 0.0 <= value <= 1.0:
            raise ValueError(f"network option {name} is a probability between 0 and 1, got {value}")
        if not name.endswith("_loss") and value <= 0:
            raise ValueError(f"network option {name} must be positive, got {value}")
    return merged


NETWORK_COUNTERS = (
    "frames_in",
    "frames_out",
    "bytes_in",
    "bytes_out",
    "dropped",
    "rejected_peers",
    "wire_errors",
    "gossip_in",
    "gossip_out",
    "gossip_rejected",
    "requests_in",
    "requests_out",
    "reconnects",
    "injected_losses",
    "gossip_repairs",
    # redials that first dropped a connection closed but still listed (``forget_closed_connections``)
    "stuck_closes",
    "throttled_frames",
    "throttled_gossip",
    "removed_frames",  # consensus frames from a removed member's node let go: read and dropped
)


class MemberLink:
    def __init__(self, member: Member) -> None:
        self.member = member
        # Every PeerID the member may use (one per node key it has had or will have, newest
        # first, see ``set_keys``); ``peer_id`` is the one we dial and talk to now.
        self.peer_ids: list[ID] = []
        self.keys: list[bytes] = []  # the node keys of ``peer_ids``, in the same order
        self.retired: set[bytes] = set()  # older keys of a member seen on a newer one (``seen_on``)
        self.peer_id = peer_id_of(member.public_key)
        self.maddr = multiaddr.Multiaddr(member.address)
        self.queue: deque[bytes] = deque()
        self.wake = trio.Event()
        self.up = False  # our outbound consensus stream is established
        self.up_since = 0.0  # trio time the link last came up
        self.last_heard = 0.0  # trio time of the last frame on its inbound stream
        self.write_started: float | None = None  # trio time the current write began
        self.inbound: INetStream | None = None
        self.failed_dials = 0  # since the link was last up
        self.budget: InboundBudget | None = None  # set by Network.run from its options
        self.warned_throttle_at = -1e9  # trio time of the last "rate limited" warning
        self.removed = (
            False  # this link was dropped (``Network.remove_member``, ``leave``): its supervisor stops
        )
        self.dropped = trio.Event()  # set with ``removed``: wakes the link's watchdog at once
        # Dial the member no more, only answer its node's own connections with a stream back (so
        # that its node's link hears us): a removed member (``Network.stop_dialling``, ``let_go``).
        self.passive = False
        self.let_go = False  # a removed member let go: what its node sends is read and dropped

    def set_keys(self, public_keys: list[bytes]) -> list[ID]:
        """Accept these node keys' PeerIDs (newest first, retired ones left out) and dial the newest.

        Returns the PeerIDs not accepted before.
        """
        keys = [key for key in public_keys if key not in self.retired] or public_keys[:1]
        peer_ids = [peer_id_of(key) for key in keys]
        added = [pid for pid in peer_ids if pid not in self.peer_ids]
        if added:
            self.keys, self.peer_ids, self.peer_id = keys, peer_ids, peer_ids[0]
        return added

    def seen_on(self, peer_id: ID) -> list[bytes]:
        """The member proved it holds ``peer_id``'s key: retire its older keys; returns them.

        A member moves to a rotated key when it restarts on it, and never goes
        back, so from then on a connection made with an older key (a leaked
        one, say) is not the member.
        """
        if peer_id not in self.peer_ids:
            return []
        position = self.peer_ids.index(peer_id) + 1
        older = self.keys[position:]
        if older:
            self.retired.update(older)
            self.keys, self.peer_ids = self.keys[:position], self.peer_ids[:position]
            if self.peer_id not in self.peer_ids:
                self.peer_id = peer_id
        return older

    def try_next_peer_id(self) -> None:
        """After a failed dial: the member may not run its newest key yet (it rotates on restart)."""
        self.peer_id = self.peer_ids[(self.peer_ids.index(self.peer_id) + 1) % len(self.peer_ids)]

    def due_throttle_warning(self, now: float, every_s: float) -> bool:
        """Whether to log that this member is rate limited (at most once per ``every_s``)."""
        if now - self.warned_throttle_at < every_s:
            return False
        self.warned_throttle_at = now
        return True

    def enqueue(self, payload: bytes, limit: int) -> bool:
        if len(self.queue) >= limit:
            return False
        self.queue.append(encode_frame(FrameKind.DATA, payload))
        self.wake.set()
        return True

    def _take_batch(self, batch_bytes: int) -> tuple[int, bytes]:
        parts = []
        size = 0
        while self.queue and (size == 0 or size + len(self.queue[0]) <= batch_bytes):
            frame = self.queue.popleft()
            parts.append(frame)
            size += len(frame)
        return len(parts), b"".join(parts)

    async def write_loop(
        self,
        stream: INetStream,
        hello: bytes,
        ping_interval_s: float,
        batch_bytes: int,
        counters: dict[str, int],
    ) -> None:
        """Send ``hello``, mark the link up, then drain the queue until the stream breaks."""
        self.write_started = None  # a write abandoned by the last session is not this one's
        await self._write(stream, hello)
        self.up = True
        self.up_since = trio.current_time()
        while True:
            if not self.queue:
                self.wake = trio.Event()
                with trio.move_on_after(ping_interval_s):
                    await self.wake.wait()
            if self.queue:
                frames, batch = self._take_batch(batch_bytes)
            else:
                frames, batch = 0, encode_frame(FrameKind.PING)
            try:
                await self._write(stream, batch)
            except BaseException:
                counters["dropped"] += frames
                raise
            counters["frames_out"] += frames
            counters["bytes_out"] += len(batch)

    async def _write(self, stream: INetStream, data: bytes) -> None:
        self.write_started = trio.current_time()
        await stream.write(data)
        self.write_started = None


async def quietly(awaitable: Awaitable[Any]) -> None:
    """Await a best-effort cleanup (reset, disconnect) whose failure changes nothing."""
    try:
        await awaitable
    except Exception:
        pass


async def bounded(awaitable: Awaitable[Any], timeout_s: float = 1.0) -> None:
    """Best-effort cleanup that also runs while the caller is being cancelled, but
    never for longer than ``timeout_s`` (a reset to a stalled peer may not finish)."""
    with trio.move_on_after(timeout_s) as scope:
        scope.shield = True
        await quietly(awaitable)
