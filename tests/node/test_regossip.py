"""The re-gossip schedule: only a node's own pending txs, at doubling intervals."""

import pytest

from lendchain.crypto import SigningKey
from lendchain.ledger.transactions import build_transaction
from lendchain.node.daemon import REGOSSIP_AFTER_MS
from lendchain.node.driver import now_ms
from lendchain.node.regossip import RegossipSchedule


def test_first_repeat_waits_then_intervals_double_up_to_the_cap():
    schedule = RegossipSchedule(first_after_ms=3_000, max_interval_ms=10_000)
    schedule.add(b"a", now_ms=0)
    pending = {b"a"}.__contains__
    assert schedule.due(2_999, pending, limit=10) == []
    times = [t for t in range(0, 40_001, 1_000) if schedule.due(t, pending, limit=10)]
    # 3 s, then +6 s, then capped at +10 s each time
    assert times == [3_000, 9_000, 19_000, 29_000, 39_000]


def test_ids_no_longer_pending_are_forgotten():
    schedule = RegossipSchedule(1_000, 8_000)
    schedule.add(b"kept", 0)
    schedule.add(b"committed", 0)
    assert schedule.due(1_000, {b"kept"}.__contains__, limit=10) == [b"kept"]
    assert len(schedule) == 1


def test_limit_leaves_the_rest_due_for_the_next_pass():
    schedule = RegossipSchedule(1_000, 8_000)
    for i in range(5):
        schedule.add(bytes([i]), now_ms=i)
    everything = lambda _tx_id: True  # noqa: E731
    first = schedule.due(10_000, everything, limit=3)
    assert first == [bytes([0]), bytes([1]), bytes([2])]  # oldest first
    assert schedule.due(10_000, everything, limit=3) == [bytes([3]), bytes([4])]


def test_rejects_a_nonsense_schedule():
    with pytest.raises(ValueError):
        RegossipSchedule(0, 1_000)
    with pytest.raises(ValueError):
        RegossipSchedule(5_000, 1_000)
    with pytest.raises(ValueError):
        RegossipSchedule(1_000, 5_000, max_backlog_wait_ms=-1)


def test_a_tx_behind_a_backlog_first_waits_twice_the_backlog_then_intervals_double_as_before():
    schedule = RegossipSchedule(first_after_ms=3_000, max_interval_ms=10_000, max_backlog_wait_ms=60_000)
    schedule.add(b"a", now_ms=0, backlog_ms=8_000)  # a ~8 s queue ahead of it
    pending = {b"a"}.__contains__
    times = [t for t in range(0, 60_001, 1_000) if schedule.due(t, pending, limit=10)]
    assert times == [19_000, 25_000, 35_000, 45_000, 55_000]


def test_the_backlog_wait_is_capped():
    schedule = RegossipSchedule(1_000, 8_000, max_backlog_wait_ms=20_000)
    schedule.add(b"a", now_ms=0, backlog_ms=10**9)  # what a rate of almost nothing would give
    pending = {b"a"}.__contains__
    assert schedule.due(20_999, pending, limit=10) == []
    assert schedule.due(21_000, pending, limit=10) == [b"a"]


def test_the_node_schedules_an_api_tx_behind_its_pool_after_twice_the_pools_backlog(node):
    key = SigningKey(bytes([0x41]) * 32)
    txs = [
        build_transaction(
            key, "lendchain-test-1", "party.register", n, {"role": "borrower"}, 1_800_000_000_000
        )
        for n in range(21)
    ]
    node.app.sizer.rate = 10.0  # txs per second: 20 pooled txs are a 2 s backlog
    started = now_ms()
    assert all(a["status"] == "accepted" for a in node.submit([tx.encode() for tx in txs[:20]]))
    assert node.app.backlog_ms() == 2_000
    assert node.submit([txs[20].encode()])[0]["status"] == "accepted"
    everything = lambda _tx_id: True  # noqa: E731
    first = node._regossip.due(started + REGOSSIP_AFTER_MS + 1_000, everything, limit=100)
    assert sorted(first) == sorted(tx.id for tx in txs[:20])  # an empty pool ahead of them: the plain 3 s
    assert node._regossip.due(started + REGOSSIP_AFTER_MS + 3_000, everything, limit=100) == []
    assert node._regossip.due(started + REGOSSIP_AFTER_MS + 5_000, everything, limit=100) == [txs[20].id]
