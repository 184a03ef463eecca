"""A yamux reader returns its sender's credit once per half window, not once per read.

Two yamux connections face each other over in-memory pipes; one side's bytes
are parsed back into frames to count the WINDOW_UPDATEs it wrote.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from contextlib import asynccontextmanager

import trio
from libp2p.stream_muxer.yamux.yamux import (
    DEFAULT_WINDOW_SIZE,
    FLAG_ACK,
    FLAG_SYN,
    HEADER_SIZE,
    TYPE_DATA,
    TYPE_WINDOW_UPDATE,
    YAMUX_HEADER_FORMAT,
)

from lendchain.node import network_mux
from lendchain.node.network_mux import BulkCreditStream, ReaderFirstYamux
from tests.network.harness import Peer, make_members, running, wait_for, wait_full_mesh
from tests.network.yamux_pipe import pair

MESSAGE = b"m" * 1_000
CHUNK = bytes(range(256)) * 200  # 51,200 bytes: the window is no multiple of it


def _credits(written: bytes) -> list[int]:
    """The increments of the plain WINDOW_UPDATEs in ``written`` (not a stream's SYN or ACK)."""
    increments, at = [], 0
    while at + HEADER_SIZE <= len(written):
        _, kind, flags, _, length = struct.unpack(YAMUX_HEADER_FORMAT, written[at : at + HEADER_SIZE])
        at += HEADER_SIZE
        if kind == TYPE_DATA:
            at += length
        elif kind == TYPE_WINDOW_UPDATE and not flags & (FLAG_SYN | FLAG_ACK) and length:
            increments.append(length)
    assert at == len(written), "the log ends inside a frame"
    return increments


@asynccontextmanager
async def _stream(capacity: int):
    """Muxers a and b running over pipes of ``capacity`` bytes, a stream from a to b open: (b, out, into)."""
    a, b = pair(ReaderFirstYamux, capacity, keep=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.start)
        nursery.start_soon(b.start)
        out = await a.open_stream()
        into = await b.accept_stream()
        yield b, out, into
        nursery.cancel_scope.cancel()


async def _one_read_per_message(messages: int) -> tuple[list[int], int]:
    """``messages`` small messages from a to b, each read by b before a sends the next.

    Returns the credits b wrote and how many bytes b read.
    """
    received = 0
    async with _stream(1 << 20) as (b, out, into):
        for _ in range(messages):
            await out.write(MESSAGE)
            received += len(await into.read(65536))
        await trio.sleep(0.05)  # any credit written has reached the pipe
    return _credits(bytes(b.secured_conn.outbound.log)), received


def test_py_libp2p_answers_every_read_with_a_window_update(monkeypatch):
    # The upstream behaviour BulkCreditStream replaces: if this fails after a py-libp2p
    # upgrade, its streams credit in bulk themselves and the subclass can go.
    monkeypatch.setattr(network_mux._yamux_module, "YamuxStream", network_mux.YamuxStream)
    credits, received = trio.run(_one_read_per_message, 100)
    assert received == 100 * len(MESSAGE)
    assert len(credits) >= 100


def test_reads_under_half_a_window_return_no_credit():
    credits, received = trio.run(_one_read_per_message, 100)
    assert received == 100 * len(MESSAGE) < DEFAULT_WINDOW_SIZE // 2
    assert credits == []


async def _bulk(total: int, capacity: int) -> dict:
    """``total`` bytes from a to b through a pipe of ``capacity`` bytes, read as they come."""
    sent, got = hashlib.sha256(), hashlib.sha256()
    received = 0
    async with _stream(capacity) as (b, out, into):

        async def write() -> None:
            for _ in range(total // len(CHUNK)):
                sent.update(CHUNK)
                await out.write(CHUNK)

        async def read() -> None:
            nonlocal received
            while received < total // len(CHUNK) * len(CHUNK):
                data = await into.read(65536)
                got.update(data)
                received += len(data)

        with trio.fail_after(30):  # a sender left without credit stalls here
            async with trio.open_nursery() as flows:
                flows.start_soon(write)
                flows.start_soon(read)
        await trio.sleep(0.05)  # the last credit has been read and applied
        result = {
            "credits": _credits(bytes(b.secured_conn.outbound.log)),
            "intact": sent.digest() == got.digest(),
            "received": received,
            "sender_window": out.send_window,
            "receiver_window": into.recv_window,
            "classes": {type(out), type(into)},
        }
    return result


def test_a_bulk_transfer_gets_through_with_one_update_per_half_window(caplog):
    caplog.set_level(logging.WARNING)
    total = 6_000_000
    result = trio.run(_bulk, total, 1000)  # a pipe as small as a full socket's buffer
    assert result["intact"] and result["received"] == total // len(CHUNK) * len(CHUNK)
    assert result["classes"] == {BulkCreditStream}
    # Each update returns at least half of the window the reader had then.
    assert 0 < len(result["credits"]) <= result["received"] // (DEFAULT_WINDOW_SIZE // 2)
    # No credit is lost or invented: once everything is read, the window the sender may
    # use is the one the receiver keeps, and the sender never overran it.
    assert result["sender_window"] == result["receiver_window"] >= DEFAULT_WINDOW_SIZE // 2
    assert not [r for r in caplog.records if "exceeded receive window" in r.getMessage()]


def test_a_member_its_peer_throttles_keeps_its_link_and_every_frame_arrives():
    # The receiver reads node0's frames at 2,000 a second, so node0's writer runs out of
    # credit and waits on it; credit held back too long would stall a write past its
    # timeout (3 s here), and the link would be reset and rebuilt.
    members, keys = make_members(2)
    peers = [
        Peer("node0", keys["node0"], members, write_timeout_s=3.0),
        Peer("node1", keys["node1"], members, peer_frames_per_s=2000, peer_frames_burst=200),
    ]
    frames = [b"%05d" % i + b"f" * 600 for i in range(4000)]

    async def main():
        async with running(peers):
            await wait_full_mesh(peers)
            for i, frame in enumerate(frames):
                assert peers[0].network.send("node1", frame)
                assert peers[1].network.send("node0", frame)
                if i % 500 == 499:
                    await trio.sleep(0.2)
            await wait_for(
                lambda: len(peers[1].frames["node0"]) == len(peers[0].frames["node1"]) == len(frames),
                "every frame both ways",
            )
            assert peers[1].network.stats()["throttled_frames"] >= 1
            assert peers[1].frames["node0"] == frames == peers[0].frames["node1"]
            assert [p.network.stats()["reconnects"] for p in peers] == [0, 0]

    trio.run(main)
