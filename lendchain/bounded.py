"""``BoundedCache``: the one shape of memory that makes "once per node" true.

A node meets each transaction many times as the same bytes or the same id
(decoded txs, well-formed checks, checked signatures, unwrapped gossip), and
remembers the answer to skip the work the next time. Every such memory is
bounded and forgets its oldest entries first. A hit does not make an entry
young again (first in, first out, not least recently used), so a hit costs
one dict lookup and no bookkeeping.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable
from itertools import islice, repeat
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# A full cache drops this fraction of its limit at once, so that a put into a full cache (every
# put, once a node has run a while) does not pay a Python call and a Python loop step for
# the one entry it pushes out; caches of fewer than 64 entries keep exactly ``limit``.
SLACK_DIVISOR = 64


class BoundedCache(OrderedDict[K, V]):
    """A mapping that keeps at most ``limit`` entries: ``put`` past the limit drops the oldest.

    Past the limit, ``put`` drops the oldest entries down to ``limit`` less a
    slack of ``limit // SLACK_DIVISOR`` (0 for a cache of fewer than 64), in
    one C-level sweep: the next puts, up to the slack, drop nothing.

    Add entries with ``put`` only (item assignment does not evict). Reads are
    the inherited C methods, with no Python frame: ``get`` and ``in`` run
    several times per tx. An OrderedDict because dropping its oldest entry
    is O(1) (a plain dict's ``next(iter())`` walks over the slots earlier
    deletions left, which made every put into a full cache O(size)).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a bounded cache holds at least 1 entry, got limit {limit}")
        super().__init__()
        self.limit = limit
        self.keep = limit - limit // SLACK_DIVISOR  # what a drop leaves

    def put(self, key: K, value: V | None = None) -> None:
        """Remember ``key`` (with ``value``); a key already held keeps its age."""
        self[key] = value  # type: ignore[assignment]
        if len(self) > self.limit:
            self._drop_oldest()

    def put_all(self, keys: Iterable[K], value: V | None = None) -> None:
        """``put(key, value)`` for each of ``keys``, in one call (a batch of txs)."""
        for key in keys:
            self[key] = value  # type: ignore[assignment]
        if len(self) > self.limit:
            self._drop_oldest()

    def _drop_oldest(self) -> list[K]:
        """Drop the oldest entries down to ``keep``; the keys dropped."""
        # No lock: listing the oldest keys runs in C without a switch of threads, and a key
        # that a racing thread dropped meanwhile is skipped (``pop`` with a default), so
        # threads that race here (a client decoding in a pool) can at worst drop more than
        # needed, never grow the cache. ``map`` drains in C: no Python step per entry.
        oldest = list(islice(self, len(self) - self.keep))
        deque(map(self.pop, oldest, repeat(None)), maxlen=0)
        return oldest


class ByteBoundedCache(BoundedCache[bytes, V]):
    """A ``BoundedCache`` keyed by byte strings that also keeps their total length under ``max_bytes``.

    For a memory whose entries are as large as their keys (decoded txs by
    their bytes): a count alone would let a few thousand large entries hold
    gigabytes. Unlike the count, the byte total is read and written in two
    steps, so ``put`` takes a lock.
    """

    def __init__(self, limit: int, max_bytes: int) -> None:
        super().__init__(limit)
        if max_bytes < 1:
            raise ValueError(f"a byte-bounded cache holds at least 1 byte, got max_bytes {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._lock = threading.Lock()

    def put(self, key: bytes, value: V | None = None) -> None:
        """Remember ``key`` unless it alone is over ``max_bytes``; drop the oldest past either bound."""
        if len(key) > self.max_bytes:
            return
        with self._lock:
            if key not in self:
                self.bytes += len(key)
            self[key] = value  # type: ignore[assignment]
            if len(self) > self.limit:
                self.bytes -= sum(map(len, self._drop_oldest()))
            while self.bytes > self.max_bytes:
                old, _ = self.popitem(False)
                self.bytes -= len(old)

    def put_all(self, keys: Iterable[bytes], value: V | None = None) -> None:
        """``put(key, value)`` for each of ``keys``: each counts its bytes."""
        for key in keys:
            self.put(key, value)
