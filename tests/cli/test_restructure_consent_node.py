"""``loan restructure``, ``loan consent-restructure`` and ``loan accept-restructure`` on a syndicated loan,
in ``lendchain`` processes against a real two-member network on rules 5.

The chain-backed tests (test_restructure_consent_cli.py and the ledger's
test_restructure_consent*.py) cover the cases; this one confirms the real
paths: each command signs with its key file, the node takes the rules-5 kind,
and a refused acceptance reaches the borrower as the chain's sentence.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file, write_key_file
from lendchain.ledger.rules import RULES_VERSION
from lendchain.node.config import load_node_config
from tests.cli.test_transfer_book_node import send_all
from tests.node.helpers import lendchain_cli, two_banks

pytestmark = pytest.mark.slow

AMOUNT = 120_000


@pytest.fixture
def network(tmp_path: Path):
    yield from two_banks(tmp_path, rules_version=RULES_VERSION)


def test_half_the_syndicate_is_not_enough_and_the_other_funders_consent_lets_the_borrower_accept(
    network, tmp_path
):
    config = load_node_config(network[0])
    bank1 = read_key_file(config.key_file)
    borrower, investor = SigningKey.generate(), SigningKey.generate()
    borrower_key = write_key_file(tmp_path / "borrower.key", borrower)
    investor_key = write_key_file(tmp_path / "investor.key", investor)
    with NodeClient(config.api_url, timeout=10) as client:
        send_all(client, borrower, "party.register", [{"role": "borrower"}])
        send_all(client, investor, "party.register", [{"role": "investor"}])
        attest = {
            "subject": borrower.did,
            "level": 2,
            "expires_ms": int(time.time() * 1000) + 10**10,
            "evidence_hash": "ab" * 32,
        }
        send_all(client, bank1, "kyc.attest", [attest])
        apply = {"amount": AMOUNT, "currency": "EUR", "term_months": 12, "purpose": "a bakery oven"}
        [loan_id] = send_all(client, borrower, "loan.apply", [apply])
        offer = {"loan_id": loan_id, "rate_bps": 900, "funding_window_ms": 3_600_000}
        [offer_id] = send_all(client, bank1, "loan.offer", [offer])
        send_all(client, borrower, "loan.accept", [{"loan_id": loan_id, "offer_id": offer_id}])
        half = {"loan_id": loan_id, "amount": AMOUNT // 2}
        send_all(client, investor, "loan.fund", [half])
        send_all(client, bank1, "loan.fund", [half])
        send_all(client, bank1, "loan.disburse", [{"loan_id": loan_id}])

    node = ["--node", config.api_url]
    proposed = lendchain_cli(
        "loan",
        "restructure",
        loan_id,
        "--rate-bps",
        "600",
        "--term-months",
        "24",
        "--config",
        str(network[0]),
    )
    assert proposed.returncode == 0, proposed.stderr
    refused = lendchain_cli("loan", "accept-restructure", loan_id, "--key", str(borrower_key), *node)
    assert refused.returncode == 1
    assert "failed (invalid_state)" in refused.stderr
    assert (
        f"consented so far 60000 (50.00 %) by {bank1.did} (60000, by proposing); still missing 1 (0.01 %)"
    ) in refused.stderr

    consented = lendchain_cli("loan", "consent-restructure", loan_id, "--key", str(investor_key), *node)
    assert consented.returncode == 0, consented.stderr
    assert "loan.restructure_consented" in consented.stdout
    shown = lendchain_cli("loan", "show", loan_id, *node)
    assert (
        "120000 of 120000 committed (100.00 %); a majority needs more than half, at least 60001: reached"
        in (shown.stdout)
    )
    accepted = lendchain_cli("loan", "accept-restructure", loan_id, "--key", str(borrower_key), *node)
    assert accepted.returncode == 0, accepted.stderr
    shown = lendchain_cli("loan", "show", loan_id, *node).stdout
    assert "  rate_bps        600" in shown and "; consented by 2 funders holding 120000" in shown
