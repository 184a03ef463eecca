"""``lendchain report`` against a real two-member network: a running node's API and a backup of it.

The in-process tests (test_report_cli.py, tests/node/test_point_in_time*.py)
cover the cases; this one confirms the real paths: ``GET /blocks/raw`` served
by a node process, a backup written by ``lendchain backup``, and a
``lendchain`` process replaying each to a time between two disbursements;
then a replay cache filled from the backup, from which the node's report
at the head resumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lendchain.client import NodeClient
from lendchain.crypto import SigningKey, read_key_file
from lendchain.node.config import load_node_config
from lendchain.node.pointintime import utc_text
from tests.node.helpers import lendchain_cli, two_banks

pytestmark = pytest.mark.slow


@pytest.fixture
def network(tmp_path: Path):
    yield from two_banks(tmp_path, rules_version=4)


def send(client: NodeClient, key: SigningKey, kind: str, payload: dict) -> dict:
    status = client.send(key, kind, payload, timeout_s=60)
    assert status["result"]["code"] == "ok", status
    return status


def lend(client: NodeClient, borrower: SigningKey, lender: SigningKey) -> dict:
    """One loan applied for, offered by ``lender``, accepted and disbursed; the disbursement's status."""
    apply = {"amount": 50_000, "currency": "EUR", "term_months": 6, "purpose": "stock"}
    loan_id = send(client, borrower, "loan.apply", apply)["id"]
    offer_id = send(client, lender, "loan.offer", {"loan_id": loan_id, "rate_bps": 800})["id"]
    send(client, borrower, "loan.accept", {"loan_id": loan_id, "offer_id": offer_id})
    return send(client, lender, "loan.disburse", {"loan_id": loan_id})


def books(*args: str) -> dict:
    result = lendchain_cli("--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_reports_from_a_running_node_and_from_its_backup_hold_each_times_figures(network):
    bank1_config, bank2_config = (load_node_config(path) for path in network)
    bank1, bank2 = read_key_file(bank1_config.key_file), read_key_file(bank2_config.key_file)
    borrower = SigningKey.generate()
    config = ["--config", str(network[0])]
    with NodeClient(bank1_config.api_url, timeout=10) as client:
        send(client, borrower, "party.register", {"role": "borrower"})
        attest = {"subject": borrower.did, "level": 2, "expires_ms": int(time.time() * 1000) + 10**10}
        send(client, bank1, "kyc.attest", {**attest, "evidence_hash": "ab" * 32})
        first = lend(client, borrower, bank1)
        between_ms = first["timestamp_ms"]  # bank1's loan is disbursed then; bank2's comes later
        second = lend(client, borrower, bank2)
        assert second["timestamp_ms"] > between_ms
        head = client.status()["height"]

    as_of = books("report", "books", "--as-of", utc_text(between_ms), *config)
    assert as_of["basis"]["height"] == first["height"] and as_of["basis"]["source"].startswith("node at http")
    assert as_of["basis"]["certificate"]["signers"] == ["bank1", "bank2"]
    assert [(row["member"], row["outstanding"]) for row in as_of["view"]["books"]] == [("bank1", 50_000)]

    # At the head, the replay's figures are the node's own.
    at_head = books("report", "books", "--height", str(head), *config)
    assert at_head["view"] == books("loan", "books", *config)
    assert [row["member"] for row in at_head["view"]["books"]] == ["bank1", "bank2"]

    backup = books("backup", *config)
    genesis = ["--genesis", str(bank1_config.genesis_path)]  # the reader's own copy, not the node's word
    from_backup = books(
        "report", "books", "--as-of", utc_text(between_ms), "--data-dir", backup["path"], *genesis
    )
    assert from_backup["view"] == as_of["view"]
    assert from_backup["basis"]["block_hash"] == as_of["basis"]["block_hash"]

    # A replay cache filled from the backup serves the node's report at the head: only the blocks since.
    cache = ["--cache-dir", str(Path(backup["path"]).parent / "report-cache")]
    cached = books(
        "report", "books", "--height", str(first["height"]), "--data-dir", backup["path"], *genesis, *cache
    )
    assert cached["basis"]["resumed_from"] is None
    resumed = books("report", "books", "--height", str(head), *config, *cache)
    assert resumed["basis"]["resumed_from"]["height"] == first["height"]
    assert resumed["basis"]["blocks_checked"] == head - first["height"]
    assert resumed["view"] == at_head["view"]
