"""When a node gossips its own pending transactions again.

Gossip can be lost (a link drops, a peer restarts, a message is throttled), so
the node that accepted a transaction from a client re-gossips it until it
commits or leaves the mempool. Only that node does: a transaction that merely
arrived by gossip is the origin's to repeat. The interval doubles after each
repeat, so a backlog the network is still working through costs a few extra
copies per transaction, not one every second (with every node re-gossiping
every stale transaction each second, 7 nodes on 2 cores spent their CPU on
duplicates and commits slowed to a crawl).

A transaction that arrives behind a backlog is not lost for waiting as long
as the backlog takes: its first repeat waits, on top of ``first_after_ms``,
twice the backlog the node estimated when it came (``NodeApp.backlog_ms``; at
most ``max_backlog_wait_ms``). With a fixed 3 s, 10 nodes on 2 cores under a
4,000-tx window (a ~8 s queue) re-gossiped most transactions (each node took
in 2.2-2.4 copies of every tx it did not originate);
every copy costs every member a decode and py-libp2p's forwarding, which slowed
the commits, which lengthened the queue and made more txs stale (RESULTS.md,
third session of 2026-12-07). A transaction gossip really lost
on the way to the primary still gets there sooner under load: a backup's
request timer relays it (``relay.py``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


class RegossipSchedule:
    def __init__(self, first_after_ms: int, max_interval_ms: int, max_backlog_wait_ms: int = 0) -> None:
        if first_after_ms <= 0 or max_interval_ms < first_after_ms or max_backlog_wait_ms < 0:
            raise ValueError("need 0 < first_after_ms <= max_interval_ms and max_backlog_wait_ms >= 0")
        self._first, self._max = first_after_ms, max_interval_ms
        self._max_backlog_wait = max_backlog_wait_ms
        self._heap: list[tuple[int, bytes, int]] = []  # (due_ms, tx_id, interval_ms)

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, tx_id: bytes, now_ms: int, backlog_ms: int = 0) -> None:
        """``tx_id`` was accepted here from a client (or restored after a restart), behind a
        backlog that takes ``backlog_ms`` to commit."""
        wait = min(2 * max(backlog_ms, 0), self._max_backlog_wait)
        heapq.heappush(self._heap, (now_ms + self._first + wait, tx_id, self._first))

    def due(self, now_ms: int, pending: Callable[[bytes], bool], limit: int) -> list[bytes]:
        """Ids to gossip again now, at most ``limit``; ids no longer ``pending`` are forgotten."""
        found: list[bytes] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms and len(found) < limit:
            _, tx_id, interval = heapq.heappop(heap)
            if not pending(tx_id):
                continue
            found.append(tx_id)
            interval = min(interval * 2, self._max)
            heapq.heappush(heap, (now_ms + interval, tx_id, interval))
        return found
