"""Gossip in: a checked message is pooled without a second check; one bad tx refuses it whole."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

import lendchain.ledger.transactions as transactions
from lendchain import codec
from lendchain.crypto import SigningKey
from lendchain.ledger.keyrotation import MemberSigner
from lendchain.ledger.transactions import Transaction, build_transaction
from lendchain.node.daemon import Node
from lendchain.node.gossip import GOSSIP_FLUSH_MAX_S, GOSSIP_FLUSH_S
from lendchain.node.network import NetworkError

FLUSHES = 3  # flush intervals the flusher runs for, on the mock clock
IDLE_S = 10 + 2.5 * GOSSIP_FLUSH_S  # an idle outbox's wait before a tx comes, on the mock clock


def registrations(node: Node, count: int) -> list[Transaction]:
    genesis = node.genesis
    return [
        build_transaction(
            SigningKey.generate(),
            genesis.chain_id,
            "party.register",
            0,
            {"role": "borrower"},
            genesis.genesis_time_ms,
        )
        for _ in range(count)
    ]


def forged(tx: Transaction) -> Transaction:
    return Transaction(tx.chain_id, tx.kind, tx.sender, tx.nonce, tx.created_ms, tx.payload, bytes(64))


def message(txs: list[Transaction]) -> bytes:
    return codec.pack([tx.encode() for tx in txs])


def test_a_checked_message_is_pooled_without_checking_again(node, monkeypatch):
    checked: list[bytes] = []
    real_verify = transactions.verify_signature
    monkeypatch.setattr(transactions, "verify_signature", lambda tx: checked.append(tx.id) or real_verify(tx))
    txs = registrations(node, 5)
    data = message(txs)
    assert node._validate_gossip(data) is True
    assert checked == [tx.id for tx in txs]
    assert all(tx.id in node.app.verified for tx in txs)
    node._on_gossip(data)  # delivery takes the checked txs from validation
    assert len(checked) == 5
    assert all(tx.id in node.mempool for tx in txs)


def test_one_bad_signature_refuses_the_message_and_marks_nothing_verified(node):
    good = registrations(node, 3)
    data = message([*good, forged(registrations(node, 1)[0])])
    assert node._validate_gossip(data) is False
    assert not any(tx.id in node.app.verified for tx in good)
    node._on_gossip(data)  # a delivery without validation checks it again, and refuses it
    assert len(node.mempool) == 0


@pytest.mark.parametrize(
    "data",
    [b"\xc1", codec.pack({"txs": []}), codec.pack(["not bytes"]), codec.pack([b"not a tx"])],
    ids=["not msgpack", "not a list", "not bytes", "not a tx"],
)
def test_a_malformed_message_is_refused(node, data):
    assert node._validate_gossip(data) is False


def test_a_tx_already_verified_is_not_checked_again(node, monkeypatch):
    txs = registrations(node, 3)
    assert node._validate_gossip(message(txs[:2])) is True
    checked: list[bytes] = []
    real_verify = transactions.verify_signature
    monkeypatch.setattr(transactions, "verify_signature", lambda tx: checked.append(tx.id) or real_verify(tx))
    assert node._validate_gossip(message(txs)) is True
    assert checked == [txs[2].id]


def test_a_pooled_tx_is_not_checked_again_after_its_id_left_the_recent_memory(node, monkeypatch):
    txs = registrations(node, 3)
    assert [r["status"] for r in node.submit([tx.encode() for tx in txs[:2]])] == ["accepted"] * 2
    node.app.verified._recent.clear()  # as if 65,536 other ids had been checked since
    checked: list[bytes] = []
    real_verify = transactions.verify_signature
    monkeypatch.setattr(transactions, "verify_signature", lambda tx: checked.append(tx.id) or real_verify(tx))
    assert node._validate_gossip(message(txs)) is True
    assert checked == [txs[2].id]  # the two in the mempool count as checked
    assert all(tx.id in node.app.verified for tx in txs)


def test_a_replaced_member_key_is_refused_at_admission_from_gossip_and_the_api(node):
    """Only a member's did is looked up for a rotation: anyone else's tx skips that step."""
    old_key, current_key = SigningKey(b"\x06" * 32), SigningKey(b"\x07" * 32)
    node.signers = {
        old_key.did: MemberSigner("bank2", "did:key:z6Mkbank2", (0, 1), 0),
        current_key.did: MemberSigner("bank2", "did:key:z6Mkbank2", (0, 1), 1),
    }
    genesis = node.genesis

    def register(key: SigningKey) -> Transaction:
        return build_transaction(key, genesis.chain_id, "party.register", 0, {"role": "borrower"}, 1)

    stale, current, borrower = register(old_key), register(current_key), registrations(node, 1)[0]
    message_of = f"sender {old_key.did} is bank2's replaced key (its successor signs from height 1): "
    message_of += "sign with bank2's current node key"
    assert node.submit([stale.encode()]) == [
        {"id": stale.id.hex(), "status": "rejected", "code": "forbidden", "message": message_of}
    ]
    assert node._validate_gossip(message([stale])) is True  # stateless: the key is a valid did:key
    node._on_gossip(message([stale, current, borrower]))
    assert stale.id not in node.mempool and current.id in node.mempool and borrower.id in node.mempool


def test_a_batch_the_network_cannot_take_now_goes_out_first_on_the_next_flush(node, monkeypatch):
    """While the host moves to a rotated key, publish fails: the batch waits, nothing is lost."""
    txs = [tx.encode() for tx in registrations(node, 3)]
    node._gossip_outbox.extend(txs)
    published: list[list[bytes]] = []
    failures = [NetworkError("cannot publish: the network is not running (or moving to a new key)")]

    async def publish(data: bytes) -> None:
        if failures:
            raise failures.pop()
        published.append(codec.unpack(data))

    monkeypatch.setattr(node.network, "publish", publish)

    async def main() -> None:
        with trio.move_on_after(FLUSHES * GOSSIP_FLUSH_S):
            await node._gossip_flusher()

    trio.run(main, clock=MockClock(autojump_threshold=0))
    assert published == [txs] and node._gossip_outbox == [] and failures == []


def test_the_unchecked_txs_of_a_batch_are_those_not_in_the_checked_signatures(node):
    """``CheckedSignatures.unchecked`` answers ``tx.id not in checked`` for each tx, in order."""
    txs = registrations(node, 4)
    checked = node.app.verified
    checked.add(txs[1].id)
    node.submit([txs[2].encode()])  # pooled: counts as checked
    checked._recent.clear()
    batch = [txs[3], txs[0], txs[1], txs[2], txs[0]]
    checked.add(txs[1].id)
    assert (
        checked.unchecked(batch) == [tx for tx in batch if tx.id not in checked] == [txs[3], txs[0], txs[0]]
    )
    checked.add_all([txs[3].id, txs[0].id])
    assert checked.unchecked(batch) == []


def test_an_equal_copy_of_a_validated_message_is_validated_again_and_pooled(node, monkeypatch):
    """Validated txs wait for their delivery by the message object, which py-libp2p hands both."""
    txs = registrations(node, 3)
    data = message(txs)
    assert node._validate_gossip(data) is True
    validated: list[bytes] = []
    real_validate = node._validate_gossip
    monkeypatch.setattr(node, "_validate_gossip", lambda d: validated.append(d) or real_validate(d))
    copy = bytes(bytearray(data))
    node._on_gossip(copy)
    assert validated == [copy] and all(tx.id in node.mempool for tx in txs)
    node._on_gossip(data)  # the first object's entry is still there: taken without validation
    assert validated == [copy] and len(node.mempool) == 3 and node._gossip_checked == {}


def test_the_flush_waits_a_tenth_of_the_backlog_between_its_bounds(node):
    node.submit([tx.encode() for tx in registrations(node, 300)])
    node.app.sizer.cap = 30  # the guess before any commit: the starting block size per target interval
    assert node.app.sizer.rate is None and node.app.backlog_ms() >= 2_000
    assert node._gossip_flush_s() == GOSSIP_FLUSH_S  # no commit rate measured: the backlog is a guess
    node.app.sizer.rate = 100.0  # txs per second: 3 s to commit
    assert node.app.backlog_ms() == 3_000
    assert node._gossip_flush_s() == pytest.approx(0.3)
    node.app.sizer.rate = 1.0  # the same pool now takes 300 s
    assert node._gossip_flush_s() == GOSSIP_FLUSH_MAX_S


def test_behind_a_backlog_the_outbox_leaves_later_in_fewer_messages(node, monkeypatch):
    """Txs the API admits behind a 3 s backlog go out each 0.3 s, not each 0.1 s."""
    node.app.sizer.rate = 100.0
    node.submit([tx.encode() for tx in registrations(node, 300)])  # pooled and in the outbox
    node._gossip_outbox.clear()
    sent: list[tuple[float, int]] = []

    async def publish(data: bytes) -> None:
        sent.append((trio.current_time(), len(codec.unpack(data))))

    monkeypatch.setattr(node.network, "publish", publish)

    async def trickle() -> None:  # one tx every 0.02 s, as a client would send them
        for tx in registrations(node, 30):
            node._queue_gossip(tx.encode())
            await trio.sleep(0.02)

    async def main() -> None:
        with trio.move_on_after(0.61):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trickle)
                nursery.start_soon(node._gossip_flusher)

    trio.run(main, clock=MockClock(autojump_threshold=0))
    assert [round(at, 2) for at, _ in sent] == [0.3, 0.6]
    assert sum(count for _, count in sent) == 30


def test_an_idle_flusher_sleeps_until_a_tx_comes_then_flushes_on_its_poll_times(node, monkeypatch):
    """An empty outbox is not polled (10 wake-ups a second per node), yet a tx leaves at the
    next ``GOSSIP_FLUSH_S`` step after the flusher's start, as when it polled."""
    tx = registrations(node, 1)[0].encode()
    published: list[tuple[float, list[bytes]]] = []
    wakes = []

    async def publish(data: bytes) -> None:
        published.append((trio.current_time(), codec.unpack(data)))

    monkeypatch.setattr(node.network, "publish", publish)

    class Wakes(trio.abc.Instrument):
        def task_scheduled(self, task: trio.lowlevel.Task) -> None:
            if task.name.endswith("_gossip_flusher"):
                wakes.append(trio.current_time())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node._gossip_flusher)
            await trio.sleep(IDLE_S)  # the mock clock's seconds: no real time passes
            node._queue_gossip(tx)
            await trio.sleep(GOSSIP_FLUSH_S)
            nursery.cancel_scope.cancel()

    clock = MockClock(autojump_threshold=0)
    trio.run(main, clock=clock, instruments=[Wakes()])
    assert published == [(pytest.approx(10 + 3 * GOSSIP_FLUSH_S), [tx])]
    assert len([t for t in wakes if t < 10]) <= 2, wakes
