"""A member that breaks the stream protocol is cut off, logged and counted; the link recovers.

Garbage is written by node1's own libp2p host straight onto a stream to node0,
bypassing node1's Network, as a buggy or hostile member would.
"""

from __future__ import annotations

import logging
import re

import pytest
import trio

from lendchain.node.network import CONSENSUS_PROTOCOL, REQUEST_PROTOCOL
from lendchain.node.network_host import peer_id_of
from lendchain.node.network_wire import FrameKind, encode_frame, encode_hello
from tests.network.harness import CHAIN_ID, Peer, logged, make_members, running, wait_for, wait_full_mesh

MAX_FRAME = 4096

VIOLATIONS = {
    "oversize": encode_hello(CHAIN_ID, "node1") + (MAX_FRAME + 2).to_bytes(4, "big") + b"\x02" + b"x" * 64,
    "garbage": b"GET / HTTP/1.1\r\nHost: node0\r\n\r\n",
    "no hello": encode_frame(FrameKind.DATA, b"pre-prepare"),
    "other chain": encode_hello("some-other-chain", "node1"),
    "wrong name": encode_hello(CHAIN_ID, "node2"),
    "request on consensus stream": encode_hello(CHAIN_ID, "node1") + encode_frame(FrameKind.REQUEST, b"x"),
}
EXPECTED_LOG = {
    "oversize": "exceeds the limit of 4096",
    "garbage": "unknown frame kind|expected HELLO|exceeds the limit",
    "no hello": "first frame is DATA, expected HELLO",
    "other chain": "on chain 'some-other-chain'",
    "wrong name": "says it is 'node2' but its key is node1's",
    "request on consensus stream": "unexpected REQUEST frame",
}


@pytest.mark.parametrize("violation", sorted(VIOLATIONS))
def test_protocol_violation_closes_the_stream_and_the_link_recovers(violation, caplog):
    members, keys = make_members(3)
    peers = [Peer(m.name, keys[m.name], members, max_frame_size=MAX_FRAME) for m in members]
    node0, node1 = peers[0], peers[1]

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            host1 = node1.network._host
            stream = await host1.new_stream(peer_id_of(keys["node0"].public_key), [CONSENSUS_PROTOCOL])
            await stream.write(VIOLATIONS[violation])
            await wait_for(
                lambda: node0.network.stats()["wire_errors"] == 1, f"node0 to refuse the {violation}"
            )
            with trio.fail_after(5):
                with pytest.raises(Exception):  # noqa: B017 - libp2p's StreamReset/StreamEOF types vary
                    for _ in range(100):
                        await stream.write(encode_frame(FrameKind.PING))
                        await trio.sleep(0.02)

            # node1's real link (which a stream with a valid hello replaces, so it is reset
            # and rebuilt) delivers again; frames sent into the dying link may be lost, as
            # frames may be on any broken link: consensus retransmits.
            def resend_and_check() -> bool:
                node1.network.send("node0", b"still here")
                return b"still here" in node0.frames["node1"]

            await wait_for(resend_and_check, "a frame from node1 after the violation")
            assert set(node0.frames["node1"]) == {b"still here"}  # nothing of the violation was delivered

    with caplog.at_level(logging.WARNING):
        trio.run(main)
    warnings = [
        r.getMessage() for r in caplog.records if "closing consensus stream from node1" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert re.search(EXPECTED_LOG[violation], warnings[0]), warnings[0]


def test_garbage_request_is_refused_and_requests_still_work(caplog):
    members, keys = make_members(2)
    peers = [Peer(m.name, keys[m.name], members, max_frame_size=MAX_FRAME) for m in members]

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            host1 = peers[1].network._host
            stream = await host1.new_stream(peer_id_of(keys["node0"].public_key), [REQUEST_PROTOCOL])
            await stream.write(encode_frame(FrameKind.PING))
            await wait_for(
                lambda: peers[0].network.stats()["wire_errors"] == 1, "node0 to refuse the bad request"
            )
            assert peers[0].network.stats()["requests_in"] == 0
            assert await peers[1].network.request("node0", b"ok?", 5.0) == b"node0 answers node1: ok?"

    with caplog.at_level(logging.WARNING):
        trio.run(main)
    assert any("expected REQUEST" in r.getMessage() for r in caplog.records)


def test_oversize_outbound_frame_is_a_clear_error():
    members, keys = make_members(2)
    peers = [Peer(m.name, keys[m.name], members, max_frame_size=MAX_FRAME) for m in members]

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            with pytest.raises(ValueError, match="frame of 4097 bytes exceeds max_frame_size 4096"):
                peers[0].network.send("node1", b"x" * (MAX_FRAME + 1))
            with pytest.raises(ValueError, match="exceeds max_frame_size"):
                peers[0].network.broadcast(b"x" * (MAX_FRAME + 1))
            assert peers[0].network.send("node1", b"x" * MAX_FRAME)
            await wait_for(
                lambda: peers[1].frames["node0"] == [b"x" * MAX_FRAME], "the largest allowed frame"
            )

    trio.run(main)


def test_silent_stream_is_closed_after_dead_after_s(caplog):
    members, keys = make_members(2)
    peers = [Peer(m.name, keys[m.name], members, dead_after_s=0.6, ping_interval_s=0.1) for m in members]

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            host1 = peers[1].network._host
            stream = await host1.new_stream(peer_id_of(keys["node0"].public_key), [CONSENSUS_PROTOCOL])
            await stream.write(encode_hello(CHAIN_ID, "node1"))  # then nothing, not even PINGs
            await wait_for(
                lambda: logged(caplog, "silent for 0.6 s"),
                "node0 to give up on the silent stream",
                timeout_s=5,
            )
            await wait_full_mesh(peers, timeout_s=5)

    with caplog.at_level(logging.INFO):
        trio.run(main)


def test_stalled_write_closes_the_connection_instead_of_cancelling_the_write(caplog):
    members, keys = make_members(2)
    peers = [
        Peer("node0", keys["node0"], members, write_timeout_s=1.0, max_frame_size=1 << 20),
        Peer("node1", keys["node1"], members, dead_after_s=30.0),
    ]
    hellos = []

    async def never_reads(stream):  # node1 accepts node0's stream and then stops reading
        hellos.append(stream)
        await trio.sleep_forever()

    peers[1].network._handle_consensus_stream = never_reads

    async def main():
        async with running(peers):
            await wait_for(lambda: "node1" in peers[0].network.connected_members(), "node0's link to node1")
            for _ in range(16):  # 16 MiB: far beyond what yamux windows and socket buffers hold
                peers[0].network.send("node1", b"x" * (1 << 20))
            await wait_for(
                lambda: logged(caplog, "write stalled"),
                "node0 to notice its write to node1 is stuck",
            )
            await wait_for(
                lambda: len(hellos) >= 2, "node0 to reconnect to node1 after closing the connection"
            )

    with caplog.at_level(logging.INFO):
        trio.run(main)
