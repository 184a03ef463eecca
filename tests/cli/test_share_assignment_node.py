"""``fund assign``, ``fund accept-assignment``, ``fund withdraw-assignment``, ``fund show`` and ``fund
positions`` in ``lendchain`` processes against a real two-member network on the newest rules.

The chain-backed tests (test_share_assignment_cli.py and the ledger's test_share_assignment*.py)
cover the cases; this one confirms the real paths: each command signs with its key file, the node
takes rules 6's share kinds (and their optional ``price`` and ``from``), a refusal reaches the seller
as the chain's sentence, and the node's positions view follows the holders.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file, write_key_file
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import load_node_config
from tests.cli.test_transfer_book_node import attest_kyc, send_all
from tests.node.helpers import lendchain_cli, two_banks

pytestmark = pytest.mark.slow

AMOUNT = 120_000


@pytest.fixture
def network(tmp_path: Path):
    yield from two_banks(tmp_path, rules_version=RULES_VERSION)


def test_an_investor_sells_part_of_its_share_and_the_buyer_takes_it(network, tmp_path):
    config = load_node_config(network[0])
    bank1 = read_key_file(config.key_file)
    borrower, seller, buyer = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    seller_key = write_key_file(tmp_path / "seller.key", seller)
    buyer_key = write_key_file(tmp_path / "buyer.key", buyer)
    with NodeClient(config.api_url, timeout=10) as client:
        send_all(client, borrower, "party.register", [{"role": "borrower"}])
        for investor in (seller, buyer):
            send_all(client, investor, "party.register", [{"role": "investor"}])
        attest_kyc(client, bank1, borrower)
        apply = {"amount": AMOUNT, "currency": "EUR", "term_months": 12, "purpose": "a bakery oven"}
        [loan_id] = send_all(client, borrower, "loan.apply", [apply])
        offer = {"loan_id": loan_id, "rate_bps": 900, "funding_window_ms": 3_600_000}
        [offer_id] = send_all(client, bank1, "loan.offer", [offer])
        send_all(client, borrower, "loan.accept", [{"loan_id": loan_id, "offer_id": offer_id}])
        send_all(client, seller, "loan.fund", [{"loan_id": loan_id, "amount": 80_000}])
        send_all(client, bank1, "loan.fund", [{"loan_id": loan_id, "amount": 40_000}])
        send_all(client, bank1, "loan.disburse", [{"loan_id": loan_id}])

    node = ["--node", config.api_url]
    dust = lendchain_cli(
        "fund", "assign", loan_id, "79000", "--to", buyer.did, "--key", str(seller_key), *node
    )
    assert dust.returncode == 1 and "failed (bad_payload)" in dust.stderr
    assert "which would leave 1000, less than the 1200 a funder keeps" in dust.stderr

    def offer_30000_for_29000():
        offered = lendchain_cli(
            "fund",
            "assign",
            loan_id,
            "30000",
            "--to",
            buyer.did,
            "--price",
            "29000",
            "--key",
            str(seller_key),
            *node,
        )
        assert offered.returncode == 0, offered.stderr
        return offered

    assert "loan.share_offered" in offer_30000_for_29000().stdout
    taken_back = lendchain_cli("fund", "withdraw-assignment", loan_id, "--key", str(seller_key), *node)
    assert taken_back.returncode == 0 and "loan.share_offer_withdrawn" in taken_back.stdout
    offer_30000_for_29000()
    asked = lendchain_cli("fund", "positions", buyer.did, *node).stdout
    assert f"lendchain fund accept-assignment {loan_id} --from {seller.did}" in asked

    taken = lendchain_cli(
        "fund", "accept-assignment", loan_id, "--from", seller.did, "--key", str(buyer_key), *node
    )
    assert taken.returncode == 0, taken.stderr
    assert "loan.share_assigned" in taken.stdout
    shown = lendchain_cli("fund", "show", loan_id, *node).stdout
    assert f"  {seller.did}  share 50000  received 0  committed" in shown
    assert f"  {buyer.did}  share 30000  received 0  committed" in shown
    assert f"sold   {seller.did} sold 30000 to {buyer.did} for 29000 at height " in shown
    view = json.loads(lendchain_cli("--json", "fund", "positions", buyer.did, *node).stdout)
    [position] = view["positions"]
    assert (position["commitment"], position["bought"], position["share"]) == (30_000, 30_000, 30_000)
