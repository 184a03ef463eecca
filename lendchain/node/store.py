"""The chain store: blocks, certificates, tx index, state and consensus WAL in one LevelDB.

Keys by prefix (heights are 8-byte big-endian, so blocks sort by height)::

    m:<name>     chain metadata: genesis hash, chain id, head; peers' retired node keys
    b:<height>   block wire bytes          c:<height>  commit certificate
    h:<hash>     block hash -> height      t:<tx id>   [height, index]
    r:<height>   the block's tx results    s:<key>     ledger state
    w:<key>      consensus WAL records     p:<tx id>   accepted, not yet committed

A committed block and all its effects (block, certificate, hash and tx
indexes, state changes, new head) are written in ONE WriteBatch, so after a
crash the store is at the previous head or the new one, never between. The
batch is synced by itself, or (``durable=False``, the consensus driver) by the
store's next synced write, with the block first (``store_writes.py``). ``open`` checks that head, stored head block, state root and
indexes agree, and names the height and what disagrees when they do not.
Tx results are stored per block (``r:``): LevelDB's compaction rewrites records
under random keys (tx ids) at every level, records in height order hardly ever.
State reads look first at the changes of the last blocks this store committed
(``recent_state``), which the next blocks mostly read again, then at a filter of
the state keys the store holds (``store_absent``), which answers a read of a key
never written without LevelDB once the background check below has read them all.

Damaged files: LevelDB opens with ``paranoid_checks`` (a damaged CURRENT,
MANIFEST or log record, or a missing table, refuses to open), and every read
verifies block checksums. A truncated or bit-flipped table file holding old
records would still only show when a peer asks for an old block, so every
``open`` also starts a background check (``node/checksums.py``) that reads
every record once with checksums verified (``wait_verified`` waits for it).
Reading a million-tx chain this way takes seconds, which used to hold up
every start-up; now the node is ready first, and damage the check finds
poisons the store like a failed write: writes are refused and
``raise_if_write_failed`` (which the daemon calls every second) raises it,
naming the data directory, so the node stops within a second or so of the
check reaching the damage.

Failed writes (disk full, I/O error, failed fsync): the first one poisons the
store, and every later write raises the same StoreError without touching
LevelDB. LevelDB does not stop writing after a failed log append, and a
record torn by that failure makes the log reader drop records written after
it on reopen: a later synced write would be acknowledged and then lost. So
the node stops, and a restart reopens the store at its last complete block.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import plyvel

from lendchain import codec
from lendchain.bounded import BoundedCache
from lendchain.genesis import Genesis
from lendchain.ledger.block import Block, InvalidBlock
from lendchain.ledger.state import (
    STATE_ROOT_KEY,
    BlockExecution,
    TxResult,
    genesis_changes,
    genesis_state_root,
)
from lendchain.node.checksums import ChecksumCheck, leveldb_says, open_files
from lendchain.node.config import STORE_COMPRESSIONS
from lendchain.node.recent_state import RecentState
from lendchain.node.store_absent import AbsentKeys
from lendchain.node.store_records import PENDING as _PENDING
from lendchain.node.store_records import NodeRecords
from lendchain.node.store_writes import DB_OPTIONS as _DB_OPTIONS
from lendchain.node.store_writes import DeferredSync, apply_batch

_META = b"m:"
_BLOCK = b"b:"
_CERT = b"c:"
_HASH = b"h:"
_TX = b"t:"
_RESULTS = b"r:"
_STATE = b"s:"
_WAL = b"w:"
_NO_RECORD = b"\xff\xff"  # above every key: flush_memtable's empty compaction range
_GENESIS_KEY = _META + b"genesis"
_CHAIN_ID_KEY = _META + b"chain_id"
_HEAD_KEY = _META + b"head"
_FORMAT_KEY = _META + b"format"
# 2: tx results per block under r:<height>; the tx index holds [height, index] (was 1: the result too)
FORMAT = 2
# On open, this many blocks below the head are checked to link by hash.
RECENT_BLOCKS_CHECKED = 16
RESULTS_MEMORY = 8  # blocks whose decoded tx results tx lookups keep
RESTORE_ADVICE = "the data directory is corrupt; restore it from a peer or a backup"
# Test-only write faults (lendchain.node.faults): how LevelDB reports each one.
_INJECTED = {"disk_full": "No space left on device", "fsync_error": "Input/output error"}


class StoreError(Exception):
    """The data directory cannot be used; the message says why and what to do."""


class StoreInUse(StoreError):
    """Another process holds the data directory's lock (a node runs on it)."""


@dataclass(frozen=True)
class Head:
    height: int
    hash: bytes
    state_root: bytes
    timestamp_ms: int


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + struct.pack(">Q", height)


def _read_failed(path: Path, error: plyvel.Error) -> StoreError:
    said = leveldb_says(error)
    where = "" if str(path) in said else " in one of its table files (*.ldb)"
    return StoreError(
        f"data directory {path} is damaged: reading it failed{where} ({said}); {RESTORE_ADVICE}"
    )


class ChainStore(NodeRecords):
    """One node's LevelDB. Implements ``StateReader`` (``get``) over committed state."""

    def __init__(self, db: plyvel.DB, path: Path, genesis: Genesis) -> None:
        self._db = db
        self.path = path
        self.genesis = genesis
        self.write_error: StoreError | None = None
        # False only for a throwaway store (a point-in-time replay): no fsync per block.
        self.sync_writes = True
        self._check: ChecksumCheck | None = None  # the background checksum check, once started
        # Test-only (faults.py): returns a key of _INJECTED to fail the next block write.
        self.block_write_fault: Callable[[], str | None] | None = None
        self._head = self._read_head()
        self._deferred = DeferredSync(path)  # blocks written unsynced (``commit_block(durable=False)``)
        # A backup thread flushes the memtable; close waits for that and tells it to stop.
        self.closing = threading.Event()
        self._flush_lock = threading.Lock()
        self._results: BoundedCache[int, list] = BoundedCache(RESULTS_MEMORY)  # height -> results
        self._recent = RecentState()  # the last blocks' changes, which the next ones read again
        # State keys the store surely lacks (store_absent.py): filled by the checksum check's pass.
        self.absent = AbsentKeys(_STATE)
        # Ids under p: (a tombstone for a tx that came by gossip would only feed compaction).
        self._pending_ids = {key[len(_PENDING) :] for key in self._scan(_PENDING, include_value=False)}

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        genesis: Genesis,
        create: bool = True,
        compression: str = "none",
        key_filter: bool = False,
    ) -> ChainStore:
        """Open (or with ``create``, initialise) the store at ``path`` for ``genesis``.

        ``key_filter``: fill the filter of absent state keys (``store_absent``), for a store that
        blocks execute against (a node's, a replay's); not for one only read (a report's source).

        ``compression`` ("none" or "snappy") applies to table files written
        from now on; LevelDB reads blocks written either way.
        """
        if compression not in STORE_COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {', '.join(STORE_COMPRESSIONS)}, not {compression!r}"
            )
        path = Path(path)
        if not create and not (path / "CURRENT").exists():
            raise StoreError(f"{path} holds no chain store; start the node once to create it")
        try:
            path.mkdir(parents=True, exist_ok=True)
            db = plyvel.DB(
                str(path),
                create_if_missing=create,
                paranoid_checks=True,
                # Uncompressed, a loaded node spends ~13 % less CPU per tx (compaction and block
                # reads skip snappy) for ~1.7x the disk.
                compression=None if compression == "none" else compression,
                **_DB_OPTIONS,
            )
        except plyvel.IOError as e:
            if "lock" in leveldb_says(e).lower():
                raise StoreInUse(
                    f"data directory {path} is in use by another process (is a node already running?)"
                ) from None
            raise StoreError(f"cannot open data directory {path}: {leveldb_says(e)}") from None
        except plyvel.CorruptionError as e:
            said = leveldb_says(e)
            files = "" if str(path) in said else f" in one of {open_files(path)}"
            raise StoreError(
                f"data directory {path} is damaged: LevelDB reports '{said}'{files}; {RESTORE_ADVICE}"
            ) from None
        except OSError as e:
            raise StoreError(f"cannot create data directory {path}: {e.strerror}") from None
        # LevelDB writes a recovered log to a table and starts an empty log (store_absent.py).
        in_tables = all(log.stat().st_size == 0 for log in path.glob("*.log"))
        try:
            created = cls._initialise(db, path, genesis)
            store = cls(db, path, genesis)
            store._check_consistency()
            store.absent.add_all(created)  # the genesis state, in the memtable
        except plyvel.Error as e:
            db.close()
            raise _read_failed(path, e) from None
        except BaseException:
            db.close()
            raise
        store._check = ChecksumCheck(
            db, path, _read_failed, store.absent if key_filter and in_tables else None
        )
        return store

    @staticmethod
    def _initialise(db: plyvel.DB, path: Path, genesis: Genesis) -> list[bytes]:
        """Write a new store's genesis, or check an existing store's; the state keys written."""
        stored = db.get(_GENESIS_KEY, verify_checksums=True)
        if stored is None:
            with db.iterator(include_value=False) as keys:
                if next(keys, None) is not None:
                    raise StoreError(f"{path} holds a LevelDB that is not a lendchain chain store")
            changes = genesis_changes(genesis)
            head = [0, genesis.hash(), changes[STATE_ROOT_KEY], genesis.genesis_time_ms]
            try:
                with db.write_batch(sync=True) as batch:
                    for key, value in changes.items():
                        batch.put(_STATE + key, value)
                    batch.put(_CHAIN_ID_KEY, genesis.chain_id.encode())
                    batch.put(_FORMAT_KEY, codec.pack(FORMAT))
                    batch.put(_HEAD_KEY, codec.pack(head))
                    batch.put(_GENESIS_KEY, genesis.hash())
            except plyvel.Error as e:
                raise StoreError(f"cannot initialise data directory {path}: {leveldb_says(e)}") from None
            return list(changes)
        try:
            written = codec.unpack(db.get(_FORMAT_KEY) or codec.pack("unknown"))
        except codec.CodecError:
            written = "unreadable"
        if written != FORMAT:
            raise StoreError(
                f"data directory {path} holds store format {written}, and this lendchain reads "
                f"format {FORMAT}; move it aside and start the node on an empty data directory "
                f"(it fetches the chain from members running this version)"
            )
        if stored != genesis.hash():
            chain_id = (db.get(_CHAIN_ID_KEY) or b"?").decode(errors="replace")
            raise StoreError(
                f"data directory {path} belongs to chain {chain_id!r} with genesis "
                f"{stored.hex()[:16]}, not to this genesis ({genesis.chain_id!r}, "
                f"{genesis.hash().hex()[:16]}); use another data directory or the matching genesis"
            )
        return []

    def _read_head(self) -> Head:
        raw = self._get(_HEAD_KEY)
        try:
            height, block_hash, state_root, timestamp_ms = codec.unpack(raw)
        except (codec.CodecError, TypeError, ValueError):
            raise StoreError(
                f"the chain head record in {self.path} is unreadable; {RESTORE_ADVICE}"
            ) from None
        return Head(height, block_hash, state_root, timestamp_ms)

    def wait_verified(self, timeout_s: float | None = None) -> bool:
        """Wait for the background checksum check; raise its StoreError if it found damage.

        Returns False if it is still running after ``timeout_s``.
        """
        if self._check is not None and not self._check.wait(timeout_s):
            return False
        if self.damage is not None:
            raise self.damage
        return True

    @property
    def damage(self) -> StoreError | None:
        """Damage the background checksum check found (set once, by its thread)."""
        return None if self._check is None else self._check.damage

    def _read_failed(self, error: plyvel.Error) -> StoreError:
        return _read_failed(self.path, error)

    def _get(self, key: bytes) -> bytes | None:
        try:
            return self._db.get(key, verify_checksums=True)
        except plyvel.Error as e:
            raise self._read_failed(e) from None

    def _scan(self, prefix: bytes, include_value: bool = True) -> list:
        try:
            with self._db.iterator(prefix=prefix, include_value=include_value, verify_checksums=True) as it:
                return list(it)
        except plyvel.Error as e:
            raise self._read_failed(e) from None

    def _check_consistency(self) -> None:
        head = self._head
        where = f"data directory {self.path}"
        if self._get(_STATE + STATE_ROOT_KEY) != head.state_root:
            raise StoreError(
                f"{where}: the state root in the state does not match the head record at "
                f"height {head.height}; {RESTORE_ADVICE}"
            )
        if self._get(_height_key(_BLOCK, head.height + 1)) is not None:
            raise StoreError(
                f"{where}: a block is stored above the head height {head.height}; {RESTORE_ADVICE}"
            )
        if head.height == 0:
            if head.hash != self.genesis.hash() or head.state_root != genesis_state_root(self.genesis):
                raise StoreError(f"{where}: the head at height 0 is not this genesis; {RESTORE_ADVICE}")
            return
        block = self._checked_block(head.height)
        if block.hash() != head.hash:
            raise StoreError(
                f"{where}: block {head.height} hashes to {block.hash().hex()[:16]}, but the head "
                f"record says {head.hash.hex()[:16]}; {RESTORE_ADVICE}"
            )
        if block.header.state_root != head.state_root:
            raise StoreError(
                f"{where}: state root at head {head.height} does not match block {head.height}'s "
                f"header; {RESTORE_ADVICE}"
            )
        if block.header.timestamp_ms != head.timestamp_ms:
            raise StoreError(f"{where}: head timestamp disagrees with block {head.height}; {RESTORE_ADVICE}")
        if self.height_of_hash(head.hash) != head.height:
            raise StoreError(f"{where}: the hash index does not list block {head.height}; {RESTORE_ADVICE}")
        if self.certificate(head.height) is None:
            raise StoreError(f"{where}: block {head.height} has no commit certificate; {RESTORE_ADVICE}")
        if self._get(_height_key(_RESULTS, head.height)) is None:
            raise StoreError(f"{where}: block {head.height} has no stored tx results; {RESTORE_ADVICE}")
        for raw_tx in block.txs:
            if not self.has_tx(codec.sha256(raw_tx)):
                raise StoreError(
                    f"{where}: the tx index lacks a transaction of block {head.height}; {RESTORE_ADVICE}"
                )
        child = block
        for height in range(head.height - 1, max(0, head.height - RECENT_BLOCKS_CHECKED) - 1, -1):
            parent_hash = self.genesis.hash() if height == 0 else self._checked_block(height).hash()
            if child.header.prev_hash != parent_hash:
                raise StoreError(
                    f"{where}: block {height + 1} does not link to block {height} by hash; {RESTORE_ADVICE}"
                )
            if height > 0:
                child = self._checked_block(height)

    def _checked_block(self, height: int) -> Block:
        raw = self.block_bytes(height)
        if raw is None:
            raise StoreError(f"data directory {self.path}: block {height} is missing; {RESTORE_ADVICE}")
        try:
            block = Block.decode(raw)
        except InvalidBlock as e:
            raise StoreError(
                f"data directory {self.path}: stored block {height} is damaged ({e}); {RESTORE_ADVICE}"
            ) from None
        if block.header.height != height:
            raise StoreError(
                f"data directory {self.path}: block stored at height {height} says it is "
                f"{block.header.height}; {RESTORE_ADVICE}"
            )
        return block

    def close(self) -> None:
        """Stop the background check (it stops between two records), sync blocks committed
        unsynced (``sync_committed``) and close LevelDB, also when that sync fails.

        A backup running in another thread stops at its next step (``closing``).
        """
        self.closing.set()
        if self._check is not None:
            self._check.stop()
        with self._flush_lock:
            if not self._db.closed:
                try:
                    self.sync_committed()
                finally:
                    # Even when that sync fails (its error goes on): the node can restart here.
                    self._db.close()

    def sync_committed(self) -> None:
        """Make blocks committed with ``durable=False`` durable now, if any wait for a synced write.

        Under load the next WAL record does it within milliseconds; on a network gone quiet
        after a block none may come for hours, so the node's maintenance calls this each second.
        A failure poisons the store as any failed write does.
        """
        if self._deferred.unsynced and self.write_error is None:
            self._write([], sync=True, what="committed blocks")

    def flush_memtable(self) -> None:
        """Write LevelDB's memtable out as a table file, so the table files hold every stored write.

        LevelDB flushes the memtable before any ``compact_range``; over a key
        range no record has (every key starts with an ASCII prefix) it then
        compacts nothing. Runs without the GIL: call it from a thread.
        """
        with self._flush_lock:
            if self._db.closed:
                raise StoreError(f"data directory {self.path} is closed (the node is stopping)")
            self._db.compact_range(start=_NO_RECORD, stop=_NO_RECORD)

    def __enter__(self) -> ChainStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        for changes in self._recent.blocks:
            if key in changes:
                return changes[key]
        if self.absent.surely_absent(key):
            return None
        return self._get(_STATE + key)

    def state_keys(self) -> list[bytes]:
        """Every key of the committed state (for audits; the whole key set in memory)."""
        return [key[len(_STATE) :] for key in self._scan(_STATE, include_value=False)]

    def head(self) -> Head:
        return self._head

    def block_bytes(self, height: int) -> bytes | None:
        return self._get(_height_key(_BLOCK, height))

    def block(self, height: int) -> Block | None:
        raw = self.block_bytes(height)
        return None if raw is None else Block.decode(raw)

    def certificate(self, height: int) -> bytes | None:
        return self._get(_height_key(_CERT, height))

    def height_of_hash(self, block_hash: bytes) -> int | None:
        if block_hash == self.genesis.hash():
            return 0
        raw = self._get(_HASH + block_hash)
        return None if raw is None else struct.unpack(">Q", raw)[0]

    def has_tx(self, tx_id: bytes) -> bool:
        """Whether a committed block holds ``tx_id`` (one index read; no result decoded)."""
        return self._get(_TX + tx_id) is not None

    def tx_location(self, tx_id: bytes) -> tuple[int, int, TxResult] | None:
        raw = self._get(_TX + tx_id)
        if raw is None:
            return None
        height, index = codec.unpack(raw)
        results = self._results.get(height)
        if results is None:
            stored = self._get(_height_key(_RESULTS, height))
            results = codec.unpack(stored) if stored is not None else []
            self._results.put(height, results)
        if not 0 <= index < len(results):
            raise StoreError(f"data directory {self.path}: block {height} has no result for tx {index}")
        return height, index, TxResult.from_value(tx_id, results[index])

    # -- writing ---------------------------------------------------------------

    def commit_block(
        self,
        raw_block: bytes,
        certificate: bytes,
        execution: BlockExecution,
        wal: list[tuple[bytes, bytes]] | None = None,
        block: Block | None = None,
        durable: bool = True,
    ) -> Head:
        """Store a committed block with its certificate and effects, atomically and durably.

        ``durable=False``: durable at the store's next synced write (``store_writes.py``); the
        consensus driver's next WAL record, before its next vote, is one.

        ``wal``: consensus WAL records (as ``wal_write`` takes them) written in the same batch.
        ``block``: ``raw_block`` decoded, when the caller holds it (``check_block`` returned it),
        so that a block of thousands of txs is not decoded and re-encoded once more here.
        ``execution.changes`` is kept (not copied) for later reads: it must not change after.
        """
        if block is None:
            block = Block.decode(raw_block)
        header = block.header
        head = self._head
        if header.height != head.height + 1:
            raise StoreError(f"cannot store block {header.height} on head {head.height}; blocks go in order")
        if header.prev_hash != head.hash:
            raise StoreError(
                f"block {header.height} builds on {header.prev_hash.hex()[:16]}, not on the stored "
                f"head {head.hash.hex()[:16]}"
            )
        if header.state_root != execution.state_root:
            raise StoreError(f"block {header.height}'s state root is not the one its execution gives")
        if len(execution.results) != len(block.txs) or len(execution.tx_ids) != len(block.txs):
            raise StoreError(f"block {header.height} has {len(block.txs)} txs but its execution has not")
        block_hash = header.hash()
        new_head = Head(header.height, block_hash, header.state_root, header.timestamp_ms)
        height_bytes = struct.pack(">Q", header.height)
        head_record = codec.pack([new_head.height, new_head.hash, new_head.state_root, new_head.timestamp_ms])
        ops: list[tuple[bytes, bytes | None]] = [
            (_BLOCK + height_bytes, raw_block),
            (_CERT + height_bytes, certificate),
            (_HASH + block_hash, height_bytes),
            (_RESULTS + height_bytes, codec.pack_packed_list([r.packed for r in execution.results])),
            (_HEAD_KEY, head_record),
        ]
        ops += [(_WAL + key, value or None) for key, value in wal or ()]
        locations = codec.pack_pairs(header.height, range(len(execution.tx_ids)))  # [height, index]
        runs = ((_TX, zip(execution.tx_ids, locations, strict=True)), (_STATE, execution.changes.items()))
        self.absent.add_all(key for key, value in execution.changes.items() if value is not None)
        try:
            what = f"block {header.height}"
            written = self._write(
                ops, runs, sync=True, what=what, fault=self.block_write_fault, durable=durable
            )
        except StoreError:
            self._recent.forget()  # whether the batch reached LevelDB is unknown
            raise
        self._recent.remember(execution.changes, written - len(raw_block))
        self._head = new_head
        return new_head

    def _write(
        self,
        ops: list[tuple[bytes, bytes | None]],
        runs: Iterable[tuple[bytes, Iterable[tuple[bytes, bytes | None]]]] = (),
        *,
        sync: bool,
        what: str,
        fault: Callable[[], str | None] | None = None,
        durable: bool = True,
    ) -> int:
        """Apply ``ops`` (a None value deletes) in one batch; the first failure poisons the store.

        ``runs``: (prefix, pairs of key and value) put straight from the pairs: a block's
        thousands of tx index and state records, not copied into ``ops`` as tuples.
        ``durable=False`` (with ``sync``): durable at the next synced write (``store_writes.py``).
        Returns the batch's size in bytes (its keys, values and record headers).
        """
        self.raise_if_write_failed()
        injected = fault() if fault is not None else None
        size = 0

        def write(sync_now: bool) -> None:
            nonlocal size
            size = apply_batch(self._db, ops, runs, sync_now)

        try:
            if injected == "disk_full":  # as LevelDB reports ENOSPC on its log append
                raise plyvel.IOError(f"IO error: {self._log_file()}: {_INJECTED[injected]}".encode())
            sync = sync and self.sync_writes and injected is None
            if sync and not durable:
                self._deferred.write_unsynced_block(lambda: write(False))
            elif sync and self._deferred.unsynced:
                self._deferred.write_synced(lambda: write(False))
            else:
                write(sync)
            if injected == "fsync_error":  # the record reached the OS; whether it is durable is unknown
                raise plyvel.IOError(f"IO error: {self._log_file()}: {_INJECTED[injected]}".encode())
        except (plyvel.Error, OSError) as e:
            said = leveldb_says(e) if isinstance(e, plyvel.Error) else f"fsync: {e.strerror}"
            self.write_error = StoreError(
                f"writing {what} to data directory {self.path} failed ({said}); "
                f"blocks up to {self._head.height - self._deferred.blocks} are stored safely, "
                f"and the store takes no more writes: free space or fix the disk, then start the node again"
            )
            raise self.write_error from None
        return size

    def memory_bytes(self) -> int:
        """LevelDB's own estimate of its memtables and block cache, in bytes (0 once closed)."""
        if self._db.closed:
            return 0
        return int(self._db.get_property(b"leveldb.approximate-memory-usage") or 0)

    def _log_file(self) -> Path:
        logs = sorted(self.path.glob("*.log"))
        return logs[-1] if logs else self.path / "LOG"

    def raise_if_write_failed(self) -> None:
        """Raise the StoreError of a failed write or of found damage, if any (the daemon then stops)."""
        if self.write_error is not None:
            raise self.write_error
        if self.damage is not None:
            raise self.damage

    def wal_items(self) -> list[tuple[bytes, bytes]]:
        """Every consensus WAL record still on disk, in key order."""
        return [(key[len(_WAL) :], value) for key, value in self._scan(_WAL)]

    def wal_write(self, entries: list[tuple[bytes, bytes]]) -> None:
        """Write WAL records durably (one synced batch); an empty value deletes the record."""
        ops = [(_WAL + key, value or None) for key, value in entries]
        self._write(ops, sync=True, what="consensus WAL records")
