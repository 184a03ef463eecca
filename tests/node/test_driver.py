"""The consensus driver turns a replica's actions into I/O, in order, with votes durable first."""

from __future__ import annotations

import logging
import os

import pytest
import trio
from trio.testing import MockClock

from lendchain.consensus.events import Deliver, Persist, Send, Tick
from lendchain.node import driver as driver_module
from lendchain.node import store as store_module
from lendchain.node import store_writes
from lendchain.node.app import NodeApp
from lendchain.node.config import MempoolConfig
from lendchain.node.driver import IDLE_TICK_S, STALL_SLACK_S, TICK_S, ConsensusDriver
from lendchain.node.mempool import Mempool
from lendchain.node.metrics import NodeMetrics
from lendchain.node.store import ChainStore
from tests.ledger.chain import make_genesis
from tests.node.test_app import NOW_MS, admit, registrations


class ScriptedReplica:
    """Answers the first Tick with ``actions`` and everything after with nothing."""

    view, in_view_change, primary, committed_height = 0, False, "bank1", 0

    def __init__(self, actions: list[object]) -> None:
        self.actions = actions
        self.events: list[object] = []
        self.counters = {"request_timeouts": 0}  # what the metrics read after each step

    def step(self, event: object) -> list[object]:
        self.events.append(event)
        actions, self.actions = self.actions, []
        return actions


def drive(app, replica: ScriptedReplica, sent: list[tuple[str, bytes]]) -> None:
    async def main() -> None:
        driver = ConsensusDriver(
            replica,  # type: ignore[arg-type]
            app,
            app.store,
            send=lambda to, payload: sent.append((to, payload)) or True,
            broadcast=lambda payload: None,
            request=lambda *args: None,
            metrics=NodeMetrics(),
            log=logging.getLogger("driver-test"),
        )
        driver._step(Tick(NOW_MS))

    trio.run(main)


@pytest.fixture
def app(tmp_path):
    genesis = make_genesis()[0]
    store = ChainStore.open(tmp_path / "bank1", genesis, create=True)
    yield NodeApp(genesis, "bank1", store, Mempool(MempoolConfig()), logging.getLogger("bank1"))
    store.close()


@pytest.fixture
def writes(monkeypatch):
    """Every LevelDB batch the store writes: (what, synced now, keys), and the sends in between.

    A block written ``durable=False`` counts as not synced now: the next synced write syncs it."""
    log: list[tuple] = []
    real = ChainStore._write

    def recording(self, ops, runs=(), *, sync, what, fault=None, durable=True):
        log.append((what, sync and durable, [key for key, _ in ops]))  # runs: tx index and state
        return real(self, ops, runs, sync=sync, what=what, fault=fault, durable=durable)

    monkeypatch.setattr(ChainStore, "_write", recording)
    return log


def test_the_wal_records_before_a_deliver_go_into_the_blocks_own_batch_synced_by_the_next_vote(
    app, writes, monkeypatch
):
    primary = app
    admit(primary, registrations(2))
    head = primary.store.head()
    block = primary.propose(1, head.hash, NOW_MS)
    digest = primary.digest(block)
    primary.store.wal_write([(b"vote/old", b"d")])
    writes.clear()
    sent: list[tuple[str, bytes]] = []
    replica = ScriptedReplica(
        [
            Persist([(b"vote/commit", digest)]),
            Send("bank2", b"COMMIT"),
            Persist([(b"cert/1", b"certificate-1"), (b"vote/old", b""), (b"vote/commit", b"")]),
            Deliver(1, block, digest, b"certificate-1"),
        ]
    )
    synced_files: list[str] = []
    real_sync = store_writes._datasync
    monkeypatch.setattr(
        store_writes,
        "_datasync",
        lambda fd: (synced_files.append(os.readlink(f"/proc/self/fd/{fd}")), real_sync(fd)),
    )
    drive(primary, replica, sent)

    # The vote is on disk before the COMMIT leaves; the certificate and the deletions ride
    # with block 1, which is written but not synced on its own: one synced write, not two.
    assert [(what, sync) for what, sync, _ in writes] == [("consensus WAL records", True), ("block 1", False)]
    assert sent == [("bank2", b"COMMIT")]
    block_keys = writes[1][2]
    assert store_module._WAL + b"cert/1" in block_keys and store_module._WAL + b"vote/old" in block_keys
    assert primary.store.head().height == 1
    assert primary.store.wal_items() == [(b"cert/1", b"certificate-1")]
    assert any(type(e).__name__ == "Executed" for e in replica.events)  # the replica hears back
    assert synced_files == []
    # The next vote's WAL record syncs the log file holding block 1 (and itself) before it returns.
    primary.store.wal_write([(b"vote/next", b"d")])
    current = primary.store._deferred.current_log()
    assert synced_files == [str(current)] and primary.store._deferred.unsynced == []


def test_a_persist_that_no_deliver_follows_is_written_on_its_own_before_the_next_send(app, writes):
    primary = app
    sent: list[tuple[str, bytes]] = []
    replica = ScriptedReplica([Persist([(b"vote/p", b"x")]), Send("bank3", b"PREPARE")])
    real_wal_write = primary.store.wal_write
    primary.store.wal_write = lambda entries: (real_wal_write(entries), sent.append(("disk", b"")))
    drive(primary, replica, sent)
    assert sent == [("disk", b""), ("bank3", b"PREPARE")]
    assert [(what, sync) for what, sync, _ in writes] == [("consensus WAL records", True)]
    assert primary.store.wal_items() == [(b"vote/p", b"x")]


class DueApp:
    """An app whose next block falls due 7 ms after the driver starts."""

    me = "bank1"

    def __init__(self, pending: bool = True) -> None:
        self.due: int | None = None
        self.pending = pending

    def proposal_due_ms(self) -> int | None:
        return self.due

    def has_pending_work(self) -> bool:
        return self.pending


def ticking_driver(app, replica) -> ConsensusDriver:
    return ConsensusDriver(
        replica,  # type: ignore[arg-type]
        app,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        send=lambda to, payload: True,
        broadcast=lambda payload: None,
        request=lambda *args: None,
        metrics=NodeMetrics(),
        log=logging.getLogger("driver-test"),
    )


@pytest.mark.parametrize(("primary", "expected_gap_s"), [("bank1", 0.007), ("bank2", TICK_S)])
def test_the_primary_ticks_when_its_next_block_falls_due_not_at_the_next_tick(
    primary, expected_gap_s, monkeypatch
):
    app = DueApp()
    replica = ScriptedReplica([])
    replica.primary = primary
    arrivals: list[float] = []
    # Wall-clock milliseconds on the mock clock: a busy machine must not move the due time.
    mock_now_ms = lambda: NOW_MS + int(trio.current_time() * 1000)  # noqa: E731
    monkeypatch.setattr(driver_module, "now_ms", mock_now_ms)

    async def main() -> None:
        driver = ticking_driver(app, replica)
        app.due = mock_now_ms() + 7
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver._ticker)
            for _ in range(2):
                await driver._inbox.receive()
                arrivals.append(trio.current_time())
            nursery.cancel_scope.cancel()

    trio.run(main, clock=MockClock(autojump_threshold=0))
    gap = arrivals[1] - arrivals[0]
    assert abs(gap - expected_gap_s) < 0.0015


def test_an_idle_node_ticks_slowly_until_work_arrives():
    app = DueApp(pending=False)
    arrivals: list[float] = []
    ticks: list[Tick] = []

    async def main() -> None:
        driver = ticking_driver(app, ScriptedReplica([]))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver._ticker)
            for _ in range(3):
                ticks.append(await driver._inbox.receive())
                arrivals.append(trio.current_time())
            await trio.sleep(0.03)  # a tx arrives 30 ms into an idle tick
            app.pending = True
            driver.nudge()
            for _ in range(2):
                ticks.append(await driver._inbox.receive())
                arrivals.append(trio.current_time())
            nursery.cancel_scope.cancel()

    trio.run(main, clock=MockClock(autojump_threshold=0))
    gaps = [round(b - a, 4) for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert gaps == [IDLE_TICK_S, IDLE_TICK_S, 0.03, TICK_S]
    assert [t.stalled_ms for t in ticks] == [0] * 5  # idle ticks on time and a nudge are no stall


def test_a_late_tick_says_how_long_the_node_stalled_and_the_metric_adds_it_up():
    app = DueApp()
    clock = MockClock(autojump_threshold=0)
    ticks: list[Tick] = []
    metrics = NodeMetrics()

    async def main() -> None:
        driver = ticking_driver(app, ScriptedReplica([]))
        driver.metrics = metrics
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver._ticker)
            ticks.append(await driver._inbox.receive())
            await trio.sleep(0.01)  # the ticker is asleep until 0.02 s
            clock.jump(0.5)  # the loop runs something for 0.5 s without yielding
            for _ in range(2):
                ticks.append(await driver._inbox.receive())
            nursery.cancel_scope.cancel()

    trio.run(main, clock=clock)
    # The second tick was planned for 0.02 s and left at 0.51 s; 0.05 s of that is slack.
    assert [t.stalled_ms for t in ticks] == [0, round((0.51 - TICK_S - STALL_SLACK_S) * 1000), 0]
    assert metrics.stalled_seconds._value.get() == pytest.approx(0.44)
