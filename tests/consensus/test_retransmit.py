"""Retransmission waits for a round to fall silent, not merely for it to be slow.

A replica re-sends its PRE-PREPARE (the primary), its votes and its head
certificate a quarter timeout after the last commit. A round that takes
longer than that but keeps hearing from the other members is not sent again.
While work waits it also re-sends its CHECKPOINT of the stable height (for a
member that missed it), and a replica catching up asks again for blocks a
fetch did not bring.
"""

from dataclasses import replace

import pytest

from lendchain.consensus import messages as m
from lendchain.consensus.events import Receive
from tests.consensus.harness import PARAMS, Cluster

T = 1000  # a timeout long enough for a slow round: retransmission is due after T / 4
SLOW = replace(PARAMS, view_change_timeout_ms=T)
BACKUPS = ["r1", "r2", "r3"]


class SlowWire:
    """Messages wait in a queue and go one at a time; a message queued twice is a repeat.

    Votes and PRE-PREPAREs are signed deterministically, so a re-sent one has
    the same bytes as the first copy. A repeat is recorded, not queued again.
    """

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.seen: set[tuple[str, str, bytes]] = set()
        self.queue: list[tuple[str, str, bytes]] = []
        self.repeats: list[tuple[int, str, str]] = []  # (time, kind, sender)

    def _take_outbox(self) -> None:
        while self.c.outbox:
            item = self.c.outbox.popleft()
            if item in self.seen:
                self.repeats.append((self.c.now, m.decode(item[2], 1 << 30).KIND, item[0]))
            else:
                self.seen.add(item)
                self.queue.append(item)

    def run(self, steps: int, deliver_every: int | None) -> None:
        """``steps`` ticks of 10 ms; after every ``deliver_every``-th, one queued message goes (None: none)."""
        for step in range(1, steps + 1):
            self.c.tick(10)
            self._take_outbox()
            if deliver_every and step % deliver_every == 0 and self.queue:
                sender, to, payload = self.queue.pop(0)
                self.c.step(to, Receive(sender, payload))
                self._take_outbox()


def test_a_slow_round_that_keeps_being_heard_from_is_not_sent_again():
    c = Cluster(params=SLOW)
    c.submit()
    wire = SlowWire(c)
    # One message every 20 ms: the round takes ~400 ms, well past the quarter
    # timeout (250 ms) after which a silent round is sent again.
    committed_at = None
    for _ in range(30):
        wire.run(steps=2, deliver_every=2)
        if committed_at is None and min(c.heights().values()) == 1:
            committed_at = c.now
    assert committed_at is not None and committed_at > T // 4 + 100, committed_at
    assert wire.repeats == []


def test_a_round_that_falls_silent_is_sent_again_a_quarter_timeout_after_its_last_message():
    c = Cluster(params=SLOW)
    c.submit()
    wire = SlowWire(c)
    wire.run(steps=12, deliver_every=2)  # the PRE-PREPAREs and a few PREPAREs get through
    assert all(1 in c.replicas[name]._preprepares for name in BACKUPS)
    assert wire.repeats == []
    silent_from = c.now
    wire.run(steps=40, deliver_every=None)  # nothing is delivered from here on
    assert wire.repeats, "a silent round must be sent again"
    first = min(at for at, _, _ in wire.repeats)
    assert silent_from < first <= silent_from + T // 4, (silent_from, first)
    assert "preprepare" in {kind for _, kind, sender in wire.repeats if sender == "r0"}
    assert c.heights() == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}


def _stall_with_r1_missing_the_checkpoints() -> Cluster:
    """r3 is silent, so r0, r1 and r2 are the quorum; no CHECKPOINT reaches r1 (K = 2, L = 4).

    r0 and r2 make checkpoints 2 and 4 stable; r1 commits blocks 1-4 too, but its
    window stays (0, 4], so it ignores the PRE-PREPARE at 5 and the chain cannot
    go on without it. (Simulation seed 3002510 stalled so: a Byzantine member and
    one that had caught up past its lost CHECKPOINTs, in every later view.)
    """
    c = Cluster()
    c.down.add("r3")
    c.submit(40)
    c.run(300, drop=lambda sender, to, msg: to == "r1" and isinstance(msg, m.Checkpoint))
    assert {name: c.heights()[name] for name in ("r0", "r1", "r2")} == {"r0": 4, "r1": 4, "r2": 4}
    stable = {name: c.replicas[name].stable_checkpoint for name in ("r0", "r1", "r2")}
    assert stable == {"r0": 4, "r1": 0, "r2": 4}
    return c


def test_a_member_that_missed_the_stable_checkpoint_hears_it_again_while_work_waits():
    c = _stall_with_r1_missing_the_checkpoints()
    c.run(2000)
    assert c.replicas["r1"].stable_checkpoint >= 4
    assert min(c.heights()[name] for name in ("r0", "r1", "r2")) > 6


def test_a_restarted_member_sends_its_checkpoint_from_the_stable_proof_in_its_wal():
    c = _stall_with_r1_missing_the_checkpoints()
    for name in ("r0", "r2"):  # their CHECKPOINTs at 4 now live only in the WAL's stable proof
        c.restart(name)
        assert c.replicas[name].stable_checkpoint == 4
    c.run(2000)
    assert c.replicas["r1"].stable_checkpoint >= 4
    assert min(c.heights()[name] for name in ("r0", "r1", "r2")) > 6


def test_an_idle_member_does_not_send_its_stable_checkpoint_again():
    sent: list[m.Checkpoint] = []
    c = Cluster()
    for _ in range(4):
        c.submit(1)
        c.run(100)
    c.run(500)
    assert set(c.heights().values()) == {4} and {r.stable_checkpoint for r in c.replicas.values()} == {4}
    c.outbox.clear()

    def record(sender: str, to: str, msg: m.Message) -> bool:
        if isinstance(msg, m.Checkpoint):
            sent.append(msg)
        return False  # nothing is dropped

    c.run(3000, drop=record)
    assert sent == []


@pytest.mark.parametrize("observers, behind", [(1, "r4"), (0, "r3")])
def test_a_fetch_left_unanswered_is_asked_again(observers: int, behind: str):
    """A replica one block behind holds that block's certificate from an announcement, so later
    announcements are no news to it; its unanswered fetch is asked again on its timer, voter or not.
    (Simulation seed 3004180 stalled so: an observer promoted at the next height, one block behind
    after its one fetch went to a peer that lacked the block, and a silent Byzantine member.)"""
    c = Cluster(observers=observers)
    c.down.add(behind)
    c.submit(1)
    c.run(100)
    assert c.heights()[behind] == 0 and c.heights()["r0"] == 1
    c.down.discard(behind)
    c.run(300)  # the others' retransmitted announcements show it block 1's certificate
    assert c.fetches[behind] and c.heights()[behind] == 0
    c.fetches[behind].clear()  # that fetch goes unanswered
    c.run(1000)
    assert c.fetches[behind], "the fetch must be asked again"
    c.serve_fetches(behind, "r0")
    assert c.heights()[behind] == 1
