"""A yamux connection whose frame reader never waits to write, and streams that credit in bulk.

py-libp2p 0.8.1's yamux reader (``Yamux.handle_incoming``) answers some
frames itself: a ping with its ack, a new stream with its ack, a frame for an
unknown stream with a reset. It writes each answer inline, under the
connection's write lock. When a writer holds that lock while the socket is
full (the peer is not reading), the reader stops reading until the write
ends. If the peer's reader is stopped the same way at the same moment, each
side's writer waits for the other's reader, and neither reads again: the link
goes silent both ways until something times it out. Two members streaming
gossip at each other under load did exactly that ("nothing heard for 5 s").
``tests/network/test_yamux_replies.py`` builds the deadlock with one ping from
each side.

go-yamux answers without blocking its reader, and so does this subclass: the
reader's answers wait in a short queue that a task of the connection writes,
in order, under the same lock, while the reader goes on reading. Every other
writer (streams, pings, window updates) writes as before.

A stream's reader gives its sender credit back (a WINDOW_UPDATE) once half
of the receive window has been read, as go-yamux does, not after every read
(``BulkCreditStream``). py-libp2p 0.8.1 answers every read that leaves the
window below its target with an update (its "partial slack" and
"release on read" branches), so each message a member received cost both
sides one more frame: a 12-byte header, encrypted, written, read, decrypted
and parsed. In a 20,000-tx run a node wrote ~900 updates for ~450 data
writes of its own; now it writes ~15.
"""

from __future__ import annotations

import logging

import trio
from libp2p.network.connection.exceptions import RawConnError
from libp2p.stream_muxer import muxer_multistream as _muxer_multistream
from libp2p.stream_muxer.yamux import yamux as _yamux_module
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

logger = logging.getLogger(__name__)

# The most answers the reader may leave unwritten. Each is a 12-byte header,
# and a member only produces them by sending pings and opening streams: one
# that asks for thousands while reading none of them is dropped.
MAX_PENDING_REPLIES = 1024


class ReplyQueueFull(RawConnError):
    """The peer asks for answers much faster than it reads them."""


class ReaderFirstYamux(Yamux):
    # Answers the readers of this process's connections queued instead of writing inline (one
    # node per process): ``Network.stats`` shows it as ``lendchain_p2p_yamux_replies_queued``.
    queued_total = 0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._reader: trio.lowlevel.Task | None = None
        self._replies: list[bytes] = []
        self._replying = False
        self.replies_deferred = 0

    async def handle_incoming(self) -> None:
        self._reader = trio.lowlevel.current_task()
        await super().handle_incoming()

    async def _write_frame(self, data: bytes) -> None:
        # The base class also builds a debug line for every frame; its header
        # decoding and f-string cost more than the write itself.
        if self._reader is not None and trio.lowlevel.current_task() is self._reader:
            self._defer_reply(data)
            await trio.lowlevel.checkpoint()
            return
        async with self._write_lock:
            await self.secured_conn.write(data)
        await trio.lowlevel.checkpoint()

    def _defer_reply(self, frame: bytes) -> None:
        if len(self._replies) >= MAX_PENDING_REPLIES:
            # handle_incoming takes a RawConnError for a broken connection and ends it.
            raise ReplyQueueFull(
                f"{len(self._replies)} answers to {self.peer_id} wait unwritten: it sends "
                "pings or new streams without reading; closing the connection"
            )
        self._replies.append(frame)
        self.replies_deferred += 1
        ReaderFirstYamux.queued_total += 1
        if not self._replying and self._nursery is not None:
            try:
                self._nursery.start_soon(self._write_replies)
            except RuntimeError:  # the connection's nursery has closed: nothing is written now
                self._replies.clear()
                return
            self._replying = True

    async def _write_replies(self) -> None:
        try:
            while self._replies:
                async with self._write_lock:
                    frames = b"".join(self._replies)
                    self._replies.clear()
                    await self.secured_conn.write(frames)
        except Exception as e:  # the connection is going away; its reader sees why
            logger.debug("answers to %s not written: %s: %s", self.peer_id, type(e).__name__, e)
            self._replies.clear()
        finally:
            self._replying = False


class BulkCreditStream(YamuxStream):
    """A yamux stream that returns its sender's credit in halves of its receive window.

    The window's bookkeeping is py-libp2p's: a DATA frame takes its length from
    ``recv_window`` when it arrives (``Yamux.handle_incoming``), and what the
    application has read is the window's target less ``recv_window`` and the
    bytes still buffered. Once that is at least half the target, one update
    returns all of it and the target may grow (py-libp2p's auto-tuning, kept).
    Until then less than half a window is held back, so a sender out of
    credit has more than half a window in flight or unread at its peer: it
    waits for the reader (backpressure), never on credit the reader keeps.
    This is the hysteresis of go-yamux's ``sendWindowUpdate``.
    """

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        increment = 0
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            if self.target_recv_window - (self.recv_window + buffered) >= self._grow_threshold():
                increment = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
        if increment > 0:
            await self.send_window_update(increment, skip_lock=True)


# py-libp2p 0.8.1's yamux builds its streams as ``YamuxStream(...)`` by that name,
# for the streams it opens and for those a peer opens; the subclass is placed there.
_yamux_module.YamuxStream = BulkCreditStream  # type: ignore[misc]

# py-libp2p 0.8.1's muxer negotiation builds ``Yamux(...)`` by that name whatever
# muxer class the host was given, so the subclass is placed there: every host
# in this process (only ours exist) gets it.
_muxer_multistream.Yamux = ReaderFirstYamux  # type: ignore[misc]
