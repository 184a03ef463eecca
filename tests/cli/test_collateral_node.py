"""``lendchain collateral pledge | show | release`` and ``loan show`` in ``lendchain`` processes against a
real two-member network on the newest rules.

The chain-backed tests (test_collateral_cli.py and the ledger's test_collateral*.py) cover the cases;
this one confirms the real paths: each command hashes the identifier and signs with its node's key, the
node takes the kinds of rules 6 and serves ``GET /collateral/{asset}``, a double pledge reaches the second
lender as the chain's sentence, and the payment that closes a loan frees its asset.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lendchain.client import NodeClient
from lendchain.collateral_ids import asset_id
from lendchain.crypto import SigningKey, read_key_file
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import load_node_config
from tests.cli.test_transfer_book_node import attest_kyc, send_all
from tests.node.helpers import lendchain_cli, two_banks

pytestmark = pytest.mark.slow

VIN = "WVW-ZZZ-1JZ-XW000001"


@pytest.fixture
def network(tmp_path: Path):
    yield from two_banks(tmp_path, rules_version=RULES_VERSION)


def test_the_second_lender_is_refused_the_van_the_first_holds_until_its_loan_is_repaid(network):
    configs = [load_node_config(path) for path in network]
    bank1, bank2 = (read_key_file(config.key_file) for config in configs)
    borrower = SigningKey.generate()
    with NodeClient(configs[0].api_url, timeout=10) as client:
        send_all(client, borrower, "party.register", [{"role": "borrower"}])
        attest_kyc(client, bank1, borrower)
        apply = {"amount": 120_000, "currency": "EUR", "term_months": 12, "purpose": "a delivery van"}
        loans = send_all(client, borrower, "loan.apply", [apply, apply])
        for loan_id, lender in zip(loans, (bank1, bank2), strict=True):
            [offer_id] = send_all(client, lender, "loan.offer", [{"loan_id": loan_id, "rate_bps": 900}])
            send_all(client, borrower, "loan.accept", [{"loan_id": loan_id, "offer_id": offer_id}])
            send_all(client, lender, "loan.disburse", [{"loan_id": loan_id}])
    first, second = loans
    van = asset_id("vehicle", VIN)
    node = ["--node", configs[0].api_url]

    def pledge(loan_id, config, *extra):
        args = ["collateral", "pledge", loan_id, "--kind", "vehicle", "--id", VIN, "--value", "60000", *extra]
        return lendchain_cli(*args, "--config", str(config))

    pledged = pledge(first, network[0])
    assert pledged.returncode == 0, pledged.stderr
    assert "collateral.pledged" in pledged.stdout and van in pledged.stdout
    refused = pledge(second, network[1])
    assert refused.returncode == 1 and "failed (duplicate)" in refused.stderr
    assert (
        f"asset {van[:16]} already secures loan {first[:16]} of bank1 (rank 1, since height" in refused.stderr
    )
    behind = pledge(second, network[1], "--rank", "2")
    assert behind.returncode == 0, behind.stderr

    shown = lendchain_cli("collateral", "show", "--kind", "vehicle", "--id", VIN, *node)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"asset {van} (vehicle): 2 liens"
    assert (
        f"loan {first}  bank1  disbursed" in shown.stdout
        and f"loan {second}  bank2  disbursed" in shown.stdout
    )
    loan = lendchain_cli("loan", "show", second, *node).stdout
    assert f"  behind          loan {first} of bank1 (rank 1, value 60000, disbursed)" in loan

    with NodeClient(configs[0].api_url, timeout=10) as client:
        owed = client.get(f"/loans/{first}")["amount_owed"]
    repaid = lendchain_cli("loan", "repay", first, "--amount", str(owed), "--config", str(network[0]))
    assert repaid.returncode == 0, repaid.stderr
    released = [line for line in repaid.stdout.splitlines() if "event: collateral.released:" in line]
    assert len(released) == 1 and f"asset {van}, because closed, loan_id {first}" in released[0]
    shown = lendchain_cli("collateral", "show", van, *node).stdout
    assert f"asset {van} (vehicle): 1 lien" in shown and first not in shown

    released = lendchain_cli("collateral", "release", second, "--asset", van, "--config", str(network[1]))
    assert released.returncode == 0, released.stderr
    gone = lendchain_cli("collateral", "show", van, *node)
    assert gone.returncode == 1 and f"no lien is recorded on asset {van}" in gone.stderr
