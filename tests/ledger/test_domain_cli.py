"""The domain CLI builds the payloads the ledger's schemas accept, and explains scores."""

from __future__ import annotations

import hashlib
import json

import click
import pytest
from click.testing import CliRunner

from lendchain.cli import domain
from lendchain.crypto import CryptoError, open_sealed, read_key_file, seal_to, write_key_file
from lendchain.ledger.kinds import lookup_kind
from lendchain.ledger.schema import check_payload
from lendchain.node.testnet import generate_testnet
from tests.ledger.chain import seeded_key

DID = seeded_key(1).did


@click.group()
@click.option("--json", "as_json", is_flag=True)
def root(as_json: bool) -> None:
    """Stands in for the lendchain root group."""


for command in domain.COMMANDS:
    root.add_command(command)


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(domain, "send_tx", lambda ctx, kw, kind, payload: calls.append((kind, payload)))
    return calls


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["kyc", "attest", DID, "--level", "2", "--evidence-hash", "ab" * 32], "kyc.attest"),
        (["consent", "grant", DID, "--scopes", "credit,kyc", "--days", "30"], "consent.grant"),
        (["consent", "revoke", DID], "consent.revoke"),
        (
            ["credit", "report", DID, "--income-band", "4", "--dti-bps", "2500", "--history-months", "30"]
            + ["--obligations", "2", "--evidence-hash", "cd" * 32],
            "credit.report",
        ),
        (
            ["policy", "publish", "--currency", "EUR", "--min-amount", "1000", "--max-amount", "9000"]
            + ["--max-term", "24", "--bands", "600:900,300:1500", "--max-exposure", "20000"]
            + ["--funding-window-ms", "60000"],
            "policy.publish",
        ),
        (["policy", "withdraw", "aa" * 32], "policy.withdraw"),
        (["fund", "commit", "aa" * 32, "500"], "loan.fund"),
        (["fund", "expire", "aa" * 32], "loan.fund_expire"),
        (["servicing", "check", "aa" * 32], "loan.service"),
    ],
)
def test_commands_send_payloads_the_schema_accepts(sent, args, kind):
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    assert sent[0][0] == kind
    check_payload(kind, lookup_kind(kind).schema, sent[0][1])


def test_evidence_file_is_hashed_locally(sent, tmp_path):
    evidence = tmp_path / "passport-scan.pdf"
    evidence.write_bytes(b"personal data that never leaves this machine")
    result = CliRunner().invoke(root, ["kyc", "attest", DID, "--level", "1", "--evidence", str(evidence)])
    assert result.exit_code == 0, result.output
    assert sent[0][1]["evidence_hash"] == hashlib.sha256(evidence.read_bytes()).hexdigest()


def test_evidence_needs_exactly_one_source(sent):
    result = CliRunner().invoke(root, ["kyc", "attest", DID, "--level", "1"])
    assert result.exit_code == 2 and "--evidence" in result.output and not sent


class FakeClient:
    def __init__(self, answers):
        self.answers = answers

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def get(self, path):
        return self.answers[path]


def test_score_explain_prints_each_factor(monkeypatch):
    factors = [
        {"factor": "base", "value": None, "points": 300, "source": "scorecard"},
        {"factor": "on_time", "value": 4, "points": 20, "source": "repayment history on this chain"},
    ]
    party = {"did": DID, "credit_score": {"score": 320, "factors": factors}}
    monkeypatch.setattr(domain, "client_from", lambda kw: FakeClient({f"/parties/{DID}": party}))
    human = CliRunner().invoke(root, ["score", "explain", DID])
    assert human.exit_code == 0, human.output
    assert "score 320" in human.output and "on_time" in human.output and "+20" in human.output
    as_json = CliRunner().invoke(root, ["--json", "score", "explain", DID])
    assert json.loads(as_json.output) == {"did": DID, "score": 320, "factors": factors}
    member = {"did": DID, "kind": "member", "name": "bank1"}
    monkeypatch.setattr(domain, "client_from", lambda kw: FakeClient({f"/parties/{DID}": member}))
    refused = CliRunner().invoke(root, ["score", "explain", DID])
    assert refused.exit_code == 1
    assert f"{DID} is consortium member bank1, not a registered party; it has no score" in refused.output


def node_keys(*members):
    """A ``/node-keys/*`` answer: (name, genesis key, [(effective height, key), ...]) per member."""
    return {
        "members": [
            {
                "name": name,
                "genesis_key": key.public_key.hex(),
                "rotations": [
                    {"effective_height": h, "public_key": k.public_key.hex()} for h, k in rotations
                ],
            }
            for name, key, rotations in members
        ]
    }


def test_doc_attach_seals_for_the_member_and_doc_open_decrypts(sent, monkeypatch, tmp_path):
    member = seeded_key(5)
    scan = tmp_path / "payslip.pdf"
    scan.write_bytes(b"salary slip")
    loan_id = "aa" * 32
    answers = {"/status": {"height": 12}, "/node-keys/*": node_keys(("bank1", seeded_key(4), []))}
    monkeypatch.setattr(domain, "client_from", lambda kw: FakeClient(answers))
    result = CliRunner().invoke(root, ["doc", "attach", loan_id, str(scan), "--to", member.did])
    assert result.exit_code == 0, result.output
    kind, payload = sent[0]
    assert kind == "doc.attach" and payload["name"] == "payslip.pdf"
    check_payload(kind, lookup_kind(kind).schema, payload)
    write_key_file(tmp_path / "member.key", member)
    document = {
        "document_id": "bb" * 32,
        "ciphertext": payload["ciphertext"].hex(),
        "doc_hash": payload["doc_hash"],
    }
    view = {"loan_id": loan_id, "documents": [document]}
    monkeypatch.setattr(domain, "client_from", lambda kw: FakeClient({f"/loans/{loan_id}": view}))
    out = tmp_path / "opened.pdf"
    args = ["doc", "open", loan_id, "bb" * 32, "--out", str(out), "--key", str(tmp_path / "member.key")]
    opened = CliRunner().invoke(root, args)
    assert opened.exit_code == 0, opened.output
    assert out.read_bytes() == b"salary slip"
    write_key_file(tmp_path / "other.key", seeded_key(6))
    args[-1] = str(tmp_path / "other.key")
    refused = CliRunner().invoke(root, args)
    assert refused.exit_code == 1 and "not addressed to this key" in refused.output


@pytest.mark.parametrize(("effective", "sealed_for"), [(13, 8), (14, 5)])
def test_doc_attach_seals_for_a_rotated_members_current_key(
    sent, monkeypatch, tmp_path, effective, sealed_for
):
    """bank2 (genesis key 5) rotates to key 8; the head is 12, so the next block is 13."""
    bank2 = seeded_key(5)
    answers = {
        "/status": {"height": 12},
        "/node-keys/*": node_keys(
            ("bank1", seeded_key(4), []), ("bank2", bank2, [(effective, seeded_key(8))])
        ),
    }
    monkeypatch.setattr(domain, "client_from", lambda kw: FakeClient(answers))
    scan = tmp_path / "statement.pdf"
    scan.write_bytes(b"bank statement")
    result = CliRunner().invoke(root, ["doc", "attach", "aa" * 32, str(scan), "--to", bank2.did])
    assert result.exit_code == 0, result.output
    _, payload = sent[0]
    assert payload["recipient"] == bank2.did  # addressed to the member, sealed for its key
    other = 5 if sealed_for == 8 else 8
    assert open_sealed(seeded_key(sealed_for), payload["ciphertext"]) == b"bank statement"
    with pytest.raises(CryptoError):
        open_sealed(seeded_key(other), payload["ciphertext"])


def test_servicing_reminders_prints_due_instalments(monkeypatch):
    reminders = [
        {
            "loan_id": "aa" * 32,
            "role": "borrower",
            "state": "overdue",
            "penalty_due": 12,
            "instalments": [{"number": 2, "due_ms": 1000, "amount": 850}],
        }
    ]
    party = {"did": DID, "reminders": reminders}
    monkeypatch.setattr(domain, "client_from", lambda kw: FakeClient({f"/parties/{DID}": party}))
    result = CliRunner().invoke(root, ["servicing", "reminders", DID])
    assert result.exit_code == 0, result.output
    assert "overdue" in result.output and "#2 due 1970-01-01 00:00:01 UTC: 850" in result.output


def test_doc_open_with_a_node_config_tries_its_key_then_its_next_key(monkeypatch, tmp_path):
    """A document attached after the member's rotation is sealed for next_key_file's key."""
    layout = generate_testnet(tmp_path / "net", 1)
    config = layout.configs[0]
    next_key = seeded_key(9)
    write_key_file(tmp_path / "net" / "keys" / "bank1.next.key", next_key)
    config.write_text('next_key_file = "keys/bank1.next.key"\n' + config.read_text())
    loan_id = "aa" * 32
    documents = [
        {
            "document_id": f"{n:02x}" * 32,
            "ciphertext": seal_to(key.public_key, text).hex(),
            "doc_hash": digest,
        }
        for n, key, text, digest in [
            (
                1,
                read_key_file(tmp_path / "net" / "keys" / "bank1.key"),
                b"before",
                hashlib.sha256(b"before").hexdigest(),
            ),
            (2, next_key, b"after", hashlib.sha256(b"after").hexdigest()),
            (3, seeded_key(10), b"not ours", hashlib.sha256(b"not ours").hexdigest()),
        ]
    ]
    view = {"loan_id": loan_id, "documents": documents}
    monkeypatch.setattr(domain, "client_from", lambda kw: FakeClient({f"/loans/{loan_id}": view}))
    for n, expected in ((1, b"before"), (2, b"after")):
        out = tmp_path / f"doc{n}"
        args = ["doc", "open", loan_id, f"{n:02x}" * 32, "--out", str(out), "--config", str(config)]
        opened = CliRunner().invoke(root, args)
        assert opened.exit_code == 0, opened.output
        assert out.read_bytes() == expected
    args = ["doc", "open", loan_id, "03" * 32, "--out", str(tmp_path / "doc3"), "--config", str(config)]
    refused = CliRunner().invoke(root, args)
    assert refused.exit_code == 1 and "not addressed to this key" in refused.output
