"""The replay cache: a later report resumes from the state an earlier one kept, and is never the worse for it.

The chain is ``report_chain``'s (10 blocks: loan A live at block 5, defaulted
and loan B disbursed by block 9, A written off at block 10). Each report with
the cache is compared with the same report replayed from the genesis without
one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

from lendchain.cli.report import NodeBlocks
from lendchain.node.pointintime import (
    DataDirBlocks,
    ReplayedViews,
    ReportError,
    Target,
    parse_as_of,
    replay_to,
)
from lendchain.node.replaycache import ReplayCache
from lendchain.node.store import ChainStore
from tests.node.report_chain import SECOND_DAY, report_chain
from tests.node.test_point_in_time import books, flip_last_byte, forged_signature, rewritten_from, tampered
from tests.node.test_point_in_time_node import client_of


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    chain = report_chain()
    return chain, chain.write_data_dir(tmp_path_factory.mktemp("report") / "data")


def report(chain, data_dir: Path, target: Target, cache_root: Path | None, notes: list[str] | None = None):
    """(basis, books) of a report on ``data_dir`` at ``target``, with the cache under ``cache_root``."""
    notes = [] if notes is None else notes
    cache = None if cache_root is None else ReplayCache(cache_root, chain.genesis, notes.append)
    with DataDirBlocks(data_dir, chain.genesis) as source:
        with replay_to(chain.genesis, source, target, cache=cache) as pit:
            return pit.basis, books(pit.views)


def without_cache(chain, data_dir: Path, target: Target):
    return report(chain, data_dir, target, None)


def cache_dir(chain, root: Path) -> Path:
    return root / chain.genesis.hash().hex()


def recorded(chain, root: Path) -> dict:
    """The cache's record of the block its store reached."""
    return json.loads((cache_dir(chain, root) / "reached.json").read_text())


def same_report(found, expected) -> None:
    """Figures, block and certificate alike; only how many blocks were replayed may differ."""
    (basis, view), (expected_basis, expected_view) = found, expected
    assert view == expected_view
    ignore = {"blocks_checked", "resumed_from"}
    assert {k: v for k, v in basis.items() if k not in ignore} == {
        k: v for k, v in expected_basis.items() if k not in ignore
    }


def test_a_later_report_resumes_from_the_cache_with_the_figures_of_a_replay_from_the_genesis(world, tmp_path):
    chain, data_dir = world
    first_day = chain.heights["first_day"]
    notes: list[str] = []
    basis, _ = report(chain, data_dir, Target(height=first_day), tmp_path, notes)
    assert (basis["blocks_checked"], basis["resumed_from"], notes) == (first_day, None, [])
    cached = Target(height=first_day)
    assert recorded(chain, tmp_path)["height"] == first_day
    assert recorded(chain, tmp_path)["block_hash"] == without_cache(chain, data_dir, cached)[0]["block_hash"]

    found = report(chain, data_dir, Target(), tmp_path, notes)
    head = chain.heights["head"]
    assert found[0]["resumed_from"] == {
        "height": first_day,
        "block_hash": recorded_hash(chain, data_dir, first_day),
        "cache": str(cache_dir(chain, tmp_path)),
    }
    assert found[0]["blocks_checked"] == head - first_day  # blocks 6 to 10 only
    same_report(found, without_cache(chain, data_dir, Target()))
    assert notes == [f"resuming from block {first_day} of the replay cache {cache_dir(chain, tmp_path)}"]
    assert recorded(chain, tmp_path)["height"] == head

    # At the cache's own block: nothing to replay; its certificate is named as ever.
    found = report(chain, data_dir, Target(height=head), tmp_path)
    assert found[0]["blocks_checked"] == 0 and found[0]["certificate"]["signers"] == [
        "bank1",
        "bank2",
        "bank3",
    ]
    same_report(found, without_cache(chain, data_dir, Target(height=head)))


def recorded_hash(chain, data_dir: Path, height: int) -> str:
    return without_cache(chain, data_dir, Target(height=height))[0]["block_hash"]


def test_an_as_of_report_resumes_up_to_the_time_and_checks_the_block_after_it(world, tmp_path):
    chain, data_dir = world
    report(chain, data_dir, Target(height=chain.heights["first_day"]), tmp_path)
    target = Target(as_of_ms=parse_as_of(SECOND_DAY))
    found = report(chain, data_dir, target, tmp_path)
    assert found[0]["resumed_from"]["height"] == chain.heights["first_day"]
    assert found[0]["as_of"]["next_block"]["height"] == chain.heights["second_day"] + 1
    same_report(found, without_cache(chain, data_dir, target))
    assert recorded(chain, tmp_path)["height"] == chain.heights["second_day"]


@pytest.mark.parametrize("target", [Target(height=3), Target(as_of_ms=parse_as_of("2023-11-20"))])
def test_a_report_before_the_caches_block_replays_from_the_genesis_and_leaves_the_cache(
    world, tmp_path, target
):
    chain, data_dir = world
    report(chain, data_dir, Target(), tmp_path)
    before = (cache_dir(chain, tmp_path) / "reached.json").read_text()
    notes: list[str] = []
    found = report(chain, data_dir, target, tmp_path, notes)
    assert found[0]["resumed_from"] is None and found[0]["blocks_checked"] == found[0]["height"]
    same_report(found, without_cache(chain, data_dir, target))
    assert notes == [
        f"the report's block is before block 10, where the replay cache {cache_dir(chain, tmp_path)} stands, "
        "and a replay only goes forward: replaying from the genesis (the cache stays at block 10)"
    ]
    assert (cache_dir(chain, tmp_path) / "reached.json").read_text() == before


def test_a_source_that_disagrees_with_the_cache_is_replayed_from_the_genesis_and_checked(world, tmp_path):
    """Blocks 3 on rewritten and relinked: block 5's hash differs from the cache's, and the replay from
    the genesis finds block 3's certificate no longer covers it. The cache stays as it was."""
    chain, data_dir = world
    report(chain, data_dir, Target(height=5), tmp_path)
    rewritten = rewritten_from(data_dir, tmp_path, 3)
    notes: list[str] = []
    with pytest.raises(
        ReportError, match=r"block 3 fails the check: its commit certificate is for block 3 .*; "
    ):
        report(chain, rewritten, Target(), tmp_path, notes)
    [said] = notes
    assert said.startswith(f"data directory {rewritten}'s block 5 has hash ")
    assert said.endswith(
        f", not the replay cache's {recorded(chain, tmp_path)['block_hash'][:16]}: replaying from the genesis "
        f"(the replay cache {cache_dir(chain, tmp_path)} is replaced if the replay gets to block 5)"
    )
    assert recorded(chain, tmp_path)["height"] == 5  # the replay stopped at block 2: not kept
    assert not (cache_dir(chain, tmp_path) / "replaying").exists()
    assert report(chain, data_dir, Target(), tmp_path)[0]["resumed_from"]["height"] == 5


@pytest.mark.parametrize(
    "record, change, message",
    [
        (b"b:", flip_last_byte, "block 7 fails the check: block 7 tx root does not match its transactions"),
        (b"c:", forged_signature, "block 7 fails the check: its commit certificate does not verify"),
    ],
)
def test_blocks_replayed_after_the_cache_are_checked_as_ever(world, tmp_path, record, change, message):
    chain, data_dir = world
    report(chain, data_dir, Target(height=5), tmp_path / "cache")
    copy = tampered(data_dir, tmp_path, 7, record, change)
    with pytest.raises(ReportError, match=f"{message}.*; nothing is reported"):
        report(chain, copy, Target(), tmp_path / "cache")
    assert recorded(chain, tmp_path / "cache")["height"] == 6  # block 6 passed every check: it is kept
    found = report(chain, data_dir, Target(), tmp_path / "cache")
    assert found[0]["resumed_from"]["height"] == 6
    same_report(found, without_cache(chain, data_dir, Target()))


def garble_record(cache: Path) -> str:
    (cache / "reached.json").write_text("{not json")
    return "its record reached.json is unreadable (Expecting property name"


def record_another_height(cache: Path) -> str:
    record = json.loads((cache / "reached.json").read_text())
    (cache / "reached.json").write_text(json.dumps({**record, "height": 7}))
    return "its store is at block 5, and its record says 7"


def drop_record(cache: Path) -> str:
    (cache / "reached.json").unlink()
    return "it holds no record of the block it reached (a report stopped while writing it)"


def flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    path.write_bytes(bytes(raw))


def damage_log(cache: Path) -> str:
    """A byte flipped in the store's log, which holds every write of one report (LevelDB's memtable)."""
    [log] = (cache / "state").glob("*.log")
    flip_a_byte(log)
    return f"data directory {cache / 'state'} is damaged: LevelDB reports 'Corruption: checksum mismatch'"


def damage_table(cache: Path) -> str:
    """A byte flipped in a table file, which the store's open does not read: its checksum check does."""
    [table] = (cache / "state").glob("*.ldb")
    flip_a_byte(table)
    return f"data directory {cache / 'state'} is damaged: reading it failed in one of its table files"


def drop_store(cache: Path) -> str:
    shutil.rmtree(cache / "state")
    return "its record says block 5, and it holds no store"


def record_another_genesis(cache: Path) -> str:
    record = json.loads((cache / "reached.json").read_text())
    (cache / "reached.json").write_text(json.dumps({**record, "genesis_hash": "00" * 32}))
    return "its record reached.json is of another genesis"


@pytest.mark.parametrize(
    "damage",
    [
        garble_record,
        record_another_height,
        drop_record,
        drop_store,
        damage_log,
        damage_table,
        record_another_genesis,
    ],
)
def test_a_damaged_cache_is_discarded_with_a_warning_and_the_report_replays_from_the_genesis(
    world, tmp_path, damage
):
    chain, data_dir = world
    report(chain, data_dir, Target(height=5), tmp_path)
    if damage is damage_table:
        report(chain, data_dir, Target(height=5), tmp_path)  # reopened: LevelDB writes its log to a table
    says = damage(cache_dir(chain, tmp_path))
    notes: list[str] = []
    found = report(chain, data_dir, Target(), tmp_path, notes)
    assert found[0]["resumed_from"] is None and found[0]["blocks_checked"] == chain.heights["head"]
    same_report(found, without_cache(chain, data_dir, Target()))
    [warning] = notes
    assert warning.startswith(f"warning: the replay cache {cache_dir(chain, tmp_path)} is discarded: ")
    assert says in warning and warning.endswith("; replaying from the genesis")
    assert "restore it from a peer" not in warning
    assert recorded(chain, tmp_path)["height"] == chain.heights["head"]  # the new replay is the cache now


def test_a_cache_another_report_holds_is_left_alone(world, tmp_path):
    chain, data_dir = world
    report(chain, data_dir, Target(height=5), tmp_path)
    fd = os.open(cache_dir(chain, tmp_path) / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a report running meanwhile holds it
        notes: list[str] = []
        found = report(chain, data_dir, Target(), tmp_path, notes)
    finally:
        os.close(fd)
    assert found[0]["resumed_from"] is None
    same_report(found, without_cache(chain, data_dir, Target()))
    assert notes == [
        f"the replay cache {cache_dir(chain, tmp_path)} is in use by another report: replaying from the genesis "
        "without it"
    ]
    assert recorded(chain, tmp_path)["height"] == 5


def test_a_cache_directory_that_cannot_be_made_is_named_and_the_report_goes_on(world, tmp_path):
    chain, data_dir = world
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    notes: list[str] = []
    found = report(chain, data_dir, Target(), blocker, notes)
    same_report(found, without_cache(chain, data_dir, Target()))
    assert notes == [
        f"warning: the replay cache {cache_dir(chain, blocker)} cannot be used (Not a directory): replaying "
        "from the genesis without it"
    ]


class Recording(ReplayedViews):
    """A node that notes where each page of ``GET /blocks/raw`` it serves starts."""

    def __init__(self, store, genesis) -> None:
        super().__init__(store, genesis)
        self.asked: list[int] = []

    def raw_blocks(self, start: int, limit: int, max_bytes: int = 8 << 20):
        self.asked.append(start)
        return super().raw_blocks(start, limit, max_bytes)


def test_a_node_serves_the_caches_block_to_compare_and_the_blocks_after_it(world, tmp_path):
    chain, data_dir = world
    report(chain, data_dir, Target(height=5), tmp_path)
    served = shutil.copytree(data_dir, tmp_path / "node")
    with ChainStore.open(served, chain.genesis, create=False) as store:
        node = Recording(store, chain.genesis)
        with client_of(node) as client:
            cache = ReplayCache(tmp_path, chain.genesis, [].append)
            with replay_to(chain.genesis, NodeBlocks(client, chain.genesis), Target(), cache=cache) as pit:
                found = pit.basis, books(pit.views)
    assert node.asked == [1, 5, 6]  # its head (with block 1), the cache's block, then blocks 6 to 10
    assert found[0]["resumed_from"]["height"] == 5
    expected_basis, expected_view = without_cache(chain, data_dir, Target())
    same_report(({**found[0], "source": None}, found[1]), ({**expected_basis, "source": None}, expected_view))


def test_a_write_that_fails_in_the_cache_ends_the_report_and_removes_the_cache(world, tmp_path, monkeypatch):
    chain, data_dir = world
    report(chain, data_dir, Target(height=5), tmp_path)
    opened = ChainStore.open

    def full_disk(
        path, genesis, create=True, **options
    ):  # every store opened: only the cache's writes blocks
        store = opened(path, genesis, create, **options)
        store.block_write_fault = lambda: "disk_full"
        return store

    monkeypatch.setattr(ChainStore, "open", full_disk)
    with pytest.raises(ReportError, match="the replay could not store block 6 .*No space left on device"):
        report(chain, data_dir, Target(), tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in cache_dir(chain, tmp_path).iterdir()) == [
        "lock"
    ]  # nothing half-written kept
    notes: list[str] = []
    found = report(chain, data_dir, Target(), tmp_path, notes)
    assert notes == [] and found[0]["resumed_from"] is None
    same_report(found, without_cache(chain, data_dir, Target()))
