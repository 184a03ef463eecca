"""Gossip in: a message's signatures are checked off the event loop, and one bad tx refuses it."""

from __future__ import annotations

import threading
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


def test_signatures_are_checked_on_a_worker_thread(node, monkeypatch):
    checked_on: list[int] = []
    real_verify = gossip.verify_signature
    monkeypatch.setattr(
        gossip, "verify_signature", lambda tx: checked_on.append(threading.get_ident()) or real_verify(tx)
    )
    txs = registrations(node, 5)
    data = message(txs)
    assert trio.run(node._validate_gossip_async, data) is True
    assert len(checked_on) == 5 and threading.get_ident() not in checked_on
    assert all(tx.id in node.app.verified for tx in txs)
    # Delivery takes the checked txs and pools them without checking again.
    node._on_gossip(data)
    assert len(checked_on) == 5
    assert all(tx.id in node.mempool for tx in txs)


def test_the_event_loop_runs_on_while_a_message_is_checked(node, monkeypatch):
    real_verify = gossip.verify_signature

    def slow_verify(tx):
        time.sleep(0.05)  # a loaded machine: 4 txs take 0.2 s
        return real_verify(tx)

    monkeypatch.setattr(gossip, "verify_signature", slow_verify)
    data = message(registrations(node, 4))
    ticks: list[float] = []

    async def main() -> bool:
        async with trio.open_nursery() as nursery:

            async def ticker() -> None:
                while True:
                    ticks.append(trio.current_time())
                    await trio.sleep(0.01)

            nursery.start_soon(ticker)
            valid = await node._validate_gossip_async(data)
            nursery.cancel_scope.cancel()
        return valid

    assert trio.run(main) is True
    assert len(ticks) >= 10, ticks  # ~20 while the worker checked; none if the loop were held


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
