"""``lendchain credit dispute | answer-dispute | disputes`` (rules 7; see ``ledger.disputes``).

As in ``test_loan_transfer_cli``: the commands' payloads are executed on a ledger test chain, signed
by the party or member the command would sign as, and the chain answers the commands' reads as a
node's API would.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from lendchain.cli import disputes as disputes_cli
from lendchain.cli import domain as domain_cli
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.servicing import DAY_MS
from tests.cli.test_loan_transfer_cli import ChainClient, cli, execute
from tests.ledger.chain import seeded_key
from tests.ledger.test_disputes import CORRECTION, REASON, REPORT, start


def world(monkeypatch, signer, version=7):
    """A chain where bank2 reported the borrower; the CLI signs as ``signer`` (an index of the
    members, or ``"borrower"``) and records what it would send."""
    chain, members, borrower, reported = start(version=version, dispute_response_ms=DAY_MS)
    key = borrower if signer == "borrower" else members[signer]
    sent = []
    monkeypatch.setattr(disputes_cli, "client_from", lambda kw: ChainClient(chain))
    monkeypatch.setattr(disputes_cli, "load_signer", lambda *args: key)
    monkeypatch.setattr(disputes_cli, "send_tx", lambda ctx, kw, kind, payload: sent.append((kind, payload)))
    return chain, members, borrower, reported, sent


def test_a_borrower_disputes_its_latest_report_named_from_the_node(monkeypatch, tmp_path):
    chain, members, borrower, reported, sent = world(monkeypatch, "borrower")
    statement = tmp_path / "statement.txt"
    statement.write_bytes(b"I have never had a loan with that lender")
    result = cli("credit", "dispute", "--reason", str(statement))
    assert result.exit_code == 0, result.output
    assert sent[-1] == (
        "credit.dispute",
        {
            "subject": borrower.did,
            "member": members[1].did,
            "report_height": reported,
            "reason_hash": hashlib.sha256(statement.read_bytes()).hexdigest(),
        },
    )
    assert execute(chain, borrower, sent).ok
    listed = cli("credit", "disputes", borrower.did, "--node", "http://x").output
    deadline = chain.head_ms + DAY_MS
    assert listed.splitlines() == [
        f"{borrower.did} (party): 1 dispute of its credit reports: 1 open, 0 overdue, 0 answered on time, "
        "0 answered late",
        f"  report by bank2 ({members[1].did}) at height {reported}, disputed at height {chain.height}: open, answer "
        f"due by {time_text(deadline)}; it counts meanwhile",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--member", "did:key:zOther"], "latest credit report is by bank2 ({bank2}), not did:key:zOther"),
        (["--report-height", "1"], "latest credit report is at height {reported}, not 1: only the latest"),
        ([], None),
    ],
)
def test_dispute_refuses_a_report_that_is_not_the_latest(monkeypatch, args, expected):
    chain, members, borrower, reported, sent = world(monkeypatch, "borrower")
    result = cli("credit", "dispute", "--reason-hash", REASON, *args)
    if expected is None:
        assert result.exit_code == 0 and sent[-1][1]["report_height"] == reported
        return
    assert result.exit_code == 1 and sent == []
    assert expected.format(bank2=members[1].did, reported=reported) in result.output
    assert "Traceback" not in result.output


def test_dispute_needs_exactly_one_reason(monkeypatch):
    world(monkeypatch, "borrower")
    result = cli("credit", "dispute")
    assert result.exit_code == 2 and "give exactly one of --reason FILE or --reason-hash HEX" in result.output
    result = cli("credit", "dispute", "--reason-hash", "XYZ")
    assert result.exit_code == 2 and "must be 64 lowercase hex digits" in result.output


def test_a_party_without_a_report_is_told_so(monkeypatch):
    chain, members, borrower, reported, sent = world(monkeypatch, "borrower")
    other = seeded_key(2)
    assert chain.run_one(chain.tx(other, "party.register", {"role": "borrower"})).ok
    monkeypatch.setattr(disputes_cli, "load_signer", lambda *args: other)
    result = cli("credit", "dispute", "--reason-hash", REASON)
    assert result.exit_code == 1 and sent == []
    assert f"{other.did} has no credit report to dispute" in result.output


def test_the_furnisher_answers_the_open_dispute_with_a_correction_and_lists_it(monkeypatch):
    chain, members, borrower, reported, sent = world(monkeypatch, 1)
    assert chain.run_one(
        chain.tx(
            borrower,
            "credit.dispute",
            {
                "subject": borrower.did,
                "member": members[1].did,
                "report_height": reported,
                "reason_hash": REASON,
            },
        )
    ).ok
    features = [f"--{name.replace('_', '-')}={value}" for name, value in CORRECTION.items()]
    result = cli(
        "credit",
        "answer-dispute",
        borrower.did,
        "--outcome",
        "corrected",
        "--evidence-hash",
        REASON,
        *features,
    )
    assert result.exit_code == 0, result.output
    assert sent[-1] == (
        "credit.dispute_answer",
        {
            "subject": borrower.did,
            "report_height": reported,
            "outcome": "corrected",
            "evidence_hash": REASON,
            **CORRECTION,
        },
    )
    assert execute(chain, members[1], sent).ok
    listed = cli("credit", "disputes", members[1].did).output.splitlines()
    assert listed == [
        f"member bank2 ({members[1].did}): 1 dispute of the credit reports it furnished: 0 open, 0 overdue, "
        "1 answered on time, 0 answered late",
        f"  {borrower.did}'s report at height {reported}, disputed at height {chain.height - 1}: corrected at "
        f"height {chain.height} (on time)",
    ]
    again = cli("credit", "answer-dispute", borrower.did, "--outcome", "confirmed", "--evidence-hash", REASON)
    assert again.exit_code == 1
    assert f"{borrower.did} has no unanswered dispute of a report by bank2 ({members[1].did})" in again.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--outcome", "corrected", "--income-band", "3"],
            "--outcome corrected needs the corrected report: give --dti-bps",
        ),
        (
            ["--outcome", "withdrawn", "--obligations", "3"],
            "only --outcome corrected takes features, not withdrawn",
        ),
        (["--outcome", "forgotten"], "'forgotten' is not one of 'confirmed', 'corrected', 'withdrawn'"),
    ],
)
def test_answer_dispute_checks_the_features_against_the_outcome(monkeypatch, args, expected):
    chain, members, borrower, reported, sent = world(monkeypatch, 1)
    result = cli("credit", "answer-dispute", borrower.did, "--evidence-hash", REASON, *args)
    assert result.exit_code == 2 and sent == []
    assert expected in result.output


def test_overdue_disputes_are_listed_as_such_for_a_supervisor(monkeypatch):
    chain, members, borrower, reported, sent = world(monkeypatch, 2)
    payload = {
        "subject": borrower.did,
        "member": members[1].did,
        "report_height": reported,
        "reason_hash": REASON,
    }
    assert chain.run_one(chain.tx(borrower, "credit.dispute", payload)).ok
    deadline = chain.head_ms + DAY_MS
    chain.head_ms = deadline  # the views judge at the head block's time: the deadline has passed
    shown = json.loads(cli("--json", "credit", "disputes", members[1].did).output)
    assert (shown["overdue"], shown["shown"][0]["status"]) == (1, "overdue")
    line = cli("credit", "disputes", borrower.did).output.splitlines()[1]
    assert line.endswith(f": overdue since {time_text(deadline)}; it no longer counts")
    monkeypatch.setattr(domain_cli, "client_from", lambda kw: ChainClient(chain))
    score = cli("score", "explain", borrower.did).output
    assert (
        f"  income_band         +0  value -          the credit report by bank2 ({members[1].did})" in score
    )
    assert f"does not count: disputed by the subject since {time_text(deadline - DAY_MS)}" in score


@pytest.mark.parametrize(
    "args",
    [
        ["credit", "dispute", "--reason-hash", REASON],
        ["credit", "answer-dispute", "SUBJECT", "--outcome", "confirmed", "--evidence-hash", REASON],
    ],
)
def test_on_a_chain_before_rules_7_nothing_is_sent_and_the_upgrade_is_named(monkeypatch, args):
    chain, members, borrower, reported, sent = world(monkeypatch, "borrower", version=6)
    result = cli(*[borrower.did if a == "SUBJECT" else a for a in args])
    assert result.exit_code == 1 and sent == []
    kind = "credit.dispute" if args[1] == "dispute" else "credit.dispute_answer"
    assert f"this chain runs rules version 6 and {kind} needs version 7" in result.output
    assert "lendchain gov propose rules.upgrade 7 HEIGHT" in result.output


def test_disputes_of_an_unknown_did_is_a_clear_error(monkeypatch):
    world(monkeypatch, "borrower")
    monkeypatch.setattr(disputes_cli, "client_from", lambda kw: NotFoundClient())
    result = cli("credit", "disputes", "did:key:zNobody")
    assert result.exit_code == 1
    assert "did:key:zNobody is no registered party and no member" in result.output
    assert "Traceback" not in result.output


class NotFoundClient:
    """A node that answers 404 as the API does for an unknown DID."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def get(self, path):
        from lendchain.client import NodeError

        raise NodeError(f"{path.rsplit('/', 1)[1]} is no registered party and no member", status=404)


def test_every_members_record_is_listed_for_a_supervisor(monkeypatch):
    """bank2 lets a dispute pass its deadline; bank4 answers one late: `credit disputes --members`."""
    chain, members, borrower, reported, sent = world(monkeypatch, 2)
    bank2, bank4 = members[1], members[3]

    def disputed(member, height):
        payload = {
            "subject": borrower.did,
            "member": member.did,
            "report_height": height,
            "reason_hash": REASON,
        }
        assert chain.run_one(chain.tx(borrower, "credit.dispute", payload)).ok

    disputed(bank2, reported)  # only the latest report can be disputed: bank4 reports after it
    assert chain.run_one(chain.tx(bank4, "credit.report", {"subject": borrower.did, **REPORT})).ok
    newer = chain.height
    disputed(bank4, newer)
    chain.head_ms += DAY_MS  # both deadlines pass; bank4 answers after its own
    answer = {
        "subject": borrower.did,
        "report_height": newer,
        "outcome": "confirmed",
        "evidence_hash": REASON,
    }
    assert chain.run_one(chain.tx(bank4, "credit.dispute_answer", answer)).ok

    result = cli("credit", "disputes", "--members")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "disputes of the credit reports each member furnished (4 members)",
        "  bank1  0 disputes: 0 open, 0 overdue, 0 answered on time, 0 late",
        "  bank2  1 dispute: 0 open, 1 overdue, 0 answered on time, 0 late",
        "  bank3  0 disputes: 0 open, 0 overdue, 0 answered on time, 0 late",
        "  bank4  1 dispute: 0 open, 0 overdue, 0 answered on time, 1 late",
    ]
    [first, second, *_] = json.loads(cli("--json", "credit", "disputes", "--members").output)["members"]
    assert first == {
        "name": "bank1",
        "did": members[0].did,
        "count": 0,
        "open": 0,
        "overdue": 0,
        "answered_on_time": 0,
        "answered_late": 0,
    }
    assert (second["did"], second["overdue"]) == (bank2.did, 1)


def test_a_removed_members_record_says_when_it_was_removed():
    text = disputes_cli.describe_member_records(
        {"members": [{"name": "bank9", "removed_height": 40, **dict.fromkeys(disputes_cli.RECORD, 0)}]}
    )
    assert text.splitlines()[1] == (
        "  bank9  0 disputes: 0 open, 0 overdue, 0 answered on time, 0 late (removed at height 40)"
    )


@pytest.mark.parametrize("args", [[], ["did:key:zSomeone", "--members"]])
def test_disputes_wants_a_did_or_members_not_both(monkeypatch, args):
    world(monkeypatch, "borrower")
    result = cli("credit", "disputes", *args)
    assert result.exit_code == 2
    assert "give a DID, or --members for every member's record (not both)" in result.output
