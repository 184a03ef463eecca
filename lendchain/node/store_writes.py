"""How the chain store writes to LevelDB: its tuning, one batch per write, and a committed
block's batch made durable by the store's next synced write (one fsync per block fewer).

The consensus driver writes a committed block unsynced (``ChainStore.commit_block`` with
``durable=False``). Its batch reaches LevelDB's log (and the OS) at once, so a process
crash keeps it; what a power loss can take is only the log's unsynced tail. The node's
next synced write (its next WAL record, which comes before its next vote leaves) makes
that tail durable, in order: the block before anything written after it. On a network gone
quiet no WAL record may follow for hours, so the node's maintenance pass syncs what waits
each second (``ChainStore.sync_committed``). Losing the block
before then leaves the store at the previous head, atomically (a batch is one log record),
with the WAL still holding that height's votes, block and prepared certificate: where a
crash just before the commit leaves a node today. The block is final elsewhere (2f+1
members hold it with its certificate), and the node fetches it again on start.

"In order" needs care, because LevelDB's log is not one file. When the memtable fills,
LevelDB closes its log file without syncing it and opens a new one; a synced write then
syncs only the new file. A block left in the old file could be lost while a later record
in the new file survives: after a power loss, a store missing block h but holding h+1's
head. So a synced write that follows an unsynced block writes its records unsynced, looks at
which log they went to, and syncs the log files itself, oldest first: those holding an
unsynced block, then its own (nearly always one and the same file, so one fdatasync, as
LevelDB's sync would do). LevelDB deletes an old log only once its records are in a synced
table file, so a log gone meanwhile needs nothing. A log file's growth says where a write
went: LevelDB hands each record to the OS (``write``) as it appends it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import plyvel

# Read and write tuning (issue 7, benchmarks/RESULTS-chain.md). Each state get
# probes every level whose key range covers the key; a bloom filter of ~10 bits
# per key lets a get skip the tables that do not hold it (most of them, for
# keys of recent loans and for keys that do not exist yet, which every new
# party, nonce and tx id is). The block cache holds decompressed blocks, so it
# fills only with compression "snappy": LevelDB maps up to 1,000 table files
# into memory and reads uncompressed blocks (the default) straight from the
# mapping, which the page cache keeps instead (measured: 4 KB of cache in use
# after 50,000 random gets, against the full 64 MB with snappy; RESULTS.md,
# sixth session of 2026-12-05). A 32 MB write buffer (LevelDB's default is
# 4 MB) flushes fewer, larger tables, so less is rewritten level to level: 4 %
# less CPU per tx over 200,000 txs than 16 MB, for up to 32 MB more memory
# (RESULTS.md, 2026-12-04).
DB_OPTIONS: dict[str, Any] = {
    "bloom_filter_bits": 10,
    "lru_cache_size": 64 * 1024 * 1024,
    "write_buffer_size": 32 * 1024 * 1024,
}


def apply_batch(
    db: plyvel.DB,
    ops: list[tuple[bytes, bytes | None]],
    runs: Iterable[tuple[bytes, Iterable[tuple[bytes, bytes | None]]]],
    sync: bool,
) -> int:
    """Write ``ops`` and ``runs`` (prefix, pairs) in one LevelDB batch, a None value deleting;
    returns the batch's size in bytes."""
    batch = db.write_batch(sync=sync)
    put, delete = batch.put, batch.delete
    for key, value in ops:
        if value is None:
            delete(key)
        else:
            put(key, value)
    for prefix, pairs in runs:
        for key, value in pairs:
            if value is None:
                delete(prefix + key)
            else:
                put(prefix + key, value)
    batch.write()
    return batch.approximate_size()


def _size(path: Path | None) -> int:
    if path is None:
        return -1
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


_datasync = getattr(os, "fdatasync", os.fsync)  # what LevelDB's own sync calls


def sync_file(path: Path) -> None:
    """Flush ``path``'s data to disk; a log LevelDB has deleted meanwhile needs none (its
    records are in a synced table file by then)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        _datasync(fd)
    finally:
        os.close(fd)


class DeferredSync:
    """Which LevelDB log files hold block batches written unsynced, and how to make them durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log: Path | None = None  # LevelDB's current log as last seen (checked by growth)
        self.unsynced: list[Path] = []  # log files holding a block batch not yet synced, oldest first
        self.blocks = 0  # blocks written since the last synced write

    def current_log(self) -> Path | None:
        """LevelDB's current write-ahead log: the highest-numbered ``NNNNNN.log``."""
        numbered = [p for p in self.path.glob("*.log") if p.stem.isdigit()]
        return max(numbered, key=lambda p: int(p.stem), default=None)

    def _written(self, write: Callable[[], None]) -> Path | None:
        """Run ``write`` (one LevelDB write, or none) and return the log file it went to."""
        log = self._log or self.current_log()
        before = _size(log)
        write()
        if _size(log) == before:  # it went to a newer log: LevelDB switched (or ``log`` was stale)
            log = self.current_log()
        self._log = log
        return log

    def write_unsynced_block(self, write: Callable[[], None]) -> None:
        """``write``: the block's batch, unsynced. Remember its log file until a synced write."""
        log = self._written(write)
        self.blocks += 1
        if log is not None and log not in self.unsynced:
            self.unsynced.append(log)

    def write_synced(self, write: Callable[[], None]) -> None:
        """A synced write after unsynced blocks: ``write`` (unsynced), then the log files of those
        blocks and the one ``write`` went to are synced, oldest first: one file but after a switch."""
        current = self._written(write)
        for log in [*self.unsynced, *([current] if current not in self.unsynced else [])]:
            if log is not None:
                sync_file(log)
        self.unsynced.clear()
        self.blocks = 0
