"""The consensus driver: the only place where replica actions become I/O.

One task owns the replica and steps it with events in arrival order (frames
from peers, clock ticks, blocks fetched during catch-up). The actions each
step returns are carried out in order, which is what makes votes crash-safe:
a ``Persist`` reaches disk (one synced LevelDB batch) before any ``Send`` or
``Broadcast`` that follows it in the same list. A ``Persist`` right before a
``Deliver`` (the commit certificate, and the votes it makes obsolete) goes
into the committed block's own batch, and the WAL and the store can no longer
disagree about that block. That batch is not synced on its own: the next
``Persist`` (which comes before this node's next vote, at the next height)
syncs it first (``store_writes.py``). Lost before then, in a power loss, the
block takes its WAL records with it, and the node is where a crash just
before the commit leaves it: its votes, the block and its prepared certificate
still in the WAL, and the block final elsewhere. One fsync per block fewer,
on the round's path at every member.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from lendchain import codec
from lendchain.consensus import messages
from lendchain.consensus.certificate import CommitCertificate, Members
from lendchain.consensus.events import (
    Broadcast,
    Deliver,
    Executed,
    Fault,
    FetchBlocks,
    Persist,
    Receive,
    RelayRequest,
    Send,
    SyncedBlock,
    Tick,
)
from lendchain.consensus.replica import Replica
from lendchain.node.app import NodeApp
from lendchain.node.metrics import NodeMetrics
from lendchain.node.store import ChainStore

TICK_S = 0.02
# With nothing pending the ticks only drive timers (seconds long), so they slow down; a tx
# arriving wakes the ticker at once (``nudge``). Idle nodes cost ~2.5 % of a core each,
# mostly wake-ups (benchmarks/RESULTS.md, third session of 2026-12-05).
IDLE_TICK_S = 0.1
EVENT_QUEUE = 100_000
# A tick this much later than planned is ordinary scheduling; past it, the rest is a stall.
STALL_SLACK_S = 0.05
SYNC_BATCH_BLOCKS = 64
SYNC_TIMEOUT_S = 10.0
# Faults the replica reports before a message's signature has been checked: such a
# message says nothing about its claimed signer.
UNAUTHENTICATED_FAULTS = frozenset({"non-member", "garbage", "impersonation", "bad-signature"})
# How a canonical PRE-PREPARE starts (a 5-array, then its kind): re-decoding one would
# copy and re-check a whole block just to read a height its PREPAREs and COMMITs also name.
PREPREPARE_PREFIX = b"\x95" + codec.pack(messages.PrePrepare.KIND)


_clock_skew_ms = 0  # only a test's fault file sets it (``set_clock_skew``)


def now_ms() -> int:
    """This node's wall clock in ms, as the consensus and the mempool see it."""
    return time.time_ns() // 1_000_000 + _clock_skew_ms


def set_clock_skew(skew_ms: int) -> None:
    """Test-only: make this process's clock run ``skew_ms`` ahead (or behind, if negative)."""
    global _clock_skew_ms
    _clock_skew_ms = skew_ms


class SyncServer:
    """Answers catch-up requests from peers with committed blocks and certificates."""

    def __init__(self, store: ChainStore, max_bytes: int = 8 << 20) -> None:
        self.store = store
        self.max_bytes = max_bytes

    async def handle(self, member: str, payload: bytes, up_to: int | None = None) -> bytes:
        """The blocks a sync request asks for; ``up_to``: none above this height (a removed member)."""
        try:
            request = codec.unpack(payload, max_size=1024)
            start, end = int(request["from"]), int(request["to"])
        except (codec.CodecError, KeyError, TypeError, ValueError):
            return codec.pack({"error": "bad sync request"})
        head = self.store.head().height if up_to is None else min(self.store.head().height, up_to)
        blocks = []
        size = 0
        for height in range(max(start, 1), min(end, head, start + SYNC_BATCH_BLOCKS - 1) + 1):
            block = self.store.block_bytes(height)
            certificate = self.store.certificate(height)
            if block is None or certificate is None:
                break
            blocks.append([height, block, certificate])
            size += len(block) + len(certificate)
            if size > self.max_bytes:
                break
        return codec.pack({"head": head, "blocks": blocks})


def decode_sync_response(payload: bytes) -> tuple[int, list[tuple[int, bytes, bytes]]]:
    doc = codec.unpack(payload, max_size=64 << 20)
    if not isinstance(doc, dict) or "blocks" not in doc:
        raise ValueError(f"peer answered a sync request with {doc!r:.80}")
    blocks = []
    for item in doc["blocks"]:
        height, block, certificate = item
        if not isinstance(height, int) or not isinstance(block, bytes) or not isinstance(certificate, bytes):
            raise ValueError("malformed block in sync response")
        blocks.append((height, block, certificate))
    return int(doc["head"]), blocks


@dataclass(frozen=True)
class MemberSighting:
    """The highest block height a member's signed messages named, and when it last sent one."""

    height: int
    seen_at: float  # time.monotonic()


def height_named(message: messages.Message) -> int | None:
    """The block height a consensus message shows its signer working on or holding."""
    if isinstance(message, messages.PrePrepare | messages.Prepare | messages.Commit | messages.Checkpoint):
        return message.height
    if isinstance(message, messages.ViewChange):
        return message.committed_height
    if isinstance(message, messages.CertAnnounce):
        return message.certificate.height
    return None  # NEW-VIEW: the member is alive, its height is not said


class ConsensusDriver:
    def __init__(
        self,
        replica: Replica,
        app: NodeApp,
        store: ChainStore,
        send: Callable[[str, bytes], bool],
        broadcast: Callable[[bytes], None],
        request: Callable[[str, bytes, float], object],
        metrics: NodeMetrics,
        log: logging.Logger,
        relay: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.replica = replica
        self.app = app
        self.store = store
        self._send = send
        self._broadcast = broadcast
        self._request = request
        self._relay = relay
        self.metrics = metrics
        self.log = log
        self._inbox_send, self._inbox = trio.open_memory_channel(EVENT_QUEUE)
        self._nursery: trio.Nursery | None = None
        self._fetching = False
        self.commit_listeners: list[Callable[[int], None]] = []
        self.sync_target = 0
        self._height_changed = trio.Event()
        self._wake = trio.Event()
        self.member_sightings: dict[str, MemberSighting] = {}

    # Called from network reader tasks: must never block.
    def on_frame(self, sender: str, frame: bytes) -> None:
        try:
            self._inbox_send.send_nowait(Receive(sender, frame))
        except trio.WouldBlock:
            self.metrics.dropped_frames.labels(sender).inc()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._ticker)
            task_status.started()
            async for event in self._inbox:
                self._step(event)

    def nudge(self) -> None:
        """Work arrived at an idle node (its pool was empty): tick now, not at the idle tick's end."""
        self._wake.set()

    async def _ticker(self) -> None:
        """A tick every TICK_S with work pending, every IDLE_TICK_S (or at a nudge) without it,
        and the primary's also when its next block falls due.

        Each tick says how much later than planned it left, past STALL_SLACK_S
        (``Tick.stalled_ms``): the replica's timers do not count that time
        against the primary, and ``lendchain_stalled_seconds_total`` adds it up.
        """
        planned = trio.current_time()
        while True:
            stalled_s = trio.current_time() - planned - STALL_SLACK_S
            stalled_ms = int(stalled_s * 1000) if stalled_s > 0 else 0
            if stalled_ms:
                self.metrics.stalled_seconds.inc(stalled_ms / 1000)
            now = now_ms()
            await self._inbox_send.send(Tick(now, stalled_ms))
            if not self.app.has_pending_work() and not self.replica.in_view_change:
                self._wake = trio.Event()
                with trio.move_on_after(IDLE_TICK_S):
                    await self._wake.wait()
                planned = trio.current_time()  # woken by a nudge or on time: neither is a stall
                continue
            delay = TICK_S
            if self.replica.primary == self.app.me and not self.replica.in_view_change:
                due = self.app.proposal_due_ms()
                if due is not None and due > now:
                    delay = min(delay, (due - now) / 1000)
            planned = trio.current_time() + delay
            await trio.sleep(delay)

    def _step(self, first: object) -> None:
        queue = deque([first])
        while queue:
            event = queue.popleft()
            before = (self.replica.view, self.replica.in_view_change)
            actions = self.replica.step(event)
            if isinstance(event, Receive):
                self._note_sighting(event, actions)
            if (self.replica.view, self.replica.in_view_change) != before:
                self._log_view(before, event)
            for index, action in enumerate(actions):
                follows = actions[index + 1] if index + 1 < len(actions) else None
                if isinstance(action, Persist) and isinstance(follows, Deliver):
                    continue  # written with the block, below
                before = actions[index - 1] if index else None
                wal = before.entries if isinstance(action, Deliver) and isinstance(before, Persist) else []
                queue.extend(self._perform(action, wal))
        self.metrics.observe_replica(self.replica)

    def _log_view(self, before: tuple[int, bool], event: object) -> None:
        """One line per view-change step, so an operator can see when and why the primary moved.

        One step can leave a view and install the next (a replica that joins
        the others' VIEW-CHANGEs as the new primary, or one that receives a
        NEW-VIEW): both lines are logged then.
        """
        replica = self.replica
        height = replica.committed_height
        if replica.view != before[0] or (replica.in_view_change and not before[1]):
            if isinstance(event, Tick) and before[1]:
                why = f"view {before[0]} was not installed before the timer fired"
            elif isinstance(event, Tick):
                why = replica.view_change_cause
            elif isinstance(event, Receive):
                why = f"members moved to a higher view (the last message from {event.sender})"
            else:
                why = type(event).__name__
            self.log.warning(
                "view change: leaving view %d for view %d (next primary %s) at height %d: %s",
                before[0],
                replica.view,
                replica.primary,
                height,
                why,
            )
        if not replica.in_view_change:
            self.log.warning(
                "view %d installed: primary %s, height %d", replica.view, replica.primary, height
            )

    def _note_sighting(self, received: Receive, actions: list[object]) -> None:
        """Remember how far ``received.sender`` is, once the replica accepted its signature."""
        if any(
            isinstance(a, Fault) and a.member == received.sender and a.kind in UNAUTHENTICATED_FAULTS
            for a in actions
        ):
            return
        named = None
        if not received.payload.startswith(PREPREPARE_PREFIX):
            # The replica decoded these same bytes a moment ago, so this cannot fail.
            named = height_named(messages.decode(received.payload, len(received.payload)))
        before = self.member_sightings.get(received.sender)
        height = max(named or 0, before.height if before else 0)
        self.member_sightings[received.sender] = MemberSighting(height, time.monotonic())

    def _perform(self, action: object, wal: list[tuple[bytes, bytes]]) -> tuple[object, ...]:
        if isinstance(action, Persist):
            self.store.wal_write(action.entries)
        elif isinstance(action, Send):
            self._send(action.to, action.payload)
        elif isinstance(action, Broadcast):
            self._broadcast(action.payload)
        elif isinstance(action, Deliver):
            started = time.perf_counter()
            state_root = self.app.commit(
                action.height, action.block, action.digest, action.certificate, wal, durable=False
            )
            self.metrics.on_commit(action.height, self.app, time.perf_counter() - started)
            for listener in self.commit_listeners:
                listener(action.height)
            self._height_changed.set()
            self._height_changed = trio.Event()
            # Rotations this block scheduled reach the replica before it votes at the next height.
            learned = self.app.roster.keys_learned(action.height)
            return learned, Executed(action.height, action.digest, state_root)
        elif isinstance(action, FetchBlocks):
            self.sync_target = max(self.sync_target, action.to_height)
            if not self._fetching and self._nursery is not None:
                self._fetching = True
                self._nursery.start_soon(self._fetch, action)
        elif isinstance(action, RelayRequest):
            if self._relay is not None:
                self._relay(action.to, action.request)
        elif isinstance(action, Fault):
            self.metrics.faults.labels(action.member, action.kind).inc()
            self.log.warning("fault by member=%s kind=%s: %s", action.member, action.kind, action.detail)
        else:
            raise TypeError(f"the driver does not know action {action!r}")
        return ()

    async def _fetch(self, action: FetchBlocks) -> None:
        """Fetch missing blocks from peers; the replica verifies each certificate."""
        try:
            start = self.store.head().height + 1
            peers = list(action.peers)
            while start <= self.sync_target and peers:
                peer = peers[0]
                payload = codec.pack({"from": start, "to": self.sync_target})
                try:
                    _, blocks = decode_sync_response(
                        await self._request(peer, payload, SYNC_TIMEOUT_S)  # type: ignore[misc]
                    )
                except Exception as e:  # a peer that fails to serve is skipped, not trusted
                    self.log.warning("catch-up from %s failed: %s", peer, e)
                    peers.pop(0)
                    continue
                if not blocks:
                    peers.pop(0)
                    continue
                for height, block, certificate in blocks:
                    await self._inbox_send.send(SyncedBlock(height, block, certificate))
                self.log.info(
                    "catching up: fetched blocks %d..%d of %d from %s",
                    blocks[0][0],
                    blocks[-1][0],
                    self.sync_target,
                    peer,
                )
                # Let the replica apply this batch before asking for the next; a batch it
                # refuses (bad certificate) is not waited on forever: the next peer is asked.
                applied = False
                with trio.move_on_after(SYNC_TIMEOUT_S):
                    while self.store.head().height < blocks[-1][0]:
                        await self._height_changed.wait()
                    applied = True
                if not applied:
                    self.log.warning("blocks from %s were not applied; asking another member", peer)
                    peers.pop(0)
                else:  # the next batch from the next peer: each sees this node catching up (views)
                    peers.append(peers.pop(0))
                start = self.store.head().height + 1
        finally:
            self._fetching = False


def verify_certificate(chain_id: str, members: Members, certificate: bytes) -> CommitCertificate:
    """Decode and check a commit certificate; ``members`` may be a ``KeySchedule`` (rotations)."""
    cert = CommitCertificate.decode(certificate)
    cert.verify(chain_id, members)
    return cert
