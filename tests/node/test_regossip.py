"""The re-gossip schedule: only a node's own pending txs, at doubling intervals."""

import pytest

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
