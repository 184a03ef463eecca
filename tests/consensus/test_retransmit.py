"""Retransmission waits for a round to fall silent, not merely for it to be slow.

A replica re-sends its PRE-PREPARE (the primary), its votes and its head
certificate a quarter timeout after the last commit. A round that takes
longer than that but keeps hearing from the other members is not sent again.
"""

from dataclasses import replace

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
