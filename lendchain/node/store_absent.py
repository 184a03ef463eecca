"""Which state keys the store surely does not hold, answered without asking LevelDB.

A new borrower's first transactions read keys that do not exist yet: its
party record, its nonce, its KYC and loan lists (~4,000 reads per 10,000
txs of the benchmarks' workload). On a fresh store LevelDB answers such a
read from its memtable. On a long chain it probes every level whose key
range covers the key: an index-block search and a bloom filter per table,
several tables per read. It also charges each read that probed more than
one table to the first table probed, and compacts a table once those
charges run out (its ``allowed_seeks``). On a 1,000,000-tx chain, answering
these reads from memory cut the store's compaction CPU by a third
(benchmarks/RESULTS.md, fifth session of 2026-12-07).

``AbsentKeys`` is a Bloom filter over every state key the store holds. It
says "absent" only for a key it was never given, so it must be given every
key the store can hold; anything else costs a LevelDB read, as before:

- keys committed since the store was opened: ``ChainStore.commit_block``
  adds a block's keys before its batch is written, so no reader sees a key
  in LevelDB that the filter lacks;
- keys stored before: the background checksum check (``checksums.py``)
  reads every key once anyway, and hands the keys over as it reads them.
  It reads a snapshot of the table files. Those hold every write made
  before the store was opened: LevelDB writes the log it recovers at open
  to a table and starts an empty log (plyvel has no ``reuse_logs``).
  ``ChainStore.open`` checks that every log is empty before it writes
  anything, and otherwise gives the check no filter to fill. A new store's
  genesis state, written at open into the memtable, is added by ``open``.
  The filter answers only once the pass has read every key (``ready``). A
  pass that is stopped or finds damage leaves it unready, and every read
  goes to LevelDB.

A deleted key stays in the filter: it then costs a read, which finds
nothing. The filter is never written to disk, so the key hash may be
Python's own (salted per process). It grows by adding a filter twice the
size of the last one when the last is full, so it needs no rebuild: 16 bits
per key; the ~1.4 million state keys of a 1,000,000-tx chain take three
filters, 3.5 MB.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

FIRST_CAPACITY = 1 << 18  # keys the first filter holds at ``BITS_PER_KEY`` (512 KiB)
BITS_PER_KEY = 16  # with 4 probes per key, ~0.24 % of absent keys still go to LevelDB


class _Filter:
    __slots__ = ("bits", "mask", "capacity", "count")

    def __init__(self, capacity: int) -> None:
        size = capacity * BITS_PER_KEY  # a power of two: probes are masked, not divided
        self.bits = bytearray(size >> 3)
        self.mask = size - 1
        self.capacity = capacity
        self.count = 0


class AbsentKeys:
    """A Bloom filter of state keys (without the store's prefix); see the module doc."""

    def __init__(self, prefix: bytes, first_capacity: int = FIRST_CAPACITY) -> None:
        if first_capacity & (first_capacity - 1):
            raise ValueError("the first capacity must be a power of two")
        self._prefix = prefix  # what the store puts before a state key, which ``seen`` strips
        self._filters: tuple[_Filter, ...] = (_Filter(first_capacity),)
        self._lock = threading.Lock()  # adders: the committing thread and the checksum check's
        self.ready = False  # every stored key has been added; set by ``scanned``

    def add_all(self, keys: Iterable[bytes]) -> None:
        """Remember ``keys`` as held (before they are written). Safe from any thread."""
        # The four probes are written out: a loop over them cost twice as much.
        with self._lock:
            last = self._filters[-1]
            bits, mask = last.bits, last.mask
            room = last.capacity - last.count
            for key in keys:
                if not room:
                    last.count = last.capacity
                    last = _Filter(last.capacity * 2)
                    self._filters = (*self._filters, last)
                    bits, mask, room = last.bits, last.mask, last.capacity
                h = hash(key)
                step = (h >> 32) | 1
                i = h & mask
                bits[i >> 3] |= 1 << (i & 7)
                i = (h + step) & mask
                bits[i >> 3] |= 1 << (i & 7)
                i = (h + 2 * step) & mask
                bits[i >> 3] |= 1 << (i & 7)
                i = (h + 3 * step) & mask
                bits[i >> 3] |= 1 << (i & 7)
                room -= 1
            last.count = last.capacity - room

    def surely_absent(self, key: bytes) -> bool:
        """True only for a key never added (and then only once ``ready``)."""
        if not self.ready:
            return False
        h = hash(key)
        step = (h >> 32) | 1
        for f in self._filters:  # a tuple, replaced whole when one is added: safe to iterate
            bits, mask = f.bits, f.mask
            i = h & mask
            if bits[i >> 3] >> (i & 7) & 1:
                i = (h + step) & mask
                if bits[i >> 3] >> (i & 7) & 1:
                    i = (h + 2 * step) & mask
                    if bits[i >> 3] >> (i & 7) & 1:
                        i = (h + 3 * step) & mask
                        if bits[i >> 3] >> (i & 7) & 1:
                            return False  # every probe set in this filter: maybe held
        return True

    # -- the checksum check's pass over the stored keys (``checksums.KeyPass``) -------

    def seen(self, keys: list[bytes]) -> None:
        """Stored keys, as the pass reads them: the state keys among them are added."""
        prefix, start = self._prefix, len(self._prefix)
        self.add_all([key[start:] for key in keys if key.startswith(prefix)])

    def scanned(self) -> None:
        """The pass read every stored key: from now on the filter answers."""
        self.ready = True
