"""kill -9 a one-member node while a client streams transactions (issue 2's crash-safety test)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from lendchain.client import NodeClient, NodeError
from lendchain.crypto import SigningKey, read_key_file
from lendchain.node.cluster import Cluster, free_port_block, wait_for
from lendchain.node.testnet import generate_testnet

pytestmark = pytest.mark.slow


def test_kill_9_mid_stream_loses_no_committed_tx_and_the_chain_verifies(tmp_path):
    p2p = free_port_block(2)
    api = free_port_block(2, start=p2p + 10)
    layout = generate_testnet(tmp_path / "net", 1, p2p_base_port=p2p, api_base_port=api)
    cluster = Cluster(list(layout.configs), tmp_path / "logs")
    cluster.start_all()
    cluster.wait_healthy()
    url = cluster["bank1"].url
    sender = SigningKey.generate()
    committed: list[str] = []
    stop = threading.Event()

    bank1 = read_key_file(cluster["bank1"].config.key_file)  # the one member; it has the kyc role

    def stream() -> None:
        with NodeClient(url, timeout=5) as c:
            c.send(sender, "party.register", {"role": "borrower"})
            far = int(time.time() * 1000) + 86_400_000
            kyc = {"subject": sender.did, "level": 2, "expires_ms": far, "evidence_hash": "ab" * 32}
            c.send(bank1, "kyc.attest", kyc)
            nonce = 1
            while not stop.is_set():
                txs = [
                    c.build(
                        sender,
                        "loan.apply",
                        {"amount": 1000 + i, "currency": "EUR", "term_months": 3, "purpose": "crash test"},
                        nonce=nonce + i,
                    )
                    for i in range(20)
                ]
                try:
                    c.submit_many(txs)
                    for tx in txs:
                        if c.wait_tx(tx.id.hex(), 10)["status"] == "committed":
                            committed.append(tx.id.hex())
                except NodeError:
                    return  # the node died under us
                nonce += len(txs)

    streamer = threading.Thread(target=stream)
    streamer.start()
    try:
        wait_for(lambda: len(committed) >= 60, 60, "60 txs committed before the kill")
        cluster.kill("bank1")
    finally:
        stop.set()
        streamer.join(30)
    cluster.start("bank1")
    cluster.wait_healthy()
    with NodeClient(url) as c:
        for tx_id in committed:
            assert c.tx(tx_id)["status"] == "committed", tx_id
        # Nonces continue from what the chain holds.
        next_nonce = c.next_nonce(sender.did)
        assert next_nonce >= len(committed) + 1
        status = c.send(
            sender, "loan.apply", {"amount": 5, "currency": "EUR", "term_months": 1, "purpose": "after"}
        )
        assert status["status"] == "committed"
    assert cluster.stop("bank1") == 0
    verify = subprocess.run(
        [sys.executable, "-m", "lendchain", "verify-chain", "--config", str(layout.configs[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stderr
    assert "replayed and certified" in verify.stdout
