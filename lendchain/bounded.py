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
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(OrderedDict[K, V]):
    """A mapping that keeps at most ``limit`` entries: ``put`` past the limit drops the oldest.

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

    def _drop_oldest(self) -> None:
        """Drop the oldest entries until ``limit`` holds."""
        # No lock: each step is atomic under the GIL, and threads that race here (a client
        # decoding in a pool) can at worst drop one entry more than needed, never grow the cache.
        while len(self) > self.limit:
            try:
                self.popitem(last=False)
            except KeyError:
                break


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
            while len(self) > self.limit or self.bytes > self.max_bytes:
                old, _ = self.popitem(last=False)
                self.bytes -= len(old)

    def put_all(self, keys: Iterable[bytes], value: V | None = None) -> None:
        """``put(key, value)`` for each of ``keys``: each counts its bytes."""
        for key in keys:
            self.put(key, value)
