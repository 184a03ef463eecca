"""``lendchain credit dispute | disputes | answer-dispute`` and ``score explain`` in ``lendchain``
processes against a real two-member network on the newest rules.

The chain-backed tests (test_disputes_cli.py and the ledger's test_disputes.py) cover the cases;
this one confirms the real paths: the borrower's command reads its latest report from the node and
signs with the borrower's key file, the member's answer signs with its node's key, the node serves
``GET /disputes/{did}``, and the score it explains no longer counts the withdrawn report.
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

REPORT = {
    "income_band": 6,
    "dti_bps": 3000,
    "history_months": 40,
    "obligations": 1,
    "evidence_hash": "ab" * 32,
}


@pytest.fixture
def network(tmp_path: Path):
    yield from two_banks(tmp_path, rules_version=RULES_VERSION)


def test_a_borrower_disputes_its_report_and_the_bureau_withdraws_it(network, tmp_path):
    config = load_node_config(network[0])
    bank1 = read_key_file(config.key_file)  # a testnet's first member is a lender, kyc and bureau
    borrower = SigningKey.generate()
    key_file = write_key_file(tmp_path / "borrower.key", borrower)
    until = int(time.time() * 1000) + 10**10
    with NodeClient(config.api_url, timeout=10) as client:
        send_all(client, borrower, "party.register", [{"role": "borrower"}])
        send_all(
            client, borrower, "consent.grant", [{"member": bank1.did, "scopes": "credit", "until_ms": until}]
        )
        [report_id] = send_all(client, bank1, "credit.report", [{"subject": borrower.did, **REPORT}])
        reported = client.get(f"/txs/{report_id}")["height"]
    node = ["--node", config.api_url]
    statement = tmp_path / "statement.txt"
    statement.write_text("I never had a loan with bank1\n")

    disputed = lendchain_cli("credit", "dispute", "--reason", str(statement), "--key", str(key_file), *node)
    assert disputed.returncode == 0, disputed.stderr
    assert "credit.disputed" in disputed.stdout
    listed = lendchain_cli("credit", "disputes", bank1.did, *node)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == (
        f"member bank1 ({bank1.did}): 1 dispute of the credit reports it furnished: 1 open, 0 overdue, "
        "0 answered on time, 0 answered late"
    )
    assert f"{borrower.did}'s report at height {reported}, disputed at height" in listed.stdout
    explained = lendchain_cli("score", "explain", borrower.did, *node).stdout
    assert "under dispute: disputed by the subject since" in explained
    assert f"credit report by bank1 ({bank1.did}) at height {reported}" in explained  # a real node names it

    answered = lendchain_cli(
        "credit",
        "answer-dispute",
        borrower.did,
        "--outcome",
        "withdrawn",
        "--evidence-hash",
        "ef" * 32,
        "--config",
        str(network[0]),
    )
    assert answered.returncode == 0, answered.stderr
    again = lendchain_cli("credit", "dispute", "--reason", str(statement), "--key", str(key_file), *node)
    assert again.returncode == 1 and f"{borrower.did} has no credit report to dispute" in again.stderr
    explained = lendchain_cli("score", "explain", borrower.did, *node).stdout
    assert (
        f"no credit report: the credit report by bank1 ({bank1.did}) at height {reported} was withdrawn"
        in explained
    )
