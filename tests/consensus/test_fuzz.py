"""Peer input is hostile bytes: mutated messages become Faults or are ignored, never exceptions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lendchain.consensus.events import Fault, Receive
from tests.consensus.harness import Cluster


def _recorded_traffic() -> list[tuple[str, bytes]]:
    c = Cluster()
    traffic: list[tuple[str, bytes]] = []

    def record(sender: str, to: str, message: object) -> bool:
        traffic.append((sender, message.encode()))  # type: ignore[attr-defined]
        return False

    c.down.add("r0")  # forces a view change, so VIEW-CHANGE and NEW-VIEW are recorded too
    c.submit(6)
    c.run(400, drop=record)
    return traffic


TRAFFIC = _recorded_traffic()


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(TRAFFIC) - 1),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=4),
    cut=st.integers(min_value=0, max_value=64),
)
def test_mutated_messages_never_raise(index: int, flips: list[tuple[int, int]], cut: int) -> None:
    c = Cluster()
    sender, payload = TRAFFIC[index]
    data = bytearray(payload)
    for position, value in flips:
        data[position % len(data)] = value
    if cut:
        data = data[: max(1, len(data) - cut)]
    actions = c.step("r3" if sender != "r3" else "r2", Receive(sender, bytes(data)))
    assert all(not isinstance(a, Fault) or a.kind for a in actions)


def test_traffic_covers_every_message_kind() -> None:
    from lendchain.consensus import messages as m

    kinds = {m.decode(p, 1 << 30).KIND for _, p in TRAFFIC}
    assert {"preprepare", "prepare", "commit", "checkpoint", "viewchange", "newview"} <= kinds
