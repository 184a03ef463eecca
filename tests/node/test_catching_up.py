"""A node that is behind says so: catching up, how far, not ready; its peers say so too, not down.

A node started on an older store (restored from a backup, or down a while)
cannot know it is behind until a peer has said how far the chain is: until
then it does not claim to be caught up (``/status`` ``sync``, ``GET /ready``,
``lendchain_catching_up``). Its peers see it ask them for blocks: their
member view shows it catching up at the height it asks from, rather than
silent and down. The driver asks its peers in turn, so that each sees it.
"""

from __future__ import annotations

import logging
import re
import time

import trio
from prometheus_client import generate_latest

from lendchain import codec
from lendchain.consensus.events import FetchBlocks, SyncedBlock
from lendchain.node.driver import ConsensusDriver, MemberSighting
from lendchain.node.metrics import NodeMetrics


def scraped(node) -> dict[str, float]:
    text = generate_latest(node.metrics_registry).decode()
    return {name: float(value) for name, value in re.findall(r"^(lendchain_\w+) (\S+)$", text, re.M)}


def test_a_node_that_heard_no_peer_since_its_start_does_not_say_it_is_caught_up(node):
    node._ready = True  # its API is up
    assert node.sync_status() == {"state": "catching_up", "target": None, "behind": None, "blocks_per_s": 0.0}
    assert not node.is_ready()
    metrics = scraped(node)
    assert metrics["lendchain_catching_up"] == 1 and "lendchain_sync_behind_blocks" not in metrics
    assert metrics["lendchain_height"] == 0  # set at the start, not at the first commit


def test_a_peer_heard_shows_how_far_behind_the_node_is_until_it_caught_up(node):
    node._ready = True
    node.driver.member_sightings["bank2"] = MemberSighting(60, time.monotonic())
    node.driver.sync_target = 60  # what the replica's FetchBlocks set: proven by the peers
    assert node.sync_status()["state"] == "catching_up"
    assert (node.sync_status()["behind"], node.sync_status()["target"]) == (60, 60)
    assert not node.is_ready()
    assert scraped(node)["lendchain_sync_behind_blocks"] == 60
    node.driver.sync_target = 0  # the peers are where this node is
    assert node.sync_status() | {"blocks_per_s": 0.0} == {
        "state": "synced", "target": 0, "behind": 0, "blocks_per_s": 0.0,
    }  # fmt: skip
    assert node.is_ready()
    assert scraped(node)["lendchain_catching_up"] == 0
    # Heard once, known for good: a replica started anew (a promotion) has heard no one yet.
    node.driver.member_sightings.clear()
    assert node.is_ready()


def ask_heads(node, heads: dict[str, int | None]) -> list[str]:
    """Run ``_learn_peer_heights`` once against peers claiming ``heads`` (None: no answer)."""
    asked: list[str] = []

    async def request(name: str, payload: bytes, timeout_s: float) -> bytes:
        asked.append(name)
        assert codec.unpack(payload) == {"from": 1, "to": 0}  # an empty range: the head only
        if heads[name] is None:
            raise TimeoutError(f"request to {name} timed out")
        return codec.pack({"head": heads[name], "blocks": []})

    node.network.reachable_members = lambda: set(heads)
    node._request = request
    trio.run(node._learn_peer_heights)
    return asked


def test_an_idle_chain_says_how_far_it_is_when_asked(node):
    node._ready = True  # at its genesis no member sends a consensus message: it asks them instead
    assert ask_heads(node, {"bank2": 0, "bank3": 0, "bank4": None}) == ["bank2", "bank3", "bank4"]
    assert node.sync_status()["state"] == "synced" and node.is_ready()


def test_the_height_f_plus_1_members_claim_is_the_target_one_liar_cannot_raise_it(node):
    ask_heads(node, {"bank2": 5, "bank3": 9, "bank4": None})
    assert (node.sync_status()["behind"], node.sync_status()["target"]) == (5, 5)  # bank3 alone says 9
    node._peer_heights_heard, node._claimed_target = False, 0
    ask_heads(node, {"bank2": 10**9, "bank3": 0, "bank4": 0})
    assert node.sync_status()["state"] == "synced"


def test_a_follower_knows_once_a_voting_member_answered_its_fetch(node):
    node._ready = True
    node.driver = None  # an observer's node follows without a replica
    assert not node.is_ready() and node.sync_status()["behind"] is None
    node._observer_target, node._peer_heights_heard = 12, True  # what _follow_as_observer records
    assert (node.sync_status()["state"], node.sync_status()["behind"]) == ("catching_up", 12)
    node._observer_target = 0
    assert node.is_ready()


def test_a_removed_members_node_has_every_block_it_may_fetch(node):
    node._ready = True
    node._removals_seen = {"bank1": 0}
    assert node.sync_status()["state"] == "synced" and node.is_ready()


def test_peers_show_a_member_asking_for_blocks_as_catching_up_not_silent(node):
    silent_after_s = 6 * node.genesis.consensus.view_change_timeout_ms / 1000
    long_ago = time.monotonic() - 10 * silent_after_s
    node.driver.member_sightings["bank2"] = MemberSighting(63, long_ago)  # before it was restored
    before = {row["name"]: row for row in node._member_heights(63)}["bank2"]
    assert before["silent"] and not before["catching_up"] and before["height"] == 63
    node.note_catch_up("bank2", codec.pack({"from": 4, "to": 63}))  # restored at height 3
    node.note_catch_up("bank3", b"not a sync request")  # ignored
    rows = {row["name"]: row for row in node._member_heights(63)}
    assert rows["bank2"]["catching_up"] and rows["bank2"]["height"] == 3
    assert not rows["bank2"]["silent"] and rows["bank2"]["last_seen_s"] < 1
    assert not rows["bank3"]["catching_up"] and rows["bank3"]["height"] is None
    # Caught up, it votes again: its signed messages are the newer word.
    node.driver.member_sightings["bank2"] = MemberSighting(63, time.monotonic() + 1)
    row = {row["name"]: row for row in node._member_heights(63)}["bank2"]
    assert not row["catching_up"] and row["height"] == 63
    # Asking for the block after ours is not being behind.
    node.note_catch_up("bank4", codec.pack({"from": 64, "to": 64}))
    assert not {row["name"]: row for row in node._member_heights(63)}["bank4"]["catching_up"]


class HeadOnly:
    """A store that only knows its head height, which the test's replica moves."""

    class Head:
        def __init__(self, height: int) -> None:
            self.height = height

    def __init__(self) -> None:
        self.height = 0

    def head(self):
        return self.Head(self.height)


def test_catch_up_asks_the_peers_in_turn_so_that_each_sees_the_node_catching_up():
    store = HeadOnly()
    asked: list[tuple[str, int]] = []

    async def request(peer: str, payload: bytes, timeout_s: float) -> bytes:
        start = codec.unpack(payload)["from"]
        asked.append((peer, start))
        return codec.pack({"head": 6, "blocks": [[h, b"block", b"cert"] for h in (start, start + 1)]})

    async def main() -> None:
        driver = ConsensusDriver(
            None,  # type: ignore[arg-type]  # the replica's part is played below
            None,  # type: ignore[arg-type]
            store,  # type: ignore[arg-type]
            send=lambda to, payload: True,
            broadcast=lambda payload: None,
            request=request,
            metrics=NodeMetrics(),
            log=logging.getLogger("catch-up-test"),
        )

        async def apply_synced_blocks() -> None:
            async for event in driver._inbox:
                assert isinstance(event, SyncedBlock)
                store.height = event.height
                driver._height_changed.set()
                driver._height_changed = trio.Event()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply_synced_blocks)
            driver.sync_target = 6
            await driver._fetch(FetchBlocks(1, 6, ["bank2", "bank3", "bank4"]))
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert asked == [("bank2", 1), ("bank3", 3), ("bank4", 5)] and store.height == 6
