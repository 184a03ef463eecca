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
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A mapping of at most ``limit`` entries; a put past the limit drops the oldest.

    Reads take no lock; puts do, so that several threads (a client decoding
    in a pool) can share one cache.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a bounded cache holds at least 1 entry, got limit {limit}")
        self.limit = limit
        # OrderedDict: dropping the oldest entry is O(1) (a dict's next(iter()) walks over the
        # slots its earlier deletions left, which made every put into a full cache O(size)).
        self._entries: OrderedDict[K, V | None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        """Keys, oldest first."""
        return iter(list(self._entries))

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def put(self, key: K, value: V | None = None) -> None:
        """Remember ``key`` (with ``value``); a key already held keeps its age."""
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)
