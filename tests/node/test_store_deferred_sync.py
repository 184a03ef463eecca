"""A block written unsynced is made durable by the next synced write, before that write's
records, even when LevelDB moved to a new log file in between (``node/store_writes.py``)."""

from __future__ import annotations

import os

import plyvel
import pytest

from lendchain.node import store_writes
from lendchain.node.store import ChainStore, StoreError
from lendchain.node.store_writes import DeferredSync, apply_batch
from tests.ledger.chain import Chain, make_genesis


def commit_empty_block(store: ChainStore, chain: Chain, durable: bool = True) -> None:
    block, execution = chain.cut([])
    store.commit_block(block.encode(), b"certificate", execution, durable=durable)
    chain.apply(block, execution)


@pytest.fixture
def synced(monkeypatch) -> list[str]:
    """The files fdatasync'ed through ``store_writes``, in order (file names)."""
    files: list[str] = []
    real = store_writes._datasync

    def recording(fd: int) -> None:
        files.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(store_writes, "_datasync", recording)
    return files


def test_a_log_switch_between_the_block_and_the_synced_write_syncs_the_blocks_log_first(
    tmp_path, monkeypatch
):
    asked: list[str] = []  # the logs synced, or skipped when LevelDB deleted one after its flush
    real_sync_file = store_writes.sync_file
    monkeypatch.setattr(
        store_writes, "sync_file", lambda path: (asked.append(path.name), real_sync_file(path))
    )
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True, write_buffer_size=64 * 1024)
    try:
        deferred = DeferredSync(tmp_path / "db")
        deferred.write_unsynced_block(lambda: apply_batch(db, [(b"b:1", b"block 1")], (), False))
        block_log = deferred.unsynced[0]
        assert block_log == deferred.current_log() and deferred.blocks == 1
        # Unsynced writes (the accepted-tx records) fill the memtable: LevelDB opens a new log.
        for i in range(64):
            apply_batch(db, [(b"p:%d" % i, os.urandom(4096))], (), False)
        assert deferred.current_log() != block_log

        deferred.write_synced(lambda: apply_batch(db, [(b"w:vote", b"d")], (), False))

        newer = deferred.current_log()
        assert asked == [block_log.name, newer.name]  # the block's log first, then the vote's
        assert deferred.unsynced == [] and deferred.blocks == 0
    finally:
        db.close()


def test_without_a_switch_the_synced_write_costs_one_sync_of_the_shared_log(tmp_path, synced):
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        deferred = DeferredSync(tmp_path / "db")
        deferred.write_unsynced_block(lambda: apply_batch(db, [(b"b:1", b"block 1")], (), False))
        deferred.write_unsynced_block(lambda: apply_batch(db, [(b"b:2", b"block 2")], (), False))
        assert synced == [] and deferred.blocks == 2
        deferred.write_synced(lambda: apply_batch(db, [(b"w:vote", b"d")], (), False))
        assert synced == [deferred.current_log().name]
        assert db.get(b"b:2") == b"block 2" and db.get(b"w:vote") == b"d"
    finally:
        db.close()


def test_a_store_with_an_unsynced_block_syncs_it_on_close(tmp_path, synced):
    genesis = make_genesis()[0]
    store = ChainStore.open(tmp_path / "bank1", genesis, create=True)
    chain = Chain.start(genesis)
    commit_empty_block(store, chain, durable=False)
    assert synced == [] and store.head().height == 1
    store.close()
    assert len(synced) == 1
    reopened = ChainStore.open(tmp_path / "bank1", genesis, create=False)
    try:
        assert reopened.head().height == 1
    finally:
        reopened.close()


def with_a_deferred_block(path) -> ChainStore:
    """A new store at ``path``: block 1 synced, block 2 written unsynced (deferred)."""
    genesis = make_genesis()[0]
    store = ChainStore.open(path, genesis, create=True)
    chain = Chain.start(genesis)
    commit_empty_block(store, chain)
    commit_empty_block(store, chain, durable=False)
    return store


def fail_every_sync(monkeypatch) -> None:
    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store_writes, "_datasync", failing)


def test_a_failed_sync_of_a_deferred_block_poisons_the_store_and_says_the_block_is_not_safe(
    tmp_path, monkeypatch
):
    store = with_a_deferred_block(tmp_path / "bank1")
    try:
        fail_every_sync(monkeypatch)
        with pytest.raises(StoreError, match="blocks up to 1 are stored safely"):
            store.wal_write([(b"vote/x", b"d")])
        with pytest.raises(StoreError, match="Input/output error"):
            store.wal_write([(b"vote/y", b"d")])  # poisoned: no write reaches LevelDB again
    finally:
        monkeypatch.undo()
        store.close()


def test_a_log_leveldb_deleted_after_flushing_it_needs_no_sync(tmp_path, synced):
    store_writes.sync_file(tmp_path / "000007.log")
    assert synced == []


def test_sync_committed_makes_a_quiet_networks_last_block_durable_once(tmp_path, synced):
    genesis = make_genesis()[0]
    store = ChainStore.open(tmp_path / "bank1", genesis, create=True)
    try:
        store.sync_committed()  # nothing deferred: no write, no sync
        assert synced == []
        chain = Chain.start(genesis)
        commit_empty_block(store, chain, durable=False)
        assert synced == []
        store.sync_committed()
        assert len(synced) == 1  # the block's log
        store.sync_committed()  # synced already: nothing more
        assert len(synced) == 1 and store.head().height == 1
    finally:
        store.close()
    assert len(synced) == 1  # close found nothing left to sync


def test_a_failed_sync_on_close_still_closes_leveldb_and_the_store_reopens(tmp_path, monkeypatch):
    store = with_a_deferred_block(tmp_path / "bank1")
    fail_every_sync(monkeypatch)
    with pytest.raises(StoreError, match="blocks up to 1 are stored safely"):
        store.close()
    monkeypatch.undo()
    # LevelDB's lock is released: a restart opens the directory, with at least the synced block.
    reopened = ChainStore.open(tmp_path / "bank1", make_genesis()[0], create=False)
    try:
        assert reopened.head().height >= 1
    finally:
        reopened.close()
