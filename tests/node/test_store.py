"""The LevelDB chain store: commit, reopen, refusals, corruption, crash safety, WAL."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import plyvel
import pytest
import trio

from lendchain import codec
from lendchain.ledger.block import check_block
from lendchain.ledger.state import STATE_ROOT_KEY, genesis_state_root
from lendchain.node.driver import SyncServer, decode_sync_response
from lendchain.node.replay import verify_chain
from lendchain.node.store import ChainStore, StoreError, StoreInUse
from tests.ledger.chain import KYC_MEMBER, Chain, make_genesis, member_key, seeded_key

REPO = Path(__file__).resolve().parents[2]
APPLY = {"amount": 10_000, "currency": "EUR", "term_months": 3, "purpose": "tools"}


def grow(store: ChainStore, chain: Chain, blocks: int, per_block: int = 3) -> list[bytes]:
    """Commit ``blocks`` blocks of loan applications; return the committed tx ids.

    The first block registers the ``per_block`` borrowers and then has a kyc
    member attest each of them (``per_block`` more txs); later blocks apply.
    """
    tx_ids = []
    for _ in range(blocks):
        txs, attests = [], []
        for i in range(per_block):
            key = seeded_key(1 + i)
            if chain.nonces.get(key.did):
                txs.append(chain.tx(key, "loan.apply", APPLY))
            else:
                txs.append(chain.tx(key, "party.register", {"role": "borrower"}))
                attests.append(chain.attest(member_key(KYC_MEMBER), key.did))
        txs += attests
        block, execution = chain.cut(txs)
        store.commit_block(block.encode(), b"certificate-%d" % block.header.height, execution)
        chain.apply(block, execution)
        tx_ids += execution.tx_ids
    return tx_ids


@pytest.fixture
def genesis():
    return make_genesis()[0]


def test_new_store_is_at_genesis(tmp_path, genesis):
    with ChainStore.open(tmp_path / "db", genesis) as store:
        head = store.head()
        assert (head.height, head.hash, head.timestamp_ms) == (0, genesis.hash(), genesis.genesis_time_ms)
        assert head.state_root == genesis_state_root(genesis)
        assert store.block(1) is None and store.height_of_hash(genesis.hash()) == 0
        assert store.wal_items() == []


def test_commit_and_reopen_keep_everything(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        tx_ids = grow(store, chain, 5)
        head = store.head()
    with ChainStore.open(tmp_path / "db", genesis, create=False) as store:
        assert store.head() == head and head.height == 5
        assert head.hash == chain.head_hash and head.state_root == chain.state.get(STATE_ROOT_KEY)
        for height, (raw, _) in enumerate(chain.blocks, start=1):
            assert store.block_bytes(height) == raw
            assert store.certificate(height) == b"certificate-%d" % height
            assert store.height_of_hash(store.block(height).hash()) == height
        height, index, result = store.tx_location(tx_ids[-1])
        assert (height, index, result.code) == (5, 2, "ok")
        assert result.to_json()["events"][0]["event"] == "loan.applied"
        for key, value in chain.state.values.items():
            assert store.get(key) == value
        assert verify_chain(store) == 5


def test_memory_estimate_grows_with_writes_and_is_zero_once_closed(tmp_path, genesis):
    chain = Chain.start(genesis)
    store = ChainStore.open(tmp_path / "db", genesis)
    before = store.memory_bytes()
    grow(store, chain, 3)
    assert store.memory_bytes() > before > 0  # the memtable holds the blocks just written
    store.close()
    assert store.memory_bytes() == 0  # a scrape during shutdown does not fail


def _tables_hold(path: Path, needle: bytes) -> bool:
    return any(needle in table.read_bytes() for table in path.glob("*.ldb"))


def test_compression_is_chosen_per_store_and_either_setting_reads_the_other(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis, compression="snappy") as store:
        grow(store, chain, 4)
        store._db.compact_range()  # flush the memtable: table files written with snappy
    assert not any(_tables_hold(tmp_path / "db", raw) for raw, _ in chain.blocks)
    with ChainStore.open(tmp_path / "db", genesis, create=False, compression="none") as store:
        grow(store, chain, 2)
        store._db.compact_range()
        assert [store.block_bytes(h) for h in range(1, 7)] == [raw for raw, _ in chain.blocks]
        assert verify_chain(store) == 6
    # The blocks written since hold their bytes verbatim in the table files.
    assert _tables_hold(tmp_path / "db", chain.blocks[-1][0])
    with ChainStore.open(tmp_path / "db", genesis, create=False, compression="snappy") as store:
        assert verify_chain(store) == 6
    with pytest.raises(ValueError, match="compression must be one of none, snappy, not 'zlib'"):
        ChainStore.open(tmp_path / "db", genesis, compression="zlib")


def test_commit_refuses_out_of_order_blocks(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        block, execution = chain.cut([])
        store.commit_block(block.encode(), b"c", execution)
        with pytest.raises(StoreError, match="cannot store block 1 on head 1"):
            store.commit_block(block.encode(), b"c", execution)
        chain.apply(block, execution)
        other = Chain.start(genesis)
        other.height, other.head_hash = 1, bytes(32)
        fork, fork_exec = other.cut([])
        with pytest.raises(StoreError, match="not on the stored head"):
            store.commit_block(fork.encode(), b"c", fork_exec)
        _, wrong_exec = chain.cut([chain.tx(seeded_key(1), "party.register", {"role": "borrower"})])
        block2, _ = chain.cut([])
        with pytest.raises(StoreError, match="state root is not the one"):
            store.commit_block(block2.encode(), b"c", wrong_exec)
        assert store.head().height == 1


def test_refuses_a_directory_of_another_chain(tmp_path, genesis):
    ChainStore.open(tmp_path / "db", genesis).close()
    other, _ = make_genesis([("lender",)])
    with pytest.raises(StoreError, match="belongs to chain 'lendchain-ledger-test' with genesis"):
        ChainStore.open(tmp_path / "db", other)


def test_refuses_a_directory_of_another_store_format_and_says_what_to_do(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        grow(store, chain, 2)
    _tamper(tmp_path / "db", b"m:format", codec.pack(1))
    with pytest.raises(StoreError, match="holds store format 1, and this lendchain reads format 2"):
        ChainStore.open(tmp_path / "db", genesis)
    _tamper(tmp_path / "db", b"m:format", None)
    with pytest.raises(StoreError, match="store format unknown.*start the node on an empty data directory"):
        ChainStore.open(tmp_path / "db", genesis)
    _tamper(tmp_path / "db", b"m:format", b"\xc1")
    with pytest.raises(StoreError, match="store format unreadable"):
        ChainStore.open(tmp_path / "db", genesis)


def test_tx_results_are_stored_per_block_and_the_tx_index_holds_only_their_place(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        tx_ids = grow(store, chain, 3)
        assert store.has_tx(tx_ids[0]) and not store.has_tx(bytes(32))
        assert store.tx_location(bytes(32)) is None
    db = plyvel.DB(str(tmp_path / "db"))
    try:
        assert codec.unpack(db.get(b"t:" + tx_ids[-1])) == [3, 2]
        results = [codec.unpack(value) for _, value in db.iterator(prefix=b"r:")]
    finally:
        db.close()
    assert [len(r) for r in results] == [6, 3, 3]  # block 1: 3 registrations + 3 attestations
    assert results[2][2][0] == "ok" and results[2][2][2][0]["event"] == "loan.applied"


def test_refuses_missing_dir_without_create_and_foreign_leveldb(tmp_path, genesis):
    with pytest.raises(StoreError, match="holds no chain store"):
        ChainStore.open(tmp_path / "nothing", genesis, create=False)
    db = plyvel.DB(str(tmp_path / "foreign"), create_if_missing=True)
    db.put(b"hello", b"world")
    db.close()
    with pytest.raises(StoreError, match="not a lendchain chain store"):
        ChainStore.open(tmp_path / "foreign", genesis)


def test_refuses_a_directory_in_use(tmp_path, genesis):
    with ChainStore.open(tmp_path / "db", genesis):
        with pytest.raises(StoreInUse, match="in use by another process"):
            ChainStore.open(tmp_path / "db", genesis)


def _tamper(path: Path, key: bytes, value: bytes | None) -> None:
    db = plyvel.DB(str(path))
    if value is None:
        db.delete(key)
    else:
        db.put(key, value)
    db.close()


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        (b"b:" + struct.pack(">Q", 4), b"\x93garbage", "stored block 4 is damaged"),
        (b"b:" + struct.pack(">Q", 4), None, "block 4 is missing"),
        (b"b:" + struct.pack(">Q", 2), b"\x01", "stored block 2 is damaged"),
        (
            b"s:" + STATE_ROOT_KEY,
            bytes(32),
            "state root in the state does not match the head record at height 4",
        ),
        (b"c:" + struct.pack(">Q", 4), None, "block 4 has no commit certificate"),
        (b"r:" + struct.pack(">Q", 4), None, "block 4 has no stored tx results"),
        (b"m:head", b"\xc1", "head record"),
    ],
)
def test_corruption_is_named_on_open(tmp_path, genesis, key, value, needle):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        grow(store, chain, 4)
    _tamper(tmp_path / "db", key, value)
    with pytest.raises(StoreError, match=needle) as info:
        ChainStore.open(tmp_path / "db", genesis)
    assert "restore it from a peer" in str(info.value)


def test_head_state_root_disagreeing_with_the_block(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        grow(store, chain, 3)
        head = store.head()
    _tamper(tmp_path / "db", b"m:head", codec.pack([3, head.hash, bytes(32), head.timestamp_ms]))
    _tamper(tmp_path / "db", b"s:" + STATE_ROOT_KEY, bytes(32))
    with pytest.raises(StoreError, match="state root at head 3 does not match block 3's header"):
        ChainStore.open(tmp_path / "db", genesis)


def test_block_swapped_below_the_head_breaks_the_hash_links(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        grow(store, chain, 4)
    other = Chain.start(genesis)
    other.height, other.head_hash = 1, bytes(32)
    fake, _ = other.cut([])
    _tamper(tmp_path / "db", b"b:" + struct.pack(">Q", 2), fake.encode())
    with pytest.raises(StoreError, match="block 3 does not link to block 2"):
        ChainStore.open(tmp_path / "db", genesis)


def test_verify_chain_finds_tampered_state_and_index(tmp_path, genesis):
    chain = Chain.start(genesis)
    with ChainStore.open(tmp_path / "db", genesis) as store:
        tx_ids = grow(store, chain, 3)
    _tamper(tmp_path / "db", b"s:params", codec.pack({"currencies": ["XXX"]}))
    with ChainStore.open(tmp_path / "db", genesis) as store:
        with pytest.raises(StoreError, match="stored state key b'params' differs"):
            verify_chain(store)
    _tamper(tmp_path / "db", b"s:params", None)
    _tamper(tmp_path / "db", b"s:extra", b"\x01")
    with ChainStore.open(tmp_path / "db", genesis) as store:
        with pytest.raises(StoreError, match="stored state key b'params' differs"):
            verify_chain(store)
    _tamper(tmp_path / "db", b"s:params", chain.state.get(b"params"))
    with ChainStore.open(tmp_path / "db", genesis) as store:
        with pytest.raises(StoreError, match="stored state key b'extra' is not in the replay"):
            verify_chain(store)
    _tamper(tmp_path / "db", b"s:extra", None)
    # Block 1 holds 3 registrations and 3 attestations, so tx_ids[7] is tx 1 of block 2.
    _tamper(tmp_path / "db", b"t:" + tx_ids[7], codec.pack([2, 0]))
    with ChainStore.open(tmp_path / "db", genesis) as store:
        with pytest.raises(StoreError, match="tx index entry of tx 1 in block 2"):
            verify_chain(store)


def test_wal_records_survive_reopen_and_empty_value_deletes(tmp_path, genesis):
    with ChainStore.open(tmp_path / "db", genesis) as store:
        store.wal_write([(b"view", b"\x01"), (b"vote/5", b"abc"), (b"vote/6", b"def")])
        store.wal_write([(b"vote/5", b"")])
    with ChainStore.open(tmp_path / "db", genesis) as store:
        assert store.wal_items() == [(b"view", b"\x01"), (b"vote/6", b"def")]
        assert store.get(b"view") is None  # WAL keys never leak into the ledger state


# Crash safety -----------------------------------------------------------------------------

_WRITER = """
import sys
from lendchain.node.store import ChainStore
from tests.ledger.chain import Chain, make_genesis
from tests.node.test_store import grow

genesis = make_genesis()[0]
store = ChainStore.open(sys.argv[1], genesis)
chain = Chain.start(genesis)
while True:
    tx_ids = grow(store, chain, 1, per_block=20)
    print(store.head().height, *(t.hex() for t in tx_ids), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("after_blocks", [3, 17])
def test_sigkill_while_committing_leaves_a_consistent_reopenable_store(tmp_path, genesis, after_blocks):
    path = tmp_path / "db"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    reported: list[tuple[int, list[str]]] = []
    deadline = time.monotonic() + 60
    try:
        while len(reported) < after_blocks:
            line = child.stdout.readline()
            assert line, f"writer exited early with {child.poll()}"
            height, *tx_ids = line.split()
            reported.append((int(height), tx_ids))
            assert time.monotonic() < deadline, "writer did not commit blocks within 60 s"
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-stream: likely inside a later commit
        child.wait()
    with ChainStore.open(path, genesis) as store:
        head = store.head().height
        assert head >= reported[-1][0]
        for height, tx_ids in reported:
            for tx_id in tx_ids:
                assert store.tx_location(bytes.fromhex(tx_id))[0] == height
        assert verify_chain(store) == head
        # Nonces continue from the committed head.
        chain = Chain.start(genesis)
        for height in range(1, head + 1):
            block, execution = check_block(
                store.block_bytes(height),
                expected_height=chain.height + 1,
                parent_hash=chain.head_hash,
                parent_timestamp_ms=chain.head_ms,
                reader=chain.state,
                now_ms=None,
                max_skew_ms=0,
                chain_id=genesis.chain_id,
            )
            chain.apply(block, execution)
        chain.nonces = {seeded_key(1 + i).did: head for i in range(20)}
        grow(store, chain, 1, per_block=20)
        assert store.head().height == head + 1


def test_accepted_txs_survive_reopen_and_only_held_ones_are_deleted(tmp_path, genesis, monkeypatch):
    with ChainStore.open(tmp_path / "db", genesis) as store:
        store.pending_put([(b"a" * 32, b"raw-a"), (b"b" * 32, b"raw-b")])
    with ChainStore.open(tmp_path / "db", genesis) as store:
        assert store.pending_items() == [(b"a" * 32, b"raw-a"), (b"b" * 32, b"raw-b")]
        writes: list[list] = []
        real = store._write
        monkeypatch.setattr(store, "_write", lambda ops, **kw: writes.append(ops) or real(ops, **kw))
        store.pending_delete([b"c" * 32, b"d" * 32])  # came by gossip: never stored here
        assert writes == []
        store.pending_delete([b"c" * 32, b"a" * 32])
        assert writes == [[(b"p:" + b"a" * 32, None)]]
        assert store.pending_items() == [(b"b" * 32, b"raw-b")]


def test_retired_node_keys_are_kept_per_member_across_a_reopen(tmp_path, genesis):
    first, second, other = (seeded_key(n).public_key for n in (60, 61, 62))
    with ChainStore.open(tmp_path / "db", genesis) as store:
        assert store.retired_keys() == {}
        store.retire_keys("bank2", [second])
        store.retire_keys("bank2", [first, second])
        store.retire_keys("bank3", [other])
    with ChainStore.open(tmp_path / "db", genesis, create=False) as store:
        assert store.retired_keys() == {"bank2": sorted([first, second]), "bank3": [other]}
        assert verify_chain(store) == 0  # a node's own record, not chain data


def test_sync_answers_a_removed_member_no_block_above_its_removal(tmp_path, genesis):
    store = ChainStore.open(tmp_path / "s", genesis, create=True)
    try:
        grow(store, Chain.start(genesis), 5)
        server = SyncServer(store)
        ask = codec.pack({"from": 2, "to": 64})
        head, blocks = decode_sync_response(trio.run(server.handle, "bank2", ask))
        assert head == 5 and [height for height, _, _ in blocks] == [2, 3, 4, 5]
        assert blocks[0][1:] == (store.block_bytes(2), store.certificate(2))
        head, blocks = decode_sync_response(trio.run(lambda: server.handle("bank5", ask, up_to=3)))
        assert head == 3 and [height for height, _, _ in blocks] == [2, 3]  # 3 removed it
        later = codec.pack({"from": 4, "to": 64})
        assert decode_sync_response(trio.run(lambda: server.handle("bank5", later, up_to=3))) == (3, [])
        bad = trio.run(server.handle, "bank2", b"\x00")
        assert codec.unpack(bad) == {"error": "bad sync request"}
    finally:
        store.close()
