"""Storage faults: failed writes stop the node cleanly, damaged files are named at start-up.

Three ways to make a block write fail, from most controlled to most real:
the store's test-only fault hook (what ``LENDCHAIN_FAULTS_FILE`` drives in a
node process), a file-size limit (RLIMIT_FSIZE: the kernel refuses LevelDB's
write with EFBIG, no privileges needed), and a full tmpfs (ENOSPC; only as
root). Each ends the same way: one StoreError naming the data directory and
the cause, nothing half-written, and a clean reopen once the cause is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import plyvel
import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey
from lendchain.ledger.block import check_block
from lendchain.node.checksums import ChecksumCheck
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.faults import ENV as FAULTS_ENV
from lendchain.node.replay import verify_chain
from lendchain.node.store import RECENT_BLOCKS_CHECKED, ChainStore, StoreError
from lendchain.node.testnet import generate_testnet
from tests.ledger.chain import Chain, make_genesis
from tests.node.test_store import grow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def genesis():
    return make_genesis()[0]


def replay(store: ChainStore) -> Chain:
    """A test Chain at the store's head, rebuilt by re-executing every stored block."""
    chain = Chain.start(store.genesis)
    for height in range(1, store.head().height + 1):
        block, execution = check_block(
            store.block_bytes(height),
            expected_height=height,
            parent_hash=chain.head_hash,
            parent_timestamp_ms=chain.head_ms,
            reader=chain.state,
            now_ms=None,
            max_skew_ms=0,
            chain_id=store.genesis.chain_id,
        )
        chain.apply(block, execution)
    return chain


def commit_empty_block(store: ChainStore, chain: Chain) -> None:
    block, execution = chain.cut([])
    store.commit_block(block.encode(), b"certificate", execution)
    chain.apply(block, execution)


# The store's fault hook --------------------------------------------------------------------


def assert_every_write_refused(store, block, execution, error):
    """A poisoned store refuses WAL records, accepted txs and blocks, each with ``error`` itself."""
    for write in (
        lambda: store.wal_write([(b"vote/4", b"x")]),
        lambda: store.pending_put([(b"t" * 32, b"raw")]),
        lambda: store.commit_block(block.encode(), b"certificate", execution),
    ):
        with pytest.raises(StoreError) as refused:
            write()
        assert refused.value is error


def test_disk_full_on_a_block_write_poisons_the_store_and_loses_nothing(tmp_path, genesis):
    path = tmp_path / "db"
    chain = Chain.start(genesis)
    with ChainStore.open(path, genesis) as store:
        grow(store, chain, 3)
        store.block_write_fault = lambda: "disk_full"
        block, execution = chain.cut([])
        with pytest.raises(StoreError) as info:
            store.commit_block(block.encode(), b"certificate", execution)
        message = str(info.value)
        assert f"writing block 4 to data directory {path} failed" in message
        assert "No space left on device" in message and "blocks up to 3 are stored safely" in message
        assert store.head().height == 3
        # Once a write failed, nothing more goes to LevelDB: not WAL records, not accepted txs,
        # not the block again even with the cause gone (LevelDB would append after a torn record).
        store.block_write_fault = None
        assert_every_write_refused(store, block, execution, info.value)
        with pytest.raises(StoreError, match="No space left"):
            store.raise_if_write_failed()
    with ChainStore.open(path, genesis) as store:
        assert store.head().height == 3 and store.block_bytes(4) is None
        assert store.wal_items() == []
        assert verify_chain(store) == 3
        commit_empty_block(store, chain)
        assert verify_chain(store) == 4


def test_a_failed_fsync_may_keep_the_block_and_the_store_is_consistent_either_way(tmp_path, genesis):
    path = tmp_path / "db"
    chain = Chain.start(genesis)
    with ChainStore.open(path, genesis) as store:
        grow(store, chain, 2)
        store.block_write_fault = lambda: "fsync_error"
        block, execution = chain.cut([])
        with pytest.raises(
            StoreError, match=f"writing block 3 to data directory {path} failed.*Input/output"
        ):
            store.commit_block(block.encode(), b"certificate", execution)
    with ChainStore.open(path, genesis) as store:
        # The batch reached the OS before the "fsync" failed: the block is whole, or absent.
        assert store.head().height in (2, 3)
        assert verify_chain(store) == store.head().height
        chain = replay(store)
        commit_empty_block(store, chain)


# Real write errors from the kernel ----------------------------------------------------------

_LIMITED_WRITER = """
import glob, os, resource, sys
from lendchain.node.store import ChainStore, StoreError
from tests.ledger.chain import Chain, make_genesis
from tests.node.test_store import grow

path = sys.argv[1]
genesis = make_genesis()[0]
store = ChainStore.open(path, genesis)
chain = Chain.start(genesis)
for _ in range(3):
    tx_ids = grow(store, chain, 1, per_block=10)
    print(store.head().height, *(t.hex() for t in tx_ids), flush=True)
# From here no file of this process may grow past 64 KiB more than the biggest one now.
limit = max(os.path.getsize(f) for f in glob.glob(path + "/*")) + 64 * 1024
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    while True:
        tx_ids = grow(store, chain, 1, per_block=10)
        print(store.head().height, *(t.hex() for t in tx_ids), flush=True)
except StoreError as e:
    print("FAILED", e, flush=True)
    sys.exit(3)
"""


def _check_reopens_with_everything_reported(path: Path, genesis, lines: list[str]) -> None:
    reported = [line.split() for line in lines if not line.startswith("FAILED")]
    with ChainStore.open(path, genesis) as store:
        head = store.head().height
        assert head >= int(reported[-1][0])
        for height, *tx_ids in reported:
            for tx_id in tx_ids:
                assert store.tx_location(bytes.fromhex(tx_id))[0] == int(height)
        assert verify_chain(store) == head
        commit_empty_block(store, replay(store))
        assert verify_chain(store) == head + 1


def test_a_kernel_write_error_mid_stream_stops_the_writer_and_the_store_reopens(tmp_path, genesis):
    path = tmp_path / "db"
    run = subprocess.run(
        [sys.executable, "-c", _LIMITED_WRITER, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = run.stdout.splitlines()
    assert run.returncode == 3, run.stderr
    assert lines[-1].startswith("FAILED writing "), lines[-1]
    assert f"to data directory {path} failed" in lines[-1] and "File too large" in lines[-1]
    assert len(lines) > 4, "the limit should leave room for some blocks"
    _check_reopens_with_everything_reported(path, genesis, lines)


def test_a_full_tmpfs_stops_the_writer_and_the_store_reopens_when_space_is_back(tmp_path, genesis):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the RLIMIT_FSIZE test covers write errors")
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        path = mount / "db"
        lines = []
        chain = Chain.start(genesis)
        with ChainStore.open(path, genesis) as store:
            with pytest.raises(StoreError) as info:
                for _ in range(10_000):
                    tx_ids = grow(store, chain, 1, per_block=10)
                    lines.append(" ".join([str(store.head().height), *(t.hex() for t in tx_ids)]))
        assert f"to data directory {path} failed" in str(info.value)
        assert "No space left on device" in str(info.value)
        assert len(lines) > 3
        subprocess.run(["mount", "-o", "remount,size=32m", str(mount)], check=True)
        _check_reopens_with_everything_reported(path, genesis, lines)
    finally:
        subprocess.run(["umount", str(mount)], check=True)


# Damaged LevelDB files ------------------------------------------------------------------------


# More blocks than open's own consistency checks read (the head and 16 below it), so damage
# at the start of a table (block 1) is found by the background checksum check alone.
OLD_BLOCKS = RECENT_BLOCKS_CHECKED + 8


def _store_with_tables(path: Path, genesis, blocks: int = OLD_BLOCKS) -> Chain:
    """A store whose records sit in .ldb table files (not only in the log), block 1 first."""
    chain = Chain.start(genesis)
    with ChainStore.open(path, genesis) as store:
        grow(store, chain, blocks)
    db = plyvel.DB(str(path))
    db.compact_range()
    db.close()
    assert list(path.glob("*.ldb"))
    return chain


def _open_and_check(path: Path, genesis) -> None:
    """What a node does at start-up: open (quick checks), then the background checksum check."""
    with ChainStore.open(path, genesis) as store:
        assert store.wait_verified(timeout_s=30)


def _flip_byte(file: Path, offset: int) -> None:
    with open(file, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x40]))


def _truncate(file: Path) -> None:
    os.truncate(file, file.stat().st_size // 2)


def _table(path: Path) -> Path:
    return max(path.glob("*.ldb"), key=lambda p: p.stat().st_size)


def _manifest(path: Path) -> Path:
    return path / (path / "CURRENT").read_text().strip()


@pytest.mark.parametrize(
    ("damage", "needles"),
    [
        (lambda p: _truncate(_table(p)), ["reading it failed", ".ldb"]),
        (lambda p: _flip_byte(_table(p), 100), ["checksum mismatch", "table files (*.ldb)"]),
        (lambda p: _table(p).unlink(), ["missing files", ".ldb"]),
        (lambda p: _flip_byte(_manifest(p), 12), ["checksum mismatch", "MANIFEST-"]),
        (lambda p: _truncate(_manifest(p)), ["MANIFEST-"]),
        (lambda p: (p / "CURRENT").write_text("garbage"), ["CURRENT"]),
        (lambda p: (p / "CURRENT").write_text("MANIFEST-999999\n"), ["MANIFEST-999999"]),
    ],
    ids=[
        "truncated-table",
        "bit-flipped-table",
        "missing-table",
        "bit-flipped-manifest",
        "truncated-manifest",
        "garbage-current",
        "current-to-nowhere",
    ],
)
def test_a_damaged_leveldb_file_is_named_at_start_up(tmp_path, genesis, damage, needles):
    path = tmp_path / "db"
    _store_with_tables(path, genesis)
    _open_and_check(path, genesis)  # undamaged, the check passes
    damage(path)
    with pytest.raises(StoreError) as info:
        _open_and_check(path, genesis)
    message = str(info.value)
    assert f"data directory {path} is damaged" in message
    assert "restore it from a peer or a backup" in message
    for needle in needles:
        assert needle in message, message


def test_damage_the_background_check_finds_poisons_the_store_like_a_failed_write(tmp_path, genesis):
    path = tmp_path / "db"
    chain = _store_with_tables(path, genesis)
    _flip_byte(_table(path), 100)  # inside block 1, which open itself does not read
    with ChainStore.open(path, genesis, key_filter=True) as store:  # the head and recent blocks are sound
        assert store.head().height == OLD_BLOCKS
        with pytest.raises(StoreError) as info:
            store.wait_verified(timeout_s=30)
        assert f"data directory {path} is damaged" in str(info.value)
        assert "checksum mismatch" in str(info.value)
        assert store.damage is info.value
        assert not store.absent.ready  # a pass that found damage leaves every read to LevelDB
        # The daemon polls this every second and stops on it.
        with pytest.raises(StoreError) as polled:
            store.raise_if_write_failed()
        assert polled.value is info.value
        block, execution = chain.cut([])
        assert_every_write_refused(store, block, execution, info.value)
        with pytest.raises(StoreError, match="checksum mismatch"):
            store.block_bytes(1)
        assert store.block(OLD_BLOCKS) is not None


def test_a_sound_store_passes_the_background_check_and_close_stops_it(tmp_path, genesis):
    path = tmp_path / "db"
    _store_with_tables(path, genesis)
    (path / "verify-snapshot").mkdir()  # left by a node killed mid-check
    with ChainStore.open(path, genesis, key_filter=True) as store:
        assert store.wait_verified(timeout_s=30)
        assert store.absent.ready  # the pass told the filter of absent state keys every key
        store.raise_if_write_failed()
        assert verify_chain(store) == OLD_BLOCKS
        assert not (path / "verify-snapshot").exists()  # the check's hard links are gone
    store = ChainStore.open(path, genesis)
    store.close()  # at once, mid-check or not: the checking thread is gone when close returns
    assert not store._check.is_alive()


def test_without_a_snapshot_the_check_reads_the_store_itself_and_still_finds_damage(
    tmp_path, genesis, monkeypatch
):
    def no_hard_links(self, snapshot):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(ChecksumCheck, "_open_snapshot", no_hard_links)
    path = tmp_path / "db"
    _store_with_tables(path, genesis)
    _open_and_check(path, genesis)
    _flip_byte(_table(path), 100)
    with pytest.raises(StoreError, match=f"{path} is damaged.*checksum mismatch"):
        _open_and_check(path, genesis)


def test_a_bit_flip_in_the_log_is_named_at_start_up(tmp_path, genesis):
    path = tmp_path / "db"
    with ChainStore.open(path, genesis) as store:
        grow(store, Chain.start(genesis), 3)
    [log] = path.glob("*.log")
    _flip_byte(log, log.stat().st_size // 2)
    with pytest.raises(StoreError, match=f"{path} is damaged.*checksum mismatch.*{log.name}"):
        ChainStore.open(path, genesis)


def test_a_log_torn_at_its_tail_is_a_crash_not_damage(tmp_path, genesis):
    path = tmp_path / "db"
    chain = Chain.start(genesis)
    with ChainStore.open(path, genesis) as store:
        grow(store, chain, 3)
        commit_empty_block(store, chain)
    [log] = path.glob("*.log")
    os.truncate(log, log.stat().st_size - 7)  # the last record (block 4) was cut short
    with ChainStore.open(path, genesis) as store:
        assert store.head().height == 3
        assert verify_chain(store) == 3


# A node process ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["disk_full", "fsync_error"])
def test_a_node_stops_on_a_failed_block_write_and_catches_up_after_restart(tmp_path, fault):
    p2p = free_port_block(5)
    api = free_port_block(5, start=p2p + 10)
    layout = generate_testnet(tmp_path / "net", 4, p2p_base_port=p2p, api_base_port=api)
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    faults = tmp_path / "bank4.faults.json"
    cluster["bank4"].env[FAULTS_ENV] = str(faults)
    cluster.start_all()
    try:
        cluster.wait_healthy(timeout_s=90)
        bank4 = cluster["bank4"]
        with NodeClient(cluster["bank1"].url, timeout=10) as c:
            c.send(SigningKey.generate(), "party.register", {"role": "borrower"})
            cluster.wait_agree(timeout_s=60)
            faults.write_text(json.dumps({"store_fault": fault}))
            wait_for(lambda: f"store_fault={fault}" in bank4.log_tail(), 10, "bank4 to load the fault")
            c.send(SigningKey.generate(), "party.register", {"role": "borrower"})
            wait_for(lambda: not bank4.running, 30, "bank4 to stop on its failed block write")
            log = bank4.log_path.read_text()
            assert bank4.process.returncode == 1, log
            assert "Traceback" not in log
            stopped = next(line for line in log.splitlines() if "stopped:" in line)
            cause = "No space left on device" if fault == "disk_full" else "Input/output error"
            assert f"to data directory {bank4.config.data_dir} failed" in stopped and cause in stopped
            for _ in range(3):  # the others go on without bank4
                c.send(SigningKey.generate(), "party.register", {"role": "borrower"})
        faults.write_text("{}")
        cluster.start("bank4")
        cluster.wait_healthy(["bank4"])
        cluster.wait_agree(timeout_s=60)
    finally:
        codes = cluster.stop_all()
    assert codes["bank4"] == 0
    with ChainStore.open(bank4.config.data_dir, layout.genesis, create=False) as store:
        assert store.head().height >= 5
        assert verify_chain(store) == store.head().height


@pytest.mark.slow
def test_a_node_on_a_damaged_table_stops_and_names_the_damage(tmp_path):
    p2p = free_port_block(5)
    api = free_port_block(5, start=p2p + 10)
    layout = generate_testnet(tmp_path / "net", 4, p2p_base_port=p2p, api_base_port=api)
    cluster = Cluster([layout.configs[0]], tmp_path / "logs")
    bank1 = cluster["bank1"]
    _store_with_tables(bank1.config.data_dir, layout.genesis)
    _flip_byte(_table(bank1.config.data_dir), 100)  # block 1: start-up itself reads none of it
    cluster.start("bank1")
    try:
        wait_for(lambda: not bank1.running, 30, "bank1 to stop on the damage its checksum check found")
    finally:
        cluster.stop_all()
    log = bank1.log_path.read_text()
    assert bank1.process.returncode == 1, log
    assert "Traceback" not in log and "cannot start" not in log  # it started, then found the damage
    stopped = next(line for line in log.splitlines() if "stopped:" in line)
    assert f"data directory {bank1.config.data_dir} is damaged" in stopped
    assert "checksum mismatch" in stopped
