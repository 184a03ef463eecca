"""A node's own backup schedule (``[store] backup_interval_s``), on trio's mock clock.

``NodeBackups.run_schedule`` backs the node up at once when it has no
backup, then whenever its newest is an interval old; a backup taken by hand
moves the schedule, a failure is retried sooner, and nothing a backup does
stops the node. The backups are real (a store on disk, copied in a thread);
only time is simulated, so hours pass in a fraction of a second. The copy
runs inline rather than in a thread: the mock clock would jump to the next
deadline while the task waits for a thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from lendchain.node import backup as backup_module
from lendchain.node.backup import BackupError, NodeBackups, node_backups
from lendchain.node.store import ChainStore
from tests.ledger.chain import Chain, make_genesis
from tests.node.test_store import grow

MINUTE = 60
HOUR = 60 * MINUTE
# The mock clock starts at 0; wall-clock seconds are this much later (a plausible date).
EPOCH = 1_790_000_000


class Failures:
    def __init__(self) -> None:
        self.count = 0

    def inc(self) -> None:
        self.count += 1


@dataclass
class Metrics:
    backups_failed: Failures = field(default_factory=Failures)
    observed: list[tuple[int, float]] = field(default_factory=list)

    def observe_backup(self, height: int, written_s: float) -> None:
        self.observed.append((height, written_s))


@dataclass
class Config:
    name: str
    backup_dir: Path
    genesis: object


async def run_inline(function, *args, abandon_on_cancel=False):
    return function(*args)


@pytest.fixture
def node(tmp_path, monkeypatch):
    monkeypatch.setattr(trio.to_thread, "run_sync", run_inline)
    genesis, _ = make_genesis()
    store = ChainStore.open(tmp_path / "data", genesis)
    grow(store, Chain.start(genesis), 2)
    metrics = Metrics()
    backups = NodeBackups(
        Config("bank1", tmp_path / "backups", genesis),
        store,
        metrics,
        logging.getLogger("test.backups"),
        clock=lambda: EPOCH + trio.current_time(),
    )
    yield backups, metrics
    store.close()


def run_for(seconds: float, *tasks) -> None:
    """Run ``tasks`` (async callables) on the mock clock for ``seconds`` of simulated time."""

    async def main() -> None:
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for task in tasks:
                    nursery.start_soon(task)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def written_at(metrics: Metrics) -> list[int]:
    """When (mock-clock seconds) each backup was written."""
    return [round(written - EPOCH) for _, written in metrics.observed]


def test_a_node_without_a_backup_takes_one_at_once_then_one_per_interval_keeping_the_newest(node):
    backups, metrics = node
    run_for(3 * HOUR + 10, lambda: backups.run_schedule(HOUR, keep=2))
    assert written_at(metrics) == [0, HOUR, 2 * HOUR, 3 * HOUR]
    kept = node_backups(backups.config.backup_dir, "bank1", backups.store.genesis.chain_id)
    assert len(kept) == 2 and kept[-1][1] == Path(backups.newest["path"])
    assert metrics.backups_failed.count == 0


def test_the_schedule_follows_the_newest_backup_so_one_taken_by_hand_moves_it(node):
    backups, metrics = node

    async def by_hand() -> None:
        await trio.sleep(HOUR + HOUR // 2)
        await backups.take("by-hand", keep=None)

    run_for(3 * HOUR + 10, lambda: backups.run_schedule(HOUR, keep=5), by_hand)
    assert written_at(metrics) == [0, HOUR, HOUR + HOUR // 2, 2 * HOUR + HOUR // 2]


def test_a_failed_backup_is_counted_and_tried_again_after_ten_minutes_not_an_interval(node, monkeypatch):
    backups, metrics = node
    real = backup_module.take_backup
    attempts = []

    def fail_twice(*args, **kwargs):
        attempts.append(round(trio.current_time()))
        if len(attempts) <= 2:
            raise BackupError("backup to /backups failed: No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(backup_module, "take_backup", fail_twice)
    run_for(HOUR, lambda: backups.run_schedule(24 * HOUR, keep=2))
    assert attempts == [0, 600, 1200]
    assert written_at(metrics) == [1200] and metrics.backups_failed.count == 2


def test_an_unexpected_error_in_a_backup_does_not_stop_the_node(node, monkeypatch, caplog):
    backups, metrics = node
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("a bug in the backup code")

    monkeypatch.setattr(backup_module, "take_backup", broken)
    ticks = []

    async def node_goes_on() -> None:
        while True:
            await trio.sleep(MINUTE)
            ticks.append(1)

    with caplog.at_level(logging.ERROR, logger="test.backups"):
        run_for(25 * 60, lambda: backups.run_schedule(HOUR, keep=2), node_goes_on)
    assert len(calls) == 3 and metrics.backups_failed.count == 3  # at 0, 10 and 20 minutes
    assert len(ticks) == 24 and "scheduled backup failed" in caplog.text
    assert not backups.running


def test_a_node_that_starts_stopping_ends_its_schedule(node):
    backups, metrics = node
    backups.store.closing.set()  # what ChainStore.close does first

    async def schedule_then_note_the_end() -> None:
        await backups.run_schedule(HOUR, keep=2)
        ended.append(trio.current_time())

    ended: list[float] = []
    run_for(2 * HOUR, schedule_then_note_the_end)
    assert ended == [0] and metrics.observed == [] and metrics.backups_failed.count == 1


def test_a_backup_found_at_start_sets_when_the_next_is_due(node, tmp_path):
    backups, _ = node
    run_for(1, lambda: backups.take("first", keep=None))
    again = NodeBackups(backups.config, backups.store, Metrics(), logging.getLogger("test.backups"))
    written = Path(backups.newest["path"], backup_module.INFO_FILE).stat().st_mtime
    assert again.next_due_s(HOUR) == pytest.approx(written + HOUR, abs=1)


def test_a_backup_whose_older_ones_cannot_be_deleted_still_counts_and_says_so(node, monkeypatch, caplog):
    backups, metrics = node
    run_for(1, lambda: backups.take("old", keep=None))
    real_rmtree = backup_module.shutil.rmtree

    def read_only(path, ignore_errors=False):
        if ignore_errors:  # the backup's own clean-up of its partial copy and snapshot
            return real_rmtree(path, ignore_errors=True)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(backup_module.shutil, "rmtree", read_only)
    taken = []

    async def take_with_keep() -> None:
        await trio.sleep(HOUR)
        taken.append(await backups.take("new", keep=1))

    with caplog.at_level(logging.WARNING, logger="test.backups"):
        run_for(2 * HOUR, take_with_keep)
    assert taken[0]["pruned"] == [] and "Permission denied" in taken[0]["prune_failed"]
    assert backups.newest["path"] == taken[0]["path"] and written_at(metrics) == [0, HOUR]
    assert metrics.backups_failed.count == 1 and "deleting older backups failed" in caplog.text
    assert (backups.config.backup_dir / "old").is_dir()
