"""The yamux reader answers pings and new streams without waiting to write.

Two yamux connections face each other over a pipe that holds 1,000 bytes each
way, as a full TCP socket would. Both stream bulk data at each other, so each
side's writer mostly waits for the other side's reader. Then each side pings
once. py-libp2p's own reader writes the ping's answer inline and waits for
its writer; with both readers waiting, nothing moves again. ReaderFirstYamux
queues the answer and reads on.
"""

from __future__ import annotations

import struct

import trio
from libp2p.stream_muxer.yamux.yamux import (
    FLAG_SYN,
    TYPE_PING,
    YAMUX_HEADER_FORMAT,
    Yamux,
)

from lendchain.node import network_mux
from lendchain.node.network_mux import BulkCreditStream, ReaderFirstYamux
from tests.network.harness import running, sender_and_receiver, wait_for
from tests.network.yamux_pipe import OneWay, pair

CHUNK = b"x" * 60_000


def _ping(muxer: Yamux, value: int) -> bytes:
    return struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_PING, FLAG_SYN, 0, value)


async def _drain(stream) -> None:
    while await stream.read(65536):
        pass


async def _pump(stream, total: int) -> None:
    for _ in range(total // len(CHUNK)):
        await stream.write(CHUNK)


async def _stalled(pipes: tuple[OneWay, OneWay], for_s: float) -> None:
    """Returns once no byte has moved either way for ``for_s`` seconds."""
    carried, since = None, trio.current_time()
    while trio.current_time() - since < for_s:
        now = tuple(pipe.carried for pipe in pipes)
        if now != carried:
            carried, since = now, trio.current_time()
        await trio.sleep(0.05)


async def _both_ways_with_pings(muxer: type[Yamux], capacity: int, pings: int) -> tuple[bool, list[Yamux]]:
    """Streams 6 MB each way while each side pings; False when traffic stopped for 2 s."""
    a, b = pair(muxer, capacity)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.start)
        nursery.start_soon(b.start)
        await a.event_started.wait()
        await b.event_started.wait()
        a_out = await a.open_stream()
        b_in = await b.accept_stream()
        b_out = await b.open_stream()
        a_in = await a.accept_stream()
        nursery.start_soon(_drain, a_in)
        nursery.start_soon(_drain, b_in)

        async def ping(side: Yamux) -> None:
            for i in range(pings):
                await side._write_frame(_ping(side, 1000 + i))
                await trio.sleep(0.001)

        done = False
        async with trio.open_nursery() as watch:

            async def traffic() -> None:
                nonlocal done
                async with trio.open_nursery() as flows:
                    flows.start_soon(_pump, a_out, 6_000_000)
                    flows.start_soon(_pump, b_out, 6_000_000)
                    flows.start_soon(ping, a)
                    flows.start_soon(ping, b)
                done = True
                watch.cancel_scope.cancel()

            async def watchdog() -> None:
                await _stalled((a.secured_conn.outbound, b.secured_conn.outbound), 2.0)
                watch.cancel_scope.cancel()

            watch.start_soon(traffic)
            watch.start_soon(watchdog)
        nursery.cancel_scope.cancel()
    return done, [a, b]


def test_py_libp2p_yamux_deadlocks_when_both_readers_answer_a_ping():
    # The upstream bug this module works around. If this fails after a py-libp2p upgrade, the
    # reader no longer writes inline and ReaderFirstYamux can go.
    done, _ = trio.run(_both_ways_with_pings, Yamux, 1000, 1)
    assert not done


def test_the_same_traffic_gets_through_with_one_ping_and_with_many():
    for pings in (1, 50):
        before = ReaderFirstYamux.queued_total
        done, sides = trio.run(_both_ways_with_pings, ReaderFirstYamux, 1000, pings)
        assert done, f"{pings} pings"
        # Every answer went through the reply queue, none inline; the process-wide count
        # (lendchain_p2p_yamux_replies_queued) adds them up.
        assert all(side.replies_deferred >= pings for side in sides)
        assert ReaderFirstYamux.queued_total - before == sum(side.replies_deferred for side in sides)


def test_without_pings_the_traffic_got_through_anyway():
    # The pipe alone does not stall: the pings are what the deadlock needs.
    done, _ = trio.run(_both_ways_with_pings, Yamux, 1000, 0)
    assert done


def test_answers_are_written_in_order_after_the_writer_lets_go():
    async def main():
        a, b = pair(ReaderFirstYamux, 1 << 20)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.start)
            await a.event_started.wait()
            peer_in, peer_out = a.secured_conn.outbound, a.secured_conn.inbound
            async with a._write_lock:  # a writer holds the lock
                for value in (7, 8, 9):
                    await peer_out.send_all(_ping(a, value))
                with trio.fail_after(5):
                    while a.replies_deferred < 3:
                        await trio.sleep(0.01)
                assert not peer_in.buffer  # queued, not written
            with trio.fail_after(5):
                while len(peer_in.buffer) < 36:
                    await trio.sleep(0.01)
            answers = [
                struct.unpack(YAMUX_HEADER_FORMAT, bytes(peer_in.buffer[i : i + 12])) for i in (0, 12, 24)
            ]
            assert [(typ, value) for _, typ, _, _, value in answers] == [
                (TYPE_PING, 7),
                (TYPE_PING, 8),
                (TYPE_PING, 9),
            ]
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_peer_that_asks_for_answers_without_reading_them_is_dropped(monkeypatch):
    monkeypatch.setattr(network_mux, "MAX_PENDING_REPLIES", 5)

    async def main():
        a, _ = pair(ReaderFirstYamux, 1 << 20)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.start)
            await a.event_started.wait()
            async with a._write_lock:  # our writer is stuck: the peer reads nothing
                for value in range(6):
                    await a.secured_conn.inbound.send_all(_ping(a, value))
                with trio.fail_after(5):
                    await a.event_shutting_down.wait()
            nursery.cancel_scope.cancel()
        assert a.replies_deferred == 5

    trio.run(main)


def test_members_connect_over_the_reader_first_muxer_with_bulk_credit_streams():
    node0, node1 = sender_and_receiver()

    async def main():
        async with running([node0, node1]):
            await wait_for(lambda: node0.network.connected_members() == {node1.name}, "the link")
            swarm = node0.network._host.get_network()
            (conn,) = swarm.get_connections(node1.network.my_peer_id)
            assert type(conn.muxed_conn) is ReaderFirstYamux
            assert node0.network.stats()["yamux_replies_queued"] == ReaderFirstYamux.queued_total
            streams = list(conn.muxed_conn.streams.values())  # see test_yamux_credit.py
            assert streams and all(type(s) is BulkCreditStream for s in streams)

    trio.run(main)
