"""Gossip in: the event loop runs between slices of a message's signatures; one bad tx refuses it."""

from __future__ import annotations

import time

import pytest
import trio

import lendchain.node.gossip as gossip
from lendchain import codec
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.transactions import Transaction, build_transaction
from lendchain.node.config import load_node_config
from lendchain.node.daemon import Node
from lendchain.node.testnet import generate_testnet


@pytest.fixture
def node(tmp_path):
    """bank1 of a 4-member test network, built but not started: no network, no API."""
    config = load_node_config(generate_testnet(tmp_path / "net", 4).configs[0])
    node = Node(config, read_key_file(config.key_file))
    yield node
    node.store.close()


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
    real_verify = gossip.verify_signature
    monkeypatch.setattr(gossip, "verify_signature", lambda tx: checked.append(tx.id) or real_verify(tx))
    txs = registrations(node, 5)
    data = message(txs)
    assert trio.run(node._validate_gossip_async, data) is True
    assert checked == [tx.id for tx in txs]
    assert all(tx.id in node.app.verified for tx in txs)
    node._on_gossip(data)  # delivery takes the checked txs from validation
    assert len(checked) == 5
    assert all(tx.id in node.mempool for tx in txs)


def test_the_event_loop_runs_between_slices_of_signatures(node, monkeypatch):
    real_verify = gossip.verify_signature

    def slow_verify(tx):
        time.sleep(0.005)  # a loaded machine: a slice of 16 takes 80 ms
        return real_verify(tx)

    monkeypatch.setattr(gossip, "verify_signature", slow_verify)
    data = message(registrations(node, 3 * gossip.VERIFY_SLICE))
    ticks: list[float] = []

    async def main() -> bool:
        async with trio.open_nursery() as nursery:

            async def ticker() -> None:
                while True:
                    ticks.append(trio.current_time())
                    await trio.sleep(0.01)

            nursery.start_soon(ticker)
            await trio.sleep(0)  # the ticker's first tick
            valid = await node._validate_gossip_async(data)
            nursery.cancel_scope.cancel()
        return valid

    assert trio.run(main) is True
    # One tick before the check, and at least one while it ran: the ticker wakes at the first
    # checkpoint between slices. Checked in one go, the loop would run nothing else until the
    # end (then the ticker is cancelled before it ticks again).
    assert len(ticks) >= 2, ticks


@pytest.mark.parametrize("check", ["async", "sync"])
def test_one_bad_signature_refuses_the_message_and_marks_nothing_verified(node, check):
    good = registrations(node, 3)
    data = message([*good, forged(registrations(node, 1)[0])])
    valid = trio.run(node._validate_gossip_async, data) if check == "async" else node._validate_gossip(data)
    assert valid is False
    assert not any(tx.id in node.app.verified for tx in good)
    node._on_gossip(data)  # a delivery without validation checks it again, and refuses it
    assert len(node.mempool) == 0


@pytest.mark.parametrize(
    "data",
    [b"\xc1", codec.pack({"txs": []}), codec.pack(["not bytes"]), codec.pack([b"not a tx"])],
    ids=["not msgpack", "not a list", "not bytes", "not a tx"],
)
def test_a_malformed_message_is_refused(node, data):
    assert trio.run(node._validate_gossip_async, data) is False
    assert node._validate_gossip(data) is False


def test_a_tx_already_verified_is_not_checked_again(node, monkeypatch):
    txs = registrations(node, 3)
    assert trio.run(node._validate_gossip_async, message(txs[:2])) is True
    checked: list[bytes] = []
    real_verify = gossip.verify_signature
    monkeypatch.setattr(gossip, "verify_signature", lambda tx: checked.append(tx.id) or real_verify(tx))
    assert trio.run(node._validate_gossip_async, message(txs)) is True
    assert checked == [txs[2].id]
