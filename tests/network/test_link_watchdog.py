"""A link's watchdog sleeps until its next deadline: an idle node's links do not poll.

The watchdog closes a link whose write stalled for ``write_timeout_s``, that
heard nothing for ``dead_after_s``, or whose member was removed. Polling
those every quarter second woke an idle node of ten members 36 times a
second; it now sleeps until the first moment one of them could hold.
"""

from __future__ import annotations

import logging
from collections import Counter

import trio

from tests.network.harness import Peer, logged, make_members, running, wait_for, wait_full_mesh

WINDOW_S = 2.0


class WakeCounter(trio.abc.Instrument):
    """How often tasks whose name ends in ``suffix`` were scheduled."""

    def __init__(self, suffix: str) -> None:
        self.suffix, self.wakes = suffix, Counter()

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith(self.suffix):
            self.wakes[task.name] += 1


def test_an_idle_links_watchdog_wakes_about_once_per_dead_after_s_not_per_poll():
    members, keys = make_members(2)
    # Pings every 0.2 s keep each link heard; the old 0.2 s poll woke each watchdog 10 times in 2 s.
    peers = [Peer(m.name, keys[m.name], members, ping_interval_s=0.2, dead_after_s=1.0) for m in members]
    counter = WakeCounter("watchdog")

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            trio.lowlevel.add_instrument(counter)
            await trio.sleep(WINDOW_S)
            trio.lowlevel.remove_instrument(counter)
            assert all(p.network.connected_members() == {q.name for q in peers if q is not p} for p in peers)

    trio.run(main)
    # Each watchdog wakes when its deadline (1 s after the last frame heard) comes, finds a
    # frame heard since (at most 0.2 s before) and sleeps again: at most once per 0.8 s.
    assert sum(counter.wakes.values()) <= 2 * (WINDOW_S // 0.8 + 1), counter.wakes


def test_a_member_that_stops_pinging_is_dropped_after_dead_after_s(caplog):
    members, keys = make_members(2)
    peers = [
        Peer("node0", keys["node0"], members, dead_after_s=0.6, ping_interval_s=0.1),
        Peer("node1", keys["node1"], members, dead_after_s=30.0, ping_interval_s=30.0),  # silent when idle
    ]

    async def main():
        async with running(peers):
            await wait_for(lambda: "node1" in peers[0].network.connected_members(), "node0's link to node1")
            await wait_for(
                lambda: logged(caplog, "nothing heard for", "silent for 0.6 s"),
                "node0 to give up on silent node1",
                timeout_s=5,
            )

    with caplog.at_level(logging.INFO):
        trio.run(main)


def test_removing_a_member_ends_its_link_without_waiting_for_the_watchdogs_deadlines(caplog):
    members, keys = make_members(2)
    # Its deadlines are 10 s (write_timeout_s) and 20 s away: the removal itself must wake it.
    peers = [Peer(m.name, keys[m.name], members, ping_interval_s=5.0, dead_after_s=20.0) for m in members]

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            peers[0].network.remove_member("node1")
            with trio.fail_after(3):
                await wait_for(
                    lambda: logged(caplog, "link to node1 down: the member was removed"),
                    "node0's link to node1 to end",
                )

    with caplog.at_level(logging.INFO):
        trio.run(main)
