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

from lendchain.genesis import Member
from lendchain.node.network_host import peer_id_of
from lendchain.node.network_wire import FrameKind, encode_frame


class MemberLink:
    def __init__(self, member: Member) -> None:
        self.member = member
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
