"""The store's filter of absent state keys (``node/store_absent.py``).

A key the filter calls absent must be one the store does not hold, however
and whenever it was written: before the store was opened (in a table, or in
LevelDB's log after a crash), while the checksum check's pass was reading,
or after. Every other read goes to LevelDB as before.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import weakref

import plyvel
import pytest

from lendchain.node import checksums
from lendchain.node.store import ChainStore
from lendchain.node.store_absent import AbsentKeys
from tests.ledger.chain import Chain, make_genesis, seeded_key

RECENT_BLOCKS = 9  # more than RecentState keeps: later reads of a block's keys reach the filter


def keys(n: int, tag: bytes = b"k") -> list[bytes]:
    return [b"party/" + hashlib.sha256(tag + i.to_bytes(4, "big")).hexdigest().encode() for i in range(n)]


def registrations(chain: Chain, first: int, count: int) -> list:
    return [
        chain.tx(seeded_key(n), "party.register", {"role": "borrower"}) for n in range(first, first + count)
    ]


def commit(store: ChainStore, chain: Chain, txs: list) -> dict[bytes, bytes | None]:
    block, execution = chain.cut(txs)
    store.commit_block(block.encode(), b"certificate", execution)
    chain.apply(block, execution)
    return execution.changes


def written(changes: dict[bytes, bytes | None]) -> dict[bytes, bytes]:
    return {key: value for key, value in changes.items() if value is not None}


def assert_reads_as_leveldb(store: ChainStore, wanted: dict[bytes, bytes]) -> None:
    """Each key reads through ``get`` as LevelDB holds it, and the value given unless a block since
    changed it (the empty blocks committed here, so that the reads pass RecentState by, change the
    state root and the like)."""
    since: set[bytes] = set()
    for _ in range(RECENT_BLOCKS):
        since |= set(commit(store, store_chain[store], []))
    for key, value in wanted.items():
        got = store.get(key)
        assert got is not None and got == store._get(b"s:" + key), key
        assert key in since or got == value, key


def counted_reads(store: ChainStore, monkeypatch) -> list[bytes]:
    """The keys the store reads from LevelDB from now on."""
    reads: list[bytes] = []
    real_get = store._get
    monkeypatch.setattr(store, "_get", lambda key: reads.append(key) or real_get(key))
    return reads


def assert_every_read_goes_to_leveldb(store: ChainStore, monkeypatch) -> None:
    """The pass is over and the filter never answers: even a key never written is read."""
    assert store.wait_verified(timeout_s=30)
    assert not store.absent.ready
    reads = counted_reads(store, monkeypatch)
    assert store.get(keys(1, b"never")[0]) is None and len(reads) == 1


store_chain: weakref.WeakKeyDictionary[ChainStore, Chain] = weakref.WeakKeyDictionary()


@pytest.fixture
def genesis():
    return make_genesis()[0]


def open_store(path, genesis, chain: Chain | None = None) -> ChainStore:
    store = ChainStore.open(path, genesis, create=chain is None, key_filter=True)
    store_chain[store] = chain or Chain.start(genesis)
    return store


def test_a_key_given_is_never_called_absent_as_the_filter_grows():
    absent = AbsentKeys(b"s:", first_capacity=8)
    given, others = keys(5000), keys(5000, b"other")
    absent.add_all(given)
    absent.scanned()
    assert len(absent._filters) >= 9  # 8, 16, ... grown without a rebuild
    assert not any(absent.surely_absent(key) for key in given)
    # Each filter lets ~0.24 % of the others through to LevelDB (16 bits per key, 4 probes);
    # across these ten, ~2.5 %. A store's filters start at 2^18 keys: 3 filters at 1M txs.
    assert sum(map(absent.surely_absent, others)) >= 0.95 * len(others)


def test_the_filter_says_nothing_before_the_pass_read_every_key_and_keeps_only_state_keys():
    absent = AbsentKeys(b"s:")
    assert not absent.surely_absent(b"party/x")  # not ready: every read goes to LevelDB
    absent.seen([b"s:party/a", b"t:party/b", b"b:\x00\x01"])
    assert not absent.surely_absent(b"party/x")
    absent.scanned()
    assert not absent.surely_absent(b"party/a")  # the state key, without the store's prefix
    assert absent.surely_absent(b"party/b") and absent.surely_absent(b"party/x")


def test_two_threads_adding_at_once_lose_no_key():
    absent = AbsentKeys(b"s:", first_capacity=1 << 10)
    left, right = keys(40_000, b"left"), keys(40_000, b"right")

    def add(batch: list[bytes]) -> None:
        for start in range(0, len(batch), 100):
            absent.add_all(batch[start : start + 100])

    threads = [threading.Thread(target=add, args=(batch,)) for batch in (left, right)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    absent.scanned()
    assert not any(absent.surely_absent(key) for key in left + right)


def test_a_reopened_store_answers_absent_keys_from_memory_and_stored_ones_from_leveldb(
    tmp_path, genesis, monkeypatch
):
    path = tmp_path / "bank1"
    store = open_store(path, genesis)
    stored: dict[bytes, bytes] = {}
    for first in range(10, 60, 10):
        stored |= written(commit(store, store_chain[store], registrations(store_chain[store], first, 10)))
    chain = store_chain.pop(store)
    store.close()

    store = open_store(path, genesis, chain)
    try:
        assert store.wait_verified(timeout_s=30) and store.absent.ready
        every = {key: store._get(b"s:" + key) for key in store.state_keys()}
        assert stored.items() <= every.items()
        assert_reads_as_leveldb(store, every)

        reads = counted_reads(store, monkeypatch)
        never = keys(20, b"never")
        assert [store.get(key) for key in never] == [None] * len(never)
        assert len(reads) <= 1  # a false "maybe" (~0.24 %) reads LevelDB, and finds nothing

        new = written(commit(store, chain, registrations(chain, 200, 5)))  # added before it is written
        monkeypatch.undo()
        assert_reads_as_leveldb(store, new)
    finally:
        store.close()


def test_keys_committed_while_the_pass_reads_are_never_called_absent(tmp_path, genesis, monkeypatch):
    path = tmp_path / "bank1"
    store = open_store(path, genesis)
    before = written(commit(store, store_chain[store], registrations(store_chain[store], 10, 10)))
    chain = store_chain.pop(store)
    store.close()

    go_on = threading.Event()
    real_open = checksums.ChecksumCheck._open_snapshot

    def paused(self, snapshot):
        assert go_on.wait(30)
        return real_open(self, snapshot)

    monkeypatch.setattr(checksums.ChecksumCheck, "_open_snapshot", paused)
    store = open_store(path, genesis, chain)
    try:
        during = written(commit(store, chain, registrations(chain, 100, 10)))  # after the flush
        assert not store.absent.ready
        go_on.set()
        assert store.wait_verified(timeout_s=30) and store.absent.ready
        assert_reads_as_leveldb(store, before | during)
    finally:
        go_on.set()
        store.close()


def _commit_and_crash(path, first: int) -> None:
    """Child process: commit a block of registrations, then die without closing the store."""
    genesis = make_genesis()[0]
    store = ChainStore.open(path, genesis, create=True, key_filter=True)
    chain = Chain.start(genesis)
    commit(store, chain, registrations(chain, first, 20))
    os._exit(0)


def test_writes_a_crashed_node_left_in_leveldbs_log_are_in_the_filter(tmp_path, genesis):
    path = tmp_path / "bank1"
    child = multiprocessing.get_context("fork").Process(target=_commit_and_crash, args=(path, 10))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert [p.name for p in path.glob("*.ldb")] == []  # all of it is in LevelDB's log, no table

    chain = Chain.start(genesis)
    block, execution = chain.cut(registrations(chain, 10, 20))  # the block the child committed
    chain.apply(block, execution)
    store = open_store(path, genesis, chain)
    try:
        assert store.head().hash == block.hash()
        assert store.wait_verified(timeout_s=30) and store.absent.ready
        assert_reads_as_leveldb(store, written(execution.changes))
    finally:
        store.close()


def test_without_hard_links_the_pass_reads_the_store_itself_and_the_filter_still_holds_every_key(
    tmp_path, genesis, monkeypatch
):
    def no_hard_links(self, snapshot):
        raise OSError(18, "Invalid cross-device link")

    path = tmp_path / "bank1"
    store = open_store(path, genesis)
    stored = written(commit(store, store_chain[store], registrations(store_chain[store], 10, 10)))
    chain = store_chain.pop(store)
    store.close()
    monkeypatch.setattr(checksums.ChecksumCheck, "_open_snapshot", no_hard_links)
    store = open_store(path, genesis, chain)
    try:
        assert store.wait_verified(timeout_s=30) and store.absent.ready
        assert_reads_as_leveldb(store, stored)
        assert store.get(keys(1, b"never")[0]) is None
    finally:
        store.close()


def test_a_new_store_holds_the_genesis_state_in_its_memtable_and_the_filter_still_has_it(tmp_path, genesis):
    store = open_store(tmp_path / "bank1", genesis)  # the genesis state is written at open, unflushed
    try:
        assert store.wait_verified(timeout_s=30) and store.absent.ready
        genesis_keys = store.state_keys()
        assert len(genesis_keys) > 3
        assert not any(store.absent.surely_absent(key) for key in genesis_keys)
        assert_reads_as_leveldb(store, {key: store._get(b"s:" + key) for key in genesis_keys})
    finally:
        store.close()


def test_a_store_whose_log_holds_records_at_open_never_answers_from_the_filter(
    tmp_path, genesis, monkeypatch
):
    """The pass reads table files only; a log with records at open (LevelDB always writes the log
    it recovers to a table, so this is a stand-in) leaves the filter unready for good."""
    path = tmp_path / "bank1"
    real_db = plyvel.DB

    def with_a_full_log(name, **options):
        db = real_db(name, **options)
        if name == str(path):
            (path / "999999.log").write_bytes(b"records LevelDB kept in its memtable")
        return db

    monkeypatch.setattr(plyvel, "DB", with_a_full_log)
    store = open_store(path, genesis)
    try:
        assert_every_read_goes_to_leveldb(store, monkeypatch)
    finally:
        store.close()
        (path / "999999.log").unlink()


def test_a_store_opened_without_the_filter_reads_every_key_from_leveldb(tmp_path, genesis, monkeypatch):
    store = ChainStore.open(tmp_path / "bank1", genesis)  # a report's source, a backup, verify-chain
    try:
        assert_every_read_goes_to_leveldb(store, monkeypatch)
    finally:
        store.close()
