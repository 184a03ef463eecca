"""``loan transfer-book`` and ``loan accept-transfers`` against a real two-member network.

The chain-backed tests (test_transfer_book_cli.py) cover the cases; this one
confirms the real paths: the book paged over HTTP, the txs sent on the
``/txs/stream`` WebSocket with consecutive nonces, their commits waited for,
in a ``lendchain`` process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file
from lendchain.node.config import load_node_config
from tests.node.helpers import lendchain_cli, two_banks

pytestmark = pytest.mark.slow

LOANS = 12


@pytest.fixture
def network(tmp_path: Path):
    yield from two_banks(tmp_path, rules_version=4)


def send_all(client: NodeClient, key: SigningKey, kind: str, payloads: list[dict]) -> list[str]:
    """Submit a tx per payload with consecutive nonces, wait for the last; their ids, all ``ok``."""
    nonce = client.next_nonce(key.did)
    txs = [client.build(key, kind, payload, nonce=nonce + n) for n, payload in enumerate(payloads)]
    client.submit_many(txs)
    for tx in txs:
        assert client.wait_tx(tx.id.hex(), timeout_s=60)["result"]["code"] == "ok"
    return [tx.id.hex() for tx in txs]


def attest_kyc(client: NodeClient, member: SigningKey, subject: SigningKey) -> None:
    """``member`` (a kyc member) attests ``subject`` at level 2 for years to come."""
    attest = {
        "subject": subject.did,
        "level": 2,
        "expires_ms": int(time.time() * 1000) + 10**10,
        "evidence_hash": "ab" * 32,
    }
    send_all(client, member, "kyc.attest", [attest])


def test_a_book_is_handed_over_and_taken_over_on_a_running_network(network):
    bank1_config, bank2_config = (load_node_config(path) for path in network)
    bank1, bank2 = read_key_file(bank1_config.key_file), read_key_file(bank2_config.key_file)
    borrower = SigningKey.generate()
    with NodeClient(bank1_config.api_url, timeout=10) as client:
        send_all(client, borrower, "party.register", [{"role": "borrower"}])
        attest_kyc(client, bank1, borrower)
        applications = [
            {"amount": 5_000 + n, "currency": ("EUR", "USD")[n % 2], "term_months": 6, "purpose": "stock"}
            for n in range(LOANS)
        ]
        loan_ids = send_all(client, borrower, "loan.apply", applications)
        offers = send_all(client, bank1, "loan.offer", [{"loan_id": i, "rate_bps": 800} for i in loan_ids])
        accepted = [{"loan_id": i, "offer_id": o} for i, o in zip(loan_ids, offers, strict=True)]
        send_all(client, borrower, "loan.accept", accepted)

        node = ["--node", bank1_config.api_url]
        handed = lendchain_cli(
            "--json", "loan", "transfer-book", "--to", bank2.did, "--config", str(network[0])
        )
        assert handed.returncode == 0, handed.stderr
        assert sorted(json.loads(handed.stdout)["offered"]) == sorted(loan_ids)
        taken = lendchain_cli(
            "--json", "loan", "accept-transfers", "--key", str(bank2_config.key_file), *node
        )
        assert taken.returncode == 0, taken.stderr
        assert sorted(json.loads(taken.stdout)["accepted"]) == sorted(loan_ids)
        assert {client.get(f"/loans/{i}")["lender"] for i in loan_ids} == {bank2.did}
        again = lendchain_cli(
            "--json", "loan", "accept-transfers", "--key", str(bank2_config.key_file), *node
        )
        assert json.loads(again.stdout)["sent"] == 0
