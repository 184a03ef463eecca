"""Backups of a chain store taken while it is written: complete, checked, without the WAL."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from lendchain.node import backup as backup_module
from lendchain.node import checksums as checksums_module
from lendchain.node.backup import (
    INFO_FILE,
    BackupError,
    check_name,
    default_name,
    node_backups,
    prune_backups,
    take_backup,
)
from lendchain.node.replay import verify_chain
from lendchain.node.store import ChainStore, StoreError
from tests.ledger.chain import Chain, make_genesis
from tests.node.test_store import grow


@pytest.fixture
def chain_and_store(tmp_path):
    genesis, _ = make_genesis()
    store = ChainStore.open(tmp_path / "data", genesis)
    chain = Chain.start(genesis)
    yield chain, store
    store.close()


def test_a_backup_holds_every_block_but_not_the_wal_and_replays(tmp_path, chain_and_store):
    chain, store = chain_and_store
    tx_ids = grow(store, chain, 6)
    store.wal_write([(b"vote", b"prepare 7")])
    info = take_backup(store, tmp_path / "backups" / "b1", "bank1")

    head = store.head()
    assert (info["height"], info["head_hash"], info["state_root"]) == (
        head.height,
        head.hash.hex(),
        head.state_root.hex(),
    )
    assert info["node"] == "bank1" and info["chain_id"] == store.genesis.chain_id and info["bytes"] > 0
    assert json.loads((tmp_path / "backups" / "b1" / INFO_FILE).read_text())["height"] == head.height
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == ["b1"]  # no partial left
    assert store.wal_items() == [(b"vote", b"prepare 7")]  # the node's own store keeps its WAL
    with ChainStore.open(tmp_path / "backups" / "b1", store.genesis, create=False) as copy:
        assert copy.head() == head
        assert copy.wal_items() == []
        assert all(copy.has_tx(tx_id) for tx_id in tx_ids)
        assert verify_chain(copy) == head.height


def test_blocks_committed_during_the_copy_leave_the_backup_at_an_earlier_whole_block(
    tmp_path, chain_and_store, monkeypatch
):
    chain, store = chain_and_store
    grow(store, chain, 3)
    before = store.head()
    real_copy = backup_module.shutil.copyfile
    grown = []

    def copy_while_the_node_commits(source, target):
        if not grown:
            grown.append(grow(store, chain, 2))  # lands after the flush, so not in this backup
        return real_copy(source, target)

    monkeypatch.setattr(backup_module.shutil, "copyfile", copy_while_the_node_commits)
    info = take_backup(store, tmp_path / "b", "bank1")
    assert info["height"] == before.height and store.head().height == before.height + 2
    with ChainStore.open(tmp_path / "b", store.genesis, create=False) as copy:
        assert verify_chain(copy) == before.height


def no_hard_links(monkeypatch, error: int = errno.EPERM) -> list[str]:
    """Make ``os.link`` fail as it does on a filesystem without hard links; the names it was asked for."""
    asked: list[str] = []

    def refuse(source, target, *args, **kwargs):
        asked.append(Path(source).name)
        raise OSError(error, os.strerror(error), str(target))

    monkeypatch.setattr(checksums_module.os, "link", refuse)
    return asked


def test_without_hard_links_the_tables_are_copied_and_the_backup_is_as_complete(
    tmp_path, chain_and_store, monkeypatch
):
    chain, store = chain_and_store
    tx_ids = grow(store, chain, 5)
    store.flush_memtable()  # so there are tables to link
    asked = no_hard_links(monkeypatch)
    info = take_backup(store, tmp_path / "backups" / "b1", "bank1")
    assert asked and info["tables"] == "copied"
    assert info["height"] == store.head().height
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == ["b1"]
    assert not (store.path / backup_module.SNAPSHOT_DIR).exists()
    with ChainStore.open(tmp_path / "backups" / "b1", store.genesis, create=False) as copy:
        assert all(copy.has_tx(tx_id) for tx_id in tx_ids)
        assert verify_chain(copy) == store.head().height


def test_with_hard_links_the_backup_says_it_linked(tmp_path, chain_and_store):
    chain, store = chain_and_store
    grow(store, chain, 2)
    assert take_backup(store, tmp_path / "b", "bank1")["tables"] == "linked"


def test_a_table_compacted_away_during_a_copy_without_links_is_tried_again(
    tmp_path, chain_and_store, monkeypatch
):
    """The MANIFEST copy names a table that is gone when its copy opens it: a later try succeeds."""
    chain, store = chain_and_store
    grow(store, chain, 3)
    store.flush_memtable()
    no_hard_links(monkeypatch)
    real_copy = backup_module.shutil.copyfile
    vanished = []

    def copy_after_a_compaction(source, target):
        if not vanished and Path(source).suffix == ".ldb":
            vanished.append(Path(source).name)
            raise FileNotFoundError(2, "No such file or directory", str(source))
        return real_copy(source, target)

    monkeypatch.setattr(backup_module.shutil, "copyfile", copy_after_a_compaction)
    info = take_backup(store, tmp_path / "b", "bank1")
    assert vanished and info["tables"] == "copied" and info["height"] == store.head().height
    with ChainStore.open(tmp_path / "b", store.genesis, create=False) as copy:
        assert verify_chain(copy) == store.head().height


def test_a_link_error_that_is_not_about_hard_links_fails_the_backup(tmp_path, chain_and_store, monkeypatch):
    chain, store = chain_and_store
    grow(store, chain, 2)
    store.flush_memtable()
    no_hard_links(monkeypatch, errno.ENOSPC)
    with pytest.raises(BackupError, match="No space left on device"):
        take_backup(store, tmp_path / "b", "bank1")
    assert list(tmp_path.glob("*b")) == [] and list(tmp_path.glob(".b*")) == []
    assert not (store.path / backup_module.SNAPSHOT_DIR).exists()


def test_an_existing_destination_is_refused_and_left_alone(tmp_path, chain_and_store):
    _, store = chain_and_store
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep").write_text("mine")
    with pytest.raises(BackupError, match="already exists; choose another name"):
        take_backup(store, tmp_path / "taken", "bank1")
    assert (tmp_path / "taken" / "keep").read_text() == "mine"


def test_a_store_that_starts_closing_stops_the_backup_and_leaves_nothing(
    tmp_path, chain_and_store, monkeypatch
):
    chain, store = chain_and_store
    grow(store, chain, 2)
    real_copy = backup_module.shutil.copyfile

    def copy_then_close(source, target):
        real_copy(source, target)
        store.closing.set()  # what ChainStore.close does first

    monkeypatch.setattr(backup_module.shutil, "copyfile", copy_then_close)
    with pytest.raises(BackupError, match="the node is stopping"):
        take_backup(store, tmp_path / "b", "bank1")
    assert list(tmp_path.glob("*b*")) == [] and not (store.path / backup_module.SNAPSHOT_DIR).exists()


def test_close_waits_for_a_flush_in_progress_and_a_flush_after_close_is_refused(tmp_path):
    genesis, _ = make_genesis()
    store = ChainStore.open(tmp_path / "data", genesis)
    flushed = threading.Thread(target=store.flush_memtable)
    flushed.start()
    store.close()
    flushed.join()
    with pytest.raises(StoreError, match="is closed"):
        store.flush_memtable()


def test_a_damaged_store_gives_no_backup(tmp_path, chain_and_store):
    chain, store = chain_and_store
    grow(store, chain, 3)
    store.flush_memtable()
    table = max(store.path.glob("*.ldb"), key=lambda p: p.stat().st_size)
    data = bytearray(table.read_bytes())
    data[len(data) // 3] ^= 0xFF  # a flipped byte in a data block: its checksum fails
    table.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="no copy read back") as raised:
        take_backup(store, tmp_path / "b", "bank1")
    assert "corrupt" in str(raised.value).lower() or "checksum" in str(raised.value).lower()
    assert list(tmp_path.glob("*b")) == [] and list(tmp_path.glob(".b*")) == []


@pytest.mark.parametrize("name", ["", ".", "..", "../up", "a/b", "-x", "x" * 129, "a b", "é"])
def test_names_that_are_not_plain_directory_names_are_refused(name):
    with pytest.raises(BackupError, match="must be 1-128 letters"):
        check_name(name)


def test_default_names_sort_by_node_then_height():
    assert default_name("bank1", 42, 0) == "bank1-h0000000042-19700101T000000Z"
    assert check_name(default_name("bank1", 42, 1.8e9)) < check_name(default_name("bank1", 1000, 1.7e9))


def _fake_backup(
    where, name: str, node: str, height: int, chain_id: str = "chain-a", created: str = ""
) -> None:
    (where / name).mkdir(parents=True)
    info = {
        "node": node,
        "chain_id": chain_id,
        "height": height,
        "created_utc": created or f"2026-12-05T0{height}",
    }
    (where / name / INFO_FILE).write_text(json.dumps(info))


def test_pruning_keeps_the_newest_of_this_nodes_backups_and_touches_nothing_else(tmp_path):
    for name, node, height in [
        ("a3", "bank1", 3),
        ("a1", "bank1", 1),
        ("a2", "bank1", 2),
        ("b9", "bank2", 9),
    ]:
        _fake_backup(tmp_path, name, node, height)
    _fake_backup(tmp_path, "other-chain", "bank1", 0, chain_id="chain-b")
    (tmp_path / "notes").mkdir()  # not a backup
    (tmp_path / "half" / "x").mkdir(parents=True)  # a directory without an info file
    assert [path.name for _, path in node_backups(tmp_path, "bank1", "chain-a")] == ["a1", "a2", "a3"]
    assert prune_backups(tmp_path, "bank1", "chain-a", keep=2, taken=tmp_path / "a3") == ["a1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a2", "a3", "b9", "half", "notes", "other-chain"]
    # Restored from an old backup, the node writes lower heights than before: by when they
    # were written, those are its newest, and they stay.
    _fake_backup(tmp_path, "restored", "bank1", 1, created="2026-12-06")
    _fake_backup(tmp_path, "latest", "bank1", 2, created="2026-12-07")
    assert prune_backups(tmp_path, "bank1", "chain-a", keep=2, taken=tmp_path / "latest") == ["a2", "a3"]
    with pytest.raises(BackupError, match="keep must be at least 1"):
        prune_backups(tmp_path, "bank1", "chain-a", keep=0, taken=tmp_path / "latest")
