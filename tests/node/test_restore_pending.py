"""Txs a node accepted and had not committed go back into its mempool when it starts again
(``TxAdmission._restore_pending``), and their stored records stay as they were."""

from __future__ import annotations

from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.transactions import build_transaction
from lendchain.node.config import load_node_config
from lendchain.node.daemon import Node
from lendchain.node.testnet import generate_testnet


def test_a_restarted_node_pools_its_accepted_txs_again_and_keeps_their_records(tmp_path):
    config = load_node_config(generate_testnet(tmp_path / "net", 4).configs[0])
    key = SigningKey(bytes([0x42]) * 32)
    txs = [
        build_transaction(
            key, config.genesis.chain_id, "party.register", n, {"role": "borrower"}, 1_800_000_000_000
        )
        for n in range(3)
    ]
    first = Node(config, read_key_file(config.key_file))
    try:
        assert [a["status"] for a in first.submit([tx.encode() for tx in txs])] == ["accepted"] * 3
        stored = sorted(first.store.pending_items())
    finally:
        first.store.close()

    again = Node(config, read_key_file(config.key_file))
    try:
        assert len(again.mempool) == 0
        again._restore_pending()
        assert sorted(again.mempool.ids) == sorted(tx.id for tx in txs)
        assert sorted(again.store.pending_items()) == stored and len(stored) == 3
        assert sorted(again._gossip_outbox) == sorted(tx.encode() for tx in txs)  # gossiped again
    finally:
        again.store.close()
