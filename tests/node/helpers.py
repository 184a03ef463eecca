"""Helpers the multi-process node tests share: clients, registrations, waiting for commits."""

from __future__ import annotations

from lendchain.client import NodeClient, NodeError
from lendchain.crypto import SigningKey
from lendchain.node.cluster import Cluster, wait_for


def client(cluster: Cluster, name: str) -> NodeClient:
    return NodeClient(cluster[name].url, timeout=10)


def register(c: NodeClient, key: SigningKey | None = None) -> str:
    """Submit one party registration; returns its tx id."""
    key = key or SigningKey.generate()
    tx = c.build(key, "party.register", {"role": "borrower"}, nonce=0)
    c.submit(tx)
    return tx.id.hex()


def committed_everywhere(
    cluster: Cluster, tx_ids: list[str], names: list[str], timeout_s: float = 60
) -> None:
    """Each tx is committed on each named node (a node still catching up may not know it yet)."""
    for name in names:
        with client(cluster, name) as c:
            for tx_id in tx_ids:

                def committed(c: NodeClient = c, tx_id: str = tx_id, name: str = name) -> bool:
                    try:
                        status = c.get(f"/txs/{tx_id}", wait_ms=2000)
                    except NodeError as e:
                        if e.status == 404:
                            return False
                        raise
                    assert status["status"] in ("pending", "committed"), (name, status)
                    return status["status"] == "committed"

                wait_for(committed, timeout_s, f"tx {tx_id[:16]} to commit on {name}")
