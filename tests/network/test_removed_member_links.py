"""A removed member's links do not flap (``network_members``: passive links).

Two moments after ``member.remove``. Until the members let it go they dial
it no more (``stop_dialling``); a node that read its own removal leaves, and
no one dials it, so nothing is refused every few seconds. Once they let it
go, a node that has not read its removal yet still connects to fetch its
blocks; the members answer its link with a stream of their own, so the link
hears something and is not closed every ``dead_after_s``. Each test counts
link transitions and log lines over a window of several ``dead_after_s``.
"""

from __future__ import annotations

import logging

import pytest
import trio

from lendchain.node.network_host import peer_id_of
from tests.network.harness import Peer, make_members, running, wait_for, wait_full_mesh

DEAD_AFTER_S = 1.0
WINDOW_S = 3 * DEAD_AFTER_S
FAST_LIVENESS = {"dead_after_s": DEAD_AFTER_S, "gossip_repair_s": 1.0}


def three_nodes() -> tuple[list[Peer], Peer]:
    """node0 and node1 vote; observer0 is the member they remove."""
    members, keys = make_members(2, observers=1)
    peers = [Peer(m.name, keys[m.name], members, **FAST_LIVENESS) for m in members]
    return peers[:2], peers[2]


def said(caplog: pytest.LogCaptureFixture, node: str, words: str) -> int:
    return sum(1 for r in caplog.records if r.name == f"test.{node}" and words in r.getMessage())


async def stays(condition, what: str, window_s: float = WINDOW_S) -> None:
    """``condition`` holds at every poll for ``window_s``; fail naming ``what`` the first time it does not."""
    with trio.move_on_after(window_s):
        while True:
            assert condition(), f"{what} stopped holding"
            await trio.sleep(0.05)


def test_members_stop_dialling_a_removed_member_and_its_node_once_it_read_its_removal_dials_no_one(caplog):
    (node0, node1), removed = three_nodes()

    async def main():
        async with running([node0, node1, removed]):
            await wait_full_mesh([node0, node1, removed])
            # The removal executes: the members dial it no more (said once), though it is not
            # let go yet and the link it keeps to them stays up, answered.
            for member in (node0, node1):
                assert member.network.stop_dialling("observer0")
                assert not member.network.stop_dialling("observer0")
                assert not member.network.stop_dialling("nobody")
                # No longer one of the nodes a healthy network links to (the link-down alert).
                assert (member.network.stats()["members"], member.network.stats()["connected"]) == (1, 1)
            down_before = said(caplog, "observer0", "down")
            await stays(lambda: removed.network.connected_members() == {"node0", "node1"}, "its links")
            assert said(caplog, "observer0", "down") == down_before
            assert removed.network.stats()["reconnects"] == 0
            # Its node reads its removal: it closes its links, says so once, and no one dials it.
            unreached = [said(caplog, m, "cannot reach observer0") for m in ("node0", "node1")]
            removed.network.leave()
            await wait_for(lambda: not removed.network.reachable_members(), "its connections closed")
            await stays(lambda: removed.network.stats()["rejected_peers"] == 0, "no dial refused")
            assert said(caplog, "observer0", "it links to no member now") == 1
            assert said(caplog, "observer0", "refused") == 0
            assert [said(caplog, m, "cannot reach observer0") for m in ("node0", "node1")] == unreached
            assert all(link.failed_dials == 0 for m in (node0, node1) for link in m.network._links.values())
            assert said(caplog, "node0", "observer0 was removed from the consortium: this node dials") == 1

    with caplog.at_level(logging.INFO):
        trio.run(main)


def test_a_node_let_go_before_it_read_its_removal_keeps_its_links_up(caplog):
    (node0, node1), removed = three_nodes()

    async def main():
        async with running([node0, node1, removed]):
            await wait_full_mesh([node0, node1, removed])
            for member in (node0, node1):
                assert member.network.remove_member("observer0")

            # Let go, the members close their links once; its node (that has not read its
            # removal) connects again, and from then on its links hear the members.
            def answered() -> bool:
                let_go = [link for m in (node0, node1) for link in m.network._let_go_links()]
                return all(link.up for link in let_go) and removed.network.connected_members() == {
                    "node0",
                    "node1",
                }

            await wait_for(answered, "its links back, answered")
            reconnects = removed.network.stats()["reconnects"]
            down_before = said(caplog, "observer0", "down")
            await stays(lambda: removed.network.connected_members() == {"node0", "node1"}, "its links")
            assert removed.network.stats()["reconnects"] == reconnects
            assert said(caplog, "observer0", "down") == down_before
            # Not a member's gossip repair either: its peers refuse its pubsub on purpose.
            assert removed.network.stats()["gossip_repairs"] == 0
            # It asks, and is answered, over those links; the members link to it no more.
            assert (
                await removed.network.request("node0", b"blocks?", 5.0) == b"node0 answers observer0: blocks?"
            )
            assert "observer0" not in node0.network.connected_members()
            # It reads its removal: its links close, and the members' answers with them.
            unreached = said(caplog, "node0", "cannot reach observer0")
            removed.network.leave()
            await wait_for(lambda: not removed.network.reachable_members(), "its connections closed")
            await stays(lambda: removed.network.stats()["rejected_peers"] == 0, "no dial refused")
            assert said(caplog, "node0", "cannot reach observer0") == unreached

    with caplog.at_level(logging.INFO):
        trio.run(main)


def test_a_member_started_after_the_let_go_answers_the_removed_members_node():
    members, keys = make_members(1, observers=1)
    node0_member, removed_member = members
    # node0 starts with the removal in its store: the removed member is let go from the start.
    node0 = Peer("node0", keys["node0"], [node0_member], **FAST_LIVENESS)
    node0.network.let_go(removed_member, [removed_member.public_key])
    removed = Peer("observer0", keys["observer0"], members, **FAST_LIVENESS)

    async def main():
        async with running([node0, removed]):
            await wait_for(lambda: removed.network.connected_members() == {"node0"}, "its link to node0")
            await stays(lambda: removed.network.connected_members() == {"node0"}, "its link")
            assert removed.network.stats()["reconnects"] == 0
            assert node0.network.stats()["members"] == 0 and node0.network.connected_members() == set()
            assert node0.network.let_go_member(peer_id_of(removed_member.public_key)) == "observer0"

    trio.run(main)
