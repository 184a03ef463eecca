"""Relays to the primary (relay.py): the request format, batching, and what a receiver does with one."""

from __future__ import annotations

import logging

import pytest
import trio

from lendchain import codec
from lendchain.node import relay as relay_module
from lendchain.node.mempool import MempoolFull
from lendchain.node.metrics import NodeMetrics
from lendchain.node.relay import Relay, decode_relay, encode_relay


class Tx:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


class Pool:
    """The two mempool reads a relay makes: ids in arrival order, and the tx of an id."""

    def __init__(self, raws: list[bytes]) -> None:
        self.txs = {raw.upper(): Tx(raw) for raw in raws}  # id -> tx

    def oldest(self, limit: int) -> list[bytes]:
        return list(self.txs)[:limit]

    def get(self, tx_id: bytes) -> Tx | None:
        return self.txs.get(tx_id)


def make_relay(request=None, check=None, accept=None, pool=None, voters=("bank1", "bank2", "bank3")) -> Relay:
    async def no_request(to, payload, timeout_s):
        raise AssertionError("no request expected")

    return Relay(
        request or no_request,
        check or (lambda raws: [Tx(raw) for raw in raws]),
        accept or (lambda tx: {"status": "accepted"}),
        pool or Pool([]),
        list(voters),
        NodeMetrics(),
        logging.getLogger("test-relay"),
    )


def run_until(relay: Relay, done) -> None:
    """Run the relay's sender until ``done()``: the queue is drained and its answers handled."""

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay.run)
            with trio.fail_after(5):
                while not done():
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    trio.run(main)


def counter(relay: Relay, name: str, **labels: str) -> float:
    return relay.metrics.registry.get_sample_value(name, labels or None) or 0.0


def test_a_relay_request_round_trips_and_other_requests_are_not_taken_for_one():
    raws = [b"tx-one", b"tx-two"]
    assert decode_relay(encode_relay(raws), 1 << 20) == raws
    sync_request = codec.pack({"from": 1, "to": 5})
    for other in (sync_request, b"\xc1garbage", codec.pack({"txs": [1, 2]}), codec.pack({"txs": [], "x": 1})):
        assert decode_relay(other, 1 << 20) is None
    assert decode_relay(encode_relay([b"x" * 100]), 50) is None  # over the size limit


def test_send_splits_into_requests_of_bounded_size_and_run_sends_them_in_order(monkeypatch):
    monkeypatch.setattr(relay_module, "RELAY_MAX_BYTES", 10)
    sent: list[tuple[str, list[bytes]]] = []

    async def request(to, payload, timeout_s):
        sent.append((to, decode_relay(payload, 1 << 20)))
        return codec.pack({"accepted": 1})

    relay = make_relay(request=request)
    relay.send("bank1", [b"aaaa", b"bbbb", b"cccc", b"d" * 20, b"e"])

    run_until(relay, lambda: len(sent) == 4)
    # An oversized tx still goes, alone.
    assert sent == [("bank1", batch) for batch in ([b"aaaa", b"bbbb"], [b"cccc"], [b"d" * 20], [b"e"])]


def test_a_failed_or_refused_relay_is_counted_and_the_next_one_still_goes(caplog):
    answers = [
        OSError("connection reset"),
        codec.pack({"error": "bad sync request"}),
        codec.pack({"known": 1}),
    ]
    calls = []

    async def request(to, payload, timeout_s):
        calls.append(to)
        answer = answers[len(calls) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    relay = make_relay(request=request)
    for to in ("bank1", "bank2", "bank3"):
        relay.send(to, [b"tx"])

    with caplog.at_level(logging.INFO, "test-relay"):
        run_until(relay, lambda: len(calls) == 3 and relay._queue.statistics().tasks_waiting_receive)
    assert calls == ["bank1", "bank2", "bank3"]
    assert counter(relay, "lendchain_relay_failures_total") == 2
    assert counter(relay, "lendchain_relayed_txs_total", direction="out") == 1
    assert "could not relay 1 txs to bank1: connection reset" in caplog.text
    assert "bank2 refused 1 relayed txs" in caplog.text


def test_a_full_queue_drops_the_relay_and_counts_it(monkeypatch):
    monkeypatch.setattr(relay_module, "RELAY_QUEUE", 2)
    relay = make_relay()
    for _ in range(3):
        relay.send("bank1", [b"tx"])
    assert counter(relay, "lendchain_relay_failures_total") == 1


def test_the_receiver_pools_each_tx_and_answers_with_the_verdicts():
    statuses = iter(["accepted", "known", "accepted", "rejected"])
    relay = make_relay(accept=lambda tx: {"status": next(statuses)})
    answer = codec.unpack(relay.receive("bank2", [b"a", b"b", b"c", b"d"]))
    assert answer == {"accepted": 2, "known": 1, "rejected": 1}
    assert counter(relay, "lendchain_relayed_txs_total", direction="in") == 4


def test_the_receiver_refuses_a_batch_with_a_bad_signature_whole(caplog):
    accepted = []
    relay = make_relay(check=lambda raws: None, accept=accepted.append)
    with caplog.at_level(logging.WARNING, "test-relay"):
        answer = codec.unpack(relay.receive("bank2", [b"good", b"forged"]))
    assert "error" in answer and "signature" in answer["error"]
    assert accepted == []
    assert "bank2 relayed 2 txs and one does not check" in caplog.text


def test_a_full_mempool_stops_the_receiver_and_says_how_many_did_not_fit():
    def accept(tx):
        if tx.raw == b"c":
            raise MempoolFull("full")
        return {"status": "accepted"}

    relay = make_relay(accept=accept)
    answer = codec.unpack(relay.receive("bank2", [b"a", b"b", b"c", b"d"]))
    assert answer == {"accepted": 2, "mempool_full": 2}


@pytest.mark.parametrize("size", [0, 1])
def test_sending_nothing_queues_nothing(size):
    relay = make_relay()
    relay.send("bank1", [b"x"] * size)
    assert relay._queue.statistics().current_buffer_used == size


def test_the_timer_relays_the_oldest_txs_to_the_primary_and_the_request_alone_to_the_others(monkeypatch):
    monkeypatch.setattr(relay_module, "RELAY_OLDEST", 2)
    pool = Pool([b"a", b"b", b"c", b"d"])
    relay = make_relay(pool=pool)
    relay.send_request("bank2", b"D")  # the request, then the 2 oldest; the request is not sent twice
    queued = []
    while True:
        try:
            queued.append(relay._queue.receive_nowait())
        except trio.WouldBlock:
            break
    assert queued == [("bank2", [b"d", b"a", b"b"]), ("bank1", [b"d"]), ("bank3", [b"d"])]
    relay.send_request("bank2", b"GONE")  # committed meanwhile: the oldest still go to the primary
    assert relay._queue.receive_nowait() == ("bank2", [b"a", b"b"])
    with pytest.raises(trio.WouldBlock):
        relay._queue.receive_nowait()


def test_a_relay_whose_txs_were_new_to_the_primary_is_logged_for_an_operator(caplog):
    """Txs new to the receiver are what gossip lost; txs it knew are only a slow round."""
    answers = [codec.pack({"known": 3}), codec.pack({"accepted": 2, "known": 1})]
    calls = []

    async def request(to, payload, timeout_s):
        calls.append(to)
        return answers[len(calls) - 1]

    relay = make_relay(request=request)
    relay.send("bank1", [b"tx1", b"tx2", b"tx3"])
    relay.send("bank1", [b"tx4", b"tx5", b"tx6"])
    with caplog.at_level(logging.INFO, "test-relay"):
        run_until(relay, lambda: len(calls) == 2 and relay._queue.statistics().tasks_waiting_receive)
    assert [r.getMessage() for r in caplog.records] == ["relayed 3 txs to bank1: {'accepted': 2, 'known': 1}"]


def test_a_removed_member_gets_no_relay_taken_and_no_block_above_its_removal(node):
    node._removals_seen = {"bank4": 0}  # removed by the genesis block, say: it may fetch nothing
    refused = codec.unpack(trio.run(node._on_request, "bank4", encode_relay([b"tx"])))
    assert refused == {"error": "bank4 was removed from the consortium at height 0"}
    assert len(node.mempool) == 0
    answer = codec.unpack(trio.run(node._on_request, "bank4", codec.pack({"from": 1, "to": 64})))
    assert answer == {"head": 0, "blocks": []}
    taken = codec.unpack(trio.run(node._on_request, "bank2", encode_relay([b"tx"])))
    assert "error" in taken and "removed" not in taken["error"]  # a member's relay is looked at
