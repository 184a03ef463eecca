"""A data directory read for a report is left as it was: a private copy is opened, never the directory.

The copy hard-links the table files and copies the small ones LevelDB
rewrites (``datadir_snapshot``); a directory a node runs on is refused, and
damage the store's own open check finds (in the newest 16 blocks) is refused
in the words of every other tampered block: nothing is reported.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import plyvel
import pytest

from lendchain.ledger.block import Block
from lendchain.node import datadir_snapshot
from lendchain.node.pointintime import DataDirBlocks, ReportError, Target, replay_to
from lendchain.node.store import ChainStore
from tests.node.report_chain import report_chain
from tests.node.test_point_in_time import books, rows


@pytest.fixture(scope="module")
def chain():
    return report_chain()


def with_tables(chain, path: Path) -> Path:
    """A stopped node's data directory: blocks 1 to 5 in a table file, 6 to 10 in its log (LevelDB's
    memtable when the node stopped)."""
    with ChainStore.open(path, chain.genesis) as store:
        for height, (raw, execution) in enumerate(chain.chain.blocks, start=1):
            store.commit_block(raw, chain.certificates.certificate(height), execution)
            if height == 5:
                store.flush_memtable()
    return path


def files_of(path: Path) -> dict[str, tuple[bytes, int] | int]:
    """Every file under ``path`` with its bytes and mtime, every directory with its mtime."""
    found: dict[str, tuple[bytes, int] | int] = {".": path.stat().st_mtime_ns}
    for item in sorted(path.rglob("*")):
        name = str(item.relative_to(path))
        found[name] = (
            (item.read_bytes(), item.stat().st_mtime_ns) if item.is_file() else item.stat().st_mtime_ns
        )
    return found


def report(chain, data_dir: Path, scratch: Path | None = None, notes: list[str] | None = None):
    with DataDirBlocks(
        data_dir, chain.genesis, scratch, (notes if notes is not None else []).append
    ) as source:
        with replay_to(chain.genesis, source, Target(), scratch) as pit:
            return pit.basis, books(pit.views)


def test_a_report_leaves_the_data_directory_byte_for_byte_as_it_was(chain, tmp_path, monkeypatch):
    data_dir = with_tables(chain, tmp_path / "data")
    tables = sorted(p.name for p in data_dir.glob("*.ldb"))
    [log] = data_dir.glob("*.log")
    assert tables and log.stat().st_size > 0  # both kinds of file are there to be left alone
    before = files_of(data_dir)
    linked = []

    def link(source, to):  # the copies' own checksum checks link too: only the data directory's count
        if Path(source).parent == data_dir:
            linked.append(Path(source).name)
        os_link(source, to)

    os_link = os.link
    monkeypatch.setattr(datadir_snapshot.os, "link", link)
    notes: list[str] = []
    basis, view = report(chain, data_dir, tmp_path, notes)
    assert basis["height"] == chain.heights["head"] and rows(view)["bank1"]["written_off_loans"] == 1
    assert files_of(data_dir) == before  # no byte, no mtime, no file or directory added or removed
    assert sorted(linked) == tables and notes == []  # the tables were linked, not copied
    assert all((data_dir / name).stat().st_nlink == 1 for name in tables)  # the copy and its links are gone
    assert sorted(tmp_path.iterdir()) == [data_dir]


def test_where_hard_links_fail_the_tables_are_copied_and_the_reader_told(chain, tmp_path, monkeypatch):
    data_dir = with_tables(chain, tmp_path / "data")
    before = files_of(data_dir)

    def no_link(source, to):
        raise OSError(errno.EXDEV, "Invalid cross-device link", str(source))

    monkeypatch.setattr(datadir_snapshot.os, "link", no_link)
    notes: list[str] = []
    basis, _ = report(chain, data_dir, None, notes)
    assert basis["height"] == chain.heights["head"]
    assert notes == [
        f"the table files of data directory {data_dir} were copied, not hard-linked (another filesystem than the "
        "scratch directory's): give --scratch-dir on its filesystem to save the copy"
    ]
    assert files_of(data_dir) == before


@contextmanager
def node_running_on(data_dir: Path) -> Iterator[None]:
    """Another process holding ``data_dir`` open in LevelDB, as a node does (and its LOCK)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import plyvel, sys; db = plyvel.DB(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
            str(data_dir),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"open\n"
        yield
    finally:
        holder.stdin.close()  # it reads to the end, and exits
        holder.wait(timeout=30)


def test_a_data_directory_a_node_runs_on_is_refused_with_the_way_to_read_it(chain, tmp_path):
    data_dir = chain.write_data_dir(tmp_path / "data")
    with node_running_on(data_dir):
        with pytest.raises(ReportError) as refused:
            report(chain, data_dir, tmp_path)
    assert str(refused.value) == (
        f"data directory {data_dir} is in use by another process (is a node running on it?): stop the node "
        "first, or for a running node give --node URL instead"
    )
    assert sorted(tmp_path.iterdir()) == [data_dir]  # no copy left behind
    assert report(chain, data_dir)[0]["height"] == chain.heights["head"]  # the node stopped: it reads


def test_a_directory_without_a_chain_store_is_named(chain, tmp_path):
    with pytest.raises(ReportError, match=f"{tmp_path} holds no chain store \\(it has no CURRENT file\\)"):
        report(chain, tmp_path)


def changed_header(data_dir: Path, height: int) -> None:
    """Block ``height``'s header 1 ms later, nothing else changed (its child no longer links to it)."""
    db = plyvel.DB(str(data_dir))
    key = b"b:" + struct.pack(">Q", height)
    block = Block.decode(db.get(key))
    db.put(key, Block(replace(block.header, timestamp_ms=block.header.timestamp_ms + 1), block.txs).encode())
    db.close()


@pytest.mark.parametrize(
    "height, says",
    [
        (9, "block 10 does not link to block 9 by hash"),
        (10, r"block 10 hashes to \w{16}, but the head record says \w{16}"),
    ],
)
def test_a_block_the_stores_own_open_check_refuses_says_nothing_is_reported(chain, tmp_path, height, says):
    data_dir = chain.write_data_dir(tmp_path / "data")
    changed_header(data_dir, height)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(
        ReportError,
        match=f"^data directory {data_dir}: {says}; the data directory is corrupt; restore it from a peer or a "
        "backup; nothing is reported$",
    ):
        report(chain, data_dir, scratch)
    assert list(scratch.iterdir()) == []


def test_a_damaged_table_is_named_in_the_data_directory_not_in_its_copy(chain, tmp_path):
    data_dir = with_tables(chain, tmp_path / "data")
    [table] = data_dir.glob("*.ldb")
    raw = bytearray(table.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    table.write_bytes(bytes(raw))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(ReportError) as refused:
        report(chain, data_dir, scratch)
    said = str(refused.value)
    assert said.startswith(
        f"data directory {data_dir} is damaged: reading it failed in one of its table files"
    )
    assert said.endswith("; nothing is reported") and str(scratch) not in said


def test_a_copy_that_cannot_be_made_is_named(chain, tmp_path, monkeypatch):
    data_dir = chain.write_data_dir(tmp_path / "data")

    def full(source, to, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(to))

    monkeypatch.setattr(datadir_snapshot.shutil, "copyfile", full)
    with pytest.raises(ReportError, match=f"cannot copy data directory {data_dir} to read it: No space left"):
        report(chain, data_dir)
    shutil.rmtree(data_dir)
