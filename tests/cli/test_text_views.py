"""Read commands print text an operator reads, through the node's API app: ``party show`` for a
borrower, a member and a member's rotated key, and the ledger events of ``tx show`` and ``block show``.

Found after cli-audit: ``party show`` printed the party view as JSON without ``--json``, and ``tx
show`` and ``block show`` printed each event as a JSON object with its times in epoch milliseconds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from lendchain.cli import main
from lendchain.ledger import queries
from lendchain.ledger.block import Block
from lendchain.ledger.dispute_records import time_text
from lendchain.ledger.state import ledger_events_key, read_value
from tests.cli.api_node import ChainApi, use_chain
from tests.ledger.chain import seeded_key
from tests.ledger.test_domain_identity import REPORT
from tests.ledger.test_key_rotation import rotate_bank2
from tests.ledger.test_loan_transfer import ok, open_loan, with_borrower
from tests.ledger.test_write_off import default


def run(*args: str):
    answer = CliRunner().invoke(main, list(args))
    assert answer.exit_code == 0, answer.output
    return answer.output


@pytest.fixture
def world():
    """A borrower with a disbursed loan, a consent in force to bank2 (which reported on it) and one to
    bank3 that expired."""
    chain, members, borrower = with_borrower()
    loan_id = open_loan(chain, borrower, members[0])
    bank2, bank3 = members[1], members[2]
    far = chain.head_ms + 10**9
    ok(chain, borrower, "consent.grant", {"member": bank2.did, "scopes": "kyc,credit", "until_ms": far})
    soon = chain.head_ms + 1500  # blocks are 1000 ms apart: past by the next block's time
    ok(chain, borrower, "consent.grant", {"member": bank3.did, "scopes": "documents", "until_ms": soon})
    ok(chain, bank2, "credit.report", {"subject": borrower.did, **REPORT})
    return chain, members, borrower, loan_id


def test_party_show_prints_a_borrowers_view_as_text(monkeypatch, world):
    chain, members, borrower, loan_id = world
    paths = use_chain(monkeypatch, chain)
    view = queries.lookup(chain.state, "party", borrower.did, as_of_ms=chain.head_ms)
    kyc, report, (reminder,) = view["kyc"], view["credit_report"], view["reminders"]
    bank2, bank3, bank4 = members[1], members[2], members[3]
    consents = {consent["name"]: consent for consent in view["consents"]}
    assert (consents["bank2"]["in_force"], consents["bank3"]["in_force"]) == (True, False)
    first = reminder["instalments"][0]

    lines = run("party", "show", borrower.did).splitlines()

    assert lines == [
        f"party       {borrower.did}",
        "role        borrower, registered at block 1",
        f"next nonce  {view['nonce']}",
        f"KYC         level 2, attested by bank4 ({bank4.did}) at block {kyc['height']}",
        f"            expires {time_text(kyc['expires_ms'])}, evidence sha256 {kyc['evidence_hash']}",
        f"consents    bank2: credit, kyc until {time_text(consents['bank2']['until_ms'])},"
        f" given at block {consents['bank2']['height']}",
        f"            bank3: documents until {time_text(consents['bank3']['until_ms'])} (expired),"
        f" given at block {consents['bank3']['height']}",
        f"credit      reported by bank2 ({bank2.did}) at block {report['height']}",
        "            income band 6, debt-to-income 3000 bps, 40 months of credit history, 1 obligations",
        f"            evidence sha256 {report['evidence_hash']}",
        "repayments  0 on time, 0 late, 0 defaults (0 written off), 0 closed, 0 restructured",
        f"score       {view['credit_score']['score']} ("
        + ", ".join(f"{f['factor']} {f['points']:+d}" for f in view["credit_score"]["factors"] if f["points"])
        + ")",
        "            `lendchain score explain DID` gives each factor's value and source",
        "disputes    none of its credit reports",
        "loans       1 applied for, 1 being repaid",
        f"            {loan_id} disbursed, stage 1, 0 days past due, penalty due 0;"
        f" next #1 due {time_text(first['due_ms'])}: {first['amount']}",
    ]
    assert bank3.did not in "\n".join(lines)  # a consent names the member by its name
    as_json = json.loads(run("--json", "party", "show", borrower.did))
    assert as_json["consents"] == view["consents"] and as_json["borrower_loans"] == 1
    # The view names the attesting and reporting members: no member list is asked for.
    assert (as_json["kyc"]["attester_name"], as_json["credit_report"]["reporter_name"]) == ("bank4", "bank2")
    assert paths == [f"/parties/{borrower.did}", f"/parties/{borrower.did}"]


def test_party_show_asks_an_older_node_for_the_members_names(monkeypatch, world):
    """A node of an older release answers the KYC attestation and credit report without the members'
    names: the text names them from ``GET /members/*``, as it did before the view had them."""
    chain, members, borrower, _ = world
    answer = ChainApi.query

    def older(node: ChainApi, kind: str, ref: str) -> dict[str, Any] | None:
        view = answer(node, kind, ref)
        if kind == "party":
            del view["kyc"]["attester_name"], view["credit_report"]["reporter_name"]
        return view

    monkeypatch.setattr(ChainApi, "query", older)
    paths = use_chain(monkeypatch, chain)
    lines = run("party", "show", borrower.did).splitlines()
    assert lines[3].startswith(f"KYC         level 2, attested by bank4 ({members[3].did}) at block ")
    assert lines[7].startswith(f"credit      reported by bank2 ({members[1].did}) at block ")
    assert paths == [f"/parties/{borrower.did}", "/members/*"]


def test_party_show_prints_a_member_and_a_members_rotated_key_as_text(monkeypatch, world):
    chain, members, *_ = world
    new_key = seeded_key(42)
    rotate_bank2(chain, members, new_key)
    use_chain(monkeypatch, chain)
    bank1 = queries.lookup(chain.state, "party", members[0].did)
    rotated = queries.lookup(chain.state, "party", new_key.did)

    assert run("party", "show", members[0].did).splitlines() == [
        f"member      bank1  {members[0].did}",
        "roles       lender",
        "voting      votes",
        f"public key  {bank1['public_key']}",
        f"next nonce  {bank1['nonce']}",
    ]
    assert run("party", "show", new_key.did).splitlines() == [
        f"member key  {new_key.did}",
        f"signs for   bank2 ({members[1].did}) from block {rotated['signs_from_height']} on",
        "next nonce  0",
    ]


def test_tx_show_and_block_show_print_each_event_as_text(monkeypatch, world):
    chain, members, borrower, loan_id = world
    granted = chain.run_one(
        chain.tx(
            borrower, "consent.grant", {"member": members[0].did, "scopes": "credit", "until_ms": 10**13}
        )
    )
    default(chain, loan_id)
    use_chain(monkeypatch, chain)

    shown = run("tx", "show", granted.tx_id.hex()).splitlines()
    assert shown[-1] == (
        f"  event: consent.granted: member bank1 ({members[0].did}), party {borrower.did}, scopes [credit],"
        f" until_ms {time_text(10**13)}"
    )

    height = chain.height
    events = read_value(chain.state, ledger_events_key(height))
    assert "loan.defaulted" in [event["event"] for event in events]
    block = run("block", "show", str(height)).splitlines()
    assert block[0] == f"block    {height}  {Block.decode(chain.blocks[-1][0]).hash().hex()}"
    at = block.index(f"ledger   {len(events)} events of its own") + 1
    overdue = next(event for event in events if event["event"] == "loan.overdue")
    assert block[at] == (
        f"  loan.overdue: due_ms {time_text(overdue['due_ms'])}, instalment {overdue['instalment']},"
        f" loan_id {loan_id}"
    )
    assert block[at : at + len(events)] == [
        f"  {event['event']}: "
        + ", ".join(
            f"{k} {time_text(v) if k.endswith('_ms') else v}"
            for k, v in sorted(event.items())
            if k != "event"
        )
        for event in events
    ]
    assert not any(line.lstrip().startswith("{") for line in block)


def test_score_and_reminders_name_the_member_a_did_is_instead_of_a_party(monkeypatch, world):
    """Both said "is a consortium member" of a member's rotated key too, and named no member."""
    chain, members, *_ = world
    new_key = seeded_key(42)
    rotate_bank2(chain, members, new_key)
    use_chain(monkeypatch, chain)
    for command, what in ((("score", "explain"), "score"), (("servicing", "reminders"), "reminders")):
        for did, said in (
            (members[0].did, f"{members[0].did} is consortium member bank1, not a registered party"),
            (
                new_key.did,
                f"{new_key.did} is a key consortium member bank2 signs with, not a registered party",
            ),
        ):
            refused = CliRunner().invoke(main, [*command, did])
            assert refused.exit_code == 1, refused.output
            assert refused.output.strip() == f"Error: {said}; it has no {what}"
