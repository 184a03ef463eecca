"""The state changes of the last blocks, kept for the blocks after them to read.

A block mostly reads what the blocks just before it wrote: the next step of a
loan reads the loan record and the history entry the step before wrote, a
sender's nonce comes back with its next tx, a borrower's party record with
its application. Each such read was a LevelDB get with its block checksum
verified, on every node, for bytes this process held a moment before.

``RecentState`` holds the change sets (key -> committed bytes, ``None`` for a
deleted key) of the last ``MEMORY_BLOCKS`` blocks, newest first, so the
first one that names a key holds that key's value at the store's head. It is
filled only by ``remember``, which ``ChainStore.commit_block`` calls after a
block's batch was written, never from a read; ``forget`` empties it when a
write fails (what reached LevelDB is then unknown). Nothing else writes
state: a store restored, synced or reopened after a crash is a new
``ChainStore`` with an empty memory, and a block committed after catch-up
goes through ``commit_block`` like any other.

Bounded twice: at most ``MEMORY_BLOCKS`` change sets, and their bytes (as
charged by the store: the block's batch less the block itself, which counts
each value once and more besides) at most ``MEMORY_BYTES``; the oldest set
goes first. The change sets are the executions' own dicts, shared, not
copied: a ``BlockExecution`` does not change once its block is committed.
"""

from __future__ import annotations

MEMORY_BLOCKS = 8
MEMORY_BYTES = 16 << 20


class RecentState:
    """The change sets of the last blocks the store committed, newest first."""

    def __init__(self, max_blocks: int = MEMORY_BLOCKS, max_bytes: int = MEMORY_BYTES) -> None:
        self._max_blocks = max_blocks
        self._max_bytes = max_bytes
        # Replaced, never changed in place: a reader walks the tuple it found.
        self.blocks: tuple[dict[bytes, bytes | None], ...] = ()
        self._sizes: tuple[int, ...] = ()

    def remember(self, changes: dict[bytes, bytes | None], size: int) -> None:
        """Hold ``changes``, which the store has just committed, charged ``size`` bytes."""
        blocks, sizes = (changes, *self.blocks), (size, *self._sizes)
        kept, total = 0, 0
        for size in sizes:
            if kept == self._max_blocks or total + size > self._max_bytes:
                break
            kept, total = kept + 1, total + size
        self.blocks, self._sizes = blocks[:kept], sizes[:kept]

    def forget(self) -> None:
        self.blocks, self._sizes = (), ()

    def held_bytes(self) -> int:
        return sum(self._sizes)
