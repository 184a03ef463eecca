"""The interface through which consensus orders opaque blocks.

Consensus never looks inside a block: the application builds, hashes and
validates blocks, and executes the ones consensus delivers (the driver feeds
the resulting state root back as an ``Executed`` event).
"""

from __future__ import annotations

from typing import Protocol


class AppHalted(Exception):
    """The application cannot go on at all; no fault of the block or of the proposer.

    An application raises it from any call (an older release meeting a block
    that needs newer rules, say), and the replica lets it through where it
    would take any other exception from ``validate`` for a bad block: the node
    stops instead of accusing an honest primary.
    """


class BlockApp(Protocol):
    def propose(self, height: int, prev_digest: bytes, now_ms: int) -> bytes | None:
        """A block with transactions on top of ``prev_digest``, or None when there is nothing to propose yet."""

    def empty_block(self, height: int, prev_digest: bytes, now_ms: int) -> bytes:
        """A block with no transactions (a null request)."""

    def digest(self, block: bytes) -> bytes:
        """The block's 32-byte hash. May raise on bytes that are not a block."""

    def validate(self, height: int, prev_digest: bytes, block: bytes, now_ms: int) -> str | None:
        """None when ``block`` is a valid block at ``height`` on ``prev_digest``, else the reason."""

    def has_pending_work(self) -> bool:
        """True while transactions wait to be ordered (arms the view-change timer)."""

    def oldest_request(self) -> tuple[bytes, int] | None:
        """The request an honest primary orders first, and how long ordering what may precede it takes.

        The request is an opaque id (a transaction id): the oldest one held
        here that a primary could put in the next block. The duration, in ms,
        is this node's estimate of how long an honest primary needs to order
        the backlog it may put ahead of that request (its pool at the measured
        commit rate); the request timer allows twice that on top of its
        timeouts. None when nothing held here can be ordered now.
        """
