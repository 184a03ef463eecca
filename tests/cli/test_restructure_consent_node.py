"""``loan restructure``, ``loan consent-restructure``, ``loan withdraw-consent`` and ``loan
accept-restructure`` on a syndicated loan, in ``lendchain`` processes against a real two-member network
on the newest rules.

The chain-backed tests (test_restructure_consent_cli.py, test_restructure_guardrails_cli.py and the
ledger's test_restructure_consent*.py and test_consent_withdrawal.py) cover the cases; this one confirms
the real paths: each command signs with its key file, the node takes the kinds of rules 5 and 6, and a
refused acceptance reaches the borrower as the chain's sentence.
"""

from __future__ import annotations

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
        attest_kyc(client, bank1, borrower)
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
    taken_back = lendchain_cli("loan", "withdraw-consent", loan_id, "--key", str(investor_key), *node)
    assert taken_back.returncode == 0, taken_back.stderr
    assert "loan.restructure_consent_withdrawn" in taken_back.stdout
    shown = lendchain_cli("loan", "show", loan_id, *node).stdout
    assert "60000 of 120000 committed (50.00 %)" in shown and "(pending, expires at " in shown
    again = lendchain_cli("loan", "withdraw-consent", loan_id, "--key", str(investor_key), *node)
    assert again.returncode == 1 and "failed (invalid_state)" in again.stderr
    assert f"{investor.did} has not consented to its restructuring offered at height" in again.stderr
    consented = lendchain_cli("loan", "consent-restructure", loan_id, "--key", str(investor_key), *node)
    assert consented.returncode == 0, consented.stderr
    shown = lendchain_cli("loan", "show", loan_id, *node)
    assert (
        "120000 of 120000 committed (100.00 %); a majority needs more than half, at least 60001: reached"
        in (shown.stdout)
    )
    accepted = lendchain_cli("loan", "accept-restructure", loan_id, "--key", str(borrower_key), *node)
    assert accepted.returncode == 0, accepted.stderr
    shown = lendchain_cli("loan", "show", loan_id, *node).stdout
    assert "  rate_bps        600" in shown and "; consented by 2 funders holding 120000" in shown
