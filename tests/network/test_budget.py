"""Per-member inbound budgets: backpressure for consensus frames, refusal for gossip."""

from __future__ import annotations

import pytest

from lendchain.node.network_link import InboundBudget

RATES = {"frames": (100.0, 10.0), "bytes": (1000.0, 1000.0)}


def test_within_the_burst_nothing_waits():
    budget = InboundBudget(RATES, now=0.0)
    assert [budget.delay(0.0, frames=1, bytes=10) for _ in range(10)] == [0.0] * 10
    assert budget.throttled == {"frames": 0, "bytes": 0}


def test_past_the_burst_each_frame_waits_its_share_of_the_rate():
    budget = InboundBudget(RATES, now=0.0)
    for _ in range(10):
        budget.delay(0.0, frames=1)
    assert budget.delay(0.0, frames=1) == pytest.approx(0.01)
    assert budget.delay(0.0, frames=1) == pytest.approx(0.02)
    assert budget.throttled["frames"] == 2
    # Reading later (as the reader does after sleeping) settles the debt.
    assert budget.delay(0.03, frames=1) == pytest.approx(0.0, abs=1e-9)


def test_the_slowest_unit_decides_the_wait():
    budget = InboundBudget(RATES, now=0.0)
    assert budget.delay(0.0, frames=1, bytes=3000) == pytest.approx(2.0)
    assert budget.throttled == {"frames": 0, "bytes": 1}


def test_refill_never_exceeds_the_burst():
    budget = InboundBudget(RATES, now=0.0)
    for _ in range(10):
        budget.delay(0.0, frames=1)
    budget.delay(3600.0, frames=0)
    assert budget.tokens["frames"] == 10.0


def test_admit_refuses_without_charging_so_a_paused_sender_recovers():
    budget = InboundBudget({"gossip_bytes": (100.0, 200.0)}, now=0.0)
    assert budget.admit(0.0, gossip_bytes=150)
    assert not budget.admit(0.0, gossip_bytes=150)  # only 50 left
    assert not budget.admit(0.5, gossip_bytes=150)  # 100 by now
    assert budget.admit(1.0, gossip_bytes=150)  # 150 by now: the refusals cost nothing
    assert budget.throttled == {"gossip_bytes": 2}
